"""Read/write speed of the file formats on the real sample data (../shared/quickdraw).

Prints drawings per second and MB per second for each reader and writer, the safe
sketch-rnn reader next to numpy's own (unsafe, allow_pickle) loader, and a download
through a local HTTP server. Usage: ``python scripts/bench_formats.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import http.server
import os
import platform
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
from _machine import cpu_name

from quickdraw_tools import download, formats

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared" / "quickdraw"
MIRROR = SHARED / "mirror"


def best_of(repeat: int, fn) -> float:
    """Fastest wall time of `repeat` runs of `fn()` (seconds)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best kept)")
    args = parser.parse_args()

    raw_files = sorted((MIRROR / "full" / "raw").glob("*.ndjson"))
    simp_files = sorted((MIRROR / "full" / "simplified").glob("*.ndjson"))
    simplified = [r for p in simp_files for r in formats.iter_ndjson(p)]
    rows = []

    def row(name: str, drawings: int, nbytes: int, seconds: float) -> None:
        rows.append((name, drawings, drawings / seconds, nbytes / seconds / 1e6))

    def read_all(files):
        return sum(1 for p in files for _ in formats.iter_ndjson(p))

    n_raw = read_all(raw_files)
    size_raw = sum(p.stat().st_size for p in raw_files)
    row("read raw ndjson", n_raw, size_raw, best_of(args.repeat, lambda: read_all(raw_files)))
    size_simp = sum(p.stat().st_size for p in simp_files)
    row(
        "read simplified ndjson",
        len(simplified),
        size_simp,
        best_of(args.repeat, lambda: read_all(simp_files)),
    )

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = tmp / "all.ndjson"
        t = best_of(args.repeat, lambda: formats.write_ndjson(out, simplified))
        row("write simplified ndjson", len(simplified), out.stat().st_size, t)
        binary = tmp / "all.bin"
        t = best_of(args.repeat, lambda: formats.write_binary(binary, simplified))
        row("write .bin", len(simplified), binary.stat().st_size, t)
        t = best_of(args.repeat, lambda: sum(1 for _ in formats.iter_binary(binary)))
        row("read .bin", len(simplified), binary.stat().st_size, t)

        sheep = SHARED / "other" / "aaron_sheep.npz"
        n_sheep = sum(len(v) for v in formats.load_sketchrnn_npz(sheep).values())
        size = sheep.stat().st_size
        t = best_of(args.repeat, lambda: formats.load_sketchrnn_npz(sheep))
        row("read sketch-rnn .npz (safe)", n_sheep, size, t)

        def numpy_load():
            with np.load(sheep, encoding="latin1", allow_pickle=True) as z:
                return [z[k] for k in ("train", "valid", "test")]

        row("  numpy.load(allow_pickle)", n_sheep, size, best_of(args.repeat, numpy_load))
        splits = formats.load_sketchrnn_npz(sheep)
        t = best_of(args.repeat, lambda: formats.save_sketchrnn_npz(tmp / "s.npz", splits))
        row("write sketch-rnn .npz", n_sheep, (tmp / "s.npz").stat().st_size, t)

        bitmaps = MIRROR / "full" / "numpy_bitmap" / "cat.npy"
        t = best_of(args.repeat, lambda: formats.load_bitmaps(bitmaps))
        row("read numpy_bitmap .npy", 3000, bitmaps.stat().st_size, t)

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

        handler = partial(Quiet, directory=str(MIRROR))
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        names = [p.stem for p in raw_files[:40]]

        def fetch_all():
            cache = Path(tempfile.mkdtemp(dir=tmp))
            for name in names:
                download.download(name, "raw", cache, base_url=url, progress=False)

        t = best_of(args.repeat, fetch_all)
        size = sum((MIRROR / "full" / "raw" / f"{n}.ndjson").stat().st_size for n in names)
        n = sum(
            1 for name in names for _ in formats.iter_ndjson(MIRROR / f"full/raw/{name}.ndjson")
        )
        row(f"download {len(names)} raw files (127.0.0.1)", n, size, t)
        httpd.shutdown()

    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {cpu_name()}, {os.cpu_count()} cores")
    print(f"# python {platform.python_version()}, numpy {np.__version__}, best of {args.repeat}")
    print(f"{'operation':<36} {'drawings':>9} {'drawings/s':>11} {'MB/s':>7}")
    for name, n, rate, mbps in rows:
        print(f"{name:<36} {n:>9} {rate:>11,.0f} {mbps:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
