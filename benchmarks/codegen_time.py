"""How `cnnspec codegen`'s time grows with the spec: the median of a few runs at each size.

    python benchmarks/codegen_time.py [--layers 1000 10000 100000] [--runs 3]

Each spec is one stage of `((conv(3, k=1) relu) * 50) * (n / 100)`, written out in the network class
(the stage's layers are no block class), so every layer passes through the writer, the
layout and the in_channels/num_classes detection. Time per layer should stay flat.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cnnspec  # noqa: E402
from cnnspec.limits import Limits  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print("| layers | codegen s (median) | µs per layer | source lines |")
    print("|---:|---:|---:|---:|")
    for layers in args.layers:
        body = f"((conv(3, k=1) relu) * 50) * {layers // 100}"
        text = f"network T(input=3x8x8, classes=10):\n    s: {body}\n"
        spec = cnnspec.load(text, limits=Limits(max_layers=max(layers, 200_000)))
        times, source = [], ""
        for _ in range(args.runs):
            start = time.perf_counter()
            source = spec.codegen()
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(
            f"| {layers:,} | {median:.2f} | {median / layers * 1e6:.0f} | "
            f"{source.count(chr(10)):,} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
