"""The grading report: what fraction of each source's sketches people took for real.

For every source (the real sketches and each model), overall and per category: the counts and
fractions of real / possibly real / fake with 95% Wilson score intervals; for each source a
two-level bootstrap interval (raters and sketches resampled, `bootstrap_shares`); the
protocol's pass criterion; and the agreement between raters (Krippendorff's alpha and Fleiss'
kappa, nominal).

Attention checks (HYPE, Zhou et al. 2019): gold items, known real drawings and obvious fakes,
count only for each rater's gold accuracy, never for a source. A rater is flagged when they
grade fewer than `MIN_GOLD_ACCURACY` of the gold items they graded correctly (`flag_rule`);
flagged raters stay in every result, which is given again without them. Per-rater statistics
(`rater_stats`, `write_rater_csv`): sketches graded, gold accuracy, flagged, shares of each
grade, median time.

With a judge (`eval.judge`, `judge_report`): the judge's recognizability and mean confidence
beside each source's human pass share, and, sketch by sketch, how well the judge's confidence
for the category a sketch claims agrees with the people's grades: the AUC of that confidence for
gradings of real or possibly real against gradings of fake (`roc_auc`), and Spearman's rank
correlation (`spearman`, ties at their average rank) of it with the sketch's mean grade (real 2,
possibly real 1, fake 0), both with a two-level bootstrap interval (`judge_agreement`); and
each row's precision, recall, density and coverage in the judge's feature space.

The study (`_study_section`): the study file's hash, the design (per-rater subsets, and how
often each sketch was graded), raters per platform, consent, the questions' answers; HYPE's
scores (`eval.grading.hype`): HYPE-infinity per model, HYPE-time's thresholds under adaptive
exposure. Under per-rater subsets the bootstrap counts only the graded (rater, sketch) pairs and
Fleiss' kappa takes the sketches with the commonest number of ratings.

Every (rater, sketch) pair counts once, with the rater's latest grade. Raters are named by their
short id (``r1``, ``r2``, ... in order of creation) beside the name they typed: names are not
unique, and two that look alike (a Latin "a", a Cyrillic "а") print alike. Intervals treat these
gradings as independent trials, which they are not quite (one sketch seen by several raters);
with few raters per sketch the intervals are a little narrow.
"""

from __future__ import annotations

import io
import json
import math
import os
import textwrap
from collections import Counter, defaultdict
from collections.abc import Collection, Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...atomic import atomic_write
from ...errors import QuickDrawError
from .crowd import Consent
from .design import Design
from .exposure import Exposure
from .hype import HYPE_INFINITY_RULE, HYPE_TIME_RULE, hype_infinity, hype_time
from .store import GRADES, REAL_SOURCE, GradeStore, Grading, Sketch

if TYPE_CHECKING:  # the judge needs torch; the report without one does not
    from ..judge import Judge

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
ALL = "all"  # the category label of a source's overall row
GRADE_NAMES = {"real": "real", "possibly_real": "possibly real", "fake": "fake"}
MIN_GOLD_ACCURACY = 0.75  # a rater who gets fewer gold items right is flagged
BOOTSTRAP_RESAMPLES = 2000
BOOT_KEYS = ("boot_real_or_possibly_lo", "boot_real_or_possibly_hi", "boot_real_lo", "boot_real_hi")
BOOTSTRAP_METHOD = (
    "two-level bootstrap: raters and sketches drawn with replacement, independently; "
    "95% percentile interval"
)


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion of `k` successes in `n` trials; (0, 1) if n = 0."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of an ``(items, categories)`` table: how many raters put item i in
    category j. Every item needs the same number (>= 2) of ratings. NaN when chance agreement
    is total (everyone used one category)."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or len(counts) == 0:
        raise ValueError(f"need a non-empty (items, categories) table, got shape {counts.shape}")
    per_item = counts.sum(axis=1)
    n = per_item[0]
    if n < 2 or not np.all(per_item == n):
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings for every item")
    agreement = ((counts * counts).sum(axis=1) - n) / (n * (n - 1))
    p_bar = agreement.mean()
    p_cat = counts.sum(axis=0) / counts.sum()
    p_e = float((p_cat * p_cat).sum())
    return float("nan") if p_e == 1 else float((p_bar - p_e) / (1 - p_e))


def krippendorff_alpha_nominal(units: Sequence[Sequence[Hashable]]) -> float:
    """Krippendorff's alpha for nominal data; `units` holds each item's ratings (any number,
    items with fewer than two are not pairable and are ignored). NaN when undefined."""
    coincidence: Counter = Counter()
    for ratings in units:
        m = len(ratings)
        if m < 2:
            continue
        counts = Counter(ratings)
        for c, nc in counts.items():
            for k, nk in counts.items():
                pairs = nc * (nk - 1) if c == k else nc * nk
                coincidence[c, k] += pairs / (m - 1)
    totals: Counter = Counter()
    for (c, _), v in coincidence.items():
        totals[c] += v
    n = sum(totals.values())
    if n <= 1:
        return float("nan")
    observed = sum(v for (c, k), v in coincidence.items() if c != k)
    expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k)
    if expected == 0:
        return float("nan")
    return float(1 - (n - 1) * observed / expected)


def _group_row(source: str, category: str, grades: list[str]) -> dict:
    counts = Counter(grades)
    n = len(grades)
    row = {"source": source, "category": category, "n": n}
    for g in GRADES:
        row[g] = counts[g]
    for g in GRADES:
        lo, hi = wilson_interval(counts[g], n)
        row[f"frac_{g}"] = counts[g] / n if n else float("nan")
        row[f"frac_{g}_lo"], row[f"frac_{g}_hi"] = lo, hi
    passing = counts["real"] + counts["possibly_real"]
    lo, hi = wilson_interval(passing, n)
    row["frac_real_or_possibly"] = passing / n if n else float("nan")
    row["frac_real_or_possibly_lo"], row["frac_real_or_possibly_hi"] = lo, hi
    return row


