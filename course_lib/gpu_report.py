"""`make gpu-report`: the `full` profile's targets, measured on one GPU in at most 8 minutes.

The day a GPU is at hand for a few minutes, one command (`python -m course_lib gpu-report`) measures what the
README's "What the benchmarks measured" table asks of `full`, with the training budgets shortened to fit (`GPU_PLAN`):
1. GAN: `gan.default_config` (the GPU recipe) trained for `gan_seconds` as `make bench` trains it; the judge's
   FID, recognizable share and classes of N samples; training and sampling images/s.
2. Diffusion: `diffusion.recipe("full")`, unconditional, trained for `diffusion_seconds`; N DDIM samples judged
   plain and with autoguidance (as `make bench` judges them); training images/s and samples/s.
3. Style transfer: `stylize` at full's image_size (512 px) with full's style_steps (300) L-BFGS steps at one
   scale (the target `make bench` names), the astronaut photo and a painting (offline: its packaged stand-in).
Before each stage the GPU's peak memory (`torch.cuda.max_memory_allocated`) is reset; each stage's peak and wall
time are reported. Prints one table (`bench.format_table`) and writes a JSON file (bench/gpu.json).
`SMOKE_PLAN` runs every code path on a CPU in well under a minute (the test: no GPU needed to know it runs).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from . import diffusion as D
from . import gan
from . import style as S
from .bench import BenchContext, Row, _machine, format_table, judged_rows, timed
from .benchmarks import diffusion as diffusion_bench
from .benchmarks import gan as gan_bench
from .data import load_mnist
from .images import example_image, style_image
from .defaults import GPU_REPORT_DIFFUSION_SECONDS, GPU_REPORT_GAN_SECONDS
from .runtime import PROFILES, amp_dtype, data_dir, get_device, seed_everything
from .train import Budget

__all__ = ["ReportPlan", "GPU_PLAN", "SMOKE_PLAN", "LIMIT_SECONDS", "device_info",
           "gan_rows", "diffusion_rows", "style_rows", "run_report"]

FULL = PROFILES["full"]
LIMIT_SECONDS = 480.0  # the whole report, judging included, on one modern GPU


@dataclass(frozen=True)
class ReportPlan:
    """What the report runs. GPU_PLAN fits LIMIT_SECONDS on one GPU; SMOKE_PLAN runs every path on a CPU."""

    gan_seconds: float = GPU_REPORT_GAN_SECONDS  # 90 s (full: 300 s)
    diffusion_seconds: float = GPU_REPORT_DIFFUSION_SECONDS  # 210 s (full: 900 s)
    gan_steps: int | None = None  # a step cap besides the seconds (None: seconds only)
    diffusion_steps: int | None = None
    judge_n: int = 1000  # samples judged: the README's targets are at N = 1,000 (full's judge_samples: 5,000)
    ddim_steps: int = 50  # DDIM steps of the judged diffusion samples, as in `make bench`
    sampling_n: int = 5000  # GAN images drawn for the sampling throughput
    style_size: int = FULL.image_size  # 512 px
    style_steps: int = FULL.style_steps  # 300 L-BFGS steps
    mnist_limit: int | None = FULL.mnist_limit
    diffusion_overrides: dict = field(default_factory=dict)  # DiffusionConfig fields changed from recipe("full")


# 300 s of training leave 180 s of LIMIT_SECONDS for loading, judging 2 x 3 sample sets, the throughputs and style
# transfer (its target: 10 s on an H100-class GPU); a slower GPU shortens both budgets with `gpu-report --scale`
GPU_PLAN = ReportPlan()
# the full recipe's U-Net costs ~25 s per training step of 128 on 2 CPU cores: the smoke run keeps its shape
# (levels, attention, blocks) at 1/8 of the width and 1/16 of the batch
SMOKE_PLAN = ReportPlan(gan_seconds=10.0, diffusion_seconds=10.0, gan_steps=3, diffusion_steps=2, judge_n=20,
                        ddim_steps=2, sampling_n=100, style_size=32, style_steps=2, mnist_limit=2000,
                        diffusion_overrides=dict(base_channels=8, batch_size=8))


# ---------------------------------------------------------------- the machine and the stages
def device_info(device: torch.device) -> dict:
    """Name, compute capability (CUDA), torch and CUDA versions, and the mixed-precision dtype."""
    cuda = device.type == "cuda"
    amp = amp_dtype(device)  # what runtime.autocast trains in on this device
    return {"device": torch.cuda.get_device_name(device) if cuda else str(device), "device_type": device.type,
            "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(device))) if cuda else None,
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "amp_dtype": "float32 (no autocast)" if amp is None else str(amp).removeprefix("torch.")}


def _measured(ctx: BenchContext, stages: dict, stage: str, fn):
    """fn(), with the GPU's peak memory reset before it; stages[stage] = {seconds, peak_mib (None off CUDA)}."""
    cuda = ctx.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(ctx.device)
        torch.cuda.reset_peak_memory_stats(ctx.device)
    out, seconds = timed(fn, ctx.device)
    peak = torch.cuda.max_memory_allocated(ctx.device) / 2**20 if cuda else None
    stages[stage] = {"seconds": round(seconds, 2), "peak_mib": None if peak is None else round(peak, 1)}
    return out


