"""Fast style transfer benchmarks (issue 20): a network trained within the profile's budget against `stylize`.

1. Training: one TransformNet (`FastStyleConfig.for_profile`) on the first painting in ctx.assets (else the
   packaged stand-in), seed 0, for profile.fast_style_seconds (quick: 240 s, target <= 300 s): steps and steps/s.
2. Quality on the held-out astronaut at SIZE px by `style.judged_losses`, against `stylize`'s defaults on the same
   pair: the network's style loss within 2x and its content loss within 1.5x of stylize's.
3. Applying a warm network (process start excluded): seconds per image at 256, 512 and 1024 px (1024 px in <= 2 s
   on a CPU) and the speed-up over stylize at SIZE px (>= 100x).
4. The shipped networks (`fast_style.shipped_path`), judged the same way against stylize on each painting found.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .. import style as S
from ..bench import BenchContext, Row, timed
from ..fast_style import SHIPPED_STYLES, FastStyleConfig, apply_fast_style, load_fast_style, shipped_path, train_fast_style
from ..images import example_image, load_image, style_image
from ..perceptual import VGG19Features
from ..runtime import seed_everything
from ..train import Budget
from ..viz import save_image

__all__ = ["run"]

SIZE = {"smoke": 64}  # the judged output's side; 256 under quick and full
APPLY_SIZES = {"smoke": (64,)}  # sides timed for applying; (256, 512, 1024) under quick and full
TIMING_REPEATS = 3  # applying is timed as the best of this many warm runs


def _paintings(ctx: BenchContext) -> dict[str, torch.Tensor]:
    """Each shipped painting found in ctx.assets by name, else {"starry_night (stand-in)": the packaged stand-in}."""
    found = {name: load_image(ctx.assets / f"{name}.jpg") for name in SHIPPED_STYLES
             if ctx.assets and (ctx.assets / f"{name}.jpg").is_file()}
    return found or {"starry_night (stand-in)": style_image("starry_night", download=False)}


def _judged_rows(label: str, output: torch.Tensor, photo: torch.Tensor, painting: torch.Tensor,
                 reference: tuple[float, float], vgg: VGG19Features) -> list[Row]:
    """The network's judged content and style losses as ratios to stylize's `reference` (content, style)."""
    content, style = S.judged_losses(output, photo, painting, vgg)
    return [Row("fast_style", f"{label}: content loss / stylize's", content / reference[0], "x", 1, "<= 1.5"),
            Row("fast_style", f"{label}: style loss / stylize's", style / reference[1], "x", 1, "<= 2")]


def _stylize(photo: torch.Tensor, painting: torch.Tensor, size: int, smoke: bool) -> tuple[torch.Tensor, float]:
    """stylize's defaults at `size` (a few steps under smoke): (image, seconds)."""
    config = S.StyleConfig(size=size, steps=2, coarse_steps=2) if smoke else S.StyleConfig(size=size)
    result, seconds = timed(lambda: S.stylize(photo, painting, config, progress=False), photo.device)
    return result.image, seconds


def _apply_seconds(net, side: int, device: torch.device) -> float:
    """Best-of-TIMING_REPEATS seconds to paint one side x side photo with a warm network."""
    photo = example_image("astronaut", side)[..., :side, :side].to(device)
    apply_fast_style(net, photo, max_pixels=side * side)  # warm-up (allocator, oneDNN kernels)
    return min(timed(lambda: apply_fast_style(net, photo, max_pixels=side * side), device)[1]
               for _ in range(TIMING_REPEATS))


def run(ctx: BenchContext) -> list[Row]:
    smoke = ctx.profile.name == "smoke"
    size, device = SIZE.get(ctx.profile.name, 256), ctx.device
    paintings = _paintings(ctx)
    vgg = VGG19Features("caffe", layers=S.GATYS_STYLE_LAYERS + ("conv4_2",)).to(device)
    photo = example_image("astronaut", size).to(device)  # held out of every training set
    first, painting = next(iter(paintings.items()))
    painting = painting.to(device)

    seed_everything(0)
    config = FastStyleConfig.for_profile(ctx.profile)
    budget = Budget(max_steps=ctx.profile.fast_style_steps, max_seconds=ctx.profile.fast_style_seconds)
    trained = train_fast_style(config, painting, budget=budget, device=device, progress=False,
                            generator=torch.Generator().manual_seed(0), checkpoint=ctx.work_dir / "fast_style.pt")
    rows = [Row("fast_style", f"training on {first}: steps in {trained.seconds:.0f} s ({config.image_size} px crops, "
                              f"batch {config.batch_size}, width {config.net.channels})", trained.steps, "steps", None,
                "in <= 300 s"),
            Row("fast_style", "training: steps per second", trained.steps / max(trained.seconds, 1e-9), "steps/s")]

    reference, stylize_seconds = {}, None
    for name, art in paintings.items():
        image, seconds = _stylize(photo, art.to(device), size, smoke)
        reference[name] = S.judged_losses(image, photo, art.to(device), vgg)
        stylize_seconds = seconds if stylize_seconds is None else stylize_seconds
        save_image(image.cpu(), ctx.work_dir / f"fast_style_stylize_{name.split()[0]}.png")
    output = apply_fast_style(trained.model, photo)
    save_image(output.cpu(), ctx.work_dir / "fast_style_trained.png")
    rows += [Row("fast_style", f"stylize defaults on astronaut x {first} {size}px: seconds", stylize_seconds, "s", 1)]
    rows += _judged_rows(f"network trained {trained.seconds:.0f} s, astronaut x {first} {size}px", output, photo,
                         painting, reference[first], vgg)

    for side in APPLY_SIZES.get(ctx.profile.name, (256, 512, 1024)):
        seconds = _apply_seconds(trained.model, side, device)
        rows.append(Row("fast_style", f"apply at {side}x{side} px ({device.type})", seconds, "s", 1,
                        "<= 2" if side == 1024 and device.type == "cpu" else ""))
        if side == size:
            rows.append(Row("fast_style", f"speed-up over stylize at {size} px", stylize_seconds / seconds, "x", 1,
                            ">= 100"))

    for name, art in paintings.items():
        path = shipped_path(name.split()[0])
        if not Path(path).is_file():
            rows.append(Row("fast_style", f"shipped network {path.name}: MISSING", float("nan")))
            continue
        shipped = load_fast_style(path, device=device)
        output = apply_fast_style(shipped.model, photo)
        save_image(output.cpu(), ctx.work_dir / f"fast_style_shipped_{name.split()[0]}.png")
        rows += _judged_rows(f"shipped {name} ({shipped.steps} steps), astronaut {size}px", output, photo,
                             art.to(device), reference[name], vgg)
    return rows
