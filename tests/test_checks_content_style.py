"""course_lib.checks.content (03) and .style (04): each check passes the right answer, names the classic wrong
ones, and says "not done yet" for the exercise edition's stub."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib.checks import CheckFailed, content, style
from course_lib.perceptual import LAYER_NAMES, caffe_preprocess, content_loss, invert_features, receptive_field
from course_lib.style import StyleConfig, _gatys_loss, gatys_loss_terms, gram_matrix, style_loss, tv_loss


@pytest.fixture(autouse=True)
def lenient(monkeypatch):
    monkeypatch.setenv("COURSE_CHECKS_STRICT", "0")


def _stub(*args):
    raise NotImplementedError("Exercise my_thing: replace this line with your code (the hint above shows the way).")


def _verdict(check, fn, capsys) -> tuple[bool, str]:
    passed = check(fn)
    return passed, capsys.readouterr().out


def _bgr_mean():
    return torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)


# ---------------------------------------------------------------- 03: the reference answers of each exercise
def _inversion_objective(vgg, image, target, layer):
    return F.mse_loss(vgg(image)[layer], target)


def _invert(vgg, target_image, layer, init, steps, lr, *, zero_grad=True, sign=1.0, clamp=True, detach_target=True,
            optimize_weights=False, pixels_require_grad=True):
    """The solution of exercise 5, with a switch for each mistake the check names."""
    if detach_target:
        with torch.no_grad():
            target = vgg(target_image)[layer]
    else:
        target = vgg(target_image)[layer]
    image = init.clone().requires_grad_(pixels_require_grad)
    optimizer = torch.optim.Adam(vgg.parameters() if optimize_weights else [image], lr=lr)
    for _ in range(steps):
        if zero_grad:
            optimizer.zero_grad()
        (sign * _inversion_objective(vgg, image, target, layer)).backward()
        optimizer.step()
        if clamp:
            with torch.no_grad():
                image.clamp_(0, 1)
    return image.detach()


CONTENT_CASES = {
    "caffe_preprocess": (content.check_caffe_preprocess, caffe_preprocess, {
        "still in RGB order": lambda x: x * 255.0 - _bgr_mean(),
        "mean pixel is subtracted in RGB order": lambda x: x.flip(1) * 255.0 - _bgr_mean().flip(1),
        "still on the [0, 1] scale": lambda x: x.flip(1) - _bgr_mean(),
        "mean pixel is not subtracted": lambda x: x.flip(1) * 255.0,
        "wrong shape": lambda x: (x.flip(1) * 255.0 - _bgr_mean()).mean(1),
    }),
    "content_loss": (content.check_content_loss, lambda a, b: ((a - b) ** 2).mean(), {
        "Gatys et al.'s 1/2 sum": lambda a, b: 0.5 * ((a - b) ** 2).sum(),
        "sum of the squared differences": lambda a, b: ((a - b) ** 2).sum(),
        "mean absolute difference": lambda a, b: (a - b).abs().mean(),
        "root of the loss": lambda a, b: F.mse_loss(a, b).sqrt(),
        "wrong sign": lambda a, b: -((a - b) ** 2).mean(),
        "changed its input in place": lambda a, b: (a.sub_(b) ** 2).mean(),
    }),
    "inversion_objective": (content.check_inversion_objective, _inversion_objective, {
        "features of layer 'relu1_1'": lambda vgg, x, t, layer: F.mse_loss(vgg(x)["relu1_1"], t),
        "the distance (a square root)": lambda vgg, x, t, layer: F.mse_loss(vgg(x)[layer], t).sqrt(),
        "Python number (.item()?)": lambda vgg, x, t, layer: F.mse_loss(vgg(x)[layer], t).item(),
        "no graph back to the image": lambda vgg, x, t, layer: F.mse_loss(vgg(x.detach())[layer], t),
        "off by a constant factor": lambda vgg, x, t, layer: F.mse_loss(vgg(x)[layer], t, reduction="sum"),
        "raised KeyError": lambda vgg, x, t, layer: F.mse_loss(vgg(x)["conv4_2"], t),
        "NaN": lambda vgg, x, t, layer: F.mse_loss(vgg(x)[layer], t) * torch.tensor(float("nan")),
    }),
    "invert": (content.check_invert, _invert, {
        "gradients were never zeroed": lambda *a: _invert(*a, zero_grad=False),
        "gradient ascent": lambda *a: _invert(*a, sign=-1.0),
        "pixels left [0, 1]": lambda *a: _invert(*a, clamp=False),
        "graph of the target features": lambda *a: _invert(*a, detach_target=False),
        "network's weights changed": lambda *a: _invert(*a, optimize_weights=True),
        "came back as it started": lambda *a: _invert(*a, pixels_require_grad=False),
        "you took 5 steps": lambda vgg, x0, layer, init, steps, lr: _invert(vgg, x0, layer, init, steps + 1, lr),
        "you matched layer 'relu1_1'": lambda vgg, x0, layer, init, steps, lr: _invert(vgg, x0, "relu1_1", init,
                                                                                          steps, lr),
        "changed `init` in place": lambda vgg, x0, layer, init, steps, lr: init.requires_grad_(False).add_(0.1),
        "return the image detached": lambda *a: _invert(*a).requires_grad_(True),
    }),
}


def test_receptive_field_check_passes_the_reference_and_points_at_the_pooling(capsys):
    assert _verdict(content.check_receptive_field, receptive_field, capsys)[0]

    def forgets_the_stride(layer):  # every conv adds 2 pixels, as if there were no pooling
        return 1 + 2 * sum(n.startswith("conv") for n in LAYER_NAMES[:LAYER_NAMES.index(layer) + 1])

    passed, out = _verdict(content.check_receptive_field, forgets_the_stride, capsys)
    assert not passed and "pool1: expected 6 pixels, got 5" in out and "after a 2x2 pooling" in out
    assert _verdict(content.check_receptive_field, _stub, capsys)[1].startswith("⏳ receptive_field: not done yet.")


def test_the_mistake_loop_without_mistakes_is_the_library_s_adam_inversion():
    """The check names mistakes by rerunning its own loop with one switch flipped: unflipped, it is the library's."""
    vgg, gen = content.tiny_vgg(), torch.Generator().manual_seed(3)
    photo, init = torch.rand(1, 3, 12, 12, generator=gen), torch.rand(1, 3, 12, 12, generator=gen)
    ours = content._adam_inversion(vgg, photo, "conv1_2", init, 3, 0.1)
    library = invert_features(vgg, photo, "conv1_2", steps=3, optimizer="adam", lr=0.1, init=init, progress=False)
    assert torch.allclose(ours, library.image, atol=1e-6) and not torch.equal(ours, init)