def _bootstrap_weights(
    n_r: int, n_s: int, resamples: int, seed: int | Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """The two-level bootstrap's draws, (resamples, n_r) and (resamples, n_s): how many times
    each rater, and each sketch, is drawn in each resample (multinomial counts, seeded)."""
    rng = np.random.default_rng(seed)
    w_r = rng.multinomial(n_r, np.full(n_r, 1 / n_r), size=resamples).astype(np.float64)
    w_s = rng.multinomial(n_s, np.full(n_s, 1 / n_s), size=resamples).astype(np.float64)
    return w_r, w_s


def bootstrap_shares(
    gradings: Sequence[tuple[Hashable, Hashable, str]],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int | Sequence[int] = 0,
) -> dict[str, tuple[float, float]]:
    """95% percentile intervals, by a two-level bootstrap, of the share of `gradings` (rows of
    rater, sketch, grade) graded real, and graded real or possibly real.

    Each resample draws the raters with replacement and, independently, the sketches with
    replacement, and takes every grading of a drawn rater for a drawn sketch, as many times
    as the pair was drawn (rater count x sketch count): so the interval holds both the
    variation between raters (some grade everything real) and between sketches (some samples
    are better), which the Wilson interval, treating gradings as independent, leaves out.
    Resamples with no grading are left out. Returns {"real_or_possibly": (lo, hi), "real":
    (lo, hi)}; NaN bounds with no resamples, or fewer than two raters or two sketches (one of
    either has no spread to resample: the interval would shrink to a point).
    """
    nan = (float("nan"), float("nan"))
    raters = {r: i for i, r in enumerate(dict.fromkeys(r for r, _, _ in gradings))}
    sketches = {s: j for j, s in enumerate(dict.fromkeys(s for _, s, _ in gradings))}
    if len(raters) < 2 or len(sketches) < 2 or resamples < 1:
        return {"real_or_possibly": nan, "real": nan}
    graded = np.zeros((len(raters), len(sketches)))
    passing = np.zeros_like(graded)
    real = np.zeros_like(graded)
    for r, s, g in gradings:
        i, j = raters[r], sketches[s]
        graded[i, j] = 1
        passing[i, j] = g != "fake"
        real[i, j] = g == "real"
    w_r, w_s = _bootstrap_weights(*graded.shape, resamples, seed)
    total = ((w_r @ graded) * w_s).sum(axis=1)
    keep = total > 0
    out = {}
    for name, table in (("real_or_possibly", passing), ("real", real)):
        share = ((w_r @ table) * w_s).sum(axis=1)[keep] / total[keep]
        if len(share) == 0:
            out[name] = nan
        else:
            lo, hi = np.quantile(share, [0.025, 0.975])
            out[name] = (float(lo), float(hi))
    return out


def _results(
    gradings: Sequence[Grading], models: list[str], resamples: int, seed: int
) -> tuple[list[dict], list[dict]]:
    """The per-source table (with bootstrap intervals on each source's overall row) and the
    verdicts, from the gradings of sketches being graded (no gold items)."""
    by_group: dict[tuple[str, str], list[str]] = defaultdict(list)
    by_source: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for g in gradings:
        by_group[g.source, ALL].append(g.grade)
        by_group[g.source, g.category].append(g.grade)
        by_source[g.source].append((g.rater, g.sketch, g.grade))
    sources = [REAL_SOURCE, *models]
    categories = sorted({c for _, c in by_group if c != ALL})
    rows = []
    for k, source in enumerate(sources):
        row = _group_row(source, ALL, by_group.get((source, ALL), []))
        boot = bootstrap_shares(by_source.get(source, []), resamples, [seed, k])
        row["boot_real_or_possibly_lo"], row["boot_real_or_possibly_hi"] = boot["real_or_possibly"]
        row["boot_real_lo"], row["boot_real_hi"] = boot["real"]
        rows.append(row)
        own = [c for c in categories if (source, c) in by_group]
        if len(own) > 1:  # one category would repeat the overall row
            rows += [_group_row(source, c, by_group[source, c]) for c in own]
    for row in rows:  # the bootstrap is per source; category rows have none
        for key in BOOT_KEYS:
            row.setdefault(key, float("nan"))
    overall = {r["source"]: r for r in rows if r["category"] == ALL}
    real = overall[REAL_SOURCE]
    real_ok = real["n"] > 0 and real["frac_real"] > 0.5
    real_ok_sure = real["n"] > 0 and real["frac_real_lo"] > 0.5
    real_ok_boot = real["n"] > 0 and real["boot_real_lo"] > 0.5
    verdicts = []
    for model in models:
        r = overall[model]
        if r["n"] == 0:
            reason = "no grades yet"
        elif not real_ok:
            reason = "real sketches are not mostly graded real, so the raters cannot tell"
        elif r["frac_real_or_possibly"] <= 0.5:
            reason = "half or fewer of its sketches were graded real or possibly real"
        else:
            reason = "more than half graded real or possibly real, real sketches mostly real"
        verdicts.append(
            {
                "reason": reason,
                "model": model,
                "n": r["n"],
                "frac_real_or_possibly": r["frac_real_or_possibly"],
                "ci": [r["frac_real_or_possibly_lo"], r["frac_real_or_possibly_hi"]],
                "bootstrap_ci": [r["boot_real_or_possibly_lo"], r["boot_real_or_possibly_hi"]],
                "real_frac_real": real["frac_real"],
                "passes": bool(r["n"] > 0 and r["frac_real_or_possibly"] > 0.5 and real_ok),
                "passes_at_95": bool(r["frac_real_or_possibly_lo"] > 0.5 and real_ok_sure),
                "passes_at_95_bootstrap": bool(
                    r["boot_real_or_possibly_lo"] > 0.5 and real_ok_boot
                ),
            }
        )
    return rows, verdicts


def _rater_stats(
    store: GradeStore, gradings: Sequence[Grading], pool: int, min_gold_accuracy: float
) -> list[dict]:
    """One row per rater who graded anything (in order of creation): what `--raters-csv`
    writes. Gold accuracy is over the gold items the rater graded (latest grades)."""
    mine: dict[str, list[Grading]] = defaultdict(list)
    for g in gradings:
        mine[g.rater].append(g)
    everyone = store.raters()
    per_participant = Counter(r.participant for r in everyone if r.participant is not None)
    crowd = store.crowd()
    out = []
    for rater in everyone:
        rows = mine.get(rater.token, [])
        if not rows:
            continue
        gold = [g for g in rows if g.gold is not None]
        correct = sum(gold_correct(g.gold, g.grade) for g in gold if g.gold is not None)
        graded = [g for g in rows if g.gold is None]
        counts = Counter(g.grade for g in graded)
        times = [g.ms for g in rows if g.ms is not None]
        accuracy = correct / len(gold) if gold else float("nan")
        out.append(
            {
                "rater": rater.short_id,
                "name": rater.name,
                "participant": rater.participant or "",
                "raters_with_participant": per_participant.get(rater.participant, 0)
                if rater.participant is not None
                else 0,
                "graded": len(rows),
                "pool": len(rater.order) or pool,  # the sketches this rater was given
                "done": len(rows) >= (len(rater.order) or pool),
                "sketches_graded": len(graded),
                "gold_graded": len(gold),
                "gold_correct": correct,
                "gold_accuracy": accuracy,
                "flagged": bool(gold) and accuracy < min_gold_accuracy,
                **{
                    f"share_{g}": counts[g] / len(graded) if graded else float("nan")
                    for g in GRADES
                },
                "timed": len(times),
                "median_ms": float(np.median(times)) if times else float("nan"),
                **_crowd_fields(crowd.get(rater.token, {})),
            }
        )
    return out


CROWD_COLUMNS = ("platform", "worker", "assignment", "hit", "study", "session")


def _crowd_fields(found: dict) -> dict:
    """A rater's platform ids, consent (time in UTC, ISO 8601, and the form's SHA-256) and
    answers (``q_ID`` columns), as the rater CSV and the grades CSV write them."""
    agreed = found.get("consent_at")
    return {
        **{k: found.get(k) or "" for k in CROWD_COLUMNS},
        "consent_at": _iso(agreed) if agreed is not None else "",
        "consent_sha256": found.get("consent_sha256") or "",
        **{f"q_{q}": a for q, a in found.get("answers", {}).items()},
    }


def _iso(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def gold_correct(kind: str, grade: str) -> bool:
    """Whether `grade` is the right answer to a gold item of `kind`: a known real drawing
    graded real or possibly real, an obvious fake graded fake."""
    return grade != "fake" if kind == "real" else grade == "fake"


def build_report(
    store: GradeStore,
    min_gold_accuracy: float = MIN_GOLD_ACCURACY,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    judge: str | os.PathLike | Judge | None = None,
) -> dict:
    """Everything the report shows, as plain data (what `--json` prints).

    Gold items (attention checks) count only for the raters' gold accuracy, never in a
    source's results. A rater is flagged when they graded gold items and fewer than
    `min_gold_accuracy` of them correctly (`gold_correct`); results are given for every rater
    and again without the flagged ones (`without_flagged`). `resamples` bootstrap resamples
    (seeded by `seed`) give each source's two-level interval (`bootstrap_shares`). With a
    `judge` (a judge file, or a loaded `eval.judge.Judge`), ``judge`` holds `judge_report`.
    """
    if not 0 <= min_gold_accuracy <= 1:
        raise QuickDrawError(f"--min-gold-accuracy must be 0-1, got {min_gold_accuracy}")
    if resamples < 0:
        raise QuickDrawError(f"--bootstrap must be 0 or more, got {resamples}")
    every = store.gradings()
    spec = store.spec()
    models = list(spec.get("labels", []))
    gold_ids = store.gold()
    gradings = [g for g in every if g.gold is None]
    for g in gradings:
        if g.source != REAL_SOURCE and g.source not in models:
            models.append(g.source)
    pool = len(store.sketch_ids())
    stats = _rater_stats(store, every, pool, min_gold_accuracy)
    flagged_ids = [s["rater"] for s in stats if s["flagged"]]
    token_of = {r.short_id: r.token for r in store.raters()}
    flagged_tokens = {token_of[r] for r in flagged_ids}
    rows, verdicts = _results(gradings, models, resamples, seed)
    kept = [g for g in gradings if g.rater not in flagged_tokens]
    rows_kept, verdicts_kept = _results(kept, models, resamples, seed)
    # with attention checks the verdict is the checked raters'; everyone's stands beside it
    deciding = verdicts_kept if gold_ids else verdicts
    if gold_ids:
        for mine, everyone in zip(deciding, verdicts, strict=True):
            mine["all_raters"] = {
                k: everyone[k] for k in ("n", "frac_real_or_possibly", "passes", "reason")
            }

    by_sketch: dict[str, list[str]] = defaultdict(list)
    raters: Counter = Counter()  # rater token -> sketches graded (gold items too)
    for g in every:
        raters[g.rater] += 1
    for g in gradings:
        by_sketch[g.sketch].append(g.grade)
    units = list(by_sketch.values())
    per_count = Counter(len(u) for u in units)
    design = Design.from_spec(spec)
    if design.per_rater is None:  # everyone grades everything: the sketches graded by all
        complete = [u for u in units if len(u) == len(raters)]
    else:  # per-rater subsets: Fleiss' kappa needs as many ratings per sketch, not the raters
        shared = max((c for c in per_count if c >= 2), key=lambda c: (per_count[c], c), default=0)
        complete = [u for u in units if len(u) == shared]
    kappa = float("nan")
    if len(raters) >= 2 and complete:
        table = np.array([[Counter(u)[g] for g in GRADES] for u in complete])
        kappa = fleiss_kappa(table)
    agreement = {
        "krippendorff_alpha": krippendorff_alpha_nominal(units),
        "alpha_units": sum(1 for u in units if len(u) >= 2),
        "fleiss_kappa": kappa,
        "fleiss_units": len(complete) if len(raters) >= 2 else 0,
        "fleiss_ratings": None if design.per_rater is None else shared,  # per sketch
        "ratings_per_sketch": {str(k): v for k, v in sorted(per_count.items())},
    }
    report = {
        "db": str(store.path),
        "session": spec,
        "raters": len(raters),
        "progress": [  # raters who graded, in order of creation; never the secret token
            {"rater": r.short_id, "name": r.name, "graded": raters[r.token]}
            for r in store.raters()
            if raters[r.token]
        ],
        "sketches_graded": len(by_sketch),
        "pool": pool,
        "gold_items": len(gold_ids),
        "categories": sorted({s.category for s in store.sketches().values() if s.gold is None}),
        "gradings": len(gradings),
        "gold_gradings": len(every) - len(gradings),
        "grade_rows": store.counts()["grades"],
        "groups": rows,
        "decided_on": _decided_on(bool(gold_ids), len(raters), len(raters) - len(flagged_ids)),
        "verdicts": deciding,
        "all_raters": {"raters": len(raters), "gradings": len(gradings), "verdicts": verdicts},
        "blank": _blank_counts(store, spec, [REAL_SOURCE, *models]),
        "pool_sizes": dict(Counter(s.source for s in store.sketches().values() if s.gold is None)),
        "attention": {
            "rule": flag_rule(min_gold_accuracy),
            "min_gold_accuracy": min_gold_accuracy,
            "flagged": flagged_ids,
            "unchecked": [s["rater"] for s in stats if s["gold_graded"] == 0],
        },
        "rater_stats": stats,
        "without_flagged": {
            "raters": len(raters) - len(flagged_ids),
            "flagged": flagged_ids,
            "gradings": len(kept),
            "groups": rows_kept,
            "verdicts": verdicts_kept,
        },
        "bootstrap": {"resamples": resamples, "seed": seed, "method": BOOTSTRAP_METHOD},
        "agreement": agreement,
    }
    report["study"] = _study_section(store, spec, design, per_count, stats)
    report["hype"] = _hype_section(store, spec, gradings, models, resamples, seed)
    if judge is not None:
        report["judge"] = judge_report(store, report, judge, resamples, seed, flagged_tokens)
    return report


def _study_section(
    store: GradeStore, spec: dict, design: Design, per_count: Counter, stats: list[dict]
) -> dict:
    """What fixes the study and who took it: the study file's hash, the design (per-rater
    subsets, gradings per sketch) and how many gradings each sketch got, the exposure, the
    platforms raters came from, the consent form and how many agreed, the questions' answers."""
    crowd = store.crowd()
    consent = json.loads(store.meta("consent") or "null")
    questions = json.loads(store.meta("questions") or "null") or {}
    answered = defaultdict(list)
    for found in crowd.values():
        for q, a in found.get("answers", {}).items():
            answered[q].append(a)
    summary = []
    for phase in ("before", "after"):
        for q in questions.get(phase, []):
            given = answered.get(q["id"], [])
            row = {"id": q["id"], "phase": phase, "text": q["text"], "kind": q["kind"],
                   "answers": len(given)}  # fmt: skip
            if q["kind"] == "choice":
                row["counts"] = {c: given.count(c) for c in q["choices"]}
            elif q["kind"] == "number" and given:
                row["median"] = float(np.median([int(a) for a in given]))
            summary.append(row)
    return {
        "sha256": store.meta("study_sha256"),
        "design": design.to_spec(),
        "gradings_per_sketch": {str(k): v for k, v in sorted(per_count.items())},
        "exposure": Exposure.from_spec(spec).to_spec(),
        "platforms": dict(Counter(f["platform"] for f in crowd.values() if "platform" in f)),
        "consent": None
        if consent is None
        else {
            "sha256": Consent(**consent).sha256,
            "agreed": sum("consent_at" in f for f in crowd.values()),
        },
        "questions": summary,
        "raters_done": sum(s["done"] for s in stats),
    }


def _hype_section(
    store: GradeStore, spec: dict, gradings: Sequence[Grading], models: list[str],
    resamples: int, seed: int,
) -> dict:  # fmt: skip
    """HYPE-infinity for every model, HYPE-time's thresholds under adaptive exposure."""
    exposure = Exposure.from_spec(spec)
    out: dict = {
        "infinity": hype_infinity(gradings, models, resamples, seed),
        "exposure": exposure.to_spec(),
        "rules": {"infinity": HYPE_INFINITY_RULE, "time": HYPE_TIME_RULE},
    }
    if exposure.mode == "adaptive":
        source_of = {sid: None if s.gold else s.source for sid, s in store.sketches().items()}
        out["time"] = hype_time(
            store.gradings(), store.raters(), source_of, models, exposure, resamples, seed
        )
    return out


def _decided_on(checked: bool, raters: int, passed: int) -> str:
    """Whose grades the verdicts are, in words."""
    if not checked:
        everyone = {0: "no rater yet", 1: "the 1 rater"}.get(raters, f"all {raters} raters")
        return f"{everyone} (no attention checks in this session)"
    return f"the {passed} of {_count(raters, 'rater')} who passed the attention checks"


def _blank_counts(store: GradeStore, spec: dict, sources: list[str]) -> dict[str, int]:
    """Blank sketches (empty, one point, no ink) of each source in the pool: what the session
    recorded when it drew them, else counted from the stored sketches."""
    if isinstance(spec.get("blank"), dict):
        return {s: int(spec["blank"].get(s, 0)) for s in sources}
    found = Counter(s.source for s in store.sketches().values() if s.gold is None and s.blank)
    return {s: found[s] for s in sources}


def flag_rule(min_gold_accuracy: float) -> str:
    """The attention-check rule in words, as the report and --help state it."""
    return (
        f"a rater is flagged when they grade fewer than {100 * min_gold_accuracy:g}% of the gold "
        "items they graded correctly (a known real drawing graded real or possibly real, an "
        "obvious fake graded fake); raters who graded no gold item yet are not flagged"
    )


# --- the judge beside the people ----------------------------------------------------------------

GRADE_VALUES = {"real": 2.0, "possibly_real": 1.0, "fake": 0.0}  # a sketch's mean grade uses these
NO_CATEGORY = ("", "mixed")  # what a sketch of no one category claims (`sources`: "mixed")
AUC_RULE = (
    "AUC: the chance that a grading of real or possibly real falls on a sketch the judge is more "
    "confident about than a grading of fake (ties count half; a sketch counts once per rater)"
)
SPEARMAN_RULE = (
    "Spearman: rank correlation of the judge's confidence with each sketch's mean grade over its "
    "raters (real 2, possibly real 1, fake 0; ties at their average rank)"
)


def average_ranks(x: Sequence[float], weights: Sequence[float] | None = None) -> np.ndarray:
    """Ranks (1 = smallest) of `x`, tied values all at the mean of the ranks they span. With
    `weights`, value i counts weights[i] times, as if repeated (whole numbers, as a bootstrap's
    counts; an item of weight 0 is ranked but takes no rank)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    group = np.cumsum(np.r_[True, xs[1:] != xs[:-1]]) - 1 if len(xs) else np.zeros(0, int)
    per_group = np.bincount(group, weights=w[order])
    rank = np.cumsum(per_group) - per_group + (per_group + 1) / 2
    out = np.empty(len(x))
    out[order] = rank[group]
    return out


def spearman(
    x: Sequence[float], y: Sequence[float], weights: Sequence[float] | None = None
) -> float:
    """Spearman's rank correlation: the Pearson correlation of `average_ranks` of x and of y
    (so ties are handled); `weights` repeat items as in `average_ranks`. NaN when x or y takes
    fewer than two distinct values among the items that count."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    if not len(x) == len(y) == len(w):
        raise ValueError(f"x, y and weights differ in length: {len(x)}, {len(y)}, {len(w)}")
    counted = w > 0
    if len(np.unique(x[counted])) < 2 or len(np.unique(y[counted])) < 2:
        return float("nan")
    rx, ry = average_ranks(x, w), average_ranks(y, w)
    total = w.sum()
    dx, dy = rx - (w * rx).sum() / total, ry - (w * ry).sum() / total
    return float((w * dx * dy).sum() / math.sqrt((w * dx * dx).sum() * (w * dy * dy).sum()))


def _grouped_auc(scores: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """AUC of items with `scores` (S,), each weighing positive[..., i] positives and
    negative[..., i] negatives (arrays (..., S): one AUC per leading index). NaN where either
    total is 0."""
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # each run of tied scores
    pos = np.add.reduceat(positive[..., order], starts, axis=-1)
    neg = np.add.reduceat(negative[..., order], starts, axis=-1)
    below = np.cumsum(neg, axis=-1) - neg  # negatives strictly below each tie group
    pairs = pos.sum(-1) * neg.sum(-1)
    wins = (pos * (below + neg / 2)).sum(-1)
    return np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1), np.nan)


def roc_auc(
    scores: Sequence[float], positive: Sequence[bool], weights: Sequence[float] | None = None
) -> float:
    """The area under the ROC curve of `scores` for telling `positive` items from the others:
    the chance that a positive scores higher than a negative, ties counted half (the
    Mann-Whitney U over n_pos * n_neg). `weights` count items that many times. NaN without
    both a positive and a negative."""
    s = np.asarray(scores, dtype=np.float64)
    p = np.asarray(positive, dtype=bool)
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=np.float64)
    if not len(s) == len(p) == len(w):
        raise ValueError(
            f"scores, positive and weights differ in length: {len(s)}, {len(p)}, {len(w)}"
        )
    if len(s) == 0:
        return float("nan")
    return float(_grouped_auc(s, w * p, w * ~p))


