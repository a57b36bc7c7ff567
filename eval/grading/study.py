"""The study file: one JSON file that fixes a grading study, so that a second team can run the
same study with other people and compare.

`grade serve` writes it when it makes a session (``--study FILE``, default the database's name
with ``.study.json``), and makes a session from it when given an existing one. It holds

    {"format": "quickdraw-grading-study", "version": 1, "sha256": HASH, "study": {
        "settings": the session's spec (sources, seed, temperature, gold, examples, exposure,
                    design: per-rater subsets, gradings per sketch, order seed),
        "pool":     every sketch: {"source", "category", "gold", "strokes" | "image"},
        "examples": {"real": [...], "fake": [...]} (the instructions page's),
        "consent":  {"text", "markdown"} or null,
        "questions": {"before": [...], "after": [...]}}}

HASH is the SHA-256 of the ``study`` object as canonical JSON (keys sorted, no spaces, ASCII);
reading recomputes it, so a file edited after it was written is refused, and the report names
it (``study sha256:...``). The file is read as untrusted input: its size is bounded, it is
parsed as JSON (nothing in it runs), and every field is checked before use.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from ...atomic import atomic_write
from ...errors import QuickDrawError
from .crowd import Consent, check_questions
from .design import Design, check_design
from .exposure import Exposure, check_exposure_settings
from .sources import Session
from .store import GOLD_KINDS, REAL_SOURCE, GradeStore, Sketch

FORMAT = "quickdraw-grading-study"
VERSION = 1
MAX_STUDY = 512 * 1024 * 1024  # bytes of a study file
MAX_SKETCHES = 200_000
MAX_POINTS = 100_000  # rows of one sketch's strokes
MAX_SIDE = 512  # pixels of a bitmap's side
MAX_COORD = 1e7


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def study_hash(study: dict) -> str:
    return hashlib.sha256(canonical(study)).hexdigest()


def _sketch_json(s: Sketch) -> dict:
    out: dict = {"source": s.source, "category": s.category, "gold": s.gold}
    if s.strokes is not None:
        out["strokes"] = np.asarray(s.strokes, dtype=np.float64).tolist()
    else:
        out["image"] = np.asarray(s.image, dtype=np.uint8).tolist()
    return out


def set_protocol(session: Session, exposure: Exposure, design: Design) -> None:
    """Record the exposure and the design in the session's spec (checked against its pool)."""
    gold = sum(s.gold is not None for s in session.pool)
    check_design(design, len(session.pool) - gold, gold)
    session.spec["exposure"] = exposure.to_spec()
    session.spec["exposure_ms"] = exposure.ms  # what files from before adaptive exposure read
    session.spec["design"] = design.to_spec()


def create_session(
    store: GradeStore,
    session: Session,
    consent: Consent | None,
    questions: dict[str, list[dict]] | None,
    digest: str,
) -> None:
    """Make the session of a study in an empty `store`: the pool, spec and examples, and the
    study's hash, consent form and questions."""
    meta = {
        "study_sha256": digest,
        "questions": json.dumps(questions or {"before": [], "after": []}),
    }
    if consent is not None:
        meta["consent"] = json.dumps(consent.to_json())
    store.create_session(session.pool, session.spec, session.examples, meta)


def make_study(
    session: Session, consent: Consent | None, questions: dict[str, list[dict]] | None
) -> dict:
    """The ``study`` object of a session (its pool, spec and examples), consent and questions."""
    return {
        "settings": session.spec,
        "pool": [_sketch_json(s) for s in session.pool],
        "examples": {k: [_sketch_json(s) for s in v] for k, v in session.examples.items()},
        "consent": consent.to_json() if consent else None,
        "questions": questions or {"before": [], "after": []},
    }


def write_study(path: str | Path, study: dict) -> str:
    """Write the study file atomically; returns its hash. An existing file is replaced only
    when it holds this same study (else refused: it would be lost)."""
    path = Path(path)
    digest = study_hash(study)
    if path.exists():
        try:
            _, found = read_study(path)
        except QuickDrawError:
            found = None
        if found != digest:
            raise QuickDrawError(
                f"--study {path} exists and holds another study: give a new file name "
                "(it was left as it was)"
            )
        return digest
    text = json.dumps({"format": FORMAT, "version": VERSION, "sha256": digest, "study": study})
    try:
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise QuickDrawError(f"cannot write --study {path}: {e.strerror or e}") from None
    except QuickDrawError as e:
        if "no space left" not in str(e):
            raise
        raise QuickDrawError(
            f"the disk is full: the study file {path} cannot be written; free some space "
            "(nothing was made)"
        ) from None
    return digest


