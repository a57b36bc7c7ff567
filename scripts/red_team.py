"""Replay the attacks and faults the toolkit must survive, one line per case: PASS or FAIL.

Crafted files (checkpoints that run code, pickles in .npz, zip bombs, numbers
no float holds), killed processes (kill -9 of convert and of a commit), full
disks, half-written sets of files, downloads whose file changes under them,
and a hostile web page talking to the grading server (any Host, two
Content-Lengths, TRACE, nested JSON, a crowd of idle connections, guessed
rater names). Each case runs in its own temporary folder on the sample data
in ../shared/quickdraw; the server and mirror cases bind 127.0.0.1 only.

    .venv/bin/python scripts/red_team.py            # every case
    .venv/bin/python scripts/red_team.py --list     # their names
    .venv/bin/python scripts/red_team.py -k grade   # the cases whose name has "grade"

Exit status 0 when every case passes. The tests hold each case too; this is
the same list run as a user would meet it, through the `quickdraw` command.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import http.server
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _server import start_server, stop

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "quickdraw"
TRAINING = SHARED / "training"
MIRROR = SHARED / "mirror"
SHEEP = SHARED / "other" / "aaron_sheep.npz"
QUICKDRAW = [sys.executable, "-m", "quickdraw_tools.cli"]

CASES: list[tuple[str, Callable[[Path], str]]] = []


def case(name: str):
    def register(fn):
        CASES.append((name, fn))
        return fn

    return register


class Failed(Exception):
    pass


def expect(condition: bool, why: str) -> None:
    if not condition:
        raise Failed(why)


def quickdraw(*args, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the `quickdraw` command as a user would."""
    return subprocess.run(
        [*QUICKDRAW, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def one_line_error(done: subprocess.CompletedProcess, *words: str) -> None:
    err = done.stderr.strip()
    expect(done.returncode == 1, f"exit status {done.returncode}, not 1: {err[-300:]}")
    expect(len(err.splitlines()) == 1 and "Traceback" not in err, f"not one line: {err[-300:]}")
    for word in words:
        expect(word in err, f"{word!r} not in {err!r}")


def snapshot(folder: Path) -> dict[str, bytes]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def alive(pid: int) -> bool:
    """Running: some thread of it is not a zombie (a killed process's main thread turns zombie
    while its other threads still exit, holding its files a moment longer)."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in threads:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                return True
    return False


def threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return int(next(line.split()[1] for line in status if line.startswith("Threads:")))


# --- crafted files ---------------------------------------------------------------------------


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def tiny_run(tmp: Path, steps: int = 1) -> Path:
    """A tiny sketch-rnn run on the sheep, trained by `quickdraw train`."""
    run = tmp / "run"
    done = quickdraw(
        "train", "sketch-rnn", "--data", SHEEP, "--out", run, "--steps", steps, "--enc-size", 8,
        "--dec-size", 8, "--z-size", 4, "--num-mixture", 2, "--max-seq-len", 120,
        "--batch-size", 4, "--max-per-category", 300, "--quiet",
    )  # fmt: skip
    expect(done.returncode == 0, f"training failed: {done.stderr[-300:]}")
    return run


@case("checkpoint with pickled os.system: sample, evaluate, grade serve, train --resume refuse it")
def crafted_checkpoint(tmp: Path) -> str:
    import torch

    run = tiny_run(tmp)
    marker = tmp / "code-ran"
    state = torch.load(run / "last.pt", weights_only=True)
    state["data_state"] = {"scale_factor": _RunsCode(marker)}
    torch.save(state, tmp / "evil.pt")
    torch.save(state, run / "last.pt")
    commands = [
        ("sample", tmp / "evil.pt", "--out", tmp / "s.svg"),
        ("evaluate", tmp / "evil.pt", "--data", SHEEP),
        (
            "grade",
            "serve",
            "--real",
            f"{SHEEP}:test",
            "--generated",
            tmp / "evil.pt",
            "--db",
            tmp / "g.sqlite",
            "--port",
            "0",
        ),  # fmt: skip
        ("train", "sketch-rnn", "--data", SHEEP, "--out", run, "--resume", "--steps", 3),
    ]
    for command in commands:
        one_line_error(quickdraw(*command), "refusing to load")
        expect(not marker.exists(), f"the pickled code ran in `quickdraw {command[0]}`")
    expect(not (tmp / "g.sqlite").exists(), "grade serve left a database behind")
    return "4 commands refused it in one line; nothing ran"


@case("checkpoint with missing keys or weights that do not fit: one line naming the problem")
def broken_checkpoint(tmp: Path) -> str:
    import torch

    run = tiny_run(tmp)
    state = torch.load(run / "last.pt", weights_only=True)
    del state["model_config"]
    torch.save(state, tmp / "no-config.pt")
    done = quickdraw("sample", tmp / "no-config.pt", "--out", tmp / "s.svg")
    one_line_error(done, "model_config")
    state = torch.load(run / "last.pt", weights_only=True)
    state["model_config"]["dec_size"] = 32
    torch.save(state, tmp / "shapes.pt")
    one_line_error(quickdraw("sample", tmp / "shapes.pt", "--out", tmp / "s.svg"), "do not fit")
    return "both named"


@case("format-1 checkpoint (numpy RNG state inside) still loads, and upgrades to format 2")
def old_checkpoint(tmp: Path) -> str:
    import torch

    run = tiny_run(tmp)
    state = torch.load(run / "last.pt", weights_only=True)
    for rng in state["rng"]:
        n = rng["numpy"]
        rng["numpy"] = (n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                        n["gauss"])  # fmt: skip
    state["format_version"] = 1
    torch.save(state, tmp / "old.pt")
    done = quickdraw("sample", tmp / "old.pt", "--n", 2, "--out", tmp / "s.svg")
    expect(done.returncode == 0, done.stderr[-300:])
    upgrade = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "upgrade_checkpoint.py"), str(tmp / "old.pt")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    expect(upgrade.returncode == 0, upgrade.stderr)
    new = torch.load(tmp / "old.pt", weights_only=True)  # plain values only now
    expect(new["format_version"] == 2, "not upgraded")
    return "sampled from it; upgraded in place"


@case("sketch-rnn .npz with a pickled os.system: refused, nothing runs")
def crafted_npz(tmp: Path) -> str:
    import pickle

    marker = tmp / "code-ran"
    payload = pickle.dumps(_RunsCode(marker), protocol=2)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": (1,)}
    )
    with zipfile.ZipFile(tmp / "evil.npz", "w") as zf:
        for split in ("train", "valid", "test"):
            zf.writestr(f"{split}.npy", header.getvalue() + payload)
    one_line_error(quickdraw("svg", f"{tmp / 'evil.npz'}", "--out", tmp / "svg"), "refusing")
    expect(not marker.exists(), "the pickled code ran")
    return "refused"


@case(".npz whose member claims 500,000,000 drawings: refused before it is read")
def npz_bomb(tmp: Path) -> str:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": (500_000_000,)}
    )
    empty = io.BytesIO()
    np.save(empty, np.empty(0, dtype=object), allow_pickle=True)
    with zipfile.ZipFile(tmp / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train.npy", header.getvalue() + b"\x80\x02" + b"N" * 4_000_000)
        zf.writestr("valid.npy", empty.getvalue())
        zf.writestr("test.npy", empty.getvalue())
    started = time.monotonic()
    done = quickdraw("svg", tmp / "bomb.npz", "--out", tmp / "svg")
    one_line_error(done, "bomb.npz[train]", "500,000,000 drawings")
    return f"refused in {time.monotonic() - started:.1f} s"


@case("ndjson coordinates no float holds (400 digits, NaN, Infinity): file:line, and skip skips")
def huge_numbers(tmp: Path) -> str:
    good = '{"drawing": [[[0.5, 10.25], [0.5, 5.5], [0, 1]]]}'
    for name, number in (("digits", "1" + "0" * 400), ("nan", "NaN"), ("inf", "Infinity")):
        path = tmp / f"{name}.ndjson"
        bad = '{"drawing": [[[0, ' + number + "], [0, 5], [0, 1]]]}"
        path.write_text(f"{good}\n{good}\n{bad}\n")
        for command in (("convert", path, "--out", tmp / "o"),
                        ("simplify", path, "--out", tmp / "s.ndjson"),
                        ("svg", path, "--out", tmp / "svg")):  # fmt: skip
            one_line_error(quickdraw(*command, "--quiet"), f"{path}:3")
        for command in (("convert", path, "--out", tmp / "o"),
                        ("simplify", path, "--out", tmp / "s.ndjson")):  # fmt: skip
            done = quickdraw(*command, "--quiet", "--on-error", "skip")
            expect(done.returncode == 0, f"skip did not skip: {done.stderr[-200:]}")
    return "convert, simplify, svg name the line; --on-error skip goes on"


@case(
    "ndjson coordinates that are not numbers (true beside recognized: true, '1', null): file:line"
)
def not_numbers(tmp: Path) -> str:
    good = '{"word": "cat", "recognized": true, "drawing": [[[0, 10], [0, 5]]]}'
    for name, value in (("bool", "true"), ("text", '"1"'), ("null", "null")):
        path = tmp / f"{name}.ndjson"
        # the reader counts true/false literals to skip a type check: this line's
        # "recognized" makes one of them look accounted for
        bad = '{"word": "true", "recognized": true, "drawing": [[[0, ' + value + "], [0, 5]]]}"
        path.write_text(f"{good}\n{good}\n{bad}\n")
        one_line_error(quickdraw("convert", path, "--out", tmp / "o", "--quiet"), f"{path}:3")
        expect(not (tmp / "o").exists() or not any((tmp / "o").iterdir()), "convert wrote files")
    return "true, '1' and null among coordinates are named by file:line; nothing written"


@case("SVG files: entity bomb, external entity, external <use>/<image>, <use> cycle are refused")
def crafted_svg(tmp: Path) -> str:
    head = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
    bomb = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 9))
    files = {
        "bomb.svg": f'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY e0 "ha">{bomb}]>'
        f'{head}<text>&e8;</text><path d="M0 0 L9 9" stroke="black"/></svg>',
        "xxe.svg": '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        f'{head}<text>&x;</text><path d="M0 0 L9 9" stroke="black"/></svg>',
        "use.svg": f'{head}<use xlink:href="other.svg#p"/><path d="M0 0 L9 9" '
        'stroke="black"/></svg>',
        "image.svg": f'{head}<image href="http://127.0.0.1:9/x.png"/><path d="M0 0 L1 1" '
        'stroke="black"/></svg>',
        "cycle.svg": f'{head}<g id="g"><use href="#g"/><path d="M0 0 L9 9" stroke="black"/></g>'
        "</svg>",
    }
    for name, text in files.items():
        path = tmp / name
        path.write_text(text)
        started = time.monotonic()
        done = quickdraw("import-svg", path, "--word", "cat", "--out", tmp / "o.ndjson", "--quiet")
        one_line_error(done, name)
        expect(time.monotonic() - started < 30, f"{name} took {time.monotonic() - started:.0f} s")
        expect(not (tmp / "o.ndjson").exists(), f"{name}: an output was written")
    return f"{len(files)} crafted files refused in one line each, quickly; nothing written"


@case("judge file with pickled os.system: judge score refuses it, nothing runs")
def crafted_judge(tmp: Path) -> str:
    import torch

    marker = tmp / "code-ran"
    torch.save({"kind": "judge", "weights": _RunsCode(marker)}, tmp / "evil.pt")
    done = quickdraw("judge", "score", tmp / "evil.pt", TRAINING / "cake.ndjson")
    one_line_error(done, "refusing to load")
    expect(not marker.exists(), "the pickled code ran")
    return "refused in one line; nothing ran"


# --- crashes, failures and full disks --------------------------------------------------------


@case("convert failing on its third category: the output folder is exactly as it was")
def convert_fails(tmp: Path) -> str:
    out = tmp / "data"
    args = ("--formats", "sketchrnn,bitmap,mnist", "--max-per-category", 200, "--quiet")
    done = quickdraw("convert", TRAINING / "cake.ndjson", TRAINING / "snowman.ndjson", "--out",
                     out, *args)  # fmt: skip
    expect(done.returncode == 0, done.stderr)
    before = snapshot(out)
    bad = tmp / "teapot.ndjson"
    bad.write_text((TRAINING / "teapot.ndjson").read_text().splitlines()[0] + "\n{broken\n")
    done = quickdraw("convert", TRAINING / "snowman.ndjson", TRAINING / "cake.ndjson", bad,
                     "--out", out, "--seed", 3, *args)  # fmt: skip
    one_line_error(done, "teapot.ndjson:2")
    expect(snapshot(out) == before, "the folder changed")
    return "unchanged, byte for byte"


@case("kill -9 of convert --workers 2: folder as it was, workers gone, next run cleans up")
def convert_killed(tmp: Path) -> str:
    out = tmp / "data"
    done = quickdraw("convert", TRAINING / "cake.ndjson", "--out", out, "--quiet")
    expect(done.returncode == 0, done.stderr)
    before = snapshot(out)
    big = tmp / "many.ndjson"  # enough work that the kill lands mid-run
    lines = []
    for path in sorted(TRAINING.glob("*.ndjson")):
        lines += path.read_text().splitlines()
    big.write_text("\n".join(lines * 3) + "\n")
    proc = subprocess.Popen(
        [*QUICKDRAW, "convert", str(big), "--out", str(out), "--workers", "2",
         "--formats", "sketchrnn,bitmap,mnist", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and len(workers) < 2:
        time.sleep(0.2)
        workers = children(proc.pid)
    expect(len(workers) >= 2, "the workers never started")
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    time.sleep(3)
    left = [w for w in workers if alive(w)]
    expect(not left, f"workers {left} outlived their killed parent")
    visible = {k: v for k, v in snapshot(out).items() if not k.startswith(".staging-")}
    expect(visible == before, "the output folder changed")
    done = quickdraw("convert", TRAINING / "piano.ndjson", "--out", out, "--quiet")
    expect(done.returncode == 0, done.stderr)
    expect(not [p for p in out.iterdir() if p.name.startswith(".")], "leftovers stayed")
    return "unchanged; workers exited; leftovers removed by the next run"


@case("MNIST images of one run beside labels of another: the reader refuses the set")
def mixed_mnist(tmp: Path) -> str:
    from quickdraw_tools.errors import QuickDrawError
    from quickdraw_tools.mnist import read_mnist

    for seed in (0, 1):
        done = quickdraw("convert", TRAINING / "cake.ndjson", TRAINING / "snowman.ndjson",
                         "--formats", "mnist", "--seed", seed, "--out", tmp / str(seed),
                         "--max-per-category", 150, "--quiet")  # fmt: skip
        expect(done.returncode == 0, done.stderr)
    name = "train-labels-idx1-ubyte"
    (tmp / "0" / "mnist" / name).write_bytes((tmp / "1" / "mnist" / name).read_bytes())
    try:
        read_mnist(tmp / "0" / "mnist")
    except QuickDrawError as e:
        expect("is not the file" in str(e), str(e))
        return "refused: " + str(e)[:60] + "..."
    raise Failed("the mixed set loaded")


@case("disk full while writing: 'no space left on device writing FILE', old file whole")
def disk_full(tmp: Path) -> str:
    out = tmp / "cat.simplified.ndjson"
    out.write_text("the old file\n")
    code = f"""
import os, sys, tempfile
from quickdraw_tools import atomic
real = tempfile.mkstemp
def full(dir=None, prefix="", suffix=""):
    fd, name = real(dir=dir, prefix=prefix, suffix=suffix)
    os.close(fd)
    return os.open("/dev/full", os.O_WRONLY), name
atomic.tempfile.mkstemp = full
from quickdraw_tools.cli import main
raw = {str(MIRROR / "full/raw/cat.ndjson")!r}
sys.exit(main(["simplify", raw, "--out", {str(out)!r}, "--quiet"]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    one_line_error(done, f"no space left on device writing {out}")
    expect(out.read_text() == "the old file\n", "the old file was lost")
    expect(sorted(p.name for p in tmp.iterdir()) == [out.name], "a temporary file stayed")
    return "named; the old file kept"


@case("svg failing on a late line: no grids of the failed run are left")
def svg_fails(tmp: Path) -> str:
    lines = (MIRROR / "full/simplified/cat.ndjson").read_text().splitlines()
    bad = tmp / "cat.ndjson"
    bad.write_text("\n".join(lines) + "\n{broken\n")
    one_line_error(quickdraw("svg", bad, "--out", tmp / "svg", "--grid", "2x2", "--quiet"), ":26")
    expect(not list((tmp / "svg").glob("*")) if (tmp / "svg").exists() else True, "grids left")
    return "nothing written"


@case("convert: a raw drawing after the first 50 of a local file is simplified too")
def late_raw(tmp: Path) -> str:
    simplified = (MIRROR / "full/simplified/monkey.ndjson").read_text().splitlines()[:80]
    raw = (MIRROR / "full/raw/cat.ndjson").read_text().splitlines()[0]
    path = tmp / "mixed.ndjson"
    path.write_text("\n".join([*simplified, raw]) + "\n")
    done = quickdraw("convert", path, "--out", tmp / "o", "--quiet")
    expect(done.returncode == 0 and "1 raw" in done.stdout, done.stdout + done.stderr)
    return "counted and simplified"


@case("gzipped ndjson output is the same bytes on every run; NaN is never written")
def reproducible_gzip(tmp: Path) -> str:
    raw = MIRROR / "full/raw/cat.ndjson"
    for name in ("a", "b"):
        done = quickdraw("simplify", raw, "--out", tmp / f"{name}.ndjson.gz", "--quiet")
        expect(done.returncode == 0, done.stderr)
        time.sleep(1.1)  # a time stamp would now differ
    same = (tmp / "a.ndjson.gz").read_bytes() == (tmp / "b.ndjson.gz").read_bytes()
    expect(same, "two runs wrote different bytes")
    from quickdraw_tools.errors import QuickDrawError
    from quickdraw_tools.formats import write_ndjson

    try:
        write_ndjson(tmp / "nan.ndjson", [{"drawing": [[[float("nan")], [0]]]}])
    except QuickDrawError:
        return "identical; NaN refused"
    raise Failed("NaN was written")


# --- downloads -------------------------------------------------------------------------------


def _changing_server(root: Path) -> tuple[http.server.ThreadingHTTPServer, str, dict]:
    """A server that cuts the first response short, then serves a different file: what a
    mirror that updates between an interrupted download and its resume looks like."""
    state = {"requests": 0, "body": b"first version\n" * 4000, "etag": '"v1"'}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            state["requests"] += 1
            body, etag = state["body"], state["etag"]
            wanted = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            start = 0
            if wanted and (if_range is None or if_range == etag):
                start = int(wanted.split("=")[1].split("-")[0])
            self.send_response(206 if start else 200)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body) - start))
            self.send_header("Accept-Ranges", "bytes")
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            md5 = __import__("base64").b64encode(hashlib.md5(body).digest()).decode()
            self.send_header("x-goog-hash", f"md5={md5}")
            self.end_headers()
            if state["requests"] == 1:  # cut short, then the file changes
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                state["body"], state["etag"] = b"second version!\n" * 4000, '"v2"'
                return
            self.wfile.write(body[start:])

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", state


@case("download resumed after the server's file changed: the new file, never a splice")
def download_splice(tmp: Path) -> str:
    from quickdraw_tools.download import download_url

    server, url, state = _changing_server(tmp)
    try:
        path = download_url(f"{url}/x.ndjson", tmp / "x.ndjson", backoff=0.01, progress=False)
    finally:
        server.shutdown()
        server.server_close()
    expect(path.read_bytes() == state["body"], "the cached file is a splice of two versions")
    return f"restarted; {state['requests']} requests"


# --- the grading server, from a hostile page -------------------------------------------------


@contextlib.contextmanager
def served(tmp: Path, *extra: str):
    real, sheep = TRAINING / "cake.ndjson", f"{SHEEP}:test"
    args = ["--db", str(tmp / "g.sqlite"), "--real", str(real), "--generated", sheep]
    proc, url = start_server([*args, "--per-source", "3", "--seed", "0", *extra])
    try:
        yield url
    finally:
        stop(proc)


def raw_request(url: str, data: bytes, timeout: float = 10) -> tuple[int, bytes]:
    """Send raw bytes to the server; (status, body)."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(data)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@case("grading server: a page on another Host (DNS rebinding) is refused")
def grade_host(tmp: Path) -> str:
    with served(tmp) as url:
        body = b'{"name": "mallory"}'
        status, _ = raw_request(url, b"POST /api/raters HTTP/1.1\r\nHost: evil.example\r\n"
                                b"Content-Type: application/json\r\nContent-Length: %d\r\n"
                                b"Connection: close\r\n\r\n%s" % (len(body), body))  # fmt: skip
        expect(400 <= status < 500, f"answered {status}")
        port = url.split(":")[2].strip("/").split("/")[0].split("?")[0]
        status, _ = raw_request(url, f"GET / HTTP/1.1\r\nHost: localhost:{port}\r\n"
                                "Connection: close\r\n\r\n".encode())  # fmt: skip
        expect(status == 200, f"its own host got {status}")
    return "evil.example refused, localhost served"


@case("grading server: two Content-Lengths, TRACE, CONNECT, nested JSON get 4xx, not 500")
def grade_requests(tmp: Path) -> str:
    with served(tmp) as url:
        host = url.split("//")[1].split("/")[0]
        statuses = {}
        statuses["two Content-Length"] = raw_request(url, (
            f"POST /api/raters HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            "Content-Length: 2\r\nContent-Length: 40\r\nConnection: close\r\n\r\n{}"
        ).encode())[0]  # fmt: skip
        for method in ("TRACE", "CONNECT", "PROPFIND"):
            statuses[method] = raw_request(
                url, f"{method} / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )[0]
        nested = b'{"name": ' + b"[" * 1900 + b"]" * 1900 + b"}"
        statuses["nested JSON"] = raw_request(url, (
            f"POST /api/raters HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(nested)}\r\nConnection: close\r\n\r\n"
        ).encode() + nested)[0]  # fmt: skip
    bad = {k: v for k, v in statuses.items() if not 400 <= v < 500}
    expect(not bad, f"answered {bad}")
    return ", ".join(f"{k} {v}" for k, v in statuses.items())


@case("grading server: 300 slow connections keep its threads bounded; they time out, others get in")
def grade_crowd(tmp: Path) -> str:
    with served(tmp) as url:
        host, port = url.split("//")[1].split("/")[0].split(":")
        crowd = []
        try:
            for _ in range(300):
                s = socket.create_connection((host, int(port)), timeout=5)
                s.sendall(b"GET / HTTP/1.1\r\nHo")  # and then nothing
                crowd.append(s)
            time.sleep(0.5)
            (server,) = children(os.getpid())
            count = threads(server)
            # the slow clients hold every slot until their deadline (5 s): then others get in
            served_ok, deadline = False, time.monotonic() + 15
            while not served_ok and time.monotonic() < deadline:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    conn = http.client.HTTPConnection(host, int(port), timeout=5)
                    conn.request("GET", "/")
                    served_ok = conn.getresponse().status == 200
                    conn.close()
                time.sleep(0.5)
            waited = 15 - (deadline - time.monotonic())
        finally:
            for s in crowd:
                s.close()
    expect(count <= 128 + 8, f"{count} threads for 300 idle connections (the cap is 128)")
    expect(served_ok, "a real client was not served once the slow ones timed out")
    return f"{count} threads; a real client served after {waited:.0f} s"


@case("grading server: knowing a rater's name does not resume their session")
def grade_names(tmp: Path) -> str:
    sys.path.insert(0, str(ROOT / "tests"))
    from grading_support import Client

    with served(tmp) as url:
        alice = Client(url)
        status, first = alice.request("POST", "/api/raters", {"name": "Alice"})
        expect(status == 201, f"{status} {first}")
        mallory = Client(url)
        status, second = mallory.request("POST", "/api/raters", {"name": "Alice"})
        expect(second.get("rater") != first.get("rater"), "the same name got Alice's session")
        status, look = mallory.request("POST", "/api/raters", {"name": "Аlice"})  # Cyrillic А
    return "a second 'Alice' is a new rater; resuming needs the secret token"


@case("grading server: a completion URL that is not http(s) is refused before it starts")
def grade_completion_url(tmp: Path) -> str:
    for url in ("javascript:alert(1)", "file:///etc/passwd", "http://exa mple.com/"):
        done = quickdraw(
            "grade", "serve", "--real", TRAINING / "cake.ndjson", "--generated", f"{SHEEP}:test",
            "--db", tmp / "g.sqlite", "--port", "0", "--completion-url", url,
        )  # fmt: skip
        one_line_error(done, "completion")
        expect(not (tmp / "g.sqlite").exists(), "a database was made")
    return "javascript:, file: and a URL with a space refused in one line; no database"


@case(
    "convert: a category name that would leave the output folder ('..') is refused, nothing written"
)
def convert_category_escape(tmp: Path) -> str:
    text = (TRAINING / "cake.ndjson").read_text()
    (tmp / "in").mkdir()
    crafted = {  # a file's category: its records' word, or its name when they name none
        tmp / "in" / "...ndjson": text.replace('"word":"cake",', ""),  # the name: ".."
        tmp / "in" / "cake.ndjson": text.replace('"word":"cake"', '"word":".."'),
    }
    out = tmp / "out" / "inner"
    for path, records in crafted.items():
        path.write_text(records)
        done = quickdraw("convert", path, "--formats", "png,bitmap,sketchrnn", "--out", out)
        one_line_error(done, "category name '..'")
        expect(sorted(p.name for p in tmp.iterdir()) == ["in"], f"written: {list(tmp.rglob('*'))}")
    return "'..' from a file's name or from its records' word refused in one line; nothing written"


@case("convert --formats png: a crafted key_id ('../../x') names no file outside its folder")
def png_key_id_escape(tmp: Path) -> str:
    source = tmp / "cat.ndjson"
    lines = (MIRROR / "full" / "simplified" / "cat.ndjson").read_text().splitlines()[:6]
    crafted = [line.replace('"key_id":"', '"key_id":"../../../x') for line in lines]
    source.write_text("\n".join(crafted) + "\n")
    out = tmp / "out"
    done = quickdraw("convert", source, "--formats", "png", "--out", out, "--quiet")
    expect(done.returncode == 0, done.stderr[-300:])
    images = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    expect(len(images) == 6, f"{len(images)} images")
    inside = all(p.count("/") == 3 and p.split("/")[3].startswith("key-") for p in images)
    expect(inside, f"images {images}")
    expect(sorted(p.name for p in tmp.iterdir()) == ["cat.ndjson", "out"], "a file outside out/")
    return "6 images named key-<sha1>.png inside png/<split>/cat/; nothing outside"


# --- Magenta's .gen.json models (issue 21) ---------------------------------------------------

MAGENTA_SHEEP = ROOT.parent / "shared" / "magenta" / "sheep.gen.json"


def damaged_gen_json(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (a damaged copy of Google's sheep.gen.json, what its refusal must say)."""
    import json

    text = MAGENTA_SHEEP.read_text()
    info, dims, weights = json.loads(text)

    def other(**changes):
        return json.dumps([*changes.get("parts", (info, dims, weights))])

    without = lambda key: {k: v for k, v in info.items() if k != key}  # noqa: E731
    cases = {
        "truncated": (text[: len(text) // 3], "truncated"),
        "bad-base64": (
            other(parts=(info, dims, [weights[0], "@" * len(weights[1]), *weights[2:]])),
            "is not valid base64",
        ),  # fmt: skip
        "dims": (
            other(parts=(info, [[512, 123], [123], [5, 2048], [512, 2000], [2048]], weights)),
            "LSTM recurrent kernel shape [512, 2000]",
        ),  # fmt: skip
        "no-scale-factor": (
            other(parts=(without("scale_factor"), dims, weights)),
            "info has no 'scale_factor'",
        ),  # fmt: skip
        "no-max-seq-len": (
            other(parts=(without("max_seq_len"), dims, weights)),
            "info has no 'max_seq_len'",
        ),  # fmt: skip
        "nan-weights": (text.replace(f'"{weights[1]}"', "[NaN, NaN]"), "NaN"),
    }
    out = {}
    for name, (value, why) in cases.items():
        path = tmp / f"{name}.gen.json"
        path.write_text(value)
        out[name] = (path, why)
    huge = tmp / "huge.gen.json"
    with open(huge, "wb") as f:
        f.truncate(64 * 2**20 + 1)  # sparse: a refusal reads none of it
    out["huge"] = (huge, "larger than any sketch-rnn model")
    return out


@case("Magenta .gen.json truncated, bad base64, wrong dims, no scale/N_max, NaN, > 64 MB: refused")
def bad_gen_json(tmp: Path) -> str:
    files = damaged_gen_json(tmp)
    for name, (path, why) in files.items():
        done = quickdraw("sample", path, "--out", tmp / "s.svg")
        one_line_error(done, str(path), why)
        expect(not (tmp / "s.svg").exists(), f"{name}: an output was written")
    path, why = files["dims"]
    done = quickdraw("convert", "sheep", "--base-url", MIRROR, "--formats", "sketchrnn",
                     "--split-sizes", "15,5,5", "--out", tmp / "data", "--quiet")  # fmt: skip
    expect(done.returncode == 0, f"convert failed: {done.stderr[-300:]}")
    npz = tmp / "data" / "sketchrnn" / "sheep.npz"
    before = snapshot(tmp / "data")
    for command in (
        ("evaluate", path, "--data", npz, "--quiet"),
        ("export", path, "--out", tmp / "e.gen.json"),
        ("train", "sketch-rnn", "--init-from", path, "--data", npz, "--out", tmp / "run"),
        ("grade", "serve", "--real", f"{npz}:test", "--generated", path, "--db", tmp / "g.db"),
    ):
        one_line_error(quickdraw(*command), str(path), why)
    expect(snapshot(tmp / "data") == before, "the data folder changed")
    left = sorted(p.name for p in tmp.iterdir())
    expect(not {"e.gen.json", "run", "g.db"} & set(left), f"something was written: {left}")
    return (
        f"{len(files)} damaged files refused in one line by sample; and by evaluate, export, "
        "train --init-from, grade serve; nothing written"
    )


@case("export: a conditional model or another M is refused in one line, naming why")
def export_refusals(tmp: Path) -> str:
    run = tiny_run(tmp)  # conditional, M = 2
    done = quickdraw("export", run / "last.pt", "--out", tmp / "x.gen.json")
    one_line_error(done, "cannot export", "conditional")
    expect(not (tmp / "x.gen.json").exists(), "a file was written")
    return "refused in one line; nothing written"


# --- issue 20: output folders, one client holding the server, numbers, files, checkpoints ----


def limited(*args, memory: int = 1 << 30, timeout: float = 300) -> subprocess.CompletedProcess:
    """`quickdraw ARGS` in a process that may use at most `memory` bytes."""

    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [*QUICKDRAW, *map(str, args)], capture_output=True, text=True, timeout=timeout,
        preexec_fn=limit,
    )  # fmt: skip


def tree(folder: Path) -> dict[str, bytes | str]:
    """Every entry under `folder`, hidden ones and links too (links by target)."""
    out: dict[str, bytes | str] = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = (
            ("-> " + os.readlink(p)) if p.is_symlink() else p.read_bytes() if p.is_file() else "dir"
        )
    return out


def cake(tmp: Path, n: int = 60) -> Path:
    path = tmp / "cake.ndjson"
    path.write_text("\n".join((TRAINING / "cake.ndjson").read_text().splitlines()[:n]) + "\n")
    return path


@case(
    "output folder: a planted .commit-x naming ../victim: convert and svg refuse it, touch nothing"
)
def planted_journal(tmp: Path) -> str:
    out = tmp / "out"
    for folder in (out, tmp / "victim", tmp / "victim2"):
        folder.mkdir()
    (tmp / "victim" / "a").write_text("x")
    (tmp / "victim2" / "precious.txt").write_text("precious")
    (out / ".commit-x").write_text('{"staging": "../victim", "files": [], "removed": '
                                   '["../victim2/precious.txt"]}')  # fmt: skip
    source = cake(tmp)
    before = tree(tmp)
    for command in ("convert", "svg"):
        done = quickdraw(command, source, "--out", out, "--quiet")
        one_line_error(done, "is not a commit journal that quickdraw-tools wrote")
        expect(tree(tmp) == before, f"{command} changed something")
    return "refused in one line by convert and svg; victim/, victim2/precious.txt and out/ intact"


@case("output folder: journals in our own form with .., absolute paths, links, no marker: refused")
def crafted_journals(tmp: Path) -> str:
    mark = '"format": "quickdraw-tools commit journal 1", '
    records = {
        "dotdot": mark + '"staging": ".staging-abcd1234", "files": ["a/../../x"], "removed": []',
        "absolute": mark + '"staging": ".staging-abcd1234", "files": [], "removed": ["/etc/x"]',
        "other staging": mark + '"staging": "../x", "files": [], "removed": []',
        "no marker": '"staging": ".staging-abcd1234", "files": [], "removed": ["../x"]',
        "linked staging": mark + '"staging": ".staging-abcd1234", "files": ["f"], "removed": []',
    }
    source = cake(tmp)
    for why, record in records.items():
        out = tmp / why.replace(" ", "-")
        out.mkdir()
        if why == "linked staging":
            (out / ".staging-abcd1234").symlink_to(tmp)
        (out / ".commit-abcd1234").write_text("{" + record + "}")
        before = tree(tmp)
        one_line_error(
            quickdraw("convert", source, "--out", out, "--quiet"), "not a commit journal"
        )
        expect(tree(tmp) == before, f"{why}: something changed")
    return f"{len(records)} crafted journals refused, nothing changed"


@case("output folder: a symlinked subfolder (out/sketchrnn -> ../elsewhere) is not written through")
def symlinked_subfolder(tmp: Path) -> str:
    out, elsewhere = tmp / "out", tmp / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "sketchrnn").symlink_to("../elsewhere")
    source = cake(tmp)
    before = tree(tmp)
    one_line_error(quickdraw("convert", source, "--out", out, "--quiet"), "is a symbolic link")
    expect(tree(tmp) == before and not list(elsewhere.iterdir()), "written through the link")
    return "refused; nothing in out/ or elsewhere/"


def _read_response(s: socket.socket) -> tuple[int, dict[str, str]]:
    f = s.makefile("rb")
    status = int(f.readline().split()[1])
    headers = {}
    while (line := f.readline().decode("latin-1").strip()) != "":
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    f.read(int(headers.get("content-length", 0)))
    return status, headers


@case("grading server: 130 keep-alive connections from one address hold 32; others are served")
def grade_hog(tmp: Path) -> str:
    with served(tmp) as url:
        host, port = url.split("//")[1].split("/")[0].split(":")
        request = f"GET /favicon.svg HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        hog, statuses = [], []
        try:
            for _ in range(130):
                s = socket.create_connection((host, int(port)), timeout=10)
                s.sendall(request)
                statuses.append(_read_response(s)[0])
                hog.append(s)
            others = []
            for _ in range(3):  # the hog asks again on every connection it holds, then others
                for s in hog[: statuses.count(200)]:
                    s.sendall(request)
                    _read_response(s)
                conn = http.client.HTTPConnection(host, int(port), 10, ("127.0.0.2", 0))
                conn.request("GET", "/", headers={"Host": f"{host}:{port}"})
                others.append(conn.getresponse().status)
                conn.close()
        finally:
            for s in hog:
                s.close()
    held = statuses.count(200)
    expect(held == 32 and statuses.count(503) == 98, f"one address held {held} connections")
    expect(others == [200, 200, 200], f"another address got {others}")
    return f"one address: {held} served, {statuses.count(503)} turned away; another: {others}"


@case("grading server: a connection ends after 100 answers or its time, static files counted")
def grade_connection_limits(tmp: Path) -> str:
    with served(tmp) as url:
        host, port = url.split("//")[1].split("/")[0].split(":")
        request = f"GET /favicon.svg HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        with socket.create_connection((host, int(port)), timeout=10) as s:
            answers = []
            for _ in range(100):
                s.sendall(request)
                answers.append(_read_response(s))
            s.settimeout(5)
            closed = s.recv(1) == b""
    expect([a[0] for a in answers] == [200] * 100, "not every answer was 200")
    expect(answers[-1][1].get("connection") == "close" and closed, "100 answers, still open")
    # its time: the server's own class, with a 1.5 s lifetime (60 s is the default)
    sys.path.insert(0, str(ROOT / "tests"))
    from grading_support import make_session

    from quickdraw_tools.eval.grading.server import GradingApp, make_server

    with make_session(tmp / "t.sqlite", SHARED) as store:
        server = make_server(GradingApp(store), port=0)
        server.connection_timeout = 1.5
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                started, ended = time.monotonic(), None
                while ended is None and time.monotonic() - started < 6:
                    s.sendall(f"GET /app.js HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
                    if _read_response(s)[1].get("connection") == "close":
                        ended = time.monotonic() - started
                    time.sleep(0.3)
        finally:
            server.shutdown()
            server.server_close()
    expect(ended is not None and ended < 3, f"a busy connection lived {ended} s past 1.5 s")
    return f"closed after 100 answers; a busy connection closed {ended:.1f} s into a 1.5 s life"


@case("grading server: white space before a header's colon, a folded header, are 400")
def grade_header_space(tmp: Path) -> str:
    with served(tmp) as url:
        host = url.split("//")[1].split("/")[0]
        statuses = {}
        for name, headers in (("Host :", "Host : x\r\n"),
                              ("Content-Length :", f"Host: {host}\r\nContent-Length : 5\r\n"),
                              ("folded", f"Host: {host}\r\nX-A: 1\r\n b\r\n")):  # fmt: skip
            statuses[name] = raw_request(url, f"GET / HTTP/1.1\r\n{headers}\r\n".encode())[0]
    expect(set(statuses.values()) == {400}, f"answered {statuses}")
    return ", ".join(f"{k} {v}" for k, v in statuses.items())


@case("grading server: an absolute-form target naming another host is refused (421)")
def grade_absolute_form(tmp: Path) -> str:
    with served(tmp) as url:
        host = url.split("//")[1].split("/")[0]
        evil = raw_request(url, f"GET http://evil.example/ HTTP/1.1\r\nHost: {host}\r\n"
                           "Connection: close\r\n\r\n".encode())[0]  # fmt: skip
        own = raw_request(url, f"GET http://{host}/ HTTP/1.1\r\nHost: {host}\r\n"
                          "Connection: close\r\n\r\n".encode())[0]  # fmt: skip
    expect(evil == 421 and own == 200, f"evil.example {evil}, its own host {own}")
    return "http://evil.example/ 421; its own host 200"


def in_namespace(tmp: Path, script: str, ro_after: str = "", size: str = "4m") -> dict:
    """Run `script` (Python printing one JSON line) with a fresh tmpfs at tmp/disk, in a mount
    namespace of its own (so the full or read-only disk is real, and nobody else's)."""
    disk = tmp / "disk"
    disk.mkdir()
    (tmp / "run.py").write_text(script)
    steps = [f"mount -t tmpfs -o size={size} none {disk}"]
    if ro_after:
        (tmp / "first.py").write_text(ro_after)
        steps += [f"{sys.executable} {tmp / 'first.py'}", f"mount -o remount,ro {disk}"]
    steps.append(f"exec {sys.executable} {tmp / 'run.py'}")
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", " && ".join(steps)],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "tests")},
    )  # fmt: skip
    expect(done.returncode == 0, done.stderr[-400:])
    return __import__("json").loads(done.stdout.strip().splitlines()[-1])


@case("grading server: the disk fills while grading: 507 'the disk is full', not 'cannot rollback'")
def grade_disk_full(tmp: Path) -> str:
    disk = tmp / "disk"
    result = in_namespace(
        tmp,
        f"""
import contextlib, io, json, threading, uuid
from pathlib import Path
from grading_support import Client, make_session
from quickdraw_tools.eval.grading.server import GradingApp, make_server
store = make_session(Path({str(disk / "g.sqlite")!r}), Path({str(SHARED)!r}), per_source=30)
server = make_server(GradingApp(store), port=0)
threading.Thread(target=server.serve_forever, daemon=True).start()
client = Client(f"http://127.0.0.1:{{server.server_address[1]}}/")
token = client.request("POST", "/api/raters", {{"name": "ann"}})[1]["rater"]
filler = open({str(disk / "filler")!r}, "wb", buffering=0)
for block in (65536, 512):
    with contextlib.suppress(OSError):
        while True:
            filler.write(bytes(block))
log = io.StringIO()
with contextlib.redirect_stderr(log):
    item = client.request("GET", f"/api/item?rater={{token}}&index=0")[1]
    status, body = client.request("POST", "/api/grades", {{"rater": token, "sketch": item["id"],
                                  "grade": "real", "request_id": uuid.uuid4().hex}})
print(json.dumps({{"status": status, "error": body.get("error"), "log": log.getvalue()}}))
""",
    )
    expect(result["status"] == 507, f"answered {result['status']}")
    expect(result["error"].startswith("the disk is full"), result["error"])
    expect("rollback" not in result["log"] and "the disk is full" in result["log"], result["log"])
    return f"507 '{result['error'][:40]}...'; the log says so once"


@case("grading server: a database on a read-only disk refuses to start: 'cannot write DB'")
def grade_read_only(tmp: Path) -> str:
    db = tmp / "disk" / "g.sqlite"
    make = (f"from pathlib import Path\nfrom grading_support import make_session\n"
            f"make_session(Path({str(db)!r}), Path({str(SHARED)!r})).close()\n")  # fmt: skip
    result = in_namespace(
        tmp,
        f"""
import hashlib, json, subprocess, sys
before = hashlib.sha256(open({str(db)!r}, "rb").read()).hexdigest()
done = subprocess.run([sys.executable, "-m", "quickdraw_tools.cli", "grade", "serve", "--db",
                       {str(db)!r}, "--port", "0"], capture_output=True, text=True, timeout=120)
same = hashlib.sha256(open({str(db)!r}, "rb").read()).hexdigest() == before
print(json.dumps({{"rc": done.returncode, "err": done.stderr, "same": same}}))
""",
        ro_after=make,
    )
    err = result["err"].strip()
    expect(result["rc"] == 1 and len(err.splitlines()) == 1, err)
    expect("cannot write DB" in err and result["same"], err)
    return err[:90] + "..."


@case("grading server: --db on another program's SQLite file is refused; its bytes unchanged")
def grade_foreign_db(tmp: Path) -> str:
    import sqlite3

    db = tmp / "notes.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    done = quickdraw("grade", "serve", "--db", db, "--real", TRAINING / "cake.ndjson",
                     "--generated", TRAINING / "teapot.ndjson", "--port", "0")  # fmt: skip
    one_line_error(done, "is a SQLite database of something else (tables: notes)")
    expect(db.read_bytes() == before, "the file changed")
    expect(sorted(p.name for p in tmp.iterdir()) == ["notes.sqlite"], "files were made beside it")
    return "refused in one line; the same bytes, no -wal or -shm"


