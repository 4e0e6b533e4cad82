"""The digit judge: Fréchet distance closed forms, input handling, and the shipped classifier on real digits."""
import json

import pytest
import torch

from course_lib import metrics, runtime
from course_lib.data import load_mnist
from course_lib.defaults import JUDGE_CHECKPOINT
from course_lib.digit_classifier import (DigitClassifier, DigitClassifierConfig, JudgeTrainConfig, accuracy, not_digits,
                                         train_classifier)
from course_lib.runtime import checkpoint_path, data_dir
from course_lib.train import Budget, CheckpointError, save_checkpoint

JUDGE = checkpoint_path(JUDGE_CHECKPOINT)
needs_judge = pytest.mark.skipif(not JUDGE.is_file(), reason="shipped judge weights missing")


def identity(x):
    return x


def gaussian(n, mu, std, seed):
    """(n, D) samples of N(mu, diag(std^2))."""
    g = torch.Generator().manual_seed(seed)
    return mu + std * torch.randn(n, len(mu), generator=g, dtype=torch.float64)


@pytest.fixture(scope="module")
def real_digits():
    return metrics.reference_digits(1000, "test")  # (1000, 1, 28, 28) in [0, 1]


# ---------------------------------------------------------------- Fréchet distance: closed forms
def test_frechet_distance_of_diagonal_gaussians_matches_closed_form():
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 1.0, 0.5])
    var1, var2 = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + ((var1.sqrt() - var2.sqrt()) ** 2).sum()  # 7.25 + 4 + 1 = 12.25
    got = metrics.frechet_distance(mu1, torch.diag(var1), mu2, torch.diag(var2))
    assert got == pytest.approx(expected.item(), abs=1e-9)
    assert got == pytest.approx(12.25, abs=1e-9)


def test_frechet_distance_of_rotated_covariances_matches_closed_form():
    """Same eigenvalues, rotated: S1 = R D1 R^T and S2 = R D2 R^T commute, so d^2 = sum (sqrt(a) - sqrt(b))^2."""
    rotation, _ = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    a = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    b = torch.tensor([5.0, 1.0, 0.5, 4.0, 0.0], dtype=torch.float64)  # S2 singular
    s1, s2 = rotation @ torch.diag(a) @ rotation.T, rotation @ torch.diag(b) @ rotation.T
    expected = ((a.sqrt() - b.sqrt()) ** 2).sum().item()
    assert metrics.frechet_distance(torch.zeros(5), s1, torch.zeros(5), s2) == pytest.approx(expected, abs=1e-8)


def test_frechet_distance_is_zero_for_equal_and_symmetric_for_different():
    stats1 = metrics.feature_stats(gaussian(400, torch.zeros(8), 1.0, seed=0))
    stats2 = metrics.feature_stats(gaussian(400, torch.ones(8), 2.0, seed=1))
    assert metrics.frechet_distance(stats1.mu, stats1.sigma, stats1.mu, stats1.sigma) == pytest.approx(0, abs=1e-9)
    d12 = metrics.frechet_distance(stats1.mu, stats1.sigma, stats2.mu, stats2.sigma)
    d21 = metrics.frechet_distance(stats2.mu, stats2.sigma, stats1.mu, stats1.sigma)
    assert d12 > 1 and d12 == pytest.approx(d21, rel=1e-9)


