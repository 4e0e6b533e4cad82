"""Neural style transfer (Gatys, Ecker & Bethge 2016): paint a photo in the style of a painting.

The pixels x of the output minimize
    L(x) = alpha * L_content(x, photo) + beta * sum_s w_s * L_style(x, painting_s) + gamma * L_tv(x)
where L_content compares VGG19 activations (`perceptual.content_loss`) and L_style compares their Gram
matrices (feature correlations, which forget *where* a feature occurs and keep *which features occur
together*: texture). `stylize` optimizes coarse-to-fine: a few cheap L-BFGS steps on a small image, then
upsample and refine, so few steps are spent at the full size (see `StyleConfig`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .perceptual import OPTIMIZERS, OptimizationResult, VGG19Features, content_loss, optimize_image

__all__ = ["StyleConfig", "StyleResult", "gram_matrix", "style_loss", "tv_loss", "stylize",
           "rgb_to_yiq", "yiq_to_rgb", "match_luminance", "resize_to_pixels", "pyramid_sizes", "cli"]

GATYS_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


# ---------------------------------------------------------------- the losses
def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """G = F F^T / (C H W) for features (B, C, H, W) -> (B, C, C).

    Gatys et al. 2016, eq. 3: G_ij = sum_k F_ik F_jk, the correlation of channels i and j over all positions
    k. Dividing by C*H*W makes it independent of the image size and puts layers of 64 and 512 channels on
    a similar scale.
    """
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)  # (B, C, HW)
    return flat @ flat.transpose(1, 2) / (c * h * w)  # (B, C, C)


def style_loss(features: dict[str, torch.Tensor], target_grams: dict[str, torch.Tensor],
               layer_weights: dict[str, float] | None = None) -> torch.Tensor:
    """Gatys et al. 2016, eqs. 4-5: L_style = sum_l w_l * mean_ij (G^l_ij - A^l_ij)^2.

    `features`: activations of the image being optimized; `target_grams`: Gram matrices of the painting
    (computed once, (B or 1, C, C) each); `layer_weights`: w_l (default 1 for every layer).
    """
    total = 0.0
    for name, target in target_grams.items():
        weight = 1.0 if layer_weights is None else layer_weights[name]
        total = total + weight * F.mse_loss(gram_matrix(features[name]), target.expand(features[name].shape[0], -1, -1))
    return total


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: mean |x[i+1, j] - x[i, j]| + mean |x[i, j+1] - x[i, j]| (Mahendran & Vedaldi 2015).

    Penalizes pixel-to-pixel jumps: a small weight removes high-frequency noise. image (B, C, H, W).
    """
    vertical = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    horizontal = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    return vertical + horizontal
