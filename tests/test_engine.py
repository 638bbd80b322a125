"""The engine: style targets shared, runs that stop and keep their image, terms that plug in,
no hidden state."""

import threading

import pytest
import torch

from impasto import StyleConfig, stylize
from impasto.engine import Painter
from impasto.errors import ImpastoError
from impasto.images import resize_image
from impasto.terms import PixelTerm

from conftest import pattern, stripes, to_tensor

FAST = StyleConfig(size=40, iterations=12, scales=1)


@pytest.fixture
def tensors():
    return to_tensor(pattern(48, 32, 1)), to_tensor(stripes(40, 40))


def test_style_targets_are_computed_once_for_many_contents(tiny_net, tensors):
    content, style = tensors
    painter = Painter([style], config=FAST, network=tiny_net)
    calls = []
    original = painter._grams
    painter._grams = lambda *a: calls.append(a[1]) or original(*a)
    painter.paint(content)
    painter.paint(to_tensor(pattern(48, 32, 5)))
    painter.paint(content.flip(-1))
    assert calls == [40]  # one style, one size, three contents


def test_a_variant_with_other_masks_or_steps_shares_the_targets(tiny_net, tensors):
    content, style = tensors
    config = FAST.replace(tv_weight=0)  # the tiny net's style is weak beside the default smoothing
    painter = Painter([style], config=config, network=tiny_net)
    calls = []
    original = painter._grams
    painter._grams = lambda *a: calls.append(a[1]) or original(*a)
    left = torch.zeros(1, 1, 32, 48)
    left[..., :24] = 1
    masked = painter.variant(masks=[left])
    fewer = painter.variant(config=config.replace(iterations=5, tolerance=0.01))
    plain, painted = painter.paint(content), masked.paint(content)
    fewer.paint(content)
    assert calls == [40] and masked.network is painter.network
    # the mask took effect: the right half, outside it, stays nearer the content
    start = resize_image(content, *plain.tensor.shape[-2:])
    right = (slice(None), slice(None), slice(None), slice(plain.tensor.shape[-1] // 2 + 2, None))
    assert ((painted.tensor - start)[right]).abs().mean() < 0.5 * ((plain.tensor - start)[right]).abs().mean()
    other = painter.variant(config=config.replace(activation_shift=-1.0))  # other targets: its own
    assert other._targets is not painter._targets
    with pytest.raises(ImpastoError, match="2 style masks for 1 style"):
        painter.variant(masks=[left, left])


def test_run_is_an_iterator_that_stops_and_keeps_its_image(tiny_net, tensors):
    content, style = tensors
    run = Painter([style], config=FAST, network=tiny_net).run(content)
    snapshots = []
    for progress in run:
        snapshots.append(to_tensor(progress.current()))
        if progress.iteration == 4:
            run.stop()
    result = run.result()
    assert len(snapshots) == 4 and result.interrupted and len(result.history) == 4
    assert (result.tensor - snapshots[-1]).abs().max() <= 1 / 255
    assert (result.tensor - to_tensor(pattern(48, 32, 1).resize((40, 27)))).abs().mean() > 1e-3


def test_leaving_the_loop_keeps_the_image(tiny_net, tensors):
    content, style = tensors
    run = Painter([style], config=FAST, network=tiny_net).run(content)
    for progress in run:
        if progress.iteration == 3:
            break
    assert run.result().interrupted and len(run.result().history) == 3
    assert list(run) == []  # a run left is over: not the schedule again from the start
    result = run.finish()
    assert result.interrupted and len(result.history) == 3


@pytest.mark.parametrize("how", ["false", "keyboard", "event"])
def test_every_way_of_stopping_keeps_the_latest_image(tiny_net, tensors, how):
    content, style = tensors
    stop = threading.Event()
    seen = []

    def callback(p):
        seen.append(to_tensor(p.current()))
        if p.iteration == 10:
            if how == "keyboard":
                raise KeyboardInterrupt
            if how == "event":
                stop.set()
            return False if how == "false" else None

    start = stylize(content, style, network=tiny_net, config=FAST.replace(iterations=0)).tensor
    result = stylize(content, style, network=tiny_net, config=FAST, callback=callback, stop=stop)
    assert result.interrupted and len(result.history) == 10
    assert (result.tensor - seen[-1]).abs().max() <= 1 / 255
    assert (result.tensor - start).abs().mean() > 1e-3  # the work of the scale is kept


def test_stopped_at_a_coarse_scale_says_so(tiny_net, tensors):
    content, style = tensors
    result = stylize(
        content,
        style,
        network=tiny_net,
        size=64,
        scales=2,
        min_size=32,
        iterations=10,
        callback=lambda p: p.iteration < 2 and None or False,
    )
    assert result.interrupted and result.upscaled and result.painted_size == (32, 21)
    assert result.image.size == (64, 43)
    # Too few iterations for the full-size scale to get a step: it is an enlargement, though it ran through.
    few = stylize(content, style, network=tiny_net, size=64, scales=2, min_size=32, iterations=1)
    assert not few.interrupted and few.upscaled and few.painted_size == (32, 21)


class Gray(PixelTerm):
    """A new term: pulls every pixel toward mid-gray."""

    def __init__(self, weight, name="gray"):
        self.name, self.weight = name, weight

    def loss(self, image):
        return (image - 0.5).square().sum()


def test_a_new_term_plugs_in_by_name(tiny_net, tensors):
    content, style = tensors
    painter = Painter([style], config=FAST, network=tiny_net)
    plain = painter.paint(content)
    # As large, at the plain result, as the whole loss after the plain run's first step.
    weight = plain.history[0]["total"] / float(Gray(1.0).loss(plain.tensor))
    grayer = painter.paint(content, terms=[Gray(weight)])
    assert "gray" in grayer.history[-1] and "gray" not in plain.history[-1]
    assert (grayer.tensor - 0.5).abs().mean() < 0.5 * (plain.tensor - 0.5).abs().mean()


def test_no_hidden_state(tiny_net, tensors):
    content, style = tensors
    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    winograd = tiny_net.winograd
    stylize(
        content, style, network=tiny_net, config=FAST.replace(threads=1, seed=7, winograd=not winograd, init="noise")
    )
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert tiny_net.winograd == winograd


def test_runs_on_two_threads_sharing_a_network_equal_sequential_runs(tiny_net, tensors):
    content, style = tensors
    other = to_tensor(pattern(40, 40, 9))
    jobs = [(content, FAST), (other, FAST.replace(style_weight=1e4, seed=2, init="noise"))]
    sequential = [stylize(c, style, network=tiny_net, config=cfg).tensor for c, cfg in jobs]
    results = [None, None]

    def work(i):
        c, cfg = jobs[i]
        results[i] = stylize(c, style, network=tiny_net, config=cfg).tensor

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, sequential):
        assert torch.equal(got, want)


def test_a_loss_that_overflows_from_the_start_is_an_error(tiny_net, tensors):
    content, style = tensors
    with pytest.raises(ImpastoError, match="not finite at the start .*style.*lower style_weight"):
        stylize(content, style, network=tiny_net, config=FAST.replace(style_weight=1e40))


def test_too_small_an_output_names_the_smallest_size(tiny_net, tensors):
    content, style = tensors
    with pytest.raises(ImpastoError, match=r"relu5_1 needs 16 px .* use size 24 or more"):
        stylize(content, style, network=tiny_net, config=FAST.replace(size=12))


def test_a_panorama_skips_the_scales_too_small_for_the_network(tiny_net, tensors):
    _, style = tensors
    panorama = to_tensor(pattern(700, 100, 3))
    sizes = []
    result = stylize(
        panorama,
        style,
        network=tiny_net,
        size=140,
        scales=3,
        min_size=32,
        iterations=6,
        callback=lambda p: sizes.append(p.size),
    )
    assert result.image.size == (140, 20) and set(sizes) == {(140, 20)}


def test_a_mask_of_another_shape_is_stretched_with_a_warning(tiny_net, tensors):
    content, style = tensors  # content 48x32
    square = torch.ones(1, 1, 40, 40)
    with pytest.warns(UserWarning, match="style mask 1 is 40x40 but the content is 48x32"):
        stylize(content, style, masks=[square], network=tiny_net, config=FAST.replace(iterations=1))


def test_postprocessing_inputs_of_another_shape_warn(tmp_path):
    from impasto import color_transfer, mask_transfer

    out, content, mask = tmp_path / "o.png", tmp_path / "c.png", tmp_path / "m.png"
    pattern(60, 40, 1).save(out)
    pattern(40, 40, 2).save(content)
    pattern(60, 40, 3).convert("L").save(mask)
    with pytest.warns(UserWarning, match="content image is 40x40 but the stylised image is 60x40"):
        mask_transfer(out, content, mask)
    with pytest.warns(UserWarning, match="content image is 40x40"):
        color_transfer(out, content)


def test_a_style_too_small_for_the_network_is_an_error(tiny_net, tensors):
    content, _ = tensors
    sliver = to_tensor(pattern(400, 20, 3))
    with pytest.raises(ImpastoError, match=r"style image scaled to 40x2 is too small for relu5_1 .* style_scale"):
        stylize(content, sliver, network=tiny_net, config=FAST)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(correlation_chain="false"), "correlation_chain must be True or False, got 'false'"),
        (dict(winograd="no"), "winograd must be True or False"),
        (dict(style_layers="relu3_1"), "style_layers must be a sequence (a tuple or list), not the string"),
        (dict(style_blend=1.0), "style_blend must be a sequence"),
        (dict(seed=2**70), "seed 1180591620717411303424 must be between 0 and"),
        (dict(max_memory="6G"), "max_memory must be a whole number of bytes"),
        (dict(style_layer_weights=(0, 0, 0, 0, 0)), "style_layer_weights must not be all zero"),
        (dict(init=torch.zeros(1, 3, 4, 4)), "a start image as a tensor goes to Painter.run(init=...)"),
    ],
)
def test_options_of_the_wrong_kind_are_named_not_taken_for_true_or_iterated(options, message):
    with pytest.raises(ImpastoError) as error:
        StyleConfig(**options)
    assert message in str(error.value)


