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