def judge_agreement(
    gradings: Sequence[Grading],
    confidence: Mapping[str, float],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int | Sequence[int] = 0,
) -> dict:
    """How the judge's confidence for each sketch (`confidence`: sketch id -> probability of
    its claimed category) agrees with the people's `gradings` of those sketches (gradings of
    other sketches are left out).

    - `auc`: `roc_auc` over gradings, a grading of real or possibly real a positive and one of
      fake a negative, each scored with its sketch's confidence;
    - `spearman`: `spearman` of the confidence with each graded sketch's mean grade over its
      raters (`GRADE_VALUES`).

    95% percentile intervals from the report's two-level bootstrap (`bootstrap_shares`): raters
    and sketches drawn with replacement, each grading counted (rater count x sketch count)
    times; resamples where a value is undefined are left out. NaN intervals with fewer than
    two raters or two sketches, or `resamples` 0.
    """
    mine = [g for g in gradings if g.sketch in confidence]
    raters = {r: i for i, r in enumerate(dict.fromkeys(g.rater for g in mine))}
    sketches = {s: j for j, s in enumerate(dict.fromkeys(g.sketch for g in mine))}
    graded = np.zeros((len(raters), len(sketches)))
    passed = np.zeros_like(graded)
    value = np.zeros_like(graded)
    for g in mine:
        i, j = raters[g.rater], sketches[g.sketch]
        graded[i, j], passed[i, j], value[i, j] = 1, g.grade != "fake", GRADE_VALUES[g.grade]
    conf = np.array([confidence[s] for s in sketches], dtype=np.float64)
    failed = graded - passed
    nan = [float("nan"), float("nan")]
    out = {
        "sketches": len(sketches),
        "raters": len(raters),
        "gradings": len(mine),
        "positives": int(passed.sum()),
        "negatives": int(failed.sum()),
        "auc": float(_grouped_auc(conf, passed.sum(0), failed.sum(0))) if mine else math.nan,
        "auc_ci95": list(nan),
        "spearman": spearman(conf, value.sum(0) / graded.sum(0)) if mine else math.nan,
        "spearman_ci95": list(nan),
    }
    n_r, n_s = graded.shape
    if n_r < 2 or n_s < 2 or resamples < 1:
        return out
    w_r, w_s = _bootstrap_weights(n_r, n_s, resamples, seed)
    auc = _grouped_auc(conf, (w_r @ passed) * w_s, (w_r @ failed) * w_s)
    count, total = w_r @ graded, w_r @ value
    rho = np.array(
        [
            spearman(conf, total[b] / np.where(count[b] > 0, count[b], 1), w_s[b] * (count[b] > 0))
            for b in range(resamples)
        ]
    )
    for name, values in (("auc_ci95", auc), ("spearman_ci95", rho)):
        values = values[~np.isnan(values)]
        if len(values):
            out[name] = [float(q) for q in np.quantile(values, [0.025, 0.975])]
    return out


