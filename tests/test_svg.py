"""SVG and PNG pictures: valid XML, every point inside its cell, aspect ratio kept; the CLI."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from conftest import MIRROR, SHARED
from PIL import Image

from quickdraw_tools import formats, svg
from quickdraw_tools.cli import main
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.strokes import drawing_to_stroke3, stroke3_to_stroke5

NS = "{http://www.w3.org/2000/svg}"
SIMPLIFIED_CAT = MIRROR / "full" / "simplified" / "cat.ndjson"
RAW_CAT = MIRROR / "full" / "raw" / "cat.ndjson"
SHEEP = SHARED / "other" / "aaron_sheep.npz"


def records(path, n):
    with open(path) as f:
        return [json.loads(line) for line in f.readlines()[:n]]


def parse(text: str):
    """-> (width, height, [(cell origin, [(n, 2) points per polyline/dot]), ...])."""
    root = ET.fromstring(text)
    assert root.tag == NS + "svg"
    x, y, w, h = (float(v) for v in root.get("viewBox").split())
    assert (x, y) == (0, 0) and float(root.get("width")) == w and float(root.get("height")) == h
    cells = []
    for g in root.iter(NS + "g"):
        ox, oy = (
            float(v) for v in re.fullmatch(r"translate\((.*),(.*)\)", g.get("transform")).groups()
        )
        pieces = []
        for line in g.iter(NS + "polyline"):
            pts = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
            pieces.append(np.array(pts))
        for dot in g.iter(NS + "circle"):
            pieces.append(np.array([[float(dot.get("cx")), float(dot.get("cy"))]]))
        cells.append(((ox, oy), pieces))
    return w, h, cells


def source_extent(sketch) -> np.ndarray:
    strokes = svg.as_strokes(sketch)
    xy = np.concatenate([np.column_stack([x, y]) for x, y, _ in strokes])
    return xy.max(axis=0) - xy.min(axis=0)


def check_grid(text: str, sketches, cell: float, cols: int) -> None:
    w, h, cells = parse(text)
    assert len(cells) == len(sketches)
    assert w == cell * min(cols, len(sketches))
    for i, ((ox, oy), pieces) in enumerate(cells):
        assert (ox, oy) == ((i % cols) * cell, pytest.approx(oy))
        xy = np.concatenate(pieces)
        # every coordinate inside its own cell, hence inside the viewBox
        assert (xy >= 0).all() and (xy[:, 0] <= cell).all() and (xy[:, 1] <= cell).all()
        assert (xy[:, 0] + ox <= w).all() and (xy[:, 1] + oy <= h).all()
        # aspect ratio kept: the drawn extent is the source extent times one scale factor,
        # and the longer side fills the room left by the margins
        drawn = xy.max(axis=0) - xy.min(axis=0)
        extent = source_extent(sketches[i])
        if extent.min() > 0:
            scale = drawn / extent
            assert scale[0] == pytest.approx(scale[1], rel=0.01, abs=0.02)
        margin = cell / 16 + 2.0
        assert drawn.max() == pytest.approx(cell - 2 * margin, abs=0.02)


def test_drawings_raw_and_simplified(shared):
    for path in (SIMPLIFIED_CAT, RAW_CAT):
        drawings = [r["drawing"] for r in records(path, 7)]
        text = svg.svg_grid(drawings, cols=3, captions=[f"cat {i}" for i in range(7)])
        check_grid(text, drawings, cell=128, cols=3)
        assert text.count("<text") == 7 and "cat 6" in text
        one = svg.sketch_to_svg(drawings[0])
        check_grid(one, drawings[:1], cell=256, cols=1)


def test_stroke3_and_stroke5_from_the_python_api(tmp_path, shared):
    sheep = formats.load_sketchrnn_npz(SHEEP)["valid"][:6]
    out = tmp_path / "samples.svg"
    text = svg.svg_grid(sheep, 3, captions=None, path=out)
    assert out.read_text().endswith(text + "\n")
    check_grid(text, sheep, cell=128, cols=3)
    big = [stroke3_to_stroke5(s, max_len=len(s) + 4) for s in sheep]
    assert svg.svg_grid(big, 3) == text  # stroke-5 gives the same picture
    floats = [s.astype(np.float32) / 7.5 for s in sheep]  # normalized model output
    check_grid(svg.svg_grid(floats, 2), floats, cell=128, cols=2)
    # a drawing and its stroke-3 give the same picture
    drawing = records(SIMPLIFIED_CAT, 1)[0]["drawing"]
    assert svg.sketch_to_svg(drawing) == svg.sketch_to_svg(drawing_to_stroke3(drawing))


def test_colors_dots_and_bad_input():
    drawing = [[[0, 100, 100], [0, 0, 50]], [[50], [20]], [[10, 20], [40, 45]]]
    plain = svg.sketch_to_svg(drawing)
    assert set(re.findall(r'stroke="(#[0-9a-f]{6})"', plain)) == {"#000000"}
    by_stroke = svg.sketch_to_svg(drawing, color_by="stroke")
    assert len(set(re.findall(r'(?:stroke|fill)="(#[0-9a-f]{6})"', by_stroke))) == 3
    by_time = svg.sketch_to_svg(drawing, color_by="time")
    assert len(set(re.findall(r'stroke="(#[0-9a-f]{6})"', by_time))) >= 3
    assert "<circle" in plain  # the one-point stroke is a dot
    w, h, cells = parse(svg.sketch_to_svg([[[5], [5]]]))
    assert cells[0][1][0].tolist() == [[128.0, 128.0]]  # a lone point sits in the middle
    with pytest.raises(QuickDrawError, match="color_by"):
        svg.sketch_to_svg(drawing, color_by="rainbow")
    with pytest.raises(QuickDrawError, match="captions"):
        svg.svg_grid([drawing, drawing], 2, captions=["one"])
    with pytest.raises(QuickDrawError, match="stroke-3"):
        svg.sketch_to_svg(np.zeros((4, 4)))
    with pytest.raises(QuickDrawError):
        svg.sketch_to_svg([[[1, 2], [1]]])
    with pytest.raises(QuickDrawError, match="too large a range"):
        svg.sketch_to_svg([[[-1e308, 1e308], [0, 1]]])  # not an SVG full of NaN
    assert "nan" not in svg.sketch_to_svg([[[-1e300, 1e300], [0, 1]]])
    with pytest.raises(QuickDrawError, match="COLSxROWS"):
        svg.parse_grid("8by4")


def test_png_grid_is_a_picture(tmp_path, shared):
    drawings = [r["drawing"] for r in records(SIMPLIFIED_CAT, 6)]
    path = tmp_path / "grid.png"
    data = svg.png_grid(drawings, 3, captions=["cat"] * 6, path=path)
    assert path.read_bytes() == data and data[:8] == b"\x89PNG\r\n\x1a\n"
    image = np.asarray(Image.open(path).convert("L"))
    assert image.shape == (math.ceil(2 * (128 + 12 * 1.6)), 3 * 128)  # 2 rows with captions
    assert (image > 0).any()  # not black
    dark = image < 128
    assert 0.01 < dark.mean() < 0.3  # strokes on a white page
    for col in range(3):  # a sketch in every cell of the first row
        assert dark[:128, col * 128 : (col + 1) * 128].any()


def test_cli_every_input_kind(tmp_path, shared, capsys):
    sample = records(SIMPLIFIED_CAT, 5)
    binary = tmp_path / "cat.bin"
    formats.write_binary(binary, sample)
    gz_dir = tmp_path / "in"
    gz_dir.mkdir()
    inputs = [
        (SIMPLIFIED_CAT, []),
        (RAW_CAT, []),
        (binary, []),
        (SHEEP, ["--split", "valid"]),
        (SHEEP, []),
    ]
    for i, (path, extra) in enumerate(inputs):
        out = tmp_path / f"out{i}"
        assert main(["svg", str(path), "--out", str(out), "--limit", "4", *extra]) == 0
        files = sorted(out.glob("*.svg"))
        assert len(files) == 4, (path, files)
        for f in files:
            w, h, cells = parse(f.read_text())
            xy = np.concatenate(cells[0][1])
            assert (xy >= 0).all() and (xy <= 256).all()
    assert (
        sorted(p.name for p in (tmp_path / "out3").glob("*.svg"))[0]
        == "aaron_sheep_valid_00000.svg"
    )
    assert "wrote 4 SVG" in capsys.readouterr().out

    grid = tmp_path / "grid"
    code = main(
        [
            "svg",
            str(SIMPLIFIED_CAT),
            "--out",
            str(grid),
            "--grid",
            "3x2",
            "--png",
            "--caption",
            "word",
            "--color-by",
            "time",
            "--limit",
            "7",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in grid.iterdir()) == [
        "cat_grid_000.png",
        "cat_grid_000.svg",
        "cat_grid_001.png",
        "cat_grid_001.svg",
    ]
    w, h, cells = parse((grid / "cat_grid_000.svg").read_text())
    assert len(cells) == 6 and w == 3 * 128
    assert len(parse((grid / "cat_grid_001.svg").read_text())[2]) == 1
    assert (grid / "cat_grid_000.svg").read_text().count(">cat</text>") == 6

    for argv, message in (
        (["svg", str(tmp_path / "nope.ndjson"), "--out", str(grid)], "not found"),
        (["svg", str(SIMPLIFIED_CAT), "--out", str(grid), "--grid", "3"], "COLSxROWS"),
        (["svg", str(SIMPLIFIED_CAT), "--out", str(grid), "--split", "test"], "--split"),
        (["svg", str(SIMPLIFIED_CAT), "--out", str(grid), "--limit", "0"], "--limit"),
    ):
        capsys.readouterr()
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_names_the_bad_drawing(tmp_path, capsys):
    path = tmp_path / "cat.ndjson"
    good, bad = [[[0, 10], [0, 10]]], [[[0, 1e308, -1e308], [0, 1, 2]]]
    path.write_text("".join(json.dumps({"drawing": d}) + "\n" for d in (good, bad)))
    assert main(["svg", str(path), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    expected = f"{path}: cat_00001: sketch coordinates span too large a range to draw"
    assert err == f"quickdraw svg: error: {expected}\n"


def test_a_late_bad_line_leaves_the_output_folder_as_it_was(shared, tmp_path, capsys):
    from quickdraw_tools.cli import main

    lines = (shared / "mirror/full/simplified/cat.ndjson").read_text().splitlines()
    path = tmp_path / "cat.ndjson"
    path.write_text("\n".join(lines[:20]) + "\n{broken\n")
    out = tmp_path / "svg"
    out.mkdir()
    (out / "kept.svg").write_text("<svg/>")
    assert main(["svg", str(path), "--out", str(out), "--grid", "2x2", "--quiet"]) == 1
    assert f"{path}:21: malformed line" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["kept.svg"]  # no grids of the failed run
    path.write_text("\n".join(lines[:20]) + "\n")
    assert main(["svg", str(path), "--out", str(out), "--grid", "2x2", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir())[:2] == ["cat_grid_000.svg", "cat_grid_001.svg"]
    assert len(list(out.glob("*.svg"))) == 5 + 1 and not list(out.glob(".*"))
