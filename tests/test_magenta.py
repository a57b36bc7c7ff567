"""Google Magenta's .gen.json models: read into our sketch-rnn, used by every command that takes a
checkpoint, written back from ours, and bad files refused in one line.

(That the numbers are Magenta's own JS's is tests/test_magenta_js.py.)
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_checkpoint

from quickdraw_tools.cli import main
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.models.checkpoint import load_checkpoint, read_checkpoint
from quickdraw_tools.models.magenta import (
    MAX_BYTES,
    gen_json_value,
    load_magenta,
    read_gen_json,
)
from quickdraw_tools.models.sketch_rnn import (
    MAGENTA_EVAL,
    MixtureParams,
    magenta_eval_loss,
    magenta_js_temperature,
    mixture_log_prob,
)

ROOT = Path(__file__).resolve().parents[1]
MAGENTA = ROOT.parent / "shared" / "magenta"
SHEEP = MAGENTA / "sheep.gen.json"
FILES = {  # file -> (category, N_max, scale factor), as ../shared/magenta/README.md lists them
    "sheep": ("sheep", 156, 63.0983),
    "monkey": ("monkey", 182, 66.1884),
    "bird": ("bird", 129, 71.3754),
    "rabbit": ("rabbit", 155, 61.0124),
    "key": ("key", 110, 60.9027),
    "palm_tree": ("palm tree", 151, 75.4614),
}


@pytest.fixture(scope="module")
def sheep_npz(shared, tmp_path_factory) -> Path:
    """The mirror's 25 real sheep, converted: 15 train, 5 valid, 5 test."""
    out = tmp_path_factory.mktemp("sheep")
    args = ["--formats", "sketchrnn", "--split-sizes", "15,5,5", "--out", str(out), "--quiet"]
    assert main(["convert", "sheep", "--base-url", str(shared / "mirror"), *args]) == 0
    return out / "sketchrnn" / "sheep.npz"


@pytest.fixture(scope="module")
def sheep_text() -> list:
    return json.loads(SHEEP.read_text())


# --- reading --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_the_six_models_load_as_our_unconditional_lstm(name):
    category, n_max, scale = FILES[name]
    model, state = load_magenta(MAGENTA / f"{name}.gen.json")
    cfg = model.config
    assert (cfg.conditional, cfg.decoder, cfg.dec_size, cfg.num_mixture) == (False, "lstm", 512, 20)
    assert cfg.max_seq_len == n_max and state["scale_factor"] == scale
    assert state["categories"] == [category]
    assert model.sample_modes == ("sample", "complete") and not model.training
    assert sum(p.numel() for p in model.parameters()) == 512 * 123 + 123 + 517 * 2048 + 2 * 2048


def test_the_mapping_is_tensorflows_basic_lstm_cell(sheep_text):
    """One step by hand from the file's own arrays (TF's gate order i, j, f, o, forget bias 1,
    the pen logits first) equals our decoder's first step."""
    info, dims, weights = sheep_text
    arrays = [
        np.frombuffer(base64.b64decode(w), "<i2").astype(np.float64).reshape(d) * 10 / 32767
        for w, d in zip(weights, dims, strict=True)
    ]
    out_w, out_b, w_x, w_h, b = arrays
    x = np.array([0.3, -0.2, 1, 0, 0])  # one input after the start token
    h = c = np.zeros(512)
    for inp in (np.array([0, 0, 1, 0, 0]), x):
        i, j, f, o = np.split(inp @ w_x + h @ w_h + b, 4)
        sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        c = c * sig(f + 1.0) + sig(i) * np.tanh(j)
        h = np.tanh(c) * sig(o)
    y = h @ out_w + out_b
    model, _ = load_magenta(SHEEP)
    with torch.no_grad():
        inputs = torch.tensor(np.array([[[0, 0, 1, 0, 0], x]]), dtype=torch.float32)
        p, _ = model.decode(inputs, None)
    assert np.allclose(p.pen_logits[0, -1].numpy(), y[:3], atol=1e-4)
    assert np.allclose(p.logit_pi[0, -1].numpy(), y[3:23], atol=1e-4)
    assert np.allclose(p.sigma_y[0, -1].log().numpy(), y[83:103], atol=1e-4)
    assert np.allclose(p.rho[0, -1].numpy(), np.tanh(y[103:123]), atol=1e-4)


def test_read_checkpoint_takes_a_gen_json_so_every_command_does():
    ckpt = read_checkpoint(SHEEP)
    assert ckpt["model"] == "sketch-rnn" and ckpt["step"] == 0
    assert ckpt["model_config"]["max_seq_len"] == 156
    model, state, _ = load_checkpoint(SHEEP)
    assert state["scale_factor"] == 63.0983


