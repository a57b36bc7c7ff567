"""Likelihood evaluation: same numbers as the training path, IW bound behaves, CLI report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from quickdraw_tools.cli import main
from quickdraw_tools.convert import Source, convert
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.eval.likelihood import evaluate_checkpoint, importance_weighted_nll
from quickdraw_tools.models.draw import Draw, DrawConfig, DrawTraining
from quickdraw_tools.models.draw import build_datasets as draw_datasets
from quickdraw_tools.models.sketch_rnn import SketchRNN, SketchRNNConfig, SketchRNNTraining
from quickdraw_tools.models.sketch_rnn import build_datasets as sketch_datasets
from quickdraw_tools.models.trainer import checkpoint_settings, evaluate, read_checkpoint, train

TINY_RNN = dict(max_seq_len=80, enc_size=8, dec_size=16, z_size=4, num_mixture=3)
TINY_DRAW = dict(T=3, enc_size=16, dec_size=16, z_size=4, read_n=3, write_n=3)


def _train_cfg(cls=SketchRNNTraining, **kw):
    base = dict(steps=4, batch_size=16, eval_every=4, checkpoint_every=4, device="cpu", seed=0)
    return cls(**{**base, **kw})


@pytest.fixture(scope="module")
def npz_files(shared, tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    sources = [Source(c, shared / "training" / f"{c}.ndjson") for c in ("cake", "snowman")]
    convert(sources, out, ["sketchrnn", "bitmap"], max_per_category=150, progress=False)
    return out


@pytest.fixture(scope="module")
def rnn_checkpoint(npz_files, tmp_path_factory):
    files = sorted((npz_files / "sketchrnn").glob("*.npz"))
    cfg = SketchRNNConfig(**TINY_RNN)
    run = tmp_path_factory.mktemp("rnn")
    settings = _train_cfg()
    train(SketchRNN(cfg), sketch_datasets(cfg, files, settings), settings, run, progress=False)
    return run / "last.pt", files


@pytest.fixture(scope="module")
def draw_checkpoint(npz_files, tmp_path_factory):
    files = sorted((npz_files / "bitmap").glob("*.npy"))
    cfg = DrawConfig(**TINY_DRAW)
    run = tmp_path_factory.mktemp("draw")
    settings = _train_cfg(DrawTraining)
    train(Draw(cfg), draw_datasets(cfg, files, settings), settings, run, progress=False)
    return run / "last.pt", files


def test_sketch_rnn_report_equals_training_path(rnn_checkpoint, monkeypatch):
    ckpt, files = rnn_checkpoint
    report = evaluate_checkpoint(ckpt, files, split="valid", progress=False)
    assert report["model"] == "sketch-rnn" and set(report["categories"]) == {"cake", "snowman"}
    overall = report["overall"]
    n = {c: v["n"] for c, v in report["categories"].items()}
    weighted = sum(report["categories"][c]["L_R"] * n[c] for c in n) / sum(n.values())
    assert overall["L_R"] == pytest.approx(weighted, rel=1e-6)
    # the IW bound (k=1) is, on average, the ELBO in nats per sketch
    cfg = SketchRNNConfig(**TINY_RNN)
    elbo = cfg.max_seq_len * overall["L_R"] + cfg.z_size * overall["L_KL"]
    assert overall["iw_nll_nats"] == pytest.approx(elbo, rel=0.05)

    # With the noise switched off (z = mu) the report is exactly the trainer's own
    # validation of the same split: one code path, and the scale factor from training.
    from quickdraw_tools.models.trainer import load_checkpoint

    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)
    quiet = evaluate_checkpoint(ckpt, files, split="valid", progress=False)["overall"]
    model, state, _ = load_checkpoint(ckpt)
    bundle = sketch_datasets(model.config, files)
    assert state["scale_factor"] == pytest.approx(bundle.state["scale_factor"])
    assert quiet["n"] == len(bundle.valid)
    ref = evaluate(model, bundle.valid, batch_size=100, device=torch.device("cpu"))
    assert quiet["L_R"] == pytest.approx(ref["recon"], rel=1e-5)
    assert quiet["L_KL"] == pytest.approx(ref["kl"], rel=1e-5)


def test_importance_weighting_tightens_the_bound(rnn_checkpoint):
    from quickdraw_tools.models.trainer import load_checkpoint

    ckpt, files = rnn_checkpoint
    model, _, _ = load_checkpoint(ckpt)
    batch = next(iter(torch.utils.data.DataLoader(sketch_datasets(model.config, files).test, 8)))
    with torch.no_grad():
        # the same 16 draws of z: log-mean-exp of the weights >= their mean (Jensen),
        # so the k=16 bound is below the average of the sixteen k=1 bounds
        torch.manual_seed(5)
        k16 = importance_weighted_nll(model, batch, 16)
        torch.manual_seed(5)
        singles = torch.stack([importance_weighted_nll(model, batch, 1) for _ in range(16)])
    assert torch.all(k16 < singles.mean(0))
    best = singles.min(0).values  # log-mean-exp lies within [max, max - log k] of the weights
    assert torch.all((k16 >= best - 1e-9) & (k16 <= best + np.log(16) + 1e-9))
    report = evaluate_checkpoint(ckpt, files, split="test", k=16, progress=False)["overall"]
    assert report["n"] == len(sketch_datasets(model.config, files).test)


def test_iw_k1_is_an_unbiased_elbo_sample_on_a_fixed_batch(rnn_checkpoint):
    from quickdraw_tools.models.trainer import load_checkpoint

    ckpt, files = rnn_checkpoint
    model, _, _ = load_checkpoint(ckpt)
    batch = next(iter(torch.utils.data.DataLoader(sketch_datasets(model.config, files).test, 8)))
    torch.manual_seed(1)
    n_max, n_z, draws = model.config.max_seq_len, model.config.z_size, 400
    with torch.no_grad():
        # E_q[-log p(x|z)] by Monte Carlo; the KL term is analytic (no noise)
        runs = [model(batch, step=None, reduction="none") for _ in range(draws)]
        recon = n_max * torch.stack([r.recon for r in runs]).double()
        elbo = recon.mean(0) + n_z * runs[0].kl.double()
        iw = torch.stack([importance_weighted_nll(model, batch, 1) for _ in range(draws)])
    # both sides are Monte Carlo means: agree within 5 standard errors
    se = ((iw.var(0) + recon.var(0)) / draws).sqrt()
    assert torch.all((iw.mean(0) - elbo).abs() < 5 * se + 1e-6), (iw.mean(0), elbo, se)
    with pytest.raises(QuickDrawError, match="k"):
        importance_weighted_nll(model, batch, 0)


def test_draw_report_in_nats_and_bits(draw_checkpoint):
    ckpt, files = draw_checkpoint
    report = evaluate_checkpoint(ckpt, files, split="test", k=4, progress=False)
    o = report["overall"]
    assert report["model"] == "draw"
    assert o["L_x+L_z"] == pytest.approx(o["L_x"] + o["L_z"])
    assert o["bits_per_pixel"] == pytest.approx(o["L_x+L_z"] / (784 * math.log(2)))
    assert 0 < o["iw_nll_nats"] < o["L_x+L_z"] * 1.05
    assert set(report["categories"]) == {"cake", "snowman"}


def test_draw_holds_out_the_training_runs_split(npz_files, tmp_path):
    # an official-layout file (no .splits.json) is split with the training seed; the report
    # once used its own --seed (default 0), so a run trained with --seed 3 was "tested" on
    # images it had trained on
    official = tmp_path / "cake.npy"
    official.write_bytes((npz_files / "bitmap" / "cake.npy").read_bytes())
    cfg = DrawConfig(**TINY_DRAW)
    run = tmp_path / "run"
    settings = _train_cfg(DrawTraining, steps=1, seed=3, binarize="grey")
    bundle = draw_datasets(cfg, [official], settings)
    train(Draw(cfg), bundle, settings, run, progress=False)
    assert checkpoint_settings(read_checkpoint(run / "last.pt")).seed == 3
    from quickdraw_tools.eval.likelihood import _category_datasets
    from quickdraw_tools.models.trainer import load_checkpoint

    model, state, ckpt = load_checkpoint(run / "last.pt")
    ((_, test),) = _category_datasets(model, state, [official], "test", checkpoint_settings(ckpt))
    assert torch.equal(test.images, bundle.test.images)  # the rows held out in training
    seed0 = draw_datasets(cfg, [official], _train_cfg(DrawTraining, seed=0, binarize="grey"))
    assert not torch.equal(seed0.test.images, bundle.test.images)
    report = evaluate_checkpoint(run / "last.pt", [official], split="test", progress=False)
    assert report["overall"]["n"] == len(bundle.test)
    with pytest.raises(QuickDrawError, match="batch_size must be >= 1"):
        evaluate_checkpoint(run / "last.pt", [official], batch_size=0, progress=False)


def test_draw_train_split_is_binarised_once_for_the_report(draw_checkpoint):
    # dynamic binarisation resamples grey levels at every call: the k importance weights of
    # one example must all score the same binary image, as the held-out splits do
    from quickdraw_tools.eval.likelihood import _category_datasets
    from quickdraw_tools.models.trainer import load_checkpoint

    ckpt, files = draw_checkpoint
    model, state, raw = load_checkpoint(ckpt)
    for split in ("train", "test"):
        for _, data in _category_datasets(model, state, files[:1], split, checkpoint_settings(raw)):
            assert set(data.images.unique().tolist()) <= {0.0, 1.0}
            assert torch.equal(data[0], data[0]) and not data.resample


def test_cli_compares_checkpoints_on_one_split(rnn_checkpoint, tmp_path, capsys):
    ckpt, files = rnn_checkpoint
    out = tmp_path / "r.json"
    args = ["evaluate", str(ckpt), str(ckpt), "--data", *map(str, files), "--k", "2"]
    assert main([*args, "--json-out", str(out), "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "L_R" in table and "overall" in table and "cake" in table
    reports = json.loads(out.read_text())
    assert len(reports) == 2 and reports[0]["split"] == "test" and reports[0]["k"] == 2
    assert main([*args, "--json", "--quiet"]) == 0  # --json: the same JSON on stdout
    assert json.loads(capsys.readouterr().out) == reports

    assert main(["evaluate", str(tmp_path / "nope.pt"), "--data", str(files[0])]) == 1
    assert "nope.pt" in capsys.readouterr().err
    assert main(["evaluate", str(ckpt), "--data", str(tmp_path / "x.npz")]) == 1
    assert "x.npz" in capsys.readouterr().err
