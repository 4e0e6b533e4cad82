"""The ablation ladder of notebook 02 (issue 19): plain DDPM, then each change of the recipe added in turn.

Every rung of `course_lib.diffusion_ablation.LADDER` trains from scratch for the profile's `diffusion_seconds`
(300 s in `quick`) with the same seed and data, and is judged the same way: N DDIM-50 samples, unguided (the judge's
FID against real test digits, recognizable share, classes). Steps per second come beside each figure, since the
rungs differ in cost (the 2x2 patches made a step 5x cheaper on a 2-core float32 CPU).
"""
from __future__ import annotations

import dataclasses

import torch

from .. import diffusion as D
from ..bench import BenchContext, Row
from ..data import load_mnist
from ..diffusion_ablation import Rung, ladder
from ..runtime import seed_everything
from ..train import Budget

__all__ = ["run", "run_rung"]


def run(ctx: BenchContext) -> list[Row]:
    data = load_mnist(ctx.data_root, limit=ctx.profile.mnist_limit)
    return [row for index, (rung, config) in enumerate(ladder())  # the CPU recipe; full's GPU one is on pixels already
            for row in run_rung(ctx, index, rung, config, data.images)]


def run_rung(ctx: BenchContext, index: int, rung: Rung, config: D.DiffusionConfig, images: torch.Tensor) -> list[Row]:
    """Train one rung from scratch for the profile's seconds (seed 0), keep its checkpoint, judge it."""
    seconds, n = ctx.profile.diffusion_seconds, ctx.profile.judge_samples
    result = D.train_diffusion(config, images, budget=Budget(ctx.profile.diffusion_steps, seconds),
                               device=ctx.device, generator=seed_everything(0), progress=False)
    # without the weak model (no autoguidance here); rung 0 is the shipped data/checkpoints/ddpm_plain_mnist.pt
    D.save_diffusion(ctx.work_dir / f"ablation_{index}.pt", dataclasses.replace(result, weak_model=None))
    scores = D.evaluate(result.ema_model, config, n=n, eta=0.0, seed=0)  # deterministic, as the ladder was first judged
    what = f"{rung.name} ({rung.source})"
    print(f"  {what}: {result.steps} steps, FID {scores['fid']:.1f}, recognizable {scores['recognizable']:.3f}",
          flush=True)
    return [Row("ablation", f"{what}: steps in {result.seconds:.0f} s", result.steps, "steps"),
            Row("ablation", f"{what}: steps per second", result.steps / max(result.seconds, 1e-9), "steps/s"),
            Row("ablation", f"{what}: DDIM-50 FID", scores["fid"], "", n),
            Row("ablation", f"{what}: recognizable", scores["recognizable"], "", n),
            Row("ablation", f"{what}: classes", scores["classes"], "", n)]
