"""Fingerprints (ftdag._fingerprint): the same in every process and run, different whenever
what decides a task's result differs: code (nested code too), constants, defaults, closures,
plain globals, partial arguments, bound objects; keys, identities and dependency order."""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from helpers import TIMEOUT, Background, results

import ftdag
from ftdag._fingerprint import function_fingerprint, source_fingerprint, task_fingerprint


def define(source: str, module: str = "fpmod", filename: str = "<fingerprint test>") -> dict:
    """Run ``source`` as the body of a module named ``module``: a fresh namespace each call,
    so the same source gives new, equal function objects."""
    ns = {"__name__": module}
    exec(compile(textwrap.dedent(source), filename, "exec"), ns)
    return ns


def fn_of(source: str, name: str = "f", **kw):
    return define(source, **kw)[name]


def same(a, b) -> bool:
    return function_fingerprint(a) == function_fingerprint(b)


# -- determinism across processes ----------------------------------------------------------------

MODULE = '''
import functools
import threading

SCALE = 3
NAMES = frozenset({"alpha", "beta", "gamma", "delta"})


def helper(x):
    return x * SCALE


def task(a, b=2, *, c=("x", 1.5)):
    inner = lambda y: y + 1
    if a in {"alpha", "beta", "gamma"}:  # a frozenset constant: iterates in hash order
        return 0
    return helper(inner(a)) + b


def make_adder(n):
    def add(x):
        return x + n
    return add


class Scaler:
    def __init__(self, k):
        self.k = k
        self.lock = threading.Lock()  # unpicklable: hashed by its parts

    def __call__(self, x):
        return x * self.k

    def method(self, x):
        return x - self.k


class Plain:
    def __init__(self, k):
        self.k = k

    def __call__(self, x):
        return x + self.k


CALLABLES = {
    "task": task,
    "helper": helper,
    "adder": make_adder(5),
    "partial": functools.partial(task, 1, c=("y",)),
    "scaler": Scaler(2),
    "plain": Plain(7),
    "method": Plain(7).__call__,
    "class": Plain,
    "builtin": len,
}
KEYS = {"tuple": ("sum", "eu"), "frozenset": frozenset({"alpha", "beta", "gamma", "delta"}), "int": 7}
'''

REPORT = '''
import json, sys
import fpmod
from ftdag._fingerprint import function_fingerprint, source_fingerprint, task_fingerprint
out = {name: function_fingerprint(fn).hex() for name, fn in fpmod.CALLABLES.items()}
for name, key in fpmod.KEYS.items():
    out["key " + name] = task_fingerprint(key, b"v:1", [b"d" * 32]).hex()
    out["source " + name] = source_fingerprint(key, {"v": [1, 2.5, "x"]}).hex()
print(json.dumps(out))
'''


def test_same_digests_in_other_processes(tmp_path, monkeypatch):
    """The module imported here and in two fresh interpreters with other hash seeds: the same
    digests (nothing depends on addresses, hash() or set order)."""
    (tmp_path / "fpmod.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fpmod", raising=False)
    import fpmod

    here = {name: function_fingerprint(fn).hex() for name, fn in fpmod.CALLABLES.items()}
    for name, key in fpmod.KEYS.items():
        here["key " + name] = task_fingerprint(key, b"v:1", [b"d" * 32]).hex()
        here["source " + name] = source_fingerprint(key, {"v": [1, 2.5, "x"]}).hex()
    assert len(set(here.values())) == len(here)  # all different
    src = str(Path(ftdag.__file__).resolve().parent.parent)
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=os.pathsep.join([str(tmp_path), src]))
        proc = subprocess.run([sys.executable, "-c", REPORT], env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=3 * TIMEOUT)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == here


