"""The grading session's storage: one SQLite file (WAL mode), every grade committed as it arrives.

Tables
    meta      key/value: the session's sources and settings (`spec`), so a restart resumes the
              same session; the instructions page's example sketches (`examples`); the
              completion code and URL of a crowd study (`completion_code`, `completion_url`).
    sketches  the pool shown to raters: a random, unguessable id, the source label ("real" or a
              model's label), its category and its content as JSON: stroke-3 points, or a
              grey-level bitmap in a session that grades a bitmap model such as DRAW; `gold` is
              'real' or 'fake' for an attention check (a sketch whose answer is known), NULL
              otherwise. The page never sees the source, the category or `gold`.
    raters    one row per "start" on the page: a random secret token (the rater's only key: it
              resumes their session, and only the request that made it is told it), the name
              they typed (normalised, not unique: a name identifies no one), the participant id
              of a crowd platform's link (normalised alike, NULL without one; it identifies no
              one either) and their own random order of the pool. Reports name a rater by the
              row's rowid, ``r1``, ``r2``, ...
    grades    append-only: one row per accepted submission. `request_id` is UNIQUE, so a double
              click or a retry of the same submission is stored once; a rater who changes a grade
              adds a row, and the later row (higher `seq`) is the one that counts. `ms` is the
              time the page measured from showing the sketch to the answer (NULL if not sent),
              `exposure_ms` how long the sketch was shown (NULL: until graded).
    enrolments  a crowd platform's ids of a rater (`crowd.Enrolment`): platform, worker id,
              MTurk's assignment, HIT and turkSubmitTo, Prolific's study and session;
              UNIQUE (platform, worker): one worker takes a study once.
    consents  when a rater agreed to the consent form, and the form's SHA-256.
    answers   a rater's answer to each question (`--questions`); a later answer replaces it.

Files from before a column existed are upgraded in place when opened for writing
(`GradeStore._upgrade`: SQLite adds a nullable column without rewriting the table), and read as
they are for reports (a missing column reads as NULL).

One connection serves every thread behind a lock: writes are serialised by SQLite anyway, and a
grade is one short transaction. `synchronous=FULL` makes a commit survive a killed process and a
power cut; WAL keeps readers (the report) from blocking the server.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import threading
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ...errors import QuickDrawError

if TYPE_CHECKING:
    from .crowd import Enrolment

# The three grades of the protocol, in the order of the page's buttons (keys 1, 2, 3).
GRADES = ("real", "possibly_real", "fake")
REAL_SOURCE = "real"  # the source label of the real sketches
MAX_NAME = 60  # characters of a rater's name, after normalisation
MAX_PARTICIPANT = 60  # characters of a participant id, after normalisation
GOLD_KINDS = ("real", "fake")  # the two kinds of attention check
# columns added after the first files were written: (table, column, declaration)
ADDED_COLUMNS = (
    ("sketches", "gold", "TEXT CHECK (gold IN ('real', 'fake'))"),
    ("raters", "participant", "TEXT"),
    ("grades", "ms", "INTEGER"),
    ("grades", "exposure_ms", "INTEGER"),
)
CROWD_TABLES = ("enrolments", "consents", "answers")  # tables added with crowd studies

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sketches (
    id TEXT PRIMARY KEY,
    position INTEGER NOT NULL UNIQUE,
    source TEXT NOT NULL,
    category TEXT NOT NULL,
    content TEXT NOT NULL,
    gold TEXT CHECK (gold IN ('real', 'fake'))
);
CREATE TABLE IF NOT EXISTS raters (
    token TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created REAL NOT NULL,
    sketch_order TEXT NOT NULL,
    participant TEXT
);
CREATE TABLE IF NOT EXISTS grades (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL UNIQUE,
    rater TEXT NOT NULL REFERENCES raters(token),
    sketch TEXT NOT NULL REFERENCES sketches(id),
    grade TEXT NOT NULL CHECK (grade IN ('real', 'possibly_real', 'fake')),
    created REAL NOT NULL,
    ms INTEGER,
    exposure_ms INTEGER
);
CREATE INDEX IF NOT EXISTS grades_by_rater ON grades (rater, sketch);
CREATE TABLE IF NOT EXISTS enrolments (
    rater TEXT PRIMARY KEY REFERENCES raters(token),
    platform TEXT NOT NULL,
    worker TEXT NOT NULL,
    assignment TEXT,
    hit TEXT,
    submit_to TEXT,
    study TEXT,
    session TEXT,
    UNIQUE (platform, worker)
);
CREATE TABLE IF NOT EXISTS consents (
    rater TEXT PRIMARY KEY REFERENCES raters(token),
    agreed REAL NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    rater TEXT NOT NULL REFERENCES raters(token),
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (rater, question)
);
"""


