"""`python -m course_lib gpu-report` (`make gpu-report`): refuses
at once without CUDA, and its smoke plan runs end to end on a CPU.

Both run the command as a user does, in a fresh process with CUDA hidden (CUDA_VISIBLE_DEVICES=""), so they say
the same thing on a machine with a GPU.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parent.parent
MODULE = ("-m", "course_lib", "gpu-report")
EXPECTED_KEYS = {"date", "device", "device_type", "compute_capability", "torch", "cuda", "amp_dtype", "plan",
                 "full_profile", "stages", "total_seconds", "limit_seconds", "machine", "rows"}
STAGES = {"gan training", "gan sampling and judging", "diffusion training", "diffusion sampling and judging",
          "style transfer"}


def _run(*args: str, timeout: float):
    """(the finished process, its wall time in seconds): `python -m course_lib gpu-report ARGS` with CUDA hidden."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "COURSE_PROGRESS": "0"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *MODULE, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    return done, time.perf_counter() - start


def test_without_cuda_it_stops_at_once_and_says_why(tmp_path):
    out = tmp_path / "gpu.json"
    done, seconds = _run("--out", str(out), timeout=60)
    assert done.returncode != 0
    assert "no CUDA GPU" in done.stderr and "--smoke" in done.stderr
    assert seconds < 20 and not out.exists()
    assert "MNIST" not in done.stdout + done.stderr  # stopped before loading data or training
    assert done.returncode == 1


def test_without_cuda_it_stops_before_the_course_s_modules_load(monkeypatch, capsys):
    from course_lib.commands import main

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    before = set(sys.modules)
    assert main(["gpu-report", "--out", "never.json"]) == 1
    assert "no CUDA GPU" in capsys.readouterr().err
    assert not {"course_lib.gpu_report", "course_lib.gan", "course_lib.diffusion"} & (set(sys.modules) - before)


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    """`gpu-report --smoke` run once, CUDA hidden: (the finished process, the JSON report or None)."""
    out = tmp_path_factory.mktemp("gpu_report") / "bench" / "gpu.json"
    done, _ = _run("--smoke", "--out", str(out), timeout=300)
    return done, json.loads(out.read_text()) if out.is_file() else None


def test_smoke_run_exits_0_and_writes_every_key(smoke_report):
    done, report = smoke_report
    assert done.returncode == 0, done.stderr[-3000:]
    assert EXPECTED_KEYS <= set(report)


def test_smoke_run_on_a_cpu_reports_no_compute_capability(smoke_report):
    report = smoke_report[1]
    assert report["device_type"] == "cpu" and report["compute_capability"] is None


def test_smoke_run_times_every_stage_without_gpu_memory_on_a_cpu(smoke_report):
    report = smoke_report[1]
    assert set(report["stages"]) == STAGES
    assert all(s["seconds"] > 0 and s["peak_mib"] is None for s in report["stages"].values())  # no GPU memory on CPU


def test_smoke_run_rows_cover_every_group_and_figure(smoke_report):
    report = smoke_report[1]
    groups = {row["group"] for row in report["rows"]}
    assert groups == {"plan", "gan", "diffusion", "style", "total"}
    whats = " | ".join(row["what"] for row in report["rows"])
    for figure in ("FID", "recognizable", "classes", "training throughput", "sampling throughput", "autoguidance",
                   "L-BFGS steps", "full: 300 s", "full: 900 s"):
        assert figure in whats, figure


def test_smoke_run_prints_the_table(smoke_report):
    stdout = smoke_report[0].stdout
    assert "group" in stdout and "figure" in stdout and "the whole report" in stdout  # the table
