"""Time from an edit to its diagnostics in `cnnspec lsp`, for every spec in specs/ and
specs/zoo/: what an editor waits for after each keystroke.

The server runs as an editor runs it, a process on stdio, driven by pygls' client. Each
spec is opened, then edited --edits times (a comment line at its end changes, so every
edit is a valid spec the server parses, resolves and infers in full); the time is from
sending didChange to receiving publishDiagnostics for that version.

    python benchmarks/lsp_latency.py [--edits N]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from lsp_client import Editor, uri_of  # noqa: E402


def specs() -> list[Path]:
    found = sorted((ROOT / "specs").glob("*.cnn")) + sorted((ROOT / "specs").glob("*.yaml"))
    return found + sorted((ROOT / "specs" / "zoo").glob("*.cnn"))


def run() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--edits", type=int, default=15)
    args = parser.parse_args()
    editor = Editor()
    rows, medians = [], []
    try:
        for path in specs():
            text = path.read_text()
            uri = uri_of(path)
            assert editor.open(path, text).diagnostics == (), f"{path} has errors"
            times = []
            for i in range(args.edits):
                edited = f"{text.rstrip()}\n# edit {i}\n"
                sent = time.perf_counter()
                found = editor.change(path, edited)
                assert found.diagnostics == (), f"{path}: {found.diagnostics}"
                times.append(editor.arrived[uri] - sent)
            editor.close_document(path)
            median = statistics.median(times) * 1000
            medians.append(median)
            name = str(path.relative_to(ROOT))
            lines = text.count("\n")
            rows.append(f"| {name} | {lines} | {median:.1f} | {max(times) * 1000:.1f} |")
    finally:
        editor.close()
    print(f"didChange -> publishDiagnostics, {args.edits} edits per spec (ms)\n")
    print("| spec | lines | median | max |")
    print("|---|---:|---:|---:|")
    print("\n".join(rows))
    print(
        f"\nslowest median {max(medians):.1f} ms; median of medians "
        f"{statistics.median(medians):.1f} ms over {len(medians)} specs"
    )


if __name__ == "__main__":
    run()
