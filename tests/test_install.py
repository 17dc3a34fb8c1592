"""ftdag as a user installs it: the wheel, with the ``cloudpickle`` extra, in a fresh venv.

The wheel must carry exactly the package (every file of ``src/ftdag``, ``py.typed`` included)
and its metadata: no tests, benchmarks, examples, docs or scripts.  Installed into a new venv
made by the interpreter running this suite (so 3.13t and 3.13 each check their own), it must
import from that venv, not from this checkout, keep the GIL off on a free-threaded build, and
run the README's first example as a script.

Under tox (``package = wheel``) the wheel tox built from this checkout for the environment is
reused (``$TOX_PACKAGE``); otherwise one is built here with ``pip wheel`` from a copy of the
checkout, so that the build leaves nothing in the repository.  pip's own cache is used as is.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from helpers import REPO
from test_readme import BLOCKS

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
PACKAGE = REPO / "src" / "ftdag"
STEP_TIMEOUT = 300  # seconds for one pip or python subprocess; pip may fetch from the network
NOT_IN_THE_WHEEL = ("tests/", "benchmarks/", "examples/", "docs/", "scripts/")

# Run in the venv after the README example: where ftdag came from and what the extra brought.
PROBE = """\
import json, sys
import ftdag
import cloudpickle  # the extra
print(json.dumps({"ftdag": ftdag.__file__, "gil": getattr(sys, "_is_gil_enabled", lambda: True)()}))
"""


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=STEP_TIMEOUT, **kwargs)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    return proc


_SKIP = shutil.ignore_patterns(".git", ".tox", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache")


def _not_sources(directory: str, names: list[str]) -> set[str]:
    """What the copy of the checkout leaves out: VCS data, build and tool output, results."""
    skip = set(_SKIP(directory, names))
    if Path(directory) == REPO / "benchmarks":
        skip.add("results")
    return skip


def _wheel(tmp_path: Path) -> Path:
    """tox's wheel of this checkout if tox runs the suite, else one built from a copy of it."""
    for name in os.environ.get("TOX_PACKAGE", "").split(os.pathsep):
        if name.endswith(".whl") and Path(name).is_file():
            return Path(name)
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO, checkout, ignore=_not_sources)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(checkout)])
    (wheel,) = dist.glob("ftdag-*.whl")
    return wheel


@pytest.mark.timeout(600)
def test_the_wheel_installs_with_its_extra_and_runs_the_readme_example(tmp_path):
    wheel = _wheel(tmp_path)

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "ftdag/py.typed" in names and "ftdag/__init__.py" in names, names
    assert not [n for n in names if n.startswith(NOT_IN_THE_WHEEL) or "/tests/" in n], names
    package = {n for n in names if n.startswith("ftdag/")}
    expected = {
        "ftdag/" + p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert package == expected, f"wheel lacks {expected - package}, has extra {package - expected}"
    assert all(n.startswith("ftdag-") and ".dist-info/" in n for n in set(names) - package), names

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    # The venv must see the installed ftdag only: not this checkout's src/ (PYTHONPATH), nor a
    # PYTHON_GIL setting of the caller's.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHON_GIL")}
    _run([python, "-m", "pip", "install", "--quiet", f"{wheel}[cloudpickle]"], env=env)

    # Outside the repository, as a user runs it: the script's directory holds nothing of ftdag's.
    run = tmp_path / "run"
    run.mkdir()
    script = run / "readme_example.py"
    script.write_text(BLOCKS[0], encoding="utf-8")
    out = _run([python, str(script)], cwd=run, env=env)
    backend = "threads" if FREE_THREADED else "processes"
    assert re.search(rf"^RunStats\(executed=4, pruned=1, backend='{backend}'", out.stdout, re.M), out.stdout
    assert "Traceback" not in out.stderr, out.stderr

    probe = json.loads(_run([python, "-c", PROBE], cwd=run, env=env).stdout)
    assert Path(probe["ftdag"]).resolve().is_relative_to(venv.resolve()), probe
    if FREE_THREADED:
        assert probe["gil"] is False, "importing ftdag and cloudpickle turned the GIL back on"
