"""How long each sketch is shown: HYPE's two measures (Zhou et al. 2019).

- **HYPE-infinity** (`unlimited`, the default): a sketch stays until it is graded; the measure
  is the error rate on real and generated sketches together (`eval.grading.report`).
- **Fixed exposure** (`fixed`, `--exposure-ms MS`): every sketch shows MS milliseconds.
- **HYPE-time** (`adaptive`, `--exposure adaptive --exposure-min-ms A --exposure-max-ms B`): the
  exposure follows a staircase per rater and per model. The exposures are `LEVELS` steps spaced
  evenly in log time from A to B; a staircase starts at B (easy), steps one level shorter after
  a correct answer and `UP_STEPS` levels longer after a wrong one (Kaernbach's weighted up-down
  rule, 1991: it settles where a rater is right UP_STEPS / (UP_STEPS + 1) = 75% of the time;
  one step each way would settle at 50%, which on a real-or-fake task is guessing). Each model
  has its own staircase per rater, fed by that model's sketches and by the real sketches in turn
  (the k-th real sketch of a rater's order goes to the (k mod M)-th model's staircase), so each
  staircase sees real and generated sketches alike; gold items show at a staircase's level in
  turn (so their exposure tells them apart from nothing) and feed none. A
  rater's threshold for a model is the geometric mean exposure at the staircase's reversals
  after the first two (at least two left), else over the second half of its trials.

Correct means: a real sketch graded real or possibly real, a generated one graded fake.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...errors import QuickDrawError
from .store import REAL_SOURCE

MODES = ("unlimited", "fixed", "adaptive")
LEVELS = 10  # exposure steps from the shortest to the longest
UP_STEPS = 3  # levels up after a wrong answer (one down after a right one): 75% correct
MAX_EXPOSURE_MS = 60_000


@dataclass(frozen=True)
class Exposure:
    mode: str = "unlimited"
    ms: int | None = None  # the fixed exposure
    min_ms: int | None = None  # the adaptive bounds
    max_ms: int | None = None

    @classmethod
    def from_spec(cls, spec: Mapping) -> Exposure:
        found = spec.get("exposure")
        if isinstance(found, Mapping):
            return cls(found["mode"], found.get("ms"), found.get("min_ms"), found.get("max_ms"))
        ms = spec.get("exposure_ms")  # sessions from before adaptive exposure
        return cls("fixed", ms) if ms else cls()

    def to_spec(self) -> dict:
        return {"mode": self.mode, "ms": self.ms, "min_ms": self.min_ms, "max_ms": self.max_ms}

    def levels(self) -> list[int]:
        """The staircase's exposures in ms, shortest first."""
        assert self.min_ms is not None and self.max_ms is not None
        ratio = self.max_ms / self.min_ms
        return [round(self.min_ms * ratio ** (i / (LEVELS - 1))) for i in range(LEVELS)]


def check_exposure_settings(
    mode: str, ms: int | None, min_ms: int | None, max_ms: int | None
) -> Exposure:
    """The exposure of `grade serve`'s flags, checked (one line per mistake)."""
    if mode not in MODES:
        raise QuickDrawError(f"--exposure must be one of {', '.join(MODES)}, got {mode!r}")
    for flag, value in (("--exposure-ms", ms), ("--exposure-min-ms", min_ms),
                        ("--exposure-max-ms", max_ms)):  # fmt: skip
        if value is not None and not 1 <= value <= MAX_EXPOSURE_MS:
            raise QuickDrawError(f"{flag} must be 1-{MAX_EXPOSURE_MS}, got {value}")
    if mode == "adaptive":
        if ms is not None:
            raise QuickDrawError("--exposure adaptive takes --exposure-min-ms/-max-ms, not -ms")
        lo, hi = min_ms or 100, max_ms or 1000  # HYPE-time's range
        if not lo < hi:
            raise QuickDrawError(f"--exposure-min-ms {lo} must be below --exposure-max-ms {hi}")
        return Exposure("adaptive", None, lo, hi)
    if min_ms is not None or max_ms is not None:
        raise QuickDrawError("--exposure-min-ms and --exposure-max-ms need --exposure adaptive")
    if mode == "fixed" or ms is not None:
        if ms is None:
            raise QuickDrawError("--exposure fixed needs --exposure-ms MS")
        return Exposure("fixed", ms)
    return Exposure()


def correct(source: str, grade: str) -> bool:
    """Whether a grade of a sketch of `source` is right: real as real or possibly real,
    generated as fake."""
    return (grade != "fake") if source == REAL_SOURCE else (grade == "fake")


def staircases(order_sources: Sequence[str | None], models: Sequence[str]) -> list[str]:
    """The staircase (a model's label) each item of a rater's order shows at: a model's sketch
    its own, the k-th real sketch the (k mod M)-th model's, the k-th gold item (None source)
    too, so that its exposure tells it apart from nothing (it feeds no staircase)."""
    out: list[str] = []
    reals = golds = 0
    for source in order_sources:
        if source is None:
            out.append(models[golds % len(models)])
            golds += 1
        elif source == REAL_SOURCE:
            out.append(models[reals % len(models)])
            reals += 1
        else:
            out.append(source)
    return out


def exposures(
    exposure: Exposure,
    order_sources: Sequence[str | None],
    models: Sequence[str],
    answers: Sequence[str],
) -> list[int | None]:
    """The exposure (ms) of each item of a rater's order, up to the first unanswered one:
    `answers` are the grades of the first items, in order (a gold item's feed no staircase).
    None: no limit."""
    n = min(len(answers) + 1, len(order_sources))
    if exposure.mode == "unlimited":
        return [None] * n
    if exposure.mode == "fixed" or not models:
        return [exposure.ms if exposure.mode == "fixed" else exposure.max_ms] * n
    levels = exposure.levels()
    level = dict.fromkeys(models, LEVELS - 1)
    out: list[int | None] = []
    for i, stair in enumerate(staircases(order_sources, models)[:n]):
        out.append(levels[level[stair]])
        source = order_sources[i]
        if source is not None and i < len(answers):
            step = -1 if correct(source, answers[i]) else UP_STEPS
            level[stair] = min(LEVELS - 1, max(0, level[stair] + step))
    return out


def threshold(trials: Sequence[tuple[int, bool]]) -> float:
    """A rater's threshold on one staircase from its (exposure ms, correct) trials in order:
    the geometric mean exposure at the reversals after the first two (needs two), else over
    the second half of the trials; NaN without trials."""
    if not trials:
        return math.nan
    reversals = []
    direction = 0
    for k in range(1, len(trials)):
        step = (trials[k][0] > trials[k - 1][0]) - (trials[k][0] < trials[k - 1][0])
        if step and direction and step != direction:
            reversals.append(trials[k - 1][0])
        if step:
            direction = step
    chosen = reversals[2:] if len(reversals) >= 4 else [e for e, _ in trials[len(trials) // 2 :]]
    return float(math.exp(sum(math.log(e) for e in chosen) / len(chosen)))
