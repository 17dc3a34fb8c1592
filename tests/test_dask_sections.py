"""The comparison's dask sections (benchmarks/dask_get.py and benchmarks/distributed_bench.py): their
records are read from the scripts' documents, derive their ratios and round-trip through JSON, the
markdown renders measured, reference-only, skipped and failed rows and states the targets met or missed,
the scripts run at tiny sizes as the main job runs them, a child that cannot run is a result cell, and
the main job measures them (``--only-extras``, not ``--no-extras``).  No timing assertions."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import sysconfig
from pathlib import Path

import pytest
from helpers import REPO, TIMEOUT

import ftdag

BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))

import compare  # noqa: E402
import measurement  # noqa: E402
import report  # noqa: E402
from environment import BenchVenv, Interpreter  # noqa: E402
from records import DaskGetResult, DaskGetRow, DistributedResult, DistributedRow, with_interpreter  # noqa: E402

pytestmark = pytest.mark.timeout(120)

SPIN = 2000.0  # loop rounds per "ms": fixed, so that no test calibrates
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
LABEL = f"{sys.version_info.major}.{sys.version_info.minor}{'t' if FREE_THREADED else ''}"


def _env() -> dict[str, str]:
    """This interpreter's environment, with the ftdag under test importable in a child."""
    src = str(Path(ftdag.__file__).resolve().parent.parent)
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))


def _interp(label: str, python: str | None = None, packages: dict | None = None) -> Interpreter:
    major, minor = label.rstrip("t").split(".")
    bench = BenchVenv(python=python or f"/venv{label}/bin/python", venv=f"/venv{label}",
                      packages={"ftdag": "0.1", "dask": "1", "distributed": "1"} if packages is None else packages)
    return Interpreter(path=f"/py{label}", executable=f"/py{label}", version=f"{major}.{minor}.5", major=int(major),
                       minor=int(minor), ft=label.endswith("t"), bench=bench)


# -- documents as the scripts write them ---------------------------------------------------------


def _dask_rows(ftdag_s: dict[str, tuple[float, ...]]) -> list[dict]:
    """``dask_get.py``'s rows: dask.threaded.get takes 1.0 s (best) and 1.2 s (median) on every workload,
    dask.get 0.5 s / 0.6 s, ftdag the given times."""
    tasks = {"chain": 2000, "bag": 430, "array": 1912}
    rows = []
    for w, times in ftdag_s.items():
        for s, ts in (("ftdag", times), ("threaded", (1.2, 1.0, 1.4)), ("sync", (0.6, 0.5, 0.7))):
            row = {"workload": w, "size": tasks[w] // 2, "tasks": tasks[w], "scheduler": s, "runs": 3,
                   "best_s": min(ts), "median_s": sorted(ts)[1], "times_s": list(ts),
                   "per_task_us": min(ts) / tasks[w] * 1e6, "vs_threaded": 0.0, "vs_sync": 0.0}
            if s == "ftdag" and w in ("chain", "bag"):
                row.update(target={"chain": 0.1, "bag": 0.6}[w], met=False)
            rows.append(row)
    return rows


def _dask_doc(ft=True, backend="threads", ftdag_s=None, **over) -> dict:
    ftdag_s = ftdag_s or {"chain": (0.09, 0.08, 0.1), "bag": (0.7, 0.66, 0.8), "array": (0.5, 0.4, 0.6)}
    doc = {"schema": "ftdag-dask-get/1", "mode": "quick", "python": "3.13.5", "free_threaded": ft,
           "gil_enabled": not ft, "workers": 2, "ftdag_backend": backend, "dask": "2026.8.0", "numpy": "2.4.6",
           "work_us": 101.5, "loadavg": [1.0, 1.0, 1.0], "background_cpus": 0.1, "steal_cpus": 0.0, "skipped": [],
           "rows": _dask_rows(ftdag_s), "returncode": 0}
    doc.update(over)
    return doc


def _dask(label="3.13t", backend="auto", **over) -> DaskGetResult:
    ft = label.endswith("t")
    resolved = "threads" if ft or backend == "threads" else "processes"
    return with_interpreter(DaskGetResult.from_document(_dask_doc(ft, resolved, **over), requested_backend=backend),
                            label)


