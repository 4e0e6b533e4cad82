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
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .optimize import OPTIMIZERS, OptimizationResult, optimize_image
from .perceptual import VGG19Features, content_loss
from .runtime import autocast, check_choice

__all__ = ["StyleConfig", "StyleResult", "gram_matrix", "style_loss", "tv_loss", "gatys_loss_terms", "stylize",
           "rgb_to_yiq", "yiq_to_rgb", "match_luminance", "match_colors", "resize_to_pixels", "pyramid_sizes",
           "tile_shuffle", "check_pixels", "judged_losses"]

GATYS_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
INITS = ("recolored", "content", "noise")
PLAIN_STEPS = 100  # the defaults match this many plain L-BFGS steps (pastiche's default, `make bench`)
AUTO_COARSEST = 256  # num_scales=None: halve the size while the coarsest level stays >= this many pixels


# ---------------------------------------------------------------- the losses
def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """G = F F^T / (C H W) for features (B, C, H, W) -> (B, C, C).

    Gatys et al. 2016, eq. 3: G_ij = sum_k F_ik F_jk, the correlation of channels i and j over all positions
    k (unnormalized there). Dividing by C*H*W makes it independent of the image size; it does not put layers of
    64 and 512 channels on a similar scale (notebook 04, section 2).
    """
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)  # (B, C, HW)
    return flat @ flat.transpose(1, 2) / (c * h * w)  # (B, C, C)


