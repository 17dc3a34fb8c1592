"""Where the comparison runs: the interpreters, one bench venv per interpreter, and the machine.

:func:`find_interpreters`  the GIL and free-threaded 3.13 builds from ``scripts/toolchain.py``
                           (plus ``python3.14t`` on ``PATH``), probed into :class:`Interpreter` records.
:func:`ensure_venv`        one bench venv per interpreter under ``$FTDAG_CACHE/bench/<name>``, with this
                           repository's ftdag, dask, distributed, numpy (``< 2.5``) and (for the chart)
                           matplotlib: idempotent.
:func:`machine_info`, :func:`cpu_snapshot`, :func:`background_load`, :func:`filesystem`
                           the machine's description, how much CPU other processes took while
                           something was timed, and the type of the file system under a path (used in
                           the measuring children too: standard library only).

Importing this module runs nothing.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = Path(os.environ.get("FTDAG_CACHE") or Path.home() / ".cache" / "ftdag")
VENVS = CACHE / "bench"
SPEED_FLAGS = ("--enable-optimizations", "--with-lto", "--enable-shared", "--with-pydebug",
               "--enable-experimental-jit")


def say(msg: str = "") -> None:
    print(msg, flush=True)


def warn(msg: str) -> None:
    print(f"compare: {msg}", file=sys.stderr, flush=True)


# -- interpreters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchVenv:
    """An interpreter's bench venv: its Python, and the version of each package in it (None: missing)."""

    python: str
    venv: str
    packages: dict[str, str | None]
    matplotlib_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"python": self.python, "venv": self.venv, "packages": self.packages,
                "matplotlib_error": self.matplotlib_error}


@dataclass(frozen=True)
class Interpreter:
    """A Python build to measure, as probed; ``bench`` is set once its bench venv is ready."""

    path: str
    executable: str
    version: str
    major: int
    minor: int
    ft: bool
    config_args: str = ""
    shared: bool = False
    origin: str = ""
    bench: BenchVenv | None = None

    @property
    def label(self) -> str:
        """``3.13t`` for a free-threaded 3.13, ``3.13`` for a GIL one."""
        return f"{self.major}.{self.minor}{'t' if self.ft else ''}"

    @property
    def build(self) -> str:
        return "free-threaded" if self.ft else "GIL"

    @property
    def venv_name(self) -> str:
        return f"cp{self.major}{self.minor}{'t' if self.ft else ''}"

    @property
    def build_flags(self) -> list[str]:
        """The configure flags that change speed (not paths, not --disable-gil)."""
        try:
            args = shlex.split(self.config_args)
        except ValueError:
            args = self.config_args.split()
        flags = {a.split("=")[0] for a in args if a.split("=")[0] in SPEED_FLAGS}
        if self.shared:
            flags.add("--enable-shared")
        return sorted(flags)

    def to_json(self, reference: bool) -> dict[str, Any]:
        return {"label": self.label, "version": self.version, "ft": self.ft, "config_args": self.config_args,
                "shared": self.shared, "build_flags": self.build_flags, "build": self.build,
                "executable": self.executable, "origin": self.origin, "reference": reference,
                "bench": self.bench.to_json() if self.bench else None}


_PROBE = (
    "import json, platform, sys, sysconfig;"
    "print(json.dumps({'version': platform.python_version(), 'major': sys.version_info[0],"
    " 'minor': sys.version_info[1], 'ft': bool(sysconfig.get_config_var('Py_GIL_DISABLED')),"
    " 'executable': sys.executable, 'config_args': sysconfig.get_config_var('CONFIG_ARGS') or '',"
    " 'shared': bool(sysconfig.get_config_var('Py_ENABLE_SHARED'))}))"
)


def probe(python: str, origin: str = "") -> Interpreter | None:
    """Describe the interpreter at ``python``; None if it does not run."""
    try:
        out = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL, check=True).stdout
        return Interpreter(path=python, origin=origin, **json.loads(out))
    except (OSError, subprocess.SubprocessError, ValueError, TypeError):
        return None


