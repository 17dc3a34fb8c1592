#!/usr/bin/env python3
"""The GIL vs no-GIL comparison: every runner on every workload, on the free-threaded and the GIL build.

    python3 benchmarks/compare.py [--full] [--out DIR] [--workers 2]

Runs with any Python >= 3.11 (it only orchestrates).  It

1. obtains the interpreters: the free-threaded 3.13t and the GIL 3.13 from
   ``scripts/toolchain.py`` (which builds 3.13t from source the first time, which takes many
   minutes; afterwards it is cached), plus ``python3.14t`` if it is on ``PATH``;
2. makes one bench venv per interpreter under ``$FTDAG_CACHE/bench/<name>`` (default
   ``~/.cache/ftdag/bench``) with this repository's ftdag and dask, and matplotlib in the GIL
   venv only, for the chart.  Idempotent: an existing venv is reused, ftdag is reinstalled
   when its sources change, and a package that cannot be installed only costs its cells;
3. calibrates the CPU tasks once, on the GIL build, so every interpreter does the same work;
4. runs each (interpreter, workload, runner) measurement in a fresh subprocess of that venv's
   Python (``bench.py --in-process``, one pair each), printing progress;
5. writes ``results.md`` (the table), ``results.json`` (every raw timing and the machine's
   description) and ``speedup.png`` (the chart) into ``benchmarks/results/<mode>/`` (or
   ``--out``), and prints the table.

``quick`` (the default) uses smaller workloads and at most 5 repetitions (1.5 s) per measurement and
finishes in about 3 minutes on a 2-core machine once the interpreters exist; ``--full`` uses
the full sizes and 7 repetitions.

Reading the table: ``× same plain`` is the speed-up over the plain loop on the same
interpreter, measured in the same process as the runner (robust to machine noise);
``× GIL plain`` is the speed-up over the plain loop on the GIL build, the number that answers
"how much faster than what I run today" (it compares separate processes, so it is noisier).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench  # noqa: E402  (stdlib only at import time)
from runners import RUNNERS  # noqa: E402
from workloads import WORKLOADS  # noqa: E402

SCHEMA = "ftdag-compare/1"
CACHE = Path(os.environ.get("FTDAG_CACHE") or Path.home() / ".cache" / "ftdag")
VENVS = CACHE / "bench"

MODES = {
    # retries: how many measurements taken on a busy machine (see bench.is_noisy) may be redone
    "quick": {"size": "quick", "repeat": 5, "budget": 1.5, "timeout": 90, "retries": 12},
    "full": {"size": "full", "repeat": 7, "budget": 20.0, "timeout": 900, "retries": 72},
}
LABELS = {
    "chain": "no-op chain",
    "heavy": "heavy fan-out",
    "fine": "fine-grained",
    "rollup": "rollup",
    "layered": "random layered",
    "gil-release": "GIL-releasing",
}
MEASURED_RUNNERS = tuple(r for r in RUNNERS if r != "plain")  # plain is measured beside each of them


def say(msg: str = "") -> None:
    print(msg, flush=True)


def warn(msg: str) -> None:
    print(f"compare: {msg}", file=sys.stderr, flush=True)


# -- interpreters ------------------------------------------------------------------------------


_PROBE = (
    "import json, platform, sys, sysconfig;"
    "print(json.dumps({'version': platform.python_version(), 'major': sys.version_info[0],"
    " 'minor': sys.version_info[1], 'ft': bool(sysconfig.get_config_var('Py_GIL_DISABLED')),"
    " 'executable': sys.executable, 'config_args': sysconfig.get_config_var('CONFIG_ARGS') or '',"
    " 'shared': bool(sysconfig.get_config_var('Py_ENABLE_SHARED'))}))"
)


def probe(python: str) -> dict[str, Any] | None:
    try:
        out = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL, check=True).stdout
        info = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    info["path"] = python
    info["label"] = f"{info['major']}.{info['minor']}{'t' if info['ft'] else ''}"
    info["venv_name"] = f"cp{info['major']}{info['minor']}{'t' if info['ft'] else ''}"
    return info


def toolchain(kind: str) -> str | None:
    """Path of the interpreter ``scripts/toolchain.py <kind>`` finds or builds (its progress goes to stderr)."""
    try:
        proc = subprocess.run([sys.executable, str(REPO / "scripts" / "toolchain.py"), kind],
                              stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    except OSError as exc:
        warn(f"scripts/toolchain.py {kind} could not run: {exc}")
        return None
    path = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode or not path:
        warn(f"scripts/toolchain.py {kind} failed (exit {proc.returncode}); that interpreter is skipped")
        return None
    return path


def find_interpreters() -> list[dict[str, Any]]:
    """The GIL reference first, then the free-threaded builds; each probed, duplicates dropped."""
    found: list[dict[str, Any]] = []
    candidates = [("gil-matched", toolchain("gil-matched")), ("free-threaded", toolchain("free-threaded"))]
    extra = shutil.which("python3.14t")
    if extra:
        candidates.append(("PATH", extra))
    seen = set()
    for origin, path in candidates:
        if not path:
            continue
        info = probe(path)
        if info is None:
            warn(f"{path} (from {origin}) does not run; skipped")
            continue
        key = (os.path.realpath(info["executable"]), info["label"])
        if key in seen or info["label"] in {i["label"] for i in found}:
            continue
        seen.add(key)
        info["origin"] = origin
        found.append(info)
    found.sort(key=lambda i: (i["ft"], i["major"], i["minor"]))
    return found


# -- bench venvs -------------------------------------------------------------------------------


def ftdag_fingerprint() -> str:
    """Hash of what `pip install <repo>` installs, so a changed ftdag gets reinstalled."""
    h = hashlib.sha256()
    files = [REPO / "pyproject.toml"] + sorted(p for p in (REPO / "src").rglob("*")
                                               if p.is_file() and "__pycache__" not in p.parts)
    for p in files:
        h.update(str(p.relative_to(REPO)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _pip(python: Path, *args: str) -> tuple[bool, str]:
    env = dict(os.environ, PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *args], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, env=env)
    tail = " ".join((proc.stderr or proc.stdout or "").strip().splitlines()[-3:])
    return proc.returncode == 0, tail


def _installed(python: Path, modules: list[str]) -> dict[str, str | None]:
    """Version (or "?") of each module importable by ``python``, None if not importable."""
    code = (
        "import importlib.metadata as md, importlib.util as u, json, sys;"
        "r = {};\n"
        "for m in sys.argv[1:]:\n"
        "    if u.find_spec(m) is None: r[m] = None; continue\n"
        "    try: r[m] = md.version(m)\n"
        "    except Exception: r[m] = '?'\n"
        "print(json.dumps(r))"
    )
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    try:
        out = subprocess.run([str(python), "-c", code, *modules], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, env=env, timeout=120, check=True).stdout
        return json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return {m: None for m in modules}


def ensure_venv(interp: dict[str, Any], with_matplotlib: bool) -> dict[str, Any] | None:
    """Create or update the bench venv of ``interp``; return its description, None if unusable."""
    vdir = VENVS / interp["venv_name"]
    py = vdir / "bin" / "python"
    marker = vdir / "ftdag-bench.json"
    base = os.path.realpath(interp["executable"])
    try:
        state = json.loads(marker.read_text())
    except (OSError, ValueError):
        state = {}
    t0 = time.perf_counter()
    if not py.exists() or state.get("base") != base or state.get("base_version") != interp["version"]:
        say(f"  {interp['label']}: creating bench venv {vdir}")
        shutil.rmtree(vdir, ignore_errors=True)
        vdir.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([interp["path"], "-m", "venv", str(vdir)], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
        if proc.returncode:
            warn(f"{interp['label']}: venv creation failed: {proc.stderr.strip()[-300:]}")
            return None
        state = {"base": base, "base_version": interp["version"]}
    wanted = ["ftdag", "dask"] + (["matplotlib"] if with_matplotlib else [])
    have = _installed(py, wanted)
    fp = ftdag_fingerprint()
    need_ftdag = have["ftdag"] is None or state.get("ftdag") != fp
    extras = [m for m in wanted[1:] if have[m] is None and not state.get(f"{m}_failed")]
    if need_ftdag or extras:
        say(f"  {interp['label']}: installing {', '.join((['ftdag (this repo)'] if need_ftdag else []) + extras)}")
    if need_ftdag:
        ok, tail = _pip(py, "--force-reinstall", "--no-deps", str(REPO))
        if not ok:
            warn(f"{interp['label']}: installing ftdag from {REPO} failed: {tail}")
            return None
        state["ftdag"] = fp
    if extras:
        ok, tail = _pip(py, *extras)
        if not ok:  # one at a time, so one failure does not cost the others
            for m in extras:
                ok, tail = _pip(py, m)
                if not ok:
                    state[f"{m}_failed"] = tail[-300:]
                    warn(f"{interp['label']}: could not install {m} ({tail[-200:]}); "
                         f"its cells will say so (delete {vdir} to retry)")
    have = _installed(py, wanted)
    state["packages"] = have
    marker.write_text(json.dumps(state, indent=1) + "\n")
    dt = time.perf_counter() - t0
    if dt > 1:
        say(f"  {interp['label']}: bench venv ready in {dt:.0f} s")
    return {"python": str(py), "venv": str(vdir), "packages": have,
            "matplotlib_error": state.get("matplotlib_failed")}


# -- measuring ---------------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):
        env.pop(var, None)  # measure the venv's installed ftdag, not a checkout on PYTHONPATH
    return env


def calibrate(python: str) -> float | None:
    try:
        out = subprocess.run([python, str(HERE / "bench.py"), "--calibrate"], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, env=child_env(), timeout=120, check=True).stdout
        return float(out.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def run_all(interps: list[dict[str, Any]], args, mode: dict[str, Any], spin_per_ms: float) -> list[dict[str, Any]]:
    plan = [(w, i, r) for w in args.workload for i in interps for r in args.runner]
    records: list[dict[str, Any]] = []
    env = child_env()
    try:
        _measure_plan(plan, interps, args, mode, spin_per_ms, env, records)
    except KeyboardInterrupt:
        say(f"\ninterrupted: writing the {len(records)} measurements done so far")
        args.interrupted = True
    return records


def _measure_plan(plan, interps, args, mode, spin_per_ms, env, records) -> None:
    retries_left = [mode["retries"]]
    for n, (w, interp, r) in enumerate(plan, 1):
        prefix = f"[{n}/{len(plan)}] {interp['label']} · {LABELS.get(w, w)} · {r}"
        print(prefix, end="", flush=True)
        discarded = []
        for attempt in range(2):
            rec = bench.run_child(interp["bench"]["python"], w, r, size=mode["size"], workers=args.workers,
                                  repeat=mode["repeat"], budget=mode["budget"], spin_per_ms=spin_per_ms,
                                  timeout=mode["timeout"], env=env)
            if attempt or not (rec["ok"] and bench.is_noisy(rec) and r != "ftdag-sequential") \
                    or retries_left[0] <= 0:
                break
            retries_left[0] -= 1
            # Other processes took CPU while a parallel runner was timed: measure it once more.
            say(f"  busy machine ({_noise(rec)}): measuring again")
            print(" " * len(prefix), end="", flush=True)
            discarded.append(rec)
        if discarded and bench.is_noisy(rec) and _load_of(discarded[0]) < _load_of(rec):
            rec, discarded = discarded[0], [rec]  # keep the quieter of the two
        rec["interpreter"] = interp["label"]
        rec["discarded_noisy_attempts"] = discarded
        records.append(rec)
        if rec["ok"]:
            flag = "  GIL ON⚠" if interp["ft"] and rec.get("gil_enabled_after") else ""
            noisy = f"  † {_noise(rec)}" if bench.is_noisy(rec) else ""
            say(f"  {bench.fmt_time(rec['runner_best_s'])} ({bench.fmt_x(rec['speedup_best'])} plain){flag}{noisy}")
        else:
            say(f"  {bench.error_cell(rec)}")


# -- break-even sweep ----------------------------------------------------------------------------

SWEEP_US = {"quick": (10, 50, 200, 1000), "full": (5, 10, 20, 50, 100, 200, 500, 1000)}
SWEEP_WORK_US = 200_000  # each point runs about this much CPU work, split into tasks of one size
SWEEP_FASTER = 1.05  # a speed-up counts as "faster than plain" from here: below it is noise


def sweep_runners(interp: dict[str, Any]) -> list[str]:
    """ftdag's parallel backends worth sweeping on a build: threads where the GIL is off; on a
    GIL build processes (the default there) and threads (for comparison)."""
    return ["ftdag-threads"] if interp["ft"] else ["ftdag-processes", "ftdag-threads"]


def run_sweep(interps, args, mode, spin_per_ms, env) -> list[dict[str, Any]]:
    """The heavy fan-out workload at several task sizes: from what size does ftdag beat the plain loop?"""
    plan = [(i, r, us) for i in interps for r in sweep_runners(i) for us in SWEEP_US[mode["size"]]]
    records: list[dict[str, Any]] = []
    for n, (interp, runner, us) in enumerate(plan, 1):
        tasks = max(64, min(4096, SWEEP_WORK_US // us))
        print(f"[sweep {n}/{len(plan)}] {interp['label']} · {tasks} tasks of {us} µs · {runner}", end="", flush=True)
        rec = bench.run_child(interp["bench"]["python"], "heavy", runner, size=mode["size"], workers=args.workers,
                              repeat=mode["repeat"], budget=mode["budget"], spin_per_ms=spin_per_ms,
                              timeout=mode["timeout"], env=env, params={"n": tasks, "task_us": us})
        rec["interpreter"], rec["task_us"] = interp["label"], us
        records.append(rec)
        noisy = f"  † {_noise(rec)}" if rec["ok"] and bench.is_noisy(rec) else ""
        say(f"  {bench.fmt_x(rec['speedup_best'])} plain{noisy}" if rec["ok"] else f"  {bench.error_cell(rec)}")
    return records


def breakeven(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (interpreter, runner): speed-up at each task size, and the smallest size from which
    every larger measured size is faster than the plain loop by ``SWEEP_FASTER`` (None if none)."""
    rows = []
    for key in dict.fromkeys((r["interpreter"], r["runner"]) for r in records):
        mine = sorted((r for r in records if (r["interpreter"], r["runner"]) == key), key=lambda r: r["task_us"])
        speedups = {r["task_us"]: (r["speedup_best"] if r["ok"] else None) for r in mine}
        even = None
        for us in reversed(list(speedups)):
            if not speedups[us] or speedups[us] < SWEEP_FASTER:
                break
            even = us
        rows.append({"interpreter": key[0], "runner": key[1], "speedup_by_task_us": speedups, "breakeven_us": even})
    return rows


