"""`quickdraw grade serve|report`: human grading sessions (real / possibly real / fake)."""

from __future__ import annotations

import argparse
import math
import secrets
import sys
from pathlib import Path

from ..errors import QuickDrawError
from ..models import SAMPLING_TEMPERATURE
from .common import (
    MAX_BOOTSTRAP,
    MAX_SAMPLES,
    add_device_arguments,
    add_json_arguments,
    check_count,
    check_seed,
    check_temperature,
    emit_json,
    temperature_help,
    use_threads,
)

PER_SOURCE = 50  # sketches per generated source, unless the real source has fewer
PORT = 8765  # grade serve's port, unless it is taken

SERVE_HELP = """\
Serve a blind grading page. Each rater first reads the instructions (the three grades, with
example real drawings and example fakes), types a name and sees the whole pool, one sketch at a
time in their own random order, and grades it real (key 1), possibly real (2) or fake (3).
A name is only shown: the page keeps the rater's secret token and shows it once as a resume
link (?rater=...), which is the only way to continue on another device.
Half the pool is real; the other half is --per-source sketches from each --generated source.
Every grade is committed to --db as it arrives; run the same command again to resume a session.

Human studies (HYPE, Zhou et al. 2019):
  attention checks  --gold-real SOURCE mixes --gold N known real drawings from SOURCE and N
                    obvious fakes (seeded random scribbles, or --gold-fake SOURCE) into every
                    rater's order; `grade report` flags a rater who grades fewer than 75% of
                    the gold items they graded correctly (real: real or possibly real; fake:
                    fake) and gives the results with and without flagged raters
  exposure          --exposure-ms MS shows each sketch MS milliseconds, then hides it; the
                    buttons stay. Every grade stores its time (ms from showing to answering)
  crowd platforms   the link's ?participant=ID or Prolific's ?PROLIFIC_PID=ID is stored with
                    the rater; a rater who finishes is shown the study's completion code and
                    sent on to --completion-url (http or https). The code is the one the URL
                    carries (Prolific's ?cc=CODE), or --completion-code CODE with {code} in
                    the URL where it goes; else a random one, kept in --db.
                    MTurk's ExternalQuestion (workerId, assignmentId, hitId, turkSubmitTo):
                    the preview stores nothing, a finished assignment is posted back to
                    MTurk; Prolific's PROLIFIC_PID, STUDY_ID, SESSION_ID. Ids are checked and
                    stored; one id takes a study once
  a crowd study     --per-rater N --gradings-per-sketch K: each rater grades N sketches (every
                    attention check, the rest balanced across sources), every sketch K times;
                    --consent FILE first, --questions FILE before and after; HTTPS with
                    --certfile/--keyfile; --exposure adaptive for HYPE-time. The study file
                    (--study, default: --db's name with .study.json) fixes the pool, checks,
                    order seed and settings; --study FILE of an existing file runs it again

SOURCE is FILE.ndjson (.ndjson.gz, .bin), FILE.npz:SPLIT (e.g. sheep.npz:test), FILE.npy
(28x28 bitmaps) or a checkpoint (.pt/.pth/.ckpt/.gen.json) to sample from: sketch-rnn gives
strokes, DRAW bitmaps; with any bitmap source every sketch is shown as a bitmap.

Send the printed link to colleagues on this machine; to open the session to other machines
give --host 0.0.0.0 with --token auto (or HTTPS: --certfile, --keyfile) and send the printed
link (it holds the token). The server answers only to the host names it was started for
(against DNS rebinding): the --host address, localhost, and on 0.0.0.0 this machine's name;
add others with --allowed-host.

examples:
  quickdraw grade serve --real data/sketchrnn/cat.npz:test --generated runs/cat/best.pt \\
      --per-source 50 --db grades.sqlite
  quickdraw grade serve --real data/sketchrnn/cat.npz:test --generated runs/cat/best.pt \\
      --gold-real data/sketchrnn/cat.npz:valid --exposure-ms 1000 --db study.sqlite \\
      --completion-url 'https://app.prolific.com/submissions/complete?cc=C1A2B3C4'
  quickdraw grade serve --real data/sketchrnn/cat.npz:test --generated runs/cat/best.pt \\
      --per-source 300 --gold-real data/sketchrnn/cat.npz:valid --per-rater 40 \\
      --gradings-per-sketch 3 --consent consent.md --host 0.0.0.0 --certfile cert.pem \\
      --keyfile key.pem --db crowd.sqlite
  quickdraw grade serve --study crowd.study.json --db rerun.sqlite   # the same study again
  quickdraw grade serve --db grades.sqlite          # resume the session stored there
"""

