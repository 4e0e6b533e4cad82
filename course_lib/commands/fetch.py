"""`python -m course_lib fetch`: fill the data/ cache for offline use (course_lib.data.fetch_all)."""
from __future__ import annotations

__all__ = ["add", "run"]


def add(sub) -> None:
    p = sub.add_parser("fetch", help="download datasets, weights and paintings into data/ for offline use")
    p.add_argument("--data", default=None,
                   help="cache folder (default: COURSE_DATA, else the repository's data/, where notebooks look)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a download gives up")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..data import fetch_all
    fetch_all(root=args.data, timeout=args.timeout)
    return 0
