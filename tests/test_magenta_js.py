"""Magenta's own JavaScript is the oracle for the .gen.json format.

`@magenta/sketch` 0.2.0 runs in node (`scripts/magenta_js/`, installed by scripts/setup.sh with
`npm ci`) on Google's six shared models and on a model trained here and exported, teacher-forced
through real drawings of the mirror; after every input, its π, μx, μy, σx, σy, ρ and pen
probabilities at temperature 1 are held to ours (`models.magenta.step_distributions`) within
1e-4, float32 on both sides. When the JS cannot be installed the tests say so (a warning) and
compare with the numbers the JS gave, kept in tests/data/magenta_js_reference.json
(`scripts/magenta_js_reference.py`); they never pass without comparing.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from quickdraw_tools.cli import main
from quickdraw_tools.models.checkpoint import load_checkpoint
from quickdraw_tools.models.magenta import step_distributions

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from _magenta_js import (  # noqa: E402
    CATEGORIES,
    MAGENTA,
    js_missing,
    js_pdfs,
    mirror_drawings,
)

REFERENCE = ROOT / "tests" / "data" / "magenta_js_reference.json"
TOLERANCE = 1e-4  # the bound, float32 on both sides (measured: about 4e-6)
# our model after export vs the checkpoint it came from: each weight moves by at most
# 10 / 32767 / 2 = 1.5e-4 in int16; measured on the tiny model below: 7e-4
INT16_TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def js(shared) -> str | None:
    """None when Magenta's JS runs here; else why not, said as a warning."""
    why = js_missing()
    if why:
        warnings.warn(
            f"Magenta's JS cannot run ({why}): comparing with the numbers it produced, "
            f"kept in {REFERENCE.relative_to(ROOT)}",
            stacklevel=1,
        )
    return why


def reference() -> list[dict]:
    jobs = json.loads(REFERENCE.read_text())["jobs"]
    assert jobs, "the reference holds no numbers"
    return jobs


def ours(model_path: Path, drawings: list[np.ndarray]) -> list[np.ndarray]:
    model, state, _ = load_checkpoint(model_path)
    return [step_distributions(model, d, state["scale_factor"]) for d in drawings]


def assert_close(got: list[np.ndarray], want: list[np.ndarray], tolerance: float, what: str):
    assert len(got) == len(want) > 0
    for k, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a.shape == b.shape and a.shape[0] > 1 and a.shape[1] == 123, (a.shape, b.shape)
        worst = float(np.abs(a - b).max())
        assert worst <= tolerance, f"{what}, drawing {k}: max difference {worst:.3g}"


def reference_model(job: dict) -> Path:
    name = job["model"]
    return ROOT / name if name.startswith("tests/") else MAGENTA / name


def test_googles_six_models_give_what_magentas_js_gives(js):
    if js is None:
        jobs = [
            (MAGENTA / f"{name}.gen.json", mirror_drawings(category, 2, 10**6))
            for name, category in CATEGORIES.items()
        ]
        for (model, drawings), theirs in zip(jobs, js_pdfs(jobs), strict=True):
            assert_close(ours(model, drawings), theirs, TOLERANCE, model.name)
    else:
        job = next(j for j in reference() if not j["model"].startswith("tests/"))
        drawings = [np.asarray(d, dtype=np.int16) for d in job["drawings"]]
        theirs = [np.asarray(s, dtype=np.float32) for s in job["steps"]]
        assert_close(ours(reference_model(job), drawings), theirs, TOLERANCE, job["model"])


def test_the_kept_reference_is_what_the_js_gives_and_what_we_give(js):
    """Both models of the reference, against ours; and, where the JS runs, against the JS now
    (so the kept numbers cannot go stale)."""
    jobs = reference()
    for job in jobs:
        drawings = [np.asarray(d, dtype=np.int16) for d in job["drawings"]]
        kept = [np.asarray(s, dtype=np.float32) for s in job["steps"]]
        assert_close(ours(reference_model(job), drawings), kept, TOLERANCE, job["model"])
    if js is None:
        live = js_pdfs(
            [
                (reference_model(j), [np.asarray(d, dtype=np.int16) for d in j["drawings"]])
                for j in jobs
            ]
        )
        for job, now in zip(jobs, live, strict=True):
            kept = [np.asarray(s, dtype=np.float32) for s in job["steps"]]
            assert_close(now, kept, 1e-5, f"{job['model']}: the JS now vs the kept numbers")


@pytest.fixture(scope="module")
def our_export(shared, tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, .gen.json): an unconditional LSTM trained here on the mirror's monkeys for
    a few steps, then exported by `quickdraw export`."""
    tmp = tmp_path_factory.mktemp("export")
    mirror = shared / "mirror"
    args = ["--split-sizes", "200,20,20", "--out", str(tmp / "data"), "--quiet"]
    assert (
        main(["convert", "monkey", "--base-url", str(mirror), "--formats", "sketchrnn", *args]) == 0
    )
    assert main(["train", "sketch-rnn", "--data", str(tmp / "data" / "sketchrnn" / "monkey.npz"),
                 "--out", str(tmp / "run"), "--no-conditional", "--dec-size", "24",
                 "--max-seq-len", "200", "--steps", "6", "--batch-size", "20", "--lr", "0.01",
                 "--quiet"]) == 0  # fmt: skip
    out = tmp / "monkey.gen.json"
    assert main(["export", str(tmp / "run" / "last.pt"), "--out", str(out)]) == 0
    return tmp / "run" / "last.pt", out


def test_our_model_after_export_gives_what_magentas_js_gives(js, our_export):
    checkpoint, exported = our_export
    drawings = mirror_drawings("monkey", 2, 200)
    mine = ours(exported, drawings)
    # the checkpoint it came from, within the int16 format's loss
    assert_close(ours(checkpoint, drawings), mine, INT16_TOLERANCE, "checkpoint vs its export")
    if js is None:
        (theirs,) = js_pdfs([(exported, drawings)])
        assert_close(mine, theirs, TOLERANCE, f"{exported.name} in the JS")
    else:  # the kept model of ours, exported the same way, with the JS's numbers for it
        job = next(j for j in reference() if j["model"].startswith("tests/"))
        kept = [np.asarray(s, dtype=np.float32) for s in job["steps"]]
        got = ours(reference_model(job), [np.asarray(d, np.int16) for d in job["drawings"]])
        assert_close(got, kept, TOLERANCE, job["model"])
