"""The grading web app: a small JSON API and three static files, on the standard library's
`ThreadingHTTPServer`.

Routes (everything else is 404; no request path ever reaches the file system: the static files
are read once from the package into a whitelist dict):

    GET  /  /app.js  /style.css          the page (and its icon, /favicon.svg)
    POST /api/raters   {name}            start or resume the rater called `name`
    GET  /api/state?rater=T              {name, total, graded, done}
    GET  /api/item?rater=T&index=I       the I-th sketch of T's order: {index, id, svg, grade}
    POST /api/grades   {rater, sketch, grade, request_id}
                                         store a grade; {stored, graded, total, done, next}

A rater grades their own random order of the whole pool, front to back; they may step back and
change a grade, never skip ahead. With an access token every /api request must carry it in the
`X-Grading-Token` header (the page takes it from the link's `?token=`). Errors are JSON
``{"error": message}`` with a 4xx status, and leave the database unchanged.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import socket
import sys
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from ...errors import QuickDrawError
from .render import sketch_svg
from .store import GRADES, GradeConflict, GradeStore, Rater

MAX_BODY = 4096  # bytes; a grade is ~150
STATIC = {  # URL path -> (file in eval/grading/static, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
TOKEN_HEADER = "X-Grading-Token"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


class HTTPError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Response:
    status: HTTPStatus
    content_type: str
    body: bytes

    @classmethod
    def json(cls, obj, status: HTTPStatus = HTTPStatus.OK) -> Response:
        return cls(status, "application/json", json.dumps(obj).encode())


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


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without an access token."""
    if not is_loopback(host) and token is None:
        raise QuickDrawError(
            f"--host {host} opens the session beyond this machine: give --token TOKEN "
            "(or --token auto) so only people with the link can grade"
        )


class GradingApp:
    """The request logic, independent of the socket layer (tests call `handle` directly)."""

    def __init__(self, store: GradeStore, token: str | None = None):
        if not store.has_session():
            raise QuickDrawError(f"{store.path} holds no grading session yet")
        self.store = store
        self.token = token
        self.static = load_static()
        self.svgs = {sid: sketch_svg(s) for sid, s in store.sketches().items()}

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None
    ) -> Response:
        try:
            return self._route(method, target, headers, body)
        except HTTPError as e:
            return Response.json({"error": e.message}, e.status)

    def _route(self, method, target, headers, body) -> Response:
        url = urlsplit(target)
        path = url.path
        if path in self.static and not path.startswith("/api/"):
            if method != "GET":
                raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} {path}: use GET")
            data, ctype = self.static[path]
            return Response(HTTPStatus.OK, ctype, data)
        routes = {
            ("POST", "/api/raters"): self._start_rater,
            ("GET", "/api/state"): self._state,
            ("GET", "/api/item"): self._item,
            ("POST", "/api/grades"): self._grade,
        }
        if not any(p == path for _, p in routes):
            raise HTTPError(HTTPStatus.NOT_FOUND, f"no such page: {path}")
        if (method, path) not in routes:
            raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} not allowed on {path}")
        self._check_token(headers)
        if method == "GET":
            return routes[method, path](self._query(url.query))
        return routes[method, path](self._json_body(headers, body))

    # --- validation ---------------------------------------------------------------------------

    def _check_token(self, headers: dict[str, str]) -> None:
        if self.token is None:
            return
        given = headers.get(TOKEN_HEADER.lower(), "")
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
            obj = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {e}") from e
        if not isinstance(obj, dict):
            raise HTTPError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        return obj

    @staticmethod
    def _fields(obj: dict, names: tuple[str, ...]) -> list[str]:
        unknown = sorted(set(obj) - set(names))
        missing = [n for n in names if n not in obj]
        if unknown or missing:
            raise HTTPError(
                HTTPStatus.BAD_REQUEST,
                f"expected fields {', '.join(names)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(unknown)}" if unknown else ""),
            )
        bad = [n for n in names if not isinstance(obj[n], str)]
        if bad:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"fields must be strings: {', '.join(bad)}")
        return [obj[n] for n in names]

    def _rater(self, token: str) -> Rater:
        rater = self.store.rater(token) if len(token) <= 64 else None
        if rater is None:
            raise HTTPError(HTTPStatus.NOT_FOUND, "unknown rater: enter your name again")
        return rater

    # --- handlers ----------------------------------------------------------------------------

    def _start_rater(self, obj: dict) -> Response:
        (name,) = self._fields(obj, ("name",))
        name = " ".join(name.split())
        if not 1 <= len(name) <= 60 or not name.isprintable():
            raise HTTPError(HTTPStatus.BAD_REQUEST, "a name is 1 to 60 printable characters")
        rater, created = self.store.rater_for_name(name)
        state = self._state_of(rater)
        return Response.json(
            {"rater": rater.token, **state}, HTTPStatus.CREATED if created else HTTPStatus.OK
        )

    def _state_of(self, rater: Rater) -> dict:
        graded = self.store.graded_count(rater)
        total = len(rater.order)
        return {"name": rater.name, "total": total, "graded": graded, "done": graded >= total}

    def _item_at(self, rater: Rater, index: int) -> dict:
        sid = rater.order[index]
        grade = self.store.latest_grade(rater, sid)
        return {"index": index, "id": sid, "svg": self.svgs[sid], "grade": grade}

    def _state(self, query: dict) -> Response:
        if set(query) != {"rater"}:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "expected query ?rater=TOKEN")
        return Response.json(self._state_of(self._rater(query["rater"])))

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
        return Response.json(self._item_at(rater, index))

    def _grade(self, obj: dict) -> Response:
        token, sketch, grade, request_id = self._fields(
            obj, ("rater", "sketch", "grade", "request_id")
        )
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
        try:
            stored = self.store.add_grade(request_id, rater, sketch, grade)
        except GradeConflict as e:
            raise HTTPError(HTTPStatus.CONFLICT, str(e)) from e
        state = self._state_of(rater)
        following = position + 1
        nxt = self._item_at(rater, following) if following < len(rater.order) else None
        status = HTTPStatus.CREATED if stored else HTTPStatus.OK
        return Response.json({"stored": stored, **state, "next": nxt}, status)


def make_handler(app: GradingApp, quiet: bool = True) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "quickdraw-grade"
        sys_version = ""
        protocol_version = "HTTP/1.1"
        timeout = 30  # a stalled client frees its thread

        def do_GET(self) -> None:
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

        def _other(self) -> None:
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not supported")

        do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _other

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

        def _error(self, status: HTTPStatus, message: str) -> None:
            self.close_connection = True  # the unread body must not become the next request
            self._send(Response.json({"error": message}, status))

        def _send(self, response: Response) -> None:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for k, v in SECURITY_HEADERS.items():
                self.send_header(k, v)
            if response.status >= 400:
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def make_server(
    app: GradingApp, host: str = "127.0.0.1", port: int = 8765, quiet: bool = True
) -> ThreadingHTTPServer:
    """A bound (not yet serving) server; refuses a non-loopback host without an access token."""
    check_exposure(host, app.token)
    server_class = _Server
    if ":" in host:
        server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
    try:
        return server_class((host, port), make_handler(app, quiet))
    except OSError as e:
        raise QuickDrawError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e


def session_url(server: ThreadingHTTPServer, host: str, token: str | None) -> str:
    """The link to send: a wildcard address is shown as this machine's name."""
    port = server.server_address[1]
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