def breakeven_markdown(rows: list[dict[str, Any]]) -> str:
    sizes = sorted({us for r in rows for us in r["speedup_by_task_us"]})
    header = ["interpreter", "runner"] + [f"{us} µs" for us in sizes] + ["faster than plain from"]
    body = []
    for r in rows:
        cells = [bench.fmt_x(r["speedup_by_task_us"].get(us)) for us in sizes]
        even = f"{r['breakeven_us']} µs" if r["breakeven_us"] else f"never (up to {sizes[-1]} µs)"
        body.append([r["interpreter"], r["runner"], *cells, even])
    intro = ("### Break-even task size\n\nIndependent pure-Python tasks of one size (about "
             f"{SWEEP_WORK_US // 1000} ms of work in all, at least 64 tasks), speed-up of the runner over the plain "
             "loop in the same process (best of the repetitions), and the smallest task size from which ftdag beats not "
             f"parallelising at all (by at least {SWEEP_FASTER - 1:.0%}, at that size and every larger one).")
    return intro + "\n\n" + bench.markdown_table(header, body)


def _load_of(rec: dict[str, Any]) -> float:
    return (rec.get("background_cpus") or 0) + (rec.get("steal_cpus") or 0)


def _noise(rec: dict[str, Any]) -> str:
    return f"other processes used {_load_of(rec):.2f} CPU"


