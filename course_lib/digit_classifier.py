"""The digit classifier behind the judge (course_lib.metrics) and how the project trains it.

A LeNet-style CNN (LeCun et al. 1998) trained with small random shifts, rotations, zooms and pixel noise,
plus outlier exposure (Hendrycks et al. 2019): noise, blobs, flat images, shuffled pixels and two digits
overlaid are trained towards a uniform prediction, so that the judge does not read garbage as a digit with
confidence (a plain classifier reads ~40% of uniform-noise images as an "8" with p >= 0.9).

`python -m course_lib.metrics` calls `train_judge()`, which writes data/checkpoints/digit_classifier.pt and a
JSON record (data source, held-out accuracy, command, date) beside it.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data import load_mnist
from .defaults import JUDGE_CHECKPOINT, JUDGE_STEPS
from .runtime import checkpoint_path, data_dir, get_device, seed_everything
from .runtime import autocast, grad_scaler, progress
from .train import Budget, check_finite, save_checkpoint

__all__ = [
    "DigitClassifierConfig", "DigitClassifier", "JudgeTrainConfig", "random_affine", "augment_digits",
    "not_digits", "train_classifier", "accuracy", "train_judge", "JUDGE_KIND",
]

JUDGE_KIND = "digit_classifier"
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # pixel statistics of the MNIST training set

# ---------------------------------------------------------------- the classifier
@dataclass
class DigitClassifierConfig:
    channels: tuple[int, int] = (16, 32)  # two conv(5x5) -> ReLU -> maxpool(2) stages: 28 -> 14 -> 7
    feature_dim: int = 64  # the penultimate layer: FID is computed in this space
    dropout: float = 0.25  # before the last layer, training only
    num_classes: int = 10


class DigitClassifier(nn.Module):
    """LeNet-style CNN (LeCun et al. 1998): (N, 1, 28, 28) in [0, 1] -> logits (N, 10).

    `features(x)` is the penultimate layer (N, feature_dim), after ReLU: what classifier FID compares.
    """

    def __init__(self, config: DigitClassifierConfig | None = None):
        super().__init__()
        self.config = config = config or DigitClassifierConfig()
        c1, c2 = config.channels
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # (N, c1, 14, 14)
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # (N, c2, 7, 7)
            nn.Flatten(),
            nn.Linear(c2 * 7 * 7, config.feature_dim), nn.ReLU(),  # (N, D)
        )
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


def augment_digits(x0: torch.Tensor, config: JudgeTrainConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """random_affine, then pixel noise of a random std in [0, max_noise] on half of the digits, clamped to [0, 1]."""
    n = x0.shape[0]
    std = torch.rand(n, 1, 1, 1, generator=generator) * config.max_noise * (torch.rand(n, 1, 1, 1, generator=generator) < 0.5)
    noise = torch.randn(x0.shape, generator=generator) * std
    return (random_affine(x0, config, generator) + noise.to(x0.device)).clamp(0, 1)


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


def train_judge(*, steps: int | None = JUDGE_STEPS, seconds: float | None = None, seed: int = 0,
                out: str | Path | None = None, device: torch.device | str | None = None,
                root: str | Path | None = None, command: str | None = None) -> tuple[DigitClassifier, dict]:
    """Train the judge on the MNIST train split, measure it on the test split, write the checkpoint and a
    JSON record (data source, held-out accuracy, command, date) beside it. Returns (model, record)."""
    device = get_device(str(device) if device is not None else None)
    root = Path(root) if root is not None else data_dir()
    generator = seed_everything(seed)
    train, test = load_mnist(root, "train"), load_mnist(root, "test", download=False)
    model = DigitClassifier().to(device)
    budget = Budget(max_steps=steps, max_seconds=seconds)
    history = train_classifier(model, train.images, train.labels, budget=budget, generator=generator)
    record = {
        "data_source": train.source, "n_train": len(train), "n_test": len(test),
        "held_out_accuracy": accuracy(model, test.images.to(device), test.labels),
        "steps": history["step"][-1] if history["step"] else 0, "seconds": round(budget.elapsed, 1),
        "seed": seed, "device": str(device), "torch": torch.__version__,
        "command": command or f"course_lib.digit_classifier.train_judge(steps={steps}, seconds={seconds}, seed={seed})",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "final_loss": history["loss"][-1] if history["loss"] else None,
    }
    out = Path(out) if out is not None else checkpoint_path(JUDGE_CHECKPOINT)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_checkpoint(out, kind=JUDGE_KIND, config=model.config, state=state,
                    held_out_accuracy=record["held_out_accuracy"], data_source=train.source)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return model, record
