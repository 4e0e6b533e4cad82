"""Fast style transfer (Johnson, Alahi & Fei-Fei 2016): train a network that paints any photo in one pass.

Gatys et al. optimize the pixels x of each image to lower L(x) = alpha L_content + beta L_style + gamma L_tv
(`course_lib.style`). Johnson et al. lower the same perceptual loss over the weights W of a transformation
network f_W (`course_lib.transform_net`), in expectation over photos y (their eq. 1):

    W* = argmin_W E_y[ alpha l_feat(f_W(y), y) + beta l_style(f_W(y), painting) + gamma l_tv(f_W(y)) ]

- l_feat (eq. 2) = ||phi_j(y_hat) - phi_j(y)||^2 / (C_j H_j W_j) at relu2_2: `perceptual.content_loss`.
- l_style (eqs. 3-4) compares Gram matrices G = F F^T / (C H W) (`style.gram_matrix`, their normalization) at
  relu1_2, relu2_2, relu3_3, relu4_3; `style.style_loss` averages over the C x C entries where they sum.
- The painting's Gram matrices are computed once; the photo's own features are the content target.
Training takes minutes to hours; applying the network (`apply_fast_style`) then takes one forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .images import load_image
from .perceptual import WEIGHT_SOURCES, VGG19Features
from .photo_crops import PhotoCrops
from .runtime import autocast, check_choice, checkpoint_path
from .style import gatys_loss_terms, gram_matrix
from .train import Budget
from .transform_net import TransformNet, TransformNetConfig
from .transform_training import (TransformRun, apply_transform_net, build_run, check_vgg, load_run, optimizer_step,
                                 resume_or_build, save_run, train_loop)

__all__ = ["FAST_STYLE_KIND", "JOHNSON_STYLE_LAYERS", "JOHNSON_CONTENT_LAYERS", "FastStyleConfig", "FastStyleResult",
           "build_fast_style", "build_vgg", "style_targets", "content_targets", "perceptual_loss_terms", "train_step",
           "train_fast_style", "save_fast_style", "load_fast_style", "apply_fast_style", "SHIPPED_STYLES", "shipped_path"]

FAST_STYLE_KIND = "fast_style"
# Johnson et al.'s loss layers (section 4.1), named as in their VGG-16; VGG19 has them too (blocks 3-5 add a 4th conv)
JOHNSON_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
JOHNSON_CONTENT_LAYERS = ("relu2_2",)
SHIPPED_STYLES = ("starry_night", "the_scream", "shipwreck")  # paintings with a network in data/checkpoints
HISTORY_KEYS = ("step", "seconds", "loss", "content", "style", "tv")
CPU_CROP_SIZE = 128  # crop side off a GPU: a quarter of the pixels of 256, so 4x the steps in a CPU budget


@dataclass
class FastStyleConfig:
    """The network and its training recipe (Johnson et al.'s values noted where ours differ)."""

    net: TransformNetConfig = field(default_factory=TransformNetConfig)
    image_size: int = 256  # S: side of the square training crops (Johnson et al.: 256)
    batch_size: int = 4  # Johnson et al.: 4
    lr: float = 1e-3  # Adam's learning rate (Johnson et al.: 1e-3)
    content_weight: float = 1.0  # alpha
    style_weight: float = 30.0  # beta: pytorch/examples' 1e10 / 1e5 in caffe units (features ~58x larger); untuned
    tv_weight: float = 0.0  # gamma
    content_layers: tuple[str, ...] = JOHNSON_CONTENT_LAYERS
    style_layers: tuple[str, ...] = JOHNSON_STYLE_LAYERS
    style_size: int = 256  # the painting's shorter side when its Gram matrices are taken: sets the size of strokes
    min_scale: float = 0.5  # a crop's side is at least this share of its photo's shorter side (PhotoCrops)
    weights: str = "caffe"  # VGG19 weights: "caffe" (offline) or "torchvision"
    pooling: str = "max"
    ema_decay: float = 0.0  # EMA of the network's weights used to apply it (0 = off)
    mixed_precision: bool = False  # the VGG pass under runtime.autocast; the losses stay in float32

    def __post_init__(self):
        if isinstance(self.net, dict):  # as stored in a checkpoint
            self.net = TransformNetConfig(**self.net)
        self.content_layers, self.style_layers = tuple(self.content_layers), tuple(self.style_layers)
        check_choice("VGG19 weights", self.weights, [w for w in WEIGHT_SOURCES if w is not None])
        if min(self.image_size, self.style_size) < 8 or self.batch_size < 1:
            raise ValueError(f"need image_size and style_size >= 8 (TransformNet's smallest input) and "
                             f"batch_size >= 1, got {self.image_size}, {self.style_size} and {self.batch_size}")
        if not 0.0 <= self.ema_decay < 1.0 or self.lr <= 0:
            raise ValueError(f"need lr > 0 and ema_decay in [0, 1), got lr={self.lr}, ema_decay={self.ema_decay}")

    @classmethod
    def for_profile(cls, profile, **overrides) -> "FastStyleConfig":
        """The recipe for a `runtime.Profile`: under `full` (a GPU) the paper's 256-pixel crops and width 32; elsewhere
        crops of min(128, profile.image_size), 4x the steps of 256 in the same time, and the narrower default width.
        `overrides` win."""
        if profile.name == "full":
            values = {"image_size": 256, "net": TransformNetConfig(channels=32)}
        else:
            values = {"image_size": min(CPU_CROP_SIZE, profile.image_size)}
        return cls(**{**values, **overrides})


@dataclass
class FastStyleResult(TransformRun):
    """What `train_fast_style` returns (and `load_fast_style` restores): a `transform_training.TransformRun` with
    the painting. Apply `.model`.

    history: lists per logged step (HISTORY_KEYS; "tv" is 0 when tv_weight is 0); style: the painting (1, 3, h, w)
    uint8, for showing what the network learned; photos: the names of the training photos."""

    config: FastStyleConfig
    history: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})
    style: torch.Tensor | None = None


