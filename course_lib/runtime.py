"""Where the course runs: the device, its mixed precision (`amp_dtype`, `autocast`, `grad_scaler`), the budget profile,
the seed and the progress bar.

Nothing here runs at import time; every notebook's first cell calls
`get_device()`, `get_profile()` and `seed_everything(...)`.
`check_choice` words every "unknown X: use one of ..." error of the course the same way.
"""
from __future__ import annotations

import functools
import os
import random
from contextlib import nullcontext
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["Profile", "PROFILES", "get_device", "get_profile", "seed_everything", "describe_profile",
           "data_dir", "checkpoint_path", "scale_profile", "cpu_has_bf16", "amp_dtype", "amp_reason",
           "autocast", "grad_scaler",
           "progress", "check_choice"]

VALID_DEVICES = ("cpu", "cuda", "mps")


def check_choice(what: str, value, choices, fix: str = ""):
    """`value` when it is one of `choices`, else ValueError("unknown {what} {value!r}: use one of a, b, c{fix}")."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}: use one of {', '.join(map(str, choices))}{fix}")
    return value


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
    reference_steps: int  # DDPM steps of the slow reference sampler (all T = 1000 when training)
    # content loss / style transfer chapters
    image_size: int  # working size (shorter side) of photos
    style_steps: int  # L-BFGS steps for stylize()
    feature_inversion_steps: int
    max_pixels: int  # larger images are refused with the size that would fit
    # feed-forward editing chapter (05)
    fast_style_seconds: float  # training a transformation network (course_lib.fast_style)
    fast_style_steps: int | None
    sr_seconds: float  # training a 4x super-resolution network (course_lib.super_resolution)
    sr_steps: int | None
    time_scale: float = 1.0  # < 1: the time and iteration budgets above were scaled down (COURSE_TIME_SCALE)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", train=False, mnist_limit=2000, judge_samples=200,
        gan_seconds=3.0, gan_steps=20, inversion_steps=20,
        diffusion_seconds=3.0, diffusion_steps=20, sample_steps=10, reference_steps=50,
        image_size=64, style_steps=5, feature_inversion_steps=5, max_pixels=512 * 512,
        fast_style_seconds=3.0, fast_style_steps=2, sr_seconds=3.0, sr_steps=2,
    ),
    "quick": Profile(
        name="quick", train=True, mnist_limit=None, judge_samples=1000,
        gan_seconds=60.0, gan_steps=None, inversion_steps=200,
        diffusion_seconds=300.0, diffusion_steps=None, sample_steps=50, reference_steps=1000,
        image_size=256, style_steps=100, feature_inversion_steps=100, max_pixels=1024 * 1024,
        fast_style_seconds=240.0, fast_style_steps=None, sr_seconds=240.0, sr_steps=None,
    ),
    "full": Profile(
        name="full", train=True, mnist_limit=None, judge_samples=5000,
        gan_seconds=300.0, gan_steps=None, inversion_steps=500,
        diffusion_seconds=900.0, diffusion_steps=None, sample_steps=100, reference_steps=1000,
        image_size=512, style_steps=300, feature_inversion_steps=300, max_pixels=2048 * 2048,
        fast_style_seconds=900.0, fast_style_steps=None, sr_seconds=900.0, sr_steps=None,
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
    kind = check_choice("device", name.split(":")[0], VALID_DEVICES, " (COURSE_DEVICE or get_device(name))")
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


@functools.cache
def cpu_has_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (oneDNN's own check; asked once, not on every step)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype `device` runs fastest, None for float32:

    - CUDA compute capability >= 8.0 (A100, L4, H100): bfloat16 tensor cores;
    - CUDA 7.x (V100, T4): float16, since their bfloat16 is emulated and slower than float32
      (not `torch.cuda.is_bf16_supported()`: it counts emulation as support);
    - a CPU with native bfloat16 (AVX512-BF16 or AMX): bfloat16;
    - anything else (MPS, other CPUs, CUDA < 7.0): None.
    """
    device = torch.device(device)
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return torch.bfloat16 if major >= 8 else torch.float16 if major == 7 else None
    if device.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return None


