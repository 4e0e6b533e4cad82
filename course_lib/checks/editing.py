"""Self-checks of the feed-forward editing chapter's exercises (05_perceptual_editing), built on
`course_lib.checks.compare`: instance normalization, the transformation network's residual block, the kernel overlap
of a transposed convolution, Johnson et al.'s perceptual loss for a batch, and one Adam step of the network.

The loss and step checks run a tiny VGG19 with random weights (`checks.content.tiny_vgg`) and a TransformNet of width
2 on 12x12 images: fast, deterministic, no download.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import diagnose, not_done, report
from .content import TINY_LAYERS, tiny_vgg
from .mistakes import compare_naming_mistakes, matching_mistake

__all__ = ["check_instance_norm", "check_residual_block", "check_overlap_counts", "check_perceptual_loss",
           "check_train_step", "overlap_counts", "block_forward", "loss_case"]


# ---------------------------------------------------------------- instance normalization
def _normalize(x: torch.Tensor, dims: tuple[int, ...], eps: float, *, correction: int = 0, eps_inside: bool = True,
               power: float = 0.5) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) over `dims`, with a switch for each classic mistake."""
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, correction=correction)
    scale = (var + eps) ** power if eps_inside else var ** power + eps
    return (x - mean) / scale


def check_instance_norm(fn: Callable) -> bool:
    """fn(x (B, C, H, W), eps) -> (x - mu) / sqrt(sigma^2 + eps) with mu, sigma^2 the mean and the biased variance of
    each image's each channel over its H x W positions (Ulyanov et al. 2016; `F.instance_norm` without affine)."""
    def make_inputs(gen):
        scale = torch.tensor([1.0, 0.3, 0.002, 2.0], dtype=torch.float64).view(1, 4, 1, 1)  # a channel where eps counts
        shift = torch.randn(3, 4, 1, 1, generator=gen, dtype=torch.float64)
        return torch.randn(3, 4, 5, 6, generator=gen, dtype=torch.float64) * scale + shift, 1e-5

    def reference(x, eps):
        return F.instance_norm(x, eps=eps)

    mistakes = {
        "the statistics are taken over the batch too (dims 0, 2, 3): that is batch normalization. Instance norm "
        "normalizes each image's each channel over its own H x W positions (dims 2, 3).":
            lambda x, eps: _normalize(x, (0, 2, 3), eps),
        "the statistics are taken over the channels too (dims 1, 2, 3): that is layer normalization. Instance norm "
        "keeps one mean and variance per image and per channel (dims 2, 3).":
            lambda x, eps: _normalize(x, (1, 2, 3), eps),
        "that is the unbiased variance (divided by H W - 1): normalization layers use the biased one, the mean of "
        "the squared deviations (unbiased=False, or correction=0).":
            lambda x, eps: _normalize(x, (2, 3), eps, correction=1),
        "eps is missing: add it to the variance under the square root; it keeps a nearly flat channel from being "
        "blown up (or divided by 0).": lambda x, eps: _normalize(x, (2, 3), 0.0),
        "eps is added to the standard deviation: it belongs under the square root, sqrt(var + eps).":
            lambda x, eps: _normalize(x, (2, 3), eps, eps_inside=False),
        "divided by the variance: divide by the standard deviation sqrt(var + eps).":
            lambda x, eps: _normalize(x, (2, 3), eps, power=1.0),
        "only the mean is subtracted: divide by sqrt(var + eps) too.":
            lambda x, eps: x - x.mean(dim=(2, 3), keepdim=True),
    }
    return compare_naming_mistakes("instance_norm", fn, reference, make_inputs, mistakes, atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------- the residual block
def block_forward(block: nn.Module, x: torch.Tensor, *, pad: str = "reflect", norm: str = "instance",
                  relu: str = "inside", skip: bool = True) -> torch.Tensor:
    """`transform_net.ResidualBlock`'s forward written out from its weights, with a switch per classic mistake:
    pad "reflect" | "constant" (zeros); norm "instance" | "batch" | "none"; relu "inside" (after the first IN),
    "after sum", "both convs", "before norm", "none"; skip False drops the "x +"."""
    (_, conv1, norm1, _), (_, conv2, norm2) = block.body

    def stage(h, conv, norm_layer, relu_at):  # relu_at: "after norm", "before norm" or None
        h = F.conv2d(F.pad(h, (1, 1, 1, 1), mode=pad), conv.weight, conv.bias)
        h = h.relu() if relu_at == "before norm" else h
        if norm == "instance":
            h = F.instance_norm(h, weight=norm_layer.weight, bias=norm_layer.bias, eps=norm_layer.eps)
        elif norm == "batch":
            h = F.batch_norm(h, None, None, norm_layer.weight, norm_layer.bias, training=True, eps=norm_layer.eps)
        return h.relu() if relu_at == "after norm" else h

    first = None if relu == "none" else "before norm" if relu == "before norm" else "after norm"
    h = stage(x, conv1, norm1, first)
    h = stage(h, conv2, norm2, "after norm" if relu == "both convs" else None)
    y = x + h if skip else h
    return y.relu() if relu == "after sum" else y


def _reference_block(channels: int, seed: int = 0) -> nn.Module:
    """A ResidualBlock whose every weight is random (seeded), the instance norms' scales and shifts included."""
    from ..transform_net import ResidualBlock
    block, gen = ResidualBlock(channels), torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.4 if p.dim() > 1 else 1.0))
    return block