@case("convert --workers 100000 (the OOM killer took the machine): refused before any process")
def huge_workers(tmp: Path) -> str:
    done = quickdraw("convert", cake(tmp), "--out", tmp / "out", "--workers", 100000)
    one_line_error(done, "--workers must be 1 to", "(the cores this process may use)")
    expect(not (tmp / "out").exists(), "an output folder was made")
    return done.stderr.strip().split("error: ")[1]


@case("counts with no bound (sample --n, --cols, --steps, evaluate --k, grade report --bootstrap)")
def huge_counts(tmp: Path) -> str:
    run = tiny_run(tmp)
    ckpt, out = run / "last.pt", tmp / "s.svg"
    cases = [
        (("sample", ckpt, "--n", 10**9, "--out", out), "--n must be 1 to 10,000"),
        (("sample", ckpt, "--cols", 10**9, "--out", out), "--cols must be 1 to 10,000"),
        (("sample", ckpt, "--mode", "interpolate", "--steps", 10**9, "--out", out),
         "--steps must be 2 to 10,000"),
        (("evaluate", ckpt, "--data", SHEEP, "--k", 10**9), "--k must be 1 to 10,000"),
        (("grade", "report", "--db", tmp / "g.sqlite", "--bootstrap", 10**9),
         "--bootstrap must be 0 to 20,000"),
    ]  # fmt: skip
    for args, message in cases:
        started = time.monotonic()
        one_line_error(quickdraw(*args), message)
        expect(time.monotonic() - started < 60, f"{args[0]} took long to refuse")
    expect(not out.exists() and not (tmp / "g.sqlite").exists(), "something was written")
    return f"{len(cases)} refused in one line each"


