"""Mixed precision: the network pass in bfloat16 (or float16 with loss scaling), everything else
float32; `auto` decided by a cached measurement, never bfloat16 where the CPU emulates it."""

import json
import threading

import pytest
import torch
import torch.nn.functional as F

from impasto import VGG, StyleConfig, convplan, engine, precision, stylize
from impasto.cli import build_parser
from impasto.config import PRECISIONS
from impasto.engine import Painter
from impasto.errors import ImpastoError
from impasto.losses import StyleRepresentation
from impasto.objective import Objective
from impasto.optim import lbfgs
from impasto.precision import (
    SHAPES,
    LossScale,
    Shape,
    Timing,
    low_precision_candidate,
    measurement,
    resolve_precision,
    stalled,
)
from impasto.terms import ContentLoss, StyleLoss, TotalVariation

from conftest import EXAMPLES, pattern, stripes, to_tensor

CPU = torch.device("cpu")
FAST = StyleConfig(size=40, iterations=12, scales=1)


class FakeMeasure:
    """Pretends the low precision takes `ratio` times float32's time; counts the shapes asked."""

    def __init__(self, ratio: float, cpu_share: float = 1.0) -> None:
        self.ratio, self.cpu_share = ratio, cpu_share
        self.calls: list[Shape] = []

    def __call__(self, shape: Shape, candidate: str, device: torch.device) -> Timing:
        self.calls.append(shape)
        return Timing(shape, 10.0, 10.0 * self.ratio, self.cpu_share)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A fresh cache folder and no measurement remembered from an earlier test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("IMPASTO_CACHE_DIR", str(folder))
    monkeypatch.setattr(precision, "_MEASUREMENTS", {})
    monkeypatch.setattr(convplan, "_busy", lambda: False)  # whatever else the machine is doing
    return folder


@pytest.fixture
def tensors():
    return to_tensor(pattern(48, 32, 1)), to_tensor(stripes(40, 40))


# --- what auto decides ----------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0.3, 0.5, 1.0, 2.0])
def test_auto_never_picks_bf16_where_the_cpu_emulates_it(ratio):
    """Without avx512_bf16/amx_bf16 bfloat16 is emulated: fp32, and nothing is even timed."""
    measure = FakeMeasure(ratio)
    chosen = resolve_precision("auto", CPU, measure=measure, native=False)
    assert chosen.name == "fp32" and chosen.dtype == torch.float32
    assert "no native bfloat16" in chosen.reason
    assert measure.calls == []


@pytest.mark.parametrize(
    "ratio,expected", [(0.5, "bf16"), (0.85, "bf16"), (0.95, "fp32"), (1.0, "fp32"), (1.6, "fp32")]
)
def test_auto_picks_bf16_where_native_only_if_measured_faster_by_the_margin(ratio, expected):
    measure = FakeMeasure(ratio)
    chosen = resolve_precision("auto", CPU, measure=measure, native=True)
    assert chosen.name == expected
    assert measure.calls == list(SHAPES)
    assert f"{1 / ratio:.2f}x" in chosen.reason


def test_this_machines_flags_decide_native(monkeypatch):
    model = "AMD EPYC"
    monkeypatch.setattr(precision, "cpu_description", lambda: (model, "fpu avx2 avx512f avx512_bf16"))
    assert precision.native_bf16_cpu() and precision.bf16_flags() == ["avx512_bf16"]
    monkeypatch.setattr(precision, "cpu_description", lambda: (model, "fpu avx2 avx512f avx512bw"))
    assert not precision.native_bf16_cpu()
    measure = FakeMeasure(0.1)
    assert resolve_precision("auto", CPU, measure=measure).name == "fp32" and not measure.calls
    monkeypatch.setattr(precision, "cpu_description", lambda: ("Graviton3", "fp asimd sve bf16 i8mm"))
    assert precision.native_bf16_cpu()
    assert "native bfloat16 flags: bf16" in precision.cpu_report()


def test_measured_once_then_read_from_the_cache_file(cache):
    first = FakeMeasure(0.5)
    assert resolve_precision("auto", CPU, measure=first, native=True).name == "bf16"
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].name.startswith("precision-")
    record = json.loads(files[0].read_text())
    assert record["choice"] == "bf16" and record["key"]["threads"] == torch.get_num_threads()
    precision._MEASUREMENTS.clear()  # as a new process
    again = FakeMeasure(2.0)
    assert resolve_precision("auto", CPU, measure=again, native=True).name == "bf16"
    assert again.calls == []


