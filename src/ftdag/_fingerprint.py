"""Fingerprints for resumable runs: digests naming a result the same way in every run and process.

A task's fingerprint is a Merkle node, :func:`task_fingerprint`, over its key, its *identity*
(what computes it: the caller passes ``b"v:" + version.encode()`` for a version the user
gave, or ``b"f:" + function_fingerprint(fn)``) and its dependencies' fingerprints in order; a
source's is :func:`source_fingerprint`, over its key and value.  The caller walks the graph;
this module only hashes.  Stores receive ``digest.hex()``.

Every digest is SHA-256 over *fields*, each prefixed with its length (8 bytes, big-endian),
after a tag naming the kind of digest and the format's version: no two different field
sequences hash the same bytes, and a format change (a new tag) simply misses old records.

Determinism
-----------
A digest is the same in every process and every interpreter run of one Python version:
nothing hashed depends on ``id()``, on ``hash()`` (randomised per process for ``str``), on
memory addresses, or on set iteration order.  Keys are encoded canonically (:func:`_key_bytes`):
``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, and tuples and
frozensets of them (a frozenset's members sorted by their encoding); anything else as its
pickle.  Source values are hashed as their pickle (protocol 5), which is deterministic for
the usual data, but not for everything: a ``set`` or ``frozenset`` of strings pickles in
hash order, which differs between processes (``PYTHONHASHSEED``), and pickle encodes an
object that appears twice as a reference, so equal values built with and without shared
parts pickle differently.  Such a value fingerprints differently across runs: that is safe,
the task only misses the store and runs again.  The same holds for a key that falls back to
its pickle.

Function fingerprints
---------------------
:func:`function_fingerprint` hashes what decides a function's behaviour that it can see:

- a Python function: its module and qualified name; its code object, recursively (bytecode,
  exception table, constants, with nested functions' and lambdas' code hashed the same way
  rather than by ``repr``, which holds an address; names, argument counts, flags); its
  defaults and keyword defaults; the contents of its closure cells; the *plain* globals its
  code (or nested code) names (``None``, numbers, strings, bytes, tuples and frozensets of
  them); and, recursively, the functions of its own module that it names as globals.  Line
  numbers and file names are not hashed: moving a function does not change its fingerprint;
  editing its docstring does.
- a ``functools.partial``: its function, arguments and keywords; a bound method: its
  function and its ``__self__``; a keyword task's adapter (:class:`~ftdag._keywords.KeywordCall`):
  its function and its parameter names, in order.
- a builtin, a class, or another callable without code: its module and qualified name, with
  ``__self__`` for a builtin method bound to an object and ``__wrapped__`` (e.g.
  ``functools.lru_cache``) when present; a callable instance: its class's module and
  qualified name, the instance's pickle, and its class's ``__call__``.

A value (a default, a cell, an instance) that does not pickle is hashed by its parts where it
has some (a tuple's or list's items, a dict's items, an object's ``__dict__``), else by its
type alone: two such values of one type look the same.  Not seen: functions of other
modules it calls, globals that are not plain (a dict, an object), the code of classes it
uses, files it reads.  When those change, the user changes the task's version instead.

Code objects are immutable, so each code object's digest is cached (weakly: the entry goes
when the code object does; on 3.13t, code objects made after a second thread started are
immortal, and so are their entries); a function's fingerprint is recomputed each call, since its
defaults, cells and globals can change.  Callers should fingerprint each distinct function
once per plan.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import types
import weakref
from collections.abc import Hashable, Sequence

from ._keywords import KeywordCall

__all__ = ["function_fingerprint", "source_fingerprint", "task_fingerprint"]

PROTOCOL = 5  # fixed, not HIGHEST_PROTOCOL: the same bytes on every Python that has it
_BIG = 1000  # a container longer than this is hashed as one pickle, not item by item


def _fields(tag: bytes, *fields: bytes) -> bytes:
    """SHA-256 of ``tag`` and the fields, each length-prefixed (joined first: one update is
    cheaper than many for the short fields most digests have)."""
    return hashlib.sha256(tag + _join(fields)).digest()


def _join(parts: Sequence[bytes]) -> bytes:
    """The parts, each length-prefixed, after their count: an unambiguous concatenation."""
    out = [len(parts).to_bytes(8, "big")]
    for p in parts:
        out.append(len(p).to_bytes(8, "big"))
        out.append(p)
    return b"".join(out)


def _text(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def _type_name(obj: object) -> bytes:
    t = type(obj)
    return _text(f"{t.__module__}.{t.__qualname__}")


def _pickled(obj: object) -> bytes | None:
    try:
        return pickle.dumps(obj, PROTOCOL)
    except Exception:
        return None


# -- keys and sources ----------------------------------------------------------------------------

_SCALARS = (type(None), bool, int, float, complex, str, bytes)


def _scalar_bytes(obj: object) -> bytes:
    """A scalar as its type and value: ``int:1`` is not ``bool:True`` nor ``float:1.0``."""
    if type(obj) is str:
        return b"s:" + _text(obj)
    if type(obj) is bytes:
        return b"b:" + obj
    return _text(f"{type(obj).__name__}:{obj!r}")  # repr of a float is exact and keeps -0.0


def _key_bytes(key: object) -> bytes | None:
    """``key`` encoded canonically (see the module docstring); None if it does not pickle."""
    t = type(key)
    if t in _SCALARS:
        return b"S" + _scalar_bytes(key)
    if t is tuple or t is frozenset:
        parts = []
        for item in key:  # type: ignore[attr-defined]
            b = _key_bytes(item)
            if b is None:
                return None
            parts.append(b)
        if t is frozenset:
            parts.sort()
        return (b"T" if t is tuple else b"F") + _join(parts)
    p = _pickled(key)
    return None if p is None else b"P" + p


def source_fingerprint(key: Hashable, value: object) -> bytes | None:
    """The fingerprint of the source ``key`` holding ``value``; None if either does not pickle."""
    k = _key_bytes(key)
    v = _pickled(value)
    if k is None or v is None:
        return None
    return _fields(b"ftdag-source-1", k, v)


def task_fingerprint(key: Hashable, identity: bytes, dep_fingerprints: Sequence[bytes]) -> bytes | None:
    """The fingerprint of the task ``key``: a Merkle node over its key, ``identity`` and its
    dependencies' fingerprints, in order (``dep_fingerprints`` lists one per dependency, as
    the task lists them, repeats included).  None if the key does not pickle.

    ``identity`` is bytes the caller prefixes by kind (``b"v:"`` + a version, ``b"f:"`` + a
    function fingerprint); a dependency fingerprint is the digest (bytes) of that node.
    """
    if not isinstance(identity, bytes):
        raise TypeError(f"identity of task {key!r} must be bytes, got {type(identity).__name__}: {identity!r}")
    deps = list(dep_fingerprints)
    for i, d in enumerate(deps):
        if not isinstance(d, bytes):
            raise TypeError(
                f"dependency fingerprint {i} of task {key!r} must be bytes, got {type(d).__name__}: {d!r} "
                "(a task depending on a node without a fingerprint has none either)"
            )
    k = _key_bytes(key)
    if k is None:
        return None
    return _fields(b"ftdag-task-1", k, identity, _join(deps))


# -- code objects --------------------------------------------------------------------------------

# id(code) -> (weak reference to it, digest, global names its code and nested code use).
# Each access is a single dict operation, atomic on both builds; no lock, because a weak
# reference's callback may run while this thread is inside the cache (the garbage
# collector can free a code object anywhere), and it would deadlock on a lock held there.
# An entry is removed by its code object's callback, which runs before the object's memory
# (and so its id) can be reused; a hit also checks that the reference still is the object.
_CODE_CACHE: dict[int, tuple[weakref.ref, bytes, frozenset[str]]] = {}


def _code(code: types.CodeType) -> tuple[bytes, frozenset[str]]:
    """The digest of ``code`` and the global names it (or code nested in it) may use."""
    entry = _CODE_CACHE.get(id(code))
    if entry is not None and entry[0]() is code:
        return entry[1], entry[2]
    names = set(code.co_names)
    consts = _join([_const(c, names) for c in code.co_consts])
    digest = _fields(
        b"ftdag-code-1",
        _text(f"{code.co_argcount},{code.co_posonlyargcount},{code.co_kwonlyargcount},{code.co_flags}"),
        _text(code.co_name), _text(code.co_qualname),
        code.co_code, code.co_exceptiontable,
        *(_join([_text(n) for n in getattr(code, attr)])
          for attr in ("co_names", "co_varnames", "co_freevars", "co_cellvars")),
        consts,
    )
    used = frozenset(names)
    key = id(code)
    _CODE_CACHE[key] = (weakref.ref(code, functools.partial(_forget, key)), digest, used)
    return digest, used


def _forget(key: int, _ref: object) -> None:
    _CODE_CACHE.pop(key, None)


def _const(c: object, names: set[str]) -> bytes:
    """A constant of a code object; nested code by digest, adding its global names to ``names``."""
    if isinstance(c, types.CodeType):
        digest, used = _code(c)
        names |= used
        return b"C" + digest
    if type(c) is tuple:
        return b"T" + _join([_const(x, names) for x in c])
    if type(c) is frozenset:  # e.g. `x in {"a", "b"}`: iteration order is the hash order, so sort
        return b"F" + _join(sorted(_const(x, names) for x in c))
    if type(c) in _SCALARS:
        return b"S" + _scalar_bytes(c)
    return b"R" + _type_name(c) + b":" + _text(repr(c))  # Ellipsis, and what later Pythons add


def _plain(v: object) -> bool:
    """Whether ``v`` is plain data, hashed when a function names it as a global."""
    t = type(v)
    if t in _SCALARS:
        return True
    if isinstance(v, (tuple, frozenset)) and (t is tuple or t is frozenset):
        return len(v) <= _BIG and all(_plain(x) for x in v)
    return False


# -- functions -------------------------------------------------------------------------------------


def function_fingerprint(fn: object) -> bytes:
    """A digest of the callable ``fn``: what it hashes is in the module docstring."""
    return _function(fn, set())


def _function(fn: object, active: set[int]) -> bytes:
    """``fn``'s digest; ``active`` holds the ids of the callables being hashed further up,
    so that a function reaching itself (recursion through a global or a cell) ends."""
    if id(fn) in active:
        return _fields(b"ftdag-recursion-1", _name(fn))
    active.add(id(fn))
    try:
        return _fields(b"ftdag-function-1", *_function_fields(fn, active))
    finally:
        active.discard(id(fn))


def _name(fn: object) -> bytes:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(qualname, str):  # an instance: its class names it
        module, qualname = type(fn).__module__, type(fn).__qualname__
    if module is None:
        module = getattr(getattr(fn, "__objclass__", None), "__module__", None)
    return _text(f"{module}:{qualname}")


def _function_fields(fn: object, active: set[int]) -> list[bytes]:
    if isinstance(fn, types.FunctionType):
        digest, names = _code(fn.__code__)
        cells = []
        for cell in fn.__closure__ or ():
            try:
                contents = cell.cell_contents
            except ValueError:  # not yet assigned
                cells.append(b"empty")
            else:
                cells.append(b"=" + _value(contents, active))
        glob = fn.__globals__
        used = []
        for name in sorted(names):
            if name not in glob:
                continue
            v = glob[name]
            if _plain(v):
                used.append(_text(name) + b"=" + _const(v, set()))
            elif isinstance(v, types.FunctionType) and v.__module__ == fn.__module__:
                used.append(_text(name) + b"=" + _function(v, active))
        return [b"function", _name(fn), digest, _value(fn.__defaults__, active), _value(fn.__kwdefaults__, active),
                _join(cells), _join(used)]
    if isinstance(fn, functools.partial):
        return [b"partial", _function(fn.func, active), _value(fn.args, active), _value(fn.keywords, active)]
    if isinstance(fn, types.MethodType):
        return [b"method", _function(fn.__func__, active), _value(fn.__self__, active)]
    if isinstance(fn, KeywordCall):
        return [b"keywords", _function(fn.fn, active), _join([_text(n) for n in fn.names])]
    if isinstance(fn, type):
        return [b"class", _name(fn)]
    if isinstance(getattr(fn, "__qualname__", None), str):  # builtins, method descriptors, wrappers
        fields = [b"named", _name(fn)]
        bound = getattr(fn, "__self__", None)
        if bound is not None and not isinstance(bound, types.ModuleType):
            fields.append(b"self=" + _value(bound, active))
        wrapped = getattr(fn, "__wrapped__", None)
        if wrapped is not None:
            fields.append(b"wrapped=" + _function(wrapped, active))
        return fields
    fields = [b"instance", _name(fn), _value(fn, active)]
    call = next((k.__dict__["__call__"] for k in type(fn).__mro__ if "__call__" in k.__dict__), None)
    if isinstance(call, types.FunctionType):
        fields.append(b"call=" + _function(call, active))
    return fields


def _value(obj: object, active: set[int], depth: int = 0) -> bytes:
    """A default, a cell's contents, a bound object: functions by fingerprint, small containers
    item by item (so that functions in them are hashed by code, and sets in a fixed order),
    the rest by pickle, else by parts, else by type."""
    if isinstance(obj, (types.FunctionType, functools.partial, types.MethodType, KeywordCall)):
        return b"f" + _function(obj, active)
    t = type(obj)
    if t in _SCALARS:
        return b"S" + _scalar_bytes(obj)
    small = depth < 8 and t in (tuple, list, set, frozenset, dict) and len(obj) <= _BIG  # type: ignore[arg-type]
    if small and t is dict:
        return b"D" + _join([_value(k, active, depth + 1) + b"=" + _value(v, active, depth + 1)
                             for k, v in obj.items()])  # type: ignore[attr-defined]
    if small:
        parts = [_value(x, active, depth + 1) for x in obj]  # type: ignore[attr-defined]
        if t is set or t is frozenset:
            parts.sort()
        return _text(t.__name__) + _join(parts)
    p = _pickled(obj)
    if p is not None:
        return b"P" + p
    attrs = getattr(obj, "__dict__", None)
    if depth < 8 and type(attrs) is dict:
        return b"O" + _type_name(obj) + _join([_text(str(k)) + b"=" + _value(v, active, depth + 1)
                                               for k, v in attrs.items()])
    return b"U" + _type_name(obj)
