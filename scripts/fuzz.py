"""Fuzzing of every command: generated and mutated specs, run as a user runs them, must
end within their bounds of time and memory and fail only as the command line promises.

    python scripts/fuzz.py --minutes 30 --seed 1 --out fuzz-failures
    python scripts/fuzz.py --case use:1234      # one case again, each run's figures shown

Each case writes files into a fresh folder and runs commands there, each in its own
process under a memory cap (RLIMIT_AS) and a wall-clock limit. Kinds of case:

- mutate: seeds from specs/ and generated specs, edited at random (byte flips, token
  deletions and duplications, inserted keywords, numbers and punctuation), six to a `check`;
- commands: a generated spec (conditionals, repeat indices, for-tables, named tensors,
  joins and outputs, upsample, crop, conv_transpose, select, split), perhaps mutated,
  through `check` and two of `graph` (.html, .dot, .svg), `codegen`, `convert` and `build`;
- use: its blocks from a used file: nested, in a cycle, through a symbolic link in or out
  of the folder, outside it, absolute, a pipe, a folder, binary, missing, a long chain;
- sweep: `compare` with `--set` lists, good and bad values, past the bound on variants;
- transfer: one generated network's weights (.pth or .safetensors), intact or damaged
  (truncated, bytes flipped, other dtypes or shapes, sparse, compressed, pickled objects),
  into another network or the same, and now and then through `export --weights`.

Every run must: exit 0, 1 or 2 (no signal, no traceback); on 1 print error blocks of a
headline `file:line:col: message` with the position inside the file (then perhaps the line
and a caret), on 2 one line; print no raw control character; leave its output file whole
after success, absent after failure, and no temporary file; end within its bounds
(BOUNDS). Runs of one case agree: a spec `check` passes works with every command, one it
refuses is refused with the same headline, converted YAML checks, a use that leaves the
folder is refused and never shows a line of a file outside it, a sweep gives one row per
combination. A failing case is saved under --out as a folder that reproduces it, with
FAILURE.txt. The frontend's oracle, `trial`, also runs in-process in the tests.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import fuzz_cases  # noqa: E402

import cnnspec  # noqa: E402  (the checkout's, not an installed copy)
from cnnspec.errors import CnnspecError  # noqa: E402
from cnnspec.language.reading import normalize  # noqa: E402

SEEDS = sorted(p for p in (ROOT / "specs").glob("**/*") if p.suffix in (".cnn", ".yaml"))

TOKEN = re.compile(r"\w+|[ \t]+|\n|.", re.S)
INSERTS = [
    # keywords and names of the language, and names that reach torch or Python
    "network", "block", "train", "concat", "add", "dense", "heads", "add(project=true)",
    "relu", "conv", "conv(4, k=3)", "linear(10)", "flatten", "identity", "C", "H", "W",
    "classes", "compile", "keys", "forward", "none", "true", "false", "self", "__class__",
    # numbers at and past every limit
    "0", "-1", "1.5", "1e308", "1e-308", "999999999999", "1" + "0" * 30, "9" * 5000,
    "inf", "nan", "2x2", "1x1000000x1000000",
    # punctuation, whitespace and YAML syntax
    ":", "(", ")", "[", "]", "{", "}", ",", "=", "*", "//", "%", "-", "+", "#", "\\",
    "\n", "\n    ", "\t", "\r", "\x0c", "\x00", "\x85", "\u2028", "\ufeff", "\ud800", "é",
    "- ", "<<: ", "&a ", "*a", "!!python/object:os.system ", "? ", "|", ">", "'", '"',
    "---\n", "...\n",
]  # fmt: skip
FLIPS = "\x00\x01\x7f ()[]{}:,=*#-+\n\t\r\\'\"0123456789xXeE.é\u2028"


@dataclass
class Failure:
    seed: str
    text: str
    format: str
    what: str


def mutate(text: str, rng: random.Random) -> str:
    """One to three random edits of `text`."""
    for _ in range(rng.randint(1, 3)):
        tokens = TOKEN.findall(text) or [""]
        i = rng.randrange(len(tokens))
        kind = rng.randrange(4)
        if kind == 0:  # flip one character
            at = rng.randrange(len(text) or 1)
            text = text[:at] + rng.choice(FLIPS) + text[at + 1 :]
            continue
        if kind == 1:
            del tokens[i]
        elif kind == 2:
            tokens.insert(i, tokens[i])
        else:
            tokens.insert(i, rng.choice(INSERTS))
        text = "".join(tokens)
    return text


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def trial(text: str, fmt: str, build_params: int, seconds: int = 10) -> str | None:
    """What went wrong with one input, or None when it held."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        return _trial(text, fmt, build_params)
    except _Timeout:
        return f"took more than {seconds} s"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _trial(text: str, fmt: str, build_params: int) -> str | None:
    try:
        spec = cnnspec.load(text, format=fmt)
    except CnnspecError as err:
        return _misplaced(err, text, fmt)
    except _Timeout:
        raise
    except BaseException:  # noqa: BLE001  (a traceback is what this looks for)
        return "load raised " + traceback.format_exc(limit=-3)
    if spec.params > build_params:
        return None
    try:
        spec.build()
    except CnnspecError as err:
        return _misplaced(err, text, fmt)
    except _Timeout:
        raise
    except BaseException:  # noqa: BLE001
        return "build raised " + traceback.format_exc(limit=-3)
    return None


