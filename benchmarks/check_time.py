"""Wall time of `cnnspec check` on one spec: in-process (warm) and as a fresh process.

python benchmarks/check_time.py [SPEC] [--runs N]
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnnspec.cli import main  # noqa: E402


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:8.1f} ms"


def run() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("spec", nargs="?", default=str(ROOT / "specs" / "googlenet.cnn"))
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    start = time.perf_counter()
    assert main(["check", args.spec]) == 0
    first = time.perf_counter() - start  # includes building the Lark parser once

    warm = []
    for _ in range(args.runs):
        start = time.perf_counter()
        main(["check", args.spec])
        warm.append(time.perf_counter() - start)

    cold = []
    for _ in range(max(args.runs // 4, 3)):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cnnspec", "check", args.spec], check=True)
        cold.append(time.perf_counter() - start)

    print(f"cnnspec check {Path(args.spec).name}")
    print(f"  first call in a process (builds the parser): {first * 1000:8.1f} ms")
    print(f"  warm, median of {len(warm):>3}:                   {median_ms(warm)}")
    print(f"  whole command (new python), median of {len(cold):>2}: {median_ms(cold)}")


if __name__ == "__main__":
    run()
