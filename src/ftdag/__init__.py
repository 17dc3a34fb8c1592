"""ftdag: a DAG executor for CPU-heavy Python pipelines, built for free-threaded CPython.

Declare a graph of named sources and tasks, request the outputs you need, and ftdag runs
only their ancestors, each exactly once, in parallel with explicit bounds::

    import ftdag

    b = ftdag.DagBuilder()
    b.add_source("a", 1)
    b.add_source("b", 2)
    b.add_task("c", ["a", "b"], lambda a, b: a + b)
    dag = b.build()
    with ftdag.Executor() as ex:
        assert ex.run(dag, ["c"])["c"] == 3

On a free-threaded build with the GIL off, the default backend runs tasks on worker threads
that share results by reference; elsewhere it uses worker processes.

``ftdag.get`` (a dask scheduler) and ``ftdag.from_dask`` live in :mod:`ftdag._dask` and are
looked up on first access (:func:`__getattr__`), so that ``import ftdag`` imports neither that
module nor dask (an optional dependency, the ``ftdag[dask]`` extra).
"""

from typing import TYPE_CHECKING, Any

from ._context import CancelToken, TaskContext, current_task
from ._options import TaskOptions
from .callbacks import Callback, CallbackWarning, RunInfo
from .config import Backend, ExecutorConfig, OnError, available_cpus
from .errors import (
    AccessError,
    BuildError,
    CycleError,
    DuplicateKeyError,
    EmptyGraphError,
    MissingDependencyError,
    OrderError,
    ResourceError,
    RunCancelledError,
    RunFailedError,
    RunTimeoutError,
    SerializationError,
    TaskError,
    TaskTimeoutError,
    UnknownKeyError,
    UnknownOutputError,
    WorkerCrashedError,
)
from .executor import Executor, gil_enabled
from .graph import Dag, DagBuilder
from .pipeline import Pipeline
from .progress import ProgressBar
from .results import RunResult, RunStats
from .store import MISSING, CorruptRecordWarning, DirectoryStore, MemoryStore, SQLiteStore, Store
from .trace import Span, Trace, TraceSummary

if TYPE_CHECKING:
    from ._dask import from_dask, get

__version__ = "0.1.0"

__all__ = [
    "AccessError",
    "Backend",
    "BuildError",
    "Callback",
    "CallbackWarning",
    "CancelToken",
    "CorruptRecordWarning",
    "CycleError",
    "Dag",
    "DagBuilder",
    "DirectoryStore",
    "DuplicateKeyError",
    "EmptyGraphError",
    "Executor",
    "ExecutorConfig",
    "MISSING",
    "MemoryStore",
    "MissingDependencyError",
    "OnError",
    "OrderError",
    "Pipeline",
    "ProgressBar",
    "ResourceError",
    "RunCancelledError",
    "RunFailedError",
    "RunInfo",
    "RunResult",
    "RunStats",
    "RunTimeoutError",
    "SQLiteStore",
    "SerializationError",
    "Span",
    "Store",
    "TaskContext",
    "TaskError",
    "TaskOptions",
    "TaskTimeoutError",
    "Trace",
    "TraceSummary",
    "UnknownKeyError",
    "UnknownOutputError",
    "WorkerCrashedError",
    "available_cpus",
    "current_task",
    "from_dask",
    "get",
    "gil_enabled",
]

_LAZY = {"get", "from_dask"}  # names of ftdag._dask, imported on first access


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import _dask

        value = globals()[name] = getattr(_dask, name)
        return value
    raise AttributeError(f"module 'ftdag' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)
