"""How well the sample judge discriminates: held-out real drawings, half-erased ones, scribbles
and a collapsed model.

Trains a judge (`quickdraw judge train`'s library call) on the categories of ``--data`` (default:
the seven ``../shared/quickdraw/training`` sets), or loads one with ``--judge``, prints its
held-out accuracy, then scores, per category:

    real         the category's test drawings (in neither the judge's training nor its reference)
    half-erased  the same drawings with every other stroke removed (the first kept)
    scribbles    random-walk drawings (seeded numpy Generator) claiming the category
    collapsed    a model that collapsed onto one good sketch: the first test drawing the judge
                 recognises, repeated as many times
    CHECKPOINT   with --checkpoint (repeatable): a model's samples, as `judge score` draws them

and prints recognizability (95% Wilson interval), FID, KID, precision, recall, density and
coverage per row, then a summary per kind: recognizability pooled over the categories'
sketches, the other scores averaged over categories; which score catches which flaw (in how
many categories a row is worse than every category's real drawings); the nearest-neighbour
scores at other k (--other-k) and FID and KID at smaller n (--fid-by-n). Every row is scored
at the same n (the smallest reference, or --n).

    nice .venv/bin/python scripts/judge_report.py --out runs/judge.pt
    .venv/bin/python scripts/judge_report.py --judge runs/judge.pt --checkpoint runs/cat/best.pt
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from quickdraw_tools.atomic import atomic_write
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.eval.grading.report import wilson_interval
from quickdraw_tools.eval.judge import (
    K_NEAREST,
    NEAREST_NEIGHBOUR_SCORES,
    Judge,
    JudgeConfig,
    JudgeTraining,
    Row,
    erase_every_other_stroke,
    format_scores,
    format_training,
    load_judge,
    read_labelled,
    render_strokes,
    score_rows,
    scribble,
    source_rows,
    text_table,
    train_judge,
)
from quickdraw_tools.strokes import drawing_to_stroke3

ROOT = Path(__file__).resolve().parents[1]
TRAINING = ROOT.parent / "shared" / "quickdraw" / "training"
sys.path.insert(0, str(ROOT / "scripts"))
from _machine import cpu_name  # noqa: E402

METRICS = ("fid", "kid", "precision", "recall", "density", "coverage")  # averaged per kind


def as_strokes(drawings: list) -> list[np.ndarray]:
    return [drawing_to_stroke3(d, dtype=np.float64) for d in drawings]


def build_rows(
    judge: Judge, data, checkpoints, n: int, seed: int, temperature: float = 1.0
) -> list[Row]:
    """The real, half-erased, scribble and collapsed rows of every category, then the
    checkpoints'."""
    size = judge.config.size
    rng = np.random.default_rng(seed)
    rows = []
    for category, d in data.items():
        if d.drawings is None:
            raise QuickDrawError(f"{category}: half-erasing needs drawings, not bitmaps")
        test = d.drawings["test"]
        erased = render_strokes(as_strokes([erase_every_other_stroke(x) for x in test]), size)
        noise = render_strokes(as_strokes([scribble(rng) for _ in test]), size)
        # the collapse the fidelity scores cannot see: a good sketch, the only one it makes
        _, probs = judge.embed(d.images["test"])
        recognised = np.flatnonzero(probs.argmax(1) == judge.classes.index(category))
        one = int(recognised[0]) if len(recognised) else 0
        rows += [
            Row("real", category, d.images["test"]),
            Row("half-erased", category, erased),
            Row("scribbles", category, noise),
            Row("collapsed", category, np.repeat(d.images["test"][[one]], len(test), axis=0)),
        ]
    if checkpoints:
        sources = [str(c) for c in checkpoints]
        rows += source_rows(sources, n, seed, size, temperature, progress=True)
    return rows


def summary(report: dict) -> list[dict]:
    """Per kind (source): recognizability pooled over its categories, the rest averaged."""
    kinds: dict[str, list[dict]] = {}
    for r in report["sources"]:
        kinds.setdefault(r["source"], []).append(r)
    out = []
    for kind, rows in kinds.items():
        scored = [r for r in rows if r["recognizability"] is not None]
        line = {"kind": kind, "categories": len(rows), "n": sum(r["n"] for r in rows)}
        line["blank"] = sum(r.get("blank", 0) for r in rows)  # counted as not recognised
        if scored:
            right = round(sum(r["recognizability"] * r["n"] for r in scored))
            total = sum(r["n"] for r in scored)
            line["recognizability"] = right / total
            line["recognizability_ci95"] = list(wilson_interval(right, total))
            for m in METRICS:
                line[m] = float(np.mean([r[m] for r in scored]))
        out.append(line)
    return out


