"""Chapter 05's 4x super-resolution: course_lib.super_resolution, the shared loop of course_lib.transform_training
and the `upscale` / `super-res train` commands. Tiny networks, 32-pixel crops and VGG19 cut after relu2_2 keep every
test to seconds."""
from __future__ import annotations

import json
import math

import pytest
import torch

from course_lib import photo_crops
from course_lib import super_resolution as SR
from course_lib.fast_style import FastStyleConfig, build_fast_style, load_fast_style, save_fast_style
from course_lib.perceptual import VGG19Features, content_loss
from course_lib.photo_crops import HELD_OUT, PhotoCrops
from course_lib.runtime import PROFILES, checkpoint_path
from course_lib.train import Budget, CheckpointError, TrainingDiverged
from course_lib.transform_net import TransformNet, TransformNetConfig


def tiny_config(**overrides) -> SR.SuperResConfig:
    values = dict(net=TransformNetConfig(channels=8, num_residual=1, upscale=4, norm="none"), image_size=32,
                  batch_size=2, lr=5e-3)
    return SR.SuperResConfig(**{**values, **overrides})


@pytest.fixture(scope="session")
def vgg():
    """The original VGG19 ("caffe") up to relu2_2, loaded once per session."""
    return VGG19Features("caffe", layers=("relu2_2",))


@pytest.fixture(scope="session")
def crops():
    """Crops of two training photos only: quick to load."""
    return PhotoCrops(32, photos=("cat", "rocket"))


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("COURSE_PROGRESS", "0")
    monkeypatch.setenv("COURSE_OFFLINE", "1")


def _train(config, crops, vgg, steps, *, seed=0, **kwargs):
    torch.manual_seed(seed)  # the network's initial weights; the generator draws the crops
    return SR.train_super_resolution(config, budget=Budget(max_steps=steps), photos=crops, vgg=vgg,
                                     generator=torch.Generator().manual_seed(seed), log_every=1, progress=False,
                                     **kwargs)


# ---------------------------------------------------------------- the input, the baseline and PSNR
@pytest.mark.parametrize("height, width", [(8, 8), (9, 13), (17, 10)])
def test_the_network_and_bicubic_make_any_size_four_times_larger(height, width):
    net = TransformNet(tiny_config().net)
    x = torch.rand(2, 3, height, width)
    out = SR.upscale(net, x, max_pixels=10**6)
    assert out.shape == SR.bicubic(x).shape == (2, 3, 4 * height, 4 * width)
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_instance_norm_is_blind_to_brightness_and_contrast_so_sr_networks_go_without():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 12, 12) * 0.5
    brighter = 1.5 * x + 0.2  # the same picture, brighter and with more contrast
    style_like = TransformNet(TransformNetConfig(channels=4, num_residual=1, upscale=4))  # instance norm
    torch.testing.assert_close(style_like.stem(brighter), style_like.stem(x), atol=1e-2, rtol=0)  # forgotten at once
    torch.testing.assert_close(style_like(brighter), style_like(x), atol=1e-3, rtol=0)  # one output for both
    for norm in ("none", "batch"):
        net = TransformNet(TransformNetConfig(channels=4, num_residual=1, upscale=4, norm=norm)).eval()
        assert net(x).shape == (1, 3, 48, 48) and not torch.allclose(net.stem(brighter), net.stem(x), atol=1e-2)
    assert SR.SuperResConfig().net.norm == "none"
    with pytest.raises(ValueError, match="unknown norm 'layer'"):
        TransformNetConfig(norm="layer")


def test_degrade_shrinks_4x_keeps_constants_and_refuses_other_sides():
    hr = torch.rand(2, 3, 36, 44)
    assert SR.degrade(hr).shape == (2, 3, 9, 11)
    gray = torch.full((1, 3, 16, 20), 0.3)
    torch.testing.assert_close(SR.degrade(gray), torch.full((1, 3, 4, 5), 0.3))
    torch.testing.assert_close(SR.gaussian_blur(gray, 2.0), gray)
    assert SR.degrade(hr, sigma=0.0).shape == (2, 3, 9, 11)
    with pytest.raises(ValueError, match=r"crop_to_multiple\(image, 4\)"):
        SR.degrade(torch.rand(1, 3, 30, 32))
    assert SR.crop_to_multiple(torch.rand(1, 3, 30, 35)).shape == (1, 3, 28, 32)


