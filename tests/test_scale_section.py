"""The comparison's scale section (benchmarks/scale.py): its record derives its numbers and targets and
round-trips through JSON, the markdown renders measured, reference-only, failed and skipped rows,
``scale.py`` runs at a tiny size and writes every field, its graph is the one described in its docstring, a child that cannot
start is a result cell, the main job measures it on every interpreter, 3.13t first, and the chart is
drawn from either document.  No timing assertions."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
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
import scale  # noqa: E402
from environment import BenchVenv, Interpreter  # noqa: E402
from records import ScaleResult  # noqa: E402

pytestmark = pytest.mark.timeout(120)

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
LABEL = f"{sys.version_info.major}.{sys.version_info.minor}{'t' if FREE_THREADED else ''}"
TINY = (300, 700)  # nodes: a few ms per run


def _env() -> dict[str, str]:
    """This interpreter's environment, with the ftdag under test importable in a child."""
    src = str(Path(ftdag.__file__).resolve().parent.parent)
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))


def _scale(n=200_000, interp="3.13t", ok=True, **over) -> ScaleResult:
    """A record with round numbers: per node, build 30 µs, graphlib 10, plain 1, sequential 2, threads 5."""
    if not ok:
        fields = dict(n_nodes=n, ok=False, error="CheckFailed: the threads run executed 9 nodes, not all 10",
                      workers=2, free_threaded_build=True, interpreter=interp)
        fields.update(over)
        return ScaleResult(**fields)
    us = n * 1e-6
    fields = dict(n_nodes=n, ok=True, seed=14, n_edges=2 * n, n_sinks=n // 8, workers=2,
                  build_s=(30 * us, 31 * us), graphlib_s=(10 * us,), plain_s=(1 * us,),
                  first_sequential_s=(6 * us,), first_threads_s=(6 * us,), sequential_s=(2 * us, 3 * us, 4 * us),
                  threads_s=(5 * us, 5 * us, 9 * us), processes_s=(100 * us,), time_child_s=40.0,
                  dag_bytes=320 * n, build_peak_bytes=900 * n, memory_workers=(2, 16), run_bytes=(420 * n, 4900 * n),
                  run_peak_bytes=(500 * n, 5100 * n), memory_child_s=60.0, free_threaded_build=True,
                  gil_enabled_after=False, background_cpus=0.0, steal_cpus=0.0, interpreter=interp)
    fields.update(over)
    return ScaleResult(**fields)


def _gil(n=200_000, **over) -> ScaleResult:
    return _scale(n, "3.13", free_threaded_build=False, gil_enabled_after=True, **over)


# -- the record ----------------------------------------------------------------------------------


def test_the_record_derives_its_numbers():
    r = _scale()
    assert r.rounds == 3 and r.per_node(r.build_best_s) == pytest.approx(30e-6)
    assert (r.sequential_best_s, r.sequential_median_s) == (pytest.approx(0.4), pytest.approx(0.6))
    assert r.threads_median_s == pytest.approx(1.0)
    assert r.build_over_graphlib == pytest.approx(3.0)
    assert (r.sequential_over_plain, r.threads_over_plain, r.processes_over_plain) == (
        pytest.approx(2.0), pytest.approx(5.0), pytest.approx(100.0))
    assert r.threads_over_sequential == pytest.approx(2.5)
    assert (r.first_over_repeated_sequential, r.first_over_repeated_threads) == (pytest.approx(3.0),
                                                                               pytest.approx(1.2))
    assert r.dag_bytes_per_node == 320 and r.run_bytes_per_node == (420, 4900)
    assert r.targets_apply
    assert (r.meets_threads_target, r.meets_first_run_target, r.meets_run_bytes_target,
            r.meets_dag_bytes_target) == (False, False, False, False)
    assert r.meets_build_target is None  # stated for 1M nodes
    good = _scale(1_000_000, threads_s=(3.9,), first_sequential_s=(2.9,), first_threads_s=(5.0,),
                  build_s=(9.0,), dag_bytes=290_000_000, run_bytes=(80_000_000, 85_000_000))
    assert good.meets_threads_target is None  # stated for 200,000 nodes
    assert (good.meets_first_run_target, good.meets_build_target, good.meets_run_bytes_target,
            good.meets_dag_bytes_target) == (True, True, True, True)


