"""course_lib.gan, gan_edit, gan_toy and the `gan` commands (course_lib.commands.gan): shapes, losses, training,
checkpoints, editing, the command line."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from course_lib import dcgan, gan, gan_edit, gan_toy, runtime
from course_lib.train import Budget, CheckpointError, TrainingDiverged, save_checkpoint


def tiny_config(**kw) -> gan.DCGANConfig:
    values = dict(image_size=28, latent_dim=8, g_channels=4, d_channels=4, batch_size=8, ema_decay=0.9)
    return gan.DCGANConfig(**{**values, **kw})


def tiny_digits(n: int = 16, size: int = 28, seed: int = 0) -> torch.Tensor:
    """Bright bars on black, (n, 1, size, size) in [-1, 1]: a stand-in for digits."""
    gen = torch.Generator().manual_seed(seed)
    x = -torch.ones(n, 1, size, size)
    for i in range(n):
        col = int(torch.randint(4, size - 6, (1,), generator=gen))
        x[i, :, 4:size - 4, col:col + 3] = 1.0
    return x


def layer_shapes(net: torch.nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    return [shape for _, shape in dcgan.layer_shapes(net, x)]


# ---------------------------------------------------------------- shapes
@pytest.mark.parametrize("size, g_shapes, d_shapes", [
    (28, [(2, 8, 7, 7), (2, 4, 14, 14), (2, 1, 28, 28)], [(2, 4, 14, 14), (2, 8, 7, 7), (2,)]),
    (32, [(2, 16, 4, 4), (2, 8, 8, 8), (2, 4, 16, 16), (2, 1, 32, 32)],
     [(2, 4, 16, 16), (2, 8, 8, 8), (2, 16, 4, 4), (2,)]),
    (64, [(2, 32, 4, 4), (2, 16, 8, 8), (2, 8, 16, 16), (2, 4, 32, 32), (2, 1, 64, 64)],
     [(2, 4, 32, 32), (2, 8, 16, 16), (2, 16, 8, 8), (2, 32, 4, 4), (2,)]),
])
def test_every_layer_shape(size, g_shapes, d_shapes):
    config = tiny_config(image_size=size)
    net_g, net_d = dcgan.Generator(config), dcgan.Discriminator(config)
    assert layer_shapes(net_g, torch.randn(2, 8)) == g_shapes
    assert layer_shapes(net_d, torch.randn(2, 1, size, size)) == d_shapes


def test_generator_range_and_one_logit_per_image():
    config = tiny_config(image_size=32)
    images = dcgan.Generator(config)(torch.randn(5, 8) * 10)
    assert images.shape == (5, 1, 32, 32) and images.min() >= -1 and images.max() <= 1
    logits = dcgan.Discriminator(config)(images)
    assert logits.shape == (5,)
    assert not isinstance(dcgan.Discriminator(config).net[-1], torch.nn.Sigmoid)


def test_bad_inputs_raise_clear_errors():
    config = tiny_config(image_size=32)
    with pytest.raises(ValueError, match="pad 28x28"):
        dcgan.Discriminator(config)(torch.randn(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"z must be \(B, 8\)"):
        dcgan.Generator(config)(torch.randn(2, 9))
    with pytest.raises(ValueError, match="image_size must be one of"):
        gan.DCGANConfig(image_size=48)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        gan.prepare_mnist(torch.rand(2, 28, 28))


@pytest.mark.parametrize("device, has_bf16, fp32_cpu", [("cpu", False, True), ("cpu", True, False),
                                                         ("cuda", False, False), ("mps", False, False)])
def test_default_config_narrows_the_networks_only_on_a_cpu_without_bf16(monkeypatch, device, has_bf16, fp32_cpu):
    monkeypatch.setattr(gan, "cpu_has_bf16", lambda: has_bf16)
    assert gan.default_config(device) == gan.DCGANConfig(**(gan.FP32_CPU_WIDTHS if fp32_cpu else {}))
    assert gan.default_config(device, g_channels=8, batch_size=16).g_channels == 8  # overrides win


def test_prepare_mnist_ranges_and_padding():
    x = torch.rand(3, 1, 28, 28)
    padded = gan.prepare_mnist(x, 32)
    assert padded.shape == (3, 1, 32, 32)
    torch.testing.assert_close(padded[..., 2:30, 2:30], x * 2 - 1)
    assert (padded[..., :2, :] == -1).all()
    assert gan.prepare_mnist(x, 64).shape == (3, 1, 64, 64)


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    net = dcgan.Generator(gan.DCGANConfig(image_size=32, g_channels=32))
    net.apply(dcgan.dcgan_init)
    conv = net.net[1][0].weight
    bn = net.net[1][1].weight
    assert abs(conv.std().item() - 0.02) < 0.002 and abs(conv.mean().item()) < 0.002
    assert abs(bn.mean().item() - 1.0) < 0.01 and abs(bn.std().item() - 0.02) < 0.01


# ---------------------------------------------------------------- losses
def test_losses_at_undecided_discriminator():
    zeros = torch.zeros(6)
    torch.testing.assert_close(gan.discriminator_loss(zeros, zeros), torch.tensor(2 * math.log(2)))
    torch.testing.assert_close(gan.generator_loss(zeros), torch.tensor(math.log(2)))
    torch.testing.assert_close(gan.minimax_generator_loss(zeros), torch.tensor(-math.log(2)))


def test_losses_match_bce_and_have_the_right_sign():
    real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([-3.0, 1.0, 0.0])
    bce = F.binary_cross_entropy_with_logits
    expected = bce(real, torch.ones(3)) + bce(fake, torch.zeros(3))
    torch.testing.assert_close(gan.discriminator_loss(real, fake), expected)
    torch.testing.assert_close(gan.generator_loss(fake), bce(fake, torch.ones(3)))
    # D is rewarded for high real logits and low fake logits; G for high fake logits
    assert gan.discriminator_loss(real + 1, fake - 1) < gan.discriminator_loss(real, fake)
    assert gan.generator_loss(fake + 1) < gan.generator_loss(fake)


def test_losses_are_stable_at_extreme_logits_and_non_saturating():
    big = torch.tensor([100.0, -100.0])
    assert torch.isfinite(gan.discriminator_loss(big, -big)) and torch.isfinite(gan.generator_loss(-big))
    torch.testing.assert_close(gan.generator_loss(torch.tensor([-100.0])), torch.tensor(100.0))
    logit = torch.tensor([-8.0], requires_grad=True)  # D confidently rejects the fake
    (grad_ns,) = torch.autograd.grad(gan.generator_loss(logit), logit)
    (grad_mm,) = torch.autograd.grad(gan.minimax_generator_loss(logit), logit)
    assert abs(grad_ns.item()) > 0.99 and abs(grad_mm.item()) < 1e-3


# ---------------------------------------------------------------- training
@pytest.fixture(scope="module")
def seeded_runs():
    """The same seeded 30-step training, run twice: shared by the training tests below."""
    def train():
        torch.manual_seed(0)
        return gan.train_gan(tiny_config(lr_d=2e-3), tiny_digits(), budget=Budget(max_steps=30), log_every=1,
                             generator=torch.Generator().manual_seed(0))

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COURSE_PROGRESS", "0")
        return train(), train()


def test_short_seeded_training_lowers_the_discriminator_loss(seeded_runs):
    loss_d = seeded_runs[0].history["loss_d"]
    assert sum(loss_d[-5:]) / 5 < loss_d[0] < 2 * math.log(2) + 0.1  # D learns to tell bars from noise


def test_training_counts_steps_and_images_seen(seeded_runs):
    run = seeded_runs[0]
    assert run.steps == 30 and run.images_seen == 30 * 8


def test_training_history_has_every_key_and_probabilities_in_range(seeded_runs):
    run = seeded_runs[0]
    assert set(run.history) == {"step", "seconds", "loss_d", "loss_g", "d_real", "d_fake"}
    assert all(0 <= p <= 1 for p in run.history["d_real"] + run.history["d_fake"])


def test_training_snapshots_span_the_first_and_last_step(seeded_runs):
    run = seeded_runs[0]
    assert len(run.snapshots) >= 2 and run.snapshots[0][0] == 0 and run.snapshots[-1][0] == 30


def test_callback_sees_the_run_with_steps_and_history_current(monkeypatch):
    """callback(run), as train_diffusion's: the run's steps and history are those of the step just logged."""
    monkeypatch.setenv("COURSE_PROGRESS", "0")
    seen = []
    gan.train_gan(tiny_config(), tiny_digits(), budget=Budget(max_steps=4), log_every=2,
                  callback=lambda run: seen.append((run.steps, run.history["step"][-1], len(run.history["loss_d"]))))
    assert seen == [(1, 1, 1), (2, 2, 2), (4, 4, 3)]


def test_the_run_keeps_the_ema_generator_as_ema_model_and_samples_from_it(seeded_runs):
    run = seeded_runs[0]
    assert isinstance(run.ema_model, gan.Generator) and not run.ema_model.training
    assert run.sampler is run.ema_model and run.ema_model is not run.net_g
    assert gan.build_gan(tiny_config(ema_decay=0.0)).ema_model is None  # EMA off: sample from G itself


def test_seeded_training_is_reproducible(seeded_runs):
    run, again = seeded_runs
    assert again.history["loss_g"] == run.history["loss_g"]


def test_fast_path_keeps_float32_weights_and_follows_the_float32_path(monkeypatch):
    """channels_last + bfloat16 autocast (forced on, as on a CPU with native bf16) change speed, not the game:
    the weights stay float32 (checkpoints, sampling), and one step gives nearly the float32 step's losses."""
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)  # looked up by runtime.amp_dtype
    data, z = tiny_digits(8), torch.randn(8, 8, generator=torch.Generator().manual_seed(1))
    stats = {}
    for fast in (False, True):
        torch.manual_seed(0)
        run = gan.build_gan(tiny_config(mixed_precision=fast, channels_last=fast))
        stats[fast] = gan.train_step(run, data, z)
        assert all(p.dtype == torch.float32 for p in run.net_g.parameters())
        conv = run.net_d.net[1][0].weight  # (2ndf, ndf, 4, 4)
        assert conv.is_contiguous(memory_format=torch.channels_last) == fast
    assert stats[True].dtype == torch.float32
    torch.testing.assert_close(stats[True], stats[False], atol=0.05, rtol=0.05)


