"""The temporal loss: hand-computed values, its gradient, long-term weights, and coarse scales."""

import pytest
import torch

from impasto.video.temporal import Constraint, TemporalLoss, long_term_weights, resize_weights, temporal_loss


def test_temporal_loss_by_hand():
    image = torch.tensor([[[[0.0, 1.0], [0.5, 0.5]]]])
    target = torch.tensor([[[[1.0, 1.0], [0.0, 0.5]]]])
    weights = torch.tensor([[[[1.0, 1.0], [0.5, 0.0]]]])
    # (1 * 1^2 + 1 * 0 + 0.5 * 0.5^2 + 0 * 0) / 4 elements
    assert temporal_loss(image, target, weights).item() == pytest.approx(1.125 / 4)


def test_temporal_loss_gradient_is_zero_where_the_flow_is_unreliable():
    image = torch.rand(1, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 3, 5, 5, dtype=torch.float64)
    weights = torch.rand(1, 1, 5, 5, dtype=torch.float64)
    weights[..., 2, :] = 0
    assert torch.autograd.gradcheck(lambda x: temporal_loss(x, target, weights), (image,))
    (grad,) = torch.autograd.grad(temporal_loss(image, target, weights), image)
    assert torch.allclose(grad, 2 * weights * (image - target).detach() / image.numel())
    assert grad[..., 2, :].abs().max() == 0


def test_long_term_weights_take_the_closest_frame_first():
    near = torch.tensor([1.0, 0.0, 0.0, 0.6])
    far = torch.tensor([1.0, 1.0, 0.0, 0.8])
    farther = torch.tensor([1.0, 1.0, 1.0, 1.0])
    a, b, c = long_term_weights([near, far, farther])
    assert torch.equal(a, near)
    assert torch.allclose(b, torch.tensor([0.0, 1.0, 0.0, 0.2]))  # only where the near frame is not seen
    assert torch.allclose(c, torch.tensor([0.0, 0.0, 1.0, 0.0]))


def test_the_term_warps_the_previous_frame_and_is_zero_at_it():
    previous = torch.rand(1, 3, 8, 10)
    flow = torch.zeros(1, 2, 8, 10)
    flow[:, 0] = -2  # the current frame sees the previous one moved right by two pixels
    weights = torch.ones(1, 1, 8, 10)
    weights[..., :2] = 0
    term = TemporalLoss([Constraint(previous, flow, weights)], weight=1.0)
    moved = previous.roll(2, dims=-1)
    assert term.loss(moved).item() == pytest.approx(0, abs=1e-9)
    assert term.loss(previous).item() > 0.1


def test_at_a_coarse_scale_the_flow_is_halved_and_the_weights_averaged():
    previous = torch.rand(1, 3, 16, 20)
    flow = torch.zeros(1, 2, 16, 20)
    flow[:, 0] = -4
    weights = torch.ones(1, 1, 16, 20)
    weights[..., :4] = 0
    coarse = TemporalLoss([Constraint(previous, flow, weights)], weight=3.0, name="t").resized(8, 10)
    assert coarse.name == "t" and coarse.weight == 3.0
    c = coarse.constraints[0]
    assert c.previous.shape == (1, 3, 8, 10) and torch.allclose(c.flow[:, 0], torch.full((1, 8, 10), -2.0))
    assert c.weights[..., :2].max() == 0 and c.weights[..., 2:].min() == 1


def test_resize_weights_keeps_them_in_range():
    weights = torch.rand(1, 1, 7, 9)
    for size in [(3, 4), (14, 18)]:
        out = resize_weights(weights, *size)
        assert out.shape[-2:] == size and 0 <= out.min() and out.max() <= 1


def test_the_report_says_what_it_cannot_measure():
    from impasto.video.report import ClipReport

    one = ClipReport(1, 0.0, 0.0, 0.0, 1.0, 1.0, 3.0, None).lines()
    assert one[0].startswith("warping error: none to measure, the clip has one frame") and "0.00x" not in " ".join(one)
    resumed = ClipReport(4, 0.1, 0.2, 0.05, 0.9, 1.1, None, 2.0).lines()
    assert "0.25x the frames alone" in resumed[3] and resumed[-1].startswith("time: not measured, this run resumed")
    whole = ClipReport(4, 0.1, 0.2, 0.05, 0.9, 1.1, 4.0, 1.0).lines()
    assert whole[-1] == "time: first frame 4.0 s, later frames 1.0 s each (0.25x the first)"
