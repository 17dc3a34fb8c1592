"""A progress bar for runs: :class:`ProgressBar`, a callback (:mod:`ftdag.callbacks`).

``ex.run(dag, outputs, callbacks=[ftdag.ProgressBar()])`` shows how many tasks are done out
of the planned total, the rate and the time left, drawn one of three ways, chosen at the
start of each run:

``tqdm``     a ``tqdm`` bar, when tqdm is installed (the ``ftdag[progress]`` extra) and the
             stream is a terminal;
``redraw``   otherwise, on a terminal, one line redrawn in place (``\\r``) at most once per
             ``min_interval`` seconds (10 times a second by default), and once more at the end;
``summary``  on anything that is not a terminal (a log file, a pipe, CI), a single line when
             the run is over instead of a redrawn one.

Counting, from the events a callback sees:

- *total* is :attr:`RunInfo.tasks <ftdag.RunInfo>`: the planned tasks that will run (not
  sources, nor tasks a store loads, which report no events);
- *done* counts the attempts that ended without an error: a task that succeeds counts once,
  however many attempts it took;
- *failed* counts the attempts that ended with an error, a retried one included; it is
  shown apart, and only when there are some.

Task events come from several worker threads at once (:mod:`ftdag.callbacks`): counting and
drawing happen under one lock, so the counts are exact and lines never interleave.  The bar
follows one run at a time: each ``on_run_start`` starts it afresh.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Hashable
from typing import Any, TextIO

from .callbacks import Callback, RunInfo

__all__ = ["ProgressBar"]

_EXTRA_HINT = "pip install 'ftdag[progress]'"


class ProgressBar(Callback):
    """A callback that shows done/total tasks, the rate and the time left (see the module
    docstring for what is counted and how it is drawn).

    ``file``          the stream to draw on; None (the default) is ``sys.stderr`` as it is
                      when each run starts.
    ``disable``       True: count, but draw nothing.
    ``min_interval``  seconds between two redraws (``redraw``; tqdm's ``mininterval``).
    ``use_tqdm``      None (the default): tqdm when it is installed and the stream is a
                      terminal; True: always tqdm (``ImportError`` naming the extra if it is
                      not installed); False: never.
    ``desc``          the label in front of the counts.

    :attr:`done`, :attr:`failed` and :attr:`total` are the counts of the current (or last) run.
    """

    def __init__(
        self, *, file: TextIO | None = None, disable: bool = False, min_interval: float = 0.1,
        use_tqdm: bool | None = None, desc: str = "ftdag",
    ) -> None:
        if not isinstance(min_interval, (int, float)) or isinstance(min_interval, bool) or not min_interval >= 0:
            raise ValueError(f"ProgressBar(min_interval=...) must be a number of seconds >= 0, got {min_interval!r}")
        if use_tqdm not in (None, True, False):
            raise ValueError(f"ProgressBar(use_tqdm=...) must be None, True or False, got {use_tqdm!r}")
        if use_tqdm:
            _import_tqdm()  # fail now, not in the middle of a run
        self.file = file
        self.disable = disable
        self.min_interval = float(min_interval)
        self.use_tqdm = use_tqdm
        self.desc = desc
        self._lock = threading.Lock()
        self._stream: Any = None
        self._mode = "off"  # "off", "tqdm", "redraw" or "summary": how this run is drawn
        self._bar: Any = None  # the run's tqdm bar
        self._start = 0.0
        self._last_draw = -math.inf
        self._width = 0  # how much of the terminal line this run has drawn on (``redraw``)
        self.total = 0
        self.done = 0
        self.failed = 0

    def __repr__(self) -> str:
        return f"<ProgressBar {self.done}/{self.total} done, {self.failed} failed ({self._mode})>"

    @property
    def mode(self) -> str:
        """How the current (or last) run is drawn: ``"tqdm"``, ``"redraw"``, ``"summary"``, or
        ``"off"`` (disabled, or before the first run)."""
        return self._mode

    # -- events -----------------------------------------------------------------------------

    def on_run_start(self, info: RunInfo) -> None:
        stream = sys.stderr if self.file is None else self.file
        with self._lock:
            self._close_bar()  # a run that never reported its end (it cannot happen, but costs nothing)
            self.total, self.done, self.failed = info.tasks, 0, 0
            self._start = time.monotonic()
            self._last_draw = -math.inf
            self._width = 0
            self._stream = stream
            self._mode = self._choose_mode(stream)
            if self._mode == "tqdm":
                tqdm = _import_tqdm()
                self._bar = tqdm(total=info.tasks, file=stream, mininterval=self.min_interval, unit="task",
                                 desc=self.desc, dynamic_ncols=True)
            elif self._mode == "redraw":
                self._redraw(time.monotonic())

    def on_task_end(self, key: Hashable, worker: int, elapsed_s: float, error: BaseException | None) -> None:
        with self._lock:
            if error is None:
                self.done += 1
            else:
                self.failed += 1
            mode = self._mode
            if mode == "tqdm":
                if error is None:
                    self._bar.update(1)
                else:
                    self._bar.set_postfix_str(f"{self.failed} failed", refresh=False)
            elif mode == "redraw":
                now = time.monotonic()
                if now - self._last_draw >= self.min_interval:
                    self._redraw(now)

    def on_run_end(self, result: Any, error: BaseException | None) -> None:
        with self._lock:
            mode = self._mode
            if mode == "tqdm":
                self._close_bar()
            elif mode == "redraw":
                self._redraw(time.monotonic(), final=error)
                self._write("\n")
            elif mode == "summary":
                self._write(self._line(time.monotonic(), final=error) + "\n")

    # -- drawing (under the lock) -----------------------------------------------------------

    def _choose_mode(self, stream: Any) -> str:
        if self.disable:
            return "off"
        if self.use_tqdm:
            return "tqdm"
        tty = _isatty(stream)
        if tty and self.use_tqdm is None and _tqdm_installed():
            return "tqdm"
        return "redraw" if tty else "summary"

    def _line(self, now: float, final: BaseException | None | bool = False) -> str:
        """The text of the bar: counts, rate and the time left; at the end (``final``: the
        run's exception, None, or False while it runs) the time it took instead."""
        elapsed = max(now - self._start, 0.0)
        done, total = self.done, self.total
        text = f"{self.desc}: {done}/{total} done"
        if self.failed:
            text += f", {self.failed} failed"
        rate = done / elapsed if elapsed > 0 else 0.0
        if final is False:
            eta = _duration(max(total - done, 0) / rate) if rate > 0 else "?"
            return f"{text} | {rate:.1f} tasks/s | ETA {eta}"
        text += f" in {_duration(elapsed)} ({rate:.1f} tasks/s)"
        if final is not None:
            text += f"; the run raised {type(final).__name__}"
        return text

    def _redraw(self, now: float, final: BaseException | None | bool = False) -> None:
        line = self._line(now, final)
        pad = max(self._width - len(line), 0)  # blank what is left of a longer line drawn before
        self._write("\r" + line + " " * pad)
        self._width = len(line) + pad
        self._last_draw = now

    def _write(self, text: str) -> None:
        stream = self._stream
        stream.write(text)
        flush = getattr(stream, "flush", None)
        if flush is not None:
            flush()

    def _close_bar(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()


def _duration(seconds: float) -> str:
    """``0.42 s``, ``12.3 s``, ``4:05`` or ``1:02:03``."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _isatty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except (ValueError, OSError):  # a closed or detached stream
        return False


def _tqdm_installed() -> bool:
    try:
        _import_tqdm()
    except ImportError:
        return False
    return True


def _import_tqdm() -> Any:
    """The ``tqdm`` class, imported on first use (tqdm is optional: the ``ftdag[progress]`` extra)."""
    try:
        from tqdm import tqdm
    except ImportError as exc:
        raise ImportError(f"ProgressBar(use_tqdm=True) needs tqdm, which is not installed: {_EXTRA_HINT}") from exc
    return tqdm
