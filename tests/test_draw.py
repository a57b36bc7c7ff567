"""DRAW: filterbanks, attention geometry, the KL term, training, data, pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from quickdraw_tools import splits
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.models import draw_viz
from quickdraw_tools.models.base import model_class
from quickdraw_tools.models.draw import (
    PRESETS,
    BitmapDataset,
    Draw,
    DrawConfig,
    DrawTraining,
    Window,
    attention_window,
    build_datasets,
    filterbank,
    kl_standard_normal,
    read_glimpse,
    report_kl_offset,
    write_patch,
)

TINY = dict(T=3, read_n=3, write_n=3, z_size=4, enc_size=16, dec_size=16)


def tiny(**changes) -> DrawConfig:
    return DrawConfig(**{**TINY, **changes})


@pytest.fixture(scope="module")
def cats(shared) -> torch.Tensor:
    """The first 64 official cat bitmaps, uint8 (64, 784)."""
    rows = np.load(shared / "mirror/full/numpy_bitmap/cat.npy", mmap_mode="r")[:64]
    return torch.from_numpy(np.array(rows))


def on(images: torch.Tensor) -> torch.Tensor:
    """Grey levels -> fixed 0/1 targets (what the "threshold" mode makes)."""
    return (images.float() / 255 > 0.5).float()


def window(batch=4, n=5, size=28, seed=0) -> Window:
    params = torch.randn(batch, 5, generator=torch.Generator().manual_seed(seed))
    return attention_window(params, n, size, size)


# --- attention ---------------------------------------------------------------------


@pytest.mark.parametrize("n,height,width", [(5, 28, 28), (2, 28, 28), (3, 20, 30)])
def test_filterbank_shapes_and_rows_sum_to_one(n, height, width):
    params = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    f_x, f_y = filterbank(attention_window(params, n, height, width), n, height, width)
    assert f_x.shape == (6, n, width) and f_y.shape == (6, n, height)
    assert (f_x >= 0).all() and (f_y >= 0).all()
    torch.testing.assert_close(f_x.sum(-1), torch.ones(6, n))
    torch.testing.assert_close(f_y.sum(-1), torch.ones(6, n))


def test_zero_parameters_centre_the_window():
    w = attention_window(torch.zeros(1, 5), 5, 28, 28)
    assert w.g_x.item() == w.g_y.item() == 14.5  # (A + 1) / 2, the centre in 1-based pixels
    assert w.delta.item() == pytest.approx(27 / 4)  # δ̃ = 1 spans the image
    assert w.sigma2.item() == w.gamma.item() == 1.0
    f_x, f_y = filterbank(w, 5, 28, 28)
    pixels = torch.arange(1, 29, dtype=torch.float32)
    centres = f_x[0] @ pixels  # each filter's mean position
    assert centres[2].item() == pytest.approx(14.5, abs=1e-4)
    # symmetric about the image centre: filter i mirrors filter N-1-i
    torch.testing.assert_close(f_x[0], f_x[0].flip(0).flip(1))
    torch.testing.assert_close(f_x, f_y)
    assert (centres.diff() > 0).all()


def test_read_of_a_sharp_unit_stride_window_is_the_centre_patch():
    n = 4
    # δ = 27/3·δ̃ = 1 and σ² tiny: grid points on pixels 13..16 (1-based), i.e. rows 12..15
    params = torch.tensor([[0.0, 0.0, np.log(1e-3), np.log(1 / 9), 0.0]], dtype=torch.float32)
    w = attention_window(params, n, 28, 28)
    f_x, f_y = filterbank(w, n, 28, 28)
    image = torch.arange(784, dtype=torch.float32).view(1, 1, 28, 28)
    glimpse = read_glimpse(image, f_x, f_y)
    torch.testing.assert_close(glimpse[0, 0], image[0, 0, 12:16, 12:16])
    # writing is the transpose: the patch lands back in the same place
    canvas = write_patch(glimpse[:, 0], f_x, f_y)
    expected = torch.zeros(28, 28)
    expected[12:16, 12:16] = image[0, 0, 12:16, 12:16]
    torch.testing.assert_close(canvas[0], expected)


def test_window_moves_with_its_parameters():
    w = attention_window(torch.tensor([[-1.0, 1.0, 0.0, 0.0, 0.0]]), 5, 28, 28)
    assert w.g_x.item() == 0.0 and w.g_y.item() == 29.0  # g̃ = ±1: the image's edges


# --- the KL term ----------------------------------------------------------------------


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(2)
    mu, log_sigma = torch.randn(7, 10, generator=g), torch.randn(7, 10, generator=g)
    ours = kl_standard_normal(mu, log_sigma)
    q = torch.distributions.Normal(mu, log_sigma.exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(ours, torch.distributions.kl_divergence(q, p).sum(-1))
    zero = kl_standard_normal(torch.zeros(3, 10), torch.zeros(3, 10))
    torch.testing.assert_close(zero, torch.zeros(3))


def test_report_kl_offset_is_90_nats_at_the_report_defaults():
    assert report_kl_offset(DrawConfig()) == 90.0


def test_config_and_training_defaults_are_the_reports():
    c = DrawConfig()
    assert (c.T, c.read_n, c.write_n, c.z_size, c.enc_size, c.dec_size) == (20, 5, 5, 10, 256, 256)
    t = DrawTraining()
    assert (t.optimizer, t.binarize, t.batch_size, t.lr) == ("rmsprop", "dynamic", 100, 1e-3)
    assert (t.lr_decay, t.grad_clip) == (1.0, 5.0)
    assert isinstance(Draw(c).configure_optimizer(t), torch.optim.RMSprop)
    adam = Draw(tiny()).configure_optimizer(DrawTraining(optimizer="adam", lr=0.01))
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["lr"] == 0.01


@pytest.mark.parametrize(
    "make,changes,match",
    [
        (DrawTraining, {"binarize": "gray"}, "did you mean 'grey'"),
        (DrawTraining, {"optimizer": "sgd"}, "valid: 'rmsprop', 'adam'"),
        (DrawTraining, {"threshold": 1.5}, "threshold"),
        (DrawTraining, {"max_per_category": -1}, "max_per_category"),
        (tiny, {"read_n": 1}, "read_n"),
    ],
)
def test_bad_config_names_the_problem(make, changes, match):
    with pytest.raises(QuickDrawError, match=match):
        make(**changes)


# --- the model ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "read_attn,write_attn,learn_canvas",
    [(True, True, False), (False, False, False), (True, False, True)],
)
def test_forward_per_example_and_mean(cats, read_attn, write_attn, learn_canvas):
    model = Draw(tiny(read_attn=read_attn, write_attn=write_attn, learn_canvas=learn_canvas))
    torch.manual_seed(0)
    per = model(on(cats[:8]), reduction="none")
    torch.manual_seed(0)
    mean = model(on(cats[:8]))
    assert per.recon.shape == per.kl.shape == (8,)
    assert (per.recon > 0).all() and (per.kl >= 0).all()
    torch.testing.assert_close(mean.recon, per.recon.mean())
    torch.testing.assert_close(mean.kl, per.kl.mean())
    torch.testing.assert_close(mean.total, (per.recon + per.kl).mean())
    with pytest.raises(QuickDrawError, match="reduction"):
        model(cats[:8], reduction="sum")


def test_learned_canvas_starts_near_the_ink_density_and_learns():
    model = Draw(tiny(learn_canvas=True, T=1))
    assert model.canvas0.shape == (28, 28) and model.canvas0.requires_grad
    torch.testing.assert_close(torch.sigmoid(model.canvas0), torch.full((28, 28), 0.1))
    model(torch.rand(2, 784)).total.backward()
    assert model.canvas0.grad.abs().sum() > 0


def test_no_attention_reads_the_whole_image():
    plain, attentive = Draw(tiny(read_attn=False, write_attn=False)), Draw(tiny())
    # encoder input: [x, x̂] (2·784) or [two 3×3 glimpses] (18), plus h_dec (16)
    assert plain.encoder.weight_ih.shape[1] == 2 * 784 + 16
    assert attentive.encoder.weight_ih.shape[1] == 2 * 9 + 16
    assert plain.to_write.out_features == 784 and plain.to_read is None
    trace = plain.generate(2, generator=torch.Generator().manual_seed(0))
    assert trace.read_windows is None and trace.write_windows is None


def test_recon_is_bernoulli_nll_of_the_final_canvas(cats):
    model = Draw(tiny())
    x = on(cats[:4]).view(4, 28, 28)
    torch.manual_seed(3)
    canvas, kl, _ = model._unroll(x)
    torch.manual_seed(3)
    losses = model(on(cats[:4]), reduction="none")
    p = torch.distributions.Bernoulli(logits=canvas)
    torch.testing.assert_close(losses.recon, -p.log_prob(x).sum((1, 2)))
    torch.testing.assert_close(losses.kl, kl)


def test_noise_is_fresh_at_every_step(monkeypatch):
    model = Draw(tiny(T=4))
    draws = []
    real = torch.randn_like

    def spy(t, *args, **kwargs):
        out = real(t, *args, **kwargs)
        draws.append(out)
        return out

    monkeypatch.setattr(torch, "randn_like", spy)
    model(torch.rand(2, 784))
    assert len(draws) == 4
    assert all(not torch.equal(draws[0], d) for d in draws[1:])


def test_dynamic_binarisation_resamples_per_epoch_and_threshold_does_not():
    x = np.full((3, 784), 128, dtype=np.uint8)
    labels = np.zeros(3, dtype=np.int64)
    dynamic = BitmapDataset(x, labels, ["cat"], "dynamic", seed=4)
    a = dynamic[1]
    assert set(a.unique().tolist()) == {0.0, 1.0} and 200 < a.sum() < 600
    assert torch.equal(a, dynamic[1])  # item i of epoch e is always the same sample
    assert not torch.equal(a, dynamic[2])
    dynamic.set_epoch(1)
    assert not torch.equal(a, dynamic[1])  # and a fresh one in the next epoch
    once = BitmapDataset(x, labels, ["cat"], "dynamic", seed=4, resample=False)
    once.set_epoch(3)
    assert set(once[0].unique().tolist()) == {0.0, 1.0} and torch.equal(once[0], once.images[0])
    fixed = BitmapDataset(x, labels, ["cat"], "threshold", threshold=0.4)
    assert torch.equal(fixed[0], torch.ones(784))
    grey = BitmapDataset(x, labels, ["cat"], "grey")
    torch.testing.assert_close(grey[0], torch.full((784,), 128 / 255))


def test_bad_image_shape_is_a_clear_error():
    with pytest.raises(QuickDrawError, match=r"\(B, 784\)"):
        Draw(tiny())(torch.rand(2, 100))


def test_loss_falls_in_seconds_on_cpu(cats):
    torch.manual_seed(0)
    model = Draw(tiny())
    optimizer = model.configure_optimizer(DrawTraining(optimizer="adam", lr=1e-2))
    batch = on(cats[:32])
    first = model(batch).total.item()
    for _ in range(40):
        loss = model(batch).total
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), DrawTraining().grad_clip)
        optimizer.step()
    assert model(batch).total.item() < 0.7 * first


def test_generate_is_reproducible_and_keeps_every_step():
    model = Draw(tiny(T=5)).eval()
    a = model.generate(3, generator=torch.Generator().manual_seed(7))
    b = model.generate(3, generator=torch.Generator().manual_seed(7))
    c = model.generate(3, generator=torch.Generator().manual_seed(8))
    assert a.canvases.shape == (5, 3, 28, 28) and a.write_windows.shape == (5, 3, 5)
    assert a.read_windows is None  # nothing is read when drawing from the prior
    assert torch.equal(a.canvases, b.canvases) and not torch.equal(a.canvases, c.canvases)
    assert ((a.canvases >= 0) & (a.canvases <= 1)).all()
    assert torch.equal(a.final, a.canvases[-1])
    with pytest.raises(QuickDrawError, match="n must be"):
        model.generate(0)


def test_reconstruct_records_read_and_write_windows(cats):
    trace = Draw(tiny(T=4)).reconstruct(cats[:2])
    assert trace.canvases.shape == (4, 2, 28, 28)
    assert trace.read_windows.shape == trace.write_windows.shape == (4, 2, 5)


def test_registry_finds_the_model():
    assert model_class("draw") is Draw and Draw.name == "draw" and Draw.config_class is DrawConfig
    assert Draw.settings_class is DrawTraining and Draw.output == "bitmap"


# --- data -------------------------------------------------------------------------------


def test_build_datasets_from_the_official_cat_file(shared):
    path = shared / "mirror/full/numpy_bitmap/cat.npy"
    settings = DrawTraining(max_per_category=200)
    data = build_datasets(tiny(), [path], settings)
    assert (len(data.train), len(data.valid), len(data.test)) == (186, 7, 7)  # split_sizes(200)
    assert data.state["categories"] == ["cat"] and data.state["binarize"] == "dynamic"
    train = data.train.images
    assert train.dtype == torch.float32 and train.shape[1] == 784 and 0 < train.max() <= 1
    # held-out splits are binarised once (seeded), the training split keeps grey levels
    assert set(data.test.images.unique().tolist()) == {0.0, 1.0}
    assert len(train.unique()) > 2
    again = build_datasets(tiny(), [path], settings)
    assert torch.equal(again.test.images, data.test.images)
    # the split is the one `quickdraw_tools.splits` makes, keyed by the rows themselves
    rows = np.load(path)
    split = splits.split_bitmaps(rows, "cat", seed=0)
    assert sorted(i for s in split.indices.values() for i in s) == sorted(
        set(range(3000)) - set(_duplicate_rows(rows))
    )
    kept = splits.limit(split, 200)
    torch.testing.assert_close(train * 255, torch.from_numpy(rows[kept["train"]]).float())
    other = build_datasets(tiny(), [path], DrawTraining(max_per_category=200, seed=1))
    assert not torch.equal(other.train.images, train)  # another seed holds out other rows


def _duplicate_rows(rows: np.ndarray) -> list[int]:
    seen, dupes = set(), []
    for i, r in enumerate(rows):
        key = r.tobytes()
        if key in seen:
            dupes.append(i)
        seen.add(key)
    return dupes


def test_build_datasets_uses_converts_split(tmp_path, shared):
    rows = np.load(shared / "mirror/full/numpy_bitmap/fish.npy", mmap_mode="r")[:40]
    (tmp_path / "bitmap").mkdir()
    np.save(tmp_path / "bitmap" / "fish.npy", np.array(rows))
    splits.write_sidecar(tmp_path / "bitmap" / "fish.npy", {"train": 30, "valid": 4, "test": 6}, 0)
    data = build_datasets(tiny(), [tmp_path], DrawTraining(binarize="grey"))
    assert (len(data.train), len(data.valid), len(data.test)) == (30, 4, 6)
    torch.testing.assert_close(
        data.test.images * 255, torch.from_numpy(np.array(rows[34:])).float()
    )
    (tmp_path / "bitmap" / "fish.splits.json").write_text('{"train": 30, "valid": 4, "test": 5}')
    with pytest.raises(QuickDrawError, match="do not match the 40 rows"):
        build_datasets(tiny(), [tmp_path], DrawTraining())


def test_build_datasets_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 100), dtype=np.uint8))
    with pytest.raises(QuickDrawError, match="bad.npy"):
        build_datasets(tiny(), [bad])
    with pytest.raises(QuickDrawError, match="not found|no such"):
        build_datasets(tiny(), [tmp_path / "missing.npy"])
    with pytest.raises(QuickDrawError, match="convert"):
        build_datasets(tiny(), [tmp_path / "cat.ndjson"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(QuickDrawError, match="no .npy"):
        build_datasets(tiny(), [tmp_path / "empty"])


# --- pictures --------------------------------------------------------------------------


def test_viz_writes_valid_files(tmp_path, cats):
    model = Draw(tiny(T=4)).eval()
    samples = model.generate(6, generator=torch.Generator().manual_seed(0))
    recon = model.reconstruct(cats[:3])
    steps = draw_viz.save_step_grid(samples, tmp_path / "steps.png", scale=2)
    with Image.open(steps) as im:
        assert im.format == "PNG" and im.size == (4 * 56 + 5 * 2, 6 * 56 + 7 * 2)
    grid = draw_viz.save_sample_grid(samples, tmp_path / "grid.png", cols=3)
    with Image.open(grid) as im:
        assert im.format == "PNG" and im.size == (3 * 56 + 4 * 2, 2 * 56 + 3 * 2)
    gif = draw_viz.save_gif(recon, tmp_path / "build.gif", cols=3)
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 4
    attention = draw_viz.save_attention(recon, tmp_path / "attention.png", index=1)
    with Image.open(attention) as im:
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
    colours = {tuple(p) for p in pixels}
    assert draw_viz.READ_COLOUR in colours or draw_viz.WRITE_COLOUR in colours
    with pytest.raises(QuickDrawError, match="suffix"):
        draw_viz.save_step_grid(samples, tmp_path / "steps.jpg")
    with pytest.raises(QuickDrawError, match="out of range"):
        draw_viz.save_step_grid(samples, tmp_path / "x.png", steps=[9])


def test_window_box_is_centred_for_a_centred_window():
    box = draw_viz._window_box(torch.tensor([14.5, 14.5, 2.0, 1.0, 1.0]), 4, scale=1)
    assert box == (10.0, 10.0, 18.0, 18.0)  # the 28-pixel image's centre is 14 (0-based edges)


def test_plot_curves_from_a_metrics_csv(tmp_path):
    csv = tmp_path / "metrics.csv"
    lines = ["step,split,lr,total,recon,kl,grad_norm,seconds"]
    lines += [
        f"{s},train,0.001,{300 - s},{290 - s},{10 + s / 10},1.0,{s}" for s in range(10, 60, 10)
    ]
    lines += ["50,valid,,250,240,10,,"]
    csv.write_text("\n".join(lines) + "\n")
    curves = draw_viz.load_metrics(csv)
    assert set(curves) == {"train", "valid"} and len(curves["train"]["step"]) == 5
    out = draw_viz.plot_curves(csv, tmp_path / "curves.png")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 200
    with pytest.raises(QuickDrawError, match="not found"):
        draw_viz.plot_curves(tmp_path / "nope.csv", tmp_path / "c.png")


def test_benchmark_reference_gives_the_same_losses(cats):
    """The benchmark's per-image report loop and our batched attention agree."""
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_draw.py"
    spec = importlib.util.spec_from_file_location("bench_draw", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.check_same_losses(tiny(), on(cats[:4])) < 1e-4


# --- the CLI ----------------------------------------------------------------------------


TINY_FLAGS = [
    "--T", "2", "--read-n", "2", "--write-n", "3", "--z-size", "2", "--enc-size", "8",
    "--dec-size", "8", "--max-per-category", "60", "--batch-size", "8", "--eval-every", "3",
    "--checkpoint-every", "3", "--log-every", "1", "--quiet",
]  # fmt: skip


def test_cli_trains_draw_with_its_optimiser_and_resumes(tmp_path, shared, capsys):
    from quickdraw_tools.cli import main
    from quickdraw_tools.models.trainer import load_checkpoint

    cat = str(shared / "mirror/full/numpy_bitmap/cat.npy")
    out = tmp_path / "run"
    args = ["train", "draw", "--data", cat, "--out", str(out), *TINY_FLAGS]
    assert main([*args, "--steps", "4"]) == 0
    assert "trained draw to step 4" in capsys.readouterr().out
    model, state, ckpt = load_checkpoint(out / "last.pt")
    assert isinstance(model, Draw) and model.config.T == 2 and state["categories"] == ["cat"]
    # the trainer builds the model's own optimiser: our default's Adam keeps `exp_avg`...
    assert "exp_avg" in ckpt["optimizer"]["state"][0] and model.config.learn_canvas
    for key, value in PRESETS["ours"].items():
        assert {**ckpt["train_config"], **ckpt["model_config"]}[key] == value
    # ...the report's RMSprop `square_avg`
    report = ["train", "draw", "--data", cat, "--out", str(tmp_path / "r"), *TINY_FLAGS]
    assert main([*report, "--steps", "1", "--preset", "report"]) == 0
    assert "square_avg" in load_checkpoint(tmp_path / "r" / "last.pt")[2]["optimizer"]["state"][0]
    assert main([*args, "--steps", "1", "--grad-clip", "2", "--out", str(tmp_path / "c")]) == 0
    assert load_checkpoint(tmp_path / "c" / "last.pt")[2]["train_config"]["grad_clip"] == 2
    # resuming needs no --data: the checkpoint names its files
    capsys.readouterr()
    assert main(["train", "draw", "--resume", str(out / "last.pt"), "--steps", "6", "--quiet"]) == 0
    assert f"resuming {out} from step 4" in capsys.readouterr().out
    assert load_checkpoint(out / "last.pt")[2]["step"] == 6
    apple = str(shared / "mirror/full/numpy_bitmap/apple.npy")
    resume = ["train", "draw", "--resume", str(out / "last.pt"), "--steps", "8", "--quiet"]
    assert main([*resume, "--data", apple]) == 1
    assert f"--data {apple} holds other data" in capsys.readouterr().err
    assert main([*resume, "--preset", "report"]) == 1
    assert "--resume keeps the checkpoint's settings; drop --preset" in capsys.readouterr().err
    assert main(["train", "draw", "--data", cat, "--out", str(tmp_path / "x"), "--binarize",
                 "gray", "--quiet"]) == 1  # fmt: skip
    assert "did you mean 'grey'" in capsys.readouterr().err


def test_cli_defaults_are_the_readmes_and_the_report_preset_differs_exactly(
    tmp_path, shared, capsys
):
    """`quickdraw train draw` with no model or training flags gets what the README calls our
    default (Adam, dynamic binarisation, learned initial canvas; T 20, read/write N 5, z 10,
    LSTMs 256; batch 100, constant lr 1e-3, clip 5); --preset report changes exactly the
    optimiser (RMSprop), the targets (grey levels) and the canvas (c_0 = 0)."""
    from quickdraw_tools.cli import main
    from quickdraw_tools.models.trainer import read_checkpoint

    cat = str(shared / "mirror/full/numpy_bitmap/cat.npy")
    runs = {}
    for name, preset in (("default", []), ("report", ["--preset", "report"])):
        out = tmp_path / name
        # --steps 0 writes the step-0 checkpoint: the settings a run gets, without training
        assert main(["train", "draw", "--data", cat, "--out", str(out), "--steps", "0",
                     "--quiet", *preset]) == 0  # fmt: skip
        ckpt = read_checkpoint(out / "last.pt")
        runs[name] = {**ckpt["model_config"], **ckpt["train_config"]}
        runs[name]["adam"] = "betas" in ckpt["optimizer"]["param_groups"][0]
    ours = runs["default"]
    documented = dict(T=20, read_n=5, write_n=5, z_size=10, enc_size=256, dec_size=256,
                      read_attn=True, write_attn=True, learn_canvas=True, optimizer="adam",
                      adam=True, binarize="dynamic", batch_size=100, lr=1e-3, lr_decay=1.0,
                      grad_clip=5.0)  # fmt: skip
    assert {k: ours[k] for k in documented} == documented
    differ = {k: (ours[k], runs["report"][k]) for k in ours if ours[k] != runs["report"][k]}
    assert differ == {
        "optimizer": ("adam", "rmsprop"),
        "adam": (True, False),
        "binarize": ("dynamic", "grey"),
        "learn_canvas": (True, False),
    }
    # and --help shows the defaults a run gets, and what the report preset sets instead
    with pytest.raises(SystemExit):
        main(["train", "draw", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: adam; --preset report: rmsprop)" in text
    assert "(default: True; --preset report: False)" in text


def test_log_importance_weight_averages_to_minus_the_bound(cats):
    """E_q[log p(x, z) − log q(z | x)] = −(L^x + L^z): check on many noise samples."""
    torch.manual_seed(0)
    model = Draw(tiny(T=2, z_size=2)).eval()
    batch = on(cats[:2]).repeat(2000, 1)
    with torch.no_grad():
        log_w = model.log_importance_weight(batch).view(2000, 2)
        losses = model(batch, reduction="none")
    bound = (losses.recon + losses.kl).view(2000, 2)
    stderr = log_w.std(0) / 2000**0.5 + bound.std(0) / 2000**0.5
    assert ((log_w.mean(0) + bound.mean(0)).abs() < 4 * stderr + 1e-3).all()


def test_cli_sample_and_reconstruct(tmp_path, shared, capsys):
    from quickdraw_tools.cli import main

    cat = str(shared / "mirror/full/numpy_bitmap/cat.npy")
    run = tmp_path / "run"
    train = ["train", "draw", "--data", cat, "--out", str(run), *TINY_FLAGS]
    assert main([*train, "--steps", "2"]) == 0
    ckpt = str(run / "last.pt")
    grid = tmp_path / "s.png"
    assert main(["sample", ckpt, "--n", "6", "--seed", "1", "--out", str(grid)]) == 0
    with Image.open(grid) as im, Image.open(tmp_path / "s.steps.png") as steps:
        assert im.format == steps.format == "PNG"
    npy = tmp_path / "s.npy"
    assert main(["sample", ckpt, "--n", "6", "--seed", "1", "--out", str(npy)]) == 0
    again = tmp_path / "again.npy"
    assert main(["sample", ckpt, "--n", "6", "--seed", "1", "--out", str(again)]) == 0
    bitmaps = np.load(npy)
    assert bitmaps.shape == (6, 784) and bitmaps.dtype == np.uint8
    assert np.array_equal(bitmaps, np.load(again))
    gif = tmp_path / "r.gif"
    args = ["sample", ckpt, "--mode", "reconstruct", "--input", cat, "--index", "0", "5"]
    assert main([*args, "--out", str(gif)]) == 0
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 2  # T = 2 steps
    assert main([*args, "--out", str(tmp_path / "r.png")]) == 0
    capsys.readouterr()
    assert main(["sample", ckpt, "--mode", "interpolate", "--out", str(grid)]) == 1
    assert "supports --mode sample, reconstruct, not 'interpolate'" in capsys.readouterr().err
    assert main(["sample", ckpt, "--out", str(tmp_path / "s.svg")]) == 1
    assert ".png, .gif, .npy, not 's.svg'" in capsys.readouterr().err
    assert main([*args[:3], "reconstruct", "--out", str(grid)]) == 1
    assert "needs --input" in capsys.readouterr().err
