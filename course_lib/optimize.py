"""Optimizing the pixels of an image: `optimize_image`, the loop behind feature inversion (chapter 3) and style
transfer (chapter 4), the `PyramidImage` it can optimize instead of raw pixels, and our L-BFGS.

`LBFGS` is L-BFGS with a fixed step and no line search: one loss evaluation per step, as style transfer uses it.
Nocedal & Wright (2006), Algorithm 7.4 (the two-loop recursion) and eq. 7.20 (the initial Hessian scale): keep
the last m pairs s_k = x_{k+1} - x_k, y_k = g_{k+1} - g_k; the direction d = -H g applies the inverse-Hessian
estimate they define without ever forming a matrix. The iterates are those of
`torch.optim.LBFGS(max_iter=1, tolerance_grad=0, tolerance_change=0, line_search_fn=None)` (tests check it), the
optimizer jcjohnson/neural-style and pastiche use. Why our own: it reads in a page next to the lesson, and building
any `torch.optim` optimizer first imports `torch._dynamo`, about 0.9 s for every `python -m course_lib stylize`.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from .runtime import check_choice, progress as progress_bar

__all__ = ["OPTIMIZERS", "OptimizationResult", "PyramidImage", "optimize_image", "LBFGS"]


@dataclass
class OptimizationResult:
    """`image` (1, 3, H, W) in [0, 1]; `history`: one dict per step (step, seconds, total and each loss term);
    `seconds`: wall time of the optimization; `stopped`: why it ended early (NaN...), else None."""

    image: torch.Tensor
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str | None = None


OPTIMIZERS = ("lbfgs", "adam")


def _make_optimizer(name: str, params: list[torch.Tensor], lr: float | None, history_size: int):
    check_choice("optimizer", name, OPTIMIZERS)
    if name == "lbfgs":  # one function evaluation per step, as in jcjohnson/neural-style and pastiche
        # LBFGS below: torch.optim.LBFGS's iterates, without its 0.9 s import of torch._dynamo
        return LBFGS(params, lr=1.0 if lr is None else lr, history_size=history_size)
    return torch.optim.Adam(params, lr=0.02 if lr is None else lr)  # adam


class PyramidImage:
    """An image parametrized as a pyramid: x = z_0 + sum_k decay^k * upsample(z_k), z_k at 1/2^k of the size.

    The same set of images as plain pixels, but a gradient step on z_k moves a 2^k x 2^k block of pixels at
    once: a preconditioner that lets L-BFGS fix the large-scale structure (what deep VGG layers see) in few
    steps. `decay` < 1 tempers the coarse levels (with 1 the coarsest ones dominate the first steps).
    levels=1 is plain pixels.
    """

    def __init__(self, init: torch.Tensor, levels: int = 1, decay: float = 1.0):
        height, width = init.shape[-2:]
        self.size, self.decay = (height, width), decay
        # contiguous: L-BFGS flattens the parameters into one vector
        self.params = [init.detach().clone(memory_format=torch.contiguous_format).clamp_(0, 1).requires_grad_(True)]  # z_0: (1, 3, H, W)
        for k in range(1, levels):
            shape = (init.shape[0], init.shape[1], max(1, height >> k), max(1, width >> k))
            self.params.append(torch.zeros(shape, device=init.device, dtype=init.dtype, requires_grad=True))

    def image(self) -> torch.Tensor:
        x = self.params[0]
        for k, z in enumerate(self.params[1:], start=1):
            x = x + self.decay ** k * F.interpolate(z, size=self.size, mode="bilinear", align_corners=False)
        return x

    @torch.no_grad()
    def project_(self) -> None:
        """Keep the image a valid one: fold the clamp to [0, 1] into z_0."""
        x = self.image()
        self.params[0].add_(x.clamp(0, 1) - x)


def optimize_image(loss_fn: Callable[[torch.Tensor], dict], init: torch.Tensor, *, steps: int,
                   optimizer: str = "lbfgs", lr: float | None = None, max_seconds: float | None = None,
                   pyramid_levels: int = 1, pyramid_decay: float = 1.0, history_size: int = 100,
                   progress: bool = True, desc: str = "optimizing") -> OptimizationResult:
    """Minimize sum(loss_fn(x).values()) over the pixels x, from `init` (1, 3, H, W) in [0, 1].

    `loss_fn(x)` returns named, already weighted loss terms (a dict of scalars). Every step is one
    forward/backward pass (L-BFGS without line search, or Adam), evaluated at a valid image: after each step the
    pixels are projected back into [0, 1]. `pyramid_levels` > 1 optimizes a `PyramidImage(init, pyramid_levels,
    pyramid_decay)` instead of raw pixels. A NaN/inf loss stops the run with a warning and returns the last
    image with a finite loss.
    """
    from .train import Budget
    pyramid = PyramidImage(init, pyramid_levels, pyramid_decay)
    opt = _make_optimizer(optimizer, pyramid.params, lr, history_size)
    budget, result = Budget(max_steps=steps, max_seconds=max_seconds), OptimizationResult(image=init)
    last_good, step, t0 = pyramid.image().detach().clone(), 0, time.perf_counter()
    bar = progress_bar(total=steps, desc=desc, disable=None if progress else True)
    while not budget.done(step):
        terms, evaluated = {}, pyramid.image().detach().clone()  # a copy: the step updates z_0 in place

        def closure():
            opt.zero_grad(set_to_none=True)
            terms.clear()
            terms.update(loss_fn(pyramid.image()))
            terms["total"] = sum(terms.values())
            terms["total"].backward()
            return terms["total"]

        opt.step(closure)
        values = {k: float(v.detach()) for k, v in terms.items()}
        if not all(math.isfinite(v) for v in values.values()):
            result.stopped = f"the loss became {values['total']} at step {step}: stopped, kept the last good image"
            warnings.warn(result.stopped + " (lower the learning rate or the loss weights)", RuntimeWarning)
            break
        pyramid.project_()  # a valid image after every step
        last_good, step = evaluated, step + 1
        result.history.append({"step": step, "seconds": time.perf_counter() - t0, **values})
        bar.update(1)
        bar.set_postfix(loss=f"{values['total']:.4g}", refresh=False)
    bar.close()
    final = pyramid.image().detach()
    result.image = final if result.stopped is None and torch.isfinite(final).all() else last_good
    result.seconds = time.perf_counter() - t0
    return result


# ---------------------------------------------------------------- L-BFGS without line search
class LBFGS:
    """`step(closure)` evaluates the loss once (the closure zeroes the gradients, computes the loss, calls
    backward and returns it) and moves the parameters by t d: d = -H g from the two-loop recursion; t = lr,
    except on the first step, t = min(1, 1 / ||g||_1) lr (a safe first move before any curvature is known)."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1.0, history_size: int = 100):
        self.params = list(params)
        if not self.params or any(not p.is_contiguous() for p in self.params):
            raise ValueError("LBFGS needs a non-empty list of contiguous tensors (flattened as one vector)")
        self.lr, self.history_size = lr, history_size
        self.old_steps, self.old_dirs, self.rho = [], [], []  # s_k, y_k, 1 / (y_k . s_k): the last m pairs
        self.h_diag = 1.0  # gamma_k = s.y / y.y, the scale of the initial inverse Hessian H_0 = gamma_k I
        self.d = self.t = self.prev_grad = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def _flat_grad(self) -> torch.Tensor:
        return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in self.params])

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        with torch.enable_grad():
            loss = closure()
        g = self._flat_grad()  # (P,)
        if g.abs().max() == 0:  # a stationary point: nothing to do
            return loss
        if self.prev_grad is None:
            d = g.neg()  # steepest descent
            t = min(1.0, 1.0 / g.abs().sum()) * self.lr
        else:
            y, s = g.sub(self.prev_grad), self.d.mul(self.t)
            ys = y.dot(s)
            if ys > 1e-10:  # the curvature condition: keep the pair only where it is satisfied
                if len(self.old_dirs) == self.history_size:
                    self.old_dirs.pop(0), self.old_steps.pop(0), self.rho.pop(0)
                self.old_dirs.append(y), self.old_steps.append(s), self.rho.append(1.0 / ys)
                self.h_diag = ys / y.dot(y)
            d = self._two_loop(g)
            t = self.lr
        self.prev_grad, self.d, self.t = g, d, t
        if g.dot(d) > 0:  # not a descent direction (curvature estimate broke down): skip the move
            return loss
        offset = 0
        for p in self.params:  # x <- x + t d
            p.add_(d[offset:offset + p.numel()].view_as(p), alpha=t)
            offset += p.numel()
        return loss

    def _two_loop(self, g: torch.Tensor) -> torch.Tensor:
        """d = -H_k g (Nocedal & Wright, Algorithm 7.4)."""
        q, alphas = g.neg(), [None] * len(self.old_dirs)
        for i in range(len(self.old_dirs) - 1, -1, -1):  # newest pair first
            alphas[i] = self.old_steps[i].dot(q) * self.rho[i]
            q.add_(self.old_dirs[i], alpha=-alphas[i])
        r = torch.mul(q, self.h_diag)  # H_0 q
        for i in range(len(self.old_dirs)):  # oldest pair first
            beta = self.old_dirs[i].dot(r) * self.rho[i]
            r.add_(self.old_steps[i], alpha=alphas[i] - beta)
        return r