def test_options_in_another_form_of_the_same_value_are_the_same_settings():
    from pathlib import Path

    import numpy as np

    given = StyleConfig(
        style_layers=["relu1_1", "relu2_1"], size=np.int64(40), style_weight=np.float32(80), init=Path("a.png")
    )
    plain = StyleConfig(style_layers=("relu1_1", "relu2_1"), size=40, style_weight=80.0, init="a.png")
    assert given == plain and hash(given) == hash(plain) and type(given.size) is int


def test_painter_inputs_of_the_wrong_kind_are_one_line(tiny_net, tensors):
    content, style = tensors
    cases = [
        (lambda: Painter([style * 255], config=FAST, network=tiny_net), "style 1 must hold values in [0, 1], got"),
        (lambda: Painter([(style * 255).byte()], config=FAST, network=tiny_net), "must be a float tensor in [0, 1]"),
        (lambda: Painter([style * float("nan")], config=FAST, network=tiny_net), "not finite"),
        (lambda: Painter([style], config={"size": 40}, network=tiny_net), "config must be a StyleConfig, got dict"),
        (lambda: Painter([style], config=FAST, network="vgg19"), "network must be an impasto VGG"),
        (lambda: Painter([style], config=FAST.replace(pooling="avg"), network=tiny_net), "differs from the network's"),
        (lambda: Painter([style], masks="sky.png", config=FAST, network=tiny_net), "masks must be a sequence"),
        (lambda: Painter([style], config=FAST, network=tiny_net).paint(content * 255), "content must hold values in"),
        (lambda: Painter([style], config=FAST, network=tiny_net).paint(content, stop=True), "stop must be a threading"),
        (lambda: Painter([style], config=FAST, network=tiny_net).paint(content, callback=5), "callback must be a"),
        (lambda: stylize(content, style, masks="sky.png", network=tiny_net), "masks must be a list with one mask"),
        (lambda: stylize(content, style, config={"size": 40}, network=tiny_net), "config must be a StyleConfig"),
    ]
    for call, message in cases:
        with pytest.raises(ImpastoError) as error:
            call()
        assert message in str(error.value)
    assert Painter(style, config=FAST, network=tiny_net).styles[0].shape == style.shape  # one style, not a list


