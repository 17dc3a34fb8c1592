"""Where a run's time went: :class:`Trace`, a callback (:mod:`ftdag.callbacks`) that records
every task attempt's worker, start and end.

::

    trace = ftdag.Trace(dag)                  # the graph is optional: see the critical path
    ex.run(dag, outputs, callbacks=[trace])
    trace.save("run.json")                    # Chrome Trace Event format: Perfetto, chrome://tracing
    trace.plot("run.png")                     # a timeline, one row per worker (ftdag[plot] extra)
    trace.summary()                           # wall, busy per worker, utilisation, longest, critical path

What is recorded, as :class:`Span` s, in seconds since ``on_run_start``:

- threads and sequential: ``start`` is the time of ``on_task_start``, which the worker
  reports just before it calls the task, and ``end`` is ``start + elapsed_s``, the time
  the worker measured around the call (it excludes the callbacks' own time);
- processes: the parent learns of an attempt only from its reply, when both events arrive
  together (:mod:`ftdag.callbacks`), so ``end`` is the time of that ``on_task_end`` and
  ``start`` is ``end - elapsed_s`` (``elapsed_s`` is measured in the worker process).  When
  the parent reads a worker's replies late, its consecutive attempts would overlap that way:
  ``start`` is then moved to the end of the worker's previous attempt, so that a lane never
  overlaps itself (the span is then shorter than ``elapsed_s``, which :attr:`Span.elapsed`
  keeps).

Every attempt is recorded, a failed one too (:attr:`Span.error` names its exception type);
tasks loaded from a store report no events, and sources are values, not tasks, so neither
appears.  A Trace records **one run**: each ``on_run_start`` clears what the previous run
left, so a Trace given to an executor (``Executor(callbacks=[trace])``) holds its last run.
A task that runs a graph on its own executor (a nested run, inline on its thread) reports
that run to the executor's callbacks too: give the Trace to ``run(..., callbacks=[trace])``
instead if tasks do that.

The **critical path** (:meth:`Trace.critical_path`) is the chain of attempts whose
end-to-start links decided the wall time.  It starts at the attempt that ended last and walks
back; each step goes to the predecessor that ended last:

- with the graph (``Trace(dag)``): among the attempt's dependencies (data and order edges:
  :meth:`~ftdag.Dag.dependencies`, :meth:`~ftdag.Dag.order_dependencies`), each through the
  attempt that succeeded, and the previous attempt of the same task for a retry.  The
  result is a chain of dependencies ending at the last task: what would have to run faster
  for the run to end sooner.  Sources and loaded tasks have no span and end the walk.
- without it: among *all* attempts, on any worker, that ended at or before the attempt
  started.  That is the attempt whose end let this one start when the workers were busy,
  but with idle workers it may be unrelated: a guess, which the graph makes exact.
"""

from __future__ import annotations

import bisect
import json
import os
import sys
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .callbacks import Callback, RunInfo
from .graph import Dag

__all__ = ["Span", "Trace", "TraceSummary"]

_PID = 1  # every lane is a thread of one "process" in the Chrome trace: the run
_SHOWN_STEPS = 20  # a longer critical path is printed with its middle elided


@dataclass(frozen=True)
class Span:
    """One attempt of a task, as a :class:`Trace` recorded it (times in seconds since the
    run started; see :mod:`ftdag.trace`).

    ``key``      the task's key;
    ``worker``   the worker that ran it (0 .. workers - 1);
    ``start``, ``end``  when it ran;
    ``elapsed``  ``elapsed_s`` as the worker measured it (``end - start``, but on processes
                 when a late reply made the start move: see the module docstring);
    ``attempt``  1 for the first attempt of the task in this run, 2 for its first retry...;
    ``error``    the type name of the exception the attempt raised, None if it succeeded.
    """

    key: Hashable
    worker: int
    start: float
    end: float
    elapsed: float
    attempt: int = 1
    error: str | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def name(self) -> str:
        """The key as text: a ``str`` key as it is, any other its ``repr``."""
        return _name(self.key)


