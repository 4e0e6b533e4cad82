"""Diffusion chapter: schedules, q_sample, the DDPM and DDIM schedulers, guidance, editing, checkpoints, CLI.

Tiny and exact (the diffusers test style): closed-form values on float64 schedules, an analytic "model" that
knows the true noise of Gaussian data, 8x8 U-Nets with a few channels, fixed seeds.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from course_lib import defaults, diffusion_edit, runtime, sampling, schedulers
from course_lib import diffusion as D
from course_lib.checks.diffusion import GaussianOracle  # the exact denoiser of Gaussian data
from course_lib.diffusion_edit import renoise
from course_lib.train import Budget, CheckpointError, save_checkpoint

T = 1000


def tiny_config(**overrides) -> D.DiffusionConfig:
    # the classic objective (eps, unweighted, the sampled x0) on pixels, whatever DiffusionConfig's defaults are
    values = dict(image_size=8, base_channels=8, channel_mults=(1, 2), attention_levels=(1,), batch_size=4,
                  warmup_steps=1, patch_size=1, prediction="eps", loss_weighting="none", target_estimate="sample")
    values.update(overrides)
    return D.DiffusionConfig(**values)


def tiny_model(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return D.build_model(tiny_config(**overrides)).eval()


# ---------------------------------------------------------------- schedules
@pytest.mark.parametrize("name", schedulers.BETA_SCHEDULES)
def test_schedules_are_float64_monotone_and_in_range(name):
    betas = schedulers.make_beta_schedule(name, T)
    alpha_bar = schedulers.alpha_bar_from_betas(betas)
    assert betas.dtype == alpha_bar.dtype == torch.float64 and betas.shape == (T,)
    assert (betas > 0).all() and (betas < 1).all()
    assert (betas[1:] >= betas[:-1]).all()  # noise added per step never shrinks
    assert (alpha_bar[1:] < alpha_bar[:-1]).all() and alpha_bar[0] < 1 and alpha_bar[-1] > 0
    assert alpha_bar[0] > 0.999 and alpha_bar[-1] < 1e-3  # starts clean, ends (almost) pure noise
    snr = schedulers.snr(alpha_bar)
    assert (snr[1:] < snr[:-1]).all()


def test_linear_schedule_matches_ho_et_al_and_cosine_closed_form():
    betas = schedulers.linear_beta_schedule(T)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    alpha_bar = schedulers.alpha_bar_from_betas(schedulers.cosine_beta_schedule(T))
    f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert alpha_bar[499].item() == pytest.approx(f(500) / f(0), rel=1e-9)


def test_linear_schedule_refuses_t_at_which_beta_reaches_1():
    # beta_T = 0.02 * 1000 / T: 1 at T = 20, so alpha_bar would be 0 (T = 20) or negative and NaN under sqrt (T < 20)
    smallest = schedulers.LINEAR_MIN_STEPS
    for bad in (10, smallest - 1):
        with pytest.raises(ValueError, match=rf"T >= {smallest}.*cosine"):
            schedulers.make_beta_schedule("linear", bad)
        with pytest.raises(ValueError, match=rf"T >= {smallest}"):
            schedulers.DDPMScheduler(bad, "linear")
    alpha_bar = schedulers.alpha_bar_from_betas(schedulers.make_beta_schedule("linear", smallest))
    assert torch.isfinite(alpha_bar).all() and (alpha_bar > 0).all() and (alpha_bar <= 1).all()
    assert torch.isfinite(schedulers.alpha_bar_from_betas(schedulers.make_beta_schedule("cosine", 10))).all()


def test_unknown_schedule_and_bad_length_raise():
    with pytest.raises(ValueError, match="linear, cosine"):
        schedulers.make_beta_schedule("quadratic", T)
    with pytest.raises(ValueError, match=">= 2"):
        schedulers.make_beta_schedule("cosine", 1)


# ---------------------------------------------------------------- q_sample
def test_q_sample_statistics_match_closed_form():
    alpha_bar = schedulers.alpha_bar_from_betas(schedulers.cosine_beta_schedule(T))
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1, 2, 2), 0.7)
    for t in (0, 300, 700):
        noise = torch.randn(x0.shape, generator=gen)
        xt = schedulers.q_sample(x0, torch.full((x0.shape[0],), t), alpha_bar=alpha_bar, noise=noise)
        ab = alpha_bar[t].item()
        assert xt.mean().item() == pytest.approx(math.sqrt(ab) * 0.7, abs=0.01)
        assert xt.var().item() == pytest.approx(1 - ab, abs=0.01 + 0.02 * (1 - ab))


def test_add_noise_is_q_sample_and_does_not_touch_inputs():
    scheduler = schedulers.DDPMScheduler(T, "linear")
    x0, noise = torch.rand(3, 1, 8, 8) * 2 - 1, torch.randn(3, 1, 8, 8)
    copies = x0.clone(), noise.clone()
    t = torch.tensor([0, 10, 999])
    out = scheduler.add_noise(x0, noise, t)
    ab = scheduler.alpha_bar[t].float().reshape(-1, 1, 1, 1)
    torch.testing.assert_close(out, ab.sqrt() * x0 + (1 - ab).sqrt() * noise)
    assert torch.equal(x0, copies[0]) and torch.equal(noise, copies[1])


# ---------------------------------------------------------------- schedulers
def test_ddpm_posterior_variance_is_zero_at_t0_and_closed_form_elsewhere():
    scheduler = schedulers.DDPMScheduler(T, "linear")
    x, out = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    _, std0, _ = scheduler.step_distribution(out, 0, x)
    assert float(std0) == 0.0
    t = 500
    _, std, _ = scheduler.step_distribution(out, t, x)
    ab, ab_prev, beta = scheduler.alpha_bar[t], scheduler.alpha_bar[t - 1], scheduler.betas[t]
    assert float(std) ** 2 == pytest.approx(((1 - ab_prev) / (1 - ab) * beta).item(), rel=1e-5)


def test_ddpm_posterior_mean_is_eq7():
    scheduler = schedulers.DDPMScheduler(T, "cosine", prediction="x0")
    x0, x = torch.rand(2, 1, 8, 8) * 2 - 1, torch.randn(2, 1, 8, 8)
    t = 321
    mean, _, x0_pred = scheduler.step_distribution(x0, t, x)
    ab, ab_prev, beta, alpha = (scheduler.alpha_bar[t], scheduler.alpha_bar[t - 1], scheduler.betas[t],
                                scheduler.alphas[t])
    expected = ab_prev.sqrt() * beta / (1 - ab) * x0.double() + alpha.sqrt() * (1 - ab_prev) / (1 - ab) * x.double()
    torch.testing.assert_close(mean.double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x0_pred, x0)


def test_ddim_eta0_is_deterministic():
    model = tiny_model()
    scheduler = schedulers.DDIMScheduler(T, "cosine", eta=0.0)
    noise = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    a = sampling.sample(model, scheduler, xt=noise, num_steps=5, generator=torch.Generator().manual_seed(1))
    b = sampling.sample(model, scheduler, xt=noise, num_steps=5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    c = sampling.sample(model, schedulers.DDIMScheduler(T, "cosine", eta=1.0), xt=noise, num_steps=5,
                 generator=torch.Generator().manual_seed(2))
    assert not torch.equal(a, c)  # eta = 1 adds noise


@pytest.mark.parametrize("prediction", schedulers.PREDICTIONS)
def test_ddim_eta1_over_all_steps_is_the_ddpm_step(prediction):
    ddpm = schedulers.DDPMScheduler(T, "linear", prediction=prediction)
    ddim = schedulers.DDIMScheduler(T, "linear", eta=1.0, prediction=prediction)
    gen = torch.Generator().manual_seed(0)
    x, out = torch.randn(2, 1, 8, 8, generator=gen), torch.randn(2, 1, 8, 8, generator=gen) * 0.3
    for t in (999, 500, 10, 1, 0):
        m1, s1, x01 = ddpm.step_distribution(out, t, x)
        m2, s2, x02 = ddim.step_distribution(out, t, x)
        torch.testing.assert_close(m1, m2, rtol=1e-4, atol=1e-5)
        assert float(s1) == pytest.approx(float(s2), rel=1e-5, abs=1e-8)
        torch.testing.assert_close(x01, x02)
    step1 = ddpm.step(out, 500, x, generator=torch.Generator().manual_seed(3))[0]
    step2 = ddim.step(out, 500, x, generator=torch.Generator().manual_seed(3))[0]
    torch.testing.assert_close(step1, step2, rtol=1e-4, atol=1e-5)


def test_set_timesteps_linspace_spacing_and_errors():
    scheduler = schedulers.DDIMScheduler(T)
    scheduler.set_timesteps(50)  # diffusers' "linspace": round(linspace(0, T - 1, n)) reversed; "trailing" ends at 19
    grid = scheduler.timesteps.tolist()
    assert grid[:3] == [999, 979, 958] and grid[-3:] == [41, 20, 0] and len(set(grid)) == 50
    scheduler.set_timesteps(4)
    assert scheduler.timesteps.tolist() == [999, 666, 333, 0]
    assert [scheduler.previous_timestep(t) for t in (999, 666, 333, 0)] == [666, 333, 0, -1]
    scheduler.set_timesteps(T)
    assert scheduler.timesteps.tolist() == list(range(T - 1, -1, -1))
    with pytest.raises(ValueError, match=r"\[1, 1000\]"):
        scheduler.set_timesteps(T + 1)
    scheduler.set_timesteps(3)
    with pytest.raises(ValueError, match="set_timesteps"):
        scheduler.step(torch.zeros(1, 1, 2, 2), 5, torch.zeros(1, 1, 2, 2))  # 5 is not one of the 3 steps


def test_unknown_sampler_prediction_and_eta_raise():
    with pytest.raises(ValueError, match="ddpm, ddim"):
        schedulers.scheduler_for(tiny_config(), "euler")
    with pytest.raises(ValueError, match="eps, x0, v"):
        D.DiffusionConfig(prediction="score")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        schedulers.DDIMScheduler(T, eta=1.5)
    with pytest.raises(ValueError, match="DDIM setting"):
        schedulers.scheduler_for(tiny_config(), "ddpm", eta=0.5)
    with pytest.raises(ValueError, match="cosine"):
        D.DiffusionConfig(beta_schedule="sigmoid")


@pytest.mark.parametrize("sampler, steps", [("ddpm", 200), ("ddim", 50)])
@pytest.mark.parametrize("prediction", schedulers.PREDICTIONS)
def test_samplers_recover_gaussian_data_with_an_analytic_model(sampler, steps, prediction):
    """With the exact denoiser of N(mu, s^2) data, both samplers must produce N(mu, s^2)."""
    mu, s = 0.3, 0.2
    scheduler = schedulers.scheduler_for(tiny_config(num_train_timesteps=T, prediction=prediction), sampler)
    oracle = GaussianOracle(scheduler.alpha_bar, mu, s, prediction)
    x = sampling.sample(oracle, scheduler, n=2000, num_steps=steps, image_size=2,
                        generator=torch.Generator().manual_seed(0))
    assert x.mean().item() == pytest.approx(mu, abs=0.01)
    assert x.std().item() == pytest.approx(s, rel=0.08)


def test_sampling_is_reproducible_with_a_generator():
    model = tiny_model()
    scheduler = schedulers.DDPMScheduler(T)
    a = sampling.sample(model, scheduler, n=2, num_steps=3, image_size=8, generator=torch.Generator().manual_seed(5))
    b = sampling.sample(model, scheduler, n=2, num_steps=3, image_size=8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == (2, 1, 8, 8) and a.min() >= -1 and a.max() <= 1


# ---------------------------------------------------------------- guidance
def test_guidance_w0_is_unconditional_and_w1_is_conditional():
    model = tiny_model(num_classes=10)
    with torch.no_grad():  # a fresh U-Net outputs 0 (zero-initialized last layers): perturb it so labels matter
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    xt, t, labels = torch.randn(3, 1, 8, 8), torch.tensor([5, 500, 900]), torch.tensor([1, 7, 3])
    null = torch.full_like(labels, 10)
    with torch.no_grad():
        out_u, out_c = model(xt, t, null), model(xt, t, labels)
        assert not torch.allclose(out_u, out_c)
        torch.testing.assert_close(sampling.guided_output(model, xt, t, labels, 0.0), out_u, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(sampling.guided_output(model, xt, t, labels, 1.0), out_c, rtol=1e-4, atol=1e-5)
        w3 = sampling.guided_output(model, xt, t, labels, 3.0)
        torch.testing.assert_close(w3, out_u + 3 * (out_c - out_u), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model(xt, t), out_u)  # no labels = the null label


def _perturbed(seed: int, **overrides) -> torch.nn.Module:
    model = tiny_model(**overrides)
    with torch.no_grad():  # a fresh U-Net outputs 0 (zero-initialized last layers): make each one differ
        generator = torch.Generator().manual_seed(seed)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    return model


def test_autoguidance_w1_is_the_model_w0_the_weak_one_and_linear_between():
    model, weak = _perturbed(1), _perturbed(2)
    xt, t = torch.randn(3, 1, 8, 8), torch.tensor([5, 500, 900])
    with torch.no_grad():
        out, out_weak = model(xt, t), weak(xt, t)
        assert not torch.allclose(out, out_weak)
        torch.testing.assert_close(sampling.AutoGuidance(model, weak, 1.0)(xt, t), out)
        torch.testing.assert_close(sampling.AutoGuidance(model, weak, 0.0)(xt, t), out_weak)
        torch.testing.assert_close(sampling.AutoGuidance(model, weak, 3.0)(xt, t), out_weak + 3 * (out - out_weak))
    alpha_bar = schedulers.DDIMScheduler(T).alpha_bar
    sigma = ((1 - alpha_bar) / alpha_bar).sqrt()  # increasing in t
    t = torch.tensor([int((sigma < 0.3).sum()) - 1, 500, int((sigma <= 20).sum())])  # below, inside, above [0.3, 20]
    assert sigma[t[0]] < 0.3 and 0.3 <= sigma[t[1]] <= 20 and sigma[t[2]] > 20
    with torch.no_grad():
        out, out_weak = model(xt, t), weak(xt, t)
        within = sampling.AutoGuidance(model, weak, 3.0, interval=(0.3, 20.0), alpha_bar=alpha_bar)(xt, t)
        torch.testing.assert_close(within[[0, 2]], out[[0, 2]])  # outside the interval: the model alone
        torch.testing.assert_close(within[1], out_weak[1] + 3 * (out[1] - out_weak[1]))
    with pytest.raises(ValueError, match="alpha_bar"):
        sampling.AutoGuidance(model, weak, 2.0, interval=(0.3, 20.0))
    guided = D.autoguided(model, weak, tiny_config())
    assert guided.guidance == defaults.AUTOGUIDANCE and guided.interval == defaults.AUTOGUIDANCE_INTERVAL
    samples = sampling.sample(guided, schedulers.DDIMScheduler(T), n=2, num_steps=3, image_size=8,
                       generator=torch.Generator().manual_seed(0))  # a wrapper is a model for the sampling loop
    assert samples.shape == (2, 1, 8, 8) and samples.abs().max() <= 1
    with pytest.raises(ValueError, match="autoguidance scale"):
        sampling.AutoGuidance(model, weak, -1.0)


def test_labels_out_of_range_or_on_unconditional_model_raise():
    conditional, plain = tiny_model(num_classes=10), tiny_model()
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        sampling.sample(conditional, schedulers.DDIMScheduler(T), n=2, num_steps=2, image_size=8, labels=10)
    with pytest.raises(ValueError, match="unconditional"):
        sampling.sample(plain, schedulers.DDIMScheduler(T), n=2, num_steps=2, image_size=8, labels=3)
    with pytest.raises(ValueError, match="unconditional"):
        plain(torch.zeros(1, 1, 8, 8), torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long))


def test_drop_labels_uses_the_null_label_at_rate_p():
    labels = torch.arange(10).repeat(1000)
    dropped = D.drop_labels(labels, 0.2, 10, torch.Generator().manual_seed(0))
    rate = (dropped == 10).double().mean().item()
    assert rate == pytest.approx(0.2, abs=0.02)
    kept = dropped != 10
    assert torch.equal(dropped[kept], labels[kept]) and labels.max() == 9  # input untouched


# ---------------------------------------------------------------- loss and training
@pytest.mark.parametrize("prediction", schedulers.PREDICTIONS)
def test_min_snr_weights_equal_min_snr_gamma_on_x0_error(prediction):
    config = tiny_config(prediction=prediction, loss_weighting="min_snr", min_snr_gamma=5.0)
    alpha_bar = torch.tensor([0.999, 0.9, 0.5, 0.01], dtype=torch.float64)
    snr = alpha_bar / (1 - alpha_bar)
    to_x0 = {"eps": snr, "v": snr + 1, "x0": torch.ones_like(snr)}[prediction]  # ||out error||^2 per ||x0 error||^2
    torch.testing.assert_close(D.loss_weight(alpha_bar, config) * to_x0, snr.clamp(max=5.0))


def test_diffusion_loss_is_zero_for_the_exact_denoiser_of_a_point():
    """Data = one image c: the exact eps is (x_t - sqrt(ab) c) / sqrt(1 - ab), so the loss vanishes."""
    config = tiny_config(prediction="eps", beta_schedule="linear")
    scheduler = schedulers.scheduler_for(config)
    c = torch.full((4, 1, 8, 8), 0.5)

    def exact(xt, t, labels=None):
        ab = scheduler.alpha_bar[t].float().reshape(-1, 1, 1, 1)
        return (xt - ab.sqrt() * c) / (1 - ab).sqrt()

    loss = D.diffusion_loss(exact, c, scheduler, config, generator=torch.Generator().manual_seed(0))
    assert loss.item() < 1e-8
    wrong = D.diffusion_loss(lambda xt, t, labels=None: torch.zeros_like(xt), c, scheduler, config)
    assert wrong.item() == pytest.approx(1.0, abs=0.1)  # predicting 0 for N(0, I) noise costs E[eps^2] = 1


def test_empirical_posterior_is_bayes_rule_over_the_reference_images():
    gen = torch.Generator().manual_seed(0)
    reference = torch.rand(30, 1, 4, 4, generator=gen) * 2 - 1
    ref_labels = torch.arange(30) % 3
    xt, ab = torch.randn(3, 1, 4, 4, generator=gen), torch.tensor([0.9, 0.5, 0.05])
    mean = D.empirical_posterior_x0(xt, ab, reference)
    for b in range(3):  # brute force: weights proportional to the Gaussian likelihood N(x_t; sqrt(ab) x_i, 1 - ab)
        d2 = ((xt[b] - ab[b].sqrt() * reference) ** 2).flatten(1).sum(1).double()
        w = torch.softmax(-d2 / (2 * (1 - ab[b].double())), 0)
        torch.testing.assert_close(mean[b].double(), (w[:, None, None, None] * reference.double()).sum(0),
                                   rtol=1e-4, atol=1e-5)
    labels = torch.tensor([1, 10, 2])  # 10 = the null label: every image counts
    conditional = D.empirical_posterior_x0(xt, ab, reference, labels=labels, reference_labels=ref_labels, null_label=10)
    torch.testing.assert_close(conditional[1], mean[1])
    only_ones = D.empirical_posterior_x0(xt[:1], ab[:1], reference[ref_labels == 1])
    torch.testing.assert_close(conditional[:1], only_ones)
    clean = D.empirical_posterior_x0(reference[:2] * 0.99999 ** 0.5, torch.tensor([0.99999] * 2), reference)
    torch.testing.assert_close(clean, reference[:2], rtol=0, atol=1e-5)  # at low noise: the image itself


def test_stf_loss_needs_the_reference_and_matches_sample_loss_at_low_noise():
    config = tiny_config(target_estimate="stf", prediction="x0")
    scheduler = schedulers.scheduler_for(config)
    x0 = torch.rand(4, 1, 8, 8) * 2 - 1
    model = tiny_model()
    with pytest.raises(ValueError, match="reference"):
        D.diffusion_loss(model, x0, scheduler, config)
    loss = D.diffusion_loss(model, x0, scheduler, config, reference=x0, generator=torch.Generator().manual_seed(0))
    assert math.isfinite(loss.item())


def test_train_diffusion_tiny_run_logs_and_leaves_inputs_alone():
    config = tiny_config(num_classes=10)
    images, labels = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    before = images.clone()
    seen = []
    result = D.train_diffusion(config, images, labels, budget=Budget(max_steps=3), log_every=1,
                               generator=torch.Generator().manual_seed(0), callback=lambda run: seen.append(run.steps),
                               progress=False)
    assert result.steps == 3 and seen == [1, 2, 3] and result.history["step"] == [1, 2, 3]
    assert torch.equal(images, before)
    assert all(math.isfinite(v) for v in result.history["loss"])
    with pytest.raises(ValueError, match="labels"):
        D.train_diffusion(config, images, budget=Budget(max_steps=1), progress=False)


def test_callback_sees_the_run_with_steps_history_and_ema_model_current():
    """callback(run), as train_gan's: the run's steps and history are those of the step just logged."""
    seen = []

    def callback(run):
        seen.append((run.steps, run.history["step"][-1], len(run.history["loss"]), run.seconds > 0))
        assert isinstance(run.ema_model, torch.nn.Module) and not run.ema_model.training

    D.train_diffusion(tiny_config(), torch.rand(8, 1, 8, 8), budget=Budget(max_steps=4), log_every=2,
                      generator=torch.Generator().manual_seed(0), callback=callback, progress=False)
    assert seen == [(1, 1, 1, True), (2, 2, 2, True), (4, 4, 3, True)]


def test_resume_refuses_a_config_that_differs_from_the_checkpoint(tmp_path):
    path = tmp_path / "d.pt"
    D.train_diffusion(tiny_config(), torch.rand(8, 1, 8, 8), budget=Budget(max_steps=1), checkpoint=path,
                      progress=False)
    with pytest.raises(CheckpointError, match=r"\['base_channels', 'lr'\] differ.*load_diffusion\(path\)\.config"):
        D.train_diffusion(tiny_config(base_channels=4, lr=1e-2), torch.rand(8, 1, 8, 8), budget=Budget(max_steps=1),
                          resume=path, progress=False)


def test_training_keeps_the_weak_model_of_autoguidance_and_the_checkpoint_round_trips_it(tmp_path):
    config = tiny_config(weak_model_at=0.5, lr=1e-2)
    path = tmp_path / "d.pt"
    result = D.train_diffusion(config, torch.rand(16, 1, 8, 8), budget=Budget(max_steps=6), checkpoint=path,
                               generator=torch.Generator().manual_seed(0), progress=False)
    assert result.weak_model is not None and not result.weak_model.training
    xt, t = torch.randn(2, 1, 8, 8), torch.tensor([10, 700])
    with torch.no_grad():
        assert not torch.allclose(result.weak_model(xt, t), result.ema_model(xt, t))  # taken at step 3, not 6
        loaded = D.load_diffusion(path)
        torch.testing.assert_close(loaded.weak_model(xt, t), result.weak_model(xt, t), rtol=0, atol=0)
        torch.testing.assert_close(loaded.autoguided(2.0)(xt, t), result.autoguided(2.0)(xt, t), rtol=0, atol=0)
    none = D.train_diffusion(tiny_config(weak_model_at=None), torch.rand(8, 1, 8, 8), budget=Budget(max_steps=1),
                             progress=False)
    assert none.weak_model is None
    with pytest.raises(ValueError, match="weak model"):
        none.autoguided()
    with pytest.raises(ValueError, match="weak_model_at"):
        tiny_config(weak_model_at=1.5)


def test_training_stops_on_nan():
    config = tiny_config(lr=1e30, grad_clip=1e30, warmup_steps=1)
    with pytest.raises(Exception, match="became"):
        D.train_diffusion(config, torch.rand(8, 1, 8, 8), budget=Budget(max_steps=30), log_every=1,
                          generator=torch.Generator().manual_seed(0), progress=False)


def test_float16_training_steps_through_the_grad_scaler(monkeypatch):
    """As on a T4: float16 autocast (forced on this CPU, whose autocast supports float16 convolutions) with a
    GradScaler that unscales before clipping and steps once per step; the weights move and stay finite."""
    monkeypatch.setattr(runtime, "amp_dtype", lambda device: torch.float16)
    calls = []
    for name in ("unscale_", "step", "update"):
        method = getattr(torch.amp.GradScaler, name)

        def spied(self, *args, _name=name, _method=method, **kwargs):
            calls.append((_name, self.is_enabled()))
            return _method(self, *args, **kwargs)

        monkeypatch.setattr(torch.amp.GradScaler, name, spied)
    config = tiny_config()
    torch.manual_seed(0)
    start = D.DiffusionResult(D.build_model(config), D.build_model(config), config)
    before = [p.detach().clone() for p in start.model.parameters()]
    result = D.train_diffusion(config, torch.rand(8, 1, 8, 8), budget=Budget(max_steps=2), resume=start,
                               generator=torch.Generator().manual_seed(0), progress=False)
    assert calls == [("unscale_", True), ("step", True), ("update", True)] * 2
    assert all(math.isfinite(v) for v in result.history["loss"])
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(before, result.model.parameters()))


def test_float16_training_still_stops_on_nan(monkeypatch):
    monkeypatch.setattr(runtime, "amp_dtype", lambda device: torch.float16)
    config = tiny_config(lr=1e30, grad_clip=1e30, warmup_steps=1)
    with pytest.raises(Exception, match="became"):
        D.train_diffusion(config, torch.rand(8, 1, 8, 8), budget=Budget(max_steps=30), log_every=1,
                          generator=torch.Generator().manual_seed(0), progress=False)


# ---------------------------------------------------------------- editing
def test_inpainting_keeps_known_pixels_exactly():
    model = tiny_model()
    image = torch.rand(2, 1, 8, 8) * 2 - 1
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, :4] = 1  # left half known
    for resample in (1, 2):
        out = diffusion_edit.inpaint(model, schedulers.DDIMScheduler(T), image, mask, num_steps=4, resample=resample,
                        generator=torch.Generator().manual_seed(0))
        assert out.shape == image.shape
        assert torch.equal(out[..., :4], image[..., :4])
        assert not torch.equal(out[..., 4:], image[..., 4:])


def test_renoise_undoes_a_step_in_distribution():
    scheduler = schedulers.DDPMScheduler(T, "linear")
    scheduler.set_timesteps(10)
    t = int(scheduler.timesteps[3])
    prev = scheduler.previous_timestep(t)
    x_prev = torch.full((200000, 1, 1, 1), 0.5)
    xt = renoise(x_prev, t, scheduler, torch.Generator().manual_seed(0))
    ratio = (scheduler.alpha_bar[t] / scheduler.alpha_bar[prev]).item()
    assert xt.mean().item() == pytest.approx(math.sqrt(ratio) * 0.5, abs=0.01)
    assert xt.var().item() == pytest.approx(1 - ratio, rel=0.02)


def test_sdedit_strength_bounds():
    model = tiny_model()
    image = torch.rand(1, 1, 8, 8) * 2 - 1
    scheduler = schedulers.DDIMScheduler(T)
    assert torch.equal(diffusion_edit.sdedit(model, scheduler, image, strength=0.0, num_steps=4), image)
    out = diffusion_edit.sdedit(model, scheduler, image, strength=0.5, num_steps=4,
                                generator=torch.Generator().manual_seed(0))
    assert out.shape == image.shape and not torch.equal(out, image)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
            diffusion_edit.sdedit(model, schedulers.DDIMScheduler(T), image, strength=bad)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        diffusion_edit.sdedit(model, schedulers.DDIMScheduler(T), image * 255, strength=0.5)


# ---------------------------------------------------------------- checkpoints and the CLI
@pytest.fixture
def saved_run(tmp_path):
    """A v-prediction class-conditional tiny model saved at step 7, and the model itself."""
    config = tiny_config(num_classes=10, prediction="v")
    model = tiny_model(num_classes=10, prediction="v")
    history = {"step": [7], "loss": [0.5], "seconds": [1.0]}
    path = D.save_diffusion(tmp_path / "m.pt", D.DiffusionResult(model, model, config, history, steps=7, seconds=1.5))
    return path, model, config, history


def test_checkpoint_round_trip_keeps_config_steps_history_and_weights(saved_run):
    path, model, config, history = saved_run
    loaded = D.load_diffusion(path)
    assert loaded.config == config and (loaded.steps, loaded.seconds, loaded.history) == (7, 1.5, history)
    assert loaded.weak_model is None and not loaded.ema_model.training
    xt, t, y = torch.randn(2, 1, 8, 8), torch.tensor([1, 900]), torch.tensor([2, 10])
    with torch.no_grad():
        torch.testing.assert_close(loaded.ema_model(xt, t, y), model(xt, t, y), rtol=0, atol=0)


def test_resume_from_a_checkpoint_path_continues_its_step_count(saved_run):
    path, _, config, _ = saved_run
    more = D.train_diffusion(config, torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,)), budget=Budget(max_steps=1),
                             resume=path, progress=False)  # a path resumes as the loaded run does
    assert more.steps == 8


def test_load_diffusion_refuses_a_checkpoint_of_another_kind(tmp_path):
    save_checkpoint(tmp_path / "gan.pt", kind="dcgan", config={"z": 1}, state={})
    with pytest.raises(CheckpointError, match="'dcgan'"):
        D.load_diffusion(tmp_path / "gan.pt")


@pytest.fixture(scope="module")
def cli_checkpoints(tmp_path_factory):
    """One conditional and one unconditional 2-step run, trained once through the CLI for every CLI test."""
    from course_lib import commands as cli

    folder = tmp_path_factory.mktemp("diffusion_cli")
    cond, uncond = folder / "d.pt", folder / "u.pt"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COURSE_OFFLINE", "1")
        patch.setenv("COURSE_PROGRESS", "0")
        codes = (cli.main(["diffusion", "train", "--profile", "smoke", "--steps", "2", "--out", str(cond),
                           "--conditional", "--device", "cpu"]),
                 cli.main(["diffusion", "train", "--profile", "smoke", "--steps", "2", "--out", str(uncond),
                           "--device", "cpu"]))
    return {"cond": cond, "uncond": uncond, "codes": codes}


@pytest.fixture
def cli(monkeypatch):
    from course_lib import commands

    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("COURSE_PROGRESS", "0")
    return commands


def test_cli_train_writes_the_checkpoint_and_its_record(cli_checkpoints):
    assert cli_checkpoints["codes"] == (0, 0)
    for ckpt in (cli_checkpoints["cond"], cli_checkpoints["uncond"]):
        assert ckpt.is_file() and ckpt.with_suffix(".json").is_file()


def test_cli_sample_with_a_label_and_guidance_draws_images_in_range(cli, cli_checkpoints, tmp_path):
    out = tmp_path / "s.pt"
    assert cli.main(["diffusion", "sample", "--checkpoint", str(cli_checkpoints["cond"]), "--steps", "2", "--n", "3",
                     "--label", "4", "--guidance", "2", "--out", str(out), "--device", "cpu"]) == 0
    samples = torch.load(out, weights_only=True)
    assert samples.shape == (3, 1, 28, 28) and samples.min() >= -1 and samples.max() <= 1


def test_cli_sample_refuses_more_steps_than_t(cli, cli_checkpoints, tmp_path):
    assert cli.main(["diffusion", "sample", "--checkpoint", str(cli_checkpoints["cond"]), "--steps", "1001", "--n", "1",
                     "--out", str(tmp_path / "s.pt")]) == 2  # more steps than T: a clear error, exit code 2


def test_cli_sample_refuses_a_label_out_of_range(cli, cli_checkpoints, tmp_path):
    assert cli.main(["diffusion", "sample", "--checkpoint", str(cli_checkpoints["cond"]), "--steps", "2", "--n", "1",
                     "--label", "12", "--out", str(tmp_path / "s.pt")]) == 2


def test_cli_sample_unconditional_guidance_autoguides_by_the_stored_weak_model(cli, cli_checkpoints, tmp_path):
    out = tmp_path / "s.pt"
    assert cli.main(["diffusion", "sample", "--checkpoint", str(cli_checkpoints["uncond"]), "--steps", "2", "--n", "2",
                     "--guidance", "3", "--out", str(out), "--device", "cpu"]) == 0
    assert torch.load(out, weights_only=True).shape == (2, 1, 28, 28)


def test_cli_sample_autoguides_by_default_and_guidance_1_is_the_model_alone(cli, cli_checkpoints, tmp_path):
    out, drawn = tmp_path / "s.pt", {}
    for guidance in (None, "1"):
        assert cli.main(["diffusion", "sample", "--checkpoint", str(cli_checkpoints["uncond"]), "--steps", "2", "--n",
                         "2", "--out", str(out), "--device", "cpu"] + (["--guidance", guidance] if guidance else [])) == 0
        drawn[guidance] = torch.load(out, weights_only=True)
    assert not torch.equal(drawn[None], drawn["1"])


def test_cli_sample_refuses_guidance_on_an_old_checkpoint_without_a_weak_model(cli, cli_checkpoints, tmp_path):
    run = D.load_diffusion(cli_checkpoints["uncond"])
    run.weak_model = None
    old = D.save_diffusion(tmp_path / "old.pt", run)  # as an older checkpoint, without the weak model
    assert cli.main(["diffusion", "sample", "--checkpoint", str(old), "--steps", "2", "--n", "2",
                     "--guidance", "3", "--out", str(tmp_path / "s.pt")]) == 2


# ---------------------------------------------------------------- the notebook's self-checks
def _solutions():
    def q_sample(x0, t, alpha_bar, noise):
        ab = alpha_bar[t].float().reshape(-1, 1, 1, 1)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def posterior_mean(x0, xt, t, alpha_bar):
        ab, ab_prev = alpha_bar[t].item(), alpha_bar[t - 1].item()
        alpha = ab / ab_prev
        return math.sqrt(ab_prev) * (1 - alpha) / (1 - ab) * x0 + math.sqrt(alpha) * (1 - ab_prev) / (1 - ab) * xt

    def eps_loss(model, x0, t, noise, alpha_bar):
        return (noise - model(q_sample(x0, t, alpha_bar, noise), t)).pow(2).mean()

    def ddim_step(eps, xt, t, t_prev, alpha_bar):
        ab, ab_prev = alpha_bar[t].item(), alpha_bar[t_prev].item()
        x0 = (xt - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
        return math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * eps

    def ddpm_sample(model, betas, x_T, z):  # written apart from the check's own loop, with float scalars
        alpha_bar, x = torch.cumprod(1 - betas, 0), x_T
        for t in reversed(range(len(betas))):
            ab, ab_prev = alpha_bar[t].item(), (alpha_bar[t - 1].item() if t else 1.0)
            beta = 1 - ab / ab_prev
            x0 = ((x - math.sqrt(1 - ab) * model(x, torch.full((len(x),), t))) / math.sqrt(ab)).clamp(-1, 1)
            mean = math.sqrt(ab_prev) * beta / (1 - ab) * x0 + math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab) * x
            x = mean + math.sqrt((1 - ab_prev) / (1 - ab) * beta) * z[t]
        return x

    def cfg(eps_uncond, eps_cond, w):
        return eps_uncond + w * (eps_cond - eps_uncond)

    return {"q_sample": q_sample, "posterior_mean": posterior_mean, "eps_loss": eps_loss, "ddim_step": ddim_step,
            "ddpm_sample": ddpm_sample, "cfg": cfg}


CHECKED = ["q_sample", "posterior_mean", "eps_loss", "ddim_step", "ddpm_sample", "cfg"]


@pytest.mark.parametrize("name", CHECKED)
def test_checks_pass_solutions_and_catch_mistakes(name, monkeypatch, capsys):
    from course_lib.checks import diffusion as checks

    monkeypatch.setenv("COURSE_CHECKS_STRICT", "0")
    check = getattr(checks, f"check_{name}")
    solution = _solutions()[name]
    assert check(solution) is True
    assert check(lambda *args: solution(*args) * 1.01) is False  # a small slip is caught

    def unfinished(*args):
        raise NotImplementedError("write it")

    assert check(unfinished) is False
    assert "not done yet. write it" in capsys.readouterr().out


def _noisy(x0, t, noise, alpha_bar, *, sqrt=True):
    ab = alpha_bar[t].float().reshape(-1, 1, 1, 1)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise if sqrt else ab * x0 + (1 - ab) * noise


EPS_LOSS_MISTAKES = {
    "compares the model's output with x0": lambda m, x0, t, n, ab: (x0 - m(_noisy(x0, t, n, ab), t)).pow(2).mean(),
    "compares the model's output with x_t":
        lambda m, x0, t, n, ab: (_noisy(x0, t, n, ab) - m(_noisy(x0, t, n, ab), t)).pow(2).mean(),
    "takes their square roots": lambda m, x0, t, n, ab: (n - m(_noisy(x0, t, n, ab, sqrt=False), t)).pow(2).mean(),
    "summed the squared errors over all images":
        lambda m, x0, t, n, ab: (n - m(_noisy(x0, t, n, ab), t)).pow(2).sum(),
    "summed the squared errors over each image's pixels":
        lambda m, x0, t, n, ab: (n - m(_noisy(x0, t, n, ab), t)).pow(2).sum(dim=(1, 2, 3)).mean(),
}


@pytest.mark.parametrize("words", EPS_LOSS_MISTAKES)
def test_eps_loss_check_names_the_mistake(words, monkeypatch, capsys):
    from course_lib.checks import diffusion as checks

    monkeypatch.setenv("COURSE_CHECKS_STRICT", "0")
    assert checks.check_eps_loss(EPS_LOSS_MISTAKES[words]) is False
    assert words in capsys.readouterr().out


def _ddpm_mistake(**mistake):
    from course_lib.checks.diffusion import _ddpm_loop

    return lambda model, betas, x_T, z: _ddpm_loop(model, betas, x_T, z, **mistake)


DDPM_MISTAKES = {
    "added noise at the last step": dict(variance="beta_everywhere"),
    "your variance is sigma_t^2 = beta_t": dict(variance="beta"),
    "you did not clip x0_hat": dict(clip=False),
    "alpha_bar[-1], Python's LAST entry": dict(wrap_at_0=True),
    "you ran the steps upwards": dict(steps=range(50)),
    "your loop stops before t = 0": dict(steps=range(49, 0, -1)),
    "your loop starts at t = T - 2": dict(steps=range(48, -1, -1)),
    "you used z[t - 1] at step t": dict(noise_shift=-1),
}


def test_the_ddpm_check_s_loop_is_the_scheduler_s_loop(monkeypatch, capsys):
    """Without a mistake, the check's own Algorithm 2 (which makes the mistakes) passes against DDPMScheduler."""
    from course_lib.checks import diffusion as checks

    monkeypatch.setenv("COURSE_CHECKS_STRICT", "0")
    assert checks.check_ddpm_sample(_ddpm_mistake()) is True


