"""`python -m course_lib.metrics [--second] [--steps N] [--seconds S]`: train a digit judge and write its checkpoint
(course_lib.digit_classifier.train_judge). course_lib/metrics.py runs `main` when started with `-m`."""
from __future__ import annotations

import argparse
import json
import sys

from ..defaults import JUDGE_CHECKPOINT, JUDGE_STEPS, SECOND_JUDGE_CHECKPOINT

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_lib.metrics", description=main.__doc__)
    parser.add_argument("--second", action="store_true",
                        help="train the second, independent judge (all-conv, elastic distortion and erasing, seed 1)")
    parser.add_argument("--steps", type=int, default=JUDGE_STEPS)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None, help="default: the judge's own, 0 (first) or 1 (--second)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=None,
                        help=f"default: data/checkpoints/{JUDGE_CHECKPOINT} ({SECOND_JUDGE_CHECKPOINT} with --second)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m course_lib.metrics [--second] [--steps N] [--seconds S]`: train a judge and write its checkpoint."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    from ..digit_classifier import train_judge
    _, record = train_judge(which="second" if args.second else "first", steps=args.steps, seconds=args.seconds,
                            seed=args.seed, out=args.out, device=args.device,
                            command=" ".join(["python -m course_lib.metrics", *argv]))
    print(json.dumps(record, indent=2))
    return 0
