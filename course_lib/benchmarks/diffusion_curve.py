"""The diffusion recipe's quality against training steps (issue 21): the curve that places every CPU's 300 s.

One seeded run of the default `DiffusionConfig` trains for the profile's longest step count of `CURVE_STEPS`;
at each step count on the way it keeps a copy of the EMA model and, as a weak model for autoguidance, the EMA
model of one tenth as many steps (what `weak_model_at = 0.1` keeps in a run of that length). Each copy is then
judged like the `diffusion` group's model, by both judges: N DDIM-50 samples of the model alone with fresh noise
(eta 1), and autoguided without (eta 0) and with it.

A CPU that makes s steps per second reaches step 300 s on this curve in `quick`'s 300 s; the rows give the seconds
this machine took to get there. The learning rate decays over the whole run, so the early points saw a higher
learning rate than a run of that length would (as in the GAN's curve).
"""
from __future__ import annotations

import copy
import dataclasses

import torch

from .. import diffusion as D
from ..bench import BenchContext, Row, judged_rows
from ..data import load_mnist
from ..runtime import seed_everything
from ..train import Budget

__all__ = ["run", "CURVE_STEPS", "train_with_snapshots"]

CURVE_STEPS = {"smoke": (10, 20), "quick": (500, 1000, 2000, 3000), "full": (2000, 5000, 10000)}


def train_with_snapshots(config: D.DiffusionConfig, images: torch.Tensor, steps: tuple[int, ...], *,
                         device, generator) -> tuple[D.DiffusionResult, dict[int, tuple[D.UNet, D.UNet, float]]]:
    """Train for max(steps); return the run and {step count: (EMA model, weak EMA model, seconds so far)}."""
    wanted = set(steps) | {max(1, s // 10) for s in steps}
    copies: dict[int, tuple[D.UNet, float]] = {}

    def keep(run: D.DiffusionResult) -> None:
        if run.steps in wanted and run.steps not in copies:
            copies[run.steps] = (copy.deepcopy(run.ema_model).eval().requires_grad_(False), run.seconds)

    config = dataclasses.replace(config, weak_model_at=None)  # the weak models are the tenths kept above
    result = D.train_diffusion(config, images, budget=Budget(max_steps=max(steps)), device=device,
                               generator=generator, callback=keep, log_every=1, progress=False)
    return result, {s: (copies[s][0], copies[max(1, s // 10)][0], copies[s][1]) for s in steps}


def run(ctx: BenchContext) -> list[Row]:
    steps, n = CURVE_STEPS.get(ctx.profile.name, CURVE_STEPS["quick"]), ctx.profile.judge_samples
    data = load_mnist(ctx.data_root, limit=ctx.profile.mnist_limit, verbose=False)
    config = D.DiffusionConfig()
    result, snapshots = train_with_snapshots(config, data.images, steps, device=ctx.device,
                                             generator=seed_everything(0))
    rows = [Row("diffusion_curve", f"training speed (default DiffusionConfig, batch {config.batch_size}, seed 0)",
                result.steps / result.seconds, "steps/s")]
    for count, (model, weak, seconds) in snapshots.items():
        what = f"after {count} steps ({seconds:.0f} s here), DDIM-50"
        print(f"  judging the model {what}", flush=True)
        guided = D.autoguided(model, weak, config)
        for label, net, eta in (("alone", model, 1.0), ("autoguided", guided, 0.0), ("autoguided", guided, 1.0)):
            scores = D.evaluate(net, config, n=n, eta=eta, seed=0)
            rows += judged_rows("diffusion_curve", f"{what} (eta {eta:g}), {label}", scores, n)
    return rows
