"""Every Python example in the README runs as a script, unchanged, on the build under test.

Each block is written to a file and run by this interpreter in a subprocess, as a user would
run it: on a GIL build ``auto`` then uses worker processes, which re-import the script.  It
runs twice: as the test environment has it, and with ``cloudpickle`` hidden, as a user who
did not install the ``ftdag[cloudpickle]`` extra has it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)


def test_the_readme_has_python_examples():
    assert BLOCKS, "no ```python blocks found in README.md"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("cloudpickle", [True, False], ids=["with-cloudpickle", "without-cloudpickle"])
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs_as_a_script(index, cloudpickle, tmp_path):
    script = tmp_path / f"readme_example_{index}.py"
    script.write_text(BLOCKS[index], encoding="utf-8")
    env = dict(os.environ)
    if not cloudpickle:
        hide = tmp_path / "hide"
        hide.mkdir()
        (hide / "cloudpickle.py").write_text("raise ImportError('hidden by the README test')\n")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(hide), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=150
    )
    assert proc.returncode == 0, f"README example {index} failed:\n{BLOCKS[index]}\n--- stderr ---\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
