"""`python -m course_lib upscale CONTENT -o OUT ...` and `... super-res train ...`: 4x super-resolution (Johnson et
al. 2016, section 4.2; course_lib.super_resolution), chapter 05.

upscale: a trained network makes CONTENT (a file, URL or example photo's name) 4x larger in one forward pass;
--checkpoint names a shipped network (perceptual, the default, or pixel) or a checkpoint file.
super-res train: a network taught to undo blur + 4x downsampling with --loss pixel or perceptual, within the
profile's budget (or --steps / --seconds); checkpoint at --out, a JSON record beside it.
"""
from __future__ import annotations

import sys

from ..defaults import SR_LOSSES
from .common import (add_ship_arg, add_training_args, budget, checkpoint_or_shipped, command_line, read_photo,
                     start_training, transform_record, write_record)

__all__ = ["add", "run"]


def add(sub) -> None:
    u = sub.add_parser("upscale", help="make a photo 4x larger with a super-resolution network (Johnson et al. 2016)")
    u.add_argument("content", help="the photo: path, URL or example name (astronaut, cat, coffee, ...)")
    u.add_argument("-o", "--out", required=True, help="output image path (.png/.jpg)")
    u.add_argument("--checkpoint", default="perceptual", metavar="perceptual|pixel|PATH",
                   help="a shipped network by its loss (default: perceptual), or a checkpoint from `super-res train`")
    u.add_argument("--size", type=int, default=None,
                   help="shorter side of the photo in pixels before upscaling (default: as it is); the output's is 4x")
    u.add_argument("--device", default=None)
    u.set_defaults(run=run)
    p = sub.add_parser("super-res", help="train a 4x super-resolution network with a pixel or a perceptual loss")
    ssub = p.add_subparsers(dest="action", required=True)
    t = ssub.add_parser("train", help="train a super-resolution network on crops of the training photos")
    t.add_argument("--loss", required=True, choices=SR_LOSSES,
                   help="pixel: MSE of the pixels; perceptual: MSE of VGG's relu2_2 features (Johnson et al.)")
    t.add_argument("--out", required=True, help="checkpoint path to write (NET.pt)")
    add_training_args(t)
    t.add_argument("--size", type=int, default=None,
                   help="side of the square high-resolution training crops, a multiple of 4 (default 96; 288, the "
                        "paper's, under the full profile)")
    t.add_argument("--channels", type=int, default=None,
                   help="the network's width C (default 32; 64, the paper's, under the full profile)")
    add_ship_arg(t)
    p.set_defaults(run=run)


def run(args) -> int:
    return upscale(args) if args.command == "upscale" else train(args)


def _config(args, profile):
    """super_resolution.SuperResConfig for the profile, with the loss and the sizes given on the command line."""
    from dataclasses import replace

    from ..super_resolution import SuperResConfig
    config = SuperResConfig.for_profile(profile, loss=args.loss)
    overrides = {"image_size": args.size,
                 "net": replace(config.net, channels=args.channels) if args.channels is not None else None}
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def train(args) -> int:
    from ..super_resolution import load_super_resolution, save_super_resolution, train_super_resolution
    from ..train import TrainingDiverged

    device, profile, generator = start_training(args)
    if args.resume and (args.size, args.channels) != (None, None):
        print("error: --resume trains with the checkpoint's own config; drop --size and --channels", file=sys.stderr)
        return 2
    config = load_super_resolution(args.resume).config if args.resume else _config(args, profile)
    if config.loss != args.loss:
        print(f"error: {args.resume} was trained with --loss {config.loss}, not {args.loss}", file=sys.stderr)
        return 2
    print(f"{config}\ndevice={device}, profile={profile.name}")
    try:
        result = train_super_resolution(config, device=device, generator=generator, resume=args.resume,
                                        budget=budget(args, profile.sr_steps, profile.sr_seconds), checkpoint=args.out)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.ship:
        save_super_resolution(args.out, result, optimizer=False)
    write_record(args.out, transform_record(train_command(args), args, profile, device, result, loss=config.loss))
    return 0


def train_command(args) -> str:
    """The training command, rebuilt from its arguments (recorded beside the checkpoint)."""
    flags = [("--loss", args.loss), ("--profile", args.profile), ("--seconds", args.seconds), ("--steps", args.steps),
             ("--size", args.size), ("--channels", args.channels), ("--seed", args.seed), ("--resume", args.resume)]
    return command_line("super-res train", args.out, flags, ["--ship"] if args.ship else [])


def _checkpoint_path(name: str):
    """--checkpoint: a checkpoint file, or a shipped network's loss (super_resolution.SHIPPED_SR); else a clear
    error that says how to train it."""
    from ..super_resolution import SHIPPED_SR, shipped_path
    return checkpoint_or_shipped(name, SHIPPED_SR, shipped_path, "super-res train --loss {name} --out {out}",
                                 example="perceptual", what="--checkpoint ")


def upscale(args) -> int:
    import time

    from ..runtime import get_device
    from ..super_resolution import load_super_resolution, upscale as upscale_4x
    from ..viz import save_image

    device = get_device(args.device)
    run = load_super_resolution(_checkpoint_path(args.checkpoint), device=device)
    photo = read_photo(args.content, args.size)  # (1, 3, H, W) in [0, 1]
    start = time.perf_counter()
    large = upscale_4x(run.model, photo, device=device)  # (1, 3, 4H, 4W) in [0, 1]
    seconds = time.perf_counter() - start
    path = save_image(large.cpu(), args.out)
    print(f"wrote {path} ({photo.shape[-1]}x{photo.shape[-2]} -> {large.shape[-1]}x{large.shape[-2]}) in "
          f"{seconds:.2f} s on {device}, with the {run.config.loss} network trained {run.steps} steps")
    return 0
