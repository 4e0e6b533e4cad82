"""Self-checks of the diffusion chapter exercises (02_diffusion), built on `course_lib.checks.compare`.

The checks of the simple loss, the DDPM loop and guidance first look for the known mistakes (a wrong target, a
missing square root, the other guidance convention, ...) and name the one the answer makes. They run an analytic
model, `GaussianOracle`, the exact denoiser of Gaussian data: deterministic, cheap, and it depends on x_t and t.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from . import compare, report

__all__ = ["GaussianOracle", "check_q_sample", "check_posterior_mean", "check_eps_loss", "check_ddim_step",
           "check_ddpm_sample", "check_cfg"]


def _diffusion_inputs(gen: torch.Generator, *, batch: int = 4, size: int = 8):
    """x0 in [-1, 1], a noisy x_t, and the cosine schedule's alpha_bar (T = 1000, float64)."""
    from ..schedulers import alpha_bar_from_betas, cosine_beta_schedule

    alpha_bar = alpha_bar_from_betas(cosine_beta_schedule(1000))
    x0 = torch.rand(batch, 1, size, size, generator=gen) * 2 - 1
    noise = torch.randn(batch, 1, size, size, generator=gen)
    return x0, noise, alpha_bar


class GaussianOracle(torch.nn.Module):
    """The exact minimum-MSE prediction for data x0 ~ N(mu, s^2) per pixel: a "trained model" with no training.

    x_t = a x0 + b eps (a = sqrt(ab_t), b = sqrt(1 - ab_t)) gives E[x0 | x_t] = mu + a s^2 (x_t - a mu) / (a^2 s^2 + b^2);
    the eps, x0 or v it implies is the output. forward(x_t (B, C, H, W), t (B,) or an int) -> (B, C, H, W).
    """

    num_classes = None

    def __init__(self, alpha_bar: torch.Tensor, mu: float, s: float, prediction: str = "eps"):
        super().__init__()
        self.alpha_bar, self.mu, self.s, self.prediction = alpha_bar, mu, s, prediction
        self.dummy = torch.nn.Parameter(torch.zeros(()))  # so next(model.parameters()) has a device

    def forward(self, xt: torch.Tensor, t: torch.Tensor | int, labels=None) -> torch.Tensor:
        ab = self.alpha_bar[t].float().reshape(-1, 1, 1, 1)
        a, b = ab.sqrt(), (1 - ab).sqrt()
        x0 = self.mu + a * self.s**2 * (xt - a * self.mu) / (a**2 * self.s**2 + b**2)
        eps = (xt - a * x0) / b
        return {"eps": eps, "x0": x0, "v": a * eps - b * x0}[self.prediction]


def _known_mistake(fn: Callable, inputs: Sequence, mistakes: dict[str, Callable], *, atol: float = 1e-4) -> str | None:
    """The message of the first mistake whose wrong answer `mistake(*inputs)` fn's output reproduces; None if none
    does, or if fn fails (then `compare` says how)."""
    try:
        out = fn(*[x.clone() if isinstance(x, torch.Tensor) else x for x in inputs])
    except Exception:  # not done yet, or broken: compare reports it
        return None
    if not isinstance(out, torch.Tensor):
        return None
    out = out.detach().double().cpu()
    for message, mistake in mistakes.items():
        wrong = mistake(*inputs).detach().double().cpu()
        if out.shape == wrong.shape and torch.isfinite(out).all() and torch.allclose(out, wrong, atol=atol, rtol=1e-4):
            return message
    return None


def _check(name: str, fn: Callable, reference: Callable, make_inputs: Callable, mistakes: dict[str, Callable], *,
           atol: float, trials: int = 3) -> bool:
    """A named mistake on the first input set, if fn makes one; else `compare`'s verdict."""
    problem = _known_mistake(fn, make_inputs(torch.Generator().manual_seed(0)), mistakes, atol=atol)
    if problem is not None:
        return report(name, problem)
    return compare(name, fn, reference, make_inputs, atol=atol, trials=trials)


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