def build_fast_style(config: FastStyleConfig, device: torch.device | str = "cpu") -> FastStyleResult:
    """A fresh TransformNet (PyTorch's default init), its Adam optimizer, its EMA copy and the loss scaler."""
    return build_run(FastStyleResult, config, device)


def build_vgg(config: FastStyleConfig) -> VGG19Features:
    """The loss network phi: VGG19 up to the deepest content or style layer, frozen."""
    return VGG19Features(config.weights, layers=config.content_layers + config.style_layers, pooling=config.pooling)


# ---------------------------------------------------------------- the perceptual loss
@torch.no_grad()
def style_targets(vgg: VGG19Features, painting: torch.Tensor, config: FastStyleConfig) -> dict[str, torch.Tensor]:
    """G(phi_l(painting)) (1, C, C) per style layer, computed once: the painting (1, C, H, W), C in {1, 3, 4}, is
    made RGB and scaled so its shorter side is config.style_size."""
    features = vgg(load_image(painting, config.style_size))
    return {name: gram_matrix(features[name].float()) for name in config.style_layers}


@torch.no_grad()
def content_targets(vgg: VGG19Features, photos: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """phi_j(y) for the photos (B, 3, S, S) at the content `layers`, running VGG only as deep as they are
    (relu2_2: 4 of its convolutions), without a graph: they are targets."""
    x, out = vgg.preprocess(photos), {}
    for name, layer in vgg.body.items():
        x = layer(x)
        if name in layers:
            out[name] = x.float()
            if len(out) == len(layers):
                break
    return out


def perceptual_loss_terms(vgg: VGG19Features, output: torch.Tensor, photos: torch.Tensor,
                          target_grams: dict[str, torch.Tensor], config: FastStyleConfig) -> dict[str, torch.Tensor]:
    """Johnson et al.'s eq. 1 for one batch: {"content", "style"[, "tv"]}, weighted scalars whose sum is the loss.

    output: y_hat = f_W(y) (B, 3, S, S) in [0, 1], with a graph to W; photos: y (B, 3, S, S); target_grams: the
    painting's (`style_targets`). The same terms as Gatys' (`style.gatys_loss_terms`), now averaged over a batch.
    """
    targets = content_targets(vgg, photos, config.content_layers)
    with autocast(output.device, config.mixed_precision):  # the VGG pass in reduced precision if enabled
        features = vgg(output)
    features = {name: f.float() for name, f in features.items()}  # Gram matrices and losses in float32
    return gatys_loss_terms(features, output, targets, target_grams, config)


# ---------------------------------------------------------------- training
def train_step(run: FastStyleResult, photos: torch.Tensor, target_grams: dict[str, torch.Tensor],
               vgg: VGG19Features) -> dict[str, float]:
    """One Adam step on a batch of photos (B, 3, S, S) in [0, 1]: returns {"loss", "content", "style", "tv"}.

    A NaN or exploding loss raises `TrainingDiverged` before the step, so the weights are never touched by it.
    """
    output = run.net(photos)  # y_hat = f_W(y), (B, 3, S, S) in [0, 1]
    values = optimizer_step(run, perceptual_loss_terms(vgg, output, photos, target_grams, run.config))
    values.setdefault("tv", 0.0)
    return values


def train_fast_style(config: FastStyleConfig, style_image: torch.Tensor, *, budget: Budget,
                     device: torch.device | str | None = None, generator: torch.Generator | None = None,
                     checkpoint: str | Path | None = None, resume: FastStyleResult | str | Path | None = None,
                     photos: PhotoCrops | None = None, vgg: VGG19Features | None = None,
                     checkpoint_every: float = 60.0, log_every: int = 10, progress: bool = True,
                     callback=None) -> FastStyleResult:
    """Train a TransformNet to paint photos in the style of `style_image` (1, 3, H, W) in [0, 1], within `budget`.

    Each step: a batch of random crops (`photos`, default `PhotoCrops(config.image_size)`; anything with
    `.sample(batch_size, generator)`), `train_step`, the EMA update. `generator` draws the crops; the network's
    initial weights come from torch's global generator (`runtime.seed_everything`). `device`: default the painting's.
    `vgg`: a prebuilt loss network with the config's layers (default `build_vgg(config)`).
    resume: a FastStyleResult or a checkpoint path to continue (same config; the budget counts this call only).
    checkpoint: written atomically every `checkpoint_every` seconds and at the end; on a NaN loss training stops
    with `TrainingDiverged` and the last good checkpoint is left as it was. callback(run) after every logged step.
    """
    device = torch.device(device) if device is not None else style_image.device
    run = resume_or_build(config, resume, device, build=build_fast_style, load=load_fast_style,
                          hint="load_fast_style(path).config")
    vgg = build_vgg(config).to(device) if vgg is None else vgg
    check_vgg(vgg, config.content_layers + config.style_layers, "build_vgg(config)")
    target_grams = style_targets(vgg, style_image.to(device), config)
    photos = PhotoCrops(config.image_size, min_scale=config.min_scale) if photos is None else photos
    run.style = (load_image(style_image, config.style_size) * 255).round().to(torch.uint8).cpu()
    return train_loop(run, lambda batch: train_step(run, batch, target_grams, vgg), photos, budget=budget,
                      device=device, generator=generator, checkpoint=checkpoint, save=save_fast_style,
                      checkpoint_every=checkpoint_every, log_every=log_every, progress=progress, callback=callback,
                      desc="fast style")


# ---------------------------------------------------------------- checkpoints
def save_fast_style(path: str | Path, run: FastStyleResult, *, optimizer: bool = True, **extra) -> Path:
    """Write the network (and its EMA copy), Adam's state (unless optimizer=False: a smaller file to ship; resuming
    then starts Adam afresh), the config, history, painting and photo names, atomically (kind "fast_style")."""
    return save_run(path, run, kind=FAST_STYLE_KIND, optimizer=optimizer, style=run.style, **extra)


def load_fast_style(path: str | Path, *, device: torch.device | str = "cpu") -> FastStyleResult:
    """Rebuild a run from `save_fast_style`'s checkpoint on `device` (apply `.model`, or resume it); fails clearly
    on a checkpoint of another kind or config."""
    run, ckpt = load_run(path, kind=FAST_STYLE_KIND, config_cls=FastStyleConfig, build=build_fast_style,
                         device=device)
    run.style = ckpt.get("style")
    return run


def shipped_path(name: str) -> Path:
    """The shipped network for painting `name` (one of SHIPPED_STYLES): data/checkpoints/fast_style_<name>.pt."""
    check_choice("shipped style network", name, SHIPPED_STYLES,
                 " (or train one: python -m course_lib fast-style train --style NAME --out NET.pt)")
    return checkpoint_path(f"fast_style_{name}.pt")


# ---------------------------------------------------------------- applying the network
def apply_fast_style(net: TransformNet, image, *, batch_size: int = 4, device: torch.device | str | None = None,
                     max_pixels: int | None = None) -> torch.Tensor:
    """y_hat = f_W(x) for images (N, C, H, W) (or a path, PIL image, ...) at their own size: (N, 3, H, W) in [0, 1].
    `transform_training.apply_transform_net` says how (batches, RGB, the `max_pixels` limit)."""
    return apply_transform_net(net, image, batch_size=batch_size, device=device, max_pixels=max_pixels)