def test_same_source_twice_gives_the_same_digest():
    src = """
        K = 10
        def g(x):
            return x + 1
        def f(x, y=(1, "a")):
            return sorted([g(x), K, (lambda z: z * 2)(y)])
    """
    assert same(fn_of(src), fn_of(src))
    # Where it is defined does not matter: file name and line numbers are not hashed.
    assert same(fn_of(src), fn_of("\n\n\n" + src, filename="elsewhere.py"))
    # Its module and name do.
    assert not same(fn_of(src), fn_of(src, module="othermod"))
    assert not same(fn_of(src), fn_of(src.replace("def f(", "def f2("), name="f2"))


def test_specialised_code_keeps_its_digest():
    """The adaptive interpreter rewrites a hot function's bytecode in place; co_code (and so
    the digest) is the unspecialised code."""
    src = "def f(x):\n    return x.real + len([x]) + x * 2\n"
    hot, cold = fn_of(src), fn_of(src)
    for i in range(2000):
        hot(i)
    assert same(hot, cold)


# -- what changes a function's digest -------------------------------------------------------------


@pytest.mark.parametrize("before, after", [
    ("def f(x):\n    return x + 1\n", "def f(x):\n    return x + 2\n"),  # a constant
    ("def f(x):\n    return x + 1\n", "def f(x):\n    return x + 1.0\n"),  # 1 == 1.0, but not the same constant
    ("def f(x):\n    return x + 0.0\n", "def f(x):\n    return x + -0.0\n"),
    ("def f(x):\n    return x + 1\n", "def f(x):\n    return x - 1\n"),  # the code
    ("def f(x):\n    return (lambda y: y + 1)(x)\n", "def f(x):\n    return (lambda y: y + 2)(x)\n"),
    ("def f(x):\n    def g():\n        return 'a'\n    return g\n",
     "def f(x):\n    def g():\n        return 'b'\n    return g\n"),  # a nested function's constant
    ("def f(x):\n    return [y for y in x if y]\n", "def f(x):\n    return [y for y in x if not y]\n"),
    ("def f(x):\n    return x in {'a', 'b'}\n", "def f(x):\n    return x in {'a', 'c'}\n"),
    ("def f(x, y=1):\n    return x\n", "def f(x, y=2):\n    return x\n"),  # a default
    ("def f(x, *, y=1):\n    return x\n", "def f(x, *, y=2):\n    return x\n"),  # a keyword default
    ("def f(x, y=1):\n    return x\n", "def f(x, z=1):\n    return x\n"),  # a parameter's name
    ("def f(x):\n    try:\n        return x\n    except ValueError:\n        return 0\n",
     "def f(x):\n    try:\n        return x\n    except TypeError:\n        return 0\n"),
    ("S = 2\ndef f(x):\n    return x * S\n", "S = 3\ndef f(x):\n    return x * S\n"),  # a plain global
    ("S = ('a', 1)\ndef f(x):\n    return S\n", "S = ('a', 2)\ndef f(x):\n    return S\n"),
    ("def h(x):\n    return x\ndef f(x):\n    return h(x)\n",
     "def h(x):\n    return -x\ndef f(x):\n    return h(x)\n"),  # a function of its module it calls
    ("def f(x):\n    return x\n", "def f(x):\n    '''Now documented.'''\n    return x\n"),  # the docstring
])
def test_a_difference_changes_the_digest(before, after):
    assert not same(fn_of(before), fn_of(after))
    assert same(fn_of(before), fn_of(before))


def test_globals_that_are_not_plain_are_not_hashed():
    """A dict (or any object) named as a global is not hashed: that is what versions are for."""
    a = fn_of("CONFIG = {'k': 1}\ndef f(x):\n    return CONFIG['k'] + x\n")
    b = fn_of("CONFIG = {'k': 2}\ndef f(x):\n    return CONFIG['k'] + x\n")
    assert same(a, b)


