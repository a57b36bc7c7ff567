"""The library takes what people pass (issue 22, item 7): one path or several, one filter value
or several, a wrong-kind file named for what it is, convert on what the toolkit itself writes,
and never a folder with two splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import train_checkpoint

from quickdraw_tools.cli import main
from quickdraw_tools.datasets import QuickDraw, QuickDrawStream
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.formats import iter_ndjson, load_sketchrnn_npz

CAT = Path("full") / "simplified" / "cat.ndjson"


@pytest.fixture
def converted(shared, tmp_path) -> Path:
    source = shared / "mirror" / CAT
    argv = ["convert", str(source), "--formats", "sketchrnn,bitmap", "--out", str(tmp_path / "d")]
    assert main([*argv, "--quiet"]) == 0
    return tmp_path / "d"


def test_from_files_takes_one_path_or_many(converted):
    npz = converted / "sketchrnn" / "cat.npz"
    sizes = {len(QuickDraw.from_files(f)) for f in (str(npz), npz, [npz], [str(npz)], (npz,))}
    assert sizes == {23}
    bitmaps = QuickDraw.from_files(str(converted / "bitmap" / "cat.npy"), format="bitmap")
    assert len(bitmaps) == 23


def test_a_wrong_kind_of_file_says_what_it_is_and_which_format_reads_it(converted, shared):
    cases = [
        (converted / "bitmap" / "cat.npy", "stroke3", "is 28x28 bitmaps (.npy): read it with "
         "format='bitmap'"),
        (converted / "sketchrnn" / "cat.npz", "bitmap", "is a sketch-rnn .npz (strokes): read it "
         "with format='stroke3', 'stroke5' or 'drawing'"),
        (shared / "mirror" / CAT, "stroke3", "is drawings ('.ndjson', '.ndjson.gz', '.jsonl'), "
         "not a converted file: `quickdraw convert` it first"),
        (converted / "missing.npz", "stroke3", "missing.npz: no such file"),
    ]  # fmt: skip
    for path, format, message in cases:
        with pytest.raises(QuickDrawError) as e:
            QuickDraw.from_files(path, format=format)
        assert message in str(e.value) and "\n" not in str(e.value)


def test_country_codes_and_recognized_take_one_value_or_several(shared, tmp_path, monkeypatch):
    monkeypatch.setenv("QUICKDRAW_BASE_URL", str(shared / "mirror"))
    records = list(iter_ndjson(shared / "mirror" / CAT))
    every = QuickDraw(tmp_path, "cat", split="train", download=True, progress=False)
    codes = [every.metadata(i)["countrycode"] for i in range(len(every))]
    us = QuickDraw(tmp_path, "cat", countrycodes="US", progress=False)  # one code: "US"
    assert len(us) == codes.count("US") > 0  # never the letters U and S
    assert len(QuickDraw(tmp_path, "cat", countrycodes=["US"], progress=False)) == len(us)
    both = QuickDraw(tmp_path, "cat", countrycodes=("US", "GB"), progress=False)
    assert len(both) == codes.count("US") + codes.count("GB")
    yes = QuickDraw(tmp_path, "cat", recognized=True, progress=False)
    no = QuickDraw(tmp_path, "cat", recognized=False, progress=False)
    either = QuickDraw(tmp_path, "cat", recognized=[True, False], progress=False)
    assert len(yes) + len(no) == len(either) == len(every)
    for kwargs, message in [
        ({"countrycodes": "XK"}, "countrycodes ['XK']: no drawing of cat is from there; the "
         "codes these drawings have, most common first: US ("),
        ({"countrycodes": "usa"}, "'usa' is not a country code"),
        ({"countrycodes": ["US", 1]}, "1 is not a country code"),
        ({"countrycodes": []}, "countrycodes is empty"),
        ({"recognized": "yes"}, "recognized: 'yes' is not True or False"),
    ]:  # fmt: skip
        with pytest.raises(QuickDrawError) as e:
            QuickDraw(tmp_path, "cat", progress=False, **kwargs)
        assert message in str(e.value) and "\n" not in str(e.value), str(e.value)
    # a code the drawings have, but none of this split: refused too, never an empty dataset
    once = next(c for c in sorted(set(codes)) if codes.count(c) == 1)
    with pytest.raises(QuickDrawError, match=rf"no drawing of the test split of cat has "
                       rf"countrycodes=\['{once}'\]"):  # fmt: skip
        QuickDraw(tmp_path, "cat", split="test", countrycodes=once, progress=False)
    # streamed: the same forms
    stream = QuickDrawStream([shared / "mirror" / CAT], countrycodes="US")
    assert len(list(stream)) == sum(r.get("countrycode") == "US" for r in records)
    assert len(list(QuickDrawStream([shared / "mirror" / CAT], recognized=[True]))) == sum(
        r.get("recognized") is True for r in records
    )
    with pytest.raises(QuickDrawError, match="'us' is not a country code"):
        QuickDrawStream([shared / "mirror" / CAT], countrycodes="us")


def test_convert_reads_what_sample_and_import_svg_write(converted, tmp_path, capsys):
    tiny = {"enc_size": 8, "dec_size": 8, "z_size": 4, "num_mixture": 2, "max_seq_len": 150}
    model = train_checkpoint(tmp_path / "run", "sketch-rnn", tiny,
                             [converted / "sketchrnn" / "cat.npz"], steps=1)  # fmt: skip
    samples = tmp_path / "samples.ndjson"
    assert main(["sample", str(model), "--n", "12", "--out", str(samples)]) == 0
    words = {r["word"] for r in iter_ndjson(samples)}
    empty = sum(not r["drawing"] for r in iter_ndjson(samples))
    assert words == {"cat"}
    out = tmp_path / "from-samples"
    argv = ["convert", str(samples), "--out", str(out), "--on-error", "skip", "--quiet"]
    assert main(argv) == 0  # empty samples are left out, and counted, with --on-error skip
    assert f"cat: skipped {empty}" in capsys.readouterr().out or empty == 0
    npz = load_sketchrnn_npz(out / "sketchrnn" / "cat.npz")  # the word, not "samples"
    assert sum(map(len, npz.values())) == 12 - empty
    # import-svg's drawings: the word given, whatever the file is called
    assert main(["svg", str(converted / "sketchrnn" / "cat.npz"), "--split", "test",
                 "--out", str(tmp_path / "svgs"), "--quiet"]) == 0  # fmt: skip
    mine = tmp_path / "mine.ndjson"
    assert main(["import-svg", str(tmp_path / "svgs"), "--word", "cat", "--out", str(mine),
                 "--quiet"]) == 0  # fmt: skip
    assert main(["convert", str(mine), "--out", str(tmp_path / "mine"), "--quiet"]) == 0
    assert (tmp_path / "mine" / "sketchrnn" / "cat.npz").is_file()
    # a file of several words (or none) is named by its file, as before
    mixed = tmp_path / "mixed.ndjson"
    records = list(iter_ndjson(mine))
    mixed.write_text("".join(json.dumps({**r, "word": w}) + "\n" for r, w in
                             zip(records * 2, ["cat", "dog"], strict=False)))  # fmt: skip
    assert main(["convert", str(mixed), "--out", str(tmp_path / "mixed"), "--quiet"]) == 0
    assert (tmp_path / "mixed" / "sketchrnn" / "mixed.npz").is_file()


def test_convert_names_an_npz_for_what_it_is(shared, tmp_path, capsys):
    sheep = shared / "other" / "aaron_sheep.npz"
    assert main(["convert", str(sheep), "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert f"{sheep} is a sketch-rnn .npz, converted already" in err
    assert "convert reads official category names" in err and err.count("\n") == 1


def test_a_folder_never_holds_two_splits(shared, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QUICKDRAW_BASE_URL", str(shared / "mirror"))
    out = tmp_path / "data"
    base = ["convert", "cat", "--out", str(out), "--quiet"]
    assert main([*base, "--formats", "sketchrnn,bitmap"]) == 0
    before = (out / "manifest.json").read_text()
    capsys.readouterr()
    for extra in (["--seed", "4"], ["--split-sizes", "15,5,5"], ["--max-per-category", "20"]):
        assert main([*base, "--formats", "bitmap", *extra]) == 1
        err = capsys.readouterr().err
        assert "of another split" in err and "--formats bitmap,sketchrnn" in err, err
        assert err.count("\n") == 1
        assert (out / "manifest.json").read_text() == before  # nothing written
    # another category at another seed would mix two splits in the folder too
    assert main(["convert", "apple", "--out", str(out), "--quiet", "--seed", "4"]) == 1
    capsys.readouterr()
    # replacing every format it holds is a new split for the whole folder: allowed
    assert main([*base, "--formats", "sketchrnn,bitmap", "--seed", "4"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert {e["seed"] for e in manifest["files"].values() if "seed" in e} == {4}
    assert main(["convert", "apple", "--out", str(out), "--quiet", "--seed", "4"]) == 0
