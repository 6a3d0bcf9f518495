"""cnnspec's trainer against d2l's `train_ch6`, per seed spec, side by side in one process.

The d2l side is a faithful re-implementation: a Dataset of PIL images resized by
`transforms.Resize` + `ToTensor` in a DataLoader with 4 workers, fp32, xavier init, plain
SGD, and a `.item()`-style sync every step for its metrics, as `d2l.train_ch6` does. Both
sides are timed by the wall clock over whole epochs (d2l's own timer, which skips the
time spent waiting for data, is printed too).

    python benchmarks/train_vs_d2l.py [--specs lenet alexnet ...] [--epochs N]
        [--d2l-epochs N] [--limit-train N] [--device cuda] [--compile] [--json OUT]

Model FLOP utilisation counts 3 x 2 x MACs per training example (forward and backward)
against --peak-tflops (default: the GPU's dense bf16 peak, looked up by its name in
`PEAK_TFLOPS`; elsewhere, give the machine's figure or the column shows "-").

`benchmarks/gpu_suite.py` builds on the pieces here: `recipe_setup`, `d2l_loaders`,
`d2l_train_ch6` and `peak_tflops`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.training import command, data  # noqa: E402
from cnnspec.training.loop import TrainConfig, fit  # noqa: E402

SEED_ACCURACY = {"alexnet": 0.883, "vgg11": 0.887, "nin": 0.859, "googlenet": 0.875,
                 "resnet18": 0.897, "densenet": 0.904, "lenet_maxpool": 0.759}  # fmt: skip
TARGET_RATIO = {"alexnet": 5, "vgg11": 5, "nin": 5, "lenet": 5, "googlenet": 3, "densenet": 3,
                "resnet18": 3}  # fmt: skip
# dense bf16 tensor-core peaks, TFLOP/s, from NVIDIA's datasheets (half the "with sparsity"
# figure); the first name found in the device's name wins
PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H200 NVL", 835.0),
               ("H100", 989.0), ("H200", 989.0))  # fmt: skip


def peak_tflops(device: torch.device) -> float | None:
    """The device's dense bf16 peak by its name; None where it is not known (CPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_TFLOPS if key in name), None)


def recipe_setup(name: str, epochs: int | None, device: str, compile: bool = False,
                 size: int | None = None, batch: int | None = None):  # fmt: skip
    """The seed spec `name` at its recipe's training size, and the trainer's settings for it
    (the recipe's batch size and learning rate; `size` and `batch` override the recipe's)."""
    spec = cnnspec.load(ROOT / "specs" / f"{name}.cnn")
    recipe = spec.recipe
    side = size or recipe.resize
    size = (side, side) if side else tuple(spec.input_shape[1:])
    trained = command.at_input_size(spec, 1, size)
    config = TrainConfig(epochs=epochs or recipe.epochs, batch_size=batch or recipe.batch,
                         lr=recipe.lr, optimizer=recipe.optimizer, size=size,
                         device=device, compile=compile, progress=False)  # fmt: skip
    return trained, config


def d2l_loaders(base: data.Dataset, size: tuple[int, int], batch: int, workers: int = 4):
    """d2l's train and test DataLoaders over `base`, resizing through PIL to `size`."""
    resize = size if size != (28, 28) else None
    train = DataLoader(PILImages(base.train, resize), batch_size=batch, shuffle=True,
                       num_workers=workers)  # fmt: skip
    test = DataLoader(PILImages(base.test, resize), batch_size=batch, num_workers=workers)
    return train, test


class PILImages(torch.utils.data.Dataset):
    """d2l's data path: uint8 arrays -> PIL images -> Resize -> ToTensor, per item."""

    def __init__(self, split: data.Split, size: tuple[int, int] | None):
        from torchvision import transforms

        steps = [transforms.Resize(size)] if size else []
        self.transform = transforms.Compose([*steps, transforms.ToTensor()])
        self.images, self.labels = split.images.numpy(), split.labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        pixels = self.images[i]
        image = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))
        return self.transform(image), self.labels[i]


