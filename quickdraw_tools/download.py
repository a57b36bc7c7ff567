"""Download the official Quick, Draw! files, or find them in a mirror or a local folder.

The official files live under https://storage.googleapis.com/quickdraw_dataset/:

=================  =====================================
format             path under the base URL
=================  =====================================
raw                ``full/raw/<category>.ndjson``
simplified         ``full/simplified/<category>.ndjson``
binary             ``full/binary/<category>.bin``
numpy_bitmap       ``full/numpy_bitmap/<category>.npy``
sketchrnn          ``sketchrnn/<category>.npz``
sketchrnn_full     ``sketchrnn/<category>.full.npz``
=================  =====================================

The cache keeps that same layout (``<cache>/full/raw/cat.ndjson``), so a cache is
itself a mirror. A download goes to ``<file>.part`` and is renamed into place only
once its size matches the server's length and its MD5 the server's (``x-goog-hash``
or ``Content-MD5``, when sent), so a file in the cache is always complete and whole.
An interrupted download resumes from its ``.part`` with an HTTP Range request whose
``If-Range`` carries the validator (ETag, else Last-Modified) of the first response,
kept in ``<file>.part.json``: if the file changed on the server meanwhile, the
download starts over instead of joining two versions. The base URL (``--base-url``
or ``$QUICKDRAW_BASE_URL``) may be another HTTP server or a plain local directory (a
path or a ``file://`` URL). HTTP uses only the standard library (urllib).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from email.message import Message
from pathlib import Path

from tqdm import tqdm

from .atomic import atomic_write
from .categories import check_category
from .errors import QuickDrawError, check_choice
from .formats import SUFFIXES

DEFAULT_BASE_URL = "https://storage.googleapis.com/quickdraw_dataset/"
BASE_URL_ENV = "QUICKDRAW_BASE_URL"
CACHE_ENV = "QUICKDRAW_CACHE"

# Path of each format's file under the base URL; {} is the category name.
FORMAT_PATHS = {
    "raw": "full/raw/{}.ndjson",
    "simplified": "full/simplified/{}.ndjson",
    "binary": "full/binary/{}.bin",
    "numpy_bitmap": "full/numpy_bitmap/{}.npy",
    "sketchrnn": "sketchrnn/{}.npz",
    "sketchrnn_full": "sketchrnn/{}.full.npz",
}
FORMATS = tuple(FORMAT_PATHS)

_CHUNK = 1 << 16
# HTTP statuses worth another try: the server or a proxy may recover.
_RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


def default_cache_dir() -> Path:
    """``$QUICKDRAW_CACHE``, else ``~/.cache/quickdraw``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "quickdraw"


def remote_path(category: str, fmt: str) -> str:
    """Unquoted path of (category, format) under a base URL: ``full/raw/<category>.ndjson``."""
    check_choice("format", fmt, FORMATS)
    return FORMAT_PATHS[fmt].format(check_category(category))


def resolve_base_url(base_url: str | os.PathLike | None = None) -> str:
    """`base_url`, else ``$QUICKDRAW_BASE_URL``, else the official bucket."""
    if base_url is None:
        base_url = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return os.fspath(base_url)


def local_mirror(base_url: str) -> Path | None:
    """The directory a ``file://`` URL or plain path names; None for an http(s) URL.

    Raises `QuickDrawError` for any other scheme or a directory that does not exist.
    """
    parsed = urllib.parse.urlparse(base_url)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        root = Path(urllib.request.url2pathname(parsed.path))
    elif parsed.scheme == "" or re.fullmatch(r"[a-zA-Z]", parsed.scheme):  # C:\ on Windows
        root = Path(base_url).expanduser()
    else:
        raise QuickDrawError(
            f"unsupported base URL {base_url!r}; use http://, https://, file:// or a directory"
        )
    if not root.is_dir():
        raise QuickDrawError(f"mirror directory {root} does not exist (from base URL {base_url!r})")
    return root