@case("seeds -1, 2**63 and 10**30 are refused alike by every command; 2**63 - 1 works")
def seeds(tmp: Path) -> str:
    run = tiny_run(tmp)
    ckpt = run / "last.pt"
    commands = {
        "convert": ("convert", cake(tmp), "--out", tmp / "c", "--quiet"),
        "sample": ("sample", ckpt, "--n", 2, "--out", tmp / "s.svg"),
        "evaluate": ("evaluate", ckpt, "--data", SHEEP, "--quiet"),
        "judge score": ("judge", "score", ckpt, TRAINING / "cake.ndjson"),
        "grade serve": ("grade", "serve", "--db", tmp / "g.sqlite", "--real", f"{SHEEP}:test",
                        "--generated", ckpt, "--port", 0),
        "train": ("train", "sketch-rnn", "--data", SHEEP, "--out", tmp / "t", "--steps", 1),
    }  # fmt: skip
    for args in commands.values():
        for bad in (-1, 2**63, 10**30):
            one_line_error(
                quickdraw(*args, "--seed", bad),
                f"must be a whole number from 0 to 2**63 - 1, got {bad}",
            )
    for name in ("convert", "sample", "evaluate"):
        done = quickdraw(*commands[name], "--seed", 2**63 - 1)
        expect(done.returncode == 0, f"{name} --seed 2**63-1: {done.stderr[-200:]}")
    return f"{len(commands)} commands refuse them in the same words; the largest seed works"