@dataclass(frozen=True)
class TraceSummary:
    """What :meth:`Trace.summary` returns (``str()`` of it is what it prints).

    ``backend``, ``workers``  of the run;
    ``wall_s``         seconds from ``on_run_start`` to ``on_run_end`` (to the last recorded
                       end while the run is going on);
    ``busy_s``         by worker index, the sum of its attempts' ``elapsed``;
    ``utilisation``    ``sum(busy_s) / (workers * wall_s)``, between 0 and 1;
    ``attempts``, ``failed``  attempts recorded, and those that raised;
    ``longest``        the longest attempts, longest first;
    ``critical_path``  the critical path (:meth:`Trace.critical_path`), in time order;
    ``critical_path_s``  the time its attempts took (sum of their durations): the part of
                       the wall time spent in tasks along the path;
    ``exact``          whether the path follows the graph's dependencies (a Trace with
                       the graph) rather than guesses.
    """

    backend: str
    workers: int
    wall_s: float
    busy_s: tuple[float, ...]
    utilisation: float
    attempts: int
    failed: int
    longest: tuple[Span, ...]
    critical_path: tuple[Span, ...]
    critical_path_s: float
    exact: bool

    def __str__(self) -> str:
        lines = [
            f"run: {self.backend}, {self.workers} worker{'s' if self.workers != 1 else ''}, "
            f"{self.attempts} task attempts ({self.failed} failed)",
            f"wall time: {self.wall_s:.3f} s",
            "busy time: " + ", ".join(
                f"worker {w} {b:.3f} s ({b / self.wall_s:.0%})" if self.wall_s > 0 else f"worker {w} {b:.3f} s"
                for w, b in enumerate(self.busy_s)
            ),
            f"utilisation: {self.utilisation:.1%} (busy / ({self.workers} workers x wall))",
            "longest tasks:",
        ]
        width = max((len(s.name) for s in self.longest), default=0)
        lines += [f"  {s.name:<{width}}  {s.elapsed:.3f} s  worker {s.worker}{_failed(s)}" for s in self.longest]
        how = "through dependencies" if self.exact else "guessed without the graph"
        lines.append(f"critical path ({len(self.critical_path)} attempts, {how}): "
                     f"{self.critical_path_s:.3f} s in tasks of {self.wall_s:.3f} s wall")
        steps = list(self.critical_path)
        if len(steps) > _SHOWN_STEPS:
            half = _SHOWN_STEPS // 2
            hidden = len(steps) - 2 * half
            shown: list[Span | None] = [*steps[:half], None, *steps[-half:]]
        else:
            hidden, shown = 0, list(steps)
        width = max((len(s.name) for s in steps), default=0)
        for s in shown:
            if s is None:
                lines.append(f"  ... {hidden} more ...")
            else:
                lines.append(f"  {s.name:<{width}}  {s.start:.3f} -> {s.end:.3f} s  worker {s.worker}{_failed(s)}")
        return "\n".join(lines)