def test_a_run_adds_the_same_bytes_for_every_worker_count_within_a_margin():
    n = 100_000
    assert _scale(n, run_bytes=(50 * n, 59 * n)).meets_run_bytes_target  # within 10 B
    assert not _scale(n, run_bytes=(50 * n, 61 * n)).meets_run_bytes_target
    assert _scale(n, run_bytes=(90 * n, 99 * n)).meets_run_bytes_target  # within 10%
    assert not _scale(n, run_bytes=(99 * n, 101 * n)).meets_run_bytes_target  # over 100 B
    assert _scale(n, memory_workers=(), run_bytes=()).meets_run_bytes_target is None


@pytest.mark.parametrize("over", [dict(free_threaded_build=False, gil_enabled_after=True),
                                  dict(gil_enabled_after=True), dict(workers=4)])
def test_the_targets_apply_to_free_threaded_builds_on_2_workers_only(over):
    r = _scale(**over)
    assert r.threads_over_sequential is not None  # the numbers are reported all the same
    assert not r.targets_apply
    assert (r.meets_threads_target, r.meets_first_run_target, r.meets_build_target, r.meets_run_bytes_target,
            r.meets_dag_bytes_target) == (None,) * 5


def test_the_record_round_trips_through_json():
    for rec in (_scale(), _scale(ok=False), _gil(processes_s=(), processes_skipped="not measured above 10 nodes"),
                _scale(memory_workers=(), run_bytes=(), run_peak_bytes=(), dag_bytes=None, build_peak_bytes=None,
                       memory_skipped="not measured above 50,000 nodes"),
                _scale(discarded_noisy_attempts=(_scale(background_cpus=0.9),))):
        doc = json.loads(json.dumps(rec.to_json()))
        assert ScaleResult.from_json(doc) == rec
    doc = json.loads(json.dumps(_scale().to_json()))
    assert doc["memory_workers"] == [2, 16] and doc["run_bytes_per_node"] == [420, 4900]
    assert doc["build_over_graphlib"] == pytest.approx(3.0) and doc["meets_threads_target"] is False
    failed = _scale(ok=False)
    assert (failed.rounds, failed.build_over_graphlib, failed.threads_over_sequential, failed.dag_bytes_per_node,
            failed.run_bytes_per_node, failed.meets_first_run_target) == (0, None, None, None, (), None)
    assert _scale(background_cpus=0.5).noisy and not _scale().noisy


# -- markdown ------------------------------------------------------------------------------------


