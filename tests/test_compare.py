"""`cnnspec compare`: variants side by side, static and trained."""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import replace

import pytest
from conftest import spec_path

import cnnspec
from cnnspec.cli import main
from cnnspec.errors import CnnspecError
from cnnspec.training import compare

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


def must_not_load(*args, **kwargs):
    raise AssertionError("a usage error must be found before any variant is made")


def test_a_plot_needs_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("cnnspec.cli._load", must_not_load)
    assert main(["compare", str(spec_path("lenet")), "--plot", str(tmp_path / "p.png")]) == 2
    assert "--plot needs --train" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


def test_a_plot_without_matplotlib_says_what_it_needs(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    row = replace(compare.static_row("lenet", cnnspec.load(spec_path("lenet"))), test_acc=0.5)
    with pytest.raises(CnnspecError, match="--plot needs matplotlib, which is not installed"):
        compare.plot([row], tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()


def test_a_sweep_past_the_bound_is_refused_before_any_variant_is_made(
    tmp_path, capsys, monkeypatch
):
    """The count of variants is known from the flags: a billion is refused at once, not
    after the product is built."""
    import time

    from cnnspec.cli import MAX_VARIANTS

    monkeypatch.setattr("cnnspec.cli._load", must_not_load)
    values = ",".join(str(i) for i in range(1, 1001))
    start = time.monotonic()
    args = ["compare", str(spec_path("lenet")), *(["--set", f"c={values}"] * 3)]
    assert main(args) == 2
    assert time.monotonic() - start < 2
    err = capsys.readouterr().err
    assert err == (
        f"cnnspec: compare: 1000 x 1000 x 1000 is 1,000,000,000 variants, more than the "
        f"{MAX_VARIANTS} compared at once; list fewer values\n"
    )
    monkeypatch.undo()  # the bound itself is allowed
    tiny = tmp_path / "tiny.cnn"
    tiny.write_text("network T(input=1x2x2, classes=10):\n    s: flatten linear(classes)\n")
    classes = ",".join(str(i) for i in range(2, 2 + MAX_VARIANTS))
    assert main(["compare", str(tiny), "--set", f"classes={classes}"]) == 0
    assert len(cells(capsys.readouterr().out)) == MAX_VARIANTS


def test_set_with_several_values_sweeps_them(tmp_path, capsys):
    spec = tmp_path / "lenet.cnn"
    spec.write_text(
        "network LeNet(input=1x28x28, classes=10, c1=6):\n"
        "    f: conv(c1, k=5, p=2) sigmoid avgpool(2, s=2) flatten linear(classes)\n"
    )
    assert main(["compare", str(spec), "--set", "c1=6,12", "--set", "classes=10,100"]) == 0
    table = cells(capsys.readouterr().out)
    assert list(table) == [
        "lenet c1=6 classes=10", "lenet c1=6 classes=100",
        "lenet c1=12 classes=10", "lenet c1=12 classes=100",
    ]  # fmt: skip
    for label, (params, _, _) in table.items():
        c1, classes = (int(part.split("=")[1]) for part in label.split()[1:])
        conv = c1 * 25 + c1
        assert params == f"{conv + c1 * 14 * 14 * classes + classes:,}"


def test_every_variant_spec_checks(capsys):
    variants = sorted((spec_path("lenet").parent / "variants").glob("*.cnn"))
    assert variants and main(["compare", *map(str, variants)]) == 0


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

LENET = cnnspec.load(spec_path("lenet"))


@given(st.lists(st.integers(1, 100), min_size=1, max_size=3), st.integers(1, 3))
@settings(max_examples=25, deadline=None, derandomize=True)
def test_variants_are_counted_before_any_is_made(counts, n_specs):
    """However many values each --set lists, compare makes every variant when they are at
    most MAX_VARIANTS, and otherwise none: a usage error of one line, found before the
    combinations are built (1000 values of three names were 10^9 of them)."""
    from cnnspec import cli

    made = []

    def load(path, args, sets=None):
        made.append(sets)
        assert len(made) <= cli.MAX_VARIANTS, "more variants made than the bound"
        return LENET

    sets = [f"p{i}=" + ",".join(str(v) for v in range(n)) for i, n in enumerate(counts)]
    argv = ["compare", *[str(spec_path("lenet"))] * n_specs]
    for assignment in sets:
        argv += ["--set", assignment]
    total = n_specs
    for n in counts:
        total *= n
    err = io.StringIO()
    with (
        pytest.MonkeyPatch.context() as patch,
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        patch.setattr(cli, "_load", load)
        code = main(argv)
    if total <= cli.MAX_VARIANTS:
        assert code == 0 and len(made) == total
    else:
        assert code == 2 and not made
        message = err.getvalue()
        assert message.count("\n") == 1 and f" is {total:,} variants" in message

