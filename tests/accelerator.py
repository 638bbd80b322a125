"""A stand-in accelerator for machines without a GPU: tensors that say they are on another device
(PyTorch's "meta" device type) but hold real CPU values, so a whole run can go through it.

Every operation checks devices as CUDA does: a tensor on the device meeting a CPU tensor (other
than a 0-dim one, which CUDA takes as a number) raises "Expected all tensors to be on the same
device", and so does `.numpy()` of a tensor on the device. A tensor made on the CPU inside the
library and used with the image, a forgotten `.to(device)`, or a `.numpy()` without `.cpu()` fails
here as it would on a GPU. What it cannot show: CUDA's own kernels, streams, memory figures and
autocast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

DEVICE = torch.device("meta")

# Operations that take a CPU tensor beside tensors on the device on CUDA too: copies between
# devices, and indexing with CPU indices.
_CROSSING = {
    "_to_copy",
    "copy_",
    "index",
    "index_put",
    "index_put_",
    "_index_put_impl_",
    "_has_compatible_shallow_copy_type",
}


class OnDevice(torch.Tensor):
    """A tensor on DEVICE whose values are `cpu`, a plain CPU tensor."""

    cpu_values: torch.Tensor

    @staticmethod
    def __new__(cls, values: torch.Tensor) -> OnDevice:
        wrapper = torch.Tensor._make_wrapper_subclass(  # type: ignore[attr-defined]
            cls,
            values.shape,
            strides=values.stride(),
            dtype=values.dtype,
            layout=values.layout,
            device=DEVICE,
            requires_grad=values.requires_grad,
        )
        wrapper.cpu_values = values
        return wrapper

    def __repr__(self) -> str:
        return f"OnDevice({self.cpu_values!r})"

    def numpy(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"can't convert {DEVICE} device type tensor to numpy. Use Tensor.cpu() first.")

    __torch_function__ = torch._C._disabled_torch_function_impl

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        return _run(func, args, kwargs or {})


def _on_device(value: Any) -> bool:
    return isinstance(value, (str, torch.device)) and torch.device(value).type == DEVICE.type


def _run(func: Any, args: tuple, kwargs: dict) -> Any:
    name = func.__name__.split(".")[0]
    flat, _ = tree_flatten((args, kwargs))
    wrapped = [x for x in flat if isinstance(x, OnDevice)]
    plain = [x for x in flat if isinstance(x, torch.Tensor) and not isinstance(x, OnDevice) and x.dim() > 0]
    if wrapped and plain and name not in _CROSSING:
        raise RuntimeError(
            f"Expected all tensors to be on the same device, but found at least two devices, {DEVICE} and cpu! ({func})"
        )
    target = kwargs.get("device")
    to_device = _on_device(target) or (target is None and bool(wrapped))
    if name in ("_to_copy", "copy_") and target is not None:
        to_device = _on_device(target)
    if name == "copy_":  # into its first argument, wherever that is
        to_device = isinstance(args[0], OnDevice)
    if target is not None and _on_device(target):
        kwargs = {**kwargs, "device": torch.device("cpu")}
    out = func(*tree_map(_values, args), **tree_map(_values, kwargs))
    if name == "copy_":
        return args[0]
    if not to_device:
        return out
    return tree_map(lambda x: OnDevice(x) if isinstance(x, torch.Tensor) and not isinstance(x, OnDevice) else x, out)


def _values(x: Any) -> Any:
    return x.cpu_values if isinstance(x, OnDevice) else x


class _Factories(TorchDispatchMode):
    """Tensors made with device=DEVICE (torch.zeros(..., device=x.device), x.to(device)) become
    OnDevice; the rest runs as usual."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        flat, _ = tree_flatten((args, kwargs))
        if any(isinstance(x, OnDevice) for x in flat) or _on_device(kwargs.get("device")):
            return _run(func, args, kwargs)
        return func(*args, **kwargs)


@contextlib.contextmanager
def accelerator() -> Iterator[torch.device]:
    """Within it, DEVICE works as an accelerator would; yields the device."""
    with _Factories():
        yield DEVICE


@contextlib.contextmanager
def on_the_cpu() -> Iterator[None]:
    """Within accelerator(), a stretch that runs as if outside it (faster: no check of each operation)."""
    with torch.utils._python_dispatch._disable_current_modes():
        yield
