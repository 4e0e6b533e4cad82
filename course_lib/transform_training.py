"""Training a TransformNet on photo crops, whatever its loss: the loop that fast style transfer and super-resolution
share (Johnson, Alahi & Fei-Fei 2016 train both tasks the same way, with another loss).

    W* = argmin_W E_y[ loss(f_W(input(y)), y) ]     y: a random crop of a training photo (`photo_crops`)

- `TransformRun`: the network, Adam, its EMA copy, the loss scaler, the history and the counters of one run.
- `optimizer_step`: one Adam step on a dict of weighted loss terms, refused before it touches the weights when the loss
  is NaN or explodes (`train.check_finite`).
- `train_loop`: crops -> `step(batch)` -> EMA -> progress, history, checkpoints, until the `train.Budget` is spent.
- `save_run` / `load_run`: the checkpoint of a run (kind "fast_style", "super_resolution", ...) and back.
- `apply_transform_net`: the trained network on any image, batch by batch.
Each task keeps its loss and its input in its own module (`fast_style`, `super_resolution`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .images import load_image
from .perceptual import VGG19Features
from .runtime import get_profile, grad_scaler, progress as progress_bar
from .style import check_pixels
from .train import (EMA, Budget, CheckpointError, TrainingDiverged, check_finite, check_resume_config, load_checkpoint,
                    save_checkpoint)
from .transform_net import TransformNet

__all__ = ["LOSS_LIMIT", "TransformRun", "build_run", "resume_or_build", "check_vgg", "optimizer_step", "train_loop",
           "save_run", "load_run", "apply_transform_net", "rgb_batch"]

LOSS_LIMIT = 1e12  # stop above this: in VGG's caffe units (0-255 inputs) the terms start near 1e4-1e6


@dataclass
class TransformRun:
    """A TransformNet in training and what its loop keeps. Apply `.model`.

    config: the task's dataclass config, with .net (TransformNetConfig), .lr, .batch_size, .ema_decay and
    .mixed_precision; history: lists per logged step ("step", "seconds", "loss" and each loss term); photos: the
    names of the training photos."""

    config: Any
    net: TransformNet
    optimizer: torch.optim.Optimizer
    ema_model: TransformNet | None = None
    scaler: torch.amp.GradScaler = field(default_factory=lambda: grad_scaler("cpu", enabled=False))  # float16 only
    history: dict[str, list[float]] = field(default_factory=dict)
    photos: tuple[str, ...] = ()
    steps: int = 0
    seconds: float = 0.0  # training time over all runs (resumed runs add up)
    images_seen: int = 0

    @property
    def model(self) -> TransformNet:
        """The network to apply: the EMA weights when kept, else the trained network itself."""
        return self.ema_model if self.ema_model is not None else self.net


def build_run(run_cls: type, config, device: torch.device | str = "cpu", **fields) -> TransformRun:
    """A fresh `run_cls` (TransformRun or a subclass): TransformNet(config.net) (PyTorch's default init), its Adam
    optimizer, its EMA copy and the loss scaler; `fields` set the subclass's own fields."""
    net = TransformNet(config.net).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    ema_model = EMA(net, config.ema_decay).model if config.ema_decay > 0 else None
    return run_cls(config, net, optimizer, ema_model, grad_scaler(device, config.mixed_precision), **fields)


def resume_or_build(config, resume, device: torch.device, *, build: Callable, load: Callable,
                    hint: str) -> TransformRun:
    """build(config, device) when `resume` is None; else the run to continue (a TransformRun, or a checkpoint path
    read by load(path, device=device)), which must have been trained with `config` (hint: how to get its config)."""
    if resume is None:
        return build(config, device)
    run = resume if isinstance(resume, TransformRun) else load(resume, device=device)
    check_resume_config(run.config, config, hint=hint)
    return run


def check_vgg(vgg: VGG19Features, layers: tuple[str, ...], build: str) -> None:
    """Refuse a loss network that does not compute `layers`, naming the function that builds the right one."""
    missing = [name for name in layers if name not in vgg.layers]
    if missing:
        raise ValueError(f"the VGG19Features passed in does not compute {missing}: build it with {build}")


# ---------------------------------------------------------------- training
def optimizer_step(run: TransformRun, terms: dict[str, torch.Tensor], *, limit: float = LOSS_LIMIT) -> dict[str, float]:
    """One Adam step on loss = sum(terms) (weighted scalars with a graph to the weights): {"loss", *terms} as floats.

    A NaN or exploding loss raises `TrainingDiverged` before the step, so the weights are never touched by it.
    """
    loss = sum(terms.values())
    values = dict(zip(("loss", *terms), torch.stack([loss, *terms.values()]).detach().tolist()))  # one sync
    check_finite(run.steps + 1, limit=limit, **values)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.optimizer)  # skipped when float16 gradients overflowed; the scale is lowered instead
    run.scaler.update()
    return values


