"""Flat graph arrays: the edges of a graph as CSR tables of 32-bit ints.

A *table* is a pair of ``array('i')`` s, ``start`` (one entry per node, plus one) and
``ids``: the row of node ``i`` is ``ids[start[i]:start[i + 1]]``.  A :class:`~ftdag.Dag`
keeps its data dependencies, its dependents and what a finished node counts down
(``Dag._next``) this way.

Why arrays and not tuples: on free-threaded CPython a reference-count change on an object
that another thread created is an atomic operation, so worker threads reading tuples and
ints that the builder's thread created paid for it on every task (and once kept a copy of
the graph each).  Reading an element of an ``array`` creates the int in the reading thread:
nothing is shared, nothing is copied, and the memory a run needs does not depend on the
number of workers.  Two arrays of 4-byte ints also take a fraction of the memory of a tuple
per node.

:class:`Rows` shows a table as a sequence of tuples, for the code off the hot paths
(constraints, pictures, stores, the dask bridge) and for tests.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, chain

__all__ = ["INDEX", "MAX_IDS", "Rows", "table", "transpose"]

INDEX = "i"
"""The typecode of node ids and offsets: C ``int``, 4 bytes here."""

MAX_IDS = 2**31 - 1
"""The most nodes, and the most edges, a table can hold (``build()`` refuses more)."""


def zeros(n: int) -> array:
    """An ``array('i')`` of ``n`` zeros."""
    return array(INDEX, bytes(4 * n))


def table(rows: Iterable[Sequence[int]]) -> tuple[array, array]:
    """``(start, ids)`` of the rows given as sequences of ids (made with C loops)."""
    if not isinstance(rows, (list, tuple)):
        rows = list(rows)
    return array(INDEX, accumulate(map(len, rows), initial=0)), array(INDEX, chain.from_iterable(rows))


def transpose(start: array, ids: array, n: int) -> tuple[array, array, array]:
    """The inverse of a table over ``n`` nodes: row ``d`` lists every ``i`` whose row holds
    ``d``, as often as it does there, in ascending order of ``i``.  Returns its ``start`` and
    ``ids``, and the length of each of its rows."""
    count = [0] * n
    for d in ids:
        count[d] += 1
    out_start = array(INDEX, [0])
    out_start.extend(accumulate(count))
    fill = out_start.tolist()
    out = zeros(len(ids))
    for i, end in enumerate(start[1:]):  # row i is ids[start[i]:end]; rows are visited in ascending i
        for d in ids[start[i]:end]:
            p = fill[d]
            out[p] = i
            fill[d] = p + 1
    return out_start, out, array(INDEX, count)


class Rows(Sequence[tuple[int, ...]]):
    """A read-only view of a table as a sequence of tuples: ``rows[i]`` is row ``i``.

    Made on demand from the arrays, so it costs no memory; off the hot paths only (each
    access builds a tuple).
    """

    __slots__ = ("start", "ids")

    def __init__(self, start: array, ids: array) -> None:
        self.start = start
        self.ids = ids

    def __len__(self) -> int:
        return len(self.start) - 1

    def __getitem__(self, i: int) -> tuple[int, ...]:  # type: ignore[override]
        start = self.start
        if i < 0 or i >= len(start) - 1:
            n = len(start) - 1
            if not -n <= i < n:
                raise IndexError(f"row {i} out of range for {n} rows")
            i += n
        return tuple(self.ids[start[i]:start[i + 1]])

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        start, ids = self.start, self.ids
        a = 0
        for b in start[1:]:
            yield tuple(ids[a:b])
            a = b

    def __repr__(self) -> str:
        return f"<Rows: {len(self)} rows, {len(self.ids)} ids>"
