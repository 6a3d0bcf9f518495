"""The shared trainer: any nn.Module, any `data.Dataset`; knows nothing of specs.

Fast where d2l's `train_ch6` is slow: the whole uint8 dataset sits on the device, resized
there once (bilinear, antialiased, rounded back to uint8 as PIL's resize does); shuffling
and batching are index operations on the device; loss and accuracy accumulate on the device,
so an epoch has no host sync until its end (the progress bar reads them through an
asynchronous copy); bf16 autocast, channels_last and fused optimizers on GPU; optional
torch.compile. Results compare with the seeds: the default recipe is d2l's.

Checkpoints (see `checkpoint.py`) are written at every epoch's end and on Ctrl-C/SIGTERM;
resuming continues exactly: shuffles derive from (seed, epoch), and RNG states are saved.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoint, distributed
from .data import Dataset, Split
from .errors import CnnspecError
from .train_report import progress_bar, write_metrics


class TrainError(CnnspecError):
    """Training cannot go on: a non-finite loss, out of memory, bad settings."""


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 256
    lr: float = 0.1
    optimizer: str = "sgd"  # sgd | adam | adamw
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "constant"  # constant | onecycle | cosine
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    augment: bool = False  # random crop (4 px padding) and horizontal flip, on the device
    size: tuple[int, int] | None = None  # resize images to H x W; None keeps them
    device: str = "cpu"
    compile: bool = False
    seed: int = 0
    progress: bool = True
    sync_bn: bool = False  # under torchrun: batch-norm statistics over all ranks


def modern(config: TrainConfig) -> TrainConfig:
    """What fast-training work adds to d2l's plain SGD."""
    return replace(
        config, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle",
        warmup_epochs=min(2.0, config.epochs / 5), label_smoothing=0.1, augment=True,
    )  # fmt: skip


@dataclass
class EpochResult:
    epoch: int
    loss: float
    train_acc: float
    test_acc: float
    examples_per_sec: float
    train_seconds: float
    wall_seconds: float
    compile_seconds: float = 0.0  # the first, compiling step (left out of examples_per_sec)


@dataclass
class _State:
    epoch: int = 0  # epochs completed
    step: int = 0  # steps completed in the current epoch
    history: list[dict] = field(default_factory=list)
    partial: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # loss, hits, n
    train_seconds: float = 0.0


# --- data on the device -------------------------------------------------------------------


def prepare(split: Split, size: tuple[int, int] | None, device: torch.device) -> Split:
    """Move a split to the device and resize it there, once, back to uint8."""
    split = split.to(device)
    images = split.images
    if size is not None and tuple(images.shape[-2:]) != tuple(size):
        chunks = []
        for chunk in images.split(4096):
            out = F.interpolate(chunk.float(), size=size, mode="bilinear", antialias=True,
                                align_corners=False)  # fmt: skip
            chunks.append(out.round_().clamp_(0, 255).to(torch.uint8))
        images = torch.cat(chunks)
    return Split(images, split.labels)


def _batch(split: Split, index: torch.Tensor, augment: bool, gen: torch.Generator | None,
           channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    x = split.images[index].float().div_(255)
    if augment:
        x = _crop_and_flip(x, gen)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, split.labels[index]


def _crop_and_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), device=x.device, generator=gen)
    dx = torch.randint(0, 9, (n,), device=x.device, generator=gen)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    out = padded[batch, chans, rows, cols]
    flip = torch.rand(n, device=x.device, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


# --- optimisation -------------------------------------------------------------------------


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device):
    fused = {"fused": True} if device.type == "cuda" else {}
    params = model.parameters()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay, **fused)  # fmt: skip
    if cfg.optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    raise TrainError(f"unknown optimizer '{cfg.optimizer}' (sgd, adam or adamw)")


def learning_rate(cfg: TrainConfig, step: int, total: int, per_epoch: int) -> float:
    """The learning rate at global `step` (0-based) of `total`."""
    warmup = int(cfg.warmup_epochs * per_epoch)
    if cfg.schedule == "constant":
        return cfg.lr
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.schedule == "onecycle":  # linear decay to zero after the warm-up peak
        return cfg.lr * (1 - progress)
    raise TrainError(f"unknown schedule '{cfg.schedule}' (constant, onecycle or cosine)")


