"""Editing images with a trained diffusion model: inpainting and SDEdit, and inputs to try them on. They run
the sampling loop of `course_lib.sampling`.

- `inpaint`: fill the unknown pixels of an image. At every step the known pixels of x_t are replaced by the
  original image noised to the same level t (q(x_t | x_0), Ho et al. 2020, eq. 4), so the model only ever
  invents the rest, and invents it to fit (Lugmayr et al. 2022, RePaint, eq. 8; its "resampling" goes back and
  forth a few times per step so the two parts agree better).
- `sdedit`: turn a rough input (a stroke, a blurry or odd digit) into a plausible image: noise it to a level
  `strength` in [0, 1], then denoise from there (Meng et al. 2022, SDEdit). Low strength stays close to the
  input, high strength keeps only its coarse shape.

Images are (B, 1, H, W) in [-1, 1]; masks (B or 1, 1, H, W) with 1 = known pixel, 0 = to fill.
"""
from __future__ import annotations

import torch

from .sampling import _check_labels, _denoise

__all__ = ["inpaint", "sdedit", "renoise", "draw_strokes", "half_mask"]


def _check_image(image: torch.Tensor, what: str = "image") -> None:
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{what} must be a tensor (B, C, H, W) in [-1, 1], got {shape}: add batch and channel "
                         f"dimensions with x[None, None] for one (H, W) image")
    if image.min() < -1.001 or image.max() > 1.001:
        raise ValueError(f"{what} values must lie in [-1, 1] (got {image.min().item():.3g}..{image.max().item():.3g}): "
                         f"convert [0, 1] digits with diffusion.to_model_range(x)")


def renoise(x_prev: torch.Tensor, t: int, scheduler, generator: torch.Generator | None = None) -> torch.Tensor:
    """Go one step forward again, x_prev -> x_t ~ q(x_t | x_prev) (RePaint, eq. 1 over the respaced step):
    x_t = sqrt(ab_t / ab_prev) x_prev + sqrt(1 - ab_t / ab_prev) z."""
    prev = scheduler.previous_timestep(t)
    ratio = scheduler.alpha_bar_at(t, x_prev) / scheduler.alpha_bar_at(prev, x_prev)  # alpha of the step
    z = torch.randn(x_prev.shape, generator=generator).to(x_prev.device, x_prev.dtype)
    return ratio.sqrt() * x_prev + (1 - ratio).sqrt() * z


@torch.inference_mode()
def inpaint(model: torch.nn.Module, scheduler, image: torch.Tensor, mask: torch.Tensor, *, num_steps: int = 50,
            resample: int = 1, labels=None, guidance: float | None = None,
            generator: torch.Generator | None = None, callback=None) -> torch.Tensor:
    """Fill where mask == 0, keep where mask == 1 (exactly, in the result). resample: RePaint's U, how many times
    each step is taken (1 = plain replacement). Returns (B, 1, H, W) in [-1, 1]."""
    _check_image(image)
    if mask.shape[-2:] != image.shape[-2:] or mask.ndim != 4:
        raise ValueError(f"mask must be (B or 1, 1, H, W) like the image {tuple(image.shape)}, got {tuple(mask.shape)}")
    if not isinstance(resample, int) or resample < 1:
        raise ValueError(f"resample must be an int >= 1 (1 = no RePaint resampling), got {resample!r}")
    device = next(model.parameters()).device
    image, mask = image.to(device), mask.to(device=device, dtype=image.dtype)
    labels = _check_labels(model, labels, image.shape[0], device)
    scheduler.set_timesteps(num_steps)
    model.eval()

    def known(xt: torch.Tensor, t: int) -> torch.Tensor:  # RePaint eq. 8: known part from q(x_t | x_0)
        noise = torch.randn(image.shape, generator=generator).to(device)
        return mask * scheduler.add_noise(image, noise, t) + (1 - mask) * xt

    xt = torch.randn(image.shape, generator=generator).to(device)  # x_T
    for i, t in enumerate(scheduler.timesteps.tolist()):
        for r in range(resample):
            x_prev = _denoise(model, scheduler, xt, [t], labels=labels, guidance=guidance, generator=generator,
                              callback=None, known=known)
            last = r == resample - 1 or scheduler.previous_timestep(t) < 0
            if last:
                break
            xt = renoise(x_prev, t, scheduler, generator)  # back to step t, try again
        xt = x_prev
        if callback is not None:
            callback(i, t, xt, None)
    return (mask * image + (1 - mask) * xt).clamp(-1, 1)