def judge_images(judge: Judge, sketches: Sequence[Sketch]) -> np.ndarray:
    """The sketches as the judge sees them: uint8 (N, size, size) bitmaps, strokes drawn by the
    official renderer as `judge score` draws them (`judge.render_strokes`), bitmaps as they are
    (they must be the judge's size)."""
    from ..judge import render_strokes

    size = judge.config.size
    out = np.zeros((len(sketches), size, size), dtype=np.uint8)
    stroke_ids = [i for i, s in enumerate(sketches) if s.strokes is not None]
    if stroke_ids:
        out[stroke_ids] = render_strokes([sketches[i].strokes for i in stroke_ids], size)
    for i, s in enumerate(sketches):
        if s.image is not None:
            if s.image.shape != (size, size):
                shape = "x".join(map(str, s.image.shape))
                raise QuickDrawError(
                    f"the session's sketches are {shape} bitmaps; the judge sees {size}x{size} "
                    "bitmaps"
                )
            out[i] = s.image
    return out


def _not_judged_reason(category: str) -> str:
    if category in NO_CATEGORY:
        return "claims no category (a model of several categories claims none)"
    return "not one of the judge's classes"


def judge_report(
    store: GradeStore,
    report: dict,
    judge: str | os.PathLike | Judge,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    flagged: Collection[str] = (),
) -> dict:
    """The judge's part of `build_report` (its ``judge`` key), for a judge file or a loaded
    `Judge`: every sketch of the session (gold items left out, as from every source's results)
    drawn as the judge sees it (`judge_images`) and given the judge's probability for the
    category it claims (the category of its source's drawing or model); per row of
    `report["groups"]` the judge's recognizability (its top-1 class is the claimed one, with a
    Wilson interval) and mean confidence beside the people's share graded real or possibly
    real; and `judge_agreement` over all sources, over the generated ones only, and (with
    `flagged` rater tokens) without the flagged raters. Sketches of a category the judge has
    no class for are counted, by category, in ``not_judged``. Each row of one category also
    has the judge's feature-space scores (`judge.feature_space_scores`: precision, recall,
    density and coverage against the category's reference).
    """
    from ..judge import FEATURE_SPACE_RULE, feature_space_scores, load_judge
    from .sources import source_rng

    if not isinstance(judge, str | os.PathLike):
        loaded = judge
    else:
        loaded = load_judge(judge, "cpu")
    pool = {sid: s for sid, s in store.sketches().items() if s.gold is None}
    if all(s.category in NO_CATEGORY for s in pool.values()):
        sources = ", ".join(sorted({s.source for s in pool.values()})) or "none"
        raise QuickDrawError(
            f"{store.path}: no sketch of the session claims a category (sources: {sources}; a "
            "model of several categories claims none), so the judge has nothing to check; "
            "report without --judge"
        )
    ids = list(pool)
    images = judge_images(loaded, [pool[i] for i in ids])
    features, probs = loaded.embed(images)
    seen = loaded.seen(images)
    gradings = [g for g in store.gradings() if g.gold is None]
    values: dict[str, list[float]] = defaultdict(list)
    for g in gradings:
        values[g.sketch].append(GRADE_VALUES[g.grade])
    index = {c: k for k, c in enumerate(loaded.classes)}
    per_sketch = []
    for n, (sid, p) in enumerate(zip(ids, probs, strict=True)):
        s = pool[sid]
        k = index.get(s.category)
        predicted = loaded.classes[int(p.argmax())]
        per_sketch.append(
            {
                "sketch": sid,
                "source": s.source,
                "category": s.category,
                "confidence": None if k is None else float(p[k]),
                "predicted": predicted,
                "recognised": None if k is None else predicted == s.category,
                "gradings": len(values[sid]),
                "mean_grade": float(np.mean(values[sid])) if values[sid] else math.nan,
                "in_training": bool(seen["training"][n]),
                "in_reference": bool(seen["reference"][n]),
            }
        )
    unknown = Counter(r["category"] for r in per_sketch if r["confidence"] is None)
    not_judged = [
        {"category": c, "sketches": n, "reason": _not_judged_reason(c)}
        for c, n in sorted(unknown.items())
    ]
    position = {sid: n for n, sid in enumerate(ids)}
    groups = []
    for row in report["groups"]:
        mine = [
            r
            for r in per_sketch
            if r["source"] == row["source"] and row["category"] in (ALL, r["category"])
        ]
        judged = [r for r in mine if r["confidence"] is not None]
        right = sum(r["recognised"] for r in judged)
        lo, hi = wilson_interval(right, len(judged)) if judged else (math.nan, math.nan)
        groups.append(
            {
                "source": row["source"],
                "category": row["category"],
                "sketches": len(mine),
                "judged": len(judged),
                "not_judged": len(mine) - len(judged),
                "recognised": right,
                "recognizability": right / len(judged) if judged else math.nan,
                "recognizability_lo": lo,
                "recognizability_hi": hi,
                "mean_confidence": float(np.mean([r["confidence"] for r in judged]))
                if judged
                else math.nan,
                "in_training": sum(r["in_training"] for r in mine),
                "in_reference": sum(r["in_reference"] for r in mine),
                "people_gradings": row["n"],
                "people_real_or_possibly": row["frac_real_or_possibly"],
                "people_real_or_possibly_lo": row["frac_real_or_possibly_lo"],
                "people_real_or_possibly_hi": row["frac_real_or_possibly_hi"],
                **feature_space_scores(
                    loaded,
                    [r["category"] for r in judged],
                    features[[position[r["sketch"]] for r in judged]],
                    source_rng(seed, "judge report", row["source"], row["category"]),
                ),
            }
        )
    confidence = {r["sketch"]: r["confidence"] for r in per_sketch if r["confidence"] is not None}
    generated = {sid: c for sid, c in confidence.items() if pool[sid].source != REAL_SOURCE}
    agreement = {
        "all": judge_agreement(gradings, confidence, resamples, [seed, 1 << 20, 0]),
        "generated": judge_agreement(gradings, generated, resamples, [seed, 1 << 20, 1]),
    }
    if flagged:
        dropped = set(flagged)
        kept = [g for g in gradings if g.rater not in dropped]
        agreement["all_without_flagged"] = judge_agreement(
            kept, confidence, resamples, [seed, 1 << 20, 2]
        )
    known = sorted({r["category"] for r in per_sketch} & set(loaded.classes))
    notes = [
        f"{g['source']}: of its {g['sketches']} sketches, "
        f"{count_is(g['in_training'], 'a drawing', 'drawings')} the judge trained on and "
        f"{count_is(g['in_reference'])} in its reference: the judge flatters them"
        for g in groups
        if g["category"] == ALL and (g["in_training"] or g["in_reference"])
    ]
    if not known:
        notes.append(
            "the judge knows none of the session's categories "
            f"({', '.join(sorted(unknown))}); its classes are {', '.join(loaded.classes)}"
        )
    return {
        "judge": loaded.path,
        "classes": list(loaded.classes),
        "held_out_accuracy": loaded.held_out.get("accuracy"),
        "sketches": len(per_sketch),
        "judged": len(confidence),
        "not_judged": not_judged,
        "groups": groups,
        "agreement": agreement,
        "rules": {
            "auc": AUC_RULE,
            "spearman": SPEARMAN_RULE,
            "grade_values": GRADE_VALUES,
            "feature_space": FEATURE_SPACE_RULE,
        },
        "notes": notes,
        "per_sketch": per_sketch,
    }


