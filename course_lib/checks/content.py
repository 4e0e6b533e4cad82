"""Self-checks of the content loss chapter exercises (03_content_loss), built on `course_lib.checks.compare`."""
from __future__ import annotations

from typing import Callable

import torch

from . import compare, not_done, report

__all__ = ["check_caffe_preprocess", "check_content_loss", "check_receptive_field"]


def check_caffe_preprocess(fn: Callable) -> bool:
    """fn(image) -> what the original (Caffe) VGG19 expects: RGB [0, 1] (B, 3, H, W) -> BGR, [0, 255], minus the
    BGR mean pixel (103.939, 116.779, 123.68)."""
    from ..perceptual import caffe_preprocess

    def make_inputs(gen):
        return (torch.rand(2, 3, 5, 7, generator=gen),)

    return compare("caffe_preprocess", fn, caffe_preprocess, make_inputs, atol=1e-3)


def check_content_loss(fn: Callable) -> bool:
    """fn(features, target) -> the mean of (features - target)^2 over every entry, a scalar (Gatys et al. eq. 1
    with a mean instead of 1/2 sum)."""
    from ..perceptual import content_loss

    def make_inputs(gen):
        return torch.randn(2, 8, 6, 6, generator=gen), torch.randn(2, 8, 6, 6, generator=gen)

    def reference(features, target):
        return content_loss({"layer": features}, {"layer": target})

    return compare("content_loss", fn, reference, make_inputs)


def check_receptive_field(fn: Callable) -> bool:
    """fn(layer_name) -> the receptive field (in input pixels, one side) of one unit of that VGG19 layer."""
    from ..perceptual import LAYER_NAMES, receptive_field

    for name in LAYER_NAMES:
        try:
            got = fn(name)
        except NotImplementedError as error:
            return not_done("receptive_field", fn, error)
        except Exception as e:  # the student's code may fail in any way; say how
            return report("receptive_field", f"your function raised {type(e).__name__} on {name!r}: {e}")
        expected = receptive_field(name)
        if got != expected:
            hint = ""
            if name.startswith("pool") or LAYER_NAMES.index(name) > LAYER_NAMES.index("pool1"):
                hint = " Hint: after a 2x2 pooling, one more pixel of the layer below spans twice as many input pixels."
            return report("receptive_field", f"{name}: expected {expected} pixels, got {got}.{hint}")
    return report("receptive_field", None)