@pytest.mark.parametrize("words", DDPM_MISTAKES)
def test_ddpm_sample_check_names_the_mistake(words, monkeypatch, capsys):
    from course_lib.checks import diffusion as checks

    monkeypatch.setenv("COURSE_CHECKS_STRICT", "0")
    assert checks.check_ddpm_sample(_ddpm_mistake(**DDPM_MISTAKES[words])) is False
    assert words in capsys.readouterr().out


CFG_MISTAKES = {
    "you swapped the two outputs": lambda u, c, w: c + w * (u - c),
    "this is the paper's convention": lambda u, c, w: (1 + w) * c - w * u,
    "only the guidance direction": lambda u, c, w: w * (c - u),
}


@pytest.mark.parametrize("words", CFG_MISTAKES)
def test_cfg_check_names_the_mistake(words, monkeypatch, capsys):
    from course_lib.checks import diffusion as checks

    monkeypatch.setenv("COURSE_CHECKS_STRICT", "0")
    assert checks.check_cfg(CFG_MISTAKES[words]) is False
    assert words in capsys.readouterr().out


def test_a_named_mistake_raises_in_strict_mode(monkeypatch):
    from course_lib.checks import CheckFailed
    from course_lib.checks import diffusion as checks

    monkeypatch.setenv("COURSE_CHECKS_STRICT", "1")
    with pytest.raises(CheckFailed, match="swapped"):
        checks.check_cfg(CFG_MISTAKES["you swapped the two outputs"])


