"""Another model's weights (torchvision's state_dicts) loaded into a spec by structure."""

from __future__ import annotations

import re

import pytest
import torch
import torchvision
from conftest import ROOT, spec_path

import cnnspec
from cnnspec.backends.transfer import TransferError


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory):
    """A torchvision ResNet-50's weights (random, as no download is possible), saved the
    way torchvision's files are, with batch-norm statistics that are not the defaults."""
    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("weights") / "resnet50.pth"
    torch.save(net.state_dict(), path)
    return path, net


def test_a_backbone_loads_and_new_heads_keep_their_values(resnet50_file):
    path, reference = resnet50_file
    spec = cnnspec.load(spec_path("svhn_resnet50")).with_input((3, 64, 64))
    net = spec.build().eval()
    heads_before = {k: v.clone() for k, v in net.state_dict().items() if ".c1." in k}
    report = cnnspec.transfer(net, path)
    backbone = len(reference.state_dict()) - 2  # all but fc.weight and fc.bias
    assert (report.loaded, report.total) == (backbone, backbone + 10)
    assert "'fc.weight' is 1000x2048 in the weights" in str(report)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in heads_before.items())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = torch.nn.Sequential(*list(reference.children())[:-1])(x).flatten(1)
        assert torch.allclose(net.cnn(x), features, atol=1e-5)


def test_a_whole_network_loads_exactly(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path / "resnet18.pt"
    torch.save({"state_dict": reference.state_dict()}, path)  # wrapped, as some files are
    spec = cnnspec.load(ROOT / "specs" / "zoo" / "resnet18.cnn").with_input((3, 64, 64))
    net = cnnspec.compile(spec.source.name, weights=path).eval()  # compile takes it too
    report = cnnspec.transfer(spec.build(), path)
    assert report.loaded == report.total and report.mismatch == ""
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), reference(x), rtol=1e-4, atol=1e-4)


def test_weights_that_fit_nothing_or_are_no_state_dict_are_one_line_errors(tmp_path):
    net = cnnspec.load(spec_path("lenet")).build()
    cases = {
        "other.pth": lambda p: torch.save({"w": torch.zeros(3, 3)}, p),
        "list.pth": lambda p: torch.save([torch.zeros(1)], p),
        "broken.pth": lambda p: p.write_bytes(b"not a torch file"),
    }
    messages = {
        "other.pth": "nothing fits this network",
        "list.pth": "not a state_dict",
        "broken.pth": "cannot read weights",
    }
    for name, write in cases.items():
        write(tmp_path / name)
        with pytest.raises(TransferError) as info:
            cnnspec.transfer(net, tmp_path / name)
        assert messages[name] in info.value.message
        assert "\n" not in info.value.message


