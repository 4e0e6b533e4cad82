"""4x super-resolution, pixel loss against perceptual loss (Johnson, Alahi & Fei-Fei 2016, section 4.2).

Two networks of one config train from scratch for the profile's `sr_seconds` (240 s in `quick`), on the same seed
and crops, one with each loss (`super_resolution.LOSSES`). Each, and bicubic upsampling, then makes the degraded
held-out photos (astronaut, coffee; 256 px, 64 under smoke) 4x larger again, scored by mean PSNR and mean perceptual
distance (`super_resolution.evaluate_super_resolution`). The paper's finding is the target: the pixel network wins
on PSNR, the perceptual one looks closer, and both beat bicubic on the figure their loss stands for. The shipped
networks (data/checkpoints/sr_<loss>.pt), when present, are scored the same way.
"""
from __future__ import annotations

from .. import super_resolution as SR
from ..bench import BenchContext, Row
from ..perceptual import VGG19Features
from ..photo_crops import HELD_OUT, PhotoCrops
from ..runtime import seed_everything
from ..train import Budget

__all__ = ["run", "TARGETS"]

SIZE = {"smoke": 64}  # the held-out photos' shorter side in pixels; 256 for quick and full
# method -> (PSNR target, perceptual distance target): Johnson et al.'s Figs. 6-8 in two inequalities each
TARGETS = {"pixel net": ("> perceptual net, > bicubic", ""),
           "perceptual net": ("", "< pixel net, < bicubic")}


def run(ctx: BenchContext) -> list[Row]:
    config = SR.SuperResConfig.for_profile(ctx.profile)
    crops = PhotoCrops(config.image_size, min_scale=config.min_scale)
    models, rows = {}, []
    for loss in SR.LOSSES:
        net, speed_rows = _train(ctx, SR.SuperResConfig.for_profile(ctx.profile, loss=loss), crops)
        models[f"{loss} net"], rows = net, rows + speed_rows
    for loss in SR.SHIPPED_SR:
        if SR.shipped_path(loss).is_file():
            models[f"shipped {loss}"] = SR.load_super_resolution(SR.shipped_path(loss), device=ctx.device).model
    size = SIZE.get(ctx.profile.name, 256)
    vgg = VGG19Features("caffe", layers=SR.DISTANCE_LAYERS).to(ctx.device)
    scores = SR.mean_by_method(SR.evaluate_super_resolution(models, size=size, vgg=vgg))
    where = f"{' and '.join(HELD_OUT)} at {size} px"
    for method, (psnr, distance) in scores.items():
        psnr_target, distance_target = TARGETS.get(method, ("", ""))
        rows += [Row("super_resolution", f"{method}: mean PSNR, {where}", psnr, "dB", len(HELD_OUT), psnr_target),
                 Row("super_resolution", f"{method}: mean perceptual distance, {where}", distance, "",
                     len(HELD_OUT), distance_target)]
    return rows


def _train(ctx: BenchContext, config: SR.SuperResConfig, crops: PhotoCrops):
    """Train one network from scratch (seed 0) for the profile's budget, keep its checkpoint: (network, rows)."""
    result = SR.train_super_resolution(config, budget=Budget(ctx.profile.sr_steps, ctx.profile.sr_seconds),
                                       device=ctx.device, generator=seed_everything(0), photos=crops, progress=False)
    SR.save_super_resolution(ctx.work_dir / f"sr_{config.loss}.pt", result, optimizer=False)
    what = f"{config.loss} loss (C={config.net.channels}, {config.image_size} px crops)"
    print(f"  {what}: {result.steps} steps in {result.seconds:.0f} s", flush=True)
    return result.model, [Row("super_resolution", f"{what}: steps in {result.seconds:.0f} s", result.steps, "steps"),
                          Row("super_resolution", f"{what}: steps per second",
                              result.steps / max(result.seconds, 1e-9), "steps/s")]
