"""The timeline picture of :meth:`ftdag.Trace.plot`, drawn with matplotlib (imported here, on
first use: it is the optional ``ftdag[plot]`` extra).

One row per worker, worker 0 on top; each attempt a bar from its start to its end, labelled
with its key when the label fits; the critical path in orange, failed attempts in
red.  The figure is a bare :class:`matplotlib.figure.Figure` rendered by Agg: no pyplot, so no
global state, no GUI backend, and safe to call from any thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .trace import Span, TraceSummary

_EXTRA_HINT = "pip install 'ftdag[plot]'"
_TASK, _CRITICAL, _FAILED = "#4c72b0", "#dd8452", "#c44e52"
_FONT_SIZE = 7  # labels, in points
_WIDTH_IN = 11  # the figure's width, in inches


def _figure_class() -> Any:
    try:
        import matplotlib  # noqa: F401  (first, so that a blocked or missing matplotlib fails here)
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"Trace.plot() needs matplotlib, which is not installed: {_EXTRA_HINT}") from exc
    return Figure


def draw(path: Path, spans: list[Span], summary: TraceSummary, *, title: str | None, dpi: int) -> Path:
    """Draw ``spans`` (described by ``summary``) to ``path``; return ``path``."""
    figure_class = _figure_class()
    from matplotlib.patches import Patch

    workers = max(summary.workers, 1)
    wall = max(summary.wall_s, max((s.end for s in spans), default=0.0))
    span_x = wall if wall > 0 else 1.0
    critical = set(summary.critical_path)  # spans are frozen dataclasses: hashable, equal if the same attempt
    fig = figure_class(figsize=(_WIDTH_IN, 1.2 + 0.55 * workers), dpi=dpi, layout="constrained")
    axes_px = 0.85 * _WIDTH_IN * dpi  # about: the y labels take the rest
    char_px = 0.55 * _FONT_SIZE * dpi / 72  # about, for the default sans-serif
    ax = fig.subplots()
    bars: dict[tuple[int, str], list[tuple[float, float]]] = {}  # one collection per row and colour
    for s in spans:
        color = _FAILED if s.error is not None else _CRITICAL if s in critical else _TASK
        bars.setdefault((s.worker, color), []).append((s.start, max(s.duration, 0.0)))
        if s.duration / span_x * axes_px >= len(s.name) * char_px + 2:  # the label fits in the bar
            ax.text(s.start + s.duration / 2, s.worker, s.name, ha="center", va="center", fontsize=_FONT_SIZE,
                    color="white", clip_on=True)
    for (worker, color), ranges in bars.items():
        ax.broken_barh(ranges, (worker - 0.4, 0.8), facecolors=color, edgecolors="white", linewidth=0.6)
    ax.set_yticks(range(workers), [f"worker {w}" for w in range(workers)])
    ax.set_ylim(workers - 0.5, -0.5)  # worker 0 on top
    ax.set_xlim(0, span_x)
    ax.set_xlabel("seconds since the run started")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    if title is None:
        title = (f"ftdag run: {summary.backend}, {summary.workers} workers, wall {summary.wall_s:.3f} s, "
                 f"utilisation {summary.utilisation:.0%}")
    ax.set_title(title, fontsize=10)
    handles = [Patch(color=_TASK, label="task"), Patch(color=_CRITICAL, label="critical path")]
    if any(s.error is not None for s in spans):
        handles.append(Patch(color=_FAILED, label="failed attempt"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    fig.savefig(path)
    return path

