"""Self-checks of the content loss chapter exercises (03_content_loss), built on `course_lib.checks.compare`.

The feature-inversion checks run a tiny VGG19 with random weights (its first two convolutions, on 12x12 images): fast,
deterministic, and with no download.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from . import diagnose, not_done, report
from .mistakes import compare_naming_mistakes, matching_mistake

__all__ = ["check_caffe_preprocess", "check_content_loss", "check_receptive_field", "check_inversion_objective",
           "check_invert", "tiny_vgg"]

_BGR = (103.939, 116.779, 123.68)
TINY_LAYERS = ("conv1_1", "relu1_1", "conv1_2")  # all (1, 64, H, W): a wrong layer has the right shape


def check_caffe_preprocess(fn: Callable) -> bool:
    """fn(image) -> what the original (Caffe) VGG19 expects: RGB [0, 1] (B, 3, H, W) -> BGR, [0, 255], minus the
    BGR mean pixel (103.939, 116.779, 123.68)."""
    from ..perceptual import caffe_preprocess

    def make_inputs(gen):
        return (torch.rand(2, 3, 5, 7, generator=gen),)

    def mean(order):
        return torch.tensor(order).view(1, 3, 1, 1)

    mistakes = {
        "the channels are still in RGB order: the Caffe VGG19 reads BGR (reverse the channel axis).":
            lambda x: x * 255.0 - mean(_BGR),
        "the mean pixel is subtracted in RGB order: (103.939, 116.779, 123.68) is (blue, green, red), for the "
        "channels after the flip.": lambda x: x.flip(1) * 255.0 - mean(_BGR[::-1]),
        "the values are still on the [0, 1] scale: Caffe's input is 0-255 before the mean is subtracted.":
            lambda x: x.flip(1) - mean(_BGR),
        "the mean was subtracted before scaling to 0-255: scale first, then subtract the mean pixel.":
            lambda x: (x.flip(1) - mean(_BGR)) * 255.0,
        "the mean pixel is not subtracted.": lambda x: x.flip(1) * 255.0,
    }
    return compare_naming_mistakes("caffe_preprocess", fn, caffe_preprocess, make_inputs, mistakes, atol=1e-3)


def check_content_loss(fn: Callable) -> bool:
    """fn(features, target) -> the mean of (features - target)^2 over every entry, a scalar (Gatys et al. eq. 1
    with a mean instead of 1/2 sum)."""
    from ..perceptual import content_loss

    def make_inputs(gen):
        return torch.randn(2, 8, 6, 6, generator=gen), torch.randn(2, 8, 6, 6, generator=gen)

    def reference(features, target):
        return content_loss({"layer": features}, {"layer": target})

    mistakes = {
        "that is Gatys et al.'s 1/2 sum; the course takes the mean over every entry, so the value does not grow "
        "with the image.": lambda a, b: 0.5 * ((a - b) ** 2).sum(),
        "that is the sum of the squared differences; take their mean over every entry.":
            lambda a, b: ((a - b) ** 2).sum(),
        "that is the mean absolute difference; square the differences.": lambda a, b: (a - b).abs().mean(),
        "that is the root of the loss (a distance); the content loss is the mean squared difference itself.":
            lambda a, b: ((a - b) ** 2).mean().sqrt(),
    }
    return compare_naming_mistakes("content_loss", fn, reference, make_inputs, mistakes)


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


# ---------------------------------------------------------------- feature inversion
def tiny_vgg(*, trainable: bool = False):
    """VGG19's first two convolutions with random (seeded) weights, layers TINY_LAYERS. trainable=True leaves the
    weights requiring gradients, so that optimizing them, or a target that keeps its graph, shows."""
    from ..perceptual import VGG19Features
    return VGG19Features(None, layers=TINY_LAYERS, seed=0).requires_grad_(trainable)


def _without_graph_message(out) -> str | None:
    if isinstance(out, (float, int)):
        return ("you returned a Python number (.item()?): return the tensor, so that loss.backward() can reach "
                "the pixels.")
    if isinstance(out, torch.Tensor) and not out.requires_grad:
        return ("your loss has no graph back to the image (computed under torch.no_grad(), or detached?): the "
                "optimizer needs its gradient with respect to the pixels.")
    return None


def check_inversion_objective(fn: Callable) -> bool:
    """fn(vgg, image (1, 3, H, W), target (1, C, h, w), layer) -> the scalar mean of (phi_layer(image) - target)^2,
    differentiable with respect to `image` (`perceptual.inversion_loss`)."""
    from ..perceptual import inversion_loss

    vgg, gen = tiny_vgg(), torch.Generator().manual_seed(0)
    for trial, layer in enumerate(("conv1_2", "relu1_1", "conv1_1")):
        image = torch.rand(1, 3, 12, 12, generator=gen)
        with torch.no_grad():
            target = vgg(torch.rand(1, 3, 12, 12, generator=gen))[layer]
        mine, target_copy = image.clone().requires_grad_(True), target.clone()
        try:
            out = fn(vgg, mine, target_copy, layer)
        except NotImplementedError as error:
            return not_done("inversion_objective", fn, error)
        except Exception as e:  # the student's code may fail in any way; say how
            return report("inversion_objective", f"your function raised {type(e).__name__} on layer {layer!r}: {e}")
        if not torch.equal(mine.detach(), image) or not torch.equal(target_copy, target):
            return report("inversion_objective", "your function changed its input in place; compute a new tensor.")
        if (problem := _without_graph_message(out)) is not None:
            return report("inversion_objective", problem)
        reference_image = image.clone().requires_grad_(True)
        expected = inversion_loss(vgg, reference_image, target, layer)
        problem = diagnose(out, expected)
        if problem is not None:
            with torch.no_grad():
                features = vgg(image)
            others = {f"you compared the features of layer {other!r}; the target belongs to `layer` ({layer!r}).":
                      (lambda other=other: F.mse_loss(features[other], target)) for other in TINY_LAYERS if other != layer}
            others["that is the distance (a square root); the objective is the mean squared difference itself."] = \
                lambda: F.mse_loss(features[layer], target).sqrt()
            problem = matching_mistake(out, (), others) or problem + f" (layer {layer!r}, trial {trial + 1})"
            return report("inversion_objective", problem)
        out.backward()
        expected.backward()
        if mine.grad is None or diagnose(mine.grad, reference_image.grad, atol=1e-7, rtol=1e-3) is not None:
            return report("inversion_objective", "the value is right but its gradient with respect to the image is "
                                                 "not: is part of the computation detached?")
    return report("inversion_objective", None)


def _adam_inversion(vgg, photo, layer, init, steps, lr, *, zero_grad=True, sign=1.0, clamp="every step"):
    """The loop of `invert_features(..., optimizer="adam")`, with switches that make one classic mistake each."""
    with torch.no_grad():
        target = vgg(photo)[layer]
    image = init.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=lr)
    for _ in range(steps):
        if zero_grad:
            optimizer.zero_grad()
        (sign * F.mse_loss(vgg(image)[layer], target)).backward()
        optimizer.step()
        if clamp == "every step":
            with torch.no_grad():
                image.clamp_(0, 1)
    return (image.clamp(0, 1) if clamp == "at the end" else image).detach()


_GRAPH_TWICE = "backward through the graph a second time"
_NO_GRAD = "does not require grad"


def check_invert(fn: Callable) -> bool:
    """fn(vgg, target_image (1, 3, H, W), layer, init (1, 3, H, W), steps, lr) -> the image (1, 3, H, W) in [0, 1],
    detached, after `steps` Adam steps on the pixels (copied from `init`) against the inversion objective, the
    pixels clamped to [0, 1] after each step: `invert_features(..., optimizer="adam", lr=lr, init=init)`."""
    from ..perceptual import invert_features

    gen = torch.Generator().manual_seed(1)
    photo, init = torch.rand(1, 3, 12, 12, generator=gen), torch.rand(1, 3, 12, 12, generator=gen)
    layer, steps, lr = "conv1_2", 4, 0.1
    vgg = tiny_vgg(trainable=True)
    weights = {k: v.clone() for k, v in vgg.state_dict().items()}
    init_copy = init.clone()
    try:
        out = fn(vgg, photo.clone(), layer, init_copy, steps, lr)
    except NotImplementedError as error:
        return not_done("invert", fn, error)
    except Exception as e:  # the student's code may fail in any way; say how
        if _GRAPH_TWICE in str(e):
            return report("invert", "the second backward ran into the graph of the target features: compute the "
                                    "target once before the loop, under torch.no_grad() (or .detach() it): it is a "
                                    "constant, no gradient should flow into it.")
        if _NO_GRAD in str(e):
            return report("invert", "the loss has no gradient to give: the pixels you optimize must be a leaf tensor "
                                    "with requires_grad=True (a copy of init).")
        return report("invert", f"your function raised {type(e).__name__}: {e}")
    if any(not torch.equal(v, weights[k]) for k, v in vgg.state_dict().items()):
        return report("invert", "the network's weights changed: optimize the pixels, not the network (the "
                                "optimizer gets the image, the network stays fixed).")
    if not torch.equal(init_copy, init):
        return report("invert", "your function changed `init` in place: optimize a copy (init.clone()).")
    if isinstance(out, torch.Tensor) and out.requires_grad:
        return report("invert", "return the image detached (.detach()): it still carries the optimizer's graph.")
    expected = invert_features(vgg, photo, layer, steps=steps, optimizer="adam", lr=lr, init=init,
                               progress=False).image
    problem = diagnose(out, expected, atol=1e-4, rtol=1e-3)
    if problem is None:
        return report("invert", None)
    if isinstance(out, torch.Tensor) and out.shape == init.shape and torch.equal(out, init):
        return report("invert", "the image came back as it started: give the optimizer the pixels (a copy of init "
                                "with requires_grad=True), and zero the gradients before backward, not between "
                                "backward and step.")

    def variant(**switches):
        return lambda: _adam_inversion(vgg, photo, switches.pop("layer", layer), init,
                                       switches.pop("steps", steps), lr, **switches)

    mistakes = {
        "the gradients were never zeroed, so every step adds to the last ones: call optimizer.zero_grad() at the "
        "start of each step.": variant(zero_grad=False),
        "the loss went up: that is gradient ascent (a minus sign too many?); minimize the objective.": variant(sign=-1.0),
        "pixels left [0, 1]: clamp them in place after every step (under torch.no_grad()).": variant(clamp="never"),
        "the pixels are clamped only at the end: clamp after every step, so each step starts from a valid image.":
            variant(clamp="at the end"),
        f"you took {steps + 1} steps; take `steps` ({steps}).": variant(steps=steps + 1),
        f"you took {steps - 1} steps; take `steps` ({steps}).": variant(steps=steps - 1),
        **{f"you matched layer {other!r}; the target is `layer` ({layer!r}).": variant(layer=other)
           for other in TINY_LAYERS if other != layer},
    }
    return report("invert", matching_mistake(out, (), mistakes, atol=1e-4, rtol=1e-3) or problem)
