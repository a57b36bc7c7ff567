"""Helpers shared by the grading tests: a small real session and a server subprocess."""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from quickdraw_tools.eval.grading.sources import build_session, parse_source
from quickdraw_tools.eval.grading.store import GradeStore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # the server launcher the scripts use too

from _server import output, start_server, stop  # noqa: E402

__all__ = [
    "Client",
    "make_session",
    "output",
    "self_signed",
    "session_sources",
    "start_server",
    "stop",
    "unverified",
]


def session_sources(shared: Path) -> tuple[str, list[str]]:
    """Real cakes and snowmen against two 'models' (real sheep and teapots stand in for them)."""
    training = shared / "training"
    real = str(training / "cake.ndjson")
    generated = [
        str(shared / "other" / "aaron_sheep.npz") + ":test",
        str(training / "teapot.ndjson"),
    ]
    return real, generated


def make_session(
    db: Path,
    shared: Path,
    per_source: int = 3,
    seed: int = 0,
    gold: int = 0,
    exposure_ms: int | None = None,
) -> GradeStore:
    """A session of real cakes against two stand-in models (`session_sources`), with three
    example sketches of each kind; with `gold`, that many known real cakes and scribbles."""
    real, generated = session_sources(shared)
    session = build_session(
        parse_source(real),
        [parse_source(g) for g in generated],
        per_source,
        seed,
        gold_real=parse_source(real) if gold else None,
        gold=gold or 1,
    )
    session.spec["exposure_ms"] = exposure_ms
    store = GradeStore(db)
    store.create_session(session.pool, session.spec, session.examples)
    return store


def self_signed(folder: Path, name: str = "server") -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 and localhost, and its key (PEM), made
    by the `openssl` command (scripts/setup.sh installs it)."""
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def unverified() -> ssl.SSLContext:
    """A client context that takes the test's self-signed certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Client:
    """A JSON client for the grading API over one keep-alive connection (HTTPS for an https://
    URL, taking a self-signed certificate; `source`: the client's own address)."""

    def __init__(self, url: str, token: str | None = None, source: str | None = None):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.token = token
        self.https = parts.scheme == "https"
        self.source = (source, 0) if source else None
        self.conn = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=30, source_address=self.source, context=unverified()
            )
        return http.client.HTTPConnection(
            self.host, self.port, timeout=30, source_address=self.source
        )

    def request(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None):
        hdrs = {"Content-Type": "application/json"} if body is not None or raw is not None else {}
        if self.token:
            hdrs["X-Grading-Token"] = self.token
        hdrs.update(headers or {})
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        try:
            self.conn.request(method, path, body=data, headers=hdrs)
            response = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            self.conn.close()  # the server closed an errored keep-alive connection; retry once
            self.conn = self._connect()
            self.conn.request(method, path, body=data, headers=hdrs)
            response = self.conn.getresponse()
        payload = response.read()
        if response.getheader("Connection", "").lower() == "close":
            self.conn.close()
        try:
            return response.status, json.loads(payload)
        except json.JSONDecodeError:
            return response.status, payload

    def close(self) -> None:
        self.conn.close()
