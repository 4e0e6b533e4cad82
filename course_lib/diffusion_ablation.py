"""From plain DDPM to the course's recipe, one change at a time: the ablation ladder of notebook 02.

The first rung is the paper's model (Ho et al. 2020): a U-Net on pixels predicts the noise eps under the linear
beta schedule, trained with the unweighted loss of eq. 14 against the noise that made x_t. Each later rung adds one
change of `DiffusionConfig`'s defaults, and the last rung is the recipe itself. The rungs before the last use the
recipe's earlier U-Net and batch (`EARLIER_SIZES`), the last one the CPU-sized ones; everything else (optimizer,
learning-rate schedule, EMA) is the recipe's on every rung, so a difference in the judge's scores after the same
seconds of training is what that one change buys. `make bench` (group `ablation`) trains and judges each rung.
Min-SNR weighting (Hang et al. 2023) and the averaged target (Xu et al. 2023) stay options of `DiffusionConfig`:
on top of v-prediction they made 300 s runs worse (README, "Measured history of the recipes").
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .diffusion import DiffusionConfig

__all__ = ["Rung", "LADDER", "PAPER_OBJECTIVE", "EARLIER_SIZES", "ladder", "plain_ddpm"]


@dataclass(frozen=True)
class Rung:
    name: str  # what this rung adds, as the table prints it
    source: str  # the paper the change comes from
    changes: dict  # DiffusionConfig fields this rung sets, on top of the rungs before it


PAPER_OBJECTIVE = {"beta_schedule": "linear", "prediction": "eps", "loss_weighting": "none", "target_estimate": "sample",
                   "timestep_sampling": "uniform", "patch_size": 1}  # Ho et al. 2020's model, on pixels
# the recipe's U-Net and batch before issue 21 (32 channels, attention at 7x7, batch 128): the first rungs use them
EARLIER_SIZES = {"base_channels": 32, "attention_levels": (1,), "batch_size": 128}

LADDER = (
    Rung("plain DDPM", "Ho et al. 2020", {**PAPER_OBJECTIVE, **EARLIER_SIZES}),
    Rung("+ 2x2 patches", "Hoogeboom et al. 2023", {"patch_size": 2}),  # first: on a CPU it buys the most steps
    Rung("+ cosine schedule", "Nichol & Dhariwal 2021", {"beta_schedule": "cosine"}),
    Rung("+ v-prediction", "Salimans & Ho 2022", {"prediction": "v"}),
    # 2.2x the images per second on a 2-core float32 CPU, and a batch that takes twice the steps
    Rung("+ a CPU-sized U-Net and batch = the recipe", "this course",
         {"base_channels": 24, "attention_levels": (), "batch_size": 64}),
)


def ladder(recipe: DiffusionConfig | None = None) -> list[tuple[Rung, DiffusionConfig]]:
    """Each rung of LADDER with its config: the recipe's fields, then every rung's changes up to this one.

    The last rung must give back `recipe` itself; a ValueError says which field the ladder does not reach."""
    recipe = recipe or DiffusionConfig()
    configs, config = [], recipe
    for rung in LADDER:
        config = dataclasses.replace(config, **rung.changes)
        configs.append((rung, config))
    if config != recipe:
        differ = [f.name for f in dataclasses.fields(recipe) if getattr(config, f.name) != getattr(recipe, f.name)]
        raise ValueError(f"the ladder's last rung is not this recipe: it differs in {differ}; start from a recipe "
                         f"whose objective fields are the defaults of DiffusionConfig")
    return configs


def plain_ddpm(recipe: DiffusionConfig | None = None) -> DiffusionConfig:
    """Ho et al. 2020's eps-prediction model on pixels, with the recipe's widths and optimizer (any recipe, the
    GPU one of `full` too). The ladder's first rung is this with the earlier sizes (`EARLIER_SIZES`)."""
    return dataclasses.replace(recipe or DiffusionConfig(), **PAPER_OBJECTIVE)
