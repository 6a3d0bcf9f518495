"""One SGD training step in each memory layout, with and without a fused optimizer.

The trainer's defaults (fused optimizers everywhere, channels_last on GPU only) rest on
these figures. Real Fashion-MNIST batches, resized as the recipe says; the four settings
step in turn on the same batches, and each figure is the median of --steps steps after a
warm-up step.

    python benchmarks/train_step.py [--device cpu|cuda] [--steps N] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.training import command, data  # noqa: E402
from cnnspec.training.data import on_device  # noqa: E402

CASES = [("lenet_bn", 28, 256), ("lenet", 28, 256), ("resnet18", 28, 256), ("alexnet", 224, 32)]
SETTINGS = [(False, False), (False, True), (True, False), (True, True)]  # channels_last, fused


class Trainee:
    """One setting's model and optimizer, stepped in turn with the others."""

    def __init__(self, spec, device, channels_last: bool, fused: bool):
        torch.manual_seed(0)
        self.model = spec.build().to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, fused=fused)
        self.channels_last, self.device, self.times = channels_last, device, []

    def step(self, x: torch.Tensor, labels: torch.Tensor) -> None:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        start = time.perf_counter()
        loss = F.cross_entropy(self.model(x), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.times.append(time.perf_counter() - start)


def run() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    train = data.fashion_mnist(args.data_dir).train
    print(f"ms a step on {device} ({torch.get_num_threads()} threads)")
    print(f"{'network':<12}{'size':>5}{'batch':>6}{'NCHW':>9}{'+fused':>9}{'NHWC':>9}{'+fused':>9}")
    for name, size, batch in CASES:
        spec = command.at_input_size(cnnspec.load(ROOT / "specs" / f"{name}.cnn"), 1, (size, size))
        split = on_device(train.limit(batch * (args.steps + 1)), (size, size), device)
        trainees = [Trainee(spec, device, cl, fused) for cl, fused in SETTINGS]
        for i in range(args.steps + 1):  # interleaved, so drift hits every setting alike
            x, labels = split.batch(torch.arange(i * batch, (i + 1) * batch, device=device))
            for trainee in trainees:
                trainee.step(x, labels)
        cells = "".join(f"{statistics.median(t.times[1:]) * 1e3:>9.1f}" for t in trainees)
        print(f"{name:<12}{size:>5}{batch:>6}{cells}", flush=True)


if __name__ == "__main__":
    run()
