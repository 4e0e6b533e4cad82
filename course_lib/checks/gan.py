"""Self-checks of the GAN chapter exercises (01_gan), built on `course_lib.checks.compare`."""
from __future__ import annotations

import copy
from typing import Callable

import torch

from . import compare, diagnose, not_done, report

__all__ = ["check_discriminator_loss", "check_generator_loss", "check_conv_output_size", "check_slerp",
           "check_train_step"]


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


# ---------------------------------------------------------------- one training step of the game
LR = 0.1  # plain SGD in the check: an update is -LR * gradient, so every mistake moves the weights its own way
STEP_ATOL = 1e-6


def _tiny_game(seed: int = 0):
    """A tiny G (z (B, 4) -> (B, 1, 4, 4) in [-1, 1]), D ((B, 1, 4, 4) -> (B,) logits) and two batches (real, z):
    small enough to compare every weight, MLPs without BatchNorm so the batch's make-up does not matter."""
    with torch.random.fork_rng(devices=[]):  # seeded weights without moving the notebook's global random state
        torch.manual_seed(seed)
        net_g = torch.nn.Sequential(torch.nn.Linear(4, 12), torch.nn.ReLU(), torch.nn.Linear(12, 16),
                                    torch.nn.Tanh(), torch.nn.Unflatten(1, (1, 4, 4)))
        net_d = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 12), torch.nn.LeakyReLU(0.2),
                                    torch.nn.Linear(12, 1), torch.nn.Flatten(0))
    gen = torch.Generator().manual_seed(seed)
    batches = [(torch.rand(6, 1, 4, 4, generator=gen) * 2 - 1, torch.randn(6, 4, generator=gen)) for _ in range(2)]
    return net_g, net_d, batches


def _players(net_g, net_d):
    """Fresh copies of G and D with their SGD optimizers: (net_g, net_d, opt_g, opt_d)."""
    net_g, net_d = copy.deepcopy(net_g), copy.deepcopy(net_d)
    return net_g, net_d, torch.optim.SGD(net_g.parameters(), lr=LR), torch.optim.SGD(net_d.parameters(), lr=LR)


def _flat(net) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def _mistaken_step(net_g, net_d, opt_g, opt_d, real, z, *, loss_d, loss_g, g_first=False):
    """A step with one known mistake: other losses, or G's update through D before D's update."""
    fake = net_g(z)
    if g_first:
        opt_g.zero_grad()
        loss_g(net_d(fake)).backward()
        opt_g.step()
    opt_d.zero_grad()
    loss_d(net_d(real), net_d(fake.detach())).backward()
    opt_d.step()
    if not g_first:
        opt_g.zero_grad()
        loss_g(net_d(fake)).backward()
        opt_g.step()


class _Spy:
    """Watches the learner's optimizers: the order of their steps, and whether D's backward reached G."""

    def __init__(self, net_g, opt_g, opt_d):
        self.order, self.d_loss_reached_g, self.returned = [], False, None
        self.grads_before = [None if p.grad is None else p.grad.clone() for p in net_g.parameters()]
        self.net_g = net_g
        self.handles = [opt_g.register_step_pre_hook(lambda *_: self.order.append("opt_g")),
                        opt_d.register_step_pre_hook(lambda *_: self._on_d_step())]

    def _on_d_step(self):
        self.order.append("opt_d")
        if self.order == ["opt_d"]:  # D's first step, before G's: only D's loss can have written into G's .grad
            for p, before in zip(self.net_g.parameters(), self.grads_before):
                if p.grad is not None and p.grad.abs().sum() > 0 and (before is None or not torch.equal(p.grad, before)):
                    self.d_loss_reached_g = True

    def close(self):
        for handle in self.handles:
            handle.remove()


_RUNTIME_HINTS = {
    "backward through the graph a second time": "D's loss was backpropagated through G, so G's graph was freed before "
                                                "G's own backward. Give D a detached fake batch.",
    "modified by an inplace operation": "G's loss used D's verdict computed before D's update (opt_d.step() changed "
                                        "D's weights under it). Ask D again after its step.",
    "does not require grad": "a loss has no path back to any weight. Is the batch G's loss sees detached?",
}