def _loss_and_hits(out, y: torch.Tensor, smoothing: float):
    """Mean cross-entropy (over heads too) and the number of correct predictions per sample
    (a fraction, when there are several heads)."""
    if isinstance(out, tuple):  # several heads: y is N x heads
        losses = [F.cross_entropy(o.float(), y[:, i], label_smoothing=smoothing)
                  for i, o in enumerate(out)]  # fmt: skip
        hits = sum((o.argmax(1) == y[:, i]).sum() for i, o in enumerate(out)) / len(out)
        return sum(losses) / len(losses), hits
    return F.cross_entropy(out.float(), y, label_smoothing=smoothing), (out.argmax(1) == y).sum()


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int, autocast, channels_last,
             group=None) -> float:  # fmt: skip
    """Test accuracy; under torchrun each rank scores its share and the hits are summed."""
    model.eval()
    hits = torch.zeros((), device=split.labels.device)
    rank, world = (group.rank, group.world) if group is not None else (0, 1)
    mine = torch.arange(rank, len(split), world, device=hits.device)
    for index in mine.split(batch_size):
        x, y = _batch(split, index, False, None, channels_last)
        with autocast():
            hits += _loss_and_hits(model(x), y, 0.0)[1]
    model.train()
    return distributed.sum_(hits, group).item() / len(split)


# --- the loop -----------------------------------------------------------------------------


@contextmanager
def _stop_requests():
    """Turn Ctrl-C and SIGTERM into a flag the loop checks between steps."""
    flag = {"signal": None}

    def handler(signum, frame):
        flag["signal"] = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def fit(
    model: nn.Module,
    data: Dataset,
    cfg: TrainConfig,
    run: Path | None = None,
    resume: bool = False,
    report: Callable[[str], None] = print,
) -> list[EpochResult]:
    """Train `model` on `data`; with `run`, keep metrics, curves and checkpoints there."""
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda asked for, but no CUDA device is available")
    cuda = device.type == "cuda"
    group = distributed.join(device.type)
    if group is not None and cfg.sync_bn and not cuda:
        raise TrainError("--sync-bn needs GPUs: torch's SyncBatchNorm runs on CUDA only")
    if group is not None:
        if cuda:
            device = torch.device("cuda", group.local_rank)
        if not group.main:
            report = _quiet
            cfg = replace(cfg, progress=False)
    try:
        return _fit(model, data, cfg, run, resume, report, device, cuda, group)
    except torch.cuda.OutOfMemoryError:
        raise TrainError(
            f"the GPU ran out of memory at batch size {cfg.batch_size}; "
            f"try --batch-size {max(cfg.batch_size // 2, 1)}"
        ) from None


def _quiet(line: str) -> None:
    """Ranks other than 0 say nothing."""


