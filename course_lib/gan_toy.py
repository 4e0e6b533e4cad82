"""The adversarial game on a 2-D toy that trains in seconds: 8 Gaussians on a ring (Metz et al. 2017).

Small enough to watch everything at once: where G puts its points, and what D believes (the probability
D(x) that a point x is real, over the whole plane). The same losses as the DCGAN (`course_lib.gan`), so the
toy shows what the image model does, including its failures: a G that covers only some of the modes
(mode collapse) and a G stuck under the saturating minimax loss.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from .gan import discriminator_loss, generator_loss, minimax_generator_loss
from .runtime import check_choice
from .runtime import progress
from .train import Budget, check_finite

__all__ = ["ring_data", "ToyGANConfig", "ToyGAN", "mlp", "train_toy_gan", "discriminator_field", "mode_coverage",
           "show_toy", "show_toy_runs", "show_generator_losses", "toy_budget"]

GENERATOR_LOSSES = ("non_saturating", "minimax")
FIELD_RESOLUTION = 60
FIELD_EXTENT = 3.0


def ring_data(n: int, *, num_modes: int = 8, radius: float = 2.0, std: float = 0.05,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """n points (n, 2) from a mixture of `num_modes` Gaussians evenly spaced on a circle of `radius`."""
    mode = torch.randint(num_modes, (n,), generator=generator)
    angle = 2 * math.pi * mode.float() / num_modes
    centres = radius * torch.stack([torch.cos(angle), torch.sin(angle)], 1)  # (n, 2)
    return centres + std * torch.randn(n, 2, generator=generator)


def mlp(in_dim: int, hidden: int, out_dim: int, depth: int = 3) -> nn.Sequential:
    """in_dim -> hidden -> ... -> out_dim with LeakyReLU(0.2) between layers (`depth` linear layers)."""
    dims = [in_dim] + [hidden] * (depth - 1) + [out_dim]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:  # no activation after the last layer
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


@dataclass
class ToyGANConfig:
    latent_dim: int = 2
    hidden: int = 64
    batch_size: int = 256
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    generator_loss: str = "non_saturating"  # or "minimax": the saturating log(1 - D(G(z))) of eq. 1
    d_steps: int = 1  # D updates per G update

    def __post_init__(self):
        self.betas = tuple(self.betas)
        check_choice("generator_loss", self.generator_loss, GENERATOR_LOSSES)


@dataclass
class ToyGAN:
    """A trained toy: the two MLPs, the history (step, loss_d, loss_g, d_real, d_fake) and snapshots of
    (step, G's points (n, 2), D's belief on the plane (R, R), see `discriminator_field`) over training."""

    config: ToyGANConfig
    net_g: nn.Module
    net_d: nn.Module
    history: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in ("step", "loss_d", "loss_g",
                                                                                        "d_real", "d_fake")})
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.net_g(torch.randn(n, self.config.latent_dim, generator=generator))  # (n, 2)


def _toy_step(gan: ToyGAN, opt_g, opt_d, real_batches, z: torch.Tensor) -> list[float]:
    """d_steps updates of D on (real, G(z)), then one of G; returns [loss_d, loss_g, D(x), D(G(z))]."""
    for real in real_batches:
        fake = gan.net_g(z).detach()
        real_logits, fake_logits = gan.net_d(real), gan.net_d(fake)
        loss_d = discriminator_loss(real_logits, fake_logits)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
    fake_logits_g = gan.net_d(gan.net_g(z))
    use_minimax = gan.config.generator_loss == "minimax"
    loss_g = minimax_generator_loss(fake_logits_g) if use_minimax else generator_loss(fake_logits_g)
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return [loss_d.item(), loss_g.item(), real_logits.sigmoid().mean().item(), fake_logits.sigmoid().mean().item()]


def train_toy_gan(config: ToyGANConfig | None = None, *, budget: Budget, generator: torch.Generator | None = None,
                  num_snapshots: int = 8, snapshot_points: int = 1000, data=ring_data) -> ToyGAN:
    """Train G: R^latent_dim -> R^2 against D: R^2 -> logit on `data(n, generator=...)` points (CPU, seconds)."""
    with _one_thread():
        return _train_toy_gan(config or ToyGANConfig(), budget, generator, num_snapshots, snapshot_points, data)


@contextmanager
def _one_thread():
    """The toy's tensors are tiny: one CPU thread runs them fastest, and on a busy machine several threads
    spin-wait for each other (20x slower measured on 2 shared cores). The previous setting is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train_toy_gan(config: ToyGANConfig, budget: Budget, generator: torch.Generator | None, num_snapshots: int,
                   snapshot_points: int, data) -> ToyGAN:
    with torch.random.fork_rng():  # the nets' init follows `generator`, the global RNG is left alone
        if generator is not None:
            torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
        gan = ToyGAN(config, mlp(config.latent_dim, config.hidden, 2), mlp(2, config.hidden, 1))
    opt_g = torch.optim.Adam(gan.net_g.parameters(), lr=config.lr_g, betas=config.betas)
    opt_d = torch.optim.Adam(gan.net_d.parameters(), lr=config.lr_d, betas=config.betas)
    snapshot_z = torch.randn(snapshot_points, config.latent_dim, generator=generator)
    step, every = 0, max(1, (budget.max_steps or 1000) // num_snapshots)
    bar = progress(total=budget.total, desc="toy GAN")
    while not budget.done(step):
        if step % every == 0:
            _snapshot(gan, step, snapshot_z)
        reals = [data(config.batch_size, generator=generator) for _ in range(config.d_steps)]
        z = torch.randn(config.batch_size, config.latent_dim, generator=generator)
        stats = _toy_step(gan, opt_g, opt_d, reals, z)
        step += 1
        check_finite(step, loss_d=stats[0], loss_g=stats[1])
        for key, value in zip(gan.history, [step, *stats]):
            gan.history[key].append(value)
        bar.update(1)
    bar.close()
    _snapshot(gan, step, snapshot_z)
    return gan


@torch.no_grad()
def _snapshot(gan: ToyGAN, step: int, z: torch.Tensor) -> None:
    gan.snapshots.append((step, gan.net_g(z), discriminator_field(gan.net_d, resolution=FIELD_RESOLUTION)))


@torch.no_grad()
def discriminator_field(net_d: nn.Module, *, extent: float = FIELD_EXTENT, resolution: int = 100) -> torch.Tensor:
    """D's belief D(x) = sigmoid(logit) on a (resolution, resolution) grid over [-extent, extent]^2;
    row i is y = -extent + ..., so plot with imshow(origin="lower", extent=(-e, e, -e, e))."""
    axis = torch.linspace(-extent, extent, resolution)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.stack([x.flatten(), y.flatten()], 1)  # (R * R, 2)
    return net_d(points).sigmoid().view(resolution, resolution)


def mode_coverage(points: torch.Tensor, *, num_modes: int = 8, radius: float = 2.0, max_distance: float = 0.3,
                  min_share: float = 0.02) -> int:
    """How many ring modes G covers: modes that hold at least `min_share` of the points within `max_distance`."""
    angle = 2 * math.pi * torch.arange(num_modes) / num_modes
    centres = radius * torch.stack([torch.cos(angle), torch.sin(angle)], 1)  # (M, 2)
    distance = torch.cdist(points, centres)  # (n, M)
    nearest, which = distance.min(1)
    counts = torch.bincount(which[nearest < max_distance], minlength=num_modes)
    return int((counts >= min_share * len(points)).sum())


def show_toy(toy: ToyGAN, *, num_panels: int = 4, real: torch.Tensor | None = None, title: str | None = None):
    """G's points (orange) over D's belief D(x) at that moment (background: dark = "fake", light = "real"),
    at `num_panels` snapshots; real points (if given) in white."""
    import matplotlib.pyplot as plt
    picks = sorted({round(i * (len(toy.snapshots) - 1) / max(1, num_panels - 1)) for i in range(num_panels)})
    fig, axes = plt.subplots(1, len(picks), figsize=(3 * len(picks), 3.2), squeeze=False)
    for ax, index in zip(axes[0], picks):
        _draw_snapshot(ax, toy.snapshots[index], real)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _draw_snapshot(ax, snapshot: tuple, real: torch.Tensor | None) -> None:
    """One snapshot (step, G's points, D's field) on `ax`: D(x) as the background, G's points in orange."""
    step, points, field = snapshot
    e = FIELD_EXTENT
    ax.imshow(field.numpy(), origin="lower", cmap="viridis", extent=(-e, e, -e, e), vmin=0, vmax=1)
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=2, c="white", alpha=0.5)
    ax.scatter(points[:, 0].clamp(-e, e), points[:, 1].clamp(-e, e), s=2, c="tab:orange")
    ax.set_xlim(-e, e), ax.set_ylim(-e, e)
    ax.set_title(f"step {step}: {mode_coverage(points)}/8 modes")
    ax.set_xticks([]), ax.set_yticks([])


