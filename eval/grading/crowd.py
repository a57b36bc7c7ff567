"""What a crowd study adds to a session: the platforms' ids, a consent form, short questions.

Platforms. A rater comes from a link a crowd platform opened, which carries their ids:

- Amazon Mechanical Turk, as an ExternalQuestion: ``workerId``, ``assignmentId``, ``hitId`` and
  ``turkSubmitTo`` (where the finished assignment is posted back, ``/mturk/externalSubmit``).
  A worker previewing the HIT comes with ``assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE``: the page
  shows the task and stores nothing.
- Prolific: ``PROLIFIC_PID``, ``STUDY_ID`` and ``SESSION_ID`` (24-character hexadecimal ids).
- Any other platform: ``participant=ID``.

Every id comes from a link anyone can edit: it is checked against the form the platform uses
(`check_enrolment`), stored as given, and shown only as text. One worker takes a study once:
the database holds one rater per (platform, worker id).

A consent form (`--consent FILE`: Markdown, ``.md``, or plain text) is shown before anything
else; grading starts only after the rater agrees, and the agreement, its time and the form's
SHA-256 are stored. Questions (`--questions FILE`, JSON) are asked before the first sketch or
after the last (before the completion code); the answers are stored and exported.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import QuickDrawError

MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
# where MTurk posts an ExternalQuestion back: the live site and the sandbox
MTURK_SUBMIT = ("https://www.mturk.com", "https://workersandbox.mturk.com")
MTURK_FRAMES = (
    "https://www.mturk.com",
    "https://worker.mturk.com",
    "https://workersandbox.mturk.com",
)
MAX_ID = 64  # characters of any platform id
ID_FORMS = {  # the page's field -> (the link's parameter, pattern, the form in words)
    "worker_id": ("workerId", re.compile(r"[A-Z0-9]{1,64}"), "capitals and digits"),
    "assignment_id": ("assignmentId", re.compile(r"[A-Z0-9]{1,64}"), "capitals and digits"),
    "hit_id": ("hitId", re.compile(r"[A-Z0-9]{1,64}"), "capitals and digits"),
    "prolific_pid": ("PROLIFIC_PID", re.compile(r"[0-9a-fA-F]{24}"), "24 hexadecimal digits"),
    "study_id": ("STUDY_ID", re.compile(r"[0-9a-fA-F]{24}"), "24 hexadecimal digits"),
    "session_id": ("SESSION_ID", re.compile(r"[0-9a-fA-F]{24}"), "24 hexadecimal digits"),
}
PLATFORM_FIELDS = {
    "mturk": ("worker_id", "assignment_id", "hit_id", "turk_submit_to"),
    "prolific": ("prolific_pid", "study_id", "session_id"),
}
MAX_FORM = 64 * 1024  # bytes of a consent form or a questions file
QUESTION_ID = re.compile(r"[a-z][a-z0-9_]{0,31}")
PHASES = ("before", "after")
KINDS = ("choice", "text", "number")
MAX_QUESTIONS = 10  # per phase
MAX_TEXT_ANSWER = 300


@dataclass(frozen=True)
class Enrolment:
    """A rater's platform and ids, as checked by `check_enrolment`."""

    platform: str  # "mturk", "prolific" or "link"
    worker: str  # workerId, PROLIFIC_PID or the participant id
    assignment: str | None = None  # MTurk
    hit: str | None = None  # MTurk
    submit_to: str | None = None  # MTurk's turkSubmitTo: one of MTURK_SUBMIT
    study: str | None = None  # Prolific
    session: str | None = None  # Prolific


def _id(value: object, field: str) -> str:
    """One platform id, checked: a string of at most MAX_ID characters, no control characters,
    of the platform's form."""
    name, pattern, form = ID_FORMS[field]
    if not isinstance(value, str):
        raise QuickDrawError(f"{name} must be a string")
    if len(value) > MAX_ID:
        raise QuickDrawError(f"{name} is over {MAX_ID} characters ({len(value)})")
    if not value.isprintable():
        raise QuickDrawError(f"{name} {value[:MAX_ID]!r} has control or format characters")
    if not pattern.fullmatch(value):
        raise QuickDrawError(f"{name} {value!r} is not an id of the platform's form ({form})")
    return value


def check_submit_to(value: object) -> str:
    """MTurk's turkSubmitTo: the live site or the sandbox, nothing else (the page posts the
    finished assignment there)."""
    if not isinstance(value, str) or len(value) > 100 or not value.isprintable():
        raise QuickDrawError("turkSubmitTo must be MTurk's address")
    url = value.rstrip("/").lower()
    if url not in MTURK_SUBMIT:
        raise QuickDrawError(
            f"turkSubmitTo {value[:100]!r} is not MTurk's: expected {' or '.join(MTURK_SUBMIT)}"
        )
    return url


