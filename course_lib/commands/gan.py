"""`python -m course_lib gan train ...` and `... gan sample ...`: the GAN chapter's commands.

train: a DCGAN on MNIST within the profile's budget (or --steps / --seconds), checkpoint at --out, a JSON
record beside it (the command, the steps, images/s and, with --judge N, the judge's scores).
sample: N images from a checkpoint's generator, as a tensor file (.pt, (N, C, S, S) in [-1, 1]) or a grid.
"""
from __future__ import annotations

import math
import sys

from .common import (add_sampling_args, add_training_args, budget, command_line, start_training, write_record,
                     write_samples)

__all__ = ["add", "run"]

SIZE_FIELDS = ("latent_dim", "g_channels", "d_channels")  # DCGANConfig fields `gan train` sets as --latent-dim, ...


def add(sub) -> None:
    p = sub.add_parser("gan", help="train a DCGAN on MNIST or sample from one")
    gsub = p.add_subparsers(dest="action", required=True)
    t = gsub.add_parser("train", help="train a DCGAN")
    add_training_args(t)
    t.add_argument("--out", required=True, help="checkpoint path to write")
    t.add_argument("--judge", type=int, default=0, metavar="N",
                   help="after training, score N samples with the digit judge (written to OUT.json)")
    for flag, what in (("--latent-dim", "nz, the length of z"), ("--g-channels", "ngf, G's width"),
                       ("--d-channels", "ndf, D's width")):
        t.add_argument(flag, type=int, default=None, help=f"{what} (default: gan.default_config for the device)")
    s = gsub.add_parser("sample", help="sample images from a checkpoint")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--n", type=int, default=64)
    add_sampling_args(s)
    p.set_defaults(run=run)


def run(args) -> int:
    return train(args) if args.action == "train" else sample(args)


def train(args) -> int:
    import torch

    from ..data import load_mnist
    from ..gan import default_config, evaluate, load_gan, prepare_mnist, train_gan
    from ..train import TrainingDiverged

    device, profile, generator = start_training(args)
    overrides = {k: getattr(args, k) for k in SIZE_FIELDS if getattr(args, k) is not None}
    if args.resume and overrides:
        print(f"error: --resume trains with the checkpoint's own config; drop {sorted(overrides)}", file=sys.stderr)
        return 2
    config = load_gan(args.resume).config if args.resume else default_config(device, **overrides)
    mnist = load_mnist(args.data, "train", limit=profile.mnist_limit)
    images = prepare_mnist(mnist.images, config.image_size)
    print(f"{config}\n{len(images)} digits ({mnist.source}), device={device}, profile={profile.name}")
    try:
        result = train_gan(config, images, budget=budget(args, profile.gan_steps, profile.gan_seconds),
                           device=device, generator=generator, resume=args.resume, checkpoint=args.out)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    record = {"command": train_command(args), "profile": profile.name, "device": str(device), "seed": args.seed,
              "data": mnist.source, "n_train": len(images), "steps": result.steps,
              "train_seconds": round(result.seconds, 1), "images_per_second": round(result.images_per_second),
              "torch": torch.__version__}
    if args.judge:
        record["judge"] = evaluate(result.sampler, n=args.judge)
    write_record(args.out, record)
    return 0


def train_command(args) -> str:
    """The training command, rebuilt from its arguments (recorded beside the checkpoint)."""
    flags = [("--profile", args.profile), ("--seconds", args.seconds), ("--steps", args.steps),
             *((f"--{k.replace('_', '-')}", getattr(args, k)) for k in SIZE_FIELDS),
             ("--seed", args.seed), ("--resume", args.resume), ("--judge", args.judge or None)]
    return command_line("gan train", args.out, flags)


def sample(args) -> int:
    import torch

    from ..gan import load_gan
    from ..gan import sample as draw
    from ..runtime import get_device

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    loaded = load_gan(args.checkpoint, device=get_device(args.device))
    images = draw(loaded.sampler, args.n, generator=torch.Generator().manual_seed(args.seed)).cpu()
    out = write_samples(images, args.out, nrow=int(math.ceil(math.sqrt(args.n))))  # (N, C, S, S) in [-1, 1]
    print(f"wrote {out}: {tuple(images.shape)} in [-1, 1]")
    return 0