REPORT_HELP = """\
Summarise a session: for the real sketches and each model, overall and per category, the
fractions graded real / possibly real / fake with 95% Wilson intervals, for each source a
bootstrap interval over raters and sketches (two-level: both resampled with replacement;
--bootstrap resamples, seeded), whether each model passes (more than half of its sketches
graded real or possibly real while real sketches are mostly graded real), and agreement
between raters (Krippendorff's alpha, Fleiss' kappa).
The latest grade of each rater for each sketch counts. Safe to run while the server runs.

Attention checks: gold items never count for a source. A rater fails the checks (is flagged)
when they grade fewer than --min-gold-accuracy (default 0.75, i.e. 75%) of the gold items they
graded correctly: a known real drawing graded real or possibly real, an obvious fake graded
fake. A rater who graded no gold item yet is not flagged. No rater is ever dropped silently:
every result is shown with all raters, and again without the flagged ones.

With --judge JUDGE.pt (made by `quickdraw judge train`): every sketch (gold items left out) is
drawn as the judge sees it and given its probability for the category the sketch claims. Per
source, the judge's recognizability (its top class is the claimed one, 95% Wilson interval) and
mean confidence stand beside the share people graded real or possibly real; sketch by sketch,
the AUC of that confidence for gradings of real or possibly real against gradings of fake, and
Spearman's rank correlation with each sketch's mean grade (real 2, possibly real 1, fake 0),
with bootstrap intervals. Sketches of a category the judge has no class for are counted apart.

examples:
  quickdraw grade report --db grades.sqlite --csv grades.csv --chart grades.png
  quickdraw grade report --db grades.sqlite --judge judge.pt --json-out report.json
  quickdraw grade report --db study.sqlite --raters-csv raters.csv --min-gold-accuracy 0.8
  quickdraw grade report --db grades.sqlite --json > report.json
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "grade",
        help="human grading sessions: serve the page, report the results",
        description="Human grading sessions: is a sketch real, possibly real or fake?",
    )
    sub = parser.add_subparsers(dest="grade_command", metavar="{serve,report}", required=True)

    serve = sub.add_parser(
        "serve",
        help="serve the grading page",
        description=SERVE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--real", metavar="SOURCE", help="the real sketches")
    serve.add_argument(
        "--generated",
        metavar="SOURCE",
        action="append",
        default=[],
        help="a model's sketches (repeat for several models)",
    )
    serve.add_argument("--db", required=True, help="SQLite file that stores the session")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=int, default=None,
        help=f"port (default {PORT}, or a free one when {PORT} is taken, saying so; 0 = any)",
    )  # fmt: skip
    serve.add_argument(
        "--allowed-host",
        metavar="NAME",
        action="append",
        default=[],
        help="another host name (or address) the page may be opened under, such as a DNS "
        "alias or a reverse proxy's name; repeat for several. Requests naming any other host "
        "are refused (421)",
    )
    serve.add_argument(
        "--max-per-address",
        type=int,
        default=32,
        metavar="N",
        help="connections one client address may hold open (default 32 of the server's "
        "--max-connections, so no one client can take them all; raise it for raters behind "
        "one NAT)",
    )
    serve.add_argument(
        "--per-source",
        type=int,
        default=None,
        metavar="N",
        help="sketches per generated source; the real source gives as many as all of them "
        "together (default 50, or as many as the real source allows, saying so; an N given "
        "is refused when the real source has too few)",
    )
    serve.add_argument(
        "--token",
        help="access token every request must carry; a --host that is not loopback needs it "
        "or HTTPS (--certfile); 'auto' makes a random one",
    )
    serve.add_argument(
        "--gold-real",
        metavar="SOURCE",
        help="attention checks: known real drawings from SOURCE (none of them in the pool) "
        "are mixed into every rater's order, with as many obvious fakes",
    )
    serve.add_argument(
        "--gold-fake",
        metavar="SOURCE",
        help="the obvious fakes of the attention checks (default: random scribbles, seeded)",
    )
    serve.add_argument(
        "--gold",
        type=int,
        default=5,
        metavar="N",
        help="attention checks of each kind, real and fake (default 5; with --gold-real)",
    )
    serve.add_argument(
        "--examples",
        type=int,
        default=None,
        metavar="N",
        help="example sketches of each kind on the instructions page (0 = none; default: 3, or"
        " fewer where the source has fewer drawings left; an N given is required): real ones"
        " from --gold-real (else --real), fakes from --example-fake",
    )
    serve.add_argument(
        "--example-fake",
        metavar="SOURCE",
        help="where the instructions page's example fakes come from (default: --gold-fake, "
        "else random scribbles)",
    )
    serve.add_argument(
        "--exposure-ms",
        type=int,
        metavar="MS",
        help="show each sketch MS milliseconds (1-60000), then hide it; the buttons stay "
        "(default: shown until graded)",
    )
    serve.add_argument(
        "--exposure",
        choices=("unlimited", "fixed", "adaptive"),
        help="HYPE's measures: unlimited (HYPE-infinity: shown until graded), fixed "
        "(--exposure-ms), adaptive (HYPE-time: a staircase per rater and model between "
        "--exposure-min-ms and --exposure-max-ms; a grade is then final). Default: fixed with "
        "--exposure-ms, else unlimited",
    )
    serve.add_argument(
        "--exposure-min-ms", type=int, metavar="MS",
        help="adaptive exposure's shortest exposure (default 100)",
    )  # fmt: skip
    serve.add_argument(
        "--exposure-max-ms", type=int, metavar="MS",
        help="adaptive exposure's longest exposure, where each staircase starts (default 1000)",
    )  # fmt: skip
    serve.add_argument(
        "--per-rater",
        type=int,
        metavar="N",
        help="each new rater grades N sketches: every attention check and a part of the pool "
        "balanced across sources, the sketches fewest raters hold first (default: the whole "
        "pool)",
    )
    serve.add_argument(
        "--gradings-per-sketch",
        type=int,
        metavar="K",
        help="with --per-rater: every sketch goes to K raters, then the study is full and a "
        "new rater is told so (default: no limit)",
    )
    serve.add_argument(
        "--hold-minutes",
        type=float,
        metavar="M",
        help="with --per-rater: a rater who has not finished and has been silent M minutes "
        "gives back the sketches they have not graded (default 120)",
    )
    serve.add_argument(
        "--consent",
        metavar="FILE",
        help="a consent form (Markdown .md, or plain text) shown before anything else; "
        "grading starts only after the rater agrees (agreement and time stored, exported)",
    )
    serve.add_argument(
        "--questions",
        metavar="FILE",
        help='short questions (JSON: {"before": [...], "after": [...]}, see docs/grading.md) '
        "asked before the first sketch or after the last; answers exported with the grades",
    )
    serve.add_argument(
        "--study",
        metavar="FILE",
        help="the study file: written when the session is made (default: the --db name with "
        ".study.json), or, if it exists, the study to run (pool, gold items, order seed, "
        "settings), checked against its hash",
    )
    serve.add_argument(
        "--certfile",
        metavar="PEM",
        help="serve HTTPS with this certificate (chain); the key is --keyfile or in this file",
    )
    serve.add_argument("--keyfile", metavar="PEM", help="the private key of --certfile")
    serve.add_argument(
        "--max-connections",
        type=int,
        default=128,
        metavar="N",
        help="open connections the server serves at once, one thread each (default 128; a "
        "study of hundreds of raters at once wants more: each browser keeps a few open)",
    )
    serve.add_argument(
        "--completion-code",
        metavar="CODE",
        help="the code a rater who finishes is shown and sent (your crowd platform's "
        "completion code; default: the one --completion-url carries as cc=, else a random one, "
        "kept in --db)",
    )
    serve.add_argument(
        "--completion-url",
        metavar="URL",
        help="send a rater who finishes to this http(s) URL (e.g. Prolific's completion link); "
        "{code} in it is replaced by the completion code. Kept in --db",
    )
    serve.add_argument(
        "--seed", type=int, default=0,
        help="seed for choosing and sampling sketches, kept in --db and shown by the report "
        "(default 0)",
    )  # fmt: skip
    serve.add_argument(
        "--temperature", type=float, default=SAMPLING_TEMPERATURE,
        help="checkpoints' " + temperature_help(),
    )  # fmt: skip
    add_device_arguments(serve, "checkpoints are sampled")
    serve.add_argument("--verbose", action="store_true", help="log every request")
    serve.add_argument("--quiet", action="store_true", help="print only the grading link")
    serve.set_defaults(func=run_serve)

    report = sub.add_parser(
        "report",
        help="summarise a session's grades",
        description=REPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("--db", required=True, help="the session's SQLite file")
    report.add_argument("--csv", metavar="OUT.csv", help="write the table as CSV")
    report.add_argument("--chart", metavar="CHART.png", help="write a bar chart (PNG)")
    report.add_argument(
        "--raters-csv",
        metavar="OUT.csv",
        help="write per-rater statistics as CSV: sketches graded, gold accuracy, flagged, "
        "shares of real / possibly real / fake, median time",
    )
    report.add_argument(
        "--grades-csv",
        metavar="OUT.csv",
        help="write every grading as CSV: the rater with their platform ids, consent time and "
        "answers; the sketch, its source and gold kind; the grade, its time and exposure",
    )
    report.add_argument(
        "--min-gold-accuracy",
        type=float,
        default=0.75,
        metavar="FRACTION",
        help="flag a rater who grades fewer than this fraction of their gold items correctly "
        "(default 0.75)",
    )
    report.add_argument(
        "--bootstrap",
        type=int,
        default=2000,
        metavar="N",
        help=f"bootstrap resamples over raters and sketches, 0 to {MAX_BOOTSTRAP:,} (default "
        "2000; 0 = none)",
    )
    report.add_argument(
        "--bootstrap-seed", type=int, default=0, help="seed of the bootstrap (default 0)"
    )
    report.add_argument(
        "--judge",
        metavar="JUDGE.pt",
        help="a judge from `quickdraw judge train`: its recognizability and confidence beside "
        "the people's grades per source, and its agreement with them per sketch (AUC, Spearman)",
    )
    add_json_arguments(report, "the report")
    report.set_defaults(func=run_report)


def run_serve(args) -> int:
    from ..eval.grading.completion import resolve_completion
    from ..eval.grading.server import (
        GradingApp,
        check_exposure,
        host_allow_list,
        load_tls,
        make_server,
        session_url,
    )
    from ..eval.grading.store import StoreUnwritable, remove_database

    def say(message: str) -> None:
        if not args.quiet:
            print(message, flush=True)

    # every check that needs no data comes first: a refusal must not leave a half-made session
    if args.port is not None and not 0 <= args.port <= 65535:
        raise QuickDrawError(f"--port must be 0-65535, got {args.port}")
    token = secrets.token_urlsafe(16) if args.token == "auto" else args.token
    if token is not None and len(token) < 8:
        raise QuickDrawError("--token must be at least 8 characters (or 'auto')")
    if args.keyfile and not args.certfile:
        raise QuickDrawError("--keyfile needs --certfile (the certificate it is the key of)")
    tls = load_tls(args.certfile, args.keyfile) if args.certfile else None
    warning = check_exposure(args.host, token, tls is not None)
    host_allow_list(args.host, args.allowed_host)  # a bad --allowed-host NAME, before any work
    check_count(args.max_connections, "--max-connections", 2, 4096)
    check_count(args.max_per_address, "--max-per-address", 1, args.max_connections - 1)
    if args.per_source is not None:
        check_count(args.per_source, "--per-source", 1, MAX_SAMPLES)
    check_temperature(args.temperature)
    check_seed(args.seed)
    # one completion code, shown and sent: --completion-code, or the one the URL carries
    code, url = resolve_completion(args.completion_code, args.completion_url)
    protocol = _protocol(args)
    check_count(args.gold, "--gold", 1, MAX_SAMPLES)
    if args.examples is not None:
        check_count(args.examples, "--examples", 0, MAX_SAMPLES)
    if args.gold_fake and not args.gold_real:
        raise QuickDrawError("--gold-fake needs --gold-real: attention checks need both kinds")
    use_threads(args.threads)
    study = None
    if not Path(args.db).is_file() or Path(args.db).stat().st_size == 0:
        # the whole study (checkpoints loaded and sampled, the study file written) before the
        # database file is made, so a bad SOURCE or checkpoint leaves nothing behind
        study = _study(args, protocol, say)
    made = not Path(args.db).exists()
    try:
        store = _open_session(args, study, protocol, say, code, url)
    except StoreUnwritable:  # a full or read-only disk: no half-made database is left
        if made:
            remove_database(Path(args.db))
        raise
    with store:
        app = GradingApp(store, token)
        options = {
            "quiet": not args.verbose,
            "allowed_hosts": args.allowed_host,
            "max_per_address": args.max_per_address,
            "max_connections": args.max_connections,
            "tls": tls,
        }
        try:
            server = make_server(
                app, args.host, PORT if args.port is None else args.port, **options
            )
        except QuickDrawError:
            if args.port is not None:  # the port asked for, or nothing
                raise
            server = make_server(app, args.host, 0, **options)  # a second session, say
            say(f"port {PORT} is taken: serving on port {server.server_address[1]}")
        if warning:
            print(warning, file=sys.stderr, flush=True)
        print(f"grading page: {session_url(server, args.host, token)}", flush=True)
        say("stop with Ctrl-C; every grade is already saved")
        try:
            server.serve_forever()
        except KeyboardInterrupt:  # the normal way to end a session
            say(f"stopped; {store.counts()['grades']} grade rows in {args.db}")
        finally:
            server.server_close()
    return 0


def _protocol(args) -> dict:
    """What the flags fix of a study besides its sources: the exposure, the design, the consent
    form and the questions, checked (files read) before any work."""
    from ..eval.grading.crowd import read_consent, read_questions
    from ..eval.grading.design import HOLD_MINUTES, Design
    from ..eval.grading.exposure import check_exposure_settings

    mode = args.exposure or ("fixed" if args.exposure_ms is not None else "unlimited")
    exposure = check_exposure_settings(
        mode, args.exposure_ms, args.exposure_min_ms, args.exposure_max_ms
    )
    for flag, value in (("--per-rater", args.per_rater),
                        ("--gradings-per-sketch", args.gradings_per_sketch)):  # fmt: skip
        if value is not None:
            check_count(value, flag, 1, MAX_SAMPLES)
    if args.gradings_per_sketch is not None and args.per_rater is None:
        raise QuickDrawError("--gradings-per-sketch needs --per-rater N")
    if args.hold_minutes is not None and not 1 <= args.hold_minutes <= 100_000:
        raise QuickDrawError(f"--hold-minutes must be 1-100000, got {args.hold_minutes}")
    design = Design(
        args.per_rater,
        args.gradings_per_sketch,
        args.seed,
        HOLD_MINUTES if args.hold_minutes is None else args.hold_minutes,
    )
    return {
        "exposure": exposure,
        "design": design,
        "consent": read_consent(args.consent) if args.consent else None,
        "questions": read_questions(args.questions) if args.questions else None,
        "given": {  # what the command line said, to compare with a stored session
            "--exposure": args.exposure is not None or args.exposure_ms is not None,
            "--per-rater": args.per_rater is not None,
            "--gradings-per-sketch": args.gradings_per_sketch is not None,
        },
    }


def study_path(args) -> Path:
    """--study, else the database's name with .study.json (grades.sqlite: grades.study.json)."""
    return Path(args.study) if args.study else Path(args.db).with_suffix(".study.json")