def test_closures():
    src = """
        def make_adder(n):
            def add(x):
                return x + n
            return add
        def make_empty():
            def early():
                return value
            return early
            value = 1
    """
    ns = define(src)
    assert not same(ns["make_adder"](1), ns["make_adder"](2))
    assert same(ns["make_adder"](1), ns["make_adder"](1))
    assert same(ns["make_empty"](), ns["make_empty"]())  # a cell never assigned
    # A closure over a function hashes that function's code (e.g. a decorator's wrapper).
    deco = """
        import functools
        def logged(fn):
            @functools.wraps(fn)
            def wrapper(*args):
                return fn(*args)
            return wrapper
        @logged
        def f(x):
            return x + BODY
    """
    assert not same(fn_of(deco.replace("BODY", "1")), fn_of(deco.replace("BODY", "2")))


def test_recursive_functions_end():
    fact = fn_of("def f(n):\n    return 1 if n < 2 else n * f(n - 1)\n")
    assert len(function_fingerprint(fact)) == 32
    ns = define("""
        def outer():
            def again(n):
                return n and again(n - 1)
            return again
    """)
    assert same(ns["outer"](), ns["outer"]())


def test_partial():
    f = fn_of("def f(a, b=0, c=0):\n    return a + b + c\n")
    g = fn_of("def f(a, b=0, c=0):\n    return a - b - c\n")
    assert same(functools.partial(f, 1), functools.partial(f, 1))
    assert not same(functools.partial(f, 1), functools.partial(f, 2))
    assert not same(functools.partial(f, 1), functools.partial(f, b=1))
    assert not same(functools.partial(f, 1), functools.partial(g, 1))
    assert not same(functools.partial(f, 1), f)
    assert not same(functools.partial(functools.partial(f, 1), 2), functools.partial(f, 1, 3))


def test_builtins_and_methods():
    assert same(len, len) and not same(len, abs)
    assert not same(math.sqrt, math.floor)
    assert not same("a".upper, "b".upper)  # a builtin bound to an object
    assert same(str.upper, str.upper) and not same(str.upper, str.lower)
    assert not same(functools.lru_cache(fn_of("def f():\n    return 1\n")),
                    functools.lru_cache(fn_of("def f():\n    return 2\n")))


def test_classes_and_instances():
    src = """
        import threading
        class C:
            def __init__(self, k):
                self.k = k
            def __call__(self, x):
                return x + self.k
            def m(self, x):
                return x * self.k
        class Locked:
            def __init__(self, k):
                self.k = k
                self.lock = threading.Lock()
            def __call__(self, x):
                return x + self.k
    """
    ns = define(src)
    C, Locked = ns["C"], ns["Locked"]
    assert same(C, C) and not same(C, Locked)
    assert same(C(1), C(1)) and not same(C(1), C(2))
    assert not same(C(1).m, C(2).m) and same(C(1).m, C(1).m)
    assert not same(C(1).m, C(1))
    # Unpicklable: hashed by its attributes.
    assert same(Locked(1), Locked(1)) and not same(Locked(1), Locked(2))
    # The class's __call__ is hashed by code.
    other = define(src.replace("return x + self.k", "return x - self.k"))
    assert not same(C(1), other["C"](1))


def test_threads_agree():
    fn = fn_of("def f(x, y=(1, 2)):\n    return [lambda: x, {'a', 'b'}]\n")
    barrier = threading.Barrier(8, timeout=TIMEOUT)

    def digest():
        barrier.wait()
        return [function_fingerprint(fn) for _ in range(50)]

    got = results(Background(digest) for _ in range(8))
    assert len({d for ds in got for d in ds}) == 1


CACHE_CHECK = """
import gc, types
import ftdag._fingerprint as fpr
from ftdag._fingerprint import function_fingerprint
ns = {}
exec(compile("def f(x):\\n    return x + 1\\n", "<test>", "exec"), ns)
proto = ns["f"]
fn = types.FunctionType(proto.__code__.replace(co_name="g"), {})
digest = function_fingerprint(fn)
key = id(fn.__code__)
assert key in fpr._CODE_CACHE
del fn
gc.collect()
assert key not in fpr._CODE_CACHE, "the entry outlived its code object"
again = types.FunctionType(proto.__code__.replace(co_name="g"), {})
assert function_fingerprint(again) == digest
print("ok")
"""


