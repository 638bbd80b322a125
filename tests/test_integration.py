"""A few runs with the real VGG-19 weights at 32-96 px: what a user would notice."""

import pytest
import torch

from impasto import stylize
from impasto.images import pil_to_tensor, read_image, resize_longest
from impasto.losses import gram_matrix

from conftest import EXAMPLES

pytestmark = pytest.mark.weights

CONTENT = EXAMPLES / "chelsea.png"
STYLE = EXAMPLES / "starry_night_van_gogh.jpg"
LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def gram_distance(net, a, b):
    fa, fb = net(a, LAYERS), net(b, LAYERS)
    return sum(((gram_matrix(fa[n]) - gram_matrix(fb[n])).square().sum() / fa[n].shape[1] ** 2).item() for n in LAYERS)


def test_loss_falls_and_grams_move_toward_the_style(real_net):
    result = stylize(CONTENT, STYLE, network=real_net, size=64, iterations=30, scales=1)
    history = [h["total"] for h in result.history]
    assert history[-1] < 0.2 * history[0]
    content = pil_to_tensor(resize_longest(read_image(CONTENT), 64))
    style = pil_to_tensor(resize_longest(read_image(STYLE), 64))
    with torch.no_grad():
        before = gram_distance(real_net, content, style)
        after = gram_distance(real_net, result.tensor, style)
    assert after < 0.3 * before
    # Still the same picture: closer to the content than to the content mirrored.
    assert (result.tensor - content).abs().mean() < 0.8 * (result.tensor - content.flip(-1)).abs().mean()


def test_seed_reproduces_the_output(real_net):
    runs = [
        stylize(CONTENT, STYLE, network=real_net, size=32, iterations=5, scales=1, init="noise", seed=s).tensor
        for s in (7, 7, 8)
    ]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_coarse_to_fine_reaches_a_lower_loss_than_single_scale_for_the_same_time(real_net):
    """Iterations at the small scale are cheap; the schedule should not cost quality."""
    single = stylize(CONTENT, STYLE, network=real_net, size=96, iterations=20, scales=1)
    multi = stylize(CONTENT, STYLE, network=real_net, size=96, iterations=40, scales=2, min_size=48)
    assert multi.history[-1]["total"] < single.history[-1]["total"]
