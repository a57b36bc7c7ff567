"""The library's own exceptions and the input checks that raise them.

Public functions validate their inputs here ("validate at the edge") and raise
`QuickDrawError` with a message that names the bad value and what would be
valid; the CLI prints that message as one line and exits non-zero.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class QuickDrawError(Exception):
    """An error a user can fix: bad input, a missing file, a bad download."""


def closest(value: str, valid: Iterable[str], n: int = 3) -> list[str]:
    """The `n` valid names closest to `value` (case-insensitive), best first."""
    valid = list(valid)
    by_lower = {v.lower(): v for v in valid}
    hits = difflib.get_close_matches(value.lower(), list(by_lower), n=n, cutoff=0.5)
    return [by_lower[h] for h in hits]


def check_choice(what: str, value: str, valid: Iterable[str]) -> str:
    """Return `value` if it is one of `valid`, else raise naming the closest choices."""
    valid = list(valid)
    if value in valid:
        return value
    near = closest(value, valid)
    if near:
        hint = "did you mean " + ", ".join(repr(v) for v in near) + "?"
    elif len(valid) <= 12:
        hint = "valid: " + ", ".join(repr(v) for v in valid)
    else:
        hint = f"see the list of {len(valid)} valid values"
    raise QuickDrawError(f"unknown {what} {value!r}; {hint}")