# ---------------------------------------------------------------- the simple loss (eq. 14)
def _mse(a: torch.Tensor, b: torch.Tensor, *, reduce: str = "mean") -> torch.Tensor:
    """The squared error reduced as the simple loss does ("mean") or as two mistakes do ("sum", "per_image_sum")."""
    squared = (a - b).pow(2)  # (B, C, H, W)
    if reduce == "per_image_sum":
        return squared.flatten(1).sum(1).mean()
    return squared.sum() if reduce == "sum" else squared.mean()


def check_eps_loss(fn: Callable) -> bool:
    """fn(model, x0, t, noise, alpha_bar) -> the simple loss (Ho et al. 2020, eq. 14), a scalar: the mean over
    images and pixels of (noise - model(x_t, t))^2 with x_t from eq. 4. Reference: `diffusion.diffusion_loss`
    with prediction "eps", no weighting, drawing this t and noise from its generator."""
    from ..diffusion import DiffusionConfig, diffusion_loss
    from ..schedulers import scheduler_for

    config = DiffusionConfig(image_size=8, patch_size=1, prediction="eps", loss_weighting="none",
                             target_estimate="sample", mixed_precision=False)
    scheduler = scheduler_for(config)
    model = GaussianOracle(scheduler.alpha_bar, mu=0.2, s=0.5)
    seeds = {}  # id(noise) -> the seed whose generator drew this t and noise, for diffusion_loss to draw them again

    def make_inputs(gen):
        seed = int(torch.randint(2**31, (), generator=gen))
        replay = torch.Generator().manual_seed(seed)
        x0 = torch.rand(4, 1, 8, 8, generator=gen) * 2 - 1
        t = torch.randint(0, config.num_train_timesteps, (4,), generator=replay)  # diffusion_loss's draws, in order
        noise = torch.randn(x0.shape, generator=replay)
        seeds[id(noise)] = seed
        return model, x0, t, noise, scheduler.alpha_bar

    def reference(model, x0, t, noise, alpha_bar):
        return diffusion_loss(model, x0, scheduler, config, generator=torch.Generator().manual_seed(seeds[id(noise)]))

    def xt(x0, t, noise, alpha_bar, *, sqrt=True):
        ab = alpha_bar[t].float().reshape(-1, 1, 1, 1)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise if sqrt else ab * x0 + (1 - ab) * noise

    mistakes = {
        "your loss compares the model's output with x0: this model predicts the noise, so the target is the noise "
        "that made x_t.": lambda m, x0, t, noise, ab: _mse(m(xt(x0, t, noise, ab), t), x0),
        "your loss compares the model's output with x_t: the target is the noise that made x_t.":
            lambda m, x0, t, noise, ab: _mse(m(xt(x0, t, noise, ab), t), xt(x0, t, noise, ab)),
        "your x_t uses alpha_bar_t and 1 - alpha_bar_t as the weights; eq. 4 takes their square roots (they scale "
        "standard deviations, not variances).":
            lambda m, x0, t, noise, ab: _mse(m(xt(x0, t, noise, ab, sqrt=False), t), noise),
        "you summed the squared errors over all images and pixels; the simple loss is their mean.":
            lambda m, x0, t, noise, ab: _mse(m(xt(x0, t, noise, ab), t), noise, reduce="sum"),
        "you summed the squared errors over each image's pixels; the simple loss is the mean over pixels too.":
            lambda m, x0, t, noise, ab: _mse(m(xt(x0, t, noise, ab), t), noise, reduce="per_image_sum"),
    }
    return _check("eps_loss", fn, reference, make_inputs, mistakes, atol=1e-5)


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


# ---------------------------------------------------------------- the DDPM sampling loop (Algorithm 2)
DDPM_CHECK_STEPS = 50  # T of the loop's check: the linear schedule needs T >= 21


