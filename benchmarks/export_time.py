"""How long `cnnspec export` takes, and its peak memory, for each seed spec, as a user runs it.

    python benchmarks/export_time.py [--runs 3] [--specs lenet resnet18] [--source DIR]

Each run is its own `python -m cnnspec export SPEC --onnx FILE` process, so torch's import
is counted, as a user pays it. The table holds the medians of the runs: wall seconds, CPU
seconds (user + system; steadier than wall time on a loaded machine) and the child's peak
resident memory. `--source DIR` runs the cnnspec found in another tree instead, such as an
older commit unpacked with `git archive COMMIT | tar -x -C DIR`, for a before-and-after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cnnspec  # noqa: E402

SEEDS = sorted(path.stem for path in (ROOT / "specs").glob("*.cnn"))


def run_once(source: Path, spec: Path, target: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS in MiB of one export in a fresh process."""
    command = [sys.executable, "-m", "cnnspec", "export", str(spec), "--onnx", str(target)]
    env = {**os.environ, "PYTHONPATH": str(source)}
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=source, env=env, stderr=subprocess.PIPE)
    # wait4, not wait: the usage of this one child, not the largest of all children so far
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    error = child.stderr.read().decode(errors="replace")
    child.stderr.close()
    if child.returncode != 0:
        raise SystemExit(f"{spec.stem}: export failed\n{error}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # KiB on Linux


def row(name: str, source: Path, runs: int, folder: Path) -> str:
    spec = ROOT / "specs" / f"{name}.cnn"
    target = folder / f"{name}.onnx"
    walls, cpus, peaks = zip(*(run_once(source, spec, target) for _ in range(runs)))
    size = target.stat().st_size / 2**20
    return (
        f"| {name} | {cnnspec.load(spec).params:,} | {size:.1f} | "
        f"{statistics.median(walls):.1f} | {statistics.median(cpus):.1f} | "
        f"{statistics.median(peaks):.0f} |"
    )


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--specs", nargs="+", default=SEEDS, choices=SEEDS, metavar="NAME")
    parser.add_argument("--source", type=Path, default=ROOT, help="the tree whose cnnspec runs")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {load_average()} at the start", flush=True)
    print("| spec | parameters | file MiB | wall s | CPU s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.specs:
            print(row(name, args.source.resolve(), args.runs, Path(folder)), flush=True)
    print(f"load average {load_average()} at the end")


if __name__ == "__main__":
    main()
