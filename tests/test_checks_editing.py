"""course_lib.checks.editing (05): each check passes the right answer, names the classic wrong ones, and says
"not done yet" for the exercise edition's stub."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checks import CheckFailed, editing
from course_lib.fast_style import perceptual_loss_terms
from course_lib.perceptual import content_loss
from course_lib.style import gram_matrix, style_loss, tv_loss
from course_lib.transform_net import ResidualBlock


@pytest.fixture(autouse=True)
def lenient(monkeypatch):
    monkeypatch.setenv("COURSE_CHECKS_STRICT", "0")


def _stub(*args):
    raise NotImplementedError("Exercise my_thing: replace this line with your code (the hint above shows the way).")


def _verdict(check, fn, capsys) -> tuple[bool, str]:
    passed = check(fn)
    return passed, capsys.readouterr().out


# ---------------------------------------------------------------- the answers, with a switch per mistake
def _instance_norm(x, eps, *, dims=(2, 3), correction=0, eps_at="variance"):
    mean, var = x.mean(dim=dims, keepdim=True), x.var(dim=dims, keepdim=True, correction=correction)
    if eps_at == "variance":
        return (x - mean) / torch.sqrt(var + eps)
    return (x - mean) / (torch.sqrt(var) + eps) if eps_at == "std" else (x - mean) / torch.sqrt(var)


def _block_class(*, pad="reflect", norm="instance", relu_after_sum=False, skip=True, affine=True, stub=False):
    """The exercise's block: __init__ as the notebook gives it (norm and affine switchable), forward as a learner
    writes it."""
    class Block(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv1 = nn.Conv2d(channels, channels, 3)
            self.norm1 = (nn.BatchNorm2d(channels, affine=affine) if norm == "batch module"
                          else nn.InstanceNorm2d(channels, affine=affine))
            self.conv2 = nn.Conv2d(channels, channels, 3)
            self.norm2 = nn.InstanceNorm2d(channels, affine=affine)

        def forward(self, x):
            if stub:
                raise NotImplementedError("Exercise forward: replace this line with your code (the hint above shows "
                                          "the way).")
            def normalize(h, layer):
                if norm == "batch":
                    return F.batch_norm(h, None, None, layer.weight, layer.bias, training=True)
                return layer(h)
            h = F.relu(normalize(self.conv1(F.pad(x, (1, 1, 1, 1), mode=pad)), self.norm1))
            h = normalize(self.conv2(F.pad(h, (1, 1, 1, 1), mode=pad)), self.norm2)
            y = x + h if skip else h
            return F.relu(y) if relu_after_sum else y
    return Block


def _overlap_counts(size, kernel, stride, *, side=None, step=None):
    step = stride if step is None else step
    side = (size - 1) * step + kernel if side is None else side
    counts = torch.zeros(side, side)
    for i in range(size):
        for j in range(size):
            counts[i * step:i * step + kernel, j * step:j * step + kernel] += 1
    return counts


def _perceptual_loss(vgg, output, photos, target_grams, config, *, content="features", drop=None, batch_sum=False,
                     detach_output_content=False, one_gram=False, weighted=True):
    with torch.no_grad():
        targets = vgg(photos)
    features = vgg(output)
    if content == "pixels":
        c = F.mse_loss(output, photos)
    else:
        layers = config.content_layers if content == "features" else (content,)
        out_side = {n: features[n].detach() if detach_output_content else features[n] for n in layers}
        c = content_loss(out_side, {n: targets[n] for n in layers})
    if one_gram:
        s = sum(((gram_matrix(features[n].transpose(0, 1).reshape(1, features[n].shape[1], -1, 1)) - a) ** 2).mean()
                for n, a in target_grams.items())
    else:
        s = style_loss(features, target_grams)
    t = tv_loss(output)
    weights = (config.content_weight, config.style_weight, config.tv_weight) if weighted else (1.0, 1.0, 1.0)
    terms = {"content": weights[0] * c, "style": weights[1] * s, "tv": weights[2] * t}
    total = sum(v for k, v in terms.items() if k != drop)
    return len(photos) * total if batch_sum else total


def _train_step(net, optimizer, vgg, photos, target_grams, config, *, zero_grad=True, step_first=False,
                own_optimizer=False, train_vgg=False, detach=False, loss_after=False):
    output = net(photos)
    loss = sum(perceptual_loss_terms(vgg, output.detach() if detach else output, photos, target_grams,
                                     config).values())
    if own_optimizer:
        optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    if train_vgg:
        optimizer = torch.optim.Adam(vgg.parameters(), lr=config.lr)
    if zero_grad:
        optimizer.zero_grad()
    if step_first:
        optimizer.step()
        loss.backward()
    else:
        loss.backward()
        optimizer.step()
    if loss_after:
        with torch.no_grad():
            return sum(perceptual_loss_terms(vgg, net(photos), photos, target_grams, config).values()).item()
    return loss.item()


CASES = {
    "instance_norm": (editing.check_instance_norm, _instance_norm, {
        "batch normalization": lambda x, eps: _instance_norm(x, eps, dims=(0, 2, 3)),
        "layer normalization": lambda x, eps: _instance_norm(x, eps, dims=(1, 2, 3)),
        "unbiased variance": lambda x, eps: _instance_norm(x, eps, correction=1),
        "eps is missing": lambda x, eps: _instance_norm(x, eps, eps_at="nowhere"),
        "eps is added to the standard deviation": lambda x, eps: _instance_norm(x, eps, eps_at="std"),
        "divided by the variance": lambda x, eps: (x - x.mean((2, 3), keepdim=True)) / (x.var((2, 3), keepdim=True,
                                                                                              correction=0) + eps),
        "only the mean is subtracted": lambda x, eps: x - x.mean((2, 3), keepdim=True),
        "changed its input in place": lambda x, eps: x.sub_(x.mean((2, 3), keepdim=True)).div_(
            torch.sqrt(x.var((2, 3), keepdim=True, correction=0) + eps)),
    }),
    "residual_block": (editing.check_residual_block, _block_class(), {
        "a ReLU after the sum": _block_class(relu_after_sum=True),
        "skip connection is missing": _block_class(skip=False),
        "batch normalization": _block_class(norm="batch"),
        "zero padding": _block_class(pad="constant"),
        "affine=True": _block_class(affine=False),
    }),
    "overlap_counts": (editing.check_overlap_counts, _overlap_counts, {
        "(yours is size * stride": lambda n, k, s: _overlap_counts(n, k, s, side=n * s),
        "placed 1 pixel apart": lambda n, k, s: _overlap_counts(n, k, s, step=1),
        "a 1-D result": lambda n, k, s: _overlap_counts(n, k, s)[0],
        "values differ": lambda n, k, s: torch.ones((n - 1) * s + k, (n - 1) * s + k),
    }),
    "perceptual_loss": (editing.check_perceptual_loss, _perceptual_loss, {
        "compares pixels": lambda *a: _perceptual_loss(*a, content="pixels"),
        "compares layer 'relu1_1'": lambda *a: _perceptual_loss(*a, content="relu1_1"),
        "one Gram matrix for the whole batch": lambda *a: _perceptual_loss(*a, one_gram=True),
        "summed over the images of the batch": lambda *a: _perceptual_loss(*a, batch_sum=True),
        "the content term is missing": lambda *a: _perceptual_loss(*a, drop="content"),
        "the style term is missing": lambda *a: _perceptual_loss(*a, drop="style"),
        "the TV term is missing": lambda *a: _perceptual_loss(*a, drop="tv"),
        "not weighted": lambda *a: _perceptual_loss(*a, weighted=False),
        "gradient with respect to the outputs is not": lambda *a: _perceptual_loss(*a, detach_output_content=True),
        "no graph back to the outputs": lambda *a: _perceptual_loss(*a).detach(),
        "return the loss as a tensor": lambda *a: _perceptual_loss(*a).item(),
        "KeyError": lambda vgg, o, p, g, c: style_loss(vgg(o), {"relu5_1": g["relu1_1"]}),
    }),
    "train_step": (editing.check_train_step, _train_step, {
        "the gradients were not zero": lambda *a: _train_step(*a, zero_grad=False),
        "step() ran while the network had no gradient": lambda *a: _train_step(*a, step_first=True),
        "a new optimizer each step": lambda *a: _train_step(*a, own_optimizer=True),
        "the loss network's weights changed": lambda *a: _train_step(*a, train_vgg=True),
        "no path back to the network's weights": lambda *a: _train_step(*a, detach=True),
        "not the step's loss": lambda *a: _train_step(*a, loss_after=True),
        "changed `photos` in place": lambda net, opt, vgg, photos, *a: _train_step(net, opt, vgg, photos.mul_(0.5), *a),
    }),
}


@pytest.mark.parametrize("name", CASES)
def test_a_check_passes_the_answer_and_waits_for_the_stub(name, capsys):
    check, answer, _ = CASES[name]
    assert _verdict(check, answer, capsys) == (True, f"✅ {name}: correct.\n")
    stub = _block_class(stub=True) if name == "residual_block" else _stub
    passed, out = _verdict(check, stub, capsys)
    assert not passed and out.startswith(f"⏳ {name}: not done yet. Exercise "), out


@pytest.mark.parametrize("name, words", [(n, w) for n, (_, _, m) in CASES.items() for w in m])
def test_a_check_names_the_mistake(name, words, capsys):
    check, _, mistakes = CASES[name]
    passed, out = _verdict(check, mistakes[words], capsys)
    assert not passed and out.startswith(f"❌ {name}: ") and words in out, out


def test_the_library_s_residual_block_passes_and_block_forward_is_it():
    """block_forward without switches is ResidualBlock's forward, so the named variants differ by one thing each."""
    assert editing.check_residual_block(ResidualBlock)
    block, x = editing._reference_block(4), torch.randn(2, 4, 6, 7)
    assert torch.allclose(editing.block_forward(block, x), block(x), atol=1e-6)