def _run_learner(fn, net_g, net_d, opt_g, opt_d, real, z):
    """(spy, problem): run the learner's step once, watching it; problem is a message, "not done" or None."""
    spy, inputs = _Spy(net_g, opt_g, opt_d), (real.clone(), z.clone())
    try:
        out = fn(net_g, net_d, opt_g, opt_d, *inputs)
    except NotImplementedError as error:
        return spy, error
    except RuntimeError as e:  # the student's code may fail in any way; name the usual causes
        hint = next((h for key, h in _RUNTIME_HINTS.items() if key in str(e)), "")
        first = str(e).splitlines()[0].split(". ")[0].split(": [")[0]  # PyTorch's first sentence, without tensor details
        return spy, f"your function raised RuntimeError: {first}. {hint}".rstrip()
    except Exception as e:  # the student's code may fail in any way; say how
        return spy, f"your function raised {type(e).__name__}: {e}"
    finally:
        spy.close()
    if not (torch.equal(inputs[0], real) and torch.equal(inputs[1], z)):
        return spy, "your function changed `real` or `z` in place; compute new tensors instead."
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        return spy, f"return the two losses as (loss_d, loss_g), got {type(out).__name__}."
    try:
        spy.returned = [torch.as_tensor(v).detach().item() for v in out]
    except (TypeError, ValueError, RuntimeError) as e:  # e.g. a tensor with more than one element
        return spy, f"return the two losses as numbers or one-element tensors (loss_d, loss_g): {e}"
    return spy, None


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, atol=STEP_ATOL, rtol=1e-5)


def _variant(net_g0, net_d0, real, z, **mistake) -> tuple[torch.Tensor, torch.Tensor]:
    """G's and D's weights after one step with `mistake` (see `_mistaken_step`), from the check's start."""
    net_g, net_d, opt_g, opt_d = _players(net_g0, net_d0)
    _mistaken_step(net_g, net_d, opt_g, opt_d, real, z, **mistake)
    return _flat(net_g), _flat(net_d)


def _differs(who: str, yours: torch.Tensor, expected: torch.Tensor, start: torch.Tensor) -> str:
    err, size = (yours - expected).abs().max().item(), (expected - start).abs().max().item()
    return f"{who} update differs from the reference by up to {err:.3g} in a weight (the reference moves " \
           f"{who}'s weights by up to {size:.3g})."


def _named_mistake(net_g0, net_d0, real, z, g_after: torch.Tensor, d_after: torch.Tensor) -> str | None:
    """After one step from the check's start: the known mistake whose weights match the learner's, if any."""
    from ..gan import discriminator_loss, generator_loss, minimax_generator_loss
    _, swapped_d = _variant(net_g0, net_d0, real, z, loss_d=lambda r, f: discriminator_loss(f, r),
                                    loss_g=generator_loss)
    if _close(d_after, swapped_d):
        return ("D's update matches swapped labels: D learned to call the real batch fake and G(z) real. "
                "D's loss wants real -> 1 (softplus(-u_real)) and fake -> 0 (softplus(u_fake)).")
    mistakes = {
        "G's loss asks D to call G's images fake (label 0): G must want D(G(z)) -> 1, the label 'real'.":
            dict(loss_g=lambda u: torch.nn.functional.softplus(u).mean()),
        "G's update uses the saturating minimax loss mean log(1 - D(G(z))): use the non-saturating one.":
            dict(loss_g=minimax_generator_loss),
        "G took its step through D before D's update: first D's step, then G's step through the updated D.":
            dict(loss_g=generator_loss, g_first=True),
    }
    for message, mistake in mistakes.items():
        g_variant, _ = _variant(net_g0, net_d0, real, z, loss_d=discriminator_loss, **mistake)
        if _close(g_after, g_variant):
            return message
    return None


