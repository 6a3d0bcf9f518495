"""Another model's weights in a compiled network, matched by structure.

A spec written from torchvision's source names its tensors differently (`b1.0.weight`,
not `conv1.weight`) but holds them in the same order with the same shapes, so the two
state_dicts are paired by position. Tensors are copied while the shapes agree; the
first pair that differs ends the match, which is how a backbone is taken and new heads
are left as they were initialised.

The file is read without running code it could carry (`weights_only`) and within the
memory its size says: a zip's entries must be stored, as torch writes them, so no small
file inflates to gigabytes. Every tensor must be
dense and real, on the CPU, and a pair must agree in kind (floating point or whole
numbers) as well as in shape: nothing is cast silently.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CnnspecError
from ..tensors import same_kind, unreadable


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
        _check_container(Path(path))
        with warnings.catch_warnings():  # torch's own notes on what it is reading
            warnings.simplefilter("ignore")
            saved = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, OSError, RuntimeError, EOFError, ValueError, TypeError) as err:
        raise TransferError(f"{path}: {_why_unread(err)}") from None
    for key in ("state_dict", "model"):
        if isinstance(saved, dict) and isinstance(saved.get(key), dict):
            saved = saved[key]
    if not isinstance(saved, dict) or not all(isinstance(v, torch.Tensor) for v in saved.values()):
        raise TransferError(f"{path}: not a state_dict (a mapping of names to tensors)")
    for key, tensor in saved.items():
        why = unreadable(tensor)
        if why:
            raise TransferError(
                f"{path}: '{key}' is {why}; only dense tensors of real numbers load"
            )
    return saved


def _why_unread(err: BaseException) -> str:
    """torch's reason, in a line, without its advice to load the file again allowing code
    to run (which is what weights_only refused)."""
    text = str(err)
    named = re.search(r"GLOBAL (\S+) was not an allowed global", text)
    if named:
        return (
            f"holds {named.group(1)}, which is no tensor and could run code when read; "
            "refused (save the model's state_dict() instead)"
        )
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"cannot read weights ({lines[0] if lines else type(err).__name__})"


def _check_container(path: Path) -> None:
    """A zip (torch.save's form since torch 1.6) must have every entry stored, as torch
    writes them: then reading it takes no more memory than its size, where one deflated
    entry could inflate a thousandfold. The older form stores its tensors raw, and torch
    checks each one's size against the file before reading it."""
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # as torch tells the two forms apart
            return
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except zipfile.BadZipFile as err:
        raise TransferError(f"{path}: cannot read weights ({err})") from None
    packed = [e.filename for e in entries if e.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise TransferError(
            f"{path}: '{packed[0]}' is compressed, which torch.save never does; refused, "
            "as it could inflate far past the file's size"
        )
    if sum(e.file_size for e in entries) > path.stat().st_size:
        raise TransferError(f"{path}: its entries claim more bytes than the file holds")


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
        if not same_kind(tensor, value):
            mismatch = (
                f"'{key}' holds {_dtype(tensor)} in the network, "
                f"'{their_key}' holds {_dtype(value)} in the weights"
            )
            break
        copied[key] = value
    net.load_state_dict(copied, strict=False)
    return Transfer(source, len(copied), len(ours), mismatch)


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "a scalar"