def test_the_section_renders_measured_failed_and_skipped_rows():
    ft = [_scale(10_000), _scale(50_000, memory_error="TimeoutExpired: timed out after 300 s"),
          _scale(200_000, processes_s=(), processes_skipped="not measured above 10,000 nodes",
                 memory_workers=(), run_bytes=(), run_peak_bytes=(), dag_bytes=None, build_peak_bytes=None,
                 memory_skipped="not measured above 50,000 nodes", background_cpus=0.6)]
    text = report.scale_markdown(ft + [_gil(10_000), _gil(200_000, ok=False)])
    assert text.startswith("### Scale: the random DAG from 10k nodes up\n\n")
    assert text.count("| nodes | edges | add_task + build | graphlib | build ÷ graphlib | plain loop |") == 2
    assert "On 3.13t (free-threaded, GIL off):" in text and "On 3.13 (GIL):" in text
    assert "| --- | ---: |" in text  # nodes is text, the rest numbers
    assert ("| 10,000 | 20,000 | 30.0 µs | 10.0 µs | 3.00× | 1.00 µs | 2.00 µs / 3.00 µs (2.00×) "
            "| 5.00 µs / 5.00 µs (5.00×) | 100 µs / 100 µs (100.00×) | 2.50× | 3.00× / 1.20× | 320 B (900 B) "
            "| 420 B / 4,900 B (2 / 16 workers) | 3 |") in text
    assert "| 50,000 | 100,000 | 30.0 µs |" in text and "| n/a: TimeoutExpired: timed out after 300 s |  | 3 |" in text
    assert ("| 200,000† | 400,000 | 30.0 µs | 10.0 µs | 3.00× | 1.00 µs | 2.00 µs / 3.00 µs (2.00×) "
            "| 5.00 µs / 5.00 µs (5.00×) | — (not measured above 10,000 nodes) | 2.50× | 3.00× / 1.20× "
            "| — (not measured above 50,000 nodes) | — | 3 |") in text
    assert ("| 200,000 |  | n/a: CheckFailed: the threads run executed 9 nodes, not all 10 |" + "  |" * 8
            + " — | — | 0 |") in text
    # The targets, plainly, for the free-threaded build only.
    assert "- threads ≤ 2× sequential on 200,000 nodes: 2.50×: **missed**" in text
    assert ("- first run of a freshly built Dag ≤ 1.5× a repeated run (sequential and threads, every size): "
            "sequential 3.00×–3.00×, threads 1.20×–1.20×: **missed** at 3 of 3 sizes") in text
    assert ("- add_task + build ≤ graphlib's static_order on 1,000,000 nodes: not measured (full mode only); "
            "3.00× on 200,000 nodes") in text
    assert ("- a run adds ≤ 100 B/node, the same for 2 and 16 workers (within 10 B or 10%): 420 B (2 workers) / "
            "4,900 B (16 workers) on 10,000 nodes: **missed** at 1 of 1 sizes measured") in text
    assert "- a Dag ≤ 300 B/node: 320 B on 10,000 nodes: **missed** at 1 of 1 sizes measured" in text
    assert "- Targets: n/a (a GIL build); the numbers are for reference." in text
    assert text.count("- Targets: n/a") == 1 and text.count("- threads ≤ 2×") == 1
    # What was not measured, and what measuring took.
    assert ("- processes: not measured above 10,000 nodes; at 100 µs per node (50,000 nodes), one run would take "
            "~20.00 s at 200,000 nodes.") in text
    assert "- measuring took 100.00 s at 10,000 nodes (timing 40.00 s, memory 60.00 s), 100.00 s at 50,000" in text


def test_met_targets_and_the_1m_build_target_read_plainly():
    def good(n):
        return _scale(n, threads_s=(5.0,), sequential_s=(4.0,), first_sequential_s=(4.1,), first_threads_s=(5.1,),
                      build_s=(9.0,), graphlib_s=(10.0,), dag_bytes=290 * n, run_bytes=(80 * n, 85 * n))

    text = "\n".join(report.scale_targets([good(200_000), good(1_000_000)]))
    assert "- threads ≤ 2× sequential on 200,000 nodes: 1.25×: met" in text
    assert "every size): sequential 1.02×–1.02×, threads 1.02×–1.02×: met" in text
    assert "- add_task + build ≤ graphlib's static_order on 1,000,000 nodes: 0.90×: met" in text
    assert "80 B (2 workers) / 85 B (16 workers) on 1,000,000 nodes: met at all 2 sizes measured" in text
    assert "- a Dag ≤ 300 B/node: 290 B on 1,000,000 nodes: met at all 2 sizes measured" in text
    assert "met at the one size measured" in "\n".join(report.scale_targets([good(10_000)]))
    assert "not measured (no graph of that size)" in "\n".join(report.scale_targets([_scale(10_000)]))
    assert report.scale_targets([]) == []


def _interp(label: str, python: str | None = None) -> Interpreter:
    major, minor = label.rstrip("t").split(".")
    bench = BenchVenv(python=python, venv="", packages={}) if python else None
    return Interpreter(path=f"/py{label}", executable=f"/py{label}", version=f"{major}.{minor}.5", major=int(major),
                       minor=int(minor), ft=label.endswith("t"), bench=bench)