def _study(args, protocol: dict, say):
    """The study of a new session: read from an existing --study file, or built from the
    sources and flags and written to the study file. Returns (session, consent, questions,
    hash)."""
    from ..eval.grading.study import (
        make_study,
        read_study,
        session_from_study,
        set_protocol,
        write_study,
    )

    path = study_path(args)
    if args.study and path.exists():
        fixed = [
            flag
            for flag, given in (
                ("--real", args.real),
                ("--generated", args.generated),
                ("--gold-real", args.gold_real),
                ("--per-source", args.per_source),
                ("--consent", args.consent),
                ("--questions", args.questions),
                ("--per-rater", args.per_rater),
                ("--exposure", args.exposure),
                ("--exposure-ms", args.exposure_ms),
            )  # fmt: skip
            if given
        ]
        if fixed:
            raise QuickDrawError(
                f"--study {path} fixes the study; drop {', '.join(fixed)} (or give a new --study "
                "file name to make a new study)"
            )
        content, digest = read_study(path)
        session, consent, questions = session_from_study(content)
        say(f"study {path} read (sha256:{digest[:16]})")
        return session, consent, questions, digest
    if not args.real or not args.generated:
        raise QuickDrawError(
            f"{args.db} is new: give --real SOURCE and at least one --generated SOURCE "
            "(or --study FILE of a study written before)"
        )
    session = _session(args)
    set_protocol(session, protocol["exposure"], protocol["design"])
    consent, questions = protocol["consent"], protocol["questions"]
    content = make_study(session, consent, questions)
    digest = write_study(path, content)
    say(f"study file: {path} (sha256:{digest[:16]})")
    return session, consent, questions or {"before": [], "after": []}, digest


