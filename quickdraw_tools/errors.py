"""The library's own exceptions and the input checks that raise them.

Public functions validate their inputs here ("validate at the edge") and raise
`QuickDrawError` with a message that names the bad value and what would be
valid; the CLI prints that message as one line and exits non-zero.
"""

from __future__ import annotations

import difflib
import re
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


# --- numbers: one rule for each kind, in every command and public function -------------------

SEED_MAX = 2**63 - 1  # seeds are whole numbers 0..SEED_MAX: what torch, numpy and the split take
# Sampling temperatures: logits / tau overflow float32 below about 1e-37 (the softmax then
# gives NaN) and sqrt(tau) * sigma above about 1e76; the stated range keeps far from both
TEMPERATURE_MIN = 0.001
TEMPERATURE_MAX = 100.0


def check_count(value: int, what: str, low: int = 1, high: int | None = None) -> int:
    """A whole number from `low` to `high` (None: no upper bound), else QuickDrawError naming
    `what` ("--n"), the value and the range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise QuickDrawError(f"{what} must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        upper = f"to {high:,}" if high is not None else "or more"
        raise QuickDrawError(f"{what} must be {low:,} {upper}, got {value:,}")
    return value


def check_seed(seed: int, what: str = "--seed") -> int:
    """A seed: a whole number 0..2**63 - 1 (`SEED_MAX`), the same rule everywhere."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise QuickDrawError(f"{what} must be a whole number from 0 to 2**63 - 1, got {seed!r}")
    return seed


def check_temperature(tau: float, what: str = "--temperature") -> float:
    """A sampling temperature: finite, from `TEMPERATURE_MIN` to `TEMPERATURE_MAX`."""
    if not TEMPERATURE_MIN <= tau <= TEMPERATURE_MAX:  # NaN fails this too
        raise QuickDrawError(
            f"{what} must be from {TEMPERATURE_MIN:g} to {TEMPERATURE_MAX:g} (lower is tidier), "
            f"got {tau!r}"
        )
    return tau


def check_finite(value: float, what: str, low: float = 0.0) -> float:
    """A finite number of at least `low` (NaN and infinities refused)."""
    if not (low <= value < float("inf")):
        raise QuickDrawError(f"{what} must be a finite number >= {low:g}, got {value!r}")
    return value


# --- text: what a name may be, and how it is shown ------------------------------------------

# C0 and C1 controls, DEL, the bidirectional overrides and isolates (which reorder what a
# terminal shows), and lone surrogates (a file name that is not UTF-8, as Python holds it)
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: str, keep: str = "") -> str:
    """`text` with every control character (but those in `keep`, e.g. newlines of a table),
    bidirectional override and undecodable byte escaped as ``\\x1b``, ``\\u202e``,
    ``\\udcff``: a name can neither move the terminal's cursor, colour it, reorder a line nor
    start a second line of a one-line message."""

    def escape(found: re.Match) -> str:
        ch = found.group()
        if ch in keep:
            return ch
        return ascii(ch)[1:-1]

    return _UNPRINTABLE.sub(escape, text)


def check_utf8(text: str, what: str, fix: str = "rename it (e.g. with convmv)") -> str:
    """Refuse a name that is not UTF-8 (bytes of another encoding in a file name or an
    argument, held by Python as lone surrogates): it can be neither written into a file nor
    shown. `fix` says what to do."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise QuickDrawError(f"{what} '{printable(text)}' is not UTF-8 text; {fix}") from None
    return text
