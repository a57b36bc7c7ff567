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
once its size matches the server's length, so a file in the cache is always
complete; an interrupted download resumes from its ``.part`` with an HTTP Range
request. The base URL (``--base-url`` or ``$QUICKDRAW_BASE_URL``) may be another
HTTP server or a plain local directory (a path or a ``file://`` URL). HTTP uses
only the standard library (urllib).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
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


class _Retry(Exception):
    """A failure worth another attempt (connection lost, short body, 5xx)."""


def _fetch_once(
    url: str, part: Path, timeout: float, progress: bool, desc: str, headers: dict
) -> None:
    """One attempt: fetch `url` into `part`, resuming from its current size.

    Returns when `part` holds the whole file (checked against the server's
    length); raises `_Retry` for transient failures and `QuickDrawError` otherwise.
    """
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers=dict(headers))
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:
            # The .part is not a prefix of what the server has now (or already too
            # long): start over rather than guess.
            part.unlink()
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
                part.unlink()
                raise _Retry(f"server resumed at byte {start}, not {offset}; restarting")
            if total is None and length is not None:
                total = offset + length
            mode = "ab"
        else:  # 200: a full body (the server ignored or was not sent a Range)
            offset, total, mode = 0, length, "wb"
        part.parent.mkdir(parents=True, exist_ok=True)
        got = offset
        with open(part, mode) as out, _byte_bar(total, desc, progress, initial=offset) as bar:
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            except (OSError, urllib.error.URLError) as e:
                raise _Retry(f"connection lost after {got} bytes: {e}") from None
            except Exception as e:  # http.client.IncompleteRead and friends
                raise _Retry(f"connection lost after {got} bytes: {type(e).__name__}") from None
    if total is not None and got != total:
        raise _Retry(f"size check failed: received {got} of {total} bytes")


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
    """Download `url` to `dest` via ``dest.part``: resume, size check, retries, atomic rename.

    Retries transient failures (lost connection, short body, 5xx) up to `retries`
    times, waiting ``backoff * 2**attempt`` seconds, each retry resuming from the
    bytes already in ``.part``. On final failure the ``.part`` stays (a later call
    resumes it) and `dest` is never created; a 4xx other than a resumable 416
    fails at once and leaves nothing behind.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    headers = {"User-Agent": "quickdraw-tools"}
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout, progress, dest.name, headers)
            break
        except _Retry as e:
            if attempt == retries:
                have = part.stat().st_size if part.exists() else 0
                kept = f"; {have} bytes kept in {part} to resume" if have else ""
                raise QuickDrawError(
                    f"download of {url} failed after {retries + 1} attempt(s): {e}{kept}"
                ) from None
            sleep(backoff * 2**attempt)
        except QuickDrawError:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            raise
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
