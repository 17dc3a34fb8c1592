"""What a run returns: :class:`RunResult` (the requested values) and :class:`RunStats`."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["RunResult", "RunStats"]


@dataclass(frozen=True)
class RunStats:
    """Counters of one run.

    executed:       nodes the run executed (sources included): ``len(dag.ancestors(outputs))``.
    pruned:         nodes of the graph that did not run.
    backend:        ``"sequential"``, ``"threads"`` or ``"processes"``: what actually ran.
    wall_s:         wall-clock seconds of the run.
    workers:        worker threads or processes used (1 for sequential).
    peak_in_flight: the most tasks queued for or running in workers at once.
    peak_queue_len: the longest any one worker's queue got.
    steals:         tasks an idle worker took from another worker's queue.
    """

    executed: int
    pruned: int
    backend: str
    wall_s: float
    workers: int = 1
    peak_in_flight: int = 0
    peak_queue_len: int = 0
    steals: int = 0


class RunResult(Mapping[Hashable, Any]):
    """A read-only mapping ``{requested key: value}``, with the run's :class:`RunStats` as ``.stats``."""

    __slots__ = ("_values", "stats")

    def __init__(self, values: dict[Hashable, Any], stats: RunStats) -> None:
        self._values = values
        self.stats = stats

    def __getitem__(self, key: Hashable) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"RunResult({self._values!r}, stats={self.stats!r})"