def _pct(x: float) -> str:
    return "   -" if math.isnan(x) else f"{100 * x:4.0f}"


def count_is(n: int, one: str = "", many: str = "") -> str:
    """``1 is a drawing``, ``2 are drawings``: a count, its verb (and noun)."""
    return (f"{n} is {one}" if n == 1 else f"{n} are {many}").rstrip()


def _count(n: int, word: str, plural: str | None = None) -> str:
    """``1 rater``, ``2 raters``; ``1 sketch``, ``2 sketches``."""
    return f"{n} {word}" if n == 1 else f"{n} {plural or word + 's'}"


def _rater_line(stat: dict) -> str:
    line = f"  {stat['rater']}  {stat['name']}  {stat['graded']}/{stat['pool']}"
    if stat["participant"]:
        line += f"  participant {stat['participant']!r}"
        if stat["raters_with_participant"] > 1:
            line += f" (used by {stat['raters_with_participant']} raters)"
    if stat["gold_graded"]:
        line += (
            f"  gold {stat['gold_correct']}/{stat['gold_graded']} "
            f"({_pct(stat['gold_accuracy']).strip()}%)"
        )
    if not math.isnan(stat["median_ms"]):
        line += f"  median {stat['median_ms'] / 1000:.1f} s"
    if stat["flagged"]:
        line += "  FLAGGED"
    return line + "\n"


def _verdict_lines(verdicts: list[dict]) -> str:
    out = ""
    for v in verdicts:
        word = "PASSES" if v["passes"] else "fails"
        everyone = v.get("all_raters")
        beside = ""
        if everyone is not None:
            beside = (
                f"; all raters: {_pct(everyone['frac_real_or_possibly']).strip()}% -> "
                f"{'PASSES' if everyone['passes'] else 'fails'}"
            )
        sure = [
            name
            for name, ok in (
                ("Wilson", v["passes_at_95"]),
                ("bootstrap", v["passes_at_95_bootstrap"]),
            )
            if ok
        ]
        at_95 = f" (and at 95% confidence: {', '.join(sure)})" if sure else ""
        out += (
            f"  {v['model']}: {_pct(v['frac_real_or_possibly']).strip()}% real or possibly real "
            f"[{_pct(v['ci'][0]).strip()}, {_pct(v['ci'][1]).strip()}], bootstrap "
            f"[{_pct(v['bootstrap_ci'][0]).strip()}, {_pct(v['bootstrap_ci'][1]).strip()}], "
            f"real sketches {_pct(v['real_frac_real']).strip()}% real -> {word}{at_95}: "
            f"{v['reason']}{beside}\n"
        )
    return out


def _headline(report: dict) -> str:
    """The report's first line: each model's verdict, whose grades decide it, and everyone's
    beside it when they differ."""
    parts = []
    for v in report["verdicts"]:
        part = f"{v['model']} {'PASSES' if v['passes'] else 'fails'}"
        everyone = v.get("all_raters")
        if everyone is not None and everyone["passes"] != v["passes"]:
            part += f" (all raters: {'PASSES' if everyone['passes'] else 'fails'})"
        parts.append(part)
    return f"verdict, on {report['decided_on']}: {'; '.join(parts)}\n"


def format_report(report: dict) -> str:
    """A table a person reads in a terminal."""
    out = io.StringIO()
    gold = report.get("gold_items", 0)
    out.write(_headline(report))
    out.write(
        f"{report['db']}: {_count(report['raters'], 'rater')}, "
        f"{_count(report['gradings'], 'grading')} of "
        f"{report['sketches_graded']} of {_count(report['pool'] - gold, 'sketch', 'sketches')} "
        "(the latest grade per rater and sketch counts)"
        + (f"; {gold} gold items, {report['gold_gradings']} gold gradings" if gold else "")
        + "\ncategories: "
        + ", ".join(report["categories"])
        + "\n"
        "graded by rater (id, name, graded of the pool"
        + (", gold items right" if gold else "")
        + ", median time):"
        + ("" if report["progress"] else " -")
        + "\n"
    )
    for stat in report["rater_stats"]:
        out.write(_rater_line(stat))
    out.write("\n")
    head = f"{'source':24} {'category':16} {'n':>5}"
    for g in GRADES:
        head += f"  {GRADE_NAMES[g] + ' % [95% CI]':>22}"
    out.write(head + "\n")
    for r in report["groups"]:
        line = f"{r['source'][:24]:24} {r['category'][:16]:16} {r['n']:5d}"
        for g in GRADES:
            cell = f"{_pct(r[f'frac_{g}'])} [{_pct(r[f'frac_{g}_lo'])},{_pct(r[f'frac_{g}_hi'])}]"
            line += f"  {cell:>22}"
        out.write(line + "\n")
    boot = report["bootstrap"]
    out.write(
        "\nPass criterion: more than half of a model's sketches graded real or possibly real,\n"
        "while real sketches are mostly (> 50%) graded real. Intervals: 95% Wilson (gradings as\n"
        f"independent trials) and a bootstrap over raters and sketches ({boot['resamples']} "
        f"resamples, seed {boot['seed']}).\n"
    )
    out.write(f"Verdicts on {report['decided_on']}:\n")
    out.write(_verdict_lines(report["verdicts"]))
    if any(report["blank"].values()):
        sizes = report["pool_sizes"]
        counted = ", ".join(
            f"{source} {n} of {sizes.get(source, 0)}" for source, n in report["blank"].items() if n
        )
        out.write(
            f"Blank sketches in the pool (empty, one point or no ink), shown as drawn and graded "
            f"like the others: {counted}.\n"
        )
    attention = report["attention"]
    if gold:
        out.write(f"\nAttention checks: {attention['rule']}.\n")
        flagged = attention["flagged"]
        if flagged:
            kept = report["without_flagged"]
            out.write(
                f"Flagged: {', '.join(flagged)} (kept in the table above; the verdicts are "
                f"without them: {_count(kept['raters'], 'rater')}, "
                f"{_count(kept['gradings'], 'grading')}).\n"
            )
        else:
            out.write("No rater is flagged: the results without flagged raters are the same.\n")
    session = report["session"]
    if session.get("seed") is not None:  # sessions made before the seed had a default: none
        out.write(
            f"Session drawn with --seed {session['seed']}, checkpoints sampled at "
            f"--temperature {session.get('temperature')}.\n"
        )
    a = report["agreement"]
    alpha, kappa = a["krippendorff_alpha"], a["fleiss_kappa"]
    out.write(
        f"\nAgreement between raters: Krippendorff's alpha (nominal) "
        f"{'n/a' if math.isnan(alpha) else f'{alpha:.3f}'} over "
        f"{_count(a['alpha_units'], 'sketch', 'sketches')} "
        f"graded by 2+ raters; Fleiss' kappa {'n/a' if math.isnan(kappa) else f'{kappa:.3f}'} "
        f"over {_count(a['fleiss_units'], 'sketch', 'sketches')} "
        + (
            "graded by every rater"
            if a.get("fleiss_ratings") is None
            else f"graded by {a['fleiss_ratings']} raters each"
        )
        + (" (gold items left out)" if gold else "")
        + ".\n"
    )
    out.write(_study_lines(report))
    out.write(_hype_lines(report["hype"], report["bootstrap"]["resamples"]))
    if "judge" in report:
        out.write(_judge_lines(report["judge"], report["bootstrap"]["resamples"]))
    return out.getvalue()


def _study_lines(report: dict) -> str:
    """The study: its hash, design, platforms, consent and questions."""
    study = report["study"]
    lines = []
    if study["sha256"]:
        lines.append(f"Study sha256:{study['sha256']} (the study file grade serve wrote).")
    design = study["design"]
    per_sketch = ", ".join(
        f"{_count(n, 'sketch', 'sketches')} {k} times"
        for k, n in study["gradings_per_sketch"].items()
    )
    if design["per_rater"]:
        k = design["gradings_per_sketch"]
        lines.append(
            f"Per-rater subsets: each rater grades {design['per_rater']} sketches (every "
            "attention check and a part of the pool balanced across sources)"
            + (f", every sketch by {k} raters" if k else "")
            + f"; graded so far: {per_sketch or 'none'}. Raters saw different sketches: the "
            "bootstrap resamples raters and sketches and counts only the pairs that were graded, "
            "and Fleiss' kappa takes the sketches with the commonest number of gradings."
        )
    if study["platforms"]:
        came = ", ".join(f"{p} {n}" for p, n in sorted(study["platforms"].items()))
        lines.append(f"Raters by platform: {came} (ids in --raters-csv).")
    if study["consent"]:
        c = study["consent"]
        lines.append(
            f"Consent form sha256:{c['sha256'][:16]}: {_count(c['agreed'], 'rater')} agreed "
            "(each agreement's time in --raters-csv)."
        )
    for q in study["questions"]:
        detail = ""
        if "counts" in q:
            detail = ": " + ", ".join(f"{c} {n}" for c, n in q["counts"].items())
        elif "median" in q:
            detail = f": median {q['median']:g}"
        lines.append(
            f"Question {q['id']} ({q['phase']}): {_count(q['answers'], 'answer')}{detail}."
        )
    if not lines:
        return ""
    return "\n" + "".join(textwrap.fill(x, WIDTH) + "\n" for x in lines)


def _hype_lines(hype: dict, resamples: int) -> str:
    """HYPE-infinity per model; HYPE-time's thresholds under adaptive exposure."""
    exposure = hype["exposure"]
    at = {
        "unlimited": "HYPE-infinity (no exposure limit)",
        "fixed": f"error rate at a fixed exposure of {exposure['ms']} ms",
        "adaptive": "error rate over the adaptive exposures",
    }[exposure["mode"]]
    out = io.StringIO()
    out.write(f"\n{at}, per model ({resamples} bootstrap resamples over raters and sketches):\n")
    for row in hype["infinity"]:
        out.write(
            f"  {row['model']}: {_pct(row['hype_infinity']).strip()}% "
            f"[{_pct(row['ci95'][0]).strip()}, {_pct(row['ci95'][1]).strip()}] (real sketches "
            f"graded fake {_pct(row['real_error']).strip()}% of {row['real_gradings']}, the "
            f"model's graded real or possibly real {_pct(row['model_error']).strip()}% of "
            f"{row['model_gradings']})\n"
        )
    out.write(textwrap.fill(hype["rules"]["infinity"] + ".", WIDTH) + "\n")
    if "time" in hype:
        t = hype["time"]
        out.write(
            f"\nHYPE-time: adaptive exposure from {t['min_ms']} to {t['max_ms']} ms "
            f"(steps {', '.join(map(str, t['levels']))}):\n"
        )
        for row in t["models"]:
            out.write(
                f"  {row['model']}: threshold {_value_ms(row['threshold_ms'], *row['ci95'])} over "
                f"{_count(row['raters'], 'rater')} ({row['trials']} trials)\n"
            )
        out.write(textwrap.fill(hype["rules"]["time"] + ".", WIDTH) + "\n")
    return out.getvalue()


def _value_ms(x: float, lo: float, hi: float) -> str:
    if math.isnan(x):
        return "n/a"
    if math.isnan(lo) or math.isnan(hi):
        return f"{x:.0f} ms"
    return f"{x:.0f} ms [{lo:.0f}, {hi:.0f}]"


def _value(x: float, lo: float | None = None, hi: float | None = None) -> str:
    """``0.83 [0.61, 0.97]``, ``0.83`` without bounds, ``n/a`` when undefined."""
    if x is None or math.isnan(x):
        return "n/a"
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return f"{x:.2f}"
    return f"{x:.2f} [{lo:.2f}, {hi:.2f}]"


WIDTH = 100  # the judge's prose lines are wrapped to this many characters
AGREEMENT_ROWS = {
    "all": "all sources",
    "generated": "generated only",
    "all_without_flagged": "all, unflagged raters",
}


def _judge_lines(judge: dict, resamples: int) -> str:
    """The judge's section of `format_report`: per source beside the people, then sketch by
    sketch."""
    out = io.StringIO()
    held = judge["held_out_accuracy"]
    intro = (
        f"Judge {judge['judge']} (classes: {', '.join(judge['classes'])}"
        + (f"; held-out accuracy {100 * held:.1f}%" if held is not None else "")
        + f") on the session's {_count(judge['sketches'], 'sketch', 'sketches')} (gold items "
        "left out), each drawn as the judge sees it; its confidence is its probability for the "
        "category the sketch claims."
    )
    out.write("\n" + textwrap.fill(intro, WIDTH) + "\n")
    head = (
        f"{'source':24} {'category':16} {'judged':>9}  {'judge: recognised % [95% CI]':>28}"
        f"  {'mean conf.':>10}  {'people: real or possibly % [95% CI]':>35}"
    )
    out.write(head + "\n")
    for r in judge["groups"]:
        recognised = "-"
        if r["judged"]:
            recognised = (
                f"{_pct(r['recognizability'])} [{_pct(r['recognizability_lo'])},"
                f"{_pct(r['recognizability_hi'])}]"
            )
        shown = (
            f"{_pct(r['people_real_or_possibly'])} [{_pct(r['people_real_or_possibly_lo'])},"
            f"{_pct(r['people_real_or_possibly_hi'])}] of {r['people_gradings']}"
        )
        conf = "-" if math.isnan(r["mean_confidence"]) else f"{r['mean_confidence']:.2f}"
        out.write(
            f"{r['source'][:24]:24} {r['category'][:16]:16} "
            f"{str(r['judged']) + '/' + str(r['sketches']):>9}  {recognised:>28}  {conf:>10}  "
            f"{shown:>35}\n"
        )
    for n in judge["not_judged"]:
        out.write(
            f"not judged: {_count(n['sketches'], 'sketch', 'sketches')} of {n['category']!r} "
            f"({n['reason']})\n"
        )
    for note in judge["notes"]:
        out.write(textwrap.fill(f"note: {note}", WIDTH, subsequent_indent="  ") + "\n")
    out.write(
        f"\nThe judge's feature space:\n{'source':24} {'category':16} {'n':>5}  {'precision':>9}"
        f"  {'recall':>6}  {'density':>7}  {'coverage':>8}\n"
    )
    for r in judge["groups"]:
        n = r["feature_n"]
        cells = [_value(r[m]) if n else "-" for m in ("precision", "recall", "density", "coverage")]
        out.write(
            f"{r['source'][:24]:24} {r['category'][:16]:16} {n or '-':>5}  {cells[0]:>9}  "
            f"{cells[1]:>6}  {cells[2]:>7}  {cells[3]:>8}\n"
        )
    out.write(textwrap.fill(judge["rules"]["feature_space"] + ".", WIDTH) + "\n")
    out.write(
        f"\nJudge vs people, sketch by sketch:\n{'':24} {'sketches':>8} {'gradings':>8}  "
        f"{'AUC [95% CI]':>18}  {'Spearman [95% CI]':>21}\n"
    )
    for key, a in judge["agreement"].items():
        out.write(
            f"{AGREEMENT_ROWS[key]:24} {a['sketches']:8d} {a['gradings']:8d}  "
            f"{_value(a['auc'], *a['auc_ci95']):>18}  "
            f"{_value(a['spearman'], *a['spearman_ci95']):>21}\n"
        )
    for text in (
        judge["rules"]["auc"],
        judge["rules"]["spearman"],
        f"Intervals: the two-level bootstrap over raters and sketches ({resamples} resamples; "
        "n/a with fewer than two raters or sketches)",
    ):
        out.write(textwrap.fill(text + ".", WIDTH) + "\n")
    return out.getvalue()


JUDGE_COLUMNS = (
    "sketches",
    "judged",
    "recognised",
    "recognizability",
    "recognizability_lo",
    "recognizability_hi",
    "mean_confidence",
    "feature_n",
    "precision",
    "recall",
    "density",
    "coverage",
)