def _distributed_doc(ft=True, **over) -> dict:
    times = {("chain", "threads"): (0.002, 0.001, 0.003), ("chain", "processes"): (0.02, 0.03, 0.04),
             ("chain", "distributed"): (2.0, 1.8, 2.2), ("cpu", "threads"): (0.2, 0.16, 0.3),
             ("cpu", "processes"): (0.2, 0.18, 0.19), ("cpu", "distributed"): (0.4, 0.36, 0.5)}
    rows = [{"workload": w, "backend": b, "tasks": 200 if w == "chain" else 32, "times_s": list(ts),
             "best_s": min(ts), "median_s": sorted(ts)[1], "per_task_us": 0.0, "vs_distributed": 0.0, "error": None}
            for (w, b), ts in times.items()]
    report_ = {"free_threaded": ft, "gil_enabled": not ft, "profiler": not ft}
    doc = {"schema": "ftdag-distributed-bench/1", "mode": "quick", "python": "3.13.5", "free_threaded": ft,
           "gil_enabled": not ft, "workers": 2, "spin_per_ms": SPIN, "loadavg": [1.0, 1.0, 1.0],
           "background_cpus": 0.05, "steal_cpus": 0.0,
           "worker_reports": {"tcp://127.0.0.1:1": report_, "tcp://127.0.0.1:2": dict(report_)}, "rows": rows,
           "returncode": 0}
    doc.update(over)
    return doc


def _distributed(label="3.13t", **over) -> DistributedResult:
    return with_interpreter(DistributedResult.from_document(_distributed_doc(label.endswith("t"), **over)), label)


# -- the records ---------------------------------------------------------------------------------


def test_the_dask_get_record_derives_its_ratios_and_verdicts():
    r = _dask()
    assert (r.ok, r.mode, r.requested_backend, r.ftdag_backend, r.workers) == (True, "quick", "auto", "threads", 2)
    assert r.workloads == ["chain", "bag", "array"] and r.free_threaded_build and r.gil_enabled is False
    chain = r.row("chain", "ftdag")
    assert (chain.tasks, chain.best_s, chain.median_s, chain.times_s) == (2000, 0.08, 0.09, (0.09, 0.08, 0.1))
    assert chain.per_task_us == pytest.approx(40.0)
    assert r.ratio("chain") == pytest.approx(0.08) and r.ratio("chain", median=True) == pytest.approx(0.09 / 1.2)
    assert r.ratio("bag", reference="sync") == pytest.approx(0.66 / 0.5)
    assert (r.target("chain"), r.target("bag"), r.target("array")) == (0.1, 0.6, None)
    assert r.targets_apply and r.meets_target("chain") is True and r.meets_target("bag") is False
    assert r.meets_target("array") is None and r.verdicts == {"chain": True, "bag": False}
    assert r.ratios["array"] == [pytest.approx(0.4), pytest.approx(0.5 / 1.2)]
    assert r.row("chain", "nope") is None and r.ratio("nope") is None


@pytest.mark.parametrize("over", [dict(label="3.13"), dict(label="3.13", backend="threads"),
                                  dict(gil_enabled=True)])
def test_the_dask_get_targets_apply_to_free_threaded_builds_with_the_gil_off(over):
    r = _dask(**over)
    assert r.ratio("chain") == pytest.approx(0.08)  # reported all the same
    assert (r.targets_apply, r.meets_target("chain"), r.verdicts) == (False, None, {"chain": None, "bag": None})


