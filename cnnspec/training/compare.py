"""`cnnspec compare`: variants of a network side by side.

The static figures come from inference, without torch doing any work: parameters,
multiply-accumulates, activation memory per example. With `--train N`, each variant is
trained for N epochs as `cnnspec train` would train it (its own recipe, the same seed and
the same images), and its examples/s, training time and test accuracy join the table; a
plot then puts test accuracy against MACs and against parameters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..atomic import atomic_path
from ..errors import CnnspecError
from ..spec import Spec
from .command import TrainRequest, config_for, data_source, fitted
from .loop import fit


@dataclass(frozen=True)
class Row:
    label: str
    params: int
    macs: int
    activation_bytes: int  # per example, fp32
    examples_per_s: float | None = None
    seconds: float | None = None
    test_acc: float | None = None


def static_row(label: str, spec: Spec) -> Row:
    return Row(label, spec.params, spec.macs, spec.activations * 4)


def trained_row(row: Row, spec: Spec, request: TrainRequest) -> Row:
    """`row` with what training `spec` for `request.epochs` epochs measured."""
    trained, dataset, config = fitted(spec, data_source(request), config_for(spec, request))
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    results = fit(trained.build(), dataset, config, report=lambda line: None)
    seconds = time.perf_counter() - start
    train_seconds = sum(r.train_seconds for r in results) or seconds
    seen = len(dataset.train) * len(results)
    return replace(
        row, examples_per_s=seen / train_seconds, seconds=seconds, test_acc=results[-1].test_acc
    )


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table (the training columns only when trained)."""
    trained = any(r.test_acc is not None for r in rows)
    head = ["variant", "params", "MACs", "activations / example"]
    if trained:
        head += ["examples/s", "time", "test acc"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for r in rows:
        cells = [r.label, f"{r.params:,}", f"{r.macs:,}", f"{r.activation_bytes / 1e6:.2f} MB"]
        if trained:
            cells += [f"{r.examples_per_s:,.0f}", f"{r.seconds:.1f} s", f"{r.test_acc:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[Row], path: str | Path) -> None:
    """Test accuracy against MACs and against parameters, one point per variant."""
    try:
        import matplotlib
    except ImportError:
        raise CnnspecError("--plot needs matplotlib, which is not installed") from None
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, field, name in ((axes[0], "macs", "MACs"), (axes[1], "params", "parameters")):
        for r in rows:
            ax.scatter(getattr(r, field), r.test_acc)
            ax.annotate(
                r.label,
                (getattr(r, field), r.test_acc),
                fontsize=8,
                xytext=(4, 4),
                textcoords="offset points",
            )
        ax.set_xscale("log")
        ax.set_xlabel(f"{name} (log scale)")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
