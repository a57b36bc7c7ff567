"""The grading web app: a small JSON API and three static files, on the standard library's
`ThreadingHTTPServer`.

Routes (everything else is 404; no request path ever reaches the file system: the static files
are read once from the package into a whitelist dict):

    GET  /  /app.js  /style.css          the page (and its icon, /favicon.svg)
    GET  /api/session                    what the instructions page shows: {exposure_ms,
                                         examples: {real: [svg], fake: [svg]}, checks, total,
                                         categories}
    POST /api/raters   {name, participant? | platform + its ids?, consent?}
                                         start a new rater: {rater, name, participant, total,
                                         graded, done, before?}; `rater` is the rater's secret
                                         resume token, told only here. platform "mturk" with
                                         worker_id, assignment_id, hit_id, turk_submit_to, or
                                         "prolific" with prolific_pid, study_id, session_id
                                         (`crowd.check_enrolment`); consent: true where the
                                         study has a consent form (else 400, nothing stored);
                                         409 for a worker id already in the study, 410 once
                                         every sketch has its raters (`design`)
    GET  /api/state?rater=T              {name, participant, total, graded, done, before?,
                                         after?}, and once done (and answered) {completion:
                                         {code, url, mturk?: {submit, assignment_id}}}
    GET  /api/item?rater=T&index=I       the I-th sketch of T's order: {index, id, svg, grade,
                                         category, exposure_ms (adaptive exposure only)}
    POST /api/grades   {rater, sketch, grade, request_id, ms?}
                                         store a grade (ms: from showing the sketch to the
                                         answer); {stored, graded, total, done, next, ...}
    POST /api/answers  {rater, question, answer}
                                         answer a question of the study's (`--questions`);
                                         the state. Sketches wait for the questions before,
                                         the completion code for those after (409 until)

A rater grades their own random order of the whole pool, or of their part of it under
per-rater subsets (`design`), gold items (the attention checks) among it and told apart by
nothing the page receives, front to back; they may step back and change a grade (not under
adaptive exposure), never skip ahead. A name identifies no one: every start makes a new rater,
and only the token (kept by the page, and in the resume link it shows once) continues a
session. With an access token every /api request must carry it in the `X-Grading-Token` header
or the cookie the page's link sets (the page takes it from the link's `?token=`). Errors are
JSON ``{"error": message}`` with a 4xx status, and leave the database unchanged.

Under TLS (`load_tls`) each connection's handshake runs in its own thread within the request
deadline. The HTTP layer answers only GET and POST, only for the host names the server was
started for (`host_allow_list`: against DNS rebinding, where a web page points its own name at
this machine), and gives each connection a thread only up to a cap, with deadlines
(`GradingServer`).
"""

from __future__ import annotations

import collections
import hmac
import io
import ipaddress
import json
import re
import select
import socket
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from ...errors import QuickDrawError, check_count
from .completion import (  # noqa: F401 - the command and the tests import them from here too
    check_completion_code,
    check_completion_url,
    completion_link,
)
from .crowd import (
    MTURK_FRAMES,
    MTURK_SUBMIT,
    Consent,
    Enrolment,
    check_answer,
    check_enrolment,
    mturk_submit_url,
)
from .design import Design, StudyFull
from .exposure import Exposure, exposures
from .render import sketch_svg
from .store import (
    GRADES,
    REAL_SOURCE,
    AlreadyEnrolled,
    GradeConflict,
    GradeStore,
    Rater,
    Sketch,
    StoreUnwritable,
    clean_name,
    clean_participant,
)

MAX_BODY = 4096  # bytes; a grade is ~150
MAX_DEPTH = 8  # JSON nesting of a body; the API's bodies are flat objects
METHODS = ("GET", "POST")  # every other method is answered 405
WILDCARDS = ("0.0.0.0", "::", "")  # addresses that listen on every interface
HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")
STATIC = {  # URL path -> (file in eval/grading/static, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token: no white space
REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
COOKIE_SAFE = re.compile(r"[A-Za-z0-9_.~-]{1,200}")
MAX_MS = 86_400_000  # a longer time (a day) is stored as this
TOKEN_HEADER = "X-Grading-Token"
TOKEN_COOKIE = "grading_token"  # the access token, kept by the browser after the link's ?token=
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # MTurk shows an ExternalQuestion in a frame of its own site, and the finished assignment
    # is a form posted to it; no other site may frame the page or receive a form
    "Content-Security-Policy": "default-src 'self'; frame-ancestors "
    + " ".join(MTURK_FRAMES)
    + "; form-action 'self' "
    + " ".join(MTURK_SUBMIT),
    "Cache-Control": "no-store",
}
HSTS = "max-age=86400"  # under TLS: browsers keep to https for a day
MAX_CONNECTIONS = 128  # open connections (one thread each) unless --max-connections says