def format_summary(lines: list[dict]) -> str:
    header = ["kind", "categories", "sketches", "blank", "recognised (95% CI)", "FID", "KID",
              "precision", "recall", "density", "coverage"]  # fmt: skip
    table = [header]
    for s in lines:
        counts = [s["kind"], str(s["categories"]), str(s["n"]), str(s.get("blank", 0))]
        if "recognizability" not in s:
            table.append([*counts, "undefined", *"-" * len(METRICS)])
            continue
        lo, hi = s["recognizability_ci95"]
        table.append([
            *counts,
            f"{100 * s['recognizability']:.1f}% ({100 * lo:.1f}-{100 * hi:.1f})",
            f"{s['fid']:.2f}", f"{s['kid']:.3f}",
            *(f"{s[m]:.2f}" for m in METRICS[2:]),
        ])  # fmt: skip
    return text_table(table)


# the scores that tell a flaw, each with the direction a flawed row moves it
FLAW_SIGNS = {"recognizability": -1, "fid": 1, "kid": 1, "precision": -1, "recall": -1,
              "density": -1, "coverage": -1}  # fmt: skip


def caught(report: dict) -> dict[str, dict[str, int]]:
    """kind -> score -> in how many categories the kind's row is worse than the real rows of
    every category (the real drawings' spread over categories is the score's own noise at this
    n: a row beyond all of it is caught)."""
    rows = [r for r in report["sources"] if r["recognizability"] is not None]
    real = [r for r in rows if r["source"] == "real"]
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        if r["source"] == "real":
            continue
        counts = out.setdefault(r["source"], dict.fromkeys(FLAW_SIGNS, 0))
        for m, sign in FLAW_SIGNS.items():
            counts[m] += sign * r[m] > max(sign * x[m] for x in real)
    return out


def format_caught(counts: dict[str, dict[str, int]], categories: int) -> str:
    table = [["kind", "recognised", "FID", "KID", "precision", "recall", "density", "coverage"]]
    for kind, c in counts.items():
        table.append([kind, *(f"{c[m]}/{categories}" for m in FLAW_SIGNS)])
    return text_table(table)


def format_by_n(by_n: dict[int, list[dict]]) -> str:
    """kind x n: FID (KID) at each n."""
    ns = sorted(by_n)
    table = [["kind", *(f"n = {n}" for n in ns)]]
    for i, line in enumerate(by_n[ns[0]]):
        if "fid" in line:
            cells = [f"{by_n[n][i]['fid']:.2f} ({by_n[n][i]['kid']:.2f})" for n in ns]
            table.append([line["kind"], *cells])
    return text_table(table)


def format_by_k(by_k: dict[int, list[dict]]) -> str:
    """kind x k: precision / recall / density / coverage at each k."""
    ks = sorted(by_k)
    table = [["kind", *(f"k = {k}" for k in ks)]]
    for i, line in enumerate(by_k[ks[0]]):
        if "fid" in line:
            scores = [[f"{by_k[k][i][m]:.2f}" for m in NEAREST_NEIGHBOUR_SCORES] for k in ks]
            cells = [" / ".join(c) for c in scores]
            table.append([line["kind"], *cells])
    return text_table(table)


