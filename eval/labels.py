"""Names for runs and sources in reports: short, and never two alike.

A checkpoint is named by its run (``runs/smiley/best.pt`` -> ``smiley``), a data
file by its category (``cat.ndjson`` -> ``cat``). Where two names clash, each
of the clashing ones grows by the next part of its path (``smiley/best`` and
``smiley/last``; ``a/smiley`` and ``b/smiley``), and what still clashes (the
same file twice) is numbered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ..formats import file_kind, file_stem


def candidates(path: str | Path, suffix: str = "") -> list[str]:
    """Ever longer names for `path`, the shortest first; `suffix` (e.g. ``:test``) ends each."""
    path = Path(path)
    stem = file_stem(path)
    parents = [p for p in path.parent.parts if p not in ("", ".", "/")]
    # a run's checkpoints are named by the run; a Magenta .gen.json is a model by itself
    if file_kind(path) == "checkpoint" and parents and not path.name.lower().endswith(".gen.json"):
        names = [parents[-1], f"{parents[-1]}/{stem}"]
        rest = parents[:-1]
    else:
        names, rest = [stem], parents
    for parent in reversed(rest):
        names.append(f"{parent}/{names[-1]}")
    return [name + suffix for name in names]


def distinct_labels(options: Sequence[Sequence[str]]) -> list[str]:
    """One label per item from its `options` (shortest first): the first option, lengthened
    for the items that clash, until no two labels are alike; equal items are numbered."""
    depth = [0] * len(options)
    while True:
        labels = [opts[min(d, len(opts) - 1)] for opts, d in zip(options, depth, strict=True)]
        counts = Counter(labels)
        grow = [
            i
            for i, label in enumerate(labels)
            if counts[label] > 1 and depth[i] < len(options[i]) - 1
        ]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    seen: Counter = Counter()
    out = []
    for label in labels:
        seen[label] += 1
        out.append(f"{label}#{seen[label]}" if counts[label] > 1 else label)
    return out


def path_labels(paths: Sequence[str | Path], suffixes: Sequence[str] | None = None) -> list[str]:
    """`distinct_labels` of files (checkpoints, data files), with optional per-item suffixes."""
    suffixes = suffixes or [""] * len(paths)
    return distinct_labels([candidates(p, s) for p, s in zip(paths, suffixes, strict=True)])
