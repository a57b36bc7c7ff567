"""The README's two set-up commands are the ones that work: run what can be run here."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

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


# Flags the test adds to a README command (by its first two words) so it runs in seconds on
# the sample data: tiny models, few steps, one sketch per source. Everything else runs as
# written, in order, in one folder, each command reading what the ones before it wrote.
TINY = {
    ("train", "sketch-rnn"): "--steps 2 --enc-size 8 --dec-size 8 --z-size 4 --num-mixture 2 "
    "--batch-size 4 --eval-every 1 --max-seq-len 150 --quiet",
    ("train", "draw"): "--steps 2 --T 2 --enc-size 8 --dec-size 8 --z-size 2 --batch-size 4 "
    "--eval-every 1 --quiet",
    ("grade", "serve"): "--per-source 1",
    ("download", "cat"): "--quiet",
    ("convert", "cat"): "--quiet",
    ("import-svg", "one-by-one"): "--quiet",
    ("evaluate", "runs/cat/best.pt"): "--quiet",
}


def readme_commands() -> list[list[str]]:
    """The `quickdraw ...` lines of the README's command block, as argument lists."""
    (block,) = [b for b in _code_blocks() if b.startswith("quickdraw ")]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def test_every_readme_command_runs(shared, tmp_path, monkeypatch, capsys):
    import json
    import os
    import sys

    from grading_support import Client, start_server, stop

    commands = readme_commands()
    assert len(commands) >= 10 and all(c[0] == "quickdraw" for c in commands)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUICKDRAW_BASE_URL", str(shared / "mirror"))  # no internet here
    ran = []
    for argv in commands:
        args = argv[1:] + shlex.split(TINY.get(tuple(argv[1:3]), ""))
        if args[:2] == ["grade", "serve"]:  # serves until stopped: grade one sketch, then stop
            cmd = [sys.executable, "-m", "quickdraw_tools.cli", "grade", "serve"]
            env_cwd = {"cwd": tmp_path}
            proc, url = start_server(args[2:], command=cmd, **env_cwd)
            try:
                client = Client(url)
                status, rater = client.request("POST", "/api/raters", {"name": "readme"})
                assert status == 201
                _, item = client.request("GET", f"/api/item?rater={rater['rater']}&index=0")
                grade = {"rater": rater["rater"], "sketch": item["id"], "grade": "real"}
                status, _ = client.request("POST", "/api/grades", {**grade, "request_id": "r" * 8})
                assert status == 201
            finally:
                stop(proc)
        else:
            assert main(args) == 0, (args, capsys.readouterr().err)
        ran.append(args[:2])
    assert len(ran) == len(commands)
    assert os.path.isfile("cache/full/raw/cat.ndjson") and os.path.isfile("cat.simplified.ndjson")
    for path in ("data/mnist/categories.txt", "pictures/cat_grid_000.png", "samples.svg",
                 "draw-samples.png", "grades.csv", "grades.png", "data/parquet/train/apple.parquet",
                 "every-cat/bitmap/cat.npy", "mine.ndjson", "data/png/cat.rows.csv",
                 "replay/cat_00000.svg", "replay/cat_00001.gif", "pen.gif"):  # fmt: skip
        assert os.path.isfile(path), path
    capsys.readouterr()
    assert main(["grade", "report", "--db", "grades.sqlite", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gradings"] == 1


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
