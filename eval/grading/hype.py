"""HYPE's two scores of a grading session (Zhou et al., NeurIPS 2019).

- **HYPE-infinity**, for every session: a model's error rate, the share of wrong answers on
  real sketches and on that model's sketches together (`hype_infinity`). Real sketches graded
  fake and the model's sketches graded real or possibly real are the errors; the two kinds
  weigh half each (as in HYPE's balanced 50/50 design: the session's real sketches serve every
  model). 50% means people cannot tell the model from people; 0% that they always can. Under
  an exposure limit it is the error rate at that exposure.
- **HYPE-time**, for a session with adaptive exposure (`eval.grading.exposure`): each rater's
  threshold on each model's staircase, and per model their geometric mean (`hype_time`): the
  exposure at which raters tell that model from real drawings 75% of the time. Longer is a
  better model.

Intervals: HYPE-infinity by the report's two-level bootstrap (raters and sketches resampled);
HYPE-time by resampling raters (a staircase's path is one rater's, its sketches are not
exchangeable within it).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from .exposure import Exposure, correct, staircases, threshold
from .store import REAL_SOURCE, Grading, Rater

HYPE_INFINITY_RULE = (
    "HYPE-infinity: the share of wrong answers, half on real sketches (graded fake) and half on "
    "the model's (graded real or possibly real); 50% = indistinguishable from people"
)
HYPE_TIME_RULE = (
    "HYPE-time: each rater's staircase threshold (geometric mean exposure at its reversals "
    "after the first two), per model their geometric mean: the exposure at which raters are "
    "right 75% of the time; longer = harder to tell from people"
)


def _error_tables(gradings: Sequence[Grading], source: str, raters: dict, sketches: dict):
    graded = np.zeros((len(raters), len(sketches)))
    wrong = np.zeros_like(graded)
    for g in gradings:
        if g.source == source:
            i, j = raters[g.rater], sketches[g.sketch]
            graded[i, j], wrong[i, j] = 1, not correct(g.source, g.grade)
    return graded, wrong


def hype_infinity(
    gradings: Sequence[Grading], models: Sequence[str], resamples: int, seed: int
) -> list[dict]:
    """Per model: HYPE-infinity (the balanced error rate), its parts, and a 95% two-level
    bootstrap interval (NaN with fewer than two raters or two sketches)."""
    from .report import _bootstrap_weights

    out = []
    for k, model in enumerate(models):
        mine = [g for g in gradings if g.source in (REAL_SOURCE, model) and g.gold is None]
        raters = {r: i for i, r in enumerate(dict.fromkeys(g.rater for g in mine))}
        sketches = {s: j for j, s in enumerate(dict.fromkeys(g.sketch for g in mine))}
        real_n, real_wrong = _error_tables(mine, REAL_SOURCE, raters, sketches)
        model_n, model_wrong = _error_tables(mine, model, raters, sketches)
        row = {
            "model": model,
            "real_gradings": int(real_n.sum()),
            "model_gradings": int(model_n.sum()),
            "real_error": real_wrong.sum() / real_n.sum() if real_n.sum() else math.nan,
            "model_error": model_wrong.sum() / model_n.sum() if model_n.sum() else math.nan,
            "ci95": [math.nan, math.nan],
        }
        row["hype_infinity"] = (row["real_error"] + row["model_error"]) / 2
        if len(raters) >= 2 and len(sketches) >= 2 and resamples > 0:
            w_r, w_s = _bootstrap_weights(len(raters), len(sketches), resamples, [seed, 77, k])
            parts = []
            for n, wrong in ((real_n, real_wrong), (model_n, model_wrong)):
                total = ((w_r @ n) * w_s).sum(axis=1)
                errors = ((w_r @ wrong) * w_s).sum(axis=1)
                parts.append(np.where(total > 0, errors / np.where(total > 0, total, 1), np.nan))
            score = (parts[0] + parts[1]) / 2
            score = score[~np.isnan(score)]
            if len(score):
                row["ci95"] = [float(q) for q in np.quantile(score, [0.025, 0.975])]
        out.append(row)
    return out


def hype_time(
    gradings: Sequence[Grading],
    raters: Sequence[Rater],
    source_of: dict[str, str | None],
    models: Sequence[str],
    exposure: Exposure,
    resamples: int,
    seed: int,
) -> dict:
    """Per model: every rater's staircase threshold and their geometric mean with a 95%
    bootstrap interval over raters. `source_of`: sketch id -> source (None: a gold item)."""
    latest = {(g.rater, g.sketch): g for g in gradings}
    per_model: dict[str, list[dict]] = defaultdict(list)
    for rater in raters:
        order = rater.order
        stairs = staircases([source_of[s] for s in order], models) if models else []
        trials: dict[str, list[tuple[int, bool]]] = defaultdict(list)
        for sid, stair in zip(order, stairs, strict=False):
            g = latest.get((rater.token, sid))
            if g is None or g.gold is not None or g.exposure_ms is None:
                continue
            trials[stair].append((g.exposure_ms, correct(g.source, g.grade)))
        for model, found in trials.items():
            per_model[model].append(
                {
                    "rater": rater.short_id,
                    "trials": len(found),
                    "correct": sum(c for _, c in found),
                    "threshold_ms": threshold(found),
                }
            )
    out = []
    rng = np.random.default_rng([seed, 78])
    for model in models:
        rows = per_model.get(model, [])
        logs = np.log([r["threshold_ms"] for r in rows]) if rows else np.zeros(0)
        row = {
            "model": model,
            "raters": len(rows),
            "trials": sum(r["trials"] for r in rows),
            "threshold_ms": float(np.exp(logs.mean())) if len(logs) else math.nan,
            "ci95": [math.nan, math.nan],
            "per_rater": rows,
        }
        if len(logs) >= 2 and resamples > 0:
            draws = rng.integers(0, len(logs), size=(resamples, len(logs)))
            means = np.exp(logs[draws].mean(axis=1))
            row["ci95"] = [float(q) for q in np.quantile(means, [0.025, 0.975])]
        out.append(row)
    return {
        "min_ms": exposure.min_ms,
        "max_ms": exposure.max_ms,
        "levels": exposure.levels(),
        "models": out,
    }
