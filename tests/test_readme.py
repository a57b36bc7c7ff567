"""The README's two set-up commands are the ones that work: run what can be run here."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from quickdraw_tools import formats
from quickdraw_tools.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _code_blocks():
    text = (ROOT / "README.md").read_text()
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def test_first_screen_has_setup_and_test_commands():
    setup, tests = _code_blocks()[:2]
    assert setup.startswith("bash scripts/setup.sh && .venv/bin/quickdraw convert ")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/setup.sh" in ci
    assert tests in ci.splitlines(), "the README's test command must be the one .ci/run runs"


def test_main_job_runs(shared, tmp_path, monkeypatch):
    setup = _code_blocks()[0]
    argv = shlex.split(setup.split("&& .venv/bin/quickdraw ", 1)[1])
    out = argv.index("--out")
    argv[out + 1] = str(tmp_path / "data")
    monkeypatch.chdir(ROOT)  # the README's ../shared path is relative to the checkout
    assert main([*argv, "--quiet"]) == 0
    for category in ("cat", "apple"):
        npz = formats.load_sketchrnn_npz(tmp_path / "data" / "sketchrnn" / f"{category}.npz")
        assert sum(map(len, npz.values())) == 25
        assert formats.load_bitmaps(tmp_path / "data" / "bitmap" / f"{category}.npy").shape == (
            25,
            784,
        )
    assert (tmp_path / "data" / "mnist" / "train-images-idx3-ubyte").is_file()


def readme_commands() -> list[list[str]]:
    """The `quickdraw ...` lines of the README's command block, as argument lists."""
    (block,) = [b for b in _code_blocks() if b.startswith("quickdraw ")]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


@pytest.mark.timeout(900)
def test_every_readme_command_runs_as_written(shared, tmp_path, monkeypatch, capsys):
    """Each line of the README's command block, exactly as written (no flag added), in order,
    in an empty folder, each reading what the ones before it wrote; the only help it gets is
    QUICKDRAW_BASE_URL pointing at the sample mirror (there is no internet here). The long
    commands carry the budget the README gives them (--time-limit, --steps)."""
    import json
    import os
    import sys

    from grading_support import Client, start_server, stop

    commands = readme_commands()
    assert len(commands) >= 10 and all(c[0] == "quickdraw" for c in commands)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUICKDRAW_BASE_URL", str(shared / "mirror"))
    ran, printed = [], {}
    for argv in commands:
        args = argv[1:]
        if args[:2] == ["grade", "serve"]:  # serves until stopped: grade one sketch, then stop
            command = [sys.executable, "-m", "quickdraw_tools.cli", "grade", "serve"]
            proc, url = start_server(args[2:], 300, tmp_path, command, any_port=False)
            try:
                client = Client(url)
                status, rater = client.request("POST", "/api/raters", {"name": "readme"})
                assert status == 201 and rater["total"] == 2  # the pool the data allows
                _, item = client.request("GET", f"/api/item?rater={rater['rater']}&index=0")
                grade = {"rater": rater["rater"], "sketch": item["id"], "grade": "real"}
                status, _ = client.request("POST", "/api/grades", {**grade, "request_id": "r" * 8})
                assert status == 201
            finally:
                stop(proc)
            printed[args[1]] = "".join(proc.lines)
        else:
            assert main(args) == 0, (args, capsys.readouterr().err)
            printed[" ".join(args[:2])] = capsys.readouterr().out
        ran.append(args[:2])
    assert len(ran) == len(commands)
    # the small data, and what each command said about it
    assert "training on batches of 23, all of them" in printed["train sketch-rnn"]
    assert "stopped at the --time-limit of 60 s" in printed["train sketch-rnn"] or (
        "trained sketch-rnn to step 10000" in printed["train sketch-rnn"]
    )
    assert "note: the real source data/sketchrnn/cat.npz:test has 1 drawing" in printed["serve"]
    assert os.path.isfile("cache/full/raw/cat.ndjson") and os.path.isfile("cat.simplified.ndjson")
    for path in ("data/mnist/categories.txt", "pictures/cat_grid_000.png", "samples.svg",
                 "draw-samples.png", "grades.csv", "grades.png", "data/parquet/train/apple.parquet",
                 "every-cat/bitmap/cat.npy", "mine.ndjson", "raters.csv", "runs/cat/best.pt",
                 "runs/draw-cat/best.pt", "data/png/cat.rows.csv", "replay/cat_00000.svg",
                 "replay/cat_00001.gif", "pen.gif"):  # fmt: skip
        assert os.path.isfile(path), path
    assert main(["grade", "report", "--db", "grades.sqlite", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["gradings"] == 1
    # grade serve's defaults, kept with the session: seed 0, the one sampling temperature
    assert report["session"]["seed"] == 0 and report["session"]["temperature"] == 1.0


def test_the_python_examples_run(shared, tmp_path, monkeypatch):
    """Each ```python block of the README, in order, in one namespace, on the sample mirror."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUICKDRAW_BASE_URL", str(shared / "mirror"))  # no internet here
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # Hugging Face's cache, not ~
    (tmp_path / "docs").symlink_to(ROOT / "docs")
    assert main(["convert", "cat", "--formats", "parquet", "--out", "data", "--quiet"]) == 0
    names: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), names)  # noqa: S102 - our own README
    image, label = names["image"], names["label"]
    assert image.shape == (28, 28) and names["ds"].classes[label] in ("cat", "apple")
    big, lengths, labels = next(iter(names["loader"]))
    assert big.shape[0] == 8 and big.shape[2] == 5 and int(lengths.max()) + 1 == big.shape[1]
    assert set(names["record"]) >= {"word", "drawing"}
    assert len(names["table"]) == sum(len(split) for split in names["hf"].values()) == 25
    assert sorted(names["hf"]) == ["test", "train", "validation"]
    assert names["strokes"] and all(len(s) == 2 for s in names["strokes"])