def _stage_rows(group: str, stages: dict) -> list[Row]:
    """Wall time and (on CUDA) peak memory of each of `group`'s stages."""
    rows = []
    for stage, measured in stages.items():
        if stage.startswith(group):
            rows.append(Row(group, f"{stage}: wall time", measured["seconds"], "s"))
            if measured["peak_mib"] is not None:
                rows.append(Row(group, f"{stage}: peak GPU memory", measured["peak_mib"], "MiB"))
    return rows


def _shortened(seconds: float, full_seconds: float) -> str:
    return f"full: {full_seconds:g} s, {full_seconds / seconds:.1f}x shorter"


# ---------------------------------------------------------------- the chapters
def gan_rows(ctx: BenchContext, plan: ReportPlan, stages: dict) -> list[Row]:
    """Train the GPU recipe for plan.gan_seconds (course_lib.benchmarks.gan), judge it, time G."""
    result = _measured(ctx, stages, "gan training", lambda: gan_bench._train(ctx))
    budget, c = f"{plan.gan_seconds:g} s", result.config
    rows = [Row("gan", f"training: steps in {budget} (nz {c.latent_dim}, ngf {c.g_channels}, ndf {c.d_channels})",
                result.steps, "steps"),
            Row("gan", "training throughput", result.images_per_second, "images/s")]

    def judge() -> list[Row]:
        rate = gan_bench._sampling_rate(result.sampler, plan.sampling_n)
        return [Row("gan", "sampling throughput (eval mode, batch 500)", rate, "images/s", plan.sampling_n),
                *gan_bench._judged(f"after {budget}", gan.evaluate(result.sampler, n=plan.judge_n, seed=0))]

    rows += _measured(ctx, stages, "gan sampling and judging", judge)
    return rows + _stage_rows("gan", stages)


def _train_diffusion(ctx: BenchContext, overrides: dict) -> D.DiffusionResult:
    """The full recipe, unconditional, seeded, within ctx.profile's diffusion budget (as benchmarks.diffusion)."""
    generator = seed_everything(0)
    data = load_mnist(ctx.data_root, limit=ctx.profile.mnist_limit)
    budget = Budget(max_steps=ctx.profile.diffusion_steps, max_seconds=ctx.profile.diffusion_seconds)
    config = replace(D.recipe("full"), **overrides)
    return D.train_diffusion(config, data.images, budget=budget, device=ctx.device, generator=generator)


def diffusion_rows(ctx: BenchContext, plan: ReportPlan, stages: dict) -> list[Row]:
    """Train recipe("full") for plan.diffusion_seconds, then judge DDIM samples plain and autoguided."""
    result = _measured(ctx, stages, "diffusion training", lambda: _train_diffusion(ctx, plan.diffusion_overrides))
    budget, n = f"{plan.diffusion_seconds:g} s", plan.judge_n
    recipe = f"recipe('full') with {plan.diffusion_overrides}" if plan.diffusion_overrides else "recipe('full')"
    rows = [Row("diffusion", f"training: steps in {budget} ({recipe}, unconditional)", result.steps, "steps"),
            Row("diffusion", "training throughput", result.steps * result.config.batch_size / result.seconds,
                "images/s")]

    def judge() -> list[Row]:
        autoguided = result.autoguided()
        judged = []
        noise = torch.randn((min(n, 500), 1, 28, 28), generator=torch.Generator().manual_seed(2)).to(ctx.device)
        for what, model in (("plain", result.ema_model), (f"autoguidance w={autoguided.guidance:g}", autoguided)):
            what = f"DDIM-{plan.ddim_steps} after {budget}, {what}"
            judged += judged_rows("diffusion", what, D.evaluate(
                model, result.config, n=n, num_steps=plan.ddim_steps, seed=0), n)
            _, seconds = diffusion_bench._timed_samples(model, result.config, "ddim", plan.ddim_steps, 0.0, noise)
            judged.append(Row("diffusion", f"{what}: sampling throughput (one batch)", len(noise) / seconds,
                              "samples/s", len(noise)))
        return judged

    rows += _measured(ctx, stages, "diffusion sampling and judging", judge)
    return rows + _stage_rows("diffusion", stages)