@dataclass(frozen=True)
class Sketch:
    """One sketch of the pool: stroke-3 ``(n, 3)`` rows (dx, dy, pen_lifted), or a bitmap:
    uint8 ``(height, width)`` ink levels (0 = paper, 255 = full ink), as a bitmap model draws.
    `gold` is "real" or "fake" for an attention check, None for a sketch being graded."""

    source: str
    category: str
    strokes: np.ndarray | None = None
    image: np.ndarray | None = None
    gold: str | None = None

    def __post_init__(self):
        assert (self.strokes is None) != (self.image is None), "strokes or an image, not both"
        assert self.gold is None or self.gold in GOLD_KINDS, self.gold

    @property
    def blank(self) -> bool:
        """Nothing to see: fewer than two points (an empty or one-point sample), or an image
        without ink. A blank sample is still a sample: it is kept, shown and counted."""
        if self.strokes is not None:
            return len(self.strokes) < 2
        return not np.asarray(self.image).any()

    def to_json(self) -> str:
        if self.strokes is not None:
            return json.dumps({"strokes": np.asarray(self.strokes).tolist()})
        return json.dumps({"image": np.asarray(self.image, dtype=np.uint8).tolist()})

    @classmethod
    def from_json(cls, source: str, category: str, text: str, gold: str | None = None) -> Sketch:
        content = json.loads(text)
        if "strokes" in content:
            strokes = np.asarray(content["strokes"], dtype=np.float64)
            return cls(source, category, strokes=strokes, gold=gold)
        return cls(source, category, image=np.asarray(content["image"], np.uint8), gold=gold)


@dataclass(frozen=True)
class Rater:
    token: str  # the secret that resumes this rater's session
    name: str  # as shown; normalised by `clean_name`, not unique
    order: tuple[str, ...]  # sketch ids in the order this rater sees them
    number: int  # 1, 2, ... in order of creation (the row's rowid)
    participant: str | None = None  # a crowd platform's id from the link; normalised, untrusted

    @property
    def short_id(self) -> str:
        """How reports name this rater (``r1``, ``r2``, ...): told apart from a look-alike
        name, and not the token, which would let a reader of the report continue the session."""
        return f"r{self.number}"


class Grading(NamedTuple):
    """The grade that counts for one (rater, sketch): the rater's latest."""

    rater: str  # the rater's token
    sketch: str
    source: str
    category: str
    grade: str
    ms: int | None  # time from showing the sketch to this answer, as the page measured it
    gold: str | None  # "real" / "fake" for an attention check, else None
    exposure_ms: int | None = None  # how long the sketch was shown (None: until graded)


class AlreadyEnrolled(QuickDrawError):
    """A platform's worker id that already has a rater in this study."""


class GradeConflict(QuickDrawError):
    """A request id already stored with a different rater, sketch or grade."""


class StoreUnwritable(QuickDrawError):
    """The database cannot take a write: the disk is full (`full`), or the file or its folder
    is read-only. What was committed before is kept."""

    def __init__(self, message: str, full: bool):
        super().__init__(message)
        self.full = full


