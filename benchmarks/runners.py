"""The runners the benchmark compares: each executes a :class:`workloads.Workload` and returns its outputs.

``plain``               the reference: a loop calling the task functions in topological order,
                        results in a dict keyed by node key.  Zero scheduling overhead, no parallelism.
``ftdag-sequential``    ``ftdag.Executor`` with ``backend="sequential"``.
``ftdag-threads``       ``ftdag.Executor`` with ``backend="threads"``.
``ftdag-processes``     ``ftdag.Executor`` with ``backend="processes"``.
``dask-threaded``       ``dask.threaded.get`` (dask is imported only by this runner).
``graphlib-threads``    ``graphlib.TopologicalSorter`` feeding a ``ThreadPoolExecutor``.
``graphlib-processes``  ``graphlib.TopologicalSorter`` feeding a ``ProcessPoolExecutor``.

A runner is made by :func:`make_runner` (which raises :class:`RunnerUnavailable` if an optional
dependency is missing), then ``prepare(workload)`` (untimed set-up, e.g. building the ftdag
``Dag`` or dask graph), then ``run(workload)`` (or the bare callable ``call(workload)`` returns) any
number of times, then ``close()``.  Pools are created once per runner and reused by every ``run``,
as a long-lived application would.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Hashable
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures import Executor as _FuturesExecutor
from typing import Any

__all__ = ["RUNNERS", "RunnerUnavailable", "ResultMismatch", "check_same", "gil_enabled", "make_runner", "run_plain"]

RUNNERS = (
    "plain",
    "ftdag-sequential",
    "ftdag-threads",
    "ftdag-processes",
    "dask-threaded",
    "graphlib-threads",
    "graphlib-processes",
)


class RunnerUnavailable(RuntimeError):
    """The runner cannot be used here (an optional dependency is not installed)."""


class ResultMismatch(AssertionError):
    """A runner's outputs differ from the plain loop's."""


def gil_enabled() -> bool:
    """Whether the GIL is on right now (always True before 3.13)."""
    fn = getattr(sys, "_is_gil_enabled", None)
    return True if fn is None else bool(fn())


def run_plain(wl, steps=None) -> dict[Hashable, Any]:
    """The reference: call every task function in topological order; outputs keyed by node key."""
    values = dict(wl.sources)
    for key, fn, deps in (steps if steps is not None else wl.steps()):
        values[key] = fn(*[values[d] for d in deps])
    return {k: values[k] for k in wl.outputs}


def check_same(runner: str, got: Any, expected: dict[Hashable, Any]) -> None:
    """Raise :class:`ResultMismatch` unless ``got`` equals the plain loop's outputs."""
    got = dict(got)
    if got != expected:
        wrong = sorted(str(k) for k in set(got) | set(expected) if got.get(k) != expected.get(k))
        raise ResultMismatch(f"{runner}: outputs differ from the plain loop's at {len(wrong)} keys, e.g. {wrong[:3]}")


class Runner:
    name = "?"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.last_stats: dict[str, Any] | None = None
        self.info: dict[str, Any] = {}

    def prepare(self, wl) -> None:
        pass

    def run(self, wl) -> dict[Hashable, Any]:
        raise NotImplementedError

    def call(self, wl) -> Callable[[], Any]:
        """One run of ``wl`` as a zero-argument callable, without the bookkeeping :meth:`run` adds
        (outputs as a dict, ftdag's stats): what the small-graph timing calls thousands of times."""
        return functools.partial(self.run, wl)

    def close(self) -> None:
        pass


class Plain(Runner):
    name = "plain"

    def prepare(self, wl) -> None:
        self._steps = wl.steps()

    def run(self, wl):
        return run_plain(wl, self._steps)

    def call(self, wl):
        return functools.partial(run_plain, wl, self._steps)


class Ftdag(Runner):
    def __init__(self, workers: int, backend: str) -> None:
        super().__init__(workers)
        import ftdag

        self.name = f"ftdag-{backend}"
        self.backend = backend
        self.ex = ftdag.Executor(ftdag.ExecutorConfig(max_workers=workers, backend=backend))
        self.info = {"ftdag_version": ftdag.__version__, "config": repr(self.ex.config)}

    def prepare(self, wl) -> None:
        self._dag = wl.dag()

    def run(self, wl):
        res = self.ex.run(self._dag, wl.outputs)
        st = res.stats
        self.last_stats = {f: getattr(st, f) for f in
                           ("executed", "pruned", "backend", "wall_s", "workers", "peak_in_flight", "peak_queue_len", "steals")}
        return dict(res)

    def call(self, wl):
        return functools.partial(self.ex.run, self._dag, wl.outputs)

    def close(self) -> None:
        self.ex.close()


class DaskThreaded(Runner):
    name = "dask-threaded"

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        try:
            import dask
            import dask.threaded
        except ImportError as exc:
            raise RunnerUnavailable(f"dask is not installed ({exc})") from None
        self._get = dask.threaded.get
        self.info = {"dask_version": dask.__version__}

    def prepare(self, wl) -> None:
        dsk: dict[Hashable, Any] = dict(wl.sources)
        for key in wl.order:
            fn, deps = wl.tasks[key]
            dsk[key] = (fn, *deps)
        self._dsk = dsk

    def run(self, wl):
        values = self._get(self._dsk, list(wl.outputs), num_workers=self.workers)
        return dict(zip(wl.outputs, values))


class Graphlib(Runner):
    """``graphlib.TopologicalSorter`` + a ``concurrent.futures`` pool: the stdlib way."""

    def __init__(self, workers: int, kind: str) -> None:
        super().__init__(workers)
        self.name = f"graphlib-{kind}"
        if kind == "threads":
            from concurrent.futures import ThreadPoolExecutor

            self.pool: _FuturesExecutor = ThreadPoolExecutor(max_workers=workers)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # forkserver, as ftdag uses: the default fork is unsafe in a process with threads
            # (3.12+ warns; 3.14 makes forkserver the default on Linux).
            method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
            self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))
            self.info = {"start_method": method}

    def prepare(self, wl) -> None:
        self._graph = {k: wl.tasks[k][1] for k in wl.order}
        for k in wl.sources:
            self._graph[k] = ()

    def run(self, wl):
        from graphlib import TopologicalSorter

        sources, tasks, submit = wl.sources, wl.tasks, self.pool.submit
        ts = TopologicalSorter(self._graph)
        ts.prepare()
        values = dict(sources)
        running: dict = {}
        while ts.is_active():
            for key in ts.get_ready():
                if key in sources:
                    ts.done(key)
                    continue
                fn, deps = tasks[key]
                running[submit(fn, *[values[d] for d in deps])] = key
            if not running:
                continue  # only sources became ready: ask again
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                key = running.pop(fut)
                values[key] = fut.result()
                ts.done(key)
        return {k: values[k] for k in wl.outputs}

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def make_runner(name: str, workers: int) -> Runner:
    """A new runner; raises :class:`RunnerUnavailable` for a missing optional dependency."""
    factories = {
        "plain": Plain,
        "ftdag-sequential": lambda w: Ftdag(w, "sequential"),
        "ftdag-threads": lambda w: Ftdag(w, "threads"),
        "ftdag-processes": lambda w: Ftdag(w, "processes"),
        "dask-threaded": DaskThreaded,
        "graphlib-threads": lambda w: Graphlib(w, "threads"),
        "graphlib-processes": lambda w: Graphlib(w, "processes"),
    }
    if name in factories:
        return factories[name](workers)
    raise KeyError(f"unknown runner {name!r}; choose from {', '.join(RUNNERS)}")