def test_draw_strokes_and_half_mask():
    from course_lib.diffusion_edit import draw_strokes, half_mask

    image = draw_strokes([[(0.2, 0.5), (0.8, 0.5)]], size=10, width=2.0)
    assert image.shape == (1, 1, 10, 10) and image.min() >= -1 and image.max() <= 1
    assert image[0, 0, 5, 5] == 1 and image[0, 0, 0, 0] == -1  # on the horizontal line / far from it
    with pytest.raises(ValueError, match="polylines"):
        draw_strokes([[(0.1, 0.1)]])
    mask = half_mask(8, keep="top")
    assert mask[0, 0, :4].eq(1).all() and mask[0, 0, 4:].eq(0).all()
    with pytest.raises(ValueError, match="keep"):
        half_mask(8, keep="middle")


def test_cli_record_command_keeps_the_judge_flags():
    from course_lib.commands import build_parser
    from course_lib.commands.diffusion import train_command

    args = build_parser().parse_args(["diffusion", "train", "--out", "x.pt", "--steps", "5", "--conditional",
                                      "--judge", "100", "--judge-guidance", "2.0"])
    command = train_command(args)
    assert "--steps 5" in command and "--judge 100" in command and "--judge-guidance 2.0" in command
    assert command.endswith("--conditional")