def toolchain(kind: str) -> str | None:
    """Path of the interpreter ``scripts/toolchain.py <kind>`` finds or builds (its progress goes to stderr)."""
    try:
        proc = subprocess.run([sys.executable, str(REPO / "scripts" / "toolchain.py"), kind],
                              stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    except OSError as exc:
        warn(f"scripts/toolchain.py {kind} could not run: {exc}")
        return None
    path = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode or not path:
        warn(f"scripts/toolchain.py {kind} failed (exit {proc.returncode}); that interpreter is skipped")
        return None
    return path


def find_interpreters() -> list[Interpreter]:
    """The GIL builds first, then the free-threaded ones; each probed, duplicates dropped."""
    found: list[Interpreter] = []
    candidates = [("gil-matched", toolchain("gil-matched")), ("free-threaded", toolchain("free-threaded"))]
    extra = shutil.which("python3.14t")
    if extra:
        candidates.append(("PATH", extra))
    for origin, path in candidates:
        if not path:
            continue
        interp = probe(path, origin)
        if interp is None:
            warn(f"{path} (from {origin}) does not run; skipped")
        elif interp.label not in {i.label for i in found}:
            found.append(interp)
    found.sort(key=lambda i: (i.ft, i.major, i.minor))
    return found


def build_caveat(interps: list[Interpreter]) -> str | None:
    """Say so when the builds differ in more than the GIL: their single-thread speeds then differ for other reasons too."""
    if len(interps) < 2:
        return None
    if len({i.version for i in interps}) == 1 and len({tuple(i.build_flags) for i in interps}) == 1:
        return None
    desc = "; ".join(f"{i.label} is {i.version} built with {' '.join(i.build_flags) or 'default flags'}"
                     for i in interps)
    return (f"the interpreters differ in more than the GIL ({desc}), so part of the gap between their plain loops "
            "comes from the version and build flags; set FTDAG_PYTHON_GIL to a GIL build of the same version and "
            "flags for a like-for-like comparison")


# -- bench venvs -------------------------------------------------------------------------------


def ftdag_importable() -> None:
    """Make ftdag importable in this process and in the worker processes it starts when a
    benchmark script runs from a checkout without ftdag installed (``src`` first on
    ``sys.path`` and ``PYTHONPATH``); with ftdag installed, nothing changes."""
    try:
        import ftdag  # noqa: F401
    except ImportError:
        src = str(REPO / "src")
        sys.path.insert(0, src)
        parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != src]
        os.environ["PYTHONPATH"] = os.pathsep.join([src, *parts])


def child_env() -> dict[str, str]:
    """The environment of every bench child: the venv's installed ftdag, not a checkout on PYTHONPATH."""
    env = dict(os.environ, PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    for var in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):
        env.pop(var, None)
    return env


def ftdag_fingerprint() -> str:
    """Hash of what `pip install <repo>` installs, so a changed ftdag gets reinstalled."""
    h = hashlib.sha256()
    files = [REPO / "pyproject.toml"] + sorted(p for p in (REPO / "src").rglob("*")
                                               if p.is_file() and "__pycache__" not in p.parts)
    for p in files:
        h.update(str(p.relative_to(REPO)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


BENCH_PACKAGES = ("dask", "distributed", "numpy")
"""What the bench children import besides ftdag: dask for the peer runners and ``dask_get.py``, distributed
for ``distributed_bench.py``, numpy for ``dask_get.py``'s array workload."""
REQUIREMENTS = {"numpy": "numpy<2.5"}
"""Requirement specifiers of the packages whose name alone is not enough: numpy 2.5 has no cp313t wheel."""


def _too_new(module: str, version: str | None) -> bool:
    """An installed package outside its :data:`REQUIREMENTS` bound (only numpy has one: ``< 2.5``)."""
    if module != "numpy" or not version:
        return False
    try:
        return tuple(int(x) for x in version.split(".")[:2]) >= (2, 5)
    except ValueError:
        return False


def _pip(python: Path, *args: str) -> tuple[bool, str]:
    """``pip install`` into a bench venv, preferring binary wheels (on 3.13t, distributed's msgpack, tornado,
    PyYAML and MarkupSafe still build from source: about a minute), numpy kept below 2.5 even when it comes
    as another package's dependency (matplotlib's)."""
    constraints = Path(python).parent.parent / "ftdag-constraints.txt"
    constraints.write_text("".join(f"{spec}\n" for spec in REQUIREMENTS.values()))
    proc = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints), *args],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env=dict(child_env(), PIP_PREFER_BINARY="1"))
    tail = " ".join((proc.stderr or proc.stdout or "").strip().splitlines()[-3:])
    return proc.returncode == 0, tail


def _installed(python: Path, modules: list[str]) -> dict[str, str | None]:
    """Version (or "?") of each module importable by ``python``, None if not importable."""
    code = (
        "import importlib.metadata as md, importlib.util as u, json, sys;"
        "r = {};\n"
        "for m in sys.argv[1:]:\n"
        "    if u.find_spec(m) is None: r[m] = None; continue\n"
        "    try: r[m] = md.version(m)\n"
        "    except Exception: r[m] = '?'\n"
        "print(json.dumps(r))"
    )
    try:
        out = subprocess.run([str(python), "-c", code, *modules], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, env=child_env(), timeout=120, check=True).stdout
        return json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return {m: None for m in modules}


