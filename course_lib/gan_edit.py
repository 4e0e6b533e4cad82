"""Editing with a trained GAN: walking the latent space and GAN inversion.

- `lerp` / `slerp`: paths between two latent codes. For z ~ N(0, I) in nz dimensions the lengths gather near
  sqrt(nz) (tightly for the paper's nz = 100, loosely for our 8); the straight line between two such codes cuts
  through the inside (|z| at the midpoint is about sqrt(nz / 2)), where G saw few codes or none. slerp follows
  the great circle and keeps |z| (White 2016, "Sampling Generative Networks").
- `invert`: find z with G(z) close to a given image, by gradient descent on z with G frozen
  (Zhu et al. 2016, "Generative Visual Manipulation on the Natural Image Manifold"; Creswell & Bharath 2018).
- `morph`: edit by moving between two inverted images along the latent path.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .dcgan import Generator
from .gan import sample
from .runtime import check_choice, progress as progress_bar

__all__ = ["lerp", "slerp", "interpolate", "Inversion", "invert", "morph"]

INTERPOLATIONS = ("lerp", "slerp")


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """(1 - t) z0 + t z1: the straight line. z0, z1: (..., nz); t: a number or (..., 1)."""
    return z0 + t * (z1 - z0)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: float | torch.Tensor, *, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985) along the last dimension:

        omega = arccos(<z0, z1> / (|z0| |z1|))
        slerp(z0, z1; t) = sin((1 - t) omega) / sin(omega) z0 + sin(t omega) / sin(omega) z1

    When |z0| = |z1| every point keeps that norm. Nearly parallel codes (sin(omega) ~ 0) fall back to lerp.
    """
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device)
    cos = ((z0 * z1).sum(-1, keepdim=True) / (z0.norm(dim=-1, keepdim=True) * z1.norm(dim=-1, keepdim=True))
           .clamp_min(eps)).clamp(-1.0, 1.0)  # (..., 1)
    omega = torch.arccos(cos)
    sin_omega = torch.sin(omega)
    parallel = sin_omega < 1e-4
    safe = torch.where(parallel, torch.ones_like(sin_omega), sin_omega)
    out = (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / safe
    return torch.where(parallel, lerp(z0, z1, t), out)


def interpolate(z0: torch.Tensor, z1: torch.Tensor, num_steps: int, mode: str = "slerp") -> torch.Tensor:
    """num_steps codes from z0 to z1 (both included): (nz,), (nz,) -> (num_steps, nz)."""
    check_choice("interpolation", mode, INTERPOLATIONS)
    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2 (the two end points), got {num_steps}")
    if z0.shape != z1.shape or z0.ndim != 1:
        raise ValueError(f"z0 and z1 must be two codes of the same shape (nz,), got {tuple(z0.shape)} and "
                         f"{tuple(z1.shape)}")
    t = torch.linspace(0, 1, num_steps, dtype=z0.dtype, device=z0.device)[:, None]  # (T, 1)
    return (lerp if mode == "lerp" else slerp)(z0[None], z1[None], t)  # (T, nz)


@dataclass
class Inversion:
    """z: (B, nz) the codes found; images: G(z) (B, C, S, S) in [-1, 1]; error: (B,) mean squared error per
    image; history: the mean error over the batch after each step."""

    z: torch.Tensor
    images: torch.Tensor
    error: torch.Tensor
    history: list[float]


def _inversion_loss(net_g: Generator, z: torch.Tensor, target: torch.Tensor, prior_weight: float) -> torch.Tensor:
    """Per-code loss (N,): ||G(z) - x||^2 / pixels + prior_weight * |z|^2 / nz.

    The second term is proportional to -log N(z; 0, I) = |z|^2 / 2 + const (MAP instead of maximum likelihood):
    it keeps z where G was trained, so the found code also makes sense to edit."""
    error = (net_g(z) - target).pow(2).flatten(1).mean(1)  # (N,)
    return error + prior_weight * z.pow(2).mean(1)


def invert(net_g: Generator, target: torch.Tensor, *, num_steps: int = 200, lr: float = 0.05,
           num_starts: int = 8, prior_weight: float = 1e-3, generator: torch.Generator | None = None,
           progress: bool = False) -> Inversion:
    """Find z so that G(z) matches `target` (B, C, S, S) in [-1, 1]: Adam on z, G frozen and in eval mode.

    GAN inversion is non-convex, so `num_starts` random codes per image are optimized together and the best
    one is kept. G's weights are not changed (gradients are taken with respect to z only).
    """
    config = net_g.config
    expected = (config.image_channels, config.image_size, config.image_size)
    if target.ndim != 4 or tuple(target.shape[1:]) != expected:
        raise ValueError(f"target must be (B, {', '.join(map(str, expected))}) in [-1, 1], got {tuple(target.shape)}"
                         f": prepare real digits with gan.prepare_mnist(images, {config.image_size})")
    if num_steps < 1 or num_starts < 1:
        raise ValueError(f"num_steps and num_starts must be >= 1, got {num_steps} and {num_starts}")
    device, batch = next(net_g.parameters()).device, target.shape[0]
    was_training = net_g.training
    net_g.eval()
    goal = target.to(device).repeat_interleave(num_starts, 0)  # (B * K, C, S, S)
    z = torch.randn(batch * num_starts, config.latent_dim, generator=generator).to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    history = []
    for _ in progress_bar(range(num_steps), desc="inversion", disable=None if progress else True):
        loss = _inversion_loss(net_g, z, goal, prior_weight)  # (B * K,)
        (grad,) = torch.autograd.grad(loss.sum(), z)  # z only: G's weights get no gradient
        z.grad = grad
        optimizer.step()
        history.append(loss.detach().view(batch, num_starts).min(1).values.mean().item())
    net_g.train(was_training)
    return _best_start(net_g, z.detach(), target.to(device), num_starts, history)


@torch.no_grad()
def _best_start(net_g: Generator, z: torch.Tensor, target: torch.Tensor, num_starts: int,
                history: list[float]) -> Inversion:
    """Keep, for each image, the start whose G(z) is closest to it."""
    batch = target.shape[0]
    images = sample(net_g, z=z)  # (B * K, C, S, S)
    error = (images - target.repeat_interleave(num_starts, 0)).pow(2).flatten(1).mean(1).view(batch, num_starts)
    best = error.argmin(1)  # (B,)
    pick = torch.arange(batch, device=z.device) * num_starts + best
    return Inversion(z=z[pick], images=images[pick], error=error.gather(1, best[:, None])[:, 0], history=history)


def morph(net_g: Generator, z0: torch.Tensor, z1: torch.Tensor, num_steps: int = 8,
          mode: str = "slerp") -> torch.Tensor:
    """Images along the latent path from z0 to z1: (num_steps, C, S, S) in [-1, 1]. With z0, z1 from `invert`,
    this morphs one real digit into another through images G can draw."""
    return sample(net_g, z=interpolate(z0, z1, num_steps, mode))
