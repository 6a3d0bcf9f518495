"""The shared trainer's loop: any nn.Module, any `data.Dataset`; knows nothing of specs.

Fast where d2l's `train_ch6` is slow: the whole uint8 dataset sits on the device at its
stored size, each batch resized as it is drawn (`data.on_device`); shuffling and batching
are index operations on the device; loss and accuracy accumulate on the device, so an
epoch has no host sync until its end (the progress bar reads them through an asynchronous
copy); fused optimizers; channels_last and bf16 autocast on GPU (both can be asked for on
CPU too); optional torch.compile. Results compare with the seeds: the default recipe is
d2l's.

Checkpoints (see `checkpoints.py`) are written at every epoch's end and on Ctrl-C/SIGTERM;
resuming continues exactly: shuffles derive from (seed, epoch), and RNG states are saved.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CnnspecError
from . import checkpoints, distributed
from .checkpoints import TrainerState
from .data import IGNORE, Dataset, DeviceSplit, on_device
from .report import NO_MATPLOTLIB, progress_bar, write_metrics_and_plot


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
        config,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        schedule="onecycle",
        warmup_epochs=min(2.0, config.epochs / 5),
        label_smoothing=0.1,
        augment=True,
    )


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


@dataclass(frozen=True)
class Stopped:
    """An epoch cut short by Ctrl-C or SIGTERM, after a checkpoint of where it stopped."""

    signal: int | None  # None: the signal reached another rank


class Interrupted(Exception):
    """Training was stopped by Ctrl-C or SIGTERM before its last epoch ended; with a run
    folder, after a checkpoint of the step it reached. Not a finished run: `fit` raises it
    rather than return the epochs it completed."""

    def __init__(self, signum: int | None, epoch: int, step: int, saved: bool):
        name = signal.Signals(signum).name if signum else "a signal to another process"
        super().__init__(f"stopped by {name} at epoch {epoch}, step {step}")
        self.signum, self.epoch, self.step, self.saved = signum, epoch, step, saved


# --- optimisation -------------------------------------------------------------------------


def make_optimizer(model: nn.Module, cfg: TrainConfig):
    params = model.parameters()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
            fused=True,
        )
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
    """Mean cross-entropy (over heads too, or over the scored pixels of a map) and the
    number of correct predictions per sample (a fraction, when there are several heads or
    pixels: the share of a sample's scored pixels classified right)."""
    if y.dim() == 3:  # a class per pixel: y is N x H x W, out N x classes x H x W
        loss = F.cross_entropy(out.float(), y, ignore_index=IGNORE, label_smoothing=smoothing)
        scored = y != IGNORE
        right = ((out.argmax(1) == y) & scored).sum((1, 2))
        return loss, (right / scored.sum((1, 2)).clamp(min=1)).sum()
    if isinstance(out, tuple):  # several heads: y is N x heads
        losses = [
            F.cross_entropy(o.float(), y[:, i], label_smoothing=smoothing)
            for i, o in enumerate(out)
        ]
        hits = sum((o.argmax(1) == y[:, i]).sum() for i, o in enumerate(out)) / len(out)
        return sum(losses) / len(losses), hits
    return F.cross_entropy(out.float(), y, label_smoothing=smoothing), (out.argmax(1) == y).sum()


@torch.no_grad()
def test_accuracy(
    model: nn.Module, split: DeviceSplit, batch_size: int, autocast, group=None
) -> float:
    """The share of `split` the model classifies right; under torchrun each rank scores its
    share and the hits are summed."""
    model.eval()
    hits = torch.zeros((), device=split.labels.device)
    rank, world = (group.rank, group.world) if group is not None else (0, 1)
    mine = torch.arange(rank, len(split), world, device=hits.device)
    for index in mine.split(batch_size):
        x, y = split.batch(index)
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
    group: distributed.Group | None = None,
) -> list[EpochResult]:
    """Train `model` on `data`; with `run`, keep metrics, curves and checkpoints there.
    Under torchrun, pass the process group (`distributed.join`)."""
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda asked for, but no CUDA device is available")
    if group is not None and cfg.sync_bn and device.type != "cuda":
        raise TrainError("--sync-bn needs GPUs: torch's SyncBatchNorm runs on CUDA only")
    if group is not None and device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
    if not distributed.is_main(group):
        report, cfg = _quiet, replace(cfg, progress=False)
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