def _open_session(args, study, protocol: dict, say, code: str | None, url: str | None):
    """The store of --db, with its session (created from `study` when it has none), the
    completion `code` and `url` kept (`resolve_completion`'s)."""
    from ..eval.grading.completion import resolve_completion
    from ..eval.grading.store import GradeStore
    from ..eval.grading.study import create_session, read_study

    store = GradeStore(args.db)
    try:
        if store.has_session():
            _check_same_session(store, args, protocol)
            if args.study:
                _, digest = read_study(args.study)
                if digest != store.meta("study_sha256"):
                    raise QuickDrawError(
                        f"{args.db} holds another study (sha256:"
                        f"{(store.meta('study_sha256') or 'none')[:16]}) than --study "
                        f"{args.study} (sha256:{digest[:16]}): use a new --db for this study"
                    )
            say(f"resuming the session in {args.db}")
        else:
            if study is None:  # the file was empty when looked at first
                study = _study(args, protocol, say)
            session, consent, questions, digest = study
            create_session(store, session, consent, questions, digest)
            gold = sum(s.gold is not None for s in session.pool)
            for note in session.spec.get("notes", []):
                say(f"note: {note}")
            say(
                f"new session in {args.db}: {len(session.pool) - gold} sketches"
                + (f" and {gold} attention checks" if gold else "")
                + f" (seed {session.spec['seed']}, temperature {session.spec['temperature']:g})"
            )
            design = session.spec.get("design") or {}
            if design.get("per_rater"):
                say(
                    f"each rater grades {design['per_rater']} of them"
                    + (f", gold items included; every sketch {design['gradings_per_sketch']} "
                       "times" if design.get("gradings_per_sketch") else "")
                )  # fmt: skip
        if url is None:  # the URL kept in --db: a new code must still be the one it carries
            code, url = resolve_completion(code, store.completion()[1])
        store.set_completion(code, url)
        code, url = store.completion()
        say(f"completion code: {code}" + (f"; finished raters go to {url}" if url else ""))
    except BaseException:
        store.close()
        raise
    return store


