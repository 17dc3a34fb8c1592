"""The comparison's chart: speed-up over the GIL build's plain loop, one panel per workload.

    python benchmarks/chart.py RESULTS_JSON PNG

:func:`make_chart` draws it by running this script in a bench venv that has matplotlib (the
orchestrating Python need not have it); :func:`draw` imports matplotlib only when called, and
reads everything from ``results.json`` (the table's rows and the reference's label).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from records import Row  # noqa: E402


def draw(json_path: Path, png_path: Path) -> None:
    """Bars by interpreter and runner; a log scale where the speed-ups span more than 20×."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    doc = json.loads(Path(json_path).read_text())
    rows = [Row.from_json(r) for r in doc["summary"]]
    interps = [i["label"] for i in doc["interpreters"]]
    ref = doc["reference"]["label"]
    runners = ["plain"] + list(doc["settings"]["runners"])
    wls = doc["settings"]["workloads"]
    ncols = 3 if len(wls) > 4 else max(1, len(wls))
    nrows = -(-len(wls) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.9 * nrows), squeeze=False)
    cmap = plt.get_cmap("tab10")
    width = 0.8 / len(runners)
    times = FuncFormatter(lambda v, _: f"{v:g}×")

    for ax, w in zip(axes.flat, wls):
        mine = {(r.interpreter, r.runner): r for r in rows if r.workload == w}
        title = next((r.title for r in mine.values()), w)
        values = [r.speedup_vs_gil for r in mine.values() if r.ok and r.speedup_vs_gil]
        for k, runner in enumerate(runners):
            xs, ys = [], []
            for g, label in enumerate(interps):
                r = mine.get((label, runner))
                x = g + (k - (len(runners) - 1) / 2) * width
                if r and r.ok and r.speedup_vs_gil:
                    xs.append(x)
                    ys.append(r.speedup_vs_gil)
                elif r is not None:
                    ax.text(x, 0.02, "n/a", rotation=90, ha="center", va="bottom", fontsize=6, color="grey",
                            transform=ax.get_xaxis_transform())
            ax.bar(xs, ys, width, label=runner, color=cmap(k % 10))
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xticks(range(len(interps)))
        ax.set_xticklabels(interps)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(f"speed-up vs {ref} plain loop")
        if values and max(values) / min(values) > 20:  # e.g. the no-op chain: only a log scale shows every bar
            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_title(title + " (log scale)", fontsize=10)
        ax.yaxis.set_major_formatter(times)
        ax.grid(axis="y", alpha=0.3, which="both")
    for ax in list(axes.flat)[len(wls):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(runners), fontsize=8, frameon=False)
    m = doc["machine"]
    fig.suptitle(f"ftdag and peers: speed-up over the plain loop on Python {ref} (GIL), higher is better — "
                 f"{doc['settings']['workers']} workers, {m['cpu_count']} CPUs, {doc['mode']} mode, {doc['date'][:10]}",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    fig.savefig(png_path, dpi=110)


def make_chart(interpreters, json_path: Path, png_path: Path, env: dict[str, str] | None = None,
               script: str = "chart.py") -> str:
    """Draw the chart with the first bench venv that has matplotlib; return what happened, for the report.
    ``script``: this folder's script that draws it (``scale.py`` draws ``scale.png`` with ``--chart``)."""
    venvs = [i.bench for i in interpreters if i.bench is not None]
    venv = next((v for v in venvs if v.packages.get("matplotlib")), None)
    if venv is None:
        reasons = [v.matplotlib_error for v in venvs if v.matplotlib_error]
        return ("chart skipped: matplotlib could not be installed in the GIL bench venv"
                + (f" ({reasons[0][:200]})" if reasons else "") + "; the table and JSON are complete")
    argv = [str(json_path), str(png_path)] if script == "chart.py" else ["--chart", str(json_path), str(png_path)]
    proc = subprocess.run([venv.python, str(HERE / script), *argv],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env)
    if proc.returncode:
        tail = " ".join((proc.stderr or "").strip().splitlines()[-2:])
        return f"chart failed: {tail[:300]}; the table and JSON are complete"
    return f"chart: {png_path}"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python benchmarks/chart.py RESULTS_JSON PNG")
    draw(Path(sys.argv[1]), Path(sys.argv[2]))
