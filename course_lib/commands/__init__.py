"""The command line: python -m course_lib fetch|gan|diffusion|stylize|fast-style|upscale|super-res|bench|gpu-report.

Every training command takes `--seconds S` or `--steps N` to override the profile's budget, and `--seed`.
Each command group is one module here with `add(subparsers)` (its arguments) and `run(args)` (what it does); the
work itself is done by library functions, which these modules import only when a command runs, so `--help`
never loads torch. No library module imports argparse: the command line lives here, apart from the algorithms.
"""
from __future__ import annotations

import argparse
import sys

from . import bench, diffusion, fast_style, fetch, gan, gpu_report, style, super_resolution

__all__ = ["main", "build_parser"]

GROUPS = (fetch, gan, diffusion, style, fast_style, super_resolution, bench, gpu_report)  # the order of `--help`


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_lib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add(sub)  # each sets `run` on its parser
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
