"""The sample judge: its distances against known values, its checkpoint read safely, and that it
tells held-out real drawings from half-erased ones and from scribbles."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_checkpoint

from quickdraw_tools.cli import main
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.eval import judge as judge_module
from quickdraw_tools.eval.judge import (
    JudgeConfig,
    JudgeTraining,
    Row,
    density_coverage,
    erase_every_other_stroke,
    frechet_distance,
    kernel_inception_distance,
    load_judge,
    precision_recall,
    read_judge,
    read_labelled,
    render_strokes,
    score_rows,
    scribble,
    train_judge,
)
from quickdraw_tools.formats import save_sketchrnn_npz
from quickdraw_tools.strokes import drawing_to_stroke3

CATEGORIES = ("piano", "smiley face", "snowman")
TINY = JudgeConfig(channels=8, feature_size=16)
QUICK = JudgeTraining(epochs=4, max_per_category=600)  # 560 / 20 / 20 drawings per category


@pytest.fixture(scope="module")
def files(shared) -> list[Path]:
    return [shared / "training" / f"{c}.ndjson" for c in CATEGORIES]


@pytest.fixture(scope="module")
def judge_file(files, tmp_path_factory) -> tuple[Path, dict]:
    """A tiny judge trained on three categories (a few seconds on one CPU core)."""
    out = tmp_path_factory.mktemp("judge") / "judge.pt"
    summary = train_judge(files, out, TINY, QUICK, device="cpu", progress=False)
    return out, summary


# --- the distances against known values -------------------------------------------------------


def test_fid_of_diagonal_gaussians_is_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    # |mu1 - mu2|^2 + sum (sqrt var1 - sqrt var2)^2 = 7.25 + (4 + 1 + 0)
    expected = 7.25 + 5.0
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected)
    # a rotation of both Gaussians changes nothing (the matrices are no longer diagonal)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    got = frechet_distance(q @ mu1, q @ np.diag(var1) @ q.T, q @ mu2, q @ np.diag(var2) @ q.T)
    assert got == pytest.approx(expected)


def test_fid_of_commuting_covariances_and_of_a_gaussian_with_itself():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5, 5))
    s = a @ a.T + np.eye(5)
    w, v = np.linalg.eigh(s)
    # S and S^2 commute: tr((S S^2)^(1/2)) = sum w^(3/2)
    expected = np.trace(s) + np.trace(s @ s) - 2 * (w**1.5).sum()
    assert frechet_distance(np.zeros(5), s, np.zeros(5), s @ s) == pytest.approx(expected)
    assert frechet_distance(np.ones(5), s, np.ones(5), s) == pytest.approx(0, abs=1e-9)
    singular = np.diag([1.0, 0.0, 0.0, 0.0, 0.0])  # a rank-1 covariance is fine
    assert frechet_distance(np.zeros(5), singular, np.zeros(5), singular) == pytest.approx(0)


def test_kid_is_the_hand_computed_unbiased_mmd():
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = np.array([[2.0, 0.0], [0.0, 0.5]])

    def k(a, b):
        return (a @ b / 2 + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(3) for j in range(3) if i != j) / 6
    yy = sum(k(y[i], y[j]) for i in range(2) for j in range(2) if i != j) / 2
    xy = sum(k(a, b) for a in x for b in y) / 6
    assert kernel_inception_distance(x, y) == pytest.approx(xx + yy - 2 * xy)
    # unbiased: near 0 for two samples of one distribution (the plug-in MMD would be > 0)
    rng = np.random.default_rng(2)
    same = [kernel_inception_distance(rng.normal(size=(50, 4)), rng.normal(size=(50, 4)))
            for _ in range(200)]  # fmt: skip
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))
    assert min(same) < 0


def test_precision_and_recall_on_toy_point_sets():
    grid = np.array([[i, j] for i in range(6) for j in range(6)], dtype=float)
    assert precision_recall(grid, grid + 0.01) == (1.0, 1.0)
    far = grid + 100
    assert precision_recall(grid, far) == (0.0, 0.0)
    # half the samples on the real grid, half far away: precision 1/2; the real points all
    # lie in the balls of the near half, so recall stays 1
    half = np.concatenate([grid[::2], far[::2]])
    precision, recall = precision_recall(grid, half)
    assert precision == 0.5 and recall == 1.0
    # samples collapsed onto one corner of the grid: precise, with little recall. Each of the
    # 4 samples' ball reaches its 3rd neighbour (the opposite corner, sqrt(2) away), which
    # covers the 3x3 corner of the grid: 9 of its 36 points
    corner = grid[[0, 1, 6, 7]] + 0.01
    assert precision_recall(grid, corner) == (1.0, 9 / 36)
    with pytest.raises(QuickDrawError, match="more than 3 points"):
        precision_recall(grid, grid[:3])


def test_density_and_coverage_by_hand():
    # real points on a line, k = 2: the balls reach each point's 2nd nearest other point,
    # [-2, 2], [0, 2], [1, 3], [1, 5] and, around the outlier at 10, [2, 18]
    real = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    fake = np.array([[0.5], [12.0], [30.0], [40.0], [0.2]])
    # balls holding each fake: 2, 1 (only the outlier's), 0, 0, 2 -> density 5 / (2 * 5);
    # the balls of 0, 1 and 10 hold a fake -> coverage 3/5
    assert density_coverage(real, fake, k=2) == pytest.approx((0.5, 0.6))
    # precision counts the fake at 12 in full: 3 of 5 fakes lie in some ball
    assert precision_recall(real, fake, k=2)[0] == pytest.approx(0.6)
    with pytest.raises(QuickDrawError, match="more than 3 points"):
        density_coverage(real[:3], fake)
    with pytest.raises(QuickDrawError, match="one width"):
        density_coverage(real, np.zeros((5, 2)))


def test_density_and_coverage_of_one_distribution_are_their_expectations():
    """E[density] = 1 and E[coverage] = 1 - prod_{i<k} (M-1-i)/(M+N-1-i) (Naeem et al. 2020)."""
    rng = np.random.default_rng(3)
    k = 3

    def expected_coverage(m: int, n: int) -> float:
        return 1 - np.prod([(m - 1 - i) / (m + n - 1 - i) for i in range(k)])

    density, coverage = density_coverage(rng.normal(size=(2000, 4)), rng.normal(size=(2000, 4)))
    assert density == pytest.approx(1, abs=0.05)
    assert coverage == pytest.approx(expected_coverage(2000, 2000), abs=0.03)  # ~ 1 - 2^-3
    # small sets, many draws: the mean is the expectation within three standard errors
    draws = np.array(
        [density_coverage(rng.normal(size=(12, 2)), rng.normal(size=(20, 2))) for _ in range(400)]
    )
    for got, want in zip(draws.T, (1.0, expected_coverage(12, 20)), strict=True):
        assert abs(got.mean() - want) < 3 * got.std() / np.sqrt(len(got)), (got.mean(), want)


def test_a_repeated_sketch_covers_about_k_over_m_balls():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(300, 3))
    radii = np.sort(np.linalg.norm(real[:, None] - real[None], axis=-1), axis=1)[:, 3]
    coverages = []
    for _ in range(300):
        one = rng.normal(size=(1, 3))
        holding = (np.linalg.norm(real - one, axis=1) <= radii).sum()  # by brute force
        density, coverage = density_coverage(real, np.repeat(one, 10, axis=0))
        assert density == pytest.approx(holding / 3) and coverage == pytest.approx(holding / 300)
        coverages.append(coverage)
    # a fresh point is inside each real ball with chance k/M: E[coverage] = k/M = 0.01
    assert abs(np.mean(coverages) - 3 / 300) < 3 * np.std(coverages) / np.sqrt(300)
    assert precision_recall(real, np.repeat(one, 10, axis=0))[1] == 0  # recall sees it too


def test_density_sees_samples_that_only_an_outlier_s_ball_reaches():
    """Precision's weakness (Naeem et al. 2020, fig. 2): one outlying real point has a wide
    ball; samples that only it reaches are all precise, and have density 1/k."""
    grid = np.array([[i, j] for i in range(6) for j in range(6)], dtype=float)
    real = np.concatenate([grid, [[60.0, 60.0]]])
    fake = np.random.default_rng(5).uniform(55, 65, size=(36, 2))
    assert precision_recall(real, fake)[0] == 1.0
    assert density_coverage(real, fake) == pytest.approx((1 / 3, 1 / 37))


def test_distances_in_blocks_give_the_same_scores(monkeypatch):
    rng = np.random.default_rng(6)
    real, fake = rng.normal(size=(40, 5)), rng.normal(0.3, 1, size=(30, 5))
    whole = (precision_recall(real, fake), density_coverage(real, fake))
    monkeypatch.setattr(judge_module, "MAX_DISTANCES", 7)  # one row (or 7 cells) at a time
    assert (precision_recall(real, fake), density_coverage(real, fake)) == whole


# --- the judge tells real drawings from damaged and random ones -------------------------------


def test_scribbles_and_erasing_are_seeded_drawings():
    a = [scribble(np.random.default_rng(5)) for _ in range(3)]
    b = [scribble(np.random.default_rng(5)) for _ in range(3)]
    assert a == b
    xy = np.concatenate([np.column_stack(s) for d in a for s in d])
    assert xy.min() == 0 and xy.max() == 255
    drawing = [[[0, 1], [0, 1]], [[2, 3], [2, 3]], [[4], [4]]]
    assert erase_every_other_stroke(drawing) == [drawing[0], drawing[2]]
    assert erase_every_other_stroke(drawing[:1]) == drawing[:1]


def test_the_judge_tells_real_from_half_erased_from_scribbles(judge_file, files):
    path, summary = judge_file
    assert summary["held_out"]["accuracy"] >= 0.8, summary["held_out"]
    judge = load_judge(path)
    data = read_labelled(files, QUICK.seed, QUICK.max_per_category)
    rng = np.random.default_rng(0)
    rows: dict[str, list[Row]] = {"real": [], "half-erased": [], "scribbles": [], "collapsed": []}
    for c, d in data.items():
        test = d.drawings["test"]
        erased = [drawing_to_stroke3(erase_every_other_stroke(x), np.float64) for x in test]
        noise = [drawing_to_stroke3(scribble(rng), np.float64) for _ in test]
        rows["real"].append(Row("real", c, d.images["test"]))
        rows["half-erased"].append(Row("half-erased", c, render_strokes(erased)))
        rows["scribbles"].append(Row("scribbles", c, render_strokes(noise)))
        # a collapsed model: one test drawing the judge recognises, repeated
        one = int(
            np.flatnonzero(judge.embed(d.images["test"])[1].argmax(1) == judge.classes.index(c))[0]
        )
        rows["collapsed"].append(Row("collapsed", c, np.repeat(d.images["test"][[one]], 20, 0)))
    scores = {kind: score_rows(judge, r, n=20, seed=0)["sources"] for kind, r in rows.items()}
    metrics = ("recognizability", "fid", "precision", "recall", "density", "coverage")
    mean = {kind: {m: np.mean([r[m] for r in rs]) for m in metrics} for kind, rs in scores.items()}
    assert mean["real"]["recognizability"] >= 0.8, mean
    assert mean["real"]["recognizability"] > mean["half-erased"]["recognizability"], mean
    assert mean["half-erased"]["recognizability"] > mean["scribbles"]["recognizability"], mean
    assert mean["scribbles"]["recognizability"] <= 0.5, mean
    assert mean["real"]["fid"] < mean["half-erased"]["fid"] < mean["scribbles"]["fid"], mean
    assert mean["real"]["precision"] > mean["scribbles"]["precision"], mean
    # coverage orders them too; a collapsed model looks faithful (it repeats a recognised real
    # drawing) and only the diversity scores see it: no recall, coverage near k/n = 3/20
    real, collapsed = mean["real"], mean["collapsed"]
    assert real["coverage"] > mean["half-erased"]["coverage"] > mean["scribbles"]["coverage"]
    assert 0.6 < real["density"] < 1.5 and real["density"] > mean["scribbles"]["density"], mean
    assert collapsed["recognizability"] == 1 and collapsed["precision"] > 0.8, mean
    assert collapsed["recall"] == 0 and collapsed["coverage"] <= 0.3 < real["coverage"], mean
    assert all(r["n"] == 20 and r["in_training"] == r["in_reference"] == 0 for r in scores["real"])


def test_density_and_coverage_of_real_drawings_in_the_judge_s_features(judge_file, files):
    """Two halves of one category's drawings are one distribution: density near 1 and
    coverage near its expectation; another category's drawings are neither."""
    judge = load_judge(judge_file[0])
    data = read_labelled(files, QUICK.seed, QUICK.max_per_category)
    piano, _ = judge.embed(data["piano"].images["train"])  # 560 drawings
    snowman, _ = judge.embed(data["snowman"].images["train"][:280])
    density, coverage = density_coverage(piano[::2], piano[1::2])
    # E[coverage] at M = N = 280, k = 3: 1 - (279 * 278 * 277) / (559 * 558 * 557) = 0.876
    assert density == pytest.approx(1, abs=0.15) and coverage == pytest.approx(0.876, abs=0.06)
    other = density_coverage(piano[::2], snowman)
    assert other[0] < 0.5 and other[1] < 0.5