def test_train_starts_from_weights_and_says_how_far_they_went(data_dir, tmp_path, capsys):
    from cnnspec.cli import main

    source = cnnspec.load(spec_path("lenet")).build()
    with torch.no_grad():
        source[0][1].weight.fill_(0.5)  # the first conv: recognisable after loading
    path = tmp_path / "lenet.pth"
    torch.save(source.state_dict(), path)
    args = ["train", str(spec_path("lenet")), "--data-dir", str(data_dir), "--epochs", "1",
            "--no-progress", "--limit-train", "64", "--limit-test", "32", "--lr", "1e-9",
            "--out", str(tmp_path / "run"), "--weights", str(path)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"{path}: loaded 10 of the network's 10 tensors" in out
    trained = cnnspec.compile(spec_path("lenet"), weights=tmp_path / "run")
    assert torch.allclose(trained[0][1].weight, source[0][1].weight, atol=1e-6)  # tiny lr


class _Code:  # pickled by reference: loading it would import and call this module's code
    def __reduce__(self):
        return (print, ("ran",))


def _deflated(path):
    """A state_dict saved by torch, then its entries deflated: 1 MiB of zeros in 4 KiB."""
    import zipfile

    plain = path.with_suffix(".plain")
    torch.save({"0.weight": torch.zeros(4, 16, 64, 64)}, plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w") as out:
        for entry in source.infolist():
            out.writestr(entry.filename, source.read(entry), zipfile.ZIP_DEFLATED)


def _oversized(path):
    """A state_dict saved by torch whose zip directory then says a tensor's entry holds
    1 MiB: more than the whole file, which torch would trust when it reads it."""
    torch.save({"w": torch.ones(W)}, path)
    raw = bytearray(path.read_bytes())
    for at in (m.start() for m in re.finditer(b"PK\x01\x02", raw)):  # directory entries
        name = raw[at + 46 : at + 46 + int.from_bytes(raw[at + 28 : at + 30], "little")]
        if name.endswith(b"/data/0"):
            raw[at + 24 : at + 28] = (1 << 20).to_bytes(4, "little")  # its uncompressed size
    path.write_bytes(raw)


# What a .pth may hold that is no plain weights, each with the words its error says; the
# network's first tensor is a 4x1x3x3 float weight, the shape each tensor here has.
W = (4, 1, 3, 3)
TRICKS = {
    "sparse": (lambda p: torch.save({"w": torch.ones(W).to_sparse()}, p), "sparse_coo tensor"),
    "sparse-csr": (lambda p: torch.save({"w": torch.ones(4, 9).to_sparse_csr()}, p), "sparse_csr"),
    "quantized": (
        lambda p: torch.save({"w": torch.quantize_per_tensor(torch.ones(W), 1, 0, torch.qint8)}, p),
        "quantized tensor",
    ),
    "complex": (lambda p: torch.save({"w": torch.ones(W, dtype=torch.complex64)}, p), "complex64"),
    "bool": (lambda p: torch.save({"w": torch.ones(W, dtype=torch.bool)}, p), "is bool"),
    "whole numbers": (
        lambda p: torch.save({"w": torch.ones(W, dtype=torch.int32)}, p),
        "holds float32 in the network, 'w' holds int32 in the weights",
    ),
    "meta": (lambda p: torch.save({"w": torch.empty(W, device="meta")}, p), "meta device"),
    "code": (lambda p: torch.save({"w": _Code()}, p), "could run code when read; refused"),
    "deflated": (_deflated, "is compressed"),
    "oversized": (_oversized, "its entries claim more bytes than the file holds"),
}


@pytest.mark.parametrize("trick", TRICKS)
def test_weights_that_are_not_plain_tensors_are_refused_everywhere(trick, tmp_path, capsys):
    """Every way in (transfer, compile's weights=, export --weights) refuses the file with
    one line, never a traceback, a silent cast, or torch's advice to allow code to run."""
    from cnnspec.cli import main

    write, words = TRICKS[trick]
    path = tmp_path / "w.pth"
    write(path)
    text = "network T(input=1x8x8, classes=10):\n    s: conv(4, k=3) relu flatten linear(classes)\n"
    spec = tmp_path / "net.cnn"
    spec.write_text(text)
    for attempt in (
        lambda: cnnspec.transfer(cnnspec.compile(text), path),
        lambda: cnnspec.compile(text, weights=path),
    ):
        with pytest.raises(TransferError) as info:
            attempt()
        message = info.value.message
        assert words in message and "\n" not in message, message
        assert "weights_only" not in message
    onnx = tmp_path / "net.onnx"
    assert main(["export", str(spec), "--weights", str(path), "--onnx", str(onnx)]) == 1
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and not onnx.exists()
    assert "ran" not in capsys.readouterr().out


def test_safetensors_of_another_kind_are_refused_not_cast(tmp_path):
    from safetensors.torch import save_file

    net = cnnspec.compile(spec_path("lenet"))
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    first = next(iter(weights))
    weights[first] = weights[first] > 0
    save_file(weights, tmp_path / "w.safetensors")
    with pytest.raises(cnnspec.errors.CnnspecError) as info:
        cnnspec.compile(spec_path("lenet"), weights=tmp_path / "w.safetensors")
    assert f"'{first}' holds bool in the weights, float32 in the network" in info.value.message


def test_the_older_torch_save_form_still_loads(tmp_path):
    net = cnnspec.compile(spec_path("lenet"))
    torch.save(net.state_dict(), tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    report = cnnspec.transfer(cnnspec.compile(spec_path("lenet")), tmp_path / "old.pth")
    assert report.loaded == report.total
