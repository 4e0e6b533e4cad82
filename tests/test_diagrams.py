"""course_lib.diagrams: the U-Net drawn from the model, one box per block the forward pass runs."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

from course_lib.diagrams import draw_unet  # noqa: E402
from course_lib.unet import UNet  # noqa: E402


def _boxes(fig) -> list[str]:
    return [p.get_gid() for p in fig.axes[0].patches if isinstance(p, FancyBboxPatch) and p.get_gid()]


def _gids(fig) -> set[str]:
    return {artist.get_gid() for artist in fig.axes[0].get_children() if artist.get_gid()}


@pytest.mark.parametrize("patch, classes", [(1, None), (2, None), (1, 10), (2, 10)])
def test_draw_unet_has_a_box_per_block_and_a_skip_per_level(patch, classes):
    model = UNet(base_channels=8, channel_mults=(1, 2, 2), num_res_blocks=2, attention_levels=(2,), patch_size=patch,
                 num_classes=classes)
    fig = draw_unet(model, 16)
    boxes = _boxes(fig)
    assert boxes.count("input") == boxes.count("output") == 1 and {"stem", "mid", "head"} <= set(boxes)
    assert sum(b.startswith("down") and ".res" in b for b in boxes) == 3 * 2  # levels x num_res_blocks
    assert sum(b.startswith("up") and b.endswith(".res") for b in boxes) == 3  # one per level on the way up
    assert sum(b.endswith(".cat") for b in boxes) == 3
    assert sum(b.endswith("downsample") for b in boxes) == sum(b.endswith("upsample") for b in boxes) == 2
    assert sorted(b for b in boxes if b.endswith(".attn")) == ["down2.attn", "up2.attn"]
    assert {f"skip{level}" for level in range(3)} <= _gids(fig)
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert ("class label" in texts) == (classes is not None)
    assert ("PixelUnshuffle(2)" in texts) == (patch == 2)
    plt.close(fig)


def test_draw_unet_writes_the_shapes_of_the_forward_pass():
    model = UNet(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), patch_size=2)
    fig = draw_unet(model, 28)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "input x_t\n1x28x28" in texts and "head: conv + PixelShuffle(2)\n1x28x28" in texts
    assert "stem: PixelUnshuffle(2) + conv\n8x14x14" in texts and "middle ResBlock\n16x7x7" in texts
    assert "concat the skip\n32x7x7" in texts  # 16 from below + the 16-channel skip
    assert not any(model._forward_hooks or model._forward_pre_hooks for model in model.modules())
    plt.close(fig)