def _comparison(measurements=(), scale_results=(), order_results=()) -> report.Comparison:
    settings = report.Settings(workers=2, size="quick", repeat=5, budget_s=1.5, timeout_s=90, noisy_retries=0,
                               spin_per_ms=2000.0, calibrated_on="3.13", workloads=("fine",) if measurements else (),
                               runners=("ftdag-threads",) if measurements else (), sweep_work_us=200_000)
    return report.Comparison("quick", "2026-01-01T00:00:00+00:00", 1.0, {"cpu_count": 2, "platform": "Linux"},
                             (_interp("3.13"), _interp("3.13t")), settings, tuple(measurements),
                             order=tuple(order_results), scale=tuple(scale_results))


def test_the_report_has_the_section_after_the_ready_order_and_results_json_keeps_it():
    from records import Measurement, OrderResult

    m = Measurement("fine", "ftdag-threads", True, title="fine", description="d", plain_s=(1.0,), runner_s=(0.5,),
                    interpreter="3.13t")
    order = OrderResult(ok=False, error="boom", interpreter="3.13t")
    c = _comparison([m], [_scale(), _gil(ok=False)], [order])
    text = report.markdown_report(c, chart=True, scale_chart=True)
    assert text.index("### Ready order") < text.index("### Scale") < text.index(report.SCALE_CHART_LINK)
    assert text.index(report.SCALE_CHART_LINK) < text.index(report.CHART_LINK)
    assert report.SCALE_CHART_LINK not in report.markdown_report(c, chart=True)  # no scale.png, no link
    doc = json.loads(json.dumps(c.to_json()))
    assert [ScaleResult.from_json(d) for d in doc["scale"]] == list(c.scale)
    # Only the extras (compare.py --only-extras): no comparison table.
    extras = report.markdown_report(_comparison(scale_results=[_scale()]), chart=False)
    assert "| workload |" not in extras and "### Scale" in extras
    # Not measured (compare.py --no-extras): no section, an empty key.
    assert "### Scale" not in report.markdown_report(_comparison([m]), chart=False)
    assert _comparison([m]).to_json()["scale"] == []


def test_compare_draws_the_scale_chart_with_only_the_extras():
    args = compare.parse_args(["--only-extras"])
    assert (args.workload, args.runner, args.no_sweep, args.no_chart) == ([], [], True, False)
    assert compare.parse_args(["--only-extras", "--no-chart"]).no_chart


# -- scale.py ------------------------------------------------------------------------------------


def test_the_graph_is_the_issues():
    spec = scale.make_spec(3000)
    assert list(spec) == list(range(3000)) and spec[0] == () and spec == scale.make_spec(3000)
    assert spec != scale.make_spec(3000, seed=15)
    for i, deps in list(spec.items())[1:]:
        assert 1 <= len(deps) <= 3 and len(set(deps)) == len(deps)
        assert all(max(0, i - 1000) <= d < i for d in deps)
    assert {len(d) for d in list(spec.values())[3:]} == {1, 2, 3}
    sinks = scale.sinks_of(spec)
    used = {d for deps in spec.values() for d in deps}
    assert sinks == [k for k in range(3000) if k not in used] and sinks[-1] == 2999
    dag = scale._build(spec)
    assert len(dag) == 3000 and dag.is_source(0) and dag.dependencies(2999) == spec[2999]
    assert scale._plain(spec)[2999] is None and len(scale._graphlib(spec)) == 3000
    assert [scale.rounds_for(n, "quick") for n in scale.SIZES["quick"]] == [3, 1, 1]
    assert scale.rounds_for(1_000_000, "full") == 1 and scale.SIZES["full"][-1] == 1_000_000


