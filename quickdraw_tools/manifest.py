"""What a run wrote into a folder, so that readers can tell a set of files that belongs together.

``manifest.json`` lists, for every file a run of `quickdraw convert` (or
`mnist.write_mnist`) wrote below that folder: its size, its SHA-256, the run
that wrote it and, where there is one, its category, the split seed and the
source. It is written last, in the same all-or-nothing commit as the files
(`atomic.staged_output`), and it keeps the entries of earlier runs for the
files they wrote that this run left alone.

Readers (`formats.load_bitmaps`, `formats.load_sketchrnn_npz`,
`splits.read_sidecar`, `mnist.read_mnist`) call `verify`: a listed file whose
bytes differ from its entry, or a folder whose last commit was interrupted,
is refused with a message saying what does not belong. Files no manifest lists
(the official downloads, files of other tools) are read as they are.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .atomic import check_no_commit, plain_relative
from .errors import QuickDrawError

MANIFEST = "manifest.json"
VERSION = 1
_CHUNK = 1 << 20


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def digest(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of a file."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return {"size": size, "sha256": h.hexdigest()}


def read(folder: Path) -> dict | None:
    """The manifest of `folder`, or None if it has none; a broken one is an error."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise ValueError("no 'files'")
    except (ValueError, UnicodeDecodeError) as e:
        raise QuickDrawError(f"{path}: not a manifest written by quickdraw-tools ({e})") from None
    return manifest


def build(staged: Path, target: Path, run: dict[str, Any], files: dict[str, dict]) -> dict:
    """The manifest for `target` once the files staged under `staged` are in place.

    files: rel path -> extra fields of its entry (e.g. ``category``); each gets its size,
    hash and ``run``. Entries of the previous manifest for files that stay are kept.
    """
    previous = read(target) or {"files": {}}
    entries = {
        rel: entry
        for rel, entry in previous["files"].items()
        # an entry of a planted manifest may name a file outside the folder: not listed again
        if rel not in files and plain_relative(rel) and (target / rel).is_file()
    }
    for rel, extra in files.items():
        entries[rel] = {**digest(staged / rel), "run": run["id"], **extra}
    runs = {**previous.get("runs", {}), run["id"]: run}
    used = {entry["run"] for entry in entries.values()}
    return {
        "version": VERSION,
        "runs": {k: v for k, v in runs.items() if k in used},
        "files": entries,
    }


def write(staged: Path, manifest: dict) -> None:
    """Write `manifest` as ``staged/manifest.json`` (inside the staging folder: it lands last
    with the commit, so the folder never holds a manifest that describes other files)."""
    (staged / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True), "utf-8")


def run_record(**fields: Any) -> dict[str, Any]:
    """A run's entry: its id, when it was written, and what it was given (seed, sources...)."""
    written = datetime.now(UTC).isoformat(timespec="seconds")
    return {"id": new_run_id(), "written": written, **fields}


def verify(path: str | os.PathLike) -> None:
    """Refuse `path` if the manifest of its folder (or of the folder above) lists other bytes
    for it, or if a commit into those folders was interrupted."""
    path = Path(path)
    found = None
    for folder in (path.parent, path.parent.parent):
        check_no_commit(folder)
        manifest = read(folder)
        if manifest is None:
            continue
        rel = path.resolve().relative_to(folder.resolve()).as_posix()
        entry = manifest["files"].get(rel)
        if entry is None:
            continue
        found = found or digest(path)
        if found != {"size": entry["size"], "sha256": entry["sha256"]}:
            run = manifest.get("runs", {}).get(entry.get("run"), {})
            when = f" (written {run['written']})" if "written" in run else ""
            raise QuickDrawError(
                f"{path} is not the file {folder / MANIFEST} lists for it{when}: it was changed "
                "or comes from another run, so it may not belong with the files beside it; "
                "write the set again (quickdraw convert)"
            )
