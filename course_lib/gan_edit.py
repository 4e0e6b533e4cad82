"""Editing with a trained GAN: walking the latent space and GAN inversion.

- `lerp` / `slerp`: paths between two latent codes. For z ~ N(0, I) in nz dimensions the lengths gather near
  sqrt(nz) (tightly for the paper's nz = 100, loosely for our 8); the straight line between two such codes cuts
  through the inside (|z| at the midpoint is about sqrt(nz / 2)), where G saw few codes or none. slerp follows
  the great circle and keeps |z| (White 2016, "Sampling Generative Networks").
- `invert`: find z with G(z) close to a given image, by gradient descent on z with G frozen
  (Zhu et al. 2016, "Generative Visual Manipulation on the Natural Image Manifold"; Creswell & Bharath 2018),
  in pixels or in the feature space of the course's digit classifier (`loss="perceptual"`).
- `compare_inversions`: both losses on the same digits from the same starts, with scores that favour each one
  and one (SSIM) built from neither.
- `morph`: edit by moving between two inverted images along the latent path.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from .dcgan import Generator
from .digit_classifier import MNIST_MEAN, MNIST_STD, DigitClassifier
from .gan import sample
from .metrics import load_judge, prepare_digits
from .runtime import check_choice, progress as progress_bar

__all__ = ["lerp", "slerp", "interpolate", "Inversion", "pixel_distance", "classifier_features", "feature_distance",
           "invert", "ssim", "MEASURES", "inversion_scores", "InversionComparison", "compare_inversions",
           "morph"]

INTERPOLATIONS = ("lerp", "slerp")
INVERSION_LOSSES = ("pixel", "perceptual")
# the digit classifier's layers by name -> index in DigitClassifier.body; shapes for a 28x28 input:
CLASSIFIER_LAYERS = {"conv1": 0, "relu1": 1,  # (N, 16, 28, 28)
                     "conv2": 3, "relu2": 4,  # (N, 32, 14, 14)
                     "fc": 8}  # (N, 64) after ReLU: the judge's FID features
PERCEPTUAL_LAYERS = ("conv1", "conv2")  # before the ReLU: on black digits a ReLU unit that is off gives no gradient
PIXEL_WEIGHT = 0.0  # perceptual loss: weight of an added pixel term (Zhu et al.'s code used one); 0: features only


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
    """z: (B, nz) the codes found; images: G(z) (B, C, S, S) in [-1, 1]; error: (B,) pixel mean squared error
    per image, whatever was minimized; objective: (B,) the data term that was minimized (pixel: = error);
    loss: "pixel" or "perceptual"; history: the mean loss over the batch (best start) at each step."""

    z: torch.Tensor
    images: torch.Tensor
    error: torch.Tensor
    history: list[float]
    objective: torch.Tensor
    loss: str = "pixel"


# ---------------------------------------------------------------- the data terms: pixels or features
def pixel_distance(images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||G(z) - x||^2 / pixels: (N, C, S, S), (N, C, S, S) -> (N,)."""
    return (images - target).pow(2).flatten(1).mean(1)


def classifier_features(classifier: DigitClassifier, images: torch.Tensor,
                        layers: Sequence[str] = PERCEPTUAL_LAYERS) -> dict[str, torch.Tensor]:
    """phi_l(x) for each of `layers`: the digit classifier's activations of G's images (N, 1, S, S) in [-1, 1],
    S = 28 or 32 (centre-cropped to the classifier's 28). Differentiable with respect to `images`."""
    if not layers:
        raise ValueError(f"layers must name at least one classifier layer: {', '.join(CLASSIFIER_LAYERS)}")
    for name in layers:
        check_choice("classifier layer", name, CLASSIFIER_LAYERS)
    x = prepare_digits(images, value_range="[-1, 1]")  # (N, 1, 28, 28) in [0, 1], the classifier's input
    h = (x - MNIST_MEAN) / MNIST_STD  # the classifier's own normalization, as in DigitClassifier.features
    features, last = {}, max(CLASSIFIER_LAYERS[name] for name in layers)
    for index, module in enumerate(classifier.body[:last + 1]):
        h = module(h)
        features.update({name: h for name in layers if CLASSIFIER_LAYERS[name] == index})
    return features


