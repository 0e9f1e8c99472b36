"""Choosing the torch device for training and segmentation (``--device auto|cpu|cuda|mps``).

``auto`` takes CUDA when torch sees a CUDA GPU, else Apple's MPS when available, else the CPU.
On CUDA, the forward pass runs under automatic mixed precision (bfloat16 where the GPU supports
it, float16 otherwise); the weights, the optimiser and the loss stay float32. On the CPU nothing
changes: the same code path as before devices existed, so results are identical.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

from tomosim.errors import TomosimError

DeviceName = Literal["auto", "cpu", "cuda", "mps"]
DEVICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str) -> torch.device:
    """Return the torch device for ``name`` (``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``).

    Raises
    ------
    TomosimError
        An unknown name, or a device this machine does not have.
    """
    kind = name.split(":", 1)[0]
    if kind not in DEVICES:
        raise TomosimError(f"--device must be one of {', '.join(DEVICES)}, got {name!r}")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise TomosimError(
            f"--device {name}: no CUDA GPU is available to torch {torch.__version__} here "
            "(use --device cpu or auto)"
        )
    if kind == "mps" and not _mps_available():
        raise TomosimError(f"--device {name}: Apple MPS is not available here (use cpu or auto)")
    try:
        device = torch.device(name)
        if device.type == "cuda" and device.index is not None:
            if device.index >= torch.cuda.device_count():
                raise TomosimError(
                    f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here"
                )
    except RuntimeError:
        raise TomosimError(f"--device: not a device name: {name!r}") from None
    return device


def autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """Mixed precision on CUDA (bfloat16 if supported, else float16); nothing elsewhere."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)