def test_code_cache_forgets_freed_code():
    """A cache entry goes with its code object (made by replace(): the code objects a compiled
    module holds as constants may be immortal).  Checked in a fresh interpreter that has run no
    second thread: once one has, 3.13t makes new code objects immortal, and nothing is freed."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", CACHE_CHECK], capture_output=True, text=True, env=env,
                          timeout=TIMEOUT)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


# -- sources and tasks ----------------------------------------------------------------------------


def test_source_fingerprint():
    a = source_fingerprint("a", [1, 2])
    assert a == source_fingerprint("a", [1, 2]) and len(a) == 32
    assert a != source_fingerprint("a", [1, 3])
    assert a != source_fingerprint("b", [1, 2])
    assert a != source_fingerprint(("a",), [1, 2])


def test_unpicklable_source_or_key_has_no_fingerprint():
    assert source_fingerprint("k", threading.Lock()) is None
    assert source_fingerprint("k", lambda: 1) is None
    key = ("k", threading.Lock())
    assert source_fingerprint(key, 1) is None
    assert task_fingerprint(key, b"v:1", []) is None


def test_task_fingerprint_order_and_boundaries():
    d1, d2 = b"1" * 32, b"2" * 32
    base = task_fingerprint("t", b"v:1", [d1, d2])
    assert base == task_fingerprint("t", b"v:1", (d1, d2)) and len(base) == 32
    assert base != task_fingerprint("t", b"v:1", [d2, d1])  # dependency order
    assert base != task_fingerprint("u", b"v:1", [d1, d2])  # key
    assert base != task_fingerprint("t", b"v:2", [d1, d2])  # identity
    assert base != task_fingerprint("t", b"f:1", [d1, d2])
    assert base != task_fingerprint("t", b"v:1", [d1, d2, d2])  # a repeated dependency counts
    # Length prefixes: moving bytes between fields gives another digest.
    assert task_fingerprint("t", b"v:1", [b"ab", b"c"]) != task_fingerprint("t", b"v:1", [b"a", b"bc"])
    assert task_fingerprint("t", b"v:1a", [b"b"]) != task_fingerprint("t", b"v:1", [b"ab"])
    # Keys by type and value: 1, True, 1.0 and "1" are four keys.
    digests = {task_fingerprint(k, b"v:1", []) for k in (1, True, 1.0, "1", b"1", (1,), None)}
    assert len(digests) == 7
    # A frozenset key does not depend on the order its members were added in.
    names = ["alpha", "beta", "gamma", "delta", "epsilon"]
    assert task_fingerprint(frozenset(names), b"v:1", []) == task_fingerprint(frozenset(reversed(names)), b"v:1", [])
    # Equal tuple keys built from distinct but equal objects (pickle would memoise shared ones).
    s = "".join(["e", "u"])
    assert task_fingerprint((s, s), b"v:1", []) == task_fingerprint(("eu", "".join(["e", "u"])), b"v:1", [])


def test_task_fingerprint_checks_its_arguments():
    with pytest.raises(TypeError, match="identity of task 't' must be bytes, got str"):
        task_fingerprint("t", "v:1", [])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dependency fingerprint 1 of task 't' must be bytes, got NoneType"):
        task_fingerprint("t", b"v:1", [b"x", None])  # type: ignore[list-item]


def test_digests_become_store_fingerprints(tmp_path):
    """A digest's hex() is what a store takes."""
    from ftdag.store import DirectoryStore

    s = DirectoryStore(tmp_path)
    fp = task_fingerprint(("sum", "eu"), b"f:" + function_fingerprint(len), [source_fingerprint("a", 1)]).hex()
    s.save(fp, 42)
    assert s.load(fp) == 42
