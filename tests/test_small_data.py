"""A newcomer's first runs on the sample data: a training split smaller than one batch, a run
that fails before its first step, a --time-limit that ends a run (issue 22, items 1 and 6)."""

from __future__ import annotations

import shlex
from dataclasses import replace

import pytest

from quickdraw_tools.cli import main
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.models import SAMPLING_TEMPERATURE, sketch_rnn
from quickdraw_tools.models.checkpoint import read_checkpoint
from quickdraw_tools.models.trainer import prepare_run, train

TINY = ["--enc-size", "8", "--dec-size", "8", "--z-size", "4", "--num-mixture", "2",
        "--max-seq-len", "150", "--eval-every", "1000", "--quiet"]  # fmt: skip


@pytest.fixture
def cat_npz(shared, tmp_path):
    """The mirror's 25 cats, converted as the README does: 23 train, 1 valid, 1 test."""
    source = shared / "mirror" / "full" / "simplified" / "cat.ndjson"
    assert main(["convert", str(source), "--out", str(tmp_path / "data"), "--quiet"]) == 0
    return tmp_path / "data" / "sketchrnn" / "cat.npz"


def test_a_split_smaller_than_a_batch_trains_on_what_there_is(cat_npz, tmp_path, capsys):
    run = tmp_path / "runs" / "cat"
    argv = ["train", "sketch-rnn", "--data", str(cat_npz), "--out", str(run), "--steps", "2"]
    assert main([*argv, *TINY]) == 0  # the default batch of 100, on 23 drawings
    out = capsys.readouterr().out
    assert (
        "the training split has 23 examples, fewer than one batch of 100: training on batches "
        "of 23, all of them (--batch-size 23)" in out
    )
    ckpt = read_checkpoint(run / "last.pt")
    assert ckpt["step"] == 2 and ckpt["train_config"]["batch_size"] == 23
    # resumed, the run keeps its own batch size
    assert main(["train", "sketch-rnn", "--resume", str(run / "last.pt"), "--steps", "3"]) == 0
    assert read_checkpoint(run / "last.pt")["train_config"]["batch_size"] == 23


def test_a_run_refused_before_its_first_step_leaves_nothing(cat_npz, tmp_path):
    plan = prepare_run(
        "sketch-rnn",
        {"enc_size": 8, "dec_size": 8, "z_size": 4, "num_mixture": 2, "max_seq_len": 150},
        data=[cat_npz],
        out=tmp_path / "run",
    )
    too_big = replace(plan.settings, batch_size=24)  # the library's train() is given it
    with pytest.raises(QuickDrawError, match="23 examples, fewer than one batch of 24"):
        train(plan.model, plan.data, too_big, plan.out_dir, progress=False)
    assert not (tmp_path / "run").exists()  # no last.pt at step 0 that blocks a retry
    result = train(plan.model, plan.data, replace(plan.settings, steps=1), plan.out_dir,
                   progress=False)  # fmt: skip
    assert result.step == 1


def nan_from(step_at: int, monkeypatch) -> None:
    """sketch-rnn's loss is NaN from training step `step_at` on."""
    real_forward = sketch_rnn.SketchRNN.forward

    def forward(self, batch, step=None, reduction="mean"):
        losses = real_forward(self, batch, step, reduction)
        if step is not None and step >= step_at:
            losses.total = losses.total * float("nan")
        return losses

    monkeypatch.setattr(sketch_rnn.SketchRNN, "forward", forward)


def test_a_run_that_diverges_at_its_first_step_leaves_nothing(cat_npz, tmp_path, monkeypatch,
                                                              capsys):  # fmt: skip
    run = tmp_path / "runs" / "cat"
    run.parent.mkdir()
    (run.parent / "notes.txt").write_text("mine")  # a folder the user made stays as it was
    with monkeypatch.context() as patch:
        nan_from(0, patch)
        args = ["train", "sketch-rnn", "--data", str(cat_npz), "--out", str(run), "--steps", "2"]
        assert main([*args, *TINY]) == 1
    err = capsys.readouterr().err
    assert (
        "loss is nan at step 0; stopped without saving it. No step was completed, so "
        "nothing of the run is kept; start it again with a lower --lr or --grad-clip" in err
    )
    assert not run.exists() and (run.parent / "notes.txt").read_text() == "mine"
    assert main([*args, *TINY]) == 0  # the same command, run again, just works
    assert read_checkpoint(run / "last.pt")["step"] == 2