def test_the_dask_records_round_trip_through_json():
    noisy = _dask(background_cpus=0.9)
    for rec in (_dask(), _dask("3.13", "threads"), DaskGetResult(ok=False, error="exit 1: boom", interpreter="3.13"),
                _dask(skipped=["array (numpy is not installed)"]),
                with_interpreter(_dask(), "3.13t", [noisy])):
        doc = json.loads(json.dumps(rec.to_json()))
        assert DaskGetResult.from_json(doc) == rec
    doc = _dask().to_json()
    assert doc["ratios"]["chain"] == [pytest.approx(0.08), pytest.approx(0.075)]
    assert doc["verdicts"] == {"chain": True, "bag": False} and doc["targets_apply"] is True
    assert doc["rows"][0]["per_task_us"] == pytest.approx(40.0) and doc["rows"][0]["times_s"] == [0.09, 0.08, 0.1]
    assert DaskGetRow.from_json(doc["rows"][0]) == _dask().rows[0]
    assert noisy.noisy and not _dask().noisy
    failed = DaskGetResult(ok=False, error="x")
    assert (failed.workloads, failed.ratios, failed.verdicts, failed.targets_apply) == ([], {}, {}, False)


def test_the_distributed_record_derives_its_ratios():
    r = _distributed()
    assert (r.ok, r.mode, r.workers, r.spin_per_ms, r.workloads) == (True, "quick", 2, SPIN, ["chain", "cpu"])
    d = r.row("chain", "distributed")
    assert (d.best_s, d.median_s, d.per_task_us) == (1.8, 2.0, pytest.approx(9000.0))
    assert r.distributed_over("chain", "threads") == pytest.approx(1800.0)
    assert r.distributed_over("chain", "processes", median=True) == pytest.approx(2.0 / 0.03)
    assert r.ratios["cpu"] == {"threads": [pytest.approx(2.25), pytest.approx(2.0)],
                               "processes": [pytest.approx(2.0), pytest.approx(0.4 / 0.19)]}
    assert r.worker_warnings() == []
    assert _distributed("3.13").worker_warnings() == []  # the profiler is only a problem on free-threaded builds
    bad = {"free_threaded": True, "gil_enabled": True, "profiler": True}
    assert _distributed(worker_reports={"tcp://w": bad}).worker_warnings() == ["tcp://w: GIL on",
                                                                               "tcp://w: profiler on"]


def test_the_distributed_records_round_trip_through_json():
    failed_backend = _distributed_doc()
    failed_backend["rows"][2] = dict(failed_backend["rows"][2], times_s=[], best_s=None, median_s=None,
                                     error="ImportError: no distributed")
    broken = with_interpreter(DistributedResult.from_document(failed_backend), "3.13t")
    assert broken.row("chain", "distributed").best_s is None and broken.distributed_over("chain", "threads") is None
    for rec in (_distributed(), broken, DistributedResult(ok=False, error="timed out after 180 s")):
        doc = json.loads(json.dumps(rec.to_json()))
        assert DistributedResult.from_json(doc) == rec
    doc = _distributed().to_json()
    assert doc["ratios"]["chain"]["threads"] == [pytest.approx(1800.0), pytest.approx(1000.0)]
    assert doc["rows"][2]["best_s"] == 1.8 and doc["rows"][2]["per_task_us"] == pytest.approx(9000.0)
    assert DistributedRow.from_json(doc["rows"][2]) == _distributed().rows[2]


# -- markdown ------------------------------------------------------------------------------------