def remove_database(path: Path) -> None:
    """Delete a database file and SQLite's files beside it (what a failed start made)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _unwritable(path: Path, error: sqlite3.Error) -> StoreUnwritable | None:
    """The StoreUnwritable that SQLite's `error` means, if it means one: SQLITE_FULL, or
    SQLITE_READONLY / SQLITE_CANTOPEN (a read-only file, folder or file system)."""
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if code is not None else None
    text = str(error)
    if primary == sqlite3.SQLITE_FULL or "disk is full" in text:
        return StoreUnwritable(
            f"the disk is full: {path} cannot grow ({text}); free some space (everything "
            "stored so far is kept)",
            full=True,
        )
    if primary in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN) or "readonly" in text:
        return StoreUnwritable(
            f"cannot write DB {path}: it, its folder or its disk is read-only ({text}); make it "
            "writable, or give --db a copy on a writable disk",
            full=False,
        )
    return None


def clean_name(name: str, what: str = "a name", limit: int = MAX_NAME) -> str:
    """A rater's name as stored and shown: Unicode NFKC (full-width letters, ligatures and
    compatibility spaces become their plain forms), white space collapsed to single spaces.
    Raises QuickDrawError unless the result is 1 to `limit` printable characters (no control
    or format characters such as zero-width spaces and direction overrides)."""
    text = " ".join(unicodedata.normalize("NFKC", name).split())
    if not 1 <= len(text) <= limit or not text.isprintable():
        raise QuickDrawError(
            f"{what} is 1 to {limit} printable characters (after Unicode NFKC normalisation)"
        )
    return text


def clean_participant(text: str) -> str:
    """A crowd platform's participant id (``?participant=`` or Prolific's ``PROLIFIC_PID``),
    cleaned exactly as a name is: it comes from a link anyone can edit."""
    return clean_name(text, "a participant id", MAX_PARTICIPANT)


def new_token(nbytes: int = 12) -> str:
    """A random URL-safe token (96 bits by default): ids that cannot be guessed or enumerated."""
    return secrets.token_urlsafe(nbytes)


def new_completion_code() -> str:
    """A random completion code as crowd platforms use them: 8 capitals and digits."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: it may be typed by hand
    return "".join(secrets.choice(alphabet) for _ in range(8))