def test_the_blur_is_a_normalized_gaussian():
    impulse = torch.zeros(1, 1, 15, 15)
    impulse[..., 7, 7] = 1.0
    blurred = SR.gaussian_blur(impulse, 1.0)[0, 0]
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-6)
    # a separable Gaussian: the ratio of the centre to its neighbour is exp(1 / (2 sigma^2))
    assert (blurred[7, 7] / blurred[7, 8]).item() == pytest.approx(math.exp(0.5), rel=1e-5)


def test_psnr_is_10_log10_of_one_over_the_mse():
    reference = torch.rand(3, 3, 8, 8) * 0.8
    assert torch.isinf(SR.psnr(reference, reference)).all()  # identical images: infinite PSNR
    values = SR.psnr(reference + 0.1, reference)  # MSE 0.01 -> 20 dB
    assert values.shape == (3,) and values.tolist() == pytest.approx([20.0] * 3, abs=1e-4)
    noisy = reference.clone()
    noisy[1] += 0.01  # MSE 1e-4 -> 40 dB for the second image only
    assert SR.psnr(noisy, reference).tolist() == pytest.approx([math.inf, 40.0, math.inf], abs=1e-3)
    with pytest.raises(ValueError, match="one shape"):
        SR.psnr(reference, reference[..., :4])


# ---------------------------------------------------------------- the losses
def test_the_pixel_loss_is_the_mean_squared_error():
    output, target = torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    output[0, 0, 0, 0] = 0.5  # one value off by 0.5 of 96: 0.25 / 96
    assert SR.pixel_loss(output, target).item() == pytest.approx(0.25 / 96)
    terms = SR.sr_loss_terms(output, target, tiny_config(loss="pixel", tv_weight=2.0))
    assert set(terms) == {"pixel", "tv"} and terms["pixel"].item() == pytest.approx(0.25 / 96)


def test_the_perceptual_loss_is_johnson_s_feature_loss_at_relu2_2(vgg):
    config = tiny_config(loss="perceptual")
    hr, other = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    assert SR.sr_loss_terms(hr, hr, config, vgg)["content"].item() == pytest.approx(0.0, abs=1e-6)
    expected = content_loss(vgg(other), vgg(hr), ("relu2_2",))  # Johnson et al., eq. 2
    assert SR.sr_loss_terms(other, hr, config, vgg)["content"].item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="build_vgg"):
        SR.sr_loss_terms(other, hr, config)


def test_bad_configs_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown super-resolution loss 'l1'"):
        tiny_config(loss="l1")
    with pytest.raises(ValueError, match="multiple of 4"):
        tiny_config(image_size=34)
    with pytest.raises(ValueError, match="upscale=4"):
        tiny_config(net=TransformNetConfig(channels=4))


def test_for_profile_sizes_the_crops_and_the_width():
    assert SR.SuperResConfig.for_profile(PROFILES["smoke"]).image_size == 64
    quick = SR.SuperResConfig.for_profile(PROFILES["quick"], loss="pixel")
    assert (quick.image_size, quick.net.channels, quick.loss) == (96, 32, "pixel")
    full = SR.SuperResConfig.for_profile(PROFILES["full"])
    assert (full.image_size, full.net.channels, full.net.num_residual) == (288, 64, 4)  # Johnson et al.'s


# ---------------------------------------------------------------- training
@pytest.mark.parametrize("loss", SR.LOSSES)
def test_a_short_seeded_run_lowers_the_loss(loss, crops, vgg):
    config = tiny_config(loss=loss)
    batch = crops.sample(4, torch.Generator().manual_seed(99))  # y, (4, 3, 32, 32)

    def loss_of(net) -> float:
        with torch.no_grad():
            return sum(SR.sr_loss_terms(net(SR.degrade(batch)), batch, config, vgg).values()).item()

    torch.manual_seed(0)
    before = loss_of(TransformNet(config.net))  # the same initial weights as the run's
    run = _train(config, crops, vgg, 30)
    assert loss_of(run.model) < 0.9 * before  # measured 0.41 (pixel) and 0.74-0.82 (perceptual) with 1 or 2 threads
    assert run.steps == 30 and run.history["step"] == list(range(1, 31)) and len(run.history[SR.TERM[loss]]) == 30
    assert run.photos == ("cat", "rocket")