def _session(args):
    from ..eval.grading.sources import build_session, parse_source

    def maybe(text: str | None):
        return None if text is None else parse_source(text)

    real, generated = parse_source(args.real), [parse_source(g) for g in args.generated]
    return build_session(
        real,
        generated,
        PER_SOURCE if args.per_source is None else args.per_source,
        args.seed,
        args.temperature,
        args.device,
        gold_real=maybe(args.gold_real),
        gold_fake=maybe(args.gold_fake),
        gold=args.gold,
        example_fake=maybe(args.example_fake),
        examples=3 if args.examples is None else args.examples,
        examples_at_most=args.examples is None,
        per_source_at_most=args.per_source is None,
    )


def _check_same_session(store, args, protocol: dict) -> None:
    """A resumed session must not silently ignore different sources or protocol settings
    (attention checks, exposure, design, consent form, questions) on the command line."""
    import json

    from ..eval.grading.design import Design
    from ..eval.grading.exposure import Exposure

    spec = store.spec()
    gold = spec.get("gold") or {}
    for flag, given, stored in (
        ("--gold-real", args.gold_real, gold.get("real")),
        ("--gold-fake", args.gold_fake, gold.get("fake")),
        ("--example-fake", args.example_fake, (spec.get("examples") or {}).get("fake")),
        ("--exposure-ms", args.exposure_ms, Exposure.from_spec(spec).ms),
    ):
        if given is not None and given != stored:
            raise QuickDrawError(
                f"{args.db} already holds a session with {flag} {stored or '(none)'}, not "
                f"{given}: the protocol of a session is fixed; use a new --db"
            )
    stored_exposure, stored_design = Exposure.from_spec(spec), Design.from_spec(spec)
    consent = store.meta("consent")
    questions = json.loads(store.meta("questions") or "null")
    given = protocol["given"]
    for flag, differs in (
        ("--exposure", given["--exposure"] and protocol["exposure"] != stored_exposure),
        ("--per-rater", given["--per-rater"]
         and protocol["design"].per_rater != stored_design.per_rater),
        ("--gradings-per-sketch", given["--gradings-per-sketch"]
         and protocol["design"].gradings_per_sketch != stored_design.gradings_per_sketch),
        ("--consent", protocol["consent"] is not None
         and json.dumps(protocol["consent"].to_json()) != consent),
        ("--questions", protocol["questions"] is not None and protocol["questions"] != questions),
    ):  # fmt: skip
        if differs:
            raise QuickDrawError(
                f"{args.db} already holds a session with another {flag}: the protocol of a "
                "session is fixed; use a new --db"
            )
    given_sources = {"real": args.real, "generated": args.generated}
    stored_sources = {"real": spec.get("real"), "generated": spec.get("generated", [])}
    if (
        args.real
        and args.real != stored_sources["real"]
        or (args.generated and args.generated != stored_sources["generated"])
    ):
        raise QuickDrawError(
            f"{args.db} already holds a session of --real {stored_sources['real']} --generated "
            f"{' '.join(stored_sources['generated'])}; not {given_sources['real']} "
            f"{' '.join(given_sources['generated'])}: use a new --db for new sources"
        )


