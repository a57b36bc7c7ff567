"""`quickdraw judge train|score`: a sketch classifier that scores samples."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..models import SAMPLING_TEMPERATURE
from .common import (
    MAX_BATCH,
    MAX_SAMPLES,
    add_device_arguments,
    add_json_arguments,
    check_count,
    check_seed,
    check_temperature,
    emit_json,
    temperature_help,
    use_threads,
)

MAX_FEATURES = 4096  # --feature-size: the feature layer's width

TRAIN_HELP = """\
Train the judge: a small CNN on 28x28 bitmaps drawn by the official renderer, one class per
category (each record's `word`, else the file's name). It never trains on the valid and test
drawings that `quickdraw convert` holds out (the same keyed split, by --seed); it prints its
accuracy on them, and keeps the features of each category's valid drawings as that category's
reference for FID, KID and the nearest-neighbour scores. The test drawings are in neither, so
they are the fair real baseline to score beside a model. A few minutes on a CPU for ~1,500
drawings in each of 7 categories.

FILE is drawings (.ndjson, .ndjson.gz, .bin), a sketch-rnn .npz (its own splits) or 28x28
bitmaps (.npy; the split convert recorded beside it, else the keyed split of its rows).

examples:
  quickdraw judge train --data ../shared/quickdraw/training/*.ndjson --out judge.pt
  quickdraw judge train --data data/sketchrnn/*.npz --out judge.pt --epochs 4 --json
"""

SCORE_HELP = """\
Score sources with a judge: per source and category it claims, recognizability (the judge's
top-1 accuracy for that category, with a 95% Wilson interval), FID and KID against the
category's reference features, precision and recall (k-nearest-neighbour manifolds, k=3), and
density and coverage (Naeem et al. 2020, the same k and balls: density counts how many real
drawings' balls hold each sketch, so one outlying drawing's wide ball counts for little;
coverage is the share of real balls that hold a sketch, low for a model that repeats itself).
Every source is scored on the same n sketches (the smallest of --n, each source's size and
each reference's size): FID is biased upwards by about a constant over n, so FIDs compare
only at the same n. A category the judge has no class for gets no scores, and says so.

SOURCE is FILE.ndjson (.ndjson.gz, .bin), FILE.npz:SPLIT, FILE.npy (28x28 bitmaps) or a
checkpoint (.pt/.pth/.ckpt/.gen.json), sampled --n times; strokes are drawn by the official
renderer.

examples:
  quickdraw judge score judge.pt data/sketchrnn/cat.npz:test runs/cat/best.pt --n 500
  quickdraw judge score judge.pt runs/draw-cat/best.pt --json > scores.json
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "judge",
        help="a sketch classifier that scores samples (recognizability, FID, KID, P/R, D/C)",
        description="A sketch classifier trained on real drawings, and the scores it gives "
        "samples: recognizability, FID, KID, precision, recall, density and coverage.",
    )
    sub = parser.add_subparsers(dest="judge_command", metavar="{train,score}", required=True)

    train = sub.add_parser(
        "train",
        help="train a judge on real drawings",
        description=TRAIN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument(
        "--data", nargs="+", required=True, type=Path, metavar="FILE",
        help="real drawings, one category per file or per record's word",
    )  # fmt: skip
    train.add_argument("--out", required=True, type=Path, help="the judge file to write (.pt)")
    train.add_argument("--epochs", type=int, default=8, help="passes over the data (default 8)")
    train.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    train.add_argument(
        "--lr", type=float, default=2e-3,
        help="Adam's peak learning rate, cosine-decayed (default 2e-3)",
    )  # fmt: skip
    train.add_argument(
        "--seed", type=int, default=0,
        help="seed of the keyed split (as convert's --seed) and of the training run (default 0)",
    )  # fmt: skip
    train.add_argument(
        "--max-per-category", type=int, default=0, metavar="N",
        help="at most N drawings of each category (default 0: all)",
    )  # fmt: skip
    train.add_argument(
        "--feature-size", type=int, default=64,
        help="width of the feature layer that FID, KID and the k-NN scores use (default 64)",
    )  # fmt: skip
    add_device_arguments(train, "the judge trains")
    add_json_arguments(train, "the summary")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=run_train)

    score = sub.add_parser(
        "score",
        help="score sources (files, checkpoints) with a judge",
        description=SCORE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    score.add_argument("judge", type=Path, metavar="JUDGE", help="a file `judge train` wrote")
    score.add_argument("sources", nargs="+", metavar="SOURCE", help="what to score")
    score.add_argument(
        "--n", type=int, default=1000,
        help="sketches per source: checkpoints are sampled N times, files subsampled; every "
        "source is scored at the same n (default 1000)",
    )  # fmt: skip
    score.add_argument(
        "--seed", type=int, default=0, help="seed for choosing and sampling sketches (default 0)"
    )
    score.add_argument(
        "--temperature", type=float, default=SAMPLING_TEMPERATURE,
        help="checkpoints' " + temperature_help(),
    )  # fmt: skip
    add_device_arguments(score, "the judge and the checkpoints run")
    add_json_arguments(score, "the scores")
    score.add_argument("--quiet", action="store_true", help="no progress bars")
    score.set_defaults(func=run_score)


def _emit(payload: dict, args: argparse.Namespace, table: str) -> None:
    if emit_json(payload, args):
        return
    print(table)
    if args.json_out:
        print(f"wrote {args.json_out}")


def run_train(args: argparse.Namespace) -> int:
    from ..eval.judge import JudgeConfig, JudgeTraining, format_training, train_judge

    check_seed(args.seed)
    check_count(args.batch_size, "--batch-size", 1, MAX_BATCH)
    check_count(args.feature_size, "--feature-size", 1, MAX_FEATURES)
    use_threads(args.threads)
    summary = train_judge(
        args.data,
        args.out,
        JudgeConfig(feature_size=args.feature_size),
        JudgeTraining(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            max_per_category=args.max_per_category,
        ),
        device=args.device,
        progress=not args.quiet,
    )
    table = format_training(summary) + f"\nwrote {args.out}"
    _emit(summary, args, table)
    return 0


def run_score(args: argparse.Namespace) -> int:
    from ..eval.judge import format_scores, score_sources

    check_count(args.n, "--n", 1, MAX_SAMPLES)
    check_seed(args.seed)
    check_temperature(args.temperature)
    use_threads(args.threads)
    report = score_sources(
        args.judge,
        args.sources,
        n=args.n,
        seed=args.seed,
        temperature=args.temperature,
        device=args.device,
        progress=not args.quiet,
    )
    _emit(report, args, format_scores(report))
    return 0
