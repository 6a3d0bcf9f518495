"""What a saved tensor may be copied into a network as: the one rule that both loading a
run's checkpoint (training) and loading another model's weights (backends) follow."""

from __future__ import annotations

import torch


def unreadable(tensor: torch.Tensor) -> str:
    """Why a saved tensor cannot be weights ("" when it can): sparse, quantized, nested,
    not on the CPU, complex or boolean."""
    if tensor.layout != torch.strided:
        return f"a {str(tensor.layout).removeprefix('torch.')} tensor"
    if tensor.is_quantized:
        return "a quantized tensor"
    if tensor.is_nested:
        return "a nested tensor"
    if tensor.device.type != "cpu":
        return f"a tensor on the {tensor.device.type} device"
    if tensor.is_complex() or tensor.dtype == torch.bool:
        return f"{str(tensor.dtype).removeprefix('torch.')}"
    return ""


def same_kind(ours: torch.Tensor, theirs: torch.Tensor) -> bool:
    """Whether a saved tensor may be copied into the network's without losing what it
    means: both floating point, or both whole numbers (a batch-norm's step count)."""
    return theirs.is_floating_point() == ours.is_floating_point() and not unreadable(theirs)
