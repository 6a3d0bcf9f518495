"""Training on several processes with PyTorch's own machinery: torchrun + DDP.

Under `torchrun` (RANK, WORLD_SIZE and LOCAL_RANK in the environment) the trainer joins
the process group (NCCL on GPU, gloo on CPU). Each global batch is split across ranks, so
every sample is seen once per epoch and the averaged gradient is the single-process one;
only rank 0 prints and writes the run folder.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Group:
    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def join(device_type: str, timeout_s: float = 600) -> Group | None:
    """Join torchrun's process group, once; None when not launched by torchrun."""
    if not launched():
        return None
    group = Group(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                  int(os.environ["LOCAL_RANK"]))  # fmt: skip
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(group.local_rank)
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo",
                                timeout=timedelta(seconds=timeout_s))  # fmt: skip
    return group


def sum_(tensor: torch.Tensor, group: Group | None) -> torch.Tensor:
    if group is not None:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def max_(tensor: torch.Tensor, group: Group | None) -> torch.Tensor:
    if group is not None:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def barrier(group: Group | None) -> None:
    if group is not None:
        dist.barrier()


def broadcast(value, group: Group | None):
    """Rank 0's `value`, on every rank."""
    if group is None:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def relaunch(nproc: int, argv: list[str]) -> int:
    """`cnnspec ... --nproc N` -> the same command under torchrun with N processes."""
    from torch.distributed.run import main as torchrun

    args = ["--nproc-per-node", str(nproc), "--max-restarts", "0", "-m", "cnnspec", *argv]
    try:
        torchrun(args)
    except SystemExit as exit:  # torchrun reports failures itself
        return int(exit.code or 0)
    except Exception as err:  # ChildFailedError: a rank failed; its error is printed above
        print(f"cnnspec: {type(err).__name__}: training failed on a rank", file=sys.stderr)
        return 1
    return 0
