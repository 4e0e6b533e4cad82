"""The image transformation network of Johnson, Alahi & Fei-Fei (2016), "Perceptual Losses for Real-Time Style
Transfer and Super-Resolution": one feed-forward pass paints a photo (or upsamples it 4x), where Gatys et al.
optimize the pixels of every image anew.

Layout (their supplementary material, Table 1; pytorch/examples fast_neural_style's TransformerNet), for
channels C (the paper: 32):

    stem      9x9 conv 3 -> C                                 (B, C, H, W)
    down      3x3 conv stride 2, C -> 2C; then 2C -> 4C       (B, 4C, H/4, W/4)     upscale=1 only
    residual  5 blocks of two 3x3 convs at 4C                 (B, 4C, H/4, W/4)
    up        nearest x2 + 3x3 conv, 4C -> 2C; then 2C -> C   (B, C, H, W)
    head      9x9 conv C -> 3, then (tanh + 1) / 2            (B, 3, H, W) in [0, 1]

Every conv but the head's is followed by instance normalization (Ulyanov et al. 2016: per image and channel,
so the contrast of one photo does not leak into another's) and a ReLU. Instance norm also makes the network blind
to its input's brightness and contrast (x and a x + b give one output), which style wants and super-resolution
cannot afford: there `norm="batch"` (the paper's, per batch) or `norm="none"`. Convolutions pad by reflection
(no dark frame at the border); upsampling is a nearest resize then a conv, not a transposed conv, whose
uneven kernel overlap draws checkerboards (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts").

`upscale=4` is the same family for 4x super-resolution (Johnson et al., section 4.2): no downsampling, the
residual blocks run at C on the low-resolution input (the paper: C = 64) and the two upsampling stages
make the output 4x larger.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TransformNetConfig", "TransformNet", "ResidualBlock", "conv_block", "upsample_block", "shape_walk",
           "MIN_SIDE"]

UPSCALES = (1, 4)
NORMS = ("instance", "batch", "none")
MIN_SIDE = 8  # smallest input side: padded to a multiple of 4, the bottleneck is then >= 2 pixels for its 3x3 pad


@dataclass
class TransformNetConfig:
    """The network's shape. Defaults are narrower than the paper's, for 2-core CPUs (see `channels`)."""

    channels: int = 16  # C, the first conv's width (the paper: 32); 16 costs ~4x fewer multiply-adds
    num_residual: int = 5  # residual blocks at the bottleneck (the paper: 5 for style, 4 for super-resolution)
    upscale: int = 1  # 1: output the input's size (style); 4: 4x super-resolution (no downsampling stages)
    norm: str = "instance"  # after each conv: "instance" (style), "batch" (the paper's) or "none"
    bicubic_skip: bool = False  # upscale=4 only: learn the residual over bicubic upsampling (Kim et al. 2016, VDSR)

    def __post_init__(self):
        if self.upscale not in UPSCALES:
            raise ValueError(f"upscale must be one of {UPSCALES}, got {self.upscale}")
        if self.bicubic_skip and self.upscale == 1:
            raise ValueError("bicubic_skip adds the bicubic upsampling of the input: it needs upscale=4")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}: use one of {', '.join(NORMS)}")
        if self.channels < 1 or self.num_residual < 0:
            raise ValueError(f"need channels >= 1 and num_residual >= 0, got channels={self.channels}, "
                             f"num_residual={self.num_residual}")

    @property
    def bottleneck_channels(self) -> int:
        """Width of the residual blocks: 4C after two downsamplings (style), C without them (upscale=4)."""
        return 4 * self.channels if self.upscale == 1 else self.channels


def conv_block(c_in: int, c_out: int, kernel_size: int, stride: int = 1, *, relu: bool = True,
               norm: str = "instance") -> nn.Sequential:
    """Reflection pad, conv, normalization (instance or batch, affine: learned scale and shift per channel), ReLU."""
    layers = [nn.ReflectionPad2d(kernel_size // 2), nn.Conv2d(c_in, c_out, kernel_size, stride), _norm(norm, c_out)]
    return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)


def _norm(norm: str, channels: int) -> nn.Module:
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.BatchNorm2d(channels) if norm == "batch" else nn.Identity()


def upsample_block(c_in: int, c_out: int, norm: str = "instance") -> nn.Sequential:
    """(B, c_in, h, w) -> (B, c_out, 2h, 2w): nearest resize then a 3x3 conv (no checkerboard artifacts)."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv_block(c_in, c_out, 3, norm=norm))


