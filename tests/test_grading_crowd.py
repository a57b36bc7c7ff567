"""Grading studies on a crowd (issue 24): per-rater subsets, MTurk and Prolific ids, consent and
questions, the study file, HTTPS, HYPE-infinity and HYPE-time. Real sketches from
../shared/quickdraw; the 60-rater study with Chromium is in tests/test_grading_browser.py."""

from __future__ import annotations

import json
import math
import re
import ssl
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from grading_support import Client, self_signed, session_sources, start_server, stop

from quickdraw_tools.cli import main
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.eval.grading.crowd import Consent, read_consent, read_questions
from quickdraw_tools.eval.grading.design import Design, choose_sketches, quotas
from quickdraw_tools.eval.grading.exposure import Exposure, exposures, threshold
from quickdraw_tools.eval.grading.hype import hype_infinity
from quickdraw_tools.eval.grading.report import (
    bootstrap_shares,
    build_report,
    format_report,
    write_grades_csv,
    write_rater_csv,
)
from quickdraw_tools.eval.grading.server import GradingApp, load_tls, make_server
from quickdraw_tools.eval.grading.sources import build_session, parse_source
from quickdraw_tools.eval.grading.store import GradeStore, Grading
from quickdraw_tools.eval.grading.study import (
    create_session,
    make_study,
    read_study,
    set_protocol,
    study_hash,
    write_study,
)

QUESTIONS = {
    "before": [{"id": "age", "text": "Your age", "choices": ["18-29", "30-49", "50+"]}],
    "after": [
        {"id": "strategy", "text": "How did you decide?", "kind": "text", "required": False},
        {"id": "hours", "text": "Hours a week you draw", "kind": "number", "min": 0, "max": 80},
    ],
}
CONSENT = "# Consent\n\nYou grade sketches. <script>alert(1)</script> [x](javascript:alert(1))\n"
MTURK = {"worker_id": "A1B2C3D4E5F6G7", "assignment_id": "3AMW0RGHOD1P8XNSUBMITTEST1",
         "hit_id": "3HIT0RGHOD1P8XNSUBMITTEST1",
         "turk_submit_to": "https://workersandbox.mturk.com"}  # fmt: skip
PROLIFIC = {"prolific_pid": "5f3c0ffee5a1d2b3c4d5e6f7", "study_id": "5f3c0ffee5a1d2b3c4d5e6f8",
            "session_id": "5f3c0ffee5a1d2b3c4d5e6f9"}  # fmt: skip


def study_session(
    db: Path,
    shared: Path,
    per_source: int = 3,
    gold: int = 0,
    design: Design | None = None,
    exposure: Exposure | None = None,
    consent: Consent | None = None,
    questions: dict | None = None,
) -> tuple[GradeStore, dict, str]:
    """A study of real cakes against two stand-in models (`session_sources`), made as `grade
    serve` makes one; returns (store, study, hash)."""
    real, generated = session_sources(shared)
    session = build_session(
        parse_source(real),
        [parse_source(g) for g in generated],
        per_source,
        0,
        gold_real=parse_source(real) if gold else None,
        gold=gold or 1,
    )
    set_protocol(session, exposure or Exposure(), design or Design())
    study = make_study(session, consent, questions)
    digest = study_hash(study)
    store = GradeStore(db)
    create_session(store, session, consent, questions, digest)
    return store, study, digest


def call(app, method, target, body=None):
    data = None if body is None else json.dumps(body).encode()
    r = app.handle(method, target, {"content-type": "application/json"}, data)
    return int(r.status), json.loads(r.body)


def grade_all(app, token: str, pick=lambda item: "real") -> list[dict]:
    """Grade every sketch of `token`'s order; returns the items shown."""
    shown = []
    status, state = call(app, "GET", f"/api/state?rater={token}")
    for index in range(state["graded"], state["total"]):
        status, it = call(app, "GET", f"/api/item?rater={token}&index={index}")
        assert status == 200, it
        shown.append(it)
        body = {"rater": token, "sketch": it["id"], "grade": pick(it),
                "request_id": f"r{index:04d}{token[:12]}"}  # fmt: skip
        assert call(app, "POST", "/api/grades", body)[0] == 201
    return shown