def _step_problem(spy: _Spy, yours: tuple, reference: tuple, start: tuple, number: int,
                  name_mistake: Callable) -> str | None:
    """What is wrong with the learner's step `number` (1 or 2), judged from its weights and its spy;
    name_mistake(g_after, d_after) names a known mistake of step 1."""
    (net_g, net_d), (g_start, d_start) = yours[:2], start
    g_after, d_after, g_ref, d_ref = _flat(net_g), _flat(net_d), _flat(reference[0]), _flat(reference[1])
    called = f"(your function called: {', '.join(spy.order) or 'no optimizer step'})"
    if not (torch.isfinite(g_after).all() and torch.isfinite(d_after).all()):
        return "your step made weights NaN or inf (a log of 0 or a division by 0 in a loss?)."
    if spy.d_loss_reached_g:
        return ("D's loss sent gradients into G's weights: D's step must not depend on G. Give D a detached fake "
                "batch (G(z).detach()), so that backpropagating D's loss stops at the fake images.")
    frozen = [who for who, net in (("D", net_d), ("G", net_g)) if not all(p.requires_grad for p in net.parameters())]
    if frozen:
        return f"{' and '.join(frozen)} is left frozen (requires_grad False) after your step: unfreeze it at the end."
    for who, after, before, opt in (("D", d_after, d_start, "opt_d"), ("G", g_after, g_start, "opt_g")):
        if torch.equal(after, before) and opt in spy.order:
            return (f"{who}'s weights did not change although {opt}.step() ran {called}: {who}'s gradients were "
                    f"None or 0 then. Does {who}'s loss reach {who}'s weights, and are the gradients zeroed before "
                    f"the backward (not between backward and step)?")
        if torch.equal(after, before):
            return (f"{who}'s weights did not change {called}. Each optimizer holds only its own network's weights: "
                    f"{who}'s update needs {opt}.step() after the backward of {who}'s loss.")
    for who, after, expected, before in (("D", d_after, d_ref, d_start), ("G", g_after, g_ref, g_start)):
        if _close(after, expected):
            continue
        if number > 1:  # step 1 matched, so what differs now was carried over from it: stale gradients
            return (f"your first step matches the reference but the second does not: {who}'s gradients were not zero "
                    f"when its loss was backpropagated (.grad adds up across backward calls). Zero {who}'s gradients "
                    f"right before its backward. Your {_differs(who, after, expected, before)}")
        return name_mistake(g_after, d_after) or f"your {_differs(who, after, expected, before)}"
    return None


def check_train_step(fn: Callable) -> bool:
    """fn(net_g, net_d, opt_g, opt_d, real (B, C, H, W), z (B, nz)) -> (loss_d, loss_g): D's update on real vs the
    detached G(z), then G's update through the updated D. Two steps on tiny networks with SGD, compared weight by
    weight with `gan.adversarial_step` from identical copies; known mistakes are recognised by their weights."""
    from ..gan import adversarial_step
    name = "train_step"
    net_g0, net_d0, batches = _tiny_game()
    yours, reference = _players(net_g0, net_d0), _players(net_g0, net_d0)
    for number, (real, z) in enumerate(batches, 1):
        start = (_flat(yours[0]), _flat(yours[1]))
        spy, problem = _run_learner(fn, *yours, real, z)
        if isinstance(problem, NotImplementedError):
            return not_done(name, fn, problem)
        if problem is not None:
            return report(name, problem)
        expected = adversarial_step(*reference, real, z)  # [loss_d, loss_g, D(x), D(G(z))]
        problem = _step_problem(spy, yours, reference, start, number,
                                lambda g, d, real=real, z=z: _named_mistake(net_g0, net_d0, real, z, g, d))
        if problem is not None:
            return report(name, problem)
        losses = spy.returned
        if diagnose(torch.tensor(losses), expected[:2], atol=1e-5) is not None:
            return report(name, f"the weights are right, but the returned (loss_d, loss_g) = "
                                f"({float(losses[0]):.4g}, {float(losses[1]):.4g}) are not the step's losses "
                                f"({expected[0]:.4g}, {expected[1]:.4g}).")
    return report(name, None)
