"""Self-checks of the style transfer chapter exercises (04_style_transfer), built on `course_lib.checks.compare`."""
from __future__ import annotations

import itertools
from typing import Callable

import torch

from . import diagnose, not_done, report
from .mistakes import compare_naming_mistakes, matching_mistake

__all__ = ["check_gram_matrix", "check_style_loss", "check_layer_style_loss", "check_tv_loss", "check_make_closure"]


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], x.shape[1], -1)  # (B, C, HW)


def check_gram_matrix(fn: Callable) -> bool:
    """fn(features (B, C, H, W)) -> (B, C, C): G = F F^T / (C H W), F the features flattened to (B, C, H*W)."""
    from ..style import gram_matrix

    def make_inputs(gen):
        return (torch.rand(2, 4, 5, 3, generator=gen),)

    mistakes = {
        "not normalized: divide F F^T by C H W (the number of entries of the feature map).":
            lambda x: _flat(x) @ _flat(x).transpose(1, 2),
        "divided by H W only: divide by C H W.": lambda x: _flat(x) @ _flat(x).transpose(1, 2) / (x.shape[2] * x.shape[3]),
    }
    return compare_naming_mistakes("gram_matrix", fn, gram_matrix, make_inputs, mistakes)


def check_style_loss(fn: Callable) -> bool:
    """fn(features (B, C, H, W), target_gram (B, C, C)) -> the mean of (G - A)^2 with G = gram_matrix(features)."""
    from ..style import gram_matrix, style_loss

    def make_inputs(gen):
        return torch.rand(2, 4, 5, 3, generator=gen), gram_matrix(torch.rand(2, 4, 6, 6, generator=gen))

    def reference(features, target_gram):
        return style_loss({"layer": features}, {"layer": target_gram})

    mistakes = {
        "that is the sum of the squared differences; take their mean over the C x C entries.":
            lambda x, a: ((gram_matrix(x) - a) ** 2).sum(),
        "that is the mean absolute difference; square the differences.": lambda x, a: (gram_matrix(x) - a).abs().mean(),
    }
    return compare_naming_mistakes("style_loss", fn, reference, make_inputs, mistakes, atol=1e-7)


def check_layer_style_loss(fn: Callable) -> bool:
    """fn(features {name: (B, C, H, W)}, target_grams {name: (1, C, C)}, layer_weights {name: w}) -> the scalar
    sum over the layers of target_grams of w_l * mean (G_l - A_l)^2 (`style.style_loss`). `features` also holds a
    content layer that is not a style layer."""
    from ..style import gram_matrix, style_loss

    def make_inputs(gen):
        features = {"relu1_1": torch.rand(2, 4, 6, 6, generator=gen), "relu2_1": torch.rand(2, 6, 3, 3, generator=gen),
                    "conv4_2": torch.rand(2, 8, 2, 2, generator=gen)}
        targets = {"relu1_1": gram_matrix(torch.rand(1, 4, 6, 6, generator=gen)),
                   "relu2_1": gram_matrix(torch.rand(1, 6, 3, 3, generator=gen))}
        return features, targets, {"relu1_1": 0.3, "relu2_1": 2.0}

    def terms(features, targets):
        return [((gram_matrix(features[n]) - a) ** 2).mean() for n, a in targets.items()]

    mistakes = {
        "the layer weights are ignored: multiply each layer's term by its w_l.":
            lambda f, t, w: sum(terms(f, t)),
        "you averaged the layers' terms: the style loss is their weighted sum.":
            lambda f, t, w: style_loss(f, t, w) / len(t),
    }
    try:
        fn(*make_inputs(torch.Generator().manual_seed(0)))
    except KeyError as e:
        return report("layer_style_loss", f"KeyError {e}: loop over the style layers, the keys of target_grams "
                                          f"(`features` also holds other layers, such as the content layer).")
    except Exception:  # noqa: BLE001 (compare reports not-done and other errors)
        pass
    # atol: the terms are about 1e-3, and float32 sums in another order differ in the 8th digit
    return compare_naming_mistakes("layer_style_loss", fn, style_loss, make_inputs, mistakes, atol=1e-8)


def check_tv_loss(fn: Callable) -> bool:
    """fn(image (B, C, H, W)) -> mean |vertical neighbour difference| + mean |horizontal neighbour difference|."""
    from ..style import tv_loss

    def make_inputs(gen):
        return (torch.rand(2, 3, 6, 5, generator=gen),)

    def vertical(x):
        return x[..., 1:, :] - x[..., :-1, :]

    def horizontal(x):
        return x[..., :, 1:] - x[..., :, :-1]

    mistakes = {
        "squared differences: this TV uses absolute values (|.|).":
            lambda x: vertical(x).square().mean() + horizontal(x).square().mean(),
        "only the vertical neighbours (rows): add the horizontal term.": lambda x: vertical(x).abs().mean(),
        "only the horizontal neighbours (columns): add the vertical term.": lambda x: horizontal(x).abs().mean(),
        "sums where means belong: average each direction's absolute differences.":
            lambda x: vertical(x).abs().sum() + horizontal(x).abs().sum(),
    }
    return compare_naming_mistakes("tv_loss", fn, tv_loss, make_inputs, mistakes)


# ---------------------------------------------------------------- the L-BFGS closure
class _Optimizer:
    """What the closure may use: zero_grad. Records a step, which belongs to the caller, not to the closure."""

    def __init__(self, params):
        self.params, self.stepped = list(params), False

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def step(self, closure=None):
        self.stepped = True


