"""The sequential backend: a plan's tasks on the calling thread, one at a time.

It is the reference the parallel backends are tested against, the body of
:meth:`~ftdag.Executor.run_sequential`, and what a nested ``run()`` from inside a worker
thread uses.

A plain run (see :mod:`ftdag._context`) runs the tasks in topological order, in one loop
that touches nothing but the plan.  A run with a :class:`~ftdag._context.RunContext` runs
the same model as the parallel backends, with one worker: ready tasks in the order of
:class:`~ftdag._runstate.ReadyStack`, retries that wait for their time while other ready
tasks run, keep-going and stopping as the context decides.  When nothing is ready but a
retry waits, it sleeps until the retry is due (woken early by a cancel token).
"""

from __future__ import annotations

import threading
import time

from ._attempt import SaveFailed, run_attempt
from ._context import CONTINUE, RETRY_NOW, STOP, RunContext, TaskContext, register_frame
from ._plan import Plan
from ._runstate import RunState
from .errors import _task_failed


def run_plan(plan: Plan, ctx: RunContext | None = None) -> dict[str, int]:
    """Execute ``plan`` in place; raise :class:`TaskError` on the first failing task (plain
    runs; with ``ctx``, see :func:`_run_with_context`)."""
    if ctx is not None:
        return _run_with_context(plan, ctx)
    dag = plan.dag
    fns, start, dep_ids, keys = dag._fns, dag._dep_start, dag._dep_ids, dag._keys
    values, consumers = plan.values, plan.consumers
    for i in plan.tasks:  # ids are topological, so every dependency is already computed
        a = start[i]
        b = start[i + 1]
        if b - a == 1:  # the common case (chains, maps): no argument list, no slice
            d = dep_ids[a]
            try:
                values[i] = fns[i](values[d])
            except Exception as exc:
                raise _task_failed(keys[i], exc) from exc
            left = consumers[d] - 1
            consumers[d] = left
            if not left:
                values[d] = None
            continue
        ds = dep_ids[a:b]
        try:
            values[i] = fns[i](*[values[d] for d in ds])
        except Exception as exc:
            raise _task_failed(keys[i], exc) from exc
        for d in ds:
            left = consumers[d] - 1
            consumers[d] = left
            if not left:
                values[d] = None
    return {"workers": 1}


def _read_frame(frame) -> TaskContext:
    """current_task() in a plain sequential run: the task is ``i`` of :func:`run_plan`."""
    plan = frame.f_locals["plan"]
    return TaskContext(plan.dag._keys[frame.f_locals["i"]], 1, lambda: False)


register_frame(run_plan.__code__, _read_frame)


def _run_with_context(plan: Plan, ctx: RunContext) -> dict[str, int]:
    """One worker running the shared model (module docstring); the caller raises from ``ctx``."""
    state = RunState(plan, 1)
    dag = plan.dag
    fns, deps = dag._fns, dag._deps
    values, ready = plan.values, state.ready
    stopped = lambda: state.stopped or ctx.halted()
    woken = threading.Event()
    ctx.watch(woken.set)
    try:
        while state.pending:
            if ctx.halted():
                state.stopped = True
            if state.stopped:
                break
            if not ready:
                due = ctx.next_due()
                if due is None:
                    break  # (cannot happen: pending tasks are ready, retrying or running)
                woken.wait(max(0.0, due - time.monotonic()))
                ready.push(ctx.release_due(time.monotonic()))
                continue
            task = ready.pop()
            ds = deps[task]
            try:
                result = run_attempt(ctx, task, fns[task], [values[d] for d in ds], stopped, 0)
            except BaseException as exc:
                if isinstance(exc, SaveFailed):
                    action = ctx.failure(plan, task, exc.error.__cause__ or exc.error, exc.error, retryable=False)
                else:
                    action = ctx.failure(plan, task, exc)
                if action == STOP:
                    if not isinstance(exc, Exception):
                        raise
                    state.stopped = True
                elif action == RETRY_NOW:
                    ready.push([task])
                elif action == CONTINUE:
                    state.pending -= ctx.settled
                continue
            made = plan.finish(task, result)
            result = None
            ctx.succeeded(plan, task)
            state.pending -= 1
            if made:
                ready.push(made)
    finally:
        ctx.unwatch()
    ctx.drop_timers()
    return {"workers": 1}