def test_feature_stats_are_float64_mean_and_unbiased_covariance():
    x = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 4.0]])
    stats = metrics.feature_stats(x)
    assert stats.mu.dtype == torch.float64 and stats.n == 3
    assert torch.allclose(stats.mu, torch.tensor([3.0, 4.0], dtype=torch.float64))
    assert torch.allclose(stats.sigma, torch.tensor([[4.0, 2.0], [2.0, 4.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="N >= 2"):
        metrics.feature_stats(torch.ones(1, 4))


def test_classifier_fid_with_stand_in_features_approaches_the_closed_form():
    """Two Gaussians through an identity 'feature function': the estimate converges to the closed form."""
    mu1, mu2 = torch.zeros(4, dtype=torch.float64), torch.tensor([1.0, 0.0, -1.0, 0.5], dtype=torch.float64)
    std1, std2 = torch.tensor([1.0, 1.0, 2.0, 0.5]), torch.tensor([2.0, 1.0, 1.0, 0.5])
    expected = ((mu1 - mu2) ** 2).sum().item() + ((std1 - std2) ** 2).sum().item()  # 2.25 + 2 = 4.25
    fid = metrics.classifier_fid(gaussian(20000, mu1, std1, 0), gaussian(20000, mu2, std2, 1), feature_fn=identity)
    assert fid == pytest.approx(expected, rel=0.03)
    small = metrics.classifier_fid(gaussian(50, mu1, std1, 0), gaussian(50, mu1, std1, 1), feature_fn=identity)
    assert small > 0.1  # FID is biased upwards at small N: same distribution, clearly nonzero


def test_classifier_fid_accepts_precomputed_reference_stats():
    x, y = gaussian(300, torch.zeros(3), 1.0, 0), gaussian(300, torch.ones(3), 1.0, 1)
    direct = metrics.classifier_fid(x, y, feature_fn=identity, batch_size=64)
    cached = metrics.classifier_fid(x, metrics.feature_stats(y), feature_fn=identity)
    assert direct == pytest.approx(cached, rel=1e-9)


# ---------------------------------------------------------------- input handling (a tiny untrained judge)
@pytest.fixture(scope="module")
def tiny_judge():
    torch.manual_seed(0)
    return DigitClassifier(DigitClassifierConfig(channels=(2, 4), feature_dim=8)).eval()


def test_prepare_digits_detects_range_and_crops_32_to_28():
    x01 = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(metrics.prepare_digits(x01 * 2 - 1), x01, atol=1e-6)  # [-1, 1] detected
    assert torch.equal(metrics.prepare_digits(x01), x01)
    padded = torch.nn.functional.pad(x01 * 2 - 1, (2, 2, 2, 2), value=-1.0)  # (3, 1, 32, 32)
    assert torch.allclose(metrics.prepare_digits(padded), x01, atol=1e-6)
    # an all-positive [-1, 1] image (no background) needs the explicit range
    assert torch.allclose(metrics.prepare_digits(x01, value_range="[-1, 1]"), (x01 + 1) / 2)


@pytest.mark.parametrize("bad, message", [
    (torch.rand(2, 3, 28, 28), "grayscale"),
    (torch.rand(2, 1, 64, 64), r"\(N, 1, 28, 28\) or \(N, 1, 32, 32\)"),
    (torch.rand(1, 28, 28), "shape"),
    (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "float"),
    (torch.full((2, 1, 28, 28), float("nan")), "NaN"),
    (torch.rand(0, 1, 28, 28), "empty"),
])
def test_bad_inputs_raise_clear_errors(tiny_judge, bad, message):
    with pytest.raises(ValueError, match=message):
        metrics.recognizability(bad, model=tiny_judge)


def test_bad_value_range_and_threshold_raise(tiny_judge):
    with pytest.raises(ValueError, match="value_range"):
        metrics.prepare_digits(torch.rand(2, 1, 28, 28), value_range="0-255")
    with pytest.raises(ValueError, match="threshold"):
        metrics.recognizability(torch.rand(2, 1, 28, 28), threshold=1.5, model=tiny_judge)


def test_predict_shapes_and_batching_agree(tiny_judge):
    x = torch.rand(7, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    labels, probs = metrics.predict(x, model=tiny_judge, batch_size=3)
    assert labels.shape == (7,) and labels.dtype == torch.int64 and probs.shape == (7, 10)
    assert torch.allclose(probs.sum(dim=1), torch.ones(7), atol=1e-5)
    assert torch.allclose(probs, metrics.predict(x, model=tiny_judge, batch_size=100)[1], atol=1e-6)


def test_train_classifier_runs_a_budget_and_reduces_the_loss():
    g = torch.Generator().manual_seed(0)
    images = torch.zeros(20, 1, 28, 28)
    images[10:, :, 8:20, 8:20] = 1.0  # two separable "classes"
    labels = torch.tensor([0] * 10 + [1] * 10)
    model = DigitClassifier(DigitClassifierConfig(channels=(2, 4), feature_dim=8))
    config = JudgeTrainConfig(batch_size=8, lr=1e-2)
    history = train_classifier(model, images, labels, budget=Budget(max_steps=30), config=config, generator=g)
    assert history["step"][-1] == 30 and not model.training
    assert history["loss"][-1] < history["loss"][0]


def test_train_classifier_under_float16_steps_through_the_grad_scaler(monkeypatch):
    """As on a T4: float16 autocast (forced on this CPU) with an enabled GradScaler stepped every step."""
    monkeypatch.setattr(runtime, "amp_dtype", lambda device: torch.float16)
    enabled, step = [], torch.amp.GradScaler.step

    def spied_step(self, *args, **kwargs):
        enabled.append(self.is_enabled())
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.amp.GradScaler, "step", spied_step)
    model = DigitClassifier(DigitClassifierConfig(channels=(2, 4), feature_dim=8))
    before = [p.detach().clone() for p in model.parameters()]
    history = train_classifier(model, torch.rand(8, 1, 28, 28), torch.arange(8) % 2,
                               budget=Budget(max_steps=3), config=JudgeTrainConfig(batch_size=4),
                               generator=torch.Generator().manual_seed(0))
    assert enabled == [True] * 3 and all(torch.isfinite(torch.tensor(history["loss"])))
    assert all(torch.isfinite(p).all() and p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(before, model.parameters()))


def test_not_digits_are_images_in_range():
    x0 = torch.rand(12, 1, 28, 28)
    outliers = not_digits(x0, torch.arange(12) % 10, torch.Generator().manual_seed(0))
    assert outliers.shape == x0.shape and outliers.min() >= 0 and outliers.max() <= 1


def test_load_judge_errors_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m course_lib.metrics"):
        metrics.load_judge(path=tmp_path / "missing.pt")
    other = save_checkpoint(tmp_path / "gan.pt", kind="dcgan", config={"z": 1}, state={})
    with pytest.raises(CheckpointError, match="digit_classifier"):
        metrics.load_judge(path=other)


# ---------------------------------------------------------------- the shipped judge on real digits
@needs_judge
def test_shipped_judge_loads_and_has_the_recorded_accuracy():
    record = json.loads(JUDGE.with_suffix(".json").read_text())
    assert JUDGE.stat().st_size < 1_000_000
    judge = metrics.load_judge()
    assert not judge.training and not any(p.requires_grad for p in judge.parameters())
    assert metrics.load_judge() is judge  # cached
    test = load_mnist(data_dir(), "test", download=False, verbose=False)
    if test.source != record["data_source"]:
        pytest.skip(f"judge trained on {record['data_source']}, local test split is {test.source}")
    measured = accuracy(judge, test.images, test.labels)
    assert measured == pytest.approx(record["held_out_accuracy"], abs=0.002)
    assert measured >= 0.94


@needs_judge
def test_real_digits_are_recognizable_in_both_ranges(real_digits):
    result = metrics.recognizability(real_digits)
    assert result.fraction >= 0.85 and result.classes == 10 and result.n == 1000
    assert sum(result.histogram) == round(result.fraction * result.n)
    assert metrics.recognizability(real_digits * 2 - 1) == result  # [-1, 1] and [0, 1] read the same


@needs_judge
def test_noise_is_not_recognizable():
    g = torch.Generator().manual_seed(0)
    uniform = torch.rand(500, 1, 28, 28, generator=g)
    gaussian_noise = (0.5 + 0.3 * torch.randn(500, 1, 28, 28, generator=g)).clamp(0, 1)  # not seen in training
    assert metrics.recognizability(uniform).fraction < 0.1
    assert metrics.recognizability(gaussian_noise).fraction < 0.1


@needs_judge
def test_a_collapsed_set_of_real_digits_covers_one_class():
    test = load_mnist(data_dir(), "test", download=False, verbose=False)
    threes = test.images[test.labels == 3][:50]
    result = metrics.recognizability(threes)
    assert result.classes == 1 and result.histogram[3] == round(result.fraction * result.n)
    labels, _ = metrics.predict(threes)
    assert (labels == 3).double().mean() > 0.9


@needs_judge
def test_classifier_fid_on_real_digits(real_digits):
    assert metrics.classifier_fid(real_digits, real_digits) == pytest.approx(0.0, abs=1e-6)
    first, second = real_digits[:500], real_digits[500:]
    noise = torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    real_vs_real = metrics.classifier_fid(first, second)
    assert real_vs_real == pytest.approx(metrics.classifier_fid(second, first), rel=1e-6)  # symmetric
    assert metrics.classifier_fid(first * 2 - 1, second) == pytest.approx(real_vs_real, rel=1e-6)
    assert metrics.classifier_fid(noise, second) > 10 * real_vs_real
    padded = torch.nn.functional.pad(first, (2, 2, 2, 2))  # (500, 1, 32, 32), centre-cropped back
    assert metrics.classifier_fid(padded, second) == pytest.approx(real_vs_real, rel=1e-6)


def test_reference_digits_caps_only_when_asked(capsys):
    available = len(metrics.reference_digits(1000, "test"))
    with pytest.raises(ValueError, match="reference digits"):
        metrics.reference_digits(available + 1, "test")
    capped = metrics.reference_digits(available + 1, "test", allow_fewer=True)
    assert capped.shape == (available, 1, 28, 28)
    assert f"all {available} test digits" in capsys.readouterr().out


# ---------------------------------------------------------------- are the samples copies? (nearest neighbours)
def test_a_training_digit_is_its_own_nearest_neighbour_at_distance_zero(tiny_judge):
    train = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    picks = torch.tensor([3, 17, 39])
    index, distance = metrics.nearest_neighbours(train[picks], train, model=tiny_judge, batch_size=7)
    assert index.tolist() == picks.tolist() and index.dtype == torch.int64
    assert distance.tolist() == [0.0, 0.0, 0.0]


def test_nearest_neighbours_shapes_ranges_and_reproducibility(tiny_judge):
    gen = torch.Generator().manual_seed(1)
    samples, train = torch.rand(6, 1, 32, 32, generator=gen) * 2 - 1, torch.rand(30, 1, 28, 28, generator=gen)
    index, distance = metrics.nearest_neighbours(samples, train, model=tiny_judge)
    assert index.shape == distance.shape == (6,) and ((0 <= index) & (index < 30)).all() and (distance >= 0).all()
    again = metrics.nearest_neighbours(samples, train, model=tiny_judge)
    assert torch.equal(index, again[0]) and torch.equal(distance, again[1])
    features = metrics.judge_features(train, model=tiny_judge)  # (30, D), computed once
    assert torch.equal(metrics.nearest_neighbours(samples, features, model=tiny_judge)[0], index)


def test_nearest_neighbours_in_pixel_space_is_the_brute_force_answer():
    gen = torch.Generator().manual_seed(2)
    samples, train = torch.rand(5, 1, 28, 28, generator=gen), torch.rand(20, 1, 28, 28, generator=gen)
    index, distance = metrics.nearest_neighbours(samples, train, feature_fn=lambda x: x.flatten(1))
    brute = ((samples.flatten(1)[:, None].double() - train.flatten(1)[None].double()) ** 2).sum(-1).sqrt()  # (5, 20)
    assert torch.equal(index, brute.argmin(dim=1))
    torch.testing.assert_close(distance, brute.min(dim=1).values)


def test_nearest_neighbours_refuses_mismatched_digits(tiny_judge):
    with pytest.raises(ValueError, match="different sizes"):
        metrics.nearest_neighbours(torch.rand(2, 1, 28, 28), torch.rand(4, 1, 32, 32), feature_fn=lambda x: x.flatten(1))
    with pytest.raises(ValueError, match="grayscale"):
        metrics.nearest_neighbours(torch.rand(2, 1, 28, 28), torch.rand(4, 3, 28, 28), model=tiny_judge)


def test_memorisation_check_tells_copies_from_new_digits(tiny_judge):
    gen = torch.Generator().manual_seed(3)
    train, test = torch.rand(50, 1, 28, 28, generator=gen), torch.rand(20, 1, 28, 28, generator=gen)
    copies = metrics.memorisation_check(train[:10] * 2 - 1, train, test, model=tiny_judge)  # copies, in [-1, 1]
    assert copies.index.tolist() == list(range(10)) and torch.allclose(copies.distance, torch.zeros(10, dtype=torch.float64), atol=1e-5)
    assert copies.baseline.shape == (20,) and (copies.baseline > 0).all() and copies.near_copies == 1.0
    new = metrics.memorisation_check(torch.rand(10, 1, 28, 28, generator=gen), train, test, model=tiny_judge)
    assert new.near_copies < 0.5 and "median distance to the nearest training digit" in str(new)
