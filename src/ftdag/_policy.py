"""A run's policy: the keyword options of :meth:`ftdag.Executor.run`, validated once.

``run(dag, outputs, *, on_error, max_failures, cancel, timeout, store, callbacks)`` and the
methods that take the same options (``run_sequential``, ``as_completed``, ``submit``,
``run_async``) turn them into a :class:`RunPolicy` with :func:`run_policy`, before anything
runs, so that every bad value raises at the call, naming the option.  A run whose policy is
``None`` (fail fast, nothing else) is *plain*: it may take the schedulers' plain paths
(:mod:`ftdag._context`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._context import CancelToken
from .callbacks import Callback, check_callbacks
from .config import check_on_error

__all__ = ["RUN_OPTIONS", "RunPolicy", "policy_from_options", "run_policy"]

RUN_OPTIONS = ("on_error", "max_failures", "cancel", "timeout", "store", "callbacks", "progress")


@dataclass(frozen=True)
class RunPolicy:
    """The options of a run that is not plain (see the module docstring)."""

    on_error: str = "fail_fast"
    max_failures: int | None = None
    cancel: CancelToken | None = None
    timeout: float | None = None
    store: Any = None
    callbacks: tuple[Callback, ...] = ()


def run_policy(
    on_error: str, max_failures: int | None = None, cancel: CancelToken | None = None, timeout: float | None = None,
    store: Any = None, callbacks: Sequence[Callback] = (),
) -> RunPolicy | None:
    """The validated policy, or None for a plain fail-fast run."""
    if (on_error == "fail_fast" and max_failures is None and cancel is None and timeout is None and store is None
            and not callbacks):
        return None  # (the common case, checked first: every run pays for this function)
    check_on_error("on_error", on_error)
    if max_failures is not None:
        if isinstance(max_failures, bool) or not isinstance(max_failures, int):
            raise TypeError(f"max_failures must be None or an int, got {type(max_failures).__name__}: {max_failures!r}")
        if max_failures < 1:
            raise ValueError(f"max_failures must be >= 1, got {max_failures}")
        if on_error != "keep_going":
            raise ValueError(f"max_failures={max_failures} needs on_error='keep_going' (fail_fast stops at the first failure)")
    if cancel is not None and not isinstance(cancel, CancelToken):
        raise TypeError(f"cancel must be an ftdag.CancelToken, got {type(cancel).__name__}: {cancel!r}")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be None or a number of seconds, got {type(timeout).__name__}: {timeout!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    if store is not None:
        missing = [m for m in ("load", "save", "delete", "clear", "__len__") if not callable(getattr(store, m, None))]
        if missing:
            raise TypeError(
                f"store must be a result store (ftdag.MemoryStore, DirectoryStore, SQLiteStore, or an object with "
                f"load, save, delete, clear and __len__); {type(store).__name__} lacks {', '.join(missing)}"
            )
    return RunPolicy(on_error, max_failures, cancel, timeout, store, tuple(callbacks))


def policy_from_options(
    options: Mapping[str, Any], default_on_error: str, executor_callbacks: Sequence[Callback] = (),
) -> RunPolicy | None:
    """:func:`run_policy` of ``run()``'s keyword options given as a mapping (by the methods
    that pass them on); unknown names are a ``TypeError`` naming them."""
    unknown = sorted(set(options) - set(RUN_OPTIONS))
    if unknown:
        raise TypeError(
            f"unexpected keyword argument(s) {', '.join(map(repr, unknown))}; the run options are "
            f"{', '.join(RUN_OPTIONS)}"
        )
    on_error = options.get("on_error")
    return run_policy(
        default_on_error if on_error is None else on_error, options.get("max_failures"), options.get("cancel"),
        options.get("timeout"), options.get("store"),
        with_progress(tuple(executor_callbacks) + check_callbacks(options.get("callbacks")),
                      options.get("progress", False)),
    )


def with_progress(callbacks: tuple[Callback, ...], progress: object) -> tuple[Callback, ...]:
    """``callbacks``, and a :class:`~ftdag.ProgressBar` at the end if ``progress`` is true."""
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {type(progress).__name__}: {progress!r}")
    if not progress:
        return callbacks
    from .progress import ProgressBar

    return (*callbacks, ProgressBar())