class ResidualBlock(nn.Module):
    """y = x + IN(conv(ReLU(IN(conv(x))))): the block learns a change to x (He et al. 2016); with zero conv
    weights (and the initial zero IN shift) it is the identity. (B, C, h, w) -> (B, C, h, w).
    No ReLU after the sum (Johnson et al.'s supplementary material, after Gross & Wilber 2016)."""

    def __init__(self, channels: int, norm: str = "instance"):
        super().__init__()
        self.body = nn.Sequential(conv_block(channels, channels, 3, norm=norm),
                                  conv_block(channels, channels, 3, relu=False, norm=norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TransformNet(nn.Module):
    """RGB images (B, 3, H, W) in [0, 1], any H, W >= MIN_SIDE -> (B, 3, upscale*H, upscale*W) in [0, 1]."""

    def __init__(self, config: TransformNetConfig | None = None):
        super().__init__()
        self.config = config = config or TransformNetConfig()
        c, wide = config.channels, config.bottleneck_channels
        down, up = _sampling_stages(config)
        self.stem = conv_block(3, c, 9, norm=config.norm)  # (B, C, H, W)
        self.down = down  # (B, 4C, H/4, W/4) for style; nothing for upscale=4
        self.residual = nn.Sequential(*(ResidualBlock(wide, config.norm) for _ in range(config.num_residual)))
        self.up = up  # (B, C, upscale*H, upscale*W)
        self.head = nn.Sequential(nn.ReflectionPad2d(4), nn.Conv2d(c, 3, 9))  # (B, 3, uH, uW), unbounded
        if config.bicubic_skip:  # the residual starts at zero: the untrained network is bicubic upsampling
            nn.init.zeros_(self.head[1].weight)
            nn.init.zeros_(self.head[1].bias)

    @property
    def multiple(self) -> int:
        """Input sides are padded to a multiple of this: 4 (two stride-2 convs) for style, 1 for upscale=4."""
        return 4 if self.config.upscale == 1 else 1

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        _check_input(image)
        height, width = image.shape[-2:]
        pad_h, pad_w = -height % self.multiple, -width % self.multiple
        x = F.pad(image, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else image  # sides % 4 == 0
        x = self.head(self.up(self.residual(self.down(self.stem(x)))))
        u = self.config.upscale
        x = x[..., :u * height, :u * width]  # crop the padding back off
        if not self.config.bicubic_skip:
            return (torch.tanh(x) + 1) / 2  # Johnson et al.'s scaled tanh, in [0, 1] (equal to sigmoid(2x))
        out = F.interpolate(image, scale_factor=u, mode="bicubic", align_corners=False) + x  # detail added
        return out if self.training else out.clamp(0, 1)  # unclamped in training, so every pixel gets a gradient


def _sampling_stages(config: TransformNetConfig) -> tuple[nn.Sequential, nn.Sequential]:
    """(down, up): two stride-2 convs and two upsamplings (style), or no downsampling and two upsamplings at C
    (upscale=4: the image stays small through the residual blocks, where the work is cheap)."""
    c, norm = config.channels, config.norm
    if config.upscale == 1:
        down = nn.Sequential(conv_block(c, 2 * c, 3, stride=2, norm=norm),
                             conv_block(2 * c, 4 * c, 3, stride=2, norm=norm))
        return down, nn.Sequential(upsample_block(4 * c, 2 * c, norm), upsample_block(2 * c, c, norm))
    return nn.Sequential(), nn.Sequential(upsample_block(c, c, norm), upsample_block(c, c, norm))  # empty: identity


def _check_input(image: torch.Tensor) -> None:
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"TransformNet takes RGB images (B, 3, H, W) in [0, 1], got {tuple(image.shape)}: convert "
                         f"grayscale or RGBA images with course_lib.images.load_image")
    if min(image.shape[-2:]) < MIN_SIDE:
        raise ValueError(f"an image of {image.shape[-1]}x{image.shape[-2]} is too small for TransformNet: "
                         f"each side needs at least {MIN_SIDE} pixels")


@torch.no_grad()
def shape_walk(net: TransformNet, height: int = 256, width: int = 256) -> list[tuple[str, tuple[int, ...]]]:
    """The output shape of every stage for one (1, 3, height, width) input: [("input", ...), ("stem", ...),
    ("down.0", ...), ..., ("head", ...)] (shapes of the padded image; the head's before the crop)."""
    shapes, hooks = [], []
    stages = [("stem", net.stem), *(("down." + n, m) for n, m in net.down.named_children()),
              *(("residual." + n, m) for n, m in net.residual.named_children()),
              *(("up." + n, m) for n, m in net.up.named_children()), ("head", net.head)]
    for name, module in stages:
        def record(_module, _inputs, out, name=name):
            shapes.append((name, tuple(out.shape)))
        hooks.append(module.register_forward_hook(record))
    device = next(net.parameters()).device
    try:
        net(torch.zeros(1, 3, height, width, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    return [("input", (1, 3, height, width))] + shapes
