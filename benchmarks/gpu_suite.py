"""The trainer's speed on one GPU, every seed network, in one command inside a time budget.

    python benchmarks/gpu_suite.py [--budget-s 480] [--out DIR] [--specs lenet ...]
        [--compile-specs lenet ...] [--epochs 2] [--limit-train N] [--limit-test N] [--smoke]

For each seed network at its recipe's size and batch, most important first:

1. cnnspec's trainer, default path (bf16 autocast, channels_last, fused SGD, data on the
   device on a GPU): steady examples/s (the median of the epochs after the first), model
   FLOP utilisation, peak GPU memory, test accuracy after its epochs;
2. d2l's loop (`train_vs_d2l.py`) over one epoch of the same data, and the ratio;
3. then, smallest graph first, the trainer with torch.compile: the same figures, and how
   long the first, compiling step took.

The budget counts from the start of the process. Before each measurement a probe runs the
same code on a slice of the data (`--probe-steps` batches, two epochs for the trainer, the
second timed), and the measurement is skipped, with the reason, when the probe's rate
says it would not end in the time left. Each kind of measurement then corrects later
estimates by the largest ratio of taken to estimated time seen so far. A probe is assumed
to take as long as the longest probe of its kind so far; a compiling probe, the longest
compile per module of the network so far times the network's modules. Should anything run
past the budget all the same, an alarm stops it there; the suite then writes what it has
and ends. A measurement that fails (out of memory, a compile error) is noted and the
suite goes on.

The compiled run reuses its probe's model, with its initial weights put back, so that it
is timed without compiling again (the first compiled step's time is the probe's).

Results go to `--out` (else $OUT, else ./gpu-suite): gpu_suite.json and gpu_suite.md,
rewritten after every measurement. BENCHMARKS.md describes the columns.

`--smoke` runs the same code on the CPU with tiny limits (a few small batches per network,
each at the smallest size it accepts, torch.compile through its eager backend), so that a
test can check the suite end to end in under a minute on 2 cores.
"""

from __future__ import annotations

import time

START = time.monotonic()  # the budget counts from here, before torch is imported

import argparse  # noqa: E402
import functools  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from train_vs_d2l import (  # noqa: E402
    SEED_ACCURACY,
    TARGET_RATIO,
    d2l_loaders,
    d2l_train_ch6,
    peak_tflops,
    recipe_setup,
)

from cnnspec.atomic import write_atomic  # noqa: E402
from cnnspec.errors import CnnspecError  # noqa: E402
from cnnspec.training import command, data  # noqa: E402
from cnnspec.training.loop import TrainConfig, fit  # noqa: E402

SEEDS = ("lenet", "alexnet", "vgg11", "nin", "googlenet", "resnet18", "densenet")
KINDS = ("default", "compiled", "d2l")


class OutOfTime(BaseException):
    """The budget's alarm rang during a measurement (a BaseException, as KeyboardInterrupt
    is, so that no `except Exception` on the way swallows it)."""


class Budget:
    """Wall-clock seconds from the start of the process, less a margin to write the results
    and let a stopped measurement's workers end."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.margin = min(15.0, 0.05 * seconds)
        self.deadline = START + seconds - self.margin

    def elapsed(self) -> float:
        return time.monotonic() - START

    def left(self) -> float:
        return self.deadline - time.monotonic()

    @contextmanager
    def guard(self):
        """Raise OutOfTime in the block if it is still running at the deadline."""
        left = self.left()
        if left <= 0:
            raise OutOfTime

        def ring(signum, frame):
            raise OutOfTime

        previous = signal.signal(signal.SIGALRM, ring)
        signal.setitimer(signal.ITIMER_REAL, left)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


@dataclass
class Estimates:
    """What the measurements so far say about the next one's time."""

    probes: dict[str, float] = field(default_factory=dict)  # kind: the longest probe's seconds
    compile_per_module: float | None = None  # the largest first-step seconds per module
    ratio: dict[str, float] = field(default_factory=dict)  # kind: largest taken / estimated

    def probe(self, kind: str, modules: int) -> float:
        estimate = self.probes.get(kind, 0.0)
        if kind == "compiled" and self.compile_per_module is not None:
            estimate = max(estimate, self.compile_per_module * modules)
        return estimate

    def probed(self, kind: str, seconds: float) -> None:
        self.probes[kind] = max(self.probes.get(kind, 0.0), seconds)

    def run(self, kind: str, raw: float) -> float:
        return raw * self.ratio.get(kind, 1.0)

    def ran(self, kind: str, seconds: float, raw: float) -> None:
        ratio = seconds / max(raw, 1e-9)
        self.ratio[kind] = max(self.ratio.get(kind, ratio), ratio)