def test_the_dask_get_section_renders_every_kind_of_row():
    failed = DaskGetResult(ok=False, error="dask not installed in the bench venv (/v)", requested_backend="auto",
                           interpreter="3.14t")
    results = [_dask(skipped=["array (numpy is not installed)"]), _dask("3.13"), _dask("3.13", "threads"), failed]
    text = report.dask_get_markdown(results)
    assert text.startswith("### ftdag.get as a dask scheduler\n\n")
    assert "a chain of 1000 no-op `dask.delayed` tasks" in text and "Quick mode: the workloads are 5 times" in text
    assert ("| interpreter | ftdag backend | workload | tasks | ftdag | dask.threaded.get | dask.get "
            "| µs/task ftdag / threaded | ftdag × threaded | ftdag × sync | target | runs |") in text
    assert "| --- | --- | --- | ---: |" in text
    assert ("| 3.13t | auto → threads (default) | chain | 2000 | 80.0 ms / 90.0 ms | 1.00 s / 1.20 s "
            "| 500.0 ms / 600.0 ms | 40.0 / 500 | 0.08× / 0.075× | 0.16× | ≤ 0.1×: met (quick sizes) | 3 |") in text
    assert "| 3.13t | auto → threads (default) | bag | 430 |" in text and "| ≤ 0.6×: **missed** (quick sizes) |" in text
    assert "| 3.13t | auto → threads (default) | not measured: array (numpy is not installed) |" in text
    assert "| 3.13 | auto → processes (default) | chain | 2000 |" in text
    assert "| 3.13 | threads | bag | 430 |" in text and "| (≤ 0.6× on free-threaded builds) |" in text
    assert "| 3.14t | auto (default) | n/a: dask not installed in the bench venv (/v) |" in text
    assert ("- 3.13t, ftdag's default (threads): ftdag's time over `dask.threaded.get`'s, best: chain 0.08× "
            "(target ≤ 0.1×: met), bag 0.66× (target ≤ 0.6×: missed), array 0.40×.") in text
    assert "- 3.13, ftdag's default (processes): " in text and "- 3.13, threads: " in text
    assert text.count("(the targets are for free-threaded builds).") == 2
    assert text.count("\n- ") == 3  # one line per measured record, none for the failed one
    full = report.dask_get_markdown([_dask(mode="full")])
    assert "Quick mode" not in full and "| ≤ 0.1×: met |" in full
    assert "n/a (GIL re-enabled)" in report.dask_get_markdown([_dask(gil_enabled=True)])


def test_the_distributed_section_renders_every_kind_of_row():
    failed_backend = _distributed_doc()
    failed_backend["rows"][5] = dict(failed_backend["rows"][5], times_s=[], error="RuntimeError: no cluster")
    results = [_distributed(), _distributed("3.13"),
               with_interpreter(DistributedResult.from_document(failed_backend), "3.14t"),
               DistributedResult(ok=False, error="timed out after 180 s", interpreter="3.13"),
               _distributed(worker_reports={"tcp://w": {"free_threaded": True, "gil_enabled": False,
                                                        "profiler": True}}, background_cpus=0.5)]
    text = report.distributed_markdown(results)
    assert text.startswith("### The distributed backend against threads and processes\n\n")
    assert "a chain of 200 no-op tasks" in text and "No target" in text
    assert ("| interpreter | workload | tasks | threads | processes | distributed "
            "| µs/task threads / processes / distributed | distributed × threads | distributed × processes "
            "| rounds |") in text
    assert ("| 3.13t | chain | 200 | 1.0 ms / 2.0 ms | 20.0 ms / 30.0 ms | 1.80 s / 2.00 s | 5.0 / 100 / 9,000 "
            "| 1,800× / 1,000× | 90.00× / 66.67× | 3 |") in text
    assert "| 3.13t | cpu | 32 | 160.0 ms / 200.0 ms | 180.0 ms / 190.0 ms | 360.0 ms / 400.0 ms |" in text
    assert "| 3.14t | cpu | 32 | 160.0 ms / 200.0 ms | 180.0 ms / 190.0 ms | n/a: RuntimeError: no cluster |" in text
    assert "| 3.13 | n/a: timed out after 180 s |" in text
    assert "360.0 ms / 400.0 ms† |" in text  # the noisy record
    assert "- 3.13t: 2 distributed workers (free-threaded, GIL off, profiler off)." in text
    assert "- 3.13: 2 distributed workers (GIL build, GIL on, profiler on)." in text
    assert "- 3.13t: 1 distributed workers (free-threaded, GIL off, profiler on); **⚠ tcp://w: profiler on**." in text


def _comparison(order=(), dask_get=(), distributed=()) -> report.Comparison:
    settings = report.Settings(workers=2, size="quick", repeat=5, budget_s=1.5, timeout_s=90, noisy_retries=0,
                               spin_per_ms=SPIN, calibrated_on="3.13", workloads=(), runners=(),
                               sweep_work_us=200_000)
    return report.Comparison("quick", "2026-01-01T00:00:00+00:00", 1.0, {"cpu_count": 2, "platform": "Linux"},
                             (_interp("3.13"), _interp("3.13t")), settings, (), order=tuple(order),
                             dask_get=tuple(dask_get), distributed=tuple(distributed))


