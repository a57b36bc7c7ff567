"""`grade report --judge`: the judge's scores beside the people's grades, per source and sketch by
sketch (AUC and Spearman against hand computations), on a real session with a tiny judge."""

from __future__ import annotations

import itertools
import json
import math
import os
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from grading_support import make_session

from quickdraw_tools.cli import main
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.eval.grading.report import (
    average_ranks,
    build_report,
    format_report,
    judge_agreement,
    judge_images,
    roc_auc,
    spearman,
    write_chart,
    write_csv,
)
from quickdraw_tools.eval.grading.sources import as_bitmaps, source_rng
from quickdraw_tools.eval.grading.store import GradeStore, Grading, Sketch
from quickdraw_tools.eval.judge import (
    JudgeConfig,
    JudgeTraining,
    feature_space_scores,
    load_judge,
    nearest_neighbour_scores,
    read_judge,
    render_strokes,
    train_judge,
)

# --- AUC and Spearman against hand computations ---------------------------------------------


def test_average_ranks_give_ties_their_mean_rank_and_weights_repeat():
    assert average_ranks([10, 20, 20, 30]).tolist() == [1, 2.5, 2.5, 4]
    assert average_ranks([3, 1, 2]).tolist() == [3, 1, 2]
    # weight 2 on the second item: as if 10, 20, 20, 20 -> ranks 1 and 3 (of 2, 3, 4)
    assert average_ranks([10, 20, 20], [1, 2, 1]).tolist() == [1, 3, 3]


def test_spearman_against_a_hand_computation_with_ties():
    # ranks x = 1, 2.5, 2.5, 4 and y = 1, 3, 2, 4; both means 2.5: deviations
    # x: -1.5, 0, 0, 1.5; y: -1.5, .5, -.5, 1.5 -> cov 4.5, var_x 4.5, var_y 5: 3 / sqrt(10)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(3 / math.sqrt(10))
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1)
    assert spearman([1, 2, 3], [0.3, 0.2, 0.1]) == pytest.approx(-1)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3])) and math.isnan(spearman([1], [2]))
    # whole-number weights are repetitions
    x, y, w = [0.1, 0.5, 0.5, 0.9, 0.7], [0, 1, 2, 2, 0.5], [2, 1, 0, 3, 1]
    repeated = np.repeat(np.arange(5), w)
    expected = spearman(np.take(x, repeated), np.take(y, repeated))
    assert spearman(x, y, w) == pytest.approx(expected)


def test_auc_against_a_hand_computation_and_every_pair():
    # positives 0.9, 0.8, 0.3; negatives 0.8, 0.1: of the 6 pairs, 0.9 wins twice, 0.8 ties
    # once and wins once, 0.3 loses once and wins once: 4.5 / 6
    scores, positive = [0.9, 0.8, 0.8, 0.3, 0.1], [True, True, False, True, False]
    assert roc_auc(scores, positive) == pytest.approx(0.75)
    assert roc_auc(scores, [True] * 5) != roc_auc(scores, [True] * 5)  # NaN: no negative
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = rng.integers(0, 4, size=15) / 4  # many ties
        p = rng.random(15) < 0.5
        w = rng.integers(1, 4, size=15)
        pairs = [
            (a, b)
            for a, b in itertools.product(range(15), repeat=2)
            if p[a] and not p[b]
            for _ in range(w[a] * w[b])
        ]
        every = np.mean([1.0 if s[a] > s[b] else 0.5 if s[a] == s[b] else 0.0 for a, b in pairs])
        assert roc_auc(s, p, w) == pytest.approx(every)


def grading(rater: str, sketch: str, grade: str) -> Grading:
    return Grading(rater, sketch, "m", "cake", grade, None, None)


