"""The comparison's ready-order section (benchmarks/order.py): its record derives its numbers and
round-trips through JSON, the markdown renders measured, reference-only and failed rows, ``order.py``
runs in a tiny configuration and writes every field, a failing run or child is a result cell, and
the main job measures it on every interpreter, 3.13t first.  No timing assertions."""

from __future__ import annotations

import dataclasses
import functools
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

import measurement  # noqa: E402
import order  # noqa: E402
import report  # noqa: E402
from environment import BenchVenv, Interpreter  # noqa: E402
from records import OrderResult  # noqa: E402

pytestmark = pytest.mark.timeout(120)

SPIN = 2000.0  # loop rounds per "ms": fixed, so that no test calibrates
TINY_MS = 0.02  # 40 loop rounds per task: 80 tasks are a few ms per run
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
LABEL = f"{sys.version_info.major}.{sys.version_info.minor}{'t' if FREE_THREADED else ''}"


def _env() -> dict[str, str]:
    """This interpreter's environment, with the ftdag under test importable in a child."""
    src = str(Path(ftdag.__file__).resolve().parent.parent)
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))


def _order(interp="3.13t", ok=True, **over) -> OrderResult:
    if not ok:
        return OrderResult(ok=False, error="RuntimeError: a fifo run returned other values than the warm-up",
                           workers=2, backend="processes", interpreter=interp, **over)
    fields = dict(ok=True, workers=2, backend="threads", task_ms=10.0, loops=32000,
                  task_alone_s=(0.011, 0.010, 0.012), critical_s=(0.42, 0.41, 0.5), fifo_s=(0.48, 0.5, 0.49),
                  critical_work_s=(0.8, 0.8, 0.8), critical_chain_s=(0.16, 0.16, 0.16), free_threaded_build=True,
                  gil_enabled_after=False, background_cpus=0.0, steal_cpus=0.0, interpreter=interp)
    fields.update(over)
    return OrderResult(**fields)


# -- the record ----------------------------------------------------------------------------------


def test_the_record_derives_its_numbers():
    r = _order()
    assert (r.rounds, r.task_s) == (3, 0.010)
    assert r.lower_bound_s == pytest.approx(0.4)  # (64 + 16) tasks * 10 ms / 2 workers > 16 * 10 ms
    assert (r.critical_best_s, r.critical_median_s, r.fifo_best_s, r.fifo_median_s) == (0.41, 0.42, 0.48, 0.49)
    assert r.critical_over_bound == pytest.approx(1.025)
    assert r.critical_over_fifo == pytest.approx(0.41 / 0.48)
    assert r.shorter_than_fifo == pytest.approx(1 - 0.41 / 0.48)
    assert r.critical_over_work == pytest.approx(1.05)  # the median of 0.42, 0.41, 0.5 over 0.4
    assert r.targets_apply and r.meets_bound_target is True and r.meets_fifo_target is True
    # The chain bounds the makespan when there are many workers.
    assert _order(workers=8).lower_bound_s == pytest.approx(0.16)
    # Missed targets.
    slow = _order(critical_s=(0.45,), fifo_s=(0.48,), critical_work_s=(0.8,), critical_chain_s=(0.16,))
    assert (slow.meets_bound_target, slow.meets_fifo_target) == (False, False)


@pytest.mark.parametrize("over", [dict(free_threaded_build=False, backend="processes", gil_enabled_after=True),
                                  dict(backend="processes"), dict(gil_enabled_after=True)])
def test_the_targets_apply_to_free_threaded_builds_on_threads_only(over):
    r = _order(**over)
    assert r.critical_over_bound is not None  # the numbers are reported all the same
    assert (r.targets_apply, r.meets_bound_target, r.meets_fifo_target) == (False, None, None)


def test_the_record_round_trips_through_json():
    for rec in (_order(), _order("3.13", ok=False), _order(discarded_noisy_attempts=(_order(background_cpus=0.9),))):
        doc = json.loads(json.dumps(rec.to_json()))
        assert OrderResult.from_json(doc) == rec
    doc = _order().to_json()
    assert doc["critical_s"] == [0.42, 0.41, 0.5] and doc["lower_bound_s"] == pytest.approx(0.4)
    assert doc["meets_bound_target"] is True and doc["targets_apply"] is True
    failed = _order(ok=False)
    assert (failed.rounds, failed.task_s, failed.lower_bound_s, failed.critical_over_bound,
            failed.shorter_than_fifo, failed.critical_over_work, failed.targets_apply) == (0, None, None, None,
                                                                                           None, None, False)
    assert _order(background_cpus=0.5).noisy and not _order().noisy


# -- markdown ------------------------------------------------------------------------------------