def test_the_report_has_both_sections_after_the_ready_order_and_results_json_keeps_them():
    from records import OrderResult

    order = OrderResult(ok=False, error="boom", interpreter="3.13t")
    c = _comparison([order], [_dask(), _dask("3.13", "threads")], [_distributed()])
    text = report.markdown_report(c, chart=True)
    assert (text.index("### Ready order") < text.index("### ftdag.get as a dask scheduler")
            < text.index("### The distributed backend") < text.index(report.CHART_LINK))
    doc = json.loads(json.dumps(c.to_json()))
    assert [DaskGetResult.from_json(d) for d in doc["dask_get"]] == list(c.dask_get)
    assert [DistributedResult.from_json(d) for d in doc["distributed"]] == list(c.distributed)
    # Not measured (compare.py --no-extras): no section, empty keys.
    plain = _comparison([order])
    assert "### ftdag.get" not in report.markdown_report(plain, chart=False)
    assert "### The distributed backend" not in report.markdown_report(plain, chart=False)
    assert (plain.to_json()["dask_get"], plain.to_json()["distributed"]) == ([], [])


# -- the scripts, as the main job runs them --------------------------------------------------------


def test_dask_get_runs_at_a_tiny_size_and_its_document_is_a_record():
    pytest.importorskip("dask")
    r = measurement.run_dask_get(sys.executable, quick=True, workers=2, timeout=3 * TIMEOUT, env=_env(),
                                 extra=["--divisor", "500"])
    assert r.ok, r.error
    assert (r.mode, r.requested_backend, r.workers) == ("quick", "auto", 2)
    assert r.ftdag_backend == ("threads" if FREE_THREADED else "processes")
    assert r.free_threaded_build is FREE_THREADED and r.gil_enabled is (not FREE_THREADED)
    numpy = importlib.util.find_spec("numpy") is not None
    assert r.workloads == (["chain", "bag", "array"] if numpy else ["chain", "bag"])
    assert r.skipped == (() if numpy else ("array (numpy is not installed)",))
    for w in r.workloads:
        for s in ("ftdag", "threaded", "sync"):
            row = r.row(w, s)
            assert row.runs == 3 and len(row.times_s) == 3 and all(t > 0 for t in row.times_s)
        assert r.ratio(w) > 0 and r.ratio(w, median=True) > 0
    assert r.row("chain", "ftdag").tasks == 20 and r.target("chain") == 0.1 and r.target("bag") == 0.6
    assert r.targets_apply is FREE_THREADED


def test_dask_get_runs_ftdag_on_threads_when_asked():
    pytest.importorskip("dask")
    r = measurement.run_dask_get(sys.executable, quick=True, workers=2, backend="threads", timeout=3 * TIMEOUT,
                                 env=_env(), extra=["--divisor", "500"])
    assert r.ok, r.error
    assert (r.requested_backend, r.ftdag_backend) == ("threads", "threads")
    assert report.dask_get_backend_cell(r) == "threads"


def test_distributed_bench_runs_at_a_tiny_size_and_its_document_is_a_record():
    pytest.importorskip("distributed")

    def run():
        return measurement.run_distributed(sys.executable, quick=True, workers=2, spin_per_ms=1.0,
                                           timeout=6 * TIMEOUT, env=_env(), extra=["--chain", "5"])

    r = run()
    if not r.ok and (r.error or "").startswith("exit -"):
        # The child died of a signal: seen once (SIGSEGV, exit -11) on 3.13t and not in four runs
        # after it.  ftdag is pure Python, so the crash is in CPython or in a C extension the
        # script loads (distributed brings msgpack and tornado's).  One more attempt, so that this
        # test checks the script and its record; a second crash fails it.
        r = run()
    assert r.ok, r.error
    assert (r.mode, r.workers, r.spin_per_ms, r.workloads) == ("quick", 2, 1.0, ["chain", "cpu"])
    for w in r.workloads:
        for b in r.BACKENDS:
            row = r.row(w, b)
            assert row.error is None and len(row.times_s) == 3 and row.best_s > 0
    assert r.row("chain", "threads").tasks == 5 and r.row("cpu", "threads").tasks == 32
    assert r.distributed_over("chain", "threads") > 0
    assert len(r.worker_reports) == 2
    assert all(rep["free_threaded"] is FREE_THREADED for rep in r.worker_reports.values())
    assert r.worker_warnings() == []  # on a free-threaded build: the GIL off and the profiler off on every worker


