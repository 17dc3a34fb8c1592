"""Pictures of a :class:`~ftdag.Dag`: Graphviz DOT (:func:`to_dot`) and Mermaid (:func:`to_mermaid`).

Both draw the same thing:

- a node per key, labelled with ``repr(key)`` and, on further lines, what constrains it:
  ``creates``, ``reads``, ``writes`` and ``consumes`` (names sorted), resources (``db×2``),
  and a priority or cost other than the default.  Sources are ellipses (Mermaid: stadiums),
  tasks boxes;
- data edges solid, order-only edges dashed, each from the node that runs first (an edge
  listed twice in a task's dependencies is drawn once);
- with ``outputs``, the requested outputs bold and the nodes a run for them would prune
  greyed out and dashed, with the edges that touch them (DOT: ``color=gray``; Mermaid: the
  ``pruned`` class and a grey ``linkStyle``).

Node ids are ``n<id>`` by node id (topological order), so the text is stable for a given
graph whatever its keys; labels are escaped for each language.  Names that are not
printable are shown by their ``repr``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .graph import Dag

__all__ = ["label_lines", "to_dot", "to_mermaid"]


def _name(name: str) -> str:
    return name if name.isprintable() else repr(name)


def label_lines(dag: Dag, i: int) -> list[str]:
    """The lines of node ``i``'s label: its key's ``repr``, then its constraints (module docstring)."""
    lines = [repr(dag._keys[i])]
    o = dag._options[i] if dag._options is not None else None
    if o is None:
        return lines
    for verb, names in (("creates", o.creates), ("reads", o.reads), ("writes", o.writes), ("consumes", o.consumes)):
        if names:
            lines.append(f"{verb} " + ", ".join(_name(n) for n in sorted(names)))
    if o.resources:
        lines.append(", ".join(f"{_name(n)}×{units}" for n, units in o.resources))
    if o.ordered:
        lines.append(f"priority {o.priority}, cost {o.cost:g}")
    return lines


def _edges(dag: Dag) -> list[tuple[int, int, bool]]:
    """``(u, v, is_order_edge)`` for every edge, by target id, data edges first."""
    edges: list[tuple[int, int, bool]] = []
    after = dag._after
    for v, ds in enumerate(dag._deps):
        edges.extend((u, v, False) for u in dict.fromkeys(ds))
        if after is not None:
            edges.extend((u, v, True) for u in after[v])
    return edges


def _planned(dag: Dag, outputs: object) -> tuple[set[int], set[int]] | None:
    """``(planned ids, output ids)`` for ``outputs``, or ``None`` for ``outputs=None`` (all)."""
    if outputs is None:
        return None
    ids = dag._output_ids(outputs)
    return set(dag._closure(ids)), set(ids)


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(dag: Dag, outputs: object = None) -> str:
    """``dag`` as a Graphviz ``digraph`` (module docstring)."""
    planned = _planned(dag, outputs)
    out = [
        "digraph ftdag {",
        '  node [shape=box, fontname="Helvetica"];',
        '  edge [fontname="Helvetica"];',
    ]
    for i in range(len(dag._keys)):
        label = "\\n".join(_dot_string(line)[1:-1] for line in label_lines(dag, i))
        attrs = [f'label="{label}"']
        if dag._fns[i] is None:
            attrs.append("shape=ellipse")
        if planned is not None:
            if i not in planned[0]:
                attrs.append("color=gray, fontcolor=gray, style=dashed")
            elif i in planned[1]:
                attrs.append("penwidth=2")
        out.append(f"  n{i} [{', '.join(attrs)}];")
    for u, v, order in _edges(dag):
        attrs = []
        if order:
            attrs.append("style=dashed")
        if planned is not None and not (u in planned[0] and v in planned[0]):
            attrs.append("color=gray")
        out.append(f"  n{u} -> n{v}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    out.append("}")
    return "\n".join(out) + "\n"


_MERMAID_ESCAPES = {c: f"#{ord(c)};" for c in '"#&<>`;'}


def _mermaid_text(text: str) -> str:
    return "".join(_MERMAID_ESCAPES.get(c, c) for c in text)


def to_mermaid(dag: Dag, outputs: object = None) -> str:
    """``dag`` as a Mermaid ``flowchart`` (module docstring)."""
    planned = _planned(dag, outputs)
    out = ["flowchart TB"]
    for i in range(len(dag._keys)):
        label = "<br/>".join(_mermaid_text(line) for line in label_lines(dag, i))
        shape = '(["{}"])' if dag._fns[i] is None else '["{}"]'
        out.append(f"  n{i}{shape.format(label)}")
    grey = []
    for number, (u, v, order) in enumerate(_edges(dag)):
        out.append(f"  n{u} {'-.->' if order else '-->'} n{v}")
        if planned is not None and not (u in planned[0] and v in planned[0]):
            grey.append(number)
    if planned is not None:
        pruned = [i for i in range(len(dag._keys)) if i not in planned[0]]
        if planned[1]:
            out.append("  classDef output stroke-width:3px")
            out.append("  class " + ",".join(f"n{i}" for i in sorted(planned[1])) + " output")
        if pruned:
            out.append("  classDef pruned fill:#f4f4f4,stroke:#aaa,color:#aaa,stroke-dasharray:4 3")
            out.append("  class " + ",".join(f"n{i}" for i in pruned) + " pruned")
        if grey:
            out.append("  linkStyle " + ",".join(map(str, grey)) + " stroke:#aaa")
    return "\n".join(out) + "\n"
