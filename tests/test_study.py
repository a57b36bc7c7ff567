"""A human study as a researcher runs it (issue 22, items 4 and 5): the verdict is decided on the
raters who passed the attention checks, and the Prolific flow of `grade serve --help` works as
its example writes it: one completion code, shown and sent."""

from __future__ import annotations

import re
import shlex
import uuid
from pathlib import Path

import pytest
from conftest import train_checkpoint
from grading_support import Client, make_session, start_server, stop

from quickdraw_tools.cli import main
from quickdraw_tools.commands.grade import SERVE_HELP
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.eval.grading.completion import resolve_completion
from quickdraw_tools.eval.grading.report import build_report, format_report

SHEEP = "aaron_sheep:test"


def grade_all(store, name: str, choose) -> None:
    rater = store.new_rater(name)
    sketches = store.sketches()
    for sid in rater.order:
        store.add_grade(uuid.uuid4().hex, rater, sid, choose(sketches[sid]))


def test_the_verdict_is_the_checked_raters_and_says_so_first(tmp_path, shared):
    store = make_session(tmp_path / "g.sqlite", shared, gold=2)

    def careful(s):  # every gold item right; teapots fake, sheep possibly real
        if s.gold:
            return "real" if s.gold == "real" else "fake"
        return {"teapot": "fake", "real": "real"}.get(s.source, "possibly_real")

    grade_all(store, "careful", careful)
    grade_all(store, "careless", lambda s: "real")  # the scribbles too: flagged
    grade_all(store, "hasty", lambda s: "real")  # flagged too
    report = build_report(store, resamples=0)
    assert report["attention"]["flagged"] == ["r2", "r3"]
    verdicts = {v["model"]: v for v in report["verdicts"]}
    everyone = {v["model"]: v for v in report["all_raters"]["verdicts"]}
    # with every rater, the teapots pass (2 of 3 raters called them real); they do not
    assert everyone["teapot"]["passes"] and not verdicts["teapot"]["passes"]
    assert verdicts["teapot"]["all_raters"]["passes"] and verdicts[SHEEP]["passes"]
    assert report["decided_on"] == "the 1 of 3 raters who passed the attention checks"
    text = format_report(report)
    assert text.splitlines()[0] == (
        "verdict, on the 1 of 3 raters who passed the attention checks: "
        f"{SHEEP} PASSES; teapot fails (all raters: PASSES)"
    )
    assert "teapot: 0% real or possibly real" in text and "all raters: 67% -> PASSES" in text
    assert "all raters: 100% -> PASSES" in text  # beside every verdict, also when they agree
    # a session without attention checks is decided on everyone, and says that too
    plain = make_session(tmp_path / "plain.sqlite", shared)
    grade_all(plain, "ann", careful)
    first = format_report(build_report(plain, resamples=0)).splitlines()[0]
    assert first.startswith("verdict, on the 1 rater (no attention checks in this session): ")


def serve_example() -> list[str]:
    """The arguments of `grade serve --help`'s Prolific example, as written."""
    text = SERVE_HELP.split("examples:\n", 1)[1]
    commands = re.split(r"\n(?=  quickdraw )", text.replace("\\\n", " "))
    (prolific,) = [c for c in commands if "--completion-url" in c]
    return shlex.split(prolific, comments=True)[3:]  # after `quickdraw grade serve`


def test_the_prolific_example_of_the_help_works_as_written(shared, tmp_path):
    args = serve_example()
    url = "https://app.prolific.com/submissions/complete?cc=C1A2B3C4"
    assert args[args.index("--completion-url") + 1] == url
    # the example's files, made from real drawings: the mirror's 1,000 monkeys stand in for
    # its cats, so that the valid split holds the five gold drawings --gold asks by default
    monkeys = shared / "mirror" / "full" / "simplified" / "monkey.ndjson"
    assert main(["convert", str(monkeys), "--out", str(tmp_path / "data"), "--quiet"]) == 0
    (tmp_path / "data" / "sketchrnn" / "monkey.npz").rename(tmp_path / "data/sketchrnn/cat.npz")
    tiny = {"enc_size": 8, "dec_size": 8, "z_size": 4, "num_mixture": 2, "max_seq_len": 200}
    run = train_checkpoint(tmp_path / "runs" / "cat", "sketch-rnn", tiny,
                           [tmp_path / "data" / "sketchrnn" / "cat.npz"])  # fmt: skip
    run.rename(run.with_name("best.pt"))
    proc, link = start_server(args, cwd=tmp_path, timeout=180)
    try:
        client = Client(link)
        status, me = client.request("POST", "/api/raters", {"name": "", "participant": "5f3a9"})
        assert status == 201 and me["participant"] == "5f3a9"
        token, state = me["rater"], me
        for index in range(me["total"]):
            _, item = client.request("GET", f"/api/item?rater={token}&index={index}")
            body = {"rater": token, "sketch": item["id"], "grade": "fake", "ms": 1500,
                    "request_id": uuid.uuid4().hex}  # fmt: skip
            status, state = client.request("POST", "/api/grades", body)
            assert status == 201
        assert state["done"]
        _, state = client.request("GET", f"/api/state?rater={token}")
        # the code Prolific gave is the one shown and the one sent back
        assert state["completion"] == {"code": "C1A2B3C4", "url": url}
    finally:
        stop(proc)
    printed = "".join(proc.lines)
    assert f"completion code: C1A2B3C4; finished raters go to {url}" in printed


def test_one_completion_code_or_a_one_line_refusal(tmp_path, shared, capsys):
    prolific = "https://app.prolific.com/submissions/complete?cc=C1A2B3C4"
    assert resolve_completion(None, prolific) == ("C1A2B3C4", prolific)
    assert resolve_completion("C1A2B3C4", prolific) == ("C1A2B3C4", prolific)
    assert resolve_completion("STUDY9", "https://x.org/done?c={code}") == (
        "STUDY9",
        "https://x.org/done?c={code}",
    )
    assert resolve_completion(None, None) == (None, None)
    with pytest.raises(QuickDrawError, match="differs from the code the --completion-url carries"):
        resolve_completion("OTHER1", prolific)
    with pytest.raises(QuickDrawError, match="--completion-code"):
        resolve_completion(None, "https://app.prolific.com/submissions/complete?cc=a%20b")
    real = str(shared / "training" / "cake.ndjson")
    sheep = str(shared / "other" / "aaron_sheep.npz") + ":test"
    db = tmp_path / "study.sqlite"
    argv = ["grade", "serve", "--db", str(db), "--real", real, "--generated", sheep,
            "--completion-code", "OTHER1", "--completion-url", prolific]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "differs from the code" in err and not Path(db).exists()


def test_grade_serve_takes_a_free_port_when_its_own_is_taken(tmp_path, shared):
    """The README's `grade serve` line names no port: a second session (or a port in use by
    anything else) gets a free one, saying so, rather than stopping."""
    import socket

    db = tmp_path / "g.sqlite"
    make_session(db, shared).close()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past a closed one's TIME_WAIT
    try:
        holder.bind(("127.0.0.1", 8765))  # taken now (by this socket, or by someone else)
        holder.listen()
    except OSError:
        pass
    try:
        proc, link = start_server(["--db", str(db)], any_port=False)
        try:
            status, me = Client(link).request("POST", "/api/raters", {"name": "ann"})
            assert status == 201
        finally:
            stop(proc)
    finally:
        holder.close()
    port = int(link.rsplit(":", 1)[1].strip("/"))
    assert port != 8765 and f"port 8765 is taken: serving on port {port}" in "".join(proc.lines)
