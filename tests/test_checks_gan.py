"""checks.gan.check_train_step: the right step passes, and each usual mistake is named by what it does."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib import gan
from course_lib.checks import CheckFailed
from course_lib.checks import gan as checks
from course_lib.gan import discriminator_loss, generator_loss


@pytest.fixture(autouse=True)
def lenient(monkeypatch):
    monkeypatch.delenv("COURSE_CHECKS_STRICT", raising=False)


def make_step(*, detach=True, swap=False, g_loss=generator_loss, zero_d=True, zero_g=True, step_g="opt_g",
              g_first=False, reuse_logits=False, d_frozen_after=False):
    """A training step written as a learner would, with the mistakes switched on by the keywords."""
    def step(net_g, net_d, opt_g, opt_d, real, z):
        fake = net_g(z)
        early_logits = net_d(fake) if reuse_logits else None

        def update_g():
            if d_frozen_after:
                net_d.requires_grad_(False)
            optimizer = opt_g if step_g == "opt_g" else opt_d
            if zero_g:
                optimizer.zero_grad()
            loss = g_loss(early_logits if reuse_logits else net_d(fake))
            loss.backward()
            optimizer.step()
            return loss

        loss_g = update_g() if g_first else None
        fake_for_d = fake.detach() if detach else net_g(z)
        real_logits, fake_logits = net_d(real), net_d(fake_for_d)
        loss_d = discriminator_loss(fake_logits, real_logits) if swap else discriminator_loss(real_logits, fake_logits)
        if zero_d:
            opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        if not g_first:
            loss_g = update_g()
        return loss_d, loss_g
    return step


def bce_step(net_g, net_d, opt_g, opt_d, real, z):
    """Right, written another way: BCE with labels, D frozen during G's step, zero_grad after each step."""
    fake = net_g(z)
    ones, zeros = torch.ones(len(real)), torch.zeros(len(real))
    loss_d = (F.binary_cross_entropy_with_logits(net_d(real), ones)
              + F.binary_cross_entropy_with_logits(net_d(fake.detach()), zeros))
    loss_d.backward()
    opt_d.step()
    opt_d.zero_grad()
    net_d.requires_grad_(False)
    loss_g = F.binary_cross_entropy_with_logits(net_d(fake), ones)
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    net_d.requires_grad_(True)
    return loss_d.item(), loss_g.item()


@pytest.mark.parametrize("step", [make_step(), bce_step, lambda *args: tuple(gan.adversarial_step(*args)[:2])],
                         ids=["plain", "bce", "library"])
def test_the_right_step_passes(step, capsys):
    assert checks.check_train_step(step)
    assert capsys.readouterr().out == "✅ train_step: correct.\n"


@pytest.mark.parametrize("mistake, words", [
    (dict(detach=False), "Give D a detached fake batch"),  # D's loss reaches G's .grad before D's step
    (dict(swap=True), "swapped labels"),
    (dict(g_loss=lambda u: F.softplus(u).mean()), "G's loss asks D to call G's images fake"),
    (dict(g_loss=gan.minimax_generator_loss), "saturating minimax loss"),
    (dict(step_g="opt_d"), "G's weights did not change (your function called: opt_d, opt_d)"),
    (dict(zero_d=False), "D's gradients were not zero"),
    (dict(zero_g=False), "G's gradients were not zero"),
    (dict(g_first=True), "G took its step through D before D's update"),
    (dict(reuse_logits=True), "verdict computed before D's update"),
    (dict(d_frozen_after=True), "D is left frozen"),
], ids=["no detach", "swapped labels", "G labelled fake", "minimax", "wrong optimizer", "D grads not zeroed",
        "G grads not zeroed", "G before D", "stale D verdict", "D left frozen"])
def test_each_usual_mistake_is_named(mistake, words, capsys):
    assert not checks.check_train_step(make_step(**mistake))
    out = capsys.readouterr().out
    assert out.startswith("❌ train_step: ") and words in out, out


def test_a_detached_fake_for_g_says_that_g_gets_no_gradient(capsys):
    def step(net_g, net_d, opt_g, opt_d, real, z):
        fake = net_g(z).detach()
        return make_step()(lambda _: fake, net_d, opt_g, opt_d, real, z)
    assert not checks.check_train_step(step)
    assert "G's weights did not change although opt_g.step() ran" in capsys.readouterr().out


def test_an_unknown_difference_gets_its_size(capsys):
    assert not checks.check_train_step(make_step(g_loss=lambda u: 2 * generator_loss(u)))
    out = capsys.readouterr().out
    assert "your G update differs from the reference by up to" in out and "the reference moves G's weights" in out


@pytest.mark.parametrize("returns, words", [(None, "return the two losses as (loss_d, loss_g), got NoneType"),
                                            ((0.0, 0.0), "are not the step's losses")])
def test_the_returned_losses_are_checked(returns, words, capsys):
    def step(*args):
        make_step()(*args)
        return returns
    assert not checks.check_train_step(step)
    assert words in capsys.readouterr().out


def test_editing_the_batch_in_place_is_reported(capsys):
    def step(net_g, net_d, opt_g, opt_d, real, z):
        return make_step()(net_g, net_d, opt_g, opt_d, real.clamp_(-0.5, 0.5), z)
    assert not checks.check_train_step(step)
    assert "changed `real` or `z` in place" in capsys.readouterr().out


def test_the_stub_is_not_done_yet_and_strict_mode_raises(monkeypatch, capsys):
    def stub(*args):
        raise NotImplementedError("Exercise my_train_step: replace this line with your code (the hint above shows the way).")
    assert checks.check_train_step(stub) is False
    assert capsys.readouterr().out.startswith("⏳ train_step: not done yet. Exercise my_train_step")
    monkeypatch.setenv("COURSE_CHECKS_STRICT", "1")
    with pytest.raises(CheckFailed, match="swapped labels"):
        checks.check_train_step(make_step(swap=True))


def test_the_check_leaves_the_global_random_state_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    checks.check_train_step(make_step())
    assert torch.equal(torch.rand(3), expected)
