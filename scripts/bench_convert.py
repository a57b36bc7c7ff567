"""`quickdraw convert` on one large category: peak memory and drawings per second, one run.

The category is made from the real simplified drawings in ../shared/quickdraw
(training sets and mirror prefixes), repeated with fresh key_ids until it holds
``--drawings`` drawings (300,000 by default, more than the largest official
categories hold simplified). Each measured run is a separate `quickdraw convert`
process on one core (``taskset`` when available), so its peak RSS is its own.

Prints, for this checkout and for ``--baseline REV`` (a git revision, checked out
in a temporary worktree):
  * simplified ndjson -> sketch-rnn .npz: wall time, drawings/s, peak RSS, and
    whether the two revisions wrote the same bytes;
  * every format (``--formats sketchrnn,bitmap,mnist,parquet --split-sizes all``):
    wall time, drawings/s, peak RSS (this checkout only; older revisions cannot);
  * `QuickDraw` on a 70,000-drawing category: first construction (derives), second
    construction (opens the derived files), in one process each;
  * pictures, side by side on one ``--picture-drawings`` category (50,000 by default):
    ``--formats bitmap`` (the official 28x28 ``.npy``), ``--formats bitmap --size 64`` and
    ``--formats png --size 64`` (one PNG file per drawing), ``--rounds`` rounds of the three
    (3 by default) one after the other: each one's best drawings/s, peak RSS, and its ratio
    to the 28x28 ``.npy`` path (goal: at least 0.5x), by wall and by CPU time, and round by
    round; then where a PNG's time goes.

Usage: ``python scripts/bench_convert.py [--drawings N] [--baseline REV] [--pictures-only]
[--rounds R] [--tmp DIR]``
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from _machine import cpu_name

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "quickdraw"


def real_drawings() -> list[dict]:
    """Every real simplified drawing beside us (training sets and the mirror's prefixes)."""
    files = sorted((SHARED / "training").glob("*.ndjson"))
    files += sorted((SHARED / "mirror" / "full" / "simplified").glob("*.ndjson"))
    records = []
    for path in files:
        with open(path, "rb") as f:
            records += [orjson.loads(line) for line in f if line.strip()]
    return records


def write_category(path: Path, n: int, word: str, records: list[dict]) -> None:
    """`n` drawings cycled from `records`, each with its own key_id, as simplified ndjson."""
    with open(path, "wb") as f:
        for i, record in zip(range(n), itertools.cycle(records), strict=False):
            key_id = str(4_000_000_000_000_000 + i)
            f.write(orjson.dumps({**record, "word": word, "key_id": key_id}) + b"\n")


def run_convert(python: str, cwd: Path, env: dict, args: list[str]) -> tuple[float, int, float]:
    """One convert process; returns (wall seconds, peak RSS in bytes, CPU seconds)."""
    main = "import sys; from quickdraw_tools.cli import main; sys.exit(main())"
    command = [python, "-c", main, "convert", *args, "--quiet"]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"convert failed: {' '.join(command)}")
    return wall, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def report(label: str, n: int, wall: float, rss: int) -> None:
    rate = f"{n / wall:8,.0f} drawings/s"
    print(f"  {label:<34} {wall:7.1f} s  {rate}  peak RSS {rss / 2**20:6.0f} MB")


def time_quickdraw(python: str, root: Path, mirror: Path) -> float:
    code = (
        "import sys, time\n"
        "from quickdraw_tools.datasets import QuickDraw\n"
        "t = time.perf_counter()\n"
        f"ds = QuickDraw({str(root)!r}, 'cat', split='train', format='bitmap', download=True,"
        f" base_url={str(mirror)!r}, progress=False)\n"
        "ds[0]\n"
        "print(time.perf_counter() - t, len(ds))\n"
    )
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.split()[0])


