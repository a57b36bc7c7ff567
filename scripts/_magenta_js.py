"""Magenta's own JavaScript (`@magenta/sketch` in node) as the oracle for the .gen.json format,
and what the scripts about Google's models share.

`scripts/magenta_js/` is a node project pinned by its package-lock.json; `scripts/setup.sh`
installs it with `npm ci`. Shared by the exactness test (`tests/test_magenta_js.py`), the
script that writes the test's reference numbers (`scripts/magenta_js_reference.py`) and the
benchmark (`scripts/bench_magenta.py`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
JS_DIR = ROOT / "scripts" / "magenta_js"
MAGENTA = ROOT.parent / "shared" / "magenta"  # Google's six published models
MIRROR = ROOT.parent / "shared" / "quickdraw" / "mirror" / "full" / "simplified"
CATEGORIES = {  # .gen.json file -> the mirror's file of the same category
    "sheep": "sheep",
    "monkey": "monkey",
    "bird": "bird",
    "rabbit": "rabbit",
    "key": "key",
    "palm_tree": "palm tree",
}


def quickdraw(*args) -> None:
    """Run a `quickdraw` command as a user would (what the report scripts train and convert
    with); an error stops the script."""
    import sys

    subprocess.run([sys.executable, "-m", "quickdraw_tools.cli", *map(str, args)], check=True)


def js_missing() -> str | None:
    """Why Magenta's JS cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed (scripts/setup.sh installs nodejs and npm)"
    if not (JS_DIR / "node_modules" / "@magenta" / "sketch" / "package.json").is_file():
        return f"@magenta/sketch is not installed in {JS_DIR} (scripts/setup.sh runs `npm ci`)"
    return None


def run_js(script: str, args: list[str], timeout: float = 600) -> object:
    """Run `node scripts/magenta_js/SCRIPT ARGS` and return the JSON it prints."""
    done = subprocess.run(
        ["node", str(JS_DIR / script), *args],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"node {script} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def js_pdfs(jobs: list[tuple[Path, list[np.ndarray]]], timeout: float = 600) -> list[np.ndarray]:
    """Per-step outputs of @magenta/sketch: for each (model, stroke-3 drawings) job, one
    ``(steps, 123)`` float32 array per drawing (see `scripts/magenta_js/pdfs.js`)."""
    payload = [
        {"model": str(model), "drawings": [stroke5_rows(d) for d in drawings]}
        for model, drawings in jobs
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "jobs.json"
        path.write_text(json.dumps(payload))
        results = run_js("pdfs.js", [str(path)], timeout)
    assert isinstance(results, list)
    return [[np.asarray(d, dtype=np.float32) for d in r["drawings"]] for r in results]


def stroke5_rows(sketch: np.ndarray) -> list[list[float]]:
    """Stroke-3 ``(n, 3)`` -> the n stroke-5 rows ``[dx, dy, p1, p2, p3]`` the JS takes."""
    s = np.asarray(sketch, dtype=np.float64)
    return [[float(dx), float(dy), 1.0 - float(p), float(p), 0.0] for dx, dy, p in s]


def mirror_drawings(category: str, n: int, max_len: int, points: int = 0) -> list[np.ndarray]:
    """The first `n` drawings of the mirror's simplified `category` with at most `max_len`
    points, as stroke-3; `points` > 0 keeps only each one's first `points` points."""
    from quickdraw_tools.formats import iter_drawings
    from quickdraw_tools.strokes import drawing_to_stroke3

    out = []
    for record in iter_drawings(MIRROR / f"{category}.ndjson"):
        s = drawing_to_stroke3(record["drawing"])
        if 0 < len(s) <= max_len:
            out.append(s[:points] if points else s)
        if len(out) == n:
            break
    return out