def train_loop(run: TransformRun, step: Callable[[torch.Tensor], dict[str, float]], photos, *, budget: Budget,
               device: torch.device, generator: torch.Generator | None = None, checkpoint: str | Path | None = None,
               save: Callable | None = None, checkpoint_every: float = 60.0, log_every: int = 10,
               progress: bool = True, callback=None, desc: str = "training") -> TransformRun:
    """Train `run` within `budget`: each step a batch of crops (B, 3, S, S) in [0, 1] from
    `photos.sample(config.batch_size, generator)`, moved to `device`, then `step(batch)` (one `optimizer_step`,
    returning its losses), then the EMA update.

    checkpoint: written by save(checkpoint, run) every `checkpoint_every` seconds and at the end (a NaN stops the
    loop by `TrainingDiverged` before that, so the last good checkpoint stays). callback(run) after every logged step.
    """
    run.photos = tuple(getattr(photos, "sources", ()))
    run.net.train()
    bar = progress_bar(total=budget.total, desc=desc, disable=None if progress else True)
    calls, start_seconds, last_save, values = 0, run.seconds, 0.0, None
    budget.start()
    while not budget.done(calls):
        values = step(photos.sample(run.config.batch_size, generator).to(device))
        if run.ema_model is not None:
            EMA(run.net, run.config.ema_decay, average=run.ema_model).update(run.net, run.steps)
        run.steps, calls, run.images_seen = run.steps + 1, calls + 1, run.images_seen + run.config.batch_size
        run.seconds = start_seconds + budget.elapsed
        bar.update(1)
        if calls % log_every == 0 or calls == 1:
            _log(run, values, bar, callback)
        if checkpoint is not None and budget.elapsed - last_save >= checkpoint_every:
            save(checkpoint, run)
            last_save = budget.elapsed
    bar.close()
    if values is not None and run.history["step"][-1:] != [run.steps]:
        _log(run, values, bar, None)
    if checkpoint is not None:
        save(checkpoint, run)
    return run


def _log(run: TransformRun, values: dict[str, float], bar, callback) -> None:
    """Append this step's losses to the history, show them, then call `callback(run)`."""
    for key, value in {"step": run.steps, "seconds": round(run.seconds, 2), **values}.items():
        run.history.setdefault(key, []).append(value)
    bar.set_postfix({key: f"{value:.4g}" for key, value in values.items()})
    if callback is not None:
        callback(run)


# ---------------------------------------------------------------- checkpoints
def save_run(path: str | Path, run: TransformRun, *, kind: str, optimizer: bool = True, **extra) -> Path:
    """Write the network (and its EMA copy), Adam's state (unless optimizer=False: a smaller file to ship; resuming
    then starts Adam afresh), the config, history and photo names, and `extra`, atomically as a `kind` checkpoint."""
    def cpu(net: TransformNet) -> dict:
        return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}

    for name, net in (("the network", run.net), ("the EMA network", run.ema_model)):
        if net is not None and not all(torch.isfinite(p).all() for p in net.parameters()):
            raise TrainingDiverged(f"{name}'s weights became NaN/inf by step {run.steps}: not saved; the last good "
                                   f"checkpoint (if any) was kept. Lower the learning rate.")
    state = {"net": cpu(run.net)}
    if optimizer:
        state["optimizer"] = run.optimizer.state_dict()
    if run.ema_model is not None:
        state["ema"] = cpu(run.ema_model)
    return save_checkpoint(path, kind=kind, config=run.config, state=state, steps=run.steps, seconds=run.seconds,
                           images_seen=run.images_seen, history=run.history, photos=list(run.photos), **extra)


def load_run(path: str | Path, *, kind: str, config_cls: type, build: Callable,
             device: torch.device | str = "cpu") -> tuple[TransformRun, dict]:
    """(run, checkpoint): `save_run`'s `kind` checkpoint rebuilt by build(config, "cpu") and moved to `device`; the
    checkpoint dict holds the task's extra entries. Fails clearly on another kind or config."""
    ckpt = load_checkpoint(path, kind=kind, config_cls=config_cls)
    config, state = ckpt["config"], ckpt["state"]
    run = build(config, "cpu")
    try:
        run.net.load_state_dict(state["net"])
        if run.ema_model is not None:
            run.ema_model.load_state_dict(state.get("ema", state["net"]))
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"{path}: the weights do not fit {config_cls.__name__}{asdict(config)}: {e}") from e
    run.net.to(device)
    if run.ema_model is not None:
        run.ema_model.to(device)
    if "optimizer" in state:  # after .to(device): Adam's moments follow the parameters
        run.optimizer.load_state_dict(state["optimizer"])
    run.scaler = grad_scaler(device, config.mixed_precision)
    run.history = {k: list(v) for k, v in ckpt["history"].items()}
    run.photos = tuple(ckpt.get("photos", ()))
    run.steps, run.seconds, run.images_seen = ckpt["steps"], ckpt["seconds"], ckpt["images_seen"]
    return run, ckpt


# ---------------------------------------------------------------- applying the network
@torch.inference_mode()
def apply_transform_net(net: TransformNet, image, *, batch_size: int = 4, device: torch.device | str | None = None,
                        max_pixels: int | None = None) -> torch.Tensor:
    """f_W(x): one forward pass per batch of `batch_size` images, at their own size (any H, W >= 8).

    image: a tensor (N, C, H, W) or (C, H, W) with C in {1, 3, 4} (grayscale and RGBA are made RGB), or anything
    `images.load_image` takes (a path, PIL image, array). Returns (N, 3, u*H, u*W) in [0, 1] on `device` (default:
    the network's), u = net.config.upscale. Outputs over `max_pixels` (default: the profile's) are refused.
    """
    device = torch.device(device) if device is not None else next(net.parameters()).device
    images = rgb_batch(image)  # (N, 3, H, W) in [0, 1]
    if max_pixels is None:
        max_pixels = get_profile(device=device).max_pixels
    upscale = net.config.upscale
    check_pixels((upscale * images.shape[-2], upscale * images.shape[-1]), max_pixels)
    was_training = net.training
    net.eval()
    out = torch.cat([net(chunk.to(device)) for chunk in images.split(batch_size)])  # (N, 3, uH, uW)
    net.train(was_training)
    return out


def rgb_batch(image) -> torch.Tensor:
    """A batch (N, C, H, W) image by image through `load_image` (C in {1, 3, 4} -> 3, range checked); anything
    else as `load_image` reads it, (1, 3, H, W)."""
    if isinstance(image, torch.Tensor) and image.dim() == 4:
        return torch.cat([load_image(x) for x in image])
    return load_image(image)
