"""The comparison's result-store and resume sections (benchmarks/): their records round-trip through
JSON, the markdown renders measured and failed rows, ``resume_bench.py`` runs at a tiny size and writes
its documented JSON, a failing run or check is a result cell, and the main job's options select them.
No timing assertions."""

from __future__ import annotations

import functools
import json
import operator
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, TIMEOUT

import ftdag

BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))

import compare  # noqa: E402
import measurement  # noqa: E402
import report  # noqa: E402
import resume_bench  # noqa: E402
import workloads  # noqa: E402
from environment import Interpreter  # noqa: E402
from records import ResumeResult, StoreOverhead, StoreRow  # noqa: E402

pytestmark = pytest.mark.timeout(120)

SPIN = 2000.0  # loop rounds per "ms": fixed, so that no test calibrates
FREE_THREADED = bool(__import__("sysconfig").get_config_var("Py_GIL_DISABLED"))


def _env() -> dict[str, str]:
    """This interpreter's environment, with the ftdag under test importable in a child."""
    src = str(Path(ftdag.__file__).resolve().parent.parent)
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))


# -- records -------------------------------------------------------------------------------------


def _row(store, durability, size, total, pickle_us):
    return StoreRow(store, durability, size, ops=9, save_us=total * 0.6, load_us=total * 0.4, total_us=total,
                    total_median_us=total * 1.1, pickle_us=pickle_us)


def _store(ok=True) -> StoreOverhead:
    if not ok:
        return StoreOverhead(ok=False, error="timed out after 90 s", mode="quick", interpreter="3.13t")
    rows = (_row("memory", None, 1024, 10.0, 2.0), _row("directory", "atomic", 1024, 200.0, 2.0),
            _row("directory", "durable", 1 << 20, 6000.0, 60.0))
    return StoreOverhead(ok=True, mode="quick", rows=rows, reference={"1024": 2.0, "1048576": 60.0},
                         filesystem="ext4", dir="/repo/benchmarks/results/.x", free_threaded_build=True,
                         gil_enabled=False, background_cpus=0.5, steal_cpus=0.0, interpreter="3.13t")


def _resume(interp="3.13t", ok=True) -> ResumeResult:
    if not ok:
        return ResumeResult(size="quick", ok=False, error="CheckFailed: the cached re-run loaded 0 and saved 22",
                            interpreter=interp, backend="processes")
    return ResumeResult(size="quick", ok=True, title="rollup 256tx/16chunks", params={"hash_iters": 530},
                        n_tasks=274, workers=2, backend="threads", filesystem="ext4",
                        no_store_s=(0.09, 0.08, 0.1), with_store_s=(0.12, 0.1, 0.11), cached_s=(0.02, 0.01, 0.03),
                        stored=274, loaded=2, free_threaded_build=True, gil_enabled_after=False,
                        background_cpus=0.1, steal_cpus=0.0, interpreter=interp)


def test_store_records_round_trip_through_json():
    row = _row("directory", "atomic", 1024, 200.0, 2.0)
    assert (row.label, row.ratio) == ("directory (atomic)", pytest.approx(100.0))
    assert row.to_json()["ratio"] == 100.0
    assert StoreRow.from_json(json.loads(json.dumps(row.to_json()))) == row
    for rec in (_store(), _store(ok=False)):
        doc = json.loads(json.dumps(rec.to_json()))
        assert StoreOverhead.from_json(doc) == rec
    doc = _store().to_json()
    assert doc["rows"][1] == dict(_row("directory", "atomic", 1024, 200.0, 2.0).to_json())
    assert _store().noisy and not _store(ok=False).noisy  # other processes took half a CPU


def test_store_overhead_record_from_the_scripts_document():
    """The document ``store_overhead.py --json`` writes (tests/test_store_benchmark.py checks it)."""
    doc = {"schema": "ftdag-store-overhead/1", "mode": "quick", "python": "3.13.5", "free_threaded": True,
           "gil_enabled": False, "dir": "/r/.x", "filesystem": "ext4", "loadavg": [1.0, 1.0, 1.0],
           "background_cpus": 0.1, "steal_cpus": 0.0, "reference": {"1024": 2.0},
           "rows": [dict(_row("sqlite", None, 1024, 90.0, 2.0).to_json())], "returncode": 0}
    rec = StoreOverhead.from_document(doc)
    assert rec.ok and rec.rows == (_row("sqlite", None, 1024, 90.0, 2.0),)
    assert (rec.free_threaded_build, rec.gil_enabled, rec.filesystem, rec.mode) == (True, False, "ext4", "quick")