def d2l_train_ch6(net, train_iter, test_iter, num_epochs, lr, device, optimizer="sgd"):
    """d2l.train_ch6, metrics and timer as the book has them."""

    def init_weights(m):
        if type(m) in (nn.Linear, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)

    net.apply(init_weights)
    net.to(device)
    opt_cls = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    trainer = opt_cls(net.parameters(), lr=lr)
    loss = nn.CrossEntropyLoss()
    timer_sum, wall, seen = 0.0, 0.0, 0
    for _ in range(num_epochs):
        net.train()
        epoch_start = time.perf_counter()
        metric = [0.0, 0.0, 0]
        for X, y in train_iter:
            start = time.perf_counter()
            X, y = X.to(device), y.to(device)
            y_hat = net(X)
            if isinstance(y_hat, tuple):
                heads = len(y_hat)
                l = sum(loss(o, y[:, i]) for i, o in enumerate(y_hat)) / heads  # noqa: E741
                hits = sum(float((o.argmax(1) == y[:, i]).sum()) for i, o in enumerate(y_hat))
                hits /= heads
            else:
                l = loss(y_hat, y)  # noqa: E741
                hits = float((y_hat.argmax(axis=1) == y).sum())  # d2l.accuracy: a sync
            trainer.zero_grad()
            l.backward()
            trainer.step()
            with torch.no_grad():
                metric[0] += float(l) * X.shape[0]
                metric[1] += hits
                metric[2] += X.shape[0]
            timer_sum += time.perf_counter() - start
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall += time.perf_counter() - epoch_start
        seen += metric[2]
    net.eval()
    correct = total = 0
    with torch.no_grad():
        for X, y in test_iter:
            out = net(X.to(device))
            out = out[0] if isinstance(out, tuple) else out
            target = y[:, 0] if y.dim() > 1 else y
            correct += float((out.argmax(1).cpu() == target).sum())
            total += len(target)
    return {"examples_per_sec": seen / wall, "d2l_timer_examples_per_sec": seen / timer_sum,
            "loss": metric[0] / metric[2], "train_acc": metric[1] / metric[2],
            "test_acc": correct / total}  # fmt: skip


def run() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--specs", nargs="+", default=["lenet", "alexnet", "vgg11", "nin",
                        "googlenet", "resnet18", "densenet"])  # fmt: skip
    parser.add_argument("--epochs", type=int, help="cnnspec epochs (default: the recipe's)")
    parser.add_argument("--d2l-epochs", type=int, default=1, help="d2l epochs timed")
    parser.add_argument("--limit-train", type=int)
    parser.add_argument("--limit-test", type=int)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--data-dir")
    parser.add_argument("--peak-tflops", type=float)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    peak = args.peak_tflops or peak_tflops(device)
    # d2l's 4 workers are part of the comparison, even where torch thinks them too many
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    base = data.fashion_mnist(args.data_dir).limit(args.limit_train, args.limit_test)
    rows = []
    header = (f"{'spec':<15}{'cnnspec ex/s':>14}{'d2l ex/s':>11}{'ratio':>8}{'target':>8}"
              f"{'MFU':>8}{'d2l MFU':>9}{'test acc':>10}{'seed':>7}")  # fmt: skip
    print(header)
    for name in args.specs:
        trained, config = recipe_setup(name, args.epochs, args.device, args.compile)
        size, batch, recipe = config.size, config.batch_size, trained.recipe
        torch.manual_seed(0)
        results = fit(trained.build(), base, config, report=lambda line: None)
        ours = statistics.median(r.examples_per_sec for r in results[1:] or results)
        torch.manual_seed(0)
        loader, tests = d2l_loaders(base, size, batch)
        theirs = d2l_train_ch6(trained.build(init="default"), loader, tests, args.d2l_epochs,
                               recipe.lr, device, recipe.optimizer)  # fmt: skip
        flops = 6 * trained.macs
        row = {
            "spec": name, "params": trained.params, "macs": trained.macs, "size": list(size),
            "batch": batch, "epochs": config.epochs, "cnnspec_examples_per_sec": ours,
            "d2l_examples_per_sec": theirs["examples_per_sec"],
            "d2l_timer_examples_per_sec": theirs["d2l_timer_examples_per_sec"],
            "ratio": ours / theirs["examples_per_sec"],
            "mfu": ours * flops / (peak * 1e12) if peak else None,
            "d2l_mfu": theirs["examples_per_sec"] * flops / (peak * 1e12) if peak else None,
            "test_acc": results[-1].test_acc, "seed_test_acc": SEED_ACCURACY.get(name),
            "train_seconds": sum(r.train_seconds for r in results), "device": str(device),
        }  # fmt: skip
        rows.append(row)
        seed = f"{row['seed_test_acc']:.3f}" if row["seed_test_acc"] else "-"
        target = f"{TARGET_RATIO[name]}x" if name in TARGET_RATIO else "-"
        mfu, d2l_mfu = (f"{row[k]:.1%}" if peak else "-" for k in ("mfu", "d2l_mfu"))
        print(f"{name:<15}{ours:>14,.0f}{row['d2l_examples_per_sec']:>11,.0f}"
              f"{row['ratio']:>7.1f}x{target:>8}{mfu:>8}{d2l_mfu:>9}"
              f"{row['test_acc']:>10.3f}{seed:>7}", flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    run()
