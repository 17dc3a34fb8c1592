"""The sequential backend: a plan's tasks in topological order on the calling thread.

It is the reference the parallel backends are tested against, the body of
:meth:`~ftdag.Executor.run_sequential`, and what a nested ``run()`` from inside a worker
thread uses.
"""

from __future__ import annotations

from ._plan import Plan
from .errors import _task_failed


def run_plan(plan: Plan) -> dict[str, int]:
    """Execute ``plan`` in place; raise :class:`TaskError` on the first failing task."""
    dag = plan.dag
    fns, deps, keys = dag._fns, dag._deps, dag._keys
    values, consumers = plan.values, plan.consumers
    for i in plan.tasks:  # ids are topological, so every dependency is already computed
        ds = deps[i]
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