def _ddpm_loop(model, betas: torch.Tensor, x_T: torch.Tensor, z: torch.Tensor, *, variance: str = "posterior",
               clip: bool = True, steps: Sequence[int] | None = None, noise_shift: int = 0,
               wrap_at_0: bool = False) -> torch.Tensor:
    """Algorithm 2 as the reference runs it, and, through the keywords, as the mistakes run it: variance "beta"
    (sigma_t^2 = beta_t, t >= 1) or "beta_everywhere" (at t = 0 too), no clipping, other `steps`, the noise
    z[t + noise_shift], alpha_bar_{-1} read as alpha_bar[-1] (Python's last entry) instead of 1."""
    alpha_bar = torch.cumprod(1 - betas.double(), dim=0)
    x = x_T
    for t in steps if steps is not None else range(len(betas) - 1, -1, -1):
        ab_t = alpha_bar[t].item()
        ab_prev = alpha_bar[t - 1].item() if t > 0 or wrap_at_0 else 1.0
        beta_t = 1 - ab_t / ab_prev
        eps = model(x, torch.full((x.shape[0],), t, dtype=torch.long))
        x0 = (x - (1 - ab_t) ** 0.5 * eps) / ab_t**0.5  # eq. 15
        x0 = x0.clamp(-1, 1) if clip else x0
        mean = ab_prev**0.5 * beta_t / (1 - ab_t) * x0 + (1 - beta_t) ** 0.5 * (1 - ab_prev) / (1 - ab_t) * x  # eq. 7
        var = {"posterior": (1 - ab_prev) / (1 - ab_t) * beta_t, "beta": beta_t if t > 0 else 0.0,
               "beta_everywhere": beta_t}[variance]
        x = mean + max(var, 0.0) ** 0.5 * z[t + noise_shift]
    return x


def check_ddpm_sample(fn: Callable) -> bool:
    """fn(model, betas, x_T, z) -> x_0 of DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) with the
    posterior variance beta_tilde_t and x0_hat clipped to [-1, 1], as `DDPMScheduler()` (its defaults) does.
    model(x_t, t (B,) int64) -> eps; betas (T,) float64; x_T (B, C, H, W); z (T, B, C, H, W): z[t] is the
    fresh noise of the step from t (z[0] goes unused). Reference: `sampling.sample` with a `DDPMScheduler`
    whose generator draws exactly these z."""
    from ..sampling import sample
    from ..schedulers import DDPMScheduler

    T = DDPM_CHECK_STEPS
    scheduler = DDPMScheduler(T, "linear", prediction="eps", clip_sample=True)
    model = GaussianOracle(scheduler.alpha_bar, mu=0.3, s=0.8)  # s = 0.8: x0_hat often leaves [-1, 1]
    seeds = {}  # id(z) -> the seed whose generator drew z[T-1], ..., z[1]: the scheduler draws them again

    def make_inputs(gen):
        seed = int(torch.randint(2**31, (), generator=gen))
        replay, shape = torch.Generator().manual_seed(seed), (4, 1, 8, 8)
        z = torch.empty(T, *shape)
        for t in range(T - 1, 0, -1):  # the order in which DDPMScheduler.step draws its noise
            z[t] = torch.randn(shape, generator=replay)
        z[0] = torch.randn(shape, generator=replay)  # unused by the reference; a mistake that adds it shows
        seeds[id(z)] = seed
        return model, scheduler.betas, torch.randn(shape, generator=gen), z

    def reference(model, betas, x_T, z):
        return sample(model, scheduler, xt=x_T, num_steps=T, generator=torch.Generator().manual_seed(seeds[id(z)]))

    def loop(**mistake):
        return lambda model, betas, x_T, z: _ddpm_loop(model, betas, x_T, z, **mistake)

    mistakes = {
        "you added noise at the last step (t = 0), with sigma_t^2 = beta_t. The reference uses the posterior "
        "variance beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t, which is 0 at t = 0: the "
        "last step returns the mean, no noise.": loop(variance="beta_everywhere"),
        "your variance is sigma_t^2 = beta_t. Ho et al. found it as good as the posterior variance, but the "
        "reference (DDPMScheduler) uses beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t.":
            loop(variance="beta"),
        "you did not clip x0_hat: that is Algorithm 2 as printed. The reference clips x0_hat to [-1, 1] before "
        "the posterior mean (DDPMScheduler's clip_sample=True, from the authors' code).": loop(clip=False),
        "at t = 0, alpha_bar[t - 1] is alpha_bar[-1], Python's LAST entry (almost 0): before step 0 comes the "
        "clean image, alpha_bar_{-1} = 1.": loop(wrap_at_0=True),
        "you ran the steps upwards (t = 0, 1, ...): sampling starts from noise at t = T - 1 and goes down to 0.":
            loop(steps=range(0, T)),
        "your loop stops before t = 0 (off by one): the last step, from t = 0 to the clean image, is missing.":
            loop(steps=range(T - 1, 0, -1)),
        "your loop starts at t = T - 2 (off by one): the first step is t = T - 1.": loop(steps=range(T - 2, -1, -1)),
        "you used z[t - 1] at step t (off by one): z[t] is the noise of the step from t.": loop(noise_shift=-1),
    }
    return _check("ddpm_sample", fn, reference, make_inputs, mistakes, atol=1e-4, trials=2)


