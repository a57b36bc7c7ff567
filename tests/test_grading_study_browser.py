"""The issue 24 study end to end: 60 raters over HTTPS, each grading a balanced 30 of a pool of
600 (every sketch exactly twice), with a consent form, questions before and after, MTurk and
Prolific links; three of them in Chromium (one of them inside MTurk's own frame, after MTurk's
preview), the other 57 scripted over HTTPS. Then the report. Screenshots land in the test's
tmp_path (and in $GRADING_SCREENSHOTS: `GRADING_SCREENSHOTS=docs/img` makes docs/grading.md's).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import pandas as pd
import pytest
from grading_support import Client, self_signed, session_sources, start_server, stop
from playwright.sync_api import expect, sync_playwright

from quickdraw_tools.cli import main
from quickdraw_tools.eval.grading.store import GradeStore
from quickdraw_tools.eval.grading.study import read_study

CHROMIUM = "/usr/bin/chromium"
# MTurk's page (a public site) frames the study on 127.0.0.1 here, which Chromium's local network
# access checks block; a real study's server is on a public address, where they do not apply
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-features=LocalNetworkAccessChecks"]  # fmt: skip
CONSENT = """# Consent to take part

You will see **30 sketches** and say whether a person drew each one. It takes about five
minutes. We store your platform id, your answers and your grades; nothing else.

