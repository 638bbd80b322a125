"""The optimisers on problems with known answers: a convex quadratic and the Rosenbrock function."""

from __future__ import annotations

import pytest
import torch

from impasto.optim import adam, lbfgs

N = 20


class Counted:
    """Wraps an (x -> loss, gradient) function; counts calls and notes the first close enough."""

    def __init__(self, evaluate, solution: torch.Tensor, tolerance: float = 1e-6) -> None:
        self.evaluate, self.solution, self.tolerance = evaluate, solution, tolerance
        self.calls, self.first_close = 0, None

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        if self.first_close is None and error(x, self.solution) < self.tolerance:
            self.first_close = self.calls
        return self.evaluate(x)


def error(x: torch.Tensor, solution: torch.Tensor) -> float:
    return float((x.detach() - solution).abs().max())


def quadratic(seed: int = 0):
    """0.5 x'Ax - b'x with A symmetric positive definite (eigenvalues 1 to 100): its evaluate,
    minimiser A^-1 b and minimum -0.5 b'A^-1 b."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(N, N, generator=gen, dtype=torch.float64))
    a = q @ torch.diag(torch.logspace(0, 2, N, dtype=torch.float64)) @ q.T
    b = torch.randn(N, generator=gen, dtype=torch.float64)

    def evaluate(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return 0.5 * x @ a @ x - b @ x, a @ x - b

    solution = torch.linalg.solve(a, b)
    return evaluate, solution, float(-0.5 * b @ solution)


def rosenbrock(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(1 - x)^2 + 100 (y - x^2)^2: minimum 0 at (1, 1), at the end of a long curved valley."""
    x, y = v[0], v[1]
    loss = (1 - x) ** 2 + 100 * (y - x**2) ** 2
    gradient = torch.stack([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)])
    return loss, gradient


def last(steps):
    """The final (x, evaluations) of an optimiser run, and how many steps it yielded."""
    count, x = 0, None
    for count, (x, _) in enumerate(steps, start=1):
        pass
    return x, count


# --- L-BFGS --------------------------------------------------------------------------------------


def test_lbfgs_reaches_the_minimum_of_a_quadratic() -> None:
    evaluate, solution, minimum = quadratic()
    x, _ = last(lbfgs(evaluate, torch.zeros(N, dtype=torch.float64), steps=200))
    assert error(x, solution) < 1e-6
    assert float(evaluate(x)[0]) == pytest.approx(minimum, rel=1e-12)


def test_lbfgs_needs_fewer_evaluations_than_torch_strong_wolfe() -> None:
    """Both reach the minimiser; ours evaluates no more often on the way (docstring's claim)."""
    evaluate, solution, _ = quadratic()
    ours = Counted(evaluate, solution)
    last(lbfgs(ours, torch.zeros(N, dtype=torch.float64), steps=200))

    x = torch.zeros(N, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [x],
        lr=1,
        max_iter=500,
        history_size=20,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )
    theirs = Counted(evaluate, solution)

    def closure() -> torch.Tensor:
        loss, gradient = theirs(x.detach())
        x.grad = gradient
        return loss

    optimizer.step(closure)
    assert error(x, solution) < 1e-6
    assert ours.first_close is not None and theirs.first_close is not None
    assert ours.first_close <= theirs.first_close, (ours.first_close, theirs.first_close)


def test_lbfgs_follows_the_rosenbrock_valley_to_its_end() -> None:
    start = torch.tensor([-1.2, 1.0], dtype=torch.float64)
    x, _ = last(lbfgs(rosenbrock, start, steps=200))
    assert error(x, torch.ones(2, dtype=torch.float64)) < 1e-6
    assert float(rosenbrock(x)[0]) < 1e-12


def test_lbfgs_first_step_moves_no_element_more_than_first_step() -> None:
    evaluate, _, _ = quadratic()
    x0 = torch.zeros(N, dtype=torch.float64)
    x1, _ = next(lbfgs(evaluate, x0, steps=1, first_step=0.01))
    assert float((x1 - x0).abs().max()) == pytest.approx(0.01)
    assert float(evaluate(x1)[0]) < float(evaluate(x0)[0])


def test_lbfgs_ends_when_no_step_lowers_the_loss() -> None:
    """A gradient that points uphill: every trial step raises the loss, so nothing is yielded."""

    def misleading(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.square().sum(), -2 * x

    counted = Counted(misleading, torch.zeros(3))
    assert list(lbfgs(counted, torch.ones(3, dtype=torch.float64), steps=50, max_halvings=7)) == []
    assert counted.calls == 1 + 7  # the start, then each halving of the one step it tried


def test_lbfgs_ends_early_at_a_kink() -> None:
    """|x| has no smooth minimum; once no shorter step helps, the run ends before `steps`."""

    def absolute(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.abs().sum(), x.sign()

    start = torch.tensor([0.3, -0.7, 1.1], dtype=torch.float64)
    x, count = last(lbfgs(absolute, start, steps=1000))
    assert count < 1000
    assert float(x.abs().sum()) < 0.01 * float(start.abs().sum())


def test_lbfgs_ends_at_a_stationary_point() -> None:
    def flat(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.sum() * 0, torch.zeros_like(x)

    _, count = last(lbfgs(flat, torch.ones(3), steps=50))
    assert count < 50


def test_lbfgs_leaves_the_start_alone() -> None:
    evaluate, _, _ = quadratic()
    x0 = torch.full((N,), 0.5, dtype=torch.float64)
    last(lbfgs(evaluate, x0, steps=20))
    assert torch.equal(x0, torch.full((N,), 0.5, dtype=torch.float64))


# --- Adam ----------------------------------------------------------------------------------------


def test_adam_first_step_is_the_learning_rate_against_the_gradient_sign() -> None:
    """Adam's first update is lr * g / |g|: `learning_rate` is a step in pixel units."""
    evaluate, _, _ = quadratic()
    x0 = torch.zeros(N, dtype=torch.float64)
    x1, evaluations = next(adam(evaluate, x0, steps=1, learning_rate=0.05))
    assert evaluations == 1
    assert torch.allclose(x1 - x0, -0.05 * evaluate(x0)[1].sign(), atol=1e-9)


def test_adam_lowers_a_quadratic_to_near_its_minimum() -> None:
    evaluate, _, minimum = quadratic()
    x0 = torch.zeros(N, dtype=torch.float64)
    losses = [float(evaluate(x)[0]) for x, _ in adam(evaluate, x0, steps=300, learning_rate=0.05)]
    start = float(evaluate(x0)[0])
    assert losses[-1] - minimum < 1e-3 * (start - minimum)
    assert losses[-1] < min(losses[:50])
    assert torch.equal(x0, torch.zeros(N, dtype=torch.float64))
