"""sketch-rnn: the maths against known values, decoding, sampling, data, and the CLI."""

from __future__ import annotations

import csv
import gc
import math
import weakref

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from quickdraw_tools import formats
from quickdraw_tools import strokes as S
from quickdraw_tools.cli import main
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.models import recurrent
from quickdraw_tools.models import sketch_rnn as R
from quickdraw_tools.models.trainer import TrainConfig, load_checkpoint, train


def tiny(**kw) -> R.SketchRNNConfig:
    base = dict(
        max_seq_len=40, enc_size=12, dec_size=16, z_size=6, num_mixture=3,
        hyper_size=8, hyper_embedding=4,
    )  # fmt: skip
    return R.SketchRNNConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def tiny_npz(shared, tmp_path_factory):
    """60/10/10 real smiley faces with at most 40 points, as a sketch-rnn .npz."""
    records = formats.iter_ndjson(shared / "training" / "smiley face.ndjson")
    sketches = [S.drawing_to_stroke3(r["drawing"]) for r in records]
    sketches = [s for s in sketches if len(s) <= 40][:80]
    path = tmp_path_factory.mktemp("data") / "smiley face.npz"
    formats.save_sketchrnn_npz(
        path, {"train": sketches[:60], "valid": sketches[60:70], "test": sketches[70:80]}
    )
    return path


def batch_of(data, n=6):
    items = [data.train[i] for i in range(n)]
    return torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])


def random_params(b=2, t=5, m=3, seed=0) -> R.MixtureParams:
    g = torch.Generator().manual_seed(seed)
    return R.MixtureParams.from_output(torch.randn(b, t, 6 * m + 3, generator=g), m)


# --- maths -----------------------------------------------------------------------


def test_mixture_log_prob_equals_torch_distributions():
    p = random_params()
    dx, dy = torch.randn(2, 5), torch.randn(2, 5)
    sx, sy, rho = p.sigma_x, p.sigma_y, p.rho
    cov = torch.stack(
        [torch.stack([sx**2, rho * sx * sy], -1), torch.stack([rho * sx * sy, sy**2], -1)], -2
    )
    mixture = MixtureSameFamily(
        Categorical(logits=p.logit_pi),
        MultivariateNormal(torch.stack([p.mu_x, p.mu_y], -1), covariance_matrix=cov),
    )
    expected = mixture.log_prob(torch.stack([dx, dy], -1))
    torch.testing.assert_close(R.mixture_log_prob(p, dx, dy), expected, rtol=1e-5, atol=1e-5)


def test_reconstruction_loss_masks_offsets_and_divides_by_n_max():
    # one standard Gaussian and uniform pen logits: every term is known in closed form
    b, t, n_max = 1, 6, 10
    out = torch.zeros(b, t, 6 + 3)
    p = R.MixtureParams.from_output(out, 1)
    target = torch.zeros(b, t, 5)
    target[0, :3, :2] = torch.tensor([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]])
    target[0, :3, 2] = 1
    target[0, 3:, 4] = 1
    target[0, 3:, :2] = 100.0  # garbage offsets after the end must not count
    lengths = torch.tensor([3])
    offsets = sum(
        math.log(2 * math.pi) + 0.5 * (x**2 + y**2) for x, y in [(1, 2), (0.5, -1), (3, 0)]
    )
    pen = t * math.log(3)  # the pen term runs over every step, padding included
    got = R.reconstruction_loss(p, target, lengths, n_max)
    assert got.item() == pytest.approx((offsets + pen) / n_max, rel=1e-6)


def test_kl_term_and_annealing_against_hand_values():
    zero = torch.zeros(2, 4)
    torch.testing.assert_close(R.kl_divergence(zero, zero), torch.zeros(2))  # KL(N(0,I)||N(0,I))
    mu = torch.ones(1, 4)
    sigma_hat = torch.full((1, 4), math.log(2.0))  # sigma^2 = 2
    per_dim = 0.5 * (1 + 2 - 1 - math.log(2))  # 0.5 (mu^2 + sigma^2 - 1 - log sigma^2)
    assert R.kl_divergence(mu, sigma_hat).item() == pytest.approx(per_dim)
    cfg = R.SketchRNNConfig()
    assert R.kl_weight(0, cfg) == pytest.approx(0.5 * 0.01)
    assert R.kl_weight(1000, cfg) == pytest.approx(0.5 * (1 - 0.99 * 0.99995**1000))
    assert R.kl_weight(None, cfg) == 0.5 and R.kl_weight(10**7, cfg) == pytest.approx(0.5)