def test_a_close_call_under_load_decides_this_process_only(cache):
    busy = FakeMeasure(0.85, cpu_share=0.4)  # 1.18x: bf16, but load may have blurred it
    assert resolve_precision("auto", CPU, measure=busy, native=True).name == "bf16"
    assert not cache.exists() or not list(cache.iterdir())
    assert "too close to call" in measurement(CPU, "bf16").describe()


@pytest.mark.parametrize("native,expected", [(True, "bf16"), (False, "fp32")])
def test_a_busy_cpu_is_not_timed(cache, monkeypatch, native, expected):
    """As convplan: timings on a busy CPU mislead and are not cached, so none are taken; a native
    CPU keeps bf16, as where it was timed, an emulating one fp32."""
    monkeypatch.setattr(convplan, "_busy", lambda: True)
    measure = FakeMeasure(2.0)
    chosen = resolve_precision("auto", CPU, measure=measure, native=native)
    assert chosen.name == expected and measure.calls == []
    assert not cache.exists() or not list(cache.iterdir())


@pytest.mark.parametrize("ratio,expected", [(0.5, "bf16"), (1.2, "fp32")])
def test_a_clear_verdict_under_load_is_cached(cache, ratio, expected):
    assert resolve_precision("auto", CPU, measure=FakeMeasure(ratio, cpu_share=0.4), native=True).name == expected
    assert len(list(cache.iterdir())) == 1


def test_a_broken_cache_file_is_measured_again(cache):
    resolve_precision("auto", CPU, measure=FakeMeasure(0.5), native=True)
    (path,) = cache.iterdir()
    path.write_text("{not json")
    precision._MEASUREMENTS.clear()
    measure = FakeMeasure(2.0)
    assert resolve_precision("auto", CPU, measure=measure, native=True).name == "fp32"
    assert measure.calls == list(SHAPES)


def test_explicit_choices_are_taken_as_asked_without_measuring():
    measure = FakeMeasure(0.1)
    assert resolve_precision("fp32", CPU, measure=measure, native=True).name == "fp32"
    assert resolve_precision("bf16", CPU, measure=measure, native=False).name == "bf16"
    assert measure.calls == []


def test_bad_choices_name_the_parameter_and_the_valid_ones():
    with pytest.raises(ImpastoError, match="precision fp16 needs a CUDA GPU.*bf16 or fp32"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ImpastoError, match="precision 'fp8' is not one of: auto, fp32, bf16, fp16"):
        StyleConfig(precision="fp8")
    with pytest.raises(ImpastoError, match="not available on mps"):
        resolve_precision("bf16", torch.device("mps"))
    assert resolve_precision("auto", torch.device("mps")).name == "fp32"