@torch.inference_mode()
def sdedit(model: torch.nn.Module, scheduler, image: torch.Tensor, *, strength: float = 0.5, num_steps: int = 50,
           labels=None, guidance: float | None = None, generator: torch.Generator | None = None,
           callback=None) -> torch.Tensor:
    """SDEdit: x_t0 = q(x_t0 | image) with t0 = strength * T, then the sampler from t0 down to 0.

    strength in [0, 1] (0 returns the image, 1 ignores it); the sampler takes round(strength * num_steps) of
    its `num_steps` steps. image: (B, 1, H, W) in [-1, 1]. Returns (B, 1, H, W) in [-1, 1].
    """
    if not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1] (0: keep the input, 1: ignore it), got {strength!r}")
    _check_image(image)
    device = next(model.parameters()).device
    image = image.to(device)
    labels = _check_labels(model, labels, image.shape[0], device)
    scheduler.set_timesteps(num_steps)
    k = round(strength * num_steps)  # how many of the sampler's steps to run
    if k == 0:
        return image.clone()
    timesteps = scheduler.timesteps[num_steps - k:].tolist()  # the k least noisy steps, from t0 down
    noise = torch.randn(image.shape, generator=generator).to(device)
    xt = scheduler.add_noise(image, noise, timesteps[0])  # q(x_t0 | x_0), eq. 4
    model.eval()
    xt = _denoise(model, scheduler, xt, timesteps, labels=labels, guidance=guidance, generator=generator,
                  callback=callback)
    return xt.clamp(-1, 1)


# ---------------------------------------------------------------- inputs for the editors
def draw_strokes(strokes, *, size: int = 28, width: float = 2.0) -> torch.Tensor:
    """A rough drawing for SDEdit: white polylines on black. strokes: a list of polylines, each a list of
    (x, y) points in [0, 1] (x to the right, y down); width: the pen's width in pixels.
    Returns (1, 1, size, size) in [-1, 1] (-1 = background)."""
    if not strokes or any(len(line) < 2 for line in strokes):
        raise ValueError("strokes must be a non-empty list of polylines, each at least two (x, y) points in [0, 1]")
    centres = torch.arange(size, dtype=torch.float32) + 0.5  # pixel centres, in pixels
    grid = torch.stack(torch.meshgrid(centres, centres, indexing="xy"), dim=-1)  # (H, W, 2) as (x, y)
    distance = torch.full((size, size), float("inf"))
    for line in strokes:
        points = torch.tensor(line, dtype=torch.float32) * size  # (P, 2) in pixels
        for a, b in zip(points[:-1], points[1:]):  # distance to the segment a-b
            ab = b - a
            u = ((grid - a) @ ab / ab.dot(ab).clamp(min=1e-8)).clamp(0, 1)  # (H, W) position along the segment
            distance = torch.minimum(distance, (grid - a - u[..., None] * ab).norm(dim=-1))
    ink = (width / 2 + 0.5 - distance).clamp(0, 1)  # (H, W) in [0, 1], anti-aliased edge
    return (ink * 2 - 1)[None, None]


def half_mask(size: int = 28, *, keep: str = "left") -> torch.Tensor:
    """A (1, 1, size, size) inpainting mask that keeps one half of the image (1 = known): keep is "left",
    "right", "top" or "bottom"."""
    sides = {"left": (slice(None), slice(0, size // 2)), "right": (slice(None), slice(size // 2, None)),
             "top": (slice(0, size // 2), slice(None)), "bottom": (slice(size // 2, None), slice(None))}
    if keep not in sides:
        raise ValueError(f"keep must be one of {', '.join(sides)}, got {keep!r}")
    mask = torch.zeros(1, 1, size, size)
    mask[(0, 0) + sides[keep]] = 1.0
    return mask
