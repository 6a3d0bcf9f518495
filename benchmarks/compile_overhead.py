"""`cnnspec.compile` against constructing the seed's hand-written module, per seed spec.

Both sides build the same network with PyTorch's default initialisation; the difference is
what parsing, validation and shape inference add. Medians of interleaved runs, one process.

    python benchmarks/compile_overhead.py [--runs N]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402
from seed_nets import SEED_NETS  # noqa: E402

import cnnspec  # noqa: E402


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def run() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    header = ("spec", "seed module", "cnnspec.compile", "load only", "overhead")
    print(f"{header[0]:<16}{header[1]:>14}{header[2]:>18}{header[3]:>12}{header[4]:>10}")
    for name, make in SEED_NETS.items():
        path = ROOT / "specs" / f"{name}.cnn"
        cnnspec.compile(path, init="default")  # warm: parser built, imports done
        seed, ours, load = [], [], []
        for _ in range(args.runs):  # interleaved, so drift hits both sides alike
            seed.append(timed(make))
            ours.append(timed(cnnspec.compile, path, init="default"))
            load.append(timed(cnnspec.load, path))
        t_seed, t_ours, t_load = (statistics.median(x) for x in (seed, ours, load))
        print(
            f"{name:<16}{t_seed * 1e3:>11.2f} ms{t_ours * 1e3:>15.2f} ms{t_load * 1e3:>9.2f} ms"
            f"{(t_ours - t_seed) / t_seed * 100:>9.1f}%"
        )


if __name__ == "__main__":
    run()
