"""The networks of the GAN chapter: DCGAN's generator and discriminator (Radford et al. 2016).

    G: z (B, latent_dim) -> images (B, C, S, S) in [-1, 1]     D: images (B, C, S, S) -> logits (B,)

Both are stacks of stride-2 (transposed) convolutions with BatchNorm, one per doubling (G) or halving (D)
of the image size, for S = 28, 32 or 64 (shapes in the comments). The config, the losses and the training
loop are in `course_lib.gan`, as `course_lib.unet` holds the diffusion chapter's network.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["Generator", "Discriminator", "layer_shapes", "dcgan_init"]


def _project(latent_dim: int, channels: int, size: int) -> nn.Sequential:
    """z as a 1x1 image -> a (channels, size, size) map: a transposed conv whose kernel covers the output."""
    return nn.Sequential(nn.ConvTranspose2d(latent_dim, channels, size, 1, 0, bias=False),
                         nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


def _up(c_in: int, c_out: int) -> nn.Sequential:
    """Double the size: ConvTranspose(k=4, s=2, p=1) gives H_out = (H - 1) * 2 - 2 + 4 = 2H."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _to_image(c_in: int, c_image: int) -> nn.Sequential:
    """The last doubling, to pixels in [-1, 1]: no BatchNorm on G's output (Radford et al. 2016)."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_image, 4, 2, 1, bias=False), nn.Tanh())


def _down(c_in: int, c_out: int, *, norm: bool = True) -> nn.Sequential:
    """Halve the size: Conv(k=4, s=2, p=1) gives H_out = floor((H + 2 - 4) / 2) + 1 = H / 2."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not norm),
                         nn.BatchNorm2d(c_out) if norm else nn.Identity(), nn.LeakyReLU(0.2, inplace=True))


def _to_logit(c_in: int, size: int) -> nn.Sequential:
    """A conv whose kernel covers the whole (size x size) map: one logit per image, no Sigmoid."""
    return nn.Sequential(nn.Conv2d(c_in, 1, size, 1, 0), nn.Flatten(0))  # (B, 1, 1, 1) -> (B,)


class Generator(nn.Module):
    """z (B, latent_dim) -> images (B, C, S, S) in [-1, 1]; ngf = g_channels, C = image_channels.
    `config`: a `gan.DCGANConfig` (its image_size, image_channels, latent_dim, g_channels)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        nz, ngf, c = config.latent_dim, config.g_channels, config.image_channels
        if config.image_size == 28:
            layers = [_project(nz, 2 * ngf, 7),  # (B, nz, 1, 1) -> (B, 2ngf, 7, 7)
                      _up(2 * ngf, ngf),  # -> (B, ngf, 14, 14)
                      _to_image(ngf, c)]  # -> (B, C, 28, 28)
        elif config.image_size == 32:
            layers = [_project(nz, 4 * ngf, 4),  # (B, nz, 1, 1) -> (B, 4ngf, 4, 4)
                      _up(4 * ngf, 2 * ngf),  # -> (B, 2ngf, 8, 8)
                      _up(2 * ngf, ngf),  # -> (B, ngf, 16, 16)
                      _to_image(ngf, c)]  # -> (B, C, 32, 32)
        else:  # 64
            layers = [_project(nz, 8 * ngf, 4),  # (B, nz, 1, 1) -> (B, 8ngf, 4, 4)
                      _up(8 * ngf, 4 * ngf),  # -> (B, 4ngf, 8, 8)
                      _up(4 * ngf, 2 * ngf),  # -> (B, 2ngf, 16, 16)
                      _up(2 * ngf, ngf),  # -> (B, ngf, 32, 32)
                      _to_image(ngf, c)]  # -> (B, C, 64, 64)
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"z must be (B, {self.config.latent_dim}), got {tuple(z.shape)}")
        return self.net(z[:, :, None, None])  # (B, nz) -> (B, nz, 1, 1) -> (B, C, S, S)


class Discriminator(nn.Module):
    """images (B, C, S, S) in [-1, 1] -> logits (B,): one real-vs-fake score per image; ndf = d_channels.
    `config`: a `gan.DCGANConfig` (its image_size, image_channels, d_channels)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        ndf, c = config.d_channels, config.image_channels
        if config.image_size == 28:
            layers = [_down(c, ndf, norm=False),  # (B, C, 28, 28) -> (B, ndf, 14, 14); no BN on D's input
                      _down(ndf, 2 * ndf),  # -> (B, 2ndf, 7, 7)
                      _to_logit(2 * ndf, 7)]  # -> (B,)
        elif config.image_size == 32:
            layers = [_down(c, ndf, norm=False),  # (B, C, 32, 32) -> (B, ndf, 16, 16)
                      _down(ndf, 2 * ndf),  # -> (B, 2ndf, 8, 8)
                      _down(2 * ndf, 4 * ndf),  # -> (B, 4ndf, 4, 4)
                      _to_logit(4 * ndf, 4)]  # -> (B,)
        else:  # 64
            layers = [_down(c, ndf, norm=False),  # (B, C, 64, 64) -> (B, ndf, 32, 32)
                      _down(ndf, 2 * ndf),  # -> (B, 2ndf, 16, 16)
                      _down(2 * ndf, 4 * ndf),  # -> (B, 4ndf, 8, 8)
                      _down(4 * ndf, 8 * ndf),  # -> (B, 8ndf, 4, 4)
                      _to_logit(8 * ndf, 4)]  # -> (B,)
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size, c = self.config.image_size, self.config.image_channels
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, size, size):
            raise ValueError(f"images must be (B, {c}, {size}, {size}), got {tuple(x.shape)}"
                             + (" (pad 28x28 MNIST by 2 pixels: prepare_mnist does it)" if size == 32 else ""))
        return self.net(x)


@torch.no_grad()
def layer_shapes(net: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """(layer, output shape) for each top-level layer of `net.net` (or of `net` if it is a Sequential) on
    input x: the table to compare with the shape comments above (or to find a bug like the seed article's)."""
    layers = net.net if hasattr(net, "net") else net
    shapes: list[tuple[str, tuple[int, ...]]] = []
    hooks = [layer.register_forward_hook(lambda module, args, out, name=name:
                                         shapes.append((f"{name}: {type(module).__name__}", tuple(out.shape))))
             for name, layer in layers.named_children()]
    try:
        net(x)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2016: conv weights ~ N(0, 0.02); BatchNorm scale ~ N(1, 0.02), shift 0.
    Use as `net.apply(dcgan_init)`."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
