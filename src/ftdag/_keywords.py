"""Keyword dependencies: ``add_task(key, {"x": "a", "y": "b"}, fn)`` calls ``fn(x=a, y=b)``.

The schedulers only know positional tasks (``fn(*values_of(deps))``), and their hot paths
stay that way: a keyword task is compiled when it is added.  Its dependencies become the
mapping's values, in the mapping's order, and its function a :class:`KeywordCall`, which
takes those values positionally and calls the wrapped function with them by keyword.  So
``Dag.dependencies(key)`` lists the mapping's values, a key named under two parameters is
listed twice, and an empty mapping is the same task as an empty list (no adapter).

A :class:`KeywordCall` pickles when its function does (by reference to this module's class,
with the function and the names as arguments), so keyword tasks run on worker processes
under the usual rules.  Result stores fingerprint it by the wrapped function's fingerprint
and the names (:mod:`ftdag._fingerprint`), so a store recognises the same task across runs
and processes, and renaming a parameter misses it.

:class:`KeywordCalls` hands out one adapter per ``(function, names)`` pair, so that tasks
sharing a function share its adapter, as they would share the function itself: the
process backend pickles each distinct function object once per pool, and a run
fingerprints it once.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

__all__ = ["KeywordCall", "KeywordCalls", "keyword_deps"]


class KeywordCall:
    """``KeywordCall(fn, names)(*args)`` is ``fn(**dict(zip(names, args)))``.

    ``.fn`` is the wrapped callable and ``.names`` the tuple of parameter names, one per
    positional argument the adapter takes.  ``__name__`` and ``__qualname__`` are the wrapped
    function's (its type's for a callable without them, such as a ``functools.partial``), so
    that messages naming a task's function name the user's.  Picklable when ``fn`` is.
    """

    __slots__ = ("fn", "names", "__name__", "__qualname__")

    def __init__(self, fn: Callable[..., Any], names: tuple[str, ...]) -> None:
        self.fn = fn
        self.names = names
        self.__qualname__ = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        self.__name__ = getattr(fn, "__name__", None) or type(fn).__name__

    def __call__(self, *args: Any) -> Any:
        return self.fn(**dict(zip(self.names, args)))

    def __reduce__(self) -> tuple[type[KeywordCall], tuple[Callable[..., Any], tuple[str, ...]]]:
        return (KeywordCall, (self.fn, self.names))

    def __repr__(self) -> str:
        return f"KeywordCall({self.fn!r}, {self.names!r})"


class KeywordCalls:
    """A cache of :class:`KeywordCall` s by ``(function, names)``.

    Safe to share between threads without a lock: each access is one dict operation, and two
    threads racing on one pair at worst make two equivalent adapters, the last one kept.
    """

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        # (id(fn), names) -> the adapter; the adapter holds fn, so its id is not reused meanwhile
        self._cache: dict[tuple[int, tuple[str, ...]], KeywordCall] = {}

    def get(self, fn: Callable[..., Any], names: tuple[str, ...]) -> KeywordCall:
        """The adapter calling ``fn`` with ``names``, made on first use."""
        found = self._cache.get((id(fn), names))
        if found is None:
            found = self._cache[(id(fn), names)] = KeywordCall(fn, names)
        return found


def keyword_deps(key: Hashable, deps: Mapping[Any, Any]) -> tuple[tuple[Hashable, ...], tuple[str, ...]]:
    """``(dependency keys, parameter names)`` of task ``key``'s keyword dependencies ``deps``,
    validated: each name a ``str`` that is an identifier, each dependency key hashable.

    Raises ``TypeError`` or ``ValueError`` naming the task and the parameter.
    """
    names: list[str] = []
    keys: list[Hashable] = []
    for name, dep in deps.items():
        if not isinstance(name, str):
            raise TypeError(
                f"deps of task {key!r}: a parameter name must be a str, got {type(name).__name__}: {name!r}"
            )
        if not name.isidentifier():
            raise ValueError(f"deps of task {key!r}: parameter name {name!r} is not a valid identifier")
        try:
            hash(dep)
        except TypeError:
            raise TypeError(
                f"dependency {dep!r} (parameter {name!r}) of task {key!r} must be hashable, "
                f"got {type(dep).__name__}"
            ) from None
        names.append(name)
        keys.append(dep)
    return tuple(keys), tuple(names)
