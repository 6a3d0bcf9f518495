"""Mutated specs: every spec in specs/, edited at random (byte flips, token deletions and
duplications, inserted keywords, numbers and punctuation). Each must load, or fail with one
CnnspecError positioned inside the file; one that loads must build. A bounded, seeded share
of the campaign `scripts/fuzz.py` runs for as long as it is given."""

import importlib.util
import random
import sys
import time

import pytest
from conftest import ROOT

_spec = importlib.util.spec_from_file_location("fuzz", ROOT / "scripts" / "fuzz.py")
fuzz = sys.modules["fuzz"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)

ROUNDS = 6  # seeded rounds; each mutates every spec in specs/ CASES_PER_SPEC times
CASES_PER_SPEC = 10
BUILD_PARAMS = 2_000_000  # build what checks, up to this size (the rest only checks)


@pytest.mark.parametrize("seed", range(ROUNDS))
def test_mutated_specs_fail_only_with_positioned_errors(seed):
    rng = random.Random(seed)
    start, failures = time.monotonic(), []
    ran = 0
    for _ in range(CASES_PER_SPEC):
        for path in fuzz.SEEDS:
            text = fuzz.mutate(path.read_text(encoding="utf-8"), rng)
            what = fuzz.trial(text, path.suffix.lstrip("."), BUILD_PARAMS)
            ran += 1
            if what:
                failures.append(f"{path.name}: {what}\n--- input ---\n{text}")
    assert ran == CASES_PER_SPEC * len(fuzz.SEEDS)
    assert not failures, f"{len(failures)} of {ran} failed; first:\n{failures[0]}"
    assert time.monotonic() - start < 120


def test_the_oracle_catches_what_it_looks_for(monkeypatch):
    # A traceback, a misplaced position and a multi-line message are all reported.
    good = "network T(input=1x8x8):\n    s: conv(2, k=1)\n"  # 4 parameters
    assert fuzz.trial(good, "cnn", 10) is None
    monkeypatch.setattr(fuzz.cnnspec.Spec, "build", lambda self: 1 / 0)
    assert "build raised" in fuzz.trial(good, "cnn", 10)
    assert fuzz.trial(good, "cnn", 0) is None  # over the build bound: only checked
    monkeypatch.setattr(fuzz.cnnspec, "load", lambda *a, **k: [][0])
    assert "load raised" in fuzz.trial(good, "cnn", 10)
    assert "outside" in fuzz._misplaced(cnnspec_error("x", (3, 1)), "a\n", "cnn")
    assert "outside" in fuzz._misplaced(cnnspec_error("x", (1, 4)), "ab\n", "cnn")
    assert "several lines" in fuzz._misplaced(cnnspec_error("x\ny", (1, 1)), "a\n", "cnn")
    assert fuzz._misplaced(cnnspec_error("x", (1, 3)), "ab\n", "cnn") is None


def test_mutations_change_the_text_and_keep_it_a_string():
    rng = random.Random(0)
    text = (ROOT / "specs" / "lenet.cnn").read_text()
    mutated = [fuzz.mutate(text, rng) for _ in range(50)]
    assert all(isinstance(m, str) for m in mutated)
    assert sum(m != text for m in mutated) >= 45


def cnnspec_error(message, pos):
    from cnnspec.errors import SpecError

    return SpecError(message, pos)


# --- the command-level campaign's generators and oracle --------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1))
def test_generated_specs_load_or_fail_with_a_positioned_error(seed):
    """The generator writes the newer constructs; what it writes loads (or is refused at a
    place inside it, when a value past a bound was drawn) and builds."""
    text = fuzz.fuzz_cases.spec_text(random.Random(seed))
    assert fuzz.trial(text, "cnn", BUILD_PARAMS) is None, text


