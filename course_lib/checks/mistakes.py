"""Naming a student's mistake: compare the answer with known wrong versions of the reference before `compare`.

A check lists the classic mistakes of its exercise as {message: wrong_fn} (a wrong_fn takes the same inputs as the
reference and makes that one mistake); when the answer equals one of them, the verdict names the mistake instead of
"values differ".
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from . import compare, diagnose, report

__all__ = ["matching_mistake", "compare_naming_mistakes"]


def matching_mistake(out, inputs: Sequence, mistakes: dict[str, Callable], *, atol: float = 1e-5,
                     rtol: float = 1e-4) -> str | None:
    """The message of the first mistake whose output equals `out` on `inputs`; None when none does."""
    if not isinstance(out, torch.Tensor):
        return None
    for message, wrong in mistakes.items():
        expected = wrong(*inputs)
        if expected.shape == out.shape and diagnose(out, expected, atol=atol, rtol=rtol) is None:
            return message
    return None


def compare_naming_mistakes(name: str, fn: Callable, reference: Callable, make_inputs: Callable[[torch.Generator], Sequence],
                            mistakes: dict[str, Callable], *, seed: int = 0, atol: float = 1e-5, rtol: float = 1e-4,
                            **kwargs) -> bool:
    """`compare`, but a wrong answer on the first input set that equals a known mistake is reported by name."""
    inputs = make_inputs(torch.Generator().manual_seed(seed))  # the same first input set as compare's
    try:
        out = fn(*[x.clone() if isinstance(x, torch.Tensor) else x for x in inputs])
    except Exception:  # noqa: BLE001 (compare below reports not-done and errors in its own words)
        out = None
    if out is not None and diagnose(out, reference(*inputs), atol=atol, rtol=rtol) is not None:
        message = matching_mistake(out, inputs, mistakes, atol=atol, rtol=rtol)
        if message is not None:
            return report(name, message)
    return compare(name, fn, reference, make_inputs, seed=seed, atol=atol, rtol=rtol, **kwargs)