# --- per-rater subsets ------------------------------------------------------------------------


def test_quotas_are_balanced_and_rotate():
    assert quotas({"real": 300, "a": 150, "b": 150}, 20, 1) == {"real": 10, "a": 5, "b": 5}
    assert quotas({"real": 4, "a": 2, "b": 2}, 7, 1) == {"real": 3, "a": 2, "b": 2}
    # 2 of 1:1:1: a tie in the remainders goes round with the rater's number
    got = [quotas({"a": 1, "b": 1, "c": 1}, 2, n) for n in range(1, 7)]
    assert all(sum(q.values()) == 2 for q in got)
    assert Counter(s for q in got for s, k in q.items() if k == 0) == {"a": 2, "b": 2, "c": 2}


def test_sixty_raters_grade_every_sketch_exactly_k_times(tmp_path, shared):
    """The issue's test: a pool of 600 (300 real cakes, 150 sheep, 150 teapots) and 10 gold
    items; --per-rater 30 --gradings-per-sketch 2: each of 60 raters gets every gold item and
    20 of the pool (10 real, 5 of each model); every sketch is graded exactly twice, by two
    different raters; the 61st rater is told the study is full."""
    design = Design(per_rater=30, gradings_per_sketch=2, order_seed=7)
    store, _, _ = study_session(tmp_path / "g.sqlite", shared, 150, gold=5, design=design)
    with store:
        app = GradingApp(store)
        assert app.session["total"] == 30 and app.session["pool"] == 600
        gold = set(store.gold())
        source = {sid: s.source for sid, s in store.sketches().items()}
        tokens = []
        for n in range(60):
            status, me = call(app, "POST", "/api/raters", {"name": f"rater {n}"})
            assert status == 201 and me["total"] == 30, me
            tokens.append(me["rater"])
            mine = store.rater(me["rater"]).order
            assert gold <= set(mine) and len(set(mine)) == 30
            assert Counter(source[s] for s in mine if s not in gold) == {
                "real": 10,
                "aaron_sheep:test": 5,
                "teapot": 5,
            }
            # every sketch is given to K raters before any to K + 1
            held = Counter(s for t in tokens for s in store.rater(t).order if s not in gold)
            assert max(held.values()) - min(held.get(s, 0) for s in source if s not in gold) <= 1
        status, full = call(app, "POST", "/api/raters", {"name": "late"})
        assert (
            status == 410 and "this study is full: every sketch has its 2 raters" in full["error"]
        )
        for token in tokens:
            grade_all(app, token, lambda it: "fake" if ord(it["id"][0]) % 2 else "real")
        pairs = [(g.rater, g.sketch) for g in store.gradings() if g.gold is None]
        per_sketch = Counter(s for _, s in pairs)
        assert len(per_sketch) == 600 and set(per_sketch.values()) == {2}
        assert len(set(pairs)) == len(pairs) == 1200  # two different raters each
        report = build_report(store, resamples=200)
    assert report["study"]["gradings_per_sketch"] == {"2": 600}
    assert report["agreement"]["fleiss_units"] == 600  # every sketch: 2 ratings
    assert not math.isnan(report["agreement"]["fleiss_kappa"])
    text = format_report(report)
    assert "Per-rater subsets: each rater grades 30 sketches" in text
    assert "every sketch by 2 raters; graded so far: 600 sketches 2 times" in text


def test_a_silent_rater_gives_back_their_sketches(tmp_path, shared):
    design = Design(per_rater=4, gradings_per_sketch=1, order_seed=0, hold_minutes=1)
    store, _, _ = study_session(tmp_path / "g.sqlite", shared, 2, design=design)
    with store:
        app = GradingApp(store)
        first = call(app, "POST", "/api/raters", {"name": "a"})[1]["rater"]
        call(app, "POST", "/api/raters", {"name": "b"})
        assert call(app, "POST", "/api/raters", {"name": "c"})[0] == 410  # 8 sketches, 2 x 4
        grade_all(app, first)
        store._db.execute("UPDATE raters SET created = created - 120")  # b: silent 2 minutes
        status, me = call(app, "POST", "/api/raters", {"name": "c"})
        assert status == 201, me
        b, c = (store.rater(t) for t in (store.raters()[1].token, me["rater"]))
        assert set(b.order) == set(c.order)  # b's ungraded sketches went to c