@case("temperatures inf, -inf, nan, 1e-300, 1e300: refused by sample, grade serve, judge score")
def temperatures(tmp: Path) -> str:
    run = tiny_run(tmp)
    ckpt = run / "last.pt"
    for tau in ("inf", "-inf", "nan", "1e-300", "1e300"):
        for args in (("sample", ckpt, "--out", tmp / "s.svg"),
                     ("grade", "serve", "--db", tmp / "g.sqlite", "--real", f"{SHEEP}:test",
                      "--generated", ckpt, "--port", 0),
                     ("judge", "score", ckpt, TRAINING / "cake.ndjson")):  # fmt: skip
            one_line_error(quickdraw(*args, "--temperature", tau),
                           "--temperature must be from 0.001 to 100")  # fmt: skip
    for tau in ("0.001", "100"):
        done = quickdraw("sample", ckpt, "--n", 4, "--temperature", tau, "--out", tmp / "s.svg")
        expect(done.returncode == 0, f"--temperature {tau}: {done.stderr[-200:]}")
    return "5 values x 3 commands refused; 0.001 and 100 sample"


@case("train --kl-weight nan, --time-limit nan, --lr inf: refused, no run folder")
def nan_training(tmp: Path) -> str:
    for flag, value in (("--kl-weight", "nan"), ("--time-limit", "nan"), ("--lr", "inf")):
        done = quickdraw("train", "sketch-rnn", "--data", SHEEP, "--out", tmp / "t", flag, value)
        one_line_error(done, f"{flag} must be a finite number")
    expect(not (tmp / "t").exists(), "a run folder was made")
    return "3 refused in one line"


