"""SVG in: `svg.read_svg` and `quickdraw import-svg`. Our own export reads back as the strokes
it drew; hand-written files test each path command, shape, transform and the viewBox; curves
stay within 0.5 units of the true curve; untrusted files are refused in one line."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import MIRROR

from quickdraw_tools import formats, svg
from quickdraw_tools.cli import main
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.simplify import simplify_drawing

SIMPLIFIED = MIRROR / "full" / "simplified"
HEAD = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'


def write_svg(tmp_path, body: str, name: str = "d.svg", attrs: str = "") -> Path:
    path = tmp_path / name
    path.write_text(f"{HEAD} {attrs}>{body}</svg>", encoding="utf-8")
    return path


def read(tmp_path, body: str, attrs: str = "") -> list[np.ndarray]:
    """The strokes of a hand-written SVG as (n, 2) arrays."""
    return [np.column_stack(s) for s in svg.read_svg(write_svg(tmp_path, body, attrs=attrs))]


def real_drawings(n: int = 8) -> list[list]:
    out = []
    for name in ("cat.ndjson", "apple.ndjson", "The Eiffel Tower.ndjson"):
        with open(SIMPLIFIED / name) as f:
            out += [json.loads(line)["drawing"] for _, line in zip(range(n), f, strict=False)]
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Real drawings written by our SVG export: (folder, [(svg path, drawing), ...])."""
    folder = tmp_path_factory.mktemp("exported")
    pairs = []
    for i, drawing in enumerate(real_drawings()):
        path = folder / f"{i:03d}.svg"
        svg.sketch_to_svg(drawing, path)
        pairs.append((path, drawing))
    return folder, pairs


# --- our own export, read back ---------------------------------------------------------------


def test_our_export_reads_back_as_the_strokes_it_drew(exported):
    _, pairs = exported
    margin = 256 / 16 + 2.0  # what sketch_to_svg uses: cell / 16 + stroke_width
    for path, drawing in pairs:
        fitted = svg.fit(svg.as_strokes(drawing), 256, 256, margin)
        back = svg.read_svg(path)
        assert len(back) == len(fitted), path  # the white background is not a stroke
        for (xs, ys), want in zip(back, fitted, strict=True):
            assert np.abs(np.column_stack([xs, ys]) - want).max() <= 0.01  # 2 decimals in SVG


def test_import_svg_writes_simplified_records_that_convert_and_svg_read(exported, tmp_path):
    folder, pairs = exported
    out, raw = tmp_path / "cat.ndjson", tmp_path / "cat.raw.ndjson"
    argv = ["import-svg", str(folder), "--word", "cat", "--out", str(out), "--raw-out", str(raw)]
    assert main([*argv, "--quiet"]) == 0
    records = list(formats.iter_ndjson(out))
    raws = list(formats.iter_ndjson(raw))
    assert len(records) == len(raws) == len(pairs)
    for record, raw_record, (path, _) in zip(records, raws, pairs, strict=True):  # sorted by name
        strokes = svg.read_svg(path)
        assert record["drawing"] == simplify_drawing(strokes)
        assert raw_record["drawing"] == strokes
        assert record["word"] == "cat" and record["countrycode"] == ""
        assert record["key_id"] == svg.svg_key_id(path.read_bytes()) == raw_record["key_id"]
        assert "recognized" not in record  # no game judged it
        assert formats.parse_timestamp(record["timestamp"]).year >= 2024
    assert len({r["key_id"] for r in records}) == len(records)
    # re-importing gives the same ids (and drawings)
    again = tmp_path / "again.ndjson"
    assert main(["import-svg", str(folder), "--word", "cat", "--out", str(again), "--quiet"]) == 0
    assert [(r["key_id"], r["drawing"]) for r in formats.iter_ndjson(again)] == [
        (r["key_id"], r["drawing"]) for r in records
    ]
    # the unsimplified strokes simplify to the same drawings
    resimplified = tmp_path / "resimplified.ndjson"
    assert main(["simplify", str(raw), "--out", str(resimplified), "--quiet"]) == 0
    assert [r["drawing"] for r in formats.iter_ndjson(resimplified)] == [
        r["drawing"] for r in records
    ]
    # what the rest of the toolkit reads
    assert main(["convert", str(out), "--formats", "sketchrnn", "--out", str(tmp_path / "data"),
                 "--quiet"]) == 0  # fmt: skip
    npz = formats.load_sketchrnn_npz(tmp_path / "data" / "sketchrnn" / "cat.npz")
    assert sum(len(v) for v in npz.values()) == len(records)
    assert main(["svg", str(out), "--out", str(tmp_path / "pictures"), "--quiet"]) == 0
    assert len(list((tmp_path / "pictures").glob("*.svg"))) == len(records)