def test_choose_sketches_is_reproducible():
    pool = {f"s{i}": "real" if i < 10 else "m" for i in range(20)}
    design = Design(per_rater=6, gradings_per_sketch=3, order_seed=5)
    one = choose_sketches(pool, ["g1"], Counter(), design, 4)
    assert one == choose_sketches(pool, ["g1"], Counter(), design, 4)
    assert one != choose_sketches(pool, ["g1"], Counter(), design, 5)
    assert "g1" in one and Counter(pool.get(s) for s in one) == {"real": 3, "m": 2, None: 1}


def test_the_bootstrap_covers_the_truth_under_per_rater_subsets():
    """Raters who see different sketches, some lenient, some strict: the two-level bootstrap
    over the sparse design covers the true share about 95% of the time, where the Wilson
    interval (gradings as independent trials) misses it far more often."""
    rng = np.random.default_rng(0)
    covered, wilson_covered, runs = 0, 0, 60
    from quickdraw_tools.eval.grading.report import wilson_interval

    for _ in range(runs):
        n_sketches, n_raters, per = 200, 40, 10
        quality = rng.normal(0, 1.0, n_sketches)  # some sketches fool people, some do not
        bias = rng.normal(0, 1.0, n_raters)  # some raters call everything real
        truth = np.mean(1 / (1 + np.exp(-(quality[:, None] + bias[None, :]))))
        rows = []
        order = rng.permutation(np.tile(np.arange(n_sketches), 2))  # every sketch twice
        for r in range(n_raters):
            for s in order[r * per : (r + 1) * per]:
                p = 1 / (1 + np.exp(-(quality[s] + bias[r])))
                rows.append((r, int(s), "real" if rng.random() < p else "fake"))
        lo, hi = bootstrap_shares(rows, 400, int(rng.integers(1 << 30)))["real_or_possibly"]
        covered += lo <= truth <= hi
        k = sum(g != "fake" for _, _, g in rows)
        w_lo, w_hi = wilson_interval(k, len(rows))
        wilson_covered += w_lo <= truth <= w_hi
    assert covered / runs >= 0.85, covered
    assert wilson_covered < covered


# --- crowd platforms, consent, questions ------------------------------------------------------


@pytest.fixture
def crowd(tmp_path, shared):
    consent = Consent(CONSENT, markdown=True)
    questions = read_questions(_write(tmp_path / "q.json", json.dumps(QUESTIONS)))
    store, _, _ = study_session(
        tmp_path / "g.sqlite", shared, gold=1, consent=consent, questions=questions
    )
    with store:
        yield GradingApp(store), store


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_mturk_and_prolific_ids_are_checked_stored_and_once(crowd, tmp_path):
    app, store = crowd
    start = {"name": "", "consent": True}
    status, me = call(app, "POST", "/api/raters", {**start, "platform": "mturk", **MTURK})
    assert status == 201 and me["participant"] == MTURK["worker_id"], me
    assert me["before"] == ["age"]  # required questions come first
    status, again = call(app, "POST", "/api/raters", {**start, "platform": "mturk", **MTURK})
    assert status == 409 and "A1B2C3D4E5F6G7 has already taken part" in again["error"]
    status, pro = call(app, "POST", "/api/raters", {**start, "platform": "prolific", **PROLIFIC})
    assert status == 201, pro
    preview = {**MTURK, "worker_id": "A9", "assignment_id": "ASSIGNMENT_ID_NOT_AVAILABLE"}
    bad = [
        ({**MTURK, "worker_id": "A1\x00B"}, "workerId 'A1\\x00B' has control or format characters"),
        ({**MTURK, "worker_id": "A" * 65}, "workerId is over 64 characters (65)"),
        ({**MTURK, "hit_id": "3hit lower"}, "hitId '3hit lower' is not an id of the platform"),
        ({**MTURK, "turk_submit_to": "https://evil.example"}, "turkSubmitTo 'https://evil"),
        (preview, "this is MTurk's preview: accept the HIT to start (nothing stored)"),
    ]
    for fields, message in bad:
        status, r = call(app, "POST", "/api/raters", {**start, "platform": "mturk", **fields})
        assert status == 400 and message in r["error"], (fields, r)
        assert "\n" not in r["error"]
    status, r = call(
        app, "POST", "/api/raters", {**start, "platform": "prolific", **PROLIFIC, "study_id": "s1"}
    )
    assert (
        status == 400 and "STUDY_ID 's1' is not an id of the platform's form (24 hex" in r["error"]
    )
    assert len(store.raters()) == 2  # nothing stored for any refusal
    crowd_rows = store.crowd()
    mturk = crowd_rows[me["rater"]]
    assert (mturk["platform"], mturk["assignment"], mturk["submit_to"]) == (
        "mturk",
        MTURK["assignment_id"],
        "https://workersandbox.mturk.com",
    )
    assert crowd_rows[pro["rater"]]["session"] == PROLIFIC["session_id"]


