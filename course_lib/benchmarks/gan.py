"""GAN benchmarks (issue 4): what `quick` training reaches in its budget, and how fast G and D run.

1. Train `gan.default_config(device)` (the recipe for this hardware) from scratch for the profile's
   `gan_seconds` (60 s in `quick`), seeded, then judge N samples of the EMA generator (FID against real test
   digits, recognizable share, classes).
2. Throughput: training images/s of that run, and sampling images/s of its generator (eval mode, batch 500).
3. The shipped checkpoint's scores, for comparison with the row of 1.
"""
from __future__ import annotations

from .. import gan
from ..bench import BenchContext, Row, judged_rows, timed
from ..data import load_mnist
from ..dcgan import Generator
from ..runtime import checkpoint_path, seed_everything
from ..train import Budget

__all__ = ["run"]


def _train(ctx: BenchContext) -> gan.GANResult:
    generator = seed_everything(0)
    config = gan.default_config(ctx.device)
    data = load_mnist(ctx.data_root, "train", limit=ctx.profile.mnist_limit)
    images = gan.prepare_mnist(data.images, config.image_size)
    budget = Budget(max_steps=ctx.profile.gan_steps, max_seconds=ctx.profile.gan_seconds)
    return gan.train_gan(config, images, budget=budget, device=ctx.device, generator=generator)


def _sampling_rate(net_g: Generator, n: int = 5000) -> float:
    """Images per second drawn by G in eval mode (one warm-up batch first)."""
    gan.sample(net_g, 500)
    _, seconds = timed(lambda: gan.sample(net_g, n), next(net_g.parameters()).device)
    return n / seconds


def _judged(what: str, scores: dict) -> list[Row]:
    return judged_rows("gan", what, scores, scores["n"], {"fid": "<= 30", "recognizable": ">= 0.70", "classes": "10"})


def run(ctx: BenchContext) -> list[Row]:
    result = _train(ctx)
    seconds, n = ctx.profile.gan_seconds, ctx.profile.judge_samples
    widths = f"nz {result.config.latent_dim}, ngf {result.config.g_channels}, ndf {result.config.d_channels}"
    rows = [Row("gan", f"training: steps in {seconds:g} s (gan.default_config: {widths}, seed 0)", result.steps, "steps"),
            Row("gan", "training throughput", result.images_per_second, "images/s"),
            Row("gan", "sampling throughput (eval mode, batch 500)", _sampling_rate(result.sampler), "images/s")]
    rows += _judged(f"after {seconds:g} s of {ctx.profile.name} training", gan.evaluate(result.sampler, n=n, seed=0))
    path = checkpoint_path("gan_mnist.pt")
    if path.is_file():
        shipped = gan.load_gan(path, device=ctx.device)
        rows += _judged(f"shipped {path.name} ({shipped.steps} steps)", gan.evaluate(shipped.sampler, n=n, seed=0))
    return rows
