"""The one sampling loop of the diffusion chapter, for any scheduler (DDPM, DDIM), with its guidance.

- `sample(model, scheduler, ...)`: x_T ~ N(0, I), then `scheduler.step` once per time step; any scheduler
  (DDPM, DDIM) plugs in (the diffusers pipeline design).
- `guided_output`: classifier-free guidance (Ho & Salimans 2022); `AutoGuidance` guides any model,
  unconditional ones too, by a weaker copy of itself (Karras et al. 2024).
The editors (inpainting, SDEdit) in `course_lib.diffusion_edit` run the same loop body, `_denoise`.

Images are (B, 1, H, W) in [-1, 1].
"""
from __future__ import annotations

import torch

from .runtime import progress as progress_bar

__all__ = ["guided_output", "AutoGuidance", "sample"]


def guided_output(model: torch.nn.Module, xt: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None,
                  guidance: float | None) -> torch.Tensor:
    """The model output, with classifier-free guidance when labels are given (Ho & Salimans 2022, eq. 6):

        out = out_u + w (out_c - out_u),  out_u = model(x_t, t, null label), out_c = model(x_t, t, y)

    w = 0 is the unconditional model, w = 1 the conditional one, w > 1 pushes towards the label (the paper
    writes (1 + w) out_c - w out_u: its w is ours minus 1). Any output
    type (eps, x0, v) may be combined: each is an affine function of eps at fixed x_t, with weights summing to 1.
    guidance None: the plain conditional output (one forward pass).
    """
    if labels is None or guidance is None or guidance == 1.0:
        return model(xt, t, labels)
    null = torch.full_like(labels, model.num_classes)
    out_u, out_c = model(torch.cat([xt, xt]), torch.cat([t, t]), torch.cat([null, labels])).chunk(2)  # one batch
    return out_u + guidance * (out_c - out_u)