def test_judge_agreement_against_a_hand_computation():
    confidence = {"a": 0.9, "b": 0.5, "c": 0.1, "d": 0.7}
    gradings = [
        grading("r1", "a", "real"),
        grading("r1", "b", "possibly_real"),
        grading("r1", "c", "fake"),
        grading("r1", "d", "fake"),
        grading("r2", "a", "real"),
        grading("r2", "b", "fake"),
        grading("r2", "c", "fake"),
        grading("r2", "e", "real"),  # a sketch the judge did not judge: left out
    ]
    got = judge_agreement(gradings, confidence, resamples=300)
    # positives (a, a, b) = 0.9, 0.9, 0.5 against negatives (b, c, c, d) = 0.5, 0.1, 0.1, 0.7:
    # each 0.9 beats all 4, 0.5 beats the two 0.1s and ties the 0.5: 10.5 / 12
    assert got["auc"] == pytest.approx(10.5 / 12)
    assert (got["gradings"], got["positives"], got["negatives"]) == (7, 3, 4)
    # mean grades a 2, b 0.5, c 0, d 0 (ranks 4, 3, 1.5, 1.5) against the confidence's ranks
    # 4, 2, 1, 3: deviations 1.5, -.5, -1.5, .5 and 1.5, .5, -1, -1 -> 3 / sqrt(5 * 4.5)
    assert got["spearman"] == pytest.approx(2 / math.sqrt(10))
    assert got["sketches"] == 4 and got["raters"] == 2
    for name in ("auc", "spearman"):
        lo, hi = got[f"{name}_ci95"]
        assert -1 <= lo <= hi <= 1
    alone = judge_agreement([g for g in gradings if g.rater == "r1"], confidence, resamples=300)
    assert math.isnan(alone["auc_ci95"][0])  # one rater: no interval, as the report's bootstrap
    assert math.isnan(judge_agreement([], confidence)["auc"])


# --- a real session and a tiny judge ------------------------------------------------------------

CATEGORIES = ("cake", "snowman", "teapot")  # the session's sheep are none of them


@pytest.fixture(scope="module")
def judge_path(shared, tmp_path_factory) -> Path:
    """A tiny judge of three categories (a few seconds on one core), as tests/test_judge.py's."""
    out = tmp_path_factory.mktemp("judge") / "judge.pt"
    files = [shared / "training" / f"{c}.ndjson" for c in CATEGORIES]
    config, training = (
        JudgeConfig(channels=8, feature_size=16),
        JudgeTraining(epochs=4, max_per_category=600),
    )
    train_judge(files, out, config, training, device="cpu", progress=False)
    return out


def graded_session(db: Path, shared: Path) -> GradeStore:
    """Real cakes against sheep and teapots (`make_session`, 4 of each), 2 + 2 gold items, and
    three raters: two who tell them apart in different ways, one who calls everything real
    (and so fails the attention checks)."""
    store = make_session(db, shared, per_source=4, gold=2)
    sketches = store.sketches()

    def ann(s: Sketch, k: int) -> str:
        if s.gold:
            return "real" if s.gold == "real" else "fake"
        return {"real": "real", "teapot": "fake"}.get(s.source, "possibly_real")

    def bob(s: Sketch, k: int) -> str:
        if s.gold:
            return "possibly_real" if s.gold == "real" else "fake"
        return ("real", "possibly_real", "fake")[k % 3]

    for name, choose in (("ann", ann), ("bob", bob), ("careless", lambda s, k: "real")):
        rater = store.new_rater(name)
        for k, sid in enumerate(rater.order):
            store.add_grade(uuid.uuid4().hex, rater, sid, choose(sketches[sid], k))
    return store