@dataclass
class _Tally:
    """An epoch's running figures, kept on the device: sums of loss x count, hits and count,
    and the first step whose loss was not finite (-1: none yet)."""

    sums: torch.Tensor
    first_bad: torch.Tensor

    @classmethod
    def resume(cls, partial: list[float], device: torch.device) -> _Tally:
        sums = torch.tensor(partial, dtype=torch.float64).to(device)
        return cls(sums, torch.full((), -1, device=device, dtype=torch.int64))

    def add(self, loss: torch.Tensor, hits: torch.Tensor, count: int, step: torch.Tensor):
        n = torch.full((), count, device=self.sums.device, dtype=torch.float64)
        self.sums += torch.stack([loss.double() * n, hits.double(), n])
        bad = ~torch.isfinite(loss) & (self.first_bad < 0)
        self.first_bad = torch.where(bad, step, self.first_bad)

    def gather(self, group) -> None:
        """Sum the figures over the ranks (and agree on the first bad step)."""
        distributed.sum_(self.sums, group)
        distributed.max_(self.first_bad, group)


class _Clock:
    """An epoch's training time, keeping a compiling first step apart from the rest."""

    def __init__(self, compiling: bool, device: torch.device, report):
        self.compiling, self.device, self.report = compiling, device, report
        self.started = time.perf_counter()
        self.compile_seconds = 0.0
        self.compiled_examples = 0  # the first step's examples, left out of the rate

    def first_step_done(self, examples: int) -> None:
        """Called before the session's second step: time the first when it compiled."""
        if not self.compiling:
            return
        _synchronize(self.device)
        self.compile_seconds = time.perf_counter() - self.started
        self.report(f"torch.compile: first step took {self.compile_seconds:.1f} s")
        self.started, self.compiling = time.perf_counter(), False
        self.compiled_examples = examples

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


