"""L-BFGS with a fixed step and no line search: one loss evaluation per step, as style transfer uses it.

Nocedal & Wright (2006), Algorithm 7.4 (the two-loop recursion) and eq. 7.20 (the initial Hessian scale): keep
the last m pairs s_k = x_{k+1} - x_k, y_k = g_{k+1} - g_k; the direction d = -H g applies the inverse-Hessian
estimate they define without ever forming a matrix. The iterates are those of
`torch.optim.LBFGS(max_iter=1, tolerance_grad=0, tolerance_change=0, line_search_fn=None)` (tests check it), the
optimizer jcjohnson/neural-style and pastiche use. Why our own: it reads in a page next to the lesson, and building
any `torch.optim` optimizer first imports `torch._dynamo`, about 0.9 s for every `python -m course_lib stylize`.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch

__all__ = ["LBFGS"]


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
