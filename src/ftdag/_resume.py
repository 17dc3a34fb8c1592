"""Resuming from a result store: fingerprints, what to load, and the plan that is left.

``run(..., store=S)`` calls :func:`prepare` before anything runs, on the caller's thread:

1. **Fingerprints**, Merkle-style, in topological order over the planned nodes
   (:mod:`ftdag._fingerprint`): a source's hashes its key and its pickled value; a task's
   hashes its key, its ``version`` (or, without one, its function's fingerprint) and its
   dependencies' fingerprints in order.  Intermediate values are never hashed.  A source
   whose value cannot be pickled, a task added with ``cache=False``, and everything
   downstream of either have no fingerprint: they are neither loaded nor saved (one warning
   per run names the sources that cannot be pickled; ``cache=False`` is a choice and is
   silent).
2. **Loading**, from the requested outputs down: a needed task whose fingerprint is stored
   is loaded, and what it depends on is needed only if something else needs it; otherwise
   its dependencies are needed.  So a fully stored request loads its outputs and runs
   nothing, and a changed source or function reruns exactly what is downstream of it.  A
   corrupt record is reported by the store (a warning naming the key), deleted, and the
   task runs again.
3. **The plan** of what is left: the loaded values stand in as sources
   (:func:`ftdag._plan.with_given`).

Saving happens as tasks succeed, on the worker that ran the task (:mod:`ftdag._attempt`,
:mod:`ftdag._process_worker`; the parent for a store that lives in one process).
"""

from __future__ import annotations

import warnings
from typing import Any

from ._context import DONE, RunContext
from ._fingerprint import function_fingerprint, source_fingerprint, task_fingerprint
from ._plan import Plan, with_given
from .store import MISSING

__all__ = ["NotStoredWarning", "prepare"]


class NotStoredWarning(UserWarning):
    """Some results of a run with a store will not be stored (a source cannot be pickled)."""


def fingerprints(plan: Plan, ctx: RunContext) -> list[bytes | None]:
    """Every planned node's fingerprint by id (None where it has none; see the module docstring)."""
    dag = plan.dag
    keys, deps, fns, values, options = dag._keys, dag._deps, dag._fns, plan.values, ctx.options
    found: list[bytes | None] = [None] * len(keys)
    unpicklable = []
    by_function: dict[int, bytes] = {}  # id(fn) -> its fingerprint: tasks often share a function
    for i in dag._closure(plan.outputs):
        key = keys[i]
        if fns[i] is None:
            fp = source_fingerprint(key, values[i])
            if fp is None:
                unpicklable.append(key)
            found[i] = fp
            continue
        o = options[i]
        if o is not None and not o.cache:
            continue
        dep_fps = [found[d] for d in deps[i]]
        if any(fp is None for fp in dep_fps):
            continue
        version = None if o is None else o.version
        if version is not None:
            identity = b"v:" + version.encode()
        else:
            fn = fns[i]
            fp = by_function.get(id(fn))  # (fns holds every function for the whole call)
            if fp is None:
                fp = by_function[id(fn)] = function_fingerprint(fn)
            identity = b"f:" + fp
        found[i] = task_fingerprint(key, identity, dep_fps)  # type: ignore[arg-type]  # (no None left)
    if unpicklable:
        names = ", ".join(repr(k) for k in unpicklable[:5]) + (", ..." if len(unpicklable) > 5 else "")
        warnings.warn(
            f"the value of source(s) {names} cannot be pickled, so the tasks downstream of them are "
            "not fingerprinted: they are neither loaded from nor saved to the store",
            NotStoredWarning,
            stacklevel=4,
        )
    return found


def prepare(plan: Plan, ctx: RunContext, store: Any) -> Plan:
    """Set up ``ctx`` for ``store`` and return the plan of what is left to run (module docstring)."""
    dag = plan.dag
    keys, deps, fns = dag._keys, dag._deps, dag._fns
    fps = fingerprints(plan, ctx)
    needed = bytearray(len(keys))
    for i in plan.outputs:
        needed[i] = 1
    given: dict[int, Any] = {}
    for i in reversed(plan.tasks):  # dependents before their dependencies
        if not needed[i]:
            continue
        fp = fps[i]
        if fp is not None:
            value = store.load(fp.hex(), keys[i])
            if value is not MISSING:
                given[i] = value
                continue
        for d in deps[i]:
            if fns[d] is not None:
                needed[d] = 1
    if given:
        plan = with_given(plan, given)
        for i in given:
            ctx.status[i] = DONE
    ctx.loaded = len(given)
    ctx.store = store
    ctx.fingerprints = [None if fp is None or i in given else fp.hex() for i, fp in enumerate(fps)]
    return plan
