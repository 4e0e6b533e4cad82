"""Self-checks for the notebooks' exercises.

`check_<name>(fn)` runs the student's `fn` against the reference implementation on random inputs and
prints a clear pass, or a diagnostic that helps (wrong shape, wrong sign, off by a constant factor, wrong
reduction, NaN) without revealing the solution. It returns True/False and never raises, so an unfinished
exercise does not stop the notebook; with COURSE_CHECKS_STRICT=1 (set by `make test`) a failure raises
`AssertionError`, so the source notebooks prove that their solutions pass.

Chapters add their checks in their own section below, built on `compare`.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import torch

__all__ = ["CheckFailed", "compare", "report", "diagnose"]


class CheckFailed(AssertionError):
    """Raised instead of printing when COURSE_CHECKS_STRICT=1."""


def _strict() -> bool:
    return os.environ.get("COURSE_CHECKS_STRICT", "0") == "1"


def report(name: str, problem: str | None) -> bool:
    """Print the verdict for exercise `name`; `problem` is None on success."""
    if problem is None:
        print(f"✅ {name}: correct.")
        return True
    message = f"❌ {name}: {problem}"
    if _strict():
        raise CheckFailed(message)
    print(message)
    return False


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
    if abs(scale.item()) > 1e-8 and torch.allclose(out, scale * expected, atol=atol, rtol=1e-3):
        return f"off by a constant factor: your values are {scale.item():.4g} x the expected ones " \
               f"(a mean where a sum belongs, or a missing normalization?)."
    err = (out - expected).abs().max().item()
    return f"values differ from the reference (largest difference {err:.3g})."


def compare(name: str, fn: Callable, reference: Callable, make_inputs: Callable[[torch.Generator], Sequence],
            *, trials: int = 3, seed: int = 0, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """Run `fn(*inputs)` and `reference(*inputs)` on `trials` random input sets and report the first mismatch."""
    gen = torch.Generator().manual_seed(seed)
    for trial in range(trials):
        inputs = make_inputs(gen)
        copies = [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]
        try:
            out = fn(*copies)
        except NotImplementedError as e:
            return report(name, f"not implemented yet. {e}".strip())
        except Exception as e:  # the student's code may fail in any way; say how
            return report(name, f"your function raised {type(e).__name__}: {e}")
        if any(isinstance(a, torch.Tensor) and not torch.equal(a, b) for a, b in zip(copies, inputs)):
            return report(name, "your function changed its input in place; compute a new tensor instead.")
        problem = diagnose(out, reference(*inputs), atol=atol, rtol=rtol)
        if problem is not None:
            return report(name, problem + ("" if trial == 0 else f" (on random input set {trial + 1})"))
    return report(name, None)


# ---------------------------------------------------------------- GAN chapter (01_gan)

# ---------------------------------------------------------------- diffusion chapter (02_diffusion)
__all__ += ["check_q_sample", "check_posterior_mean", "check_ddim_step"]


def _diffusion_inputs(gen: torch.Generator, *, batch: int = 4, size: int = 8):
    """x0 in [-1, 1], a noisy x_t, and the cosine schedule's alpha_bar (T = 1000, float64)."""
    from .schedulers import alpha_bar_from_betas, cosine_beta_schedule

    alpha_bar = alpha_bar_from_betas(cosine_beta_schedule(1000))
    x0 = torch.rand(batch, 1, size, size, generator=gen) * 2 - 1
    noise = torch.randn(batch, 1, size, size, generator=gen)
    return x0, noise, alpha_bar


def check_q_sample(fn: Callable) -> bool:
    """fn(x0, t, alpha_bar, noise) -> x_t = sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) noise, t: (B,) ints."""
    from .schedulers import q_sample

    def make_inputs(gen):
        x0, noise, alpha_bar = _diffusion_inputs(gen)
        t = torch.randint(0, 1000, (x0.shape[0],), generator=gen)
        return x0, t, alpha_bar, noise

    def reference(x0, t, alpha_bar, noise):
        return q_sample(x0, t, alpha_bar=alpha_bar, noise=noise)

    return compare("q_sample", fn, reference, make_inputs, atol=1e-5)


def check_posterior_mean(fn: Callable) -> bool:
    """fn(x0, xt, t, alpha_bar) -> the mean of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eq. 7), t >= 1 an int."""
    from .schedulers import DDPMScheduler

    scheduler = DDPMScheduler(1000, "cosine", prediction="x0", clip_sample=False)

    def make_inputs(gen):
        x0, noise, alpha_bar = _diffusion_inputs(gen)
        t = int(torch.randint(1, 999, (), generator=gen))
        return x0, noise, t, alpha_bar  # noise plays x_t: any x_t will do for the mean

    def reference(x0, xt, t, alpha_bar):
        scheduler.set_timesteps(1000)  # every step: the previous one of t is t - 1
        return scheduler.step_distribution(x0, t, xt)[0]

    return compare("posterior_mean", fn, reference, make_inputs, atol=1e-4)


def check_ddim_step(fn: Callable) -> bool:
    """fn(eps, xt, t, t_prev, alpha_bar) -> x_{t_prev} of a deterministic DDIM step (eta = 0, Song et al. 2021,
    eq. 12), ints t > t_prev >= 0."""
    from .schedulers import DDIMScheduler

    scheduler = DDIMScheduler(1000, "cosine", eta=0.0, clip_sample=False)
    scheduler.set_timesteps(10)

    def make_inputs(gen):
        _, eps, alpha_bar = _diffusion_inputs(gen)
        xt = torch.randn(eps.shape, generator=gen)
        t = int(scheduler.timesteps[int(torch.randint(1, 9, (), generator=gen))])  # skip the pure-noise step
        return eps, xt, t, scheduler.previous_timestep(t), alpha_bar

    def reference(eps, xt, t, t_prev, alpha_bar):
        return scheduler.step_distribution(eps, t, xt)[0]

    return compare("ddim_step", fn, reference, make_inputs, atol=1e-4)


# ---------------------------------------------------------------- content loss chapter (03_content_loss)

# ---------------------------------------------------------------- style transfer chapter (04_style_transfer)
