"""course_lib.diffusion_ablation: the ladder from plain DDPM to the recipe, one change per rung."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from course_lib import diffusion as D
from course_lib.diffusion_ablation import LADDER, ladder, plain_ddpm
from course_lib.train import Budget


def test_the_first_rung_is_the_paper_s_model():
    config = plain_ddpm()
    assert (config.beta_schedule, config.prediction, config.loss_weighting, config.target_estimate,
            config.patch_size) == ("linear", "eps", "none", "sample", 1)


def test_the_last_rung_is_the_recipe_and_each_rung_changes_what_it_names():
    configs = ladder()
    assert configs[-1][1] == D.recipe("quick") and len(configs) == len(LADDER)
    for (_, before), (rung, after) in zip(configs, configs[1:]):
        changed = {f.name for f in dataclasses.fields(after) if getattr(after, f.name) != getattr(before, f.name)}
        assert changed == set(rung.changes), rung.name


def test_a_recipe_the_ladder_does_not_reach_is_named():
    with pytest.raises(ValueError, match=r"differs in \['prediction'\]"):
        ladder(D.DiffusionConfig(prediction="x0"))


def test_the_plain_model_trains_and_predicts_noise_on_pixels():
    images = torch.rand(16, 1, 28, 28)
    result = D.train_diffusion(plain_ddpm(), images, budget=Budget(max_steps=2), progress=False,
                               generator=torch.Generator().manual_seed(0))
    assert result.steps == 2 and result.model.patch_size == 1
    out = result.ema_model(torch.randn(3, 1, 28, 28), torch.tensor([0, 500, 999]))
    assert out.shape == (3, 1, 28, 28) and torch.isfinite(out).all()


def test_the_command_line_trains_the_plain_model_and_records_the_switch(tmp_path):
    import json

    from course_lib.commands import main

    out = tmp_path / "plain.pt"
    assert main(["diffusion", "train", "--plain", "--profile", "smoke", "--steps", "2", "--out", str(out),
                 "--device", "cpu"]) == 0
    run = D.load_diffusion(out)
    assert run.config == plain_ddpm(D.recipe("smoke")) and run.steps == 2
    assert json.loads(out.with_suffix(".json").read_text())["command"].endswith("--plain")


def test_plain_ddpm_keeps_the_recipe_s_sizes_and_the_first_rung_the_earlier_ones():
    from course_lib.diffusion_ablation import EARLIER_SIZES

    full = D.recipe("full")
    assert (plain_ddpm(full).base_channels, plain_ddpm(full).attention_levels) == (64, (2,))
    first = ladder()[0][1]
    assert {name: getattr(first, name) for name in EARLIER_SIZES} == EARLIER_SIZES