@pytest.mark.parametrize("capability,expected", [((9, 0), "bf16"), ((8, 6), "bf16"), ((7, 5), "fp16"), ((6, 1), None)])
def test_on_cuda_the_candidate_follows_the_tensor_cores(monkeypatch, capability, expected):
    """No GPU needed: the decision reads only the compute capability."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    candidate, why = low_precision_candidate(torch.device("cuda"))
    assert candidate == expected and f"{capability[0]}.{capability[1]}" in why


def test_the_cli_flag_comes_from_the_config():
    assert PRECISIONS == ("auto", "fp32", "bf16", "fp16")
    args = build_parser().parse_args(["c.png", "s.png", "-o", "o.png", "--precision", "bf16"])
    assert args.precision == "bf16"
    assert StyleConfig().precision == "auto"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["c.png", "s.png", "-o", "o.png", "--precision", "fp8"])


# --- the network pass -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_pass_returns_float32_features_near_float32(tiny_net, dtype):
    x = torch.rand(1, 3, 32, 48)
    layers = ["relu1_1", "conv2_1", "relu3_1", "relu5_1"]
    exact, low = tiny_net(x, layers), tiny_net(x, layers, dtype=dtype)
    for name in layers:
        assert low[name].dtype == torch.float32
        err = (low[name] - exact[name]).norm() / exact[name].norm()
        assert 0 < err < 2e-2 or name == "relu1_1"
    # The first conv reads the pixels and stays float32: relu1_1 is exact.
    assert torch.equal(low["relu1_1"], exact["relu1_1"])


def test_a_low_precision_pass_does_not_change_the_network(tiny_net):
    before = {k: v.clone() for k, v in tiny_net.state_dict().items()}
    image = torch.rand(1, 3, 32, 32)
    kept = image.clone()
    x = image.requires_grad_()
    out = tiny_net(x, ["relu4_2"], dtype=torch.bfloat16)["relu4_2"]
    out.sum().backward()
    assert x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()
    assert torch.equal(image.detach(), kept)
    after = tiny_net.state_dict()
    assert all(after[k].dtype == torch.float32 and torch.equal(after[k], v) for k, v in before.items())
    assert not torch.is_autocast_enabled("cpu")


def test_passes_on_two_threads_do_not_see_each_others_precision(tiny_net):
    """autocast is per thread: a float32 pass beside a bfloat16 one stays exact."""
    x = torch.rand(1, 3, 64, 64)
    expected = tiny_net(x, ["relu5_1"])["relu5_1"]
    results, go = {}, threading.Barrier(2)

    def work(name, dtype):
        go.wait()
        results[name] = [tiny_net(x, ["relu5_1"], dtype=dtype)["relu5_1"] for _ in range(20)]

    threads = [
        threading.Thread(target=work, args=("fp32", None)),
        threading.Thread(target=work, args=("bf16", torch.bfloat16)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(r, expected) for r in results["fp32"])
    assert not any(torch.equal(r, expected) for r in results["bf16"])


def test_float16_overflow_is_one_clear_error():
    net = VGG.random("vgg19", widths=(4, 4, 4, 4, 4), seed=1)
    net.winograd_plan = None
    with torch.no_grad():
        for conv in net.convs.values():
            conv.weight.mul_(30.0)
    with pytest.raises(ImpastoError, match="overflow float16; use precision bf16 or fp32"):
        net(torch.rand(1, 3, 32, 32), ["relu5_1"], dtype=torch.float16)


# --- loss scaling and the fallback ---------------------------------------------------------------


def test_loss_scale_lifts_gradients_that_float16_would_lose():
    x = torch.full((64,), 0.5, requires_grad=True)
    out = (x.half() * 1.0).float().sum() * 1e-9  # d out / d x = 1e-9: below float16's smallest
    plain = torch.autograd.grad(out, x, retain_graph=True)[0]
    assert (plain == 0).all()
    scaled = LossScale().gradient(out, x)
    assert torch.allclose(scaled, torch.full((64,), 1e-9), rtol=1e-2)


def test_loss_scale_backs_off_on_overflow_and_grows_again():
    x = torch.full((8,), 0.5, requires_grad=True)
    out = (x.half() * 1.0).float().sum() * 1e3  # scaled by 2^16 the float16 gradient overflows
    scale = LossScale(interval=2)
    g = scale.gradient(out, x)
    assert torch.allclose(g, torch.full((8,), 1e3)) and scale.scale < 65504 / 1e3
    low = scale.scale
    scale.gradient(out, x)
    assert scale.scale == 2 * low  # two clean gradients in a row


def test_float16_objective_keeps_small_gradients_with_loss_scaling(tiny_net):
    """A loss weighted 1e-6 has feature gradients below float16's range: scaled, its gradient is
    the unit-weight one times 1e-6; unscaled, it is lost."""
    x = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    other = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(1))

    def gradient(dtype, weight, scaled=True):
        targets = tiny_net(other, ["relu4_2"], dtype=dtype)
        objective = Objective(tiny_net, [ContentLoss(targets, weight)], dtype=dtype)
        if not scaled:
            objective.loss_scale = None
        return objective(x).gradient.flatten()

    unit, small = gradient(torch.float16, 1.0), gradient(torch.float16, 1e-6)
    assert F.cosine_similarity(small, unit, dim=0) > 0.999
    assert float(small.norm() / (unit.norm() * 1e-6)) == pytest.approx(1.0, rel=1e-2)
    assert F.cosine_similarity(small, gradient(None, 1e-6), dim=0) > 0.98
    lost = gradient(torch.float16, 1e-6, scaled=False)
    assert F.cosine_similarity(lost, small, dim=0) < 0.9


def test_stalled_compares_the_last_steps():
    assert not stalled([100.0] * 10)  # too short to tell
    assert stalled([100.0] * 11)
    falling = [100.0 * 0.99**i for i in range(20)]
    assert not stalled(falling)
    assert stalled([100.0, 99.99995] + [99.9999] * 10)
    assert not stalled([100.0] * 5 + [99.0] * 6, steps=10)


def test_last_scale_falls_back_to_float32_when_the_loss_stops_falling(tiny_net, tensors, monkeypatch):
    content, style = tensors
    monkeypatch.setattr(engine, "stalled", lambda losses: len(losses) >= 4)
    # the first scale never falls back; the last goes on in float32 after 4 steps
    config = FAST.replace(size=64, iterations=21, scales=2, min_size=32, precision="bf16")
    painter = Painter([style], config=config, network=tiny_net)
    seen = [(p.scale, p.precision) for p in painter.run(content)]
    assert seen == [(1, "bf16")] * 14 + [(2, "bf16")] * 4 + [(2, "fp32")] * 3
    # float32 targets for the fallback, computed the float32 way
    assert {dtype for _, dtype in painter._targets} == {torch.bfloat16, torch.float32}


def test_fallback_when_lbfgs_finds_no_lower_point(tiny_net, tensors, monkeypatch):
    content, style = tensors
    real = engine.lbfgs
    calls = []

    def gives_up_at_first(evaluate, x0, steps, history=20):
        calls.append(steps)
        taken = real(evaluate, x0, steps, history=history)
        return (step for i, step in zip(range(3 if len(calls) == 1 else steps), taken))

    monkeypatch.setattr(engine, "lbfgs", gives_up_at_first)
    painter = Painter([style], config=FAST.replace(precision="bf16"), network=tiny_net)
    run = painter.run(content)
    seen = [p.precision for p in run]
    assert seen == ["bf16"] * 3 + ["fp32"] * 9 and calls == [12, 9]
    assert run.finished


def test_no_fallback_in_float32_or_with_adam(tiny_net, tensors, monkeypatch):
    content, style = tensors
    monkeypatch.setattr(engine, "stalled", lambda losses: True)
    for config in (FAST.replace(precision="fp32"), FAST.replace(precision="bf16", optimizer="adam")):
        seen = {p.precision for p in Painter([style], config=config, network=tiny_net).run(content)}
        assert seen == {config.precision}


# --- every method in bfloat16 ---------------------------------------------------------------------


METHODS = {
    "gatys": {},
    "geometric": dict(layer_weighting="geometric"),
    "all conv layers": dict(all_conv_layers=True),
    "shift": dict(activation_shift=-1.0),
    "chain": dict(correlation_chain=True),
    "luminance": dict(preserve_color="luminance"),
    "histogram": dict(preserve_color="histogram"),
    "tiled": dict(tile=64, size=96),
    "adam": dict(optimizer="adam", learning_rate=0.05),
}


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs_in_bf16_like_fp32(tiny_net, tensors, method):
    content, style = tensors
    results = {}
    for name in ("fp32", "bf16"):
        config = FAST.replace(precision=name, **METHODS[method])
        results[name] = stylize(content, style, network=tiny_net, config=config)
    bf16, fp32 = results["bf16"], results["fp32"]
    first, last = bf16.history[0]["total"], bf16.history[-1]["total"]
    assert len(bf16.history) == FAST.iterations and last < 0.8 * first
    # The tiny network's bf16 gradients are rougher than VGG-19's (cosine 0.95 with float32), so
    # the two runs part ways within a few steps; they still get about as far.
    assert 2 / 3 < last / fp32.history[-1]["total"] < 3 / 2
    assert (bf16.tensor - fp32.tensor).abs().mean() < 0.1  # Adam's sign-like steps part ways most


def test_masks_and_two_styles_in_bf16(tiny_net, tensors):
    content, style = tensors
    left = torch.zeros(1, 1, 32, 48)
    left[..., :24] = 1
    config = FAST.replace(precision="bf16", style_blend=(0.5, 0.5))
    result = stylize(content, [style, style.flip(-1)], masks=[left, 1 - left], network=tiny_net, config=config)
    assert result.history[-1]["total"] < result.history[0]["total"]


def test_tiled_bf16_evaluation_equals_untiled(tiny_net, tensors):
    """Tiles add up in low precision too, to its rounding."""
    _, style = tensors
    from impasto.tiling import windows

    image = to_tensor(pattern(96, 64, 3))
    layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    representation = StyleRepresentation(layers)
    painter = Painter([style], config=FAST.replace(precision="bf16"), network=tiny_net)
    targets = painter.targets(96)

    def terms():
        return [StyleLoss(representation, targets, [1.0], [None], (64, 96), 1e3), TotalVariation(1.0)]

    whole = Objective(tiny_net, terms(), dtype=torch.bfloat16)(image)
    cut = windows(64, 96, 32, tiny_net.halo(layers), 16)
    tiled = Objective(tiny_net, terms(), cut, dtype=torch.bfloat16)(image)
    assert len(cut) > 1
    assert tiled.terms["total"] == pytest.approx(whole.terms["total"], rel=1e-3)
    assert F.cosine_similarity(tiled.gradient.flatten(), whole.gradient.flatten(), dim=0) > 0.999


# --- the real VGG-19 ------------------------------------------------------------------------------


def _real_objective(net, content, style, dtype):
    """impasto's default objective at content's size, targets computed in `dtype` like the features."""
    config = StyleConfig(precision="fp32" if dtype is None else "bf16")
    painter = Painter([style], config=config, network=net)
    height, width = content.shape[-2:]
    with torch.no_grad():
        targets = net(content, config.content_layers, dtype=dtype)
    terms = [
        ContentLoss(targets, config.content_weight),
        StyleLoss(
            painter.representation,
            painter.targets(max(height, width)),
            [1.0],
            [None],
            (height, width),
            config.style_weight,
        ),
        TotalVariation(config.tv_weight),
    ]
    return Objective(net, terms, dtype=dtype)


def _examples(longest):
    from impasto.images import pil_to_tensor, read_image, resize_longest

    return [
        pil_to_tensor(resize_longest(read_image(EXAMPLES / name), longest))
        for name in ("chelsea.png", "starry_night_van_gogh.jpg")
    ]


@pytest.mark.weights
@pytest.mark.parametrize("longest", [64, 96])
def test_bf16_evaluation_is_within_1_percent_of_fp32_on_vgg19(real_net, longest):
    content, style = _examples(longest)
    # A point off the content, as mid-run: the content loss is not zero.
    image = (0.7 * content + 0.3 * F.interpolate(style, size=content.shape[-2:], mode="bilinear")).clamp(0, 1)
    exact = _real_objective(real_net, content, style, None)(image)
    low = _real_objective(real_net, content, style, torch.bfloat16)(image)
    assert low.gradient.dtype == torch.float32
    assert low.terms["total"] == pytest.approx(exact.terms["total"], rel=0.01)
    cosine = F.cosine_similarity(low.gradient.flatten(), exact.gradient.flatten(), dim=0)
    assert cosine >= 0.98


@pytest.mark.weights
def test_lbfgs_curvature_pairs_stay_sane_in_bf16(real_net):
    """bfloat16 gradients are rougher: L-BFGS must still take every step, its pairs keep positive
    curvature, nothing is NaN, and it ends where float32 does (both judged by float32's loss)."""
    content, style = _examples(64)
    exact = _real_objective(real_net, content, style, None)
    final = {}
    for dtype in (None, torch.bfloat16):
        objective = _real_objective(real_net, content, style, dtype)
        accepted, latest = [], []

        def evaluate(x):
            e = objective(x)
            assert torch.isfinite(e.gradient).all() and torch.isfinite(e.total)
            latest[:] = [(x.clone(), (e.total, e.gradient))]
            return e.total, e.gradient

        for _ in lbfgs(evaluate, content, 25):
            accepted.append(latest[0])  # the point accepted is the last one evaluated
        assert len(accepted) == 25, "L-BFGS stalled"
        losses = [float(loss) for _, (loss, _) in accepted]
        assert all(b <= a for a, b in zip(losses, losses[1:]))
        curvatures = [
            torch.dot((g1 - g0).flatten(), (x1 - x0).flatten())
            for (x0, (_, g0)), (x1, (_, g1)) in zip(accepted, accepted[1:])
        ]
        assert sum(c > 0 for c in curvatures) >= 0.9 * len(curvatures)
        final[dtype] = exact(accepted[-1][0].clamp(0, 1)).terms["total"]
    assert final[torch.bfloat16] <= 1.05 * final[None]


@pytest.mark.weights
def test_bf16_run_on_vgg19_paints_like_fp32(real_net):
    content, style = _examples(64)
    config = StyleConfig(size=64, iterations=12, scales=1)
    runs = {
        name: stylize(content, style, network=real_net, config=config.replace(precision=name))
        for name in ("fp32", "bf16")
    }
    judge = _real_objective(real_net, content, style, None)
    j = {name: judge(r.tensor).terms["total"] for name, r in runs.items()}
    assert j["bf16"] <= 1.05 * j["fp32"]
    assert (runs["bf16"].tensor - runs["fp32"].tensor).abs().mean() < 0.03


def test_the_progress_line_shows_the_precision(tmp_path):
    from impasto.cli import _callback
    from impasto.engine import Progress

    class Bar:
        n = 0

        def update(self, k):
            self.n += k

        def set_description(self, text, refresh=True):
            self.text = text

        def set_postfix(self, values, refresh=True):
            pass

    bar = Bar()
    report = _callback(bar, tmp_path / "out.png", 0)
    report(Progress(1, 10, 3, 3, (512, 341), {"total": 1.0}, 1.0, lambda: None, 1, "bf16"))
    assert bar.text == "scale 3/3 512x341 bf16"
