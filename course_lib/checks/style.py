"""Self-checks of the style transfer chapter exercises (04_style_transfer), built on `course_lib.checks.compare`."""
from __future__ import annotations

from typing import Callable

import torch

from . import compare

__all__ = ["check_gram_matrix", "check_style_loss", "check_tv_loss"]


def check_gram_matrix(fn: Callable) -> bool:
    """fn(features (B, C, H, W)) -> (B, C, C): G = F F^T / (C H W), F the features flattened to (B, C, H*W)."""
    from ..style import gram_matrix

    def make_inputs(gen):
        return (torch.rand(2, 4, 5, 3, generator=gen),)

    return compare("gram_matrix", fn, gram_matrix, make_inputs)


def check_style_loss(fn: Callable) -> bool:
    """fn(features (B, C, H, W), target_gram (B, C, C)) -> the mean of (G - A)^2 with G = gram_matrix(features)."""
    from ..style import gram_matrix, style_loss

    def make_inputs(gen):
        return torch.rand(2, 4, 5, 3, generator=gen), gram_matrix(torch.rand(2, 4, 6, 6, generator=gen))

    def reference(features, target_gram):
        return style_loss({"layer": features}, {"layer": target_gram})

    return compare("style_loss", fn, reference, make_inputs, atol=1e-7)


def check_tv_loss(fn: Callable) -> bool:
    """fn(image (B, C, H, W)) -> mean |vertical neighbour difference| + mean |horizontal neighbour difference|."""
    from ..style import tv_loss

    def make_inputs(gen):
        return (torch.rand(2, 3, 6, 5, generator=gen),)

    return compare("tv_loss", fn, tv_loss, make_inputs)