class AutoGuidance(torch.nn.Module):
    """Autoguidance (Karras et al. 2024, eq. 2): guide a model by a weaker version of itself,

        out = out_weak + w (out_model - out_weak),

    the extrapolation of classifier-free guidance with the weak model in place of the unconditional one, so it
    needs no labels. The weak model (here: the same network earlier in training, `DiffusionResult.weak_model`) makes
    the same kinds of mistakes as the good one, only more of them; stepping away from it removes them, where
    classifier-free guidance also pulls every sample towards the most typical digit of its class.
    w = 1 is the model alone, w = 0 the weak model.

    interval = (lo, hi): guide only where the noise level sigma_t = sqrt((1 - ab_t) / ab_t) lies in [lo, hi], the
    model alone elsewhere; needs the schedule's `alpha_bar` (T,). None: guide at every step. Kynkaanniemi et al.
    (2024) found classifier-free guidance harmful at high noise and unnecessary at low noise, and guide only in
    between; the course's autoguidance (AUTOGUIDANCE_INTERVAL) drops only the low-noise end, sigma_t < 0.3, since on
    our digits cutting the high-noise end too made samples worse (README, "Measured history of the recipes").

    The wrapper is itself a model: `sample`, `inpaint`, `sdedit` and `evaluate` take it as they are. It costs a
    second network call at each guided step.
    """

    def __init__(self, model: torch.nn.Module, weak: torch.nn.Module, guidance: float, *,
                 interval: tuple[float, float] | None = None, alpha_bar: torch.Tensor | None = None):
        super().__init__()
        if not isinstance(guidance, (int, float)) or guidance < 0:
            raise ValueError(f"autoguidance scale must be a number >= 0 (1 = the model alone), got {guidance!r}")
        if interval is not None and (alpha_bar is None or not 0 <= interval[0] < interval[1]):
            raise ValueError(f"interval must be (lo, hi) noise levels with 0 <= lo < hi, given with the schedule's "
                             f"alpha_bar; got interval={interval!r}, alpha_bar {'missing' if alpha_bar is None else 'given'}")
        self.model, self.weak, self.guidance, self.interval = model, weak, float(guidance), interval
        self.num_classes = getattr(model, "num_classes", None)
        # sigma_t for every t (T,), a buffer: it follows the model's device
        sigma = ((1 - alpha_bar) / alpha_bar).sqrt().float() if alpha_bar is not None else torch.zeros(0)
        self.register_buffer("sigma", sigma, persistent=False)

    def forward(self, xt: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        out = self.model(xt, t, labels)
        guided = torch.ones(t.shape, dtype=torch.bool, device=t.device)  # (B,)
        if self.interval is not None:
            sigma = self.sigma.to(t.device)[t]
            guided = (sigma >= self.interval[0]) & (sigma <= self.interval[1])
        if self.guidance == 1.0 or not guided.any():
            return out
        out_weak = self.weak(xt, t, labels)
        return torch.where(guided.reshape(-1, 1, 1, 1), out_weak + self.guidance * (out - out_weak), out)


def _check_labels(model: torch.nn.Module, labels, n: int, device) -> torch.Tensor | None:
    """None, an int digit or a (n,) tensor -> (n,) int64 on device; clear errors for the wrong kind of model."""
    num_classes = getattr(model, "num_classes", None)
    if labels is None:
        return None
    if num_classes is None:
        raise ValueError("this model is unconditional: it cannot draw a chosen digit (train with --conditional)")
    labels = torch.as_tensor(labels, dtype=torch.long)
    labels = labels.expand(n).clone() if labels.ndim == 0 else labels
    if labels.shape != (n,):
        raise ValueError(f"labels must be one int or a tensor of {n} labels, got shape {tuple(labels.shape)}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"label out of range: labels must be digits in [0, {num_classes - 1}], got "
                         f"{labels.min().item()}..{labels.max().item()}")
    return labels.to(device)


@torch.inference_mode()
def sample(model: torch.nn.Module, scheduler, *, n: int | None = None, num_steps: int = 50,
           labels=None, guidance: float | None = None, generator: torch.Generator | None = None,
           xt: torch.Tensor | None = None, image_size: int = 28, device=None, callback=None,
           progress: bool = False) -> torch.Tensor:
    """The one sampling loop, for any scheduler (DDPM, DDIM):

        x_T ~ N(0, I); for t in scheduler.timesteps: out = model(x_t, t) (guided); x_t, x0_pred = scheduler.step(out, t, x_t)

    n: how many images (or pass the starting noise `xt` (B, 1, H, W)); labels: an int digit or (n,) labels
    for a conditional model; guidance: classifier-free guidance scale w. `callback(i, t, xt, x0_pred)` sees
    every step (the notebook's step-by-step pictures). Returns (n, 1, H, W) in [-1, 1] on the model's device.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if xt is None:
        if n is None or n < 1:
            raise ValueError(f"number of samples n must be a positive int, got {n!r}")
        xt = torch.randn((n, 1, image_size, image_size), generator=generator).to(device)  # x_T
    labels = _check_labels(model, labels, xt.shape[0], device)
    scheduler.set_timesteps(num_steps)
    model.eval()
    timesteps = progress_bar(scheduler.timesteps, desc=type(scheduler).__name__, disable=None if progress else True)
    xt = _denoise(model, scheduler, xt, timesteps, labels=labels, guidance=guidance, generator=generator,
                  callback=callback)
    return xt.clamp(-1, 1)


def _denoise(model, scheduler, xt, timesteps, *, labels, guidance, generator, callback, known=None):
    """The loop body shared by `sample` and the editors: one scheduler step per time step in `timesteps`.

    known: None, or a function (x_t, t) -> x_t that overwrites what the caller knows (inpainting).
    """
    device = xt.device
    for i, t in enumerate(timesteps):
        t = int(t)
        if known is not None:
            xt = known(xt, t)
        t_batch = torch.full((xt.shape[0],), t, device=device, dtype=torch.long)
        out = guided_output(model, xt, t_batch, labels, guidance)
        xt, x0_pred = scheduler.step(out, t, xt, generator=generator)
        if callback is not None:
            callback(i, t, xt, x0_pred)
    return xt
