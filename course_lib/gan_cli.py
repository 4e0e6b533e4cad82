"""The GAN chapter's commands: `python -m course_lib gan train ...` and `... gan sample ...`.

train: a DCGAN on MNIST within the profile's budget (or --steps / --seconds), checkpoint at --out, a JSON
record beside it (the command, the steps, images/s and, with --judge N, the judge's scores).
sample: N images from a checkpoint's generator, as a tensor file (.pt, (N, C, S, S) in [-1, 1]) or a grid.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

from .data import load_mnist
from .gan import default_config, evaluate, load_gan, prepare_mnist, sample, train_gan
from .runtime import get_device, get_profile, seed_everything
from .train import Budget, TrainingDiverged
from .viz import save_image

__all__ = ["run"]

_SIZE_FIELDS = ("latent_dim", "g_channels", "d_channels")  # DCGANConfig fields `gan train` sets as --latent-dim, ...


def run(args) -> int:
    """`python -m course_lib gan train ...` and `... gan sample ...` (see course_lib.cli for the flags)."""
    return _cli_train(args) if args.action == "train" else _cli_sample(args)


def _cli_budget(args, profile) -> Budget:
    if args.steps is not None or args.seconds is not None:
        return Budget(max_steps=args.steps, max_seconds=args.seconds)
    return Budget(max_steps=profile.gan_steps, max_seconds=profile.gan_seconds)


def _cli_train(args) -> int:
    device = get_device(args.device)
    profile = get_profile(args.profile, device=device)
    generator = seed_everything(args.seed)
    overrides = {k: getattr(args, k) for k in _SIZE_FIELDS if getattr(args, k) is not None}
    if args.resume and overrides:
        print(f"error: --resume trains with the checkpoint's own config; drop {sorted(overrides)}", file=sys.stderr)
        return 2
    config = load_gan(args.resume).config if args.resume else default_config(device, **overrides)
    mnist = load_mnist(args.data, "train", limit=profile.mnist_limit)
    images = prepare_mnist(mnist.images, config.image_size)
    print(f"{config}\n{len(images)} digits ({mnist.source}), device={device}, profile={profile.name}")
    try:
        run = train_gan(config, images, budget=_cli_budget(args, profile), device=device, generator=generator,
                        resume=args.resume, checkpoint=args.out)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    record = {"command": _command(args), "profile": profile.name, "device": str(device), "seed": args.seed,
              "data": mnist.source, "n_train": len(images), "steps": run.step, "train_seconds": round(run.seconds, 1),
              "images_per_second": round(run.images_per_second), "torch": torch.__version__}
    if args.judge:
        record["judge"] = evaluate(run.sampler, n=args.judge)
    Path(args.out).with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    print(f"wrote {args.out}")
    return 0


def _command(args) -> str:
    """The training command, rebuilt from its arguments (recorded beside the checkpoint)."""
    flags = [("--profile", args.profile), ("--seconds", args.seconds), ("--steps", args.steps),
             *((f"--{k.replace('_', '-')}", getattr(args, k)) for k in _SIZE_FIELDS),
             ("--seed", args.seed), ("--resume", args.resume), ("--judge", args.judge or None)]
    return " ".join(["python -m course_lib gan train", f"--out {args.out}"]
                    + [f"{flag} {value}" for flag, value in flags if value is not None])


def _cli_sample(args) -> int:
    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    run = load_gan(args.checkpoint, device=get_device(args.device))
    images = sample(run.sampler, args.n, generator=torch.Generator().manual_seed(args.seed)).cpu()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".pt":
        torch.save(images, out)  # (N, C, S, S) float in [-1, 1]
    else:
        save_image(images, out, nrow=int(math.ceil(math.sqrt(args.n))), value_range=(-1, 1))
    print(f"wrote {out}: {tuple(images.shape)} in [-1, 1]")
    return 0