def show_toy_runs(runs: dict, *, real: torch.Tensor | None = None, smooth: float = 0.9):
    """Several toy runs, one row each: where G ended up (over D's belief, as in `show_toy`), then the run's
    curves (`viz.plot_gan_curves`: the losses, and D(x), D(G(z))). For reading failures off the curves."""
    import matplotlib.pyplot as plt
    from .viz import plot_gan_curves
    if not runs:
        raise ValueError("show_toy_runs needs at least one {name: ToyGAN} entry")
    fig, axes = plt.subplots(len(runs), 3, figsize=(13, 3.1 * len(runs)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.7, 1.7]})
    for row, (name, toy) in zip(axes, runs.items()):
        _draw_snapshot(row[0], toy.snapshots[-1], real)
        row[0].set_ylabel(name, fontsize=11)
        plot_gan_curves(toy.history, smooth=smooth, axes=row[1:])
    fig.tight_layout()
    return fig


def show_generator_losses(num_points: int = 199):
    """The two generator losses of `course_lib.gan` and the size of their gradient with respect to D's logit u,
    against D(G(z)) = sigmoid(u): minimax log(1 - D) has gradient sigmoid(u) = D(G(z)), which vanishes where D
    rejects the fakes; the non-saturating -log D has gradient 1 - D(G(z)), largest there."""
    import matplotlib.pyplot as plt
    d_fake = torch.linspace(0, 1, num_points + 2)[1:-1]  # (P,) open interval (0, 1)
    fig, (ax_loss, ax_grad) = plt.subplots(1, 2, figsize=(10, 3.2))
    for name, loss_fn in (("minimax: log(1 - D(G(z)))", minimax_generator_loss),
                          ("non-saturating: -log D(G(z))", generator_loss)):
        u = torch.logit(d_fake).requires_grad_(True)  # D's logits
        losses = torch.stack([loss_fn(u_i[None]) for u_i in u])  # (P,): each the loss of a batch of one
        (grad,) = torch.autograd.grad(losses.sum(), u)
        ax_loss.plot(d_fake, losses.detach(), label=name)
        ax_grad.plot(d_fake, grad.abs(), label=name)
    ax_loss.set(xlabel="D(G(z))", ylabel="generator loss (minimized)", title="the two losses")
    ax_grad.set(xlabel="D(G(z))", ylabel="|d loss / d logit|", title="how hard they push G")
    ax_grad.axvspan(0, 0.1, color="grey", alpha=0.2, label="D rejects the fakes\n(where G starts)")
    for ax in (ax_loss, ax_grad):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


TOY_STEPS = {False: 400, True: 1000}  # profile.train False (smoke: a few seconds a run) / True


def toy_budget(profile) -> Budget:
    """The toy's step budget for a `runtime.Profile`: a few hundred steps when the profile does not train
    (the toy already covers the ring by then), more when it does (every profile finishes a run in seconds)."""
    return Budget(max_steps=TOY_STEPS[bool(profile.train)])