def style_loss(features: dict[str, torch.Tensor], target_grams: dict[str, torch.Tensor],
               layer_weights: dict[str, float] | None = None) -> torch.Tensor:
    """Gatys et al. 2016, eqs. 4-5: L_style = sum_l w_l * mean_ij (G^l_ij - A^l_ij)^2.

    With G = F F^T / (C H W) each layer's term is 4 / C_l^2 times the paper's E_l = sum (F F^T - A)^2 / (4 C_l^2
    (H W)^2): relative to the paper, a 64-channel layer weighs 64x a 512-channel one.

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


def tile_shuffle(image: torch.Tensor, tiles: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """`image` (B, C, H, W) cut into tiles x tiles blocks put back in a random order (same shape).

    Destroys the layout, keeps the local texture: its Gram matrices hardly change. When H or W is not a multiple
    of `tiles`, the last few rows / columns stay where they are.
    """
    height, width = image.shape[-2:]
    th, tw = height // tiles, width // tiles
    if th == 0 or tw == 0:
        raise ValueError(f"an image of {width}x{height} is too small for {tiles}x{tiles} tiles")
    blocks = [image[..., i * th:(i + 1) * th, j * tw:(j + 1) * tw] for i in range(tiles) for j in range(tiles)]
    order = torch.randperm(len(blocks), generator=generator).tolist()
    rows = [torch.cat([blocks[order[i * tiles + j]] for j in range(tiles)], dim=-1) for i in range(tiles)]
    out = image.clone()
    out[..., :tiles * th, :tiles * tw] = torch.cat(rows, dim=-2)
    return out


# ---------------------------------------------------------------- colour
# YIQ (NTSC): Y is the luminance, I and Q the chrominance. Gatys et al. 2017 ("Controlling perceptual
# factors in neural style transfer", section 5) transfer the style on Y alone and keep the photo's I, Q.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                            [0.5959, -0.2746, -0.3213],
                            [0.2115, -0.5227, 0.3112]])


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 3, H, W) YIQ (Y in [0, 1], I and Q about [-0.6, 0.6])."""
    return torch.einsum("ij,bjhw->bihw", _RGB_TO_YIQ.to(image), image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """The inverse of `rgb_to_yiq` (not clamped)."""
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_RGB_TO_YIQ).to(image), image)


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The style's luminance, shifted and scaled to the content's mean and std, as a gray RGB image.

    Gatys et al. 2017, eq. 6: L_s' = sigma_c / sigma_s * (L_s - mu_s) + mu_c. (B, 3, H, W) -> (B, 3, H, W).
    """
    y_style, y_content = rgb_to_yiq(style)[:, :1], rgb_to_yiq(content)[:, :1]
    scale = y_content.std() / y_style.std().clamp_min(1e-6)
    matched = (y_style - y_style.mean()) * scale + y_content.mean()
    return matched.clamp(0, 1).expand(-1, 3, -1, -1)


def match_colors(image: torch.Tensor, styles: list[torch.Tensor], weights: list[float] | None = None) -> torch.Tensor:
    """`image` with each RGB channel's mean and std moved to the paintings' (a weighted blend of them).

    x' = (x - mu_x) / sigma_x * sigma_s + mu_s per channel (Reinhard et al. 2001, in RGB). The default start of
    `stylize`: the colours are then already right, so the optimizer spends its steps on the strokes.
    """
    weights = weights or [1.0 / len(styles)] * len(styles)
    mean = sum(w * s.mean(dim=(2, 3), keepdim=True) for w, s in zip(weights, styles))  # (1, 3, 1, 1)
    std = sum(w * s.std(dim=(2, 3), keepdim=True) for w, s in zip(weights, styles))
    mu, sigma = image.mean(dim=(2, 3), keepdim=True), image.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    return ((image - mu) / sigma * std + mean).clamp(0, 1)


def _gray(image: torch.Tensor) -> torch.Tensor:
    return rgb_to_yiq(image)[:, :1].expand(-1, 3, -1, -1)  # (B, 3, H, W): Y in every channel


def _recolor(luminance_rgb: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Y of the stylized gray image + I, Q of the content photo, back to RGB in [0, 1]."""
    yiq = torch.cat([rgb_to_yiq(luminance_rgb)[:, :1], rgb_to_yiq(content)[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0, 1)


# ---------------------------------------------------------------- sizes
def resize_to_pixels(image: torch.Tensor, pixels: float) -> torch.Tensor:
    """Resize (B, 3, H, W) to about `pixels` pixels, keeping its aspect ratio (antialiased bilinear)."""
    height, width = image.shape[-2:]
    new_height = max(1, round(math.sqrt(pixels * height / width)))
    new_width = max(1, round(new_height * width / height))
    return _resize(image, (new_height, new_width))


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def pyramid_sizes(size: tuple[int, int], num_scales: int) -> list[tuple[int, int]]:
    """Coarse-to-fine sizes, each level half the next: (256, 256), 2 -> [(128, 128), (256, 256)]."""
    height, width = size
    return [(max(1, round(height / 2 ** k)), max(1, round(width / 2 ** k))) for k in reversed(range(num_scales))]


def check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    height, width = size
    if height * width > max_pixels:
        shorter = min(height, width)
        fits = int(shorter * math.sqrt(max_pixels / (height * width)))
        raise ValueError(f"an output of {width}x{height} = {height * width:,} pixels is larger than this profile "
                         f"allows (max_pixels={max_pixels:,}): use a shorter side of at most {fits} pixels "
                         f"(size={fits}), or a larger profile (COURSE_PROFILE=full) on a machine with more memory")


# ---------------------------------------------------------------- stylize
@dataclass
class StyleConfig:
    """Gatys style transfer. The defaults are the benchmarked CPU recipe (`make bench`): at 256 px, 30 L-BFGS steps
    on a 4-level pyramid parametrization from the recoloured photo match pastiche's 100 steps in a third of the time."""

    size: int = 256  # shorter side of the output, pixels
    steps: int = 30  # optimizer steps at the full size (one VGG forward + backward each)
    coarse_steps: int = 30  # optimizer steps at each coarser level of coarse-to-fine
    num_scales: int | None = None  # coarse-to-fine levels, each twice the previous; None: auto (coarsest >= 256 px)
    pyramid_levels: int = 4  # pixels parametrized as a 4-level pyramid (optimize.PyramidImage); 1: raw pixels
    pyramid_decay: float = 0.7  # weight decay^k of pyramid level k
    optimizer: str = "lbfgs"  # "lbfgs" (one evaluation per step, no line search) or "adam"
    lr: float | None = None  # Adam's learning rate in pixel units (default 0.02); L-BFGS uses 1
    content_weight: float = 1.0  # alpha
    style_weight: float = 1e3  # beta
    tv_weight: float = 0.0  # gamma
    content_layers: tuple[str, ...] = ("conv4_2",)  # Gatys et al. 2016, section 2.1
    style_layers: tuple[str, ...] = GATYS_STYLE_LAYERS
    style_weights: tuple[float, ...] | None = None  # blend of several paintings (normalized to sum 1)
    init: str = "recolored"  # "recolored" (the photo in the painting's colours), "content" or "noise"
    preserve_color: bool = False  # transfer on luminance only, keep the photo's colours
    weights: str = "caffe"  # VGG19 weights: "caffe" or "torchvision"
    pooling: str = "max"
    style_scale: float = 1.0  # the painting is resized to style_scale x the output's pixel count
    max_seconds: float | None = None  # wall-clock budget for the whole run
    seed: int = 0  # for init="noise"
    # the VGG pass under runtime.amp_dtype's autocast; off: L-BFGS without line search diverged on reduced precision
    mixed_precision: bool = False

    def __post_init__(self):
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("init", self.init, INITS)
        if self.size < 8 or (self.num_scales or 1) < 1 or self.steps < 0 or self.coarse_steps < 0:
            raise ValueError(f"need size >= 8, num_scales >= 1 and steps >= 0, got size={self.size}, "
                             f"num_scales={self.num_scales}, steps={self.steps}, coarse_steps={self.coarse_steps}")
        self.content_layers, self.style_layers = tuple(self.content_layers), tuple(self.style_layers)
        if self.style_weights is not None:
            self.style_weights = tuple(float(w) for w in self.style_weights)

    @classmethod
    def for_profile(cls, profile, **overrides) -> "StyleConfig":
        """The default recipe within a `runtime.Profile`'s budget; `overrides` win.

        size = profile.image_size. profile.style_steps counts plain full-size L-BFGS steps (as pastiche and
        Gatys et al. do); the defaults reach the quality of PLAIN_STEPS of those with `steps` of theirs, so the
        budget is scaled by steps / PLAIN_STEPS (quick: 100 -> 30), coarse levels in the same proportion.
        """
        base = cls()
        scale = profile.style_steps / PLAIN_STEPS
        values = {"size": profile.image_size, "steps": max(1, round(scale * base.steps)),
                  "coarse_steps": max(1, round(scale * base.coarse_steps))}
        return cls(**{**values, **overrides})


@dataclass
class StyleResult:
    """`image` (1, 3, H, W) in [0, 1]; `history`: per step {level, size, step, seconds, content, style, ...};
    `seconds`: total wall time; `level_seconds`: time per coarse-to-fine scale; `stopped`: why it ended early."""

    image: torch.Tensor
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    level_seconds: list[float] = field(default_factory=list)
    stopped: str | None = None


def stylize(content: torch.Tensor, style, config: StyleConfig | None = None, *, vgg: VGG19Features | None = None,
            max_pixels: int | None = None, progress: bool = True) -> StyleResult:
    """Paint `content` (1, 3, H, W) in [0, 1] in the style of `style` (one image or a list, any sizes).

    Coarse-to-fine (Gatys et al. 2017, section 6): optimize at 1/2^(num_scales-1) of the size, upsample, refine;
    the style targets of each level are computed once. Runs on content's device. `vgg`: a prebuilt
    `VGG19Features` with the config's layers (saves loading it again); `max_pixels`: refuse larger outputs
    (default: the current profile's budget).
    """
    config = config or StyleConfig()
    styles = [s.to(content.device) for s in (style if isinstance(style, (list, tuple)) else [style])]
    _check_images(content, styles)
    blend = _blend_weights(config.style_weights, len(styles))
    size = _output_size(content, config.size)
    if max_pixels is None:
        from .runtime import get_profile
        max_pixels = get_profile(device=content.device).max_pixels
    check_pixels(size, max_pixels)
    vgg = vgg if vgg is not None else _build_vgg(config).to(content.device)
    _check_vgg(vgg, config, size)
    photo = _gray(content) if config.preserve_color else content
    if config.preserve_color:  # Gatys et al. 2017, section 5.2: luminance-only transfer
        styles = [match_luminance(s, content) for s in styles]
    result = _coarse_to_fine(vgg, photo, styles, blend, size, config, progress)
    if config.preserve_color:
        result.image = _recolor(result.image, _resize(content, size))
    return result


def _coarse_to_fine(vgg, photo, styles, blend, size, config: StyleConfig, progress: bool) -> StyleResult:
    result, image, coarse_photo, t0 = StyleResult(image=_resize(photo, size)), None, None, time.perf_counter()
    smallest = _smallest_side(vgg)  # coarse levels too small for the deepest layer are skipped
    num_scales = config.num_scales or 1 + max(0, int(math.log2(min(size) / AUTO_COARSEST)))
    sizes = [s for s in pyramid_sizes(size, num_scales) if min(s) >= smallest] or [size]
    for level, level_size in enumerate(sizes):
        level_photo = _resize(photo, level_size)  # (1, 3, h, w)
        init = _initial_image(image, coarse_photo, level_photo, config, styles, blend)
        loss_fn = _gatys_loss(vgg, level_photo, styles, blend, config)  # targets of this level, once
        offset = time.perf_counter() - t0
        remaining = None if config.max_seconds is None else max(0.0, config.max_seconds - offset)
        run = optimize_image(loss_fn, init, steps=config.steps if level == len(sizes) - 1 else config.coarse_steps,
                             optimizer=config.optimizer, lr=config.lr, max_seconds=remaining,
                             pyramid_levels=config.pyramid_levels, pyramid_decay=config.pyramid_decay,
                             progress=progress,
                             desc=f"stylize {level_size[1]}x{level_size[0]}")
        result.history += [{"level": level, "size": level_size, **h, "seconds": h["seconds"] + offset}
                           for h in run.history]
        image, coarse_photo, result.stopped = run.image, level_photo, run.stopped
        result.level_seconds.append(run.seconds)
        if run.stopped:
            break
    result.image = _resize(image, size)
    result.seconds = time.perf_counter() - t0
    return result


def _initial_image(coarse: torch.Tensor | None, coarse_photo: torch.Tensor | None, photo: torch.Tensor,
                   config: StyleConfig, styles: list[torch.Tensor], blend: list[float]) -> torch.Tensor:
    """The first level starts from the photo (recoloured: in the paintings' colours), or noise. A finer level
    starts from the photo plus the upsampled change the coarser level made to it: the painted look carries
    over and the photo's fine detail is kept (plain upsampling would blur it away)."""
    if coarse is None:
        if config.init == "noise":
            gen = torch.Generator().manual_seed(config.seed)
            return torch.rand(photo.shape, generator=gen).to(photo.device)
        return match_colors(photo, styles, blend) if config.init == "recolored" else photo

    def upsample(image):
        return F.interpolate(image, size=photo.shape[-2:], mode="bilinear", align_corners=False)

    if config.init == "noise":  # no photo to keep: the upsampled result itself
        return upsample(coarse).clamp(0, 1)
    return (photo + upsample(coarse - coarse_photo)).clamp(0, 1)


def _gatys_loss(vgg: VGG19Features, photo: torch.Tensor, styles: list[torch.Tensor], blend: list[float],
                config: StyleConfig):
    """The loss at one coarse-to-fine scale; its targets (content features, style Grams) are computed once here."""
    with torch.no_grad():
        content_targets = {name: f for name, f in vgg(photo).items() if name in config.content_layers}
        pixels = photo.shape[-2] * photo.shape[-1] * config.style_scale
        # sum_s w_s ||G - A_s||^2 = ||G - sum_s w_s A_s||^2 + const when sum_s w_s = 1: blending several
        # paintings is matching the blended Gram matrices (same gradient, one target).
        target_grams = {name: 0.0 for name in config.style_layers}
        for weight, painting in zip(blend, styles):
            features = vgg(resize_to_pixels(painting, pixels))
            for name in config.style_layers:
                target_grams[name] = target_grams[name] + weight * gram_matrix(features[name])

    def loss_fn(image: torch.Tensor) -> dict[str, torch.Tensor]:
        with autocast(image.device, config.mixed_precision):  # the VGG pass in reduced precision if enabled
            features = vgg(image)
        features = {name: f.float() for name, f in features.items()}  # Gram matrices and losses in float32
        return gatys_loss_terms(features, image, content_targets, target_grams, config)

    return loss_fn


def gatys_loss_terms(features: dict[str, torch.Tensor], image: torch.Tensor, content_targets: dict[str, torch.Tensor],
                     target_grams: dict[str, torch.Tensor], config: StyleConfig) -> dict[str, torch.Tensor]:
    """The weighted terms of L(x) = alpha L_content + beta L_style + gamma L_tv (Gatys et al. 2016, eq. 7, plus TV).

    `features`: VGG activations of `image` (1, 3, H, W); `content_targets`: the photo's activations at the content
    layers; `target_grams`: the painting's Gram matrices at the style layers. Returns {"content", "style"[, "tv"]}
    (TV only when config.tv_weight is not 0), scalars whose sum is the loss that stylize minimizes.
    """
    terms = {"content": config.content_weight * content_loss(features, content_targets),
             "style": config.style_weight * style_loss(features, target_grams)}
    if config.tv_weight:
        terms["tv"] = config.tv_weight * tv_loss(image)
    return terms


def _build_vgg(config: StyleConfig) -> VGG19Features:
    return VGG19Features(config.weights, layers=config.content_layers + config.style_layers, pooling=config.pooling)


def _smallest_side(vgg: VGG19Features) -> int:
    """2^(number of poolings before the deepest layer): smaller images vanish before reaching it."""
    return 2 ** sum(1 for name in vgg.body if name.startswith("pool"))


def _check_vgg(vgg: VGG19Features, config: StyleConfig, size: tuple[int, int]) -> None:
    missing = [n for n in config.content_layers + config.style_layers if n not in vgg.layers]
    if missing:
        raise ValueError(f"the VGG19Features passed in does not compute {missing}: build it with "
                         f"layers=config.content_layers + config.style_layers")
    if min(size) < _smallest_side(vgg):
        raise ValueError(f"an output of {size[1]}x{size[0]} is too small for layer {list(vgg.body)[-1]!r} and the layers "
                         f"before it: use size >= {_smallest_side(vgg)}")


def _check_images(content: torch.Tensor, styles: list[torch.Tensor]) -> None:
    for name, image in [("content", content)] + [(f"style {i}", s) for i, s in enumerate(styles)]:
        if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[:2] != (1, 3):
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"{name} image must be a tensor (1, 3, H, W) in [0, 1], got {shape}: load it with "
                             f"course_lib.images.load_image (converts grayscale, RGBA and 16-bit images)")
        if not image.is_floating_point():
            raise ValueError(f"{name} image must be float in [0, 1], got {image.dtype}: use load_image")


def _blend_weights(weights: tuple[float, ...] | None, num_styles: int) -> list[float]:
    if weights is None:
        return [1.0 / num_styles] * num_styles
    if len(weights) != num_styles or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"style_weights must be {num_styles} non-negative numbers (one per style image, not all "
                         f"zero), got {weights}")
    return [w / sum(weights) for w in weights]


