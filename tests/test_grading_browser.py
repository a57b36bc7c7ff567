"""The grading page in a real browser: the system's Chromium, driven by Playwright.

A rater grades a whole session with the mouse and the keyboard, reloads half-way, steps back to
change a grade, double-clicks, and reaches the done page; meanwhile someone else types the same
name (and becomes a new rater) and the rater's resume link opens their session in a fresh
browser; then the database and the report are checked. A crowd study (attention checks,
time-limited exposure, a Prolific link, a completion URL) is run through the instructions page
to the redirect. Screenshots land in the test's tmp_path (and in $GRADING_SCREENSHOTS if set:
`GRADING_SCREENSHOTS=docs/img` makes the pictures of docs/grading.md).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from grading_support import make_session, session_sources, start_server, stop
from playwright.sync_api import expect, sync_playwright

from quickdraw_tools.cli import main
from quickdraw_tools.eval.grading.report import build_report
from quickdraw_tools.eval.grading.store import GRADES, GradeStore

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
KEYS = {"real": "1", "possibly_real": "2", "fake": "3"}


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


def grade_one(page, grade: str, use_key: bool) -> None:
    """Grade the sketch on screen, by key or by mouse, once the page accepts input."""
    button = page.locator(f"#grade-{grade}")
    expect(button).to_be_enabled()
    if use_key:
        page.keyboard.press(KEYS[grade])
    else:
        button.click()


def test_whole_session_in_chromium(browser, tmp_path, shared, capsys):
    db = tmp_path / "grades.sqlite"
    make_session(db, shared).close()  # 12 sketches: 6 real, 3 + 3 from two "models"
    proc, url = start_server(["--db", str(db)])
    try:
        page = browser.new_context(viewport={"width": 800, "height": 900}).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        failed: list[str] = []  # e.g. a favicon the page asks for and the server lacks
        page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
        page.goto(url)
        expect(page.locator("#start")).to_be_visible()
        # the instructions: the three grades and example sketches, but no checks, no timing
        expect(page.locator("#examples-real svg")).to_have_count(3)
        expect(page.locator("#examples-fake svg polyline").first).to_be_attached()
        expect(page.locator("#checks-note")).to_be_hidden()
        expect(page.locator("#exposure-note")).to_be_hidden()
        expect(page.locator("#participant-line")).to_be_hidden()
        page.locator("#name").fill("Grace")
        page.locator("#start-button").click()
        expect(page.locator("#progress-text")).to_have_text("0 / 12")
        expect(page.locator("#sketch svg polyline").first).to_be_attached()
        expect(page.locator("#resume")).to_be_visible()  # the resume link, shown this once
        link = page.locator("#resume-link").input_value()
        assert link.startswith(url) and "?rater=" in link, link

        plan = [GRADES[(i + i // 3) % 3] for i in range(12)]  # all three, in varied order
        for i in range(5):
            grade_one(page, plan[i], use_key=i % 2 == 1)
            expect(page.locator("#progress-text")).to_have_text(f"{i + 1} / 12")
        screenshot(page, tmp_path, "sketch")

        page.reload()  # resumes where the rater stopped (the token is in localStorage)
        expect(page.locator("#progress-text")).to_have_text("5 / 12")
        expect(page.locator("#rater")).to_have_text("Grace")
        expect(page.locator("#previous-grade")).to_have_text("")
        expect(page.locator("#resume")).to_be_hidden()

        # someone else who types the same name starts a new rater: a name resumes no one
        other = browser.new_context().new_page()
        other.on("pageerror", lambda e: errors.append(str(e)))
        other.goto(url)
        other.locator("#name").fill("Grace")
        other.locator("#start-button").click()
        expect(other.locator("#progress-text")).to_have_text("0 / 12")
        assert other.locator("#resume-link").input_value() != link
        other.context.close()
        # the resume link continues Grace's session in a fresh browser, and leaves the bar
        elsewhere = browser.new_context().new_page()
        elsewhere.on("pageerror", lambda e: errors.append(str(e)))
        elsewhere.goto(link)
        expect(elsewhere.locator("#progress-text")).to_have_text("5 / 12")
        expect(elsewhere.locator("#rater")).to_have_text("Grace")
        expect(elsewhere.locator("#resume")).to_be_hidden()
        assert "rater=" not in elsewhere.url
        elsewhere.context.close()

        # step back and change the previous grade (it is shown as chosen)
        page.locator("#back").click()
        expect(page.locator("#previous-grade")).to_have_text(
            {"real": "Your grade: Real", "possibly_real": "Your grade: Possibly real"}.get(
                plan[4], "Your grade: Fake"
            )
        )
        expect(page.locator(f"#grade-{plan[4]}")).to_have_class("grade chosen")
        changed = GRADES[(GRADES.index(plan[4]) + 1) % 3]
        grade_one(page, changed, use_key=True)
        expect(page.locator("#previous-grade")).to_have_text("")  # back at sketch 6, ungraded
        expect(page.locator("#progress-text")).to_have_text("5 / 12")

        # a double click grades one sketch, not this one and the next unseen
        expect(page.locator(f"#grade-{plan[5]}")).to_be_enabled()
        page.locator(f"#grade-{plan[5]}").dblclick()
        expect(page.locator("#progress-text")).to_have_text("6 / 12")
        # once the buttons take input again, both clicks have been dealt with
        expect(page.locator(f"#grade-{plan[6]}")).to_be_enabled()
        expect(page.locator("#progress-text")).to_have_text("6 / 12")
        # the clicked button does not stay tinted (hovered, focused) on the next sketch ...
        clicked = page.locator(f"#grade-{plan[5]}")
        background = "getComputedStyle(document.getElementById('grade-%s')).backgroundColor"
        plain = page.evaluate(background % plan[6 if plan[6] != plan[5] else 7])
        assert page.evaluate(background % plan[5]) == plain
        assert page.evaluate("document.activeElement.classList.contains('grade')") is False
        box = clicked.bounding_box()
        page.mouse.move(box["x"] + 5, box["y"] + 5)  # ... until the pointer moves again
        assert page.evaluate(background % plan[5]) != plain

        for i in range(6, 12):
            grade_one(page, plan[i], use_key=i % 2 == 0)
        expect(page.locator("#done")).to_be_visible()
        expect(page.locator("#done-text")).to_contain_text("all 12 sketches")
        expect(page.locator("#progress-text")).to_have_text("12 / 12")
        expect(page.locator("#completion-code")).to_have_text(completion_code(db))
        expect(page.locator("#redirect")).to_be_hidden()  # no --completion-url: no redirect
        page.reload()
        expect(page.locator("#done")).to_be_visible()
        assert "sheep" not in page.content() and "teapot" not in page.content()
        assert errors == [] and failed == []
    finally:
        stop(proc)

    with GradeStore(db) as store:
        rater, newcomer = store.raters()
        assert rater.name == newcomer.name == "Grace" and store.graded_count(newcomer) == 0
        rows = store.all_grades()
        assert len(rows) == 13  # 12 sketches + the changed grade; the double click stored once
        latest = {sid: g for _, sid, _, _, g, _ in store.latest_grades()}
        expected = list(plan)
        expected[4] = changed
        assert [latest[sid] for sid in rater.order] == expected
        assert len({r[1] for r in rows}) == 13

    assert main(["grade", "report", "--db", str(db), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["raters"] == 1 and report["gradings"] == 12 and report["grade_rows"] == 13
    overall = [g for g in report["groups"] if g["category"] == "all"]
    assert sum(g[k] for g in overall for k in GRADES) == 12
    assert sum(g["fake"] for g in overall) == expected.count("fake")


def test_token_link_in_chromium(browser, tmp_path, shared):
    db = tmp_path / "grades.sqlite"
    make_session(db, shared, per_source=1).close()
    proc, url = start_server(["--db", str(db), "--token", "a-long-secret-token"])
    try:
        assert url.endswith("?token=a-long-secret-token")
        page = browser.new_context().new_page()
        page.goto(url.split("?")[0])  # without the token: the API refuses, the page says so
        page.locator("#name").fill("Eve")
        page.locator("#start-button").click()
        expect(page.locator("#message")).to_contain_text("access token")
        page = browser.new_context().new_page()
        page.goto(url)
        page.locator("#name").fill("Ada")
        page.locator("#start-button").click()
        expect(page.locator("#progress-text")).to_have_text("0 / 4")
        link = page.locator("#resume-link").input_value()
        assert "token=a-long-secret-token" in link and "rater=" in link, link
        for i, g in enumerate(["real", "fake"]):
            grade_one(page, g, use_key=i % 2 == 0)
        expect(page.locator("#progress-text")).to_have_text("2 / 4")
        # Ada continues on another device: the link carries the access token too
        page = browser.new_context().new_page()
        page.goto(link)
        expect(page.locator("#progress-text")).to_have_text("2 / 4")
        for i, g in enumerate(["possibly_real", "fake"]):
            grade_one(page, g, use_key=i % 2 == 0)
        expect(page.locator("#done")).to_be_visible()
    finally:
        stop(proc)
    with GradeStore(db) as store:
        assert [g[4] for g in store.all_grades()] == ["real", "fake", "possibly_real", "fake"]
        assert store.counts()["raters"] == 1


def completion_code(db: Path) -> str:
    with GradeStore(db) as store:
        code = store.completion()[0]
    assert code
    return code


PROLIFIC = "https://app.prolific.com/submissions/complete?cc={code}"
EXPOSURE_MS = 400


def test_crowd_study_in_chromium(browser, tmp_path, shared):
    """Prolific's link -> instructions -> gold items among the sketches, each shown 400 ms ->
    the finish page's code -> the redirect to Prolific with the code."""
    real, generated = session_sources(shared)
    db = tmp_path / "study.sqlite"
    args = ["--db", str(db), "--real", real, "--generated", generated[0], "--per-source", "2"]
    study = ["--gold-real", real, "--gold", "1", "--exposure-ms", str(EXPOSURE_MS)]
    study += ["--completion-url", PROLIFIC, "--completion-code", "C0DE4U2", "--seed", "0"]
    proc, url = start_server([*args, *study])
    errors: list[str] = []
    try:
        context = browser.new_context(viewport={"width": 800, "height": 900})
        arrived: list[str] = []  # Prolific, stood in for: the browser never leaves 127.0.0.1

        def prolific(route):
            arrived.append(route.request.url)
            route.fulfill(status=200, content_type="text/html", body="<h1>Prolific</h1>")

        context.route("https://app.prolific.com/**", prolific)
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        pid = "5f3c0ffee5a1d2b3c4d5e6f7"  # Prolific ids are 24 hex digits
        # STUDY_ID and SESSION_ID are of the same form, and checked as such (issue 24)
        ids = "&STUDY_ID=5f3c0ffee5a1d2b3c4d5e6f8&SESSION_ID=5f3c0ffee5a1d2b3c4d5e6f9"
        page.goto(f"{url}?PROLIFIC_PID={pid}{ids}")
        # the instructions page: grades, examples of both kinds, exposure and checks explained
        expect(page.locator("#start")).to_be_visible()
        expect(page.locator("#examples-real svg")).to_have_count(3)
        expect(page.locator("#examples-fake svg")).to_have_count(3)
        expect(page.locator("#exposure-seconds")).to_have_text("0.4 seconds")
        expect(page.locator("#checks-note")).to_be_visible()
        expect(page.locator("#participant")).to_have_text(pid)
        expect(page.locator("#name")).to_be_hidden()  # a crowd link: nothing to type
        screenshot(page, tmp_path, "instructions", full_page=True)
        page.locator("#start-button").click()
        expect(page.locator("#progress-text")).to_have_text("0 / 6")  # 4 sketches + 2 checks
        expect(page.locator("#rater")).to_have_text(pid)
        for i in range(6):
            sketch = page.locator("#sketch")
            expect(sketch.locator("svg")).to_be_attached()
            shown = time.monotonic()
            expect(sketch).to_have_class("expired", timeout=3000)  # gone; the buttons stay
            assert time.monotonic() - shown < EXPOSURE_MS / 1000 + 1.5
            expect(sketch.locator("svg")).to_have_count(0)
            if i == 0:
                screenshot(page, tmp_path, "exposure")
            grade_one(page, GRADES[i % 3], use_key=i % 2 == 0)
            if i < 5:
                expect(page.locator("#progress-text")).to_have_text(f"{i + 1} / 6")
        # the finish page: the code, then the redirect with the code in Prolific's link
        expect(page.locator("#done")).to_be_visible()
        expect(page.locator("#completion-code")).to_have_text("C0DE4U2")
        expect(page.locator("#redirect")).to_be_visible()
        screenshot(page, tmp_path, "finish")
        page.wait_for_url("https://app.prolific.com/**", timeout=10000)
        assert arrived == ["https://app.prolific.com/submissions/complete?cc=C0DE4U2"]

        # the same browser, another participant's link: a new rater, not the finished one
        page.goto(f"{url}?participant={quote('P 2')}")
        expect(page.locator("#start")).to_be_visible()
        expect(page.locator("#participant")).to_have_text("P 2")
        page.locator("#start-button").click()
        expect(page.locator("#progress-text")).to_have_text("0 / 6")
        # an id with markup is shown as text, never run or parsed as HTML
        hostile = "<img src=x onerror=window.pwned=1>"
        other = context.new_page()
        other.on("pageerror", lambda e: errors.append(str(e)))
        other.goto(f"{url}?participant={quote(hostile)}")
        expect(other.locator("#participant")).to_have_text(hostile)
        other.locator("#start-button").click()
        expect(other.locator("#rater")).to_have_text(hostile)
        assert other.locator("img").count() == 0 and other.evaluate("window.pwned") is None
        context.close()
        assert errors == []
    finally:
        stop(proc)

    with GradeStore(db) as store:
        first, second, third = store.raters()
        assert (first.participant, second.participant, third.participant) == (pid, "P 2", hostile)
        times = [g.ms for g in store.gradings() if g.rater == first.token]
        assert len(times) == 6 and all(t >= EXPOSURE_MS for t in times), times
        assert sum(g.gold is not None for g in store.gradings()) == 2
    with GradeStore(db, readonly=True) as store:
        report = build_report(store, resamples=100)
    assert report["gradings"] == 4 and report["gold_gradings"] == 2
    (stat,) = report["rater_stats"]
    assert stat["participant"] == pid and stat["done"] and stat["median_ms"] >= EXPOSURE_MS