def test_the_judge_beside_the_people(judge_path, shared, tmp_path):
    store = graded_session(tmp_path / "g.sqlite", shared)
    report = build_report(store, resamples=200, judge=judge_path)
    j = report["judge"]
    assert j["classes"] == list(CATEGORIES) and 0 < j["held_out_accuracy"] <= 1
    assert j["sketches"] == 16 and j["judged"] == 12  # gold items left out; sheep not judged
    assert j["not_judged"] == [
        {"category": "aaron_sheep", "sketches": 4, "reason": "not one of the judge's classes"}
    ]

    # the judge's view, computed here on its own: strokes drawn by the official renderer
    judge = load_judge(judge_path)
    pool = {sid: s for sid, s in store.sketches().items() if s.gold is None}
    ids = list(pool)
    _, probs = judge.embed(render_strokes([pool[i].strokes for i in ids]))
    by_id = {r["sketch"]: r for r in j["per_sketch"]}
    confidence = {}
    for sid, p in zip(ids, probs, strict=True):
        category = pool[sid].category
        if category in CATEGORIES:
            confidence[sid] = p[CATEGORIES.index(category)]
            assert by_id[sid]["confidence"] == pytest.approx(confidence[sid], abs=1e-6)
            assert by_id[sid]["recognised"] == (CATEGORIES[int(p.argmax())] == category)
        else:
            assert by_id[sid]["confidence"] is None and by_id[sid]["recognised"] is None

    groups = {r["source"]: r for r in report["groups"]}
    for row in j["groups"]:
        mine = [sid for sid in ids if pool[sid].source == row["source"]]
        judged = [sid for sid in mine if sid in confidence]
        assert (row["sketches"], row["judged"]) == (len(mine), len(judged))
        assert row["people_real_or_possibly"] == groups[row["source"]]["frac_real_or_possibly"]
        if judged:
            right = sum(by_id[sid]["recognised"] for sid in judged)
            assert row["recognizability"] == right / len(judged)
            assert row["mean_confidence"] == pytest.approx(np.mean([confidence[s] for s in judged]))
        else:
            assert math.isnan(row["recognizability"]) and math.isnan(row["mean_confidence"])
    assert j["groups"][0]["source"] == "real" and j["groups"][0]["recognizability"] >= 0.5

    # the feature space: each row's sketches against its category's reference, both cut to the
    # smaller size with the row's own generator (the real cakes: 8 sketches of one category)
    feats, _ = judge.embed(render_strokes([pool[i].strokes for i in ids]))
    for row in j["groups"]:
        mine = [
            n
            for n, sid in enumerate(ids)
            if sid in confidence and pool[sid].source == row["source"]
        ]
        if not mine:
            assert row["feature_n"] == 0 and math.isnan(row["density"]), row
            continue
        category = pool[ids[mine[0]]].category
        rng = source_rng(0, "judge report", row["source"], row["category"])
        want = nearest_neighbour_scores(judge.references[category].features, feats[mine], rng)
        assert row["feature_n"] == want["n"] == len(mine), row
        for m in ("precision", "recall", "density", "coverage"):
            assert row[m] == pytest.approx(want[m]), (row, want)
    several = feature_space_scores(judge, ["cake"] * 4 + ["teapot"] * 4, feats[:8], rng)
    assert several["feature_n"] == 0 and math.isnan(several["coverage"])  # has per-category rows
    assert feature_space_scores(judge, ["cake"] * 3, feats[:3], rng)["feature_n"] == 0  # <= k

    # sketch by sketch, by brute force: every (passed, failed) pair of gradings; mean grades
    gradings = [g for g in store.gradings() if g.gold is None and g.sketch in confidence]
    passed = [confidence[g.sketch] for g in gradings if g.grade != "fake"]
    failed = [confidence[g.sketch] for g in gradings if g.grade == "fake"]
    wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a in passed for b in failed]
    value = {"real": 2, "possibly_real": 1, "fake": 0}
    mean = {s: np.mean([value[g.grade] for g in gradings if g.sketch == s]) for s in confidence}

    def ranks(v):
        v = np.asarray(v)
        return np.array([(v < x).sum() + ((v == x).sum() + 1) / 2 for x in v])

    rc, rm = ranks(list(confidence.values())), ranks([mean[s] for s in confidence])
    everyone = j["agreement"]["all"]
    assert everyone["auc"] == pytest.approx(np.mean(wins))
    assert everyone["spearman"] == pytest.approx(np.corrcoef(rc, rm)[0, 1])
    assert everyone["gradings"] == len(gradings) == 3 * 12
    assert j["agreement"]["generated"]["sketches"] == 4  # the teapots
    # the careless rater fails the gold fakes, so the agreement is given again without them
    assert report["attention"]["flagged"] == ["r3"]
    assert j["agreement"]["all_without_flagged"]["gradings"] == 2 * 12
    for a in j["agreement"].values():
        lo, hi = a["auc_ci95"]
        assert 0 <= lo <= hi <= 1

    text = format_report(report)
    assert "Judge vs people, sketch by sketch" in text and "generated only" in text
    assert "not judged: 4 sketches of 'aaron_sheep'" in text and "all, unflagged raters" in text
    assert "The judge's feature space" in text and "density and coverage (Naeem" in text
    real_row = j["groups"][0]
    assert f"{real_row['density']:.2f}" in text.split("The judge's feature space")[1]
    assert f"{everyone['auc']:.2f} [" in text
    write_csv(report, tmp_path / "g.csv")
    write_chart(report, tmp_path / "g.png")
    import pandas as pd

    frame = pd.read_csv(tmp_path / "g.csv")
    assert {"judge_recognizability", "judge_recognizability_lo", "judge_mean_confidence"} <= set(
        frame
    )
    assert {"judge_precision", "judge_recall", "judge_density", "judge_coverage"} <= set(frame)
    real = frame[(frame["raters"] == "all") & (frame["source"] == "real")].iloc[0]
    assert real["judge_judged"] == 8 and real["judge_sketches"] == 8
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    store.close()