def pictures(python: str, tmp_path: Path, n: int, records: list[dict], rounds: int) -> None:
    """Bitmaps and PNG folders at 64 pixels beside the official 28x28 .npy: `rounds` rounds of
    the three, one after the other, each configuration's best wall time."""
    source = tmp_path / "pictures.ndjson"
    write_category(source, n, "pictures", records)
    print(
        f"pictures: {n:,} simplified drawings, the whole convert of each, one core, best of"
        f" {rounds} interleaved rounds:"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [
        ("bitmap 28x28 .npy (official)", ["--formats", "bitmap"]),
        ("bitmap 64x64 .npy", ["--formats", "bitmap", "--size", "64"]),
        ("png 64x64 folders", ["--formats", "png", "--size", "64"]),
    ]
    # the outputs stay until the end: on a file system without a journal (this machine's
    # ext4), creating a file skips every inode deleted in the last minute or more, one by one,
    # so deleting many files first slows the next creations (by up to 10x)
    measured: list[list[tuple[float, int, float]]] = [[] for _ in runs]
    for r in range(rounds):
        for k, (_, flags) in enumerate(runs):
            out = tmp_path / f"out-pictures-{r}-{k}"
            args = [str(source), "--out", str(out), *flags]
            measured[k].append(run_convert(python, ROOT, env, args))
    base_wall = min(w for w, _, _ in measured[0])
    base_cpu = min(c for _, _, c in measured[0])
    for k, (label, _) in enumerate(runs):
        wall, rss = min(w for w, _, _ in measured[k]), max(m for _, m, _ in measured[k])
        cpu = min(c for _, _, c in measured[k])
        files = sum(len(names) for _, _, names in os.walk(tmp_path / f"out-pictures-0-{k}"))
        report(label, n, wall, rss)
        bases = [w for w, _, _ in measured[0]]
        each = ", ".join(f"{b / w:.2f}x" for b, (w, _, _) in zip(bases, measured[k], strict=True))
        print(
            f"  {'':<34} {base_wall / wall:7.2f}x the 28x28 .npy path ({files:,} files);"
            f" by CPU time {base_cpu / cpu:.2f}x; round by round {each}"
        )
    png_costs(tmp_path, records[:5000])
    for r in range(rounds):
        for k in range(len(runs)):
            shutil.rmtree(tmp_path / f"out-pictures-{r}-{k}")
    source.unlink()


def png_costs(tmp_path: Path, records: list[dict]) -> None:
    """Where a PNG folder's time goes, per drawing, in this process (best of 3): rendering
    at 28 and 64, encoding, creating the files, and the all-or-nothing commit of them."""
    from quickdraw_tools.atomic import staged_output
    from quickdraw_tools.images import png_images
    from quickdraw_tools.packed import pack_records
    from quickdraw_tools.raster import rasterize_many

    flat = pack_records(records, [str(i) for i in range(len(records))]).flat()
    n = len(records)

    def best(fn) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times) / n * 1e6

    bitmaps = rasterize_many(flat, 64, threads=1).reshape(n, 64, 64)
    encoded = png_images(bitmaps)
    costs = {
        "render 28x28": best(lambda: rasterize_many(flat, 28, threads=1)),
        "render 64x64": best(lambda: rasterize_many(flat, 64, threads=1)),
        "encode a 64x64 PNG": best(lambda: png_images(bitmaps)),
    }
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    creates, commits = [], []
    for k in range(3):
        with staged_output(tmp_path / f"costs-{k}") as stage:
            folder = os.open(stage.folder("png/train/cat"), os.O_RDONLY)
            start = time.perf_counter()
            for i, data in enumerate(encoded):  # as images.write_pngs does
                fd = os.open(f"{i}.png", flags, 0o666, dir_fd=folder)
                os.write(fd, data)
                os.close(fd)
            creates.append(time.perf_counter() - start)
            os.close(folder)
            start = time.perf_counter()
            stage.commit()
            commits.append(time.perf_counter() - start)
    costs["create and write its file"] = min(creates) / n * 1e6
    costs["commit it (atomic.staged_output)"] = min(commits) / n * 1e6
    print(f"where a PNG's time goes, per drawing ({n:,} drawings, best of 3):")
    for what, micros in costs.items():
        print(f"  {what:<34} {micros:7.1f} us")
    for k in range(3):
        shutil.rmtree(tmp_path / f"costs-{k}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drawings", type=int, default=300_000, help="size of the category")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run this git revision's convert (e.g. the commit before a change)",
    )
    parser.add_argument(
        "--dataset-drawings", type=int, default=70_000, help="size of the QuickDraw category"
    )
    parser.add_argument(
        "--picture-drawings", type=int, default=50_000, help="size of the pictures' category"
    )
    parser.add_argument(
        "--pictures-only", action="store_true", help="run only the pictures' measurements"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of the pictures' three converts"
    )
    parser.add_argument(
        "--tmp",
        default="/var/tmp" if os.path.isdir("/var/tmp") else None,
        help="where the work folder goes (default: %(default)s, else the system's temporary"
        " folder). Not /tmp on a shared machine: every test run creates and deletes files"
        " there, and on ext4 without a journal (this VM) creating a file skips, one by one,"
        " each inode deleted in the last minutes, so a PNG folder written there costs up to 10x"
        " as much kernel time, set by the neighbours",
    )
    args = parser.parse_args()
    python = sys.executable
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores (convert pinned to one)")
    records = real_drawings()
    with tempfile.TemporaryDirectory(prefix="bench-convert-", dir=args.tmp) as tmp:
        tmp_path = Path(tmp)
        print(f"work folder: {tmp_path}")
        pictures(python, tmp_path, args.picture_drawings, records, args.rounds)
        if args.pictures_only:
            return 0
        source = tmp_path / "synthetic.ndjson"
        write_category(source, args.drawings, "synthetic", records)
        size = source.stat().st_size
        print(
            f"category: {args.drawings:,} simplified drawings ({size / 2**20:.0f} MB), cycled from"
            f" {len(records):,} real ones"
        )
        runs = [("this checkout", ROOT)]
        if args.baseline:
            base = tmp_path / "baseline"
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(base), args.baseline],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            runs.append((f"baseline {args.baseline}", base))
        try:
            print("simplified ndjson -> sketch-rnn .npz (convert --formats sketchrnn):")
            written = {}
            for label, tree in runs:
                env = {**os.environ, "PYTHONPATH": str(tree)}
                out = tmp_path / f"out-{len(written)}"
                wall, rss, _ = run_convert(python, tree, env, [str(source), "--out", str(out)])
                report(label, args.drawings, wall, rss)
                written[label] = (wall, digest(out / "sketchrnn" / "synthetic.npz"))
                shutil.rmtree(out)
            if len(written) == 2:
                (new, new_hash), (old, old_hash) = written.values()
                same = "the same bytes" if new_hash == old_hash else "DIFFERENT bytes"
                print(f"  speed-up {old / new:.2f}x; the two wrote {same} ({new_hash})")
            print(
                "every format, every drawing (--formats sketchrnn,bitmap,mnist,parquet"
                " --split-sizes all):"
            )
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            out = tmp_path / "out-all"
            every = ["--formats", "sketchrnn,bitmap,mnist,parquet", "--split-sizes", "all"]
            wall, rss, _ = run_convert(python, ROOT, env, [str(source), "--out", str(out), *every])
            report("this checkout", args.drawings, wall, rss)
            shutil.rmtree(out)
        finally:
            if args.baseline:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(tmp_path / "baseline")],
                    cwd=ROOT,
                    check=False,
                )
        mirror = tmp_path / "mirror"
        (mirror / "full" / "simplified").mkdir(parents=True)
        cat = mirror / "full" / "simplified" / "cat.ndjson"
        write_category(cat, args.dataset_drawings, "cat", records)
        root = tmp_path / "dataset"
        first = time_quickdraw(python, root, mirror)
        second = time_quickdraw(python, root, mirror)
        print(f"QuickDraw('cat', format='bitmap') on {args.dataset_drawings:,} drawings:")
        print(f"  first construction (download, derive strokes and bitmaps) {first:6.2f} s")
        print(f"  second construction (memory-mapped)                      {second:6.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