def check_enrolment(platform: object, fields: dict[str, object]) -> Enrolment:
    """The platform ids a page sent (its fields of PLATFORM_FIELDS), checked: raises
    QuickDrawError in one line for a missing, malformed, over-long or control-character id,
    a turkSubmitTo that is not MTurk's, and a preview (nothing is stored for it)."""
    if platform not in PLATFORM_FIELDS:
        raise QuickDrawError(f"platform must be one of {', '.join(PLATFORM_FIELDS)}")
    wanted = PLATFORM_FIELDS[str(platform)]
    missing = [f for f in wanted if f not in fields]
    unknown = sorted(set(fields) - set(wanted))
    if missing or unknown:
        raise QuickDrawError(
            f"{platform} needs {', '.join(wanted)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; not {', '.join(unknown)}" if unknown else "")
        )
    if platform == "mturk":
        if fields["assignment_id"] == MTURK_PREVIEW:
            raise QuickDrawError(
                "this is MTurk's preview: accept the HIT to start (nothing stored)"
            )
        return Enrolment(
            "mturk",
            _id(fields["worker_id"], "worker_id"),
            assignment=_id(fields["assignment_id"], "assignment_id"),
            hit=_id(fields["hit_id"], "hit_id"),
            submit_to=check_submit_to(fields["turk_submit_to"]),
        )
    return Enrolment(
        "prolific",
        _id(fields["prolific_pid"], "prolific_pid"),
        study=_id(fields["study_id"], "study_id"),
        session=_id(fields["session_id"], "session_id"),
    )


def mturk_submit_url(submit_to: str) -> str:
    """Where the page posts a finished assignment (MTurk's ExternalQuestion protocol)."""
    return f"{submit_to}/mturk/externalSubmit"


# --- files the researcher writes -------------------------------------------------------------


def _read_text(path: str | Path, flag: str) -> str:
    """A small UTF-8 text file, or one line saying why it is not one."""
    path = Path(path)
    try:
        data = path.read_bytes()[: MAX_FORM + 1]
    except OSError as e:
        raise QuickDrawError(f"{flag} {path}: cannot read it ({e.strerror or e})") from None
    if len(data) > MAX_FORM:
        raise QuickDrawError(f"{flag} {path} is over {MAX_FORM // 1024} KiB: give a short text")
    if b"\0" in data:
        raise QuickDrawError(f"{flag} {path} is not text (it holds NUL bytes): give a .md or .txt")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise QuickDrawError(
            f"{flag} {path} is not UTF-8 text (byte {e.start}): give a .md or .txt file"
        ) from None
    bad = next((c for c in text if not (c.isprintable() or c in "\n\r\t")), None)
    if bad is not None:
        line = text[: text.index(bad)].count("\n") + 1
        raise QuickDrawError(
            f"{flag} {path}:{line} holds the control character {bad!r}: give plain text"
        )
    if not text.strip():
        raise QuickDrawError(f"{flag} {path} is empty")
    return text.removeprefix("\ufeff")


@dataclass(frozen=True)
class Consent:
    text: str  # as the researcher wrote it
    markdown: bool  # a .md / .markdown file: rendered as Markdown, else as plain paragraphs

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def html(self) -> str:
        """The form as HTML for the page: Markdown through markdown-it-py with raw HTML off
        (written as text) and its default link check (no javascript:, data:, file: links);
        plain text as escaped paragraphs."""
        if self.markdown:
            from markdown_it import MarkdownIt

            return MarkdownIt("commonmark", {"html": False}).render(self.text)
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", self.text) if p.strip()]
        return "".join("<p>" + html.escape(p).replace("\n", "<br>") + "</p>\n" for p in paragraphs)

    def to_json(self) -> dict:
        return {"text": self.text, "markdown": self.markdown}


def read_consent(path: str | Path) -> Consent:
    """`--consent FILE`: Markdown (``.md``, ``.markdown``) or plain text, UTF-8, at most 64 KiB;
    raises QuickDrawError in one line otherwise."""
    text = _read_text(path, "--consent")
    return Consent(text, Path(path).suffix.lower() in (".md", ".markdown"))