def url_for(category: str, fmt: str, base_url: str | None = None) -> str:
    """Full URL of (category, format) under `base_url`, the name URL-quoted (``%20``)."""
    base = resolve_base_url(base_url)
    if not base.endswith("/"):
        base += "/"
    return base + urllib.parse.quote(remote_path(category, fmt), safe="/")


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) from ``Content-Range: bytes 100-999/1000``; None if unknown."""
    m = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value or "")
    if not m:
        return None, None
    return int(m.group(1)), (int(m.group(2)) if m.group(2) != "*" else None)


def _byte_bar(total: int | None, desc: str, progress: bool, initial: int = 0) -> tqdm:
    """A progress bar in bytes (KiB, MiB, ...); it stays, at 100%, once the file is done."""
    return tqdm(
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        disable=not progress,
    )


class _Progress:
    """One file's bar, made at the first response and moved back whenever a response
    starts at another byte (0 when the download starts over)."""

    def __init__(self, desc: str, progress: bool) -> None:
        self.desc, self.progress = desc, progress
        self.bar: tqdm | None = None

    def at(self, total: int | None, offset: int) -> tqdm:
        """The bar, showing `offset` of `total` bytes."""
        if self.bar is None:
            self.bar = _byte_bar(total, self.desc, self.progress, initial=offset)
        else:
            self.bar.reset(total=total)
            self.bar.total = total  # reset(None) keeps the old total
            # `initial` too, so that the rate counts only the bytes fetched now
            self.bar.n = self.bar.last_print_n = self.bar.initial = offset
            self.bar.refresh()
        return self.bar

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Retry(Exception):
    """A failure worth another attempt: connection lost, short body, 5xx, changed file, bad hash."""


@dataclasses.dataclass(frozen=True)
class _Version:
    """What a response said about the version of the file it is serving."""

    etag: str | None  # a strong ETag (a weak one cannot be sent in If-Range)
    last_modified: str | None
    total: int | None  # the whole file's size in bytes
    md5: str | None  # base64 MD5 of the whole file (x-goog-hash), if the server gave one

    @property
    def validator(self) -> str | None:
        """What to send as If-Range: the ETag, else the Last-Modified date."""
        return self.etag or self.last_modified

    @classmethod
    def of(cls, headers: Message, total: int | None, whole_body: bool) -> _Version:
        etag = headers.get("ETag")
        md5 = None
        for value in headers.get_all("x-goog-hash") or ():  # "crc32c=..., md5=..." or one each
            for item in value.split(","):
                name, _, digest = item.strip().partition("=")
                if name.lower() == "md5":
                    md5 = _md5_or_none(digest)
        if md5 is None and whole_body:  # Content-MD5 is of the body, so of a 206's part only
            md5 = _md5_or_none(headers.get("Content-MD5") or "")
        return cls(
            etag=etag if etag and not etag.startswith("W/") else None,
            last_modified=headers.get("Last-Modified") or None,
            total=total,
            md5=md5,
        )

    def differs_from(self, other: _Version) -> str | None:
        """Why `other` (a resumed response) is not the same file as `self`; None if it may be."""
        for name in ("etag" if self.etag else "last_modified", "total", "md5"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None and mine != theirs:
                return f"{name.replace('_', '-')} was {mine}, is now {theirs}"
        return None


def _md5_or_none(value: str) -> str | None:
    """`value` if it is a base64 MD5 (16 bytes), else None."""
    try:
        ok = len(base64.b64decode(value.strip(), validate=True)) == 16
    except ValueError:
        ok = False
    return value.strip() if ok else None


def _sidecar(part: Path) -> Path:
    """``<file>.part.json``: the version of the file whose first bytes `part` holds."""
    return part.with_name(part.name + ".json")


def _read_sidecar(part: Path, url: str) -> _Version | None:
    """The version `part` was started from, if its sidecar says so for `url`; else None."""
    try:
        data = json.loads(_sidecar(part).read_text())
        if data.pop("url") != url:
            return None
        version = _Version(**data)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return version if version.validator else None


def _start_part(part: Path, url: str, version: _Version) -> None:
    """Empty `part` and record `version` beside it (only a validator makes it resumable)."""
    _discard(part)  # sidecar first: old bytes never sit beside a new version's sidecar
    if version.validator:
        with atomic_write(_sidecar(part), "w") as f:
            json.dump({"url": url, **dataclasses.asdict(version)}, f)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"")


def _discard(part: Path) -> None:
    """Remove `part` and its sidecar."""
    for path in (_sidecar(part), part):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _md5_of(path: Path) -> str:
    with open(path, "rb") as f:
        return base64.b64encode(hashlib.file_digest(f, "md5").digest()).decode()


def _fetch_once(url: str, part: Path, timeout: float, progress: _Progress, headers: dict) -> None:
    """One attempt: fetch `url` into `part`, resuming from its current size.

    A ``.part`` is resumed only when its sidecar holds the first response's validator,
    sent as If-Range, so a file changed on the server comes back whole (200) instead of
    being appended to the old one's start. Returns when `part` holds the whole file,
    checked against the server's size and, when it gives one, MD5; raises `_Retry` for
    transient failures and `QuickDrawError` otherwise.
    """
    known = _read_sidecar(part, url) if part.exists() else None
    offset = part.stat().st_size if known else 0
    request = urllib.request.Request(url, headers=dict(headers))
    if known and offset:
        request.add_header("Range", f"bytes={offset}-")
        request.add_header("If-Range", str(known.validator))
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:
            # The .part is not a prefix of what the server has now (or already too
            # long): start over rather than guess.
            _discard(part)
            raise _Retry(f"HTTP 416 for a resume from byte {offset}; restarting") from None
        if e.code in _RETRY_STATUSES:
            raise _Retry(f"HTTP {e.code} {e.reason}") from None
        hint = " (is the category available in this format on this server?)"
        raise QuickDrawError(
            f"download failed: HTTP {e.code} {e.reason} for {url}" + (hint if e.code == 404 else "")
        ) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise _Retry(f"cannot connect: {reason}") from None

    with response:
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                _discard(part)
                raise _Retry(f"server resumed at byte {start}, not {offset}; restarting")
            if total is None and length is not None:
                total = offset + length
        else:  # 200: the whole file (a fresh start, a changed file, or Range ignored)
            offset, total = 0, length
        if known and offset:
            now = _Version.of(response.headers, total, whole_body=False)
            changed = known.differs_from(now)
            if changed:  # a server that ignored If-Range but not Range
                _discard(part)
                raise _Retry(f"the file changed on the server since the .part began ({changed})")
            version = dataclasses.replace(known, md5=now.md5 or known.md5)
        else:
            version = _Version.of(response.headers, total, whole_body=response.status == 200)
            _start_part(part, url, version)
        got = offset
        bar = progress.at(version.total, offset)
        with open(part, "ab") as out:
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            except (OSError, urllib.error.URLError) as e:
                raise _Retry(f"connection lost after {got} bytes: {e}") from None
            except Exception as e:  # http.client.IncompleteRead and friends
                raise _Retry(f"connection lost after {got} bytes: {type(e).__name__}") from None
    if version.total is not None and got != version.total:
        if got > version.total:
            _discard(part)
        raise _Retry(f"size check failed: received {got} of {version.total} bytes")
    if version.md5 is not None:
        md5 = _md5_of(part)  # of the whole .part: a resumed response's hash is the file's
        if md5 != version.md5:
            _discard(part)
            raise _Retry(f"MD5 hash did not match the server's (got {md5}, expected {version.md5})")


def download_url(
    url: str,
    dest: str | Path,
    *,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Download `url` to `dest` via ``dest.part``: resume, size and MD5 checks, retries,
    atomic rename.

    Retries transient failures (lost connection, short body, 5xx, a hash that does not
    match) up to `retries` times, waiting ``backoff * 2**attempt`` seconds, each retry
    resuming from the bytes already in ``.part`` if the file on the server has not
    changed. On final failure a ``.part`` stays, with its ``.part.json`` sidecar, only
    when a later call can resume it, and `dest` is never created; a 4xx other than a
    resumable 416 fails at once and leaves nothing behind.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    headers = {"User-Agent": "quickdraw-tools"}
    bar = _Progress(dest.name, progress)
    try:
        for attempt in range(retries + 1):
            try:
                _fetch_once(url, part, timeout, bar, headers)
                break
            except _Retry as e:
                if attempt == retries:
                    have = part.stat().st_size if part.exists() else 0
                    if not (have and _read_sidecar(part, url)):
                        _discard(part)  # nothing a later call could trust
                        have = 0
                    kept = f"; {have} bytes kept in {part} to resume" if have else ""
                    raise QuickDrawError(
                        f"download of {url} failed after {retries + 1} attempt(s): {e}{kept}"
                    ) from None
                sleep(backoff * 2**attempt)
            except QuickDrawError:
                _discard(part)
                raise
    finally:
        bar.close()
    _sidecar(part).unlink(missing_ok=True)  # first: a crash now leaves a .part never resumed
    os.replace(part, dest)
    return dest


def _copy_local(src: Path, dest: Path, progress: bool) -> Path:
    size = src.stat().st_size
    with (
        open(src, "rb") as f,
        atomic_write(dest, "wb") as out,
        _byte_bar(size, dest.name, progress) as bar,
    ):
        while chunk := f.read(1 << 20):
            out.write(chunk)
            bar.update(len(chunk))
    return dest


def download(
    category: str,
    fmt: str = "simplified",
    cache_dir: str | Path | None = None,
    *,
    base_url: str | None = None,
    force: bool = False,
    progress: bool = True,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> Path:
    """Fetch (category, format) into the cache and return its path there.

    An existing cached file is returned as is unless `force`. `base_url` may be
    an http(s) URL, a ``file://`` URL or a directory in the official layout.
    """
    rel = remote_path(category, fmt)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    dest = cache / rel
    if dest.is_file() and not force:
        return dest
    base = resolve_base_url(base_url)
    mirror = local_mirror(base)
    if mirror is not None:
        src = mirror / rel
        if not src.is_file():
            raise QuickDrawError(f"{category!r} ({fmt}) is not in the mirror: no file {src}")
        return _copy_local(src, dest, progress)
    return download_url(
        url_for(category, fmt, base),
        dest,
        retries=retries,
        backoff=backoff,
        timeout=timeout,
        progress=progress,
    )


# File suffixes each format may have in a local folder of files (flat layout).
_LOCAL_SUFFIXES = {
    "raw": SUFFIXES["ndjson"],
    "simplified": SUFFIXES["ndjson"],
    "binary": SUFFIXES["binary"],
    "numpy_bitmap": SUFFIXES["bitmap"],
    "sketchrnn": (".npz",),
    "sketchrnn_full": (".full.npz",),
}


def fetch(
    category: str,
    fmt: str = "simplified",
    *,
    source: str | Path | None = None,
    cache_dir: str | Path | None = None,
    base_url: str | None = None,
    progress: bool = True,
) -> Path:
    """A local file holding (category, format), downloading it only when needed.

    Looks, in order:

    1. `source`, if given: a file (returned as is), or a directory in the official
       layout (``source/full/simplified/cat.ndjson``) or flat (``source/cat.ndjson``).
       Nothing is downloaded; a missing file raises `QuickDrawError`.
    2. a local mirror named by `base_url` / ``$QUICKDRAW_BASE_URL``: its file, used
       in place (no copy).
    3. the cache; else a download into it (`download`).
    """
    category = check_category(category)
    rel = remote_path(category, fmt)
    if source is not None:
        source = Path(source).expanduser()
        if source.is_file():
            return source
        if not source.is_dir():
            raise QuickDrawError(f"source {source} is neither a file nor a directory")
        candidates = [source / rel] + [source / (category + s) for s in _LOCAL_SUFFIXES[fmt]]
        for path in candidates:
            if path.is_file():
                return path
        tried = ", ".join(str(p) for p in candidates)
        raise QuickDrawError(f"no {fmt} file for {category!r} in {source} (looked for {tried})")
    mirror = local_mirror(resolve_base_url(base_url))
    if mirror is not None:
        path = mirror / rel
        if not path.is_file():
            raise QuickDrawError(f"{category!r} ({fmt}) is not in the mirror: no file {path}")
        return path
    return download(category, fmt, cache_dir, base_url=base_url, progress=progress)
