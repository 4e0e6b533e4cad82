"""Self-checks of the diffusion chapter exercises (02_diffusion), built on `course_lib.checks.compare`."""
from __future__ import annotations

from typing import Callable

import torch

from . import compare

__all__ = ["check_q_sample", "check_posterior_mean", "check_ddim_step"]


def _diffusion_inputs(gen: torch.Generator, *, batch: int = 4, size: int = 8):
    """x0 in [-1, 1], a noisy x_t, and the cosine schedule's alpha_bar (T = 1000, float64)."""
    from ..schedulers import alpha_bar_from_betas, cosine_beta_schedule

    alpha_bar = alpha_bar_from_betas(cosine_beta_schedule(1000))
    x0 = torch.rand(batch, 1, size, size, generator=gen) * 2 - 1
    noise = torch.randn(batch, 1, size, size, generator=gen)
    return x0, noise, alpha_bar


def check_q_sample(fn: Callable) -> bool:
    """fn(x0, t, alpha_bar, noise) -> x_t = sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) noise, t: (B,) ints."""
    from ..schedulers import q_sample

    def make_inputs(gen):
        x0, noise, alpha_bar = _diffusion_inputs(gen)
        t = torch.randint(0, 1000, (x0.shape[0],), generator=gen)
        return x0, t, alpha_bar, noise

    def reference(x0, t, alpha_bar, noise):
        return q_sample(x0, t, alpha_bar=alpha_bar, noise=noise)

    return compare("q_sample", fn, reference, make_inputs, atol=1e-5)


def check_posterior_mean(fn: Callable) -> bool:
    """fn(x0, xt, t, alpha_bar) -> the mean of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eq. 7), t >= 1 an int."""
    from ..schedulers import DDPMScheduler

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
    from ..schedulers import DDIMScheduler

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
