"""Plain constants that the library and the command line share, with no import of torch.

The command line reads them for its `--help` texts and defaults (`python -m course_lib ... --help` stays fast:
no torch), and the library modules named beside each one use the same objects, so the help always states the
code's values.
"""
from __future__ import annotations

__all__ = ["PROFILE_NAMES", "SAMPLER_NAMES", "AUTOGUIDANCE", "AUTOGUIDANCE_INTERVAL", "DDIM_ETA", "JUDGE_CHECKPOINT",
           "SECOND_JUDGE_CHECKPOINT", "JUDGE_STEPS", "GPU_REPORT_GAN_SECONDS", "GPU_REPORT_DIFFUSION_SECONDS",
           "SR_LOSSES"]

PROFILE_NAMES = ("smoke", "quick", "full")  # runtime.PROFILES, in this order
SAMPLER_NAMES = ("ddpm", "ddim")  # schedulers.SAMPLERS
AUTOGUIDANCE = 2.5  # diffusion: the unconditional model's guidance scale w, measured best on models trained 300 s
DDIM_ETA = 1.0  # diffusion: DDIM judged with fresh noise (eta 1); on 300 s models it halved deterministic DDIM's FID
AUTOGUIDANCE_INTERVAL = (0.3, float("inf"))  # diffusion: guide only at sigma_t >= 0.3, high noise included (measured)
JUDGE_CHECKPOINT = "digit_classifier.pt"  # digit_classifier: the judge's weights in data/checkpoints/
SECOND_JUDGE_CHECKPOINT = "digit_classifier_second.pt"  # digit_classifier: the second, independent judge's weights
JUDGE_STEPS = 3000  # digit_classifier.train_judge: training steps of the shipped judge
GPU_REPORT_GAN_SECONDS = 90.0  # gpu_report.GPU_PLAN: GAN training (full: 300 s)
GPU_REPORT_DIFFUSION_SECONDS = 210.0  # gpu_report.GPU_PLAN: diffusion training (full: 900 s)
SR_LOSSES = ("pixel", "perceptual")  # super_resolution.LOSSES: what a 4x super-resolution network is trained with
