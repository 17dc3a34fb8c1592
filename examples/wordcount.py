#!/usr/bin/env python3
"""Word counts over a directory of text files, as a function pipeline, printed as they complete.

The script writes a small corpus (``N_FILES`` text files) into a temporary directory, then
declares the pipeline with :class:`ftdag.Pipeline`, one function per step, whose parameters
name their inputs:

    read(path) -> text -> tokenise(text) -> words -> count(words, min_len) -> counts
                                                       (one chain of tasks per file)
    merge(left, right), pairwise in a tree over the files' counts -> totals
    top(totals, n) -> top words

``renames=`` lets one function serve many tasks (``count`` reads ``words/3`` for file 3,
and each ``merge`` its two halves of the tree).
:meth:`ftdag.Executor.as_completed` then hands out each file's counts as soon as they are
ready, in the order they complete, and the merged top words last.

Run it from the repository root: ``python examples/wordcount.py``.  Every function is defined
at module level, so it also runs on worker processes (GIL builds).
"""

from __future__ import annotations

import collections
import functools
import pathlib
import random
import re
import sys
import tempfile

import ftdag

N_FILES = 6
VOCABULARY = ["ftdag", "threads", "schedule", "tasks", "graph", "python", "free", "gil", "pipeline", "value", "worker", "result", "chain", "ready", "order", "store", "retry", "trace"]


def write_corpus(directory: pathlib.Path) -> list[pathlib.Path]:
    """``N_FILES`` files of seeded random text, of different sizes (so that they finish apart)."""
    rng = random.Random(7)
    paths = []
    for i in range(N_FILES):
        words = [rng.choice(VOCABULARY) for _ in range(2000 * (i + 1))]
        path = directory / f"part-{i}.txt"
        path.write_text(" ".join(words) + "\n")
        paths.append(path)
    return paths


def read(path: pathlib.Path) -> str:
    return path.read_text()


def tokenise(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def count(words: list[str], min_len: int = 1) -> collections.Counter:
    return collections.Counter(w for w in words if len(w) >= min_len)


def merge(left: collections.Counter, right: collections.Counter) -> collections.Counter:
    return left + right


def top(totals: collections.Counter, n: int = 5) -> list[tuple[str, int]]:
    return totals.most_common(n)


def pipeline(paths: list[pathlib.Path]) -> ftdag.Pipeline:
    pipe = ftdag.Pipeline()
    for i, path in enumerate(paths):
        pipe.task(functools.partial(read, path), name=f"text/{i}")
        pipe.task(tokenise, name=f"words/{i}", renames={"text": f"text/{i}"})
        pipe.task(count, name=f"counts/{i}", renames={"words": f"words/{i}"})
    level = [f"counts/{i}" for i in range(len(paths))]  # a tree of pairwise merges over them
    while len(level) > 1:
        pairs, level = level, []
        for j in range(0, len(pairs) - 1, 2):
            name = "totals" if len(pairs) == 2 else f"merged/{pairs[j]}+{pairs[j + 1]}"
            pipe.task(merge, name=name, renames={"left": pairs[j], "right": pairs[j + 1]})
            level.append(name)
        if len(pairs) % 2:
            level.append(pairs[-1])  # carried up to the next level
    pipe.task(top)
    return pipe


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ftdag-wordcount-") as tmp:
        paths = write_corpus(pathlib.Path(tmp))
        dag = pipeline(paths).build(min_len=4, n=5)
        outputs = [f"counts/{i}" for i in range(len(paths))] + ["top"]
        with ftdag.Executor(max_workers=4) as ex:
            for key, value in ex.as_completed(dag, outputs):
                if key == "top":
                    print("top words:", ", ".join(f"{w} {c}" for w, c in value))
                else:
                    print(f"{key}: {sum(value.values())} words of 4+ letters, {len(value)} distinct")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
