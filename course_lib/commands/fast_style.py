"""`python -m course_lib fast-style train ...` and `... fast-style apply ...`: feed-forward style transfer
(Johnson et al. 2016, course_lib.fast_style), chapter 05.

train: a transformation network taught to paint photos in the style of --style (a painting's name or an image file)
within the profile's budget (or --steps / --seconds); checkpoint at --out, a JSON record beside it.
apply: a trained network paints CONTENT (a file, URL or example photo's name) in one forward pass.
"""
from __future__ import annotations

import sys

from .common import (add_ship_arg, add_training_args, budget, checkpoint_or_shipped, command_line, read_photo,
                     start_training, transform_record, write_record)

__all__ = ["add", "run"]


def add(sub) -> None:
    p = sub.add_parser("fast-style", help="train a feed-forward style network (Johnson et al. 2016) or apply one")
    fsub = p.add_subparsers(dest="action", required=True)
    t = fsub.add_parser("train", help="train a transformation network on one painting")
    t.add_argument("--style", required=True,
                   help="the painting: a name (starry_night, the_scream, great_wave, ...) or an image path or URL")
    t.add_argument("--out", required=True, help="checkpoint path to write (NET.pt)")
    add_training_args(t)
    t.add_argument("--size", type=int, default=None,
                   help="side of the square training crops in pixels (default 128; 256, the paper's, under the full profile)")
    t.add_argument("--channels", type=int, default=None,
                   help="the network's width C (default 16; 32, the paper's, under the full profile)")
    t.add_argument("--style-weight", type=float, default=None, help="beta, the style loss's weight")
    add_ship_arg(t)
    a = fsub.add_parser("apply", help="paint a photo with a trained network")
    a.add_argument("net", metavar="NET",
                   help="a checkpoint written by `fast-style train`, or a shipped network: starry_night, the_scream, shipwreck")
    a.add_argument("content", help="the photo: path, URL or example name (astronaut, cat, coffee, ...)")
    a.add_argument("-o", "--out", required=True, help="output image path (.png/.jpg)")
    a.add_argument("--size", type=int, default=None, help="shorter side of the photo in pixels (default: as it is)")
    a.add_argument("--device", default=None)
    p.set_defaults(run=run)


def run(args) -> int:
    return train(args) if args.action == "train" else apply(args)


def _config(args, profile):
    """fast_style.FastStyleConfig for the profile, with the sizes and weights given on the command line."""
    from ..fast_style import FastStyleConfig
    from ..transform_net import TransformNetConfig
    overrides = {"image_size": args.size, "style_weight": args.style_weight,
                 "net": TransformNetConfig(channels=args.channels) if args.channels is not None else None}
    return FastStyleConfig.for_profile(profile, **{k: v for k, v in overrides.items() if v is not None})


def _painting(src: str, root):
    """--style: a painting's name (images.style_image: cached, downloaded, or its offline stand-in) or an image."""
    from pathlib import Path

    from ..images import STYLE_IMAGES, load_image, style_image
    if src in STYLE_IMAGES:
        return style_image(src, root=root)
    if not src.startswith(("http://", "https://")) and not Path(src).expanduser().is_file():
        raise FileNotFoundError(f"--style {src!r} is neither a painting's name ({', '.join(STYLE_IMAGES)}) nor an "
                                f"image file")
    return load_image(src)


def train(args) -> int:
    from ..fast_style import load_fast_style, save_fast_style, train_fast_style
    from ..train import TrainingDiverged

    device, profile, generator = start_training(args)
    if args.resume and (args.size, args.channels, args.style_weight) != (None, None, None):
        print("error: --resume trains with the checkpoint's own config; drop --size, --channels and --style-weight",
              file=sys.stderr)
        return 2
    config = load_fast_style(args.resume).config if args.resume else _config(args, profile)
    painting = _painting(args.style, args.data)
    print(f"{config}\npainting {args.style!r} {tuple(painting.shape)}, device={device}, profile={profile.name}")
    try:
        result = train_fast_style(config, painting, device=device, generator=generator, resume=args.resume,
                                  budget=budget(args, profile.fast_style_steps, profile.fast_style_seconds),
                                  checkpoint=args.out)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.ship:  # the painting may not be ours to redistribute; its Gram matrices are already in the weights
        result.style = None
        save_fast_style(args.out, result, optimizer=False)
    record = transform_record(train_command(args), args, profile, device, result, style=args.style)
    write_record(args.out, record)
    return 0


def train_command(args) -> str:
    """The training command, rebuilt from its arguments (recorded beside the checkpoint)."""
    flags = [("--style", args.style), ("--profile", args.profile), ("--seconds", args.seconds),
             ("--steps", args.steps), ("--size", args.size), ("--channels", args.channels),
             ("--style-weight", args.style_weight), ("--seed", args.seed), ("--resume", args.resume)]
    return command_line("fast-style train", args.out, flags, ["--ship"] if args.ship else [])


def _network_path(net: str):
    """NET: a checkpoint file, or a shipped painting's name (fast_style.SHIPPED_STYLES); else a clear error."""
    from ..fast_style import SHIPPED_STYLES, shipped_path
    return checkpoint_or_shipped(net, SHIPPED_STYLES, shipped_path, "fast-style train --style {name} --out {out}",
                                 example="PAINTING")


def apply(args) -> int:
    import time

    from ..fast_style import apply_fast_style, load_fast_style
    from ..runtime import get_device
    from ..viz import save_image

    device = get_device(args.device)
    run = load_fast_style(_network_path(args.net), device=device)
    photo = read_photo(args.content, args.size)  # (1, 3, H, W) in [0, 1]
    start = time.perf_counter()
    painted = apply_fast_style(run.model, photo, device=device)  # (1, 3, H, W) in [0, 1]
    seconds = time.perf_counter() - start
    path = save_image(painted.cpu(), args.out)
    print(f"wrote {path} ({painted.shape[-1]}x{painted.shape[-2]}) in {seconds:.2f} s on {device}, with a network "
          f"trained {run.steps} steps")
    return 0