def test_the_report_script_says_which_score_catches_which_flaw(judge_file, files, tmp_path, capsys):
    """scripts/judge_report.py with a given judge: its rows (a collapsed one too), its tables
    and its JSON; a bad list of k is one error naming the flag."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "judge_report.py"
    spec = importlib.util.spec_from_file_location("judge_report", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = ["--judge", str(judge_file[0]), "--data", *map(str, files), "--fid-by-n", ""]
    out = tmp_path / "report.json"
    assert script.main([*args, "--other-k", "5", "--json-out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Caught:" in text and "k = 5" in text and "density  coverage" in text
    report = json.loads(out.read_text())
    kinds = [line["kind"] for line in report["summary"]]
    assert kinds == ["real", "half-erased", "scribbles", "collapsed"]
    # the one repeated sketch: no recall and little coverage in each of the three categories
    assert report["caught"]["collapsed"]["recall"] == report["caught"]["collapsed"]["coverage"] == 3
    assert set(report["by_k"]) == {"5"}
    with pytest.raises(QuickDrawError, match="--other-k takes whole numbers"):
        script.main([*args, "--other-k", "5,x"])


def test_the_held_out_drawings_are_convert_s(judge_file, files):
    """The judge holds out what `quickdraw convert` holds out: same keyed split, same seed."""
    from quickdraw_tools.formats import iter_drawings
    from quickdraw_tools.splits import split_records

    path, summary = judge_file
    data = read_labelled(files[:1], QUICK.seed, 0)
    records = list(iter_drawings(files[0]))
    split = split_records(records, CATEGORIES[0], seed=QUICK.seed)
    for s in ("train", "valid", "test"):
        assert data[CATEGORIES[0]].drawings[s] == [records[i]["drawing"] for i in split.indices[s]]
    assert summary["split_sizes"][CATEGORIES[0]] == {"train": 560, "valid": 20, "test": 20}


def test_rows_are_scored_at_one_n_and_unknown_categories_are_undefined(judge_file, files):
    judge = load_judge(judge_file[0])
    test = read_labelled(files, QUICK.seed, QUICK.max_per_category)
    piano, snowman = test["piano"].images["valid"], test["snowman"].images["test"]
    rows = [Row("a", "piano", piano), Row("b", "snowman", snowman[:15]), Row("c", "mixed", piano)]
    report = score_rows(judge, rows, n=100)
    a, b, c = report["sources"]
    assert a["n"] == b["n"] == report["n"] == 15 and c["n"] == 20
    assert a["in_reference"] == 15 and "in its reference" in a["notes"][0]  # valid = reference
    assert c["recognizability"] is None and "several categories" in c["notes"][0]
    assert sum(c["predicted"].values()) == pytest.approx(1)
    only_unknown = score_rows(judge, rows[2:], n=100)
    assert only_unknown["n"] is None and only_unknown["sources"][0]["fid"] is None
    with pytest.raises(QuickDrawError, match="needs more than 3"):
        score_rows(judge, [Row("tiny", "piano", piano[:3])])


def test_every_kind_of_training_file_is_read_and_split(files, shared, tmp_path):
    strokes = [drawing_to_stroke3(d) for d in read_labelled(files[:1])["piano"].drawings["test"]]
    save_sketchrnn_npz(tmp_path / "ink.npz", {"train": strokes[:40], "valid": strokes[40:45],
                                              "test": strokes[45:]})  # fmt: skip
    cat = shared / "mirror" / "full" / "numpy_bitmap" / "cat.npy"
    data = read_labelled([tmp_path / "ink.npz", cat, files[1]], max_per_category=300)
    assert list(data) == ["cat", "ink", "smiley face"]
    assert {s: len(v) for s, v in data["ink"].images.items()} == {
        "train": 40,
        "valid": 5,
        "test": 8,
    }
    assert data["cat"].drawings is None and data["cat"].images["train"].shape[1:] == (28, 28)
    assert sum(len(v) for v in data["smiley face"].images.values()) == 300
    with pytest.raises(QuickDrawError, match="comes from two files"):
        read_labelled([cat, cat])
    (tmp_path / "notes.txt").write_text("drawings?")
    with pytest.raises(QuickDrawError, match="the judge trains on drawings"):
        read_labelled([cat, tmp_path / "notes.txt"])


# --- the judge file loads safely ----------------------------------------------------------------


class RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_judge_is_refused_in_one_line_and_runs_nothing(judge_file, tmp_path, capsys):
    state = read_judge(judge_file[0])
    marker = tmp_path / "code-ran"
    crafted = tmp_path / "crafted.pt"
    torch.save({**state, "held_out": {"accuracy": RunsCode(marker)}}, crafted)
    with pytest.raises(QuickDrawError, match=r"refusing to load .*crafted.pt: it asks to run"):
        load_judge(crafted)
    assert main(["judge", "score", str(crafted), str(judge_file[0])]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing to load" in err
    assert not marker.exists()


def test_foreign_and_damaged_judges_are_refused(judge_file, tmp_path, shared):
    state = read_judge(judge_file[0])
    cases = {
        "missing.pt": ({k: v for k, v in state.items() if k != "reference"}, "has no 'reference'"),
        "future.pt": ({**state, "format_version": 99}, "judge format 99"),
        "sheep.pt": ({"format_version": 2, "model": "sketch-rnn"}, "a sketch-rnn checkpoint"),
        "classes.pt": ({**state, "classes": ["a"]}, "its classes"),
        "ref.pt": ({**state, "reference": {}}, "no valid reference"),
    }
    for name, (content, message) in cases.items():
        torch.save(content, tmp_path / name)
        with pytest.raises(QuickDrawError, match=message):
            load_judge(tmp_path / name)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(QuickDrawError, match="not a readable judge"):
        load_judge(tmp_path / "junk.pt")
    with pytest.raises(QuickDrawError, match="not found"):
        load_judge(tmp_path / "nothing.pt")


# --- the command ------------------------------------------------------------------------------


def test_judge_train_prints_its_held_out_accuracy(files, tmp_path, capsys):
    out = tmp_path / "j.pt"
    args = ["judge", "train", "--data", *map(str, files[:2]), "--out", str(out), "--epochs", "1",
            "--max-per-category", "150", "--feature-size", "8", "--quiet"]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "held out" in text and text.splitlines()[-2].startswith("all") and out.is_file()
    assert main([*args, "--json", "--json-out", str(tmp_path / "t.json")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == json.loads((tmp_path / "t.json").read_text())
    assert summary["classes"] == list(CATEGORIES[:2]) and 0 <= summary["held_out"]["accuracy"] <= 1
    # one category is not something to tell apart
    assert main(["judge", "train", "--data", str(files[0]), "--out", str(tmp_path / "x.pt")]) == 1
    assert "at least two" in capsys.readouterr().err


def test_the_flags_defaults_are_the_settings_defaults():
    """The parser cannot import torch (every command's --help would), so it repeats them."""
    from test_cli import all_parsers

    parsers = dict(all_parsers())
    defaults = {a.dest: a.default for a in parsers["quickdraw judge train"]._actions}
    for name in ("epochs", "batch_size", "lr", "seed", "max_per_category"):
        assert defaults[name] == getattr(JudgeTraining(), name), name
    assert defaults["feature_size"] == JudgeConfig().feature_size


def test_judge_score_every_kind_of_source(judge_file, files, shared, tmp_path, capsys):
    """ndjson, .npz:SPLIT, .npy and a checkpoint; a category the judge has no class for is
    reported as undefined, not a crash."""
    judge, _ = judge_file
    # a sketch-rnn .npz of one judge category, and a (tiny, untrained) model trained on it
    strokes = [
        drawing_to_stroke3(d) for d in read_labelled(files[1:2])["smiley face"].drawings["test"]
    ]
    npz = tmp_path / "smiley face.npz"
    save_sketchrnn_npz(npz, {"train": strokes[:30], "valid": strokes[30:40], "test": strokes[40:]})
    tiny_rnn = dict(max_seq_len=200, enc_size=8, dec_size=8, z_size=4, num_mixture=2)
    checkpoint = train_checkpoint(tmp_path / "run", "sketch-rnn", tiny_rnn, [npz])
    cat_npy = shared / "mirror" / "full" / "numpy_bitmap" / "cat.npy"
    sources = [str(files[0]), f"{npz}:test", str(cat_npy), str(checkpoint)]
    out = tmp_path / "scores.json"
    assert main(["judge", "score", str(judge), *sources, "--n", "12", "--json", "--quiet",
                 "--json-out", str(out), "--device", "cpu"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads(out.read_text())
    rows = {(r["source"], r["category"]): r for r in report["sources"]}
    piano = rows[(str(files[0]), "piano")]
    assert piano["n"] == 12 and 0 <= piano["recognizability"] <= 1 and piano["fid"] >= 0
    lo, hi = piano["recognizability_ci95"]
    assert lo <= piano["recognizability"] <= hi
    assert {"kid", "precision", "recall", "density", "coverage", "predicted"} <= set(piano)
    assert piano["density"] >= 0 and 0 <= piano["coverage"] <= 1
    assert piano["in_training"] > 0 and "judge trained on" in " ".join(piano["notes"])
    assert rows[(f"{npz}:test", "smiley face")]["recognizability"] is not None
    cat = rows[(str(cat_npy), "cat")]
    assert cat["recognizability"] is None and cat["fid"] is None and cat["coverage"] is None
    assert "not one of the judge's classes" in cat["notes"][0]
    sampled = rows[(str(checkpoint), "smiley face")]
    assert sampled["n"] == 12 and sampled["recognizability"] is not None
    assert report["n"] == 12 and "n = 12" in report["fid_note"]
    # the table
    assert main(["judge", "score", str(judge), str(files[0]), "--n", "12", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "recognised (95% CI)" in text and "FID is biased upwards" in text
    assert "density  coverage" in text.splitlines()[0]


def test_judge_score_errors_are_one_line(judge_file, tmp_path, capsys):
    judge, _ = judge_file
    for args, message in [
        ([str(judge), str(tmp_path / "none.ndjson")], "no such file"),
        ([str(judge), str(tmp_path / "x.txt")], "expected drawings"),
        ([str(tmp_path / "nope.pt"), str(judge)], "not found"),
        ([str(judge), str(judge), "--n", "0"], "--n must be 1 to 10,000, got 0"),
    ]:
        assert main(["judge", "score", *args, "--quiet"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
