"""Benchmark groups for `make bench`; each module has `run(ctx) -> list[Row]` (see course_lib.bench)."""
