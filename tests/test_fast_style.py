"""Chapter 05's feed-forward style transfer: course_lib.transform_net, .photo_crops, .fast_style and the
`fast-style` commands. Tiny networks, 32-pixel crops and VGG19 cut after relu2_2 keep every test to seconds."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from course_lib import photo_crops
from course_lib.fast_style import (FastStyleConfig, apply_fast_style, content_targets, load_fast_style,
                                   perceptual_loss_terms, style_targets, train_fast_style)
from course_lib.perceptual import VGG19Features
from course_lib.photo_crops import HELD_OUT, PhotoCrops, available_photos, load_photo
from course_lib.runtime import PROFILES
from course_lib.style import gram_matrix, tv_loss
from course_lib.train import Budget, CheckpointError, TrainingDiverged, save_checkpoint
from course_lib.transform_net import ResidualBlock, TransformNet, TransformNetConfig, conv_block, shape_walk

LAYERS = dict(content_layers=("relu2_2",), style_layers=("relu1_2", "relu2_2"))  # VGG19 up to its 4th conv


def tiny_config(**overrides) -> FastStyleConfig:
    values = dict(net=TransformNetConfig(channels=4, num_residual=1), image_size=32, batch_size=2, style_size=32,
                  lr=5e-3, **LAYERS)
    return FastStyleConfig(**{**values, **overrides})


@pytest.fixture(scope="session")
def vgg():
    """The original VGG19 ("caffe") up to relu2_2, loaded once per session."""
    return VGG19Features("caffe", layers=LAYERS["content_layers"] + LAYERS["style_layers"])


@pytest.fixture(scope="session")
def crops():
    """Crops of two training photos only: quick to load."""
    return PhotoCrops(32, photos=("cat", "rocket"))


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("COURSE_PROGRESS", "0")
    monkeypatch.setenv("COURSE_OFFLINE", "1")


def _painting(seed: int = 0, height: int = 40, width: int = 48) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    blobs = torch.rand(1, 3, height // 8, width // 8, generator=gen)
    return F.interpolate(blobs, size=(height, width), mode="nearest")  # (1, 3, H, W) in [0, 1], hard edges


def _train(config, crops, vgg, steps, *, seed=0, **kwargs):
    torch.manual_seed(seed)  # the network's initial weights; the generator draws the crops
    return train_fast_style(config, _painting(), budget=Budget(max_steps=steps), photos=crops, vgg=vgg,
                            generator=torch.Generator().manual_seed(seed), log_every=1, progress=False, **kwargs)


# ---------------------------------------------------------------- the network
@pytest.mark.parametrize("height, width", [(37, 53), (8, 8), (9, 64), (32, 32)])
def test_the_output_has_the_input_size_and_range_at_any_size(height, width):
    net = TransformNet(TransformNetConfig(channels=4, num_residual=2))
    out = net(torch.rand(2, 3, height, width))
    assert out.shape == (2, 3, height, width)
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_upscale_4_makes_the_output_four_times_larger():
    net = TransformNet(TransformNetConfig(channels=4, num_residual=1, upscale=4))
    assert net(torch.rand(1, 3, 9, 11)).shape == (1, 3, 36, 44)
    assert len(net.down) == 0  # super-resolution keeps the small image through the residual blocks


def test_shape_walk_follows_the_paper_s_layout():
    shapes = dict(shape_walk(TransformNet(TransformNetConfig(channels=4, num_residual=2)), 64, 64))
    assert shapes["stem"] == (1, 4, 64, 64)
    assert shapes["down.0"] == (1, 8, 32, 32) and shapes["down.1"] == (1, 16, 16, 16)  # C -> 2C -> 4C, / 4
    assert shapes["residual.1"] == (1, 16, 16, 16)
    assert shapes["up.0"] == (1, 8, 32, 32) and shapes["up.1"] == (1, 4, 64, 64)
    assert shapes["head"] == (1, 3, 64, 64)


def test_the_paper_s_width_has_the_paper_s_parameter_count():
    # stem 3*32*81 + 32 + 2*32; down 32*64*9 + 64 + 2*64, 64*128*9 + 128 + 2*128; 5 residual blocks of
    # 2 * (128*128*9 + 128 + 2*128); up 128*64*9 + 64 + 2*64, 64*32*9 + 32 + 2*32; head 32*3*81 + 3 (conv weights,
    # biases, instance norm scale and shift)
    expected = 7872 + 18624 + 74112 + 5 * 295680 + 73920 + 18528 + 7779
    net = TransformNet(TransformNetConfig(channels=32))
    assert sum(p.numel() for p in net.parameters()) == expected == 1_679_235


def test_bad_inputs_and_configs_raise_clear_errors():
    net = TransformNet(TransformNetConfig(channels=4, num_residual=1))
    with pytest.raises(ValueError, match="at least 8"):
        net(torch.rand(1, 3, 7, 20))
    with pytest.raises(ValueError, match="load_image"):
        net(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="upscale"):
        TransformNetConfig(upscale=2)
    with pytest.raises(ValueError, match="batch_size"):
        tiny_config(batch_size=0)


def test_a_residual_block_with_zero_conv_weights_is_the_identity():
    block = ResidualBlock(6)
    x = torch.randn(2, 6, 9, 7)
    assert block(x).shape == x.shape
    assert not torch.allclose(block(x), x)
    with torch.no_grad():
        for module in block.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.zero_()  # the biases stay: instance norm removes any constant
    torch.testing.assert_close(block(x), x)


def test_instance_norm_normalizes_each_image_and_channel_on_its_own():
    layer = conv_block(3, 5, 3, relu=False)  # reflection pad, conv, instance norm
    x = torch.rand(2, 3, 12, 10)
    out = layer(x)
    torch.testing.assert_close(out.mean(dim=(2, 3)), torch.zeros(2, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(dim=(2, 3), unbiased=False), torch.ones(2, 5), atol=1e-3, rtol=0)
    other = layer(torch.cat([x[:1], 10 * x[1:]]))  # change the second image only
    torch.testing.assert_close(other[0], out[0])  # the first does not see it
    torch.testing.assert_close(other[1], out[1], atol=2e-3, rtol=0)  # and a 10x contrast is normalized away


# ---------------------------------------------------------------- the training photos
def test_the_held_out_photos_are_never_loaded_or_cropped(monkeypatch):
    loaded, real = [], photo_crops.example_image

    def spy(name, size=None):
        loaded.append(name)
        return real(name, size)

    monkeypatch.setattr(photo_crops, "example_image", spy)
    crops = PhotoCrops(16)
    crops.sample(32, torch.Generator().manual_seed(0))
    assert loaded and not set(loaded) & set(HELD_OUT)
    assert not set(crops.sources) & set(HELD_OUT) and not set(available_photos()) & set(HELD_OUT)
    for name in HELD_OUT:  # no photo kept in memory (every crop is cut from them) is a held-out photo
        held = photo_crops._at_most(real(name), 32)
        assert all(p.shape != held.shape or not torch.equal(p, held) for p in crops.photos)
        with pytest.raises(ValueError, match="held out"):
            PhotoCrops(16, photos=("cat", name))
        with pytest.raises(ValueError, match="evaluation photo"):
            load_photo(name)


def test_crops_are_square_in_range_seeded_and_sometimes_mirrored(crops):
    a = crops.sample(6, torch.Generator().manual_seed(1))
    assert a.shape == (6, 3, 32, 32) and 0.0 <= a.min() and a.max() <= 1.0
    torch.testing.assert_close(crops.sample(6, torch.Generator().manual_seed(1)), a)
    assert not torch.equal(crops.sample(6, torch.Generator().manual_seed(2)), a)
    assert all(min(photo.shape[-2:]) <= 2 * 32 for photo in crops.photos)  # kept at most 2 S on the shorter side


# ---------------------------------------------------------------- the perceptual loss
def test_content_targets_stop_at_the_content_layer_and_match_the_full_pass(vgg):
    photos = _painting(1, 32, 32)
    targets = content_targets(vgg, photos, ("relu1_2",))
    assert list(targets) == ["relu1_2"]
    torch.testing.assert_close(targets["relu1_2"], vgg(photos)["relu1_2"])


def test_the_loss_is_zero_for_the_painting_itself_and_its_terms_are_the_formulas(vgg):
    config = tiny_config(tv_weight=0.5)
    painting, other = _painting(2, 32, 32), _painting(3, 32, 32)
    grams = style_targets(vgg, painting, config)
    assert {n: tuple(g.shape) for n, g in grams.items()} == {"relu1_2": (1, 64, 64), "relu2_2": (1, 128, 128)}
    same = perceptual_loss_terms(vgg, painting, painting, grams, config)
    assert same["content"].item() == pytest.approx(0.0, abs=1e-6)
    assert same["style"].item() == pytest.approx(0.0, abs=1e-6)
    terms = perceptual_loss_terms(vgg, other, painting, grams, config)
    features, targets = vgg(other), vgg(painting)
    content = F.mse_loss(features["relu2_2"], targets["relu2_2"])  # Johnson et al., eq. 2
    style = sum(F.mse_loss(gram_matrix(features[n]), grams[n]) for n in config.style_layers)  # eqs. 3-4, averaged
    assert terms["content"].item() == pytest.approx(content.item(), rel=1e-5)
    assert terms["style"].item() == pytest.approx(config.style_weight * style.item(), rel=1e-5)
    assert terms["tv"].item() == pytest.approx(0.5 * tv_loss(other).item(), rel=1e-6)


def test_style_targets_take_a_grayscale_painting(vgg):
    grams = style_targets(vgg, _painting(4)[:, :1], tiny_config())
    assert grams["relu1_2"].shape == (1, 64, 64)


# ---------------------------------------------------------------- training
def _loss_on(net, batch, vgg, config) -> float:
    grams = style_targets(vgg, _painting(), config)
    with torch.no_grad():
        return sum(perceptual_loss_terms(vgg, net(batch), batch, grams, config).values()).item()


def test_a_short_seeded_run_lowers_the_loss(crops, vgg):
    config = tiny_config()
    batch = crops.sample(4, torch.Generator().manual_seed(99))
    torch.manual_seed(0)
    before = _loss_on(TransformNet(config.net), batch, vgg, config)  # the same initial weights as the run's
    run = _train(config, crops, vgg, 20)
    assert _loss_on(run.model, batch, vgg, config) < 0.7 * before
    assert run.steps == 20 and run.images_seen == 40 and run.history["step"] == list(range(1, 21))
    assert run.photos == ("cat", "rocket") and run.style.dtype == torch.uint8


def test_seeded_training_is_reproducible(crops, vgg):
    a, b = (_train(tiny_config(), crops, vgg, 3, seed=5) for _ in range(2))
    assert a.history["loss"] == b.history["loss"]
    for p, q in zip(a.net.parameters(), b.net.parameters()):
        torch.testing.assert_close(p, q, atol=0, rtol=0)


@pytest.fixture
def checkpointed(tmp_path, crops, vgg):
    path = tmp_path / "net.pt"
    return _train(tiny_config(ema_decay=0.9), crops, vgg, 3, checkpoint=path), path


def test_the_checkpoint_round_trip_keeps_weights_config_and_history(checkpointed):
    run, path = checkpointed
    loaded = load_fast_style(path)
    assert loaded.config == run.config and loaded.steps == 3 and loaded.history == run.history
    assert loaded.photos == run.photos and torch.equal(loaded.style, run.style)
    x = torch.rand(1, 3, 20, 28)
    torch.testing.assert_close(loaded.model(x), run.model(x))
    assert loaded.ema_model is not None and not torch.equal(loaded.net(x), loaded.model(x))


def test_resume_continues_the_steps_and_refuses_another_config(checkpointed, crops, vgg):
    _, path = checkpointed
    run = _train(tiny_config(ema_decay=0.9), crops, vgg, 2, resume=path, checkpoint=path)
    assert run.steps == 5 and run.history["step"] == [1, 2, 3, 4, 5] and load_fast_style(path).steps == 5
    with pytest.raises(CheckpointError, match="lr"):
        _train(tiny_config(ema_decay=0.9, lr=1e-4), crops, vgg, 1, resume=path)


def test_a_checkpoint_of_another_kind_is_refused_clearly(tmp_path):
    path = save_checkpoint(tmp_path / "g.pt", kind="gan", config={"latent_dim": 8}, state={})
    with pytest.raises(CheckpointError, match="holds a 'gan' checkpoint, but a 'fast_style' one"):
        load_fast_style(path)


class _NaNPhotos:
    sources = ("nan",)

    def sample(self, batch_size, generator=None):
        return torch.full((batch_size, 3, 32, 32), float("nan"))


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(checkpointed, vgg):
    _, path = checkpointed
    before = path.read_bytes()
    with pytest.raises(TrainingDiverged, match="loss became nan at step 4"):
        train_fast_style(tiny_config(ema_decay=0.9), _painting(), budget=Budget(max_steps=5), photos=_NaNPhotos(),
                         vgg=vgg, resume=path, checkpoint=path, checkpoint_every=0.0, progress=False)
    assert path.read_bytes() == before and load_fast_style(path).steps == 3


def test_for_profile_sizes_the_crops_and_the_width():
    assert FastStyleConfig.for_profile(PROFILES["smoke"]).image_size == 64
    assert FastStyleConfig.for_profile(PROFILES["quick"]).image_size == 128
    full = FastStyleConfig.for_profile(PROFILES["full"])
    assert (full.image_size, full.net.channels) == (256, 32)  # Johnson et al.'s
    assert FastStyleConfig.for_profile(PROFILES["quick"], image_size=96).image_size == 96


# ---------------------------------------------------------------- applying the network
def test_apply_runs_in_batches_at_any_size_and_makes_images_rgb():
    torch.manual_seed(0)
    net = TransformNet(TransformNetConfig(channels=4, num_residual=1))
    x = torch.rand(5, 3, 20, 30)
    out = apply_fast_style(net, x, batch_size=2, max_pixels=10_000)
    assert out.shape == (5, 3, 20, 30)
    torch.testing.assert_close(out, net(x), atol=1e-5, rtol=0)
    gray, rgba = torch.rand(1, 1, 17, 19), torch.rand(2, 4, 12, 12)
    assert apply_fast_style(net, gray, max_pixels=10_000).shape == (1, 3, 17, 19)
    assert apply_fast_style(net, rgba, max_pixels=10_000).shape == (2, 3, 12, 12)
    with pytest.raises(ValueError, match=r"size=\d+"):
        apply_fast_style(net, x, max_pixels=500)


# ---------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """`fast-style train` for 2 steps on a painting file, once for the CLI tests: (checkpoint, exit code)."""
    from course_lib import commands
    from course_lib.viz import save_image

    folder = tmp_path_factory.mktemp("fast_style_cli")
    painting = save_image(_painting(5, 48, 64), folder / "painting.png")
    ckpt = folder / "net.pt"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COURSE_PROGRESS", "0")
        code = commands.main(["fast-style", "train", "--style", str(painting), "--out", str(ckpt), "--steps", "2",
                              "--profile", "smoke", "--size", "32", "--channels", "4", "--device", "cpu"])
    return ckpt, code


def test_cli_train_writes_the_checkpoint_and_its_record(cli_run):
    ckpt, code = cli_run
    assert code == 0 and ckpt.is_file()
    record = json.loads(ckpt.with_suffix(".json").read_text())
    assert record["steps"] == 2 and record["crop_size"] == 32 and record["channels"] == 4
    assert "--style" in record["command"] and not set(record["photos"]) & set(HELD_OUT)
    assert load_fast_style(ckpt).config.net.channels == 4


def test_cli_apply_paints_an_example_photo(cli_run, tmp_path):
    from PIL import Image

    from course_lib import commands

    out = tmp_path / "painted.png"
    assert commands.main(["fast-style", "apply", str(cli_run[0]), "cat", "-o", str(out), "--size", "24"]) == 0
    with Image.open(out) as image:
        assert min(image.size) == 24 and image.mode == "RGB"


def test_cli_apply_refuses_an_unknown_network_and_says_how_to_train_one(tmp_path, capsys):
    from course_lib import commands

    code = commands.main(["fast-style", "apply", "picasso", "cat", "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and "neither a checkpoint file nor a shipped network (starry_night" in err
    assert "fast-style train --style PAINTING --out picasso.pt" in err


def test_cli_train_refuses_a_missing_painting(tmp_path, capsys):
    from course_lib import commands

    code = commands.main(["fast-style", "train", "--style", str(tmp_path / "nope.png"), "--steps", "1",
                          "--out", str(tmp_path / "n.pt")])
    assert code == 2 and "painting's name" in capsys.readouterr().err


def test_cli_train_ship_keeps_neither_adam_s_state_nor_the_painting(tmp_path, monkeypatch):
    from course_lib import commands

    monkeypatch.setenv("COURSE_PROGRESS", "0")
    painting = tmp_path / "painting.png"
    Image.fromarray((torch.rand(32, 40, 3) * 255).byte().numpy()).save(painting)
    ckpt = tmp_path / "ship.pt"
    assert commands.main(["fast-style", "train", "--style", str(painting), "--out", str(ckpt), "--steps", "1",
                          "--ship", "--profile", "smoke", "--size", "32", "--channels", "4", "--device", "cpu"]) == 0
    saved = torch.load(ckpt, weights_only=True)
    assert set(saved["state"]) == {"net"} and saved["style"] is None
    assert load_fast_style(ckpt).steps == 1


def test_cli_apply_says_which_shipped_file_is_missing_and_how_to_train_it(tmp_path, capsys, monkeypatch):
    from course_lib import commands

    monkeypatch.setenv("COURSE_DATA", str(tmp_path))  # a cache without the shipped networks
    code = commands.main(["fast-style", "apply", "the_scream", "cat", "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and "the shipped the_scream network" in err and "is not here" in err
    assert "fast-style train --style the_scream --out" in err and "--ship" in err