def _output_size(content: torch.Tensor, shorter: int) -> tuple[int, int]:
    height, width = content.shape[-2:]
    scale = shorter / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


@torch.no_grad()
def judged_losses(output: torch.Tensor, photo: torch.Tensor, painting: torch.Tensor,
                  vgg: VGG19Features | None = None) -> tuple[float, float]:
    """(content, style) of a stylized `output` (1, 3, H, W) in [0, 1] by one fixed definition, so that any two
    methods (stylize, a fast network, pastiche) are scored alike whatever their own losses were:
    content = MSE of conv4_2 activations against the photo resized to the output; style = sum over relu1_1..relu5_1
    of the MSE between Gram matrices (C*H*W-normalized), the painting resized to the output's pixel count.
    The caffe VGG19 with max pooling (`vgg`: one built with those layers, to reuse it)."""
    vgg = vgg or VGG19Features("caffe", layers=GATYS_STYLE_LAYERS + ("conv4_2",))
    photo = _resize(photo, tuple(output.shape[-2:]))
    painting = resize_to_pixels(painting, output.shape[-2] * output.shape[-1])
    out, ref, sty = vgg(output), vgg(photo), vgg(painting)
    content = F.mse_loss(out["conv4_2"], ref["conv4_2"]).item()
    style = sum(F.mse_loss(gram_matrix(out[n]), gram_matrix(sty[n])).item() for n in GATYS_STYLE_LAYERS)
    return content, style
