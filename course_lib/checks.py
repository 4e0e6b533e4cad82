"""Self-checks for the notebooks' exercises.

`check_<name>(fn)` runs the student's `fn` against the reference implementation on random inputs and
prints a clear pass, "not done yet" while `fn` still raises the exercise edition's NotImplementedError, or a
diagnostic that helps (wrong shape, wrong sign, off by a constant factor, wrong reduction, NaN) without
revealing the solution. It returns True/False and never raises, so an unfinished exercise does not stop the
notebook, and `yours_or_reference` lets later cells fall back to the course_lib reference. With
COURSE_CHECKS_STRICT=1 (set by `make test` for the solutions edition) anything but a pass raises
`AssertionError`, so the solutions prove that they pass.

Chapters add their checks in their own section below, built on `compare`.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import torch

__all__ = ["CheckFailed", "compare", "report", "not_done", "diagnose", "yours_or_reference"]


class CheckFailed(AssertionError):
    """Raised instead of printing when COURSE_CHECKS_STRICT=1."""


def _strict() -> bool:
    return os.environ.get("COURSE_CHECKS_STRICT", "0") == "1"


def report(name: str, problem: str | None, *, mark: str = "❌") -> bool:
    """Print the verdict for exercise `name`; `problem` is None on success."""
    if problem is None:
        print(f"✅ {name}: correct.")
        return True
    message = f"{mark} {name}: {problem}"
    if _strict():
        raise CheckFailed(message)
    print(message)
    return False


def not_done(name: str, fn: Callable, error: NotImplementedError) -> bool:
    """The verdict for an exercise whose code still raises NotImplementedError (the exercise edition's stub,
    whose message names the function to write)."""
    what = str(error) or f"`{getattr(fn, '__name__', 'your function')}` still raises NotImplementedError."
    return report(name, f"not done yet. {what} Then run the cell again.", mark="⏳")


def yours_or_reference(passed: bool, yours: Callable, reference: Callable) -> Callable:
    """`yours` once its check passed, else the course_lib `reference`, saying so: the cells below run either way."""
    if passed:
        return yours
    print(f"ℹ️ The cells below use course_lib's `{reference.__name__}` until `{yours.__name__}` passes its check.")
    return reference


def diagnose(out, expected: torch.Tensor, *, atol: float = 1e-5, rtol: float = 1e-4) -> str | None:
    """Why `out` is not `expected`, in words a student can act on; None when they match."""
    if not isinstance(out, torch.Tensor):
        return f"expected a torch.Tensor, got {type(out).__name__}."
    if out.shape != expected.shape:
        hint = ""
        if out.numel() == 1 and expected.numel() > 1:
            hint = " (did you reduce over a dimension that should be kept?)"
        elif expected.numel() == 1 and out.numel() > 1:
            hint = " (the result should be reduced to a single number)"
        return f"wrong shape: expected {tuple(expected.shape)}, got {tuple(out.shape)}{hint}."
    out, expected = out.detach().double().cpu(), expected.detach().double().cpu()
    if not torch.isfinite(out).all():
        return "the result contains NaN or inf (a log of 0, or a division by 0?)."
    if torch.allclose(out, expected, atol=atol, rtol=rtol):
        return None
    if torch.allclose(out, -expected, atol=atol, rtol=rtol):
        return "right size, wrong sign."
    scale = (out * expected).sum() / (expected * expected).sum().clamp_min(1e-30)
    if abs(scale.item()) > 1e-8 and torch.allclose(out, scale * expected, atol=atol, rtol=1e-3):
        return f"off by a constant factor: your values are {scale.item():.4g} x the expected ones " \
               f"(a mean where a sum belongs, or a missing normalization?)."
    err = (out - expected).abs().max().item()
    return f"values differ from the reference (largest difference {err:.3g})."


def compare(name: str, fn: Callable, reference: Callable, make_inputs: Callable[[torch.Generator], Sequence],
            *, trials: int = 3, seed: int = 0, atol: float = 1e-5, rtol: float = 1e-4, announce: bool = True) -> bool:
    """Run `fn(*inputs)` and `reference(*inputs)` on `trials` random input sets and report the first mismatch.
    announce=False: stay silent on success (for a check that runs more tests after this one)."""
    gen = torch.Generator().manual_seed(seed)
    for trial in range(trials):
        inputs = make_inputs(gen)
        copies = [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]
        try:
            out = fn(*copies)
        except NotImplementedError as error:
            return not_done(name, fn, error)
        except Exception as e:  # the student's code may fail in any way; say how
            return report(name, f"your function raised {type(e).__name__}: {e}")
        if any(isinstance(a, torch.Tensor) and not torch.equal(a, b) for a, b in zip(copies, inputs)):
            return report(name, "your function changed its input in place; compute a new tensor instead.")
        problem = diagnose(out, reference(*inputs), atol=atol, rtol=rtol)
        if problem is not None:
            return report(name, problem + ("" if trial == 0 else f" (on random input set {trial + 1})"))
    return report(name, None) if announce else True


# ---------------------------------------------------------------- GAN chapter (01_gan)
__all__ += ["check_discriminator_loss", "check_generator_loss", "check_conv_output_size", "check_slerp"]


def _logits(gen: torch.Generator, scale: float = 3.0) -> torch.Tensor:
    return torch.randn(16, generator=gen) * scale


def _stable_at_extreme_logits(name: str, fn: Callable, reference: Callable, *inputs: torch.Tensor) -> bool:
    """After `compare` passed on moderate logits: confident logits (|u| = 60) must still give the exact loss."""
    try:
        out = fn(*inputs)
    except Exception as e:  # the student's code may fail in any way; say how
        return report(name, f"your function raised {type(e).__name__} on confident logits (|u| = 60): {e}")
    expected = reference(*inputs)
    if diagnose(out, expected, atol=1e-3, rtol=1e-4) is None:
        return report(name, None)
    got = f"{out.item():.4g}" if isinstance(out, torch.Tensor) and out.numel() == 1 else repr(out)
    return report(name, f"correct on moderate logits, but not on confident ones (|u| = 60): expected "
                        f"{expected.item():.4g}, got {got}. sigmoid "
                        f"rounds to exactly 0 or 1 there and the log breaks. Stay on logits: -log sigmoid(u) = "
                        f"softplus(-u), or F.binary_cross_entropy_with_logits.")


def check_discriminator_loss(fn: Callable) -> bool:
    """fn(real_logits (B,), fake_logits (B,)) -> -mean log D(x) - mean log(1 - D(G(z))), a scalar, with
    D = sigmoid(logit) (Goodfellow et al. 2014, eq. 1), computed stably from the logits."""
    from .gan import discriminator_loss

    def make_inputs(gen):
        return _logits(gen), _logits(gen)

    if not compare("discriminator_loss", fn, discriminator_loss, make_inputs, atol=1e-5, announce=False):
        return False
    extreme = torch.tensor([60.0, -60.0, 0.0])
    return _stable_at_extreme_logits("discriminator_loss", fn, discriminator_loss, extreme, -extreme)


def check_generator_loss(fn: Callable) -> bool:
    """fn(fake_logits (B,)) -> the non-saturating generator loss -mean log D(G(z)), a scalar."""
    from .gan import generator_loss, minimax_generator_loss

    try:
        out = fn(torch.tensor([-1.0, 0.5, 2.0]))
        if isinstance(out, torch.Tensor) and out.shape == () and torch.allclose(
                out, minimax_generator_loss(torch.tensor([-1.0, 0.5, 2.0])), atol=1e-5):
            return report("generator_loss", "this is the saturating minimax loss mean log(1 - D(G(z))): its "
                                            "gradient vanishes while D rejects the fakes. Maximize log D(G(z)) "
                                            "instead, i.e. minimize -log D(G(z)).")
    except Exception:  # compare below reports it properly
        pass
    if not compare("generator_loss", fn, generator_loss, lambda gen: (_logits(gen),), atol=1e-5, announce=False):
        return False
    return _stable_at_extreme_logits("generator_loss", fn, generator_loss, torch.tensor([-60.0, 60.0, 0.0]))


def _conv_output_size(size: int, kernel: int, stride: int, padding: int, transposed: bool) -> int:
    if transposed:
        return (size - 1) * stride - 2 * padding + kernel  # ConvTranspose2d (no output_padding, dilation 1)
    return (size + 2 * padding - kernel) // stride + 1  # Conv2d (dilation 1)


def check_conv_output_size(fn: Callable) -> bool:
    """fn(size, kernel, stride, padding, transposed) -> the output height/width of a Conv2d
    (transposed=False) or ConvTranspose2d (transposed=True) layer, checked against PyTorch itself."""
    cases = [(1, 4, 1, 0, True), (4, 4, 2, 1, True), (7, 4, 2, 1, True), (32, 4, 2, 1, False), (4, 4, 1, 0, False),
             (64, 4, 2, 1, False), (5, 3, 2, 1, False), (28, 5, 1, 2, False), (8, 5, 1, 0, False), (3, 3, 2, 0, True)]
    for size, kernel, stride, padding, transposed in cases:
        layer = (torch.nn.ConvTranspose2d if transposed else torch.nn.Conv2d)(1, 1, kernel, stride, padding)
        expected = layer(torch.zeros(1, 1, size, size)).shape[-1]
        assert expected == _conv_output_size(size, kernel, stride, padding, transposed)
        kind = "ConvTranspose2d" if transposed else "Conv2d"
        try:
            got = fn(size, kernel, stride, padding, transposed)
        except NotImplementedError as error:
            return not_done("conv_output_size", fn, error)
        except Exception as e:  # the student's code may fail in any way; say how
            return report("conv_output_size", f"your function raised {type(e).__name__}: {e}")
        if got != expected:
            hint = (" A transposed conv undoes a conv: solve the conv formula for the input size."
                    if transposed else " Slide the kernel over the padded input: how many stride-steps fit?")
            return report("conv_output_size", f"{kind}(kernel={kernel}, stride={stride}, padding={padding}) on "
                                              f"{size}x{size}: expected {expected}, got {got}.{hint}")
    return report("conv_output_size", None)


def check_slerp(fn: Callable) -> bool:
    """fn(z0 (nz,), z1 (nz,), t float) -> spherical interpolation between z0 and z1 (Shoemake 1985)."""
    from .gan_edit import slerp

    def make_inputs(gen):
        z0, z1 = torch.randn(32, generator=gen), torch.randn(32, generator=gen)
        return z0, z1, float(torch.rand((), generator=gen))

    return compare("slerp", fn, slerp, make_inputs, atol=1e-4)


# ---------------------------------------------------------------- diffusion chapter (02_diffusion)
__all__ += ["check_q_sample", "check_posterior_mean", "check_ddim_step"]


def _diffusion_inputs(gen: torch.Generator, *, batch: int = 4, size: int = 8):
    """x0 in [-1, 1], a noisy x_t, and the cosine schedule's alpha_bar (T = 1000, float64)."""
    from .schedulers import alpha_bar_from_betas, cosine_beta_schedule

    alpha_bar = alpha_bar_from_betas(cosine_beta_schedule(1000))
    x0 = torch.rand(batch, 1, size, size, generator=gen) * 2 - 1
    noise = torch.randn(batch, 1, size, size, generator=gen)
    return x0, noise, alpha_bar