class Trace(Callback):
    """A callback that records every task attempt of a run: its worker, start and end (see
    :mod:`ftdag.trace` for how, and for the critical path).

    ``dag``: the graph the runs run, optional; with it the critical path follows the
    dependencies, without it the path is a guess.

    ``backend`` and ``workers`` are those of the last run (``"none"`` and 0 before the first);
    :attr:`spans` and :attr:`wall_s` what it recorded.  Thread-safe: task events come from
    several worker threads at once.
    """

    def __init__(self, dag: Dag | None = None) -> None:
        if dag is not None and not isinstance(dag, Dag):
            raise TypeError(f"Trace(dag=...) must be an ftdag.Dag or None, got {type(dag).__name__}: {dag!r}")
        self.dag = dag
        self._lock = threading.Lock()
        self._clear(RunInfo((), 0, "none", 0))

    def _clear(self, info: RunInfo) -> None:
        self.backend = info.backend
        self.workers = info.workers
        self._t0 = time.perf_counter()
        self._end: float | None = None  # set at on_run_end
        self._spans: list[Span] = []
        self._open: dict[int, tuple[Hashable, float]] = {}  # worker -> (key, start) of its running attempt
        self._lane_end: dict[int, float] = {}  # worker -> end of its last span (processes)
        self._attempts: dict[Hashable, int] = {}

    def __repr__(self) -> str:
        return f"<Trace: {len(self._spans)} attempts on {self.workers} workers ({self.backend})>"

    # -- events -----------------------------------------------------------------------------

    def on_run_start(self, info: RunInfo) -> None:
        with self._lock:
            self._clear(info)

    def on_task_start(self, key: Hashable, worker: int) -> None:
        if self.backend != "processes":  # there the start is only known from the reply
            now = time.perf_counter() - self._t0
            with self._lock:
                self._open[worker] = (key, now)

    def on_task_end(self, key: Hashable, worker: int, elapsed_s: float, error: BaseException | None) -> None:
        now = time.perf_counter() - self._t0
        elapsed = max(float(elapsed_s), 0.0)
        with self._lock:
            opened = self._open.pop(worker, None)
            if opened is not None and opened[0] == key:
                start = opened[1]
                end = start + elapsed
            else:  # processes (or a start this Trace did not see)
                start = max(now - elapsed, self._lane_end.get(worker, 0.0))
                end = now
            self._lane_end[worker] = end
            attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
            self._spans.append(Span(key, worker, start, end, elapsed, attempt,
                                    None if error is None else type(error).__name__))

    def on_run_end(self, result: Any, error: BaseException | None) -> None:
        with self._lock:
            self._end = time.perf_counter() - self._t0

    # -- what was recorded --------------------------------------------------------------------

    @property
    def spans(self) -> list[Span]:
        """Every attempt recorded in the last run, in order of start (a new list)."""
        with self._lock:
            spans = list(self._spans)
        spans.sort(key=lambda s: (s.start, s.worker))
        return spans

    @property
    def wall_s(self) -> float:
        """Seconds from the run's start to its end (to the last recorded end while it runs)."""
        with self._lock:
            if self._end is not None:
                return self._end
            return max((s.end for s in self._spans), default=0.0)

    def critical_path(self) -> list[Span]:
        """The attempts whose end-to-start links decided the wall time, in time order, ending
        with the attempt that ended last (see :mod:`ftdag.trace`); empty if nothing ran.

        Raises ``ValueError`` if the Trace was given a graph that lacks a recorded key."""
        return _critical_path(self.spans, self.dag)

    def summary(self, top: int = 5, *, show: bool = True, file: TextIO | None = None) -> TraceSummary:
        """Wall time, busy time per worker, utilisation, the ``top`` longest attempts and the
        critical path, as a :class:`TraceSummary`; printed to ``file`` (default
        ``sys.stdout``) unless ``show`` is False."""
        if not isinstance(top, int) or isinstance(top, bool) or top < 0:
            raise ValueError(f"summary(top=...) must be an int >= 0, got {top!r}")
        spans = self.spans
        wall = self.wall_s
        workers = max([self.workers, *(s.worker + 1 for s in spans)])
        busy = [0.0] * workers
        for s in spans:
            busy[s.worker] += s.elapsed
        utilisation = min(sum(busy) / (workers * wall), 1.0) if workers and wall > 0 else 0.0
        longest = sorted(spans, key=lambda s: (-s.elapsed, s.start))[:top]
        path = _critical_path(spans, self.dag)
        result = TraceSummary(
            backend=self.backend, workers=workers, wall_s=wall, busy_s=tuple(busy), utilisation=utilisation,
            attempts=len(spans), failed=sum(s.error is not None for s in spans), longest=tuple(longest),
            critical_path=tuple(path), critical_path_s=sum(s.duration for s in path), exact=self.dag is not None,
        )
        if show:
            print(result, file=sys.stdout if file is None else file)
        return result

    # -- output -------------------------------------------------------------------------------

    def chrome_trace(self) -> dict[str, Any]:
        """The run in the Chrome Trace Event format, as a JSON-ready dict: one complete event
        (``"ph": "X"``, ``ts`` and ``dur`` in microseconds since the run started) per attempt,
        named by its key, on the lane (``tid``) of its worker; metadata events (``"ph": "M"``)
        name the run and each lane (``worker N``)."""
        spans = self.spans
        workers = max([self.workers, *(s.worker + 1 for s in spans)])
        events: list[dict[str, Any]] = [
            {"name": "process_name", "ph": "M", "pid": _PID, "tid": 0,
             "args": {"name": f"ftdag run ({self.backend}, {workers} workers)"}},
        ]
        for w in range(workers):
            events.append({"name": "thread_name", "ph": "M", "pid": _PID, "tid": w, "args": {"name": f"worker {w}"}})
            events.append({"name": "thread_sort_index", "ph": "M", "pid": _PID, "tid": w, "args": {"sort_index": w}})
        for s in spans:
            start = _us(s.start)  # and the end rounded alike, so that touching spans still touch
            args: dict[str, Any] = {"key": repr(s.key), "attempt": s.attempt, "elapsed_s": s.elapsed}
            if s.error is not None:
                args["error"] = s.error
            events.append({
                "name": s.name, "cat": "task" if s.error is None else "task,failed", "ph": "X",
                "ts": start, "dur": round(_us(s.end) - start, 3), "pid": _PID, "tid": s.worker, "args": args,
            })
        return {
            "traceEvents": events,
            "displayTimeUnit": "ms",
            "otherData": {"producer": "ftdag", "backend": self.backend, "workers": workers, "wall_s": self.wall_s},
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`chrome_trace` as JSON to ``path`` (open it in Perfetto or
        ``chrome://tracing``); returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.chrome_trace(), indent=None, separators=(",", ":")) + "\n")
        return path

    def plot(self, path: str | os.PathLike[str], *, title: str | None = None, dpi: int = 120) -> Path:
        """Draw the run's timeline to ``path`` (PNG, or any format matplotlib knows by the
        suffix): one row per worker, the attempts as bars, the critical path highlighted and
        failed attempts in red.  Needs matplotlib (the ``ftdag[plot]`` extra): ``ImportError``
        naming it otherwise.  Returns the path."""
        from ._trace_plot import draw

        summary = self.summary(top=0, show=False)
        return draw(Path(path), self.spans, summary, title=title, dpi=dpi)


def _name(key: Hashable) -> str:
    return key if isinstance(key, str) else repr(key)


def _failed(s: Span) -> str:
    return "" if s.error is None else f"  (attempt {s.attempt} failed: {s.error})"


def _us(seconds: float) -> float:
    return round(seconds * 1e6, 3)


def _critical_path(spans: list[Span], dag: Dag | None) -> list[Span]:
    """The critical path of ``spans`` (in order of start): see :mod:`ftdag.trace`."""
    if not spans:
        return []
    last = max(spans, key=lambda s: (s.end, s.start))
    path = [last]
    if dag is not None:
        succeeded: dict[Hashable, Span] = {}
        attempts: dict[tuple[Hashable, int], Span] = {}
        for s in spans:
            attempts[(s.key, s.attempt)] = s
            if s.error is None:
                succeeded[s.key] = s
        current = last
        while True:
            key = current.key
            if key not in dag:
                raise ValueError(
                    f"Trace: the run's task {key!r} is not in the graph the Trace was given "
                    f"({dag!r}); give Trace the graph the run ran"
                )
            candidates = [succeeded[d] for d in (*dag.dependencies(key), *dag.order_dependencies(key))
                          if d in succeeded]
            previous = attempts.get((key, current.attempt - 1))
            if previous is not None:
                candidates.append(previous)
            if not candidates:
                break
            current = max(candidates, key=lambda s: s.end)
            path.append(current)
    else:
        by_end = sorted(spans, key=lambda s: (s.end, s.start))
        ends = [s.end for s in by_end]
        current, limit = last, len(by_end)
        while True:
            # the latest span that ended at or before ``current`` started (and is not ``current``)
            i = bisect.bisect_right(ends, current.start, 0, limit)
            while i > 0 and by_end[i - 1] is current:
                i -= 1
            if i == 0:
                break
            current, limit = by_end[i - 1], i - 1
            path.append(current)
    path.reverse()
    return path