def test_the_held_out_photos_never_reach_the_training_crops(monkeypatch):
    loaded, real = [], photo_crops.example_image

    def spy(name, size=None):
        loaded.append(name)
        return real(name, size)

    monkeypatch.setattr(photo_crops, "example_image", spy)
    run = SR.train_super_resolution(tiny_config(loss="pixel"), budget=Budget(max_steps=1), progress=False)
    assert loaded and not set(loaded) & set(HELD_OUT) and not set(run.photos) & set(HELD_OUT)


@pytest.fixture
def checkpointed(tmp_path, crops, vgg):
    path = tmp_path / "sr.pt"
    return _train(tiny_config(loss="pixel", ema_decay=0.9), crops, vgg, 3, checkpoint=path), path


def test_the_checkpoint_round_trip_gives_the_same_outputs(checkpointed):
    run, path = checkpointed
    loaded = SR.load_super_resolution(path)
    assert loaded.config == run.config and loaded.steps == 3 and loaded.history == run.history
    x = torch.rand(1, 3, 10, 12)
    torch.testing.assert_close(SR.upscale(loaded.model, x), SR.upscale(run.model, x))


def test_resume_continues_the_steps_and_refuses_another_config(checkpointed, crops, vgg):
    _, path = checkpointed
    run = _train(tiny_config(loss="pixel", ema_decay=0.9), crops, vgg, 2, resume=path, checkpoint=path)
    assert run.steps == 5 and run.history["step"] == [1, 2, 3, 4, 5] and SR.load_super_resolution(path).steps == 5
    with pytest.raises(CheckpointError, match="loss"):
        _train(tiny_config(loss="perceptual", ema_decay=0.9), crops, vgg, 1, resume=path)


def test_a_fast_style_checkpoint_is_refused_and_the_other_way_round(checkpointed, tmp_path):
    _, sr_path = checkpointed
    with pytest.raises(CheckpointError, match="holds a 'super_resolution' checkpoint, but a 'fast_style' one"):
        load_fast_style(sr_path)
    style = build_fast_style(FastStyleConfig(net=TransformNetConfig(channels=4, num_residual=1)))
    style_path = save_fast_style(tmp_path / "style.pt", style)
    with pytest.raises(CheckpointError, match="holds a 'fast_style' checkpoint, but a 'super_resolution' one"):
        SR.load_super_resolution(style_path)
    with pytest.raises(ValueError, match="load_super_resolution"):
        SR.upscale(style.model, torch.rand(1, 3, 16, 16))


class _NaNPhotos:
    sources = ("nan",)

    def sample(self, batch_size, generator=None):
        return torch.full((batch_size, 3, 32, 32), float("nan"))


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(checkpointed, vgg):
    _, path = checkpointed
    before = path.read_bytes()
    with pytest.raises(TrainingDiverged, match="loss became nan at step 4"):
        SR.train_super_resolution(tiny_config(loss="pixel", ema_decay=0.9), budget=Budget(max_steps=5),
                                  photos=_NaNPhotos(), vgg=vgg, resume=path, checkpoint=path, checkpoint_every=0.0,
                                  progress=False)
    assert path.read_bytes() == before and SR.load_super_resolution(path).steps == 3


# ---------------------------------------------------------------- applying and judging
def test_upscale_makes_images_rgb_and_refuses_too_large_outputs_with_the_size_that_fits():
    net = TransformNet(tiny_config().net)
    assert SR.upscale(net, torch.rand(1, 1, 9, 10), max_pixels=10**5).shape == (1, 3, 36, 40)
    assert SR.upscale(net, torch.rand(2, 4, 8, 8), max_pixels=10**5).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"shorter side is at most 25 pixels \(size=25"):
        SR.upscale(net, torch.rand(1, 3, 50, 50), max_pixels=100 * 100)


def test_the_evaluation_scores_bicubic_and_each_network_on_the_held_out_photos():
    vgg = VGG19Features("caffe", layers=SR.DISTANCE_LAYERS)
    net = TransformNet(tiny_config().net)
    scores = SR.evaluate_super_resolution({"net": net}, size=32, vgg=vgg)
    assert [(s.method, s.photo) for s in scores] == [(m, p) for p in HELD_OUT for m in ("bicubic", "net")]
    means = SR.mean_by_method(scores)
    assert list(means) == ["bicubic", "net"]
    assert means["bicubic"][0] > means["net"][0]  # an untrained network is worse than bicubic in PSNR
    assert all(s.distance > 0 and math.isfinite(s.psnr) for s in scores)