You may stop at any time. Questions: write to the researcher through the platform.
"""
QUESTIONS = {
    "before": [{"id": "draws", "text": "How often do you draw?",
                "choices": ["never", "sometimes", "often"]}],
    "after": [{"id": "minutes", "text": "About how many minutes did it take?",
               "kind": "number", "min": 0, "max": 120},
              {"id": "notes", "text": "Anything to tell us?", "kind": "text", "required": False}],
}  # fmt: skip
PROLIFIC = "https://app.prolific.com/submissions/complete?cc=C0DE4U2"
SANDBOX = "https://workersandbox.mturk.com"


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).is_file(), "install the system Chromium: apt-get install -y chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def screenshot(page, tmp_path: Path, name: str, full_page: bool = False) -> None:
    path = tmp_path / f"grading-{name}.png"
    page.screenshot(path=path, full_page=full_page)
    if os.environ.get("GRADING_SCREENSHOTS"):
        out = Path(os.environ["GRADING_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, out / path.name)


def hexid(n: int, kind: int) -> str:
    return f"{kind:02x}{n:022x}"  # 24 hexadecimal digits, as Prolific's ids


def scripted_rater(url: str, n: int, gold: dict[str, str]) -> None:
    """One rater over HTTPS from its own address: consent, the question before, 30 grades,
    the questions after. Not a person: it answers the attention checks right (`gold`: sketch
    id -> kind, read from the database) and grades the rest by a fixed rule on the id."""
    client = Client(url, source=f"127.0.{n // 200 + 1}.{n % 200 + 1}")
    if n % 2:
        start = {"platform": "prolific", "prolific_pid": hexid(n, 1), "study_id": hexid(0, 2),
                 "session_id": hexid(n, 3)}  # fmt: skip
    else:
        start = {"platform": "mturk", "worker_id": f"A{n:013d}", "assignment_id": f"3A{n:028d}",
                 "hit_id": f"3H{0:028d}", "turk_submit_to": SANDBOX}  # fmt: skip
    status, me = client.request("POST", "/api/raters", {"name": "", "consent": True, **start})
    assert status == 201 and me["total"] == 30 and me["before"] == ["draws"], me
    token = me["rater"]
    body = {"rater": token, "question": "draws", "answer": ["never", "often"][n % 2]}
    assert client.request("POST", "/api/answers", body)[0] == 200
    status, item = client.request("GET", f"/api/item?rater={token}&index=0")
    for i in range(30):
        grade = ["real", "possibly_real", "fake"][(ord(item["id"][0]) + n) % 3]
        if item["id"] in gold:
            grade = "real" if gold[item["id"]] == "real" else "fake"
        body = {
            "rater": token,
            "sketch": item["id"],
            "grade": grade,
            "request_id": f"req{n:03d}x{i:04d}",
        }
        status, r = client.request("POST", "/api/grades", body)
        assert status == 201, r
        item = r["next"]
    assert r["done"] and r["after"] == ["minutes"] and "completion" not in r
    status, state = client.request(
        "POST", "/api/answers", {"rater": token, "question": "minutes", "answer": 5 + n % 7}
    )
    assert status == 200 and state["completion"]["code"] == "C0DE4U2"
    if n % 2 == 0:  # MTurk's: posted back to the sandbox, with the assignment
        assert state["completion"]["mturk"] == {
            "submit": f"{SANDBOX}/mturk/externalSubmit",
            "assignment_id": f"3A{n:028d}",
        }
    client.close()


def grade_in_page(frame, count: int) -> None:
    """Grade `count` sketches in a page (or frame), by key and by mouse in turn."""
    for i in range(count):
        expect(frame.locator("#progress-text")).to_have_text(f"{i} / {count}")
        expect(frame.locator("#sketch svg")).to_be_attached()
        button = frame.locator(f"#grade-{['real', 'possibly_real', 'fake'][i % 3]}")
        expect(button).to_be_enabled()
        button.click()


def answer_before(frame) -> None:
    expect(frame.locator("#questions")).to_be_visible()
    frame.locator("input[name=q-draws][value=sometimes]").check()
    frame.locator("#questions-submit").click()


def answer_after(frame, tmp_path: Path | None = None) -> None:
    """The questions after the last sketch (a screenshot of them with `tmp_path`: `frame` is
    then a page)."""
    expect(frame.locator("#questions-title")).to_have_text("Before you finish, a few questions")
    frame.locator("#q-minutes").fill("7")
    frame.locator("#q-notes").fill("the sheep were odd")
    if tmp_path is not None:
        screenshot(frame, tmp_path, "questions")
    frame.locator("#questions-submit").click()


def test_sixty_rater_study_over_https_with_mturk_and_prolific(browser, tmp_path, shared, capsys):
    real, generated = session_sources(shared)
    cert, key = self_signed(tmp_path)
    (tmp_path / "consent.md").write_text(CONSENT)
    (tmp_path / "questions.json").write_text(json.dumps(QUESTIONS))
    db = tmp_path / "study.sqlite"
    args = ["--db", str(db), "--real", real, *[x for g in generated for x in ("--generated", g)],
            "--per-source", "150", "--gold-real", real, "--gold", "5", "--per-rater", "30",
            "--gradings-per-sketch", "2", "--consent", str(tmp_path / "consent.md"),
            "--questions", str(tmp_path / "questions.json"), "--completion-url", PROLIFIC,
            "--certfile", str(cert), "--keyfile", str(key), "--seed", "0"]  # fmt: skip
    proc, url = start_server(args, timeout=120)
    assert url.startswith("https://127.0.0.1:")
    errors: list[str] = []
    posted: list[dict] = []  # what MTurk's sandbox received
    arrived: list[str] = []  # where Prolific's link took the rater
    try:
        with GradeStore(db, readonly=True) as store:
            gold = store.gold()
        for n in range(57):
            scripted_rater(url, n, gold)
        viewport = {"width": 900, "height": 1000}
        context = browser.new_context(ignore_https_errors=True, viewport=viewport)

        def mturk(route):  # MTurk's sandbox stood in for: its HIT page frames the study
            request = route.request
            if request.url.endswith("/mturk/externalSubmit"):
                posted.append({k: v[0] for k, v in parse_qs(request.post_data or "").items()})
                route.fulfill(status=200, content_type="text/html", body="<h1>HIT submitted</h1>")
                return
            src = request.url.split("?src=", 1)[1]
            page = f'<h1>HIT</h1><iframe id="hit" src="{src}" width="860" height="900"></iframe>'
            route.fulfill(status=200, content_type="text/html", body=page)

        def prolific(route):
            arrived.append(route.request.url)
            route.fulfill(status=200, content_type="text/html", body="<h1>Prolific</h1>")

        context.route(f"{SANDBOX}/**", mturk)
        context.route("https://app.prolific.com/**", prolific)

        # 1. MTurk: the preview shows the task, stores nothing; the accepted HIT runs in the frame
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        ids = {"workerId": "A2MTURKWORKER9", "hitId": "3H" + "7" * 28,
               "turkSubmitTo": SANDBOX}  # fmt: skip
        preview = url + "?" + urlencode({**ids, "assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE"})
        page.goto(preview)
        expect(page.locator("#preview-note")).to_be_visible()
        expect(page.locator("#start-button")).to_be_disabled()
        expect(page.locator("#examples-real svg")).to_have_count(3)
        screenshot(page, tmp_path, "mturk-preview", full_page=True)
        accepted = url + "?" + urlencode({**ids, "assignmentId": "3A" + "7" * 28})
        page.goto(f"{SANDBOX}/hit?src={accepted}")
        frame = page.frame_locator("#hit")
        expect(frame.locator("#consent")).to_be_visible()  # consent before anything else
        expect(frame.locator("#consent-text h1")).to_have_text("Consent to take part")
        frame.locator("#agree").click()
        expect(frame.locator("#participant")).to_have_text("A2MTURKWORKER9")
        frame.locator("#start-button").click()
        answer_before(frame)
        grade_in_page(frame, 30)
        answer_after(frame)
        expect(frame.locator("#mturk-form")).to_be_visible()
        expect(frame.locator("#completion-code")).to_have_text("C0DE4U2")
        screenshot(page, tmp_path, "mturk-submit")
        for _ in range(150):  # the countdown, then the form's POST to MTurk
            if posted:
                break
            page.wait_for_timeout(100)
        assert posted == [{"assignmentId": "3A" + "7" * 28, "completion_code": "C0DE4U2"}]

        # 2. Prolific: declines first (nothing stored), then agrees, grades, goes back
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        pid = "5f3c0ffee5a1d2b3c4d5e6f7"
        link = url + "?" + urlencode({"PROLIFIC_PID": pid, "STUDY_ID": hexid(0, 2),
                                      "SESSION_ID": hexid(99, 3)})  # fmt: skip
        page.goto(link)
        expect(page.locator("#consent")).to_be_visible()
        screenshot(page, tmp_path, "consent")
        page.locator("#decline").click()
        expect(page.locator("#declined")).to_contain_text("return the study on Prolific")
        page.goto(link)
        page.locator("#agree").click()
        page.locator("#start-button").click()
        answer_before(page)
        grade_in_page(page, 30)
        answer_after(page, tmp_path)
        expect(page.locator("#redirect")).to_be_visible()
        page.wait_for_url("https://app.prolific.com/**", timeout=10000)
        assert arrived == [PROLIFIC]

        # 3. a rater with a typed name (a lab's raters, no platform), in a browser of their own
        context.close()
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.locator("#agree").click()
        page.locator("#name").fill("Grace")
        page.locator("#start-button").click()
        answer_before(page)
        grade_in_page(page, 30)
        answer_after(page)
        expect(page.locator("#done")).to_be_visible()
        screenshot(page, tmp_path, "study-done")
        # the study is full: every sketch has its two raters
        status, full = Client(url).request("POST", "/api/raters", {"name": "late", "consent": True})
        assert status == 410 and "this study is full" in full["error"], full
        context.close()
        assert errors == []
    finally:
        stop(proc)

    study = db.with_suffix(".study.json")
    digest = read_study(study)[1]
    csvs = [tmp_path / "raters.csv", tmp_path / "grades.csv"]
    command = ["grade", "report", "--db", str(db), "--bootstrap", "300"]
    assert main([*command, "--raters-csv", str(csvs[0]), "--grades-csv", str(csvs[1])]) == 0
    text = capsys.readouterr().out
    (tmp_path / "report.txt").write_text(text)
    assert main([*command, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["raters"] == 60 and report["gradings"] == 1200 and report["pool"] == 610
    assert len(report["attention"]["flagged"]) == 3  # the three in the browser: not careful
    assert "Fleiss' kappa" in text and "over 600 sketches graded by 2 raters each" in text
    assert "  r1  A0000000000000  30/30  participant 'A0000000000000'  gold 10/10" in text
    assert report["study"]["gradings_per_sketch"] == {"2": 600}  # every sketch exactly twice
    assert report["study"]["platforms"] == {"mturk": 30, "prolific": 29}
    assert report["study"]["consent"]["agreed"] == 60
    assert report["study"]["sha256"] == digest
    assert f"Study sha256:{digest}" in text
    assert "Raters by platform: mturk 30, prolific 29" in text
    assert "60 raters agreed" in text
    assert "Question draws (before): 60 answers: never 29, sometimes 3, often 28" in text
    assert "HYPE-infinity (no exposure limit), per model" in text
    for model in ("aaron_sheep:test", "teapot"):
        assert f"  {model}: " in text
    raters = pd.read_csv(csvs[0])
    grades = pd.read_csv(csvs[1])
    assert len(raters) == 60 and raters["consent_at"].notna().all()
    assert set(raters["platform"].dropna()) == {"mturk", "prolific"}
    pool = grades[grades["gold"].isna()].groupby("sketch")["rater"].nunique()
    assert len(grades) == 60 * 30 and len(pool) == 600 and set(pool) == {2}
    mine = raters[raters["worker"] == "A2MTURKWORKER9"].iloc[0]
    assert (mine["q_draws"], mine["q_minutes"], mine["q_notes"]) == (
        "sometimes",
        7,
        "the sheep were odd",
    )
    if os.environ.get("GRADING_STUDY_REPORT"):
        Path(os.environ["GRADING_STUDY_REPORT"]).write_text(text)
