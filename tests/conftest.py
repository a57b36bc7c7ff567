"""Shared fixtures: where the real Quick, Draw! sample data lives."""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import hashlib
import http.server
import os
import re
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest

# Tiny tensors: one intra-op thread per test process is much faster than several
# threads fighting over 2 cores (4 sketch-rnn steps: 3 s instead of 10-20 s under load).
# Set before torch is imported anywhere; subprocesses (DDP, CLI) inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "quickdraw"
MIRROR = SHARED / "mirror"


@pytest.fixture(scope="session")
def shared() -> Path:
    """`../shared/quickdraw`; a test that needs it fails (never skips) when it is missing."""
    assert SHARED.is_dir(), f"real sample data not found at {SHARED} (see README: ../shared)"
    return SHARED


# --- HTTP mirror server (owner: formats/download) -------------------------------------------
# A real HTTP server on 127.0.0.1 (ephemeral port) serving `../shared/quickdraw/mirror/` in the
# official bucket's layout, with HTTP Range support and switches to misbehave, so download code
# is tested against real sockets. Any test may use the `mirror_server` fixture.


@dataclasses.dataclass
class MirrorServer:
    """Handle on the running server: its URL, what it saw, and fault switches.

    Each file is served with an ETag (the quoted hex MD5 of its content, as the bucket does for
    a plain object), a Last-Modified date, and an ``x-goog-hash: crc32c=..., md5=...`` header
    (the base64 MD5 of the whole file, on 206 answers too), and If-Range is honoured: a Range
    request whose If-Range matches neither validator gets a 200 with the whole current file.
    """

    root: Path
    url: str = ""
    # One entry per request: {"method", "path" (as sent, URL-quoted), "range" and "if_range" (the
    # headers, or None), "status"}.
    requests: list[dict] = dataclasses.field(default_factory=list)
    # Bytes of body to send before dropping the connection, one entry per coming GET
    # (consumed in order); `cut_always` applies to every GET once the list is empty.
    cuts: list[int] = dataclasses.field(default_factory=list)
    cut_always: int | None = None
    ignore_range: bool = False  # answer 200 with the whole file even when asked for a range
    # Content served instead of the file on disk, by path under the root
    # ("full/raw/cat.ndjson"): set it between two requests to change the file on the server.
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)
    # Called with each request's entry before the request is answered (it may change `files`).
    on_request: Callable[[dict], None] | None = None
    etag: bool = True  # send an ETag
    last_modified: bool = True  # send Last-Modified: a date derived from the content...
    dates: dict[str, str] = dataclasses.field(default_factory=dict)  # ...or this one for a path
    honour_if_range: bool = True  # False: serve the Range asked for whatever If-Range says
    md5_header: str | None = "x-goog-hash"  # or "Content-MD5" (of the body sent), or None
    wrong_md5: bool = False  # announce the MD5 of other bytes

    def cut_next(self, nbytes: int, times: int = 1) -> None:
        """Drop the connection after `nbytes` of body on the next `times` GETs."""
        self.cuts.extend([nbytes] * times)

    def ranges(self) -> list[str]:
        """The Range headers the server received, in order."""
        return [r["range"] for r in self.requests if r["range"]]

    def if_ranges(self) -> list[str | None]:
        """The If-Range header (or None) of each request that had a Range header, in order."""
        return [r["if_range"] for r in self.requests if r["range"]]

    def content(self, rel: str) -> bytes | None:
        """The bytes served for `rel` (unquoted, under the root) now; None for no such file."""
        if rel in self.files:
            return self.files[rel]
        path = (self.root / rel).resolve()
        if self.root.resolve() not in path.parents or not path.is_file():
            return None
        return path.read_bytes()

    def validators(self, rel: str, data: bytes) -> tuple[str, str]:
        """(ETag, Last-Modified) of `data` served as `rel`: both change when the content does."""
        digest = hashlib.md5(data).hexdigest()
        date = self.dates.get(rel) or email.utils.formatdate(
            1_500_000_000 + int(digest[:7], 16), usegmt=True
        )
        return f'"{digest}"', date


def _mirror_handler(server_state: MirrorServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _serve(self, body: bool) -> None:
            rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
            header = self.headers.get("Range")
            entry = {
                "method": self.command,
                "path": self.path,
                "range": header,
                "if_range": self.headers.get("If-Range"),
                "status": 0,
            }
            server_state.requests.append(entry)
            if server_state.on_request is not None:
                server_state.on_request(entry)
            data = server_state.content(rel)
            if data is None:
                entry["status"] = 404
                self.send_error(404, "Not Found")
                return
            size = len(data)
            etag, date = server_state.validators(rel, data)
            start, end = 0, size - 1
            status = 200
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", header or "")
            if_range = entry["if_range"]
            fresh = if_range is None or not server_state.honour_if_range or if_range in (etag, date)
            if m and fresh and not server_state.ignore_range:
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                if start >= size:
                    entry["status"] = 416
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            entry["status"] = status
            whole, data = data, data[start : end + 1]
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(data)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            if server_state.etag:
                self.send_header("ETag", etag)
            if server_state.last_modified:
                self.send_header("Last-Modified", date)
            if server_state.md5_header:
                goog = server_state.md5_header.lower() == "x-goog-hash"
                hashed = (whole if goog else data) + (b"!" if server_state.wrong_md5 else b"")
                md5 = base64.b64encode(hashlib.md5(hashed).digest()).decode()
                if goog:
                    self.send_header("x-goog-hash", "crc32c=AAAAAA==")
                    self.send_header("x-goog-hash", f"md5={md5}")
                else:
                    self.send_header(server_state.md5_header, md5)
            self.end_headers()
            if not body:
                return
            cut = server_state.cuts.pop(0) if server_state.cuts else server_state.cut_always
            if cut is not None and cut < len(data):
                self.wfile.write(data[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

    return Handler


@pytest.fixture
def mirror_server(shared):
    """A live HTTP server whose root is `../shared/quickdraw/mirror/` (Range supported)."""
    state = MirrorServer(root=MIRROR)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _mirror_handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# --- checkpoints made by the trainer itself ---------------------------------------------------


def train_checkpoint(out: Path, model: str, config: dict, files: list, steps: int = 0, **settings):
    """`RUN_DIR/last.pt` of a tiny `model` trained `steps` steps on `files` by the trainer (with
    ``steps=0``: initial weights, saved as `quickdraw train` saves every checkpoint)."""
    import torch

    from quickdraw_tools.models.base import model_class
    from quickdraw_tools.models.trainer import train

    cls = model_class(model)
    cfg = cls.config_class(**config)
    base = dict(steps=steps, batch_size=4, eval_every=10**6, checkpoint_every=10**6, device="cpu")
    run = cls.settings_class(**{**base, **settings})
    torch.manual_seed(run.seed)
    data = cls.build_datasets(cfg, files, run)
    return train(cls(cfg), data, run, out, progress=False).last_checkpoint
