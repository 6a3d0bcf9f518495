"""benchmarks/gpu_suite.py: its --smoke run end to end on CPU (so that a change to the
trainer cannot silently break the GPU measurement), and its budget's alarm and skips."""

import importlib.util
import json
import re
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT

SUITE = ROOT / "benchmarks" / "gpu_suite.py"
NETWORKS = ("lenet", "alexnet", "vgg11", "nin", "googlenet", "resnet18", "densenet")


def load_suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", SUITE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_suite"] = module  # where its dataclasses look themselves up
    spec.loader.exec_module(module)
    return module


def positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


@pytest.mark.slow  # the whole suite in a process of its own: tens of seconds on 2 cores
def test_smoke_measures_every_network(data_dir, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(SUITE), "--smoke", "--data-dir", str(data_dir), "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "lenet default: probe" in done.stdout  # progress, as it goes
    report = json.loads((out / "gpu_suite.json").read_text())
    assert report["smoke"] and report["elapsed_s"] < report["budget_s"]
    rows = {row["network"]: row for row in report["rows"]}
    assert tuple(rows) == NETWORKS
    for name, row in rows.items():
        for kind in ("default", "d2l"):
            figures = row[kind]
            assert figures is not None, (name, kind, row["notes"])
            assert positive(figures["examples_per_sec"]), (name, kind)
            assert 0 <= figures["test_acc"] <= 1
            assert figures["mfu"] is None and figures["peak_memory_bytes"] is None  # a CPU
        assert positive(row["ratio"]) and positive(row["macs"])
        assert len(row["default"]["epoch_examples_per_sec"]) == row["epochs"] == 2
    compiled = rows["lenet"]["compiled"]
    assert positive(compiled["examples_per_sec"]) and positive(compiled["first_step_seconds"])
    assert positive(rows["lenet"]["ratio_compiled"])
    assert rows["vgg11"]["compiled"] is None
    assert "compiled: not asked for (--compile-specs)" in rows["vgg11"]["notes"]

    table = (out / "gpu_suite.md").read_text()
    assert table in done.stdout
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    head = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert head[:5] == ["network", "size", "batch", "epochs", "ex/s"]
    body = {line.split("|")[1].strip(): line for line in lines[2:]}
    assert tuple(body) == NETWORKS
    for name, line in body.items():
        cells = dict(zip(head, (c.strip() for c in line.strip("|").split("|"))))
        for column in ("ex/s", "d2l ex/s"):
            assert re.fullmatch(r"[\d,]+", cells[column]), (name, column, cells[column])
        assert re.fullmatch(r"\d+\.\dx", cells["ratio"]), (name, cells["ratio"])
        assert re.fullmatch(r"[01]\.\d{3}", cells["test acc"]), (name, cells["test acc"])
        assert cells["MFU"] == "-"  # no known peak on a CPU
    lenet = dict(zip(head, (c.strip() for c in body["lenet"].strip("|").split("|"))))
    assert re.fullmatch(r"[\d,]+", lenet["ex/s compiled"])
    assert re.fullmatch(r"\d+\.\d s", lenet["first compiled step"])


@pytest.fixture
def suite(tmp_path):
    module = load_suite()
    args = module.parse(["--smoke", "--out", str(tmp_path), "--specs", "lenet"])
    split = module.data.Split(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.zeros(4).long())
    base = module.data.Dataset("tiny", split, split, module.data.CLASSES)
    return module, module.Suite(args, base, torch.device("cpu"), tmp_path)


def test_the_alarm_stops_a_measurement_at_the_deadline(suite, tmp_path):
    module, suite = suite
    net = suite.network("lenet")
    suite.budget.deadline = time.monotonic() + 0.3
    start = time.monotonic()
    suite.measure(net, "default", lambda *args: time.sleep(10))
    assert time.monotonic() - start < 3
    assert suite.rows["lenet"]["notes"][0].startswith("default: stopped by the budget")
    suite.measure(net, "d2l", lambda *args: pytest.fail("ran after the deadline"))
    assert suite.rows["lenet"]["notes"][1] == "d2l: no time left"
    report = json.loads((tmp_path / "gpu_suite.json").read_text())  # written all the same
    assert report["rows"][0]["notes"] == suite.rows["lenet"]["notes"]


def test_a_failure_is_noted_and_the_suite_goes_on(suite):
    module, suite = suite
    net = suite.network("lenet")

    def broken(*args):
        raise RuntimeError("CUDA error: an illegal memory access\nmore detail")

    suite.measure(net, "compiled", broken)
    assert suite.rows["lenet"]["notes"] == [
        "compiled: failed: RuntimeError: CUDA error: an illegal memory access"
    ]


def test_what_would_not_fit_is_skipped_with_the_reason(suite):
    module, suite = suite
    net = suite.network("lenet")
    suite.budget.deadline = time.monotonic() + 100
    assert suite.fits(net, "default", "2 epochs", 50)
    assert not suite.fits(net, "default", "2 epochs", 500)
    assert re.fullmatch(r"default: 2 epochs: ~500 s needed, (99|100) s left",
                        suite.rows["lenet"]["notes"][0])  # fmt: skip


def test_estimates_learn_from_what_was_measured():
    module = load_suite()
    estimates = module.Estimates()
    assert estimates.probe("default", 10) == 0  # nothing measured: the alarm guards it
    estimates.probed("default", 2.0)
    estimates.probed("default", 1.0)
    assert estimates.probe("default", 10) == 2.0  # the longest probe of its kind
    estimates.probed("compiled", 3.0)
    estimates.compile_per_module = 0.5
    assert estimates.probe("compiled", 100) == 50  # compile time grows with the graph
    assert estimates.run("d2l", 10) == 10
    estimates.ran("d2l", 30, 10)  # took three times its estimate
    estimates.ran("d2l", 5, 10)
    assert estimates.run("d2l", 10) == 30  # later estimates take the largest ratio seen
