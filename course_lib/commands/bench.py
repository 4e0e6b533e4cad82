"""`python -m course_lib bench` (`make bench`): the benchmark table (course_lib.bench.run_benchmarks)."""
from __future__ import annotations

__all__ = ["add", "run"]


def add(sub) -> None:
    p = sub.add_parser("bench", help="run the benchmarks, print a table, write bench/results.json")
    p.add_argument("--only", nargs="*", default=None, help="benchmark groups to run (default: all)")
    p.add_argument("--out", default="bench/results.json")
    p.add_argument("--assets", default=None,
                   help="folder with style paintings (default: ../shared/assets/styles if present)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..bench import run_benchmarks
    run_benchmarks(only=args.only, out=args.out, assets=args.assets)
    return 0
