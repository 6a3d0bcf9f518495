"""The shared trainer: any nn.Module, any `data.Dataset`; knows nothing of specs.

Fast where d2l's `train_ch6` is slow: the whole uint8 dataset sits on the device, resized
there once (bilinear, antialiased, rounded back to uint8 as PIL's resize does); shuffling
and batching are index operations on the device; loss and accuracy accumulate on the device,
so an epoch has no host sync until its end (the progress bar reads them through an
asynchronous copy); fused optimizers; channels_last and bf16 autocast on GPU (both can be
asked for on CPU too); optional torch.compile. Results compare with the seeds: the default
recipe is d2l's.

Checkpoints (see `checkpoint.py`) are written at every epoch's end and on Ctrl-C/SIGTERM;
resuming continues exactly: shuffles derive from (seed, epoch), and RNG states are saved.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CnnspecError
from . import checkpoints as checkpoint
from . import distributed
from .data import Dataset, Split
from .report import progress_bar, write_metrics


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
    precision: str = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU | bf16 | fp32
    # None: on GPU only, where tensor cores want it; on CPU it speeds up some networks and
    # slows batch norm over few channels (benchmarks/train_step.py)
    channels_last: bool | None = None
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


def make_optimizer(model: nn.Module, cfg: TrainConfig):
    params = model.parameters()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay, fused=True)  # fmt: skip
    if cfg.optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    raise TrainError(f"unknown optimizer '{cfg.optimizer}' (sgd, adam or adamw)")


def autocast_for(cfg: TrainConfig, device: torch.device) -> Callable[[], AbstractContextManager]:
    """The forward pass's precision: bf16 autocast (the default on GPU) or plain fp32."""
    if cfg.precision not in ("auto", "bf16", "fp32"):
        raise TrainError(f"unknown precision '{cfg.precision}' (auto, bf16 or fp32)")
    if cfg.precision == "fp32" or (cfg.precision == "auto" and device.type != "cuda"):
        return nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


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
    group = distributed.join(device.type)
    if group is not None and cfg.sync_bn and device.type != "cuda":
        raise TrainError("--sync-bn needs GPUs: torch's SyncBatchNorm runs on CUDA only")
    if group is not None:
        if device.type == "cuda":
            device = torch.device("cuda", group.local_rank)
        if not group.main:
            report = _quiet
            cfg = replace(cfg, progress=False)
    try:
        loop = _Loop(model, data, cfg, run, resume, report, device, group)
        return loop.run_epochs()
    except torch.cuda.OutOfMemoryError:
        raise TrainError(
            f"the GPU ran out of memory at batch size {cfg.batch_size}; "
            f"try --batch-size {max(cfg.batch_size // 2, 1)}"
        ) from None


def _quiet(line: str) -> None:
    """Ranks other than 0 say nothing."""


