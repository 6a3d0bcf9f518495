"""Feature removals: disable one promised feature at a time and check that a test fails.

    python scripts/mutate.py            # every removal, a table of results
    python scripts/mutate.py --list     # the removals and the tests each one runs
    python scripts/mutate.py --only analysis/call-chain --only lsp/hover

Each removal replaces one exact piece of code (which must occur exactly once, so that a
renamed or rewritten function fails here loudly instead of being skipped) in a copy of
the tree, then runs the chosen test files there with `-x`. A removal is killed when a test
fails, and survives when every test passes: then the feature it removes is guarded by no
test. The checkout itself is never changed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Not copied: history, caches and run outputs (the tests need none of them).
SKIP = (
    ".git __pycache__ *.egg-info .pytest_cache .ruff_cache .hypothesis build dist .bundle runs "
    "gpu-suite fuzz-failures .benchmarks"
).split()


@dataclass(frozen=True)
class Removal:
    name: str  # area/feature
    file: str  # relative to the repository root
    old: str  # exact text, found exactly once in `file`
    new: str
    tests: tuple[str, ...]  # test files (or node ids) whose failure kills it


R = Removal
REMOVALS = [
    # --- analysis -----------------------------------------------------------------------
    R("analysis/repeat-bound", "cnnspec/analysis/infer.py",
      "if count > self.limits.max_repeat:", "if False:", ("tests/test_limits.py",)),
    R("analysis/layer-bound", "cnnspec/analysis/infer.py",
      "if self.layer_count > self.limits.max_layers:", "if False:", ("tests/test_limits.py",)),
    R("analysis/step-bound", "cnnspec/limits.py",
      "if self.left < 0:", "if False:", ("tests/test_limits.py",)),
    R("analysis/dim-bound", "cnnspec/analysis/infer.py",
      "if max(shape) > self.limits.max_dim:", "if False:",
      ("tests/test_limits.py", "tests/test_open_world_frontend.py")),
    R("analysis/reserved-word", "cnnspec/analysis/resolve.py",
      "    if name in ir.RESERVED_WORDS:\n        kind =", "    if False:\n        kind =",
      ("tests/test_errors.py",)),
    R("analysis/call-chain", "cnnspec/analysis/infer.py",
      "err.message = f\"{own} ({', '.join(calls)}{', ' + context if context else ''})\"",
      "err.message = own", ("tests/test_errors.py",)),
    R("analysis/use-root", "cnnspec/analysis/uses.py",
      "if not written.is_relative_to(self.root):\n                raise refuse(outside)",
      "pass", ("tests/test_errors.py",)),
    R("analysis/use-count", "cnnspec/analysis/uses.py",
      "if len(chain) >= self.limits.max_use_depth or len(self.read) >= self.limits.max_uses:",
      "if False:", ("tests/test_errors.py",)),
    R("analysis/own-params", "cnnspec/analysis/combinators/base.py",  # add's layer_scale
      "sum(n.params for n in parts) + sum(count for _, count in own_params),",
      "sum(n.params for n in parts),", ("tests/test_summary.py", "tests/test_specs.py")),
    R("analysis/did-you-mean", "cnnspec/errors.py",
      "return f\" (did you mean '{close[0]}'?)\" if close else \"\"", "return \"\"",
      ("tests/test_errors.py",)),
    # --- language -----------------------------------------------------------------------
    R("language/nesting-bound", "cnnspec/language/parse_cnn.py",
      "if self.paren_level > self.max_nesting or len(self.indent_level) > self.max_nesting:",
      "if False:", ("tests/test_limits.py",)),
    R("language/file-size-bound", "cnnspec/language/parse_cnn.py",
      "if len(text.encode(\"utf-8\", \"surrogatepass\")) > limits.max_file_bytes:",
      "if False:", ("tests/test_limits.py",)),
    R("language/caret", "cnnspec/errors.py",
      "            out.append(\"    \" + \" \" * max(col - 1, 0) + \"^\")\n", "",
      ("tests/test_errors.py",)),
    R("language/escape-controls", "cnnspec/errors.py",
      "return _CONTROL.sub(_escape, text)", "return text", ("tests/test_escapes.py",)),
    # --- cli ----------------------------------------------------------------------------
    R("cli/escaped-stream", "cnnspec/errors.py",
      "self.raw.write(printable(text))", "self.raw.write(text)", ("tests/test_escapes.py",)),
    R("cli/budget-flags", "cnnspec/cli.py",
      "return replace(DEFAULT, **raised)", "return DEFAULT",
      ("tests/test_cli.py", "tests/test_limits.py")),
    R("cli/forward-check", "cnnspec/backends/build.py",
      "if got != tuple(spec.output_shape):", "if False:", ("tests/test_cli.py",)),
    # --- backends -----------------------------------------------------------------------
    R("backends/dot-gate-skip", "cnnspec/analysis/combinators/branches.py",
      "return True  # the input is what the gate multiplies", "return False",
      ("tests/test_graph.py",)),
    R("backends/dot-edge-shape", "cnnspec/backends/dot.py",  # every edge: the input's shape
      "label={_quote(' ' + shape_text(shape))}",
      "label={_quote(' ' + shape_text(self.graph.input_shape))}", ("tests/test_graph.py",)),
    R("backends/dot-box-bound", "cnnspec/backends/dot.py",
      "if count > max_boxes:", "if False:", ("tests/test_graph.py",)),
    R("backends/memory-optimizer-state", "cnnspec/backends/summary.py",
      "weights = graph.params * 4 * (2 + state)", "weights = graph.params * 4 * 2",
      ("tests/test_summary.py",)),
    R("backends/summary-own-row", "cnnspec/backends/summary.py",
      "rows.append(Row(level, path, node.name, shape, shape, node.params, 0))", "pass",
      ("tests/test_summary.py", "tests/test_specs.py")),
    R("backends/codegen-keeps-size", "cnnspec/backends/codegen/blocks.py",
      "same = same and model.keeps_size(literal)", "same = same", ("tests/test_codegen.py",)),
    R("backends/codegen-xavier-init", "cnnspec/backends/codegen/generator.py",
      "if graph.recipe.init == \"xavier\":", "if False:", ("tests/test_codegen.py",)),
    # (Not the network's name: that is an identifier, so escaping it changes no page.)
    R("backends/page-escape", "cnnspec/backends/page.py",
      "<span class=note>{escape(source_name)}</span>", "<span class=note>{source_name}</span>",
      ("tests/test_page.py",)),
    R("backends/page-sync-rows", "cnnspec/backends/page.py",
      "row.hidden = closed.some((prefix) => path.startsWith(prefix));", "row.hidden = false;",
      ("tests/test_page.py",)),
    R("backends/transfer-compressed", "cnnspec/backends/transfer.py",
      "    if packed:\n", "    if False:\n", ("tests/test_transfer.py",)),
    R("backends/transfer-size-bound", "cnnspec/backends/transfer.py",
      "if sum(e.file_size for e in entries) > path.stat().st_size:", "if False:",
      ("tests/test_transfer.py",)),
    R("backends/atomic-write", "cnnspec/atomic.py",  # writes the target in place
      "with atomic_path(path) as tmp, open(tmp, \"wb\") as f:", "with open(path, \"wb\") as f:",
      ("tests/test_atomic.py",)),
    # --- training -----------------------------------------------------------------------
    R("training/modern-label-smoothing", "cnnspec/training/loop.py",
      "        label_smoothing=0.1,\n", "", ("tests/test_train.py",)),
    R("training/run-lock", "cnnspec/training/lock.py",
      "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)", "pass",
      ("tests/test_train_faults.py",)),
    R("training/checkpoint-checksum", "cnnspec/training/checkpoints.py",
      "if _sha256(path) != digest:", "if False:", ("tests/test_train_faults.py",)),
    R("training/resume-same-settings", "cnnspec/training/checkpoints.py",
      "        if old != new:\n            raise CheckpointError(",
      "        if False:\n            raise CheckpointError(", ("tests/test_train_faults.py",)),
    # --- lsp ----------------------------------------------------------------------------
    R("lsp/hover", "cnnspec/lsp/hover.py",
      "    text = analysis.lines\n    word = text.word(pos)\n",
      "    return None\n    text = analysis.lines\n    word = text.word(pos)\n",
      ("tests/test_lsp.py",)),
    R("lsp/completion", "cnnspec/lsp/completion.py",
      "def complete(analysis: Analysis, now: Text, pos: Pos) -> list[Item]:\n",
      "def complete(analysis: Analysis, now: Text, pos: Pos) -> list[Item]:\n    return []\n",
      ("tests/test_lsp.py",)),
    R("lsp/error-way-in", "cnnspec/lsp/diagnostics.py",  # an error in a used file, shown here
      "        if name is None:\n            return pos\n", "", ("tests/test_lsp.py",)),
]  # fmt: skip


def check(removals: list[Removal]) -> None:
    """Every removal's text occurs exactly once in its file; otherwise stop, naming it."""
    names = [r.name for r in removals]
    assert len(names) == len(set(names)), "removal names must differ"
    for r in removals:
        count = (ROOT / r.file).read_text(encoding="utf-8").count(r.old)
        if count != 1:
            sys.exit(f"{r.name}: its text occurs {count} times in {r.file}, not once")
        for test in r.tests:
            if not (ROOT / test.split("::")[0]).is_file():
                sys.exit(f"{r.name}: no test file {test}")