def test_the_loss_case_makes_every_missing_or_unweighted_term_show():
    vgg, output, photos, target_grams, config, _ = editing.loss_case()
    terms = perceptual_loss_terms(vgg, output, photos, target_grams, config)
    assert [round(v.item(), 4) for v in terms.values()] == [1.0, 2.0, 4.0]


def test_the_overlap_reference_is_a_checkerboard_for_kernel_3_stride_2():
    counts = editing.overlap_counts(3, 3, 2)
    assert counts.shape == (7, 7) and set(counts.unique().tolist()) == {1.0, 2.0, 4.0}
    assert editing.overlap_counts(4, 4, 2)[2:-2, 2:-2].unique().tolist() == [4.0]  # stride divides kernel: even


def test_the_step_check_freezes_only_parameters_instance_norm_cancels():
    """The frozen parameters are the biases of convs followed by an instance norm (and one IN shift followed by a
    conv and another IN): their gradient is rounding noise, which Adam would turn into +-lr steps."""
    net, *_ = editing._tiny_training()
    frozen = [name for name, p in net.named_parameters() if not p.requires_grad]
    assert frozen and all(name.endswith("bias") for name in frozen) and "head.1.bias" not in frozen
    assert all(name.endswith(".1.bias") for name in frozen if name != "residual.0.body.1.2.bias")


def test_strict_mode_raises_on_a_named_mistake(monkeypatch):
    monkeypatch.setenv("COURSE_CHECKS_STRICT", "1")
    with pytest.raises(CheckFailed, match="a ReLU after the sum"):
        editing.check_residual_block(_block_class(relu_after_sum=True))


def test_the_checks_leave_the_global_random_state_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    editing.check_train_step(_train_step)
    editing.check_residual_block(ResidualBlock)
    assert torch.equal(torch.rand(3), expected)