def style_rows(ctx: BenchContext, plan: ReportPlan, stages: dict) -> list[Row]:
    """`stylize` at plan.style_size with plan.style_steps L-BFGS steps at one scale (make bench's GPU target)."""
    config = S.StyleConfig(size=plan.style_size, steps=plan.style_steps, num_scales=1)
    photo = example_image("astronaut", plan.style_size).to(ctx.device)
    painting = style_image("starry_night", plan.style_size, download=False).to(ctx.device)
    vgg = S._build_vgg(config).to(ctx.device)
    S.stylize(photo, painting, replace(config, steps=1), vgg=vgg, max_pixels=FULL.max_pixels,
              progress=False)  # warm-up (allocator, kernels)
    result = _measured(ctx, stages, "style transfer", lambda: S.stylize(
        photo, painting, config, vgg=vgg, max_pixels=FULL.max_pixels, progress=False))
    what = f"{plan.style_size} px, {plan.style_steps} L-BFGS steps, one scale (astronaut)"
    return [Row("style", f"{what}: seconds", result.seconds, "s", 1, "<= 10 (H100-class)"),
            *_stage_rows("style", stages)]


# ---------------------------------------------------------------- the report
def _plan_rows(plan: ReportPlan) -> list[Row]:
    return [Row("plan", f"GAN training budget ({_shortened(plan.gan_seconds, FULL.gan_seconds)})",
                plan.gan_seconds, "s"),
            Row("plan", f"diffusion training budget ({_shortened(plan.diffusion_seconds, FULL.diffusion_seconds)})",
                plan.diffusion_seconds, "s"),
            Row("plan", f"style transfer at {plan.style_size} px: L-BFGS steps (full: {FULL.image_size} px, "
                        f"{FULL.style_steps} steps)", plan.style_steps, "steps"),
            Row("plan", f"samples judged (full's judge_samples: {FULL.judge_samples})", plan.judge_n, "")]


def run_report(plan: ReportPlan = GPU_PLAN, *, device: torch.device | str = "cuda",
               out: str | os.PathLike = "bench/gpu.json") -> dict:
    """Run every stage on `device`, print one table and write the report to `out`; returns the report."""
    device, t0 = get_device(device), time.perf_counter()  # a clear error where `device` is not here
    profile = replace(FULL, gan_seconds=plan.gan_seconds, gan_steps=plan.gan_steps, mnist_limit=plan.mnist_limit,
                      diffusion_seconds=plan.diffusion_seconds, diffusion_steps=plan.diffusion_steps,
                      judge_samples=plan.judge_n)
    ctx = BenchContext(device=device, profile=profile, data_root=data_dir(), assets=None,
                       work_dir=Path(out).parent / "work")
    info, stages = device_info(device), {}
    print(f"gpu-report: {info['device']} (compute capability {info['compute_capability']}), torch {info['torch']}, "
          f"mixed precision {info['amp_dtype']}; plan {plan}", flush=True)
    rows = _plan_rows(plan)
    for chapter in (gan_rows, diffusion_rows, style_rows):
        rows += chapter(ctx, plan, stages)
    total = time.perf_counter() - t0
    rows.append(Row("total", "the whole report, judging included", total, "s", None, f"<= {LIMIT_SECONDS:g}"))
    for r in rows:
        r.device, r.profile = device.type, "full (shortened)"
    print(format_table(rows), flush=True)
    report = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **info,
              "plan": asdict(plan), "full_profile": asdict(FULL), "stages": stages, "total_seconds": round(total, 1),
              "limit_seconds": LIMIT_SECONDS, "machine": _machine(),
              "rows": [asdict(r) for r in rows]}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    return report
