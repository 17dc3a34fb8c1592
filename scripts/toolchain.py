#!/usr/bin/env python3
"""Find or build the two interpreters ftdag is tested and benchmarked on.

Usage::

    python3 scripts/toolchain.py free-threaded   # prints the path of a python3.13t
    python3 scripts/toolchain.py gil             # prints the path of a GIL python3.13
    python3 scripts/toolchain.py gil-matched     # a GIL 3.13.5 built like the free-threaded one

Only the interpreter's path goes to stdout; progress goes to stderr, so callers can write
``FT=$(python3 scripts/toolchain.py free-threaded)``.

Resolution order for the free-threaded build (the first that verifies wins):

1. ``$FTDAG_PYTHON_FT``, an explicit path;
2. ``python3.13t`` or ``python3.14t`` on ``PATH``;
3. a previous build in the cache (``$FTDAG_CACHE``, default ``~/.cache/ftdag``);
4. a build from source.  No free-threaded binary can be downloaded on our machines, but the
   Debian archive that apt already uses serves the source package ``python3.13`` of the
   ``trixie`` suite, whose ``.orig.tar.xz`` is the pristine upstream ``Python-3.13.5.tar.xz``.
   It is fetched with a private apt configuration (own sources list, lists and cache under the
   cache directory) so the system's apt state is untouched, checked against the upstream
   sha256, and built with ``./configure --disable-gil``.

The GIL build is found the same way: ``$FTDAG_PYTHON_GIL``, ``python3.13`` on ``PATH``, a pyenv
3.13.x, the cache, and last a build from the same tarball without ``--disable-gil``.
``gil-matched`` skips ``PATH`` and pyenv: the benchmarks compare the builds like for like (same
version, same configure flags, differing only in ``--disable-gil``); the tests take any 3.13.

Every step is idempotent, and any failure ends with a message saying what went wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "3.13.5"
TARBALL_SHA256 = "93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640"
SOURCE_PACKAGE = "python3.13"
SOURCE_SUITE = "trixie"
CACHE = Path(os.environ.get("FTDAG_CACHE") or Path.home() / ".cache" / "ftdag")


class ToolchainError(RuntimeError):
    pass


def say(msg: str) -> None:
    print(f"[toolchain] {msg}", file=sys.stderr, flush=True)


def probe(python: str | os.PathLike[str]) -> dict | None:
    """Ask an interpreter what it is; None if it does not run."""
    code = (
        "import sys, sysconfig, json;"
        "print(json.dumps({'version': list(sys.version_info[:3]),"
        " 'ft': bool(sysconfig.get_config_var('Py_GIL_DISABLED')),"
        " 'gil': getattr(sys, '_is_gil_enabled', lambda: True)(),"
        " 'exe': sys.executable}))"
    )
    try:
        out = subprocess.run(
            [os.fspath(python), "-c", code],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return json.loads(out)


def accept(python: str | os.PathLike[str], *, free_threaded: bool, need_313: bool) -> bool:
    info = probe(python)
    if info is None:
        return False
    if free_threaded:
        return info["ft"] and info["gil"] is False and tuple(info["version"][:2]) >= (3, 13)
    return not info["ft"] and (tuple(info["version"][:2]) == (3, 13) or not need_313)


def _archive_uri() -> str:
    """The Debian archive URI this machine's apt already uses (never hard-coded here)."""
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.is_file() and path.suffix in {".list", ".sources", ""}:
            texts.append(path.read_text(errors="replace"))
    for text in texts:
        # deb822 stanzas: URIs + Suites
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and "/debian" in uris.group(1) and "security" not in uris.group(1):
                return uris.group(1)
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb":
                uri = next((p for p in parts[1:] if "://" in p), "")
                if "/debian" in uri and "security" not in uri:
                    return uri
    raise ToolchainError(
        "no Debian archive found in /etc/apt/sources.list{,.d}; set FTDAG_PYTHON_FT to a "
        "free-threaded python3.13t instead"
    )


