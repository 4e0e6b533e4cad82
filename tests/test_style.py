"""course_lib.style: Gram matrices, style and TV losses, colour preservation, stylize() and its CLI."""
from __future__ import annotations

import pytest
import torch

from course_lib import style
from course_lib.perceptual import VGG19Features
from course_lib.style import (StyleConfig, gram_matrix, match_luminance, pyramid_sizes, resize_to_pixels,
                              rgb_to_yiq, style_loss, stylize, tv_loss, yiq_to_rgb)

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "conv3_1")  # a truncated network keeps these tests fast
TINY = dict(content_layers=("conv3_1",), style_layers=("relu1_1", "relu2_1", "relu3_1"), num_scales=1)


@pytest.fixture(scope="session")
def vgg():
    """The original VGG19 ("caffe") up to relu3_1, loaded once per session."""
    return VGG19Features("caffe", layers=LAYERS)


def _photo(seed: int, height: int = 24, width: int = 24) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    smooth = torch.rand(1, 3, height // 4, width // 4, generator=gen)
    return torch.nn.functional.interpolate(smooth, size=(height, width), mode="bilinear", align_corners=False)


def test_gram_matrix_of_a_known_tensor():
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)  # C=2 channels, 1x2 positions
    expected = torch.tensor([[1 + 4, 3 + 8], [3 + 8, 9 + 16]]) / (2 * 1 * 2)  # F F^T / (C H W)
    torch.testing.assert_close(gram_matrix(features), expected[None])


def test_gram_matrix_ignores_where_features_are():
    gen = torch.Generator().manual_seed(0)
    features = torch.rand(2, 5, 6, 7, generator=gen)
    shuffled = features.flatten(2)[:, :, torch.randperm(42, generator=gen)].view(2, 5, 6, 7)
    torch.testing.assert_close(gram_matrix(shuffled), gram_matrix(features))
    assert not torch.allclose(shuffled, features)


def test_style_loss_is_zero_for_the_same_image_and_positive_otherwise(vgg):
    photo, other = _photo(0), _photo(1)
    grams = {name: gram_matrix(f) for name, f in vgg(photo).items() if name.startswith("relu")}
    assert style_loss(vgg(photo), grams).item() == pytest.approx(0.0, abs=1e-8)
    assert style_loss(vgg(other), grams).item() > 0.0
    double = style_loss(vgg(other), grams, {name: 2.0 for name in grams})
    assert double.item() == pytest.approx(2 * style_loss(vgg(other), grams).item(), rel=1e-5)


def test_tv_loss_closed_form():
    image = torch.zeros(1, 1, 3, 3)
    image[..., 1, 1] = 1.0  # one bright pixel: 2 vertical and 2 horizontal jumps of 1 among 6 each
    assert tv_loss(image).item() == pytest.approx(2 / 6 + 2 / 6)
    assert tv_loss(torch.ones(1, 3, 4, 4)).item() == 0.0


def test_yiq_round_trip_and_luminance_matching():
    rgb = _photo(2)
    torch.testing.assert_close(yiq_to_rgb(rgb_to_yiq(rgb)), rgb, atol=1e-5, rtol=1e-5)
    gray = rgb_to_yiq(torch.full((1, 3, 2, 2), 0.5))
    torch.testing.assert_close(gray[:, 1:], torch.zeros(1, 2, 2, 2), atol=1e-6, rtol=0)  # no chrominance
    matched = match_luminance(_photo(3) * 0.3, rgb)
    y_matched, y_content = rgb_to_yiq(matched)[:, 0], rgb_to_yiq(rgb)[:, 0]
    assert y_matched.mean().item() == pytest.approx(y_content.mean().item(), abs=1e-3)


def test_sizes_helpers():
    assert pyramid_sizes((256, 384), 3) == [(64, 96), (128, 192), (256, 384)]
    assert resize_to_pixels(torch.rand(1, 3, 40, 80), 800).shape[-2:] == (20, 40)


def test_a_few_lbfgs_steps_lower_the_total_loss(vgg):
    config = StyleConfig(size=24, steps=4, **TINY)
    result = stylize(_photo(0), _photo(1, 32, 40), config, vgg=vgg, progress=False)
    totals = [h["total"] for h in result.history]
    assert len(totals) == 4 and totals[-1] < totals[0]
    assert result.image.shape == (1, 3, 24, 24)
    assert 0.0 <= result.image.min() and result.image.max() <= 1.0
    assert result.seconds > 0 and result.stopped is None


def test_coarse_to_fine_adam_noise_init_and_two_styles(vgg):
    config = StyleConfig(size=32, steps=2, coarse_steps=2, num_scales=2, optimizer="adam", init="noise",
                         content_layers=("conv3_1",), style_layers=("relu1_1", "relu2_1"), style_weights=(3, 1))
    result = stylize(_photo(0, 32, 48), [_photo(1), _photo(2, 40, 16)], config, vgg=vgg, progress=False)
    assert [h["size"] for h in result.history] == [(16, 24)] * 2 + [(32, 48)] * 2
    assert result.image.shape == (1, 3, 32, 48) and len(result.level_seconds) == 2


