"""ftdag.ProgressBar: the summary line off a terminal, the redrawn line on one, tqdm, the
counts under many threads, failures, and its options."""

from __future__ import annotations

import functools
import io
import re
import sys

import pytest
from helpers import add, fails, flaky

import ftdag

BACKENDS = ["sequential", "threads", "processes"]


class FakeTTY(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True




def fan(n):
    """A source and ``n`` tasks that need it, summed by ``total``: ``n + 1`` tasks, ``n + 2`` nodes
    (a bar's total counts the tasks)."""
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    for i in range(n):
        b.add_task(("t", i), ["s"], functools.partial(add, i))
    b.add_task("total", [("t", i) for i in range(n)], add)
    return b.build()


def run(backend, dag, outputs, bar, workers=2, **options):
    with ftdag.Executor(backend=backend, max_workers=workers) as ex:
        return ex.run(dag, outputs, callbacks=[bar], **options)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_summary_line_when_the_stream_is_not_a_terminal(backend):
    out = io.StringIO()
    bar = ftdag.ProgressBar(file=out)
    run(backend, fan(5), ["total"], bar)
    assert bar.mode == "summary" and (bar.done, bar.failed, bar.total) == (6, 0, 6)  # total: the tasks that run
    text = out.getvalue()
    assert "\r" not in text and text.count("\n") == 1
    assert re.fullmatch(r"ftdag: 6/6 done in \d+\.\d+ s \(\d+\.\d tasks/s\)\n", text), text


def test_the_line_is_redrawn_on_a_terminal():
    out = FakeTTY()
    bar = ftdag.ProgressBar(file=out, use_tqdm=False, min_interval=0)
    run("sequential", fan(3), ["total"], bar)
    assert bar.mode == "redraw"
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    frames = text[:-1].split("\r")[1:]  # the initial draw, one per task, and the final one
    assert [re.match(r"ftdag: (\d+/\d+) done", f).group(1) for f in frames] == ["0/4", "1/4", "2/4", "3/4", "4/4", "4/4"]
    assert "ETA" in frames[1] and "tasks/s" in frames[1]
    assert re.fullmatch(r"ftdag: 4/4 done in \S+ s \(\S+ tasks/s\) *", frames[-1]), frames[-1]
    for before, after in zip(frames, frames[1:]):
        assert len(after) >= len(before)  # a shorter line is padded so that the old one is blanked


def test_redraws_are_limited_by_min_interval():
    out = FakeTTY()
    bar = ftdag.ProgressBar(file=out, use_tqdm=False, min_interval=3600)
    run("threads", fan(20), ["total"], bar)
    frames = out.getvalue().split("\r")[1:]
    assert len(frames) == 2  # the first draw and the last: every task came within the hour
    assert frames[0].startswith("ftdag: 0/21 done") and frames[1].startswith("ftdag: 21/21 done in ")


@pytest.mark.parametrize("backend", BACKENDS)
def test_tqdm_on_a_terminal(backend):
    pytest.importorskip("tqdm")
    out = FakeTTY()
    bar = ftdag.ProgressBar(file=out)
    run(backend, fan(4), ["total"], bar)
    assert bar.mode == "tqdm" and bar.done == 5
    assert "5/5" in out.getvalue() and "task" in out.getvalue()


def test_tqdm_when_asked_even_off_a_terminal():
    pytest.importorskip("tqdm")
    out = io.StringIO()
    bar = ftdag.ProgressBar(file=out, use_tqdm=True)
    run("threads", fan(2), ["total"], bar)
    assert bar.mode == "tqdm" and "3/3" in out.getvalue()


def test_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(ImportError, match=r"needs tqdm.*pip install 'ftdag\[progress\]'"):
        ftdag.ProgressBar(use_tqdm=True)
    out = FakeTTY()
    bar = ftdag.ProgressBar(file=out)  # auto: falls back to the plain line
    run("threads", fan(2), ["total"], bar)
    assert bar.mode == "redraw" and out.getvalue().endswith("\n")


def test_counts_are_exact_under_many_threads():
    n = 2000
    out = FakeTTY()
    bar = ftdag.ProgressBar(file=out, use_tqdm=False, min_interval=0)  # draw at every task: most contention
    res = run("threads", fan(n), ["total"], bar, workers=4)
    assert res["total"] == sum(range(1, n + 1))
    assert (bar.done, bar.failed, bar.total) == (n + 1, 0, n + 1)
    assert out.getvalue().rstrip().rsplit("\r", 1)[-1].startswith(f"ftdag: {n + 1}/{n + 1} done in ")
    for frame in out.getvalue().strip().split("\r")[1:]:
        assert re.match(r"ftdag: \d+/\d+ done", frame), frame  # lines never interleave


@pytest.mark.parametrize("backend", BACKENDS)
def test_failures_are_shown_apart(backend, tmp_path):
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("ok", ["s"], add)
    b.add_task("flaky", ["s"], functools.partial(flaky, str(tmp_path / "calls")), retries=1, retry_on=(OSError,))
    b.add_task("bad", ["s"], fails)
    dag = b.build()
    out = io.StringIO()
    bar = ftdag.ProgressBar(file=out)
    run(backend, dag, ["ok", "flaky", "bad"], bar, on_error="keep_going")
    assert (bar.done, bar.failed) == (2, 2)  # flaky's first attempt and bad
    assert out.getvalue().startswith("ftdag: 2/3 done, 2 failed in ")
    out.seek(0)
    out.truncate()
    with pytest.raises(ftdag.TaskError):
        run(backend, dag, ["bad"], bar)
    assert out.getvalue().startswith("ftdag: 0/1 done, 1 failed in ")
    assert out.getvalue().endswith("; the run raised TaskError\n")


def test_disabled_and_options():
    out = FakeTTY()
    bar = ftdag.ProgressBar(file=out, disable=True, desc="ignored")
    run("threads", fan(3), ["total"], bar)
    assert out.getvalue() == "" and bar.done == 4 and bar.mode == "off"
    labelled = ftdag.ProgressBar(file=io.StringIO(), desc="etl")
    run("sequential", fan(1), ["total"], labelled)
    assert labelled.file.getvalue().startswith("etl: 2/2 done")
    with pytest.raises(ValueError, match="min_interval"):
        ftdag.ProgressBar(min_interval=-1)
    with pytest.raises(ValueError, match="use_tqdm"):
        ftdag.ProgressBar(use_tqdm="yes")


def test_stderr_is_the_default(capsys):
    bar = ftdag.ProgressBar()
    run("sequential", fan(1), ["total"], bar)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("ftdag: 2/2 done in ")


def test_progress_true_adds_a_progress_bar(capsys):
    b = ftdag.DagBuilder()
    for i in range(3):
        b.add_task(i, [], lambda: 1)
    with ftdag.Executor(backend="threads", max_workers=2) as ex:
        assert len(ex.run(b.build(), [0, 1, 2], progress=True)) == 3
        with pytest.raises(TypeError, match="progress must be a bool"):
            ex.run(b.build(), [0], progress="yes")
        assert len(list(ex.as_completed(b.build(), [0, 1], progress=True))) == 2
    err = capsys.readouterr().err
    assert "3/3" in err and "2/2" in err
