"""examples/timeline.py: the rollup run traced, at a tiny size, into a temporary directory."""

from __future__ import annotations

import importlib.util
import json
import re

from helpers import example_output

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TASKS = 16 + 4 + 2  # leaves, chunk roots, the batch root and the proof


def test_timeline_example_writes_the_trace_and_prints_the_summary(tmp_path):
    out = example_output("timeline.py", FTDAG_HASH_ITERS="10", FTDAG_MAX_WORKERS="2", FTDAG_TIMELINE_RUNS="2",
                         FTDAG_TIMELINE_DIR=str(tmp_path))
    assert "FTDAG_HASH_ITERS=10, 2 workers" in out
    assert re.search(r"^fastest of 2 traced runs: \d+\.\d+ s on (threads|processes); .*inclusion proof verified$",
                     out, re.MULTILINE), out
    with open(tmp_path / "timeline.json") as f:
        events = json.load(f)["traceEvents"]
    names = sorted(e["name"] for e in events if e["ph"] == "X")
    assert len(names) == TASKS and names[-1] == "proof/chunk/1" and "batch" in names
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "timeline.png").read_bytes()[:8] == PNG_SIGNATURE
        assert f"wrote {tmp_path / 'timeline.png'}" in out
    else:
        assert "no timeline.png: Trace.plot() needs matplotlib" in out
    assert re.search(r"^run: (threads|processes), 2 workers, 22 task attempts \(0 failed\)$", out, re.MULTILINE)
    for line in ("wall time: ", "busy time: worker 0 ", "utilisation: ", "longest tasks:",
                 "critical path ("):
        assert re.search("^" + re.escape(line), out, re.MULTILINE), line
    # the path ends at the proof or the batch root, whichever ended last, through a chunk root
    path = out.split("critical path (", 1)[1].splitlines()[1:]
    assert path[-1].split()[0] in ("batch", "proof/chunk/1") and path[-2].split()[0].startswith("chunk/")
