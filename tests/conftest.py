"""Shared fixtures: where the real Quick, Draw! sample data lives."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "quickdraw"
MIRROR = SHARED / "mirror"


@pytest.fixture(scope="session")
def shared() -> Path:
    """`../shared/quickdraw`; a test that needs it fails (never skips) when it is missing."""
    assert SHARED.is_dir(), f"real sample data not found at {SHARED} (see README: ../shared)"
    return SHARED
