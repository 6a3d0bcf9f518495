"""How `cnnspec check` scales: time and peak memory for specs at the layer limit.

Each case runs in a fresh process so its peak RSS is its own. The sizes are the most the
limits allow: 20,000 layers after expansion, or as many one-line layers as fit in the
256 KiB of text a spec may hold (at most 20,000 of them).

    python benchmarks/check_scale.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cnnspec.limits import DEFAULT  # noqa: E402

LAYERS = DEFAULT.max_layers  # the expansion limit
# one layer per line: 13-byte lines, as many as the text and the layer limits allow
LINES = min((DEFAULT.max_file_bytes - 100) // 13, LAYERS)


def specs() -> dict[str, tuple[str, str]]:
    """Each case's text and format."""
    lines = "network T(input=1x8x8):\n    s:\n" + "        relu\n" * LINES
    calls = LAYERS // 10_000
    return {
        f"{LINES:,} layers, one per line (.cnn)": (lines, "cnn"),
        f"{LAYERS:,} layers by repeats: (relu) * 10000 * {calls}": (
            f"network T(input=1x8x8):\n    s: ((relu) * 10000) * {calls}\n",
            "cnn",
        ),
        f"{LAYERS:,} layers through blocks: {calls} calls x 10,000": (
            "block b():\n    (conv(1, k=1)) * 10000\n"
            f"network T(input=1x8x8):\n    s: b() * {calls}\n",
            "cnn",
        ),
        f"{LINES:,} layers, one per line (.yaml)": (
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
