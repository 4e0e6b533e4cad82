"""GAN inversion in feature space (course_lib.gan_edit, loss="perceptual") and its comparison with the pixel loss:
the loss, frozen networks, reproducibility, shapes, errors, and the shipped GAN on a few real digits."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib import dcgan, gan, gan_edit
from course_lib.data import load_mnist
from course_lib.digit_classifier import DigitClassifier
from course_lib.runtime import checkpoint_path


def tiny_generator(seed: int = 0) -> dcgan.Generator:
    """An untrained DCGAN generator of 28x28 digits from 8 numbers, in train mode."""
    torch.manual_seed(seed)
    net_g = dcgan.Generator(gan.DCGANConfig(image_size=28, latent_dim=8, g_channels=4, d_channels=4))
    return net_g.apply(dcgan.dcgan_init)


def tiny_classifier(seed: int = 0) -> DigitClassifier:
    """A digit classifier with random weights, in train mode and with gradients on: the worst case to freeze."""
    torch.manual_seed(seed)
    return DigitClassifier()


def bars(n: int = 2, size: int = 28) -> torch.Tensor:
    """A bright vertical bar on black per image, at a different column each: (n, 1, size, size) in [-1, 1]."""
    x = -torch.ones(n, 1, size, size)
    for i in range(n):
        x[i, :, 4:size - 4, 6 + 5 * i:9 + 5 * i] = 1.0
    return x


def snapshot(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


# ---------------------------------------------------------------- the loss
def test_feature_distance_is_zero_for_identical_images_and_positive_otherwise():
    classifier = tiny_classifier().eval()
    x = bars(2)
    features = gan_edit.classifier_features(classifier, x, ["conv1", "relu1", "conv2", "relu2", "fc"])
    assert [tuple(f.shape) for f in features.values()] == [(2, 16, 28, 28)] * 2 + [(2, 32, 14, 14)] * 2 + [(2, 64)]
    targets = gan_edit.classifier_features(classifier, x)  # the default layers, conv1 and conv2
    torch.testing.assert_close(gan_edit.feature_distance(targets, targets), torch.zeros(2))
    moved = gan_edit.classifier_features(classifier, x.roll(3, dims=-1))  # the same bars, 3 pixels to the right
    assert (gan_edit.feature_distance(moved, targets) > 1e-3).all()
    padded = F.pad(x, (2, 2, 2, 2), value=-1.0)  # G's 32x32 digits are centre-cropped to the classifier's 28
    torch.testing.assert_close(gan_edit.classifier_features(classifier, padded)["conv2"], targets["conv2"])


def test_ssim_is_one_for_identical_images_symmetric_and_closed_form_on_flat_images():
    x, y = bars(2), bars(2).flip(0)
    torch.testing.assert_close(gan_edit.ssim(x, x), torch.ones(2))
    torch.testing.assert_close(gan_edit.ssim(x, y), gan_edit.ssim(y, x))
    assert (gan_edit.ssim(x, y) < 0.9).all()
    # flat images a = 0.5, b = -0.5: no variance, so SSIM = (2 a b + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 2)^2
    a, b, c1 = torch.full((1, 1, 16, 16), 0.5), torch.full((1, 1, 16, 16), -0.5), 0.02 ** 2
    torch.testing.assert_close(gan_edit.ssim(a, b), torch.tensor([(-0.5 + c1) / (0.5 + c1)]))


# ---------------------------------------------------------------- inversion in feature space
def test_perceptual_inversion_lowers_its_objective_and_changes_no_weights():
    net_g, classifier = tiny_generator(), tiny_classifier()
    target = gan.sample(net_g, z=torch.randn(2, 8, generator=torch.Generator().manual_seed(1)))
    before_g, before_c = snapshot(net_g), snapshot(classifier)
    found = gan_edit.invert(net_g, target, loss="perceptual", classifier=classifier, num_steps=30, lr=0.1,
                            num_starts=2, generator=torch.Generator().manual_seed(0))
    assert found.z.shape == (2, 8) and found.images.shape == (2, 1, 28, 28) and found.loss == "perceptual"
    assert found.error.shape == found.objective.shape == (2,) and len(found.history) == 30
    assert found.history[-1] < 0.5 * found.history[0]
    for net, before in ((net_g, before_g), (classifier, before_c)):  # frozen: no gradient, no change, mode kept
        assert all(p.grad is None and torch.equal(p, b) for p, b in zip(net.parameters(), before))
        assert net.training
    with torch.no_grad():  # the start kept is the best by the objective minimized, the feature distance
        phi = gan_edit.classifier_features(classifier.eval(), found.images)
        objective = gan_edit.feature_distance(phi, gan_edit.classifier_features(classifier, target))
    torch.testing.assert_close(found.objective, objective, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(found.error, gan_edit.pixel_distance(found.images, target))


def test_pixel_inversion_reports_its_error_as_its_objective():
    net_g = tiny_generator()
    found = gan_edit.invert(net_g, bars(2), num_steps=2, num_starts=2, generator=torch.Generator().manual_seed(0))
    assert found.loss == "pixel"
    torch.testing.assert_close(found.objective, found.error)


def test_seeded_inversion_is_reproducible_and_init_sets_the_starts():
    net_g, classifier, target = tiny_generator(), tiny_classifier().eval(), bars(2)

    def run(seed: int, **kw) -> gan_edit.Inversion:
        return gan_edit.invert(net_g, target, loss="perceptual", classifier=classifier, num_steps=3, num_starts=2,
                               generator=torch.Generator().manual_seed(seed), **kw)

    first, again, other = run(0), run(0), run(1)
    assert torch.equal(first.z, again.z) and torch.equal(first.images, again.images)
    assert not torch.equal(first.z, other.z)
    init = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))  # what seed 0 draws: (B * K, nz)
    assert torch.equal(run(5, init=init).z, first.z)  # init replaces the generator's draw


@pytest.mark.parametrize("options, words", [
    (dict(loss="vgg"), "pixel, perceptual"),
    (dict(loss="perceptual", layers=("relu9",)), "conv1, relu1"),
    (dict(loss="perceptual", layers=()), "at least one"),
    (dict(pixel_weight=-1.0), ">= 0"),
    (dict(init=torch.zeros(2, 8)), "num_starts=1"),
])
def test_bad_arguments_raise_and_say_what_to_do(options, words):
    net_g, classifier = tiny_generator(), tiny_classifier()
    with pytest.raises(ValueError, match=words):
        gan_edit.invert(net_g, bars(2), num_steps=1, num_starts=2, classifier=classifier, **options)


# ---------------------------------------------------------------- the shipped GAN on real digits
def test_on_real_digits_both_losses_reconstruct_and_each_wins_on_its_own_objective():
    net_g = gan.load_gan(checkpoint_path("gan_mnist.pt")).sampler
    digits = gan.prepare_mnist(load_mnist(split="test", verbose=False).images[:3], net_g.config.image_size)
    comparison = gan_edit.compare_inversions(net_g, digits, num_steps=30, num_starts=2, seed=0)
    scores = comparison.scores
    assert set(scores) == {"pixel", "perceptual"} and all(set(s) == set(gan_edit.MEASURES) for s in scores.values())
    assert all(v.shape == (3,) for s in scores.values() for v in s.values())
    # not circular: by SSIM, built from neither loss, both inversions are closer to the digits than their starts
    starts = gan.sample(net_g, z=torch.randn(6, net_g.config.latent_dim, generator=torch.Generator().manual_seed(0)))
    start_ssim = gan_edit.ssim(starts, digits.repeat_interleave(2, 0)).mean()
    assert all(s["ssim"].mean() > start_ssim + 0.05 for s in scores.values())
    # each wins on its own objective when the search is the same: from the same codes (either method's answers),
    # the same steps of each loss. (From random starts at these budgets, where a start lands decides more.)
    for answer in comparison.inversions.values():
        polished = {loss: gan_edit.invert(net_g, digits, loss=loss, init=answer.z, num_starts=1, num_steps=10, lr=0.01)
                    for loss in gan_edit.INVERSION_LOSSES}
        measured = {loss: gan_edit.inversion_scores(found.images, digits) for loss, found in polished.items()}
        assert measured["pixel"]["pixel_mse"].mean() < measured["perceptual"]["pixel_mse"].mean()
        assert measured["perceptual"]["feature_distance"].mean() < measured["pixel"]["feature_distance"].mean()
