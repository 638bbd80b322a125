"""L-BFGS with a backtracking line search, one loss evaluation per step when all goes well.

torch.optim.LBFGS without a line search diverges on Gram-matrix losses (they are quartic in the
pixels), and its strong-Wolfe search re-evaluates the starting point on every `step()` call. Here
the gradient of an accepted point is reused for the next direction, so a step costs one forward
and backward pass unless the full step overshoots and has to be shortened.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator

import torch

Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""x -> (loss, gradient of the loss at x)."""


def _direction(g: torch.Tensor, memory: deque, gamma: float) -> torch.Tensor:
    """-H g by the two-loop recursion over the (s, y, 1/y.s) pairs in memory."""
    q = g.neg()
    alphas = []
    for s, y, rho in reversed(memory):
        a = rho * torch.dot(s, q)
        q.add_(y, alpha=-a)
        alphas.append(a)
    q.mul_(gamma)
    for (s, y, rho), a in zip(memory, reversed(alphas)):
        b = rho * torch.dot(y, q)
        q.add_(s, alpha=a - b)
    return q


def _downhill(g: torch.Tensor, first_step: float) -> torch.Tensor:
    """Steepest descent scaled so no element moves by more than `first_step`."""
    return g * (-first_step / g.abs().max().clamp_min(1e-30))


def lbfgs(
    evaluate: Evaluate,
    x0: torch.Tensor,
    steps: int,
    history: int = 20,
    first_step: float = 0.05,
    max_halvings: int = 12,
) -> Iterator[tuple[torch.Tensor, int]]:
    """Minimise from x0; yields (x, evaluations used) after each accepted step.

    `first_step` bounds the largest change of any element on the first step, before curvature
    information exists (pixels live in [0, 1]). Stops early when no shorter step decreases the loss.
    """
    x = x0.detach().reshape(-1).clone()
    shape = x0.shape
    loss, g = evaluate(x.view(shape))
    g = g.reshape(-1)
    memory: deque = deque(maxlen=history)
    gamma = 1.0
    for _ in range(steps):
        if not bool(g.any()):
            return  # a stationary point: no direction lowers the loss
        d = _direction(g, memory, gamma) if memory else _downhill(g, first_step)
        slope = torch.dot(g, d)
        if slope >= 0:  # not a descent direction: forget the curvature and go downhill
            memory.clear()
            d = _downhill(g, first_step)
            slope = torch.dot(g, d)
        t, evaluations = 1.0, 0
        for _ in range(max_halvings):
            x_new = torch.add(x, d, alpha=t)  # no temporary t * d: full-size copies add up
            new_loss, new_g = evaluate(x_new.view(shape))
            evaluations += 1
            if math.isfinite(float(new_loss)) and float(new_loss) <= float(loss) + 1e-4 * t * float(slope):
                break
            t *= 0.5
        else:
            return
        new_g = new_g.reshape(-1)
        s, y = x_new - x, new_g - g
        ys = float(torch.dot(y, s))
        if ys > 1e-12 * float(torch.dot(y, y)) and ys > 0:
            memory.append((s, y, 1.0 / ys))
            gamma = ys / float(torch.dot(y, y))
        x, loss, g = x_new, new_loss, new_g
        yield x.view(shape), evaluations


def adam(evaluate: Evaluate, x0: torch.Tensor, steps: int, learning_rate: float) -> Iterator[tuple[torch.Tensor, int]]:
    """Adam from x0; yields (x, 1) after each step."""
    x = x0.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=learning_rate)
    for _ in range(steps):
        _, g = evaluate(x.detach())
        x.grad = g
        optimizer.step()
        yield x.detach(), 1