def test_scale_runs_at_a_tiny_size_and_writes_every_field(tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(BENCH / "scale.py"), "--sizes", *map(str, TINY), "--rounds", "2",
                           "--memory-workers", "2", "3", "--json", str(out)], cwd=tmp_path, env=_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=3 * TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["schema"] == "ftdag-scale/1" and doc["free_threaded"] is FREE_THREADED
    assert doc["settings"] == {"mode": "full", "sizes": list(TINY), "workers": 2, "memory_workers": [2, 3],
                               "seed": 14, "rounds": 2, "processes_up_to": scale.PROCESSES_UP_TO["full"],
                               "first_threads_up_to": scale.FIRST_THREADS_UP_TO,
                               "memory_up_to": scale.MEMORY_UP_TO["full"]}
    every = {f.name for f in dataclasses.fields(ScaleResult)} | set(ScaleResult.DERIVED)
    maybe_none = {"error", "processes_skipped", "first_threads_skipped", "memory_error", "memory_skipped",
                  "background_cpus", "steal_cpus",
                  "meets_threads_target", "meets_build_target"}  # (too short, not skipped, not those sizes)
    if not FREE_THREADED:
        maybe_none |= {"meets_first_run_target", "meets_run_bytes_target", "meets_dag_bytes_target"}
    for n, r in zip(TINY, doc["results"], strict=True):
        assert r["ok"] is True, r["error"]
        assert r["memory_error"] is None, r["memory_error"]
        assert set(r) == every
        assert all(r[name] is not None for name in every - maybe_none), [k for k in every if r[k] is None]
        assert (r["n_nodes"], r["workers"], r["seed"], r["rounds"], r["interpreter"]) == (n, 2, 14, 2, LABEL)
        assert r["n_sinks"] == len(scale.sinks_of(scale.make_spec(n)))
        assert len(r["build_s"]) == 4 and all(len(r[k]) == 2 for k in (
            "graphlib_s", "plain_s", "first_sequential_s", "first_threads_s", "sequential_s", "threads_s",
            "processes_s"))
        assert r["memory_workers"] == [2, 3] and len(r["run_bytes"]) == len(r["run_peak_bytes"]) == 2
        assert r["dag_bytes"] > 0 and r["build_peak_bytes"] >= r["dag_bytes"] and min(r["run_bytes"]) > 0
        assert r["gil_enabled_after"] is (not FREE_THREADED) and r["targets_apply"] is FREE_THREADED
        rec = ScaleResult.from_json(r)
        assert rec.ok and rec.build_over_graphlib and rec.threads_over_sequential and rec.dag_bytes_per_node
    assert sum(line.startswith("| ") for line in proc.stdout.splitlines()) == 2 + len(TINY)
    assert f"{TINY[-1]} nodes: build " in proc.stderr and "round 2/2" not in proc.stderr  # the children are quiet


def test_scale_quiet_prints_nothing_and_rejects_bad_options(tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(BENCH / "scale.py"), "--quiet", "--quick", "--sizes", "200",
                           "--memory-workers", "2", "--json", str(out)], env=_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=3 * TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr) == ("", "")
    [r] = json.loads(out.read_text())["results"]
    assert r["rounds"] == scale.rounds_for(200, "quick") and r["ok"]
    for bad in (["--sizes", "1"], ["--rounds", "0"], ["--workers", "0"], ["--memory-workers", "0"],
                ["--child", "time"], ["--child", "memory", "--size", "1"]):
        with pytest.raises(SystemExit):
            scale.parse_args(bad)


def test_importing_scale_imports_no_ftdag():
    code = "import sys, scale; print('ftdag' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=BENCH, env=_env(), capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_above_the_first_run_limit_one_dag_serves_both_backends():
    """In this process: one build per round, no first run on threads (the threads reuse the plan)."""
    r = scale.measure_time(120, workers=2, rounds=2, processes=False, first_threads=False)
    assert r.ok, r.error
    assert (len(r.build_s), len(r.first_sequential_s), len(r.first_threads_s), len(r.threads_s)) == (2, 2, 0, 2)
    assert (r.first_threads_skipped, r.processes_skipped, r.processes_s) == ("not measured", "not measured", ())
    assert r.first_over_repeated_threads is None and r.first_over_repeated_sequential is not None
    # The target is then judged on the sequential first run alone, and the report says why threads is missing.
    fast = _scale(1_000_000, first_threads_s=(), first_threads_skipped="not measured above 200,000 nodes",
                  first_sequential_s=(2.5,))
    assert fast.meets_first_run_target is True
    text = report.scale_markdown([_scale(200_000), fast])
    assert "| 3.00× / 1.20× |" in text and "| 1.25× / — |" in text
    assert "every size): sequential 1.25×–3.00×, threads 1.20×–1.20×: **missed** at 1 of 2 sizes" in text
    assert "- first run on threads: not measured above 200,000 nodes (there one Dag per round serves" in text