def ensure_venv(interp: Interpreter, with_matplotlib: bool) -> Interpreter | None:
    """Create or update the bench venv of ``interp``; return ``interp`` with it, None if unusable.

    Idempotent: an existing venv is reused, ftdag is reinstalled when its sources change, and a
    package that cannot be installed only costs its cells (and is not retried until the venv is deleted).
    """
    vdir = VENVS / interp.venv_name
    py = vdir / "bin" / "python"
    marker = vdir / "ftdag-bench.json"
    base = os.path.realpath(interp.executable)
    try:
        state = json.loads(marker.read_text())
    except (OSError, ValueError):
        state = {}
    t0 = time.perf_counter()
    if not py.exists() or state.get("base") != base or state.get("base_version") != interp.version:
        say(f"  {interp.label}: creating bench venv {vdir}")
        shutil.rmtree(vdir, ignore_errors=True)
        vdir.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([interp.path, "-m", "venv", str(vdir)], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
        if proc.returncode:
            warn(f"{interp.label}: venv creation failed: {proc.stderr.strip()[-300:]}")
            return None
        state = {"base": base, "base_version": interp.version}
    wanted = ["ftdag", *BENCH_PACKAGES] + (["matplotlib"] if with_matplotlib else [])
    have = _installed(py, wanted)
    fp = ftdag_fingerprint()
    need_ftdag = have["ftdag"] is None or state.get("ftdag") != fp
    extras = [m for m in wanted[1:] if (have[m] is None or _too_new(m, have[m])) and not state.get(f"{m}_failed")]
    if need_ftdag or extras:
        say(f"  {interp.label}: installing {', '.join((['ftdag (this repo)'] if need_ftdag else []) + extras)}")
    if need_ftdag:
        ok, tail = _pip(py, "--force-reinstall", "--no-deps", str(REPO))
        if not ok:
            warn(f"{interp.label}: installing ftdag from {REPO} failed: {tail}")
            return None
        state["ftdag"] = fp
    if extras:
        ok, tail = _pip(py, *(REQUIREMENTS.get(m, m) for m in extras))
        if not ok:  # one at a time, so one failure does not cost the others
            for m in extras:
                ok, tail = _pip(py, REQUIREMENTS.get(m, m))
                if not ok:
                    state[f"{m}_failed"] = tail[-300:]
                    warn(f"{interp.label}: could not install {m} ({tail[-200:]}); "
                         f"its cells will say so (delete {vdir} to retry)")
    state["packages"] = _installed(py, wanted)
    marker.write_text(json.dumps(state, indent=1) + "\n")
    dt = time.perf_counter() - t0
    if dt > 1:
        say(f"  {interp.label}: bench venv ready in {dt:.0f} s")
    return replace(interp, bench=BenchVenv(str(py), str(vdir), state["packages"], state.get("matplotlib_failed")))


# -- the machine -------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """CPU count and model, platform, load average (``loadavg``) of the machine running this."""
    cpu_model = platform.processor() or None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_available": affinity,
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "loadavg": loadavg(),
    }


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).astimezone().isoformat(timespec="seconds")


def filesystem(path: Path) -> str:
    """The type of the file system holding ``path`` (from /proc/mounts), or ``"unknown"``."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    mount = parts[1].replace("\\040", " ")
                    inside = str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")
                    if inside and len(mount) > len(best):
                        best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


def _tree_jiffies(root: int) -> dict[int, int]:
    """CPU time (clock ticks) of process ``root`` and each of its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as f:
                data = f.read()
        except OSError:
            continue  # the process ended meanwhile
        rest = data[data.rindex(")") + 2:].split()
        pid = int(entry.name)
        children.setdefault(int(rest[1]), []).append(pid)
        cpu[pid] = int(rest[11]) + int(rest[12])  # utime + stime, all threads
    tree, stack = {}, [root]
    while stack:
        pid = stack.pop()
        tree[pid] = cpu.get(pid, 0)
        stack.extend(children.get(pid, ()))
    return tree


def cpu_snapshot() -> tuple[int, int, dict[int, int]] | None:
    """(busy ticks of the whole machine, steal ticks, ticks per process of this tree); None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            vals = [int(x) for x in f.readline().split()[1:]] + [0] * 10
        user, nice, system, _idle, _iowait, irq, softirq, steal = vals[:8]
        return user + nice + system + irq + softirq, steal, _tree_jiffies(os.getpid())
    except (OSError, ValueError, IndexError):
        return None


def background_load(before, after, wall_s: float) -> dict[str, float | None]:
    """CPUs used on average by other processes (``background_cpus``) and by the hypervisor
    (``steal_cpus``) between two :func:`cpu_snapshot` calls: a measurement taken while they were
    high had fewer free cores than it asked for, so its parallel speed-up is understated.
    Clock ticks are coarse (10 ms), so windows under 0.2 s are not judged."""
    if before is None or after is None or wall_s < 0.2:
        return {"background_cpus": None, "steal_cpus": None}
    ticks = wall_s * os.sysconf("SC_CLK_TCK")
    # Our share: what each process of the tree used in between (one that started meanwhile, all
    # of its time; one that ended meanwhile is left out, so at worst we over-count others).
    ours = sum(t - before[2].get(pid, 0) for pid, t in after[2].items())
    others = (after[0] - before[0]) - ours
    return {"background_cpus": round(max(0.0, others / ticks), 2),
            "steal_cpus": round(max(0.0, (after[1] - before[1]) / ticks), 2)}
