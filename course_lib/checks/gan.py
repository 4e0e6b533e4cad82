"""Self-checks of the GAN chapter exercises (01_gan), built on `course_lib.checks.compare`."""
from __future__ import annotations

from typing import Callable

import torch

from . import compare, diagnose, not_done, report

__all__ = ["check_discriminator_loss", "check_generator_loss", "check_conv_output_size", "check_slerp"]


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
    from ..gan import discriminator_loss

    def make_inputs(gen):
        return _logits(gen), _logits(gen)

    if not compare("discriminator_loss", fn, discriminator_loss, make_inputs, atol=1e-5, announce=False):
        return False
    extreme = torch.tensor([60.0, -60.0, 0.0])
    return _stable_at_extreme_logits("discriminator_loss", fn, discriminator_loss, extreme, -extreme)


def check_generator_loss(fn: Callable) -> bool:
    """fn(fake_logits (B,)) -> the non-saturating generator loss -mean log D(G(z)), a scalar."""
    from ..gan import generator_loss, minimax_generator_loss

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
    from ..gan_edit import slerp

    def make_inputs(gen):
        z0, z1 = torch.randn(32, generator=gen), torch.randn(32, generator=gen)
        return z0, z1, float(torch.rand((), generator=gen))

    return compare("slerp", fn, slerp, make_inputs, atol=1e-4)