# --- writing --------------------------------------------------------------------------------


def test_export_of_a_loaded_model_gives_the_file_back_exactly(sheep_text, tmp_path, capsys):
    out = tmp_path / "again.gen.json"
    assert main(["export", str(SHEEP), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    info, dims, weights = json.loads(out.read_text())
    assert dims == sheep_text[1] and weights == sheep_text[2]
    for key in ("name", "max_seq_len", "scale_factor", "mode", "version"):
        assert info[key] == sheep_text[0][key]


def test_export_of_a_model_trained_here_keeps_it_within_int16(tmp_path, sheep_npz):
    run = train_checkpoint(tmp_path / "run", "sketch-rnn", UNCONDITIONAL, [sheep_npz], steps=3)
    out = tmp_path / "ours.gen.json"
    assert main(["export", str(run), "--out", str(out)]) == 0
    mine, state, _ = load_checkpoint(run)
    back, back_state = load_magenta(out)
    assert back_state["scale_factor"] == state["scale_factor"]
    assert back.config.max_seq_len == mine.config.max_seq_len == 60
    assert back_state["categories"] == ["sheep"]
    ours, theirs = mine.state_dict(), back.state_dict()
    for weights in (ours, theirs):  # TF's LSTM has one bias, torch's two
        lstm = "decoder.lstm."
        weights[lstm + "bias_ih_l0"] = weights[lstm + "bias_ih_l0"] + weights.pop(
            lstm + "bias_hh_l0"
        )
    for name, w in ours.items():
        assert torch.allclose(theirs[name], w, atol=10 / 32767 / 2 + 1e-6), name


UNCONDITIONAL = dict(max_seq_len=60, dec_size=16, conditional=False, num_mixture=20)


@pytest.mark.parametrize(
    ("config", "why"),
    [
        (dict(UNCONDITIONAL, conditional=True, enc_size=8, z_size=4), "conditional"),
        (dict(UNCONDITIONAL, decoder="layer_norm"), "its decoder is 'layer_norm'"),
        (dict(UNCONDITIONAL, decoder="hyper", hyper_size=8, hyper_embedding=4), "'hyper'"),
        (dict(UNCONDITIONAL, num_mixture=5), "M = 5 mixture components"),
    ],
)
def test_export_refuses_what_the_format_cannot_hold(tmp_path, sheep_npz, config, why, capsys):
    run = train_checkpoint(tmp_path / "run", "sketch-rnn", config, [sheep_npz])
    out = tmp_path / "x.gen.json"
    assert main(["export", str(run), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert why in err and "cannot export" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_export_refuses_weights_beyond_the_format_and_other_suffixes(tmp_path, capsys):
    model, state = load_magenta(SHEEP)
    with torch.no_grad():
        model.to_params.bias[0] = 12.5
    with pytest.raises(QuickDrawError, match=r"magnitude 12.5; the format's int16 holds"):
        gen_json_value(model, state)
    assert main(["export", str(SHEEP), "--out", str(tmp_path / "x.onnx")]) == 1
    assert "the suffix names the format; known: .gen.json" in capsys.readouterr().err


# --- every command that takes a checkpoint --------------------------------------------------


def test_sample_every_unconditional_mode(tmp_path, sheep_npz, capsys):
    out = tmp_path / "s.ndjson"
    args = ["sample", str(SHEEP), "--n", "3", "--seed", "1", "--temperature", "0.4"]
    assert main([*args, "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all(r["word"] == "sheep" and r["drawing"] for r in rows)
    js = tmp_path / "js.ndjson"
    assert main([*args, "--temperature-convention", "magenta-js", "--out", str(js)]) == 0
    assert js.read_text() != out.read_text()
    done = tmp_path / "c.svg"
    assert main(["sample", str(SHEEP), "--mode", "complete", "--input", f"{sheep_npz}",
                 "--n", "2", "--out", str(done)]) == 0  # fmt: skip
    assert done.read_text().count("<polyline") > 10
    capsys.readouterr()
    assert main(["sample", str(SHEEP), "--mode", "reconstruct", "--input", str(sheep_npz),
                 "--out", str(tmp_path / "r.svg")]) == 1  # fmt: skip
    assert "supports --mode sample, complete" in capsys.readouterr().err
    run = train_checkpoint(tmp_path / "run", "sketch-rnn", dict(UNCONDITIONAL, conditional=True,
                           enc_size=8, z_size=4), [sheep_npz])  # fmt: skip
    js_flag = ["--temperature-convention", "magenta-js", "--out", str(tmp_path / "r.svg")]
    assert main(["sample", str(run), "--mode", "reconstruct", "--input", str(sheep_npz),
                 *js_flag]) == 1  # fmt: skip
    assert "applies to sketch-rnn's modes sample and complete" in capsys.readouterr().err


def test_magenta_js_temperature_is_the_js_default():
    model, _ = load_magenta(SHEEP)
    assert magenta_js_temperature(0.65) == pytest.approx(0.825)
    assert magenta_js_temperature(1.0) == 1.0

    def draw(**kwargs):
        return model.sample(2, temperature=1.0, generator=torch.Generator().manual_seed(0),
                            scale=50.0, **kwargs)  # fmt: skip

    one, same, js = draw(), draw(softmax_temperature=1.0), draw(softmax_temperature=0.6)
    assert all(np.array_equal(a, b) for a, b in zip(one, same, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(one, js, strict=True))


def test_evaluate_reports_the_papers_l_r_and_magentas_figure(sheep_npz, capsys):
    assert main(["evaluate", str(SHEEP), "--data", str(sheep_npz), "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    overall = report["overall"]
    assert report["checkpoint"] == str(SHEEP) and overall["n"] == 5
    assert overall["L_KL"] == 0.0  # unconditional: the bound is log p(x) itself
    assert overall["iw_nll_nats"] == pytest.approx(156 * overall["L_R"], rel=1e-5)
    assert math.isfinite(overall[MAGENTA_EVAL]) and overall[MAGENTA_EVAL] != overall["L_R"]
    assert report["dropped"]["dropped"] == 0


def test_magentas_figure_is_its_r_cost_with_the_pen_masked_after_the_end():
    torch.manual_seed(0)
    b, t, m = 2, 6, 3
    y = torch.randn(b, t, 6 * m + 3)
    p = MixtureParams.from_output(y, m)
    target = torch.zeros(b, t, 5)
    target[..., :2] = torch.randn(b, t, 2)
    lengths = torch.tensor([4, 6])
    for k, n in enumerate(lengths.tolist()):
        target[k, :n, 2] = 1
        target[k, n:, 4] = 1
    got = magenta_eval_loss(p, target, lengths, n_max=10)
    density = mixture_log_prob(p, target[..., 0], target[..., 1]).exp()
    pen = -(torch.log_softmax(p.pen_logits, -1) * target[..., 2:]).sum(-1)
    for k, n in enumerate(lengths.tolist()):
        want = (-torch.log(density[k, :n] + 1e-6) + pen[k, :n]).sum() / 10
        assert float(got[k]) == pytest.approx(float(want), rel=1e-5)


def test_grade_serve_takes_it(tmp_path, shared, capsys):
    from grading_support import start_server, stop

    db = tmp_path / "g.sqlite"
    real = shared / "mirror" / "full" / "simplified" / "sheep.ndjson"
    proc, url = start_server(["--real", str(real), "--generated", str(SHEEP), "--per-source",
                              "2", "--db", str(db)], timeout=120)  # fmt: skip
    stop(proc)
    assert url.startswith("http://127.0.0.1:")
    from quickdraw_tools.eval.grading.store import GradeStore

    with GradeStore(db, readonly=True) as store:
        sources = sorted(s.source for s in store.sketches().values())
    assert sources.count("sheep") == 2, sources


def test_judge_score_takes_it(tmp_path, shared, capsys):
    from quickdraw_tools.eval.judge import JudgeConfig, JudgeTraining, train_judge
    from quickdraw_tools.formats import load_sketchrnn_npz, write_ndjson
    from quickdraw_tools.strokes import stroke3_to_drawing

    # sheep enough for the judge's split: The Sheep Market's, as drawings of "sheep"
    flock = load_sketchrnn_npz(shared / "other" / "aaron_sheep.npz")["train"][:200]
    sheep = tmp_path / "sheep.ndjson"
    write_ndjson(sheep, [{"word": "sheep", "drawing": stroke3_to_drawing(s)} for s in flock])
    judge = tmp_path / "judge.pt"
    monkeys = shared / "mirror" / "full" / "simplified" / "monkey.ndjson"
    train_judge([sheep, monkeys], judge,
                JudgeConfig(channels=8, feature_size=16), JudgeTraining(epochs=1),
                device="cpu", progress=False)  # fmt: skip
    assert main(["judge", "score", str(judge), str(SHEEP), "--n", "6", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["sources"]
    assert row["category"] == "sheep" and row["n"] == 6 and row["recognizability"] is not None


def test_train_init_from_fine_tunes_googles_weights(tmp_path, sheep_npz, capsys):
    out = tmp_path / "tuned"
    args = ["--out", str(out), "--steps", "1", "--batch-size", "4", "--quiet"]
    assert (
        main(["train", "sketch-rnn", "--init-from", str(SHEEP), "--data", str(sheep_npz), *args])
        == 0
    )
    printed = capsys.readouterr().out
    assert f"from the weights of {SHEEP}" in printed and "scale_factor 63.0983" in printed
    ckpt = read_checkpoint(out / "last.pt")
    assert ckpt["data_state"]["scale_factor"] == 63.0983 and ckpt["step"] == 1
    assert ckpt["model_config"]["dec_size"] == 512 and not ckpt["model_config"]["conditional"]
    assert main(["export", str(out / "last.pt"), "--out", str(tmp_path / "t.gen.json")]) == 0


# --- bad files ------------------------------------------------------------------------------


def bad_files(tmp_path: Path, text: list) -> dict[str, tuple[Path, str]]:
    """name -> (a damaged copy of sheep.gen.json, what the refusal must say)."""
    info, dims, weights = text
    raw = json.dumps(text)
    cases: dict[str, tuple[object, str]] = {
        "truncated": (raw[: len(raw) // 2], "not a complete JSON file (truncated"),
        "bad-base64": (
            [info, dims, [weights[0], "!" * len(weights[1]), *weights[2:]]],
            "weights[1] (output bias) is not valid base64",
        ),  # fmt: skip
        "short-weights": (
            [info, dims, [weights[0], weights[1][:-8], *weights[2:]]],
            "weights[1] (output bias) holds",
        ),  # fmt: skip
        "dims": (
            [info, [[512, 123], [123], [5, 2048], [512, 1024], [2048]], weights],
            "LSTM recurrent kernel shape [512, 1024]",
        ),  # fmt: skip
        "no-scale": (
            [{k: v for k, v in info.items() if k != "scale_factor"}, dims, weights],
            "info has no 'scale_factor'",
        ),  # fmt: skip
        "no-n-max": (
            [{k: v for k, v in info.items() if k != "max_seq_len"}, dims, weights],
            "info has no 'max_seq_len'",
        ),  # fmt: skip
        "nan-weights": (raw.replace('"' + weights[1] + '"', "[NaN, 1.0]"), "it holds NaN"),
        "nan-scale": (raw.replace('"scale_factor": 63.0983', '"scale_factor": NaN'), "NaN"),
        "not-a-model": ([1, 2], "a .gen.json is a JSON array [info, dims, weights]"),
    }
    out = {}
    for name, (value, why) in cases.items():
        path = tmp_path / f"{name}.gen.json"
        path.write_text(value if isinstance(value, str) else json.dumps(value))
        out[name] = (path, why)
    huge = tmp_path / "huge.gen.json"
    with open(huge, "wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: nothing is read
    out["huge"] = (huge, "larger than any sketch-rnn model")
    return out


def test_bad_files_are_refused_in_one_line_naming_file_and_problem(tmp_path, sheep_text, capsys):
    for name, (path, why) in bad_files(tmp_path, sheep_text).items():
        with pytest.raises(QuickDrawError) as e:
            read_gen_json(path)
        assert str(path) in str(e.value) and why in str(e.value), (name, str(e.value))
        out = tmp_path / f"{name}.svg"
        assert main(["sample", str(path), "--out", str(out)]) == 1, name
        err = capsys.readouterr().err
        assert why in err and len(err.strip().splitlines()) == 1, (name, err)
        assert not out.exists(), name


# --- the README's commands ------------------------------------------------------------------


# flags the test adds to a README command (by its first two words) so it runs in seconds
def test_the_readme_commands_for_googles_models_run(shared, tmp_path, monkeypatch, capsys):
    """The README's block that begins "# Google's pretrained sketch-rnn models", run in order in
    one folder beside a `shared` like the checkout's, exactly as written."""
    import re
    import shlex

    text = (ROOT / "README.md").read_text()
    (block,) = [
        b for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S) if b.startswith("# Google's")
    ]
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    commands = [c for c in commands if c]
    assert len(commands) >= 5 and all(c[0] == "quickdraw" for c in commands)
    (tmp_path / "shared").symlink_to(shared.parent)
    work = tmp_path / "checkout"
    work.mkdir()
    monkeypatch.chdir(work)
    for argv in commands:
        assert main(argv[1:]) == 0, argv
    assert (work / "sheep-tuned.gen.json").is_file() and (work / "google-sheep.svg").is_file()