def test_total_floors_the_batch_kl(tiny_npz):
    cfg = tiny()
    data = R.build_datasets(cfg, [tiny_npz])
    torch.manual_seed(0)
    model = R.SketchRNN(cfg).eval()
    torch.manual_seed(1)
    losses = model(batch_of(data), step=None, reduction="none")
    assert losses.recon.shape == (6,) and losses.kl.shape == (6,)
    floored = max(losses.kl.mean().item(), cfg.kl_tolerance)
    expected = losses.recon.mean().item() + cfg.kl_weight * floored
    assert losses.total.item() == pytest.approx(expected, rel=1e-6)


# --- decoding ----------------------------------------------------------------------


@pytest.mark.parametrize("decoder", R.DECODERS)
def test_step_by_step_decoding_matches_teacher_forcing(tiny_npz, decoder):
    cfg = tiny(decoder=decoder)
    data = R.build_datasets(cfg, [tiny_npz])
    torch.manual_seed(0)
    model = R.SketchRNN(cfg).eval()
    strokes5, lengths = batch_of(data, 3)
    z = torch.randn(3, cfg.z_size)
    full, _ = model.decode(strokes5[:, :-1], z)
    state, steps = None, []
    for t in range(cfg.max_seq_len):
        p, state = model.decode(strokes5[:, t : t + 1], z, state)
        steps.append(p)
    stepped = R.MixtureParams(
        *(
            torch.cat([getattr(s, f) for s in steps], 1)
            for f in R.MixtureParams.__dataclass_fields__
        )
    )
    target = strokes5[:, 1:]
    torch.testing.assert_close(
        R.reconstruction_loss(stepped, target, lengths, cfg.max_seq_len),
        R.reconstruction_loss(full, target, lengths, cfg.max_seq_len),
        rtol=1e-5,
        atol=1e-5,
    )


def test_recurrent_dropout_is_a_drop_probability(tiny_npz):
    cfg = tiny(recurrent_dropout=0.3)
    torch.manual_seed(0)
    model = R.SketchRNN(cfg)
    x = torch.randn(2, 7, 5 + cfg.z_size)
    state = model.initial_state(None, 2, "cpu")
    model.eval()
    fused, (h, c) = model.decoder(x, state)  # eval: torch's fused LSTM
    looped, (h2, c2) = model.decoder.loop(x, state)  # the hand-written loop, dropout off
    torch.testing.assert_close(looped, fused)  # the two paths agree without dropout
    torch.testing.assert_close((h2, c2), (h, c))
    model.train()
    dropped, _ = model.decoder(x, state)  # training with dropout: the loop, units dropped
    assert not torch.allclose(dropped, fused)
    with pytest.raises(QuickDrawError, match="drop probability"):
        R.SketchRNN(tiny(recurrent_dropout=1.0))


# --- the decoders' training path against their step-by-step loop -------------------


def perturbed_decoder(decoder: str, drop: float, dtype=torch.float32):
    """A tiny decoder in training mode with its parameters moved off their initial values
    (the HyperLSTM's start equal per gate, which could hide a mixed-up gate)."""
    torch.manual_seed(0)
    cfg = tiny(decoder=decoder, recurrent_dropout=drop, dec_size=8, hyper_size=6)
    dec = R.SketchRNN(cfg).to(dtype).decoder.train()
    with torch.no_grad():
        for p in dec.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return dec


def outputs_and_grads(run, dec, x, state, masks):
    """`run`'s outputs and final state, and the gradients of a fixed random weighting of
    them with respect to x, the initial state and every parameter of `dec`."""
    leaves = [x.clone().requires_grad_(), *(s.clone().requires_grad_() for s in state)]
    out, final = run(leaves[0], tuple(leaves[1:]), masks)
    g = torch.Generator().manual_seed(2)
    loss = sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in (out, *final))
    return out, final, torch.autograd.grad(loss, [*leaves, *dec.parameters()])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("drop", [0.3, 0.0])