def _misplaced(err: CnnspecError, text: str, fmt: str) -> str | None:
    """Why the error is not one positioned line, or None when it is."""
    if "\n" in err.message:
        return f"message has several lines: {err.message!r}"
    lines = normalize(text, fmt).split("\n")
    line, col = err.pos
    if not 1 <= line <= len(lines):
        return f"line {line} outside the file ({len(lines)} lines): {err.message}"
    if not 1 <= col <= len(lines[line - 1]) + 1:
        return f"column {col} outside line {line} ({len(lines[line - 1])} chars): {err.message}"
    return None


# --- commands, run as a user runs them ----------------------------------------------------

# The bounds every run must keep (README, "Bounds"): seconds of wall clock and MB of peak
# resident memory, by command. check, convert and graph never import torch; codegen infers
# the network again for other input channels and classes; the rest import torch and build.
# The address space is capped too, so a runaway allocation fails instead of swapping.
BOUNDS = {"check": (20, 512), "convert": (20, 512), "graph": (20, 512), "codegen": (60, 512)}
HEAVY = (60, 2048)  # build, compare, transfer, export
SVG = (90, 512)  # Graphviz is stopped after 60 s
ADDRESS_SPACE = 8 << 30  # torch alone maps ~3.3 GB of address space on import
# Budgets the heavy commands run under: lower than the defaults, which are sized for real
# networks, so that a case ends in seconds (README gives the cost at the defaults).
BUDGETS = ["--max-params", "20000000", "--max-macs", "2000000000"]

HEADLINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): \S")
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

DRIVER = """\
import sys
from cnnspec.errors import CnnspecError, EscapedStream
import cnnspec
sys.stdout, sys.stderr = EscapedStream(sys.stdout), EscapedStream(sys.stderr)
spec, weights = sys.argv[1:]
try:
    if weights.endswith(".pth"):
        print(cnnspec.transfer(cnnspec.compile(spec), weights))
    else:
        cnnspec.compile(spec, weights=weights)
        print("loaded")
except CnnspecError as err:
    print(err.render(), file=sys.stderr)
    sys.exit(1)
"""


# A forked child starts its peak resident memory at its parent's size (Linux keeps the
# high-water mark across fork and exec), so a command run straight from a process holding
# torch would be charged for it. The command is forked from this small launcher instead,
# which writes the command's exit code and peak (MB) to the file named first.
LAUNCHER = """\
import os, sys
child = os.fork()
if child == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(child, 0)
with open(sys.argv[1], "w") as peak:
    peak.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss / 1024}")
"""


@dataclass
class Run:
    argv: list[str]  # after `python -m cnnspec`, or ["transfer", SPEC, WEIGHTS]
    rc: int
    out: str
    err: str
    seconds: float
    mb: float
    bound: tuple[int, int]

    @property
    def headline(self) -> str:
        return self.err.split("\n", 1)[0]


@dataclass
class Case:
    kind: str
    seed: int
    files: dict  # path in the case's folder -> text, bytes, ("link", target) or ("fifo", "")
    commands: list[list[str]]
    runs: list[Run] = field(default_factory=list)


def _limits() -> None:  # in the child, before it runs
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.setsid()


