"""The diffusion U-Net: shapes, conditioning, the identity start, bad configurations."""
from __future__ import annotations

import math

import pytest
import torch

from course_lib.unet import UNet, timestep_embedding


def test_timestep_embedding_shape_and_values():
    emb = timestep_embedding(torch.tensor([0, 10]), 8)
    assert emb.shape == (2, 8)
    torch.testing.assert_close(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))  # cos(0) = 1, sin(0) = 0
    assert emb[1, 0].item() == pytest.approx(math.cos(10.0))  # the fastest frequency is 1


@pytest.mark.parametrize("size, mults, patch", [(8, (1, 2), 1), (28, (1, 2, 2), 1), (12, (1, 1, 2), 1), (28, (1, 2), 2)])
def test_output_shape_matches_input(size, mults, patch):
    torch.manual_seed(0)
    model = UNet(base_channels=8, channel_mults=mults, attention_levels=(len(mults) - 1,), patch_size=patch)
    x = torch.randn(2, 1, size, size)
    assert model(x, torch.tensor([0, 999])).shape == x.shape


def test_starts_at_zero_output_and_gradients_reach_every_parameter():
    """Zero-initialized output layer (the usual diffusion init): output 0, yet the loss reaches every weight
    after one step's worth of gradient through the head."""
    torch.manual_seed(0)
    model = UNet(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), num_classes=10)
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([3, 700]), torch.tensor([1, 10])
    assert torch.equal(model(x, t, y), torch.zeros_like(x))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model(x, t, y).pow(2).sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_labels_change_the_output_and_null_label_is_the_default():
    torch.manual_seed(0)
    model = UNet(base_channels=8, channel_mults=(1, 2), attention_levels=(), num_classes=10)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        x, t = torch.randn(2, 1, 8, 8), torch.tensor([100, 100])
        assert not torch.allclose(model(x, t, torch.tensor([0, 0])), model(x, t, torch.tensor([5, 5])))
        torch.testing.assert_close(model(x, t), model(x, t, torch.tensor([10, 10])))


def test_bad_configurations_raise():
    with pytest.raises(ValueError, match="attention_levels"):
        UNet(channel_mults=(1, 2), attention_levels=(2,))
    with pytest.raises(ValueError, match="divisible by heads"):
        UNet(base_channels=6, channel_mults=(1,), attention_levels=(0,), groups=2)
    with pytest.raises(ValueError, match="unconditional"):
        UNet(base_channels=8, channel_mults=(1, 2), attention_levels=())(torch.zeros(1, 1, 8, 8), torch.zeros(1),
                                                                         torch.zeros(1).long())


@pytest.mark.parametrize("patch, classes", [(1, None), (2, None), (2, 10)])
def test_shape_walk_follows_the_forward_pass_and_leaves_no_hooks(patch, classes):
    from course_lib.unet import named_blocks, shape_walk

    torch.manual_seed(0)
    model = UNet(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), patch_size=patch, num_classes=classes)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([3, 700])
    labels = torch.tensor([1, 10]) if classes else None
    walk = dict(shape_walk(model, x, t, labels))
    size = 16 // patch
    assert walk["time_mlp"] == (2, 32) and ("label_emb" in walk) == (classes is not None)
    assert walk["stem"] == walk["down0.res0"] == (2, 8, size, size)
    assert walk["down0.downsample"] == walk["down1.res0"][:1] + (8, size // 2, size // 2)
    assert walk["down1.res0"] == walk["down1.attn"] == walk["mid"] == (2, 16, size // 2, size // 2)
    assert walk["up1.cat"] == (2, 32, size // 2, size // 2)  # mid (16) + the level-1 skip (16)
    assert walk["up1.upsample"] == (2, 8, size, size) and walk["up0.cat"] == (2, 16, size, size)
    assert walk["head"] == model(x, t, labels).shape
    assert set(walk) == {name for name, _ in named_blocks(model)} | {"up0.cat", "up1.cat"}
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