def test_the_section_renders_measured_and_failed_rows():
    gil = _order("3.13", backend="processes", free_threaded_build=False, gil_enabled_after=True)
    missed = _order("3.14t", critical_s=(0.45,), fifo_s=(0.48,), critical_work_s=(0.8,), critical_chain_s=(0.16,),
                    background_cpus=0.5)
    text = report.order_markdown([_order(), missed, gil, _order("3.13", ok=False)])
    assert text.startswith("### Ready order: critical path against FIFO\n\n")
    assert "64 independent CPU tasks added first, then one chain of 16 tasks, each 10 ms" in text
    assert ("| interpreter | backend | workers | task (alone) | lower bound | critical path | × bound | FIFO "
            "| critical path shorter than FIFO | targets | rounds |") in text
    assert "| --- | --- | ---: |" in text  # interpreter and backend are text
    assert ("| 3.13t | threads | 2 | 10.0 ms | 400.0 ms | 410.0 ms / 420.0 ms | 1.02× | 480.0 ms / 490.0 ms | 14.6% "
            "| ≤ 1.05× bound: met; ≥ 10% shorter: met | 3 |") in text
    assert ("| 3.14t | threads | 2 | 10.0 ms | 400.0 ms | 450.0 ms / 450.0 ms† | 1.12× | 480.0 ms / 480.0 ms | 6.2% "
            "| ≤ 1.05× bound: **missed**; ≥ 10% shorter: **missed** | 1 |") in text
    assert "| 3.13 | processes | 2 | 10.0 ms | 400.0 ms | 410.0 ms / 420.0 ms | 1.02× |" in text
    assert "| n/a (GIL build) | 3 |" in text
    assert "| 3.13 | processes | 2 | n/a: RuntimeError: a fifo run returned other values than the warm-up |" in text
    assert "- 3.13t (threads): a critical-path run took 1.05× the bound its tasks' own times" in text
    assert "against 1.02× the lower bound from their time alone" in text
    assert text.count("\n- ") == 3  # one line per measured row, none for the failed one
    only_failed = report.order_markdown([_order(ok=False)])
    assert "n/a: RuntimeError" in only_failed and "\n- " not in only_failed
    # A free-threaded build that ran on processes, or whose GIL came back: no verdict.
    assert "| n/a (processes backend) |" in report.order_table([_order(backend="processes")])
    assert "| n/a (GIL re-enabled) |" in report.order_table([_order(gil_enabled_after=True)])


def _interp(label: str, python: str | None = None) -> Interpreter:
    major, minor = label.rstrip("t").split(".")
    bench = BenchVenv(python=python, venv="", packages={}) if python else None
    return Interpreter(path=f"/py{label}", executable=f"/py{label}", version=f"{major}.{minor}.5", major=int(major),
                       minor=int(minor), ft=label.endswith("t"), bench=bench)


def _comparison(measurements=(), order_results=(), resume=()) -> report.Comparison:
    settings = report.Settings(workers=2, size="quick", repeat=5, budget_s=1.5, timeout_s=90, noisy_retries=0,
                               spin_per_ms=SPIN, calibrated_on="3.13", workloads=("fine",) if measurements else (),
                               runners=("ftdag-threads",) if measurements else (), sweep_work_us=200_000)
    return report.Comparison("quick", "2026-01-01T00:00:00+00:00", 1.0, {"cpu_count": 2, "platform": "Linux"},
                             (_interp("3.13"), _interp("3.13t")), settings, tuple(measurements),
                             resume=tuple(resume), order=tuple(order_results))


def test_the_report_has_the_section_last_and_results_json_keeps_it():
    from records import Measurement, ResumeResult

    m = Measurement("fine", "ftdag-threads", True, title="fine", description="d", plain_s=(1.0,), runner_s=(0.5,),
                    interpreter="3.13t")
    resume = ResumeResult(size="quick", ok=False, error="boom", interpreter="3.13t")
    c = _comparison([m], [_order(), _order("3.13", ok=False)], [resume])
    text = report.markdown_report(c, chart=True)
    assert text.index("### Resuming") < text.index("### Ready order") < text.index(report.CHART_LINK)
    doc = json.loads(json.dumps(c.to_json()))
    assert [OrderResult.from_json(d) for d in doc["order"]] == list(c.order)
    # Only the extras (compare.py --only-extras): no comparison table.
    extras = report.markdown_report(_comparison(order_results=[_order()]), chart=False)
    assert "| workload |" not in extras and "### Ready order" in extras
    # Not measured (compare.py --no-extras): no section, an empty key.
    assert "### Ready order" not in report.markdown_report(_comparison([m]), chart=False)
    assert _comparison([m]).to_json()["order"] == []


# -- order.py ------------------------------------------------------------------------------------


