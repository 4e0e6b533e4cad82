"""course_lib.checks: the verdicts an exercise can get, and the fallback that keeps an exercise notebook running."""
from __future__ import annotations

import pytest
import torch

from course_lib import checks


def _double(x):
    return 2 * x


def _unfinished(x):
    raise NotImplementedError("Exercise my_double: replace this line with your code (the hint above shows the way).")


def _inputs(gen):
    return (torch.randn(3, generator=gen),)


@pytest.fixture
def lenient(monkeypatch):
    monkeypatch.setenv("COURSE_CHECKS_STRICT", "0")


def test_a_stub_is_not_done_yet_and_names_the_function(lenient, capsys):
    assert checks.compare("double", _unfinished, _double, _inputs) is False
    out = capsys.readouterr().out
    assert out.startswith("⏳ double: not done yet. Exercise my_double: replace this line") and "❌" not in out


def test_a_wrong_answer_is_a_cross_with_the_reason(lenient, capsys):
    assert checks.compare("double", lambda x: -2 * x, _double, _inputs) is False
    assert capsys.readouterr().out.startswith("❌ double: right size, wrong sign.")


@pytest.mark.parametrize("fn", [_unfinished, lambda x: -2 * x], ids=["not done", "wrong"])
def test_strict_mode_raises_on_anything_but_a_pass(monkeypatch, fn):
    monkeypatch.setenv("COURSE_CHECKS_STRICT", "1")
    with pytest.raises(checks.CheckFailed):
        checks.compare("double", fn, _double, _inputs)


def test_yours_or_reference_keeps_a_passing_function(capsys):
    assert checks.yours_or_reference(True, _unfinished, _double) is _unfinished
    assert capsys.readouterr().out == ""


def test_yours_or_reference_falls_back_and_says_so(capsys):
    assert checks.yours_or_reference(False, _unfinished, _double) is _double
    assert "use course_lib's `_double` until `_unfinished` passes its check" in capsys.readouterr().out


def test_two_numbers_are_called_off_by_a_factor_only_when_it_is_a_whole_number():
    assert "constant factor" in checks.diagnose(torch.tensor(12.0), torch.tensor(3.0))  # a sum over 4 for a mean
    assert "constant factor" in checks.diagnose(torch.tensor(1.5), torch.tensor(3.0))  # a missing x 2
    problem = checks.diagnose(torch.tensor(3.7), torch.tensor(3.0))
    assert "constant factor" not in problem and "3.7" in problem and "expected 3" in problem