@dataclass
class Network:
    name: str
    trained: object  # the spec at its training size
    config: TrainConfig
    modules: int  # leaf modules: what a compile has to trace

    @property
    def size(self) -> tuple[int, int]:
        return self.config.size

    @property
    def batch(self) -> int:
        return self.config.batch_size


class Suite:
    def __init__(self, args, base: data.Dataset, device: torch.device, out: Path):
        self.args, self.base, self.device, self.out = args, base, device, out
        self.budget = Budget(args.budget_s)
        self.estimates = Estimates()
        self.peak = args.peak_tflops or peak_tflops(device)
        self.rows: dict[str, dict] = {}
        self.notes: list[str] = []

    def say(self, line: str) -> None:
        print(f"[{self.budget.elapsed():6.1f} s] {line}", flush=True)

    # --- the plan --------------------------------------------------------------------------

    def run(self, names: list[str], compiled: list[str]) -> None:
        networks = []
        for name in names:
            net = self.network(name)
            if net is not None:
                networks.append(net)
        for net in networks:
            self.measure(net, "default", self.trainer)
            self.measure(net, "d2l", self.d2l)
        for net in sorted(networks, key=lambda n: n.modules):  # the longest compiles last
            if net.name in compiled:
                self.measure(net, "compiled", self.trainer)
            else:
                self.skip(net, "compiled", "not asked for (--compile-specs)")
        self.say(f"done in {self.budget.elapsed():.1f} s of a {self.budget.seconds:.0f} s budget")

    def network(self, name: str) -> Network | None:
        args = self.args
        try:
            size = smallest_size(name) if args.size == "min" else args.size
            trained, config = recipe_setup(name, args.epochs, str(self.device), size=size,
                                           batch=args.batch_size)  # fmt: skip
        except CnnspecError as err:
            self.rows[name] = {"network": name, "notes": [f"cannot be set up: {err.message}"]}
            self.say(f"{name}: cannot be set up: {err.message}")
            return None
        with torch.device("meta"):
            modules = sum(1 for m in trained.build().modules() if not list(m.children()))
        net = Network(name, trained, config, modules)
        flops = 6 * trained.macs
        self.rows[name] = {
            "network": name, "size": list(net.size), "batch": net.batch,
            "epochs": config.epochs, "train_examples": len(self.base.train),
            "test_examples": len(self.base.test), "params": trained.params,
            "macs": trained.macs, "flops_per_example": flops, "modules": modules,
            "target_ratio": TARGET_RATIO.get(name), "seed_test_acc": SEED_ACCURACY.get(name),
            "default": None, "compiled": None, "d2l": None, "notes": [],
        }  # fmt: skip
        return net

    def measure(self, net: Network, kind: str, how: Callable) -> None:
        """One measurement, its probe first; skipped (with the reason) when it cannot fit."""
        try:
            if self.budget.left() <= 0:
                self.skip(net, kind, "no time left")
                return
            with self.budget.guard():
                how(net, kind, f"{net.name} {kind}")
        except OutOfTime:
            self.skip(net, kind, f"stopped by the budget at {self.budget.elapsed():.0f} s")
        except Exception as err:  # one network's failure must not end the run
            message = getattr(err, "message", None) or str(err).strip().splitlines()[0]
            self.skip(net, kind, f"failed: {type(err).__name__}: {message}")
        finally:
            if self.device.type == "cuda":  # the next network gets the whole GPU
                gc.collect()
                torch.cuda.empty_cache()
            self.write()

    def skip(self, net: Network, kind: str, reason: str) -> None:
        self.rows[net.name]["notes"].append(f"{kind}: {reason}")
        self.say(f"{net.name} {kind}: skipped: {reason}")

    def fits(self, net: Network, kind: str, what: str, estimate: float) -> bool:
        left = self.budget.left()
        if estimate <= left:
            return True
        self.skip(net, kind, f"{what}: ~{estimate:.0f} s needed, {max(left, 0):.0f} s left")
        return False

    # --- cnnspec's trainer ---------------------------------------------------------------------

    def trainer(self, net: Network, kind: str, label: str) -> None:
        compiled = kind == "compiled"
        config = replace(net.config, compile=compiled)
        torch.manual_seed(config.seed)
        model = net.trained.build()
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        if compiled:
            torch._dynamo.reset()  # each network compiles as it would in a process of its own
        if not self.fits(net, kind, "its probe", self.estimates.probe(kind, net.modules)):
            return
        probe_data = self.probe_data(net)
        self.say(f"{label}: probe, {len(probe_data.train)} images x 2 epochs")
        start = time.monotonic()
        probe = fit(model, probe_data, replace(config, epochs=2), report=quiet)
        probe_seconds = time.monotonic() - start
        self.estimates.probed(kind, probe_seconds)
        if compiled:
            per_module = probe[0].compile_seconds / net.modules
            self.estimates.compile_per_module = max(self.estimates.compile_per_module or 0.0,
                                                    per_module)  # fmt: skip
        rate = probe[1].examples_per_sec
        train_seconds = probe[1].train_seconds - probe[0].train_seconds
        test_per_example = max(probe[1].wall_seconds - train_seconds, 0) / len(probe_data.test)
        per_epoch = len(self.base.train) / rate + len(self.base.test) * test_per_example
        raw = config.epochs * per_epoch
        estimate = self.estimates.run(kind, raw)
        if not self.fits(net, kind, f"{config.epochs} epochs", estimate):
            return
        model.load_state_dict(initial)  # the probe's compiled graphs stay valid for `model`
        self.say(f"{label}: {config.epochs} epochs, ~{estimate:.0f} s by the probe")
        self.reset_memory()
        start = time.monotonic()
        results = fit(model, self.base, config, report=quiet)
        seconds = time.monotonic() - start
        self.estimates.ran(kind, seconds, raw)
        steady = statistics.median(r.examples_per_sec for r in results[1:] or results)
        figures = {
            "examples_per_sec": steady,
            "epoch_examples_per_sec": [r.examples_per_sec for r in results],
            "mfu": self.mfu(net, steady), "test_acc": results[-1].test_acc,
            "peak_memory_bytes": self.peak_memory(), "seconds": seconds,
            "estimated_seconds": estimate, "probe_seconds": probe_seconds,
        }  # fmt: skip
        if compiled:
            figures["first_step_seconds"] = probe[0].compile_seconds
        self.rows[net.name][kind] = figures
        self.say(f"{label}: {steady:,.0f} ex/s, test acc {results[-1].test_acc:.3f}, "
                 f"{seconds:.1f} s")  # fmt: skip

    def probe_data(self, net: Network) -> data.Dataset:
        """The first `--probe-steps` batches, plus as many images as the full run's last,
        partial batch holds (so that a compiled probe meets both batch sizes), and one
        evaluation batch of test images."""
        n = len(self.base.train)
        probe = min(self.args.probe_steps * net.batch + n % net.batch, n)
        return self.base.limit(probe, max(net.batch, 1024))

    # --- d2l's loop ------------------------------------------------------------------------

    def d2l(self, net: Network, kind: str, label: str) -> None:
        if not self.fits(net, kind, "its probe", self.estimates.probe(kind, net.modules)):
            return
        recipe = net.trained.recipe
        workers = self.args.d2l_workers
        probe_data = self.base.limit(self.args.probe_steps * net.batch, net.batch)
        self.say(f"{label}: probe, {len(probe_data.train)} images x 1 epoch")
        torch.manual_seed(0)
        model = net.trained.build(init="default")
        start = time.monotonic()
        train, test = d2l_loaders(probe_data, net.size, net.batch, workers)
        probe = d2l_train_ch6(model, train, test, 1, recipe.lr, self.device,
                              recipe.optimizer)  # fmt: skip
        probe_seconds = time.monotonic() - start
        self.estimates.probed(kind, probe_seconds)
        train_seconds = len(probe_data.train) / probe["examples_per_sec"]
        test_per_example = max(probe_seconds - train_seconds, 0) / len(probe_data.test)
        raw = len(self.base.train) / probe["examples_per_sec"]
        raw += len(self.base.test) * test_per_example
        estimate = self.estimates.run(kind, raw)
        if not self.fits(net, kind, "1 epoch", estimate):
            return
        self.say(f"{label}: 1 epoch, ~{estimate:.0f} s by the probe")
        torch.manual_seed(0)
        model = net.trained.build(init="default")
        self.reset_memory()
        start = time.monotonic()
        train, test = d2l_loaders(self.base, net.size, net.batch, workers)
        result = d2l_train_ch6(model, train, test, 1, recipe.lr, self.device,
                               recipe.optimizer)  # fmt: skip
        seconds = time.monotonic() - start
        self.estimates.ran(kind, seconds, raw)
        rate = result["examples_per_sec"]
        self.rows[net.name][kind] = {
            "examples_per_sec": rate,
            "d2l_timer_examples_per_sec": result["d2l_timer_examples_per_sec"],
            "mfu": self.mfu(net, rate), "test_acc": result["test_acc"],
            "peak_memory_bytes": self.peak_memory(), "seconds": seconds,
            "estimated_seconds": estimate, "probe_seconds": probe_seconds,
        }  # fmt: skip
        self.say(f"{label}: {rate:,.0f} ex/s, test acc {result['test_acc']:.3f}, "
                 f"{seconds:.1f} s")  # fmt: skip

    # --- figures -------------------------------------------------------------------------------

    def mfu(self, net: Network, rate: float) -> float | None:
        return rate * 6 * net.trained.macs / (self.peak * 1e12) if self.peak else None

    def reset_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_memory(self) -> int | None:
        if self.device.type != "cuda":
            return None
        return torch.cuda.max_memory_allocated(self.device)

    def write(self) -> None:
        rows = list(self.rows.values())
        for row in rows:
            d2l = (row.get("d2l") or {}).get("examples_per_sec")
            for kind, key in (("default", "ratio"), ("compiled", "ratio_compiled")):
                ours = (row.get(kind) or {}).get("examples_per_sec")
                row[key] = ours / d2l if ours and d2l else None
        report = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "command": shlex.join([Path(sys.executable).name, *sys.argv]),
            "device": device_name(self.device), "torch": torch.__version__,
            "cuda": torch.version.cuda, "python": platform.python_version(),
            "cpu_threads": torch.get_num_threads(), "peak_tflops": self.peak,
            "budget_s": self.budget.seconds, "elapsed_s": self.budget.elapsed(),
            "train_examples": len(self.base.train), "test_examples": len(self.base.test),
            "smoke": self.args.smoke, "compile_backend": self.args.compile_backend,
            "rows": rows,
        }  # fmt: skip
        self.out.mkdir(parents=True, exist_ok=True)
        write_atomic(self.out / "gpu_suite.json", json.dumps(report, indent=1))
        write_atomic(self.out / "gpu_suite.md", markdown(report))