def check_q_sample(fn: Callable) -> bool:
    """fn(x0, t, alpha_bar, noise) -> x_t = sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) noise, t: (B,) ints."""
    from .schedulers import q_sample

    def make_inputs(gen):
        x0, noise, alpha_bar = _diffusion_inputs(gen)
        t = torch.randint(0, 1000, (x0.shape[0],), generator=gen)
        return x0, t, alpha_bar, noise

    def reference(x0, t, alpha_bar, noise):
        return q_sample(x0, t, alpha_bar=alpha_bar, noise=noise)

    return compare("q_sample", fn, reference, make_inputs, atol=1e-5)


def check_posterior_mean(fn: Callable) -> bool:
    """fn(x0, xt, t, alpha_bar) -> the mean of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eq. 7), t >= 1 an int."""
    from .schedulers import DDPMScheduler

    scheduler = DDPMScheduler(1000, "cosine", prediction="x0", clip_sample=False)

    def make_inputs(gen):
        x0, noise, alpha_bar = _diffusion_inputs(gen)
        t = int(torch.randint(1, 999, (), generator=gen))
        return x0, noise, t, alpha_bar  # noise plays x_t: any x_t will do for the mean

    def reference(x0, xt, t, alpha_bar):
        scheduler.set_timesteps(1000)  # every step: the previous one of t is t - 1
        return scheduler.step_distribution(x0, t, xt)[0]

    return compare("posterior_mean", fn, reference, make_inputs, atol=1e-4)


