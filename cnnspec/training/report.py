"""What a user sees of a run: the progress bar, metrics.jsonl and curves.png (drawn where
matplotlib is installed)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from ..atomic import atomic_path, write_atomic
from ..errors import unescaped


class Progress:
    """A tqdm bar whose numbers arrive by an asynchronous copy, so it never stalls the GPU."""

    def __init__(self, bar, every: int):
        self.bar, self.every, self.count = bar, every, 0
        self.host = None
        self.ready = None

    def advance(self, sums: torch.Tensor) -> None:
        self.bar.update(1)
        self.count += 1
        if self.count % self.every:
            return
        if self.host is not None and (self.ready is None or self.ready.query()):
            loss, hits, seen = self.host.tolist()
            if seen:
                self.bar.set_postfix(loss=f"{loss / seen:.3f}", acc=f"{hits / seen:.3f}")
        if sums.is_cuda:
            if self.host is None:
                self.host = torch.empty(3, dtype=torch.float64, pin_memory=True)
            self.host.copy_(sums, non_blocking=True)
            self.ready = torch.cuda.Event()
            self.ready.record()
        else:
            self.host = sums.clone()

    def close(self) -> None:
        self.bar.close()


class NoProgress:
    def advance(self, sums) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(enabled: bool, epoch: int, epochs: int, total: int, done: int):
    """A bar on a terminal; nothing where stderr is a file or a pipe (a log gets the plain
    epoch lines, not hundreds of carriage-return frames)."""
    if not enabled or not sys.stderr.isatty():
        return NoProgress()
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        initial=done,
        desc=f"epoch {epoch + 1}/{epochs}",
        leave=False,
        unit="step",
        dynamic_ncols=True,
        file=unescaped(sys.stderr),  # its own carriage returns and cursor moves
    )
    return Progress(bar, every=max(total // 50, 1))


NO_MATPLOTLIB = "matplotlib is not installed, so curves.png is not drawn (pip install matplotlib)"


def write_metrics_and_plot(run: Path, results: list) -> bool:
    """metrics.jsonl, one line per epoch, and curves.png drawn from it where matplotlib is
    installed; whether curves.png was drawn."""
    lines = "".join(json.dumps(asdict(r)) + "\n" for r in results)
    write_atomic(Path(run) / "metrics.jsonl", lines)
    return plot_curves(results, Path(run) / "curves.png")


def plot_curves(results: list, path: Path) -> bool:
    """Loss and accuracies per epoch, as d2l's animator draws them; False, drawing nothing,
    without matplotlib (an optional dependency: training needs none of it)."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r.epoch for r in results]
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=120)
    ax.plot(epochs, [r.loss for r in results], "-", label="train loss")
    ax.plot(epochs, [r.train_acc for r in results], "m--", label="train acc")
    ax.plot(epochs, [r.test_acc for r in results], "g-.", label="test acc")
    ax.set_xlabel("epoch")
    ax.set_xlim(1, max(epochs[-1], 2))
    ax.grid(True)
    ax.legend()
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return True
