"""Diffusion benchmarks (issue 5): what `quick` training reaches, DDPM vs DDIM, and guidance accuracy.

1. Train the default (unconditional) `DiffusionConfig` from scratch for the profile's `diffusion_seconds`
   (300 s in `quick`), seeded, then judge N DDIM-50 samples (FID against real test digits, recognizable share,
   classes), plain and with autoguidance by the weak model that training kept.
2. On that same model and the same starting noise: wall time of DDPM-1000 and DDIM-50/25/10, and the FID of
   each at one shared N (DDPM-1000 on N digits costs 1000 N network calls, so N is smaller here; FID is only
   compared at equal N); then the same comparison for the model with autoguidance, the way it is sampled.
3. The class-conditional model trained the same way for the same time: share of samples asked for digit d that
   the judge reads as d under classifier-free guidance, and the judge's scores of those samples (digits 0-9 in turn).
"""
from __future__ import annotations


import torch

from .. import diffusion as D
from .. import metrics
from ..bench import BenchContext, Row, timed
from ..data import load_mnist
from ..runtime import seed_everything
from ..sampling import sample
from ..schedulers import scheduler_for
from ..train import Budget

__all__ = ["run", "GUIDANCE", "COMPARE_N"]

GUIDANCE = 2.0  # classifier-free guidance scale of the conditional benchmark
COMPARE_N = {"smoke": 20, "quick": 250, "full": 1000}  # samples per sampler in the DDPM-vs-DDIM comparison


def _train(ctx: BenchContext, *, conditional: bool = False) -> D.DiffusionResult:
    generator = seed_everything(0)
    data = load_mnist(ctx.data_root, limit=ctx.profile.mnist_limit, verbose=not conditional)
    budget = Budget(max_steps=ctx.profile.diffusion_steps, max_seconds=ctx.profile.diffusion_seconds)
    config = D.DiffusionConfig(num_classes=10 if conditional else None)
    return D.train_diffusion(config, data.images, data.labels, budget=budget, device=ctx.device, generator=generator)


def _judged(what: str, scores: dict, n: int) -> list[Row]:
    return [Row("diffusion", f"{what}: FID", scores["fid"], "", n, "<= 40"),
            Row("diffusion", f"{what}: recognizable", scores["recognizable"], "", n, ">= 0.70"),
            Row("diffusion", f"{what}: classes", scores["classes"], "", n, "10")]


def _timed_samples(model, config, sampler: str, steps: int, noise: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Samples from the given starting noise (one batch) and the wall time they took."""
    scheduler = scheduler_for(config, sampler)
    x, seconds = timed(lambda: sample(model, scheduler, xt=noise.clone(), num_steps=steps,
                                        generator=torch.Generator().manual_seed(1)), noise.device)
    return x.cpu(), seconds


def _samplers(ctx: BenchContext, model, config, reference: torch.Tensor, what: str) -> list[Row]:
    n = COMPARE_N.get(ctx.profile.name, 250)
    noise = torch.randn((n, 1, 28, 28), generator=torch.Generator().manual_seed(2)).to(ctx.device)
    runs = {f"{s.upper()}-{k}": _timed_samples(model, config, s, k, noise)
            for s, k in (("ddpm", 1000), ("ddim", 50), ("ddim", 25), ("ddim", 10))}
    fids = {name: metrics.classifier_fid(x, reference) for name, (x, _) in runs.items()}
    rows = []
    for name, (_, seconds) in runs.items():
        rows.append(Row("diffusion", f"{what}: {name} sampling time, same batch", seconds, "s", n))
        rows.append(Row("diffusion", f"{what}: {name} FID (same noise, N={n})", fids[name], "", n))
    speedup = runs["DDPM-1000"][1] / runs["DDIM-50"][1]
    rows.append(Row("diffusion", f"{what}: DDIM-50 speed-up over DDPM-1000", speedup, "x", n, ">= 15"))
    rows.append(Row("diffusion", f"{what}: DDIM-50 FID / DDPM-1000 FID", fids["DDIM-50"] / fids["DDPM-1000"], "", n,
                    "<= 1.5"))
    return rows


def _conditional(ctx: BenchContext) -> list[Row]:
    result = _train(ctx, conditional=True)
    seconds, n = ctx.profile.diffusion_seconds, ctx.profile.judge_samples
    scores = D.evaluate(result.ema_model, result.config, n=n, labels="all", guidance=GUIDANCE, seed=0)
    what = f"conditional, {seconds:g} s, guidance w={GUIDANCE:g}, DDIM-50"
    return [Row("diffusion", f"conditional training: steps in {seconds:g} s (seed 0)", result.steps, "steps"),
            Row("diffusion", f"{what}: judged as the digit asked for", scores["label_accuracy"], "", n, ">= 0.90"),
            *_judged(what, scores, n)]


def run(ctx: BenchContext) -> list[Row]:
    seconds, n = ctx.profile.diffusion_seconds, ctx.profile.judge_samples
    result = _train(ctx)
    rows = [Row("diffusion", f"training: steps in {seconds:g} s (default DiffusionConfig, seed 0)", result.steps, "steps")]
    what = f"DDIM-50 after {seconds:g} s of {ctx.profile.name} training"
    rows += _judged(f"{what}, unconditional", D.evaluate(result.ema_model, result.config, n=n, seed=0), n)
    autoguided = result.autoguided()
    rows += _judged(f"{what}, unconditional + autoguidance w={autoguided.guidance:g}",
                    D.evaluate(autoguided, result.config, n=n, seed=0), n)
    reference = metrics.reference_digits(1000)
    rows += _samplers(ctx, result.ema_model, result.config, reference, "unconditional")
    rows += _samplers(ctx, autoguided, result.config, reference, "autoguided")
    rows += _conditional(ctx)
    return rows