def test_resume_record_derives_its_numbers_and_round_trips():
    r = _resume()
    assert (r.rounds, r.no_store_best_s, r.with_store_best_s, r.cached_best_s) == (3, 0.08, 0.1, 0.01)
    assert (r.no_store_median_s, r.with_store_median_s, r.cached_median_s) == (0.09, 0.11, 0.02)
    assert r.store_ratio == pytest.approx(1.25) and r.cached_ratio == pytest.approx(0.1)
    assert r.resume_speedup == pytest.approx(10.0)
    doc = json.loads(json.dumps(r.to_json()))
    assert doc["store_ratio"] == pytest.approx(1.25) and doc["cached_s"] == [0.02, 0.01, 0.03]
    assert ResumeResult.from_json(doc) == r
    failed = _resume(ok=False)
    assert (failed.store_ratio, failed.cached_ratio, failed.resume_speedup, failed.rounds) == (None, None, None, 0)
    assert ResumeResult.from_json(json.loads(json.dumps(failed.to_json()))) == failed


# -- markdown ------------------------------------------------------------------------------------


def test_store_section_renders_rows_and_errors():
    text = report.store_overhead_markdown([_store()])
    assert text.startswith("### Result store\n\n")
    assert "| store | durability | size | save µs | load µs | total µs per record | × pickle |" in text
    assert "| --- | --- | --- | ---: |" in text  # store, durability and size are text
    assert "| memory | — | 1 KB | 6.0 | 4.0 | 10.0 | 5.00× |" in text
    assert "| directory | atomic | 1 KB | 120.0 | 80.0 | 200.0 | 100.00× |" in text
    assert "| directory | durable | 1 MB | 3600.0 | 2400.0 | 6000.0 | 100.00× |" in text
    assert "On 3.13t (free-threaded, GIL off), quick mode, records on ext4" in text
    assert "1 KB 2.00 µs, 1 MB 60.00 µs" in text and "other processes used 0.50 CPU" in text
    failed = report.store_overhead_markdown([_store(ok=False)])
    assert "On 3.13t:\n\n| store |" in failed and "| n/a: timed out after 90 s |" in failed


def test_resume_section_renders_rows_and_errors():
    text = report.resume_markdown([_resume("3.13t"), _resume("3.13", ok=False)])
    assert text.startswith("### Resuming: a fully cached re-run of the rollup\n\n")
    assert "rollup 256tx/16chunks (274 tasks; 530 mixing rounds per hash)" in text
    assert ("| 3.13t | threads | 80.0 ms / 90.0 ms | 100.0 ms / 110.0 ms | 1.25× | 10.0 ms / 20.0 ms | 0.10× "
            "| 274 / 2 | 3 |") in text
    assert "| 3.13 | processes | n/a: CheckFailed: the cached re-run loaded 0 and saved 22 |" in text
    assert "- 3.13t (threads): resuming from the store is 10.0× faster than the first run" in text
    assert "- 3.13 " not in text
    only_failed = report.resume_markdown([_resume("3.13", ok=False)])
    assert "n/a: CheckFailed" in only_failed and "resuming from the store is" not in only_failed


def _interp(label: str) -> Interpreter:
    return Interpreter(path=f"/py{label}", executable=f"/py{label}", version="3.13.5", major=3, minor=13,
                       ft=label.endswith("t"))


def _comparison(measurements=(), store=(), resume=()) -> report.Comparison:
    settings = report.Settings(workers=2, size="quick", repeat=5, budget_s=1.5, timeout_s=90, noisy_retries=0,
                               spin_per_ms=SPIN, calibrated_on="3.13", workloads=("fine",) if measurements else (),
                               runners=("ftdag-threads",) if measurements else (), sweep_work_us=200_000)
    return report.Comparison("quick", "2026-01-01T00:00:00+00:00", 1.0, {"cpu_count": 2, "platform": "Linux"},
                             (_interp("3.13"), _interp("3.13t")), settings, tuple(measurements),
                             store_overhead=tuple(store), resume=tuple(resume))


def test_the_report_has_both_sections_and_results_json_keeps_them():
    from records import Measurement

    m = Measurement("fine", "ftdag-threads", True, title="fine", description="d", plain_s=(1.0,), runner_s=(0.5,),
                    interpreter="3.13t")
    c = _comparison([m], [_store()], [_resume("3.13t"), _resume("3.13", ok=False)])
    text = report.markdown_report(c, chart=False)
    assert "| workload | interpreter | runner |" in text
    assert text.index("### Result store") < text.index("### Resuming: a fully cached re-run of the rollup")
    doc = json.loads(json.dumps(c.to_json()))
    assert [StoreOverhead.from_json(d) for d in doc["store_overhead"]] == [_store()]
    assert [ResumeResult.from_json(d) for d in doc["resume"]] == list(c.resume)
    # Only the extras (compare.py --only-extras): no comparison table, legend or headline.
    extras = report.markdown_report(_comparison(store=[_store(ok=False)], resume=[_resume()]), chart=False)
    assert "| workload |" not in extras and "Fastest per workload" not in extras
    assert "### Result store" in extras and "### Resuming" in extras
    # Neither measured: neither section.
    plain = report.markdown_report(_comparison([m]), chart=False)
    assert "### Result store" not in plain and "### Resuming" not in plain
    assert _comparison([m]).to_json()["resume"] == []


