#!/usr/bin/env python
"""Load test of the grading server over HTTPS: simultaneous raters, then a check of the database;
run on both HTTP layers side by side.

Makes one study (real cakes against the sheep of ../shared/quickdraw/other/aaron_sheep.npz and
teapots standing in for models: a pool of 600, each rater grading --grades / --raters of it
under per-rater subsets) and a throwaway self-signed certificate, then for each --layer

    stdlib   `quickdraw grade serve --certfile --keyfile` (http.server + ssl, the toolkit's own
             limits), started with --max-connections above the raters' count
    asgi     the same GradingApp on uvicorn + Starlette over TLS (scripts/_asgi_grading.py)

runs --raters threads at once, each from its own 127.x.y.z address (as many raters are many
clients) on its own keep-alive HTTPS connection: it starts a rater, grades its sketches, and
sends every tenth grade twice with the same request id (a retry: stored once). A connection
that fails (reset, refused, closed) is opened again and the same request sent again. Then the
database is read: grades lost (acknowledged but not stored), duplicated (stored twice) or
unexpected; and the median and 99th-percentile time of the grade requests.

    .venv/bin/python scripts/load_test_grading.py                     # 200 raters, 20,000 grades
    .venv/bin/python scripts/load_test_grading.py --raters 20 --grades 2000 --layer stdlib

Exit status 0 only when every layer stored every grade exactly once.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from _server import start_server, stop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from grading_support import self_signed, unverified  # noqa: E402

from quickdraw_tools.eval.grading.design import Design  # noqa: E402
from quickdraw_tools.eval.grading.exposure import Exposure  # noqa: E402
from quickdraw_tools.eval.grading.sources import build_session, parse_source  # noqa: E402
from quickdraw_tools.eval.grading.store import GRADES, GradeStore  # noqa: E402
from quickdraw_tools.eval.grading.study import (  # noqa: E402
    create_session,
    make_study,
    set_protocol,
    study_hash,
)

SHARED = ROOT.parent / "shared" / "quickdraw"
NETWORK = (OSError, http.client.HTTPException)  # a reset, refused or closed connection


def make_study_db(db: Path, per_rater: int) -> None:
    real = parse_source(str(SHARED / "training" / "cake.ndjson"))
    models = [parse_source(f"{SHARED / 'other' / 'aaron_sheep.npz'}:test"),
              parse_source(str(SHARED / "training" / "teapot.ndjson"))]  # fmt: skip
    session = build_session(real, models, 150, 0, examples=0)
    set_protocol(session, Exposure(), Design(per_rater=per_rater, order_seed=0))
    with GradeStore(db) as store:
        create_session(store, session, None, None, study_hash(make_study(session, None, None)))


class Rater(threading.Thread):
    def __init__(self, url: str, number: int, count: int, deadline: float):
        super().__init__(daemon=True)
        parts = urlsplit(url)
        self.address = (parts.hostname, parts.port)
        self.source = (f"127.{1 + number // 250}.{number % 250 + 1}.1", 0)
        self.number, self.count, self.deadline = number, count, deadline
        self.latencies: list[float] = []  # seconds, one per grade request (retries included)
        self.acked: list[str] = []  # request ids the server confirmed as stored
        self.retries_stored = 0  # retries the server stored again: must stay 0
        self.reconnects = 0
        self.error: str | None = None
        self.conn = self.connect()

    def connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            *self.address, timeout=60, source_address=self.source, context=unverified()
        )

    def send(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """One request, sent again (the same body) on a new connection when the connection
        fails, until the deadline."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data else {}
        while True:
            start = time.perf_counter()
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                payload = json.loads(response.read())
                if response.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                if path == "/api/grades":
                    self.latencies.append(time.perf_counter() - start)
                if response.status == 503:  # a busy server: try again in a moment
                    time.sleep(0.2)
                    continue
                return response.status, payload
            except NETWORK:
                self.conn.close()
                self.conn = self.connect()
                self.reconnects += 1
                if time.monotonic() > self.deadline:
                    raise
                time.sleep(0.05)

    def run(self) -> None:
        try:
            status, me = self.send("POST", "/api/raters", {"name": f"rater {self.number:03d}"})
            if status != 201:
                self.error = f"start: HTTP {status} {me}"
                return
            token = me["rater"]
            status, item = self.send("GET", f"/api/item?rater={token}&index=0")
            for i in range(self.count):
                if time.monotonic() > self.deadline:
                    self.error = "out of time"
                    return
                body = {"rater": token, "sketch": item["id"], "grade": GRADES[i % 3],
                        "request_id": uuid.uuid4().hex}  # fmt: skip
                status, r = self.send("POST", "/api/grades", body)
                if status not in (200, 201):  # 200: a resent request the server had stored
                    self.error = f"grade {i}: HTTP {status} {r}"
                    return
                self.acked.append(body["request_id"])
                if i % 10 == 0:  # a retry of the same submission
                    status, again = self.send("POST", "/api/grades", body)
                    self.retries_stored += status != 200 or again["stored"]
                item = r["next"]
            status, state = self.send("GET", f"/api/state?rater={token}")  # resume
            if status != 200 or state["graded"] != self.count:
                self.error = f"resume: HTTP {status} {state}"
        except (*NETWORK, json.JSONDecodeError, KeyError, TypeError) as e:
            self.error = repr(e)
        finally:
            self.conn.close()


