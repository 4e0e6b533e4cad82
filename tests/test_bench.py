"""The benchmark helpers (the benchmarks themselves run in `make bench`, not in the tests)."""
from __future__ import annotations

import time

from course_lib.bench import timed


def test_timed_returns_the_value_and_the_wall_time():
    value, seconds = timed(lambda: time.sleep(0.05) or 42, "cpu")
    assert value == 42 and 0.05 <= seconds < 5


def test_judged_rows_give_each_judge_s_scores_with_their_targets():
    from course_lib.bench import judged_rows

    scores = {"fid": 39.7, "recognizable": 0.86, "classes": 10, "fid_second": 2.3, "recognizable_second": 0.82,
              "classes_second": 10}
    rows = judged_rows("diffusion", "autoguided", scores, 1000, {"fid": "<= 40", "recognizable_second": ">= 0.70"})
    assert [(r.what, r.figure, r.target) for r in rows] == [
        ("autoguided: FID (judge)", 39.7, "<= 40"), ("autoguided: recognizable (judge)", 0.86, ""),
        ("autoguided: classes (judge)", 10, ""), ("autoguided: FID (second judge)", 2.3, ""),
        ("autoguided: recognizable (second judge)", 0.82, ">= 0.70"), ("autoguided: classes (second judge)", 10, "")]
    assert len(judged_rows("gan", "x", {"fid": 1.0, "recognizable": 0.5, "classes": 3}, 10)) == 3  # one judge only
