"""How `cnnspec check` scales: time and peak memory for specs at the layer limit.

Each case runs in a fresh process so its peak RSS is its own. The sizes are the most the
limits allow: 200,000 layers after expansion, or as many one-line layers as fit in the
1 MiB of text a spec may hold.

    python benchmarks/check_scale.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

LAYERS = 200_000  # the expansion limit
LINES = 75_000  # one layer per line: 13-byte lines, just under 1 MiB


def specs() -> dict[str, tuple[str, str]]:
    """Each case's text and format."""
    lines = "network T(input=1x8x8):\n    s:\n" + "        relu\n" * LINES
    return {
        "75,000 layers, one per line (.cnn)": (lines, "cnn"),
        "200,000 layers by repeats: (relu) * 10000 * 20": (
            "network T(input=1x8x8):\n    s: ((relu) * 10000) * 20\n",
            "cnn",
        ),
        "200,000 layers through blocks: 20 calls x 10,000": (
            "block b():\n    (conv(1, k=1)) * 10000\nnetwork T(input=1x8x8):\n    s: b() * 20\n",
            "cnn",
        ),
        "75,000 layers, one per line (.yaml)": (
            "network:\n  name: T\n  input: 1x8x8\n  stages:\n    s:\n" + "      - relu\n" * LINES,
            "yaml",
        ),
    }


MEASURE = """
import resource, sys, time
import cnnspec
text = open(sys.argv[1]).read()
start = time.perf_counter()
spec = cnnspec.load(text, format=sys.argv[2])
took = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{len(spec.layers)} {took:.2f} {peak:.0f}")
"""


def main() -> None:
    print("| spec | bytes | layers | check s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (text, fmt) in specs().items():
            path = Path(tmp) / f"spec.{fmt}"
            path.write_text(text)
            out = subprocess.run(
                [sys.executable, "-c", MEASURE, str(path), fmt],
                capture_output=True, text=True,
            )  # fmt: skip
            if out.returncode != 0:
                sys.exit(f"{name}: {out.stderr.strip().splitlines()[-1]}")
            layers, took, peak = out.stdout.split()
            print(f"| {name} | {len(text):,} | {int(layers):,} | {took} | {peak} |")


if __name__ == "__main__":
    main()
