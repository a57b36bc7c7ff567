"""Who grades which sketch: the whole pool for every rater, or a balanced part of it.

A study of a pool of thousands cannot show every rater everything. With per-rater subsets
(`grade serve --per-rater N --gradings-per-sketch K`) each new rater gets N sketches: every
attention check (gold item) of the study, and N minus that many sketches of the pool, shared
between the sources in proportion to their size in the pool (half real, the rest split
between the models), each source's part the sketches of that source held by the fewest
raters so far (ties broken at random, seeded). So every sketch is given to K raters before
any is given to K + 1, and the study is full once every sketch has K: a rater who starts then
is told so. A rater's own order of their sketches is shuffled with a generator of the study's
order seed and the rater's number, so a second team running the same study file gives its
k-th rater the same sketches in the same order (as long as its raters start and finish alike).

A rater who started and went away would hold their sketches for ever; one whose last grade (or
start) is older than the hold time and who has not finished gives back the sketches they have
not graded (`held`), and those go to the next raters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import QuickDrawError

HOLD_MINUTES = 120  # an unfinished rater silent this long gives back their ungraded sketches


class StudyFull(QuickDrawError):
    """Every sketch of the pool has its K gradings given out: no room for another rater."""


@dataclass(frozen=True)
class Design:
    per_rater: int | None = None  # sketches per rater, gold items included; None: the pool
    gradings_per_sketch: int | None = None  # K: raters per sketch; None: no limit
    order_seed: int = 0  # seeds each rater's sketches and order, with the rater's number
    hold_minutes: float = HOLD_MINUTES

    @classmethod
    def from_spec(cls, spec: Mapping) -> Design:
        """The design a session's spec records (a session from before designs: the pool for
        every rater, and an order seed of its --seed)."""
        found = spec.get("design") or {}
        return cls(
            per_rater=found.get("per_rater"),
            gradings_per_sketch=found.get("gradings_per_sketch"),
            order_seed=int(found.get("order_seed", spec.get("seed") or 0)),
            hold_minutes=float(found.get("hold_minutes", HOLD_MINUTES)),
        )

    def to_spec(self) -> dict:
        return {
            "per_rater": self.per_rater,
            "gradings_per_sketch": self.gradings_per_sketch,
            "order_seed": self.order_seed,
            "hold_minutes": self.hold_minutes,
        }


def check_design(design: Design, pool: int, gold: int) -> None:
    """Refuse a design the pool cannot hold: N must leave room for pool sketches beside the
    `gold` attention checks, and no more than the pool."""
    if design.per_rater is None:
        if design.gradings_per_sketch is not None:
            raise QuickDrawError("--gradings-per-sketch needs --per-rater N")
        return
    if not gold < design.per_rater <= pool + gold:
        raise QuickDrawError(
            f"--per-rater {design.per_rater} must be more than the {gold} attention checks "
            f"every rater grades and at most {pool + gold} (the pool's {pool} sketches and them)"
        )


def quotas(sizes: Mapping[str, int], n: int, number: int) -> dict[str, int]:
    """`n` sketches shared between the sources in proportion to their `sizes` in the pool,
    rounded by largest remainder; ties in the remainder go round by the rater's `number`, so
    no source is always the one rounded down."""
    total = sum(sizes.values())
    names = list(sizes)
    exact = {s: n * sizes[s] / total for s in names}
    out = {s: int(exact[s]) for s in names}
    turn = {s: (i - number) % len(names) for i, s in enumerate(names)}
    rest = sorted(names, key=lambda s: (-(exact[s] - out[s]), turn[s]))
    for s in rest[: n - sum(out.values())]:
        out[s] += 1
    return out


def choose_sketches(
    pool: Mapping[str, str],
    gold: Sequence[str],
    held: Counter,
    design: Design,
    number: int,
) -> list[str]:
    """The sketch ids rater `number` grades, in their order: with per-rater subsets every gold
    item and a balanced part of the `pool` (sketch id -> source) taken from the sketches in
    fewest raters' hands (`held`: sketch id -> raters holding it); else the whole pool.
    Raises StudyFull when no pool sketch is left below K."""
    rng = np.random.default_rng([design.order_seed, number])
    if design.per_rater is None:
        chosen = [*pool, *gold]
    else:
        k = design.gradings_per_sketch
        by_source: dict[str, list[str]] = {}
        for sid, source in pool.items():
            by_source.setdefault(source, []).append(sid)
        want = quotas(
            {s: len(ids) for s, ids in by_source.items()}, design.per_rater - len(gold), number
        )
        chosen = list(gold)
        for source, ids in by_source.items():
            ties = rng.random(len(ids))
            ranked = sorted(range(len(ids)), key=lambda i: (held[ids[i]], ties[i]))
            open_ = [ids[i] for i in ranked if k is None or held[ids[i]] < k]
            chosen += open_[: want[source]]
        if len(chosen) == len(gold):
            raise StudyFull(
                f"this study is full: every sketch has its {k} raters; thank you for your time"
            )
    order = np.array(chosen, dtype=object)
    rng.shuffle(order)
    return [str(s) for s in order]
