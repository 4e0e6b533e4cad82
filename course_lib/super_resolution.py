"""4x single-image super-resolution (Johnson, Alahi & Fei-Fei 2016, section 4.2): the transformation network and
training loop of fast style transfer (without instance norm, see `_sr_net`), trained with a pixel loss or with a
perceptual loss.

A photo y (the high-resolution target, H x W) is blurred and shrunk to the network's input x (H/4 x W/4):

    x = downsample_4(blur_sigma(y))           Gaussian blur, sigma = 1, then a bicubic resize (`degrade`)
    y_hat = f_W(x)                            TransformNet(upscale=4): (B, 3, H/4, W/4) -> (B, 3, H, W), the
                                              bicubic upsampling of x plus the detail the network adds

and the weights W lower, over random crops of the training photos, one of two losses:

    pixel:       l_pixel(y_hat, y) = ||y_hat - y||^2 / (C H W)                      (their section 3.2)
    perceptual:  l_feat(y_hat, y)  = ||phi_j(y_hat) - phi_j(y)||^2 / (C_j H_j W_j)  at relu2_2 (their eq. 2)

The pixel loss is what PSNR = 10 log10(1 / MSE) rewards, so its network wins on PSNR; it averages the many sharp
images that fit x into one blurry one. The perceptual loss only asks that y_hat look like y to VGG, so its network
draws sharper edges and textures, at a lower PSNR (their Figs. 6-8). `evaluate_super_resolution` measures both,
with bicubic upsampling as the baseline, on the held-out photos.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .defaults import SR_LOSSES
from .images import example_image
from .perceptual import WEIGHT_SOURCES, VGG19Features, content_loss, perceptual_distance
from .photo_crops import HELD_OUT, PhotoCrops
from .runtime import autocast, check_choice, checkpoint_path, get_profile
from .style import tv_loss
from .train import Budget
from .transform_net import TransformNet, TransformNetConfig
from .transform_training import (TransformRun, apply_transform_net, build_run, check_vgg, load_run, optimizer_step,
                                 resume_or_build, rgb_batch, save_run, train_loop)

__all__ = ["SR_KIND", "LOSSES", "UPSCALE", "BLUR_SIGMA", "SR_CONTENT_LAYERS", "DISTANCE_LAYERS", "SHIPPED_SR",
           "SuperResConfig", "SuperResResult", "gaussian_blur", "degrade", "crop_to_multiple", "bicubic", "psnr",
           "pixel_loss", "sr_loss_terms", "build_super_resolution", "build_vgg", "train_step", "train_super_resolution",
           "save_super_resolution", "load_super_resolution", "shipped_path", "upscale", "SRScore",
           "evaluate_super_resolution", "mean_by_method"]

SR_KIND = "super_resolution"
LOSSES = SR_LOSSES  # pixel: Johnson et al.'s l_pixel; perceptual: their l_feat
UPSCALE = 4  # the paper's x4 (they also train x8)
BLUR_SIGMA = 1.0  # Johnson et al.: Gaussian blur of width sigma = 1.0 before the bicubic downsampling
SR_CONTENT_LAYERS = ("relu2_2",)  # Johnson et al.'s l_feat layer for super-resolution (VGG-16's; VGG19 has it)
SHIPPED_SR = ("pixel", "perceptual")  # the losses with a network in data/checkpoints (sr_<loss>.pt)
TERM = {"pixel": "pixel", "perceptual": "content"}  # the loss -> its term's name in the history
CPU_CROP_SIZE = 96  # HR crop side off a GPU: a 24-pixel input, about the residual blocks' receptive field
DISTANCE_LAYERS = ("relu3_2", "relu4_2", "relu5_2")  # perceptual.perceptual_distance's layers


def _sr_net(channels: int = 32) -> TransformNetConfig:
    """C = 32 on a CPU (the paper: 64; ~3x fewer multiply-adds, so ~3x the steps in a budget), 4 residual blocks
    (the paper's), no normalization: instance norm would erase the input's brightness and contrast, and SR networks
    since EDSR (Lim et al. 2017) leave out the paper's batch norm too. The network adds detail to the bicubic
    upsampling (`bicubic_skip`, Kim et al. 2016's global residual) instead of drawing every pixel: it starts as
    the baseline, so minutes of CPU training improve on bicubic instead of first catching up with it."""
    return TransformNetConfig(channels=channels, num_residual=4, upscale=UPSCALE, norm="none", bicubic_skip=True)


@dataclass
class SuperResConfig:
    """The network and its training recipe (Johnson et al.'s values noted where ours differ)."""

    net: TransformNetConfig = field(default_factory=_sr_net)  # 4 residual blocks at C on the small input, no norm
    loss: str = "perceptual"  # one of LOSSES
    image_size: int = 288  # S: side of the high-resolution training crops, a multiple of 4 (Johnson et al.: 288)
    batch_size: int = 4  # Johnson et al.: 4
    lr: float = 1e-3  # Adam's learning rate (Johnson et al.: 1e-3)
    content_layers: tuple[str, ...] = SR_CONTENT_LAYERS
    tv_weight: float = 0.0  # gamma: total variation of y_hat (0: off)
    blur_sigma: float = BLUR_SIGMA  # the Gaussian blur of `degrade`, in high-resolution pixels
    min_scale: float = 0.5  # a crop's side is at least this share of its photo's shorter side (PhotoCrops)
    weights: str = "caffe"  # VGG19 weights: "caffe" (offline) or "torchvision"
    ema_decay: float = 0.0  # EMA of the network's weights used to apply it (0 = off)
    mixed_precision: bool = False  # the VGG pass under runtime.autocast; the losses stay in float32

    def __post_init__(self):
        if isinstance(self.net, dict):  # as stored in a checkpoint
            self.net = TransformNetConfig(**self.net)
        self.content_layers = tuple(self.content_layers)
        check_choice("super-resolution loss", self.loss, LOSSES)
        check_choice("VGG19 weights", self.weights, [w for w in WEIGHT_SOURCES if w is not None])
        if self.net.upscale != UPSCALE:
            raise ValueError(f"super-resolution needs TransformNetConfig(upscale={UPSCALE}), got upscale="
                             f"{self.net.upscale}")
        if self.image_size % UPSCALE or self.image_size < 8 * UPSCALE or self.batch_size < 1:
            raise ValueError(f"need image_size a multiple of {UPSCALE} and >= {8 * UPSCALE} (an input of >= 8 pixels) "
                             f"and batch_size >= 1, got image_size={self.image_size}, batch_size={self.batch_size}")
        if not 0.0 <= self.ema_decay < 1.0 or self.lr <= 0 or self.blur_sigma < 0 or self.tv_weight < 0:
            raise ValueError(f"need lr > 0, ema_decay in [0, 1), blur_sigma >= 0 and tv_weight >= 0, got lr={self.lr}, "
                             f"ema_decay={self.ema_decay}, blur_sigma={self.blur_sigma}, tv_weight={self.tv_weight}")

    @classmethod
    def for_profile(cls, profile, **overrides) -> "SuperResConfig":
        """The recipe for a `runtime.Profile`: under `full` (a GPU) the paper's 288-pixel crops and width 64;
        elsewhere crops of min(96, profile.image_size) (9x the steps of 288 in the same time) and width 32.
        `overrides` win."""
        if profile.name == "full":
            values = {"image_size": 288, "net": _sr_net(channels=64)}
        else:
            values = {"image_size": min(CPU_CROP_SIZE, profile.image_size) // UPSCALE * UPSCALE}
        return cls(**{**values, **overrides})


@dataclass
class SuperResResult(TransformRun):
    """What `train_super_resolution` returns (and `load_super_resolution` restores): a
    `transform_training.TransformRun`. Apply `.model` with `upscale`.

    history: lists per logged step: "step", "seconds", "loss", the loss's term ("pixel" or "content") and "tv"."""

    config: SuperResConfig


# ---------------------------------------------------------------- the low-resolution input
def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """image (B, C, H, W) convolved with a Gaussian of standard deviation `sigma` pixels, normalized to sum 1 (a
    constant image stays constant): separable, radius ceil(3 sigma), edges replicated. sigma = 0: the image."""
    if sigma == 0:
        return image
    radius = math.ceil(3 * sigma)
    offsets = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()  # (2r + 1,)
    channels = image.shape[1]
    padded = F.pad(image, (radius, radius, radius, radius), mode="replicate")  # (B, C, H + 2r, W + 2r)
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)  # along W
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)  # along H


def degrade(hr: torch.Tensor, factor: int = UPSCALE, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """The network's input x = downsample(blur(y)): (B, 3, H, W) in [0, 1] -> (B, 3, H/factor, W/factor) in [0, 1].

    Johnson et al., section 4.2: a Gaussian blur of width sigma, then bicubic downsampling (antialiased). H and W
    must be multiples of `factor` (`crop_to_multiple` makes them so)."""
    if hr.dim() != 4:
        raise ValueError(f"degrade takes a batch (B, C, H, W), got {tuple(hr.shape)}: add a batch dimension with "
                         f"image[None]")
    height, width = hr.shape[-2:]
    if height % factor or width % factor:
        raise ValueError(f"degrade needs sides that are multiples of {factor}, got {width}x{height}: crop the "
                         f"image first with crop_to_multiple(image, {factor})")
    blurred = gaussian_blur(hr, sigma)
    small = F.interpolate(blurred, size=(height // factor, width // factor), mode="bicubic", align_corners=False,
                          antialias=True)  # (B, 3, H/f, W/f)
    return small.clamp(0, 1)  # bicubic overshoots at edges


def crop_to_multiple(image: torch.Tensor, multiple: int = UPSCALE) -> torch.Tensor:
    """image (..., H, W) with its bottom rows and right columns cut so both sides are multiples of `multiple`."""
    height, width = image.shape[-2:]
    return image[..., :height - height % multiple, :width - width % multiple]


def bicubic(image: torch.Tensor, factor: int = UPSCALE) -> torch.Tensor:
    """The baseline: bicubic upsampling, (B, 3, h, w) in [0, 1] -> (B, 3, factor h, factor w) in [0, 1]."""
    if image.dim() != 4:
        raise ValueError(f"bicubic takes a batch (B, C, h, w), got {tuple(image.shape)}: add a batch dimension "
                         f"with image[None]")
    return F.interpolate(image, scale_factor=factor, mode="bicubic", align_corners=False).clamp(0, 1)


def psnr(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of images (B, C, H, W) in [0, 1] against the reference: (B,).

    PSNR = 10 log10(1 / MSE) (the peak value is 1), MSE over each image's C x H x W values; identical images: inf.
    """
    if image.shape != reference.shape:
        raise ValueError(f"psnr compares images of one shape, got {tuple(image.shape)} and {tuple(reference.shape)}")
    mse = (image.float() - reference.float()).square().flatten(1).mean(1)  # (B,)
    return 10 * torch.log10(1.0 / mse)


# ---------------------------------------------------------------- the losses
def pixel_loss(output: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Johnson et al., section 3.2: l_pixel = ||y_hat - y||^2 / (C H W), averaged over the batch (B, 3, H, W)."""
    return F.mse_loss(output, hr)


def sr_loss_terms(output: torch.Tensor, hr: torch.Tensor, config: SuperResConfig,
                  vgg: VGG19Features | None = None) -> dict[str, torch.Tensor]:
    """The weighted terms of the training loss for one batch: {"pixel"} or {"content"} (config.loss), and {"tv"}
    when config.tv_weight is not 0; scalars whose sum is the loss.

    output: y_hat (B, 3, S, S) in [0, 1], with a graph to W; hr: y (B, 3, S, S); vgg: the loss network (perceptual).
    """
    if config.loss == "pixel":
        terms = {"pixel": pixel_loss(output, hr)}
    elif vgg is None:
        raise ValueError("the perceptual loss needs the loss network: pass vgg=build_vgg(config)")
    else:
        with torch.no_grad():  # phi_j(y): targets, without a graph
            targets = {name: f.float() for name, f in vgg(hr).items()}
        with autocast(output.device, config.mixed_precision):  # the VGG pass in reduced precision if enabled
            features = {name: f.float() for name, f in vgg(output).items()}
        terms = {"content": content_loss(features, targets, config.content_layers)}  # eq. 2, averaged over C H W
    if config.tv_weight:
        terms["tv"] = config.tv_weight * tv_loss(output)
    return terms


# ---------------------------------------------------------------- training
def build_super_resolution(config: SuperResConfig, device: torch.device | str = "cpu") -> SuperResResult:
    """A fresh TransformNet(upscale=4) (PyTorch's default init), its Adam optimizer, its EMA copy and loss scaler."""
    history = {key: [] for key in ("step", "seconds", "loss", TERM[config.loss], "tv")}
    return build_run(SuperResResult, config, device, history=history)


def build_vgg(config: SuperResConfig) -> VGG19Features:
    """The loss network phi of the perceptual loss: VGG19 up to relu2_2 (config.content_layers), frozen."""
    return VGG19Features(config.weights, layers=config.content_layers)


def train_step(run: SuperResResult, hr: torch.Tensor, vgg: VGG19Features | None = None) -> dict[str, float]:
    """One Adam step on a batch of high-resolution crops y (B, 3, S, S) in [0, 1]: returns {"loss", term, "tv"}."""
    low_res = degrade(hr, UPSCALE, run.config.blur_sigma)  # x: (B, 3, S/4, S/4)
    output = run.net(low_res)  # y_hat = f_W(x): (B, 3, S, S) in [0, 1]
    values = optimizer_step(run, sr_loss_terms(output, hr, run.config, vgg))
    values.setdefault("tv", 0.0)
    return values


def train_super_resolution(config: SuperResConfig, *, budget: Budget, device: torch.device | str | None = None,
                           generator: torch.Generator | None = None, checkpoint: str | Path | None = None,
                           resume: SuperResResult | str | Path | None = None, photos: PhotoCrops | None = None,
                           vgg: VGG19Features | None = None, checkpoint_every: float = 60.0, log_every: int = 10,
                           progress: bool = True, callback=None) -> SuperResResult:
    """Train a TransformNet(upscale=4) to undo `degrade` on random photo crops, with config.loss, within `budget`.

    Each step: a batch of crops y (`photos`, default `PhotoCrops(config.image_size)`; anything with
    `.sample(batch_size, generator)`), `train_step`, the EMA update (`transform_training.train_loop`). `generator`
    draws the crops; the initial weights come from torch's global generator (`runtime.seed_everything`).
    device: default the CPU. vgg: a prebuilt loss network with the content layers (default `build_vgg(config)`;
    the pixel loss needs none). resume: a SuperResResult or a checkpoint path to continue (same config; the budget
    counts this call only). checkpoint: written atomically every `checkpoint_every` seconds and at the end; on a NaN
    loss training stops with `TrainingDiverged` and the last good checkpoint is left as it was.
    callback(run) after every logged step.
    """
    device = torch.device(device if device is not None else "cpu")
    run = resume_or_build(config, resume, device, build=build_super_resolution, load=load_super_resolution,
                          hint="load_super_resolution(path).config")
    if config.loss == "perceptual":
        vgg = build_vgg(config).to(device) if vgg is None else vgg
        check_vgg(vgg, config.content_layers, "build_vgg(config)")
    photos = PhotoCrops(config.image_size, min_scale=config.min_scale) if photos is None else photos
    return train_loop(run, lambda hr: train_step(run, hr, vgg), photos, budget=budget, device=device,
                      generator=generator, checkpoint=checkpoint, save=save_super_resolution,
                      checkpoint_every=checkpoint_every, log_every=log_every, progress=progress, callback=callback,
                      desc=f"super-resolution ({config.loss})")


# ---------------------------------------------------------------- checkpoints
def save_super_resolution(path: str | Path, run: SuperResResult, *, optimizer: bool = True, **extra) -> Path:
    """Write the run atomically as a "super_resolution" checkpoint (`transform_training.save_run`; optimizer=False:
    a smaller file to ship)."""
    return save_run(path, run, kind=SR_KIND, optimizer=optimizer, **extra)


def load_super_resolution(path: str | Path, *, device: torch.device | str = "cpu") -> SuperResResult:
    """Rebuild a run from `save_super_resolution`'s checkpoint on `device` (apply `.model`, or resume it); a
    checkpoint of another kind (a fast-style network, ...) or config is refused clearly."""
    return load_run(path, kind=SR_KIND, config_cls=SuperResConfig, build=build_super_resolution, device=device)[0]


def shipped_path(loss: str) -> Path:
    """The shipped network trained with `loss` (one of SHIPPED_SR): data/checkpoints/sr_<loss>.pt."""
    check_choice("shipped super-resolution network", loss, SHIPPED_SR,
                 " (or train one: python -m course_lib super-res train --loss LOSS --out NET.pt)")
    return checkpoint_path(f"sr_{loss}.pt")


# ---------------------------------------------------------------- applying the network
def upscale(net: TransformNet, image, *, batch_size: int = 4, device: torch.device | str | None = None,
            max_pixels: int | None = None) -> torch.Tensor:
    """y_hat = f_W(x): 4x super-resolution of images at any size (H, W >= 8), `batch_size` at a time.

    image: a tensor (N, C, H, W) or (C, H, W) with C in {1, 3, 4} (grayscale and RGBA are made RGB), or anything
    `images.load_image` takes. Returns (N, 3, 4H, 4W) in [0, 1] on `device` (default: the network's). Outputs over
    `max_pixels` (default: the profile's) are refused, naming the input size that fits.
    """
    if net.config.upscale != UPSCALE:
        raise ValueError(f"upscale needs a super-resolution network (TransformNetConfig(upscale={UPSCALE})), got "
                         f"upscale={net.config.upscale}: load one with load_super_resolution(path).model")
    images = rgb_batch(image)  # (N, 3, H, W) in [0, 1]
    if max_pixels is None:
        max_pixels = get_profile(device=device or next(net.parameters()).device).max_pixels
    _check_output_pixels(*images.shape[-2:], max_pixels)
    return apply_transform_net(net, images, batch_size=batch_size, device=device, max_pixels=max_pixels)


def _check_output_pixels(height: int, width: int, max_pixels: int) -> None:
    """Refuse an input whose 4x output is over `max_pixels`, naming the input's largest shorter side that fits."""
    pixels = UPSCALE ** 2 * height * width
    if pixels > max_pixels:
        fits = int(min(height, width) * math.sqrt(max_pixels / pixels))
        raise ValueError(f"the {UPSCALE}x output of a {width}x{height} image, {UPSCALE * width}x{UPSCALE * height} = "
                         f"{pixels:,} pixels, is larger than this profile allows (max_pixels={max_pixels:,}): give an "
                         f"input whose shorter side is at most {fits} pixels (size={fits}; upscale --size {fits}), or "
                         f"a larger profile (COURSE_PROFILE=full) on a machine with more memory")


# ---------------------------------------------------------------- evaluation
@dataclass
class SRScore:
    """One method on one photo: PSNR in dB (higher: closer in pixels) and perceptual distance (lower: looks closer)."""

    method: str
    photo: str
    psnr: float
    distance: float  # perceptual.perceptual_distance to the photo


@torch.inference_mode()
def evaluate_super_resolution(models: dict[str, TransformNet], *, photos: tuple[str, ...] = HELD_OUT,
                              size: int = 256, vgg: VGG19Features | None = None,
                              sigma: float = BLUR_SIGMA) -> list[SRScore]:
    """Score "bicubic" and each named network on the held-out photos: y = the photo with its shorter side `size`,
    cropped to a multiple of 4; x = degrade(y); each method's 4x output of x against y (PSNR, perceptual distance).

    vgg: the distance's network, with perceptual_distance's layers (default: caffe VGG19 on the CPU); the images
    are compared on its device."""
    vgg = VGG19Features("caffe", layers=DISTANCE_LAYERS) if vgg is None else vgg
    device = next(vgg.parameters()).device
    scores = []
    for photo in photos:
        hr = crop_to_multiple(example_image(photo, size), UPSCALE).to(device)  # y: (1, 3, H, W)
        low_res = degrade(hr, UPSCALE, sigma)  # x: (1, 3, H/4, W/4)
        outputs = {"bicubic": bicubic(low_res)}
        for name, net in models.items():
            outputs[name] = upscale(net, low_res, max_pixels=hr[0, 0].numel()).to(device)  # (1, 3, H, W)
        scores += [SRScore(method, photo, psnr(out, hr).item(), perceptual_distance(vgg, out, hr).item())
                   for method, out in outputs.items()]
    return scores


def mean_by_method(scores: list[SRScore]) -> dict[str, tuple[float, float]]:
    """{method: (mean PSNR, mean perceptual distance)} over the photos, in the order the methods first appear."""
    by_method: dict[str, list[SRScore]] = {}
    for score in scores:
        by_method.setdefault(score.method, []).append(score)
    return {method: (sum(s.psnr for s in rows) / len(rows), sum(s.distance for s in rows) / len(rows))
            for method, rows in by_method.items()}