def test_blending_styles_is_matching_the_blended_gram(vgg):
    # sum_s w_s ||G - A_s||^2 and ||G - sum_s w_s A_s||^2 differ by a constant: same gradient
    x = _photo(4).requires_grad_(True)
    targets = [{n: gram_matrix(f) for n, f in vgg(_photo(s)).items() if n.startswith("relu")} for s in (5, 6)]
    separate = 0.25 * style_loss(vgg(x), targets[0]) + 0.75 * style_loss(vgg(x), targets[1])
    grad_separate, = torch.autograd.grad(separate, x)
    blended = {n: 0.25 * targets[0][n] + 0.75 * targets[1][n] for n in targets[0]}
    grad_blended, = torch.autograd.grad(style_loss(vgg(x), blended), x)
    torch.testing.assert_close(grad_blended, grad_separate, rtol=1e-3, atol=1e-8)


def test_colour_preservation_keeps_the_content_chrominance(vgg):
    content = _photo(0) * 0.6 + 0.2  # in gamut, away from the clamp
    config = StyleConfig(size=24, steps=3, preserve_color=True, **TINY)
    result = stylize(content, _photo(7) ** 2, config, vgg=vgg, progress=False)
    iq_out, iq_content = rgb_to_yiq(result.image)[:, 1:], rgb_to_yiq(content)[:, 1:]
    inside = (result.image > 0.01).all(1, keepdim=True) & (result.image < 0.99).all(1, keepdim=True)
    assert inside.float().mean() > 0.9
    torch.testing.assert_close(iq_out * inside, iq_content * inside, atol=1e-4, rtol=0)
    assert not torch.allclose(rgb_to_yiq(result.image)[:, :1], rgb_to_yiq(content)[:, :1], atol=1e-3)


def test_too_large_an_image_is_refused_with_the_size_that_fits(vgg):
    with pytest.raises(ValueError, match=r"at most 100 pixels \(size=100\)"):
        stylize(_photo(0), _photo(1), StyleConfig(size=200, **TINY), vgg=vgg, max_pixels=100 * 100)


def test_bad_inputs_are_explained(vgg):
    with pytest.raises(ValueError, match="load_image"):
        stylize(torch.rand(1, 4, 16, 16), _photo(1), StyleConfig(size=16, **TINY), vgg=vgg, max_pixels=10**6)
    with pytest.raises(ValueError, match="one per style image"):
        stylize(_photo(0), [_photo(1)], StyleConfig(size=16, style_weights=(1, 2), **TINY), vgg=vgg,
                max_pixels=10**6)
    with pytest.raises(ValueError, match="optimizer"):
        StyleConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="does not compute"):
        stylize(_photo(0), _photo(1), StyleConfig(size=16, num_scales=1), vgg=vgg, max_pixels=10**6)


def test_nan_stops_with_a_message_and_returns_the_last_good_image(vgg):
    config = StyleConfig(size=16, steps=3, style_weight=float("nan"), init="content", **TINY)
    with pytest.warns(RuntimeWarning, match="last good image"):
        result = stylize(_photo(0, 16, 16), _photo(1), config, vgg=vgg, progress=False, max_pixels=10**6)
    assert result.stopped is not None and torch.isfinite(result.image).all()
    torch.testing.assert_close(result.image, _photo(0, 16, 16))


def test_cli_writes_the_stylized_image(tmp_path, monkeypatch, vgg):
    from course_lib.commands import main
    from course_lib.viz import save_image
    content, painting = save_image(_photo(0, 32, 32), tmp_path / "c.png"), save_image(_photo(1), tmp_path / "s.png")
    monkeypatch.setattr(style, "_build_vgg", lambda config: VGG19Features("caffe", layers=config.content_layers
                                                                          + config.style_layers))
    out = tmp_path / "out.png"
    code = main(["stylize", str(content), str(painting), "-o", str(out), "--size", "32", "--steps", "2",
                 "--coarse-steps", "2", "--style-weight", "10", "--device", "cpu"])
    assert code == 0 and out.is_file()


def test_tile_shuffle_keeps_shape_and_pixels_for_any_size():
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 27, 41, generator=gen)  # neither side a multiple of 4
    shuffled = style.tile_shuffle(image, tiles=4, generator=gen)
    assert shuffled.shape == image.shape
    torch.testing.assert_close(shuffled.flatten().sort().values, image.flatten().sort().values)  # same pixels
    torch.testing.assert_close(shuffled[..., 24:, :], image[..., 24:, :])  # the remainder stays in place
    with pytest.raises(ValueError, match="too small"):
        style.tile_shuffle(image[..., :3, :], tiles=4)


def test_for_profile_scales_the_plain_lbfgs_budget_to_the_defaults():
    from course_lib.runtime import get_profile
    quick = get_profile("quick")
    config = StyleConfig.for_profile(quick)
    assert config.size == quick.image_size
    assert config.steps == round(quick.style_steps * StyleConfig().steps / style.PLAIN_STEPS)
    assert StyleConfig.for_profile(quick, steps=7).steps == 7  # overrides win
    assert StyleConfig.for_profile(get_profile("smoke")).steps >= 1
