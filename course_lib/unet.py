"""The denoising network of the diffusion chapter: a small time- (and class-) conditioned U-Net.

    x_t (B, C, H, W), t (B,) -> model output (B, C, H, W)   (eps, x0 or v: see `DiffusionConfig.prediction`)

Shape of the default model on 28x28 digits (`base_channels=32, channel_mults=(1, 2, 2)`):

    28x28x32 --down--> 14x14x64 --down--> 7x7x64 (+ self-attention) --up--> 14x14 --up--> 28x28 -> 1 channel

(The diffusion recipe, `DiffusionConfig`, uses `patch_size=2, channel_mults=(1, 2)` instead: 14x14 and 7x7.)

Each level has `num_res_blocks` residual blocks on the way down and one more on the way up (fed the skip
connection). The time step enters every residual block through a sinusoidal embedding and an MLP (Ho et al.
2020, Appendix B); a class label, if the model is conditional, is added to that embedding. Label
`num_classes` is the *null label* that classifier-free guidance (Ho & Salimans 2022) trains with and samples
the unconditional prediction from.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNet", "timestep_embedding", "named_blocks", "shape_walk"]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) time steps, as in the Transformer: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # (B, dim)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, channels), channels)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, add the (time, class) embedding, GroupNorm -> SiLU -> dropout -> conv, + skip."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, *, dropout: float = 0.0, groups: int = 8):
        super().__init__()
        self.norm1, self.conv1 = _norm(in_ch, groups), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2, self.conv2 = _norm(out_ch, groups), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity: stable early training
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out_ch, H, W)
        h = h + self.emb(emb)[:, :, None, None]  # the time step (and label) shift every channel
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions of a (low-resolution) feature map, + skip."""

    def __init__(self, channels: int, *, heads: int = 4, groups: int = 8):
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))  # each (B, heads, HW, C/heads)
        attn = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d)) v
        return x + self.out(attn.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """A time- (and optionally class-) conditioned U-Net for (B, C, H, W) images; H and W divisible by
    patch_size * 2 ** (len(channel_mults) - 1).

    patch_size: 1 works on pixels; 2 folds each 2x2 block of pixels into 4 channels first (PixelUnshuffle) and
    unfolds at the end, so the network runs at half the resolution, about 4x cheaper (the "patch" of ViTs).
    attention_levels: indices into `channel_mults` (0 = full resolution) that get self-attention.
    num_classes: None for an unconditional model; else labels in [0, num_classes) plus the null label
    `num_classes` (the "no label" of classifier-free guidance).
    """

    def __init__(self, *, in_channels: int = 1, base_channels: int = 32, channel_mults: tuple[int, ...] = (1, 2, 2),
                 num_res_blocks: int = 1, attention_levels: tuple[int, ...] = (2,), num_classes: int | None = None,
                 dropout: float = 0.0, groups: int = 8, patch_size: int = 1):
        super().__init__()
        if patch_size not in (1, 2, 4):
            raise ValueError(f"patch_size must be 1, 2 or 4, got {patch_size}")
        if any(not 0 <= a < len(channel_mults) for a in attention_levels):
            raise ValueError(f"attention_levels {attention_levels} must index channel_mults {channel_mults}")
        self.in_channels, self.num_classes = in_channels, num_classes
        self.num_levels = len(channel_mults)
        emb_dim = 4 * base_channels
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.base_channels = base_channels
        self.label_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes is not None else None
        self.patch_size = patch_size  # > 1: work on (H / p, W / p) patches of p*p pixels (pixel unshuffle)
        self.stem = nn.Sequential(nn.PixelUnshuffle(patch_size),
                                  nn.Conv2d(in_channels * patch_size**2, base_channels, 3, padding=1))
        block = dict(emb_dim=emb_dim, dropout=dropout, groups=groups)
        chans = [base_channels * m for m in channel_mults]
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        skips, ch = [], base_channels
        for level, out_ch in enumerate(chans):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(ch, out_ch, **block))
                ch = out_ch
            attn = SelfAttention(ch, groups=groups) if level in attention_levels else nn.Identity()
            last = level == len(chans) - 1
            downsample = nn.Identity() if last else nn.Conv2d(ch, ch, 3, stride=2, padding=1)
            self.down.append(nn.ModuleList([blocks, attn, downsample]))
            skips.append(ch)
        self.mid = ResBlock(ch, ch, **block)
        for level in reversed(range(len(chans))):
            out_ch = chans[level]
            resblock = ResBlock(ch + skips[level], out_ch, **block)
            attn = SelfAttention(out_ch, groups=groups) if level in attention_levels else nn.Identity()
            ch = out_ch if level == 0 else chans[level - 1]  # the upsampling conv already goes to the next width
            upsample = nn.Identity() if level == 0 else nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(out_ch, ch, 3, padding=1))
            self.up.append(nn.ModuleList([resblock, attn, upsample]))
        self.head = nn.Sequential(_norm(ch, groups), nn.SiLU(), nn.Conv2d(ch, in_channels * patch_size**2, 3, padding=1),
                                  nn.PixelShuffle(patch_size))
        nn.init.zeros_(self.head[2].weight)
        nn.init.zeros_(self.head[2].bias)

    def embed(self, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """(B,) time steps and (B,) labels (or None) -> (B, emb_dim)."""
        emb = self.time_mlp(timestep_embedding(t, self.base_channels))
        if self.label_emb is None:
            if labels is not None:
                raise ValueError("this U-Net is unconditional (num_classes=None): do not pass labels")
            return emb
        if labels is None:  # no label given: the null label, i.e. the unconditional prediction
            labels = torch.full(t.shape, self.num_classes, dtype=torch.long, device=t.device)
        return emb + self.label_emb(labels)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, H, W) noisy images; t: (B,) time steps; labels: (B,) in [0, num_classes] or None."""
        emb = self.embed(t, labels)  # (B, emb_dim)
        h = self.stem(x)  # (B, base, H, W)
        skips = []
        for blocks, attn, downsample in self.down:
            for resblock in blocks:
                h = resblock(h, emb)
            h = attn(h)
            skips.append(h)
            h = downsample(h)  # (B, ch, H / 2, W / 2) except after the last level
        h = self.mid(h, emb)
        for resblock, attn, upsample in self.up:
            h = attn(resblock(torch.cat([h, skips.pop()], dim=1), emb))
            h = upsample(h)
        return self.head(h)  # (B, C, H, W)


def named_blocks(model: UNet) -> list[tuple[str, nn.Module]]:
    """The U-Net's blocks in the order forward runs them, named by place: "time_mlp", "label_emb" (conditional
    models), "stem", "down{level}.res{i}", "down{level}.attn", "down{level}.downsample", "mid", "up{level}.res",
    "up{level}.attn", "up{level}.upsample", "head". Identity placeholders (no attention, no resampling) are left out."""
    blocks = [("time_mlp", model.time_mlp)] + ([("label_emb", model.label_emb)] if model.label_emb is not None else [])
    blocks.append(("stem", model.stem))
    for level, (resblocks, attn, downsample) in enumerate(model.down):
        blocks += [(f"down{level}.res{i}", block) for i, block in enumerate(resblocks)]
        blocks += [(f"down{level}.{kind}", module) for kind, module in (("attn", attn), ("downsample", downsample))
                   if not isinstance(module, nn.Identity)]
    blocks.append(("mid", model.mid))
    for index, (resblock, attn, upsample) in enumerate(model.up):
        level = model.num_levels - 1 - index  # the up path visits the levels from the lowest resolution back
        blocks += [(f"up{level}.{kind}", module) for kind, module in (("res", resblock), ("attn", attn),
                                                                        ("upsample", upsample))
                   if not isinstance(module, nn.Identity)]
    return blocks + [("head", model.head)]


def shape_walk(model: UNet, x: torch.Tensor, t: torch.Tensor,
               labels: torch.Tensor | None = None) -> list[tuple[str, tuple[int, ...]]]:
    """(block, output shape) for each of `named_blocks(model)` on one forward pass of (x, t, labels), read by
    forward hooks; before each "up{level}.res" comes "up{level}.cat", its input: the path below concatenated
    with the level's skip connection. Runs without gradients; leaves no hooks behind."""
    walk: list[tuple[str, tuple[int, ...]]] = []
    hooks = []
    for name, block in named_blocks(model):
        if name.startswith("up") and name.endswith(".res"):
            hooks.append(block.register_forward_pre_hook(
                lambda module, args, name=name: walk.append((name[:-4] + ".cat", tuple(args[0].shape)))))
        hooks.append(block.register_forward_hook(
            lambda module, args, out, name=name: walk.append((name, tuple(out.shape)))))
    try:
        with torch.no_grad():
            model(x, t, labels)
    finally:
        for hook in hooks:
            hook.remove()
    return walk