def test_study_of_googles_sheep_and_ours_in_chromium(browser, tmp_path, shared, capsys):
    """docs/grading.md's walk-through: real sheep of the mirror against Google's sheep model
    (`../shared/magenta/sheep.gen.json`) and a sheep model trained here, graded in the browser
    by two scripted raters, then the report. $MAGENTA_STUDY_OURS names the model of ours (default:
    a tiny one trained here for two steps); $MAGENTA_STUDY_REPORT a file for the report's text
    (how docs/grading.md's was made)."""
    from conftest import train_checkpoint

    google = shared.parent / "magenta" / "sheep.gen.json"
    real = shared / "mirror" / "full" / "simplified" / "sheep.ndjson"
    ours = os.environ.get("MAGENTA_STUDY_OURS") or train_checkpoint(
        tmp_path / "ours-sheep", "sketch-rnn", dict(max_seq_len=250, dec_size=16,
        conditional=False), [shared / "other" / "aaron_sheep.npz"], steps=2,
        max_per_category=300,
    )  # fmt: skip
    db = tmp_path / "sheep-google.sqlite"
    args = ["--real", str(real), "--generated", str(google), "--generated", str(ours)]
    proc, url = start_server([*args, "--per-source", "4", "--seed", "0", "--db", str(db)],
                             timeout=120)  # fmt: skip
    errors: list[str] = []
    # two scripted raters (not people): one grades in a fixed cycle, one calls everything
    # possibly real; what they show is the report's shape, not the models' quality
    raters = {"Ada": lambda i: GRADES[i % 3], "Bo": lambda i: "possibly_real"}
    try:
        for name, grade in raters.items():
            page = browser.new_context().new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.locator("#name").fill(name)
            page.locator("#start-button").click()
            expect(page.locator("#progress-text")).to_have_text("0 / 16")  # 8 real, 4 + 4
            for i in range(16):
                # item i on screen (a blank sample, kept as the model drew it, has no ink)
                expect(page.locator("#progress-text")).to_have_text(f"{i} / 16")
                expect(page.locator("#sketch svg")).to_be_attached()
                grade_one(page, grade(i), use_key=i % 2 == 0)
            expect(page.locator("#done")).to_be_visible()
            page.context.close()
        assert errors == []
    finally:
        stop(proc)
    with GradeStore(db, readonly=True) as store:
        sources = sorted({s.source for s in store.sketches().values()})
    label = Path(ours).parent.name
    assert sources == sorted(["real", "sheep", label]), sources
    assert main(["grade", "report", "--db", str(db), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["raters"] == 2 and report["gradings"] == 32
    overall = {g["source"]: g for g in report["groups"] if g["category"] == "all"}
    assert {"real", "sheep", label} <= overall.keys()
    assert overall["sheep"]["n"] == overall[label]["n"] == 8 and overall["real"]["n"] == 16
    assert main(["grade", "report", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert "sheep" in text and label in text
    if os.environ.get("MAGENTA_STUDY_REPORT"):
        Path(os.environ["MAGENTA_STUDY_REPORT"]).write_text(text)
