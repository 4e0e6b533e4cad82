"""What the training and sampling commands share: the budget flags, the record written beside a checkpoint, and
the samples file (`--out FILE.pt` tensor or an image grid)."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..defaults import PROFILE_NAMES

__all__ = ["add_training_args", "add_ship_arg", "add_sampling_args", "start_training", "budget", "command_line", "read_photo",
           "transform_record", "write_record", "write_samples", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")  # else a tensor file


def add_training_args(p: argparse.ArgumentParser) -> None:
    """The budget/seed/device flags shared by every training command."""
    p.add_argument("--profile", choices=list(PROFILE_NAMES), default=None,
                   help="budget profile (default: COURSE_PROFILE, else full on CUDA, quick elsewhere)")
    p.add_argument("--seconds", type=float, default=None, help="training time budget, overrides the profile")
    p.add_argument("--steps", type=int, default=None, help="training step budget, overrides the profile")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu | cuda | mps (default: best available)")
    p.add_argument("--data", default=None,
                   help="data/cache folder (default: COURSE_DATA, else the repository's data/, where notebooks look)")
    p.add_argument("--resume", default=None, metavar="CKPT", help="continue training from this checkpoint")


def add_ship_arg(p: argparse.ArgumentParser) -> None:
    """--ship: the final checkpoint of a TransformNet command made small enough to commit."""
    p.add_argument("--ship", action="store_true",
                   help="write the final checkpoint to ship with the course: without Adam's state (it cannot be "
                        "resumed) and without a copy of the painting")


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    """The output/seed/device flags shared by every sampling command."""
    p.add_argument("--out", required=True, help=".pt (float tensor (N, 1, H, W) in [-1, 1]) or .png (grid)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)


def start_training(args):
    """(device, profile, generator) of a training command: the device and profile asked for, everything seeded."""
    from ..runtime import get_device, get_profile, seed_everything
    device = get_device(args.device)
    return device, get_profile(args.profile, device=device), seed_everything(args.seed)


def budget(args, steps: int | None, seconds: float | None):
    """train.Budget from --steps / --seconds when either is given, else the profile's `steps` and `seconds`."""
    from ..train import Budget
    if args.steps is not None or args.seconds is not None:
        return Budget(max_steps=args.steps, max_seconds=args.seconds)
    return Budget(max_steps=steps, max_seconds=seconds)


def command_line(command: str, out: str, flags: list[tuple[str, object]], switches: list[str] = ()) -> str:
    """A training command rebuilt from its arguments (recorded beside the checkpoint): flags whose value is None
    are left out, then the switches (flags without a value) that are on."""
    words = [f"python -m course_lib {command}", f"--out {out}"]
    return " ".join(words + [f"{flag} {value}" for flag, value in flags if value is not None] + list(switches))


def read_photo(src: str, size: int | None = None):
    """CONTENT of an apply command: an example photo's name (astronaut, cat, ...), else a path or URL, as
    (1, 3, H, W) in [0, 1] with its shorter side `size` (None: as it is)."""
    from ..images import EXAMPLE_IMAGES, example_image, load_image
    return (example_image if src in EXAMPLE_IMAGES else load_image)(src, size)


def transform_record(command: str, args, profile, device, result, **fields) -> dict:
    """The record of a TransformNet training command (fast-style, super-res train): how it ran, the photos, its
    speed, sizes and last losses; `fields` (the painting, the loss, ...) come after the seed."""
    import torch
    config = result.config
    last = {key: round(values[-1], 5) for key, values in result.history.items()
            if key not in ("step", "seconds") and values}
    return {"command": command, "profile": profile.name, "device": str(device), "seed": args.seed, **fields,
            "photos": list(result.photos), "steps": result.steps, "train_seconds": round(result.seconds, 1),
            "seconds_per_step": round(result.seconds / result.steps, 3) if result.steps else None,
            "crop_size": config.image_size, "batch_size": config.batch_size, "channels": config.net.channels,
            "final": last, "torch": torch.__version__}


def write_record(checkpoint: str | os.PathLike, record: dict) -> Path:
    """Write a training command's record as CHECKPOINT.json beside the checkpoint, print it, and say where."""
    path = Path(checkpoint).with_suffix(".json")
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    print(f"wrote {checkpoint}")
    return path


def write_samples(images, out: str | os.PathLike, *, nrow: int) -> Path:
    """Samples (N, C, H, W) in [-1, 1] to `out`: an image grid of `nrow` columns for an image suffix (.png, .jpg,
    ...), else the float tensor itself (torch.save, e.g. FILE.pt). Returns the path."""
    import torch

    from ..viz import save_image
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in IMAGE_SUFFIXES:
        save_image(images, out, nrow=nrow, value_range=(-1, 1))
    else:
        torch.save(images, out)  # (N, C, H, W) float in [-1, 1]
    return out


def checkpoint_or_shipped(name: str, shipped: tuple[str, ...], shipped_path, train: str, example: str,
                          what: str = "") -> Path:
    """A checkpoint file, or the shipped network called `name` (one of `shipped`, found by `shipped_path`); else
    a FileNotFoundError that names what is missing and how to train it: `train` is the command with {name} and
    {out} to fill, `example` the name it suggests for a network that is not shipped."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if name in shipped:
        found = shipped_path(name)
        if found.is_file():
            return found
        raise FileNotFoundError(f"the shipped {name} network {found} is not here: train it with python -m course_lib "
                                f"{train.format(name=name, out=found)} --ship")
    out = name if name.endswith(".pt") else f"{name}.pt"
    raise FileNotFoundError(f"{what}{name!r} is neither a checkpoint file nor a shipped network ({', '.join(shipped)}). "
                            f"Train one: python -m course_lib {train.format(name=example, out=out)}")
