"""Peak memory and speed of the trainer's own steps on the full training set at a large
size: AlexNet at 224x224, batch 128, as its recipe says.

The trainer is set up as `cnnspec train` sets it up (the whole Fashion-MNIST training and
test sets handed to the loop, resized as the loop resizes them), then takes --steps steps.
Peak RSS is the process's high-water mark after those steps; steps/s is the median step
time's inverse, the first (warm-up) step left out.

    python benchmarks/train_memory.py [--device cpu|cuda] [--steps N] [--spec alexnet]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.training import command, data  # noqa: E402
from cnnspec.training.loop import TrainConfig, _Loop  # noqa: E402


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux: kilobytes


def run() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--spec", default="alexnet")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    device = torch.device(args.device)
    spec = cnnspec.load(ROOT / "specs" / f"{args.spec}.cnn")
    recipe = spec.recipe
    size = (recipe.resize, recipe.resize) if recipe.resize else tuple(spec.input_shape[1:])
    trained = command.at_input_size(spec, 1, size)
    dataset = data.fashion_mnist(args.data_dir)
    config = TrainConfig(epochs=1, batch_size=recipe.batch, lr=recipe.lr, size=size,
                         device=args.device, progress=False)  # fmt: skip
    started = time.perf_counter()
    loop = _Loop(trained.build(), dataset, config, None, False, print, device, None)
    setup = time.perf_counter() - started
    rss_after_setup = peak_rss_gb()
    order, augment = loop._order(0)
    times = []
    for step in range(args.steps + 1):
        started = time.perf_counter()
        loss, _ = loop._step(loop._batch_index(order, step), step, augment)
        loss.item()  # wait for the step to finish
        times.append(time.perf_counter() - started)
    median = statistics.median(times[1:])
    print(f"{spec.name} at {size[0]}x{size[1]}, batch {config.batch_size}, on {device} "
          f"({torch.get_num_threads()} threads), {args.steps} steps after a warm-up")  # fmt: skip
    print(f"setup {setup:.1f} s; peak RSS {rss_after_setup:.2f} GB after setup, "
          f"{peak_rss_gb():.2f} GB after the steps")  # fmt: skip
    print(f"median step {median:.2f} s = {1 / median:.3f} steps/s")
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 1e9:.2f} GB")


if __name__ == "__main__":
    run()