# ---------------------------------------------------------------- classifier-free guidance
class _TwoOutputs(torch.nn.Module):
    """A conditional "model" with fixed outputs: eps_uncond for the null label, eps_cond for any other, so that
    `sampling.guided_output` combines exactly these two. forward(x (N, ...), t, labels (N,)), N a multiple of B."""

    num_classes = 10

    def __init__(self, eps_uncond: torch.Tensor, eps_cond: torch.Tensor):
        super().__init__()
        self.eps_uncond, self.eps_cond = eps_uncond, eps_cond

    def forward(self, xt, t, labels):
        index = torch.arange(len(labels)) % len(self.eps_cond)  # guided_output stacks [x_t, x_t]
        null = (labels == self.num_classes).reshape(-1, 1, 1, 1)
        return torch.where(null, self.eps_uncond[index], self.eps_cond[index])


def check_cfg(fn: Callable) -> bool:
    """fn(eps_uncond, eps_cond, w) -> classifier-free guidance in the library's convention (`sampling.guided_output`,
    Ho & Salimans 2022, eq. 6 with their w + 1 as our w): w = 0 is the unconditional output, w = 1 the
    conditional one. eps_uncond, eps_cond: (B, C, H, W); w: a float."""
    from ..sampling import guided_output

    def make_inputs(gen):
        eps_uncond, eps_cond = torch.randn(4, 1, 8, 8, generator=gen), torch.randn(4, 1, 8, 8, generator=gen)
        return eps_uncond, eps_cond, round(float(1.5 + 5 * torch.rand((), generator=gen)), 2)

    def reference(eps_uncond, eps_cond, w):
        batch = len(eps_cond)
        return guided_output(_TwoOutputs(eps_uncond, eps_cond), torch.zeros_like(eps_cond),
                             torch.zeros(batch, dtype=torch.long), torch.zeros(batch, dtype=torch.long), w)

    mistakes = {
        "you swapped the two outputs: start from the unconditional one and step towards the conditional one.":
            lambda u, c, w: c + w * (u - c),
        "this is the paper's convention, (1 + w) eps_cond - w eps_uncond. The course's (sampling.guided_output) "
        "has w = 1 for the conditional model alone: its w is the paper's w + 1.": lambda u, c, w: u + (1 + w) * (c - u),
        "you returned only the guidance direction, w (eps_cond - eps_uncond): add it to the unconditional output.":
            lambda u, c, w: w * (c - u),
    }
    return _check("cfg", fn, reference, make_inputs, mistakes, atol=1e-5)
