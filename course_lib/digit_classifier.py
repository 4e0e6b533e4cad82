"""The digit classifiers behind the judge (course_lib.metrics) and how the project trains them.

Two judges, trained apart, so that no figure rests on one classifier's quirks (`judge_recipe`):
- first: a LeNet-style CNN (LeCun et al. 1998) trained with small random shifts, rotations, zooms and pixel noise;
- second: an all-convolutional net (Springenberg et al. 2015: 3x3 convs, stride 2 instead of pooling, global
  average pooling) with GroupNorm, trained with elastic distortions (Simard et al. 2003), random erasing
  (Zhong et al. 2020), a wider affine range and another seed.
Both add outlier exposure (Hendrycks et al. 2019): noise, blobs, flat images, shuffled pixels and two digits
overlaid are trained towards a uniform prediction, so that a judge does not read garbage as a digit with
confidence (a plain classifier reads ~40% of uniform-noise images as an "8" with p >= 0.9).

`python -m course_lib.metrics [--second]` calls `train_judge(which=...)`, which writes
data/checkpoints/digit_classifier.pt (or digit_classifier_second.pt) and a JSON record (data source, held-out
accuracy, command, date) beside it.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data import load_mnist
from .defaults import JUDGE_CHECKPOINT, JUDGE_STEPS, SECOND_JUDGE_CHECKPOINT
from .runtime import check_choice, checkpoint_path, data_dir, get_device, seed_everything
from .runtime import autocast, grad_scaler, progress
from .train import Budget, check_finite, save_checkpoint

__all__ = [
    "DigitClassifierConfig", "DigitClassifier", "JudgeTrainConfig", "random_affine", "random_stroke_width",
    "elastic_distortion", "random_erasing", "augment_digits", "not_digits", "train_classifier", "accuracy",
    "JudgeRecipe", "judge_recipe", "train_judge", "JUDGE_KIND", "ARCHITECTURES", "JUDGES",
]

JUDGE_KIND = "digit_classifier"
ARCHITECTURES = ("lenet", "allconv")  # DigitClassifierConfig.arch
JUDGES = ("first", "second")  # the shipped judges (judge_recipe)
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # pixel statistics of the MNIST training set

# ---------------------------------------------------------------- the classifier
@dataclass
class DigitClassifierConfig:
    arch: str = "lenet"  # "lenet": 5x5 convs, max-pool, FC on the flat map; "allconv": 3x3 convs, stride 2, avg pool
    channels: tuple[int, ...] = (16, 32)  # one stage each, halving the size 28 -> 14 -> 7 (-> 4 -> 2); lenet has two
    feature_dim: int = 64  # the penultimate layer: FID is computed in this space
    dropout: float = 0.25  # before the last layer, training only
    num_classes: int = 10

    def __post_init__(self):  # checkpoints saved before `arch` existed rebuild as "lenet"
        check_choice("digit classifier arch", self.arch, ARCHITECTURES)
        self.channels = tuple(self.channels)  # a checkpoint may store a list
        if self.arch == "lenet" and len(self.channels) != 2:
            raise ValueError(f"the lenet digit classifier has two conv stages, got channels={self.channels}: "
                             f"pass two widths, e.g. (16, 32), or use arch='allconv' for any number")


def _lenet_body(config: DigitClassifierConfig) -> nn.Sequential:
    """LeNet-style (LeCun et al. 1998): two conv(5x5) -> ReLU -> maxpool(2) stages, then FC on the flattened map."""
    c1, c2 = config.channels
    return nn.Sequential(
        nn.Conv2d(1, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # (N, c1, 14, 14)
        nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # (N, c2, 7, 7)
        nn.Flatten(),
        nn.Linear(c2 * 7 * 7, config.feature_dim), nn.ReLU(),  # (N, D)
    )


def _allconv_body(config: DigitClassifierConfig) -> nn.Sequential:
    """All-convolutional (Springenberg et al. 2015): per stage conv(3x3) -> GroupNorm -> SiLU -> conv(3x3, stride 2)
    -> GroupNorm -> SiLU, no pooling; then global average pooling and a linear layer to the D features."""
    layers, c_in = [], 1
    for c in config.channels:  # (N, c, S, S) -> (N, c, ceil(S / 2), ceil(S / 2)): 28 -> 14 -> 7 -> 4 -> 2
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.GroupNorm(math.gcd(8, c), c), nn.SiLU(),
                   nn.Conv2d(c, c, 3, stride=2, padding=1), nn.GroupNorm(math.gcd(8, c), c), nn.SiLU()]
        c_in = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (N, c)
               nn.Linear(c_in, config.feature_dim), nn.SiLU()]  # (N, D)
    return nn.Sequential(*layers)


class DigitClassifier(nn.Module):
    """A small CNN, (N, 1, 28, 28) in [0, 1] -> logits (N, 10): LeNet-style or all-convolutional (`config.arch`).

    `features(x)` is the penultimate layer (N, feature_dim), after the nonlinearity: what classifier FID compares.
    """

    def __init__(self, config: DigitClassifierConfig | None = None):
        super().__init__()
        self.config = config = config or DigitClassifierConfig()
        self.body = _lenet_body(config) if config.arch == "lenet" else _allconv_body(config)
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) in [0, 1] -> (N, D) penultimate features."""
        return self.body((x - MNIST_MEAN) / MNIST_STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (N, 10) logits


# ---------------------------------------------------------------- training
@dataclass
class JudgeTrainConfig:
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    max_shift: float = 2.0  # augmentation: random translation up to this many pixels
    max_rotation: float = 10.0  # degrees
    max_scale: float = 0.1  # zoom in [1 - s, 1 + s]
    max_noise: float = 0.2  # Gaussian pixel noise of std up to this on half the digits: noisy digits stay digits
    max_stroke: float = 0.0  # stroke width: blend up to this share towards a 3x3 dilation (bolder) or erosion (0 = off)
    elastic_alpha: float = 0.0  # elastic distortion (Simard et al. 2003): displacement scale in pixels (0 = off)
    elastic_sigma: float = 4.0  # the displacement field's Gaussian smoothing, in pixels
    erase_prob: float = 0.0  # random erasing (Zhong et al. 2020): share of digits with one rectangle set to 0
    erase_area: tuple[float, float] = (0.02, 0.08)  # that rectangle's share of the image, drawn uniformly
    outlier_weight: float = 0.5  # outlier exposure: push non-digits towards a uniform prediction (0 = off)
    mixed_precision: bool = True  # the CNN autocasts like the GAN and diffusion loops (runtime.autocast)


def random_affine(x: torch.Tensor, config: JudgeTrainConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Small random shifts, rotations and zooms of (N, 1, 28, 28) digits (background 0 stays 0)."""
    n, size = x.shape[0], x.shape[-1]

    def rand(*shape: int) -> torch.Tensor:  # U(-1, 1), drawn on the CPU generator, moved to x's device
        return (torch.rand(*shape, generator=generator) * 2 - 1).to(x.device)

    angle = rand(n) * math.radians(config.max_rotation)
    scale = 1 + rand(n) * config.max_scale
    shift = rand(n, 2) * config.max_shift * 2 / size  # pixels -> affine_grid's [-1, 1] coordinates
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (N, 28, 28, 2)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def random_stroke_width(x: torch.Tensor, config: JudgeTrainConfig,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Bolder or thinner strokes: each (N, 1, H, W) digit blends by a share s ~ U(-max_stroke, max_stroke) towards
    its grey-level dilation (s > 0: 3x3 max filter) or erosion (s < 0: 3x3 min filter)."""
    share = ((torch.rand(x.shape[0], 1, 1, 1, generator=generator) * 2 - 1) * config.max_stroke).to(x.device)
    dilated = F.max_pool2d(x, 3, stride=1, padding=1)
    eroded = -F.max_pool2d(-x, 3, stride=1, padding=1)
    return x + share.clamp(min=0) * (dilated - x) + (-share).clamp(min=0) * (eroded - x)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    """(K,) 1-D Gaussian of std sigma, K = 2 ceil(3 sigma) + 1, summing to 1."""
    radius = math.ceil(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return kernel / kernel.sum()


def elastic_distortion(x: torch.Tensor, config: JudgeTrainConfig,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Simard et al. 2003, sec. 2: each pixel's displacement (dx, dy) ~ U(-1, 1), smoothed by a Gaussian of std
    elastic_sigma and scaled by elastic_alpha pixels; (N, 1, H, W) digits are resampled along it."""
    n, _, h, w = x.shape
    field = (torch.rand(n, 2, h, w, generator=generator) * 2 - 1).to(x.device)  # (N, 2, H, W): dx, dy
    kernel = _gaussian_kernel(config.elastic_sigma).to(x.device)  # (K,), separable: rows, then columns
    k, pad = len(kernel), len(kernel) // 2
    rows, cols = kernel.view(1, 1, 1, k).expand(2, 1, 1, k), kernel.view(1, 1, k, 1).expand(2, 1, k, 1)
    field = F.conv2d(F.pad(field, (pad, pad, 0, 0), mode="replicate"), rows, groups=2)  # (N, 2, H, W)
    field = F.conv2d(F.pad(field, (0, 0, pad, pad), mode="replicate"), cols, groups=2)
    to_grid = torch.tensor([2 / w, 2 / h], device=x.device)  # pixels -> grid_sample's [-1, 1] coordinates
    identity = F.affine_grid(torch.eye(2, 3, device=x.device).expand(n, 2, 3), list(x.shape), align_corners=False)
    grid = identity + config.elastic_alpha * field.permute(0, 2, 3, 1) * to_grid  # (N, H, W, 2)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def random_erasing(x: torch.Tensor, config: JudgeTrainConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zhong et al. 2020: with probability erase_prob, one rectangle of (N, 1, H, W) digits, of area share
    U(erase_area) and aspect ratio log-uniform in [0.3, 1 / 0.3], is set to 0 (the background)."""
    n, _, h, w = x.shape
    u = torch.rand(n, 5, generator=generator).to(x.device)  # area, aspect, top, left, erase or not
    low, high = config.erase_area
    area, aspect = (low + (high - low) * u[:, 0]) * h * w, torch.exp((2 * u[:, 1] - 1) * math.log(1 / 0.3))
    height, width = (area * aspect).sqrt().clamp(1, h), (area / aspect).sqrt().clamp(1, w)  # (N,) pixels
    top, left = u[:, 2] * (h - height), u[:, 3] * (w - width)
    rows, cols = torch.arange(h, device=x.device).view(1, h, 1), torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((rows >= top.view(n, 1, 1)) & (rows < (top + height).view(n, 1, 1))
              & (cols >= left.view(n, 1, 1)) & (cols < (left + width).view(n, 1, 1)))  # (N, H, W)
    erase = inside & (u[:, 4] < config.erase_prob).view(n, 1, 1)
    return x.masked_fill(erase.unsqueeze(1), 0.0)


def augment_digits(x0: torch.Tensor, config: JudgeTrainConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """random_stroke_width, random_affine, elastic_distortion and random_erasing (each when on), then pixel noise of
    a random std in [0, max_noise] on half of the digits, clamped to [0, 1]."""
    n = x0.shape[0]
    std = torch.rand(n, 1, 1, 1, generator=generator) * config.max_noise * (torch.rand(n, 1, 1, 1, generator=generator) < 0.5)
    noise = torch.randn(x0.shape, generator=generator) * std  # drawn first: the first judge's random stream as shipped
    x = random_stroke_width(x0, config, generator) if config.max_stroke > 0 else x0
    x = random_affine(x, config, generator)
    if config.elastic_alpha > 0:
        x = elastic_distortion(x, config, generator)
    if config.erase_prob > 0:
        x = random_erasing(x, config, generator)
    return (x + noise.to(x0.device)).clamp(0, 1)


def not_digits(x0: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Images that are not digits, (N, 1, 28, 28) in [0, 1], for outlier exposure (Hendrycks et al. 2019):
    uniform noise, sparse dots, smooth blobs, flat grey, pixel-shuffled digits, two different digits overlaid."""
    n, device = x0.shape[0], x0.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(device)

    shuffled = x0.flatten(1)[:, torch.randperm(784, generator=generator).to(device)].view_as(x0)
    partner = torch.randperm(n, generator=generator).to(device)
    overlay = torch.where((labels != labels[partner]).view(n, 1, 1, 1), torch.maximum(x0, x0[partner]), shuffled)
    kinds = torch.stack([
        rand(n, 1, 28, 28),
        (rand(n, 1, 28, 28) < 0.05 + 0.25 * rand(n, 1, 1, 1)).float(),
        F.interpolate(rand(n, 1, 7, 7), size=28, mode="bilinear", align_corners=False),
        rand(n, 1, 1, 1).expand(n, 1, 28, 28),
        shuffled,
        overlay,
    ])  # (K, N, 1, 28, 28)
    choice = torch.randint(len(kinds), (n,), generator=generator).to(device)
    return kinds[choice, torch.arange(n, device=device)]


def _loss(model: DigitClassifier, x0: torch.Tensor, labels: torch.Tensor, config: JudgeTrainConfig,
          generator: torch.Generator | None) -> torch.Tensor:
    """Cross-entropy on digits + outlier_weight * cross-entropy of non-digits to the uniform distribution.
    The CNN runs under `runtime.autocast`; the losses are computed in float32."""
    with autocast(x0.device, config.mixed_precision):
        logits = model(x0).float()  # (N, 10)
    loss = F.cross_entropy(logits, labels)
    if config.outlier_weight > 0:
        half = x0.shape[0] // 2
        outliers = not_digits(x0[:half], labels[:half], generator)
        with autocast(x0.device, config.mixed_precision):
            outlier_logits = model(outliers).float()  # (N / 2, 10)
        loss = loss - config.outlier_weight * outlier_logits.log_softmax(dim=1).mean()
    return loss


def train_classifier(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor, *, budget: Budget,
                     config: JudgeTrainConfig | None = None, generator: torch.Generator | None = None,
                     augment: bool = True) -> dict[str, list[float]]:
    """Cross-entropy with AdamW on (N, 1, 28, 28) digits in [0, 1], plus outlier exposure so that noise and
    blobs are not read as digits with confidence; returns the history {step, loss}.

    The learning rate follows a cosine schedule when the budget is in steps, and stays constant otherwise.
    """
    config = config or JudgeTrainConfig()
    device = next(model.parameters()).device
    images, labels = images.to(device), labels.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scaler = grad_scaler(device, config.mixed_precision)  # on only under float16 autocast
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, budget.max_steps)
                if budget.max_steps and budget.max_seconds is None else None)
    history: dict[str, list[float]] = {"step": [], "loss": []}
    model.train()
    step, bar = 0, progress(total=budget.total, desc="digit judge")
    while not budget.done(step):
        index = torch.randint(len(images), (config.batch_size,), generator=generator).to(device)
        x0 = augment_digits(images[index], config, generator) if augment else images[index]
        loss = _loss(model, x0, labels[index], config, generator)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)  # skipped when float16 gradients overflowed
        scaler.update()
        if schedule is not None:
            schedule.step()
        step += 1
        if step % 50 == 0 or step == 1:
            check_finite(step, loss=loss.item())
            history["step"].append(step)
            history["loss"].append(loss.item())
            bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.update(1)
    bar.close()
    if step and (not history["step"] or history["step"][-1] != step):
        history["step"].append(step)  # the last step is always recorded
        history["loss"].append(loss.item())
    model.eval()
    return history


@torch.no_grad()
def accuracy(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 500) -> float:
    """Share of `images` (N, 1, 28, 28) in [0, 1] that `model` (in eval mode) labels correctly."""
    device = next(model.parameters()).device
    predicted = torch.cat([model(images[i:i + batch_size].to(device)).argmax(dim=1).cpu()
                           for i in range(0, len(images), batch_size)])
    return (predicted == labels.cpu()).double().mean().item()


@dataclass
class JudgeRecipe:
    """How one shipped judge is made: its network, its training, its seed and its file in data/checkpoints/."""

    model: DigitClassifierConfig
    training: JudgeTrainConfig
    seed: int
    checkpoint: str


def judge_recipe(which: str = "first") -> JudgeRecipe:
    """The recipe of a shipped judge (fresh objects each call):
    "first": LeNet, shifts/rotations/zooms and pixel noise, seed 0;
    "second": all-conv with GroupNorm, no dropout, a wider affine range, stroke width, elastic distortion,
    random erasing, less pixel noise, seed 1. Without the stroke width it read bold 1s as 8s."""
    check_choice("judge", which, JUDGES)
    if which == "first":
        return JudgeRecipe(DigitClassifierConfig(), JudgeTrainConfig(), seed=0, checkpoint=JUDGE_CHECKPOINT)
    model = DigitClassifierConfig(arch="allconv", channels=(16, 32, 64, 64), feature_dim=64, dropout=0.0)
    training = JudgeTrainConfig(lr=4e-3, max_shift=2.5, max_rotation=12.0, max_scale=0.12, max_noise=0.1,
                                max_stroke=1.0, elastic_alpha=34.0, elastic_sigma=4.0,  # Simard et al.'s alpha, sigma
                                erase_prob=0.3)
    return JudgeRecipe(model, training, seed=1, checkpoint=SECOND_JUDGE_CHECKPOINT)


def train_judge(*, which: str = "first", steps: int | None = JUDGE_STEPS, seconds: float | None = None,
                seed: int | None = None, out: str | Path | None = None, device: torch.device | str | None = None,
                root: str | Path | None = None, command: str | None = None) -> tuple[DigitClassifier, dict]:
    """Train the judge `which` ("first" or "second", `judge_recipe`) on the MNIST train split, measure it on the
    test split, write the checkpoint and a JSON record (data source, held-out accuracy, recipe, command, date)
    beside it. seed None: the recipe's. Returns (model, record)."""
    recipe = judge_recipe(which)
    seed = recipe.seed if seed is None else seed
    device = get_device(str(device) if device is not None else None)
    root = Path(root) if root is not None else data_dir()
    generator = seed_everything(seed)
    train, test = load_mnist(root, "train"), load_mnist(root, "test", download=False)
    model = DigitClassifier(recipe.model).to(device)
    budget = Budget(max_steps=steps, max_seconds=seconds)
    history = train_classifier(model, train.images, train.labels, budget=budget, config=recipe.training,
                               generator=generator)
    record = {
        "judge": which, "data_source": train.source, "n_train": len(train), "n_test": len(test),
        "held_out_accuracy": accuracy(model, test.images.to(device), test.labels),
        "steps": history["step"][-1] if history["step"] else 0, "seconds": round(budget.elapsed, 1),
        "seed": seed, "device": str(device), "torch": torch.__version__,
        "command": command or f"course_lib.digit_classifier.train_judge(which={which!r}, steps={steps}, "
                              f"seconds={seconds}, seed={seed})",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "final_loss": history["loss"][-1] if history["loss"] else None,
        "model_config": asdict(recipe.model), "train_config": asdict(recipe.training),
    }
    out = Path(out) if out is not None else checkpoint_path(recipe.checkpoint)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_checkpoint(out, kind=JUDGE_KIND, config=model.config, state=state,
                    held_out_accuracy=record["held_out_accuracy"], data_source=train.source)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return model, record