def test_a_stop_sets_the_runs_own_signal_never_the_callers_event(tiny_net, tensors):
    content, style = tensors
    painter, event = Painter([style], config=FAST, network=tiny_net), threading.Event()
    stopped = painter.paint(content, stop=event, callback=lambda p: p.iteration < 2)
    assert stopped.interrupted and len(stopped.history) == 2
    assert not event.is_set()  # so the caller can use it again
    again = painter.paint(content, stop=event)
    assert not again.interrupted and len(again.history) == FAST.iterations
    event.set()
    assert painter.paint(content, stop=event).history == []  # the caller's event still stops a run


def test_steps_are_counted_as_taken_when_a_coarse_scale_ends_early(tiny_net, tensors):
    content, style = tensors
    config = StyleConfig(size=64, scales=2, min_size=32, iterations=60, tolerance=0.5)  # the coarse scale ends soon
    run = Painter([style], config=config, network=tiny_net).run(content)
    seen = [(p.scale, p.iteration, p.total) for p in run]
    coarse = [s for s in seen if s[0] == 1]
    assert len(coarse) < run.counts[0]  # it did end early
    assert [s[1] for s in seen] == list(range(1, len(seen) + 1))  # no jump to the next scale's planned start
    assert {s[2] for s in coarse} == {config.iterations}
    assert {s[2] for s in seen if s[0] == 2} == {len(coarse) + run.counts[1]}


@pytest.mark.parametrize(
    "terms, message",
    [
        ([1], "terms must be FeatureTerm or PixelTerm objects"),
        ("tv", "terms must be a list"),
        ([Gray(1.0, name="tv")], "may not be named 'tv', which is taken"),
        ([Gray(1.0, name="total")], "may not be named 'total'"),
        ([Gray(1.0, name="g"), Gray(2.0, name="g")], "may not be named 'g'"),
    ],
)
def test_bad_extra_terms_are_one_clear_error(tiny_net, tensors, terms, message):
    content, style = tensors
    with pytest.raises(ImpastoError, match=message):
        Painter([style], config=FAST, network=tiny_net).run(content, terms=terms)


def test_a_flag_of_the_command_given_to_the_library_says_what_python_does_instead(tiny_net, tensors):
    with pytest.raises(ImpastoError, match=r"'improved', a flag of the command; in Python, pass \*\*impasto.IMPROVED"):
        stylize(*tensors, network=tiny_net, improved=True)