def check_questions(obj: object, where: str) -> dict[str, list[dict]]:
    """Questions as `--questions` gives them: ``{"before": [...], "after": [...]}``, each
    ``{"id", "text", "kind": "choice" | "text" | "number", "choices"?, "min"?, "max"?,
    "required"?}``; returns them with every default filled in. Raises QuickDrawError naming
    the place (``FILE: before[1].choices``) and what would be valid."""

    def bad(place: str, what: str) -> QuickDrawError:
        return QuickDrawError(f"{where}: {place} {what}")

    if not isinstance(obj, dict) or not obj or set(obj) - set(PHASES):
        raise bad("the file", 'must be an object with "before" and/or "after" lists')
    out: dict[str, list[dict]] = {p: [] for p in PHASES}
    seen: set[str] = set()
    for phase in PHASES:
        items = obj.get(phase, [])
        if not isinstance(items, list) or len(items) > MAX_QUESTIONS:
            raise bad(phase, f"must be a list of at most {MAX_QUESTIONS} questions")
        for i, q in enumerate(items):
            place = f"{phase}[{i}]"
            allowed = {"id", "text", "kind", "choices", "min", "max", "required"}
            if not isinstance(q, dict) or set(q) - allowed or not {"id", "text"} <= set(q):
                raise bad(place, f"must be an object with id and text (keys: {sorted(allowed)})")
            qid, text, kind = (
                q["id"],
                q["text"],
                q.get("kind", "choice" if "choices" in q else "text"),
            )
            if not isinstance(qid, str) or not QUESTION_ID.fullmatch(qid) or qid in seen:
                raise bad(f"{place}.id", "must be a new id of a-z 0-9 _ (1-32, a letter first)")
            seen.add(qid)
            if (
                not isinstance(text, str)
                or not 1 <= len(text.strip()) <= 500
                or not text.isprintable()
            ):
                raise bad(f"{place}.text", "must be 1 to 500 printable characters")
            if kind not in KINDS:
                raise bad(f"{place}.kind", f"must be one of {', '.join(KINDS)}")
            question = {"id": qid, "text": text.strip(), "kind": kind,
                        "required": q.get("required", True)}  # fmt: skip
            if not isinstance(question["required"], bool):
                raise bad(f"{place}.required", "must be true or false")
            if kind == "choice":
                choices = q.get("choices")
                if (
                    not isinstance(choices, list)
                    or not 2 <= len(choices) <= 20
                    or not all(
                        isinstance(c, str) and 1 <= len(c) <= 100 and c.isprintable()
                        for c in choices
                    )  # fmt: skip
                    or len(set(choices)) != len(choices)
                ):
                    raise bad(
                        f"{place}.choices", "must be 2 to 20 different texts of 1-100 characters"
                    )
                question["choices"] = choices
            elif "choices" in q:
                raise bad(f"{place}.choices", f"belong to a choice question, not {kind}")
            if kind == "number":
                lo, hi = q.get("min", 0), q.get("max", 1000)
                if not all(isinstance(v, int) and not isinstance(v, bool) and abs(v) <= 10**9
                           for v in (lo, hi)) or lo > hi:  # fmt: skip
                    raise bad(f"{place}.min/max", "must be whole numbers, min <= max, within 1e9")
                question["min"], question["max"] = lo, hi
            elif "min" in q or "max" in q:
                raise bad(f"{place}.min/max", f"belong to a number question, not {kind}")
            out[phase].append(question)
    return out


def read_questions(path: str | Path) -> dict[str, list[dict]]:
    """`--questions FILE`: JSON (see `check_questions`)."""
    text = _read_text(path, "--questions")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise QuickDrawError(f"--questions {path}:{e.lineno}: not JSON ({e.msg})") from None
    return check_questions(obj, f"--questions {path}")


def check_answer(question: dict, value: object) -> str:
    """An answer to `question` as stored (text): a choice of its choices, a number in its
    range, a text of at most MAX_TEXT_ANSWER printable characters."""
    qid = question["id"]
    if question["kind"] == "choice":
        if value not in question["choices"]:
            raise QuickDrawError(f"answer to {qid} must be one of its choices")
        return str(value)
    if question["kind"] == "number":
        if isinstance(value, bool) or not isinstance(value, int):
            raise QuickDrawError(f"answer to {qid} must be a whole number")
        if not question["min"] <= value <= question["max"]:
            raise QuickDrawError(
                f"answer to {qid} must be {question['min']} to {question['max']}, got {value}"
            )
        return str(value)
    if not isinstance(value, str):
        raise QuickDrawError(f"answer to {qid} must be text")
    text = " ".join(value.split())
    if len(text) > MAX_TEXT_ANSWER or not text.isprintable():
        raise QuickDrawError(
            f"answer to {qid} must be at most {MAX_TEXT_ANSWER} printable characters"
        )
    if not text and question["required"]:
        raise QuickDrawError(f"answer to {qid} is required")
    return text