def quiet(line: str) -> None:
    """The trainer's epoch lines: the suite prints its own."""


def smallest_size(name: str) -> int:
    """The smallest square size, from 28 up, that the seed network `name` accepts."""
    spec = recipe_setup(name, None, "cpu")[0]
    for side in range(28, 513):
        try:
            command.at_input_size(spec, 1, (side, side))
            return side
        except CnnspecError:
            continue
    raise CnnspecError(f"{name} accepts no size from 28 to 512")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


# --- the markdown table -----------------------------------------------------------------------

COLUMNS = ("network", "size", "batch", "epochs", "ex/s", "ex/s compiled", "first compiled step",
           "d2l ex/s", "ratio", "ratio compiled", "target", "MFU", "MFU compiled",
           "peak mem", "peak mem compiled", "test acc")  # fmt: skip


def markdown(report: dict) -> str:
    def cell(row: dict, kind: str, key: str, fmt: Callable[[float], str]) -> str:
        figures = row.get(kind)
        if figures is None:
            return "skipped"
        value = figures.get(key)
        return "-" if value is None else fmt(value)

    rate = lambda v: f"{v:,.0f}"  # noqa: E731
    share = lambda v: f"{v:.1%}"  # noqa: E731
    mib = lambda v: f"{v / 2**20:,.0f} MiB"  # noqa: E731
    times = lambda v: "-" if v is None else f"{v:.1f}x"  # noqa: E731
    lines = [
        f"Device: {report['device']}; torch {report['torch']}; {report['date']}; "
        f"{report['train_examples']:,} training and {report['test_examples']:,} test images; "
        f"{report['elapsed_s']:.0f} s of a {report['budget_s']:.0f} s budget.",
        "",
        f"`{report['command']}`",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "| --- " + "| ---: " * (len(COLUMNS) - 1) + "|",
    ]
    notes = []
    for row in report["rows"]:
        notes += [f"- {row['network']}, {note}" for note in row["notes"]]
        if "size" not in row:
            continue
        cells = [
            row["network"], "x".join(map(str, row["size"])), str(row["batch"]),
            str(row["epochs"]), cell(row, "default", "examples_per_sec", rate),
            cell(row, "compiled", "examples_per_sec", rate),
            cell(row, "compiled", "first_step_seconds", lambda v: f"{v:.1f} s"),
            cell(row, "d2l", "examples_per_sec", rate), times(row["ratio"]),
            times(row["ratio_compiled"]),
            f"{row['target_ratio']}x" if row["target_ratio"] else "-",
            cell(row, "default", "mfu", share), cell(row, "compiled", "mfu", share),
            cell(row, "default", "peak_memory_bytes", mib),
            cell(row, "compiled", "peak_memory_bytes", mib),
            cell(row, "default", "test_acc", lambda v: f"{v:.3f}"),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "Skipped or failed:", "", *notes]
    return "\n".join(lines) + "\n"