def _run(cmd: list[str], cwd: Path) -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise ToolchainError(f"'{' '.join(cmd)}' failed ({r.returncode}):\n{r.stdout}{r.stderr}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_tarball() -> Path:
    """Python-3.13.5.tar.xz from the Debian source package, verified by its upstream sha256."""
    dest = CACHE / f"Python-{VERSION}.tar.xz"
    if dest.is_file() and _sha256(dest) == TARBALL_SHA256:
        return dest
    if shutil.which("apt-get") is None:
        raise ToolchainError("apt-get is not available to fetch the CPython source; set FTDAG_PYTHON_FT")
    apt = CACHE / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "sourceparts", "src"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    uri = _archive_uri()
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    signed = f"[signed-by={keyring}] " if Path(keyring).is_file() else ""
    (apt / "sources.list").write_text(f"deb-src {signed}{uri} {SOURCE_SUITE} main\n")
    opts = [
        "-o", f"Dir::Etc::SourceList={apt / 'sources.list'}",
        "-o", f"Dir::Etc::SourceParts={apt / 'sourceparts'}",
        "-o", f"Dir::State::Lists={apt / 'lists'}",
        "-o", f"Dir::Cache={apt / 'cache'}",
        "-o", "Debug::NoLocking=1",
        "-o", "APT::Get::List-Cleanup=0",
    ]
    say(f"fetching the {SOURCE_PACKAGE} source package index ({SOURCE_SUITE}) with a private apt config")
    _run(["apt-get", *opts, "-q", "update"], cwd=apt)
    say(f"downloading the {SOURCE_PACKAGE} source package (upstream tarball only is used)")
    _run(["apt-get", *opts, "-q", "source", "--download-only", SOURCE_PACKAGE], cwd=apt / "src")
    origs = sorted((apt / "src").glob(f"{SOURCE_PACKAGE}_{VERSION}.orig.tar.xz"))
    if not origs:
        found = ", ".join(p.name for p in (apt / "src").iterdir()) or "nothing"
        raise ToolchainError(
            f"the archive did not serve {SOURCE_PACKAGE}_{VERSION}.orig.tar.xz (got: {found}); "
            "the suite may have moved on: update VERSION/TARBALL_SHA256 in scripts/toolchain.py"
        )
    digest = _sha256(origs[-1])
    if digest != TARBALL_SHA256:
        raise ToolchainError(
            f"{origs[-1].name} has sha256 {digest}, expected the upstream {TARBALL_SHA256}; refusing to build"
        )
    tmp = dest.with_suffix(".part")
    shutil.copyfile(origs[-1], tmp)
    tmp.replace(dest)
    return dest


def build(*, free_threaded: bool) -> Path:
    """Configure, build and install CPython into the cache; return its interpreter."""
    tag = "t" if free_threaded else ""
    prefix = CACHE / f"cpython-{VERSION}{tag}"
    exe = prefix / "bin" / f"python3.13{tag}"
    if exe.exists() and accept(exe, free_threaded=free_threaded, need_313=True):
        return exe
    for tool in ("cc", "make"):
        if shutil.which(tool) is None:
            raise ToolchainError(f"cannot build CPython: '{tool}' is not installed")
    tarball = fetch_tarball()
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cpython-build-", dir=CACHE) as work:
        say(f"unpacking {tarball.name}")
        with tarfile.open(tarball) as tf:
            tf.extractall(work, filter="data") if hasattr(tarfile, "data_filter") else tf.extractall(work)
        src = Path(work) / f"Python-{VERSION}"
        log = CACHE / f"build-{VERSION}{tag}.log"
        jobs = str(os.cpu_count() or 2)
        flags = ["--disable-gil"] if free_threaded else []
        say(f"building CPython {VERSION}{tag} into {prefix} (about 3 minutes on 2 cores; log: {log})")
        with log.open("w") as out:
            for step in (
                ["./configure", *flags, f"--prefix={prefix}", "--without-ensurepip"],
                ["make", f"-j{jobs}"],
                ["make", "install"],
            ):
                say("  " + " ".join(step))
                r = subprocess.run(step, cwd=src, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                if r.returncode != 0:
                    tail = log.read_text(errors="replace").splitlines()[-30:]
                    raise ToolchainError(f"'{' '.join(step)}' failed ({r.returncode}); last lines of {log}:\n" + "\n".join(tail))
    if not accept(exe, free_threaded=free_threaded, need_313=True):
        raise ToolchainError(f"the build finished but {exe} does not verify (free_threaded={free_threaded})")
    return exe


def find(kind: str) -> Path:
    free_threaded = kind == "free-threaded"
    override = os.environ.get("FTDAG_PYTHON_FT" if free_threaded else "FTDAG_PYTHON_GIL")
    if override:
        if not accept(override, free_threaded=free_threaded, need_313=False):
            want = "a free-threaded CPython >= 3.13 with the GIL off" if free_threaded else "a GIL CPython"
            raise ToolchainError(f"{override} (from the environment) is not {want}")
        return Path(override)
    if kind == "gil-matched":
        return build(free_threaded=False)
    names = ["python3.13t", "python3.14t"] if free_threaded else ["python3.13"]
    for name in names:
        path = shutil.which(name)
        if path and accept(path, free_threaded=free_threaded, need_313=True):
            return Path(path)
    if not free_threaded:
        pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
        for cand in sorted(pyenv_root.glob("versions/3.13.*/bin/python3.13"), reverse=True):
            if accept(cand, free_threaded=False, need_313=True):
                return cand
    return build(free_threaded=free_threaded)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("free-threaded", "gil", "gil-matched"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        exe = find(argv[0])
    except ToolchainError as exc:
        say(f"ERROR: {exc}")
        return 1
    say(f"{argv[0]}: {exe}")
    print(exe)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