def feature_distance(features: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
    """mean over layers l of ||phi_l(G(z)) - phi_l(x)||^2 / ||phi_l(x)||^2: (N,), 0 for identical images.

    Relative per layer, so layers of different size and magnitude count alike (as `perceptual.perceptual_distance`
    does for VGG19); a target with no activation at a layer (a blank image) divides by 1e-8 instead of 0."""
    per_layer = [(features[name] - target).pow(2).flatten(1).sum(1) / target.pow(2).flatten(1).sum(1).clamp_min(1e-8)
                 for name, target in targets.items()]  # each (N,)
    return torch.stack(per_layer).mean(0)


def _data_term(loss: str, target: torch.Tensor, classifier: DigitClassifier | None, layers: Sequence[str],
               pixel_weight: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """images (N, C, S, S) -> (N,): how far G(z) is from `target` (N, C, S, S), in pixels or in features.

    perceptual: feature_distance + pixel_weight * pixel_distance, with phi(x) computed once (a constant)."""
    if loss == "pixel":
        return lambda images: pixel_distance(images, target)
    with torch.no_grad():
        targets = classifier_features(classifier, target, layers)  # phi_l(x), no graph
    return lambda images: (feature_distance(classifier_features(classifier, images, layers), targets)
                           + pixel_weight * pixel_distance(images, target))


def _inversion_loss(net_g: Generator, z: torch.Tensor, data_term: Callable[[torch.Tensor], torch.Tensor],
                    prior_weight: float) -> torch.Tensor:
    """Per-code loss (N,): data_term(G(z)) + prior_weight * |z|^2 / nz, where data_term is ||G(z) - x||^2 / pixels
    (pixel) or the feature distance (perceptual).

    The second term is proportional to -log N(z; 0, I) = |z|^2 / 2 + const (MAP instead of maximum likelihood):
    it keeps z where G was trained, so the found code also makes sense to edit."""
    return data_term(net_g(z)) + prior_weight * z.pow(2).mean(1)


# ---------------------------------------------------------------- inversion
def invert(net_g: Generator, target: torch.Tensor, *, num_steps: int = 200, lr: float = 0.05,
           num_starts: int = 8, prior_weight: float = 1e-3, loss: str = "pixel",
           classifier: DigitClassifier | None = None, layers: Sequence[str] = PERCEPTUAL_LAYERS,
           pixel_weight: float = PIXEL_WEIGHT, init: torch.Tensor | None = None,
           generator: torch.Generator | None = None, progress: bool = False) -> Inversion:
    """Find z so that G(z) matches `target` (B, C, S, S) in [-1, 1]: Adam on z, G frozen and in eval mode.

    loss "pixel": minimize ||G(z) - x||^2 / pixels. loss "perceptual" (feature space, as Zhu et al. 2016 did
    with AlexNet): minimize `feature_distance` between the digit classifier's activations at `layers` of G(z)
    and of x, plus pixel_weight * the pixel term; `classifier` defaults to the course's judge
    (metrics.load_judge), playing VGG's role for digits. `classifier`, `layers`, `pixel_weight` serve only it.

    GAN inversion is non-convex, so `num_starts` codes per image are optimized together and the one with the
    lowest data term (the objective minimized, without the prior) is kept. The starts are z ~ N(0, I) from
    `generator`, or `init` (B * num_starts, nz), e.g. another inversion's codes (Zhu et al. start from an
    encoder's guess). Neither G's nor the classifier's weights change: gradients are taken with respect to z only.
    """
    check_choice("inversion loss", loss, INVERSION_LOSSES)
    _check_target(net_g, target, num_steps, num_starts)
    if prior_weight < 0 or pixel_weight < 0:
        raise ValueError(f"prior_weight and pixel_weight are weights of added terms, >= 0; got {prior_weight} and "
                         f"{pixel_weight}")
    device, batch = next(net_g.parameters()).device, target.shape[0]
    if loss == "perceptual" and classifier is None:
        classifier = load_judge(device)
    frozen = (net_g, classifier) if loss == "perceptual" else (net_g,)
    with _eval_mode(*frozen):  # BatchNorm's running statistics, no dropout; the modes come back afterwards
        goal = target.to(device).repeat_interleave(num_starts, 0)  # (B * K, C, S, S)
        data_term = _data_term(loss, goal, classifier, layers, pixel_weight)
        z = _starts(init, batch * num_starts, net_g.config.latent_dim, generator).to(device).requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=lr)
        history = []
        for _ in progress_bar(range(num_steps), desc=f"{loss} inversion", disable=None if progress else True):
            per_code = _inversion_loss(net_g, z, data_term, prior_weight)  # (B * K,)
            (grad,) = torch.autograd.grad(per_code.sum(), z)  # z only: G's and the classifier's weights get none
            z.grad = grad
            optimizer.step()
            history.append(per_code.detach().view(batch, num_starts).min(1).values.mean().item())
        return _best_start(net_g, z.detach(), goal, data_term, num_starts, history, loss)


def _starts(init: torch.Tensor | None, n: int, latent_dim: int, generator: torch.Generator | None) -> torch.Tensor:
    """The n starting codes (n, nz): a copy of `init`, or N(0, I) drawn from `generator`."""
    if init is None:
        return torch.randn(n, latent_dim, generator=generator)
    if tuple(init.shape) != (n, latent_dim):
        raise ValueError(f"init must be (B * num_starts, nz) = ({n}, {latent_dim}), got {tuple(init.shape)}: "
                         f"to start each image from one code, pass num_starts=1")
    return init.detach().clone()


@contextmanager
def _eval_mode(*modules: torch.nn.Module) -> Iterator[None]:
    """Each module in eval mode inside the block, back in its own mode after it."""
    modes = [module.training for module in modules]
    try:
        for module in modules:
            module.eval()
        yield
    finally:
        for module, mode in zip(modules, modes):
            module.train(mode)


def _check_target(net_g: Generator, target: torch.Tensor, num_steps: int, num_starts: int) -> None:
    config = net_g.config
    expected = (config.image_channels, config.image_size, config.image_size)
    if target.ndim != 4 or tuple(target.shape[1:]) != expected:
        raise ValueError(f"target must be (B, {', '.join(map(str, expected))}) in [-1, 1], got {tuple(target.shape)}"
                         f": prepare real digits with gan.prepare_mnist(images, {config.image_size})")
    if num_steps < 1 or num_starts < 1:
        raise ValueError(f"num_steps and num_starts must be >= 1, got {num_steps} and {num_starts}")


@torch.no_grad()
def _best_start(net_g: Generator, z: torch.Tensor, goal: torch.Tensor,
                data_term: Callable[[torch.Tensor], torch.Tensor], num_starts: int, history: list[float],
                loss: str) -> Inversion:
    """Keep, for each image, the start whose G(z) is closest to it by `data_term`, the objective minimized."""
    batch = goal.shape[0] // num_starts
    images = sample(net_g, z=z)  # (B * K, C, S, S)
    objective = data_term(images).view(batch, num_starts)  # (B, K)
    best = objective.argmin(1)  # (B,)
    pick = torch.arange(batch, device=z.device) * num_starts + best
    return Inversion(z=z[pick], images=images[pick], error=pixel_distance(images[pick], goal[pick]),
                     history=history, objective=objective.gather(1, best[:, None])[:, 0], loss=loss)


# ---------------------------------------------------------------- comparing the two losses
def ssim(images: torch.Tensor, target: torch.Tensor, *, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean structural similarity (Wang et al. 2004, eq. 13, their 11x11 Gaussian window of std 1.5):
    (N, C, S, S), (N, C, S, S) in [-1, 1] -> (N,), 1 for identical images.

        SSIM(a, b) = (2 mu_a mu_b + C1)(2 sigma_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(sigma_a^2 + sigma_b^2 + C2))

    with local (Gaussian-weighted) means, variances and covariance, C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = 2."""
    coords = torch.arange(window, dtype=images.dtype, device=images.device) - (window - 1) / 2
    g = torch.exp(-coords.pow(2) / (2 * sigma ** 2))
    kernel = (g[:, None] * g[None, :] / g.sum() ** 2).expand(images.shape[1], 1, window, window)  # (C, 1, w, w)

    def blur(x: torch.Tensor) -> torch.Tensor:  # local mean, "valid" windows only
        return F.conv2d(x, kernel, groups=x.shape[1])

    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    mu_a, mu_b = blur(images), blur(target)
    var_a, var_b = blur(images * images) - mu_a ** 2, blur(target * target) - mu_b ** 2
    cov = blur(images * target) - mu_a * mu_b
    ssim_map = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return ssim_map.flatten(1).mean(1)


MEASURES = {  # name: (better, which loss it favours by construction)
    "pixel_mse": ("lower", "pixel: it is the pixel loss"),
    "feature_distance": ("lower", "perceptual: it is that loss's feature term (the judge's network, at `layers`)"),
    "ssim": ("higher", "neither: built from local means, contrasts and correlations of pixels, not from either loss"),
    "judge_agrees": ("higher", "perceptual, likely: the judge is the network whose features that loss matches"),
}


@dataclass
class InversionComparison:
    """targets: (B, C, S, S) in [-1, 1]; inversions: {"pixel": Inversion, "perceptual": Inversion};
    scores: method -> measure (see MEASURES) -> (B,) per digit, on the CPU."""

    targets: torch.Tensor
    inversions: dict[str, Inversion]
    scores: dict[str, dict[str, torch.Tensor]]

    def means(self) -> dict[str, dict[str, float]]:
        """method -> measure -> the mean over the digits."""
        return {method: {name: values.double().mean().item() for name, values in measures.items()}
                for method, measures in self.scores.items()}

    def __str__(self) -> str:
        """A table of the means: one row per method, one column per measure."""
        lines = [f"means over {len(self.targets)} digits", " " * 12 + "".join(f"{name:>20}" for name in MEASURES),
                 " " * 12 + "".join(f"{'(' + MEASURES[name][0] + ' is better)':>20}" for name in MEASURES)]
        lines += [f"{method:<12}" + "".join(f"{measures[name]:>20.4f}" for name in MEASURES)
                  for method, measures in self.means().items()]
        return "\n".join(lines)


@torch.no_grad()
def inversion_scores(images: torch.Tensor, target: torch.Tensor, *, classifier: DigitClassifier | None = None,
                     layers: Sequence[str] = PERCEPTUAL_LAYERS) -> dict[str, torch.Tensor]:
    """Each measure of MEASURES per image: inversions and their targets (B, C, S, S) in [-1, 1] ->
    {name: (B,) on the CPU}. `classifier` (default: the judge) is read in eval mode."""
    classifier = classifier if classifier is not None else load_judge(images.device)
    with _eval_mode(classifier):
        labels = [classifier(prepare_digits(batch, value_range="[-1, 1]")).argmax(1) for batch in (images, target)]
        targets = classifier_features(classifier, target, layers)
        scores = {"pixel_mse": pixel_distance(images, target),
                  "feature_distance": feature_distance(classifier_features(classifier, images, layers), targets),
                  "ssim": ssim(images, target), "judge_agrees": (labels[0] == labels[1]).float()}  # each (B,)
    return {name: value.cpu() for name, value in scores.items()}


def compare_inversions(net_g: Generator, digits: torch.Tensor, *, num_steps: int = 200, lr: float = 0.05,
                       num_starts: int = 8, prior_weight: float = 1e-3, classifier: DigitClassifier | None = None,
                       layers: Sequence[str] = PERCEPTUAL_LAYERS, pixel_weight: float = PIXEL_WEIGHT,
                       seed: int = 0, progress: bool = False) -> InversionComparison:
    """Invert `digits` (B, C, S, S) in [-1, 1] with the pixel and the perceptual loss, from the same random
    starts (`seed`), and score both inversions against the digits by each measure of MEASURES.

    Read the scores knowing how they were built. pixel_mse is the pixel loss itself and feature_distance the
    perceptual loss's feature term, so each favours its own method by construction. The feature network is
    also the course's judge, so judge_agrees (the judge reads the inversion as the same digit as the target)
    is circular too: it likely favours the perceptual method and says little about it. ssim (Wang et al. 2004)
    is built from neither loss nor network: the independent measure here. It still compares pixels (local
    means, contrasts and correlations), so it is nearer in kind to pixel_mse than to the features: a win of
    the perceptual inversion on it counts for more than a win of the pixel one.
    """
    device = next(net_g.parameters()).device
    classifier = classifier if classifier is not None else load_judge(device)
    options = dict(num_steps=num_steps, lr=lr, num_starts=num_starts, prior_weight=prior_weight, progress=progress)
    inversions = {loss: invert(net_g, digits, loss=loss, classifier=classifier, layers=layers,
                               pixel_weight=pixel_weight, generator=torch.Generator().manual_seed(seed), **options)
                  for loss in INVERSION_LOSSES}
    scores = {loss: inversion_scores(found.images, digits.to(device), classifier=classifier, layers=layers)
              for loss, found in inversions.items()}
    return InversionComparison(targets=digits.cpu(), inversions=inversions, scores=scores)


def morph(net_g: Generator, z0: torch.Tensor, z1: torch.Tensor, num_steps: int = 8,
          mode: str = "slerp") -> torch.Tensor:
    """Images along the latent path from z0 to z1: (num_steps, C, S, S) in [-1, 1]. With z0, z1 from `invert`,
    this morphs one real digit into another through images G can draw."""
    return sample(net_g, z=interpolate(z0, z1, num_steps, mode))
