"""The grading report: what fraction of each source's sketches people took for real.

For every source (the real sketches and each model), overall and per category: the counts and
fractions of real / possibly real / fake with 95% Wilson score intervals; the protocol's pass
criterion; and the agreement between raters (Krippendorff's alpha and Fleiss' kappa, nominal).

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
from .store import GRADES, REAL_SOURCE, GradeStore

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
ALL = "all"  # the category label of a source's overall row
GRADE_NAMES = {"real": "real", "possibly_real": "possibly real", "fake": "fake"}


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


def build_report(store: GradeStore) -> dict:
    """Everything the report shows, as plain data (what `--json` prints)."""
    latest = store.latest_grades()
    spec = store.spec()
    models = list(spec.get("labels", []))
    by_group: dict[tuple[str, str], list[str]] = defaultdict(list)
    by_sketch: dict[str, list[str]] = defaultdict(list)
    raters: Counter = Counter()  # rater token -> sketches graded
    for _, sketch, source, category, grade, token in latest:
        by_group[source, ALL].append(grade)
        by_group[source, category].append(grade)
        by_sketch[sketch].append(grade)
        raters[token] += 1
        if source != REAL_SOURCE and source not in models:
            models.append(source)
    sources = [REAL_SOURCE, *models]
    categories = sorted({c for _, c in by_group if c != ALL})
    rows = []
    for source in sources:
        rows.append(_group_row(source, ALL, by_group.get((source, ALL), [])))
        own = [c for c in categories if (source, c) in by_group]
        if len(own) > 1:  # one category would repeat the overall row
            rows += [_group_row(source, c, by_group[source, c]) for c in own]
    overall = {r["source"]: r for r in rows if r["category"] == ALL}
    real = overall[REAL_SOURCE]
    real_ok = real["n"] > 0 and real["frac_real"] > 0.5
    real_ok_sure = real["n"] > 0 and real["frac_real_lo"] > 0.5
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
                "real_frac_real": real["frac_real"],
                "passes": bool(r["n"] > 0 and r["frac_real_or_possibly"] > 0.5 and real_ok),
                "passes_at_95": bool(r["frac_real_or_possibly_lo"] > 0.5 and real_ok_sure),
            }
        )
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
        "pool": len(store.sketch_ids()),
        "categories": sorted({s.category for s in store.sketches().values()}),
        "gradings": len(latest),
        "grade_rows": store.counts()["grades"],
        "groups": rows,
        "verdicts": verdicts,
        "agreement": agreement,
    }


def _pct(x: float) -> str:
    return "   -" if math.isnan(x) else f"{100 * x:4.0f}"


def _count(n: int, word: str, plural: str | None = None) -> str:
    """``1 rater``, ``2 raters``; ``1 sketch``, ``2 sketches``."""
    return f"{n} {word}" if n == 1 else f"{n} {plural or word + 's'}"


def format_report(report: dict) -> str:
    """A table a person reads in a terminal."""
    out = io.StringIO()
    out.write(
        f"{report['db']}: {_count(report['raters'], 'rater')}, "
        f"{_count(report['gradings'], 'grading')} of "
        f"{report['sketches_graded']} of {_count(report['pool'], 'sketch', 'sketches')} "
        "(the latest grade per rater and sketch counts)\n"
        "categories: " + ", ".join(report["categories"]) + "\n"
        "graded by rater (id, name, sketches):" + ("" if report["progress"] else " -") + "\n"
    )
    for p in report["progress"]:
        out.write(f"  {p['rater']}  {p['name']}  {p['graded']}/{report['pool']}\n")
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
    out.write(
        "\nPass criterion: more than half of a model's sketches graded real or possibly real,\n"
    )
    out.write("while real sketches are mostly (> 50%) graded real.\n")
    for v in report["verdicts"]:
        word = "PASSES" if v["passes"] else "fails"
        sure = " (and at 95% confidence)" if v["passes_at_95"] else ""
        out.write(
            f"  {v['model']}: {_pct(v['frac_real_or_possibly']).strip()}% real or possibly real "
            f"[{_pct(v['ci'][0]).strip()}, {_pct(v['ci'][1]).strip()}], real sketches "
            f"{_pct(v['real_frac_real']).strip()}% real -> {word}{sure}: {v['reason']}\n"
        )
    a = report["agreement"]
    alpha, kappa = a["krippendorff_alpha"], a["fleiss_kappa"]
    out.write(
        f"\nAgreement between raters: Krippendorff's alpha (nominal) "
        f"{'n/a' if math.isnan(alpha) else f'{alpha:.3f}'} over "
        f"{_count(a['alpha_units'], 'sketch', 'sketches')} "
        f"graded by 2+ raters; Fleiss' kappa {'n/a' if math.isnan(kappa) else f'{kappa:.3f}'} "
        f"over {_count(a['fleiss_units'], 'sketch', 'sketches')} graded by every rater.\n"
    )
    return out.getvalue()


def write_csv(report: dict, path: str | Path) -> None:
    """One row per (source, category) with counts, fractions and interval bounds."""
    import pandas as pd

    frame = pd.DataFrame(report["groups"])
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