def test_order_runs_in_a_tiny_configuration_and_writes_every_field(tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(BENCH / "order.py"), "--rounds", "2", "--task-ms", str(TINY_MS),
                           "--spin-per-ms", str(SPIN), "--workers", "2", "--json", str(out)], cwd=tmp_path,
                          env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=3 * TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["schema"] == "ftdag-order/1" and doc["free_threaded"] is FREE_THREADED
    assert doc["settings"] == {"mode": "full", "rounds": 2, "workers": 2, "task_ms": TINY_MS, "spin_per_ms": SPIN,
                               "calibrated_here": False}
    r = doc["result"]
    assert r["ok"] is True, r["error"]
    every = {f.name for f in dataclasses.fields(OrderResult)} | set(OrderResult.DERIVED)
    assert set(r) == every
    maybe_none = {"error", "meets_bound_target", "meets_fifo_target", "background_cpus", "steal_cpus"}  # (too short)
    assert all(r[name] is not None for name in every - maybe_none)
    assert (r["workers"], r["task_ms"], r["loops"], r["n_independent"], r["n_chain"]) == (2, TINY_MS, 40, 64, 16)
    assert r["backend"] == ("threads" if FREE_THREADED else "processes")
    assert r["interpreter"] == LABEL and r["gil_enabled_after"] is (not FREE_THREADED)
    assert r["rounds"] == 2 and len(r["task_alone_s"]) == 3 + 2  # 3 before the first round, then 1 per round
    for timing in ("critical_s", "fifo_s", "critical_work_s", "critical_chain_s"):
        assert len(r[timing]) == 2 and all(t > 0 for t in r[timing])
    assert r["lower_bound_s"] > 0 and r["critical_over_bound"] > 0 and r["critical_over_work"] > 0
    assert r["targets_apply"] is FREE_THREADED
    assert (r["meets_bound_target"] is None, r["meets_fifo_target"] is None) == (not FREE_THREADED,) * 2
    assert OrderResult.from_json(r).ok
    assert sum(line.startswith("| ") for line in proc.stdout.splitlines()) == 3  # header, rule, the row
    assert "round 2/2" in proc.stderr


def test_order_quiet_prints_nothing_and_rejects_bad_options(tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(BENCH / "order.py"), "--quiet", "--quick", "--task-ms", str(TINY_MS),
                           "--spin-per-ms", str(SPIN), "--json", str(out)], env=_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=3 * TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr) == ("", "")
    assert json.loads(out.read_text())["result"]["rounds"] == order.ROUNDS["quick"]
    for bad in (["--task-ms", "0"], ["--rounds", "0"], ["--workers", "0"], ["--spin-per-ms", "-1"]):
        with pytest.raises(SystemExit):
            order.parse_args(bad)


def test_importing_order_imports_no_ftdag():
    code = "import sys, order; print('ftdag' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=BENCH, env=_env(), capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_a_failing_run_is_a_result_cell():
    r = order.measure(workers=0, task_ms=TINY_MS, rounds=1, spin_per_ms=SPIN)
    assert r.ok is False and r.error.startswith("ValueError: ") and "max_workers" in r.error
    assert (r.workers, r.loops, r.rounds, r.critical_over_bound) == (0, 40, 0, None)


# -- the main job's wiring -----------------------------------------------------------------------


def test_a_child_that_cannot_start_is_an_error_cell(tmp_path):
    r = measurement.run_order(str(tmp_path / "no-python"), rounds=2, workers=2, spin_per_ms=SPIN, timeout=30)
    assert (r.ok, r.workers) == (False, 2) and "could not start" in r.error


def test_it_runs_on_every_interpreter_313t_first():
    gil, ft, ft314 = _interp("3.13"), _interp("3.13t"), _interp("3.14t")
    assert measurement.order_interpreters([gil, ft314, ft]) == [ft, ft314, gil]
    assert measurement.order_interpreters([gil, ft314]) == [ft314, gil]
    assert measurement.order_interpreters([]) == []


def test_the_measurer_labels_each_record(monkeypatch):
    """The main job's path (``Measurer.order`` → ``run_order`` → a child ``order.py``), with tiny tasks."""
    monkeypatch.setattr(measurement, "run_order", functools.partial(measurement.run_order, task_ms=TINY_MS))
    mode = measurement.Mode("quick", "quick", repeat=2, budget=1.0, timeout=3 * TIMEOUT, retries=0)
    measurer = measurement.Measurer(mode, 2, SPIN, _env())
    [r] = measurer.order([_interp(LABEL, python=sys.executable)])
    assert r.ok, r.error
    assert (r.interpreter, r.rounds, r.workers, r.task_ms) == (LABEL, 2, 2, TINY_MS)