def test_cli_sample_help_states_the_autoguidance_default(capsys):
    """The help reads the default scale from course_lib.defaults (no torch): it must state the code's."""
    from course_lib.commands import main
    with pytest.raises(SystemExit):
        main(["diffusion", "sample", "--help"])
    assert f"default{defaults.AUTOGUIDANCE};" in "".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("name", ["ddpm_mnist.pt", "ddpm_mnist_cond.pt", "ddpm_plain_mnist.pt"])
def test_shipped_checkpoints_load_as_runs(name):
    path = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / name
    if not path.is_file():
        pytest.skip(f"shipped checkpoint {name} missing")
    run = D.load_diffusion(path)
    assert isinstance(run, D.DiffusionResult) and run.steps > 0 and run.seconds > 0
    assert run.config.conditional == name.endswith("_cond.pt")
    assert not run.ema_model.training
    if "plain" in name:  # notebook 02's first model: the ablation's first rung, the paper's objective on pixels
        from course_lib.diffusion_ablation import ladder
        assert run.config == ladder()[0][1]


# ---------------------------------------------------------------- judging and the steps curve
def test_evaluate_scores_with_both_judges_and_records_the_sampler():
    model = D.build_model(D.DiffusionConfig()).eval()  # untrained: a blank U-Net, whatever it draws is judged
    scores = D.evaluate(model, D.DiffusionConfig(), n=20, num_steps=3, eta=1.0, seed=0, batch_size=10)
    for suffix in ("", "_second"):
        assert scores["fid" + suffix] >= 0 and 0 <= scores["recognizable" + suffix] <= 1
        assert 0 <= scores["classes" + suffix] <= 10
    assert (scores["n"], scores["sampler"], scores["steps"], scores["eta"]) == (20, "ddim", 3, 1.0)