def run(argv: list[str], folder: Path) -> Run:
    """One command in `folder`, under the bounds; killed at twice its time bound."""
    bound = SVG if argv[-1].endswith(".svg") else BOUNDS.get(argv[0], HEAVY)
    if argv[0] == "transfer":
        command = [sys.executable, "-c", DRIVER, *argv[1:]]
    else:
        command = [sys.executable, "-m", "cnnspec", *argv]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as peak:  # fmt: skip
        start = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, peak.name, *command], cwd=folder,
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, preexec_fn=_limits,
        )  # fmt: skip
        timer = threading.Timer(2 * bound[0], os.killpg, (child.pid, signal.SIGKILL))
        timer.start()
        _, status, usage = os.wait4(child.pid, 0)
        timer.cancel()
        seconds = time.monotonic() - start
        # A launcher killed with its group has written nothing: its own figures stand in.
        written = peak.read().split()
        rc, mb = written or (os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024)
        out.seek(0)
        err.seek(0)
        texts = [_text(f.read()) for f in (out, err)]
    return Run(argv, int(rc), *texts, seconds, float(mb), bound)


def _text(data: bytes) -> str:
    """What a command printed; bytes that are not UTF-8 are marked, as a problem."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "backslashreplace") + "\n" + NOT_UTF8


NOT_UTF8 = "<not UTF-8>"


def problems(case: Case, folder: Path) -> list[str]:
    """Every property a case's runs break."""
    found = []
    for r in case.runs:
        found += [f"{' '.join(r.argv)}: {p}" for p in _run_problems(r, folder)]
    found += CHECKS[case.kind.split(":")[0]](case, folder)
    leftovers = [p.name for p in folder.rglob(".*.tmp")]
    if leftovers:
        found.append(f"temporary files left behind: {leftovers}")
    return found


def _run_problems(r: Run, folder: Path) -> list[str]:
    found = []
    if r.rc not in (0, 1, 2):
        found.append(f"exit code {r.rc} (a signal or a crash)")
    if "Traceback" in r.err or "Traceback" in r.out:
        found.append("a traceback:\n" + r.err[-3000:])
    for name, text in (("stdout", r.out), ("stderr", r.err)):
        bad = RAW_CONTROL.search(text)
        if bad:
            found.append(f"{name} holds a raw control character: {bad.group()!r}")
        if text.endswith(NOT_UTF8):
            found.append(f"{name} is not UTF-8")
    if r.seconds > r.bound[0]:
        found.append(f"took {r.seconds:.1f} s, more than {r.bound[0]} s")
    if r.mb > r.bound[1]:
        found.append(f"peaked at {r.mb:.0f} MB, more than {r.bound[1]} MB")
    if r.rc == 1:
        found += _error_problems(r.err, folder)
    if r.rc == 2:
        lines = r.err.strip().split("\n")
        usage = lines[0].startswith("usage:") and ": error: " in lines[-1]
        if not usage and (len(lines) != 1 or not lines[0].startswith("cnnspec: ")):
            found.append(f"a usage error that is not one line:\n{r.err}")
    found += _output_problems(r, folder)
    return found


def _error_problems(err: str, folder: Path) -> list[str]:
    """An error is blocks of a headline `file:line:col: message` (or a one-line message),
    then perhaps the line and a caret under the column; positions lie inside the file."""
    lines = err.rstrip("\n").split("\n")
    found, i = [], 0
    while i < len(lines):
        head = HEADLINE.match(lines[i])
        if lines[i].startswith(" ") or not lines[i]:
            return [f"an error block starts with an indented or empty line:\n{err}"]
        i += 1
        if i < len(lines) and lines[i].startswith("    "):  # the line, then the caret
            if i + 1 >= len(lines) or lines[i + 1].strip() != "^":
                return [f"a quoted line without its caret:\n{err}"]
            i += 2
        if head:
            found += _position_problem(folder / head["file"], int(head["line"]), int(head["col"]))
    return found


def _position_problem(path: Path, line: int, col: int) -> list[str]:
    try:
        if not path.is_file() or path.is_symlink():
            return []  # a built-in block's file, or one the message only names
        text = normalize(path.read_text(encoding="utf-8", errors="replace"), path.suffix[1:])
    except OSError:
        return []
    lines = text.split("\n")
    if not 1 <= line <= len(lines) or not 1 <= col <= len(lines[line - 1]) + 1:
        return [f"position {line}:{col} lies outside {path.name}"]
    return []


