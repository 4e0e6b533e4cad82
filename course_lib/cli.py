"""Command line: `python -m course_lib fetch | gan | diffusion | stylize | bench`.

Every training command takes `--seconds S` or `--steps N` to override the profile's budget, and `--seed`.
Each chapter's commands are one `_add_*` (arguments) and one `_run_*` (what they do) pair below;
the work itself is done by library functions.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


def _add_training_args(p: argparse.ArgumentParser) -> None:
    """The budget/seed/device flags shared by every training command."""
    p.add_argument("--profile", choices=["smoke", "quick", "full"], default=None,
                   help="budget profile (default: COURSE_PROFILE, else full on CUDA, quick elsewhere)")
    p.add_argument("--seconds", type=float, default=None, help="training time budget, overrides the profile")
    p.add_argument("--steps", type=int, default=None, help="training step budget, overrides the profile")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu | cuda | mps (default: best available)")
    p.add_argument("--data", default=None,
                   help="data/cache folder (default: COURSE_DATA, else the repository's data/, where notebooks look)")
    p.add_argument("--resume", default=None, metavar="CKPT", help="continue training from this checkpoint")


# ---------------------------------------------------------------- fetch
def _add_fetch(sub) -> None:
    p = sub.add_parser("fetch", help="download datasets, weights and paintings into data/ for offline use")
    p.add_argument("--data", default=None,
                   help="cache folder (default: COURSE_DATA, else the repository's data/, where notebooks look)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a download gives up")


def _run_fetch(args) -> int:
    from .data import fetch_all
    fetch_all(root=args.data, timeout=args.timeout)
    return 0


# ---------------------------------------------------------------- bench
def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="run the benchmarks, print a table, write bench/results.json")
    p.add_argument("--only", nargs="*", default=None, help="benchmark groups to run (default: all)")
    p.add_argument("--out", default="bench/results.json")
    p.add_argument("--assets", default=None, help="folder with style paintings (default: ../shared/assets/styles if present)")


def _run_bench(args) -> int:
    from .bench import run_benchmarks
    run_benchmarks(only=args.only, out=args.out, assets=args.assets)
    return 0


# ---------------------------------------------------------------- gan
def _add_gan(sub) -> None:
    p = sub.add_parser("gan", help="train a DCGAN on MNIST or sample from one")
    gsub = p.add_subparsers(dest="action", required=True)
    t = gsub.add_parser("train", help="train a DCGAN")
    _add_training_args(t)
    t.add_argument("--out", required=True, help="checkpoint path to write")
    t.add_argument("--judge", type=int, default=0, metavar="N",
                   help="after training, score N samples with the digit judge (written to OUT.json)")
    for flag, what in (("--latent-dim", "nz, the length of z"), ("--g-channels", "ngf, G's width"),
                       ("--d-channels", "ndf, D's width")):
        t.add_argument(flag, type=int, default=None, help=f"{what} (default: gan.default_config for the device)")
    s = gsub.add_parser("sample", help="sample images from a checkpoint")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--out", required=True, help=".pt (float tensor (N, 1, H, W) in [-1, 1]) or .png (grid)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default=None)


def _run_gan(args) -> int:
    from . import gan
    return gan.cli(args)


# ---------------------------------------------------------------- diffusion
def _add_diffusion(sub) -> None:
    p = sub.add_parser("diffusion", help="train a diffusion model on MNIST or sample from one")
    dsub = p.add_subparsers(dest="action", required=True)
    t = dsub.add_parser("train", help="train a DDPM U-Net")
    _add_training_args(t)
    t.add_argument("--out", required=True, help="checkpoint path to write")
    t.add_argument("--conditional", action="store_true", help="class-conditional (for classifier-free guidance)")
    t.add_argument("--judge", type=int, default=0, metavar="N",
                   help="after training, score N DDIM-50 samples with the digit judge (written to OUT.json)")
    t.add_argument("--judge-guidance", type=float, default=None, metavar="W",
                   help="guidance scale for --judge on a conditional model (digits 0-9 in turn)")
    s = dsub.add_parser("sample", help="sample images from a checkpoint")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddim")
    s.add_argument("--steps", type=int, default=50, help="sampling steps (<= the model's T)")
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--label", type=int, default=None,
                   help="digit to draw (conditional models; default: digits 0-9 in turn)")
    s.add_argument("--guidance", type=float, default=None,
                   help="guidance scale w: classifier-free on a conditional model (default: none); autoguidance on an "
                        "unconditional one (default 2.5; 1 = the model alone)")
    s.add_argument("--eta", type=float, default=0.0, help="DDIM eta (0 = deterministic)")
    s.add_argument("--out", required=True, help=".pt (float tensor (N, 1, H, W) in [-1, 1]) or .png (grid)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default=None)


def _run_diffusion(args) -> int:
    from . import diffusion
    return diffusion.cli(args)


# ---------------------------------------------------------------- stylize
def _add_stylize(sub) -> None:
    p = sub.add_parser("stylize", help="Gatys neural style transfer: paint CONTENT in the style of STYLE")
    p.add_argument("content", help="content image: path, URL or example name (astronaut, cat, ...)")
    p.add_argument("style", nargs="+", help="style image(s): path, URL or painting name; several are blended")
    p.add_argument("-o", "--out", required=True, help="output image path (.png/.jpg)")
    p.add_argument("--size", type=int, default=256, help="shorter side of the output in pixels")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps at full size (default: StyleConfig's)")
    p.add_argument("--coarse-steps", type=int, default=None, help="steps at each coarser coarse-to-fine scale")
    p.add_argument("--scales", type=int, default=None, help="coarse-to-fine levels (1: optimize at full size only)")
    p.add_argument("--optimizer", choices=["lbfgs", "adam"], default=None)
    p.add_argument("--content-weight", type=float, default=None)
    p.add_argument("--style-weight", type=float, default=None)
    p.add_argument("--style-weights", type=float, nargs="*", default=None, help="blend weights, one per style image")
    p.add_argument("--tv-weight", type=float, default=None)
    p.add_argument("--init", choices=["recolored", "content", "noise"], default=None,
                   help="start from the photo in the painting's colours (default), the photo as is, or noise")
    p.add_argument("--preserve-color", action="store_true", help="transfer style on luminance only")
    p.add_argument("--weights", choices=["caffe", "torchvision"], default="caffe", help="VGG19 weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)


def _run_stylize(args) -> int:
    from . import style
    return style.cli(args)


# ---------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_lib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_fetch, _add_gan, _add_diffusion, _add_stylize, _add_bench):
        add(sub)
    return parser


_RUNNERS = {"fetch": _run_fetch, "gan": _run_gan, "diffusion": _run_diffusion,
            "stylize": _run_stylize, "bench": _run_bench}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _RUNNERS[args.command](args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