def _counts(text: str, flag: str) -> list[int]:
    """'10,20' -> [10, 20], each a whole number >= 1, or a one-line error naming the flag."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = [0]
    if any(v < 1 for v in values):
        raise QuickDrawError(f"{flag} takes whole numbers >= 1 separated by commas, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data",
        nargs="+",
        type=Path,
        default=sorted(TRAINING.glob("*.ndjson")),
        help="real drawings, one category per file (default: ../shared training sets)",
    )
    p.add_argument("--judge", type=Path, help="score with this judge instead of training one")
    p.add_argument("--out", type=Path, help="where the trained judge goes (default: a temp dir)")
    p.add_argument("--epochs", type=int, default=JudgeTraining.epochs, help="training epochs")
    p.add_argument("--max-per-category", type=int, default=0, help="at most N drawings each")
    p.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        help="a model checkpoint to sample and score (repeatable)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="sampling temperature of the checkpoints (sketch-rnn's tau; DRAW: the prior's "
        "scale), as in `judge score` (default 1.0)",
    )
    p.add_argument(
        "--n",
        type=int,
        default=1000,
        help="sketches per row (capped by the smallest reference and row)",
    )
    p.add_argument("--seed", type=int, default=0, help="split, training and sampling seed")
    p.add_argument("--json-out", type=Path, help="also write everything as JSON")
    p.add_argument("--rows", action="store_true", help="print every category's row too")
    p.add_argument(
        "--fid-by-n",
        default="10,20,40",
        metavar="N,N,...",
        help="also score the rows at these smaller n, to show FID's bias (default "
        "10,20,40; '' for none)",
    )
    p.add_argument(
        "--other-k",
        default="5,10",
        metavar="K,K,...",
        help=f"also give precision, recall, density and coverage with these k (the judge's is "
        f"{K_NEAREST}), to show how they depend on it (default 5,10; '' for none)",
    )
    args = p.parse_args(argv)  # fmt: skip
    smaller, other_k = _counts(args.fid_by_n, "--fid-by-n"), _counts(args.other_k, "--other-k")

    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.judge
        trained = None
        if path is None:
            path = args.out or Path(tmp) / "judge.pt"
            training = JudgeTraining(
                epochs=args.epochs, seed=args.seed, max_per_category=args.max_per_category
            )
            trained = train_judge(args.data, path, JudgeConfig(), training, device="cpu")
        judge = load_judge(path)
        train_s = time.time() - started
        data = read_labelled(
            args.data,
            judge.train_config.seed,
            judge.train_config.max_per_category,
            judge.config.size,
        )
        unknown = set(data) - set(judge.classes)
        if unknown:
            raise QuickDrawError(f"the judge has no class for {sorted(unknown)}")
        rows = build_rows(judge, data, args.checkpoint, args.n, args.seed, args.temperature)
        report = score_rows(judge, rows, n=args.n, seed=args.seed)
        by_k = {k: summary(score_rows(judge, rows, n=args.n, seed=args.seed, k=k)) for k in other_k}
        by_n = {
            n: summary(score_rows(judge, rows, n=n, seed=args.seed))
            for n in smaller
            if n < report["n"]
        }
    lines = summary(report)
    today = datetime.date.today().isoformat()
    print(f"# judge report, {today}, {cpu_name()}")
    if trained is not None:
        print(f"trained in {train_s:.0f} s ({args.epochs} epochs)")
    print(format_training({"held_out": judge.held_out, "split_sizes": split_sizes(data)}))
    print()
    if args.rows:
        print(format_scores(report))
        print()
    print(format_summary(lines))
    print(f"\nn = {report['n']} sketches per row; {report['fid_note']}")
    if args.checkpoint:
        print(f"checkpoints sampled at temperature {args.temperature:g}, seed {args.seed}")
    flaws = caught(report)
    if flaws:
        print(
            "\nCaught: in how many categories each row scores worse than the real drawings of "
            "every category:"
        )
        print(format_caught(flaws, len(data)))
    if by_k:
        print("\nPrecision / recall / density / coverage by k, mean over categories:")
        print(format_by_k({K_NEAREST: lines, **by_k}))
    if by_n:
        print("\nFID (and KID) of the same rows at smaller n, mean over categories:")
        print(format_by_n({**by_n, report["n"]: lines}))
    if args.json_out:
        with atomic_write(args.json_out, "w") as f:
            payload = {
                "date": today, "summary": lines, "report": report, "by_n": by_n, "by_k": by_k,
                "caught": flaws,
            }  # fmt: skip
            json.dump(payload, f, indent=2)
    return 0


def split_sizes(data) -> dict:
    return {c: {s: len(im) for s, im in d.images.items()} for c, d in data.items()}


if __name__ == "__main__":
    try:
        sys.exit(main())
    except QuickDrawError as e:
        print(f"judge_report: error: {e}", file=sys.stderr)
        sys.exit(1)