def test_a_failing_run_is_a_result_cell():
    r = scale.measure_time(50, workers=0, rounds=1, processes=False)
    assert r.ok is False and r.error.startswith("ValueError: ") and "max_workers" in r.error
    assert (r.n_nodes, r.workers, r.rounds, r.processes_skipped) == (50, 0, 0, "not measured")
    mem = scale.measure_memory(50, [0])
    assert mem["memory_error"].startswith("ValueError: ") and mem["dag_bytes"] > 0 and "run_bytes" not in mem


# -- the main job's wiring -----------------------------------------------------------------------


def test_a_child_that_cannot_start_is_an_error_cell(tmp_path):
    r = measurement.run_scale(str(tmp_path / "no-python"), 100, mode="quick", workers=2, timeout=30)
    assert (r.ok, r.n_nodes, r.workers) == (False, 100, 2) and "could not start" in r.error
    assert "could not start" in r.memory_error
    big = measurement.run_scale(str(tmp_path / "no-python"), 200_000, mode="quick", workers=2, timeout=30)
    assert big.memory_skipped == "not measured above 10,000 nodes" and big.memory_error is None
    assert big.processes_skipped == "not measured above 10,000 nodes" and big.first_threads_skipped is None
    huge = measurement.run_scale(str(tmp_path / "no-python"), 1_000_000, mode="full", workers=2, timeout=30)
    assert huge.first_threads_skipped is None  # first runs on threads are measured up to 1M nodes
    assert huge.processes_skipped == "not measured above 100,000 nodes"
    assert huge.memory_skipped == "not measured above 100,000 nodes"


def test_the_measurer_labels_each_record_313t_first(monkeypatch):
    """The main job's path (``Measurer.scale`` → ``run_scale`` → two ``scale.py`` children), at a tiny size."""
    monkeypatch.setitem(scale.SIZES, "quick", (TINY[0],))
    mode = measurement.Mode("quick", "quick", repeat=2, budget=1.0, timeout=3 * TIMEOUT, retries=0)
    measurer = measurement.Measurer(mode, 2, 2000.0, _env())
    other = "3.13" if FREE_THREADED else "3.13t"
    recs = measurer.scale([_interp(other, python=str(Path(sys.executable).parent / "no-such-python")),
                           _interp(LABEL, python=sys.executable)])
    assert [r.interpreter for r in recs] == ["3.13t", "3.13"]
    mine = next(r for r in recs if r.interpreter == LABEL)
    assert mine.ok and not mine.memory_error, (mine.error, mine.memory_error)
    assert (mine.n_nodes, mine.rounds, mine.workers, mine.memory_workers) == (TINY[0], 3, 2, (2, 16))
    theirs = next(r for r in recs if r.interpreter == other)
    assert not theirs.ok and "could not start" in theirs.error


def test_the_chart_is_drawn_from_either_document(tmp_path):
    pytest.importorskip("matplotlib")
    recs = [_scale(10_000), _scale(50_000), _scale(200_000, processes_s=())]
    ours = tmp_path / "scale.json"
    ours.write_text(json.dumps({"schema": scale.SCHEMA, "date": "2026-01-01", "settings": {"mode": "quick"},
                                "results": [r.to_json() for r in recs]}))
    scale.draw(ours, tmp_path / "a.png")
    c = _comparison(scale_results=recs + [_gil(10_000), _gil(50_000, ok=False)])
    theirs = tmp_path / "results.json"
    theirs.write_text(json.dumps(c.to_json()))
    scale.draw(theirs, tmp_path / "b.png")
    for png in ("a.png", "b.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
