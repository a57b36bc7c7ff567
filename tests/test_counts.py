"""Every number counts everything (issue 22, items 2 and 3): a blank sample (empty, one point,
no ink) is a sample, scored as not recognised by the judge and kept as drawn in the grading
pool; a source's sketches and scores depend on the run's seed and that source alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import train_checkpoint

from quickdraw_tools.cli import main
from quickdraw_tools.eval.grading.report import build_report, format_report
from quickdraw_tools.eval.grading.sources import (
    build_session,
    parse_source,
    read_source,
    source_labels,
    source_rng,
)
from quickdraw_tools.eval.grading.store import GradeStore
from quickdraw_tools.eval.judge import JudgeConfig, JudgeTraining, train_judge
from quickdraw_tools.formats import iter_ndjson, load_bitmaps, write_ndjson

CATEGORIES = ("piano", "smiley face", "snowman")


def records_of(path: Path) -> list[dict]:
    return list(iter_ndjson(path))


@pytest.fixture(scope="module")
def judge(shared, tmp_path_factory) -> Path:
    """A tiny judge of three categories (a few seconds)."""
    out = tmp_path_factory.mktemp("judge") / "judge.pt"
    files = [shared / "training" / f"{c}.ndjson" for c in CATEGORIES]
    train_judge(
        files,
        out,
        JudgeConfig(channels=8, feature_size=16),
        JudgeTraining(epochs=2, max_per_category=600),  # 20 valid drawings: n up to 20
        device="cpu",
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def untrained(shared, tmp_path_factory) -> Path:
    """A sketch-rnn at its initial weights, trained on real smiley faces: its pen logits are
    near uniform, so about a third of its samples end at once (empty) or after one point."""
    tmp = tmp_path_factory.mktemp("model")
    config = dict(max_seq_len=200, enc_size=8, dec_size=8, z_size=4, num_mixture=2)
    smiley = tmp / "smiley face.ndjson"
    write_ndjson(smiley, records_of(shared / "training" / "smiley face.ndjson")[:200])
    assert main(["convert", str(smiley), "--out", str(tmp / "data"), "--quiet"]) == 0
    return train_checkpoint(
        tmp / "run", "sketch-rnn", config, [tmp / "data/sketchrnn/smiley face.npz"]
    )


def score(judge: Path, sources: list[str], capsys, *flags: str) -> dict:
    assert main(["judge", "score", str(judge), *sources, "--json", "--quiet", *flags]) == 0
    return {(r["source"], r["category"]): r for r in json.loads(capsys.readouterr().out)["sources"]}


def test_judge_scores_blanks_at_the_n_asked(judge, shared, tmp_path, capsys):
    records = records_of(shared / "training" / "smiley face.ndjson")[-15:]
    holed = tmp_path / "holed.ndjson"
    one_point = [[[records[0]["drawing"][0][0][0]], [records[0]["drawing"][0][1][0]]]]
    blanks = [{"word": "smiley face", "drawing": d} for d in [[]] * 4 + [one_point]]
    write_ndjson(holed, blanks + records)  # what `sample --out x.ndjson` writes for them
    real = shared / "training" / "smiley face.ndjson"
    rows = score(judge, [str(holed), str(real)], capsys, "--n", "20")
    row = rows[(str(holed), "smiley face")]
    assert row["n"] == 20 and row["blank"] == 5  # n stays what was asked
    # the 15 real drawings alone, scored at the same n: the blanks only ever subtract
    alone = tmp_path / "alone.ndjson"
    write_ndjson(alone, records)
    only = score(judge, [str(alone)], capsys, "--n", "20")[(str(alone), "smiley face")]
    assert only["n"] == 15
    assert round(row["recognizability"] * 20) == round(only["recognizability"] * 15)
    assert main(["judge", "score", str(judge), str(holed), "--n", "20", "--quiet"]) == 0
    table = capsys.readouterr().out
    assert " blank " in table.splitlines()[0]
    assert "5 of these 20 sketches are blank" in table


def test_judge_counts_a_models_empty_samples(judge, untrained, capsys):
    rows = score(judge, [str(untrained)], capsys, "--n", "20", "--device", "cpu")
    (row,) = rows.values()
    assert row["n"] == 20  # every sample counts: none dropped, none drawn again
    sketches = read_source(
        parse_source(str(untrained)), "x", 20, source_rng(0, "judge", str(untrained))
    )
    blank = sum(s.blank for s in sketches)
    assert blank >= 3 and row["blank"] == blank
    assert row["recognizability"] <= (20 - blank) / 20


def test_blank_bitmaps_count_too(judge, shared, tmp_path, capsys):
    """A bitmap model's blank canvases (rows without ink), as DRAW's `sample --out x.npy`
    writes them."""
    rows = load_bitmaps(shared / "mirror" / "full" / "numpy_bitmap" / "cat.npy")[:12].copy()
    rows[[2, 7]] = 0
    npy = tmp_path / "piano.npy"  # claims a judge category
    np.save(npy, rows)
    row = score(judge, [str(npy)], capsys, "--n", "12")[(str(npy), "piano")]
    assert row["n"] == 12 and row["blank"] == 2


def test_a_sources_scores_do_not_depend_on_the_other_sources(judge, untrained, shared, capsys):
    real = str(shared / "training" / "snowman.ndjson")
    model = str(untrained)
    twice = score(judge, [model, real], capsys, "--n", "25", "--device", "cpu")
    alone = score(judge, [model], capsys, "--n", "25", "--device", "cpu")
    first = score(judge, [real, model], capsys, "--n", "25", "--device", "cpu")
    keys = ("n", "blank", "recognizability", "fid", "kid", "precision", "recall")
    for key in keys:
        assert twice[(model, "smiley face")][key] == alone[(model, "smiley face")][key], key
        assert first[(model, "smiley face")][key] == alone[(model, "smiley face")][key], key
        assert first[(real, "snowman")][key] == twice[(real, "snowman")][key], key


def test_the_grading_pool_keeps_blank_samples_as_drawn(untrained, shared, tmp_path):
    real = parse_source(str(shared / "training" / "smiley face.ndjson"))
    model = parse_source(str(untrained))
    session = build_session(real, [model], 30, seed=0, examples=0)
    (label,) = source_labels([model])
    mine = [s for s in session.pool if s.source == label]
    drawn = read_source(model, label, 30, source_rng(0, "generated", str(model)))
    assert len(mine) == 30  # never redrawn: exactly what the model drew, blank ones too
    for a, b in zip(mine, drawn, strict=True):
        np.testing.assert_array_equal(a.strokes, b.strokes)
    blank = sum(s.blank for s in mine)
    assert blank >= 3 and session.spec["blank"] == {"real": 0, label: blank}
    # the same source beside another one gives the same sketches
    again = build_session(real, [model, model], 30, seed=0, examples=0)
    first = [s for s in again.pool if s.source == again.spec["labels"][0]]
    for a, b in zip(first, drawn, strict=True):
        np.testing.assert_array_equal(a.strokes, b.strokes)
    # the report says how many, per source
    with GradeStore(tmp_path / "grades.sqlite") as store:
        store.create_session(session.pool, session.spec, session.examples)
        report = build_report(store, resamples=0)
    assert report["blank"] == {"real": 0, label: blank}
    text = format_report(report)
    assert f"{label} {blank} of 30" in text
    assert "Session drawn with --seed 0, checkpoints sampled at --temperature 1.0" in text