def test_strict_mode_raises_on_a_named_mistake(monkeypatch):
    monkeypatch.setenv("COURSE_CHECKS_STRICT", "1")
    with pytest.raises(CheckFailed, match="gradients were never zeroed"):
        content.check_invert(lambda *a: _invert(*a, zero_grad=False))


# ---------------------------------------------------------------- 04
def _layer_style_loss(features, target_grams, layer_weights):
    return sum(layer_weights[n] * ((gram_matrix(features[n]) - a) ** 2).mean() for n, a in target_grams.items())


def _make_closure(image, optimizer, vgg, content_targets, target_grams, config, *, zero_grad=True, backward=True,
                  drop=None, swap=False, step=False, total=True):
    """The solution of exercise 5, with a switch for each mistake the check names."""
    def closure():
        if zero_grad:
            optimizer.zero_grad()
        features = vgg(image)
        alpha, beta = config.content_weight, config.style_weight
        if swap:
            alpha, beta = beta, alpha
        terms = {"content": alpha * content_loss(features, content_targets),
                 "style": beta * style_loss(features, target_grams), "TV": config.tv_weight * tv_loss(image)}
        loss = sum(v for k, v in terms.items() if k != drop)
        if backward:
            loss.backward()
        if step:
            optimizer.step()
        return loss if total else terms["style"]
    return closure