def test_evaluate_is_reproducible_with_a_seed_and_samples_with_the_eta_asked_for(monkeypatch):
    model, config, asked = D.build_model(D.DiffusionConfig()).eval(), D.DiffusionConfig(), []
    real = D.scheduler_for
    monkeypatch.setattr(D, "scheduler_for", lambda *a, **k: asked.append(k.get("eta")) or real(*a, **k))
    run = lambda eta: D.evaluate(model, config, n=10, num_steps=3, eta=eta, seed=0)
    assert run(0.0)["fid"] == run(0.0)["fid"] and run(0.5)["eta"] == 0.5 and asked == [0.0, 0.0, 0.5]


def test_the_curve_keeps_each_step_count_and_its_tenth_as_the_weak_model():
    from course_lib.benchmarks.diffusion_curve import train_with_snapshots

    config = tiny_config(image_size=28, weak_model_at=0.1)
    result, snapshots = train_with_snapshots(config, torch.rand(16, 1, 28, 28), (10, 20), device="cpu",
                                             generator=torch.Generator().manual_seed(0))
    assert result.steps == 20 and set(snapshots) == {10, 20}
    (ema_10, weak_10, seconds_10), (ema_20, weak_20, seconds_20) = snapshots[10], snapshots[20]
    assert 0 < seconds_10 <= seconds_20 and ema_10 is not ema_20 and weak_10 is not weak_20
    changed = lambda a, b: any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert changed(ema_10, ema_20) and changed(weak_10, ema_10)  # copies at different steps differ
    assert torch.equal(next(ema_20.parameters()), next(result.ema_model.parameters()))


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_the_sample_command_runs_each_sampler_with_the_default_eta(tmp_path, sampler):
    from course_lib.commands import main

    path = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "ddpm_mnist.pt"
    out = tmp_path / "samples.pt"
    assert main(["diffusion", "sample", "--checkpoint", str(path), "--sampler", sampler, "--steps", "3", "--n", "2",
                 "--out", str(out), "--device", "cpu"]) == 0
    samples = torch.load(out, weights_only=True)
    assert samples.shape == (2, 1, 28, 28) and samples.abs().max() <= 1