def _output_problems(r: Run, folder: Path) -> list[str]:
    """The file a command writes is there and whole after success, and absent otherwise."""
    target = next((r.argv[i + 1] for i, a in enumerate(r.argv[:-1]) if a in ("-o", "--onnx")), "")
    if not target:
        return []
    path = folder / target
    if r.argv[0] == "codegen":
        path = path / f"{Path(r.argv[1]).stem}.py"
    if r.rc != 0:
        return [f"{target} exists after a failure"] if path.exists() else []
    if not path.is_file():
        return [f"{target} is missing after success"]
    data = path.read_bytes()
    whole = {
        ".html": lambda: data.rstrip().endswith(b"</html>"),
        ".dot": lambda: data.rstrip().endswith(b"}"),
        ".svg": lambda: data.rstrip().endswith(b"</svg>"),
        ".py": lambda: bool(ast.parse(data)),
        ".onnx": lambda: len(data) > 100,
    }.get(path.suffix, lambda: True)
    try:
        return [] if whole() else [f"{target} is not whole"]
    except SyntaxError as err:
        return [f"{target} does not parse: {err}"]


# --- cases: what each kind writes and runs, and what its runs must agree on ---------------


def _spec(rng: random.Random, mutated: float = 0.3) -> str:
    text = fuzz_cases.spec_text(rng)
    return mutate(text, rng) if rng.random() < mutated else text


def case_mutate(rng: random.Random, seed: int) -> Case:
    """Mutated seeds and generated specs, checked together by one `check`."""
    files = {}
    for i in range(6):
        if rng.random() < 0.5:
            path = rng.choice(SEEDS)
            text, suffix = mutate(path.read_text(encoding="utf-8"), rng), path.suffix
        else:
            text, suffix = _spec(rng, mutated=1.0), ".cnn"
        files[f"m{i}{suffix}"] = text
    return Case("mutate", seed, files, [["check", *files]])


def case_commands(rng: random.Random, seed: int) -> Case:
    """One generated spec through check and two of graph, codegen, convert and build."""
    files = {"net.cnn": _spec(rng)}
    others = [
        ["graph", "net.cnn", "-o", f"out/net.{rng.choice(['html', 'dot', 'html', 'svg'])}"],
        ["graph", "net.cnn", "--depth", str(rng.randint(0, 3)), "--layout", "lr"],
        ["codegen", "net.cnn", "-o", "gen"],
        ["convert", "net.cnn"],
        ["build", "net.cnn", *BUDGETS, *rng.choice([[], ["--json"], ["--depth", "3"]])],
    ]
    return Case("commands", seed, files, [["check", "net.cnn"], *rng.sample(others, 2)])


def _check_commands(case: Case, folder: Path) -> list[str]:
    """The commands agree with `check`: a spec it passes works everywhere (a converted one
    checks too), and one it refuses is refused everywhere with the same headline."""
    first, found = case.runs[0], []
    for r in case.runs[1:]:
        over_budget = "raises the bound)" in r.headline and "--max-params" in r.argv
        if first.rc == 0 and r.rc != 0 and not over_budget:  # build runs under BUDGETS
            found.append(f"check passes, {r.argv[0]} fails: {r.headline}")
        if first.rc == 1 and (r.rc != 1 or r.headline != first.headline) and not over_budget:
            found.append(f"check says {first.headline!r}, {r.argv[0]} {r.headline!r}")
        if r.argv[0] == "convert" and r.rc == 0:
            back = run(["check", _write(folder / "back.yaml", r.out)], folder)
            if back.rc != 0:
                found.append(f"the converted YAML fails: {back.err}")
    return found


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return path.name


def case_use(rng: random.Random, seed: int) -> Case:
    """A spec whose blocks come from another file, which may be outside the folder, a link,
    a pipe, a folder, binary, missing, itself, or at the end of a long chain."""
    text = fuzz_cases.spec_text(rng)
    way, files = fuzz_cases.use_folder(rng, text)
    files["root/inline.cnn"] = text
    main = ["check", "root/main.cnn"]
    commands = [["check", "root/inline.cnn"], main]
    extra = rng.choice([["--use-root", "root"], ["--use-root", "."], ["-o", "out/x.html"], []])
    if extra and extra[0] == "-o":
        commands.append(["graph", "root/main.cnn", *extra])
    elif extra:
        commands.append([*main, *extra])
    return Case(f"use:{way}", seed, files, commands)


