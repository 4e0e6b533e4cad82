"""course_lib.optimize: `optimize_image` moves towards its target and stops on NaN; our L-BFGS takes the same steps
as torch.optim.LBFGS configured as style transfer uses it."""
from __future__ import annotations

import pytest
import torch

from course_lib.optimize import LBFGS, optimize_image


def _run(make_optimizer, loss_fn, x0: list[torch.Tensor], steps: int) -> tuple[list[torch.Tensor], list[float]]:
    params = [x.clone().requires_grad_(True) for x in x0]
    opt, losses = make_optimizer(params), []

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(params)
        loss.backward()
        return loss

    for _ in range(steps):
        losses.append(float(opt.step(closure).detach()))
    return [p.detach() for p in params], losses


def _rosenbrock_and_quadratic(params):
    x, z = params  # x: (2, 8) rows of Rosenbrock pairs, z: (3, 4) an ill-conditioned quadratic
    a, b = x[0], x[1]
    scales = torch.logspace(0, 2, z.numel()).reshape(z.shape)
    return ((1 - a) ** 2 + 10 * (b - a**2) ** 2).sum() + (scales * z**2).sum()


@pytest.mark.parametrize("history_size", [3, 100])
def test_same_iterates_as_torch_lbfgs_without_line_search(history_size):
    gen = torch.Generator().manual_seed(0)
    x0 = [torch.randn(2, 8, generator=gen, dtype=torch.float64), torch.randn(3, 4, generator=gen, dtype=torch.float64)]
    ours, our_losses = _run(lambda p: LBFGS(p, lr=0.5, history_size=history_size), _rosenbrock_and_quadratic, x0, 25)
    theirs, their_losses = _run(lambda p: torch.optim.LBFGS(p, lr=0.5, max_iter=1, history_size=history_size,
                                                            tolerance_grad=0.0, tolerance_change=0.0),
                                _rosenbrock_and_quadratic, x0, 25)
    torch.testing.assert_close(our_losses, their_losses, rtol=1e-10, atol=1e-12)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert our_losses[-1] < 0.1 * our_losses[0]  # and it does minimize


def test_minimizes_a_quadratic_to_its_closed_form_minimum():
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    a, b = q @ q.T + 6 * torch.eye(6, dtype=torch.float64), torch.randn(6, generator=gen, dtype=torch.float64)
    (x,), _ = _run(lambda p: LBFGS(p, lr=1.0), lambda p: 0.5 * p[0] @ a @ p[0] - b @ p[0],
                   [torch.zeros(6, dtype=torch.float64)], 40)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-6, atol=1e-8)


def test_rejects_non_contiguous_parameters():
    with pytest.raises(ValueError, match="contiguous"):
        LBFGS([torch.zeros(1, 3, 4, 4).to(memory_format=torch.channels_last).requires_grad_(True)])
    with pytest.raises(ValueError, match="non-empty"):
        LBFGS([])


def test_optimize_image_adam_moves_towards_the_target():
    target = torch.full((1, 3, 4, 4), 0.8)
    result = optimize_image(lambda x: {"mse": ((x - target) ** 2).mean()}, torch.zeros(1, 3, 4, 4), steps=20,
                            optimizer="adam", lr=0.05, progress=False)
    assert result.history[-1]["mse"] < result.history[0]["mse"]
    with pytest.raises(ValueError, match="lbfgs"):
        optimize_image(lambda x: {"mse": x.mean()}, torch.zeros(1, 3, 4, 4), steps=1, optimizer="sgd")


def test_nan_stops_and_returns_the_last_good_image():
    calls = {"n": 0}

    def loss_fn(x):
        calls["n"] += 1
        loss = ((x - 1) ** 2).mean()
        return {"mse": loss * float("nan") if calls["n"] >= 3 else loss}

    with pytest.warns(RuntimeWarning, match="last good image"):
        result = optimize_image(loss_fn, torch.zeros(1, 3, 4, 4), steps=10, optimizer="adam", lr=0.1, progress=False)
    assert result.stopped is not None and len(result.history) == 2
    assert torch.isfinite(result.image).all() and result.image.mean() > 0  # it moved, then stopped
