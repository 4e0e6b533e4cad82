"""Noise schedules and the two samplers of the diffusion chapter (used by `course_lib.sampling` and `.diffusion`).

Notation (Ho et al. 2020): beta_t is the variance added at step t, alpha_t = 1 - beta_t and
alpha_bar_t = prod_{s <= t} alpha_s, so that q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I).
Time steps are 0-indexed as in diffusers: t = 0 .. T-1 here is the paper's t = 1 .. T, and "before step 0"
(alpha_bar = 1) is the clean image.

A scheduler is a plain object (the diffusers design): `set_timesteps(n)` picks the n steps to sample with,
`.timesteps` lists them from noisiest to cleanest, `step(model_output, t, x, generator=...)` goes one step
back and returns `(x_prev, x0_pred)`, `add_noise(x0, noise, t)` samples q(x_t | x_0). DDPM and DDIM differ
only in `step`, so one sampling loop (`course_lib.sampling.sample`) drives both.

Schedules are pure functions computed in float64. The schedulers keep them as float64 tensors on the CPU,
look up the entries a step needs and cast them to the input's device and dtype (MPS has no float64).
"""
from __future__ import annotations

import math

import torch

from .runtime import check_choice

__all__ = [
    "BETA_SCHEDULES", "PREDICTIONS", "LINEAR_MIN_STEPS",
    "linear_beta_schedule", "cosine_beta_schedule", "make_beta_schedule",
    "alpha_bar_from_betas", "snr", "q_sample", "predict_x0", "predict_eps",
    "DDPMScheduler", "DDIMScheduler", "SAMPLERS", "scheduler_for",
]

BETA_SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("eps", "x0", "v")  # what the network is trained to output
LINEAR_MIN_STEPS = 21  # the linear schedule's last beta, 0.02 * 1000 / T, is < 1 only for T > 20


