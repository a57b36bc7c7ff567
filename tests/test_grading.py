"""Human grading sessions: store semantics, request validation, report maths, CLI, durability."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from conftest import train_checkpoint
from grading_support import (
    ROOT,
    Client,
    make_session,
    output,
    session_sources,
    start_server,
    stop,
)

from quickdraw_tools.cli import main
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.eval.grading.report import (
    bootstrap_shares,
    build_report,
    fleiss_kappa,
    format_report,
    krippendorff_alpha_nominal,
    wilson_interval,
    write_chart,
    write_csv,
    write_rater_csv,
)
from quickdraw_tools.eval.grading.server import (
    MAX_BODY,
    GradingApp,
    check_completion_code,
    check_completion_url,
    completion_link,
    make_server,
    session_url,
)
from quickdraw_tools.eval.grading.sources import (
    as_bitmaps,
    build_pool,
    build_session,
    parse_source,
)
from quickdraw_tools.eval.grading.store import GRADES, REAL_SOURCE, GradeStore, Rater, Sketch


@pytest.fixture
def store(tmp_path, shared):
    with make_session(tmp_path / "grades.sqlite", shared) as s:
        yield s


@pytest.fixture
def app(store):
    return GradingApp(store)


def call(app, method, target, body=None, headers=None, raw=None):
    """One request through the app; returns (status, decoded JSON)."""
    hdrs = {"content-type": "application/json"}
    hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    r = app.handle(method, target, hdrs, data)
    return int(r.status), (json.loads(r.body) if r.content_type == "application/json" else r.body)


def new_rater(app, name="ann"):
    status, state = call(app, "POST", "/api/raters", {"name": name})
    assert status == 201, state
    return state["rater"]


def item(app, rater, index):
    status, it = call(app, "GET", f"/api/item?rater={rater}&index={index}")
    assert status == 200, it
    return it


def grade(app, rater, sketch, g, request_id=None):
    body = {"rater": rater, "sketch": sketch, "grade": g, "request_id": request_id or rid()}
    return call(app, "POST", "/api/grades", body)


def rid() -> str:
    return uuid.uuid4().hex


# --- the pool ---------------------------------------------------------------------------------


def test_pool_is_balanced_real_against_generated(store):
    sketches = store.sketches()
    sources = Counter(s.source for s in sketches.values())
    assert sources == {REAL_SOURCE: 6, "aaron_sheep:test": 3, "teapot": 3}
    for s in sketches.values():
        assert s.strokes.ndim == 2 and s.strokes.shape[1] == 3 and len(s.strokes) > 0
    # the real source holds only cakes, so every real sketch is a cake
    assert {s.category for s in sketches.values() if s.source == REAL_SOURCE} == {"cake"}


def test_real_pool_matches_generated_categories(tmp_path, shared):
    real = tmp_path / "real.ndjson"
    lines = []
    for name in ("cake", "snowman"):
        with open(shared / "training" / f"{name}.ndjson") as f:
            lines += [next(f) for _ in range(10)]
    real.write_text("".join(lines))
    generated = [parse_source(str(shared / "training" / "snowman.ndjson"))]
    pool, _ = build_pool(parse_source(str(real)), generated, 4, seed=1)
    assert Counter((s.source, s.category) for s in pool) == {
        ("real", "snowman"): 4,
        ("snowman", "snowman"): 4,
    }


def test_source_errors_name_the_problem(tmp_path, shared):
    with pytest.raises(QuickDrawError, match="name the split as .*splits: "):
        parse_source(str(shared / "other" / "aaron_sheep.npz"))
    with pytest.raises(QuickDrawError, match="did you mean 'test'"):
        parse_source(str(shared / "other" / "aaron_sheep.npz") + ":tset")
    with pytest.raises(
        QuickDrawError, match=r"expected drawings \('.ndjson', '.ndjson.gz', '.jsonl', '.bin'\)"
    ):
        parse_source(str(shared / "README.md"))
    with pytest.raises(QuickDrawError, match="no such file"):
        parse_source(str(tmp_path / "missing.ndjson"))
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"drawing": [[[1, 2], [3, 4]]]}\nnot json\n')
    with pytest.raises(QuickDrawError, match=":2: malformed"):
        build_pool(parse_source(str(bad)), [parse_source(str(bad))], 1)
    one = tmp_path / "one.ndjson"
    one.write_text('{"word": "cake", "drawing": [[[1, 2], [3, 4]]]}\n')
    small = parse_source(str(shared / "other" / "aaron_sheep.npz") + ":test")
    with pytest.raises(QuickDrawError, match="has 1 drawing, fewer than the 5"):
        build_pool(parse_source(str(one)), [small], 5)


# --- the store --------------------------------------------------------------------------------


def test_store_uses_wal_and_full_sync(store):
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_repeated_request_id_is_stored_once(store):
    rater = store.new_rater("ann")
    sketch = rater.order[0]
    assert store.add_grade("req-000001", rater, sketch, "real") is True
    assert store.add_grade("req-000001", rater, sketch, "real") is False
    assert len(store.all_grades()) == 1


def test_reused_request_id_with_other_content_is_a_conflict(store):
    rater = store.new_rater("ann")
    store.add_grade("req-000001", rater, rater.order[0], "real")
    with pytest.raises(QuickDrawError, match="already used"):
        store.add_grade("req-000001", rater, rater.order[0], "fake")
    assert [g[4] for g in store.all_grades()] == ["real"]


def test_changed_grade_keeps_both_rows_and_the_later_counts(store):
    rater = store.new_rater("ann")
    store.add_grade("req-000001", rater, rater.order[0], "real")
    store.add_grade("req-000002", rater, rater.order[0], "fake")
    assert [g[4] for g in store.all_grades()] == ["real", "fake"]
    latest = store.latest_grades()
    assert len(latest) == 1 and latest[0][4] == "fake"
    assert store.graded_count(rater) == 1


def test_raters_get_their_own_random_order_of_unguessable_ids(store):
    ids = store.sketch_ids()
    assert all(len(i) >= 16 and re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in ids)
    raters = [store.new_rater("rater") for _ in range(6)]
    orders = {r.order for r in raters}
    assert all(sorted(o) == sorted(ids) for o in orders)
    assert len(orders) > 1  # 12! orders: six equal ones would be a bug
    assert len({r.token for r in raters}) == 6
    assert all(len(r.token) >= 16 and re.fullmatch(r"[A-Za-z0-9_-]+", r.token) for r in raters)
    assert [r.short_id for r in raters] == [f"r{k}" for k in range(1, 7)]
    assert store.rater(raters[0].token) == raters[0]


def test_second_session_in_one_db_is_refused(store):
    with pytest.raises(QuickDrawError, match="already holds"):
        store.create_session([Sketch("real", "cake", np.zeros((1, 3)))], {})


def test_non_database_file_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("this is not a database " * 100)
    with pytest.raises(QuickDrawError, match="not a grading database"):
        GradeStore(path)


# --- the app: a whole session, blindness, validation -------------------------------------------


def test_whole_session_through_the_api(app, store):
    rater = new_rater(app)
    status, state = call(app, "GET", f"/api/state?rater={rater}")
    assert status == 200 and state == {
        "name": "ann",
        "participant": None,
        "total": 12,
        "graded": 0,
        "done": False,
    }
    it = item(app, rater, 0)
    for i in range(12):
        assert it["index"] == i and it["grade"] is None
        status, r = grade(app, rater, it["id"], GRADES[i % 3])
        assert status == 201 and r["stored"] and r["graded"] == i + 1
        it = r["next"]
    assert it is None and r["done"]
    # the rater comes back with their token (the resume link): at the end, the same order
    status, again = call(app, "GET", f"/api/state?rater={rater}")
    code = store.completion()[0]
    assert status == 200 and again == {
        "name": "ann",
        "participant": None,
        "total": 12,
        "graded": 12,
        "done": True,
        "completion": {"code": code, "url": None},  # shown only now, at the end
    }
    assert re.fullmatch(r"[A-Z2-9]{8}", code) and r["completion"] == again["completion"]
    assert len(store.all_grades()) == 12


def test_page_is_blind(app, store):
    rater = new_rater(app)
    it = item(app, rater, 0)
    # its category too: the same word for real and generated (here none: real cakes stand
    # against sheep and teapots, so naming a category would tell them apart)
    assert set(it) == {"index", "id", "svg", "grade", "category"} and it["category"] is None
    labels = {"real", "aaron", "sheep", "teapot", "cake", "snowman", "npz", "ndjson"}
    for svg in app.svgs.values():
        text = svg.lower()
        assert text.startswith("<svg") and not any(word in text for word in labels)
        # every point rounded to one decimal place, real (integer) or not
        numbers = re.findall(r"-?\d+(?:\.\d+)?", text.split("<g", 1)[-1])
        assert all(len(n.split(".")[-1]) <= 1 or "." not in n for n in numbers)
    for path in ("/", "/app.js", "/style.css"):
        status, body = call(app, "GET", path)
        assert status == 200 and b"teapot" not in body and b"sheep" not in body


def test_back_and_change_a_grade(app, store):
    rater = new_rater(app)
    first = item(app, rater, 0)
    status, r = grade(app, rater, first["id"], "real")
    status, r = grade(app, rater, r["next"]["id"], "fake")
    back = item(app, rater, 0)
    assert back["id"] == first["id"] and back["grade"] == "real"
    status, r = grade(app, rater, first["id"], "possibly_real")
    assert status == 201 and r["graded"] == 2 and r["next"]["index"] == 1
    assert r["next"]["grade"] == "fake"
    rows = [g[4] for g in store.all_grades()]
    assert rows == ["real", "fake", "possibly_real"]
    assert sorted(g[4] for g in store.latest_grades()) == ["fake", "possibly_real"]


def test_double_submission_is_stored_once(app, store):
    rater = new_rater(app)
    it = item(app, rater, 0)
    same = rid()
    first = grade(app, rater, it["id"], "real", same)
    second = grade(app, rater, it["id"], "real", same)
    assert first[0] == 201 and first[1]["stored"]
    assert second[0] == 200 and not second[1]["stored"] and second[1]["graded"] == 1
    assert len(store.all_grades()) == 1
    status, r = grade(app, rater, it["id"], "fake", same)
    assert status == 409 and "already used" in r["error"]
    assert len(store.all_grades()) == 1


def bad_requests(rater, sketch, other_sketch):
    ok = {"rater": rater, "sketch": sketch, "grade": "real", "request_id": "abcdefgh1234"}
    too_big = json.dumps({**ok, "pad": "x" * MAX_BODY}).encode()
    return [
        ("POST", "/api/grades", {**ok, "sketch": "AAAAAAAAAAAAAAAA"}, None, 404, "unknown sketch"),
        ("POST", "/api/grades", {**ok, "sketch": "../../etc/passwd"}, None, 404, "unknown sketch"),
        ("POST", "/api/grades", {**ok, "grade": "maybe"}, None, 400, "unknown grade"),
        ("POST", "/api/grades", {**ok, "grade": 1}, None, 400, "must be strings"),
        ("POST", "/api/grades", {**ok, "rater": "nobody-at-all"}, None, 404, "unknown rater"),
        ("POST", "/api/grades", {**ok, "request_id": "x"}, None, 400, "request_id"),
        ("POST", "/api/grades", {**ok, "extra": "1"}, None, 400, "unknown extra"),
        ("POST", "/api/grades", {"rater": rater}, None, 400, "missing sketch"),
        ("POST", "/api/grades", {**ok, "sketch": other_sketch}, None, 409, "in order"),
        ("POST", "/api/grades", None, b"{not json", 400, "not valid JSON"),
        ("POST", "/api/grades", None, b"\xff\xfe", 400, "not valid JSON"),
        ("POST", "/api/grades", None, b"[1, 2]", 400, "JSON object"),
        ("POST", "/api/grades", None, too_big, 413, "body over"),
        ("POST", "/api/raters", {"name": ""}, None, 400, "1 to 60"),
        ("POST", "/api/raters", {"name": "x" * 61}, None, 400, "1 to 60"),
        ("POST", "/api/raters", {"name": "a\x00b"}, None, 400, "printable"),
        ("GET", "/api/grades", None, None, 405, "not allowed"),
        ("POST", "/", {}, None, 405, "use GET"),
        ("GET", "/api/item?rater=" + rater + "&index=-1", None, None, 400, "whole number"),
        ("GET", "/api/item?rater=" + rater + "&index=5", None, None, 404, "graded 0 of 12"),
        ("GET", "/api/item?rater=" + rater + "&index=1&index=2", None, None, 400, "once"),
        ("GET", "/api/state", None, None, 400, "expected query"),
        ("GET", "/static/../store.py", None, None, 404, "no such page"),
        ("GET", "/../../../etc/passwd", None, None, 404, "no such page"),
        ("GET", "/eval/grading/store.py", None, None, 404, "no such page"),
        ("GET", "/index.html", None, None, 404, "no such page"),
    ]


def test_invalid_requests_are_4xx_and_change_nothing(app, store):
    rater = new_rater(app)
    sketch, later = item(app, rater, 0)["id"], store.rater(rater).order[3]
    before = (store.all_grades(), store.counts())
    for method, path, body, raw, status, message in bad_requests(rater, sketch, later):
        got, r = call(app, method, path, body, raw=raw)
        assert got == status, (method, path, body, raw, r)
        assert message in r["error"], (path, r)
        assert (store.all_grades(), store.counts()) == before


def test_wrong_content_type_is_refused(app, store):
    rater = new_rater(app)
    sketch = item(app, rater, 0)["id"]
    body = {"rater": rater, "sketch": sketch, "grade": "real", "request_id": rid()}
    status, r = call(app, "POST", "/api/grades", body, headers={"Content-Type": "text/plain"})
    assert status == 415 and store.all_grades() == []


def test_token_is_required_on_the_api(store):
    app = GradingApp(store, token="s3cret-token")
    assert call(app, "GET", "/")[0] == 200  # the page itself holds nothing secret
    assert call(app, "GET", "/api/session")[0] == 403  # nor do its examples reach a stranger
    status, r = call(app, "POST", "/api/raters", {"name": "ann"})
    assert status == 403 and "token" in r["error"] and store.counts()["raters"] == 0
    status, r = call(
        app, "POST", "/api/raters", {"name": "ann"}, headers={"X-Grading-Token": "wrong-token"}
    )
    assert status == 403 and store.counts()["raters"] == 0
    status, r = call(
        app, "POST", "/api/raters", {"name": "ann"}, headers={"X-Grading-Token": "s3cret-token"}
    )
    assert status == 201


def test_non_loopback_host_needs_a_token(app):
    with pytest.raises(QuickDrawError, match="--token"):
        make_server(app, host="0.0.0.0", port=0)
    server = make_server(app, host="127.0.0.1", port=0)
    server.server_close()


# --- over real HTTP: the socket layer, and a killed server --------------------------------------


@pytest.fixture
def served(tmp_path, shared):
    db = tmp_path / "grades.sqlite"
    make_session(db, shared).close()
    proc, url = start_server(["--db", str(db)])
    yield db, url, proc
    stop(proc)


def test_http_layer_rejects_bad_bodies(served):
    db, url, _ = served
    client = Client(url)
    status, r = client.request("POST", "/api/raters", {"name": "ann"})
    assert status == 201
    port = int(url.rsplit(":", 1)[1].strip("/"))
    cases = [  # raw requests the JSON client would never send
        (f"Content-Length: {MAX_BODY + 1}\r\n", 413),
        ("Transfer-Encoding: chunked\r\n", 411),
        ("", 411),
        ("Content-Length: abc\r\n", 400),
    ]
    for header, expected in cases:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(
                b"POST /api/grades HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\n" + header.encode() + b"\r\n"
            )
            head = s.recv(4096).decode()
        assert head.startswith(f"HTTP/1.1 {expected}"), (header, head)
    status, page = client.request("GET", "/")
    assert status == 200 and b"Real or fake?" in page
    client.close()
    with GradeStore(db) as store:
        assert store.all_grades() == []


def test_killed_server_loses_no_committed_grade(served):
    db, url, proc = served
    acked: list[str] = []
    stop_flag = threading.Event()

    kim: list[str] = []

    def rate():
        client = Client(url)
        _, me = client.request("POST", "/api/raters", {"name": "kim"})
        kim.append(me["rater"])
        it, rounds = client.request("GET", f"/api/item?rater={me['rater']}&index=0")[1], 0
        while not stop_flag.is_set():
            request_id = rid()
            body = {"rater": me["rater"], "sketch": it["id"], "grade": GRADES[rounds % 3]}
            try:
                status, r = client.request(
                    "POST", "/api/grades", {**body, "request_id": request_id}
                )
            except (OSError, http.client.HTTPException):
                return  # the server is gone (refused, reset, or killed mid-response)
            assert status in (200, 201), r
            acked.append(request_id)
            rounds += 1
            # walk the order, then keep changing grades on the last sketch: never runs dry
            it = r["next"] or it

    worker = threading.Thread(target=rate)
    worker.start()
    while len(acked) < 20 and worker.is_alive():
        threading.Event().wait(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    stop_flag.set()
    worker.join(30)
    assert len(acked) >= 20
    with GradeStore(db) as store:
        stored = [g[1] for g in store.all_grades()]
        assert set(acked) <= set(stored)  # every acknowledged grade survived
        assert len(stored) <= len(acked) + 1  # at most one committed but never acknowledged
        assert len(set(stored)) == len(stored)
        assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # and the session resumes: the same command serves it again, and kim's token continues
    proc2, url2 = start_server(["--db", str(db)])
    try:
        status, state = Client(url2).request("GET", f"/api/state?rater={kim[0]}")
        assert status == 200 and state["graded"] == min(12, len(set(stored)))
    finally:
        stop(proc2)


# --- security: hosts, methods, nesting, rater identity, the thread cap ------------------------


@contextmanager
def serving(app, **kwargs):
    """`app` served in this process on a free port, so a test can change the server's limits."""
    server = make_server(app, port=0, **kwargs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the reply until the server closes: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def send(port, host, path="/", method="GET", headers="", body=""):
    """One raw request with `Host: host` (none if None), answered and closed."""
    host_line = "" if host is None else f"Host: {host}\r\n"
    head = f"{method} {path} HTTP/1.1\r\n{host_line}{headers}Connection: close\r\n\r\n"
    return exchange(port, (head + body).encode())


def post_name(port, host, name="mallory"):
    body = json.dumps({"name": name})
    length = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return send(port, host, "/api/raters", "POST", length, body)


def test_only_the_hosts_the_server_was_started_for_are_served(app, store):
    with serving(app) as server:
        port = server.server_address[1]
        for host in ("127.0.0.1", f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST."):
            assert send(port, host)[0] == 200, host
        assert post_name(port, f"[::1]:{port}")[0] == 201
        # a page of evil.example that rebinds its name to 127.0.0.1 still sends its own name
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "::1"):
            status, _, reply = post_name(port, host)
            error = json.loads(reply)["error"]
            assert status == 421 and "127.0.0.1" in error and "localhost" in error, (host, error)
            assert len(error.splitlines()) == 1
        status, _, reply = send(port, None)
        assert status == 400 and "Host" in json.loads(reply)["error"]
        assert send(port, "127.0.0.1", headers="Host: evil.example\r\n")[0] == 400
    assert store.counts()["raters"] == 1


def test_wildcard_address_answers_to_its_link_and_allowed_hosts(store):
    app = GradingApp(store, token="s3cret-token")
    with serving(app, host="0.0.0.0", allowed_hosts=["Grading.Example.org"]) as server:
        port = server.server_address[1]
        link = urlsplit(session_url(server, "0.0.0.0", "s3cret-token"))
        for host in (link.netloc, "grading.example.org", f"grading.example.org:{port}"):
            assert send(port, host)[0] == 200, host
        status, _, reply = send(port, "evil.example")
        assert status == 421 and "grading.example.org" in json.loads(reply)["error"]
    with pytest.raises(QuickDrawError, match="--allowed-host 'http://x/'"):
        make_server(app, host="0.0.0.0", port=0, allowed_hosts=["http://x/"])


def test_only_get_and_post_are_answered(app, store):
    with serving(app) as server:
        port = server.server_address[1]
        for method in ("TRACE", "CONNECT", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "BREW"):
            status, headers, body = send(port, "127.0.0.1", method=method)
            assert status == 405 and headers["allow"] == "GET, POST", (method, status, headers)
            if method != "HEAD":
                assert "use GET or POST" in json.loads(body)["error"]
        twice = "Content-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 2\r\n"
        status, _, body = send(port, "127.0.0.1", "/api/raters", "POST", twice, "{}")
        assert status == 400 and "one Content-Length" in json.loads(body)["error"]
        status, _, body = send(port, "127.0.0.1", "/", "GET", "Content-Length: 3\r\n", "GET")
        assert status == 400 and "no body" in json.loads(body)["error"]
        status, headers, body = exchange(port, b"GET / / HTTP/1.1\r\n\r\n")
        assert status == 400 and headers["content-type"] == "application/json"
        assert "Bad request" in json.loads(body)["error"]
    assert store.counts()["raters"] == 0


def test_deeply_nested_json_is_refused(app, store):
    arrays = b'{"name": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    objects = b'{"name": ' + b'{"a":' * 600 + b"1" + b"}" * 600 + b"}"
    for body in (arrays, objects):
        assert len(body) <= MAX_BODY
        status, r = call(app, "POST", "/api/raters", raw=body)
        assert status == 400 and "nested" in r["error"], r
    assert store.counts()["raters"] == 0


def test_threads_are_capped_and_slow_clients_time_out(app):
    with serving(app) as server:
        server.max_connections, server.idle_timeout, server.request_timeout = 16, 1.0, 1.0
        port = server.server_address[1]
        baseline = threading.active_count()
        loris = socket.create_connection(("127.0.0.1", port), timeout=5)
        idle: list[socket.socket] = []
        try:
            # a slow-loris client: a byte every 0.1 s, faster than any per-read timeout
            dribble = itertools.chain(b"GET / HTTP/1.1\r\nX-Pad: ", itertools.repeat(ord("a")))
            loris.sendall(bytes([next(dribble)]))
            started = time.monotonic()
            idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(100)]
            most, loris_closed = 0, None
            while loris_closed is None and time.monotonic() - started < 4:
                time.sleep(0.1)
                most = max(most, threading.active_count() - baseline)
                try:
                    loris.sendall(bytes([next(dribble)]))
                    if select.select([loris], [], [], 0)[0]:
                        loris.recv(4096)
                        loris_closed = time.monotonic() - started
                except OSError:
                    loris_closed = time.monotonic() - started
            assert most <= 16, f"{most} threads for 101 connections"
            assert loris_closed is not None and loris_closed < 3, loris_closed
            deadline = time.monotonic() + 5  # the idle sockets time out, a normal client gets in
            while True:
                try:
                    status = send(port, "127.0.0.1")[0]
                except OSError:
                    status = None
                if status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert status == 200
            assert threading.active_count() - baseline <= 16
        finally:
            loris.close()
            for s in idle:
                s.close()


def test_a_name_always_starts_a_new_rater(app, store):
    status, first = call(app, "POST", "/api/raters", {"name": "ann"})
    assert status == 201 and first["graded"] == 0
    grade(app, first["rater"], item(app, first["rater"], 0)["id"], "real")
    status, second = call(app, "POST", "/api/raters", {"name": "ann"})
    assert status == 201 and second["rater"] != first["rater"] and second["graded"] == 0
    assert store.counts()["raters"] == 2
    # resuming is by the secret token, which only the creating request was told
    for token, graded in ((first["rater"], 1), (second["rater"], 0)):
        status, state = call(app, "GET", f"/api/state?rater={token}")
        assert status == 200 and state == {
            "name": "ann",
            "participant": None,
            "total": 12,
            "graded": graded,
            "done": False,
        }


def test_names_are_nfkc_normalised_and_printable(app, store):
    status, r = call(app, "POST", "/api/raters", {"name": "  Ｇｒａｃｅ\u3000\u00a0Hopper\t "})
    assert status == 201 and r["name"] == "Grace Hopper"
    for bad in ("", " \t ", "\u200b", "a\u202eb", "a\u200bb", "\ufdfa" * 4, "x" * 61):
        status, r = call(app, "POST", "/api/raters", {"name": bad})
        assert status == 400 and "1 to 60 printable characters" in r["error"], bad
    assert store.counts()["raters"] == 1


def test_report_tells_look_alike_raters_apart(app, store, capsys):
    latin, cyrillic = "anna", "\u0430nna"  # the second begins with a Cyrillic a
    tokens = [new_rater(app, name) for name in (latin, cyrillic, latin)]
    for token in tokens[:2]:  # the third never grades
        grade(app, token, item(app, token, 0)["id"], "real")
    report = build_report(store)
    assert report["progress"] == [
        {"rater": "r1", "name": latin, "graded": 1},
        {"rater": "r2", "name": cyrillic, "graded": 1},
    ]
    text = format_report(report)
    assert f"r1  {latin}  1/12" in text and f"r2  {cyrillic}  1/12" in text
    assert main(["grade", "report", "--db", str(store.path), "--json"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed)["progress"] == report["progress"]
    assert not any(token in text + printed for token in tokens)


def test_cli_allowed_host(tmp_path, shared):
    db = tmp_path / "grades.sqlite"
    make_session(db, shared).close()
    proc, url = start_server(["--db", str(db), "--allowed-host", "grading.example.org"])
    try:
        port = urlsplit(url).port
        assert send(port, f"grading.example.org:{port}")[0] == 200
        assert send(port, urlsplit(url).netloc)[0] == 200
        status, _, body = send(port, "other.example.org")
        assert status == 421 and "grading.example.org" in json.loads(body)["error"]
    finally:
        stop(proc)


OLD_RATERS = """CREATE TABLE raters (token TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    created REAL NOT NULL, sketch_order TEXT NOT NULL)"""


def test_database_from_before_resume_tokens_keeps_working(tmp_path, shared):
    db = tmp_path / "old.sqlite"
    make_session(db, shared).close()
    old = sqlite3.connect(db)  # as such a file was made: one rater per name, one grade
    old.execute("DROP TABLE raters")
    old.execute(OLD_RATERS)
    ids = [r[0] for r in old.execute("SELECT id FROM sketches ORDER BY position")]
    old.execute("INSERT INTO raters VALUES ('old-token-123', 'ann', 0, ?)", (json.dumps(ids),))
    old.execute(
        "INSERT INTO grades (request_id, rater, sketch, grade, created) "
        "VALUES ('req-00000001', 'old-token-123', ?, 'fake', 0)",
        (ids[0],),
    )
    old.commit()
    old.close()
    with GradeStore(db) as store:
        app = GradingApp(store)
        status, state = call(app, "GET", "/api/state?rater=old-token-123")
        assert status == 200 and state["graded"] == 1 and state["name"] == "ann"
        assert new_rater(app, "ann") != "old-token-123"  # the name no longer finds anyone
        assert build_report(store)["progress"] == [{"rater": "r1", "name": "ann", "graded": 1}]
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert check.execute("PRAGMA foreign_key_check").fetchall() == []
    check.close()


# --- the report --------------------------------------------------------------------------------


def test_wilson_interval_against_hand_computed_values():
    # 8 of 10: p = 0.8, z^2 = 3.8415; centre = (0.8 + 0.19207) / 1.38415 = 0.71681,
    # half = (1.95996 / 1.38415) * sqrt(0.016 + 0.0096037) = 0.22658
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.49016, abs=1e-5) and hi == pytest.approx(0.94332, abs=1e-5)
    # 0 of 20: lower bound 0, upper z^2 / (n + z^2) = 3.8415 / 23.8415 = 0.16112
    assert wilson_interval(0, 20) == pytest.approx((0.0, 0.16112), abs=1e-5)
    # symmetric around 1/2 for k = n / 2: 5 of 10 -> 0.5 -/+ 0.26340 ... 0.23659, 0.76341
    assert wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_fleiss_kappa_against_known_values():
    # Two raters, three items: agree, agree, disagree. P_i = 1, 1, 0 -> P = 2/3;
    # p_j = (1/2, 1/2, 0) -> P_e = 1/2; kappa = (2/3 - 1/2) / (1/2) = 1/3.
    assert fleiss_kappa([[2, 0, 0], [0, 2, 0], [1, 1, 0]]) == pytest.approx(1 / 3)
    # Fleiss (1971) as worked on Wikipedia: 10 items, 14 raters, 5 categories -> 0.210
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    assert fleiss_kappa(table) == pytest.approx(0.20993, abs=1e-5)
    assert fleiss_kappa([[2, 0], [0, 2]]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        fleiss_kappa([[2, 0], [1, 0]])


def test_krippendorff_alpha_against_known_values():
    # Two raters: (a, a), (b, b), (a, b). Coincidences o_aa = o_bb = 2, o_ab = o_ba = 1;
    # n_a = n_b = 3, n = 6; alpha = 1 - (n - 1) * 2 / (2 * 3 * 3) = 1 - 10/18 = 4/9.
    assert krippendorff_alpha_nominal([["a", "a"], ["b", "b"], ["a", "b"]]) == pytest.approx(4 / 9)
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers,
    # 12 units with missing values, nominal alpha = 0.743.
    rows = [
        "1 2 3 3 2 1 4 1 2 . . .",
        "1 2 3 3 2 2 4 1 2 5 . 3",
        ". 3 3 3 2 3 4 2 2 5 1 .",
        "1 2 3 3 2 4 4 1 2 5 1 .",
    ]
    table = [r.split() for r in rows]
    units = [[r[u] for r in table if r[u] != "."] for u in range(12)]
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.7434, abs=1e-4)
    assert np.isnan(krippendorff_alpha_nominal([["a", "a"], ["a", "a"]]))
    assert np.isnan(krippendorff_alpha_nominal([["a"], ["b"]]))


def grade_everything(store, plan):
    """plan: rater name -> function(sketch) -> grade; every rater grades the whole pool.
    Returns the raters by name."""
    sketches = store.sketches()
    raters = {}
    for name, choose in plan.items():
        raters[name] = rater = store.new_rater(name)
        for sid in rater.order:
            store.add_grade(rid(), rater, sid, choose(sketches[sid]))
    return raters


def test_report_counts_intervals_verdicts_and_agreement(store, tmp_path):
    sheep = "aaron_sheep:test"

    def ann(s):  # real -> real; sheep -> possibly real; teapot -> fake
        return {"real": "real", sheep: "possibly_real"}.get(s.source, "fake")

    def bob(s):  # the same, except sheep -> fake
        return "real" if s.source == "real" else "fake"

    rater = grade_everything(store, {"ann": ann, "bob": bob})["bob"]
    # bob changes his mind on one sheep: fake -> real
    first_sheep = next(sid for sid in rater.order if store.sketches()[sid].source == sheep)
    store.add_grade(rid(), rater, first_sheep, "real")

    report = build_report(store)
    rows = {(r["source"], r["category"]): r for r in report["groups"]}
    real = rows["real", "all"]
    assert (real["n"], real["real"], real["possibly_real"], real["fake"]) == (12, 12, 0, 0)
    s = rows[sheep, "all"]
    assert (s["n"], s["real"], s["possibly_real"], s["fake"]) == (6, 1, 3, 2)
    assert s["frac_real_or_possibly"] == pytest.approx(4 / 6)
    assert (s["frac_fake_lo"], s["frac_fake_hi"]) == pytest.approx(wilson_interval(2, 6))
    t = rows["teapot", "all"]
    assert (t["n"], t["fake"]) == (6, 6)
    # a source of one category has no per-category rows: they would repeat its overall row
    assert {c for _, c in rows} == {"all"}
    verdicts = {v["model"]: v for v in report["verdicts"]}
    assert verdicts[sheep]["passes"] and not verdicts[sheep]["passes_at_95"]
    assert not verdicts["teapot"]["passes"] and "half or fewer" in verdicts["teapot"]["reason"]
    assert report["raters"] == 2 and report["gradings"] == 24 and report["grade_rows"] == 25
    assert report["progress"] == [
        {"rater": "r1", "name": "ann", "graded": 12},
        {"rater": "r2", "name": "bob", "graded": 12},
    ]

    # ann and bob agree on the 6 real sketches and the 3 teapots, not on the 3 sheep
    latest: dict[str, list[str]] = {}
    for _name, sid, _source, _category, g, _token in store.latest_grades():
        latest.setdefault(sid, []).append(g)
    units = list(latest.values())
    assert sum(len(set(u)) == 1 for u in units) == 9
    a = report["agreement"]
    assert a["krippendorff_alpha"] == pytest.approx(krippendorff_alpha_nominal(units))
    table = [[u.count(g) for g in GRADES] for u in units]
    assert a["fleiss_kappa"] == pytest.approx(fleiss_kappa(table))
    assert a["fleiss_units"] == 12 and a["alpha_units"] == 12

    text = format_report(report)
    assert "aaron_sheep:test" in text and "PASSES" in text and "fails" in text
    write_csv(report, tmp_path / "out.csv")
    write_chart(report, tmp_path / "chart.png")
    import pandas as pd

    frame = pd.read_csv(tmp_path / "out.csv")
    assert {"source", "category", "n", "frac_real_lo", "frac_fake_hi"} <= set(frame.columns)
    assert len(frame) == len(report["groups"])
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_per_category_and_the_real_condition(tmp_path):
    def sketch(source, category):
        return Sketch(source, category, np.array([[0, 0, 0], [10, 5, 1]]))

    pool = [sketch("real", c) for c in ("cake", "cake", "snowman", "snowman")]
    pool += [sketch("m", "cake"), sketch("m", "snowman")]
    with GradeStore(tmp_path / "g.sqlite") as store:
        store.create_session(pool, {"labels": ["m"]})
        grade_everything(  # everything looks real except real snowmen; the model's too
            store,
            {"ann": lambda s: "fake" if (s.source, s.category) == ("real", "snowman") else "real"},
        )
        report = build_report(store)
    rows = {(r["source"], r["category"]): r for r in report["groups"]}
    assert set(rows) == {
        ("real", "all"),
        ("real", "cake"),
        ("real", "snowman"),
        ("m", "all"),
        ("m", "cake"),
        ("m", "snowman"),
    }
    assert rows["real", "snowman"]["fake"] == 2 and rows["real", "cake"]["real"] == 2
    assert rows["m", "all"]["frac_real"] == 1.0
    # the model looks perfect, but real sketches are only half graded real: no pass
    (verdict,) = report["verdicts"]
    assert not verdict["passes"] and "cannot tell" in verdict["reason"]
    assert report["categories"] == ["cake", "snowman"] and report["pool"] == 6


# --- the CLI and the load-test script ----------------------------------------------------------


def test_cli_report(store, tmp_path, capsys):
    grade_everything(store, {"ann": lambda s: "real", "bob": lambda s: "fake"})
    csv, png = tmp_path / "r.csv", tmp_path / "r.png"
    db = str(store.path)
    assert (
        main(["grade", "report", "--db", db, "--json", "--csv", str(csv), "--chart", str(png)]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["raters"] == 2 and report["agreement"]["fleiss_kappa"] == pytest.approx(-1.0)
    assert csv.is_file() and png.is_file()
    assert main(["grade", "report", "--db", db]) == 0
    assert "Pass criterion" in capsys.readouterr().out


def broken_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint file with a key missing (it used to fail after the database was made)."""
    import torch

    path = tmp_path / "broken.pt"
    torch.save({"format_version": 2, "model": "sketch-rnn", "weights": {}}, path)
    return path


def test_cli_errors_are_one_line(tmp_path, shared, capsys):
    db = tmp_path / "g.sqlite"
    assert main(["grade", "report", "--db", str(db)]) == 1
    assert "no such grading database" in capsys.readouterr().err
    real, generated = session_sources(shared)
    args = ["grade", "serve", "--db", str(db), "--real", real, "--per-source", "2"]
    for extra, message in [
        (["--generated", generated[0], "--host", "0.0.0.0"], "--token"),
        (["--generated", generated[0], "--token", "short"], "at least 8"),
        (["--generated", generated[0], "--port", "70000"], "0-65535"),
        (["--generated", generated[0], "--allowed-host", "http://x/"], "--allowed-host 'http"),
        ([], "at least one --generated"),
        (["--generated", str(shared / "README.md")], "expected drawings ('.ndjson'"),
        (["--generated", str(tmp_path / "none.ndjson")], "no such file"),
        (
            ["--generated", generated[0], "--per-source", "0"],
            "--per-source must be 1 to 10,000, got 0",
        ),
        (
            ["--generated", generated[0], "--temperature", "0"],
            "--temperature must be from 0.001 to 100",
        ),
        (["--generated", str(broken_checkpoint(tmp_path))], "has no 'model_config'"),
    ]:
        assert main([*args, *extra]) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (extra, err)
    assert not db.exists()  # a refusal leaves no (empty) database behind
    make_session(db, shared).close()
    assert main([*args, "--generated", generated[1]]) == 1
    assert "already holds a session" in capsys.readouterr().err


def test_cli_help_explains(capsys):
    with pytest.raises(SystemExit):
        main(["grade", "serve", "--help"])
    out = capsys.readouterr().out
    assert "--per-source" in out and "possibly real" in out and "npz:SPLIT" in out
    assert "--allowed-host NAME" in out and "resume" in out and "DNS rebinding" in out
    # the example is copy-pasteable: its line break is a shell continuation, not lost
    assert "best.pt \\\n      --per-source 50" in out
    for flag in ("--gold-real SOURCE", "--gold-fake SOURCE", "--exposure-ms MS", "--examples N"):
        assert flag in out, flag
    assert "--completion-url URL" in out and "PROLIFIC_PID" in out and "?participant=" in out
    assert "fewer than 75%" in out
    with pytest.raises(SystemExit):
        main(["grade", "report", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "fails the checks (is flagged) when they grade fewer than --min-gold-accuracy" in out
    assert "(default 0.75, i.e. 75%)" in out and "No rater is ever dropped silently" in out
    assert "--raters-csv OUT.csv" in out and "two-level" in out and "--bootstrap N" in out


def test_load_test_script_small(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "scripts/load_test_grading.py",
            "--raters",
            "4",
            "--grades",
            "80",
            "--keep",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # over HTTPS, on both layers: | layer | grades | ... | median | p99 | max | lost | duplicated |
    for layer in ("stdlib", "asgi"):
        assert re.search(
            rf"\| {layer} \| 80 \| 8 \| \d+ \| [\d.]+ s \| \d+ \| [\d.]+ ms \| [\d.]+ ms \| "
            r"[\d.]+ ms \| 0 \| 0 \|",
            result.stdout,
        ), result.stdout
        with GradeStore(tmp_path / f"{layer}.sqlite") as store:
            assert len(store.latest_grades()) == 80 and store.counts()["raters"] == 4


# --- checkpoints as sources --------------------------------------------------------------------


def cat_bitmaps(shared: Path) -> Path:
    return shared / "mirror" / "full" / "numpy_bitmap" / "cat.npy"


def tiny_checkpoint(tmp_path: Path, name: str, config: dict, files: list) -> Path:
    """An untrained tiny model on real `files`, saved by the trainer as `quickdraw train` does."""
    return train_checkpoint(tmp_path / name, name, config, files, max_per_category=60)


TINY_SKETCH_RNN = dict(max_seq_len=120, enc_size=8, dec_size=16, z_size=4, num_mixture=2)
TINY_DRAW = dict(T=2, enc_size=8, dec_size=8, z_size=2, read_n=2, write_n=2)


def test_sketch_rnn_checkpoint_is_sampled_as_strokes(tmp_path, shared):
    sheep = str(shared / "other" / "aaron_sheep.npz")
    ckpt = tiny_checkpoint(tmp_path, "sketch-rnn", TINY_SKETCH_RNN, [sheep])
    real = parse_source(sheep + ":test")
    pool, spec = build_pool(real, [parse_source(str(ckpt))], 4, seed=3, temperature=0.5)
    assert spec["display"] == "strokes" and spec["labels"] == ["sketch-rnn"]
    generated = [s for s in pool if s.source == "sketch-rnn"]
    assert len(generated) == 4 and all(s.category == "aaron_sheep" for s in generated)
    # every sample as drawn, a blank one (no points) too: never drawn again
    assert all(s.strokes.shape[1] == 3 and len(s.strokes) <= 120 for s in generated)
    assert spec["blank"]["sketch-rnn"] == sum(len(s.strokes) < 2 for s in generated)
    again, _ = build_pool(real, [parse_source(str(ckpt))], 4, seed=3, temperature=0.5)
    assert all(
        np.array_equal(a.strokes, b.strokes) for a, b in zip(pool, again, strict=True)
    )  # --seed makes a session reproducible


def test_draw_checkpoint_makes_a_bitmap_session(tmp_path, shared):
    draw = tiny_checkpoint(tmp_path, "draw", TINY_DRAW, [cat_bitmaps(shared)])
    sheep = shared / "other" / "aaron_sheep.npz"
    rnn = tiny_checkpoint(tmp_path, "sketch-rnn", TINY_SKETCH_RNN, [sheep])
    real = parse_source(str(shared / "training" / "cake.ndjson"))
    pool, spec = build_pool(real, [parse_source(str(draw)), parse_source(str(rnn))], 3, seed=0)
    assert spec["display"] == "bitmap"
    assert Counter(s.source for s in pool) == {"real": 6, "draw": 3, "sketch-rnn": 3}
    assert all(s.strokes is None and s.image.shape == (28, 28) for s in pool)
    assert all(s.image.dtype == np.uint8 for s in pool)
    # a blank sample (no points, no ink) is kept as drawn: a black canvas
    assert sum(not s.image.any() for s in pool) <= sum(spec["blank"].values())
    # strokes become exactly the official bitmaps: the first simplified cats of the mirror
    # against the first rows of the official numpy_bitmap file
    from quickdraw_tools.strokes import drawing_to_stroke3

    mirror = shared / "mirror" / "full"
    with open(mirror / "simplified" / "cat.ndjson") as f:
        cats = [drawing_to_stroke3(json.loads(next(f))["drawing"]) for _ in range(5)]
    drawn = as_bitmaps([Sketch("real", "cat", c) for c in cats] + [pool[-1]])
    official = np.load(mirror / "numpy_bitmap" / "cat.npy")[:5].reshape(5, 28, 28)
    assert np.array_equal(np.stack([s.image for s in drawn[:5]]), official)
    with GradeStore(tmp_path / "g.sqlite") as store:
        store.create_session(pool, spec)
        app = GradingApp(store)
        svgs = list(app.svgs.values())
        assert all("polyline" not in svg for svg in svgs)  # a blank canvas has no <rect>
        assert sum("<rect" in svg for svg in svgs) >= len(svgs) - sum(spec["blank"].values())
        assert all("draw" not in svg and "sketch-rnn" not in svg for svg in svgs)
        stored = store.sketches()
        assert all(
            np.array_equal(a.image, b.image) for a, b in zip(pool, stored.values(), strict=True)
        )


def test_npy_bitmaps_are_a_real_source(tmp_path, shared):
    draw = tiny_checkpoint(tmp_path, "draw", TINY_DRAW, [cat_bitmaps(shared)])
    real = parse_source(str(shared / "mirror" / "full" / "numpy_bitmap" / "cat.npy"))
    pool, spec = build_pool(real, [parse_source(str(draw))], 2, seed=0)
    assert spec["display"] == "bitmap"
    assert Counter((s.source, s.category) for s in pool) == {("real", "cat"): 2, ("draw", "cat"): 2}
    # with a stroke gold source, the checks, the scribbles and the examples become bitmaps too
    cakes = parse_source(str(shared / "training" / "cake.ndjson"))
    session = build_session(real, [parse_source(str(draw))], 2, 0, gold_real=cakes, gold=2)
    shown = session.pool + session.examples["real"] + session.examples["fake"]
    assert len(shown) == 4 + 4 + 6 and session.spec["display"] == "bitmap"
    assert all(s.strokes is None and s.image.shape == (28, 28) and s.image.any() for s in shown)
    assert Counter(s.gold for s in session.pool) == {None: 4, "real": 2, "fake": 2}


def test_ctrl_c_stops_the_server_cleanly(served):
    db, url, proc = served
    status, _ = Client(url).request("POST", "/api/raters", {"name": "ann"})
    assert status == 201
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 0
    assert "stopped; 0 grade rows" in output(proc)


def test_gzipped_and_binary_drawings_are_sources(tmp_path, shared):
    import gzip

    from quickdraw_tools.formats import iter_ndjson, write_binary

    records = list(iter_ndjson(shared / "mirror" / "full" / "simplified" / "cat.ndjson"))[:6]
    gz = tmp_path / "cats.ndjson.gz"
    with gzip.open(gz, "wt") as f:
        f.writelines(json.dumps({"drawing": r["drawing"]}) + "\n" for r in records)
    binary = tmp_path / "cat.bin"
    write_binary(binary, records)
    pool, spec = build_pool(parse_source(str(gz)), [parse_source(str(binary))], 3, seed=0)
    assert spec["labels"] == ["cat"]
    assert Counter((s.source, s.category) for s in pool) == {("real", "cats"): 3, ("cat", "cat"): 3}


def test_serve_a_checkpoint_with_one_command_and_resume(tmp_path, shared, capsys):
    sheep = str(shared / "other" / "aaron_sheep.npz")
    ckpt = tiny_checkpoint(tmp_path, "sketch-rnn", TINY_SKETCH_RNN, [sheep])
    db = tmp_path / "g.sqlite"
    args = ["--db", str(db), "--real", sheep + ":test", "--generated", str(ckpt)]
    proc, url = start_server([*args, "--per-source", "2", "--seed", "1"])
    try:
        client = Client(url)
        status, me = client.request("POST", "/api/raters", {"name": "ann"})
        assert status == 201 and me["total"] == 4
        status, first = client.request("GET", f"/api/item?rater={me['rater']}&index=0")
        # a sketch as drawn: strokes, or an empty canvas for a model's empty sample (kept)
        assert status == 200 and first["svg"].startswith("<svg")
        body = {"rater": me["rater"], "sketch": first["id"], "grade": "fake", "request_id": rid()}
        assert client.request("POST", "/api/grades", body)[0] == 201
        # the report reads the live session (read-only, beside the serving process)
        assert main(["grade", "report", "--db", str(db), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["gradings"] == 1 and report["pool"] == 4
    finally:
        stop(proc)
    with GradeStore(db) as store:
        ids = store.sketch_ids()
    proc, url = start_server(["--db", str(db)])  # resumes: the checkpoint is not sampled again
    try:
        status, state = Client(url).request("GET", f"/api/state?rater={me['rater']}")
        assert status == 200 and state["graded"] == 1
    finally:
        stop(proc)
    with GradeStore(db) as store:
        assert store.sketch_ids() == ids
        assert Counter(s.source for s in store.sketches().values()) == {"real": 2, "sketch-rnn": 2}


def test_report_refuses_files_that_are_not_sessions(tmp_path, capsys):
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    assert main(["grade", "report", "--db", str(other)]) == 1
    assert "not a grading database" in capsys.readouterr().err
    text = tmp_path / "notes.txt"
    text.write_text("hello " * 1000)
    assert main(["grade", "report", "--db", str(text)]) == 1
    assert "not a grading database" in capsys.readouterr().err


# --- human studies (HYPE): gold items, instructions, exposure, crowd links, bootstrap ----------


def test_gold_items_and_examples_are_apart_from_the_pool(shared):
    real, generated = session_sources(shared)
    real_spec, models = parse_source(real), [parse_source(g) for g in generated]
    session = build_session(real_spec, models, 3, seed=4, gold_real=real_spec, gold=4)
    pool = session.pool
    assert Counter((s.source, s.gold) for s in pool) == {
        (REAL_SOURCE, None): 6,
        ("aaron_sheep:test", None): 3,
        ("teapot", None): 3,
        ("gold real", "real"): 4,
        ("gold fake", "fake"): 4,
    }
    # the pool itself is what build_pool draws with the same seed: gold items only join it
    plain, _ = build_pool(real_spec, models, 3, seed=4)
    graded = [s for s in pool if s.gold is None]
    assert all(np.array_equal(a.strokes, b.strokes) for a, b in zip(plain, graded, strict=True))
    # no drawing twice: gold real cakes and example cakes come from the same file as the pool's
    shown = pool + session.examples["real"] + session.examples["fake"]
    assert len({s.strokes.tobytes() for s in shown}) == len(shown) == 20 + 6
    assert [len(session.examples[k]) for k in ("real", "fake")] == [3, 3]
    scribble = next(s for s in pool if s.gold == "fake")
    # a scribble claims the pool's category: the page tells it apart by nothing
    assert scribble.category == "cake" and np.array_equal(
        scribble.strokes.round(), scribble.strokes
    )
    assert 2 <= scribble.strokes[:, 2].sum() <= 4 and scribble.strokes[-1, 2] == 1
    assert session.spec["gold"] == {"real": real, "fake": "scribbles", "per_kind": 4}
    again = build_session(real_spec, models, 3, seed=4, gold_real=real_spec, gold=4)
    assert all(np.array_equal(a.strokes, b.strokes) for a, b in zip(pool, again.pool, strict=True))
    # named sources for the fakes: the gold fakes and (by default) the examples' fakes
    teapots = parse_source(str(shared / "training" / "teapot.ndjson"))
    snowmen = parse_source(str(shared / "training" / "snowman.ndjson"))
    named = build_session(
        real_spec, models[:1], 2, 0, gold_real=real_spec, gold_fake=teapots, gold=2, examples=2
    )
    assert {s.category for s in named.pool if s.gold == "fake"} == {"teapot"}
    assert {s.category for s in named.examples["fake"]} == {"teapot"}
    assert named.spec["examples"]["fake"] == str(teapots)
    other = build_session(real_spec, models[:1], 2, 0, example_fake=snowmen, examples=1)
    assert [s.category for s in other.examples["fake"]] == ["snowman"]
    assert other.spec["gold"] is None and all(s.gold is None for s in other.pool)
    assert build_session(real_spec, models[:1], 2, 0, examples=0).examples == {
        "real": [],
        "fake": [],
    }


def test_gold_and_example_errors_name_the_flag(tmp_path, shared):
    real, generated = session_sources(shared)
    real_spec, sheep = parse_source(real), parse_source(generated[0])
    teapots = parse_source(generated[1])
    with pytest.raises(QuickDrawError, match="--gold-fake needs --gold-real"):
        build_session(real_spec, [sheep], 2, gold_fake=teapots)
    few = tmp_path / "few.ndjson"
    with open(real) as f:
        few.write_text("".join(next(f) for _ in range(5)))
    few_spec = parse_source(str(few))
    # 2 of the 5 cakes go to the pool, so 3 are left for gold items and examples
    with pytest.raises(QuickDrawError, match=r"--gold-real .*few.ndjson: 3 drawings not already"):
        build_session(few_spec, [sheep], 2, gold_real=few_spec, gold=4)
    with pytest.raises(QuickDrawError, match=r"--examples: real examples from .*: 1 drawings not"):
        build_session(few_spec, [sheep], 2, gold_real=few_spec, gold=2, examples=2)
    # none left for a scrambled example fake: say how to get one
    with pytest.raises(QuickDrawError, match=r"scrambled examples from .*: 0 drawings not alr.*"
                       "give --example-fake SOURCE or a smaller --examples"):  # fmt: skip
        build_session(few_spec, [sheep], 2, gold_real=few_spec, gold=2, examples=1)
    session = build_session(
        few_spec, [sheep], 2, gold_real=few_spec, gold=2, examples=1, example_fake=sheep
    )
    assert len(session.pool) == 8
    # the command's default: as many examples as the source has left (here 1), no error
    fewer = build_session(
        few_spec, [sheep], 2, gold_real=few_spec, gold=2, examples=3, examples_at_most=True
    )
    assert len(fewer.examples["real"]) == 1
    with pytest.raises(QuickDrawError, match="--gold must be at least 1"):
        build_session(real_spec, [sheep], 2, gold_real=real_spec, gold=0)


def test_gold_items_and_instructions_through_the_api(tmp_path, shared):
    with make_session(tmp_path / "g.sqlite", shared, gold=2, exposure_ms=700) as store:
        app = GradingApp(store)
        gold = store.gold()
        assert sorted(gold.values()) == ["fake", "fake", "real", "real"]
        status, session = call(app, "GET", "/api/session")
        assert status == 200 and session["exposure_ms"] == 700 and session["checks"] is True
        assert [len(session["examples"][k]) for k in ("real", "fake")] == [3, 3]
        assert all(
            svg.startswith("<svg") for k in ("real", "fake") for svg in session["examples"][k]
        )
        assert call(app, "GET", "/api/session?x=1")[0] == 400
        rater = new_rater(app)
        seen = []
        it = item(app, rater, 0)
        while it:
            seen.append(it["id"])
            assert set(it) == {"index", "id", "svg", "grade", "category"}  # nothing tells a gold
            assert it["category"] is None  # item (cakes against sheep: no category named)
            it = grade(app, rater, it["id"], "fake")[1]["next"]
        assert set(gold) <= set(seen) and len(seen) == 16
        # gold SVGs look like every other sketch (real cakes and scribbles, fitted alike)
        labels = ("gold", "scribble", "real", "cake")
        assert not any(word in app.svgs[sid] for sid in gold for word in labels)
    with make_session(tmp_path / "plain.sqlite", shared) as store:
        status, session = call(GradingApp(store), "GET", "/api/session")
        assert session["checks"] is False and session["exposure_ms"] is None


def test_grade_times_are_stored_and_checked(app, store):
    rater = new_rater(app)
    first = item(app, rater, 0)
    body = {"rater": rater, "sketch": first["id"], "grade": "real", "request_id": rid()}
    for bad in (-1, 1.5, True, "900", None, [1]):
        status, r = call(app, "POST", "/api/grades", {**body, "ms": bad})
        assert status == 400 and "ms must be a whole number" in r["error"], bad
    assert store.all_grades() == []
    status, r = call(app, "POST", "/api/grades", {**body, "ms": 1234})
    assert status == 201
    # a retry of the same submission is stored once, whatever time it carries
    status, again = call(app, "POST", "/api/grades", {**body, "ms": 1300})
    assert status == 200 and not again["stored"]
    second = {**body, "sketch": r["next"]["id"], "request_id": rid(), "ms": 10**30}
    assert call(app, "POST", "/api/grades", second)[0] == 201  # a day at most is kept
    third = {**body, "sketch": item(app, rater, 2)["id"], "request_id": rid()}
    assert call(app, "POST", "/api/grades", third)[0] == 201  # no time: an older page
    assert [g.ms for g in store.gradings()] == [1234, 86_400_000, None]
    status, r = call(app, "POST", "/api/grades", {**body, "extra": 1})
    assert status == 400 and "optionally ms" in r["error"]


def test_participant_ids_are_untrusted(app, store, tmp_path):
    status, r = call(app, "POST", "/api/raters", {"name": "", "participant": " ６０ab\u3000cd "})
    assert status == 201 and r["participant"] == "60ab cd" and r["name"] == "60ab cd"
    # one worker takes a study once (issue 24): the same id again is refused, nothing stored
    status, r = call(app, "POST", "/api/raters", {"name": "Ann", "participant": "60ab cd"})
    assert status == 409 and "60ab cd has already taken part in this study (as r1)" in r["error"]
    assert len(store.raters()) == 1
    for bad in ("", "a\u202eb", "x" * 61, "a\x00b", 5, None):
        status, r = call(app, "POST", "/api/raters", {"name": "", "participant": bad})
        assert status == 400 and "participant" in r["error"], bad
    status, r = call(app, "POST", "/api/raters", {"name": ""})
    assert status == 400 and "a name is 1 to 60" in r["error"]
    status, r = call(app, "POST", "/api/raters", {"name": "x", "pid": "1"})
    assert status == 400 and "unknown pid" in r["error"]
    # markup is kept as text (the page shows it with textContent); a formula is defused in CSV
    for pid in ("<img src=x onerror=alert(1)>", '=HYPERLINK("http://x")'):
        token = call(app, "POST", "/api/raters", {"name": "", "participant": pid})[1]["rater"]
        grade(app, token, item(app, token, 0)["id"], "real")
    assert [r.participant for r in store.raters()] == [
        "60ab cd",
        "<img src=x onerror=alert(1)>",
        '=HYPERLINK("http://x")',
    ]
    report = build_report(store, resamples=0)
    write_rater_csv(report, tmp_path / "raters.csv")
    text = (tmp_path / "raters.csv").read_text()
    assert "'=HYPERLINK" in text and "<img src=x onerror=alert(1)>" in text
    assert not any(r.token in text + format_report(report) for r in store.raters())


def test_completion_url_and_code_are_checked():
    good = [
        "https://app.prolific.com/submissions/complete?cc=C1A2B3C4",
        "http://127.0.0.1:9000/done",
        "https://example.org/finish?code={code}&x=1",
    ]
    for url in good:
        assert check_completion_url(url) == url
    bad = {
        "javascript:alert(1)": "not an absolute http",
        "ftp://example.org/": "not an absolute http",
        "/submissions/complete": "not an absolute http",
        "https://": "not an absolute http",
        "https://example.org/a b": "white space",
        "https://exämple.org/": "non-ASCII",
        "https://example.org/\x00": "control",
        "https://example.org/{code}/{code}": "more than once",
        "https://example.org/{x}": "braces",
        "https://example.org:99999/": "bad port",
        "https://example.org/" + "a" * 2000: "over 2000",
    }
    for url, problem in bad.items():
        with pytest.raises(QuickDrawError, match="--completion-url") as e:
            check_completion_url(url)
        assert problem in str(e.value) and len(str(e.value).splitlines()) == 1, url
    assert completion_link("https://x.org/?c={code}", "A B&C") == "https://x.org/?c=A%20B%26C"
    assert completion_link(good[0], "ZZZZ") == good[0]  # Prolific's link holds its code
    assert check_completion_code("C1A2B3C4") == "C1A2B3C4"
    for code in ("abc", "x" * 41, "C1A2 B3", "<b>code</b>"):
        with pytest.raises(QuickDrawError, match="--completion-code"):
            check_completion_code(code)


def test_completion_code_and_url_reach_a_finished_rater(tmp_path, shared):
    with make_session(tmp_path / "g.sqlite", shared, per_source=1) as store:
        store.set_completion("STUDY123", "https://example.org/done?cc={code}")
        app = GradingApp(store)
        rater = new_rater(app)
        it = item(app, rater, 0)
        for _ in range(3):
            status, r = grade(app, rater, it["id"], "real")
            assert "completion" not in r  # not before the end
            it = r["next"]
        status, r = grade(app, rater, it["id"], "real")
        assert r["done"] and r["completion"] == {
            "code": "STUDY123",
            "url": "https://example.org/done?cc=STUDY123",
        }
        store.set_completion()  # a later serve without the flags keeps both
        assert store.completion() == ("STUDY123", "https://example.org/done?cc={code}")


def test_bootstrap_resamples_raters_and_sketches():
    def gradings(raters, sketches, passing):
        return [
            (r, s, "real" if passing(r, s) else "fake")
            for r in range(raters)
            for s in range(sketches)
        ]

    # raters disagree (half grade everything real): the spread between 20 raters dominates,
    # so the interval is about 0.5 -/+ 1.96 sqrt(0.25 / 20) = 0.5 -/+ 0.22, while Wilson over
    # the 1,000 gradings as independent trials is 0.5 -/+ 0.03
    by_rater = bootstrap_shares(gradings(20, 50, lambda r, s: r % 2 == 0), 2000, 0)
    lo, hi = by_rater["real_or_possibly"]
    assert 0.17 < 0.5 - lo < 0.27 and 0.17 < hi - 0.5 < 0.27
    wilson = wilson_interval(500, 1000)
    assert wilson[1] - wilson[0] < 0.07
    # sketches differ (every rater takes half the sketches for real): the spread between 50
    # sketches, 0.5 -/+ 1.96 sqrt(0.25 / 50) = 0.5 -/+ 0.14
    lo, hi = bootstrap_shares(gradings(20, 50, lambda r, s: s % 2 == 0), 2000, 0)["real"]
    assert 0.10 < 0.5 - lo < 0.18 and 0.10 < hi - 0.5 < 0.18
    # everyone agrees on everything: no spread at all
    assert bootstrap_shares(gradings(5, 8, lambda r, s: True), 500, 0)["real"] == (1.0, 1.0)
    # seeded: the same seed, the same interval
    again = bootstrap_shares(gradings(20, 50, lambda r, s: r % 2 == 0), 2000, 0)
    assert again == by_rater
    noisy = np.random.default_rng(5).random((20, 50)) < 0.3
    varied = gradings(20, 50, lambda r, s: noisy[r, s])
    assert bootstrap_shares(varied, 500, 1) != bootstrap_shares(varied, 500, 2)
    # nothing to resample: no gradings, one rater, one sketch
    for few in ([], gradings(1, 8, lambda r, s: s % 2), gradings(6, 1, lambda r, s: r % 2)):
        assert all(np.isnan(x) for x in bootstrap_shares(few, 100, 0)["real_or_possibly"])
    # "possibly real" passes the criterion but is not "real"
    mixed = [("a", 1, "possibly_real"), ("a", 2, "possibly_real"), ("b", 1, "possibly_real")]
    mixed.append(("b", 2, "possibly_real"))
    boot = bootstrap_shares(mixed, 200, 0)
    assert boot["real_or_possibly"] == (1.0, 1.0) and boot["real"] == (0.0, 0.0)


def test_report_flags_raters_who_fail_the_attention_checks(tmp_path, shared, capsys):
    store = make_session(tmp_path / "g.sqlite", shared, gold=2)
    sheep = "aaron_sheep:test"

    def careful(s):  # gets every gold item right; sheep pass
        if s.gold:
            return "real" if s.gold == "real" else "fake"
        return {"teapot": "fake", "real": "real"}.get(s.source, "possibly_real")

    def careless(s):  # everything real: the gold fakes are wrong (2 of 4 right, 50%)
        return "real"

    raters = grade_everything(store, {"careful": careful, "careless": careless})
    latest = {(g.rater, g.sketch): g.grade for g in store.gradings()}
    for rater in raters.values():  # the first three again, timed as the page times them
        for k, sid in enumerate(rater.order[:3]):
            store.add_grade(rid(), rater, sid, latest[rater.token, sid], ms=1000 * (k + 1))
    # a third rater grades one real sketch and no gold item yet: not flagged, not dropped
    late = store.new_rater("late")
    real_first = next(sid for sid in late.order if store.sketches()[sid].source == "real")
    late = Rater(late.token, late.name, (real_first, *late.order), late.number)
    store.add_grade(rid(), late, real_first, "fake")

    report = build_report(store, resamples=300)
    assert report["gold_items"] == 4 and report["pool"] == 16
    assert report["gradings"] == 12 + 12 + 1 and report["gold_gradings"] == 8
    rows = {(r["source"], r["category"]): r for r in report["groups"]}
    assert rows["real", "all"]["n"] == 13 and "gold real" not in {s for s, _ in rows}
    assert report["attention"]["flagged"] == ["r2"] and report["attention"]["unchecked"] == ["r3"]
    stats = {s["rater"]: s for s in report["rater_stats"]}
    assert (stats["r1"]["gold_correct"], stats["r1"]["gold_graded"]) == (4, 4)
    assert stats["r2"]["gold_accuracy"] == 0.5 and stats["r2"]["flagged"]
    assert not stats["r3"]["flagged"] and np.isnan(stats["r3"]["gold_accuracy"])
    assert stats["r2"]["share_real"] == 1.0 and stats["r1"]["share_fake"] == 0.25
    assert stats["r1"]["median_ms"] == 2000 and stats["r1"]["timed"] == 3
    assert np.isnan(stats["r3"]["median_ms"])
    # the careless rater makes the teapots pass; without them, teapots fail
    verdicts = {v["model"]: v for v in report["all_raters"]["verdicts"]}
    kept = report["without_flagged"]
    kept_verdicts = {v["model"]: v for v in kept["verdicts"]}
    assert report["verdicts"] == kept["verdicts"]  # the checked raters decide
    assert verdicts["teapot"]["frac_real_or_possibly"] == 0.5
    assert kept_verdicts["teapot"]["frac_real_or_possibly"] == 0.0
    assert kept_verdicts[sheep]["passes"] and kept["raters"] == 2 and kept["gradings"] == 13
    ci = verdicts[sheep]["bootstrap_ci"]
    assert 0 <= ci[0] <= verdicts[sheep]["frac_real_or_possibly"] <= ci[1] <= 1
    assert report["agreement"]["alpha_units"] == 12  # gold items left out of the agreement

    text = format_report(report)
    assert "fewer than 75% of the gold items they graded correctly" in text
    assert "Flagged: r2 (kept in the table above; the verdicts are without them" in text
    assert "FLAGGED" in text
    assert "gold 4/4 (100%)" in text and "median 2.0 s" in text and "bootstrap [" in text
    strict = build_report(store, min_gold_accuracy=0.0, resamples=0)
    assert strict["attention"]["flagged"] == [] and "fewer than 0%" in strict["attention"]["rule"]

    import pandas as pd

    args = ["grade", "report", "--db", str(store.path), "--bootstrap", "200"]
    out = [f"--raters-csv={tmp_path / 'raters.csv'}", f"--csv={tmp_path / 'groups.csv'}"]
    assert main([*args, *out, "--min-gold-accuracy", "0.4"]) == 0
    assert "No rater is flagged" in capsys.readouterr().out
    assert main([*args, *out]) == 0
    assert "raters CSV written to" in capsys.readouterr().out
    frame = pd.read_csv(tmp_path / "raters.csv")
    assert list(frame["rater"]) == ["r1", "r2", "r3"] and list(frame["flagged"]) == [
        False,
        True,
        False,
    ]
    assert {"gold_accuracy", "share_possibly_real", "median_ms", "participant"} <= set(frame)
    groups = pd.read_csv(tmp_path / "groups.csv")
    assert set(groups["raters"]) == {"all", "unflagged"}
    assert {"boot_real_or_possibly_lo", "boot_real_hi"} <= set(groups)
    assert main([*args, "--min-gold-accuracy", "75"]) == 1
    assert "--min-gold-accuracy must be 0-1" in capsys.readouterr().err
    store.close()


OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sketches (id TEXT PRIMARY KEY, position INTEGER NOT NULL UNIQUE,
    source TEXT NOT NULL, category TEXT NOT NULL, content TEXT NOT NULL);
CREATE TABLE raters (token TEXT PRIMARY KEY, name TEXT NOT NULL, created REAL NOT NULL,
    sketch_order TEXT NOT NULL);
CREATE TABLE grades (seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL UNIQUE,
    rater TEXT NOT NULL REFERENCES raters(token), sketch TEXT NOT NULL REFERENCES sketches(id),
    grade TEXT NOT NULL CHECK (grade IN ('real', 'possibly_real', 'fake')),
    created REAL NOT NULL);
"""


def test_database_from_before_gold_times_and_participants(tmp_path, capsys):
    db = tmp_path / "old.sqlite"
    old = sqlite3.connect(db)  # as the previous version wrote it: no gold, ms or participant
    old.executescript(OLD_SCHEMA)
    content = json.dumps({"strokes": [[0, 0, 0], [10, 5, 1]]})
    for i, source in enumerate(("real", "real", "m", "m")):
        old.execute(
            "INSERT INTO sketches VALUES (?, ?, ?, 'cake', ?)", (f"s{i}", i, source, content)
        )
    old.execute("INSERT INTO meta VALUES ('spec', ?)", (json.dumps({"labels": ["m"]}),))
    order = json.dumps(["s0", "s1", "s2", "s3"])
    old.execute("INSERT INTO raters VALUES ('old-token-123', 'ann', 0, ?)", (order,))
    old.execute(
        "INSERT INTO grades (request_id, rater, sketch, grade, created) "
        "VALUES ('req-00000001', 'old-token-123', 's0', 'real', 0)"
    )
    old.commit()
    old.close()
    # the report reads it as it is (read-only: nothing is added)
    assert main(["grade", "report", "--db", str(db), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["gradings"] == 1 and report["gold_items"] == 0
    assert report["rater_stats"][0]["participant"] == "" and report["rater_stats"][0]["timed"] == 0
    columns = [r[1] for r in sqlite3.connect(db).execute("PRAGMA table_info(grades)")]
    assert "ms" not in columns
    # served again, the file gets the new columns, keeping every row
    with GradeStore(db) as store:
        app = GradingApp(store)
        status, state = call(app, "GET", "/api/state?rater=old-token-123")
        assert status == 200 and state["graded"] == 1 and state["participant"] is None
        status, r = grade(app, "old-token-123", "s1", "fake")
        assert status == 201
        body = {"rater": "old-token-123", "sketch": "s2", "grade": "real", "request_id": rid()}
        assert call(app, "POST", "/api/grades", {**body, "ms": 800})[0] == 201
        pid = call(app, "POST", "/api/raters", {"name": "", "participant": "P1"})[1]
        assert pid["participant"] == "P1" and store.completion()[0] is not None
        assert [g.ms for g in store.gradings()] == [None, None, 800]
        assert call(app, "GET", "/api/session")[1]["examples"] == {"real": [], "fake": []}
    check = sqlite3.connect(db)
    for table, column in (("grades", "ms"), ("raters", "participant"), ("sketches", "gold")):
        assert column in [r[1] for r in check.execute(f"PRAGMA table_info({table})")]
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert check.execute("SELECT count(*) FROM grades").fetchone()[0] == 3
    check.close()
    with GradeStore(db) as store:  # opened again: nothing left to add
        assert len(store.gradings()) == 3


def test_cli_serves_a_study_and_keeps_its_protocol(tmp_path, shared, capsys):
    real, generated = session_sources(shared)
    db = tmp_path / "study.sqlite"
    base = ["--db", str(db), "--real", real, "--generated", generated[0], "--per-source", "2"]
    for extra, message in [
        (["--completion-url", "javascript:alert(1)"], "--completion-url 'javascript"),
        (["--completion-code", "a b"], "--completion-code"),
        (["--exposure-ms", "0"], "--exposure-ms must be 1-60000"),
        (["--gold-fake", generated[1]], "--gold-fake needs --gold-real"),
        (["--gold-real", real, "--gold", "0"], "--gold must be 1 to 10,000, got 0"),
        (["--examples", "-1"], "--examples must be 0 to 10,000, got -1"),
    ]:
        assert main(["grade", "serve", *base, *extra]) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (extra, err)
    assert not db.exists()
    study = ["--gold-real", real, "--gold", "2", "--exposure-ms", "900"]
    url = "https://example.org/done?cc={code}"
    proc, link = start_server([*base, *study, "--completion-url", url, "--seed", "0"])
    try:
        client = Client(link)
        status, me = client.request("POST", "/api/raters", {"name": "", "participant": "P-7"})
        assert status == 201 and me["total"] == 8 and me["participant"] == "P-7"
        status, session = client.request("GET", "/api/session")
        assert session["exposure_ms"] == 900 and session["checks"]
    finally:
        stop(proc)
    printed = "".join(proc.lines)
    assert "4 sketches and 4 attention checks" in printed
    assert re.search(
        r"completion code: [A-Z2-9]{8}; finished raters go to https://example", printed
    )
    assert main(["grade", "serve", "--db", str(db), "--exposure-ms", "500"]) == 1
    assert "with --exposure-ms 900, not 500" in capsys.readouterr().err
    assert main(["grade", "serve", "--db", str(db), "--gold-real", generated[1]]) == 1
    assert "the protocol of a session is fixed" in capsys.readouterr().err