def test_a_child_that_cannot_start_is_an_error_cell(tmp_path):
    missing = str(tmp_path / "no-python")
    d = measurement.run_dask_get(missing, quick=True, workers=2, backend="threads", timeout=30)
    assert (d.ok, d.mode, d.requested_backend, d.workers) == (False, "quick", "threads", 2)
    assert "could not start" in d.error
    x = measurement.run_distributed(missing, quick=False, workers=2, spin_per_ms=SPIN, timeout=30)
    assert (x.ok, x.mode, x.workers) == (False, "full", 2) and "could not start" in x.error


# -- the main job's wiring -----------------------------------------------------------------------


def test_ftdag_get_runs_on_its_default_everywhere_and_on_threads_too_on_gil_builds():
    assert measurement.dask_get_backends(_interp("3.13t")) == ["auto"]
    assert measurement.dask_get_backends(_interp("3.13")) == ["auto", "threads"]


def test_a_missing_package_costs_only_its_cells(tmp_path):
    """No child is started (the venv's python does not exist): the record says what is missing."""
    mode = measurement.Mode("quick", "quick", repeat=2, budget=1.0, timeout=30, retries=0)
    measurer = measurement.Measurer(mode, 2, SPIN, _env())
    gil = _interp("3.13", python=str(tmp_path / "no-python"), packages={"ftdag": "0.1"})
    ft = _interp("3.13t", python=str(tmp_path / "no-python"), packages={"ftdag": "0.1", "dask": "1"})
    dask_get = measurer.dask_get([gil, ft])
    assert [(r.interpreter, r.requested_backend, r.ok) for r in dask_get] == [
        ("3.13t", "auto", False), ("3.13", "auto", False), ("3.13", "threads", False)]
    assert "could not start" in dask_get[0].error  # dask is there: the child was tried
    assert dask_get[1].error == "dask not installed in the bench venv (/venv3.13)"
    distributed = measurer.distributed([gil, ft])
    assert [r.interpreter for r in distributed] == ["3.13t", "3.13"]
    assert all(r.error == f"distributed not installed in the bench venv (/venv{r.interpreter})" for r in distributed)
    assert measurement.missing_packages(_interp("3.13"), "dask", "distributed") is None


def test_the_main_job_measures_them_with_the_extras_only(tmp_path, monkeypatch):
    """``compare.py --only-extras`` writes both sections; ``--no-extras`` measures neither."""
    calls = []
    monkeypatch.setattr(compare, "prepare_interpreters", lambda args: [_interp("3.13"), _interp("3.13t")])
    monkeypatch.setattr(compare, "calibrate", lambda python, env: SPIN)
    monkeypatch.setattr(measurement.Measurer, "store_overhead", lambda self, interp: [])
    monkeypatch.setattr(measurement.Measurer, "resume", lambda self, interps: [])
    monkeypatch.setattr(measurement.Measurer, "order", lambda self, interps: [])
    monkeypatch.setattr(measurement.Measurer, "table", lambda self, *a: calls.append("table") or [])
    monkeypatch.setattr(measurement.Measurer, "small_graphs", lambda self, interps: [])
    monkeypatch.setattr(measurement.Measurer, "dask_get",
                        lambda self, interps: calls.append(("dask_get", self.mode.name)) or [_dask()])
    monkeypatch.setattr(measurement.Measurer, "distributed",
                        lambda self, interps: calls.append(("distributed", self.mode.name)) or [_distributed()])
    assert compare.main(["--only-extras", "--out", str(tmp_path / "a")]) == 0
    assert calls == [("dask_get", "quick"), ("distributed", "quick")]
    text = (tmp_path / "a" / "results.md").read_text()
    assert "### ftdag.get as a dask scheduler" in text and "### The distributed backend" in text
    doc = json.loads((tmp_path / "a" / "results.json").read_text())
    assert [DaskGetResult.from_json(d) for d in doc["dask_get"]] == [_dask()]
    calls.clear()
    assert compare.main(["--no-extras", "--no-sweep", "--no-chart", "--workload", "chain", "--out",
                         str(tmp_path / "b")]) == 0
    assert calls == ["table"]
    assert "### ftdag.get" not in (tmp_path / "b" / "results.md").read_text()
    calls.clear()
    assert compare.main(["--only-extras", "--full", "--out", str(tmp_path / "c")]) == 0
    assert calls == [("dask_get", "full"), ("distributed", "full")]