def _fit(model, data, cfg, run, resume, report, device, cuda, group) -> list[EpochResult]:
    train, test = prepare(data.train, cfg.size, device), prepare(data.test, cfg.size, device)
    if group is not None and cfg.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    channels_last = train.images.dim() == 4 and cuda
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg, device)
    state = _State()
    if resume:
        state = _restore(run, model, optimizer, device)
        report(f"resuming {run} at epoch {state.epoch + 1}, step {state.step}")
    step_model = model
    if group is not None:
        ids = [group.local_rank] if cuda else None
        step_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if cfg.compile:
        step_model = torch.compile(step_model)
    main = group is None or group.main

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()

    n, batch = len(train), cfg.batch_size
    per_epoch = math.ceil(n / batch)
    total_steps = per_epoch * cfg.epochs
    results = [EpochResult(**h) for h in state.history]
    model.train()
    with _stop_requests() as stop:
        for epoch in range(state.epoch, cfg.epochs):
            shuffle = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=shuffle).to(device)
            augment_gen = None
            if cfg.augment:
                augment_gen = torch.Generator(device=device)
                augment_gen.manual_seed(cfg.seed * 1_000_003 + epoch)
            sums = torch.tensor(state.partial, dtype=torch.float64).to(device)
            first_bad = torch.full((), -1, device=device, dtype=torch.int64)
            step_ids = torch.arange(per_epoch, device=device)  # no host->device copy per step
            resumed_seen, earlier_seconds = state.partial[2], state.train_seconds
            bar = progress_bar(cfg.progress, epoch, cfg.epochs, per_epoch, state.step)
            started = time.perf_counter()
            compile_seconds, compiling = 0.0, cfg.compile and epoch == state.epoch
            for step in range(state.step, per_epoch):
                if compiling and step == state.step + 1:  # the first step compiled the model
                    _synchronize(device)
                    compile_seconds = time.perf_counter() - started
                    report(f"torch.compile: first step took {compile_seconds:.1f} s")
                    started, compiling = time.perf_counter(), False
                    resumed_seen += min(batch, n - state.step * batch)  # its examples too
                index = order[step * batch : (step + 1) * batch]
                if group is not None:  # this rank's share of the global batch
                    index = index[group.rank :: group.world]
                x, y = _batch(train, index, cfg.augment, augment_gen, channels_last)
                if cfg.schedule != "constant":
                    lr = learning_rate(cfg, epoch * per_epoch + step, total_steps, per_epoch)
                    for param_group in optimizer.param_groups:
                        param_group["lr"] = lr
                with autocast():
                    loss, hits = _loss_and_hits(step_model(x), y, cfg.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                count = torch.full((), len(index), device=device, dtype=torch.float64)
                sums += torch.stack([loss.detach().double() * count, hits.double(), count])
                bad = ~torch.isfinite(loss.detach()) & (first_bad < 0)
                first_bad = torch.where(bad, step_ids[step], first_bad)
                bar.advance(sums)
                if _stopping(stop, step, group, device):
                    _check_finite(distributed.max_(first_bad, group), epoch)
                    state.step = step + 1
                    state.partial = distributed.sum_(sums, group).tolist()
                    state.train_seconds += time.perf_counter() - started
                    bar.close()
                    if run is not None:
                        if main:
                            _save(run, model, optimizer, state, cfg, device)
                        distributed.barrier(group)
                        report(f"stopped by signal {stop['signal'] or 'on another rank'}; "
                               f"saved a checkpoint to resume from ({run})")  # fmt: skip
                    return results
            distributed.sum_(sums, group)
            distributed.max_(first_bad, group)
            loss_sum, hit_sum, seen = sums.tolist()  # the epoch's one sync
            elapsed = time.perf_counter() - started
            bar.close()
            _check_finite(first_bad, epoch)
            test_acc = evaluate(model, test, max(batch, 1024), autocast, channels_last, group)
            result = EpochResult(
                epoch + 1, loss_sum / seen, hit_sum / seen, test_acc,
                (seen - resumed_seen) / max(elapsed, 1e-9),  # this session's share of the epoch
                earlier_seconds + elapsed, time.perf_counter() - started, compile_seconds,
            )  # fmt: skip
            results.append(result)
            report(f"epoch {result.epoch}/{cfg.epochs}  loss {result.loss:.3f}  "
                   f"train acc {result.train_acc:.3f}  test acc {result.test_acc:.3f}  "
                   f"{result.examples_per_sec:,.0f} ex/s")  # fmt: skip
            state = _State(epoch + 1, 0, [asdict(r) for r in results])
            if run is not None:
                if main:
                    _save(run, model, optimizer, state, cfg, device)
                    write_metrics(run, results)
                distributed.barrier(group)
    return results


def _stopping(stop: dict, step: int, group, device) -> bool:
    """Whether to stop after this step. Alone, a local flag; under torchrun, the ranks
    agree every 20 steps (a small all-reduce), so all stop at the same step."""
    if group is None:
        return stop["signal"] is not None
    if step % 20:
        return False
    flag = torch.full((), float(stop["signal"] is not None), device=device)
    return bool(distributed.max_(flag, group).item())


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _check_finite(first_bad: torch.Tensor, epoch: int) -> None:
    step = int(first_bad.item())
    if step >= 0:
        raise TrainError(
            f"the loss became NaN or infinite at epoch {epoch + 1}, step {step + 1}; "
            "no checkpoint was written of that state (try a lower --lr)"
        )


# --- run folder -------------------------------------------------------------------------------


def _save(run: Path, model, optimizer, state: _State, cfg: TrainConfig, device) -> None:
    rng = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    trainer = {**asdict(state), "config": asdict(cfg)}
    checkpoint.save(run, f"e{state.epoch:04d}-s{state.step:06d}", model.state_dict(),
                    optimizer.state_dict(), rng, trainer)  # fmt: skip


def _restore(run: Path | None, model, optimizer, device) -> _State:
    if run is None:
        raise TrainError("resuming needs the run folder")
    weights, opt_state, rng, trainer = checkpoint.load(run)
    try:
        model.load_state_dict(weights)
        optimizer.load_state_dict(opt_state)
    except (RuntimeError, ValueError, KeyError) as err:
        raise checkpoint.CheckpointError(
            f"{run}: the checkpoint does not fit this network ({str(err).splitlines()[0]})"
        ) from None
    torch.set_rng_state(rng["cpu"])
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)
    trainer.pop("config", None)
    return _State(**trainer)
