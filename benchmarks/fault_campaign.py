"""A fault campaign against `cnnspec train`: kills at random moments, damaged run files,
damaged data, a full disk, a second trainer, bad flags. Each case is run as a user would
run it, in its own process, and judged on what the user gets:

- kills (SIGKILL mostly, some SIGTERM/SIGINT; some timed to land inside the first
  checkpoint's write): the run is then recovered the way the trainer says (--resume, or a
  fresh start in the same --out when it says the run never began) and its final weights
  must equal an uninterrupted run's, bit for bit;
- every other case: exit code 1 (2 for flags), exactly one line on stderr, no traceback,
  and a run's latest.json left as it was.

    python benchmarks/fault_campaign.py [--kills N] [--seed S]

Prints each case's outcome and tried / clean / failed counts per kind; exits 1 if any
failed. Small synthetic data in Fashion-MNIST's file format keeps a case to seconds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

SPEC = """
network Small(input=1x28x28, classes=10):
    f: conv(8, k=3, p=1) batchnorm relu maxpool(2)
    c: flatten linear(10)
train(lr=0.1, epochs=3, batch=16)
"""
FILES = {"train": 640, "t10k": 160}


# --- the world the trainer runs in --------------------------------------------------------


def write_idx(path: Path, array: torch.Tensor) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.dim())
    header += struct.pack(f">{array.dim()}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.numpy().tobytes())


def make_data(root: Path) -> Path:
    """Images whose class shows as a bright bar at a class-dependent row."""
    root.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for split, n in FILES.items():
        labels = torch.randint(0, 10, (n,), generator=g)
        images = torch.randint(0, 60, (n, 28, 28), generator=g, dtype=torch.uint8)
        for i, label in enumerate(labels.tolist()):
            images[i, 2 + 2 * label : 4 + 2 * label, 4:24] = 230
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels.to(torch.uint8))
    return root


class Campaign:
    def __init__(self, work: Path, seed: int):
        self.work, self.rng = work, random.Random(seed)
        self.data = make_data(work / "data")
        self.spec = work / "small.cnn"
        self.spec.write_text(SPEC)
        self.counts: Counter = Counter()
        self.bitwise = [0, 0]  # equal, compared
        self.reference, self.full_seconds = self._reference()

    def train(self, *args: str, limit_file_bytes: int | None = None) -> subprocess.Popen:
        def limit():  # for a "disk" that refuses files past a size (EFBIG)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, limit_file_bytes))

        return subprocess.Popen(
            [sys.executable, "-m", "cnnspec", "train", *args, "--no-progress"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            preexec_fn=limit if limit_file_bytes else None,
        )  # fmt: skip

    def run_args(self, run: Path) -> tuple[str, ...]:
        return (str(self.spec), "--data-dir", str(self.data), "--out", str(run))

    def _reference(self) -> tuple[dict, float]:
        run = self.work / "reference"
        started = time.monotonic()
        p = self.train(*self.run_args(run))
        _, err = p.communicate(timeout=600)
        if p.returncode != 0:
            sys.exit(f"the uninterrupted run failed:\n{err}")
        return weights(run), time.monotonic() - started

    def record(self, kind: str, name: str, ok: bool, detail: str = "") -> None:
        self.counts[kind, "tried"] += 1
        self.counts[kind, "clean" if ok else "failed"] += 1
        print(f"{'clean ' if ok else 'FAILED'}  {kind:<7} {name}{': ' + detail if detail else ''}",
              flush=True)  # fmt: skip


def weights(run: Path) -> dict:
    pointer = json.loads((run / "checkpoints" / "latest.json").read_text())
    return load_file(str(run / "checkpoints" / pointer["name"] / "model.safetensors"))


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def one_clean_line(p: subprocess.Popen, code: int = 1, timeout: float = 300) -> str:
    """'' if the process ended with `code` and one line on stderr, else what went wrong."""
    _, err = p.communicate(timeout=timeout)
    if "Traceback" in err:
        return "a traceback: " + err.strip().splitlines()[-1]
    lines = [line for line in err.splitlines() if line.strip()]
    if code == 2:  # argparse: its usage text, then the error line
        lines = [line for line in lines if line.startswith("cnnspec train: error:")]
    if p.returncode != code or len(lines) != 1:
        return f"exit {p.returncode}, stderr {err.strip()!r}"
    return ""


# --- kills --------------------------------------------------------------------------------


def kill_cases(c: Campaign, n: int) -> None:
    for i in range(n):
        run = c.work / f"kill{i}"
        first_checkpoint = i % 3 == 0  # a third land inside the first checkpoint's write
        how = signal.SIGKILL if i % 4 != 3 else c.rng.choice([signal.SIGTERM, signal.SIGINT])
        p = c.train(*c.run_args(run))
        if first_checkpoint:
            folder = run / "checkpoints" / "e0001-s000000"
            while not folder.exists() and p.poll() is None:
                time.sleep(0.0005)
            moment = "in the first checkpoint"
        else:
            delay = c.rng.uniform(0, c.full_seconds)
            time.sleep(delay)
            moment = f"after {delay:.2f} s"
        p.send_signal(how)
        _, err = p.communicate(timeout=300)
        name = f"{signal.Signals(how).name} {moment}"
        if "Traceback" in err:
            c.record("kill", name, False, "traceback: " + err.strip().splitlines()[-1])
            continue
        problem = recover(c, run)
        if problem:
            c.record("kill", name, False, problem)
            continue
        c.bitwise[1] += 1
        equal = same(weights(run), c.reference)
        c.bitwise[0] += equal
        c.record("kill", name, equal, "" if equal else "weights differ from the uninterrupted run")


def recover(c: Campaign, run: Path) -> str:
    """Finish a stopped run as its user would: resume it, or start it again in place when
    the trainer says it never began. '' when that succeeded."""
    if not any(run.glob("spec.*")):  # killed before it made its folder: start it again
        p = c.train(*c.run_args(run))
    else:
        p = c.train("--resume", str(run))
        _, err = p.communicate(timeout=600)
        if p.returncode == 0:
            return ""
        if "start it again with --out" not in err:
            return f"resume: exit {p.returncode}, {err.strip()!r}"
        p = c.train(*c.run_args(run))
    _, err = p.communicate(timeout=600)
    return "" if p.returncode == 0 else f"fresh start: exit {p.returncode}, {err.strip()!r}"


# --- damaged run files ---------------------------------------------------------------------


def edit_json(path: Path, change) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def flip_last_byte(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))


def without_model_hash(pointer: dict) -> dict:
    return {**pointer, "files": {k: h for k, h in pointer["files"].items()
                                 if k != "model.safetensors"}}  # fmt: skip


def damage_cases(c: Campaign) -> None:
    def latest(run):
        return run / "checkpoints" / "latest.json"

    def current(run):
        return run / "checkpoints" / json.loads(latest(run).read_text())["name"]

    cases = {
        "model.safetensors truncated": lambda r: (current(r) / "model.safetensors").write_bytes(
            (current(r) / "model.safetensors").read_bytes()[:1000]
        ),
        "model.safetensors one bit flipped": lambda r: flip_last_byte(
            current(r) / "model.safetensors"
        ),
        "trainer.json deleted": lambda r: (current(r) / "trainer.json").unlink(),
        "latest.json files a list": lambda r: edit_json(
            latest(r), lambda v: {**v, "files": list(v["files"])}
        ),
        "latest.json files null": lambda r: edit_json(latest(r), lambda v: {**v, "files": None}),
        "latest.json without model's hash, model altered": lambda r: (
            flip_last_byte(current(r) / "model.safetensors"),
            edit_json(latest(r), without_model_hash),
        ),
        "latest.json deleted": lambda r: latest(r).unlink(),
        "recipe.json {}": lambda r: (r / "recipe.json").write_text("{}"),
        "recipe.json a list": lambda r: (r / "recipe.json").write_text("[1]"),
        "recipe.json an extra key": lambda r: edit_json(r / "recipe.json", lambda v: {**v, "x": 1}),
        "recipe.json batch 0": lambda r: edit_json(
            r / "recipe.json", lambda v: {**v, "batch_size": 0}
        ),
        "recipe.json another lr": lambda r: edit_json(r / "recipe.json", lambda v: {**v, "lr": 1}),
    }
    for name, damage in cases.items():
        run = c.work / "damaged" / name.replace(" ", "_")
        shutil.copytree(c.work / "reference", run)
        damage(run)
        before = latest(run).read_bytes() if latest(run).exists() else None
        problem = one_clean_line(c.train("--resume", str(run), "--epochs", "4"))
        after = latest(run).read_bytes() if latest(run).exists() else None
        if not problem and before != after:
            problem = "latest.json was changed"
        c.record("file", name, not problem, problem)


# --- damaged data ---------------------------------------------------------------------------


def idx(shape: tuple[int, ...], body: bytes) -> bytes:
    return struct.pack(">HBB", 0, 8, len(shape)) + struct.pack(f">{len(shape)}I", *shape) + body


def data_cases(c: Campaign) -> None:
    images, labels = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"

    def corrupt_deflate(path: Path) -> None:
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2 : len(raw) // 2 + 64] = bytes(64)
        path.write_bytes(bytes(raw))

    n = FILES["train"]
    cases = {
        "deflate data damaged": (images, corrupt_deflate),
        "one label too many": (labels, idx((n + 1,), bytes(n + 1))),
        "a label of 200": (labels, idx((n,), bytes([200]) * n)),
        "2-D images": (images, idx((n, 784), bytes(n * 784))),
        "1-D images": (images, idx((n * 784,), bytes(n * 784))),
        "2-D labels": (labels, idx((n, 1), bytes(n))),
        "zero images": (images, idx((0, 28, 28), b"")),
        "gzip bomb (200 MB of zeros)": (images, idx((n, 28, 28), bytes(200_000_000))),
        "header larger than the file": (images, idx((60000, 2800, 28), b"")),
        "a file missing from --data-dir": (labels, None),
    }
    for name, (file, content) in cases.items():
        root = c.work / "baddata" / name.replace(" ", "_")
        shutil.copytree(c.data, root)
        if content is None:
            (root / file).unlink()
        elif callable(content):
            content(root / file)
        else:
            (root / file).write_bytes(gzip.compress(content))
        args = (str(c.spec), "--data-dir", str(root), "--out", str(root / "run"))
        problem = one_clean_line(c.train(*args))
        c.record("data", name, not problem, problem)


# --- disks, folders, a second trainer, flags ---------------------------------------------


def disk_cases(c: Campaign) -> None:
    blocker = c.work / "a-file"
    blocker.write_text("not a folder")
    problem = one_clean_line(c.train(*c.run_args(blocker / "run")))
    c.record("disk", "--out under a regular file", not problem, problem)

    # files may not grow past 16 KB: the first checkpoint's model file fails (EFBIG)
    run = c.work / "efbig"
    problem = one_clean_line(c.train(*c.run_args(run), limit_file_bytes=16_000))
    if not problem:
        problem = recover(c, run)  # with room again, the run must finish
        if not problem:
            c.bitwise[1] += 1
            c.bitwise[0] += same(weights(run), c.reference)
            problem = "" if same(weights(run), c.reference) else "weights differ"
    c.record("disk", "file size limit hit in the first checkpoint, then resumed", not problem,
             problem)  # fmt: skip

    run = c.work / "locked"
    first = c.train(*c.run_args(run), "--epochs", "50")
    while not (run / "recipe.json").exists() and first.poll() is None:
        time.sleep(0.01)
    second = c.train(*c.run_args(run))
    problem = one_clean_line(second)
    first.kill()
    first.communicate()
    c.record("disk", "a second trainer on the same --out", not problem, problem)

    for flag, value in [("--batch-size", "-5"), ("--batch-size", "0"), ("--limit-train", "0"),
                        ("--limit-test", "0"), ("--epochs", "-1")]:  # fmt: skip
        problem = one_clean_line(c.train(str(c.spec), flag, value), code=2)
        c.record("flag", f"{flag} {value}", not problem, problem)


def run() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=12, help="runs killed and resumed")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cnnspec-faults-") as tmp:
        c = Campaign(Path(tmp), args.seed)
        print(f"uninterrupted run: {c.full_seconds:.1f} s", flush=True)
        kill_cases(c, args.kills)
        damage_cases(c)
        data_cases(c)
        disk_cases(c)
    print()
    kinds = sorted({kind for kind, _ in c.counts})
    for kind in kinds:
        print(f"{kind:<5} tried {c.counts[kind, 'tried']:>3}  clean {c.counts[kind, 'clean']:>3}  "
              f"failed {c.counts[kind, 'failed']:>3}")  # fmt: skip
    tried = sum(c.counts[k, "tried"] for k in kinds)
    failed = sum(c.counts[k, "failed"] for k in kinds)
    print(f"all   tried {tried:>3}  clean {tried - failed:>3}  failed {failed:>3}")
    print(f"bitwise-equal resumes: {c.bitwise[0]}/{c.bitwise[1]}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    run()
