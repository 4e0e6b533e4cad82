"""The second, independent digit judge: the all-conv architecture, its augmentations, loading old and new
checkpoints, the shipped weights on real digits, `judge_both`, and the `--second` command line."""
import json
from dataclasses import asdict

import pytest
import torch

from course_lib import metrics
from course_lib.commands import metrics as metrics_cli
from course_lib.data import load_mnist
from course_lib.defaults import JUDGE_CHECKPOINT, SECOND_JUDGE_CHECKPOINT
from course_lib.digit_classifier import (JUDGE_KIND, DigitClassifier, DigitClassifierConfig, JudgeTrainConfig,
                                         accuracy, augment_digits, elastic_distortion, judge_recipe, random_erasing,
                                         random_stroke_width, train_classifier, train_judge)
from course_lib.runtime import checkpoint_path, data_dir
from course_lib.train import Budget, save_checkpoint

FIRST, SECOND = checkpoint_path(JUDGE_CHECKPOINT), checkpoint_path(SECOND_JUDGE_CHECKPOINT)
needs_judges = pytest.mark.skipif(not (FIRST.is_file() and SECOND.is_file()), reason="shipped judge weights missing")
TINY_ALLCONV = DigitClassifierConfig(arch="allconv", channels=(4, 8), feature_dim=8)


def digits(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))  # (n, 1, 28, 28) in [0, 1]