STYLE_CASES = {
    "gram_matrix": (style.check_gram_matrix, gram_matrix, {
        "not normalized": lambda x: gram_matrix(x) * x[0].numel(),
        "divided by H W only": lambda x: gram_matrix(x) * x.shape[1],
        "wrong shape": lambda x: (lambda f: f.transpose(1, 2) @ f / x[0].numel())(x.flatten(2)),
    }),
    "style_loss": (style.check_style_loss, lambda x, a: ((gram_matrix(x) - a) ** 2).mean(), {
        "sum of the squared differences": lambda x, a: ((gram_matrix(x) - a) ** 2).sum(),
        "mean absolute difference": lambda x, a: (gram_matrix(x) - a).abs().mean(),
        "reduced to a single number": lambda x, a: ((gram_matrix(x) - a) ** 2).mean(dim=(1, 2)),
    }),
    "layer_style_loss": (style.check_layer_style_loss, _layer_style_loss, {
        "layer weights are ignored": lambda f, t, w: sum(((gram_matrix(f[n]) - a) ** 2).mean() for n, a in t.items()),
        "averaged the layers' terms": lambda f, t, w: _layer_style_loss(f, t, w) / len(t),
        "loop over the style layers": lambda f, t, w: sum(w[n] * ((gram_matrix(f[n]) - t[n]) ** 2).mean() for n in f),
    }),
    "tv_loss": (style.check_tv_loss, tv_loss, {
        "squared differences": lambda x: (x.diff(dim=-2) ** 2).mean() + (x.diff(dim=-1) ** 2).mean(),
        "only the vertical neighbours": lambda x: x.diff(dim=-2).abs().mean(),
        "only the horizontal neighbours": lambda x: x.diff(dim=-1).abs().mean(),
        "sums where means belong": lambda x: x.diff(dim=-2).abs().sum() + x.diff(dim=-1).abs().sum(),
    }),
    "make_closure": (style.check_make_closure, _make_closure, {
        "gradient doubled on the second call": lambda *a: _make_closure(*a, zero_grad=False),
        "no gradient on the image": lambda *a: _make_closure(*a, backward=False),
        "the content term is missing": lambda *a: _make_closure(*a, drop="content"),
        "the style term is missing": lambda *a: _make_closure(*a, drop="style"),
        "the TV term is missing": lambda *a: _make_closure(*a, drop="TV"),
        "weights are swapped (content_weight and style_weight)": lambda *a: _make_closure(*a, swap=True),
        "returned the style term alone": lambda *a: _make_closure(*a, total=False),
        "called optimizer.step()": lambda *a: _make_closure(*a, step=True),
        "return the closure": lambda *a: _make_closure(*a)(),
    }),
}


CASES = {**CONTENT_CASES, **STYLE_CASES}  # every check of chapters 03 and 04, by exercise name


@pytest.mark.parametrize("name", CASES)
def test_a_check_passes_the_answer_and_waits_for_the_stub(name, capsys):
    check, answer, _ = CASES[name]
    assert _verdict(check, answer, capsys) == (True, f"✅ {name}: correct.\n")
    passed, out = _verdict(check, _stub, capsys)
    assert not passed and out.startswith(f"⏳ {name}: not done yet. Exercise my_thing:")


@pytest.mark.parametrize("name, words", [(n, w) for n, (_, _, m) in CASES.items() for w in m])
def test_a_check_names_the_mistake(name, words, capsys):
    check, _, mistakes = CASES[name]
    passed, out = _verdict(check, mistakes[words], capsys)
    assert not passed and out.startswith(f"❌ {name}: ") and words in out, out


def test_the_closure_case_makes_every_missing_or_swapped_term_show():
    """Weighted terms 1, 2 and 4: no partial sum equals another, so the check can say which term is missing."""
    vgg, image, content_targets, target_grams, config, _ = style._closure_case()
    terms = gatys_loss_terms(vgg(image), image, content_targets, target_grams, config)
    assert [round(v.item(), 4) for v in terms.values()] == [1.0, 2.0, 4.0]


def test_stylize_s_loss_at_one_scale_is_gatys_loss_terms():
    """gatys_loss_terms, the closure check's reference, is what stylize minimizes."""
    vgg, gen = content.tiny_vgg(), torch.Generator().manual_seed(4)
    photo, painting, image = (torch.rand(1, 3, 12, 12, generator=gen) for _ in range(3))
    config = StyleConfig(content_layers=("conv1_2",), style_layers=("relu1_1",), tv_weight=0.5)
    with torch.no_grad():
        photo_features, painting_features = vgg(photo), vgg(painting)
    terms = _gatys_loss(vgg, photo, [painting], [1.0], config)(image)
    expected = gatys_loss_terms(vgg(image), image, {"conv1_2": photo_features["conv1_2"]},
                                {"relu1_1": gram_matrix(painting_features["relu1_1"])}, config)
    assert terms.keys() == expected.keys() == {"content", "style", "tv"}
    assert all(torch.allclose(terms[k], expected[k]) and terms[k] > 0 for k in terms)