# -- tables ------------------------------------------------------------------------------------


def summarise(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (workload, interpreter, runner) with the plain loop first."""
    interps = doc["interpreters"]
    ref = next((i["label"] for i in interps if not i["ft"]), None)
    rows = []
    for w in doc["settings"]["workloads"]:
        recs = [m for m in doc["measurements"] if m["workload"] == w]
        title = next((m["title"] for m in recs if m.get("description")), LABELS.get(w, w))

        def plain_best(label):
            xs = [m["plain_best_s"] for m in recs if m["interpreter"] == label and m["plain_best_s"]]
            return min(xs) if xs else None

        ref_best = plain_best(ref) if ref else None
        for interp in interps:
            label = interp["label"]
            mine = [m for m in recs if m["interpreter"] == label]
            samples = [t for m in mine for t in m["plain_s"]]
            pb = plain_best(label)
            if samples:
                rows.append({"workload": w, "title": title, "interpreter": label, "runner": "plain", "ok": True,
                             "best_s": pb, "median_s": statistics.median(samples), "speedup_same": 1.0,
                             "speedup_vs_gil": ref_best / pb if ref_best and pb else None,
                             "gil": _gil_state(interp, mine), "error": None})
            for m in mine:
                row = {"workload": w, "title": title, "interpreter": label, "runner": m["runner"], "ok": m["ok"],
                       "best_s": m["runner_best_s"], "median_s": m["runner_median_s"],
                       "speedup_same": m["speedup_best"],
                       "speedup_vs_gil": ref_best / m["runner_best_s"] if m["ok"] and ref_best else None,
                       "gil": _gil_state(interp, [m]), "error": None if m["ok"] else bench.error_cell(m),
                       "overhead_us_per_task": m.get("overhead_us_per_task"), "noisy": bench.is_noisy(m),
                       "background_cpus": m.get("background_cpus")}
                rows.append(row)
    return rows


def _gil_state(interp: dict[str, Any], recs: list[dict[str, Any]]) -> str:
    states = {m.get("gil_enabled_after") for m in recs} - {None}
    if not interp["ft"]:
        return "on"
    if True in states:
        return "ON⚠"
    return "off" if states else "?"


def markdown(doc: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    ref = next((i["label"] for i in doc["interpreters"] if not i["ft"]), "GIL")
    header = ["workload", "interpreter", "runner", "best", "median", "× same plain", f"× {ref} plain", "GIL"]
    best_per_wl: dict[str, float] = {}
    for r in rows:
        if r["ok"] and r["speedup_vs_gil"]:
            best_per_wl[r["workload"]] = max(best_per_wl.get(r["workload"], 0), r["speedup_vs_gil"])
    out = []
    for r in rows:
        if not r["ok"]:
            out.append([r["title"], r["interpreter"], r["runner"], r["error"], "", "", "", r["gil"]])
            continue
        vs_gil = bench.fmt_x(r["speedup_vs_gil"])
        if r["speedup_vs_gil"] and r["speedup_vs_gil"] == best_per_wl.get(r["workload"]):
            vs_gil = f"**{vs_gil}**"
        gil = "**ON⚠**" if r["gil"] == "ON⚠" else r["gil"]
        out.append([r["title"], r["interpreter"], r["runner"], bench.fmt_time(r["best_s"]) + ("†" if r.get("noisy") else ""),
                    bench.fmt_time(r["median_s"]), bench.fmt_x(r["speedup_same"]), vs_gil, gil])
    return bench.markdown_table(header, out)


def describe(doc: dict[str, Any]) -> str:
    m, s = doc["machine"], doc["settings"]
    lines = [
        f"ftdag GIL vs no-GIL comparison ({doc['mode']} mode), {doc['date']}",
        f"Machine: {m['cpu_count']} CPUs ({m.get('cpu_model') or m.get('machine')}), {m['platform']}; "
        f"load average at start {m.get('loadavg_start')}, at end {m.get('loadavg_end')}",
        "Interpreters: " + "; ".join(
            f"{i['label']} = Python {i['version']} {'free-threaded' if i['ft'] else 'GIL'} ({i['executable']})"
            for i in doc["interpreters"]),
        f"Settings: {s['workers']} workers; sizes '{s['size']}'; best and median of up to {s['repeat']} repetitions "
        f"(stopping after {s['budget_s']:g} s once 2 are done); CPU tasks calibrated on {s['calibrated_on']} "
        f"({s['spin_per_ms']:.0f} loop rounds per ms); {doc['duration_s']:.0f} s in all",
    ]
    if doc.get("interrupted"):
        lines.append("Interrupted: this table holds only the measurements made before Ctrl-C")
    noisy = [m for m in doc["measurements"] if m["ok"] and bench.is_noisy(m)]
    if noisy:
        lines.append(f"Noise: {len(noisy)} of {len(doc['measurements'])} measurements (marked †) ran while other "
                     "processes took CPU; compare them with care or rerun on a quieter machine")
    caveat = build_caveat(doc["interpreters"])
    if caveat:
        lines.append(f"Caveat: {caveat}")
    return "\n".join(lines)


def _build_flags(interp: dict[str, Any]) -> list[str]:
    """The configure flags that change speed (not paths, not --disable-gil)."""
    import shlex

    try:
        args = shlex.split(interp.get("config_args") or "")
    except ValueError:
        args = (interp.get("config_args") or "").split()
    keep = ("--enable-optimizations", "--with-lto", "--enable-shared", "--with-pydebug", "--enable-experimental-jit")
    flags = {a.split("=")[0] for a in args if a.split("=")[0] in keep}
    if interp.get("shared"):
        flags.add("--enable-shared")
    return sorted(flags)


def build_caveat(interps: list[dict[str, Any]]) -> str | None:
    """Say so when the builds differ in more than the GIL: their single-thread speeds then differ for other reasons too."""
    if len(interps) < 2:
        return None
    versions = {i["version"] for i in interps}
    flags = {tuple(_build_flags(i)) for i in interps}
    if len(versions) == 1 and len(flags) == 1:
        return None
    desc = "; ".join(f"{i['label']} is {i['version']} built with {' '.join(_build_flags(i)) or 'default flags'}"
                     for i in interps)
    return (f"the interpreters differ in more than the GIL ({desc}), so part of the gap between their plain loops "
            "comes from the version and build flags; set FTDAG_PYTHON_GIL to a GIL build of the same version and "
            "flags for a like-for-like comparison")


def headline(doc: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """Per workload: the fastest configuration, and ftdag's best on each interpreter."""
    ref = next((i["label"] for i in doc["interpreters"] if not i["ft"]), "GIL")
    lines = [f"Fastest per workload (speed-up over the plain loop on {ref}):"]
    for w in doc["settings"]["workloads"]:
        ok = [r for r in rows if r["workload"] == w and r["ok"] and r["speedup_vs_gil"]]
        if not ok:
            continue
        top = max(ok, key=lambda r: r["speedup_vs_gil"])
        parts = []
        for i in doc["interpreters"]:
            fd = [r for r in ok if r["interpreter"] == i["label"] and r["runner"].startswith("ftdag-")]
            if fd:
                b = max(fd, key=lambda r: r["speedup_vs_gil"])
                parts.append(f"ftdag on {i['label']}: {b['speedup_vs_gil']:.2f}× ({b['runner'][6:]})")
        lines.append(f"- {ok[0]['title']}: {top['interpreter']} · {top['runner']} {top['speedup_vs_gil']:.2f}×"
                     + (f"; {'; '.join(parts)}" if parts else ""))
    return "\n".join(lines)


LEGEND = (
    "best/median: wall time of one run (best and median of the repetitions). × same plain: speed-up over "
    "the plain topological loop on the same interpreter, measured in the same process, interleaved (above 1 = "
    "faster than not parallelising). × {ref} plain: speed-up over the plain loop on the GIL build (the number "
    "for choosing a build; bold = fastest for the workload). GIL: whether the GIL was on during the "
    "measurement; **ON⚠** on a free-threaded build means an imported extension re-enabled it. †: other "
    "processes used at least a quarter of a CPU while this runner was timed (a parallel runner is then measured "
    "again, up to a limit, and the quieter attempt kept), so its speed-up is understated. n/a: the runner could not run there, with the reason."
)


# -- chart -------------------------------------------------------------------------------------


def draw_chart(json_path: Path, png_path: Path) -> None:
    """Speed-up over the GIL build's plain loop, one panel per workload, bars by interpreter and runner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doc = json.loads(json_path.read_text())
    rows = doc["summary"]
    interps = [i["label"] for i in doc["interpreters"]]
    ref = next((i["label"] for i in doc["interpreters"] if not i["ft"]), "GIL")
    runners = ["plain"] + [r for r in doc["settings"]["runners"]]
    wls = doc["settings"]["workloads"]
    ncols = 3 if len(wls) > 4 else max(1, len(wls))
    nrows = -(-len(wls) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.9 * nrows), squeeze=False)
    cmap = plt.get_cmap("tab10")
    width = 0.8 / len(runners)
    from matplotlib.ticker import FuncFormatter, NullFormatter

    for ax, w in zip(axes.flat, wls):
        title = next((r["title"] for r in rows if r["workload"] == w), w)
        values = [r["speedup_vs_gil"] for r in rows if r["workload"] == w and r["ok"] and r["speedup_vs_gil"]]
        for k, runner in enumerate(runners):
            xs, ys = [], []
            for g, label in enumerate(interps):
                r = next((r for r in rows if r["workload"] == w and r["interpreter"] == label
                          and r["runner"] == runner), None)
                x = g + (k - (len(runners) - 1) / 2) * width
                if r and r["ok"] and r["speedup_vs_gil"]:
                    xs.append(x)
                    ys.append(r["speedup_vs_gil"])
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
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_title(title + " (log scale)", fontsize=10)
        else:
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
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


def make_chart(doc: dict[str, Any], json_path: Path, png_path: Path) -> str:
    """Draw the chart with a venv that has matplotlib; return what happened, for the report."""
    chart_interp = next((i for i in doc["interpreters"] if i["bench"]["packages"].get("matplotlib")), None)
    if chart_interp is None:
        reasons = [i["bench"].get("matplotlib_error") for i in doc["interpreters"] if i["bench"].get("matplotlib_error")]
        return ("chart skipped: matplotlib could not be installed in the GIL bench venv"
                + (f" ({reasons[0][:200]})" if reasons else "") + "; the table and JSON are complete")
    env = child_env()
    proc = subprocess.run([chart_interp["bench"]["python"], str(HERE / "compare.py"), "--chart-from", str(json_path),
                           "--png", str(png_path)], capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env)
    if proc.returncode:
        tail = " ".join((proc.stderr or "").strip().splitlines()[-2:])
        return f"chart failed: {tail[:300]}; the table and JSON are complete"
    return f"chart: {png_path}"


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help="full sizes and 7 repetitions (default: quick mode)")
    p.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results/<mode>)")
    p.add_argument("--workers", type=int, default=2, help="workers for every parallel runner (default 2)")
    p.add_argument("--repeat", type=int, default=None, help="override the mode's repetitions")
    p.add_argument("--workload", action="extend", nargs="+", choices=WORKLOADS, help="only these workloads")
    p.add_argument("--runner", action="extend", nargs="+", choices=MEASURED_RUNNERS, help="only these runners")
    p.add_argument("--interpreter", action="extend", nargs="+", metavar="LABEL",
                   help="only these interpreters, by label (e.g. 3.13t 3.13)")
    p.add_argument("--no-chart", action="store_true", help="skip the chart (and matplotlib)")
    p.add_argument("--no-sweep", action="store_true", help="skip the break-even task-size sweep")
    p.add_argument("--chart-from", type=Path, help=argparse.SUPPRESS)  # internal: draw from a results.json
    p.add_argument("--png", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.workload = list(dict.fromkeys(args.workload or WORKLOADS))
    args.runner = list(dict.fromkeys(args.runner or MEASURED_RUNNERS))
    if args.workers < 1 or (args.repeat is not None and args.repeat < 1):
        p.error("--workers and --repeat must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.chart_from:
        draw_chart(args.chart_from, args.png or args.chart_from.with_name("speedup.png"))
        return 0
    if sys.version_info < (3, 11):
        warn("needs Python >= 3.11")
        return 1
    started = time.perf_counter()
    mode_name = "full" if args.full else "quick"
    mode = dict(MODES[mode_name])
    if args.repeat:
        mode["repeat"] = args.repeat
    out = args.out or HERE / "results" / mode_name
    out.mkdir(parents=True, exist_ok=True)
    machine = bench.machine_info()
    load = machine.pop("loadavg")
    say(f"ftdag comparison, {mode_name} mode: {len(args.workload)} workloads × {len(args.runner)} runners "
        f"(+ the plain loop beside each) on {machine['cpu_count']} CPUs; results in {out}")

    say("Interpreters:")
    interps = find_interpreters()
    if args.interpreter:
        interps = [i for i in interps if i["label"] in args.interpreter]
    if not interps:
        warn("no interpreter to measure")
        return 1
    for i in interps:
        say(f"  {i['label']}: Python {i['version']} {'free-threaded' if i['ft'] else 'GIL'} at {i['path']}")
    if not any(not i["ft"] for i in interps):
        warn("no GIL interpreter: the '× GIL plain' column stays empty")

    say("Bench venvs:")
    chart_label = next((i["label"] for i in interps if not i["ft"]), interps[0]["label"])
    usable = []
    for i in interps:
        info = ensure_venv(i, with_matplotlib=not args.no_chart and i["label"] == chart_label)
        if info is None:
            warn(f"{i['label']}: no usable bench venv; skipped")
            continue
        pk = info["packages"]
        say(f"  {i['label']}: {info['venv']} (" + ", ".join(f"{k} {v or 'missing'}" for k, v in pk.items()) + ")")
        i["bench"] = info
        usable.append(i)
    interps = usable
    if not interps:
        return 1

    cal_interp = next((i for i in interps if not i["ft"]), interps[0])
    spin_per_ms = calibrate(cal_interp["bench"]["python"])
    if spin_per_ms is None:
        warn("calibration failed")
        return 1
    say(f"Calibrated on {cal_interp['label']}: {spin_per_ms:.0f} loop rounds per ms of CPU work")

    say(f"Measuring ({len(args.workload) * len(interps) * len(args.runner)} measurements, each in a fresh process):")
    records = run_all(interps, args, mode, spin_per_ms)
    sweep = [] if args.no_sweep or getattr(args, "interrupted", False) else run_sweep(
        interps, args, mode, spin_per_ms, child_env())

    machine["loadavg_start"] = load
    machine["loadavg_end"] = bench._loadavg()
    doc = {
        "schema": SCHEMA,
        "date": bench.now_iso(),
        "mode": mode_name,
        "duration_s": time.perf_counter() - started,
        "machine": machine,
        "interrupted": bool(getattr(args, "interrupted", False)),
        "interpreters": [
            {"label": i["label"], "version": i["version"], "ft": i["ft"], "config_args": i.get("config_args"),
             "shared": i.get("shared"), "build_flags": _build_flags(i),
             "build": "free-threaded" if i["ft"] else "GIL", "executable": i["executable"], "origin": i["origin"],
             "reference": i["label"] == chart_label and not i["ft"], "bench": i["bench"]}
            for i in interps
        ],
        "settings": {"workers": args.workers, "size": mode["size"], "repeat": mode["repeat"],
                     "budget_s": mode["budget"], "timeout_s": mode["timeout"],
                     "noisy_retries": mode["retries"], "spin_per_ms": spin_per_ms,
                     "calibrated_on": cal_interp["label"], "workloads": args.workload, "runners": args.runner},
        "measurements": records,
        "sweep": sweep,
        "breakeven": breakeven(sweep),
    }
    rows = summarise(doc)
    doc["summary"] = rows
    json_path, md_path, png_path = out / "results.json", out / "results.md", out / "speedup.png"
    json_path.write_text(json.dumps(doc, indent=1, default=repr) + "\n")
    ref = next((i["label"] for i in interps if not i["ft"]), "GIL")
    table = markdown(doc, rows)
    parts = [describe(doc), table, LEGEND.format(ref=ref), headline(doc, rows)]
    if doc["breakeven"]:
        parts.append(breakeven_markdown(doc["breakeven"]))
    text = "\n\n".join(parts)
    if args.no_chart:
        chart_msg = "chart skipped (--no-chart)"
    else:
        png_path.unlink(missing_ok=True)
        chart_msg = make_chart(doc, json_path, png_path)
    if png_path.exists():
        text += "\n\n![speed-up over the plain loop](speedup.png)"
    md_path.write_text(f"# ftdag benchmark results ({mode_name})\n\n{text}\n")
    say("")
    say(text.replace("![speed-up over the plain loop](speedup.png)", "").rstrip())
    say("")
    say(chart_msg)
    say(f"Wrote {md_path}, {json_path}" + (f", {png_path}" if png_path.exists() else "")
        + f" in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