@case("convert --split-sizes 0,0,0 and -1,5,5: our one line, not argparse's")
def split_sizes(tmp: Path) -> str:
    for sizes in ("0,0,0", "-1,5,5"):
        done = quickdraw("convert", cake(tmp), "--out", tmp / "o", "--split-sizes", sizes)
        one_line_error(done, f"an empty set is not a dataset), got '{sizes}'")
    expect(not (tmp / "o").exists(), "something was written")
    return "both named, with what is valid"


@case("train --steps 0: says why there is no best.pt, no 'None'")
def zero_steps(tmp: Path) -> str:
    done = quickdraw(
        "train", "sketch-rnn", "--data", SHEEP, "--out", tmp / "run", "--steps", 0, "--enc-size",
        8, "--dec-size", 8, "--z-size", 4, "--num-mixture", 2, "--max-seq-len", 120,
        "--batch-size", 4, "--max-per-category", 300, "--quiet",
    )  # fmt: skip
    expect(done.returncode == 0, done.stderr[-300:])
    expect("None" not in done.stdout + done.stderr, done.stdout)
    expect("no best.pt: no validation ran in 0 step(s)" in done.stdout, done.stdout)
    return done.stdout.strip().splitlines()[-1]


def _npz(path: Path, train) -> Path:
    import pickle

    empty = io.BytesIO()
    np.save(empty, np.empty(0, dtype=object), allow_pickle=True)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": train.shape}
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train.npy", header.getvalue() + pickle.dumps(train, protocol=3))
        zf.writestr("valid.npy", empty.getvalue())
        zf.writestr("test.npy", empty.getvalue())
    return path


