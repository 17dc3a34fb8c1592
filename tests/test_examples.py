"""Smoke tests: run each example as a script, as a user would, and check what it prints."""

import os
import re
import sysconfig

from helpers import example_output


def expected_backend():
    """What ``backend="auto"`` picks in a fresh interpreter of this build."""
    free_threaded = sysconfig.get_config_var("Py_GIL_DISABLED") and os.environ.get("PYTHON_GIL") != "1"
    return "threads" if free_threaded else "processes"


def test_merkle():
    out = example_output("merkle.py")
    requests = re.findall(r"^Request (\S+) ", out, re.MULTILINE)
    assert requests == ["node/4/0", "node/2/1"]
    leaves = [int(n) for n in re.findall(r"^  leaf hashes executed: +(\d+)$", out, re.MULTILINE)]
    internal = [int(n) for n in re.findall(r"^  internal hashes executed: +(\d+)$", out, re.MULTILINE)]
    assert leaves == [16, 4]
    assert internal == [15, 3]
    executed = re.findall(r"^  nodes executed: (\d+) of (\d+) .*pruned: (\d+)$", out, re.MULTILINE)
    assert executed == [("47", "47", "0"), ("11", "47", "36")]
    assert re.findall(r"^  backend: (\w+),", out, re.MULTILINE) == [expected_backend()] * 2
    assert out.count("matches the hash computed by a plain loop") == 2
    assert re.search(r"^  node/4/0 = [0-9a-f]{64}$", out, re.MULTILINE)


def test_pipeline():
    out = example_output("pipeline.py")
    requests = re.findall(r"^Request (.+):$", out, re.MULTILINE)
    assert requests == ["['hash']", "['report']"]
    ran = re.findall(r"^  executed: +(.+)$", out, re.MULTILINE)
    never = re.findall(r"^  never ran: +(.+)$", out, re.MULTILINE)
    assert [set(line.split(", ")) for line in ran] == [
        {"raw", "normalize", "hash"},
        {"raw", "normalize", "hash", "fee", "report"},
    ]
    assert never == ["fee, report", "(nothing)"]
    assert re.findall(r"^  backend: (\w+),", out, re.MULTILINE) == [expected_backend()] * 2
    assert re.search(r"^  hash = [0-9a-f]{64}$", out, re.MULTILINE)
    assert "report = batch " in out
    assert "fees EUR 4.05, USD 18.11" in out


def test_resume():
    out = example_output("resume.py")
    runs = re.split(r"^Run \d \(.*\):$", out, flags=re.MULTILINE)[1:]
    assert len(runs) == 3
    ran = [set(re.findall(r"^  ran (\S+)$", run, re.MULTILINE)) for run in runs]
    assert ran == [
        {"clean/emea", "clean/amer", "clean/apac", "total/emea", "total/amer"},  # apac fails: its total and the report are skipped
        {"clean/apac", "total/apac", "report"},  # the rest is loaded from the store
        set(),  # everything is loaded
    ]
    stats = re.findall(r"^Run \d: loaded (\d+), stored (\d+), failed (\d+), skipped (\d+)$", out, re.MULTILINE)
    assert stats == [("0", "4", "1", "2"), ("2", "3", "0", "0"), ("1", "0", "0", "0")]
    assert "failed clean/apac: ValueError" in out
    assert out.count("report = emea 16.75 | amer 21.75 | apac 13.10") == 2
    assert re.findall(r"^backend: (\w+)$", out, re.MULTILINE) == [expected_backend()]


def test_dagga():
    out = example_output("dagga.py")
    batches = re.findall(r"^  (\d): (.+)$", out, re.MULTILINE)
    assert batches == [("1", "create-a, create-b"), ("2", "modify-a"), ("3", "create-c"), ("4", "reduce-abc-to-d")]
    assert "  modify-a: create-a, create-b" in out.splitlines()
    assert out.count(" -> ") == 9 and out.count("[style=dashed]") == 9  # every edge is an order edge
    dot = out.split("Graphviz DOT:\n")[1].split("\nMermaid:")[0]
    assert dot.startswith("digraph ftdag {") and dot.rstrip().endswith("}")
    assert out.split("Mermaid:\n")[1].startswith("flowchart TB")
    ran = re.findall(r"^  ran (\S+)$", out.split("Run on 3 workers")[1], re.MULTILINE)
    assert ran[:2] in (["create-a", "create-b"], ["create-b", "create-a"])
    assert ran[2:] == ["modify-a", "create-c", "reduce-abc-to-d"]
    assert re.findall(r"^backend: (\w+), ran 5 tasks$", out, re.MULTILINE) == [expected_backend()]


def test_constraints():
    out = example_output("constraints.py")
    batches = re.findall(r"^  (\d): (.+)$", out, re.MULTILINE)
    assert [b for _, b in batches] == [
        "fetch/0, fetch/1, fetch/2", "parse/0, parse/1, parse/2", "index", "lookup/0, lookup/1", "report",
    ]
    assert "report = doc 0, doc 2" in out  # the lookups ran after the index was written
    (most,) = re.findall(r"^most API requests at once: (\d)$", out, re.MULTILINE)
    assert 1 <= int(most) <= 2


def test_wordcount():
    out = example_output("wordcount.py")
    lines = out.splitlines()
    counts = [line for line in lines if line.startswith("counts/")]
    assert sorted(c.split(":")[0] for c in counts) == [f"counts/{i}" for i in range(6)]  # each once, as done
    assert "counts/5: 11336 words of 4+ letters, 17 distinct" in counts
    assert lines[-1] == "top words: retry 2444, worker 2390, order 2356, schedule 2351, store 2350"
