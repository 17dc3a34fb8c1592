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
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable
from dataclasses import dataclass

__all__ = ["MAX_RETRY_DELAY_S", "TaskOptions", "retry_delay", "task_options"]

MAX_RETRY_DELAY_S = 60.0
"""No retry waits longer than this, however many attempts came before."""


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """One task's options (see the module docstring); ``TaskOptions()`` is every default."""

    retries: int = 0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    retry_delay: float = 0.0
    timeout: float | None = None
    cache: bool = True
    version: str | None = None

    priority: int = 0  # (stand-ins until the constraints land)
    cost: float = 1.0

    @property
    def ordered(self) -> bool:
        return self.priority != 0 or self.cost != 1.0

    @property
    def guarded(self) -> bool:
        return False

    @property
    def scheduled(self) -> bool:
        """Whether the schedulers must treat the task specially (retries or a timeout)."""
        return self.retries > 0 or self.timeout is not None


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
    options = TaskOptions(retries, retry_on, float(retry_delay), None if timeout is None else float(timeout), cache, version)
    return None if options == _DEFAULT else options


def retry_delay(options: TaskOptions, failures: int, rng: random.Random) -> float:
    """Seconds to wait before the attempt that follows the ``failures``-th failure (1 for the
    first): ``retry_delay * 2 ** (failures - 1)``, times a jitter factor in [0.5, 1.5), capped."""
    base = options.retry_delay
    if not base:
        return 0.0
    delay = base * 2.0 ** min(failures - 1, 64)
    return min(delay * rng.uniform(0.5, 1.5), MAX_RETRY_DELAY_S)
