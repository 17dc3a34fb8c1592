"""What a run returns: :class:`RunResult` (the requested values) and :class:`RunStats`."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .errors import RunFailedError, TaskError

__all__ = ["RunResult", "RunStats"]


@dataclass(frozen=True)
class RunStats:
    """Counters of one run.

    executed:       nodes the run executed (sources included): ``len(dag.ancestors(outputs))``.
    pruned:         nodes of the graph that did not run.
    backend:        ``"sequential"``, ``"threads"``, ``"processes"`` or ``"distributed"``: what actually ran.
    wall_s:         wall-clock seconds of the run.
    workers:        worker threads or processes used (1 for sequential; distributed: the cluster's threads).
    peak_in_flight: the most tasks queued for or running in workers at once.
    peak_queue_len: the longest any one worker's queue got.
    steals:         tasks an idle worker took from another worker's queue.
    retries:        attempts beyond the first, summed over the tasks.
    failed:         tasks that failed for good (keep-going runs; ``len(result.failed)``).
    skipped:        planned tasks that did not run because something they need failed, or
                    because the run stopped (``len(result.skipped)``).
    loaded:         tasks whose result was loaded from the run's store instead of computed.
    stored:         results saved to the run's store.
    """

    executed: int
    pruned: int
    backend: str
    wall_s: float
    workers: int = 1
    peak_in_flight: int = 0
    peak_queue_len: int = 0
    steals: int = 0
    retries: int = 0
    failed: int = 0
    skipped: int = 0
    loaded: int = 0
    stored: int = 0


_NO_FAILURES: Mapping[Hashable, TaskError] = MappingProxyType({})


class RunResult(Mapping[Hashable, Any]):
    """A read-only mapping ``{requested key: value}``, with the run's :class:`RunStats` as ``.stats``.

    A run with ``on_error="keep_going"`` (or one that was stopped: see
    :class:`~ftdag.RunCancelledError`) reports what did not complete; a requested output that
    failed or was skipped is not in the mapping:

    ``failed``   a read-only mapping ``key -> TaskError`` of the tasks that failed for good
                 (``.attempts``, and the last attempt's exception as ``__cause__``);
    ``skipped``  a frozenset of the planned keys that did not run;
    ``ok``       true when nothing failed and nothing was skipped.
    """

    __slots__ = ("_values", "stats", "_failed", "skipped")

    def __init__(
        self, values: dict[Hashable, Any], stats: RunStats, failed: dict[Hashable, TaskError] | None = None,
        skipped: frozenset[Hashable] = frozenset(),
    ) -> None:
        self._values = values
        self.stats = stats
        self._failed = failed  # None when nothing failed
        self.skipped = skipped

    @property
    def failed(self) -> Mapping[Hashable, TaskError]:
        return _NO_FAILURES if self._failed is None else MappingProxyType(self._failed)

    @property
    def ok(self) -> bool:
        return not self._failed and not self.skipped

    def raise_for_failures(self) -> None:
        """Raise :class:`~ftdag.RunFailedError` (an ``ExceptionGroup`` of the :class:`TaskError`
        s, ``.result`` this result) if a task failed; do nothing if none did."""
        if self._failed:
            errors = list(self._failed.values())
            keys = ", ".join(repr(e.key) for e in errors[:5]) + (", ..." if len(errors) > 5 else "")
            skipped = f"; {len(self.skipped)} skipped" if self.skipped else ""
            raise RunFailedError(f"{len(errors)} task(s) failed: {keys}{skipped}", errors, self)

    def __getitem__(self, key: Hashable) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        extra = ""
        if self._failed:
            extra += f", failed={list(self._failed)!r}"
        if self.skipped:
            extra += f", skipped={set(self.skipped)!r}"
        return f"RunResult({self._values!r}{extra}, stats={self.stats!r})"

    def __reduce__(self):
        return (type(self), (self._values, self.stats, self._failed, self.skipped))
