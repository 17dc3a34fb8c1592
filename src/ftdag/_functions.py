"""The process backend's function cache: each task function is pickled once per pool.

A task's function crosses to a worker as bytes, pickled with ``cloudpickle`` if it is
importable (it sends lambdas and closures by value), else with :mod:`pickle` (by reference
only).  :class:`FunctionCache` pickles a function the first time a run plans it and keeps the
bytes, under a function id (``fid``), for as long as the function lives: a weak reference
notices its collection, and the pool then tells the workers to forget that fid.  Which
worker already holds which fid is the worker's own record (``Worker.known``), so a
function is sent once per worker.  Every planned function is pickled before the run
starts, so one that does not pickle fails the run before anything runs.
"""

from __future__ import annotations

import importlib
import itertools
import pickle
import weakref
from collections.abc import Callable
from typing import Any

from ._failures import unpicklable_function
from ._plan import Plan
from ._wire import PROTOCOL

__all__ = ["FunctionCache", "cloudpickle_available"]

_cloudpickle: Any = None  # the module once imported, or False when it is not installed


def cloudpickle_available() -> bool:
    """Whether functions are pickled with cloudpickle (imports it on first use)."""
    global _cloudpickle
    if _cloudpickle is None:
        try:
            _cloudpickle = importlib.import_module("cloudpickle")  # (an optional dependency)
        except ImportError:
            _cloudpickle = False
    return bool(_cloudpickle)


def dumps_function(fn: object) -> bytes:
    if cloudpickle_available():
        return _cloudpickle.dumps(fn, PROTOCOL)
    return pickle.dumps(fn, PROTOCOL)


class _Fn:
    """A function of some plan, pickled once: its id for the workers and its bytes."""

    __slots__ = ("fid", "data", "target")

    def __init__(self, fid: int, data: bytes, target: Callable[[], object]) -> None:
        self.fid = fid  # > 0, never reused by the pool
        self.data = data  # the pickled function
        self.target = target  # () -> the function, or None once it was garbage-collected


class FunctionCache:
    """A pool's pickled task functions, by function object."""

    def __init__(self) -> None:
        self._fids = itertools.count(1)
        self._cache: dict[int, _Fn] = {}  # id(function) -> its entry
        self._dead: list[tuple[int, int]] = []  # (id, fid) of collected functions, from weakref callbacks

    def collected(self) -> list[int]:
        """The fids of the functions collected since the last call; forget them."""
        dead, cache = self._dead, self._cache
        fids = []
        while dead:
            ident, fid = dead.pop()
            entry = cache.get(ident)
            if entry is not None and entry.fid == fid:
                del cache[ident]
            fids.append(fid)
        return fids

    def lookup(self, plan: Plan) -> tuple[list[int], dict[int, bytes]]:
        """Each planned task's fid (indexed by node id), and the pickled functions by fid.

        Pickles the functions not seen before; raises :class:`~ftdag.SerializationError` for
        the first one that does not pickle.
        """
        dag = plan.dag
        fns, keys = dag._fns, dag._keys
        cache = self._cache
        fid_of = [0] * len(fns)
        fn_data: dict[int, bytes] = {}
        seen: dict[int, int] = {}  # id(function) -> fid, for this plan
        for i in plan.tasks:
            fn = fns[i]
            fid = seen.get(id(fn))
            if fid is None:
                entry = cache.get(id(fn))
                if entry is None or entry.target() is not fn:
                    entry = self._add(fn, keys[i])
                    cache[id(fn)] = entry
                fid = seen[id(fn)] = entry.fid
                fn_data[fid] = entry.data
            fid_of[i] = fid
        return fid_of, fn_data

    def _add(self, fn: object, key: object) -> _Fn:
        try:
            data = dumps_function(fn)
        except Exception as exc:
            raise unpicklable_function(key, fn, exc, cloudpickle_available()) from exc
        fid = next(self._fids)
        dead, ident = self._dead, id(fn)
        target: Callable[[], object]
        try:
            target = weakref.ref(fn, lambda _ref: dead.append((ident, fid)))
        except TypeError:  # not weakly referenceable: keep it (and its id) for the pool's lifetime
            target = lambda: fn
        return _Fn(fid, data, target)