def read_study(path: str | Path) -> tuple[dict, str]:
    """(the ``study`` object, its hash) of a study file, every field checked; raises
    QuickDrawError in one line for a file that is not one, or was edited after it was written."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_STUDY:
            raise QuickDrawError(f"--study {path} is over {MAX_STUDY >> 20} MiB: not a study file")
        data = path.read_bytes()
    except OSError as e:
        raise QuickDrawError(f"--study {path}: cannot read it ({e.strerror or e})") from None
    try:
        obj = json.loads(data, parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, RecursionError) as e:
        raise QuickDrawError(f"--study {path} is not a study file (not JSON: {e})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise QuickDrawError(f'--study {path} is not a study file (no "format": "{FORMAT}")')
    if obj.get("version") != VERSION:
        raise QuickDrawError(
            f"--study {path} is version {obj.get('version')!r}; this toolkit reads {VERSION}"
        )
    study, stated = obj.get("study"), obj.get("sha256")
    if not isinstance(study, dict):
        raise QuickDrawError(f"--study {path} holds no study")
    digest = study_hash(study)
    if stated != digest:
        raise QuickDrawError(
            f"--study {path} was changed after it was written: its content hashes to "
            f"sha256:{digest[:16]}, not the sha256:{str(stated)[:16]} it states; use the file "
            "as it was written"
        )
    check_study(study, f"--study {path}")
    return study, digest


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _fail(where: str, place: str, what: str) -> QuickDrawError:
    return QuickDrawError(f"{where}: {place} {what}")


def _text(value, where: str, place: str, empty: bool = False) -> str:
    if not isinstance(value, str) or len(value) > 200 or not value.isprintable():
        raise _fail(where, place, "must be a printable text of at most 200 characters")
    if not value and not empty:
        raise _fail(where, place, "must not be empty")
    return value


def _sketch(obj, where: str, place: str) -> Sketch:
    if not isinstance(obj, dict) or not {"source", "category", "gold"} <= set(obj):
        raise _fail(where, place, "must be a sketch: source, category, gold, strokes or image")
    if set(obj) - {"source", "category", "gold", "strokes", "image"}:
        unknown = sorted(set(obj) - {"source", "category", "gold", "strokes", "image"})
        raise _fail(where, place, f"has unknown keys {unknown}")
    source = _text(obj["source"], where, f"{place}.source")
    category = _text(obj["category"], where, f"{place}.category", empty=True)
    gold = obj["gold"]
    if gold is not None and gold not in GOLD_KINDS:
        raise _fail(where, f"{place}.gold", f"must be null, {' or '.join(GOLD_KINDS)}")
    if ("strokes" in obj) == ("image" in obj):
        raise _fail(where, place, "must hold strokes or an image")
    if "strokes" in obj:
        rows = obj["strokes"]
        if not isinstance(rows, list) or len(rows) > MAX_POINTS:
            raise _fail(where, f"{place}.strokes", f"must be a list of at most {MAX_POINTS} rows")
        ok = all(
            isinstance(r, list)
            and len(r) == 3
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in r)
            and all(math.isfinite(v) and abs(v) <= MAX_COORD for v in r)
            and r[2] in (0, 1)
            for r in rows
        )
        if not ok:
            raise _fail(
                where,
                f"{place}.strokes",
                "must be rows [dx, dy, pen lifted 0 or 1] of finite numbers",
            )
        strokes = np.asarray(rows, dtype=np.float64).reshape(len(rows), 3)
        return Sketch(source, category, strokes=strokes, gold=gold)
    rows = obj["image"]
    if (
        not isinstance(rows, list)
        or not 1 <= len(rows) <= MAX_SIDE
        or not all(isinstance(r, list) and len(r) == len(rows[0]) for r in rows)
        or not 1 <= len(rows[0]) <= MAX_SIDE
        or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255
            for r in rows
            for v in r
        )  # fmt: skip
    ):
        raise _fail(
            where, f"{place}.image", f"must be rows of 0-255 ink, at most {MAX_SIDE} square"
        )
    return Sketch(source, category, image=np.asarray(rows, dtype=np.uint8), gold=gold)


def check_study(study: dict, where: str) -> None:
    """Every field a session uses, checked (a study file is input like any other)."""
    allowed = {"settings", "pool", "examples", "consent", "questions"}
    if set(study) != allowed:
        raise _fail(where, "the study", f"must have exactly the keys {sorted(allowed)}")
    settings = study["settings"]
    if not isinstance(settings, dict):
        raise _fail(where, "settings", "must be an object")
    labels = settings.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise _fail(where, "settings.labels", "must be a list of texts")
    for key in ("seed",):
        if settings.get(key) is not None and (
            not isinstance(settings[key], int) or isinstance(settings[key], bool)
        ):
            raise _fail(where, f"settings.{key}", "must be a whole number")
    temperature = settings.get("temperature")
    if temperature is not None and not isinstance(temperature, int | float):
        raise _fail(where, "settings.temperature", "must be a number")
    pool = study["pool"]
    if not isinstance(pool, list) or not 1 <= len(pool) <= MAX_SKETCHES:
        raise _fail(where, "pool", f"must be a list of 1 to {MAX_SKETCHES} sketches")
    sketches = [_sketch(s, where, f"pool[{i}]") for i, s in enumerate(pool)]
    for i, s in enumerate(sketches):
        if s.gold is None and s.source != REAL_SOURCE and s.source not in labels:
            raise _fail(where, f"pool[{i}].source", f"{s.source!r} is neither real nor a label")
    examples = study["examples"]
    if not isinstance(examples, dict) or set(examples) - set(GOLD_KINDS):
        raise _fail(where, "examples", "must be an object of real and fake lists")
    for kind, found in examples.items():
        if not isinstance(found, list) or len(found) > 100:
            raise _fail(where, f"examples.{kind}", "must be a list of at most 100 sketches")
        for i, s in enumerate(found):
            _sketch(s, where, f"examples.{kind}[{i}]")
    consent = study["consent"]
    if consent is not None and (
        not isinstance(consent, dict)
        or set(consent) != {"text", "markdown"}
        or not isinstance(consent["text"], str)
        or not isinstance(consent["markdown"], bool)
        or not consent["text"].strip()
        or len(consent["text"]) > 64 * 1024
    ):
        raise _fail(where, "consent", "must be null or {text, markdown}")
    questions = study["questions"]
    if not isinstance(questions, dict):
        raise _fail(where, "questions", "must be an object")
    if any(questions.get(p) for p in ("before", "after")):
        check_questions(questions, f"{where}: questions")
    gold = sum(s.gold is not None for s in sketches)
    try:
        design = Design.from_spec(settings)
        for value in (design.per_rater, design.gradings_per_sketch):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise QuickDrawError("per_rater and gradings_per_sketch must be whole numbers >= 1")
        check_design(design, len(sketches) - gold, gold)
        exposure = settings.get("exposure") or {"mode": "unlimited"}
        check_exposure_settings(
            exposure.get("mode"), exposure.get("ms"), exposure.get("min_ms"), exposure.get("max_ms")
        )
    except (QuickDrawError, TypeError, ValueError, AttributeError, KeyError) as e:
        raise _fail(where, "settings", f"are not a valid design: {e}") from None


def session_from_study(study: dict) -> tuple[Session, Consent | None, dict[str, list[dict]]]:
    """The session (pool, spec, examples), consent and questions a checked study holds."""
    pool = [_sketch(s, "study", "pool") for s in study["pool"]]
    examples = {
        k: [_sketch(s, "study", "examples") for s in v] for k, v in study["examples"].items()
    }
    consent = study["consent"]
    questions = study["questions"] or {}
    return (
        Session(pool=pool, spec=dict(study["settings"]), examples=examples),
        Consent(consent["text"], consent["markdown"]) if consent else None,
        {p: list(questions.get(p, [])) for p in ("before", "after")},
    )