class HTTPError(Exception):
    def __init__(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Response:
    status: HTTPStatus
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # beyond the usual ones (e.g. Allow)

    @classmethod
    def json(cls, obj, status: HTTPStatus = HTTPStatus.OK, headers=None) -> Response:
        return cls(status, "application/json", json.dumps(obj).encode(), dict(headers or {}))


def load_static() -> dict[str, tuple[bytes, str]]:
    """The page's files, read once from the package: URL path -> (bytes, content type)."""
    folder = resources.files(__package__) / "static"
    return {url: ((folder / name).read_bytes(), ctype) for url, (name, ctype) in STATIC.items()}


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def canonical_host(name: str) -> str | None:
    """`name` (a host name or address) as the Host header check compares it: lower case, no
    final dot, an IPv6 address compressed and in brackets; None when it is neither."""
    name = name.lower().removesuffix(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
        if "." in name and ":" not in name:
            return None  # [1.2.3.4] is no IPv6 address
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name if len(name) <= 253 and HOST_NAME.fullmatch(name) else None
    return f"[{address}]" if address.version == 6 else str(address)


def host_allow_list(bind_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The host names a server bound to `bind_host` answers to (any port): the bound address,
    localhost, 127.0.0.1 and [::1] where they reach it (a loopback or wildcard address), this
    machine's names on a wildcard address (`session_url` prints one), and `extra` (the
    --allowed-host names: a DNS alias, a reverse proxy's name)."""
    names = {"localhost", canonical_host(bind_host)}  # None for "" (every interface)
    if bind_host in WILDCARDS or is_loopback(bind_host):
        names |= {"127.0.0.1", "[::1]"}
    if bind_host in WILDCARDS:
        names |= {canonical_host(socket.getfqdn()), canonical_host(socket.gethostname())}
    names.discard(None)
    for name in extra:
        canonical = canonical_host(name) if name.isascii() else None
        if canonical is None:
            raise QuickDrawError(
                f"--allowed-host {name!r} is not a host name or address: give a name such as "
                "grading.example.org (ASCII, no scheme, port or path)"
            )
        names.add(canonical)
    return frozenset(names)


def host_of(header: str) -> str | None:
    """The canonical name of a Host header's value (``name``, ``name:port``, ``[v6]:port``)."""
    name, port = header.strip(), ""
    if name.startswith("["):
        close = name.find("]") + 1
        name, port = name[:close], name[close:]
        if port and not port.startswith(":"):
            return None
        port = port[1:]
    else:
        name, _, port = name.partition(":")
    if port and not (port.isascii() and port.isdigit() and len(port) <= 5):
        return None
    return canonical_host(name) if name else None


def check_host(values: Sequence[str], allowed: frozenset[str]) -> None:
    """Refuse a request unless its one Host header names one of `allowed` (any port). A page
    that rebinds its own name to this machine's address still sends its own name."""
    hosts = ", ".join(sorted(allowed))
    if len(values) != 1:
        raise HTTPError(
            HTTPStatus.BAD_REQUEST,
            f"send one Host header naming this server ({hosts}), not {len(values)}",
        )
    if host_of(values[0]) not in allowed:
        raise HTTPError(
            HTTPStatus.MISDIRECTED_REQUEST,
            f"this server answers only to the hosts {hosts}, not {values[0][:100]!r}: open the "
            "link it printed, or start it with --allowed-host NAME",
        )


def check_header_lines(headers) -> None:
    """Refuse header lines RFC 9112 forbids (section 5.1: white space between a field's name
    and its colon; section 5.2: a value folded onto the next line) with a 400. Python's parser
    takes the first such line, and every line after it, for the body: a second
    "Content-Length : 5" or "Transfer-Encoding : chunked" would be read by a proxy in front of
    this server and not by it (request smuggling)."""
    folded = any("\r" in value or "\n" in value for value in headers.values())
    if headers.defects or folded or not all(FIELD_NAME.fullmatch(k) for k in headers.keys()):
        raise HTTPError(
            HTTPStatus.BAD_REQUEST,
            "malformed header line: no white space before a header's colon, and no value "
            "folded onto a second line (RFC 9112)",
        )


def origin_form(target: str, allowed: frozenset[str]) -> str:
    """The path (and query) of a request target. The absolute form (``http://host/path``, RFC
    9112 section 3.2.2) names the host the request is for, which a server must take over the
    Host header: it is checked against the same `allowed` hosts. Any other form is refused."""
    if target.startswith("/"):
        return target
    parts = urlsplit(target)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"request target {target[:100]!r} is not a path")
    if "@" in parts.netloc or host_of(parts.netloc) not in allowed:
        hosts = ", ".join(sorted(allowed))
        raise HTTPError(
            HTTPStatus.MISDIRECTED_REQUEST,
            f"this server answers only to the hosts {hosts}, not {parts.netloc[:100]!r}",
        )
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON `text` nests arrays and objects more than `limit` deep (checked before
    parsing: the parser recurses, and 2,000 brackets fit in a body)."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def check_exposure(host: str, token: str | None, tls: bool = False) -> str | None:
    """Refuse to listen beyond this machine with neither TLS nor an access token; return a
    warning to print when only the token guards it (it crosses the network in clear text)."""
    if is_loopback(host):
        return None
    if token is None and not tls:
        raise QuickDrawError(
            f"--host {host} opens the session beyond this machine: give --certfile/--keyfile "
            "(HTTPS) or --token TOKEN (or --token auto) so only people with the link can grade"
        )
    if not tls:
        return (
            f"warning: --host {host} without TLS: the access token and every grade cross the "
            "network in clear text; give --certfile and --keyfile, or a TLS proxy in front"
        )
    return None


def load_tls(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or later) from a PEM certificate chain and its key
    (`keyfile` None: the key is in `certfile`); raises QuickDrawError in one line for a file
    that cannot be read, is not PEM, is a key protected by a password, or does not match."""
    for flag, path in (("--certfile", certfile), ("--keyfile", keyfile)):
        if path is None:
            continue
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as e:
            raise QuickDrawError(f"cannot read {flag} {path}: {e.strerror or e}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2

    def no_password() -> str:
        raise QuickDrawError(
            f"--keyfile {keyfile or certfile} is protected by a password: give an unencrypted "
            "key (this server cannot ask for one)"
        )

    try:
        context.load_cert_chain(certfile, keyfile, password=no_password)
    except ssl.SSLError as e:
        reason = getattr(e, "reason", None) or str(e)
        if reason == "KEY_VALUES_MISMATCH":
            raise QuickDrawError(
                f"--keyfile {keyfile} is not the key of --certfile {certfile} (they do not "
                "match): give the key the certificate was made with"
            ) from None
        raise QuickDrawError(
            f"--certfile {certfile}"
            + (f" / --keyfile {keyfile}" if keyfile else "")
            + f" cannot be used ({reason}): give a PEM certificate and its PEM private key"
        ) from None
    return context


def shown_categories(sketches: dict[str, Sketch]) -> dict[str, str | None]:
    """Sketch id -> the category the page names with it ("a drawing of a cat"), so that it
    tells real and generated sketches apart by nothing: each sketch's own category, an
    attention check's the pool's commonest, when the real sketches claim each category
    exactly as often as the generated ones (the balanced pool of `sources.build_pool`);
    None for every sketch otherwise (real cakes against a model of sheep, a "mixed" model)."""
    real = Counter(
        s.category for s in sketches.values() if s.gold is None and s.source == REAL_SOURCE
    )
    generated = Counter(
        s.category for s in sketches.values() if s.gold is None and s.source != REAL_SOURCE
    )
    graded = list((real + generated).elements())
    if not graded or real != generated or any(c in ("", "mixed") for c in graded):
        return dict.fromkeys(sketches)
    known = set(graded)
    commonest = Counter(graded).most_common(1)[0][0]
    return {sid: s.category if s.category in known else commonest for sid, s in sketches.items()}


class GradingApp:
    """The request logic, independent of the socket layer (tests call `handle` directly)."""

    def __init__(self, store: GradeStore, token: str | None = None, https: bool = False):
        if not store.has_session():
            raise QuickDrawError(f"{store.path} holds no grading session yet")
        self.store = store
        self.token = token
        self.https = https  # served over TLS: the access token's cookie is Secure
        self._told = ""  # the last store failure printed (printed once, not per request)
        self.static = load_static()
        sketches = store.sketches()
        self.svgs = {sid: sketch_svg(s) for sid, s in sketches.items()}
        self.category_of = shown_categories(sketches)
        # for each sketch, the source a staircase counts it under (None: a gold item)
        self.source_of = {sid: None if s.gold else s.source for sid, s in sketches.items()}
        spec = store.spec()
        self.models = [m for m in spec.get("labels", []) if m != REAL_SOURCE]
        self.design = Design.from_spec(spec)
        self.exposure = Exposure.from_spec(spec)
        stored = store.meta("consent")
        self.consent = Consent(**json.loads(stored)) if stored else None
        self.questions = json.loads(store.meta("questions") or "{}")
        self.question_by_id = {
            q["id"]: q for phase in ("before", "after") for q in self.questions.get(phase, [])
        }
        store.set_completion()  # a file from before completion codes gets one now
        code, url = store.completion()
        assert code is not None
        self.completion = {"code": code, "url": completion_link(url, code) if url else None}
        pool = sum(s.gold is None for s in sketches.values())
        self.session = {
            "exposure_ms": self.exposure.ms,
            "exposure": self.exposure.to_spec(),
            "examples": {
                kind: [sketch_svg(s) for s in found] for kind, found in store.examples().items()
            },
            "checks": bool(store.gold()),  # the instructions say so; never which ones
            # what each rater grades: the whole pool, or their part of it
            "total": self.design.per_rater or len(sketches),
            "pool": pool,
            # what the sketches are meant to be, most common first (none: not said anywhere)
            "categories": [c for c, _ in Counter(self.category_of.values()).most_common() if c],
            "consent": (
                {"html": self.consent.html(), "sha256": self.consent.sha256}
                if self.consent
                else None
            ),
            "questions": {p: self.questions.get(p, []) for p in ("before", "after")},
            "back": self.exposure.mode != "adaptive",  # a staircase's answers are final
        }

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None
    ) -> Response:
        try:
            return self._route(method, target, headers, body)
        except HTTPError as e:
            return Response.json({"error": e.message}, e.status)
        except StoreUnwritable as e:  # the disk filled up, or went read-only, while serving
            if str(e) != self._told:
                self._told = str(e)
                print(f"grading server: {e}", file=sys.stderr, flush=True)
            status = HTTPStatus.INSUFFICIENT_STORAGE if e.full else HTTPStatus.SERVICE_UNAVAILABLE
            why = "the disk is full" if e.full else "the database cannot be written"
            return Response.json(
                {"error": f"{why}: this was not saved; the organiser has been told, try again "
                 "later"},
                status,
                {"Retry-After": "60"},
            )  # fmt: skip

    def _route(self, method, target, headers, body) -> Response:
        url = urlsplit(target)
        path = url.path
        if path in self.static and not path.startswith("/api/"):
            if method != "GET":
                raise HTTPError(
                    HTTPStatus.METHOD_NOT_ALLOWED, f"{method} {path}: use GET", {"Allow": "GET"}
                )
            data, ctype = self.static[path]
            return Response(HTTPStatus.OK, ctype, data, self._token_cookie(path, url.query))
        routes = {
            ("GET", "/api/session"): self._session,
            ("POST", "/api/raters"): self._start_rater,
            ("GET", "/api/state"): self._state,
            ("GET", "/api/item"): self._item,
            ("POST", "/api/grades"): self._grade,
            ("POST", "/api/answers"): self._answer,
        }
        allowed = [m for m, p in routes if p == path]
        if not allowed:
            raise HTTPError(HTTPStatus.NOT_FOUND, f"no such page: {path}")
        if (method, path) not in routes:
            raise HTTPError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{method} not allowed on {path}: use {allowed[0]}",
                {"Allow": ", ".join(allowed)},
            )
        self._check_token(headers)
        if method == "GET":
            return routes[method, path](self._query(url.query))
        return routes[method, path](self._json_body(headers, body))

    # --- validation ---------------------------------------------------------------------------

    def _token_cookie(self, path: str, query: str) -> dict[str, str]:
        """The page opened from its link (``/?token=T``, T right) sets the access token as a
        cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's request
        carries it), and Secure under TLS (never sent in clear text)."""
        if self.token is None or path != "/" or not query:
            return {}
        try:
            given = parse_qs(query, max_num_fields=20).get("token", [""])[0]
        except ValueError:
            return {}
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return {}
        if not COOKIE_SAFE.fullmatch(self.token):
            return {}  # a --token a cookie cannot hold: the page's header carries it alone
        cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000"
        return {"Set-Cookie": cookie + ("; Secure" if self.https else "")}

    def _check_token(self, headers: dict[str, str]) -> None:
        if self.token is None:
            return
        given = headers.get(TOKEN_HEADER.lower(), "")
        if not given and "cookie" in headers:
            try:
                jar = SimpleCookie(headers["cookie"])
            except CookieError:
                jar = SimpleCookie()
            given = jar[TOKEN_COOKIE].value if TOKEN_COOKIE in jar else ""
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise HTTPError(
                HTTPStatus.FORBIDDEN, "missing or wrong access token: open the link you were sent"
            )

    @staticmethod
    def _query(query: str) -> dict[str, str]:
        try:
            parsed = parse_qs(query, strict_parsing=bool(query), max_num_fields=10)
        except ValueError as e:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"malformed query string: {e}") from e
        if any(len(v) != 1 for v in parsed.values()):
            raise HTTPError(HTTPStatus.BAD_REQUEST, "each query parameter may appear once")
        return {k: v[0] for k, v in parsed.items()}

    @staticmethod
    def _json_body(headers: dict[str, str], body: bytes | None) -> dict:
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise HTTPError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as Content-Type: application/json"
            )
        if body is None or len(body) > MAX_BODY:
            raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
        try:
            text = body.decode("utf-8")
            if too_deep(text):
                raise HTTPError(HTTPStatus.BAD_REQUEST, f"body is nested over {MAX_DEPTH} deep")
            obj = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {e}") from e
        if not isinstance(obj, dict):
            raise HTTPError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        return obj

    @staticmethod
    def _fields(obj: dict, names: tuple[str, ...], optional: tuple[str, ...] = ()) -> list[str]:
        """The string fields `names` of a body, which may also hold `optional` ones (checked by
        the caller) and nothing else."""
        unknown = sorted(set(obj) - set(names) - set(optional))
        missing = [n for n in names if n not in obj]
        if unknown or missing:
            raise HTTPError(
                HTTPStatus.BAD_REQUEST,
                f"expected fields {', '.join(names)}"
                + (f" (and optionally {', '.join(optional)})" if optional else "")
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(unknown)}" if unknown else ""),
            )
        bad = [n for n in names if not isinstance(obj[n], str)]
        if bad:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"fields must be strings: {', '.join(bad)}")
        return [obj[n] for n in names]

    @staticmethod
    def _ms(obj: dict) -> int | None:
        """The optional `ms` of a grade: a whole number of milliseconds, at most MAX_MS kept."""
        if "ms" not in obj:
            return None
        ms = obj["ms"]
        if isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
            raise HTTPError(
                HTTPStatus.BAD_REQUEST, "ms must be a whole number of milliseconds, 0 or more"
            )
        return min(ms, MAX_MS)

    def _rater(self, token: str) -> Rater:
        rater = self.store.rater(token) if len(token) <= 64 else None
        if rater is None:
            raise HTTPError(
                HTTPStatus.NOT_FOUND, "unknown rater: open your resume link, or start again"
            )
        return rater

    # --- handlers ----------------------------------------------------------------------------

    def _session(self, query: dict) -> Response:
        if query:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "/api/session takes no query")
        return Response.json(self.session)

    def _start_rater(self, obj: dict) -> Response:
        crowd = ("platform", "worker_id", "assignment_id", "hit_id", "turk_submit_to",
                 "prolific_pid", "study_id", "session_id")  # fmt: skip
        (name,) = self._fields(obj, ("name",), optional=("participant", "consent", *crowd))
        participant = obj.get("participant")
        enrolment = None
        try:
            if self.consent is not None and obj.get("consent") is not True:
                raise QuickDrawError(
                    "agree to the consent form first (send consent: true); nothing was stored"
                )
            if "consent" in obj and self.consent is None:
                raise QuickDrawError("this study has no consent form: send no consent")
            if "platform" in obj:
                if "participant" in obj:
                    raise QuickDrawError("send a platform's ids or a participant id, not both")
                enrolment = check_enrolment(
                    obj["platform"], {k: obj[k] for k in crowd[1:] if k in obj}
                )
                participant = enrolment.worker
                name = name.strip() or participant
            elif any(k in obj for k in crowd):
                raise QuickDrawError("platform ids need a platform (mturk or prolific)")
            elif "participant" in obj:
                if not isinstance(participant, str):
                    raise QuickDrawError("participant must be a string")
                participant = clean_participant(participant)
                enrolment = Enrolment("link", participant)
                if not name.strip():  # a crowd link: the participant id is the name shown
                    name = participant
            name = clean_name(name)
        except QuickDrawError as e:
            raise HTTPError(HTTPStatus.BAD_REQUEST, str(e)) from e
        consent = self.consent.sha256 if self.consent is not None else None
        try:
            rater = self.store.new_rater(name, participant, enrolment, consent)
        except AlreadyEnrolled as e:
            raise HTTPError(HTTPStatus.CONFLICT, str(e)) from e
        except StudyFull as e:
            raise HTTPError(HTTPStatus.GONE, str(e)) from e
        # the only answer that holds the token: the page keeps it and shows it as a resume link
        return Response.json({"rater": rater.token, **self._state_of(rater)}, HTTPStatus.CREATED)

    def _pending(self, rater: Rater, phase: str) -> list[str]:
        """The required questions of `phase` that `rater` has not answered."""
        asked = [q["id"] for q in self.questions.get(phase, []) if q["required"]]
        if not asked:
            return []
        answered = self.store.answered(rater)
        return [q for q in asked if q not in answered]

    def _state_of(self, rater: Rater) -> dict:
        graded = self.store.graded_count(rater)
        total = len(rater.order)
        state: dict[str, object] = {
            "name": rater.name,
            "participant": rater.participant,
            "total": total,
            "graded": graded,
            "done": graded >= total,
        }
        if self.questions.get("before"):  # required questions not yet answered
            state["before"] = self._pending(rater, "before")
        if state["done"] and self.questions.get("after"):
            state["after"] = self._pending(rater, "after")
        if state["done"] and not state.get("after"):  # the code only once all is done
            completion = dict(self.completion)
            enrolment = self.store.enrolment(rater.token)
            if enrolment is not None and enrolment.platform == "mturk":
                assert enrolment.submit_to is not None
                # MTurk: the page posts the assignment back to MTurk, with the code
                completion["mturk"] = {
                    "submit": mturk_submit_url(enrolment.submit_to),
                    "assignment_id": enrolment.assignment,
                }
                completion["url"] = None
            state["completion"] = completion
        return state

    def _exposures(self, rater: Rater) -> list[int | None]:
        """The exposure of each item of `rater`'s order up to their next one: the fixed one,
        none, or under HYPE-time their staircases' (`exposure.exposures`)."""
        if self.exposure.mode != "adaptive":
            return [self.exposure.ms] * len(rater.order)
        grades = self.store.grades_of(rater)
        answers = [grades[sid] for sid in rater.order if sid in grades]
        sources = [self.source_of[sid] for sid in rater.order]
        return exposures(self.exposure, sources, self.models, answers)

    def _item_at(self, rater: Rater, index: int) -> dict:
        sid = rater.order[index]
        grade = self.store.latest_grade(rater, sid)
        item = {
            "index": index,
            "id": sid,
            "svg": self.svgs[sid],
            "grade": grade,
            "category": self.category_of[sid],
        }
        if self.exposure.mode == "adaptive":  # this sketch's, from the rater's staircases
            item["exposure_ms"] = self._exposures(rater)[index]
        return item

    def _state(self, query: dict) -> Response:
        if set(query) != {"rater"}:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "expected query ?rater=TOKEN")
        return Response.json(self._state_of(self._rater(query["rater"])))

    def _check_before(self, rater: Rater) -> None:
        pending = self._pending(rater, "before")
        if pending:
            raise HTTPError(
                HTTPStatus.CONFLICT, f"answer the questions first: {', '.join(pending)}"
            )

    def _item(self, query: dict) -> Response:
        if set(query) != {"rater", "index"}:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "expected query ?rater=TOKEN&index=N")
        rater = self._rater(query["rater"])
        text = query["index"]
        if not (text.isascii() and text.isdigit() and len(text) <= 9):
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"index must be a whole number, got {text!r}")
        index = int(text)
        graded = self.store.graded_count(rater)
        if index >= len(rater.order) or index > graded:
            raise HTTPError(
                HTTPStatus.NOT_FOUND,
                f"no sketch {index} for you yet: you have graded {graded} of {len(rater.order)}",
            )
        self._check_before(rater)
        return Response.json(self._item_at(rater, index))

    def _grade(self, obj: dict) -> Response:
        token, sketch, grade, request_id = self._fields(
            obj, ("rater", "sketch", "grade", "request_id"), optional=("ms",)
        )
        ms = self._ms(obj)
        if grade not in GRADES:
            raise HTTPError(
                HTTPStatus.BAD_REQUEST, f"unknown grade {grade!r}; valid: {', '.join(GRADES)}"
            )
        if not REQUEST_ID.fullmatch(request_id):
            raise HTTPError(
                HTTPStatus.BAD_REQUEST, "request_id must be 8-64 characters of A-Z a-z 0-9 _ -"
            )
        rater = self._rater(token)
        position = self.store.position(rater, sketch) if len(sketch) <= 64 else None
        if position is None:
            raise HTTPError(HTTPStatus.NOT_FOUND, "unknown sketch")
        graded = self.store.graded_count(rater)
        if position > graded:
            raise HTTPError(
                HTTPStatus.CONFLICT, f"grade the sketches in order: you are at {graded + 1}"
            )
        self._check_before(rater)
        if position < graded and self.exposure.mode == "adaptive":
            previous = self.store.latest_grade(rater, sketch)
            if previous != grade:  # a retry of the same grade is answered as before
                raise HTTPError(
                    HTTPStatus.CONFLICT,
                    "under adaptive exposure a grade is final: the next sketch's exposure "
                    "followed from it",
                )
        shown = self._exposures(rater)[position]
        try:
            stored = self.store.add_grade(request_id, rater, sketch, grade, ms, shown)
        except GradeConflict as e:
            raise HTTPError(HTTPStatus.CONFLICT, str(e)) from e
        state = self._state_of(rater)
        following = position + 1
        nxt = self._item_at(rater, following) if following < len(rater.order) else None
        status = HTTPStatus.CREATED if stored else HTTPStatus.OK
        return Response.json({"stored": stored, **state, "next": nxt}, status)

    def _answer(self, obj: dict) -> Response:
        token, question = self._fields(obj, ("rater", "question"), optional=("answer",))
        rater = self._rater(token)
        asked = self.question_by_id.get(question) if len(question) <= 64 else None
        if asked is None:
            raise HTTPError(HTTPStatus.NOT_FOUND, f"no question {question[:64]!r} in this study")
        if "answer" not in obj:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "expected fields rater, question, answer")
        after = any(q["id"] == question for q in self.questions.get("after", []))
        if after and self.store.graded_count(rater) < len(rater.order):
            raise HTTPError(HTTPStatus.CONFLICT, "this question comes after the last sketch")
        try:
            answer = check_answer(asked, obj["answer"])
        except QuickDrawError as e:
            raise HTTPError(HTTPStatus.BAD_REQUEST, str(e)) from e
        self.store.set_answer(rater, question, answer)
        return Response.json(self._state_of(rater))


