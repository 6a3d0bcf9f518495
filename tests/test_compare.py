"""`cnnspec compare`: variants side by side, static and trained."""

from __future__ import annotations

import pytest
from conftest import spec_path

import cnnspec
from cnnspec.cli import main

LENETS = ["lenet", "lenet_maxpool", "lenet_bn"]


def cells(out: str) -> dict[str, list[str]]:
    rows = [line.strip("|").split("|") for line in out.splitlines()[2:]]
    return {r[0].strip(): [c.strip() for c in r[1:]] for r in rows}


def test_static_columns_are_inference_figures(capsys):
    assert main(["compare", *(str(spec_path(n)) for n in LENETS)]) == 0
    table = cells(capsys.readouterr().out)
    assert list(table) == LENETS
    for name in LENETS:
        spec = cnnspec.load(spec_path(name))
        params, macs, memory = table[name]
        assert params == f"{spec.params:,}" and macs == f"{spec.macs:,}"
        assert memory == f"{spec.activations * 4 / 1e6:.2f} MB"


@pytest.mark.slow
def test_trained_columns_and_the_plot(data_dir, tmp_path, capsys):
    plot = tmp_path / "variants.png"
    args = ["compare", str(spec_path("lenet")), str(spec_path("lenet_bn")), "--train", "1",
            "--data-dir", str(data_dir), "--limit-train", "256", "--limit-test", "128",
            "--device", "cpu", "--plot", str(plot)]  # fmt: skip
    assert main(args) == 0
    table = cells(capsys.readouterr().out)
    for name in ("lenet", "lenet_bn"):
        examples_per_s, seconds, accuracy = table[name][3:]
        assert float(examples_per_s.replace(",", "")) > 0 and seconds.endswith(" s")
        assert 0.0 <= float(accuracy) <= 1.0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_plot_needs_training(tmp_path, capsys):
    assert main(["compare", str(spec_path("lenet")), "--plot", str(tmp_path / "p.png")]) == 2
    assert "--plot needs --train" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()
