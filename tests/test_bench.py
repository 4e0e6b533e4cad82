"""The benchmark helpers (the benchmarks themselves run in `make bench`, not in the tests)."""
from __future__ import annotations

import time

from course_lib.bench import timed


def test_timed_returns_the_value_and_the_wall_time():
    value, seconds = timed(lambda: time.sleep(0.05) or 42, "cpu")
    assert value == 42 and 0.05 <= seconds < 5