# --- the command -----------------------------------------------------------------------------


@contextmanager
def compile_backend(name: str):
    """The trainer calls torch.compile(model); another backend than inductor (the smoke
    run's "eager") keeps dynamo's tracing, guards and recompiles but not code generation."""
    if name == "inductor":
        yield
        return
    original = torch.compile
    torch.compile = functools.partial(original, backend=name)
    try:
        yield
    finally:
        torch.compile = original


def parse(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", nargs="+", default=list(SEEDS), choices=SEEDS)
    parser.add_argument(
        "--compile-specs",
        nargs="*",
        choices=SEEDS,
        help="the networks also timed compiled (default: all of --specs)",
    )
    parser.add_argument(
        "--budget-s", type=float, help="wall-clock budget (default 480; with --smoke, 240)"
    )
    parser.add_argument("--out", help="the results' folder (default: $OUT, else ./gpu-suite)")
    parser.add_argument("--epochs", type=int, default=2, help="cnnspec's epochs (at least 2)")
    parser.add_argument("--limit-train", type=int)
    parser.add_argument("--limit-test", type=int)
    parser.add_argument("--batch-size", type=int, help="instead of each recipe's")
    parser.add_argument(
        "--size",
        help="instead of each recipe's: a side in pixels, or 'min' "
        "for the smallest each network accepts",
    )
    parser.add_argument("--probe-steps", type=int, help="batches per probe (default 8)")
    parser.add_argument("--d2l-workers", type=int, help="d2l's DataLoader workers (default 4)")
    parser.add_argument("--compile-backend", help="torch.compile's (default inductor)")
    parser.add_argument("--device", help="default: cuda where there is one, else cpu")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch's CPU threads (default: torch's; "
        "with --smoke, 1, which a busy machine slows least)",
    )
    parser.add_argument("--data-dir", help="Fashion-MNIST's folder (else as cnnspec finds it)")
    parser.add_argument("--peak-tflops", type=float, help="instead of the device's own")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="on the CPU, tiny: a check of the suite, not a measurement",
    )
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is not steady")
    if args.smoke:
        tiny = {"device": "cpu", "budget_s": 240.0, "limit_train": 10, "limit_test": 8,
                "batch_size": 4, "size": "min", "probe_steps": 1, "d2l_workers": 1,
                "compile_backend": "eager", "compile_specs": ["lenet"], "threads": 1}  # fmt: skip
        for key, value in tiny.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    defaults = {"budget_s": 480.0, "probe_steps": 8, "d2l_workers": 4,
                "compile_backend": "inductor",
                "device": "cuda" if torch.cuda.is_available() else "cpu"}  # fmt: skip
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.size not in (None, "min"):
        args.size = int(args.size)
    if args.compile_specs is None:
        args.compile_specs = args.specs
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out or os.environ.get("OUT") or "gpu-suite")
    # d2l's 4 workers are part of the comparison, even where torch thinks them too many
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    base = data.fashion_mnist(args.data_dir).limit(args.limit_train, args.limit_test)
    suite = Suite(args, base, device, out)
    suite.say(f"{device_name(device)}, peak {suite.peak or '-'} TFLOP/s, "
              f"budget {suite.budget.seconds:.0f} s; results in {out}")  # fmt: skip
    with compile_backend(args.compile_backend):
        suite.run(args.specs, args.compile_specs)
    suite.write()
    print(markdown(json.loads((out / "gpu_suite.json").read_text())), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
