"""Optical flow, warping and the consistency check, on synthetic motion whose answer is known."""

import pytest
import torch

pytest.importorskip("cv2")

from impasto.video.flow import inside, motion_boundaries, occluded, optical_flow, reliability, resize_flow, warp

from conftest import pattern, to_tensor


def shifted(dx: int, dy: int = 0, size=(64, 48)) -> tuple[torch.Tensor, torch.Tensor]:
    """Two frames of one texture, the second moved right by dx and down by dy whole pixels."""
    width, height = size
    big = to_tensor(pattern(width + 20, height + 20, 3))
    before = big[..., 10 : 10 + height, 10 : 10 + width]
    after = big[..., 10 - dy : 10 - dy + height, 10 - dx : 10 - dx + width]
    return before, after


def constant_flow(dx: float, dy: float, height=48, width=64) -> torch.Tensor:
    flow = torch.zeros(1, 2, height, width)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_warping_along_a_whole_pixel_flow_moves_the_texture(mode):
    before, after = shifted(3, 2)
    warped = warp(before, constant_flow(-3, -2), mode)  # the backward flow of `after`
    assert torch.allclose(warped[..., 2:, 3:], after[..., 2:, 3:], atol=1e-5)


def test_bicubic_warping_blurs_less_than_bilinear_and_stays_in_range():
    before, _ = shifted(0)
    there_and_back = {}
    for mode in ("bilinear", "bicubic"):
        image = before
        for _ in range(6):  # half a pixel right, then back: six times
            image = warp(warp(image, constant_flow(0.5, 0), mode), constant_flow(-0.5, 0), mode)
        there_and_back[mode] = (image - before)[..., 4:-4].abs().mean()
        assert 0 <= image.min() and image.max() <= 1
    assert there_and_back["bicubic"] < 0.6 * there_and_back["bilinear"]


def test_inside_marks_what_leaves_the_frame():
    where = inside(constant_flow(-3, 0))
    assert not where[..., :3].any() and where[..., 3:].all()


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_flow_methods_find_a_whole_pixel_shift(method):
    before, after = shifted(3, -2)
    backward = optical_flow(after, before, method)
    interior = backward[..., 8:-8, 8:-8]
    assert interior[:, 0].mean().item() == pytest.approx(-3, abs=0.1)
    assert interior[:, 1].mean().item() == pytest.approx(2, abs=0.1)


def test_resized_flow_scales_its_vectors():
    half = resize_flow(constant_flow(-4, 2), 24, 32)
    assert half.shape == (1, 2, 24, 32)
    assert torch.allclose(half[:, 0], torch.full((1, 24, 32), -2.0))
    assert torch.allclose(half[:, 1], torch.full((1, 24, 32), 1.0))


def moving_square(step: int = 4):
    """A square moving right by `step` over a still background: exact flows both ways."""
    backward, forward = torch.zeros(1, 2, 48, 64), torch.zeros(1, 2, 48, 64)
    backward[:, 0, 16:32, 24 + step : 40 + step] = -step  # frame 1: the square's new place
    forward[:, 0, 16:32, 24:40] = step  # frame 0: its old place
    return backward, forward


def test_the_uncovered_background_is_occluded_and_the_rest_is_not():
    backward, forward = moving_square(4)
    lost = occluded(backward, forward)[0, 0]
    assert lost[16:32, 24:28].all()  # background the square uncovered: not in frame 0
    lost[16:32, 24:28] = False
    assert not lost.any()


def test_motion_boundaries_surround_the_moving_square():
    backward, _ = moving_square(4)
    edges = motion_boundaries(backward)[0, 0]
    assert edges[16:32, 27].all() and edges[16:32, 28].all() and edges[16:32, 43].all()
    assert not edges[:10].any() and not edges[20:28, 32:40].any()


def test_reliability_is_zero_at_occlusions_and_boundaries_one_elsewhere():
    backward, forward = moving_square(4)
    weights = reliability(backward, forward)
    assert weights.min() >= 0 and weights.max() <= 1
    assert weights[0, 0, 16:32, 24:28].max() == 0  # uncovered
    assert weights[0, 0, 19:29, 31:40].min() > 0.99  # inside the moving square
    assert weights[0, 0, :10].min() > 0.99  # still background
    assert reliability(*moving_square(4), sigma=0)[0, 0, 16:32, 28].max() == 0  # its edge


def test_reliability_of_a_real_shift_leaves_out_only_the_new_strip():
    before, after = shifted(3)
    weights = reliability(optical_flow(after, before), optical_flow(before, after))[0, 0]
    assert weights[:, :3].mean() < 0.1  # came in from outside the frame
    assert weights[4:-4, 6:-4].mean() > 0.95


def test_flow_helpers_keep_to_the_device_of_their_inputs():
    # PyTorch's "meta" device checks devices like CUDA does, without a GPU: a tensor made on the
    # CPU inside a helper would meet these and fail ("not on the expected device").
    from impasto.video.flow import _gaussian, inside, motion_boundaries, occluded, resize_flow, warp

    flow, image = torch.zeros(1, 2, 8, 12, device="meta"), torch.zeros(1, 3, 8, 12, device="meta")
    for result in (
        inside(flow),
        resize_flow(flow, 4, 6),
        warp(image, flow),
        warp(image, flow, "bicubic"),
        occluded(flow, flow),
        motion_boundaries(flow),
        _gaussian(image[:, :1], 1.0),
    ):
        assert result.device.type == "meta"
    assert warp(image, torch.zeros(1, 2, 8, 12)).device.type == "meta"  # a CPU flow goes to the image