# -- the bench venvs -----------------------------------------------------------------------------


def test_the_bench_venvs_get_distributed_and_numpy_below_2_5(tmp_path, monkeypatch):
    """``ensure_venv`` on an existing venv: what it installs, and a package that cannot be installed
    costs only its cells (no pip runs here: ``_pip`` and ``_installed`` are stand-ins)."""
    import environment

    interp = _interp("3.13t")
    vdir = tmp_path / interp.venv_name
    (vdir / "bin").mkdir(parents=True)
    (vdir / "bin" / "python").touch()
    (vdir / "ftdag-bench.json").write_text(json.dumps({"base": os.path.realpath(interp.executable),
                                                        "base_version": interp.version}))
    have = {"ftdag": "0.1.0", "dask": "2026.8.0", "distributed": None, "numpy": "2.5.1", "matplotlib": None}
    calls = []

    def pip(python, *args):
        calls.append(args)
        if "distributed" in args:
            return False, "error: could not build msgpack"
        if "numpy<2.5" in args:
            have["numpy"] = "2.4.6"
        return True, ""

    monkeypatch.setattr(environment, "VENVS", tmp_path)
    monkeypatch.setattr(environment, "ftdag_fingerprint", lambda: "fp")
    monkeypatch.setattr(environment, "_installed", lambda python, modules: {m: have[m] for m in modules})
    monkeypatch.setattr(environment, "_pip", pip)
    ready = environment.ensure_venv(interp, with_matplotlib=False)
    assert calls == [("--force-reinstall", "--no-deps", str(environment.REPO)),  # a new fingerprint
                     ("distributed", "numpy<2.5"),  # together first, then one at a time
                     ("distributed",), ("numpy<2.5",)]
    assert ready.bench.packages == {"ftdag": "0.1.0", "dask": "2026.8.0", "distributed": None, "numpy": "2.4.6"}
    state = json.loads((vdir / "ftdag-bench.json").read_text())
    assert state["distributed_failed"] == "error: could not build msgpack"
    assert measurement.missing_packages(ready, "distributed") == f"distributed not installed in the bench venv ({vdir})"
    assert measurement.missing_packages(ready, "dask") is None
    calls.clear()  # the next run does not try again
    environment.ensure_venv(interp, with_matplotlib=False)
    assert calls == []
    assert (environment._too_new("numpy", "2.5.0"), environment._too_new("numpy", "2.4.6"),
            environment._too_new("dask", "2026.8.0"), environment._too_new("numpy", None)) == (True, False, False, False)


def test_pip_prefers_wheels_and_constrains_numpy(tmp_path, monkeypatch):
    import subprocess

    import environment

    seen = {}

    def run(cmd, **kw):
        seen.update(cmd=cmd, env=kw["env"])
        return subprocess.CompletedProcess(cmd, 0, "", "")

    (tmp_path / "bin").mkdir()
    monkeypatch.setattr(environment.subprocess, "run", run)
    assert environment._pip(tmp_path / "bin" / "python", "matplotlib") == (True, "")
    constraints = tmp_path / "ftdag-constraints.txt"
    assert seen["cmd"][1:] == ["-m", "pip", "install", "--quiet", "-c", str(constraints), "matplotlib"]
    assert constraints.read_text() == "numpy<2.5\n" and seen["env"]["PIP_PREFER_BINARY"] == "1"