def run_report(args) -> int:
    from ..eval.grading.report import (
        build_report,
        format_report,
        write_chart,
        write_csv,
        write_grades_csv,
        write_rater_csv,
    )
    from ..eval.grading.store import GradeStore

    if not 0 <= args.min_gold_accuracy <= 1:
        raise QuickDrawError(f"--min-gold-accuracy must be 0-1, got {args.min_gold_accuracy}")
    check_count(args.bootstrap, "--bootstrap", 0, MAX_BOOTSTRAP)
    check_seed(args.bootstrap_seed, "--bootstrap-seed")
    with GradeStore(args.db, readonly=True) as store:
        if not store.has_session():
            raise QuickDrawError(f"{args.db} holds no grading session")
        report = build_report(
            store, args.min_gold_accuracy, args.bootstrap, args.bootstrap_seed, judge=args.judge
        )
        if args.grades_csv:
            write_grades_csv(store, report, args.grades_csv)
    if args.csv:
        write_csv(report, args.csv)
    if args.raters_csv:
        write_rater_csv(report, args.raters_csv)
    if args.chart:
        write_chart(report, args.chart)
    if not emit_json(_json_safe(report), args):
        print(format_report(report), end="")
    for what, path in (
        ("CSV", args.csv),
        ("raters CSV", args.raters_csv),
        ("grades CSV", args.grades_csv),
        ("chart", args.chart),
        ("JSON", args.json_out),
    ):
        if path:
            print(f"{what} written to {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _json_safe(obj):
    """NaN (undefined fractions or agreement) as null, so the output is strict JSON."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj
