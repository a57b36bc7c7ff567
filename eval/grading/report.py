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

Every (rater, sketch) pair counts once, with the rater's latest grade. Raters are named by their
short id (``r1``, ``r2``, ... in order of creation) beside the name they typed: names are not
unique, and two that look alike (a Latin "a", a Cyrillic "а") print alike. Intervals treat these
gradings as independent trials, which they are not quite (one sketch seen by several raters);
with few raters per sketch the intervals are a little narrow.
"""

from __future__ import annotations

import io
import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np

from ...atomic import atomic_write
from ...errors import QuickDrawError
from .store import GRADES, REAL_SOURCE, GradeStore, Grading

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
    rng = np.random.default_rng(seed)
    n_r, n_s = graded.shape
    # multinomial counts are the times each rater (sketch) is drawn in a resample of n_r (n_s)
    w_r = rng.multinomial(n_r, np.full(n_r, 1 / n_r), size=resamples).astype(np.float64)
    w_s = rng.multinomial(n_s, np.full(n_s, 1 / n_s), size=resamples).astype(np.float64)
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
                "pool": pool,
                "done": len(rows) >= pool,
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
            }
        )
    return out


def gold_correct(kind: str, grade: str) -> bool:
    """Whether `grade` is the right answer to a gold item of `kind`: a known real drawing
    graded real or possibly real, an obvious fake graded fake."""
    return grade != "fake" if kind == "real" else grade == "fake"


def build_report(
    store: GradeStore,
    min_gold_accuracy: float = MIN_GOLD_ACCURACY,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict:
    """Everything the report shows, as plain data (what `--json` prints).

    Gold items (attention checks) count only for the raters' gold accuracy, never in a
    source's results. A rater is flagged when they graded gold items and fewer than
    `min_gold_accuracy` of them correctly (`gold_correct`); results are given for every rater
    and again without the flagged ones (`without_flagged`). `resamples` bootstrap resamples
    (seeded by `seed`) give each source's two-level interval (`bootstrap_shares`).
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

    by_sketch: dict[str, list[str]] = defaultdict(list)
    raters: Counter = Counter()  # rater token -> sketches graded (gold items too)
    for g in every:
        raters[g.rater] += 1
    for g in gradings:
        by_sketch[g.sketch].append(g.grade)
    units = list(by_sketch.values())
    per_count = Counter(len(u) for u in units)
    complete = [u for u in units if len(u) == len(raters)]
    kappa = float("nan")
    if len(raters) >= 2 and complete:
        table = np.array([[Counter(u)[g] for g in GRADES] for u in complete])
        kappa = fleiss_kappa(table)
    agreement = {
        "krippendorff_alpha": krippendorff_alpha_nominal(units),
        "alpha_units": sum(1 for u in units if len(u) >= 2),
        "fleiss_kappa": kappa,
        "fleiss_units": len(complete) if len(raters) >= 2 else 0,
        "ratings_per_sketch": {str(k): v for k, v in sorted(per_count.items())},
    }
    return {
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
        "verdicts": verdicts,
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


def flag_rule(min_gold_accuracy: float) -> str:
    """The attention-check rule in words, as the report and --help state it."""
    return (
        f"a rater is flagged when they grade fewer than {100 * min_gold_accuracy:g}% of the gold "
        "items they graded correctly (a known real drawing graded real or possibly real, an "
        "obvious fake graded fake); raters who graded no gold item yet are not flagged"
    )


def _pct(x: float) -> str:
    return "   -" if math.isnan(x) else f"{100 * x:4.0f}"


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
            f"{v['reason']}\n"
        )
    return out


def format_report(report: dict) -> str:
    """A table a person reads in a terminal."""
    out = io.StringIO()
    gold = report.get("gold_items", 0)
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
    out.write(_verdict_lines(report["verdicts"]))
    attention = report["attention"]
    if gold:
        out.write(f"\nAttention checks: {attention['rule']}.\n")
        flagged = attention["flagged"]
        if flagged:
            kept = report["without_flagged"]
            out.write(
                f"Flagged: {', '.join(flagged)} (kept in every result above). Without them "
                f"({_count(kept['raters'], 'rater')}, {_count(kept['gradings'], 'grading')}):\n"
            )
            out.write(_verdict_lines(kept["verdicts"]))
        else:
            out.write("No rater is flagged: the results without flagged raters are the same.\n")
    a = report["agreement"]
    alpha, kappa = a["krippendorff_alpha"], a["fleiss_kappa"]
    out.write(
        f"\nAgreement between raters: Krippendorff's alpha (nominal) "
        f"{'n/a' if math.isnan(alpha) else f'{alpha:.3f}'} over "
        f"{_count(a['alpha_units'], 'sketch', 'sketches')} "
        f"graded by 2+ raters; Fleiss' kappa {'n/a' if math.isnan(kappa) else f'{kappa:.3f}'} "
        f"over {_count(a['fleiss_units'], 'sketch', 'sketches')} graded by every rater"
        + (" (gold items left out)" if gold else "")
        + ".\n"
    )
    return out.getvalue()


def write_csv(report: dict, path: str | Path) -> None:
    """One row per (source, category) with counts, fractions and interval bounds; `raters` is
    "all", and in a session with gold items the rows again for "unflagged" raters only."""
    import pandas as pd

    rows = [{"raters": "all", **r} for r in report["groups"]]
    if report.get("gold_items"):
        rows += [{"raters": "unflagged", **r} for r in report["without_flagged"]["groups"]]
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

    rows = [
        {**r, "name": _cell(r["name"]), "participant": _cell(r["participant"])}
        for r in report["rater_stats"]
    ]
    frame = pd.DataFrame(rows, columns=list(RATER_COLUMNS))
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        frame.to_csv(f, index=False)


def write_chart(report: dict, path: str | Path) -> None:
    """Grouped bars: for each source, the fraction of each grade with its 95% Wilson interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["groups"] if r["category"] == ALL]
    if not any(r["n"] for r in rows):
        raise QuickDrawError("no grades yet: nothing to chart")
    colours = {"real": "#4caf50", "possibly_real": "#ffb300", "fake": "#e53935"}
    width = 0.26
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(rows) + 2), 4.4), layout="constrained")
    for j, g in enumerate(GRADES):
        frac = np.array([r[f"frac_{g}"] for r in rows], dtype=float)
        lo = np.array([r[f"frac_{g}_lo"] for r in rows], dtype=float)
        hi = np.array([r[f"frac_{g}_hi"] for r in rows], dtype=float)
        frac = np.nan_to_num(frac)
        err = np.vstack([np.clip(frac - lo, 0, None), np.clip(hi - frac, 0, None)])
        ax.bar(
            x + (j - 1) * width,
            frac,
            width,
            yerr=err,
            capsize=3,
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
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
