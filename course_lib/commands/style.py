"""`python -m course_lib stylize CONTENT STYLE [STYLE ...] -o OUT.png --size 256 --steps 100 ...`: Gatys neural
style transfer (course_lib.style.stylize) from the command line."""
from __future__ import annotations

__all__ = ["add", "run", "config_from_args"]


def add(sub) -> None:
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
    p.set_defaults(run=run)


def config_from_args(args):
    """style.StyleConfig from `python -m course_lib stylize` arguments (None = keep the default)."""
    from ..style import StyleConfig
    overrides = {"size": args.size, "steps": args.steps, "coarse_steps": args.coarse_steps,
                 "num_scales": args.scales, "optimizer": args.optimizer,
                 "content_weight": args.content_weight, "style_weight": args.style_weight,
                 "style_weights": tuple(args.style_weights) if args.style_weights else None,
                 "tv_weight": args.tv_weight, "init": args.init, "weights": args.weights,
                 "preserve_color": args.preserve_color or None, "seed": args.seed}
    return StyleConfig(**{k: v for k, v in overrides.items() if v is not None})


def _load_named(src: str, names: dict, loader):
    """An image argument: a packaged name (example photo / painting) or anything images.load_image takes."""
    from ..images import load_image
    return loader(src) if src in names else load_image(src)


def run(args) -> int:
    from ..images import EXAMPLE_IMAGES, STYLE_IMAGES, example_image, style_image
    from ..runtime import get_device, get_profile
    from ..style import stylize
    from ..viz import save_image

    device = get_device(args.device)
    config = config_from_args(args)
    content = _load_named(args.content, EXAMPLE_IMAGES, example_image).to(device)
    styles = [_load_named(s, STYLE_IMAGES, style_image).to(device) for s in args.style]
    result = stylize(content, styles, config, max_pixels=get_profile(device=device).max_pixels)
    path = save_image(result.image, args.out)
    last = result.history[-1] if result.history else {}
    print(f"wrote {path} ({result.image.shape[-1]}x{result.image.shape[-2]}) in {result.seconds:.1f} s on {device}, "
          f"{len(result.history)} steps; content {last.get('content', float('nan')):.4g}, "
          f"style {last.get('style', float('nan')):.4g}")
    if result.stopped:
        print(f"warning: {result.stopped}")
    return 0 if result.stopped is None else 1