class _Loop:
    """One run's moving parts, set up once, so that an epoch and a step each read alone."""

    def __init__(self, model, data, cfg, run, resume, report, device, group):
        self.cfg, self.run, self.report, self.device, self.group = cfg, run, report, device, group
        self.autocast = autocast_for(cfg, device)
        wanted = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"
        self.train = on_device(data.train, cfg.size, device, wanted)
        self.test = on_device(data.test, cfg.size, device, wanted)
        if group is not None and cfg.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(device)
        if self.train.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self.optimizer = make_optimizer(model, cfg)
        if resume and run is None:
            raise TrainError("resuming needs the run folder")
        restored = None
        if resume:
            restored = checkpoints.restore_state(run, model, self.optimizer, device, asdict(cfg))
        if resume and restored is None:
            report(f"{run} has no complete checkpoint yet: training it from the beginning")
        elif restored is not None:
            report(f"resuming {run} at epoch {restored.epoch + 1}, step {restored.step}")
        if restored is None and run is not None:
            distributed.on_main(group, lambda: checkpoints.begin(run))
        self.state = restored or TrainerState()
        self.step_model = model  # what a step calls: wrapped for torchrun and torch.compile
        if group is not None:
            ids = [group.local_rank] if device.type == "cuda" else None
            self.step_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if cfg.compile:
            self.step_model = torch.compile(self.step_model)
        self.per_epoch = math.ceil(len(self.train) / cfg.batch_size)
        self.step_ids = torch.arange(self.per_epoch, device=device)  # no host copy per step
        self.said_no_plot = False

    def run_epochs(self) -> list[EpochResult]:
        results = [EpochResult(**h) for h in self.state.history]
        self.model.train()
        with _stop_requests() as stop:
            for epoch in range(self.state.epoch, self.cfg.epochs):
                outcome = self._epoch(epoch, stop)
                if isinstance(outcome, Stopped):
                    saved = self.run is not None
                    raise Interrupted(outcome.signal, epoch + 1, self.state.step, saved)
                results.append(outcome)
                self._report_epoch(outcome)
                self.state = TrainerState(epoch + 1, 0, [asdict(r) for r in results])
                self._save_run_files(results)
        return results

    def _epoch(self, epoch: int, stop: dict) -> EpochResult | Stopped:
        """Train one epoch (the rest of it, when resuming mid-epoch) and test."""
        order, augment = self._order(epoch)
        tally = _Tally.resume(self.state.partial, self.device)
        bar = progress_bar(
            self.cfg.progress, epoch, self.cfg.epochs, self.per_epoch, self.state.step
        )
        clock = _Clock(self.cfg.compile and epoch == self.state.epoch, self.device, self.report)
        first = self.state.step
        for step in range(first, self.per_epoch):
            if step == first + 1:
                clock.first_step_done(self._examples_in(first))
            index = self._batch_index(order, step)
            loss, hits = self._step(index, epoch * self.per_epoch + step, augment)
            tally.add(loss, hits, len(index), self.step_ids[step])
            bar.advance(tally.sums)
            if _stopping(stop, step, self.group, self.device):
                bar.close()
                return self._stop(epoch, step, tally, clock, stop["signal"])
        bar.close()
        return self._finish(epoch, tally, clock)

    def _order(self, epoch: int) -> tuple[torch.Tensor, torch.Generator | None]:
        """The epoch's shuffle and augmentation generator, both derived from (seed, epoch)
        so that a resumed run draws the same ones."""
        seed = self.cfg.seed * 1_000_003 + epoch
        order = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(seed))
        augment = None
        if self.cfg.augment:
            augment = torch.Generator(device=self.device)
            augment.manual_seed(seed)
        return order.to(self.device), augment

    def _examples_in(self, step: int) -> int:
        batch = self.cfg.batch_size
        return min(batch, len(self.train) - step * batch)

    def _batch_index(self, order: torch.Tensor, step: int) -> torch.Tensor:
        """The step's global batch, or this rank's share of it under torchrun."""
        batch = self.cfg.batch_size
        index = order[step * batch : (step + 1) * batch]
        if self.group is not None:
            index = index[self.group.rank :: self.group.world]
        return index

    def _step(self, index: torch.Tensor, global_step: int, augment):
        """One optimisation step; the loss and hit count stay on the device."""
        cfg = self.cfg
        x, y = self.train.batch(index, augment)
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

    def _stop(self, epoch: int, step: int, tally: _Tally, clock: _Clock, signum) -> Stopped:
        """Checkpoint the epoch's progress so far (not if the loss went bad) and stop."""
        _check_finite(distributed.max_(tally.first_bad, self.group), epoch)
        self.state.step = step + 1
        self.state.partial = distributed.sum_(tally.sums, self.group).tolist()
        self.state.train_seconds += clock.elapsed()
        if self.run is not None:
            distributed.on_main(self.group, self._checkpoint)
        return Stopped(signum)

    def _finish(self, epoch: int, tally: _Tally, clock: _Clock) -> EpochResult:
        """The epoch's figures, after its one host sync, and the test accuracy."""
        tally.gather(self.group)
        loss_sum, hit_sum, seen = tally.sums.tolist()
        elapsed = clock.elapsed()
        _check_finite(tally.first_bad, epoch)
        test_acc = test_accuracy(
            self.model, self.test, max(self.cfg.batch_size, 1024), self.autocast, self.group
        )
        this_session = seen - self.state.partial[2] - clock.compiled_examples
        return EpochResult(
            epoch + 1,
            loss_sum / seen,
            hit_sum / seen,
            test_acc,
            this_session / max(elapsed, 1e-9),
            self.state.train_seconds + elapsed,
            time.perf_counter() - clock.started,
            clock.compile_seconds,
        )

    def _report_epoch(self, result: EpochResult) -> None:
        self.report(
            f"epoch {result.epoch}/{self.cfg.epochs}  loss {result.loss:.3f}  "
            f"train acc {result.train_acc:.3f}  test acc {result.test_acc:.3f}  "
            f"{result.examples_per_sec:,.0f} ex/s"
        )

    def _save_run_files(self, results: list[EpochResult]) -> None:
        if self.run is None:
            return

        def write() -> None:
            self._checkpoint()
            try:
                drawn = write_metrics_and_plot(self.run, results)
            except OSError as err:
                raise TrainError(
                    f"{self.run}: cannot write metrics.jsonl or curves.png ({err.strerror or err})"
                ) from None
            if not drawn and not self.said_no_plot:  # once a run, not once an epoch
                self.report(NO_MATPLOTLIB)
                self.said_no_plot = True

        distributed.on_main(self.group, write)

    def _checkpoint(self) -> None:
        checkpoints.save_state(
            self.run, self.model, self.optimizer, self.state, asdict(self.cfg), self.device
        )


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