def _check_use(case: Case, folder: Path) -> list[str]:
    inline, *used = case.runs
    way, found = case.kind.split(":")[1], []
    for r in used:
        inside = "--use-root" in r.argv and r.argv[r.argv.index("--use-root") + 1] == "."
        if fuzz_cases.SECRET in r.out + r.err and not inside:
            found.append(f"{' '.join(r.argv)} shows a line of a file outside its folder")
        if way in fuzz_cases.LEAVING and not inside and r.rc != 1:
            found.append(f"a use that leaves the folder gives exit code {r.rc}")
        same = way in ("plain", "nested", "link_in") and "leak(2)" not in case.files[
            "root/main.cnn"]  # fmt: skip
        if same and r.rc != inline.rc:
            found.append(f"used blocks give exit code {r.rc}, the same inline {inline.rc}")
    return found


SWEEP_VALUES = {
    "width": ["0.5", "1.0", "2", "0", "-1", "1e308", "abc", "(1, 2)", "true"],
    "depth": ["1", "2", "3", "0", "10000", "1.5"],
    "classes": ["2", "10", "100", "0"],
    "input": ["1x8x8", "3x16x16", "3x4x4", "0x8x8", "3x100000x100000"],
    "lr": ["0.1", "0.5", "-1"],
    "nothere": ["1"],
}


def case_sweep(rng: random.Random, seed: int) -> Case:
    """`compare` over a generated spec with `--set` lists: every combination is a row."""
    sets = []
    for name in rng.sample(sorted(SWEEP_VALUES), rng.randint(1, 3)):
        values = rng.sample(SWEEP_VALUES[name], rng.randint(1, min(3, len(SWEEP_VALUES[name]))))
        if rng.random() < 0.1:  # a sweep past the bound on variants
            values = [str(v) for v in range(1, 300)]
        sets += ["--set", f"{name}={','.join(values)}"]
    command = ["compare", "net.cnn", *sets, *BUDGETS]
    return Case("sweep", seed, {"net.cnn": _spec(rng, 0.1)}, [command])


def _check_sweep(case: Case, folder: Path) -> list[str]:
    r = case.runs[0]
    counts = [len(_values(value)) for flag, value in zip(r.argv, r.argv[1:]) if flag == "--set"]
    variants = math.prod(counts)
    if variants > 256 and r.rc != 2:
        return [f"{variants} variants give exit code {r.rc}, not a usage error"]
    rows = [line for line in r.out.split("\n") if line.startswith("| net")]
    if r.rc == 0 and len(rows) != variants:
        return [f"{variants} variants give {len(rows)} rows"]
    return []


def _values(assignment: str) -> list[str]:
    return assignment.partition("=")[2].split(",") if "(" not in assignment else ["x"]


def case_transfer(rng: random.Random, seed: int) -> Case:
    """Weights of one generated network, intact or damaged, into another (or the same)."""
    import torch

    import cnnspec

    torch.manual_seed(seed)
    texts = [fuzz_cases.spec_text(rng) for _ in range(2)]
    try:
        state = cnnspec.compile(texts[0]).state_dict()
    except CnnspecError:
        state = {"w": torch.randn(4, 4)}
    target = rng.choice([0, 1])
    how, data = fuzz_cases.damaged_weights(rng, state, torch)
    weights = "w.pth"
    if rng.random() < 0.25:  # a safetensors file instead, as a run's checkpoint holds
        from safetensors.torch import save

        weights, data = "w.safetensors", save({k: v.contiguous() for k, v in state.items()})
        if how in ("truncate", "flip"):
            data = data[: rng.randrange(len(data))] if how == "truncate" else data[::-1]
    files = {"a.cnn": texts[0], "b.cnn": texts[1], weights: data}
    command = ["transfer", ["a.cnn", "b.cnn"][target], weights]
    if rng.random() < 0.05 and weights.endswith(".pth"):  # and through the command line
        command = ["export", command[1], "--onnx", "out/net.onnx", "--weights", weights]
    return Case(f"transfer:{how}", seed, files, [command])


def _check_transfer(case: Case, folder: Path) -> list[str]:
    r = case.runs[0]
    refused = ("object", "deflate", "sparse", "not_tensor", "empty")
    if case.kind.split(":")[1] in refused and r.argv[-1].endswith(".pth") and r.rc == 0:
        return [f"{case.kind} weights were loaded: {r.out}"]
    return []


KINDS = {
    "mutate": (case_mutate, 3),
    "commands": (case_commands, 4),
    "use": (case_use, 3),
    "sweep": (case_sweep, 1),
    "transfer": (case_transfer, 2),
}
CHECKS = {
    "transfer": _check_transfer,
    "mutate": lambda case, folder: [],
    "commands": _check_commands,
    "use": _check_use,
    "sweep": _check_sweep,
}