# -- resume_bench.py -----------------------------------------------------------------------------


def test_resume_bench_runs_at_a_tiny_size_and_writes_its_json(tmp_path):
    out, work = tmp_path / "out.json", tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, str(BENCH / "resume_bench.py"), "--quick", "--size", "tiny",
                           "--spin-per-ms", str(SPIN), "--workers", "2", "--json", str(out)], cwd=work, env=_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=3 * TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["schema"] == "ftdag-resume/1" and doc["free_threaded"] is FREE_THREADED
    assert doc["settings"] == {"mode": "quick", "size": "tiny", "rounds": 5, "workers": 2, "spin_per_ms": SPIN,
                               "durability": "atomic"}
    assert Path(doc["dir"]) == work.resolve() and list(work.iterdir()) == []  # stores made there, then removed
    r = doc["result"]
    assert r["ok"] is True, r["error"]
    for timing in ("no_store_s", "with_store_s", "cached_s"):
        assert len(r[timing]) == 5 and all(t > 0 for t in r[timing])
    assert r["loaded"] >= 1 and r["stored"] == r["n_tasks"] == 22
    assert r["backend"] == ("threads" if FREE_THREADED else "processes")
    assert r["interpreter"] == f"3.13{'t' if FREE_THREADED else ''}" and r["filesystem"]
    assert r["store_ratio"] > 0 and r["cached_ratio"] > 0
    assert ResumeResult.from_json(r).ok
    assert sum(line.startswith("| ") for line in proc.stdout.splitlines()) == 3  # header, rule, the row


def test_importing_resume_bench_imports_no_task_module():
    code = "import sys, resume_bench; print(sorted(m for m in ('workloads', 'rollup', 'ftdag') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=BENCH, env=_env(), capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def _tiny_graph(dag_factory=None, fn=None, x=1) -> workloads.Workload:
    """One source ``x`` and one task ``y = fn(x)``."""
    fn = fn or functools.partial(operator.add, 1)
    return workloads.Workload("w", "w", "w", {"x": x}, {"y": (fn, ("x",))}, ["y"], ["y"],
                              dag_factory=dag_factory)


def test_a_failing_task_is_a_result_cell(tmp_path):
    wl = _tiny_graph(fn=functools.partial(operator.truediv, 1.0), x=0)  # picklable: processes on GIL builds
    r = resume_bench.measure(wl, "tiny", 2, 2, tmp_path)
    assert r.ok is False and "ZeroDivisionError" in r.error
    assert list(tmp_path.iterdir()) == []


def test_a_cached_rerun_that_runs_tasks_is_a_result_cell(tmp_path):
    """With ``cache=False`` nothing is saved or loaded: the check, not the timing, must say so."""
    def uncached():
        b = ftdag.DagBuilder()
        b.add_source("x", 1)
        b.add_task("y", ["x"], functools.partial(operator.add, 1), cache=False)
        return b.build()

    r = resume_bench.measure(_tiny_graph(dag_factory=uncached), "tiny", 2, 2, tmp_path)
    assert r.ok is False and r.error.startswith("CheckFailed: the first run with an empty store loaded 0 and saved 0")
    assert list(tmp_path.iterdir()) == []


# -- the main job's wiring -----------------------------------------------------------------------


def test_a_child_that_cannot_start_is_an_error_cell(tmp_path):
    missing = str(tmp_path / "no-python")
    r = measurement.run_resume(missing, size="tiny", quick=True, rounds=2, workers=2, spin_per_ms=SPIN,
                               where=tmp_path, timeout=30)
    assert (r.ok, r.size, r.workers) == (False, "tiny", 2) and "could not start" in r.error
    s = measurement.run_store_overhead(missing, quick=True, where=tmp_path, timeout=30)
    assert (s.ok, s.mode) == (False, "quick") and "could not start" in s.error


def test_the_store_overhead_runs_on_the_free_threaded_313():
    gil, ft, ft314 = _interp("3.13"), _interp("3.13t"), Interpreter("/p", "/p", "3.14.0", 3, 14, True)
    assert measurement.store_interpreter([gil, ft314, ft]) is ft
    assert measurement.store_interpreter([gil, ft314]) is ft314
    assert measurement.store_interpreter([gil]) is gil
    assert measurement.store_interpreter([]) is None


def test_compare_selects_the_extras():
    args = compare.parse_args(["--only-extras"])
    assert (args.only_extras, args.no_extras, args.workload, args.runner) == (True, False, [], [])
    assert args.no_sweep and not args.no_chart  # the speed-up chart needs the table; scale.png does not
    args = compare.parse_args(["--no-extras", "--workload", "chain"])
    assert (args.only_extras, args.no_extras, args.workload) == (False, True, ["chain"])
    assert compare.parse_args([]).no_extras is False
    with pytest.raises(SystemExit):
        compare.parse_args(["--only-extras", "--no-extras"])