@settings(max_examples=15, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(sorted(fuzz.KINDS)))
def test_every_case_names_only_files_it_writes(seed, kind, tmp_path_factory):
    case = fuzz.make(kind, seed)
    assert case == fuzz.make(kind, seed)  # a seed reproduces its case
    folder = tmp_path_factory.mktemp("case")
    fuzz.write_files(case, folder)
    for argv in case.commands:
        spec = argv[1]
        assert (folder / spec).is_file(), (kind, seed, argv)


def test_generated_specs_use_the_newer_constructs():
    texts = "\n".join(fuzz.fuzz_cases.spec_text(random.Random(s)) for s in range(60))
    constructs = ["if ", " as i", "for (", "add(", "concat(", "mul(", "outputs:", "select(",
                  "upsample(like=", "crop(like=", "conv_transpose(", "split:"]  # fmt: skip
    assert [c for c in constructs if c not in texts] == []


def run_of(rc=0, out="", err="", seconds=1.0, mb=50.0, argv=("check", "x.cnn")):
    return fuzz.Run(list(argv), rc, out, err, seconds, mb, (20, 512))


def test_the_command_oracle_catches_what_it_looks_for(tmp_path):
    (tmp_path / "x.cnn").write_text("ab\ncd\n")
    held = run_of(rc=1, err="x.cnn:2:3: wrong\n    cd\n      ^\n")
    assert fuzz._run_problems(held, tmp_path) == []
    shown = run_of(rc=1, err="x.cnn:1:1: wrong\n    \ufffd\n    ^\n")  # a file's own U+FFFD
    assert fuzz._run_problems(shown, tmp_path) == []
    broken = {
        "exit code": run_of(rc=-9),
        "traceback": run_of(rc=1, err="Traceback (most recent call last):\n"),
        "control": run_of(out="\x1b[31mred"),
        "not UTF-8": run_of(err=fuzz._text(b"\xed\xa0\x80")),
        "took": run_of(seconds=21),
        "peaked": run_of(mb=600),
        "outside": run_of(rc=1, err="x.cnn:5:1: wrong\n"),
        "caret": run_of(rc=1, err="x.cnn:1:1: wrong\n    ab\n"),
        "one line": run_of(rc=2, err="cnnspec: a\nb\n"),
        "missing after success": run_of(argv=("graph", "x.cnn", "-o", "y.html")),
    }
    for what, run in broken.items():
        assert any(what in p for p in fuzz._run_problems(run, tmp_path)), what
    (tmp_path / "y.html").write_text("<html>")
    half = run_of(argv=("graph", "x.cnn", "-o", "y.html"))
    assert any("not whole" in p for p in fuzz._run_problems(half, tmp_path))
    failed = run_of(rc=1, err="x.cnn:1:1: no\n", argv=("graph", "x.cnn", "-o", "y.html"))
    assert any("exists after a failure" in p for p in fuzz._run_problems(failed, tmp_path))


def test_a_command_is_charged_its_own_peak_not_its_parents(tmp_path):
    """Linux carries a parent's resident size into a forked child's high-water mark; a
    test process holding torch must not push a 40 MB `check` over its bound."""
    held = bytearray(700 << 20)
    held[:: 1 << 12] = b"\1" * len(held[:: 1 << 12])  # touched, so resident
    (tmp_path / "x.cnn").write_text("network N(input=1x8x8):\n    body: conv(4, k=3) relu\n")
    run = fuzz.run(["check", "x.cnn"], tmp_path)
    assert run.rc == 0, run.err
    assert 10 < run.mb < 300, run.mb
    del held


@settings(max_examples=3, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["mutate", "use"]))
def test_commands_on_generated_cases_keep_their_bounds(seed, kind):
    """A few of the campaign's cases, each run in its own process under the bounds of time
    and memory (fuzz.BOUNDS): every property holds, the bounds included."""
    case = fuzz.make(kind, seed)
    assert fuzz.execute(case) == []
    for run in case.runs:
        assert run.seconds <= run.bound[0] and run.mb <= run.bound[1], run.argv
