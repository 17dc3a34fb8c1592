"""Per-task options: what ``DagBuilder.add_task`` takes beyond the key, dependencies and function.

Options are validated when the task is added (a ``TypeError`` or ``ValueError`` naming the
task and the argument), then compiled by ``build()`` into the :class:`~ftdag.Dag`'s
*options table*: ``Dag._options[i]`` is task ``i``'s :class:`TaskOptions`, or ``None`` for a
task that uses none (every source, and most tasks).  The schedulers read the table by node
id, as they read the graph; a plan whose tasks all have ``None`` there (and a run with no
failure policy, cancellation, deadline or store) takes the plain paths, which never look
at it.

The options and their meaning:

``retries``      extra attempts after the first (0: one attempt).
``retry_on``     the exception classes that are retried; any other exception fails the task
                 at once.  ``BaseException`` s that are not ``Exception`` s (``SystemExit``,
                 ``KeyboardInterrupt``) are never retried: they stop the run.
``retry_delay``  seconds before the first retry, doubled for each later one, with jitter of
                 +-50%, capped at :data:`MAX_RETRY_DELAY_S` (:func:`retry_delay`).  A task
                 waiting for its retry holds no worker.
``timeout``      seconds one attempt may take before it fails with
                 :class:`~ftdag.TaskTimeoutError`.
``cache``        whether a run with a result store may save and load this task's result.
``version``      identifies the task's code for the store's fingerprints instead of a
                 fingerprint of its function.

Scheduling constraints (compiled by ``build()``, see :mod:`ftdag._constraints`):

``priority``     an int: among ready tasks, higher priority is dispatched first (default 0).
``cost``         a finite number > 0: the task's relative cost estimate (default 1.0).
``resources``    a mapping of capacity name (a non-empty str) to the units (an int >= 1) the
                 task holds while it runs; stored as ``(name, units)`` pairs sorted by name.
``reads``        names of shared state the task reads: it never overlaps a task writing one
                 of them.
``writes``       names it writes: it never overlaps another task reading or writing one of
                 them.  A name both read and written is stored as written only.
``creates``      names it creates: it runs before every task that reads, writes or consumes
                 one of them.  A name has at most one creator.
``consumes``     names it consumes: it runs after every task that reads or writes one of
                 them.  A name has at most one consumer.
``after``        keys of nodes this task runs after, receiving no value from them.
``before``       keys of nodes this task runs before, passing them no value.

Each access set (``reads`` ... ``consumes``) is an iterable of names or one ``str`` (one
name), stored as a ``frozenset``.  ``after`` and ``before`` take keys by the rule outputs
follow (:meth:`ftdag.Executor.run`): a list, set or other iterable is several keys; a
``tuple``, ``str``, ``bytes`` or anything not iterable is *one* key; ``None`` (the default)
is no key, so the key ``None`` itself is written ``[None]``.  They are stored as tuples,
deduplicated in the order given.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_RETRY_DELAY_S", "TaskOptions", "retry_delay", "task_options"]

MAX_RETRY_DELAY_S = 60.0
"""No retry waits longer than this, however many attempts came before."""


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """One task's options (see the module docstring); ``TaskOptions()`` is every default.

    Frozen and hashable: ``resources`` is a sorted tuple of pairs and the access sets are
    frozensets.
    """

    retries: int = 0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    retry_delay: float = 0.0
    timeout: float | None = None
    cache: bool = True
    version: str | None = None
    priority: int = 0
    cost: float = 1.0
    resources: tuple[tuple[str, int], ...] = ()
    reads: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()
    creates: frozenset[str] = frozenset()
    consumes: frozenset[str] = frozenset()
    after: tuple[Hashable, ...] = ()
    before: tuple[Hashable, ...] = ()

    @property
    def scheduled(self) -> bool:
        """Whether the schedulers must treat the task specially (retries or a timeout)."""
        return self.retries > 0 or self.timeout is not None

    @property
    def ordered(self) -> bool:
        """Whether the task's place in the ready order is not the default (a priority or a cost)."""
        return self.priority != 0 or self.cost != 1.0

    @property
    def guarded(self) -> bool:
        """Whether dispatching the task needs checks: it holds resources, or reads or writes names."""
        return bool(self.resources or self.reads or self.writes)


_DEFAULT = TaskOptions()