def test_consent_first_questions_before_and_after(crowd, tmp_path):
    app, store = crowd
    session = call(app, "GET", "/api/session")[1]
    html = session["consent"]["html"]
    assert "<h1>Consent</h1>" in html and "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html
    status, r = call(app, "POST", "/api/raters", {"name": "ann"})
    assert status == 400 and "agree to the consent form first" in r["error"]
    assert store.raters() == []
    before = time.time()
    status, me = call(app, "POST", "/api/raters", {"name": "ann", "consent": True})
    token = me["rater"]
    assert status == 201 and me["before"] == ["age"]
    status, r = call(app, "GET", f"/api/item?rater={token}&index=0")
    assert status == 409 and "answer the questions first: age" in r["error"]
    status, r = call(
        app, "POST", "/api/answers", {"rater": token, "question": "age", "answer": "9"}
    )
    assert status == 400 and "one of its choices" in r["error"]
    status, r = call(
        app, "POST", "/api/answers", {"rater": token, "question": "hours", "answer": 3}
    )
    assert status == 409 and "after the last sketch" in r["error"]
    status, state = call(
        app, "POST", "/api/answers", {"rater": token, "question": "age", "answer": "30-49"}
    )
    assert status == 200 and state["before"] == []
    grade_all(app, token)
    status, state = call(app, "GET", f"/api/state?rater={token}")
    assert state["done"] and state["after"] == ["hours"] and "completion" not in state
    for answer, ok in ((81, False), ("3", False), (True, False), (12, True)):
        body = {"rater": token, "question": "hours", "answer": answer}
        status, state = call(app, "POST", "/api/answers", body)
        assert (status == 200) == ok, (answer, state)
    assert state["completion"]["code"]  # the code once the last question is answered
    body = {"rater": token, "question": "strategy", "answer": '=HYPERLINK("x")  gut \n feeling'}
    assert call(app, "POST", "/api/answers", body)[0] == 200
    report = build_report(store, resamples=0)
    stat = report["rater_stats"][0]
    agreed = stat["consent_at"]
    assert (
        agreed
        and abs(
            time.mktime(time.strptime(agreed[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone - before
        )
        < 60
    )
    assert stat["consent_sha256"] == Consent(CONSENT, True).sha256
    assert stat["q_age"] == "30-49" and stat["q_hours"] == "12"
    write_rater_csv(report, tmp_path / "raters.csv")
    write_grades_csv(store, report, tmp_path / "grades.csv")
    import pandas as pd

    raters = pd.read_csv(tmp_path / "raters.csv")
    grades = pd.read_csv(tmp_path / "grades.csv")
    assert raters.loc[0, "q_strategy"] == '\'=HYPERLINK("x") gut feeling'  # defused
    assert len(grades) == len(store.sketch_ids()) and set(grades["q_age"]) == {"30-49"}
    assert set(grades["consent_at"]) == {agreed}
    text = format_report(report)
    assert "1 rater agreed" in text and "Question age (before): 1 answer: 18-29 0, 30-49 1" in text


def test_bad_consent_and_questions_files_are_refused_in_one_line(tmp_path):
    cases = [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "is not text (it holds NUL bytes)"),
        (b"caf\xe9", "is not UTF-8 text (byte 3)"),
        (b"line one\nbell \x07\n", ":2 holds the control character '\\x07'"),
        (b"  \n", "is empty"),
        (b"x" * (65 * 1024), "is over 64 KiB"),
    ]
    for data, message in cases:
        path = tmp_path / "consent.md"
        path.write_bytes(data)
        with pytest.raises(QuickDrawError, match=re.escape(message)):
            read_consent(path)
    with pytest.raises(QuickDrawError, match="cannot read it"):
        read_consent(tmp_path / "missing.md")
    for text, message in [
        ("{", "q.json:1: not JSON"),
        ('{"during": []}', 'must be an object with "before" and/or "after"'),
        ('{"before": [{"id": "A", "text": "x"}]}', "before[0].id must be a new id"),
        ('{"before": [{"id": "a", "text": "x", "choices": ["y"]}]}', "before[0].choices must be"),
        ('{"after": [{"id": "a", "text": "x", "kind": "number", "min": 5, "max": 1}]}',
         "after[0].min/max"),
    ]:  # fmt: skip
        with pytest.raises(QuickDrawError, match=re.escape(message)):
            read_questions(_write(tmp_path / "q.json", text))


# --- the study file ---------------------------------------------------------------------------


def test_study_file_round_trip_and_an_edit_is_refused(tmp_path, shared):
    design = Design(per_rater=6, gradings_per_sketch=2, order_seed=3)
    store, study, digest = study_session(tmp_path / "a.sqlite", shared, gold=1, design=design)
    store.close()
    path = tmp_path / "study.json"
    assert write_study(path, study) == digest
    assert write_study(path, study) == digest  # the same study again: kept
    read, found = read_study(path)
    assert found == digest and read == study
    obj = json.loads(path.read_text())
    obj["study"]["pool"][0]["strokes"][0][0] += 1  # one number of one point
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(obj))
    with pytest.raises(QuickDrawError, match="was changed after it was written") as e:
        read_study(edited)
    assert "\n" not in str(e.value)
    with pytest.raises(QuickDrawError, match="exists and holds another study"):
        write_study(edited, study)
    for text, message in [
        ("[]", "is not a study file"),
        ('{"format": "quickdraw-grading-study", "version": 9}', "is version 9"),
        ("NaN", "is not a study file (not JSON"),
    ]:
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(QuickDrawError, match=re.escape(message)):
            read_study(tmp_path / "bad.json")
    # a crafted study with a right hash is still checked field by field
    crafted = json.loads(path.read_text())
    crafted["study"]["pool"][1] = {"source": "real", "category": "c", "gold": None,
                                   "strokes": [[1, 2, 7]]}  # fmt: skip
    crafted["sha256"] = study_hash(crafted["study"])
    (tmp_path / "crafted.json").write_text(json.dumps(crafted))
    with pytest.raises(QuickDrawError, match=re.escape("pool[1].strokes must be rows")):
        read_study(tmp_path / "crafted.json")


def test_a_second_team_reruns_the_same_study(tmp_path, shared, capsys):
    """grade serve writes the study file; --study FILE makes the same session elsewhere: the
    same pool, the same k-th rater's sketches in the same order; the report names the hash."""
    real, generated = session_sources(shared)
    first = tmp_path / "one" / "g.sqlite"
    args = ["--real", real, "--generated", generated[0], "--per-source", "3", "--gold-real",
            real, "--gold", "1", "--per-rater", "5", "--gradings-per-sketch", "2"]  # fmt: skip
    proc, _ = start_server(["--db", str(first), *args])
    stop(proc)
    study = first.with_suffix(".study.json")
    printed = "".join(proc.lines)
    digest = read_study(study)[1]
    assert f"study file: {study} (sha256:{digest[:16]})" in printed
    second = tmp_path / "two" / "g.sqlite"
    proc, _ = start_server(["--db", str(second), "--study", str(study)])
    stop(proc)
    assert f"study {study} read (sha256:{digest[:16]})" in "".join(proc.lines)
    orders = []
    for db in (first, second):
        with GradeStore(db) as store:
            app = GradingApp(store)
            ids = store.sketch_ids()
            sketches = store.sketches()
            content = [sketches[i].to_json() for i in ids]
            made = [call(app, "POST", "/api/raters", {"name": f"r{k}"})[1] for k in range(3)]
            orders.append(
                (content, [[ids.index(s) for s in store.rater(m["rater"]).order] for m in made])
            )
            report = build_report(store, resamples=0)
            assert report["study"]["sha256"] == digest
            assert f"Study sha256:{digest}" in format_report(report)
    assert orders[0] == orders[1]
    # the flags a study file fixes are refused beside it; another study in the same --db too
    assert main(["grade", "serve", "--db", str(tmp_path / "x.sqlite"), "--study", str(study),
                 "--real", real]) == 1  # fmt: skip
    assert "fixes the study; drop --real" in capsys.readouterr().err
    other = tmp_path / "other.study.json"
    proc, _ = start_server(["--db", str(tmp_path / "o.sqlite"), "--study", str(other), *args,
                            "--seed", "9"])  # fmt: skip
    stop(proc)
    assert main(["grade", "serve", "--db", str(first), "--study", str(other), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "holds another study" in err and err.count("\n") == 1


# --- HTTPS ------------------------------------------------------------------------------------


def test_https_secure_cookie_and_bad_certificates(tmp_path, shared):
    cert, key = self_signed(tmp_path)
    other_cert, other_key = self_signed(tmp_path, "other")
    store, _, _ = study_session(tmp_path / "g.sqlite", shared)
    with store:
        app = GradingApp(store, token="secret-token-1")
        server = make_server(app, port=0, tls=load_tls(str(cert), str(key)))
        import threading

        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            port = server.server_address[1]
            client = Client(f"https://127.0.0.1:{port}/", token="secret-token-1")
            status, me = client.request("POST", "/api/raters", {"name": "ann"})
            assert status == 201
            client.conn.request("GET", "/?token=secret-token-1", headers={"Host": "127.0.0.1"})
            response = client.conn.getresponse()
            response.read()
            cookie = response.getheader("Set-Cookie")
            assert cookie.startswith("grading_token=secret-token-1;")
            assert all(p in cookie for p in ("; Secure", "; HttpOnly", "; SameSite=Strict"))
            assert response.getheader("Strict-Transport-Security") == "max-age=86400"
            # the cookie alone carries the token (a page opened without ?token=)
            plain = Client(f"https://127.0.0.1:{port}/")
            status, _ = plain.request(
                "GET", "/api/session", headers={"Cookie": cookie.split(";")[0]}
            )
            assert status == 200
            assert plain.request("GET", "/api/session")[0] == 403
            # plain HTTP to the HTTPS port gets no page
            import http.client

            raw = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
                raw.request("GET", "/")
                raw.getresponse().read()
        finally:
            server.shutdown()
            server.server_close()
            thread.join(10)
    # a certificate and another's key; a file that is no certificate; a missing file
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    for certfile, keyfile, message in [
        (cert, other_key, "is not the key of --certfile"),
        (tmp_path / "junk.pem", key, "cannot be used"),
        (tmp_path / "missing.pem", key, "cannot read --certfile"),
    ]:
        with pytest.raises(QuickDrawError, match=message) as e:
            load_tls(str(certfile), str(keyfile))
        assert "\n" not in str(e.value)
    encrypted = tmp_path / "enc.key"
    import subprocess

    subprocess.run(["openssl", "pkey", "-in", str(key), "-aes256", "-passout", "pass:pw",
                    "-out", str(encrypted)], check=True, capture_output=True)  # fmt: skip
    with pytest.raises(QuickDrawError, match="is protected by a password"):
        load_tls(str(cert), str(encrypted))
    assert other_cert.exists()


def test_a_public_address_needs_tls_or_a_token(tmp_path, shared, capsys):
    real, generated = session_sources(shared)
    base = ["grade", "serve", "--db", str(tmp_path / "g.sqlite"), "--real", real,
            "--generated", generated[0], "--host", "0.0.0.0", "--port", "0"]  # fmt: skip
    assert main(base) == 1
    err = capsys.readouterr().err
    assert "give --certfile/--keyfile (HTTPS) or --token TOKEN" in err and err.count("\n") == 1
    assert main([*base[:-4], "--keyfile", "k.pem"]) == 1
    assert "--keyfile needs --certfile" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# --- HYPE -------------------------------------------------------------------------------------


def g(rater, sketch, source, grade, exposure=None):
    return Grading(rater, sketch, source, "c", grade, None, None, exposure)


def test_hype_infinity_is_the_balanced_error_rate():
    rows = [g("a", "r1", "real", "real"), g("a", "r2", "real", "fake"),
            g("b", "r1", "real", "possibly_real"), g("b", "r2", "real", "real"),
            g("a", "m1", "m", "real"), g("a", "m2", "m", "fake"),
            g("b", "m1", "m", "fake"), g("b", "m2", "m", "fake")]  # fmt: skip
    (row,) = hype_infinity(rows, ["m"], 500, 0)
    assert row["real_error"] == 0.25 and row["model_error"] == 0.25
    assert row["hype_infinity"] == 0.25
    assert 0 <= row["ci95"][0] <= 0.25 <= row["ci95"][1] <= 1


def test_the_staircase_moves_and_finds_a_threshold():
    exposure = Exposure("adaptive", None, 100, 1000)
    levels = exposure.levels()
    assert levels[0] == 100 and levels[-1] == 1000 and len(levels) == 10
    sources = ["m", "real", "m", "m", "real", None, "m"]
    answers = ["fake", "fake", "fake", "real", "real", "real"]  # right, wrong, right, wrong ...
    shown = exposures(exposure, sources, ["m"], answers)
    assert shown[0] == 1000 and shown[1] == levels[8]  # one step shorter after a right answer
    assert shown[2] == 1000  # three longer after a wrong one (capped at the longest)
    assert shown[3] == levels[8] and shown[4] == 1000
    assert shown[5] == levels[8]  # the gold item shows at the staircase's level ...
    assert shown[6] == shown[5]  # ... and feeds nothing
    # a long run settles where a rater is right 75% of the time
    rng = np.random.default_rng(0)
    trials, level = [], 9
    for _ in range(400):
        ms = levels[level]
        right = rng.random() < (0.5 + 0.5 / (1 + math.exp(-(math.log(ms) - math.log(300)) * 4)))
        trials.append((ms, right))
        level = min(9, max(0, level + (-1 if right else 3)))
    found = threshold(trials)
    assert 250 < found < 700, found


def test_adaptive_exposure_through_the_api(tmp_path, shared):
    exposure = Exposure("adaptive", None, 100, 1000)
    store, _, _ = study_session(tmp_path / "g.sqlite", shared, 6, gold=1, exposure=exposure)
    with store:
        app = GradingApp(store)
        assert app.session["back"] is False
        tokens = [call(app, "POST", "/api/raters", {"name": n})[1]["rater"] for n in "abc"]
        seen = [grade_all(app, t, lambda it: "fake") for t in tokens]
        assert all(it["exposure_ms"] in Exposure("adaptive", None, 100, 1000).levels()
                   for items in seen for it in items)  # fmt: skip
        first = seen[0][0]
        body = {"rater": tokens[0], "sketch": first["id"], "grade": "real", "request_id": "x" * 9}
        status, r = call(app, "POST", "/api/grades", body)
        assert status == 409 and "a grade is final" in r["error"]
        assert {g.exposure_ms for g in store.gradings()} <= set(exposure.levels())
        report = build_report(store, resamples=200)
    hype = report["hype"]
    assert [m["model"] for m in hype["time"]["models"]] == ["aaron_sheep:test", "teapot"]
    for m in hype["time"]["models"]:
        assert m["raters"] == 3 and 100 <= m["threshold_ms"] <= 1000
        assert m["ci95"][0] <= m["threshold_ms"] <= m["ci95"][1]
    text = format_report(report)
    assert "HYPE-time: adaptive exposure from 100 to 1000 ms" in text
    assert re.search(r"aaron_sheep:test: threshold \d+ ms \[\d+, \d+\] over 3 raters", text)


def test_serve_flags_for_exposure_and_design_are_checked(tmp_path, shared, capsys):
    real, generated = session_sources(shared)
    base = ["grade", "serve", "--db", str(tmp_path / "g.sqlite"), "--real", real,
            "--generated", generated[0], "--per-source", "2", "--port", "0"]  # fmt: skip
    for extra, message in [
        (["--exposure", "adaptive", "--exposure-ms", "500"], "takes --exposure-min-ms/-max-ms"),
        (["--exposure", "adaptive", "--exposure-min-ms", "900", "--exposure-max-ms", "100"],
         "--exposure-min-ms 900 must be below --exposure-max-ms 100"),
        (["--exposure-min-ms", "100"], "need --exposure adaptive"),
        (["--gradings-per-sketch", "2"], "--gradings-per-sketch needs --per-rater N"),
        (["--per-rater", "99"], "--per-rater 99 must be more than the 0 attention checks"),
        (["--consent", str(tmp_path)], "--consent"),
    ]:  # fmt: skip
        assert main([*base, *extra]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (extra, err)
    assert not (tmp_path / "g.sqlite").exists()


def test_tls_serve_from_the_command_line(tmp_path, shared):
    cert, key = self_signed(tmp_path)
    real, generated = session_sources(shared)
    args = ["--db", str(tmp_path / "g.sqlite"), "--real", real, "--generated", generated[0],
            "--per-source", "2", "--certfile", str(cert), "--keyfile", str(key)]  # fmt: skip
    proc, url = start_server(args)
    try:
        assert url.startswith("https://127.0.0.1:")
        client = Client(url)
        assert client.request("GET", "/api/session")[0] == 200
        context = ssl.create_default_context(cafile=str(cert))  # the certificate is checked
        import http.client
        from urllib.parse import urlsplit

        conn = http.client.HTTPSConnection("localhost", urlsplit(url).port, context=context)
        conn.request("GET", "/api/session")
        assert conn.getresponse().status == 200
    finally:
        stop(proc)


def test_a_slow_tls_handshake_is_cut_off(tmp_path, shared):
    """A client that opens a connection to the HTTPS server and sends its hello byte by byte
    is closed at the request deadline (the handshake runs in the connection's thread), and
    another rater is served meanwhile."""
    import socket
    import threading

    cert, key = self_signed(tmp_path)
    store, _, _ = study_session(tmp_path / "g.sqlite", shared)
    with store:
        server = make_server(GradingApp(store), port=0, tls=load_tls(str(cert), str(key)))
        server.request_timeout = 1.0
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            port = server.server_address[1]
            with socket.create_connection(("127.0.0.1", port), 10) as slow:
                hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
                started, closed = time.monotonic(), None
                for byte in hello:  # one byte every 0.3 s: each read alone would not time out
                    try:
                        slow.sendall(bytes([byte]))
                    except OSError:
                        closed = time.monotonic() - started
                        break
                    other = Client(f"https://127.0.0.1:{port}/", source="127.0.0.9")
                    assert other.request("GET", "/api/session")[0] == 200
                    other.close()
                    time.sleep(0.3)
                if closed is None:
                    slow.settimeout(5)
                    assert slow.recv(1) == b""
                    closed = time.monotonic() - started
            assert closed < 3.5, closed
        finally:
            server.shutdown()
            server.server_close()
            thread.join(10)