def test_shipped_paths_and_unknown_names():
    assert SR.shipped_path("pixel") == checkpoint_path("sr_pixel.pt")
    with pytest.raises(ValueError, match="unknown shipped super-resolution network 'gan'.*super-res train"):
        SR.shipped_path("gan")


def test_with_the_bicubic_skip_the_untrained_network_is_bicubic_and_learns_a_residual():
    torch.manual_seed(0)
    config = TransformNetConfig(channels=4, num_residual=1, upscale=4, norm="none", bicubic_skip=True)
    net = TransformNet(config).eval()
    x = torch.rand(2, 3, 9, 11)
    torch.testing.assert_close(net(x), SR.bicubic(x))  # the head starts at zero: only the baseline remains
    net.train()
    loss = (net(x) - torch.rand(2, 3, 36, 44)).square().mean()
    loss.backward()
    assert net.head[1].weight.grad.abs().sum() > 0  # the residual's head learns from the first step
    assert SR.SuperResConfig().net.bicubic_skip
    with pytest.raises(ValueError, match="bicubic_skip .* needs upscale=4"):
        TransformNetConfig(bicubic_skip=True)


# ---------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """`super-res train` for 2 steps, once for the CLI tests: (checkpoint, exit code)."""
    from course_lib import commands

    ckpt = tmp_path_factory.mktemp("sr_cli") / "sr.pt"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COURSE_PROGRESS", "0")
        code = commands.main(["super-res", "train", "--loss", "pixel", "--out", str(ckpt), "--steps", "2",
                              "--profile", "smoke", "--size", "32", "--channels", "4", "--device", "cpu"])
    return ckpt, code


def test_cli_train_writes_the_checkpoint_and_its_record(cli_run):
    ckpt, code = cli_run
    assert code == 0 and ckpt.is_file()
    record = json.loads(ckpt.with_suffix(".json").read_text())
    assert record["steps"] == 2 and record["crop_size"] == 32 and record["channels"] == 4
    assert record["loss"] == "pixel" and "--loss pixel" in record["command"] and "pixel" in record["final"]
    assert not set(record["photos"]) & set(HELD_OUT)
    assert SR.load_super_resolution(ckpt).config.net.channels == 4


def test_cli_train_ship_writes_a_checkpoint_without_adam_s_state(tmp_path):
    from course_lib import commands

    ckpt = tmp_path / "ship.pt"
    assert commands.main(["super-res", "train", "--loss", "pixel", "--out", str(ckpt), "--steps", "1", "--ship",
                          "--profile", "smoke", "--size", "32", "--channels", "4", "--device", "cpu"]) == 0
    state = torch.load(ckpt, weights_only=True)["state"]
    assert set(state) == {"net"}  # the weights only
    assert json.loads(ckpt.with_suffix(".json").read_text())["command"].endswith("--ship")
    assert SR.load_super_resolution(ckpt).steps == 1


def test_cli_upscale_makes_an_example_photo_four_times_larger(cli_run, tmp_path, capsys):
    from PIL import Image

    from course_lib import commands

    out = tmp_path / "large.png"
    assert commands.main(["upscale", "cat", "-o", str(out), "--checkpoint", str(cli_run[0]), "--size", "12"]) == 0
    with Image.open(out) as image:
        assert min(image.size) == 48 and image.mode == "RGB"
    assert "-> " in capsys.readouterr().out


def test_cli_upscale_refuses_unknown_and_missing_networks_and_says_how_to_train_one(tmp_path, capsys, monkeypatch):
    from course_lib import commands

    code = commands.main(["upscale", "cat", "-o", str(tmp_path / "x.png"), "--checkpoint", "srgan"])
    err = capsys.readouterr().err
    assert code == 2 and "neither a checkpoint file nor a shipped network (pixel, perceptual)" in err
    assert "super-res train --loss perceptual --out srgan.pt" in err
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))  # no shipped checkpoints there
    code = commands.main(["upscale", "cat", "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and "super-res train --loss perceptual --out" in err and "sr_perceptual.pt" in err