def linear_beta_schedule(num_steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Ho et al. 2020, Sec. 4: beta_t rises linearly from 1e-4 to 0.02 over T = 1000 steps. (T,) float64.

    The end points are rescaled by 1000 / T so that other T give about the same alpha_bar curve. The last
    beta is then 20 / T, which reaches 1 at T = 20 (alpha_bar hits 0, then turns negative and its square root
    NaN), so T must be at least `LINEAR_MIN_STEPS` = 21; use the cosine schedule for fewer steps.
    """
    if num_steps < LINEAR_MIN_STEPS:
        raise ValueError(
            f"the linear schedule needs T >= {LINEAR_MIN_STEPS} steps, got T = {num_steps}: its betas are rescaled "
            f"by 1000 / T, so the last one, {beta_end} * 1000 / T, reaches 1 and alpha_bar becomes 0 or NaN. "
            f"Use T >= {LINEAR_MIN_STEPS} or the cosine schedule (beta_schedule='cosine'), which works for any T >= 2")
    scale = 1000 / num_steps
    return torch.linspace(beta_start * scale, beta_end * scale, num_steps, dtype=torch.float64)


def cosine_beta_schedule(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal 2021, eq. 17: alpha_bar(t) = f(t) / f(0), f(t) = cos^2((t / T + s) / (1 + s) * pi / 2).

    beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}, clipped at 0.999 near t = T. (T,) float64.
    """
    steps = torch.arange(num_steps + 1, dtype=torch.float64)
    f = torch.cos((steps / num_steps + s) / (1 + s) * math.pi / 2) ** 2  # (T + 1,)
    alpha_bar = f / f[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)


def make_beta_schedule(name: str, num_steps: int) -> torch.Tensor:
    """The named beta schedule ("linear" or "cosine") for `num_steps` steps, (T,) float64."""
    check_choice("beta schedule", name, BETA_SCHEDULES)
    if not isinstance(num_steps, int) or num_steps < 2:
        raise ValueError(f"a schedule needs an int number of steps >= 2, got {num_steps!r}")
    return linear_beta_schedule(num_steps) if name == "linear" else cosine_beta_schedule(num_steps)


def alpha_bar_from_betas(betas: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s <= t} (1 - beta_s), (T,) float64 (Ho et al. 2020, above eq. 4)."""
    return torch.cumprod(1 - betas.double(), dim=0)


def snr(alpha_bar: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio of x_t: SNR(t) = alpha_bar_t / (1 - alpha_bar_t) (Kingma et al. 2021)."""
    return alpha_bar / (1 - alpha_bar)


def _at(values: torch.Tensor, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
    """values[t] as a (B, 1, 1, 1) tensor (or a scalar tensor for an int t) on like's device and dtype."""
    if isinstance(t, int) or (isinstance(t, torch.Tensor) and t.ndim == 0):
        return values[int(t)].to(device=like.device, dtype=like.dtype)
    picked = values[t.long().cpu()]  # (B,)
    return picked.to(device=like.device, dtype=like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def q_sample(x0: torch.Tensor, t: torch.Tensor | int, *, alpha_bar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Ho et al. 2020, eq. 4: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, eps ~ N(0, I).

    x0, noise: (B, C, H, W); t: (B,) int time steps or one int; alpha_bar: (T,) schedule.
    """
    ab = _at(alpha_bar, t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def predict_x0(model_output: torch.Tensor, xt: torch.Tensor, alpha_bar_t: torch.Tensor, prediction: str) -> torch.Tensor:
    """The clean image the network's output implies (Ho et al. 2020, eq. 15 for eps; Salimans & Ho 2022 for v).

    eps: x0 = (x_t - sqrt(1 - ab) eps) / sqrt(ab);  x0: the output itself;  v: x0 = sqrt(ab) x_t - sqrt(1 - ab) v.
    """
    check_choice("prediction", prediction, PREDICTIONS)
    if prediction == "eps":
        return (xt - (1 - alpha_bar_t).sqrt() * model_output) / alpha_bar_t.sqrt()
    if prediction == "x0":
        return model_output
    return alpha_bar_t.sqrt() * xt - (1 - alpha_bar_t).sqrt() * model_output  # v


def predict_eps(x0: torch.Tensor, xt: torch.Tensor, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    """The noise that takes x0 to x_t (eq. 4 solved for eps): eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab)."""
    return (xt - alpha_bar_t.sqrt() * x0) / (1 - alpha_bar_t).sqrt()


class _Scheduler:
    """What DDPM and DDIM share: the schedule, the sampling time steps and `add_noise`."""

    def __init__(self, num_train_timesteps: int = 1000, beta_schedule: str = "cosine", *,
                 prediction: str = "eps", clip_sample: bool = True):
        check_choice("prediction", prediction, PREDICTIONS)
        self.num_train_timesteps = num_train_timesteps
        self.beta_schedule, self.prediction, self.clip_sample = beta_schedule, prediction, clip_sample
        self.betas = make_beta_schedule(beta_schedule, num_train_timesteps)  # (T,) float64
        self.alphas = 1 - self.betas
        self.alpha_bar = alpha_bar_from_betas(self.betas)
        self.set_timesteps(num_train_timesteps)

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Sample with `num_inference_steps` evenly spaced steps from T-1 down to 0, rounded: diffusers'
        "linspace" spacing (T = 1000, 50 steps: 999, 979, ..., 20, 0). Both ends are always sampled: the first
        step is the pure-noise step T-1, the last is step 0. (Not "trailing", Lin et al. 2024: that grid
        is T - 1, T - 1 - T/n, ... and stops at T/n - 1, here 999, 979, ..., 39, 19.)"""
        T = self.num_train_timesteps
        if not isinstance(num_inference_steps, int) or not 1 <= num_inference_steps <= T:
            raise ValueError(f"number of sampling steps must be an int in [1, {T}] (the model's T), "
                             f"got {num_inference_steps!r}")
        self.num_inference_steps = num_inference_steps
        self.timesteps = torch.linspace(T - 1, 0, num_inference_steps, dtype=torch.float64).round().long()
        prev = torch.cat([self.timesteps[1:], torch.tensor([-1])])
        self._prev = {int(t): int(p) for t, p in zip(self.timesteps, prev)}

    def previous_timestep(self, t: int) -> int:
        """The step sampled after t (-1 after the last one: the clean image)."""
        if int(t) not in self._prev:
            raise ValueError(f"time step {int(t)} is not one of this scheduler's {self.num_inference_steps} "
                             f"sampling steps: call set_timesteps(n) and iterate over .timesteps")
        return self._prev[int(t)]

    def alpha_bar_at(self, t: int, like: torch.Tensor) -> torch.Tensor:
        """alpha_bar_t on like's device and dtype; alpha_bar_{-1} = 1 (the clean image)."""
        return _at(self.alpha_bar, t, like) if int(t) >= 0 else torch.ones((), device=like.device, dtype=like.dtype)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Sample q(x_t | x_0) (Ho et al. 2020, eq. 4)."""
        return q_sample(x0, t, alpha_bar=self.alpha_bar, noise=noise)

    def predict_x0(self, model_output: torch.Tensor, t: int, x: torch.Tensor) -> torch.Tensor:
        """The clean image implied by the model output at step t, clipped to [-1, 1] if `clip_sample`."""
        x0 = predict_x0(model_output, x, self.alpha_bar_at(t, x), self.prediction)
        return x0.clamp(-1, 1) if self.clip_sample else x0

    def step(self, model_output: torch.Tensor, t: int, x: torch.Tensor, *,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One step back, x_t -> x_prev ~ N(mean, std^2): returns (x_prev, x0_pred)."""
        mean, std, x0_pred = self.step_distribution(model_output, t, x)
        if float(std) == 0.0:
            return mean, x0_pred
        noise = torch.randn(x.shape, generator=generator, device=_gen_device(generator, x)).to(x.device, x.dtype)
        return mean + std * noise, x0_pred

    def step_distribution(self, model_output, t, x):  # pragma: no cover - defined by each scheduler
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(T={self.num_train_timesteps}, {self.beta_schedule}, prediction="
                f"{self.prediction!r}, steps={self.num_inference_steps})")


def _gen_device(generator: torch.Generator | None, x: torch.Tensor) -> torch.device:
    """Draw noise where the generator lives (a CPU generator gives the same numbers on every device)."""
    return generator.device if generator is not None else x.device


class DDPMScheduler(_Scheduler):
    """Ancestral sampling from p(x_{t-1} | x_t) (Ho et al. 2020, Algorithm 2), on any subset of the T steps
    (with fewer steps the betas are those of the respaced chain, Nichol & Dhariwal 2021, Sec. 4).

    Algorithm 2 computes the mean from eps and never clips; clipping x0_pred to [-1, 1] (`clip_sample`, the
    default) comes from the authors' reference code (diffusion_tf, `p_sample(..., clip_denoised=True)`),
    which writes the mean as the posterior mean of the clipped x0_pred. Unclipped, both give the same step.
    """

    def step_distribution(self, model_output: torch.Tensor, t: int, x: torch.Tensor):
        """(mean, std, x0_pred) of p(x_prev | x_t) = q(x_prev | x_t, x0 = x0_pred), Ho et al. 2020, eqs. 6-7."""
        prev = self.previous_timestep(t)
        # 1. alpha_bar_t, alpha_bar_prev, and the beta of this (possibly respaced) step: 1 - ab_t / ab_prev
        ab_t, ab_prev = self.alpha_bar_at(t, x), self.alpha_bar_at(prev, x)
        alpha_t = ab_t / ab_prev
        beta_t = 1 - alpha_t
        # 2. the clean image the network predicts (eq. 15 for eps), clipped to [-1, 1] (reference code, not Algorithm 2)
        x0_pred = self.predict_x0(model_output, t, x)
        # 3. posterior mean, eq. 7: mu = sqrt(ab_prev) beta_t / (1 - ab_t) x0 + sqrt(alpha_t) (1 - ab_prev) / (1 - ab_t) x_t
        mean = (ab_prev.sqrt() * beta_t / (1 - ab_t)) * x0_pred + (alpha_t.sqrt() * (1 - ab_prev) / (1 - ab_t)) * x
        # 4. posterior variance, eq. 7: beta_tilde = (1 - ab_prev) / (1 - ab_t) beta_t (0 at the last step)
        variance = (1 - ab_prev) / (1 - ab_t) * beta_t
        return mean, variance.clamp(min=0).sqrt(), x0_pred


class DDIMScheduler(_Scheduler):
    """Song et al. 2021 (DDIM): a non-Markovian sampler of the same trained model. eta = 0 is deterministic;
    eta = 1 over all T steps is DDPM.

    The eps of the step is re-derived from the clipped x0_pred (not the network's own eps), so that x0_pred and
    eps describe the same x_t: diffusers' `DDIMScheduler.step(..., use_clipped_model_output=True)` (its default,
    False, pairs the clipped x0 with the unclipped eps). With `clip_sample=False` the two are the same.
    """

    def __init__(self, num_train_timesteps: int = 1000, beta_schedule: str = "cosine", *, eta: float = 0.0,
                 prediction: str = "eps", clip_sample: bool = True):
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"DDIM eta must be in [0, 1] (0: deterministic, 1: DDPM-like), got {eta}")
        self.eta = eta
        super().__init__(num_train_timesteps, beta_schedule, prediction=prediction, clip_sample=clip_sample)

    def step_distribution(self, model_output: torch.Tensor, t: int, x: torch.Tensor):
        """(mean, std, x0_pred) of the DDIM step, Song et al. 2021, eq. 12."""
        prev = self.previous_timestep(t)
        # 1. alpha_bar at this step and the previous one (1 after the last step)
        ab_t, ab_prev = self.alpha_bar_at(t, x), self.alpha_bar_at(prev, x)
        # 2. predicted x0 ("predicted x_0" in eq. 12), clipped, and the eps that points from it to x_t
        #    (eps from the clipped x0: diffusers' use_clipped_model_output=True)
        x0_pred = self.predict_x0(model_output, t, x)
        eps = predict_eps(x0_pred, x, ab_t)
        # 3. sigma_t(eta), eq. 16: eta * sqrt((1 - ab_prev) / (1 - ab_t)) * sqrt(1 - ab_t / ab_prev)
        sigma = self.eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)).clamp(min=0).sqrt()
        # 4. eq. 12: x_prev = sqrt(ab_prev) x0_pred + sqrt(1 - ab_prev - sigma^2) eps + sigma z
        mean = ab_prev.sqrt() * x0_pred + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
        return mean, sigma, x0_pred

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", eta={self.eta})"


SAMPLERS = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler}


def scheduler_for(config, sampler: str = "ddim", *, eta: float = 0.0, clip_sample: bool = True) -> _Scheduler:
    """A DDPMScheduler or DDIMScheduler (sampler "ddpm" | "ddim") with the schedule and prediction type of
    `config` (a DiffusionConfig: its num_train_timesteps, beta_schedule and prediction)."""
    check_choice("sampler", sampler, SAMPLERS)
    kwargs = dict(prediction=config.prediction, clip_sample=clip_sample)
    if sampler == "ddim":
        kwargs["eta"] = eta
    elif eta != 0.0:
        raise ValueError("eta is a DDIM setting: use sampler 'ddim' (DDPM always adds its posterior noise)")
    return SAMPLERS[sampler](config.num_train_timesteps, config.beta_schedule, **kwargs)