def _one(item) -> np.ndarray:
    array = np.empty(1, dtype=object)
    array[0] = item
    return array


@case(".npz nested-list bomb (1 KB that needs 3 GB): refused by its count, in a 1 GB process")
def npz_nested_bomb(tmp: Path) -> str:
    path = _npz(tmp / "bomb.npz", _one([[[0, 0, 1]] * 10_000] * 10_000))
    started = time.monotonic()
    done = limited("svg", path, "--out", tmp / "svg", "--quiet")
    one_line_error(done, "nested lists of more than 300,000 numbers")
    return f"{path.stat().st_size} bytes refused in {time.monotonic() - started:.1f} s"


@case(".npz with a ragged drawing: one line, not a traceback")
def npz_ragged(tmp: Path) -> str:
    path = _npz(tmp / "ragged.npz", _one([[0, 0, 1], [1, 1]]))
    one_line_error(quickdraw("svg", path, "--out", tmp / "svg"), "row 1 is 2 values, not 3")
    return "named: drawing 0, row 1"


@case(".npz of 1,000,000 references to one drawing: limited as the copies would be")
def npz_references(tmp: Path) -> str:
    drawing = np.zeros((5000, 3), dtype=np.int16)
    many = np.empty(1_000_000, dtype=object)
    many[:] = [drawing] * len(many)
    path = _npz(tmp / "refs.npz", many)
    done = limited("svg", path, "--out", tmp / "svg", "--limit", 2)
    one_line_error(done, "bytes of stroke-3 rows")
    return f"a {path.stat().st_size:,}-byte file of 30 GB of drawings refused in 1 GB"