def check_ddim_step(fn: Callable) -> bool:
    """fn(eps, xt, t, t_prev, alpha_bar) -> x_{t_prev} of a deterministic DDIM step (eta = 0, Song et al. 2021,
    eq. 12), ints t > t_prev >= 0."""
    from .schedulers import DDIMScheduler

    scheduler = DDIMScheduler(1000, "cosine", eta=0.0, clip_sample=False)
    scheduler.set_timesteps(10)

    def make_inputs(gen):
        _, eps, alpha_bar = _diffusion_inputs(gen)
        xt = torch.randn(eps.shape, generator=gen)
        t = int(scheduler.timesteps[int(torch.randint(1, 9, (), generator=gen))])  # skip the pure-noise step
        return eps, xt, t, scheduler.previous_timestep(t), alpha_bar

    def reference(eps, xt, t, t_prev, alpha_bar):
        return scheduler.step_distribution(eps, t, xt)[0]

    return compare("ddim_step", fn, reference, make_inputs, atol=1e-4)


# ---------------------------------------------------------------- content loss chapter (03_content_loss)
__all__ += ["check_caffe_preprocess", "check_content_loss", "check_receptive_field"]


def check_caffe_preprocess(fn: Callable) -> bool:
    """fn(image) -> what the original (Caffe) VGG19 expects: RGB [0, 1] (B, 3, H, W) -> BGR, [0, 255], minus the
    BGR mean pixel (103.939, 116.779, 123.68)."""
    from .perceptual import caffe_preprocess

    def make_inputs(gen):
        return (torch.rand(2, 3, 5, 7, generator=gen),)

    return compare("caffe_preprocess", fn, caffe_preprocess, make_inputs, atol=1e-3)