def _closure_case():
    """A tiny random VGG, a 12x12 image, the photo's content targets and the painting's Gram matrices, and
    weights that make the terms 1, 2 and 4: every sum of some of them, and every swap of weights, differs."""
    from ..perceptual import content_loss
    from ..style import StyleConfig, gram_matrix, style_loss, tv_loss
    from .content import tiny_vgg

    gen = torch.Generator().manual_seed(2)
    vgg = tiny_vgg()
    photo, painting, image = (torch.rand(1, 3, 12, 12, generator=gen) for _ in range(3))
    with torch.no_grad():
        content_targets = {"conv1_2": vgg(photo)["conv1_2"]}
        target_grams = {name: gram_matrix(f) for name, f in vgg(painting).items() if name.startswith("relu")}
        features = vgg(image)
        raw = (content_loss(features, content_targets), style_loss(features, target_grams), tv_loss(image))
    config = StyleConfig(content_weight=1.0 / raw[0].item(), style_weight=2.0 / raw[1].item(),
                         tv_weight=4.0 / raw[2].item())
    return vgg, image, content_targets, target_grams, config, raw


def _loss_mistakes(raw, config) -> dict[str, Callable]:
    c, s, t = raw
    a, b, g = config.content_weight, config.style_weight, config.tv_weight
    mistakes = {
        "the content term is missing: add content_weight * content loss.": lambda: torch.stack([b * s + g * t]),
        "the style term is missing: add style_weight * style loss.": lambda: torch.stack([a * c + g * t]),
        "the TV term is missing: add tv_weight * tv_loss(image).": lambda: torch.stack([a * c + b * s]),
        "you returned the content term alone: return the total of the three terms.": lambda: torch.stack([a * c]),
        "you returned the style term alone: return the total of the three terms.": lambda: torch.stack([b * s]),
        "you returned the TV term alone: return the total of the three terms.": lambda: torch.stack([g * t]),
        "the terms are not weighted: alpha content + beta style + gamma TV.": lambda: torch.stack([c + s + t]),
    }
    names = ("content_weight", "style_weight", "tv_weight")
    for perm in itertools.permutations(range(3)):
        if perm != (0, 1, 2):
            w = [(a, b, g)[i] for i in perm]
            swapped = " and ".join(f"{names[i]}" for i in range(3) if perm[i] != i)
            mistakes[f"the weights are swapped ({swapped}): each weight belongs to its own term."] = \
                lambda w=w: torch.stack([w[0] * c + w[1] * s + w[2] * t])
    return mistakes


def check_make_closure(fn: Callable) -> bool:
    """fn(image, optimizer, vgg, content_targets, target_grams, config) -> a closure that zeroes the gradients
    (optimizer.zero_grad()), computes L = alpha content + beta style + gamma TV at `image` (`style.gatys_loss_terms`,
    weights from the StyleConfig), calls L.backward() and returns L (a scalar tensor). It must not step."""
    from ..style import gatys_loss_terms

    vgg, image, content_targets, target_grams, config, raw = _closure_case()
    reference_image = image.clone().requires_grad_(True)
    expected = sum(gatys_loss_terms(vgg(reference_image), reference_image, content_targets, target_grams,
                                    config).values())
    expected.backward()
    mine = image.clone().requires_grad_(True)
    optimizer = _Optimizer([mine])
    try:
        closure = fn(mine, optimizer, vgg, content_targets, target_grams, config)
        if not callable(closure):
            return report("make_closure", f"return the closure (a function of no arguments), got "
                                          f"{type(closure).__name__}.")
        loss = closure()
        first_grad = None if mine.grad is None else mine.grad.clone()
        closure()
    except NotImplementedError as error:
        return not_done("make_closure", fn, error)
    except Exception as e:  # the student's code may fail in any way; say how
        return report("make_closure", f"your closure raised {type(e).__name__}: {e}")
    if optimizer.stepped:
        return report("make_closure", "the closure called optimizer.step(): the optimizer calls the closure, "
                                      "so the closure only computes the loss and its gradient.")
    if not isinstance(loss, torch.Tensor):
        return report("make_closure", f"return the loss tensor (L-BFGS reads it), got {type(loss).__name__}.")
    if loss.numel() != 1:
        return report("make_closure", f"return the total loss, a single number; got shape {tuple(loss.shape)}.")
    if diagnose(loss.reshape(1), expected.reshape(1), atol=0.0, rtol=1e-4) is not None:
        return report("make_closure", matching_mistake(loss.reshape(1), (), _loss_mistakes(raw, config), atol=0.0,
                                                       rtol=1e-4)
                      or f"the loss is {loss.item():.5g}, expected {expected.item():.5g}.")
    if first_grad is None:
        return report("make_closure", "no gradient on the image after the closure: call loss.backward() in it, "
                                      "after zeroing the gradients (zeroing after backward erases them).")
    if diagnose(first_grad, reference_image.grad, atol=1e-8, rtol=1e-3) is not None:
        return report("make_closure", "the loss is right but the gradient on the image is not: backpropagate the "
                                      "total loss you return, once.")
    if diagnose(mine.grad, 2 * reference_image.grad, atol=1e-8, rtol=1e-3) is None:
        return report("make_closure", "the gradient doubled on the second call: zero the gradients at the start of "
                                      "the closure (optimizer.zero_grad()); backward adds to .grad.")
    if diagnose(mine.grad, reference_image.grad, atol=1e-8, rtol=1e-3) is not None:
        return report("make_closure", "a second call gives another gradient: each call must recompute the loss "
                                      "and its gradient from scratch.")
    return report("make_closure", None)