@pytest.mark.parametrize("decoder", R.DECODERS)
def test_training_path_matches_the_step_loop(decoder, drop, dtype):
    """With gradients each decoder runs its hand-differentiated recurrence
    (`models.recurrent`); it is the cells' `step` loop under autograd (the reference):
    the same outputs, final state and gradients of inputs, initial state and every
    parameter, with the same dropout masks drawn once from a generator."""
    dec = perturbed_decoder(decoder, drop, dtype)
    x = torch.randn(3, 7, 5 + tiny().z_size, dtype=dtype)
    state = tuple(torch.randn(3, n, dtype=dtype) for n in dec.state_sizes)
    masks = dec.dropout_masks(x, torch.Generator().manual_seed(1))
    assert (masks is None) == (drop == 0)
    fast = outputs_and_grads(dec, dec, x, state, masks)
    reference = outputs_and_grads(dec.loop, dec, x, state, masks)
    if decoder != "lstm" or drop > 0:  # else torch's fused LSTM, held to the loop too
        assert type(fast[1][0].grad_fn).__name__ in ("_LSTMBackward", "_HyperLSTMBackward")
    tolerance = {} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-5}
    torch.testing.assert_close(fast, reference, **tolerance)


@pytest.mark.parametrize("decoder", R.DECODERS)
def test_a_train_step_equals_the_step_loops(tiny_npz, decoder, monkeypatch):
    """The whole model: the same seeds give the same losses and parameter gradients with the
    training path as with every decoder step under autograd (z, masks drawn alike)."""
    cfg = tiny(decoder=decoder, recurrent_dropout=0.2)
    batch = batch_of(R.build_datasets(cfg, [tiny_npz]), 4)

    def step(model):
        torch.manual_seed(1)
        losses = model(batch, step=10)
        grads = torch.autograd.grad(losses.total, list(model.parameters()))
        return losses.recon, losses.kl, grads

    torch.manual_seed(0)
    model = R.SketchRNN(cfg).train()
    fast = step(model)
    monkeypatch.setattr(model.decoder, "forward", model.decoder.loop)
    torch.testing.assert_close(fast, step(model), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("decoder", ["layer_norm", "hyper"])
def test_training_path_backward_twice_with_retain_graph(decoder):
    """What the forward keeps travels through save_for_backward: freed after a backward,
    kept for a second one with retain_graph."""
    dec = perturbed_decoder(decoder, 0.3, torch.float64)
    x = torch.randn(2, 4, 5 + tiny().z_size, dtype=torch.float64)
    state = tuple(torch.zeros(2, n, dtype=torch.float64) for n in dec.state_sizes)
    out, _ = dec(x, state, dec.dropout_masks(x))
    first = torch.autograd.grad(out.sum(), list(dec.parameters()), retain_graph=True)
    second = torch.autograd.grad(out.sum(), list(dec.parameters()))
    torch.testing.assert_close(first, second)
    with pytest.raises(RuntimeError, match="second time"):
        torch.autograd.grad(out.sum(), list(dec.parameters()))


@pytest.mark.parametrize("decoder", R.DECODERS)  # lstm too: with dropout it is not fused
def test_training_path_frees_a_step_after_its_backward(decoder):
    """Nothing of a step outlives its backward: a training run grew by GBs in minutes when
    the Function's cell kept the unpacked outputs, whose grad_fn keeps the cell (a cycle
    through C++ that gc cannot break). The step's dropout masks are saved like the rest."""
    dec = perturbed_decoder(decoder, 0.3)
    x = torch.randn(2, 4, 5 + tiny().z_size)
    state = tuple(torch.zeros(2, n) for n in dec.state_sizes)
    masks = dec.dropout_masks(x)
    kept = [weakref.ref(m) for m in (masks if isinstance(masks, tuple) else [masks])]
    out, _ = dec(x, state, masks)
    out.sum().backward()
    del out, masks
    gc.collect()
    assert [ref() for ref in kept] == [None] * len(kept)


@pytest.mark.parametrize("decoder", R.DECODERS)
def test_training_path_under_autocast(decoder):
    """Under autocast (bfloat16 on the CPU, float16 on CUDA) the recurrence's matmuls take
    the autocast dtype and everything else stays float32: close to float32, float32 grads."""
    dec = perturbed_decoder(decoder, 0.3)
    x = torch.randn(3, 7, 5 + tiny().z_size)
    state = tuple(torch.randn(3, n) for n in dec.state_sizes)
    masks = dec.dropout_masks(x, torch.Generator().manual_seed(1))
    out, _, grads = outputs_and_grads(dec, dec, x, state, masks)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_16, _, grads_16 = outputs_and_grads(dec, dec, x, state, masks)
    assert out_16.dtype == torch.float32
    for got, want in zip([out_16, *grads_16], [out, *grads], strict=True):
        assert got.dtype == want.dtype
        assert (got - want).norm() <= 0.05 * want.norm()


def test_dropout_masks_are_seeded_drop_probabilities():
    like = torch.zeros(1)
    draw = lambda seed: recurrent.dropout_mask(  # noqa: E731
        (100, 50, 40), 0.3, like, torch.Generator().manual_seed(seed)
    )
    a = draw(0)
    assert torch.equal(a, draw(0)) and not torch.equal(a, draw(1))
    assert a.unique().tolist() == [0.0, pytest.approx(1 / 0.7)]
    assert (a == 0).float().mean().item() == pytest.approx(0.3, abs=0.01)
    dec = perturbed_decoder("hyper", 0.3)
    x = torch.zeros(2, 5, 11)
    assert [m.shape for m in dec.dropout_masks(x)] == [(5, 2, 8), (5, 2, 6)]
    assert dec.eval().dropout_masks(x) is None  # no dropout in eval mode


def test_decoders_keep_their_parameter_names():
    """Checkpoints saved before the training path was rewritten load unchanged."""
    cell = {"w_x.weight", "w_h.weight", "ln_gates.gain", "ln_gates.bias", "ln_c.gain", "ln_c.bias"}
    expected = {
        "lstm": {f"lstm.{n}_l0" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")},
        "layer_norm": cell,
        "hyper": cell
        | {f"hyper.{n}" for n in cell}
        | {"embed.weight", "embed.bias", "scale_x", "scale_h", "bias_z", "bias"},
    }
    for decoder, names in expected.items():
        assert set(R.SketchRNN(tiny(decoder=decoder)).decoder.state_dict()) == names


# --- sampling and latent operations -------------------------------------------------


@pytest.mark.parametrize("conditional", [True, False])
def test_seeded_sampling_is_reproducible(conditional):
    torch.manual_seed(0)
    model = R.SketchRNN(tiny(conditional=conditional))
    draw = lambda seed: model.sample(  # noqa: E731
        5, temperature=0.7, generator=torch.Generator().manual_seed(seed), scale=3.0
    )
    a, b, c = draw(1), draw(1), draw(2)
    assert len(a) == 5 and all(s.ndim == 2 and s.shape[1] == 3 for s in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(x.shape == y.shape and np.allclose(x, y) for x, y in zip(a, c, strict=True))
    with pytest.raises(QuickDrawError, match="temperature"):
        model.sample(1, temperature=0)


def test_reconstruct_interpolate_analogy_complete(tiny_npz):
    cfg = tiny()
    torch.manual_seed(0)
    model = R.SketchRNN(cfg)
    sketches = formats.load_sketchrnn_npz(tiny_npz)["test"]
    gen = torch.Generator().manual_seed(0)
    assert len(model.reconstruct(sketches[0], 5.0, (0.1, 1.0), gen)) == 2
    path = model.interpolate(sketches[0], sketches[1], 5.0, steps=4, generator=gen)
    assert len(path) == 4
    with pytest.raises(QuickDrawError, match="steps >= 2"):
        model.interpolate(sketches[0], sketches[1], 5.0, steps=1)
    za, zb = model.encode_sketches(sketches[:2], 5.0)
    for t in (0.0, 1.0):  # slerp starts at a and ends at b
        torch.testing.assert_close(R.slerp(za, zb, t), [za, zb][int(t)])
    assert R.slerp(za, zb, 0.5).norm() > R.lerp(za, zb, 0.5).norm() - 1e-6
    assert len(model.analogy(*sketches[:3], 5.0, n=2, generator=gen)) == 2
    k = 5
    endings = model.complete(sketches[0][:k], 5.0, n=3, generator=gen)
    assert len(endings) == 3
    for e in endings:  # the given points are kept as they were
        np.testing.assert_array_equal(e[:k], sketches[0][:k].astype(np.float32))
    # a partial sketch already N_max long has no room left: max_len 0 used to mean N_max more
    full = np.tile(np.float32([[1, 0, 0]]), (cfg.max_seq_len, 1))
    assert [len(e) for e in model.complete(full, 5.0, n=2, generator=gen)] == [cfg.max_seq_len] * 2


def test_batched_sampling_uses_one_decoder_call_per_step(monkeypatch):
    torch.manual_seed(0)
    model = R.SketchRNN(tiny())
    calls = []
    original = model.decode
    monkeypatch.setattr(model, "decode", lambda *a, **k: calls.append(1) or original(*a, **k))
    out = model.sample(8, generator=torch.Generator().manual_seed(0), max_len=10)
    assert len(out) == 8 and len(calls) <= 10


# --- data ---------------------------------------------------------------------------


def test_build_datasets_scale_from_train_and_seeded_augmentation(tiny_npz):
    cfg = tiny()
    data = R.build_datasets(cfg, [tiny_npz], R.SketchRNNTraining(seed=3))
    splits = formats.load_sketchrnn_npz(tiny_npz)
    expected = S.normalizing_scale_factor([S.clip_offsets(s) for s in splits["train"]])
    assert data.state["scale_factor"] == pytest.approx(expected)
    big, length = data.valid[0]
    assert big.shape == (cfg.max_seq_len + 1, 5) and length.item() == len(splits["valid"][0])
    np.testing.assert_allclose(
        big[1 : length + 1, :2].numpy(), splits["valid"][0][:, :2] / expected, rtol=1e-6
    )
    a = data.train[4][0]
    b = data.train[4][0]
    data.train.set_epoch(1)
    c = data.train[4][0]
    assert torch.equal(a, b) and not torch.equal(a, c)  # seeded per (seed, epoch, index)
    with pytest.raises(QuickDrawError, match="no train sketches"):
        R.build_datasets(tiny(max_seq_len=2), [tiny_npz])


def test_loss_falls_on_a_tiny_config(tiny_npz, tmp_path):
    cfg = tiny(recurrent_dropout=0.0)
    torch.manual_seed(0)
    model = R.SketchRNN(cfg)
    data = R.build_datasets(cfg, [tiny_npz])
    tc = TrainConfig(steps=60, batch_size=20, lr=5e-3, eval_every=30, log_every=1)
    result = train(model, data, tc, tmp_path, progress=False)
    with open(result.metrics, newline="") as f:
        recon = [float(r["recon"]) for r in csv.DictReader(f) if r["split"] == "train"]
    assert np.mean(recon[-10:]) < 0.8 * np.mean(recon[:10])
    loaded, state, ckpt = load_checkpoint(result.last_checkpoint)
    assert isinstance(loaded, R.SketchRNN) and not loaded.training
    assert state["scale_factor"] == data.state["scale_factor"] and ckpt["step"] == 60


# --- CLI ----------------------------------------------------------------------------

TINY_FLAGS = [
    "--max-seq-len", "40", "--enc-size", "8", "--dec-size", "8", "--z-size", "4",
    "--num-mixture", "2", "--batch-size", "10", "--eval-every", "2", "--checkpoint-every", "2",
    "--log-every", "1", "--quiet",
]  # fmt: skip


def train_rows(run):
    with open(run / "metrics.csv", newline="") as f:
        return [(r["step"], r["total"]) for r in csv.DictReader(f) if r["split"] == "train"]


def test_cli_train_resume_and_sample(tiny_npz, tmp_path, capsys):
    data = ["--data", str(tiny_npz)]
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert (
        main(["train", "sketch-rnn", *data, "--out", str(full), "--steps", "4", *TINY_FLAGS]) == 0
    )
    assert main(["train", "sketch-rnn", *data, "--out", str(cut), "--steps", "2", *TINY_FLAGS]) == 0
    args = ["train", "sketch-rnn", *data, "--out", str(cut), "--resume", "--steps", "4", "--quiet"]
    assert main(args) == 0
    assert train_rows(full) == train_rows(cut)  # recurrent dropout and augmentation included
    assert "trained sketch-rnn to step 4" in capsys.readouterr().out

    ckpt = str(full / "best.pt")
    grid = tmp_path / "grid.svg"
    assert main(["sample", ckpt, "--n", "4", "--seed", "0", "--out", str(grid)]) == 0
    first = grid.read_text()
    assert first.count("<g ") == 4
    assert main(["sample", ckpt, "--n", "4", "--seed", "0", "--out", str(grid)]) == 0
    assert grid.read_text() == first  # same seed, same picture
    for mode in ("reconstruct", "interpolate", "analogy", "complete"):
        out = tmp_path / f"{mode}.ndjson"
        args = ["sample", ckpt, "--mode", mode, "--input", str(tiny_npz), "--out", str(out)]
        assert main([*args, "--n", "2", "--steps", "3"]) == 0
        assert len(list(formats.iter_ndjson(out))) > 2


def test_cli_errors_are_one_line(tiny_npz, tmp_path, capsys):
    run = ["train", "sketch-rnn", "--data", str(tiny_npz), "--out", str(tmp_path / "r")]
    assert main([*run, "--decoder", "gru", *TINY_FLAGS]) == 1
    assert "unknown decoder 'gru'" in capsys.readouterr().err
    assert main(["train", "sketch-rnn", "--data", str(tmp_path / "no.npz"), "--out", "x"]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "none.pt"), "--out", "x.svg"]) == 1
    assert main([*run, "--steps", "1", *TINY_FLAGS]) == 0
    ckpt = str(tmp_path / "r" / "last.pt")
    with pytest.raises(SystemExit):  # argparse's choices: usage and exit status 2
        main(["sample", ckpt, "--mode", "dream", "--out", "x.svg"])
    assert "invalid choice: 'dream'" in capsys.readouterr().err
    assert main(["sample", ckpt, "--mode", "reconstruct", "--out", "x.svg"]) == 1
    assert "needs --input" in capsys.readouterr().err
    assert main(["sample", ckpt, "--out", str(tmp_path / "x.npy")]) == 1
    assert "--out must end in .svg, .png, .gif, .ndjson, not 'x.npy'" in capsys.readouterr().err
    # these were tracebacks (torch.stack of an empty list; an empty grid)
    assert main(["sample", ckpt, "--cols", "-1", "--out", str(tmp_path / "x.svg")]) == 1
    assert "--cols must be 1 to 10,000, got -1" in capsys.readouterr().err
    assert main(["sample", ckpt, "--temperature", "0.5", "0", "--out", "x.svg"]) == 1
    assert "--temperature must be from 0.001 to 100 (lower is tidier), got 0.0" in (
        capsys.readouterr().err
    )
    pair = ["--input", str(tiny_npz), "--index", "0", "1", "--out", str(tmp_path / "x.svg")]
    assert main(["sample", ckpt, "--mode", "interpolate", "--steps", "0", *pair]) == 1
    assert "--steps must be 2 to 10,000, got 0" in capsys.readouterr().err
    assert main([*run, "--resume", "--z-size", "9"]) == 1
    assert "drop the model flag" in capsys.readouterr().err


def test_encoder_reads_only_each_sketch_like_packed_sequences(tiny_npz):
    cfg = tiny()
    data = R.build_datasets(cfg, [tiny_npz])
    torch.manual_seed(0)
    model = R.SketchRNN(cfg)
    strokes5, lengths = batch_of(data, 5)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        strokes5[:, 1:], lengths, batch_first=True, enforce_sorted=False
    )
    _, (h, _) = model.encoder(packed)
    h = torch.cat([h[0], h[1]], -1)
    mu, sigma_hat = model.encode(strokes5, lengths)
    torch.testing.assert_close(mu, model.to_mu(h), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sigma_hat, model.to_sigma_hat(h), rtol=1e-5, atol=1e-6)
