"""Mutation fuzzing of the front ends: every spec in specs/, mutated, must either load or fail
with one CnnspecError whose position lies inside the file; a spec that loads must build.

    python scripts/fuzz.py --minutes 10 --out fuzz-failures

Mutations are byte flips, token deletions and duplications, and insertions of keywords,
numbers and punctuation. Each failing input is saved under DIR with what went wrong.
The same engine runs a bounded, seeded share in the tests (tests/test_fuzz_frontend.py).
"""

from __future__ import annotations

import argparse
import random
import re
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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


def cases(rng: random.Random) -> Iterator[tuple[Path, str, str]]:
    """Mutated seeds, round robin over every spec: (seed, text, format)."""
    texts = [(p, p.read_text(encoding="utf-8"), p.suffix.lstrip(".")) for p in SEEDS]
    while True:
        for path, text, fmt in texts:
            yield path, mutate(text, rng), fmt


def campaign(count: int | None, seconds: float | None, seed: int, build_params: int):
    """Run mutated cases until `count` are done or `seconds` have passed."""
    rng = random.Random(seed)
    start, ran, failures = time.monotonic(), 0, []
    for path, text, fmt in cases(rng):
        if count is not None and ran >= count:
            break
        if seconds is not None and time.monotonic() - start > seconds:
            break
        what = trial(text, fmt, build_params)
        ran += 1
        if what:
            failures.append(Failure(str(path.relative_to(ROOT)), text, fmt, what))
    return ran, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=Path("fuzz-failures"))
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument(
        "--build-params", type=int, default=30_000_000, help="build what checks, up to this size"
    )
    args = parser.parse_args(argv)
    ran, failures = campaign(None, args.minutes * 60, args.seed, args.build_params)
    for i, failure in enumerate(failures):
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / f"failure-{args.seed}-{i:04d}"
        stem.with_suffix("." + failure.format).write_text(
            failure.text, encoding="utf-8", errors="surrogatepass"
        )
        stem.with_suffix(".txt").write_text(f"seed spec: {failure.seed}\n{failure.what}\n")
    saved = f" (saved in {args.out})" if failures else ""
    print(f"seed {args.seed}: {ran} mutated specs, {len(failures)} failures{saved}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
