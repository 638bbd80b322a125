"""Each loss against a hand computation on a tiny tensor."""

import pytest
import torch

from impasto.errors import ImpastoError
from impasto.losses import (
    StyleRepresentation,
    content_loss,
    cross_gram,
    gram_loss,
    gram_matrix,
    gram_norm,
    layer_weights,
    resize_mask,
    total_variation,
)


def feats(values, channels_last=False):
    """(C, H, W) nested lists -> (1, C, H, W) float64."""
    t = torch.tensor(values, dtype=torch.float64).unsqueeze(0)
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t


def test_content_loss_is_half_the_sum_of_squares():
    f = feats([[[1.0, 2.0], [3.0, 4.0]]])
    p = feats([[[0.0, 2.0], [1.0, 7.0]]])
    assert content_loss(f, p).item() == pytest.approx(0.5 * (1 + 0 + 4 + 9))


@pytest.mark.parametrize("channels_last", [False, True])
def test_gram_matrix_by_hand(channels_last):
    # Two channels over three positions: F = [[1, 2, 0], [0, 1, 3]].
    f = feats([[[1.0, 2.0, 0.0]], [[0.0, 1.0, 3.0]]], channels_last)
    expected = torch.tensor([[5.0, 2.0], [2.0, 10.0]], dtype=torch.float64) / 3
    assert torch.allclose(gram_matrix(f), expected)


def test_shifted_gram_is_gram_of_f_minus_one():
    f = feats([[[1.0, 2.0, 0.0]], [[0.0, 1.0, 3.0]]])
    # (F - 1) = [[0, 1, -1], [-1, 0, 2]] -> [[2, -2], [-2, 5]] / 3
    expected = torch.tensor([[2.0, -2.0], [-2.0, 5.0]], dtype=torch.float64) / 3
    assert torch.allclose(gram_matrix(f, shift=-1.0), expected)


def test_gram_loss_equals_the_papers_formula_for_equal_sizes():
    torch.manual_seed(0)
    x, s = torch.rand(1, 4, 3, 5, dtype=torch.float64), torch.rand(1, 4, 3, 5, dtype=torch.float64)
    n, m = 4, 15
    fx, fs = x.reshape(n, m), s.reshape(n, m)
    paper = ((fx @ fx.T - fs @ fs.T) ** 2).sum() / (4 * n**2 * m**2)
    assert gram_loss(gram_matrix(x), gram_matrix(s)).item() == pytest.approx(paper.item())


def test_masked_gram_is_normalised_by_the_mask_area():
    f = feats([[[1.0, 2.0], [3.0, 4.0]]])
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]], dtype=torch.float64)
    # Positions kept: values 1 and 3 -> (1 + 9) / 2.
    assert gram_matrix(f, mask=mask).item() == pytest.approx(5.0)


def test_cross_gram_shape_and_hand_value():
    deep = feats([[[1.0]], [[2.0]], [[0.5]]])  # 3 channels at 1x1
    shallow = feats([[[1.0, 3.0], [5.0, 7.0]], [[0.0, 0.0], [2.0, 2.0]]])  # 2 channels at 2x2
    g = cross_gram(deep, shallow)
    assert g.shape == (3, 2)
    # shallow is average-pooled to 1x1: [4, 1]; G = deep (3x1) @ [4, 1] / 1
    assert torch.allclose(g, torch.tensor([[4.0, 1.0], [8.0, 2.0], [2.0, 0.5]], dtype=torch.float64))
    # Its loss is normalised by 4 * N_l * N_(l-1).
    assert gram_loss(g, torch.zeros(3, 2, dtype=torch.float64)).item() == pytest.approx((g**2).sum().item() / 24)


def test_total_variation_by_hand():
    img = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # vertical: (2-0)^2 + (4-1)^2 = 13, horizontal: (1-0)^2 + (4-2)^2 = 5
    assert total_variation(img).item() == pytest.approx(18.0)


def test_gradcheck_losses():
    x = torch.rand(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    t = torch.rand(3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda y: gram_loss(gram_matrix(y, shift=-1.0), t), (x,))
    assert torch.autograd.gradcheck(total_variation, (x,))


def test_geometric_weights_are_positive_decreasing_and_sum_to_one():
    w = layer_weights(16, "geometric")
    assert all(v > 0 for v in w)
    assert all(a > b for a, b in zip(w, w[1:]))
    assert sum(w) == pytest.approx(1.0)
    assert w[0] / w[1] == pytest.approx(2.0)
    assert layer_weights(5) == [0.2] * 5


def test_chain_terms_pair_adjacent_layers():
    rep = StyleRepresentation(("relu1_1", "relu2_1", "relu3_1"), chain=True)
    assert rep.terms == [("relu2_1", "relu1_1"), ("relu3_1", "relu2_1")]
    assert len(rep.weights) == 2
    with pytest.raises(ImpastoError):
        StyleRepresentation(("relu1_1",), chain=True)


def test_resize_mask_stays_binary():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, :3] = 1
    small = resize_mask(mask, (3, 3))
    assert set(small.unique().tolist()) <= {0.0, 1.0}
    assert small.shape == (1, 1, 3, 3)


def test_gram_norm_is_the_loss_of_a_featureless_image():
    a = torch.tensor([[1.0, 2.0], [2.0, 3.0]], dtype=torch.float64)
    # sum A^2 / (4 * 2 * 2) = (1 + 4 + 4 + 9) / 16
    assert gram_norm(a).item() == pytest.approx(18 / 16)
    rep = StyleRepresentation(("relu1_1", "relu2_1"), explicit=(0.25, 0.75))
    b = torch.tensor([[2.0]], dtype=torch.float64)
    assert rep.norm([a, b]) == pytest.approx(0.25 * 18 / 16 + 0.75 * 4 / 4)
    assert rep.loss([torch.zeros_like(a), torch.zeros_like(b)], [a, b]).item() == pytest.approx(1.0)
    assert rep.norm([torch.zeros_like(a), torch.zeros_like(b)]) == 1.0  # nothing to scale by


def _style_and_content_terms(scale):
    """A style term and a content term on features (and targets) multiplied by `scale`."""
    from impasto.terms import ContentLoss, StyleLoss
    from impasto.tiling import Window

    torch.manual_seed(0)
    layers = ("relu1_1", "relu2_1")
    image = {"relu1_1": torch.rand(1, 3, 8, 8), "relu2_1": torch.rand(1, 4, 4, 4)}
    style = {"relu1_1": torch.rand(1, 3, 8, 8), "relu2_1": torch.rand(1, 4, 4, 4)}
    image, style = ({k: v * scale for k, v in d.items()} for d in (image, style))
    rep = StyleRepresentation(layers, chain=True)
    style_term = StyleLoss(rep, [rep.grams(style)], [1.0], [None], (8, 8), 1.0)
    content_term = ContentLoss({"relu2_1": style["relu2_1"]}, 1.0)
    window = Window.whole(8, 8)
    return (
        style_term.loss(style_term.sums(image, window)).item(),
        content_term.loss(content_term.sums(image, window)).item(),
    )


def test_style_and_content_losses_do_not_depend_on_the_scale_of_the_features():
    """What a layer's activations are measured in (VGG's layers differ by orders of magnitude,
    a recoloured style has less contrast) no longer changes how strongly a weight paints."""
    style, content = _style_and_content_terms(1.0)
    for scale in (1e-3, 37.0):
        assert _style_and_content_terms(scale) == pytest.approx((style, content), rel=1e-4)
