"""Where the course runs: the device, the budget profile, and the seed.

Nothing here runs at import time; every notebook's first cell calls
`get_device()`, `get_profile()` and `seed_everything(...)`.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

__all__ = ["Profile", "PROFILES", "get_device", "get_profile", "seed_everything", "describe_profile",
           "data_dir", "checkpoint_path"]

VALID_DEVICES = ("cpu", "cuda", "mps")


@dataclass(frozen=True)
class Profile:
    """Budgets that notebooks and the CLI read; no notebook hard-codes one.

    smoke: CI, every code path in about a minute on 2 CPU cores (pictures come from shipped checkpoints).
    quick: a laptop CPU, each notebook in a few minutes with recognizable results.
    full:  one GPU (Colab T4 and up), the real recipes.
    """

    name: str
    train: bool  # False: notebooks load shipped checkpoints and only run a few steps of each loop
    # data
    mnist_limit: int | None  # cap on training digits (None = all available)
    # the judge (metrics.py)
    judge_samples: int  # N for FID / recognizability in notebooks
    # GAN chapter
    gan_seconds: float
    gan_steps: int | None
    inversion_steps: int
    # diffusion chapter
    diffusion_seconds: float
    diffusion_steps: int | None
    sample_steps: int  # DDIM steps used for pictures in the notebook
    # content loss / style transfer chapters
    image_size: int  # working size (shorter side) of photos
    style_steps: int  # L-BFGS steps for stylize()
    feature_inversion_steps: int
    max_pixels: int  # larger images are refused with the size that would fit


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", train=False, mnist_limit=2000, judge_samples=200,
        gan_seconds=3.0, gan_steps=20, inversion_steps=20,
        diffusion_seconds=3.0, diffusion_steps=20, sample_steps=10,
        image_size=64, style_steps=5, feature_inversion_steps=5, max_pixels=512 * 512,
    ),
    "quick": Profile(
        name="quick", train=True, mnist_limit=None, judge_samples=1000,
        gan_seconds=60.0, gan_steps=None, inversion_steps=200,
        diffusion_seconds=300.0, diffusion_steps=None, sample_steps=50,
        image_size=256, style_steps=100, feature_inversion_steps=100, max_pixels=1024 * 1024,
    ),
    "full": Profile(
        name="full", train=True, mnist_limit=None, judge_samples=5000,
        gan_seconds=300.0, gan_steps=None, inversion_steps=500,
        diffusion_seconds=900.0, diffusion_steps=None, sample_steps=100,
        image_size=512, style_steps=300, feature_inversion_steps=300, max_pixels=2048 * 2048,
    ),
}


def get_device(name: str | torch.device | None = None) -> torch.device:
    """CUDA, then MPS, then CPU. `name` or the COURSE_DEVICE variable overrides the choice."""
    name = str(name) if name else os.environ.get("COURSE_DEVICE") or None
    if name is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in VALID_DEVICES:
        raise ValueError(f"unknown device {name!r}: use one of {', '.join(VALID_DEVICES)} (COURSE_DEVICE or get_device(name))")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available here: use 'cpu' or unset COURSE_DEVICE")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r} was asked for but MPS is not available here: use 'cpu' or unset COURSE_DEVICE")
    try:
        device = torch.device(name)
    except RuntimeError as e:  # e.g. "cuda:x"
        raise ValueError(f"invalid device {name!r}: use cpu, cuda, cuda:N or mps") from e
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                         f"numbered from cuda:0")
    return device


def get_profile(name: str | None = None, device: torch.device | str | None = None) -> Profile:
    """The named profile, else COURSE_PROFILE, else `full` on CUDA and `quick` on CPU/MPS."""
    name = name or os.environ.get("COURSE_PROFILE") or None
    if name is None:
        device = torch.device(device) if device is not None else get_device()
        name = "full" if device.type == "cuda" else "quick"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: use one of {', '.join(PROFILES)} (set COURSE_PROFILE)")
    return PROFILES[name]


def describe_profile(profile: Profile) -> str:
    """One line per budget, for the setup notebook and the CLI."""
    return "\n".join(f"  {f.name:<24} {getattr(profile, f.name)}" for f in fields(profile))


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU `torch.Generator` seeded the same way."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def data_dir() -> Path:
    """The cache folder: COURSE_DATA if set, else the repository's `data/` (so notebooks find it from
    `notebooks/`), else `./data`. Creating it is left to whoever writes there."""
    if os.environ.get("COURSE_DATA"):
        return Path(os.environ["COURSE_DATA"])
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").is_file():
        return repo / "data"
    return Path("data")


def checkpoint_path(name: str) -> Path:
    """A checkpoint shipped with (or trained by) the course: `data_dir()/checkpoints/name`."""
    return data_dir() / "checkpoints" / name