@case("ndjson line of 12,000,000 points: refused in a 512 MB process; no such drawing in a .npz")
def long_line(tmp: Path) -> str:
    xs = ",".join(["255"] * 12_000_000)
    path = tmp / "huge.ndjson"
    good = '{"drawing": [[[0, 10, 20], [0, 5, 9]]]}'
    with open(path, "w") as f:
        f.write(good + "\n" + '{"drawing": [[[' + xs + "], [" + xs + "]]]}\n" + good + "\n")
    done = limited("convert", path, "--out", tmp / "o", "--quiet", memory=512 << 20)
    one_line_error(done, f"{path}:2: malformed line: the line is over 8,388,608 bytes")
    # the same command again, telling its peak memory: VmHWM, the most this process's own
    # memory held (getrusage's maxrss would count what the parent held when it forked)
    peak = subprocess.run(
        [sys.executable, "-c", "import re, sys\nfrom quickdraw_tools.cli import main\n"
         "main(sys.argv[1:])\nstatus = open('/proc/self/status').read()\n"
         "print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))",
         "convert", str(path), "--out", str(tmp / "o"), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    megabytes = int(peak.stdout.split()[-1]) / 1024
    long = list(range(256)) * 400  # 102,400 points: under 8 MiB, over the drawing limit
    path2 = tmp / "long.ndjson"
    path2.write_text(good + "\n" + '{"drawing": [[' + str(long) + ", " + str(long) + "]]}\n")
    one_line_error(quickdraw("convert", path2, "--out", tmp / "o", "--quiet"),
                   f"{path2}:2: the drawing has 102,400 points; at most 100,000")  # fmt: skip
    expect(not (tmp / "o").exists(), "a .npz was written")
    size = path.stat().st_size / 1e6
    return (
        f"a {size:.0f} MB line refused at a peak of {megabytes:.0f} MB (held to 512 MB); a "
        "102,400-point drawing refused"
    )


@case("a file name or --word that is not UTF-8: one line, nothing written")
def not_utf8(tmp: Path) -> str:
    path = tmp / os.fsdecode(b"\xffcake.ndjson")
    path.write_text((TRAINING / "cake.ndjson").read_text().split("\n", 1)[0] + "\n")
    for command in ("convert", "svg"):
        one_line_error(quickdraw(command, path, "--out", tmp / "o", "--quiet"), "is not UTF-8")
    svgs = tmp / "svgs"
    quickdraw("svg", TRAINING / "cake.ndjson", "--limit", 1, "--out", svgs, "--quiet")
    done = subprocess.run(
        [*map(os.fsencode, QUICKDRAW), b"import-svg", os.fsencode(svgs), b"--word", b"\xe9clair",
         b"--out", os.fsencode(tmp / "w.ndjson")], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    one_line_error(done, "--word '\\udce9clair' is not UTF-8 text")
    expect(not (tmp / "o").exists() and not (tmp / "w.ndjson").exists(), "something was written")
    return "convert, svg and import-svg --word refuse them"


@case("control characters in names are escaped in the summary table and the error line")
def control_characters(tmp: Path) -> str:
    lines = (TRAINING / "cake.ndjson").read_text().splitlines()[:30]
    path = tmp / "ca\x1b[31mke\u202e.ndjson"
    path.write_text("\n".join(lines) + "\n")
    done = quickdraw("convert", path, "--out", tmp / "o", "--quiet")
    expect(done.returncode == 0, done.stderr)
    expect("\x1b" not in done.stdout and "ca\\x1b[31mke\\u202e" in done.stdout, done.stdout)
    bad = tmp / "x\n\x1b[2Jy.ndjson"
    bad.write_text(lines[0] + "\n{broken\n")
    done = quickdraw("convert", bad, "--out", tmp / "o2", "--quiet")
    one_line_error(done, "x\\n\\x1b[2Jy.ndjson:2")
    expect("\x1b" not in done.stderr, "a raw escape reached the terminal")
    return "ESC, a newline and U+202E shown escaped"


@case("checkpoint asking for a 10,000,000-unit decoder: refused before any tensor, in 1 GB")
def checkpoint_sizes(tmp: Path) -> str:
    import torch

    run = tiny_run(tmp)
    state = torch.load(run / "last.pt", weights_only=True)
    state["model_config"]["dec_size"] = 10**7
    torch.save(state, tmp / "big.pt")
    for args in (("sample", tmp / "big.pt", "--out", tmp / "s.svg"),
                 ("evaluate", tmp / "big.pt", "--data", SHEEP)):  # fmt: skip
        one_line_error(limited(*args), "big.pt: SketchRNNConfig: dec_size must be 1 to 4,096")
    return "sample and evaluate refuse it in one line, in a 1 GB process"


@case("sample --mode reconstruct with the wrong kind of --input: says what the model takes")
def reconstruct_input(tmp: Path) -> str:
    run = tiny_run(tmp)
    bitmaps = MIRROR / "full/numpy_bitmap/cat.npy"
    done = quickdraw("sample", run / "last.pt", "--mode", "reconstruct", "--input", bitmaps,
                     "--out", tmp / "r.svg")  # fmt: skip
    one_line_error(done, "the sketch-rnn model takes drawings (strokes) as --input",
                   "is a .npy of bitmaps")  # fmt: skip
    return done.stderr.strip().split("error: ")[1][:80] + "..."


@case("convert into a folder that holds another split (--seed): refused in one line, unchanged")
def convert_two_splits(tmp: Path) -> str:
    out = tmp / "data"
    done = quickdraw("convert", TRAINING / "cake.ndjson", "--out", out, "--formats",
                     "sketchrnn,bitmap", "--max-per-category", 200, "--quiet")  # fmt: skip
    expect(done.returncode == 0, done.stderr)
    before = snapshot(out)
    for extra in (("--seed", 3), ("--split-sizes", "150,25,25")):
        done = quickdraw("convert", TRAINING / "cake.ndjson", "--out", out, "--formats", "bitmap",
                         "--max-per-category", 200, "--quiet", *extra)  # fmt: skip
        one_line_error(done, "of another split")
        expect(snapshot(out) == before, "the folder changed")
    return "--seed 3 and other --split-sizes refused; the folder byte for byte as it was"


@case("grading server: a --completion-code that differs from the URL's cc= is refused first")
def grade_two_codes(tmp: Path) -> str:
    done = quickdraw(
        "grade", "serve", "--real", TRAINING / "cake.ndjson", "--generated", f"{SHEEP}:test",
        "--db", tmp / "g.sqlite", "--port", "0", "--completion-code", "OTHER1",
        "--completion-url", "https://app.prolific.com/submissions/complete?cc=C1A2B3C4",
    )  # fmt: skip
    one_line_error(done, "differs from the code")
    expect(not (tmp / "g.sqlite").exists(), "a database was made")
    return "refused in one line, no database: a rater is never shown one code and sent another"


# --- issue 24: crowd studies --------------------------------------------------------------------


def grade_serve(tmp: Path, *extra) -> subprocess.CompletedProcess:
    """`grade serve` of a small new session with `extra` flags (a refusal is expected)."""
    return quickdraw(
        "grade", "serve", "--real", TRAINING / "cake.ndjson", "--generated", f"{SHEEP}:test",
        "--per-source", "3", "--db", tmp / "g.sqlite", "--port", "0", *extra,
    )  # fmt: skip


@case("grading server: MTurk/Prolific ids with control characters or over 64 characters: 400")
def grade_crowd_ids(tmp: Path) -> str:
    sys.path.insert(0, str(ROOT / "tests"))
    from grading_support import Client

    mturk = {"platform": "mturk", "worker_id": "A1B2C3D4E5F6G7", "hit_id": "3" * 30,
             "assignment_id": "3" * 30, "turk_submit_to": "https://www.mturk.com"}  # fmt: skip
    with served(tmp) as url:
        client = Client(url)
        refused = [
            ({"worker_id": "A1\x1b[2JB"}, "control"),
            ({"worker_id": "A" * 65}, "over 64 characters"),
            ({"assignment_id": "ASSIGNMENT_ID_NOT_AVAILABLE"}, "preview"),
            ({"turk_submit_to": "https://evil.example"}, "is not MTurk's"),
        ]
        for bad, word in refused:
            status, r = client.request("POST", "/api/raters", {"name": "", **mturk, **bad})
            expect(status == 400 and word in r["error"], f"{bad}: {status} {r}")
            expect("\n" not in r["error"], f"not one line: {r['error']!r}")
        status, r = client.request("POST", "/api/raters", {"name": "", **mturk})
        expect(status == 201, f"a good id: {status} {r}")
        status, r = client.request("POST", "/api/raters", {"name": "", **mturk})
        expect(status == 409 and "already taken part" in r["error"], f"twice: {status} {r}")
    with sqlite3_connect(tmp / "g.sqlite") as db:
        rows = db.execute("SELECT count(*) FROM raters").fetchone()[0]
    expect(rows == 1, f"{rows} raters stored, not 1")
    return "escape codes, 65 characters, the preview, a foreign turkSubmitTo: 400; twice: 409"


def sqlite3_connect(path: Path):
    import sqlite3

    return contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True))


@case("grade serve --consent a PNG (not text): refused in one line, nothing made")
def grade_consent_binary(tmp: Path) -> str:
    png = tmp / "consent.md"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))
    done = grade_serve(tmp, "--consent", png)
    one_line_error(done, "--consent", "is not text")
    expect(sorted(p.name for p in tmp.iterdir()) == ["consent.md"], "something was made")
    return done.stderr.strip().split("error: ")[1][:90]