# ---------------------------------------------------------------- the architecture
@pytest.mark.parametrize("config, feature_dim", [(TINY_ALLCONV, 8), (judge_recipe("second").model, 64)])
def test_allconv_gives_logits_and_features(config, feature_dim):
    model = DigitClassifier(config).eval()
    x = digits(5)
    assert model(x).shape == (5, 10) and model.features(x).shape == (5, feature_dim)
    assert not any(isinstance(m, (torch.nn.MaxPool2d, torch.nn.BatchNorm2d)) for m in model.modules())
    assert all(m.kernel_size == (3, 3) for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def test_bad_arch_and_lenet_widths_raise_clearly(tmp_path):
    with pytest.raises(ValueError, match="unknown digit classifier arch 'resnet': use one of lenet, allconv"):
        DigitClassifierConfig(arch="resnet")
    with pytest.raises(ValueError, match="two conv stages"):
        DigitClassifierConfig(channels=(8, 16, 32))
    bad = save_checkpoint(tmp_path / "bad.pt", kind=JUDGE_KIND, config={**asdict(TINY_ALLCONV), "arch": "vit"}, state={})
    with pytest.raises(ValueError, match="arch 'vit'"):
        metrics.load_judge(path=bad)
    with pytest.raises(ValueError, match="unknown judge 'third'"):
        metrics.load_judge(which="third")


def test_a_config_saved_without_arch_loads_as_lenet(tmp_path):
    """Checkpoints written before `arch` existed (the first judge's among them) rebuild as LeNet."""
    lenet = DigitClassifier(DigitClassifierConfig(channels=(2, 4), feature_dim=8))
    old_style = {k: v for k, v in asdict(lenet.config).items() if k != "arch"}
    path = save_checkpoint(tmp_path / "old.pt", kind=JUDGE_KIND, config=old_style, state=lenet.state_dict())
    loaded = metrics.load_judge(path=path)
    assert loaded.config.arch == "lenet" and loaded.config.channels == (2, 4)
    assert torch.equal(loaded(digits(3)), lenet.eval()(digits(3)))


@pytest.mark.skipif(not FIRST.is_file(), reason="shipped judge weights missing")
def test_the_shipped_first_judge_has_no_arch_field_and_loads_as_lenet():
    stored = torch.load(FIRST, weights_only=True)["config"]
    assert "arch" not in stored
    judge = metrics.load_judge()
    assert judge.config.arch == "lenet" and judge.body[0].kernel_size == (5, 5)


# ---------------------------------------------------------------- augmentations and training
def test_elastic_distortion_with_no_displacement_is_the_identity_and_else_moves_pixels():
    x, g = digits(4), torch.Generator().manual_seed(0)
    still = elastic_distortion(x, JudgeTrainConfig(elastic_alpha=0.0), g)
    torch.testing.assert_close(still, x, atol=1e-5, rtol=0)
    moved = elastic_distortion(x, JudgeTrainConfig(elastic_alpha=34.0), g)
    assert moved.shape == x.shape and moved.min() >= 0 and moved.max() <= 1 and (moved - x).abs().mean() > 0.05


def test_random_erasing_sets_one_rectangle_to_zero_when_on():
    x, g = torch.ones(8, 1, 28, 28), torch.Generator().manual_seed(0)
    assert torch.equal(random_erasing(x, JudgeTrainConfig(erase_prob=0.0), g), x)
    erased = random_erasing(x, JudgeTrainConfig(erase_prob=1.0, erase_area=(0.05, 0.1)), g)
    share = (erased == 0).double().mean(dim=(1, 2, 3))  # (8,) erased share of each image
    assert ((share >= 0.02) & (share <= 0.15)).all() and torch.equal(x, torch.ones_like(x))  # input untouched


def test_stroke_width_makes_digits_bolder_or_thinner_within_range():
    x, g = digits(16).round(), torch.Generator().manual_seed(0)  # (16, 1, 28, 28) of 0s and 1s
    assert torch.equal(random_stroke_width(x, JudgeTrainConfig(max_stroke=0.0), g), x)
    varied = random_stroke_width(x, JudgeTrainConfig(max_stroke=1.0), g)
    ink_change = (varied - x).sum(dim=(1, 2, 3))  # (16,) > 0 bolder, < 0 thinner
    assert varied.min() >= 0 and varied.max() <= 1 and (ink_change > 0).any() and (ink_change < 0).any()


def test_the_two_recipes_differ_in_network_seed_and_augmentations():
    first, second = judge_recipe("first"), judge_recipe("second")
    assert (first.model.arch, second.model.arch) == ("lenet", "allconv") and first.seed != second.seed
    assert first.training.elastic_alpha == 0 and second.training.elastic_alpha > 0 and second.training.erase_prob > 0
    assert second.training.outlier_weight > 0  # outlier exposure kept
    assert (first.checkpoint, second.checkpoint) == (JUDGE_CHECKPOINT, SECOND_JUDGE_CHECKPOINT)
    augmented = augment_digits(digits(6), second.training, torch.Generator().manual_seed(0))
    assert augmented.shape == (6, 1, 28, 28) and augmented.min() >= 0 and augmented.max() <= 1


def test_a_tiny_allconv_learns_real_digits_beyond_chance():
    data = load_mnist(data_dir(), "train", download=False, verbose=False)
    images, labels = data.images[:400], data.labels[:400]
    torch.manual_seed(0)
    model = DigitClassifier(DigitClassifierConfig(arch="allconv", channels=(8, 16, 32), feature_dim=16, dropout=0.0))
    config = JudgeTrainConfig(batch_size=32, lr=1e-2, outlier_weight=0.0)
    history = train_classifier(model, images[:300], labels[:300], budget=Budget(max_steps=100), config=config,
                               generator=torch.Generator().manual_seed(1), augment=False)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert accuracy(model, images[300:], labels[300:]) > 0.4  # chance: 0.1 (0.6 measured)


def test_train_judge_second_writes_an_allconv_checkpoint_and_record(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    out = tmp_path / "second.pt"
    model, record = train_judge(which="second", steps=2, out=out, device="cpu", command="test")
    assert record["judge"] == "second" and record["seed"] == 1 and record["model_config"]["arch"] == "allconv"
    assert json.loads(out.with_suffix(".json").read_text())["steps"] == 2
    assert metrics.load_judge(path=out).config == model.config


# ---------------------------------------------------------------- the shipped second judge
@needs_judges
def test_shipped_second_judge_loads_and_has_the_recorded_accuracy():
    record = json.loads(SECOND.with_suffix(".json").read_text())
    assert SECOND.stat().st_size < 1_000_000 and record["judge"] == "second"
    judge = metrics.load_judge(which="second")
    assert judge.config.arch == "allconv" and not judge.training
    assert not any(p.requires_grad for p in judge.parameters())
    assert metrics.load_judge(which="second") is judge and metrics.load_judge() is not judge  # cached, apart
    test = load_mnist(data_dir(), "test", download=False, verbose=False)
    if test.source != record["data_source"]:
        pytest.skip(f"judge trained on {record['data_source']}, local test split is {test.source}")
    measured = accuracy(judge, test.images, test.labels)
    assert measured == pytest.approx(record["held_out_accuracy"], abs=0.002) and measured >= 0.97


@needs_judges
def test_the_second_judge_does_not_read_noise_as_digits():
    uniform = digits(300, seed=5)
    assert metrics.recognizability(uniform, model=metrics.load_judge(which="second")).fraction < 0.1


@needs_judges
def test_judge_both_scores_with_each_judge():
    real = metrics.reference_digits(400, "test")
    scores = metrics.judge_both(real[:200], real[200:])
    assert set(scores) == {"fid", "recognizable", "classes", "fid_second", "recognizable_second",
                           "classes_second", "n"} and scores["n"] == 200
    for suffix in ("", "_second"):
        assert scores["fid" + suffix] >= 0 and 0.8 <= scores["recognizable" + suffix] <= 1
        assert scores["classes" + suffix] == 10
    assert scores["fid"] == pytest.approx(metrics.classifier_fid(real[:200], real[200:]), rel=1e-6)
    noise = metrics.judge_both(digits(200, seed=6) * 2 - 1, real[200:])  # [-1, 1] detected
    assert noise["fid_second"] > scores["fid_second"] and noise["recognizable_second"] < 0.1


# ---------------------------------------------------------------- the command line
def test_cli_second_flag_parses_and_reaches_train_judge(monkeypatch):
    args = metrics_cli.build_parser().parse_args(["--second", "--steps", "5"])
    assert args.second and args.steps == 5 and args.seed is None
    assert not metrics_cli.build_parser().parse_args([]).second
    calls = []
    monkeypatch.setattr("course_lib.digit_classifier.train_judge", lambda **kw: calls.append(kw) or (None, {}))
    assert metrics_cli.main(["--second", "--steps", "5"]) == 0
    assert calls[0]["which"] == "second" and calls[0]["seed"] is None
    assert calls[0]["command"] == "python -m course_lib.metrics --second --steps 5"