def test_import_svg_summary_help_and_files_in_order(exported, tmp_path, capsys):
    folder, pairs = exported
    second, first = pairs[1][0], pairs[0][0]
    out = tmp_path / "two.ndjson"
    argv = ["import-svg", str(second), str(first), str(second), "--word", "cat", "--out", str(out)]
    assert main([*argv, "--quiet"]) == 0
    assert "wrote 2 drawing(s) of 'cat' from 2 SVG file(s)" in capsys.readouterr().out
    ids = [r["key_id"] for r in formats.iter_ndjson(out)]  # in the order given, each once
    assert ids == [svg.svg_key_id(p.read_bytes()) for p in (second, first)]
    with pytest.raises(SystemExit):
        main(["import-svg", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "examples:" in text and "quickdraw import-svg my-cats/ --word cat" in text


# --- hand-written files: each command, shape and transform ----------------------------------

CASES = {
    "relative commands": (
        '<path d="m 10 10 l 5 0 l 0 5 h -5 z" stroke="black"/>',
        [[(10, 10), (15, 10), (15, 15), (10, 15), (10, 10)]],
    ),
    "implicit lineto after M and m": (
        '<path d="M 0 0 10 0 10 10"/><path d="m 1 1 2 0 0 2"/>',
        [[(0, 0), (10, 0), (10, 10)], [(1, 1), (3, 1), (3, 3)]],
    ),
    "H and V, absolute and relative": (
        '<path d="M 1 2 H 10 V 5 h -3 v -2" stroke="black" fill="none"/>',
        [[(1, 2), (10, 2), (10, 5), (7, 5), (7, 3)]],
    ),
    "several subpaths, and a lineto after Z": (
        '<path d="M 0 0 L 1 1 M 5 5 L 6 6 m 1 0 l 1 1 M 0 0 L 4 0 L 4 4 Z L 0 4" stroke="red"/>',
        [
            [(0, 0), (1, 1)],
            [(5, 5), (6, 6)],
            [(7, 6), (8, 7)],
            [(0, 0), (4, 0), (4, 4), (0, 0)],
            [(0, 0), (0, 4)],
        ],
    ),  # fmt: skip
    "polyline, line, polygon (closed), rect (closed)": (
        '<polyline points="0,0 1,2 3,4" stroke="black"/>'
        '<line x1="1" y1="2" x2="3" y2="4" stroke="black"/>'
        '<polygon points="0 0 10 0 10 10" stroke="black"/>'
        '<rect x="1" y="2" width="3" height="4" stroke="black" fill="none"/>',
        [
            [(0, 0), (1, 2), (3, 4)],
            [(1, 2), (3, 4)],
            [(0, 0), (10, 0), (10, 10), (0, 0)],
            [(1, 2), (4, 2), (4, 6), (1, 6), (1, 2)],
        ],
    ),  # fmt: skip
    "nested transforms: translate, then scale and rotate, then the shape's own": (
        '<g transform="translate(10,20)"><g transform="scale(2) rotate(90)">'
        '<line x1="0" y1="0" x2="1" y2="0" stroke="black"/>'
        '<line x1="0" y1="0" x2="1" y2="0" transform="translate(0,3)" stroke="black"/></g></g>',
        [[(10, 20), (10, 22)], [(4, 20), (4, 22)]],
    ),
    "<use> copies, moved by x and y": (
        '<defs><polyline id="p" points="0,0 1,1" stroke="black"/></defs>'
        '<use href="#p" x="5"/><use xlink:href="#p" y="2"/>',
        [[(5, 0), (6, 1)], [(0, 2), (1, 3)]],
    ),
    "not ink: white or transparent paint, none, hidden, text, defs, flattened by scale(0)": (
        '<rect width="100" height="100" fill="white"/><path d="M 0 0 L 1 1" fill="none"/>'
        '<path d="M 0 0 L 1 1" fill="none" stroke="#fff"/><g display="none"><path d="M 9 9 L 1 1"/>'
        '</g><path d="M 0 0 L 1 1" stroke="black" visibility="hidden"/><text>cat</text>'
        '<path d="M 0 0 L 1 1" fill="none" stroke="black" stroke-opacity="0"/>'
        '<g transform="scale(0)"><path d="M 0 0 L 1 1" stroke="black"/></g>'
        '<path d="M 2 2 L 3 3" fill="none" stroke="black"/>',
        [[(2, 2), (3, 3)]],
    ),
}


@pytest.mark.parametrize("body,expected", CASES.values(), ids=CASES.keys())
def test_hand_written_svg(tmp_path, body, expected):
    got = read(tmp_path, body)
    assert len(got) == len(expected), got
    for stroke, want in zip(got, expected, strict=True):
        np.testing.assert_allclose(stroke, np.array(want, dtype=float), atol=1e-9)


def test_the_viewbox_and_size_place_the_page_but_coordinates_stay_user_units(tmp_path):
    page = 'width="100mm" height="50mm" viewBox="-10 -5 20 10" preserveAspectRatio="none"'
    body = (
        '<line x1="-10" y1="-5" x2="10" y2="5" stroke="black"/>'
        # a nested <svg> is part of the drawing: its viewBox maps its content into ours
        '<svg x="5" y="5" width="10" height="10" viewBox="0 0 100 100">'
        '<line x1="0" y1="0" x2="100" y2="100" stroke="black"/></svg>'
    )
    (a, b) = read(tmp_path, body, attrs=page)
    np.testing.assert_allclose(a, [(-10, -5), (10, 5)], atol=1e-9)
    np.testing.assert_allclose(b, [(5, 5), (15, 15)], atol=1e-9)
    # so does a transform on the root itself (SVG 2): it moves the page, not the drawing
    page = 'viewBox="0 0 8 8" width="80" transform="rotate(30) translate(4,5)"'
    (c,) = read(tmp_path, '<line x1="1" y1="2" x2="3" y2="4" stroke="black"/>', attrs=page)
    np.testing.assert_allclose(c, [(1, 2), (3, 4)], atol=1e-9)


def test_a_file_as_inkscape_writes_it(tmp_path):
    """Foreign namespaces and metadata, a page in mm, a layer's transform, CSS styles."""
    path = tmp_path / "inkscape.svg"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        "<!-- Created with Inkscape (http://www.inkscape.org/) -->\n"
        '<svg width="210mm" height="297mm" viewBox="0 0 210 297" version="1.1" id="svg5" '
        'xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" '
        'xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd" '
        'xmlns="http://www.w3.org/2000/svg" xmlns:svg="http://www.w3.org/2000/svg" '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns:cc="http://creativecommons.org/ns#" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        '<sodipodi:namedview id="namedview7" pagecolor="#ffffff" inkscape:document-units="mm"/>'
        '<defs id="defs2"/><metadata><rdf:RDF><cc:Work rdf:about=""><dc:format>image/svg+xml'
        '</dc:format><dc:type rdf:resource="http://purl.org/dc/dcmitype/StillImage"/></cc:Work>'
        "</rdf:RDF></metadata>"
        '<g inkscape:label="Layer 1" inkscape:groupmode="layer" id="layer1" '
        'transform="translate(-12.5,3.25)">'
        '<path style="fill:none;stroke:#000000;stroke-width:0.264583px;stroke-opacity:1" '
        'd="m 50,60 c 10,-5 21,0 26,10" id="path833" sodipodi:nodetypes="cc"/>'
        '<path style="fill:none;stroke:#000000;stroke-width:0.264583px" d="M 100,100 H 120 V 130 Z"'
        ' id="path835"/></g></svg>',
        encoding="utf-8",
    )
    curve, triangle = (np.column_stack(s) for s in svg.read_svg(path))
    np.testing.assert_allclose(curve[[0, -1]], [(37.5, 63.25), (63.5, 73.25)], atol=1e-9)
    np.testing.assert_allclose(
        triangle, [(87.5, 103.25), (107.5, 103.25), (107.5, 133.25), (87.5, 103.25)], atol=1e-9
    )


# --- curves: within 0.5 units of the true curve ------------------------------------------------


def distance_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Per point of `points` (m, 2), its distance to the polyline `line` (k, 2)."""
    a, b = line[:-1], line[1:]
    ab = b - a
    length2 = np.maximum((ab * ab).sum(axis=1), 1e-300)
    t = np.clip(((points[:, None, :] - a) * ab).sum(axis=2) / length2, 0.0, 1.0)
    nearest = a + t[..., None] * ab
    return np.hypot(*(points[:, None, :] - nearest).transpose(2, 0, 1)).min(axis=1)


def bezier(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The Bézier curve with control points `p` at `t` (de Casteljau)."""
    pts = np.broadcast_to(p, (len(t), *p.shape)).copy()
    while pts.shape[1] > 1:
        pts = pts[:, :-1] * (1 - t)[:, None, None] + pts[:, 1:] * t[:, None, None]
    return pts[:, 0]


@pytest.mark.parametrize(
    "d,control,transform",
    [
        ("M 10 80 C 40 10 65 10 95 80", [(10, 80), (40, 10), (65, 10), (95, 80)], None),
        ("M 0 0 c 200 -300 -100 400 250 60", [(0, 0), (200, -300), (-100, 400), (250, 60)], None),
        ("M 10 80 Q 52.5 10 95 80", [(10, 80), (52.5, 10), (95, 80)], None),
        ("M 10 80 C 40 10 65 10 95 80", [(10, 80), (40, 10), (65, 10), (95, 80)],
         "translate(7,3) scale(4,1.5) skewX(20)"),
    ],
)  # fmt: skip
def test_curves_are_flattened_within_half_a_unit(tmp_path, d, control, transform):
    group = f' transform="{transform}"' if transform else ""
    (stroke,) = read(tmp_path, f'<g{group}><path d="{d}" fill="none" stroke="black"/></g>')
    true = bezier(np.array(control, dtype=float), np.linspace(0.0, 1.0, 4001))
    if transform:  # skew first, then scale, then translate
        k = math.tan(math.radians(20))
        true = np.column_stack([4 * (true[:, 0] + k * true[:, 1]) + 7, 1.5 * true[:, 1] + 3])
    np.testing.assert_allclose(stroke[[0, -1]], true[[0, -1]], atol=1e-9)
    assert distance_to_polyline(true, stroke).max() <= 0.5
    assert distance_to_polyline(stroke, true).max() <= 0.01  # its points lie on the curve


def test_arcs_and_circles_are_flattened_within_half_a_unit(tmp_path):
    # a semicircle from (0, 0) to (100, 0), centre (50, 0); sweep 1 goes through (50, -50)
    (arc,) = read(tmp_path, '<path d="M 0 0 A 50 50 0 0 1 100 0" fill="none" stroke="black"/>')
    np.testing.assert_allclose(np.hypot(arc[:, 0] - 50, arc[:, 1]), 50, atol=1e-9)
    assert (arc[:, 1] <= 1e-9).all() and arc[:, 1].min() == pytest.approx(-50, abs=0.5)
    theta = np.linspace(math.pi, 2 * math.pi, 4001)
    true = np.column_stack([50 + 50 * np.cos(theta), 50 * np.sin(theta)])
    assert distance_to_polyline(true, arc).max() <= 0.5
    # a circle under a skew and an unequal scale: an ellipse that is no longer upright
    (ring,) = read(
        tmp_path,
        '<g transform="translate(100,50) skewX(30) scale(3,1)">'
        '<circle cx="0" cy="0" r="30" fill="none" stroke="black"/></g>',
    )
    theta = np.linspace(0.0, 2 * math.pi, 8001)
    x, y = 30 * np.cos(theta), 30 * np.sin(theta)
    k = math.tan(math.radians(30))
    true = np.column_stack([3 * x + k * y + 100, y + 50])
    np.testing.assert_allclose(ring[0], ring[-1], atol=1e-9)  # closed
    assert distance_to_polyline(true, ring).max() <= 0.5
    assert distance_to_polyline(ring, true).max() <= 0.05


def test_import_flattens_within_half_a_unit_of_the_0_255_drawing(tmp_path):
    """A drawing 4 units wide is scaled up ~64 times by the recipe: its curves are flattened
    that much finer than `read_svg`'s default, so they stay within 0.5 of the 0-255 drawing."""
    path = write_svg(tmp_path, '<circle cx="3" cy="3" r="2" fill="none" stroke="black"/>')
    out, raw = tmp_path / "o.ndjson", tmp_path / "r.ndjson"
    argv = ["import-svg", str(path), "--word", "circle", "--out", str(out), "--raw-out", str(raw)]
    assert main([*argv, "--quiet"]) == 0
    ((xs, ys),) = next(iter(formats.iter_ndjson(raw)))["drawing"]
    theta = np.linspace(0.0, 2 * math.pi, 8001)
    true = np.column_stack([3 + 2 * np.cos(theta), 3 + 2 * np.sin(theta)])
    assert distance_to_polyline(true, np.column_stack([xs, ys])).max() <= 0.5 * 4 / 255
    assert len(xs) > len(svg.read_svg(path)[0][0])


# --- untrusted files: one line naming the file, never a traceback --------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "lol lol lol lol lol lol lol lol lol">'
    + "".join(
        f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + ']><svg xmlns="http://www.w3.org/2000/svg"><text>&i;</text>'
    '<path d="M 0 0 L 1 1" stroke="black"/></svg>'
)
USE_BOMB = (
    '<defs><g id="l0"><line x1="0" y1="0" x2="1" y2="1" stroke="black"/></g>'
    + "".join(f'<g id="l{i}">' + f'<use href="#l{i - 1}"/>' * 10 + "</g>" for i in range(1, 7))
    + '</defs><use href="#l6"/>'
)
REFUSED = {
    "DOCTYPE entity bomb": (BILLION_LAUGHS, "declares an entity ('a'"),
    "external entity": (
        '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>',
        "declares an entity ('x'",
    ),
    "external <use>": ('<use xlink:href="other.svg#a"/>', "outside the file"),
    "external <image>": (
        '<image href="http://example.com/a.png" width="9" height="9"/><path d="M0 0 L1 1"/>',
        "outside the file",
    ),
    "malformed XML": ('<path d="M 0 0 L 1 1">', "not well-formed XML"),
    "no drawable element": (
        '<text>cat</text><rect width="9" height="9" fill="white"/>',
        "nothing to draw",
    ),  # fmt: skip
    "empty svg": ("", "nothing to draw"),
    "a zero-size page": (
        f'<?xml version="1.0"?>{HEAD} viewBox="0 0 0 10"><path d="M0 0 L1 1"/></svg>',
        "nothing to draw (the root <svg> has a zero width",
    ),
    "NaN in a path": ('<path d="M 0 0 L NaN 1" stroke="black"/>', "not a finite number"),
    "Infinity in points": ('<polyline points="0,0 Infinity,1"/>', "not a finite number"),
    "junk in points": ('<polyline points="0,0 1,x"/>', "not a list of numbers"),
    "a number beyond float64": ('<path d="M 0 0 L 1e400 1"/>', "not a finite number"),
    "malformed path data": ('<path d="M 0 0 L 3 Q"/>', "svgelements"),
    "a <use> inside what it copies": (
        '<g id="a"><use href="#a"/><path d="M0 0 L1 1"/></g>',
        "never end",
    ),
    "nested <use> copies": (USE_BOMB, "more than 50,000 elements"),
    "nesting too deep": ("<g>" * 150 + "</g>" * 150, "nested more than 100 deep"),
}


def write_raw(tmp_path, text: str, name: str = "bad.svg"):
    path = tmp_path / name
    body = text if text.startswith("<?xml") else f"{HEAD}>{text}</svg>"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize("text,why", REFUSED.values(), ids=REFUSED.keys())
def test_untrusted_files_are_refused_in_one_line(tmp_path, text, why):
    path = write_raw(tmp_path, text)
    with pytest.raises(QuickDrawError) as e:
        svg.read_svg(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ") and why in message and "\n" not in message


def test_more_refusals_size_points_root_gzip(tmp_path):
    def refused(path, why, **limits):
        with pytest.raises(QuickDrawError, match=why):
            svg.read_svg(path, **limits)

    curve = write_raw(tmp_path, '<path d="M 0 0 C 0 900 900 900 900 0" stroke="black"/>')
    assert len(svg.read_svg(curve)[0][0]) > 20
    refused(curve, "more than 20 points", max_points=20)
    refused(curve, "larger than 100 bytes", max_bytes=100)
    # path data svgelements would hold before a point is counted: refused before it parses
    copies = write_raw(
        tmp_path,
        '<defs><path id="p" d="M 0 0 L 1 1 L 2 2 L 3 3"/><g id="g">'
        + '<use href="#p"/>' * 10
        + "</g></defs>"
        + '<use href="#g"/>' * 10,
        name="copies.svg",
    )
    refused(copies, "holds more than 200 numbers, twice the limit of 100 points", max_points=100)
    assert len(svg.read_svg(copies, max_points=500)) == 100
    html = tmp_path / "page.svg"
    html.write_text('<html xmlns="http://www.w3.org/2000/svg"><path d="M0 0 L1 1"/></html>')
    refused(html, r"root element is <html>")
    packed = tmp_path / "d.svgz"
    packed.write_bytes(gzip.compress(curve.read_bytes()))
    refused(packed, "unzip it first")
    refused(tmp_path / "missing.svg", "not found")


def test_nothing_outside_the_file_is_opened(tmp_path, monkeypatch):
    """The usual DOCTYPE (a DTD on the web) and an embedded (data:) image are fine: neither is
    fetched, and svgelements never loads an image."""
    import socket

    import svgelements

    def refuse(*_, **__):
        raise AssertionError("reached outside the file")

    monkeypatch.setattr(svgelements.Image, "load", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    path = write_raw(
        tmp_path,
        '<?xml version="1.0" standalone="no"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
        f"{HEAD}>"
        '<image href="data:image/png;base64,iVBORw0KGgo=" width="9" height="9"/>'
        '<line x1="0" y1="0" x2="1" y2="1" stroke="black"/></svg>',
    )
    assert svg.read_svg(path) == [[[0.0, 1.0], [0.0, 1.0]]]


def test_mangled_files_read_or_fail_in_one_line(exported, tmp_path):
    """Bytes of a real export changed at random: each is read or refused, never a traceback."""
    data = bytearray(exported[1][0][0].read_bytes())  # the first export
    rng = np.random.default_rng(0)
    path = tmp_path / "mangled.svg"
    for _ in range(150):
        mangled = bytearray(data)
        for i in rng.integers(0, len(data), size=3):
            mangled[i] = int(rng.choice(list(b' <>/"=.-,0123456789eEMLCZz#&;!')))
        path.write_bytes(bytes(mangled))
        try:
            strokes = svg.read_svg(path)
        except QuickDrawError as e:
            assert "\n" not in str(e) and str(path) in str(e)
            continue
        assert all(math.isfinite(v) for s in strokes for axis in s for v in axis)


def test_cli_bad_file_stops_the_run_or_is_skipped_and_counted(exported, tmp_path, capsys):
    folder, pairs = exported
    good = pairs[0][0]
    bad = write_raw(tmp_path, BILLION_LAUGHS, name="bomb.svg")
    out = tmp_path / "out.ndjson"
    argv = ["import-svg", str(good), str(bad), "--word", "cat", "--out", str(out), "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("quickdraw import-svg: error: ") and str(bad) in err
    assert "\n" not in err and "Traceback" not in err and not out.exists()
    assert main([*argv, "--on-error", "skip"]) == 0
    text = capsys.readouterr().out
    assert "wrote 1 drawing(s)" in text and "skipped 1 bad file(s)" in text and str(bad) in text
    assert len(list(formats.iter_ndjson(out))) == 1
    # nothing readable at all: an error, and no file
    none = tmp_path / "none.ndjson"
    assert main(["import-svg", str(bad), "--word", "cat", "--out", str(none), "--on-error",
                 "skip", "--quiet"]) == 1  # fmt: skip
    assert "no drawing could be read" in capsys.readouterr().err and not none.exists()
    (tmp_path / "empty-dir").mkdir()
    for args, why in [
        ([str(good), "--word", " ", "--out", str(out)], "--word"),
        ([str(good), "--word", "cat", "--out", str(tmp_path / "x.txt")], "must be ndjson"),
        ([str(tmp_path / "nope"), "--word", "cat", "--out", str(out)], "no such SVG file"),
        ([str(tmp_path / "empty-dir"), "--word", "cat", "--out", str(out)], "no .svg files"),
    ]:
        assert main(["import-svg", *args, "--quiet"]) == 1
        assert why in capsys.readouterr().err
