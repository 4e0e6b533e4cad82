"""Self-checks for the notebooks' exercises.

`check_<name>(fn)` runs the student's `fn` against the reference implementation on random inputs and
prints a clear pass, "not done yet" while `fn` still raises the exercise edition's NotImplementedError, or a
diagnostic that helps (wrong shape, wrong sign, off by a constant factor, wrong reduction, NaN) without
revealing the solution. It returns True/False and never raises, so an unfinished exercise does not stop the
notebook, and `yours_or_reference` lets later cells fall back to the course_lib reference. With
COURSE_CHECKS_STRICT=1 (set by `make test` for the solutions edition) anything but a pass raises
`AssertionError`, so the solutions prove that they pass.

Each chapter's checks live in their own module, built on `compare`: `checks.gan` (01), `checks.diffusion` (02),
`checks.content` (03), `checks.style` (04) and `checks.editing` (05).
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import torch

__all__ = ["CheckFailed", "compare", "report", "not_done", "diagnose", "yours_or_reference"]


class CheckFailed(AssertionError):
    """Raised instead of printing when COURSE_CHECKS_STRICT=1."""


def _strict() -> bool:
    return os.environ.get("COURSE_CHECKS_STRICT", "0") == "1"


def report(name: str, problem: str | None, *, mark: str = "❌") -> bool:
    """Print the verdict for exercise `name`; `problem` is None on success."""
    if problem is None:
        print(f"✅ {name}: correct.")
        return True
    message = f"{mark} {name}: {problem}"
    if _strict():
        raise CheckFailed(message)
    print(message)
    return False


def not_done(name: str, fn: Callable, error: NotImplementedError) -> bool:
    """The verdict for an exercise whose code still raises NotImplementedError (the exercise edition's stub,
    whose message names the function to write)."""
    what = str(error) or f"`{getattr(fn, '__name__', 'your function')}` still raises NotImplementedError."
    return report(name, f"not done yet. {what} Then run the cell again.", mark="⏳")


def yours_or_reference(passed: bool, yours: Callable, reference: Callable) -> Callable:
    """`yours` once its check passed, else the course_lib `reference`, saying so: the cells below run either way."""
    if passed:
        return yours
    print(f"ℹ️ The cells below use course_lib's `{reference.__name__}` until `{yours.__name__}` passes its check.")
    return reference


def diagnose(out, expected: torch.Tensor, *, atol: float = 1e-5, rtol: float = 1e-4) -> str | None:
    """Why `out` is not `expected`, in words a student can act on; None when they match."""
    if not isinstance(out, torch.Tensor):
        return f"expected a torch.Tensor, got {type(out).__name__}."
    if out.shape != expected.shape:
        hint = ""
        if out.numel() == 1 and expected.numel() > 1:
            hint = " (did you reduce over a dimension that should be kept?)"
        elif expected.numel() == 1 and out.numel() > 1:
            hint = " (the result should be reduced to a single number)"
        return f"wrong shape: expected {tuple(expected.shape)}, got {tuple(out.shape)}{hint}."
    out, expected = out.detach().double().cpu(), expected.detach().double().cpu()
    if not torch.isfinite(out).all():
        return "the result contains NaN or inf (a log of 0, or a division by 0?)."
    if torch.allclose(out, expected, atol=atol, rtol=rtol):
        return None
    if torch.allclose(out, -expected, atol=atol, rtol=rtol):
        return "right size, wrong sign."
    scale = (out * expected).sum() / (expected * expected).sum().clamp_min(1e-30)
    if abs(scale.item()) > 1e-8 and torch.allclose(out, scale * expected, atol=atol, rtol=1e-3) and \
            (expected.numel() > 1 or _whole_ratio(scale.item())):  # two numbers always differ by some factor
        return f"off by a constant factor: your values are {scale.item():.4g} x the expected ones " \
               f"(a mean where a sum belongs, or a missing normalization?)."
    err = (out - expected).abs().max().item()
    if expected.numel() == 1:
        return f"your value {out.item():.6g} is not the expected {expected.item():.6g}."
    return f"values differ from the reference (largest difference {err:.3g})."


def _whole_ratio(scale: float) -> bool:
    """scale or 1/scale is a whole number >= 2 (a sum over N elements where a mean belongs, a missing 1/2, ...)."""
    larger = max(abs(scale), 1 / abs(scale))
    return larger >= 1.999 and abs(larger - round(larger)) < 1e-3 * larger


def compare(name: str, fn: Callable, reference: Callable, make_inputs: Callable[[torch.Generator], Sequence],
            *, trials: int = 3, seed: int = 0, atol: float = 1e-5, rtol: float = 1e-4, announce: bool = True) -> bool:
    """Run `fn(*inputs)` and `reference(*inputs)` on `trials` random input sets and report the first mismatch.
    announce=False: stay silent on success (for a check that runs more tests after this one)."""
    gen = torch.Generator().manual_seed(seed)
    for trial in range(trials):
        inputs = make_inputs(gen)
        copies = [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]
        try:
            out = fn(*copies)
        except NotImplementedError as error:
            return not_done(name, fn, error)
        except Exception as e:  # the student's code may fail in any way; say how
            return report(name, f"your function raised {type(e).__name__}: {e}")
        if any(isinstance(a, torch.Tensor) and not torch.equal(a, b) for a, b in zip(copies, inputs)):
            return report(name, "your function changed its input in place; compute a new tensor instead.")
        problem = diagnose(out, reference(*inputs), atol=atol, rtol=rtol)
        if problem is not None:
            return report(name, problem + ("" if trial == 0 else f" (on random input set {trial + 1})"))
    return report(name, None) if announce else True