_LAYOUT = ("conv1 weight (C, C, 3, 3), conv1 bias (C,), norm1 weight (C,), norm1 bias (C,), then the same for conv2 "
           "and norm2")


def _copy_weights(reference: nn.Module, mine: nn.Module) -> str | None:
    """Copy the reference block's weights into `mine`, in registration order; a message when they do not fit."""
    ours, theirs = list(reference.parameters()), list(mine.parameters())
    if [p.shape for p in ours] != [p.shape for p in theirs]:
        shapes = ", ".join(str(tuple(p.shape)) for p in theirs) or "none"
        return (f"your block's parameters do not line up with the reference's: expected, in the order the layers are "
                f"created, {_LAYOUT}; yours are {shapes}. Keep the layers of __init__ as given (InstanceNorm2d needs "
                f"affine=True for its learned scale and shift, the convs keep their bias).")
    with torch.no_grad():
        for a, b in zip(ours, theirs):
            b.copy_(a)
    return None


def check_residual_block(block_class: Callable) -> bool:
    """block_class(channels) -> an nn.Module computing y = x + IN(conv(ReLU(IN(conv(x))))) with 3x3 convs on
    reflection-padded inputs, its layers created in the order conv1, norm1, conv2, norm2 (as given): compared with
    `transform_net.ResidualBlock` holding the same (random) weights."""
    name, channels = "residual_block", 4
    try:
        with torch.random.fork_rng(devices=[]):  # the layers' initial draws leave the notebook's random state alone
            reference, mine = _reference_block(channels), block_class(channels)
    except NotImplementedError as error:
        return not_done(name, block_class, error)
    except Exception as e:  # the student's code may fail in any way; say how
        return report(name, f"creating your block raised {type(e).__name__}: {e}")
    if not isinstance(mine, nn.Module):
        return report(name, f"expected an nn.Module, got {type(mine).__name__}.")
    problem = _copy_weights(reference, mine)
    if problem is not None:
        return report(name, problem)
    mine.train()

    def make_inputs(gen):
        return (torch.randn(2, channels, 6, 7, generator=gen),)

    def variant(**switches):
        return lambda x: block_forward(reference, x, **switches)

    mistakes = {
        "a ReLU after the sum: the block's output is x + body(x), with no ReLU after the addition (Johnson et al.'s "
        "supplementary material, after Gross & Wilber 2016), so it can be the identity.": variant(relu="after sum"),
        "the skip connection is missing: return x + body(x), not body(x).": variant(skip=False),
        "batch normalization: the statistics mix the images of the batch. Normalize each image and channel over its "
        "own positions (instance norm).": variant(norm="batch"),
        "zero padding: pad by reflection (F.pad(..., mode='reflect')), which draws no dark frame at the border.":
            variant(pad="constant"),
        "a ReLU after the second convolution too: only the first conv-norm is followed by a ReLU.":
            variant(relu="both convs"),
        "the ReLU is missing: ReLU after the first instance norm.": variant(relu="none"),
        "the ReLU comes before the normalization: conv, instance norm, then ReLU.": variant(relu="before norm"),
        "the normalization is missing: instance norm after each convolution.": variant(norm="none"),
    }
    def forward(x):  # the learner's block as a function, for compare
        return mine(x)

    return compare_naming_mistakes(name, forward, reference, make_inputs, mistakes, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- the checkerboard of a transposed conv
def overlap_counts(size: int, kernel: int, stride: int) -> torch.Tensor:
    """How many kernel taps of ConvTranspose2d(kernel, stride) land on each output pixel, a square tensor of
    (size - 1) * stride + kernel pixels per side: the transposed conv itself, with a kernel of ones and no bias, on
    an all-ones size x size input (the reference of exercise 3)."""
    return F.conv_transpose2d(torch.ones(1, 1, size, size), torch.ones(1, 1, kernel, kernel), stride=stride)[0, 0]


OVERLAP_CASES = ((3, 3, 2), (4, 4, 2), (3, 2, 2), (4, 3, 1), (3, 5, 3), (2, 1, 2))


def check_overlap_counts(fn: Callable) -> bool:
    """fn(size, kernel, stride) -> a ((size - 1) * stride + kernel)-square tensor: at each output pixel of a
    transposed conv of a size x size input, how many (input pixel, kernel tap) pairs land there."""
    name = "overlap_counts"
    for size, kernel, stride in OVERLAP_CASES:
        expected = overlap_counts(size, kernel, stride)
        try:
            out = fn(size, kernel, stride)
        except NotImplementedError as error:
            return not_done(name, fn, error)
        except Exception as e:  # the student's code may fail in any way; say how
            return report(name, f"your function raised {type(e).__name__} on size={size}, kernel={kernel}, "
                                f"stride={stride}: {e}")
        case = f"size={size}, kernel={kernel}, stride={stride}"
        if not isinstance(out, torch.Tensor):
            return report(name, f"return a tensor of counts, got {type(out).__name__} ({case}).")
        side = expected.shape[-1]
        if out.dim() == 1:
            return report(name, f"a 1-D result ({case}): return the {side} x {side} counts of the 2-D layer (the "
                                f"count at (i, j) is the product of the 1-D counts at i and at j).")
        if out.dim() == 2 and out.shape[0] == out.shape[1] != side:
            wrong = out.shape[0]
            why = {size * stride: "size * stride: the last input pixel's kernel still reaches kernel - stride pixels "
                                  "further",
                   size - 1 + kernel: "as if the kernels were placed 1 pixel apart: input pixel i's kernel starts at "
                                      "output pixel i * stride"}.get(wrong, "")
            return report(name, f"{wrong} x {wrong} counts for {case}; a transposed conv's output has "
                                f"(size - 1) * stride + kernel = {side} pixels per side"
                                + (f" (yours is {why})." if why else "."))
        problem = diagnose(out.double(), expected, atol=1e-6)
        if problem is not None:
            return report(name, f"{case}: {problem} Expected\n{expected.int().tolist()}")
    return report(name, None)


# ---------------------------------------------------------------- the perceptual loss for a batch
def loss_case():
    """A tiny random VGG, a batch of 2 photos and outputs (12x12), the painting's Gram matrices, a FastStyleConfig
    whose weights make the three terms 1, 2 and 4 (so every sum of some, and every swap, differs), and the raw
    (unweighted) terms. The content layer is also a style layer, as relu2_2 is in Johnson et al.'s recipe."""
    from ..fast_style import FastStyleConfig
    from ..perceptual import content_loss
    from ..style import gram_matrix, style_loss, tv_loss

    gen = torch.Generator().manual_seed(5)
    vgg = tiny_vgg()
    photos, output = torch.rand(2, 3, 12, 12, generator=gen), torch.rand(2, 3, 12, 12, generator=gen)
    layers = dict(content_layers=("conv1_2",), style_layers=("relu1_1", "conv1_2"))
    with torch.no_grad():
        painting = vgg(torch.rand(1, 3, 12, 12, generator=gen))
        target_grams = {n: gram_matrix(painting[n]) for n in layers["style_layers"]}
        features, targets = vgg(output), vgg(photos)
        raw = (content_loss(features, {"conv1_2": targets["conv1_2"]}), style_loss(features, target_grams),
               tv_loss(output))
    config = FastStyleConfig(content_weight=1.0 / raw[0].item(), style_weight=2.0 / raw[1].item(),
                             tv_weight=4.0 / raw[2].item(), image_size=12, style_size=12, batch_size=2, lr=0.01,
                             **layers)
    return vgg, output, photos, target_grams, config, raw


def _loss_mistakes(vgg, output, photos, target_grams, config, raw) -> dict[str, Callable]:
    from ..style import gram_matrix
    c, s, t = raw
    a, b, g = config.content_weight, config.style_weight, config.tv_weight
    with torch.no_grad():
        f_out, f_ph = vgg(output), vgg(photos)

    def batch_gram(x):  # one Gram matrix for the whole batch: (1, C, C)
        return gram_matrix(x.transpose(0, 1).reshape(1, x.shape[1], -1, 1))

    mixed = sum(((batch_gram(f_out[n]) - target) ** 2).mean() for n, target in target_grams.items())
    mistakes = {
        "the content term compares pixels: compare the VGG features of the outputs with the photos' features at "
        "config.content_layers.": lambda: a * F.mse_loss(output, photos) + b * s + g * t,
        "one Gram matrix for the whole batch: take each image's own Gram matrix, compare each with the painting's, "
        "and average.": lambda: a * c + b * mixed + g * t,
        "summed over the images of the batch: the objective is an expectation over photos, so average (a mean over "
        "every entry, as content_loss and style_loss do).": lambda: 2 * (a * c + b * s + g * t),
        "the content term is missing: add content_weight * the content loss.": lambda: b * s + g * t,
        "the style term is missing: add style_weight * the style loss.": lambda: a * c + g * t,
        "the TV term is missing: add tv_weight * tv_loss(output).": lambda: a * c + b * s,
        "the terms are not weighted: content_weight, style_weight and tv_weight multiply their terms.":
            lambda: c + s + t,
    }
    for other in TINY_LAYERS:
        if other not in config.content_layers:
            mistakes[f"the content term compares layer {other!r}: use config.content_layers."] = \
                lambda other=other: a * F.mse_loss(f_out[other], f_ph[other]) + b * s + g * t
    return {message: lambda fn=fn: torch.stack([torch.as_tensor(fn())]).reshape(1) for message, fn in mistakes.items()}


def check_perceptual_loss(fn: Callable) -> bool:
    """fn(vgg, output (B, 3, S, S), photos (B, 3, S, S), target_grams, config) -> Johnson et al.'s loss for the batch,
    a 0-dim tensor with a graph to `output`: `sum(fast_style.perceptual_loss_terms(...).values())`, compared in value
    and in its gradient with respect to the outputs on a tiny random VGG."""
    from ..fast_style import perceptual_loss_terms
    name = "perceptual_loss"
    with torch.random.fork_rng(devices=[]):  # building the tiny VGG draws from the global generator
        vgg, output, photos, target_grams, config, raw = loss_case()
    reference_output = output.clone().requires_grad_(True)
    expected = sum(perceptual_loss_terms(vgg, reference_output, photos, target_grams, config).values())
    expected.backward()
    mine, photos_copy = output.clone().requires_grad_(True), photos.clone()
    try:
        loss = fn(vgg, mine, photos_copy, target_grams, config)
    except NotImplementedError as error:
        return not_done(name, fn, error)
    except KeyError as e:
        return report(name, f"KeyError {e}: the style layers are the keys of target_grams (config.style_layers), the "
                            f"content layers config.content_layers.")
    except Exception as e:  # the student's code may fail in any way; say how
        return report(name, f"your function raised {type(e).__name__}: {e}")
    if not torch.equal(photos_copy, photos) or not torch.equal(mine.detach(), output):
        return report(name, "your function changed its input in place; compute new tensors instead.")
    if not isinstance(loss, torch.Tensor):
        return report(name, f"return the loss as a tensor (loss.backward() trains the network), got "
                            f"{type(loss).__name__}.")
    if loss.numel() != 1:
        return report(name, f"return the total loss, a single number; got shape {tuple(loss.shape)}.")
    if diagnose(loss.detach().reshape(1), expected.detach().reshape(1), atol=0.0, rtol=1e-4) is not None:
        return report(name, matching_mistake(loss.detach().reshape(1), (),
                                             _loss_mistakes(vgg, output, photos, target_grams, config, raw),
                                             atol=0.0, rtol=1e-4)
                      or f"the loss is {loss.item():.5g}, expected {expected.item():.5g}.")
    if not loss.requires_grad:
        return report(name, "the value is right but it has no graph back to the outputs (detached, or computed under "
                            "torch.no_grad()?): the network learns through this gradient.")
    loss.backward()
    if mine.grad is None or diagnose(mine.grad, reference_output.grad, atol=1e-9, rtol=1e-3) is not None:
        return report(name, "the value is right but its gradient with respect to the outputs is not. The photos' "
                            "features are the constant target (no graph needed); the outputs' features must keep "
                            "theirs: is a part of the outputs' side detached, or are the two swapped?")
    return report(name, None)


# ---------------------------------------------------------------- one training step
DEAD_GRADIENT = 1e-4  # below this a parameter's gradient is rounding noise (see _tiny_training)
STEP_ATOL = 1e-4  # 1% of the check's Adam step (lr 0.01): another order of the same float32 sums stays far below


def _tiny_training(seed: int = 0):
    """A TransformNet of width 2 (initial weights seeded without touching the global generator), a trainable tiny
    VGG (so that a step that trains it shows), the loss case's config and grams, and two batches of photos.

    Instance norm subtracts each channel's mean, so a constant added just before it (the bias of the conv before it,
    the shift of an IN followed by a conv and another IN) gets a zero gradient, in floats ~1e-7 of rounding noise
    (the live ones are > 1e-4 here). Adam divides a gradient by its own size, so that noise would move those weights
    by +-lr in an order-dependent way: they are frozen here (they cannot change the output anyway)."""
    from ..fast_style import perceptual_loss_terms
    from ..transform_net import TransformNet, TransformNetConfig
    with torch.random.fork_rng(devices=[]):  # seeded, and the notebook's random state left alone
        vgg, _, _, target_grams, config, _ = loss_case()
        torch.manual_seed(seed)
        net = TransformNet(TransformNetConfig(channels=2, num_residual=1))
    gen = torch.Generator().manual_seed(seed + 1)
    batches = [torch.rand(2, 3, 12, 12, generator=gen) for _ in range(2)]
    sum(perceptual_loss_terms(vgg, net(batches[0]), batches[0], target_grams, config).values()).backward()
    for p in net.parameters():
        p.requires_grad_(bool(p.grad.abs().max() > DEAD_GRADIENT))
        p.grad = None
    return net, vgg.requires_grad_(True), target_grams, config, batches


def _flat(net: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


class _StepSpy:
    """Watches one call of the learner's step: whether a gradient reached the network, and each optimizer.step()
    taken while the network had no gradient."""

    def __init__(self, net: nn.Module, optimizer: torch.optim.Optimizer):
        self.steps, self.without_grad, self.reached_net, self.net = 0, 0, False, net
        self.handles = [optimizer.register_step_pre_hook(lambda *_: self._on_step())]
        self.handles += [p.register_hook(self._on_grad) for p in net.parameters() if p.requires_grad]

    def _on_grad(self, grad):
        self.reached_net = True

    def _on_step(self):
        self.steps += 1
        if all(p.grad is None or not p.grad.any() for p in self.net.parameters()):
            self.without_grad += 1

    def close(self):
        for handle in self.handles:
            handle.remove()


def _learner_step(fn, net, optimizer, vgg, photos, target_grams, config):
    """(loss as a float, problem): run the learner's step once, watching its optimizer."""
    spy, photos_copy = _StepSpy(net, optimizer), photos.clone()
    vgg_before, net_before = _flat(vgg), _flat(net)
    try:
        out = fn(net, optimizer, vgg, photos_copy, target_grams, config)
    except NotImplementedError as error:
        return None, error
    except RuntimeError as e:
        if "does not require grad" in str(e):
            return None, ("the loss has no path back to the network's weights: is the output detached, or computed "
                          "under torch.no_grad()?")
        return None, f"your function raised RuntimeError: {str(e).splitlines()[0]}"
    except Exception as e:  # the student's code may fail in any way; say how
        return None, f"your function raised {type(e).__name__}: {e}"
    finally:
        spy.close()
    if not torch.equal(photos_copy, photos):
        return None, "your function changed `photos` in place; compute new tensors instead."
    if not torch.equal(_flat(vgg), vgg_before):
        return None, ("the loss network's weights changed: only the transformation network learns, VGG19 stays "
                      "fixed (the optimizer you are given holds the network's weights).")
    moved = not torch.equal(_flat(net), net_before)
    if spy.steps == 0:
        return None, ("your step did not call the `optimizer` it was given" + (
            ": a new optimizer each step forgets Adam's running averages of the gradient. Use `optimizer`."
            if moved else ", and the network's weights did not change. Call optimizer.step() after loss.backward()."))
    if not spy.reached_net:
        return None, ("the loss has no path back to the network's weights: is the output detached, or computed under "
                      "torch.no_grad()?")
    if spy.without_grad == spy.steps:
        return None, ("optimizer.step() ran while the network had no gradient: step after loss.backward(), and zero "
                      "the gradients before the backward, not between backward and step.")
    try:
        return torch.as_tensor(out).detach().item(), None
    except (TypeError, ValueError, RuntimeError) as e:
        return None, f"return the loss, a number or a one-element tensor: {e}"


def _without_zero_grad(net0, vgg, target_grams, config, batches) -> torch.Tensor:
    """The weights after Adam steps on `batches` that never zero the gradients (each backward adds to the last)."""
    from ..fast_style import perceptual_loss_terms
    net = copy.deepcopy(net0)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    for photos in batches:
        sum(perceptual_loss_terms(vgg, net(photos), photos, target_grams, config).values()).backward()
        optimizer.step()
    return _flat(net)


def check_train_step(fn: Callable) -> bool:
    """fn(net, optimizer, vgg, photos (B, 3, S, S), target_grams, config) -> the loss before the update: one Adam step
    of the transformation network on Johnson et al.'s loss. Two steps on identical copies, compared weight by weight
    with `fast_style.train_step`."""
    from ..fast_style import FastStyleResult, train_step
    name = "train_step"
    net0, vgg, target_grams, config, batches = _tiny_training()
    net, reference = copy.deepcopy(net0), copy.deepcopy(net0)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    run = FastStyleResult(config, reference, torch.optim.Adam(reference.parameters(), lr=config.lr))
    for number, photos in enumerate(batches, 1):
        start = _flat(net)
        loss, problem = _learner_step(fn, net, optimizer, vgg, photos, target_grams, config)
        if isinstance(problem, NotImplementedError):
            return not_done(name, fn, problem)
        if problem is not None:
            return report(name, problem)
        expected = train_step(run, photos, target_grams, vgg)
        run.steps += 1
        ours, theirs = _flat(net), _flat(reference)
        if not torch.isfinite(ours).all():
            return report(name, "your step made weights NaN or inf.")
        if not torch.allclose(ours, theirs, atol=STEP_ATOL, rtol=0.0):
            err, size = (ours - theirs).abs().max().item(), (theirs - start).abs().max().item()
            if number > 1 and torch.allclose(ours, _without_zero_grad(net0, vgg, target_grams, config, batches),
                                             atol=STEP_ATOL, rtol=0.0):
                return report(name, "your first step matches train_step but the second does not: the gradients were "
                                    "not zero before the backward (.grad adds up across backward calls). Call "
                                    "optimizer.zero_grad() in every step, before loss.backward().")
            return report(name, f"your update differs from train_step's by up to {err:.3g} in a weight (a step moves "
                                f"them by up to {size:.3g}): is the loss Johnson et al.'s, on net(photos)?")
        if abs(loss - expected["loss"]) > 1e-4 * abs(expected["loss"]):
            return report(name, f"the weights are right, but the returned loss {loss:.5g} is not the step's loss "
                                f"{expected['loss']:.5g} (the loss computed before the update).")
    return report(name, None)