def task_options(
    key: Hashable,
    *,
    retries: int = 0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    retry_delay: float = 0.0,
    timeout: float | None = None,
    cache: bool = True,
    version: str | None = None,
    priority: int = 0,
    cost: float = 1.0,
    resources: Mapping[str, int] | None = None,
    reads: Iterable[str] | str | None = None,
    writes: Iterable[str] | str | None = None,
    creates: Iterable[str] | str | None = None,
    consumes: Iterable[str] | str | None = None,
    after: Iterable[Hashable] | Hashable = None,
    before: Iterable[Hashable] | Hashable = None,
) -> TaskOptions | None:
    """Validated options of task ``key``, or ``None`` if they are all the defaults."""

    def bad(arg: str, value: object, expected: str, error: type[Exception] = TypeError) -> Exception:
        return error(f"{arg} of task {key!r} must be {expected}, got {type(value).__name__}: {value!r}")

    if isinstance(retries, bool) or not isinstance(retries, int):
        raise bad("retries", retries, "an int")
    if retries < 0:
        raise bad("retries", retries, "an int >= 0", ValueError)
    if not isinstance(retry_on, tuple) or not retry_on:
        raise bad("retry_on", retry_on, "a non-empty tuple of exception classes")
    for cls in retry_on:
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise bad("retry_on", retry_on, "a tuple of exception classes (not instances)")
    if isinstance(retry_delay, bool) or not isinstance(retry_delay, (int, float)):
        raise bad("retry_delay", retry_delay, "a number of seconds")
    if not retry_delay >= 0 or math.isinf(retry_delay):  # (rejects NaN too)
        raise bad("retry_delay", retry_delay, "a finite number of seconds >= 0", ValueError)
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise bad("timeout", timeout, "None or a number of seconds")
        if not timeout > 0 or math.isinf(timeout):
            raise bad("timeout", timeout, "None or a finite number of seconds > 0", ValueError)
    if not isinstance(cache, bool):
        raise bad("cache", cache, "a bool")
    if version is not None and not isinstance(version, str):
        raise bad("version", version, "None or a str")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise bad("priority", priority, "an int")
    if isinstance(cost, bool) or not isinstance(cost, (int, float)):
        raise bad("cost", cost, "a number")
    if not cost > 0 or math.isinf(cost):
        raise bad("cost", cost, "a finite number > 0", ValueError)
    read_set = _names(key, "reads", reads)
    write_set = _names(key, "writes", writes)
    options = TaskOptions(
        retries, retry_on, float(retry_delay), None if timeout is None else float(timeout), cache, version,
        priority, float(cost), _resources(key, resources), read_set - write_set, write_set,
        _names(key, "creates", creates), _names(key, "consumes", consumes),
        _keys(key, "after", after), _keys(key, "before", before),
    )
    return None if options == _DEFAULT else options


def _resources(key: Hashable, resources: Any) -> tuple[tuple[str, int], ...]:
    """``resources`` of task ``key`` as ``(name, units)`` pairs sorted by name (validated)."""
    if resources is None:
        return ()
    if not isinstance(resources, Mapping):
        raise TypeError(
            f"resources of task {key!r} must be a mapping of names to units, "
            f"got {type(resources).__name__}: {resources!r}"
        )
    for name, units in resources.items():
        if not isinstance(name, str):
            raise TypeError(
                f"resources of task {key!r}: a resource name must be a str, got {type(name).__name__}: {name!r}"
            )
        if not name:
            raise ValueError(f"resources of task {key!r}: a resource name must not be empty")
        if isinstance(units, bool) or not isinstance(units, int):
            raise TypeError(
                f"resources of task {key!r}: the units of {name!r} must be an int, "
                f"got {type(units).__name__}: {units!r}"
            )
        if units < 1:
            raise ValueError(f"resources of task {key!r}: the units of {name!r} must be >= 1, got {units!r}")
    return tuple(sorted(resources.items()))


def _names(key: Hashable, arg: str, value: Any) -> frozenset[str]:
    """The access set ``arg`` of task ``key``: ``None`` (none), one ``str``, or an iterable of them."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = (value,)
    elif isinstance(value, (bytes, bytearray)) or not isinstance(value, Iterable):
        raise TypeError(
            f"{arg} of task {key!r} must be a str or an iterable of str, got {type(value).__name__}: {value!r}"
        )
    names = []
    for name in value:
        if not isinstance(name, str):
            raise TypeError(
                f"{arg} of task {key!r}: a name must be a str, got {type(name).__name__}: {name!r}"
            )
        if not name:
            raise ValueError(f"{arg} of task {key!r}: a name must not be empty")
        names.append(name)
    return frozenset(names)


def _keys(key: Hashable, arg: str, value: Any) -> tuple[Hashable, ...]:
    """The keys ``after`` or ``before`` of task ``key`` names (module docstring), deduplicated."""
    if value is None:
        return ()
    if isinstance(value, (tuple, str, bytes)):
        keys: list = [value]
    else:
        try:
            keys = list(value)
        except TypeError:
            keys = [value]
    for k in keys:
        try:
            hash(k)
        except TypeError:
            raise TypeError(f"{arg} of task {key!r}: key {k!r} must be hashable, got {type(k).__name__}") from None
    return tuple(dict.fromkeys(keys))


def retry_delay(options: TaskOptions, failures: int, rng: random.Random) -> float:
    """Seconds to wait before the attempt that follows the ``failures``-th failure (1 for the
    first): ``retry_delay * 2 ** (failures - 1)``, times a jitter factor in [0.5, 1.5), capped."""
    base = options.retry_delay
    if not base:
        return 0.0
    delay = base * 2.0 ** min(failures - 1, 64)
    return min(delay * rng.uniform(0.5, 1.5), MAX_RETRY_DELAY_S)
