#!/usr/bin/env python
"""Load test of the grading server on 127.0.0.1: concurrent raters, then a check of the database.

Starts `quickdraw grade serve` as a subprocess on a fresh session (real cakes against the sheep
of ../shared/quickdraw/other/aaron_sheep.npz standing in for a model), runs --raters threads
that each start a new rater (and keep its resume token), grade --grades / --raters sketches over
their own keep-alive connection, and resume by the token at the end; every tenth grade is sent
twice with the same request id (a retry) to check it is stored once. Then it reads the database
and counts lost and duplicated grades, and prints the median and 99th-percentile response time
of the grade requests.

    .venv/bin/python scripts/load_test_grading.py                    # 20 raters, 2,000 grades
    .venv/bin/python scripts/load_test_grading.py --raters 4 --grades 80

Exit status 0 only when every grade is stored exactly once.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import subprocess
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

from quickdraw_tools.eval.grading.store import GRADES, GradeStore

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared" / "quickdraw"


def start_grading(db: Path, per_source: int) -> tuple[subprocess.Popen, str]:
    real = SHARED / "training" / "cake.ndjson"
    generated = f"{SHARED / 'other' / 'aaron_sheep.npz'}:test"
    args = ["--db", str(db), "--real", str(real), "--generated", generated]
    return start_server([*args, "--per-source", str(per_source), "--seed", "0"])


class Rater(threading.Thread):
    def __init__(self, url: str, name: str, count: int, deadline: float):
        super().__init__(daemon=True)
        parts = urlsplit(url)
        self.address = (parts.hostname, parts.port)
        self.name, self.count, self.deadline = name, count, deadline
        self.latencies: list[float] = []  # seconds, one per grade request (retries included)
        self.acked: list[str] = []  # request ids the server confirmed as newly stored
        self.retries_stored = 0  # retries the server stored again: must stay 0
        self.error: str | None = None

    def post(self, conn, path: str, body: dict) -> tuple[int, dict]:
        data = json.dumps(body).encode()
        start = time.perf_counter()
        conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        payload = json.loads(response.read())
        if path == "/api/grades":
            self.latencies.append(time.perf_counter() - start)
        return response.status, payload

    def get(self, conn, target: str) -> tuple[int, dict]:
        conn.request("GET", target)
        response = conn.getresponse()
        return response.status, json.loads(response.read())

    def run(self) -> None:
        conn = http.client.HTTPConnection(*self.address, timeout=60)
        try:
            status, me = self.post(conn, "/api/raters", {"name": self.name})
            if status != 201:  # every start is a new rater, with its own resume token
                self.error = f"start: HTTP {status} {me}"
                return
            status, item = self.get(conn, f"/api/item?rater={me['rater']}&index=0")
            for i in range(self.count):
                if time.monotonic() > self.deadline:
                    self.error = "out of time"
                    return
                body = {"rater": me["rater"], "sketch": item["id"], "grade": GRADES[i % 3]}
                body["request_id"] = uuid.uuid4().hex
                status, r = self.post(conn, "/api/grades", body)
                if status != 201 or not r["stored"]:
                    self.error = f"grade {i}: HTTP {status} {r}"
                    return
                self.acked.append(body["request_id"])
                if i % 10 == 0:  # a retry of the same submission
                    status, again = self.post(conn, "/api/grades", body)
                    self.retries_stored += status != 200 or again["stored"]
                item = r["next"]
            status, state = self.get(conn, f"/api/state?rater={me['rater']}")  # resume
            if status != 200 or state["graded"] != min(self.count, state["total"]):
                self.error = f"resume: HTTP {status} {state}"
        except (OSError, http.client.HTTPException, json.JSONDecodeError, KeyError) as e:
            self.error = repr(e)
        finally:
            conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raters", type=int, default=20, help="concurrent raters (default 20)")
    parser.add_argument("--grades", type=int, default=2000, help="grades in total (default 2000)")
    parser.add_argument("--timeout", type=float, default=300, help="give up after this many s")
    parser.add_argument("--db", type=Path, help="database to create (default: a temp file)")
    args = parser.parse_args()
    if args.raters < 1 or args.grades < args.raters:
        parser.error("need --raters >= 1 and --grades >= --raters")
    per_rater = math.ceil(args.grades / args.raters)
    per_source = math.ceil(per_rater / 2)  # the pool is twice the generated count
    if per_source > 300:
        parser.error("at most 600 grades per rater (the sheep test split has 300 sketches)")
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "load.sqlite"
        if db.exists():
            parser.error(f"{db} exists; give a new --db")
        proc, url = start_grading(db, per_source)
        try:
            deadline = time.monotonic() + args.timeout
            counts = [per_rater] * args.raters
            counts[-1] -= per_rater * args.raters - args.grades
            raters = [Rater(url, f"rater {k:02d}", n, deadline) for k, n in enumerate(counts)]
            start = time.perf_counter()
            for r in raters:
                r.start()
            for r in raters:
                r.join(max(0.0, deadline - time.monotonic()) + 5)
            wall = time.perf_counter() - start
        finally:
            stop(proc)
        errors = [f"{r.name}: {r.error}" for r in raters if r.error or r.is_alive()]
        acked = [rid for r in raters for rid in r.acked]
        with GradeStore(db) as store:
            rows = store.all_grades()
            pairs = {(g[2], g[3]) for g in rows}
        stored_ids = [g[1] for g in rows]
        lost = len(set(acked) - set(stored_ids))
        duplicated = len(stored_ids) - len(set(stored_ids)) + (len(rows) - len(pairs))
        duplicated += sum(r.retries_stored for r in raters)
        extra = len(set(stored_ids) - set(acked))
        ms = np.array([t for r in raters for t in r.latencies]) * 1000
    print(
        f"grading load test, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()} "
        f"({platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})"
    )
    print(
        f"{args.raters} raters, {len(acked)} grades of {args.grades} acknowledged "
        f"(+{sum(len(r.latencies) for r in raters) - len(acked)} retries) in {wall:.1f} s, "
        f"{len(acked) / wall:.0f} grades/s"
    )
    if len(ms):
        print(
            f"grade response time: median {np.median(ms):.1f} ms, "
            f"p99 {np.percentile(ms, 99):.1f} ms, max {ms.max():.1f} ms"
        )
    print(
        f"database: {len(rows)} grade rows; "
        f"lost {lost}, duplicated {duplicated}, unexpected {extra}"
    )
    for e in errors:
        print("error:", e)
    ok = not errors and lost == 0 and duplicated == 0 and extra == 0 and len(acked) == args.grades
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