def run(r: Removal, source: Path, timeout: float) -> tuple[str, float]:
    """Apply `r` to a fresh copy of `source` and run its tests there: (result, seconds)."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cnnspec-mutate-") as tmp:
        tree = Path(tmp) / "tree"
        shutil.copytree(source, tree)
        if r.file:  # the baseline changes nothing
            target = tree / r.file
            text = target.read_text(encoding="utf-8")
            target.write_text(text.replace(r.old, r.new, 1), encoding="utf-8")
        # The copy's package, not an installed one, for pytest and any `python -m cnnspec`
        # the tests start.
        env = {**os.environ, "PYTHONPATH": str(tree)}
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                   "-m", "not slow", *r.tests]  # fmt: skip
        try:
            done = subprocess.run(command, cwd=tree, env=env, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", time.monotonic() - start
    # pytest: 0 all passed, 1 a test failed; anything else (a collection error, no tests)
    # is reported as it is, not counted as a kill.
    result = {0: "SURVIVED", 1: "killed"}.get(done.returncode, f"error {done.returncode}")
    return result, time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="run this one (repeat)")
    parser.add_argument("--list", action="store_true", help="list the removals and stop")
    parser.add_argument(
        "--baseline", action="store_true", help="first run every chosen test file unchanged"
    )
    parser.add_argument("--jobs", type=int, default=1, help="removals run at once")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per removal")
    args = parser.parse_args(argv)
    check(REMOVALS)
    chosen = [r for r in REMOVALS if not args.only or r.name in args.only]
    unknown = set(args.only or ()) - {r.name for r in REMOVALS}
    if unknown:
        parser.error(f"no removal named {', '.join(sorted(unknown))}")
    if args.list:
        for r in chosen:
            print(f"{r.name:<36} {r.file}  ->  {' '.join(r.tests)}")
        return 0
    with tempfile.TemporaryDirectory(prefix="cnnspec-mutate-") as tmp:
        # Every removal starts from this snapshot: editing the checkout during a run
        # (adding the test a survivor asks for) changes no result of that run.
        source = Path(tmp) / "tree"
        shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*SKIP))
        if args.baseline:  # a test failing unchanged would count as a kill for every removal
            tests = tuple(dict.fromkeys(t for r in chosen for t in r.tests))
            result, seconds = run(Removal("baseline", "", "", "", tests), source, args.timeout)
            passed = result.replace("SURVIVED", "passed")
            print(f"baseline (nothing removed): {passed}, {seconds:.0f} s", flush=True)
            if result != "SURVIVED":
                return 1
        print("| removal | tests run | result | seconds |\n| --- | --- | --- | ---: |", flush=True)
        outcomes = []
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            results = pool.map(lambda r: run(r, source, args.timeout), chosen)
            for r, (result, seconds) in zip(chosen, results):
                tests = ", ".join(t.removeprefix("tests/") for t in r.tests)
                print(f"| {r.name} | {tests} | {result} | {seconds:.0f} |", flush=True)
                outcomes.append(result)
    survivors = [r.name for r, result in zip(chosen, outcomes) if result != "killed"]
    print(f"\n{len(chosen)} removals, {outcomes.count('killed')} killed; not killed: "
          f"{', '.join(survivors) or 'none'}")  # fmt: skip
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