class GradeStore:
    """The session database. Safe to share between threads."""

    def __init__(self, path: str | Path, readonly: bool = False):
        """Open (or create) the session file; `readonly` opens an existing one for reports."""
        self.path = Path(path)
        if self.path.is_dir():
            raise QuickDrawError(f"--db {self.path} is a folder; give a file such as grades.sqlite")
        if readonly and not self.path.is_file():
            raise QuickDrawError(f"no such grading database: {self.path}")
        self._lock = threading.Lock()
        try:
            if readonly:
                self._db = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=30,
                )
                self._db.execute("SELECT 1 FROM sketches, raters, grades, meta LIMIT 0").fetchall()
            else:
                self._check_is_ours()  # before anything is written to it
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=30
                )
                # a write that needs nothing: refused at once by a read-only file or disk
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("COMMIT")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.execute("PRAGMA foreign_keys=ON")
                self._db.executescript(SCHEMA)
                self._drop_unique_names()
                self._upgrade()
            self._columns = {
                table: {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                for table in {t for t, _, _ in ADDED_COLUMNS}
            }
            self._tables = {
                row[0]
                for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.DatabaseError as e:
            if hasattr(self, "_db"):
                self._db.close()
            unwritable = None if readonly else _unwritable(self.path, e)
            if unwritable is not None:
                raise unwritable from None
            raise QuickDrawError(f"{self.path} is not a grading database: {e}") from e
        self._orders: dict[str, Rater] = {}
        self._positions: dict[str, dict[str, int]] = {}

    def _check_is_ours(self) -> None:
        """Refuse an existing file that is not a grading database (another SQLite database,
        or no database at all) before anything is written to it: not a table created, not the
        journal mode changed, its bytes unchanged. An empty file, or a SQLite database with no
        tables, becomes one."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        try:
            probe = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                tables = {
                    row[0]
                    for row in probe.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
            finally:
                probe.close()
        except sqlite3.DatabaseError as e:
            if _unwritable(self.path, e) is not None:
                return  # cannot even be read here (a read-only disk): the write probe says so
            raise QuickDrawError(
                f"{self.path} is not a grading database ({e}); give --db a new file name"
            ) from None
        ours = {"meta", "sketches", "raters", "grades"}
        if tables and not ours <= tables:
            raise QuickDrawError(
                f"{self.path} is a SQLite database of something else (tables: "
                f"{', '.join(sorted(tables))}), not a grading session; give --db a new file "
                "name (it was left as it was)"
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction, rolled back on an exception (unless SQLite has already
        rolled it back, as it does when the disk is full); a full or read-only disk raises
        StoreUnwritable."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            unwritable = _unwritable(self.path, e)
            if unwritable is None:
                raise
            raise unwritable from None

    def _drop_unique_names(self) -> None:
        """Files made before resume tokens kept one rater per name (`raters.name UNIQUE`), and
        anyone who typed a name continued that rater. Rebuild such a table without the
        constraint (SQLite cannot drop one), keeping every row and rowid (the short ids)."""
        # rows (seq, name, unique, origin, partial); origin "u" is a UNIQUE constraint, and
        # the raters table only ever had one, on name
        if not any(row[3] == "u" for row in self._db.execute("PRAGMA index_list(raters)")):
            return
        self._db.execute("PRAGMA foreign_keys=OFF")  # grades point at raters while it is rebuilt
        try:
            with self._transaction():
                self._db.execute(
                    "CREATE TABLE raters_new (token TEXT PRIMARY KEY, name TEXT NOT NULL, "
                    "created REAL NOT NULL, sketch_order TEXT NOT NULL)"
                )
                self._db.execute(
                    "INSERT INTO raters_new (rowid, token, name, created, sketch_order) "
                    "SELECT rowid, token, name, created, sketch_order FROM raters"
                )
                self._db.execute("DROP TABLE raters")
                self._db.execute("ALTER TABLE raters_new RENAME TO raters")
                assert not self._db.execute("PRAGMA foreign_key_check").fetchall()
        finally:
            self._db.execute("PRAGMA foreign_keys=ON")

    def _upgrade(self) -> None:
        """Add the columns of ADDED_COLUMNS that a file from before them lacks, in one
        transaction: NULL in every old row (no gold items, no participant ids, no times)."""
        missing = [
            (table, column, declaration)
            for table, column, declaration in ADDED_COLUMNS
            if column not in {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
        ]
        if not missing:
            return
        with self._transaction():
            for table, column, declaration in missing:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    def _column(self, table: str, column: str, prefix: str = "") -> str:
        """`column` (after `prefix`, a table alias) in a SELECT, or NULL where a read-only old
        file lacks it."""
        return prefix + column if column in self._columns[table] else "NULL"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> GradeStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the session -------------------------------------------------------------------------

    def has_session(self) -> bool:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM sketches").fetchone()[0] > 0

    def create_session(
        self,
        sketches: Sequence[Sketch],
        spec: dict,
        examples: dict[str, Sequence[Sketch]] | None = None,
        meta: dict[str, str] | None = None,
    ) -> list[str]:
        """Store the pool (in the given order, gold items among it), the session's `spec`, the
        instructions page's `examples` ({"real": [...], "fake": [...]}) and other `meta` values
        (the study's hash, consent form, questions); return the ids. A new session also gets a
        random completion code (`completion`)."""
        if not sketches:
            raise QuickDrawError("a grading session needs at least one sketch")
        ids = [new_token() for _ in sketches]
        rows = [
            (sid, i, s.source, s.category, s.to_json(), s.gold)
            for i, (sid, s) in enumerate(zip(ids, sketches, strict=True))
        ]
        shown = {kind: [s.to_json() for s in found] for kind, found in (examples or {}).items()}
        with self._lock:
            if self._db.execute("SELECT count(*) FROM sketches").fetchone()[0]:
                raise QuickDrawError(f"{self.path} already holds a grading session")
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO sketches (id, position, source, category, content, gold) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('spec', ?)", (json.dumps(spec),)
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('examples', ?)", (json.dumps(shown),)
                )
                self._db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('completion_code', ?)",
                    (new_completion_code(),),
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)", list((meta or {}).items())
                )
        return ids

    def spec(self) -> dict:
        return json.loads(self._meta("spec") or "{}")

    def _meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        with self._lock, self._transaction():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def examples(self) -> dict[str, list[Sketch]]:
        """The instructions page's example sketches: {"real": [...], "fake": [...]}; empty
        lists for a file from before examples."""
        stored = json.loads(self._meta("examples") or "{}")
        return {
            kind: [Sketch.from_json(f"example {kind}", "", text) for text in stored.get(kind, [])]
            for kind in GOLD_KINDS
        }

    def completion(self) -> tuple[str | None, str | None]:
        """(completion code, completion URL) of a crowd study; None where not set."""
        return self._meta("completion_code"), self._meta("completion_url")

    def set_completion(self, code: str | None = None, url: str | None = None) -> None:
        """Keep `code` / `url` (each replaces the stored one when given). A session without
        a code (a file from before completion codes) gets a random one, so every finished
        rater is shown one."""
        if code is not None:
            self._set_meta("completion_code", code)
        elif self._meta("completion_code") is None:
            self._set_meta("completion_code", new_completion_code())
        if url is not None:
            self._set_meta("completion_url", url)

    def gold(self) -> dict[str, str]:
        """Sketch id -> "real" / "fake" for every attention check of the pool."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, {self._column('sketches', 'gold')} FROM sketches"
            ).fetchall()
        return {sid: gold for sid, gold in rows if gold is not None}

    def sketch_ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM sketches ORDER BY position")]

    def sketches(self) -> dict[str, Sketch]:
        """Every sketch of the pool by id (the server renders them once at start)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, source, category, content FROM sketches ORDER BY position"
            ).fetchall()
        gold = self.gold()
        return {
            sid: Sketch.from_json(source, category, text, gold.get(sid))
            for sid, source, category, text in rows
        }

    # --- raters ------------------------------------------------------------------------------

    def new_rater(
        self,
        name: str,
        participant: str | None = None,
        enrolment: Enrolment | None = None,
        consent: str | None = None,
    ) -> Rater:
        """A new rater called `name` (normalised by `clean_name`) with a fresh secret token and
        their sketches in their order (`design.choose_sketches`: the whole pool, or a balanced
        part of it under per-rater subsets); `participant` is a crowd platform's id
        (`clean_participant`), `enrolment` their platform and ids (one rater per platform and
        worker id: a second start is refused with AlreadyEnrolled), `consent` the SHA-256 of
        the consent form they agreed to (stored with the time). Raises StudyFull when every
        sketch has its raters. Neither a name nor an id resumes anyone."""
        from .design import Design, choose_sketches

        name = clean_name(name)
        participant = None if participant is None else clean_participant(participant)
        token = new_token()
        design = Design.from_spec(self.spec())
        with self._lock:
            if enrolment is not None:
                taken = self._db.execute(
                    "SELECT r.rowid FROM enrolments e JOIN raters r ON r.token = e.rater "
                    "WHERE e.platform = ? AND e.worker = ?",
                    (enrolment.platform, enrolment.worker),
                ).fetchone()
                if taken:
                    raise AlreadyEnrolled(
                        f"{enrolment.worker} has already taken part in this study (as "
                        f"r{taken[0]}): each worker takes it once; open your resume link to go on"
                    )
            rows = self._db.execute(
                f"SELECT id, source, {self._column('sketches', 'gold')} FROM sketches "
                "ORDER BY position"
            ).fetchall()
            pool = {sid: source for sid, source, gold in rows if gold is None}
            gold = [sid for sid, _, g in rows if g is not None]
            number = (self._db.execute("SELECT max(rowid) FROM raters").fetchone()[0] or 0) + 1
            held = self._held(design) if design.per_rater is not None else Counter()
            order = choose_sketches(pool, gold, held, design, number)
            now = time.time()
            with self._transaction():
                cursor = self._db.execute(
                    "INSERT INTO raters (rowid, token, name, created, sketch_order, participant) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (number, token, name, now, json.dumps(order), participant),
                )
                if enrolment is not None:
                    self._db.execute(
                        "INSERT INTO enrolments (rater, platform, worker, assignment, hit, "
                        "submit_to, study, session) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (token, enrolment.platform, enrolment.worker, enrolment.assignment,
                         enrolment.hit, enrolment.submit_to, enrolment.study, enrolment.session),
                    )  # fmt: skip
                if consent is not None:
                    self._db.execute(
                        "INSERT INTO consents (rater, agreed, sha256) VALUES (?, ?, ?)",
                        (token, now, consent),
                    )
            assert cursor.lastrowid == number
            return self._remember(Rater(token, name, tuple(order), number, participant))

    def _held(self, design) -> Counter:
        """Sketch id -> how many raters hold it: every rater whose order has it, except a rater
        who has not finished, has been silent for `design.hold_minutes`, and has not graded it
        (they gave it back). Called under the lock."""
        graded: dict[str, set[str]] = defaultdict(set)
        last: dict[str, float] = {}
        for rater, sketch, created in self._db.execute("SELECT rater, sketch, created FROM grades"):
            graded[rater].add(sketch)
            last[rater] = max(last.get(rater, 0.0), created)
        cutoff = time.time() - 60 * design.hold_minutes
        held: Counter = Counter()
        for token, order, created in self._db.execute(
            "SELECT token, sketch_order, created FROM raters"
        ):
            ids = json.loads(order)
            done = graded.get(token, set())
            if len(done) < len(ids) and max(last.get(token, 0.0), created) < cutoff:
                ids = [sid for sid in ids if sid in done]
            held.update(ids)
        return held

    def rater(self, token: str) -> Rater | None:
        """The rater whose secret token is `token`, or None."""
        cached = self._orders.get(token)
        if cached:
            return cached
        with self._lock:
            row = self._db.execute(
                f"SELECT rowid, token, name, sketch_order, {self._column('raters', 'participant')}"
                " FROM raters WHERE token = ?",
                (token,),
            ).fetchone()
        return self._rater_from_row(row) if row else None

    def raters(self) -> list[Rater]:
        """Every rater, in order of creation."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT rowid, token, name, sketch_order, {self._column('raters', 'participant')}"
                " FROM raters ORDER BY rowid"
            ).fetchall()
        return [self._rater_from_row(row) for row in rows]

    def _rater_from_row(self, row) -> Rater:
        number, token, name, order, participant = row
        return self._remember(Rater(token, name, tuple(json.loads(order)), number, participant))

    def _remember(self, rater: Rater) -> Rater:
        self._orders[rater.token] = rater
        self._positions[rater.token] = {sid: i for i, sid in enumerate(rater.order)}
        return rater

    def position(self, rater: Rater, sketch_id: str) -> int | None:
        """Where `sketch_id` comes in `rater`'s order, or None if it is not in the pool."""
        if rater.token not in self._positions:
            self._remember(rater)
        return self._positions[rater.token].get(sketch_id)

    # --- grades ------------------------------------------------------------------------------

    def graded_count(self, rater: Rater) -> int:
        """How many distinct sketches `rater` has graded (they are always a prefix of the order)."""
        with self._lock:
            return self._db.execute(
                "SELECT count(DISTINCT sketch) FROM grades WHERE rater = ?", (rater.token,)
            ).fetchone()[0]

    def latest_grade(self, rater: Rater, sketch_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT grade FROM grades WHERE rater = ? AND sketch = ? ORDER BY seq DESC LIMIT 1",
                (rater.token, sketch_id),
            ).fetchone()
        return row[0] if row else None

    def add_grade(
        self,
        request_id: str,
        rater: Rater,
        sketch_id: str,
        grade: str,
        ms: int | None = None,
        exposure_ms: int | None = None,
    ) -> bool:
        """Store one grade, committed before returning; False if `request_id` was already stored.
        `ms` is the time from showing the sketch to the answer (a retry's is not compared),
        `exposure_ms` how long the sketch was shown (None: until graded).

        Raises GradeConflict when the request id is stored with different content, and
        QuickDrawError for a grade outside GRADES (the caller validates first; this is the
        last line).
        """
        if grade not in GRADES:
            raise QuickDrawError(f"unknown grade {grade!r}; valid: {', '.join(GRADES)}")
        with self._lock, self._transaction():
            old = self._db.execute(
                "SELECT rater, sketch, grade FROM grades WHERE request_id = ?", (request_id,)
            ).fetchone()
            if old is None:
                self._db.execute(
                    "INSERT INTO grades (request_id, rater, sketch, grade, created, ms, "
                    "exposure_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (request_id, rater.token, sketch_id, grade, time.time(), ms, exposure_ms),
                )
        if old is not None and tuple(old) != (rater.token, sketch_id, grade):
            raise GradeConflict(f"request id {request_id!r} was already used for another grade")
        return old is None

    def grades_of(self, rater: Rater) -> dict[str, str]:
        """Sketch id -> the latest grade `rater` gave it."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sketch, grade FROM grades WHERE rater = ? ORDER BY seq", (rater.token,)
            ).fetchall()
        return dict(rows)

    # --- crowd studies -------------------------------------------------------------------------

    def enrolment(self, token: str) -> Enrolment | None:
        """The platform and ids rater `token` came with, or None."""
        from .crowd import Enrolment

        if "enrolments" not in self._tables:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT platform, worker, assignment, hit, submit_to, study, session "
                "FROM enrolments WHERE rater = ?",
                (token,),
            ).fetchone()
        return Enrolment(*row) if row else None

    def crowd(self) -> dict[str, dict]:
        """Rater token -> {"platform", "worker", "assignment", "hit", "submit_to", "study",
        "session", "consent_at", "consent_sha256", "answers": {question: answer}}: what a crowd
        study stored of each rater (empty for a file from before crowd studies)."""
        if not set(CROWD_TABLES) <= self._tables:
            return {}
        out: dict[str, dict] = defaultdict(lambda: {"answers": {}})
        keys = ("platform", "worker", "assignment", "hit", "submit_to", "study", "session")
        with self._lock:
            for row in self._db.execute(f"SELECT rater, {', '.join(keys)} FROM enrolments"):
                out[row[0]].update(zip(keys, row[1:], strict=True))
            for rater, agreed, sha in self._db.execute(
                "SELECT rater, agreed, sha256 FROM consents"
            ):
                out[rater].update(consent_at=agreed, consent_sha256=sha)
            for rater, question, answer in self._db.execute(
                "SELECT rater, question, answer FROM answers ORDER BY created"
            ):
                out[rater]["answers"][question] = answer
        return dict(out)

    def set_answer(self, rater: Rater, question: str, answer: str) -> None:
        """Keep `rater`'s answer to `question` (a later answer replaces it)."""
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO answers (rater, question, answer, created) "
                "VALUES (?, ?, ?, ?)",
                (rater.token, question, answer, time.time()),
            )

    def answered(self, rater: Rater) -> set[str]:
        """The questions `rater` has answered."""
        with self._lock:
            rows = self._db.execute("SELECT question FROM answers WHERE rater = ?", (rater.token,))
            return {r[0] for r in rows}

    def meta(self, key: str) -> str | None:
        """A value the session keeps in its meta table (None when not set)."""
        return self._meta(key)

    def all_grades(self) -> list[tuple[int, str, str, str, str]]:
        """Every stored row: (seq, request_id, rater token, sketch id, grade), oldest first."""
        with self._lock:
            return self._db.execute(
                "SELECT seq, request_id, rater, sketch, grade FROM grades ORDER BY seq"
            ).fetchall()

    def latest_grades(self) -> list[tuple[str, str, str, str, str, str]]:
        """The grade that counts for each (rater, sketch): rows of
        (rater name, sketch id, source, category, grade, rater token)."""
        with self._lock:
            return self._db.execute(
                """
                SELECT r.name, g.sketch, s.source, s.category, g.grade, g.rater
                FROM grades g
                JOIN (SELECT max(seq) AS seq FROM grades GROUP BY rater, sketch) last
                    ON last.seq = g.seq
                JOIN sketches s ON s.id = g.sketch
                JOIN raters r ON r.token = g.rater
                ORDER BY g.seq
                """
            ).fetchall()

    def gradings(self) -> list[Grading]:
        """The grade that counts for each (rater, sketch), with its time and the sketch's gold
        kind, in the order they were given."""
        ms, gold = self._column("grades", "ms", "g."), self._column("sketches", "gold", "s.")
        exposure = self._column("grades", "exposure_ms", "g.")
        with self._lock:
            rows = self._db.execute(
                f"""
                SELECT g.rater, g.sketch, s.source, s.category, g.grade, {ms}, {gold}, {exposure}
                FROM grades g
                JOIN (SELECT max(seq) AS seq FROM grades GROUP BY rater, sketch) last
                    ON last.seq = g.seq
                JOIN sketches s ON s.id = g.sketch
                ORDER BY g.seq
                """
            ).fetchall()
        return [Grading(*row) for row in rows]

    def counts(self) -> dict[str, int]:
        """Row counts of each table (for checks and the load test)."""
        with self._lock:
            return {
                t: self._db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("sketches", "raters", "grades")
            }