class _Input(io.RawIOBase):
    """A connection's input under a deadline the handler moves: each read waits only for the
    time left, so a client that sends its request byte by byte cannot hold the thread past the
    deadline (a per-read timeout starts again at every byte)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.deadline = time.monotonic()  # set for each request by the handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the client took too long")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


def make_handler(app: GradingApp, quiet: bool = True) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server: GradingServer
        server_version = "quickdraw-grade"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.rfile.close()  # read through the deadline instead
            self.input = _Input(self.connection)
            self.rfile = io.BufferedReader(self.input)
            # a connection ends after max_requests answers or connection_timeout seconds, so
            # no client keeps a slot however busy it keeps it (static files count too)
            self.served = 0
            self.ends = time.monotonic() + self.server.connection_timeout

        def handle_one_request(self) -> None:
            # a request may take idle_timeout to begin, then request_timeout to arrive whole
            # (a connection past its time is closed by its next answer, never silently: a
            # request already on its way would be lost)
            self.input.deadline = time.monotonic() + self.server.idle_timeout
            try:
                begun = self.rfile.peek(1)
            except OSError:  # idle too long (TimeoutError), or the client went away
                begun = b""
            if not begun:
                self.close_connection = True
                return
            self.input.deadline = time.monotonic() + self.server.request_timeout
            super().handle_one_request()

        def parse_request(self) -> bool:
            """The request line and headers, then what every request must pass before its
            method runs: one Host header that names this server, GET or POST, at most one
            Content-Length."""
            if not super().parse_request():
                return False  # answered already (through send_error)
            try:
                check_header_lines(self.headers)
                check_host(self.headers.get_all("Host") or [], self.server.allowed_hosts)
                self.path = origin_form(self.path, self.server.allowed_hosts)
                if self.command not in METHODS:
                    raise HTTPError(
                        HTTPStatus.METHOD_NOT_ALLOWED,
                        f"{self.command} is not supported: use GET or POST",
                        {"Allow": ", ".join(METHODS)},
                    )
                if len(self.headers.get_all("Content-Length") or []) > 1:
                    raise HTTPError(HTTPStatus.BAD_REQUEST, "send one Content-Length header")
            except HTTPError as e:
                self._error(e.status, e.message, e.headers)
                return False
            return True

        def do_GET(self) -> None:
            length = self.headers.get("Content-Length", "0")
            if self.headers.get("Transfer-Encoding") or length != "0":
                # an unread body would be taken for the next request on this connection
                return self._error(HTTPStatus.BAD_REQUEST, "a GET request has no body")
            self._serve("GET", None)

        def do_POST(self) -> None:
            length = self.headers.get("Content-Length")
            if self.headers.get("Transfer-Encoding"):
                return self._error(HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not accepted")
            if length is None:
                return self._error(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length header")
            if not (length.isascii() and length.isdigit()):
                return self._error(HTTPStatus.BAD_REQUEST, "bad Content-Length")
            if int(length) > MAX_BODY:
                return self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY}")
            self._serve("POST", self.rfile.read(int(length)))

        def _serve(self, method: str, body: bytes | None) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                response = app.handle(method, self.path, headers, body)
            except Exception as e:  # a bug: answer 500 rather than drop the connection
                print(f"grading server error: {e!r}", file=sys.stderr)
                response = Response.json(
                    {"error": "internal error"}, HTTPStatus.INTERNAL_SERVER_ERROR
                )
            self._send(response)

        def send_error(self, code: int, message: str | None = None, explain=None) -> None:
            """The standard library's own refusals (a malformed request line, headers too
            long, ...) as JSON, like every other error."""
            status = HTTPStatus(code)
            self._error(status, message or status.phrase)

        def _error(self, status: HTTPStatus, message: str, headers=None) -> None:
            self.close_connection = True  # the unread body must not become the next request
            self._send(Response.json({"error": message}, status, headers))

        def _send(self, response: Response) -> None:
            self.connection.settimeout(self.server.request_timeout)  # reads left it short
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for k, v in {**SECURITY_HEADERS, **response.headers}.items():
                self.send_header(k, v)
            if self.server.tls is not None:
                self.send_header("Strict-Transport-Security", HSTS)
            self.served += 1
            last = self.served >= self.server.max_requests or time.monotonic() >= self.ends
            if response.status >= 400 or last:
                self.close_connection = True
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        def log_message(self, format: str, *args) -> None:
            if not quiet:
                super().log_message(format, *args)

    return Handler


class GradingServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` with a cap on its threads, deadlines, and a Host allow-list.

    Each open connection has a thread, but only while fewer than `max_connections` are open,
    and fewer than `max_per_address` from one client address (an IPv6 client's /64 network
    counts as one address): one more is answered 503 at once and closed, so neither a crowd of
    slow clients nor one client with many connections can take every thread. A connection
    may wait `idle_timeout` seconds for a request to begin; from the request's first byte, all
    of it (line, headers, body) must arrive within `request_timeout`; and it is closed after
    `max_requests` answers or `connection_timeout` seconds, whichever comes first (the answer
    then says ``Connection: close``; a browser opens a new one), so a client that keeps its
    connections busy holds them no longer. These are read for every connection, so a test
    can change them on a live server.
    """

    daemon_threads = True
    request_queue_size = 128
    max_connections = MAX_CONNECTIONS  # open connections (one thread each); a browser keeps six
    max_per_address = 32  # open connections from one client address (a lab behind a NAT: more)
    idle_timeout = 5.0  # seconds a connection may wait for its next request to begin
    request_timeout = 5.0  # seconds from a request's first byte to its last, and to answer
    max_requests = 100  # answers on one connection
    connection_timeout = 60.0  # seconds one connection may stay open

    def __init__(
        self,
        address,
        handler,
        allowed_hosts: frozenset[str] = frozenset(),
        tls: ssl.SSLContext | None = None,
    ):
        self.allowed_hosts = allowed_hosts  # see host_allow_list; empty answers no one
        self.tls = tls  # HTTPS: each connection's handshake runs in its own thread
        self._open: dict[socket.socket, str] = {}  # open connection -> its client address
        self._wrapped: dict[socket.socket, ssl.SSLSocket] = {}  # ... -> its TLS socket
        self._per_address: collections.Counter[str] = collections.Counter()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        address = client_key(client_address[0])
        with self._open_lock:
            if len(self._open) >= self.max_connections:
                busy = "the server is busy: try again in a moment"
            elif self._per_address[address] >= self.max_per_address:
                busy = "too many connections from your address: try again in a moment"
            else:
                busy = None
                self._open[request] = address
                self._per_address[address] += 1
        if busy:
            if self.tls is None:
                self._turn_away(request, busy)
            else:  # an answer needs a handshake, which the accepting thread must not wait for
                self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)  # starts its thread
        except BaseException:
            self._forget(request)
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def finish_request(self, request, client_address) -> None:
        """Serve one connection; under TLS, its handshake first, within `request_timeout` (a
        client that sends its hello byte by byte is cut off like one that sends its headers
        so)."""
        if self.tls is None:
            return super().finish_request(request, client_address)
        secure = self._handshake(request)
        if secure is None:
            return
        try:
            super().finish_request(secure, client_address)
        finally:
            with self._open_lock:
                self._wrapped.pop(request, None)
            secure.close()

    def _handshake(self, request: socket.socket) -> ssl.SSLSocket | None:
        assert self.tls is not None
        deadline = time.monotonic() + self.request_timeout
        try:
            secure = self.tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        except OSError:
            return None
        with self._open_lock:
            self._wrapped[request] = secure
        secure.setblocking(False)
        try:
            while True:
                left = deadline - time.monotonic()
                try:
                    secure.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    ready = select.select([secure], [], [], max(left, 0))[0]
                except ssl.SSLWantWriteError:
                    ready = select.select([], [secure], [], max(left, 0))[1]
                if not ready:
                    raise TimeoutError("the TLS handshake took too long")
        except (OSError, ValueError):  # no TLS (plain HTTP), a bad hello, too slow, gone
            with self._open_lock:
                self._wrapped.pop(request, None)
            secure.close()
            return None
        secure.setblocking(True)
        return secure

    def _forget(self, request) -> None:
        with self._open_lock:
            address = self._open.pop(request, None)
            if address is not None:
                self._per_address[address] -= 1
                if not self._per_address[address]:
                    del self._per_address[address]

    def _turn_away(self, request, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        headers = {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "Retry-After": "1",
            "Connection": "close",
            **SECURITY_HEADERS,
        }
        head = "HTTP/1.1 503 Service Unavailable\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        try:
            request.setblocking(False)  # the accepting thread never waits on a client
            request.send(head.encode() + body)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):  # a client that left or stalled is no error
            print(f"grading server error: {error!r}", file=sys.stderr)

    def server_close(self) -> None:
        """Stop listening and end the open connections, whose threads it then waits for."""
        with self._open_lock:
            for conn in [*self._open, *self._wrapped.values()]:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except (OSError, ValueError):
                    pass
        super().server_close()