def check_content_loss(fn: Callable) -> bool:
    """fn(features, target) -> the mean of (features - target)^2 over every entry, a scalar (Gatys et al. eq. 1
    with a mean instead of 1/2 sum)."""
    from .perceptual import content_loss

    def make_inputs(gen):
        return torch.randn(2, 8, 6, 6, generator=gen), torch.randn(2, 8, 6, 6, generator=gen)

    def reference(features, target):
        return content_loss({"layer": features}, {"layer": target})

    return compare("content_loss", fn, reference, make_inputs)


def check_receptive_field(fn: Callable) -> bool:
    """fn(layer_name) -> the receptive field (in input pixels, one side) of one unit of that VGG19 layer."""
    from .perceptual import LAYER_NAMES, receptive_field

    for name in LAYER_NAMES:
        try:
            got = fn(name)
        except NotImplementedError as error:
            return not_done("receptive_field", fn, error)
        except Exception as e:  # the student's code may fail in any way; say how
            return report("receptive_field", f"your function raised {type(e).__name__} on {name!r}: {e}")
        expected = receptive_field(name)
        if got != expected:
            hint = ""
            if name.startswith("pool") or LAYER_NAMES.index(name) > LAYER_NAMES.index("pool1"):
                hint = " Hint: after a 2x2 pooling, one more pixel of the layer below spans twice as many input pixels."
            return report("receptive_field", f"{name}: expected {expected} pixels, got {got}.{hint}")
    return report("receptive_field", None)


# ---------------------------------------------------------------- style transfer chapter (04_style_transfer)
__all__ += ["check_gram_matrix", "check_style_loss", "check_tv_loss"]


def check_gram_matrix(fn: Callable) -> bool:
    """fn(features (B, C, H, W)) -> (B, C, C): G = F F^T / (C H W), F the features flattened to (B, C, H*W)."""
    from .style import gram_matrix

    def make_inputs(gen):
        return (torch.rand(2, 4, 5, 3, generator=gen),)

    return compare("gram_matrix", fn, gram_matrix, make_inputs)


def check_style_loss(fn: Callable) -> bool:
    """fn(features (B, C, H, W), target_gram (B, C, C)) -> the mean of (G - A)^2 with G = gram_matrix(features)."""
    from .style import gram_matrix, style_loss

    def make_inputs(gen):
        return torch.rand(2, 4, 5, 3, generator=gen), gram_matrix(torch.rand(2, 4, 6, 6, generator=gen))

    def reference(features, target_gram):
        return style_loss({"layer": features}, {"layer": target_gram})

    return compare("style_loss", fn, reference, make_inputs, atol=1e-7)


def check_tv_loss(fn: Callable) -> bool:
    """fn(image (B, C, H, W)) -> mean |vertical neighbour difference| + mean |horizontal neighbour difference|."""
    from .style import tv_loss

    def make_inputs(gen):
        return (torch.rand(2, 3, 6, 5, generator=gen),)

    return compare("tv_loss", fn, tv_loss, make_inputs)
