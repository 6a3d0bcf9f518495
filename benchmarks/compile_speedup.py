"""Does `cnnspec train --compile` train faster? The trainer as a user runs it, with and
without --compile, in turn, each in a process of its own.

    python benchmarks/compile_speedup.py [--specs lenet resnet18] [--epochs 4]
        [--limit-train lenet=20000 resnet18=5000] [--runs 1] [--device cpu] [--warm-cache]

Per run, from the run folder's metrics.jsonl: the steady examples/s (the median of the
epochs after the first, which holds the compiling steps), the first step's time (what the
trainer prints as "torch.compile: first step took"), the first epoch's training seconds
after that step (with the recompile a last, smaller batch brings) and the process's wall
time. The load average beside each run says how busy the machine was. Each compiled run
gets an empty inductor cache (`TORCHINDUCTOR_CACHE_DIR`), so that its first step is what a
first run pays; `--warm-cache` lets later runs reuse what earlier ones compiled.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def train(spec: str, compiled: bool, args, limit: int | None, folder: Path) -> dict:
    run = folder / f"{spec}-{'compiled' if compiled else 'default'}-{time.monotonic_ns()}"
    command = [sys.executable, "-m", "cnnspec", "train", str(ROOT / "specs" / f"{spec}.cnn"),
               "--epochs", str(args.epochs), "--device", args.device, "--no-progress",
               "--out", str(run)]  # fmt: skip
    if limit:
        command += ["--limit-train", str(limit)]
    if args.limit_test:
        command += ["--limit-test", str(args.limit_test)]
    if compiled:
        command.append("--compile")
    load = os.getloadavg()[0]
    start = time.perf_counter()
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}  # this checkout's cnnspec
    if not args.warm_cache:  # compile from nothing, as a first run does
        env["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(dir=folder)
    subprocess.run(command, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - start
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {
        "spec": spec, "compiled": compiled, "limit_train": limit, "epochs": len(epochs),
        "steady_examples_per_sec": statistics.median(e["examples_per_sec"] for e in epochs[1:]),
        "epoch_examples_per_sec": [e["examples_per_sec"] for e in epochs],
        "first_step_seconds": epochs[0]["compile_seconds"],
        "first_epoch_train_seconds": epochs[0]["train_seconds"],
        "test_acc": epochs[-1]["test_acc"], "wall_seconds": wall, "load_before": load,
        "command": " ".join(["cnnspec", *command[3:]]),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--specs", nargs="+", default=["lenet", "resnet18"])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--limit-train", nargs="*", default=["lenet=20000", "resnet18=5000"],
                        metavar="SPEC=N")  # fmt: skip
    parser.add_argument("--limit-test", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=1, help="pairs of runs per spec")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warm-cache", action="store_true",
                        help="let inductor reuse its on-disk cache (default: each compiled run "
                        "starts from an empty one)")  # fmt: skip
    parser.add_argument("--json", help="also write the runs to this file")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is not steady")
    limits = {k: int(v) for k, v in (item.split("=") for item in args.limit_train)}
    rows = []
    print(f"{'spec':<10}{'compile':>8}{'steady ex/s':>13}{'first step':>12}{'epoch 1':>10}"
          f"{'wall':>9}{'test acc':>10}{'load':>6}")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        for spec in args.specs:
            for _ in range(args.runs):
                for compiled in (False, True):
                    row = train(spec, compiled, args, limits.get(spec), Path(folder))
                    rows.append(row)
                    print(f"{spec:<10}{'yes' if compiled else 'no':>8}"
                          f"{row['steady_examples_per_sec']:>13,.0f}"
                          f"{row['first_step_seconds']:>11.1f}s"
                          f"{row['first_epoch_train_seconds']:>9.1f}s"
                          f"{row['wall_seconds']:>8.1f}s{row['test_acc']:>10.3f}"
                          f"{row['load_before']:>6.1f}", flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