def client_key(address: str) -> str:
    """What counts as one client address: an IPv4 address, or an IPv6 address's /64 network
    (one machine's, or one home's, and its privacy addresses all share it)."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


def make_server(
    app: GradingApp,
    host: str = "127.0.0.1",
    port: int = 8765,
    quiet: bool = True,
    allowed_hosts: Iterable[str] = (),
    max_per_address: int | None = None,
    tls: ssl.SSLContext | None = None,
    max_connections: int | None = None,
) -> GradingServer:
    """A bound (not yet serving) server; refuses a non-loopback host with neither TLS nor an
    access token. It answers to the host names of `host_allow_list(host, allowed_hosts)`, and
    no others; `max_connections` open connections (default MAX_CONNECTIONS), `max_per_address`
    of them from one client address (default: the class's); HTTPS with the `tls` context
    (`load_tls`)."""
    check_exposure(host, app.token, tls is not None)
    names = host_allow_list(host, allowed_hosts)
    server_class = GradingServer
    if ":" in host:
        server_class = type("GradingServer6", (GradingServer,), {"address_family": socket.AF_INET6})
    if max_connections is not None:
        check_count(max_connections, "--max-connections", 2, 4096)
    most = max_connections or GradingServer.max_connections
    if max_per_address is not None:
        check_count(max_per_address, "--max-per-address", 1, most - 1)
    try:
        server = server_class((host, port), make_handler(app, quiet), names, tls)
    except OSError as e:
        raise QuickDrawError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    app.https = tls is not None
    server.max_connections = most
    if max_per_address is not None:
        server.max_per_address = max_per_address
    return server


def session_url(server: GradingServer, host: str, token: str | None) -> str:
    """The link to send: a wildcard address is shown as this machine's name."""
    port = server.server_address[1]
    if host in WILDCARDS:
        host = socket.getfqdn()
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if server.tls is not None else "http"
    return f"{scheme}://{shown}:{port}/" + (f"?token={token}" if token else "")