@case("grade serve --certfile/--keyfile that do not match, or cannot be read: one line each")
def grade_bad_certificates(tmp: Path) -> str:
    sys.path.insert(0, str(ROOT / "tests"))
    from grading_support import self_signed

    cert, key = self_signed(tmp, "a")
    _, other_key = self_signed(tmp, "b")
    (tmp / "noise.pem").write_bytes(os.urandom(300))
    for args, word in (((cert, other_key), "is not the key of --certfile"),
                       ((tmp / "noise.pem", key), "cannot be used"),
                       ((tmp / "missing.pem", key), "cannot read --certfile")):  # fmt: skip
        done = grade_serve(tmp, "--certfile", args[0], "--keyfile", args[1])
        one_line_error(done, word)
    expect(not (tmp / "g.sqlite").exists(), "a database was made")
    return "another's key, random bytes, a missing file: one line each, no database"


@case("grade serve --study edited after it was written (one point moved): refused, one line")
def grade_edited_study(tmp: Path) -> str:
    import json as json_module

    proc, _ = start_server(["--db", str(tmp / "a.sqlite"), "--real", str(TRAINING / "cake.ndjson"),
                            "--generated", f"{SHEEP}:test", "--per-source", "3"])  # fmt: skip
    stop(proc)
    study = tmp / "a.study.json"
    obj = json_module.loads(study.read_text())
    obj["study"]["pool"][0]["strokes"][0][0] += 1
    study.write_text(json_module.dumps(obj))
    done = quickdraw("grade", "serve", "--db", tmp / "b.sqlite", "--study", study, "--port", "0")
    one_line_error(done, "was changed after it was written")
    expect(not (tmp / "b.sqlite").exists(), "a database was made")
    return done.stderr.strip().split("error: ")[1][:100] + "..."


@case("output folder: journals in our form naming whole folders outside, through links: refused")
def crafted_folder_journals(tmp: Path) -> str:
    mark = '"format": "quickdraw-tools commit journal 1", "staging": ".staging-abcd1234", '
    records = {  # folders are staged whole (PNG folders) and replace their own at the commit
        "dotdot": ('"files": [], "removed": [], "folders": ["png/../../victim"]', None),
        "staged link": ('"files": [], "removed": [], "folders": ["png/cat"]', "png/cat"),
        "replaced link": ('"files": [], "removed": [], "folders": ["png/cat"]', ".replaced"),
        "overlap": ('"files": ["png/cat/x.png"], "removed": [], "folders": ["png/cat"]', None),
    }
    source = cake(tmp)
    (tmp / "victim").mkdir()
    (tmp / "victim" / "precious.txt").write_text("precious")
    for why, (record, link) in records.items():
        out = tmp / why.replace(" ", "-")
        (out / "png" / "cat").mkdir(parents=True)
        (out / "png" / "cat" / "1.png").write_text("ours")
        staging = out / ".staging-abcd1234"
        (staging / "png").mkdir(parents=True)
        if link:
            (staging / link).symlink_to(tmp / "victim")
        (out / ".commit-abcd1234").write_text("{" + mark + record + "}")
        before = tree(tmp)
        done = quickdraw("convert", source, "--formats", "png", "--out", out, "--quiet")
        one_line_error(done, "not a commit journal")
        expect(tree(tmp) == before, f"{why}: something changed")
    return f"{len(records)} crafted journals refused, nothing changed inside or outside"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-k", metavar="WORD", help="only the cases whose name has WORD")
    parser.add_argument("--list", action="store_true", help="print the cases and exit")
    args = parser.parse_args(argv)
    chosen = [(n, f) for n, f in CASES if not args.k or args.k.lower() in n.lower()]
    if args.list:
        print("\n".join(n for n, _ in chosen))
        return 0
    failed = 0
    for name, fn in chosen:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="red-team-") as tmp:
            try:
                detail = fn(Path(tmp))
                verdict = "PASS"
            except Failed as e:
                detail, verdict = str(e), "FAIL"
            except Exception as e:  # a crash of the case itself is a failure too
                where = traceback.format_exc(limit=2).strip().splitlines()[-3:]
                detail, verdict = f"{type(e).__name__}: {e} | {' / '.join(where)}", "FAIL"
        failed += verdict == "FAIL"
        print(f"{verdict}  {name}  ({time.monotonic() - started:.1f} s: {detail})", flush=True)
    print(f"\n{len(chosen)} cases, {failed} failed ({len(chosen) - failed} pass)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