def _count_scaler_calls(monkeypatch) -> dict[str, int]:
    """Count GradScaler.step and .update calls (the real methods still run)."""
    calls = {"step": 0, "update": 0}
    for name in calls:
        method = getattr(torch.amp.GradScaler, name)

        def counted(self, *args, _name=name, _method=method, **kwargs):
            calls[_name] += 1
            return _method(self, *args, **kwargs)

        monkeypatch.setattr(torch.amp.GradScaler, name, counted)
    return calls


def test_float16_steps_d_and_g_through_one_grad_scaler(monkeypatch):
    """As on a T4: float16 autocast (forced on this CPU, whose autocast supports float16 convolutions) with one
    GradScaler, stepped once per optimizer and updated once per round; the weights move and stay finite."""
    monkeypatch.setattr(runtime, "amp_dtype", lambda device: torch.float16)
    calls = _count_scaler_calls(monkeypatch)
    torch.manual_seed(0)
    run = gan.build_gan(tiny_config())
    before = [p.detach().clone() for p in [*run.net_g.parameters(), *run.net_d.parameters()]]
    data, z = tiny_digits(8), torch.randn(8, 8, generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        stats = gan.train_step(run, data, z)
    assert run.scaler.is_enabled() and calls == {"step": 6, "update": 3}
    after = [*run.net_g.parameters(), *run.net_d.parameters()]
    assert torch.isfinite(stats).all() and all(torch.isfinite(p).all() and p.dtype == torch.float32 for p in after)
    assert all(not torch.equal(p, q) for p, q in zip(before, after))


def test_float16_checkpoint_keeps_the_loss_scale_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_PROGRESS", "0")
    monkeypatch.setattr(runtime, "amp_dtype", lambda device: torch.float16)
    path = tmp_path / "g.pt"
    run = gan.train_gan(tiny_config(), tiny_digits(), budget=Budget(max_steps=2), checkpoint=path)
    run.scaler.update(1024.0)  # a scale other than the default, to see it come back
    gan.save_gan(path, run)
    loaded = gan.load_gan(path)
    assert loaded.scaler.is_enabled() and loaded.scaler.get_scale() == 1024.0
    assert gan.train_gan(loaded.config, tiny_digits(), budget=Budget(max_steps=1), resume=loaded).steps == 3


@pytest.fixture(scope="module")
def checkpointed_run(tmp_path_factory):
    """A seeded 4-step run and its checkpoint, then 2 more steps resumed from a copy of it: trained once for the
    checkpoint tests, which only read them."""
    folder = tmp_path_factory.mktemp("gan_checkpoint")
    path, resumed = folder / "g.pt", folder / "resumed.pt"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COURSE_PROGRESS", "0")
        torch.manual_seed(0)
        run = gan.train_gan(tiny_config(), tiny_digits(), budget=Budget(max_steps=4), checkpoint=path,
                            generator=torch.Generator().manual_seed(0))
        resumed.write_bytes(path.read_bytes())
        more = gan.train_gan(run.config, tiny_digits(), budget=Budget(max_steps=2), resume=resumed,
                             checkpoint=resumed)
    return run, path, more, resumed


def test_checkpoint_round_trip_keeps_config_steps_history_and_samples(checkpointed_run):
    run, path, _, _ = checkpointed_run
    loaded = gan.load_gan(path)
    assert loaded.config == run.config and loaded.steps == 4 and loaded.history == run.history
    z = torch.randn(3, 8)
    torch.testing.assert_close(gan.sample(loaded.sampler, z=z), gan.sample(run.sampler, z=z), rtol=0, atol=0)
    torch.testing.assert_close(loaded.fixed_noise, run.fixed_noise)


def test_resume_continues_the_step_count_history_and_clock(checkpointed_run):
    run, _, more, resumed = checkpointed_run
    assert more.steps == 6 and gan.load_gan(resumed).steps == 6
    assert more.history["step"][-1] == 6 and more.seconds >= run.seconds


def test_slim_checkpoint_is_smaller_samples_the_same_and_resumes(checkpointed_run, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_PROGRESS", "0")
    run, _, _, resumed = checkpointed_run
    slim = gan.save_gan(tmp_path / "slim.pt", run, optimizers=False)  # shipped checkpoints: no Adam moments
    assert slim.stat().st_size < 0.8 * resumed.stat().st_size
    from_slim = gan.load_gan(slim)
    z = torch.randn(3, 8)
    torch.testing.assert_close(gan.sample(from_slim.sampler, z=z), gan.sample(run.sampler, z=z), rtol=0, atol=0)
    assert gan.train_gan(from_slim.config, tiny_digits(), budget=Budget(max_steps=1), resume=slim).steps == 5


def test_load_gan_refuses_a_checkpoint_of_another_kind(tmp_path):
    other = tmp_path / "other.pt"
    save_checkpoint(other, kind="diffusion", config={"a": 1}, state={})
    with pytest.raises(CheckpointError, match="'diffusion'"):
        gan.load_gan(other)


def test_load_gan_names_an_unknown_config_field(tmp_path):
    foreign = tmp_path / "foreign.pt"
    save_checkpoint(foreign, kind="gan", config={"image_size": 28, "num_layers": 3}, state={})
    with pytest.raises(CheckpointError, match="num_layers"):
        gan.load_gan(foreign)


def test_resume_refuses_a_config_that_differs_from_the_checkpoint(checkpointed_run):
    _, path, _, _ = checkpointed_run
    with pytest.raises(CheckpointError, match="g_channels"):
        gan.train_gan(tiny_config(g_channels=8), tiny_digits(), budget=Budget(max_steps=1), resume=path)


def test_train_gan_refuses_data_not_prepared_for_the_image_size(monkeypatch):
    monkeypatch.setenv("COURSE_PROGRESS", "0")
    with pytest.raises(ValueError, match="prepare_mnist"):
        gan.train_gan(tiny_config(image_size=32), tiny_digits(), budget=Budget(max_steps=1))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_PROGRESS", "0")
    path = tmp_path / "g.pt"
    gan.train_gan(tiny_config(), tiny_digits(), budget=Budget(max_steps=3), checkpoint=path)
    before = path.read_bytes()
    broken = tiny_digits()
    broken[:, :, 0, 0] = float("nan")  # every real batch now gives D a NaN logit
    with pytest.raises(TrainingDiverged, match="loss_d became nan at step 4"):
        gan.train_gan(tiny_config(), broken, budget=Budget(max_steps=20), resume=path, checkpoint=path,
                      checkpoint_every=0.0)
    assert path.read_bytes() == before and gan.load_gan(path).steps == 3


def test_sample_is_reproducible_and_in_eval_mode():
    net_g = dcgan.Generator(tiny_config())
    net_g.train()
    a = gan.sample(net_g, 4, generator=torch.Generator().manual_seed(1))
    b = gan.sample(net_g, 4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    one = gan.sample(net_g, z=torch.randn(1, 8, generator=torch.Generator().manual_seed(2)))
    assert net_g.training  # the mode is restored
    torch.testing.assert_close(one[0], gan.sample(net_g, z=torch.cat([torch.randn(1, 8, generator=torch.Generator()
                               .manual_seed(2)), torch.randn(3, 8)]))[0], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="either n"):
        gan.sample(net_g)


# ---------------------------------------------------------------- interpolation and inversion
def test_interpolation_endpoints_and_norm():
    gen = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(16, generator=gen), torch.randn(16, generator=gen)
    for fn in (gan_edit.lerp, gan_edit.slerp):
        torch.testing.assert_close(fn(z0, z1, 0.0), z0)
        torch.testing.assert_close(fn(z0, z1, 1.0), z1)
    z1 = z1 * z0.norm() / z1.norm()  # equal norms: slerp stays on the sphere, lerp cuts inside
    path = gan_edit.interpolate(z0, z1, 9, "slerp")
    assert path.shape == (9, 16)
    torch.testing.assert_close(path.norm(dim=1), z0.norm().expand(9))
    assert gan_edit.lerp(z0, z1, 0.5).norm() < 0.95 * z0.norm()
    torch.testing.assert_close(gan_edit.slerp(z0, z0, 0.3), z0)  # parallel codes: no NaN
    with pytest.raises(ValueError, match="lerp, slerp"):
        gan_edit.interpolate(z0, z1, 5, "cubic")


def test_inversion_reduces_reconstruction_error():
    torch.manual_seed(0)
    net_g = dcgan.Generator(tiny_config())
    net_g.apply(dcgan.dcgan_init)
    before = [p.clone() for p in net_g.parameters()]
    target = gan.sample(net_g, z=torch.randn(2, 8))
    result = gan_edit.invert(net_g, target, num_steps=40, lr=0.1, num_starts=4,
                             generator=torch.Generator().manual_seed(0))
    assert result.z.shape == (2, 8) and result.images.shape == (2, 1, 28, 28) and result.error.shape == (2,)
    # an untrained G draws nearly the same image for every z, so judge the optimization against its own start
    assert result.history[-1] < 0.5 * result.history[0]
    assert all(torch.equal(a, b) for a, b in zip(before, net_g.parameters()))  # G was not changed
    frames = gan_edit.morph(net_g, result.z[0], result.z[1], num_steps=5)
    assert frames.shape == (5, 1, 28, 28)
    torch.testing.assert_close(frames[0], result.images[0], rtol=0, atol=1e-5)


# ---------------------------------------------------------------- the toy
def test_toy_gan_trains_and_is_reproducible(monkeypatch):
    monkeypatch.setenv("COURSE_PROGRESS", "0")
    points = gan_toy.ring_data(4000, generator=torch.Generator().manual_seed(0))
    assert gan_toy.mode_coverage(points) == 8 and gan_toy.mode_coverage(torch.zeros(100, 2)) == 0

    def train():
        return gan_toy.train_toy_gan(gan_toy.ToyGANConfig(batch_size=64), budget=Budget(max_steps=20),
                                     generator=torch.Generator().manual_seed(0))

    toy = train()
    step, points, field = toy.snapshots[-1]
    assert step == toy.history["step"][-1] == 20 and points.shape == (1000, 2) and field.shape == (60, 60)
    assert toy.history["loss_d"] == train().history["loss_d"]
    field = gan_toy.discriminator_field(toy.net_d, resolution=11)
    assert field.shape == (11, 11) and 0 <= field.min() <= field.max() <= 1
    with pytest.raises(ValueError, match="non_saturating, minimax"):
        gan_toy.ToyGANConfig(generator_loss="wgan")


def test_toy_pictures_budget_and_threads(monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_lib.runtime import get_profile

    monkeypatch.setenv("COURSE_PROGRESS", "0")
    assert gan_toy.toy_budget(get_profile("smoke")).max_steps <= 500  # smoke: seconds
    assert gan_toy.toy_budget(get_profile("quick")).max_steps >= gan_toy.toy_budget(get_profile("smoke")).max_steps
    threads = torch.get_num_threads()
    runs = {name: gan_toy.train_toy_gan(gan_toy.ToyGANConfig(batch_size=32, **kw), budget=Budget(max_steps=5),
                                        generator=torch.Generator().manual_seed(0))
            for name, kw in (("healthy", {}), ("D wins", {"d_steps": 2}))}
    assert torch.get_num_threads() == threads  # the toy's one-thread setting is restored
    fig = gan_toy.show_toy_runs(runs, real=gan_toy.ring_data(50))
    assert len(fig.axes) == 3 * len(runs) and fig.axes[0].get_ylabel() == "healthy"
    with pytest.raises(ValueError, match="at least one"):
        gan_toy.show_toy_runs({})
    fig = gan_toy.show_generator_losses(num_points=9)
    minimax, non_saturating = fig.axes[1].lines[:2]
    d_fake = minimax.get_xdata()
    # |d loss / d logit|: sigmoid(u) = D(G(z)) for minimax, 1 - D(G(z)) for the non-saturating loss
    torch.testing.assert_close(torch.as_tensor(minimax.get_ydata()), torch.as_tensor(d_fake), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.as_tensor(non_saturating.get_ydata()), 1 - torch.as_tensor(d_fake),
                               atol=1e-5, rtol=0)
    plt.close("all")


@pytest.fixture
def checks(monkeypatch):
    from course_lib.checks import gan as checks

    monkeypatch.delenv("COURSE_CHECKS_STRICT", raising=False)
    return checks


def test_loss_checks_pass_the_reference_with_one_verdict_each(checks, capsys):
    assert checks.check_discriminator_loss(gan.discriminator_loss)
    assert checks.check_generator_loss(gan.generator_loss)
    assert capsys.readouterr().out.count("correct") == 2  # one verdict per check


def test_discriminator_loss_check_catches_the_unstable_sigmoid_version(checks, capsys):
    assert not checks.check_discriminator_loss(  # through sigmoid: right on moderate logits, wrong at |u| = 60
        lambda r, f: -(torch.log(torch.sigmoid(r)).mean() + torch.log(1 - torch.sigmoid(f)).mean()))
    assert "confident" in capsys.readouterr().out


def test_generator_loss_check_catches_the_minimax_loss(checks, capsys):
    assert not checks.check_generator_loss(gan.minimax_generator_loss)
    assert "minimax" in capsys.readouterr().out


def test_conv_output_size_check_needs_the_transposed_case(checks):
    assert checks.check_conv_output_size(lambda n, k, s, p, t: (n - 1) * s - 2 * p + k if t else (n + 2 * p - k) // s + 1)
    assert not checks.check_conv_output_size(lambda n, k, s, p, t: (n + 2 * p - k) // s + 1)


def test_slerp_check_passes_slerp_and_catches_lerp(checks):
    assert checks.check_slerp(lambda z0, z1, t: gan_edit.slerp(z0, z1, t))
    assert not checks.check_slerp(lambda z0, z1, t: gan_edit.lerp(z0, z1, t))


# ---------------------------------------------------------------- command line
def _train_through_cli(folder, *flags: str):
    """(checkpoint, exit code) of `gan train --profile smoke FLAGS`, offline and without a progress bar."""
    from course_lib import commands as cli

    ckpt = folder / "g.pt"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COURSE_OFFLINE", "1")
        patch.setenv("COURSE_PROGRESS", "0")
        code = cli.main(["gan", "train", "--profile", "smoke", "--out", str(ckpt), *flags])
    return ckpt, code


@pytest.fixture(scope="module")
def cli_checkpoint(tmp_path_factory):
    """A 2-step smoke run, trained once through the CLI for the CLI tests; with its exit code."""
    return _train_through_cli(tmp_path_factory.mktemp("gan_cli"), "--steps", "2", "--device", "cpu")


@pytest.fixture
def cli(monkeypatch):
    from course_lib import commands

    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("COURSE_PROGRESS", "0")
    return commands


def test_cli_train_writes_the_checkpoint_and_its_record(cli_checkpoint):
    ckpt, code = cli_checkpoint
    assert code == 0
    assert ckpt.is_file() and ckpt.with_suffix(".json").is_file()


def test_cli_sample_writes_a_tensor_of_images_in_range(cli, cli_checkpoint, tmp_path):
    out = tmp_path / "s.pt"
    assert cli.main(["gan", "sample", "--checkpoint", str(cli_checkpoint[0]), "--n", "3", "--out", str(out)]) == 0
    samples = torch.load(out, weights_only=True)
    assert samples.shape == (3, 1, 32, 32) and samples.min() >= -1 and samples.max() <= 1


def test_cli_sample_writes_a_png_grid(cli, cli_checkpoint, tmp_path):
    png = tmp_path / "s.png"
    assert cli.main(["gan", "sample", "--checkpoint", str(cli_checkpoint[0]), "--n", "4", "--out", str(png)]) == 0
    assert png.stat().st_size > 0


def test_cli_sample_refuses_a_missing_checkpoint(cli, tmp_path):
    assert cli.main(["gan", "sample", "--checkpoint", str(tmp_path / "missing.pt"), "--n", "1",
                     "--out", str(tmp_path / "s.pt")]) == 2


SIZES = ["--latent-dim", "3", "--g-channels", "5", "--d-channels", "6"]


@pytest.fixture(scope="module")
def sized_checkpoint(tmp_path_factory):
    """A 1-step CLI run with the widths and latent size set on the command line; with its exit code."""
    return _train_through_cli(tmp_path_factory.mktemp("gan_cli_sizes"), "--steps", "1", *SIZES)


def test_cli_train_sets_the_widths_and_latent_size(sized_checkpoint):
    ckpt, code = sized_checkpoint
    assert code == 0
    config = gan.load_gan(ckpt).config
    assert (config.latent_dim, config.g_channels, config.d_channels) == (3, 5, 6)
    assert config.batch_size == gan.DCGANConfig().batch_size  # the other fields keep their defaults


def test_cli_train_records_the_sizes_in_the_command(sized_checkpoint):
    assert " ".join(SIZES) in json.loads(sized_checkpoint[0].with_suffix(".json").read_text())["command"]


def test_cli_train_refuses_sizes_on_resume(cli, sized_checkpoint, tmp_path, capsys):
    ckpt = sized_checkpoint[0]
    capsys.readouterr()
    assert cli.main(["gan", "train", "--steps", "1", "--out", str(tmp_path / "g.pt"), "--resume", str(ckpt),
                     "--g-channels", "5"]) == 2
    assert "--resume trains with the checkpoint's own config" in capsys.readouterr().err


def test_shipped_checkpoint_loads_as_a_run():
    path = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "gan_mnist.pt"
    if not path.is_file():
        pytest.skip("shipped checkpoint gan_mnist.pt missing")
    run = gan.load_gan(path)
    assert isinstance(run, gan.GANResult) and run.steps > 0 and run.seconds > 0 and run.history["step"]
