"""Another model's weights in a compiled network, matched by structure.

A spec written from torchvision's source names its tensors differently (`b1.0.weight`,
not `conv1.weight`) but holds them in the same order with the same shapes, so the two
state_dicts are paired by position. Tensors are copied while the shapes agree; the
first pair that differs ends the match, which is how a backbone is taken and new heads
are left as they were initialised.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CnnspecError


class TransferError(CnnspecError):
    """The weights cannot be read, or nothing in them fits the network."""


@dataclass(frozen=True)
class Transfer:
    source: str
    loaded: int  # tensors copied, from the first on
    total: int  # tensors the network holds
    mismatch: str  # the first pair that differs, or "" when every tensor was loaded

    def __str__(self) -> str:
        text = f"{self.source}: loaded {self.loaded} of the network's {self.total} tensors"
        if not self.mismatch:
            return text
        return f"{text}; the rest keep their initial values, from where {self.mismatch}"


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state_dict saved with `torch.save` (torchvision's files are), read without
    running any code it could carry; one wrapped as {"state_dict": ...} is unwrapped."""
    try:
        saved = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TransferError(f"{path}: cannot read weights ({first})") from None
    for key in ("state_dict", "model"):
        if isinstance(saved, dict) and isinstance(saved.get(key), dict):
            saved = saved[key]
    if not isinstance(saved, dict) or not all(isinstance(v, torch.Tensor) for v in saved.values()):
        raise TransferError(f"{path}: not a state_dict (a mapping of names to tensors)")
    return saved


def transfer(net: torch.nn.Module, path: str | os.PathLike) -> Transfer:
    """Copy the weights at `path` into `net` by position while the shapes agree."""
    report = load_by_position(net, read_state_dict(path), str(path))
    if not report.loaded:
        raise TransferError(f"{path}: nothing fits this network ({report.mismatch})")
    return report


def load_by_position(
    net: torch.nn.Module, weights: Mapping[str, torch.Tensor], source: str
) -> Transfer:
    """Copy `weights` into `net`, pairing tensors by position, not by name, while the
    shapes agree; the report says how far it got."""
    theirs = list(weights.items())
    ours = net.state_dict()
    copied, mismatch = {}, ""
    for i, (key, tensor) in enumerate(ours.items()):
        if i >= len(theirs):
            mismatch = f"the weights end before '{key}'"
            break
        their_key, value = theirs[i]
        if value.shape != tensor.shape:
            mismatch = (
                f"'{key}' is {_shape(tensor)} in the network, "
                f"'{their_key}' is {_shape(value)} in the weights"
            )
            break
        copied[key] = value
    net.load_state_dict(copied, strict=False)
    return Transfer(source, len(copied), len(ours), mismatch)


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "a scalar"
