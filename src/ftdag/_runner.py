"""A run that is not plain, from its policy to its result: the one sequence every backend shares.

:func:`run_with_context` makes the run's :class:`~ftdag._context.RunContext` from its
:class:`~ftdag._policy.RunPolicy`, then, in order: checks the resources its tasks ask for
(:mod:`ftdag._admission`), loads what the store holds and plans what is left
(:mod:`ftdag._resume`), hands out the outputs that are ready at once (a streaming run,
:mod:`ftdag._streams`), reports ``on_run_start``, runs the plan on the backend, and turns the
context's state into the result or the exception (:func:`outcome`), reporting ``on_run_end``
with both.  Plain runs never come here (:meth:`ftdag.Executor._execute`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

from . import _sequential
from ._admission import Admission, check_capacities
from ._context import RunContext
from ._plan import Plan
from ._policy import RunPolicy
from .callbacks import RunInfo
from .errors import RunCancelledError, RunTimeoutError
from .results import RunResult, RunStats

if TYPE_CHECKING:
    from .executor import Executor

__all__ = ["admission_for", "outcome", "run_with_context"]


def admission_for(plan: Plan, capacities: Mapping[str, int]) -> Admission | None:
    """The admission state of a guarded plan's run, after checking that every resource its
    tasks ask for is declared with enough units (:class:`~ftdag.ResourceError`); None if the
    plan is not guarded."""
    if not plan.template.guarded:
        return None
    dag = plan.dag
    check_capacities(plan.tasks, dag._keys, dag._resources, capacities)
    return Admission(dag._resources, dag._access, capacities)


def run_with_context(
    executor: Executor, plan: Plan, policy: RunPolicy, backend: str, start: float,
    emit: Callable[[Hashable, Any], None] | None = None,
) -> RunResult:
    """Run ``plan`` with a context (see the module docstring)."""
    admission = admission_for(plan, executor.config.resources)  # may raise, before anything runs
    ctx = RunContext(plan, policy)
    if ctx.store is not None:
        from . import _resume

        plan = _resume.prepare(plan, ctx, ctx.store)
    if emit is not None:
        ctx.stream(plan, emit)
    callbacks = ctx.callbacks
    if callbacks is not None:
        keys = plan.dag._keys
        planned = tuple(keys[i] for i in plan.dag._closure(plan.outputs, plan.given))
        workers = 1 if backend == "sequential" else executor.config.max_workers
        callbacks.run_start(RunInfo(planned, len(planned), backend, workers, len(plan.tasks)))
    try:
        if backend == "sequential":  # one task at a time: nothing to admit
            counters = _sequential.run_plan(plan, ctx)
        else:
            counters = executor._pool(backend).run(plan, ctx, admission)
    except BaseException as exc:
        if callbacks is not None:
            callbacks.run_end(None, exc)
        raise
    result, error = outcome(plan, ctx, backend, start, counters)
    if callbacks is not None:
        callbacks.run_end(result, error)
    if error is not None:
        raise error
    return result


def outcome(
    plan: Plan, ctx: RunContext, backend: str, start: float, counters: dict[str, int],
) -> tuple[RunResult, BaseException | None]:
    """The result of a run with a context, and the exception ``run()`` raises (None if it
    returns): the first failure of a fail-fast run, or the cancellation or timeout of a
    stopped one, which carries the result as ``.result``."""
    wall = time.perf_counter() - start
    outputs, failed, skipped = ctx.report(plan)
    stats = RunStats(
        executed=plan.executed,
        pruned=len(plan.dag) - plan.executed,
        backend=backend,
        wall_s=wall,
        **counters,
        **ctx.counters(),
        failed=len(failed or ()),
        skipped=len(skipped),
    )
    result = RunResult(outputs, stats, failed, skipped)
    if ctx.reason == "failed" and ctx.on_error == "fail_fast":
        return result, ctx.first_error()
    if ctx.reason == "cancelled":
        return result, RunCancelledError("the run was cancelled (its CancelToken was cancelled)", result)
    if ctx.reason == "timeout":
        return result, RunTimeoutError("the run reached its timeout", result)
    return result, None