def write_csv(report: dict, path: str | Path) -> None:
    """One row per (source, category) with counts, fractions and interval bounds; `raters` is
    "all", and in a session with gold items the rows again for "unflagged" raters only. With a
    judge, each row also has the judge's ``judge_sketches``, ``judge_judged``,
    ``judge_recognised``, ``judge_recognizability`` (``_lo``, ``_hi``),
    ``judge_mean_confidence`` and its feature-space ``judge_feature_n``, ``judge_precision``,
    ``judge_recall``, ``judge_density``, ``judge_coverage`` (the same for both kinds of row: the
    judge is no rater)."""
    import pandas as pd

    rows = [{"raters": "all", **r} for r in report["groups"]]
    if report.get("gold_items"):
        rows += [{"raters": "unflagged", **r} for r in report["without_flagged"]["groups"]]
    if "judge" in report:
        judged = {(j["source"], j["category"]): j for j in report["judge"]["groups"]}
        for row in rows:
            j = judged.get((row["source"], row["category"]), {})
            row.update({f"judge_{c}": j.get(c, math.nan) for c in JUDGE_COLUMNS})
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        pd.DataFrame(rows).to_csv(f, index=False)


RATER_COLUMNS = (
    "rater",
    "name",
    "participant",
    "raters_with_participant",
    "graded",
    "pool",
    "done",
    "sketches_graded",
    "gold_graded",
    "gold_correct",
    "gold_accuracy",
    "flagged",
    "share_real",
    "share_possibly_real",
    "share_fake",
    "timed",
    "median_ms",
)


def _cell(text: str) -> str:
    """A typed name or a participant id from a link as a CSV cell that a spreadsheet shows as
    text: one that begins like a formula (= + - @) gets a leading apostrophe."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def write_rater_csv(report: dict, path: str | Path) -> None:
    """One row per rater who graded (`rater_stats`): counts, gold accuracy, whether flagged,
    their shares of real / possibly real / fake (gold items left out), median time (ms)."""
    import pandas as pd

    rows = [{k: _cell(v) if isinstance(v, str) else v for k, v in r.items()}
            for r in report["rater_stats"]]  # fmt: skip
    frame = pd.DataFrame(rows, columns=_rater_columns(report["rater_stats"]))
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        frame.to_csv(f, index=False)


def _rater_columns(stats: list[dict]) -> list[str]:
    """RATER_COLUMNS, then the crowd study's: platform ids, consent, the answers (q_ID)."""
    answers = sorted({k for r in stats for k in r if k.startswith("q_")})
    return [*RATER_COLUMNS, *CROWD_COLUMNS, "consent_at", "consent_sha256", *answers]


def write_grades_csv(store: GradeStore, report: dict, path: str | Path) -> None:
    """One row per grading (the latest grade of each rater for each sketch, gold items too), in
    the order they were given: the rater (short id) with their platform ids, consent and
    answers; the sketch's id, source, category and gold kind; the grade, its time (ms) and how
    long the sketch was shown (exposure_ms; empty: until graded)."""
    import pandas as pd

    short = {r.token: r.short_id for r in store.raters()}
    per_rater = {s["rater"]: s for s in report["rater_stats"]}
    columns = [c for c in _rater_columns(report["rater_stats"]) if c not in RATER_COLUMNS]
    rows = []
    for g in store.gradings():
        rater = per_rater.get(short[g.rater], {})
        rows.append(
            {
                "rater": short[g.rater],
                **{c: _cell(str(rater.get(c, ""))) for c in columns},
                "sketch": g.sketch,
                "source": g.source,
                "category": g.category,
                "gold": g.gold or "",
                "grade": g.grade,
                "ms": g.ms,
                "exposure_ms": g.exposure_ms,
            }
        )
    head = ["rater", *columns, "sketch", "source", "category", "gold", "grade", "ms", "exposure_ms"]
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        pd.DataFrame(rows, columns=head).to_csv(f, index=False)


def _bars(ax, x: np.ndarray, width: float, offset: float, values, lo, hi, **style) -> None:
    """Bars of `values` with 95% interval whiskers (none where a bound is NaN)."""
    values = np.nan_to_num(np.array(values, dtype=float))
    lo, hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
    ax.bar(x + offset, values, width, **style)
    ok = ~(np.isnan(lo) | np.isnan(hi))
    if ok.any():
        err = np.vstack([np.clip(values - lo, 0, None), np.clip(hi - values, 0, None)])[:, ok]
        ax.errorbar(x[ok] + offset, values[ok], yerr=err, fmt="none", ecolor="black", capsize=3)


def write_chart(report: dict, path: str | Path) -> None:
    """Grouped bars: for each source, the fraction of each grade with its 95% Wilson interval.
    With a judge, a second panel puts, for each source, the share people graded real or
    possibly real beside the judge's recognizability (both with Wilson intervals) and mean
    confidence, titled with the sketch-by-sketch AUC and Spearman."""
    import matplotlib.pyplot as plt

    fig = chart_figure(report)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def chart_figure(report: dict):
    """The figure `write_chart` saves (a matplotlib Figure; close it when done)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["groups"] if r["category"] == ALL]
    if not any(r["n"] for r in rows):
        raise QuickDrawError("no grades yet: nothing to chart")
    judge = report.get("judge")
    colours = {"real": "#4caf50", "possibly_real": "#ffb300", "fake": "#e53935"}
    width = 0.26
    x = np.arange(len(rows))
    size = (max(6.0, 1.6 * len(rows) + 2), 8.8 if judge else 4.4)
    fig, axes = plt.subplots(
        2 if judge else 1, 1, figsize=size, layout="constrained", squeeze=False
    )
    ax = axes[0, 0]
    for j, g in enumerate(GRADES):
        _bars(
            ax,
            x,
            width,
            (j - 1) * width,
            [r[f"frac_{g}"] for r in rows],
            [r[f"frac_{g}_lo"] for r in rows],
            [r[f"frac_{g}_hi"] for r in rows],
            color=colours[g],
            label=GRADE_NAMES[g],
        )
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(x, [f"{r['source']}\n(n={r['n']})" for r in rows])
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction of gradings")
    # two short lines: one long line was cut off on a narrow (one-source) chart
    ax.set_title("Human grading: real, possibly real or fake?\n(bars: 95% Wilson intervals)")
    ax.legend(frameon=False, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    if judge:
        _judge_panel(axes[1, 0], judge, rows, x, width)
    return fig


def _judge_panel(ax, judge: dict, rows: list[dict], x: np.ndarray, width: float) -> None:
    """The chart's second panel: people beside the judge, source by source."""
    judged = {j["source"]: j for j in judge["groups"] if j["category"] == ALL}
    mine = [judged[r["source"]] for r in rows]
    _bars(
        ax,
        x,
        width,
        -width,
        [r["frac_real_or_possibly"] for r in rows],
        [r["frac_real_or_possibly_lo"] for r in rows],
        [r["frac_real_or_possibly_hi"] for r in rows],
        color="#78909c",
        label="people: real or possibly",
    )
    _bars(
        ax,
        x,
        width,
        0,
        [j["recognizability"] for j in mine],
        [j["recognizability_lo"] for j in mine],
        [j["recognizability_hi"] for j in mine],
        color="#5e35b1",
        label="judge: recognised",
    )
    _bars(
        ax,
        x,
        width,
        width,
        [j["mean_confidence"] for j in mine],
        [math.nan] * len(mine),
        [math.nan] * len(mine),
        color="#b39ddb",
        label="judge: confidence (mean)",
    )
    for k, j in enumerate(mine):
        if not j["judged"]:
            ax.text(x[k] + width / 2, 0.03, "not judged", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(
        x,
        [
            f"{r['source']}\n(judged {j['judged']}/{j['sketches']})"
            for r, j in zip(rows, mine, strict=True)
        ],
    )
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction / probability")
    a = judge["agreement"]["all"]
    auc, rho = _value(a["auc"], *a["auc_ci95"]), _value(a["spearman"], *a["spearman_ci95"])
    # three short lines: two were cut off on a narrow (one- or two-source) chart
    ax.set_title(f"People beside the judge, sketch by sketch:\nAUC {auc},\nSpearman {rho}")
    ax.legend(
        frameon=False, ncols=3, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.18)
    )