def run_layer(layer: str, db: Path, cert: Path, key: Path, args) -> dict:
    if layer == "stdlib":
        proc, url = start_server(
            [
                "--db",
                str(db),
                "--certfile",
                str(cert),
                "--keyfile",
                str(key),
                "--max-connections",
                str(2 * args.raters + 64),
                "--quiet",
            ]  # fmt: skip
        )
    else:
        command = [sys.executable, str(ROOT / "scripts" / "_asgi_grading.py"), "--db", str(db),
                   "--certfile", str(cert), "--keyfile", str(key)]  # fmt: skip
        proc, url = start_server([], command=command, any_port=False)
    per_rater = args.grades // args.raters
    try:
        deadline = time.monotonic() + args.timeout
        raters = [Rater(url, k, per_rater, deadline) for k in range(args.raters)]
        start = time.perf_counter()
        for r in raters:
            r.start()
        for r in raters:
            r.join(max(0.0, deadline - time.monotonic()) + 5)
        wall = time.perf_counter() - start
    finally:
        stop(proc)
    errors = [f"rater {r.number}: {r.error}" for r in raters if r.error or r.is_alive()]
    acked = [rid for r in raters for rid in r.acked]
    with GradeStore(db, readonly=True) as store:
        rows = store.all_grades()
    stored_ids = [g[1] for g in rows]
    pairs = {(g[2], g[3]) for g in rows}
    ms = np.array([t for r in raters for t in r.latencies]) * 1000
    duplicated = len(stored_ids) - len(set(stored_ids)) + (len(rows) - len(pairs))
    return {
        "layer": layer,
        "grades": len(acked),
        "requests": len(ms),
        "retries": len(ms) - len(acked),
        "reconnects": sum(r.reconnects for r in raters),
        "wall": wall,
        "median": float(np.median(ms)) if len(ms) else float("nan"),
        "p99": float(np.percentile(ms, 99)) if len(ms) else float("nan"),
        "max": float(ms.max()) if len(ms) else float("nan"),
        "lost": len(set(acked) - set(stored_ids)),
        "duplicated": duplicated + sum(r.retries_stored for r in raters),
        "unexpected": len(set(stored_ids) - set(acked)),
        "errors": errors,
        "ok": not errors and len(acked) == per_rater * args.raters,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raters", type=int, default=200, help="raters at once (default 200)")
    parser.add_argument("--grades", type=int, default=20000, help="grades in all (default 20000)")
    parser.add_argument("--layer", choices=("both", "stdlib", "asgi"), default="both")
    parser.add_argument("--timeout", type=float, default=900, help="give up after this many s")
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep the databases in DIR (LAYER.sqlite)"
    )
    args = parser.parse_args()
    if not 1 <= args.raters <= 5000 or args.grades < args.raters:
        parser.error("need 1 <= --raters <= 5000 and --grades >= --raters")
    if args.grades // args.raters > 600:
        parser.error("at most 600 grades per rater (the pool holds 600 sketches)")
    if args.grades % args.raters:
        parser.error("--grades must be a multiple of --raters (each grades as many)")
    layers = ["stdlib", "asgi"] if args.layer == "both" else [args.layer]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cert, key = self_signed(folder)
        fresh = folder / "fresh.sqlite"
        make_study_db(fresh, args.grades // args.raters)
        for layer in layers:
            db = folder / f"{layer}.sqlite"
            shutil.copy(fresh, db)
            results.append(run_layer(layer, db, cert, key, args))
            if args.keep:  # SQLite's own copy: the grades may still be in the -wal file
                args.keep.mkdir(parents=True, exist_ok=True)
                with contextlib.closing(sqlite3.connect(db)) as source:
                    with contextlib.closing(sqlite3.connect(args.keep / db.name)) as kept:
                        source.backup(kept)
    load = os.getloadavg()[0]
    print(
        f"grading load test over HTTPS, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores, load average "
        f"{load:.1f}); {args.raters} raters at once, {args.grades} grades"
    )
    print(
        "| layer | grades | retries | reconnects | wall time | grades/s | median | p99 | max "
        "| lost | duplicated |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |"
    )
    for r in results:
        print(
            f"| {r['layer']} | {r['grades']:,} | {r['retries']:,} | {r['reconnects']:,} | "
            f"{r['wall']:.1f} s | {r['grades'] / r['wall']:.0f} | {r['median']:.1f} ms | "
            f"{r['p99']:.1f} ms | {r['max']:.1f} ms | {r['lost']} | {r['duplicated']} |"
        )
        for e in r["errors"][:10]:
            print(f"error ({r['layer']}): {e}")
    ok = all(r["ok"] and not r["lost"] and not r["duplicated"] and not r["unexpected"]
             for r in results)  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