def test_an_error_starts_on_its_own_line_after_the_progress_bar(cat_npz, tmp_path, monkeypatch,
                                                                capsys):  # fmt: skip
    nan_from(1, monkeypatch)
    run = tmp_path / "run"
    argv = ["train", "sketch-rnn", "--data", str(cat_npz), "--out", str(run), "--steps", "3"]
    assert main([*argv, *[a for a in TINY if a != "--quiet"]]) == 1  # with its bar
    err = capsys.readouterr().err
    assert "train sketch-rnn" in err  # the bar was drawn...
    assert "\nquickdraw train: error: loss is nan at step 1" in err  # ...and then ended its line
    assert read_checkpoint(run / "last.pt")["step"] == 0  # the last good checkpoint stays


def test_time_limit_says_where_it_stopped_and_how_to_go_on(cat_npz, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "sketch-rnn", "--data", str(cat_npz), "--out", str(run)]
    assert main([*argv, "--time-limit", "0.5", *TINY]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    step = read_checkpoint(run / "last.pt")["step"]
    assert 1 <= step < 10_000
    command = f"quickdraw train sketch-rnn --resume {run / 'last.pt'}"
    assert last == (
        f"stopped at the --time-limit of 0.5 s at step {step} of 10000; continue with "
        f"(another 0.5 s; --time-limit 0 for none): {command}"
    )
    # the command printed continues the run
    assert main([*shlex.split(command)[1:], "--steps", str(step + 1)]) == 0
    assert read_checkpoint(run / "last.pt")["step"] == step + 1


def test_one_sampling_temperature_default_everywhere():
    from quickdraw_tools.cli import build_parser

    parser = build_parser()
    sample = parser.parse_args(["sample", "x.pt", "--out", "x.svg"])
    score = parser.parse_args(["judge", "score", "j.pt", "x.pt"])
    serve = parser.parse_args(["grade", "serve", "--db", "x.sqlite"])
    assert sample.temperature == [SAMPLING_TEMPERATURE]
    assert score.temperature == serve.temperature == SAMPLING_TEMPERATURE
    assert serve.seed == 0  # a concrete seed, recorded with the session


def test_grade_serve_builds_the_balanced_pool_a_small_test_split_allows(cat_npz, tmp_path):
    from conftest import train_checkpoint

    from quickdraw_tools.eval.grading.sources import build_session, parse_source

    tiny = {"enc_size": 8, "dec_size": 8, "z_size": 4, "num_mixture": 2, "max_seq_len": 150}
    model = parse_source(str(train_checkpoint(tmp_path / "run", "sketch-rnn", tiny, [cat_npz])))
    real = parse_source(f"{cat_npz}:test")  # one drawing
    session = build_session(real, [model], 50, seed=0, examples_at_most=True,
                            per_source_at_most=True)  # fmt: skip
    assert len(session.pool) == 2 and session.spec["per_source"] == 1
    assert session.spec["notes"] == [
        f"the real source {real} has 1 drawing: 1 sketch per generated source, not 50, so that "
        "half the pool is real (a bigger real source, such as another split, gives more)"
    ]
    # a count the user gave is honoured or refused, saying how to get a valid pool
    with pytest.raises(QuickDrawError, match="1 drawing, fewer than the 50 generated ones; "
                       "lower --per-source to 1 or give a bigger real source"):  # fmt: skip
        build_session(real, [model], 50, seed=0)
    with pytest.raises(QuickDrawError, match="fewer than the 2 generated sources"):
        build_session(real, [model, model], 50, seed=0, per_source_at_most=True)