def amp_reason(device: torch.device | str) -> str:
    """One line: which mixed precision `amp_dtype(device)` chose and why (for the setup notebook and the CLI)."""
    device, dtype = torch.device(device), amp_dtype(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        gpu = f"{name} is compute capability {'.'.join(map(str, torch.cuda.get_device_capability(device)))}"
        if dtype == torch.bfloat16:
            return f"bfloat16 autocast: {gpu}, which has bfloat16 tensor cores"
        if dtype == torch.float16:
            return (f"float16 autocast with a GradScaler: {gpu}, which has float16 tensor cores but no "
                    f"bfloat16 hardware")
        return f"float32: {gpu}, which has no tensor cores"
    if device.type == "cpu":
        if dtype == torch.bfloat16:
            return "bfloat16 autocast: this CPU computes bfloat16 natively (AVX512-BF16 or AMX)"
        return "float32: this CPU has no native bfloat16, and emulated bfloat16 is slower than float32"
    return f"float32: the course uses mixed precision on CUDA and on CPUs with native bfloat16, not on {device.type}"


def autocast(device: torch.device | str, enabled: bool = True):
    """Mixed precision in one place: autocast in `amp_dtype(device)` (bfloat16 or float16), or no autocast
    (float32) where that is None or `enabled` is False. Weights stay float32, so checkpoints and sampling are
    unaffected."""
    device = torch.device(device)
    dtype = amp_dtype(device) if enabled else None
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device | str, enabled: bool = True) -> torch.amp.GradScaler:
    """The loss scaler for `autocast(device, enabled)`: on only when that autocast is float16, whose small
    gradients underflow to 0 unless the loss is scaled up first. A disabled scaler passes `scale`, `unscale_`,
    `step` and `update` straight through, so a loop calls them whatever the dtype."""
    device = torch.device(device)
    return torch.amp.GradScaler(device.type, enabled=enabled and amp_dtype(device) == torch.float16)


# What COURSE_TIME_SCALE shrinks (each to at least its floor); image sizes, widths and code paths stay the profile's.
SCALED_SECONDS = ("gan_seconds", "diffusion_seconds", "fast_style_seconds", "sr_seconds")
SCALED_COUNTS = {"gan_steps": 1, "diffusion_steps": 1, "fast_style_steps": 1, "sr_steps": 1, "inversion_steps": 1,
                 "style_steps": 1, "feature_inversion_steps": 1, "sample_steps": 10, "reference_steps": 50,
                 "judge_samples": 200}  # sampling steps and samples too: the full U-Net samples ~10x slower on a CPU


def get_profile(name: str | None = None, device: torch.device | str | None = None,
                time_scale: float | None = None) -> Profile:
    """The named profile, else COURSE_PROFILE, else `full` on CUDA and `quick` on CPU/MPS; its time, iteration and
    sample budgets multiplied by `time_scale`, else COURSE_TIME_SCALE, else 1 (`make rehearse` runs `full` so)."""
    name = name or os.environ.get("COURSE_PROFILE") or None
    if name is None:
        device = torch.device(device) if device is not None else get_device()
        name = "full" if device.type == "cuda" else "quick"
    check_choice("profile", name, PROFILES, " (set COURSE_PROFILE)")
    if time_scale is None:
        time_scale = _env_time_scale()
    return PROFILES[name] if time_scale == 1.0 else scale_profile(PROFILES[name], time_scale)


def _env_time_scale() -> float:
    text = os.environ.get("COURSE_TIME_SCALE") or "1"
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"COURSE_TIME_SCALE={text!r} is not a number: use e.g. 0.05 (5% of every time budget)") from None


def scale_profile(profile: Profile, time_scale: float) -> Profile:
    """`profile` with its seconds, iteration and sample budgets times `time_scale`, none below its floor in
    SCALED_COUNTS (nor above its own value)."""
    if not 0.0 < time_scale <= 1.0:
        raise ValueError(f"time scale must be in (0, 1], got {time_scale}: it only shortens budgets")
    seconds = {key: getattr(profile, key) * time_scale for key in SCALED_SECONDS}
    steps = {key: min(getattr(profile, key), max(floor, round(getattr(profile, key) * time_scale)))
             for key, floor in SCALED_COUNTS.items() if getattr(profile, key) is not None}
    return replace(profile, **seconds, **steps, time_scale=profile.time_scale * time_scale)


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


def progress(iterable=None, *, total: int | None = None, desc: str = "", disable: bool | None = None, **kwargs):
    """A tqdm.auto progress bar (a widget in notebooks, text in terminals). Disabled when not a TTY/notebook
    only if `disable` is None and COURSE_PROGRESS=0."""
    if disable is None:
        disable = os.environ.get("COURSE_PROGRESS", "1") == "0"
    return tqdm(iterable, total=total, desc=desc, disable=disable, dynamic_ncols=True, **kwargs)