def make(kind: str, seed: int) -> Case:
    """The case `kind` makes from `seed`: the same seed, the same case."""
    return KINDS[kind][0](random.Random(seed), seed)


def write_files(case: Case, folder: Path) -> None:
    for name, content in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple) and content[0] == "link":
            path.symlink_to(content[1])
        elif isinstance(content, tuple):
            os.mkfifo(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", errors="surrogatepass")


def execute(case: Case) -> list[str]:
    """Run a case's commands in a fresh folder; what went wrong (nothing when it held)."""
    with tempfile.TemporaryDirectory(prefix="cnnspec-fuzz-") as tmp:
        folder = Path(tmp) / "case"
        folder.mkdir()
        write_files(case, folder)
        case.runs = [run(argv, folder) for argv in case.commands]
        found = problems(case, folder)
        slow = [r for r in case.runs if r.seconds > r.bound[0]]
        if slow and found == [f"{' '.join(r.argv)}: took {r.seconds:.1f} s, more than "
                              f"{r.bound[0]} s" for r in slow]:  # fmt: skip
            # a busy machine can stall one run: a bound is broken only if it breaks again
            case.runs = [run(argv, folder) for argv in case.commands]
            found = problems(case, folder)
    return found


def save(case: Case, found: list[str], out: Path) -> None:
    """The case's files and what went wrong, as a folder that reproduces it."""
    folder = out / f"{case.kind.split(':')[0]}-{case.seed}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    write_files(case, folder)
    commands = "\n".join("cnnspec " + " ".join(map(repr, c)) for c in case.commands)
    (folder / "FAILURE.txt").write_text(
        f"kind {case.kind}, seed {case.seed}; in this folder:\n{commands}\n\n"
        + "\n\n".join(found)
        + "\n",
        encoding="utf-8",
        errors="backslashreplace",
    )


def campaign(seconds: float, seed: int, out: Path, log=print) -> dict:
    """Cases of every kind, in proportion to their weights, until `seconds` have passed."""
    rng = random.Random(seed)
    kinds = [k for k, (_, weight) in KINDS.items() for _ in range(weight)]
    stats = {"cases": 0, "failures": 0, "per_kind": {}, "slowest": (0.0, ""), "peak": (0.0, "")}
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        kind, case_seed = rng.choice(kinds), rng.randrange(2**32)
        case = make(kind, case_seed)
        found = execute(case)
        stats["cases"] += 1
        stats["per_kind"][kind] = stats["per_kind"].get(kind, 0) + 1
        for r in case.runs:
            label = f"{case.kind} {case_seed}: {' '.join(r.argv)}"
            stats["slowest"] = max(stats["slowest"], (r.seconds, label))
            stats["peak"] = max(stats["peak"], (r.mb, label))
        if found:
            stats["failures"] += 1
            save(case, found, out)
            log(f"FAIL {case.kind} {case_seed}: {found[0][:300]}")
        if stats["cases"] % 25 == 0:
            log(_progress(stats, time.monotonic() - start))
    return stats


def _progress(stats: dict, elapsed: float) -> str:
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(stats["per_kind"].items()))
    return (
        f"{elapsed / 60:.1f} min: {stats['cases']} cases ({kinds}), {stats['failures']} "
        f"failures; slowest {stats['slowest'][0]:.1f} s ({stats['slowest'][1][:120]}); "
        f"peak {stats['peak'][0]:.0f} MB ({stats['peak'][1][:120]})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=Path("fuzz-failures"))
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--case", metavar="KIND:SEED", help="run one case again, and say why")
    args = parser.parse_args(argv)
    if args.case:
        kind, _, seed = args.case.partition(":")
        case = make(kind, int(seed))
        found = execute(case)
        for r in case.runs:
            print(f"{' '.join(r.argv)}: exit {r.rc}, {r.seconds:.1f} s, {r.mb:.0f} MB {r.headline}")
        print("\n\n".join(found) or "held")
        return 1 if found else 0
    say = lambda text: print(text, flush=True)  # noqa: E731
    say(f"seed {args.seed}, {args.minutes:g} minutes, failures to {args.out}")
    stats = campaign(args.minutes * 60, args.seed, args.out, say)
    say(_progress(stats, args.minutes * 60))
    return 1 if stats["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