class _Loop:
    """One run's moving parts, set up once, so that an epoch and a step each read alone."""

    def __init__(self, model, data, cfg, run, resume, report, device, group):
        self.cfg, self.run, self.report, self.device, self.group = cfg, run, report, device, group
        self.main = group is None or group.main
        self.autocast = autocast_for(cfg, device)
        self.train = prepare(data.train, cfg.size, device)
        self.test = prepare(data.test, cfg.size, device)
        if group is not None and cfg.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(device)
        wanted = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"
        self.channels_last = wanted and self.train.images.dim() == 4
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self.optimizer = make_optimizer(model, cfg)
        self.state = _State()
        if resume:
            self.state = _load_checkpoint(run, model, self.optimizer, device)
            report(f"resuming {run} at epoch {self.state.epoch + 1}, step {self.state.step}")
        self.step_model = model  # what a step calls: wrapped for torchrun and torch.compile
        if group is not None:
            ids = [group.local_rank] if device.type == "cuda" else None
            self.step_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if cfg.compile:
            self.step_model = torch.compile(self.step_model)
        self.per_epoch = math.ceil(len(self.train) / cfg.batch_size)
        self.step_ids = torch.arange(self.per_epoch, device=device)  # no host copy per step

    def run_epochs(self) -> list[EpochResult]:
        cfg = self.cfg
        results = [EpochResult(**h) for h in self.state.history]
        self.model.train()
        with _stop_requests() as stop:
            for epoch in range(self.state.epoch, cfg.epochs):
                result = self._epoch(epoch, stop)
                if result is None:  # stopped by a signal, partial state saved
                    return results
                results.append(result)
                self.report(f"epoch {result.epoch}/{cfg.epochs}  loss {result.loss:.3f}  "
                            f"train acc {result.train_acc:.3f}  "
                            f"test acc {result.test_acc:.3f}  "
                            f"{result.examples_per_sec:,.0f} ex/s")  # fmt: skip
                self.state = _State(epoch + 1, 0, [asdict(r) for r in results])
                if self.run is not None:
                    if self.main:
                        self._checkpoint()
                        write_metrics(self.run, results)
                    distributed.barrier(self.group)
        return results

    def _epoch(self, epoch: int, stop: dict) -> EpochResult | None:
        """Train one epoch (the rest of it, when resuming mid-epoch) and test; None when a
        signal stopped it."""
        cfg, state, device, group = self.cfg, self.state, self.device, self.group
        n, batch = len(self.train), cfg.batch_size
        seed = cfg.seed * 1_000_003 + epoch  # shuffles and crops derive from (seed, epoch)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(device)
        augment = None
        if cfg.augment:
            augment = torch.Generator(device=device)
            augment.manual_seed(seed)
        sums = torch.tensor(state.partial, dtype=torch.float64).to(device)  # loss, hits, n
        first_bad = torch.full((), -1, device=device, dtype=torch.int64)  # first NaN step
        resumed_seen, earlier_seconds = state.partial[2], state.train_seconds
        bar = progress_bar(cfg.progress, epoch, cfg.epochs, self.per_epoch, state.step)
        started = time.perf_counter()
        compile_seconds, compiling = 0.0, cfg.compile and epoch == state.epoch
        for step in range(state.step, self.per_epoch):
            if compiling and step == state.step + 1:  # the first step compiled the model
                _synchronize(device)
                compile_seconds = time.perf_counter() - started
                self.report(f"torch.compile: first step took {compile_seconds:.1f} s")
                started, compiling = time.perf_counter(), False
                resumed_seen += min(batch, n - state.step * batch)  # its examples too
            index = order[step * batch : (step + 1) * batch]
            if group is not None:  # this rank's share of the global batch
                index = index[group.rank :: group.world]
            loss, hits = self._step(index, epoch * self.per_epoch + step, augment)
            count = torch.full((), len(index), device=device, dtype=torch.float64)
            sums += torch.stack([loss.double() * count, hits.double(), count])
            bad = ~torch.isfinite(loss) & (first_bad < 0)
            first_bad = torch.where(bad, self.step_ids[step], first_bad)
            bar.advance(sums)
            if _stopping(stop, step, group, device):
                _check_finite(distributed.max_(first_bad, group), epoch)
                state.step = step + 1
                state.partial = distributed.sum_(sums, group).tolist()
                state.train_seconds += time.perf_counter() - started
                bar.close()
                if self.run is not None:
                    if self.main:
                        self._checkpoint()
                    distributed.barrier(group)
                    self.report(f"stopped by signal {stop['signal'] or 'on another rank'}; "
                                f"saved a checkpoint to resume from ({self.run})")  # fmt: skip
                return None
        distributed.sum_(sums, group)
        distributed.max_(first_bad, group)
        loss_sum, hit_sum, seen = sums.tolist()  # the epoch's one sync
        elapsed = time.perf_counter() - started
        bar.close()
        _check_finite(first_bad, epoch)
        test_acc = evaluate(self.model, self.test, max(batch, 1024), self.autocast,
                            self.channels_last, group)  # fmt: skip
        return EpochResult(
            epoch + 1, loss_sum / seen, hit_sum / seen, test_acc,
            (seen - resumed_seen) / max(elapsed, 1e-9),  # this session's share of the epoch
            earlier_seconds + elapsed, time.perf_counter() - started, compile_seconds,
        )  # fmt: skip

    def _step(self, index: torch.Tensor, global_step: int, augment):
        """One optimisation step; the loss and hit count stay on the device."""
        cfg = self.cfg
        x, y = _batch(self.train, index, cfg.augment, augment, self.channels_last)
        if cfg.schedule != "constant":
            total = self.per_epoch * cfg.epochs
            lr = learning_rate(cfg, global_step, total, self.per_epoch)
            for param_group in self.optimizer.param_groups:
                param_group["lr"] = lr
        with self.autocast():
            loss, hits = _loss_and_hits(self.step_model(x), y, cfg.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), hits

    def _checkpoint(self) -> None:
        _save_checkpoint(self.run, self.model, self.optimizer, self.state, self.cfg, self.device)


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


def _save_checkpoint(run: Path, model, optimizer, state: _State, cfg: TrainConfig, device) -> None:
    rng = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    trainer = {**asdict(state), "config": asdict(cfg)}
    checkpoint.save(run, f"e{state.epoch:04d}-s{state.step:06d}", model.state_dict(),
                    optimizer.state_dict(), rng, trainer)  # fmt: skip


def _load_checkpoint(run: Path | None, model, optimizer, device) -> _State:
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