def test_a_bitmap_session_is_judged_as_its_strokes_are(judge_path, shared, tmp_path):
    """A session shown as bitmaps stores the official renderer's bitmaps: what the judge sees."""
    judge = load_judge(judge_path)
    with make_session(tmp_path / "g.sqlite", shared, per_source=2) as store:
        pool = list(store.sketches().values())
    drawn = judge_images(judge, pool)
    assert np.array_equal(drawn, render_strokes([s.strokes for s in pool]))  # as `judge score`
    bitmap = Sketch("m", "cake", image=np.zeros((28, 28), np.uint8))  # makes it a bitmap session
    shown = as_bitmaps([*pool, bitmap])[:-1]
    assert all(s.image is not None for s in shown)
    assert np.array_equal(judge_images(judge, shown), drawn)
    with pytest.raises(QuickDrawError, match="16x16 bitmaps; the judge sees 28x28"):
        judge_images(judge, [Sketch("m", "cake", image=np.zeros((16, 16), np.uint8))])


def small_store(db: Path, categories: list[str]) -> GradeStore:
    pool = [Sketch("real" if i % 2 else "m", c, strokes=np.array([[0, 0, 0], [9, 5 + i, 1]]))
            for i, c in enumerate(categories)]  # fmt: skip
    store = GradeStore(db)
    store.create_session(pool, {"labels": ["m"]})
    rater = store.new_rater("ann")
    for sid in rater.order:
        store.add_grade(uuid.uuid4().hex, rater, sid, "real")
    return store


def test_a_judge_that_knows_none_of_the_categories_is_reported(judge_path, tmp_path):
    with small_store(tmp_path / "g.sqlite", ["cat", "cat", "mixed", "dog"]) as store:
        j = build_report(store, resamples=0, judge=judge_path)["judge"]
    assert j["judged"] == 0 and "knows none of the session's categories" in j["notes"][0]
    reasons = {n["category"]: n["reason"] for n in j["not_judged"]}
    assert reasons["mixed"].startswith("claims no category") and set(reasons) == {
        "cat",
        "dog",
        "mixed",
    }
    assert math.isnan(j["agreement"]["all"]["auc"])


# --- the command ---------------------------------------------------------------------------


def test_cli_report_with_a_judge(judge_path, shared, tmp_path, capsys):
    store = graded_session(tmp_path / "g.sqlite", shared)
    db = str(store.path)
    store.close()
    out = {"csv": tmp_path / "r.csv", "chart": tmp_path / "r.png", "json-out": tmp_path / "r.json"}
    args = ["grade", "report", "--db", db, "--judge", str(judge_path), "--bootstrap", "100"]
    assert main([*args, *[f"--{k}={v}" for k, v in out.items()]]) == 0
    text = capsys.readouterr().out
    assert "Judge vs people" in text and "recognised % [95% CI]" in text
    report = json.loads(out["json-out"].read_text(), parse_constant=lambda c: 1 / 0)  # no NaN
    assert report["judge"]["not_judged"][0]["category"] == "aaron_sheep"
    assert report["judge"]["groups"][1]["recognizability"] is None  # the sheep: null
    assert report["judge"]["groups"][1]["density"] is None
    assert report["judge"]["groups"][2]["coverage"] is not None  # the teapots
    assert all(p.is_file() for p in out.values())
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["judge"]["judged"] == 12


class RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cli_judge_errors_are_one_line(judge_path, shared, tmp_path, capsys):
    with small_store(tmp_path / "g.sqlite", ["cake", "teapot"]) as store:
        db = str(store.path)
    with small_store(tmp_path / "none.sqlite", ["mixed", ""]) as store:
        uncategorised = str(store.path)
    marker = tmp_path / "code-ran"
    crafted = tmp_path / "crafted.pt"
    torch.save({**read_judge(judge_path), "held_out": {"accuracy": RunsCode(marker)}}, crafted)
    (tmp_path / "junk.pt").write_bytes(b"not a judge")
    for db_, judge, message in [
        (db, tmp_path / "missing.pt", "not found"),
        (db, crafted, "refusing to load"),
        (db, tmp_path / "junk.pt", "not a readable judge"),
        (uncategorised, judge_path, "no sketch of the session claims a category"),
    ]:
        assert main(["grade", "report", "--db", db_, "--judge", str(judge)]) == 1
        captured = capsys.readouterr()
        assert captured.err.count("\n") == 1 and message in captured.err, captured.err
        assert captured.out == ""
    assert not marker.exists()
    assert main(["grade", "report", "--db", db, "--judge", str(judge_path)]) == 0
    capsys.readouterr()


def test_report_help_names_the_judge(capsys):
    with pytest.raises(SystemExit):
        main(["grade", "report", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--judge JUDGE.pt" in out and "AUC" in out and "Spearman" in out
