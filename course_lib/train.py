"""Pieces every training loop in the course shares.

- `Budget`: stop after N steps or S seconds, whichever comes first.
- `EMA`: exponential moving average of a model's weights.
- `save_checkpoint` / `load_checkpoint`: atomic writes that store the config and the library version,
  safe loads (`weights_only=True`) that fail clearly on the wrong kind of checkpoint.
- `check_finite`: stop a run whose loss became NaN or exploded.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import torch

from .downloads import atomic_write

__all__ = [
    "Budget", "EMA", "TrainingDiverged", "CheckpointError",
    "save_checkpoint", "load_checkpoint", "check_finite", "check_resume_config",
]

FORMAT_VERSION = 1


def _library_version() -> str:
    from . import __version__
    return __version__


@dataclass
class Budget:
    """A step and/or seconds budget. `done(step)` is True once either limit is reached.

    The clock starts at `start()` (called by the first `done`), so set-up time is not counted.
    """

    max_steps: int | None = None
    max_seconds: float | None = None
    _t0: float | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.max_steps is None and self.max_seconds is None:
            raise ValueError("a training budget needs max_steps or max_seconds (or both)")
        if self.max_steps is not None and self.max_steps < 0:
            raise ValueError(f"max_steps must be >= 0, got {self.max_steps}")
        if self.max_seconds is not None and self.max_seconds < 0:
            raise ValueError(f"max_seconds must be >= 0, got {self.max_seconds}")

    def start(self) -> "Budget":
        self._t0 = time.perf_counter()
        return self

    @property
    def elapsed(self) -> float:
        return 0.0 if self._t0 is None else time.perf_counter() - self._t0

    def done(self, step: int) -> bool:
        if self._t0 is None:
            self.start()
        if self.max_steps is not None and step >= self.max_steps:
            return True
        return self.max_seconds is not None and self.elapsed >= self.max_seconds

    def fraction(self, step: int) -> float:
        """How much of the budget `step` steps and the elapsed time have used, in [0, 1]: the larger share."""
        steps = step / self.max_steps if self.max_steps else 0.0
        seconds = self.elapsed / self.max_seconds if self.max_seconds else 0.0
        return min(1.0, max(steps, seconds))

    @property
    def total(self) -> int | None:
        """Steps for a progress bar when the budget is in steps."""
        return self.max_steps if self.max_seconds is None else None


class EMA:
    """theta_ema <- decay * theta_ema + (1 - decay) * theta, after each optimizer step.

    Keeps a frozen copy of the model (`.model`) in eval mode; buffers are copied as they are. `update(model, step)`
    warms up: it uses min(decay, (1 + step) / (10 + step)), so the early average forgets the random initial weights.
    """

    def __init__(self, model: torch.nn.Module, decay: float = 0.999, *, average: torch.nn.Module | None = None):
        """average: an averaged copy to go on updating (a run's `.ema_model`); default a fresh copy of `model`."""
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.model = average if average is not None else copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int | None = None, *, decay: float | None = None) -> None:
        """One averaging step: at `decay` if given, else warmed up at update number `step`, else at `self.decay`."""
        d = decay if decay is not None else self.decay if step is None else self.warmup_decay(step)
        for p_ema, p in zip(self.model.parameters(), model.parameters()):
            p_ema.lerp_(p.detach(), 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)

    def warmup_decay(self, step: int) -> float:
        """The decay at update number `step` (from 0): min(decay, (1 + step) / (10 + step))."""
        return min(self.decay, (1 + step) / (10 + step))


def check_resume_config(saved, config, *, hint: str) -> None:
    """Resuming trains with the checkpoint's own config: raise CheckpointError naming the fields that differ."""
    if asdict(saved) != asdict(config):
        changed = sorted(k for k, v in asdict(config).items() if asdict(saved)[k] != v)
        raise CheckpointError(f"cannot resume: the checkpoint was trained with another config "
                              f"(fields {changed} differ); pass its config ({hint}) instead")


class TrainingDiverged(RuntimeError):
    """Raised when a loss becomes NaN/inf or explodes; the last good checkpoint is left untouched."""


class CheckpointError(ValueError):
    """A checkpoint that does not match what the caller asked to load."""


def check_finite(step: int, limit: float = 1e6, **losses: float) -> None:
    """Raise `TrainingDiverged` naming the loss and step when any loss is NaN, inf or above `limit`."""
    for name, value in losses.items():
        value = float(value)
        if not math.isfinite(value) or abs(value) > limit:
            raise TrainingDiverged(
                f"{name} became {value} at step {step}: training stopped. Lower the learning rate or check the "
                f"data range; the last good checkpoint (if any) was kept."
            )


def _config_dict(config: Any) -> dict:
    if is_dataclass(config):
        return asdict(config)
    if isinstance(config, dict):
        return dict(config)
    raise TypeError(f"config must be a dataclass or dict, got {type(config).__name__}")


def save_checkpoint(path: str | os.PathLike, *, kind: str, config: Any, state: dict, **extra: Any) -> Path:
    """Write {format, kind, config, state, version, extra} atomically (`downloads.atomic_write`): a crash or a full
    disk half-way leaves the previous checkpoint at `path` intact.
    """
    path = Path(path)
    payload = {
        "format": FORMAT_VERSION,
        "kind": kind,
        "config": _config_dict(config),
        "version": _library_version(),
        "state": state,
        **extra,
    }
    with atomic_write(path) as f:
        torch.save(payload, f)
    return path


def load_checkpoint(path: str | os.PathLike, *, kind: str, config_cls: type | None = None,
                    map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint safely (`weights_only=True`) and check it is of `kind` and of a format this library reads.

    With `config_cls`, `ckpt["config"]` is rebuilt into that dataclass; unknown or missing fields
    raise `CheckpointError` naming them.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise CheckpointError(f"{path} is not a readable course checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or "kind" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path} is not a course checkpoint (no 'kind'/'config' entries)")
    if ckpt.get("format", 0) > FORMAT_VERSION:  # older files (or none, before format 1) load as they are
        raise CheckpointError(f"{path} was written by a newer course_lib (format {ckpt['format']}, this one reads up "
                              f"to {FORMAT_VERSION}): update the course with git pull")
    if ckpt["kind"] != kind:
        raise CheckpointError(f"{path} holds a {ckpt['kind']!r} checkpoint, but a {kind!r} one was expected")
    if config_cls is not None:
        ckpt["config"] = _rebuild_config(config_cls, ckpt["config"], path)
    return ckpt


def _rebuild_config(config_cls: type, values: dict, path: Path) -> Any:
    names = {f for f in config_cls.__dataclass_fields__}
    unknown = sorted(set(values) - names)
    if unknown:
        raise CheckpointError(f"{path}: config fields {unknown} are unknown to {config_cls.__name__} "
                              f"(checkpoint from another model or library version)")
    try:
        return config_cls(**values)
    except TypeError as e:
        raise CheckpointError(f"{path}: cannot rebuild {config_cls.__name__} from the stored config: {e}") from e
