"""Training on several processes with PyTorch's own machinery: torchrun + DDP.

Under `torchrun` (RANK, WORLD_SIZE and LOCAL_RANK in the environment) the trainer joins
the process group (NCCL on GPU, gloo on CPU). Each global batch is split across ranks, so
every sample is seen once per epoch and the averaged gradient is the single-process one;
only rank 0 prints and writes the run folder (`is_main`, `on_main`).
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from ..errors import CnnspecError

T = TypeVar("T")


@dataclass(frozen=True)
class Group:
    rank: int
    world: int
    local_rank: int


def is_main(group: Group | None) -> bool:
    """The rank-0 gate: whether this process prints and writes the run folder (alone, it
    always does)."""
    return group is None or group.rank == 0


def on_main(group: Group | None, action: Callable[[], T]) -> T:
    """Run `action` on rank 0 alone and hand its result to every rank, which wait for it.
    A user-facing error it raises is raised on every rank, so none waits forever."""
    if group is None:
        return action()
    box: list = [None, None]
    if is_main(group):
        try:
            box[0] = action()
        except CnnspecError as err:
            box[1] = err
    dist.broadcast_object_list(box, src=0)
    if box[1] is not None:
        raise box[1]
    return box[0]


def launched() -> bool:
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def join(device_type: str, timeout_s: float = 600) -> Group | None:
    """Join torchrun's process group, once; None when not launched by torchrun."""
    if not launched():
        return None
    group = Group(
        int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    )
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(group.local_rank)
        dist.init_process_group(
            "nccl" if device_type == "cuda" else "gloo", timeout=timedelta(seconds=timeout_s)
        )
        # Left to the interpreter's exit, a gloo group's threads are now and then torn
        # down mid-flight ("terminate called without an active exception", SIGABRT).
        atexit.register(_leave)
    return group


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def sum_(tensor: torch.Tensor, group: Group | None) -> torch.Tensor:
    if group is not None:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def max_(tensor: torch.Tensor, group: Group | None) -> torch.Tensor:
    if group is not None:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def relaunch(nproc: int, argv: list[str]) -> int:
    """`cnnspec ... --nproc N` -> the same command under torchrun with N processes."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.run import main as torchrun

    args = ["--nproc-per-node", str(nproc), "--max-restarts", "0", "-m", "cnnspec", *argv]
    try:
        torchrun(args)
    except SystemExit as exit:  # torchrun reports failures itself
        return int(exit.code or 0)
    except SignalException as stop:  # Ctrl-C or SIGTERM: torchrun passed it to the ranks,
        return 128 + int(stop.sigval)  # which checkpointed, and rank 0 said how to resume
    except Exception as err:  # ChildFailedError: a rank failed; its error is printed above
        print(f"cnnspec: {type(err).__name__}: training failed on a rank", file=sys.stderr)
        return 1
    return 0
