"""`make bench`: run the benchmark groups, print one table, write bench/results.json.

Each group is a module in `course_lib.benchmarks` with `run(ctx: BenchContext) -> list[Row]`.
Groups run in `GROUPS` order so the judge's floor is printed before the figures it judges.
"""
from __future__ import annotations

import datetime as _dt
import importlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .runtime import Profile, get_device, get_profile

__all__ = ["Row", "BenchContext", "GROUPS", "run_benchmarks", "format_table", "timed", "judged_rows"]

GROUPS = ("judge", "gan", "diffusion", "diffusion_curve", "style", "ablation", "fast_style", "super_resolution")


@dataclass
class Row:
    """One figure: what was measured, its value and unit, the sample count N (if any), and the target."""

    group: str
    what: str
    figure: float
    unit: str = ""
    n: int | None = None
    target: str = ""
    device: str = ""
    profile: str = ""


@dataclass
class BenchContext:
    device: torch.device
    profile: Profile
    data_root: Path
    assets: Path | None  # folder of style paintings for manual/bench checks, or None
    work_dir: Path  # scratch folder for checkpoints and outputs made by the benchmarks


def timed(fn, device: torch.device | str):
    """(fn(), its wall time in seconds). On CUDA, waits for the queued kernels before and after: without it the
    clock would stop while the GPU is still working."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - start


def judged_rows(group: str, what: str, scores: dict, n: int, targets: dict | None = None) -> list[Row]:
    """FID, recognizable share and classes of `diffusion.evaluate`'s scores by the course's judge and, where the
    scores have them, by the second judge; `targets` maps a score's key (e.g. "fid_second") to its target."""
    targets = targets or {}
    rows = []
    for judge, suffix in (("judge", ""), ("second judge", "_second")):
        if f"fid{suffix}" not in scores:
            continue
        rows += [Row(group, f"{what}: {label} ({judge})", scores[key + suffix], unit, n, targets.get(key + suffix, ""))
                 for key, label, unit in (("fid", "FID", ""), ("recognizable", "recognizable", ""),
                                          ("classes", "classes", "of 10"))]
    return rows


def _default_assets() -> Path | None:
    here = Path.cwd()
    for candidate in (here / ".." / "shared" / "assets" / "styles", here / "shared" / "assets" / "styles"):
        if candidate.is_dir():
            return candidate.resolve()
    return None


def format_table(rows: list[Row]) -> str:
    head = ("group", "what", "figure", "unit", "N", "target", "device", "profile")
    cells = [head] + [(r.group, r.what, f"{r.figure:.4g}", r.unit, "" if r.n is None else str(r.n),
                       r.target, r.device, r.profile) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(head))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cpu_flags() -> list[str]:
    """The CPU features that set the speed of training here (lscpu's flags): AVX2 only computes in float32."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return []
    return sorted(f for f in flags.split(":", 1)[1].split() if f.startswith(("avx", "amx")))


def _machine() -> dict:
    return {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_flags": _cpu_flags(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def run_benchmarks(only: list[str] | None = None, out: str | os.PathLike = "bench/results.json",
                   assets: str | os.PathLike | None = None, data_root: str | os.PathLike = "data") -> list[Row]:
    unknown = sorted(set(only or []) - set(GROUPS))
    if unknown:
        raise ValueError(f"unknown benchmark group(s) {unknown}: use some of {', '.join(GROUPS)}")
    device = get_device()
    ctx = BenchContext(device=device, profile=get_profile(device=device), data_root=Path(data_root),
                       assets=Path(assets) if assets else _default_assets(), work_dir=Path(out).parent / "work")
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    print(f"bench: device={device} profile={ctx.profile.name} torch={torch.__version__} "
          f"threads={torch.get_num_threads()} cpu flags={' '.join(_cpu_flags()) or '?'} assets={ctx.assets}",
          flush=True)
    rows: list[Row] = []
    for group in GROUPS:
        if only and group not in only:
            continue
        module = importlib.import_module(f"course_lib.benchmarks.{group}")
        t0 = time.perf_counter()
        new = module.run(ctx)
        for r in new:
            r.group, r.device, r.profile = group, r.device or str(device), r.profile or ctx.profile.name
        rows += new
        print(format_table(new), f"\n({group}: {time.perf_counter() - t0:.0f} s)\n", flush=True)
    print(format_table(rows))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    report = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": _machine(), "rows": [asdict(r) for r in rows]}
    Path(out).write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}")
    return rows
