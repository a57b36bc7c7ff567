"""The grading server against one client that tries to hold it, crafted requests, a disk that
fills or is read-only, and a --db that is someone else's database (issue 20, item 2).

Servers bind 127.0.0.1; other 127.x.y.z source addresses act as other clients. Full and
read-only disks are real: a small tmpfs in a mount namespace of the test's own (`unshare`)."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from grading_support import make_session, session_sources

from quickdraw_tools.cli import main
from quickdraw_tools.eval.grading.server import GradingApp, GradingServer, make_server

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def app(tmp_path, shared):
    with make_session(tmp_path / "grades.sqlite", shared) as store:
        yield GradingApp(store)


@contextlib.contextmanager
def serving(app, **limits):
    """`app` on a free port of 127.0.0.1, with the server's limits set as given."""
    server = make_server(app, port=0)
    for name, value in limits.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def raw(port: int, data: bytes, source: str = "127.0.0.1") -> tuple[int, dict, bytes]:
    """Send `data`, read until the server closes: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), 10, (source, 0)) as s:
        s.sendall(data)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    return int(status.split()[1]), headers, body


def read_response(s: socket.socket) -> tuple[int, dict[str, str]]:
    """One response from a keep-alive socket (status, headers); its body is read and dropped."""
    f = s.makefile("rb")
    status = int(f.readline().split()[1])
    headers = {}
    while (line := f.readline().decode("latin-1").strip()) != "":
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    f.read(int(headers.get("content-length", 0)))
    return status, headers


# --- one client holding the server ------------------------------------------------------------


def test_one_address_cannot_hold_every_connection(app):
    """The issue's attack: 130 keep-alive connections from one address, each asking for the
    (token-free) /favicon.svg every few seconds, held every slot, so every other rater got
    503. Now one address gets at most 32; a rater at another address is served throughout."""
    with serving(app) as (server, port):
        request = f"GET /favicon.svg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        hog, statuses = [], []
        try:
            for _ in range(130):
                s = socket.create_connection(("127.0.0.1", port), 10)
                s.sendall(request)
                status, headers = read_response(s)
                statuses.append(status)
                hog.append(s)
            assert statuses.count(200) == GradingServer.max_per_address == 32
            assert statuses.count(503) == 98
            rounds = []
            for _ in range(3):  # the hog keeps its connections busy; another rater comes in
                for s in hog[:32]:
                    s.sendall(request)
                    read_response(s)
                other = http.client.HTTPConnection("127.0.0.1", port, 10, ("127.0.0.2", 0))
                other.request("GET", "/", headers={"Host": f"127.0.0.1:{port}"})
                rounds.append(other.getresponse().status)
                other.close()
            assert rounds == [200, 200, 200]
        finally:
            for s in hog:
                s.close()
    with serving(app, max_per_address=1) as (server, port):  # the refusal's words
        with socket.create_connection(("127.0.0.1", port), 10):
            time.sleep(0.2)  # accepted: it holds the address's one slot
            status, headers, body = raw(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status == 503 and headers["retry-after"] == "1"
    assert (
        json.loads(body)["error"] == "too many connections from your address: try again in a moment"
    )


def test_a_connection_serves_a_bounded_number_of_requests(app):
    """However busy a client keeps its connection, it is closed after max_requests answers,
    static files counted (the last one says Connection: close)."""
    with serving(app, max_requests=5) as (server, port):
        with socket.create_connection(("127.0.0.1", port), 10) as s:
            request = f"GET /favicon.svg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
            answers = []
            for _ in range(5):
                s.sendall(request)
                answers.append(read_response(s))
            assert [a[0] for a in answers] == [200] * 5
            assert [a[1].get("connection") for a in answers] == [None] * 4 + ["close"]
            s.settimeout(5)
            assert s.recv(1) == b""  # closed by the server


def test_a_connection_is_closed_after_its_time(app):
    """A client asking every 0.3 s (never idle long enough for the idle timeout) is closed
    once connection_timeout has passed."""
    with serving(app, connection_timeout=1.5) as (server, port):
        with socket.create_connection(("127.0.0.1", port), 10) as s:
            request = f"GET /app.js HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
            started, closed = time.monotonic(), None
            while time.monotonic() - started < 6:
                s.sendall(request)
                status, headers = read_response(s)
                if headers.get("connection") == "close":
                    closed = time.monotonic() - started
                    break
                time.sleep(0.3)
            assert closed is not None and 1.4 < closed < 3, closed


# --- crafted requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        "Host : 127.0.0.1\r\n",  # white space before the colon (RFC 9112 section 5.1)
        "Host: 127.0.0.1\r\nContent-Length : 5\r\n",  # a second, hidden length
        "Host: 127.0.0.1\r\nTransfer-Encoding\t: chunked\r\n",
        "Host: 127.0.0.1\r\nX-A: 1\r\n folded\r\n",  # obsolete line folding (section 5.2)
    ],
)
def test_malformed_header_lines_are_400(app, headers):
    with serving(app) as (server, port):
        status, _, body = raw(port, f"GET / HTTP/1.1\r\n{headers}\r\n".encode())
    assert status == 400 and "malformed header line" in json.loads(body)["error"]


def test_absolute_form_targets_are_checked_against_the_allowed_hosts(app):
    """`GET http://evil.example/ HTTP/1.1` names the host the request is for (RFC 9112
    section 3.2.2): it is checked as the Host header is, then served by its path."""
    with serving(app) as (server, port):
        host = f"Host: 127.0.0.1:{port}\r\n"
        for target in ("http://evil.example/", f"http://evil.example:{port}/api/session",
                       f"http://127.0.0.1@evil.example:{port}/"):  # fmt: skip
            status, _, body = raw(port, f"GET {target} HTTP/1.1\r\n{host}\r\n".encode())
            assert status == 421 and "answers only to the hosts" in json.loads(body)["error"]
        status, _, body = raw(port, f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\n{host}\r\n".encode())
        assert status == 200 and b"<html" in body.lower()
        status, _, _ = raw(
            port, f"GET http://localhost/api/session HTTP/1.1\r\n{host}\r\n".encode()
        )
        assert status == 200
        for target in ("*", "127.0.0.1:80", "ftp://127.0.0.1/"):
            status, _, _ = raw(port, f"GET {target} HTTP/1.1\r\n{host}\r\n".encode())
            assert status == 400, target


# --- the database: someone else's, read-only, full ---------------------------------------------


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def serve_args(shared, db: Path) -> list[str]:
    real, generated = session_sources(shared)
    return ["grade", "serve", "--db", str(db), "--real", real, "--generated", generated[1],
            "--per-source", "3", "--port", "0"]  # fmt: skip


def test_a_foreign_sqlite_file_is_refused_before_anything_is_written(shared, tmp_path, capsys):
    """--db naming another program's SQLite database (or no database) is refused in one line,
    with no table created, its journal mode unchanged and its bytes as they were."""
    other = tmp_path / "notes.sqlite"
    with contextlib.closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
        db.execute("INSERT INTO notes VALUES ('mine')")
        db.commit()
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    for path, message in ((other, "is a SQLite database of something else (tables: notes)"),
                          (text, "is not a grading database")):  # fmt: skip
        before = digest(path)
        assert main(serve_args(shared, path)) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.sqlite", "notes.txt"]
    with contextlib.closing(sqlite3.connect(other)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def in_tmpfs(folder: Path, script: str, size: str = "4m", ro_after: str = "") -> dict:
    """Run the Python `script` (which prints one JSON line) with a fresh tmpfs of `size`
    mounted at `folder`, in a mount namespace of its own, so a full or read-only disk is
    real and no one else's. `ro_after`: Python code run first, after which the tmpfs is
    remounted read-only (then the script runs)."""
    runner = Path(folder.parent / f"{folder.name}-run.py")
    runner.write_text(textwrap.dedent(script))
    steps = [f"mount -t tmpfs -o size={size} none {folder}"]
    if ro_after:
        first = Path(folder.parent / f"{folder.name}-first.py")
        first.write_text(textwrap.dedent(ro_after))
        steps += [f"{sys.executable} {first}", f"mount -o remount,ro {folder}"]
    steps.append(f"exec {sys.executable} {runner}")
    folder.mkdir(exist_ok=True)
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", " && ".join(steps)],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "tests")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_full_disk_says_the_disk_is_full(shared, tmp_path):
    """The disk fills while raters grade: the answer is 507 "the disk is full" (it was a 500,
    and the log said "cannot rollback - no transaction is active"), the server says so once,
    every grade stored before is kept, and grading goes on once there is room again. Starting
    a new session on a full disk is one line, and leaves no database behind."""
    disk = tmp_path / "disk"
    result = in_tmpfs(
        disk,
        f"""
        import contextlib, io, json, sys, threading, uuid
        from pathlib import Path
        from grading_support import Client, make_session
        from quickdraw_tools.cli import main
        from quickdraw_tools.eval.grading.server import GradingApp, make_server

        disk = Path({str(disk)!r})
        store = make_session(disk / "g.sqlite", Path({str(shared)!r}), per_source=30)
        app = GradingApp(store)
        server = make_server(app, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        client = Client(f"http://127.0.0.1:{{server.server_address[1]}}/")
        _, rater = client.request("POST", "/api/raters", {{"name": "ann"}})
        token, out = rater["rater"], {{}}

        def grade(i):
            _, it = client.request("GET", f"/api/item?rater={{token}}&index={{i}}")
            return client.request("POST", "/api/grades", {{"rater": token, "sketch": it["id"],
                                  "grade": "real", "request_id": uuid.uuid4().hex}})

        out["before"] = grade(0)[0]
        filler = open(disk / "filler", "wb", buffering=0)
        with contextlib.suppress(OSError):
            while True:
                filler.write(bytes(65536))
        with contextlib.suppress(OSError):
            while True:
                filler.write(bytes(512))
        log = io.StringIO()
        with contextlib.redirect_stderr(log):
            answers = [grade(1) for _ in range(3)] + [client.request("POST", "/api/raters",
                                                                     {{"name": "bob"}})]
        out["full"] = [(status, body.get("error")) for status, body in answers]
        out["log"] = log.getvalue()
        filler.close()
        (disk / "filler").unlink()  # room again
        out["after"] = grade(1)[0]
        out["graded"] = store.graded_count(store.rater(token))
        server.shutdown()
        # a new session on a full disk: one line, no database left behind
        filler = open(disk / "filler2", "wb", buffering=0)
        with contextlib.suppress(OSError):
            while True:
                filler.write(bytes(4096))
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            out["new"] = main({serve_args(shared, disk / "new.sqlite")!r})
        out["new_err"] = err.getvalue()
        out["new_files"] = sorted(p.name for p in disk.iterdir() if p.name.startswith("new"))
        print(json.dumps(out))
    """,
    )
    assert result["before"] == 201
    for status, error in result["full"]:
        assert status == 507, result["full"]
        assert error.startswith("the disk is full: this was not saved"), error
    assert result["log"].count("grading server: the disk is full: ") == 1, result["log"]
    assert "rollback" not in result["log"] and "Traceback" not in result["log"]
    assert result["after"] == 201 and result["graded"] == 2
    assert result["new"] == 1 and result["new_err"].count("\n") == 1, result["new_err"]
    assert "error: the disk is full: " in result["new_err"], result["new_err"]
    assert result["new_files"] == []


def test_a_read_only_database_refuses_to_start_in_one_line(shared, tmp_path):
    """A session database on a read-only disk (or a read-only file): `grade serve` refuses to
    start with "cannot write DB", in one line, and the file is unchanged."""
    disk = tmp_path / "ro"
    make = f"""
import sys; sys.path.insert(0, {str(ROOT / "tests")!r})
from pathlib import Path
from grading_support import make_session
make_session(Path({str(disk / "g.sqlite")!r}), Path({str(shared)!r})).close()
"""
    result = in_tmpfs(
        disk,
        f"""
        import hashlib, json, subprocess, sys
        db = {str(disk / "g.sqlite")!r}
        before = hashlib.sha256(open(db, "rb").read()).hexdigest()
        done = subprocess.run([sys.executable, "-m", "quickdraw_tools.cli", "grade", "serve",
                               "--db", db, "--port", "0"], capture_output=True, text=True,
                              timeout=120)
        after = hashlib.sha256(open(db, "rb").read()).hexdigest()
        print(json.dumps({{"rc": done.returncode, "err": done.stderr, "same": before == after}}))
    """,
        ro_after=make,
    )
    assert result["rc"] == 1 and result["err"].count("\n") == 1, result["err"]
    assert f"error: cannot write DB {disk / 'g.sqlite'}: " in result["err"]
    assert "read-only" in result["err"] and result["same"]


def test_the_per_address_cap_is_below_the_total(shared, tmp_path, capsys):
    """--max-per-address raises the cap for raters behind one NAT, never to the total."""
    for value in ("0", "128"):
        assert main([*serve_args(shared, tmp_path / "g.sqlite"), "--max-per-address", value]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--max-per-address must be 1 to 127" in err, err
    assert not list(tmp_path.iterdir())
