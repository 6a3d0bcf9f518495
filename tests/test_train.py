"""The trainer on CPU, with small synthetic Fashion-MNIST-format data: learning, run
folders, exact resume, and every fault path (kill, SIGTERM, NaN, OOM, corrupt files)."""

import gzip
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, spec_path, synthetic
from safetensors.torch import load_file

import cnnspec
from cnnspec.training import checkpoints, data, loop
from cnnspec.training.command import TrainRequest, config_for
from cnnspec.training.loop import TrainConfig, TrainError, fit, modern

SMALL = """
network Small(input=1x28x28, classes=10):
    f: conv(8, k=3, p=1) batchnorm relu maxpool(2) dropout(0.2)
    c: flatten linear(10)
train(lr=0.1, epochs=2, batch=32)
"""


def small_config(**overrides) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 32, "lr": 0.1, "progress": False,
                          "seed": 0, **overrides})  # fmt: skip


def model(text: str = SMALL):
    torch.manual_seed(0)
    return cnnspec.load(text).build()


def weights(run: Path) -> dict:
    pointer = json.loads((run / "checkpoints" / "latest.json").read_text())
    return load_file(str(run / "checkpoints" / pointer["name"] / "model.safetensors"))


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# --- data ---------------------------------------------------------------------------------


def test_missing_data_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.delenv("CNNSPEC_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(data.DataError) as info:
        data.fashion_mnist()
    message = info.value.message
    for place in ("debian", "cache"):
        assert str(tmp_path / place) in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_a_named_data_folder_is_the_only_place_looked(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNSPEC_DATA", str(data_dir))
    assert data.find_fashion_mnist(None) == data_dir
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(data_dir / data.FILES["train_images"], partial)
    file = tmp_path / "file"
    file.write_text("")
    states = {partial: "not found in {} (--data-dir): it lacks train-labels",
              tmp_path / "absent": ": {} (--data-dir) does not exist;",
              file: ": {} (--data-dir) is not a folder;"}  # fmt: skip
    for named, state in states.items():  # never falls through to another place
        with pytest.raises(data.DataError) as info:
            data.find_fashion_mnist(named)
        message = info.value.message
        assert state.format(named) in message and "\n" not in message, message
        assert message.endswith(data.GET_IT)  # and how to get the data
    monkeypatch.setenv("CNNSPEC_DATA", str(partial))
    with pytest.raises(data.DataError, match=r"\(CNNSPEC_DATA\): it lacks train-labels"):
        data.find_fashion_mnist(None)


def test_idx_files_read_back_and_truncation_is_named(data_dir, tmp_path):
    dataset = data.fashion_mnist(data_dir)
    assert dataset.train.images.shape == (640, 1, 28, 28)
    assert dataset.train.images.dtype == torch.uint8 and dataset.test.labels.shape == (160,)
    broken = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress((data_dir / broken.name).read_bytes())
    broken.write_bytes(gzip.compress(raw[:1000]))
    with pytest.raises(data.DataError, match=str(broken)):
        data.read_idx(broken)


def test_character_strips():
    images, labels = synthetic(200, 3)
    split = data.strips(data.Split(images.unsqueeze(1), labels.long()), heads=6, seed=0)
    assert split.images.shape == (200, 3, 64, 128) and split.labels.shape == (200, 6)
    counts = (split.labels != data.NO_ITEM).sum(1)
    assert counts.min() >= 1 and counts.max() <= 6 and len(set(counts.tolist())) > 3
    # a position with no item is blank, and items fill the leading positions
    side = 128 // 6
    for i in range(20):
        for slot in range(6):
            patch = split.images[i, 0, :, slot * side : (slot + 1) * side]
            assert (patch.sum() == 0) == (split.labels[i, slot] == data.NO_ITEM)
    assert ((split.labels[:, 1:] != data.NO_ITEM) <= (split.labels[:, :-1] != data.NO_ITEM)).all()


def test_image_folder(tmp_path):
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(5):
            value = 40 if label == "cat" else 200
            Image.new("RGB", (12, 10 + i), (value,) * 3).save(tmp_path / label / f"{i}.png")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    dataset = data.image_folder(tmp_path, (16, 16), 1, test_fraction=0.2)
    assert dataset.classes == ("cat", "dog")
    assert dataset.train.images.shape == (8, 1, 16, 16) and len(dataset.test) == 2
    assert set(dataset.train.labels.tolist()) == {0, 1}
    means = {int(label): float(dataset.train.images[dataset.train.labels == label].float().mean())
             for label in (0, 1)}  # fmt: skip
    assert abs(means[0] - 40) < 1 and abs(means[1] - 200) < 1
    (tmp_path / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(data.DataError, match="broken.png: cannot decode image"):
        data.image_folder(tmp_path, (16, 16), 1)


# --- training -------------------------------------------------------------------------------


def test_training_learns_and_fills_the_run_folder(data_dir, tmp_path):
    run = tmp_path / "run"
    lines = []
    results = fit(model(), data.fashion_mnist(data_dir), small_config(epochs=3), run,
                  report=lines.append)  # fmt: skip
    assert len(results) == 3 and results[-1].train_acc > 0.6 and results[-1].test_acc > 0.5
    assert results[-1].loss < results[0].loss
    assert lines[0].startswith("epoch 1/3  loss ") and "train acc" in lines[0]
    assert lines[0].endswith(" ex/s")
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "e0001-s000000", "e0002-s000000", "e0003-s000000", "latest.json"]  # fmt: skip


def test_without_matplotlib_training_goes_on_without_the_plot(data_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    run = tmp_path / "run"
    lines = []
    base = data.fashion_mnist(data_dir).limit(64, 32)
    results = fit(model(), base, small_config(epochs=2), run, report=lines.append)
    assert len(results) == 2
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert not (run / "curves.png").exists()
    notes = [line for line in lines if "matplotlib" in line]
    assert notes == ["matplotlib is not installed, so curves.png is not drawn "
                     "(pip install matplotlib)"]  # fmt: skip


@pytest.mark.slow
def test_resume_is_bitwise_exact(data_dir, tmp_path):
    dataset = data.fashion_mnist(data_dir)
    fit(model(), dataset, small_config(epochs=4), tmp_path / "whole")
    fit(model(), dataset, small_config(epochs=2), tmp_path / "split")
    resumed = fit(model(), dataset, small_config(epochs=4), tmp_path / "split", resume=True)
    assert [r.epoch for r in resumed] == [1, 2, 3, 4]
    assert_same_weights(weights(tmp_path / "whole"), weights(tmp_path / "split"))


def test_modern_recipe_and_schedules_train(data_dir, tmp_path):
    config = modern(small_config(epochs=2, lr=0.05))
    assert config.augment and config.momentum == 0.9 and config.schedule == "onecycle"
    results = fit(model(), data.fashion_mnist(data_dir), config, tmp_path / "run")
    assert all(r.loss == r.loss for r in results)  # finite: no NaN
    # above chance (0.1); crops move the synthetic class bars, so it learns slowly here
    assert results[-1].train_acc > 0.15


def test_modern_recipe_smooths_the_labels_of_every_step(data_dir, monkeypatch):
    """`--recipe modern` asks for label smoothing 0.1, and each training step's loss uses
    it (the spec's own recipe: none)."""
    spec = cnnspec.load(SMALL)
    for recipe, smoothing in (("modern", 0.1), ("spec", 0.0)):
        config = config_for(spec, TrainRequest(recipe=recipe, device="cpu", progress=False))
        assert config.label_smoothing == smoothing
    # smoothing changes the loss: a confident right answer still costs something
    out, y = torch.tensor([[9.0, 0.0, 0.0]]), torch.tensor([0])
    plain, _ = loop._loss_and_hits(out, y, 0.0)
    smoothed, _ = loop._loss_and_hits(out, y, 0.1)
    assert smoothed > plain + 0.1
    seen = []
    cross_entropy = loop.F.cross_entropy

    def recording(*args, **kwargs):
        if torch.is_grad_enabled():  # a training step, not the test set's scoring
            seen.append(kwargs.get("label_smoothing", 0.0))
        return cross_entropy(*args, **kwargs)

    monkeypatch.setattr(loop.F, "cross_entropy", recording)
    fit(model(), data.fashion_mnist(data_dir), modern(small_config(epochs=1)))
    assert len(seen) == 640 // 32 and set(seen) == {0.1}  # every step


def test_multi_head_model_trains_on_strips(data_dir, tmp_path):
    spec = cnnspec.load(spec_path("svhn_multihead"))
    base = data.fashion_mnist(data_dir)
    strips = data.Dataset("strips", data.strips(base.train, 6, 0), data.strips(base.test, 6, 1),
                          base.classes)  # fmt: skip
    torch.manual_seed(0)
    results = fit(spec.build(), strips, small_config(epochs=2, lr=0.005, optimizer="adam"),
                  tmp_path / "run")  # fmt: skip
    assert results[-1].loss < results[0].loss and 0 < results[-1].train_acc <= 1


def test_nan_loss_names_epoch_and_step_and_saves_nothing(data_dir, tmp_path):
    with pytest.raises(TrainError) as info:
        fit(model(), data.fashion_mnist(data_dir), small_config(lr=float("inf")), tmp_path / "run")
    assert "NaN or infinite at epoch 1, step" in info.value.message
    assert not checkpoints.has_checkpoint(tmp_path / "run")


def test_out_of_memory_suggests_a_smaller_batch(data_dir, monkeypatch):
    net = model()

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(net, "forward", oom)
    with pytest.raises(TrainError, match="ran out of memory at batch size 32; try --batch-size 16"):
        fit(net, data.fashion_mnist(data_dir), small_config())


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_corrupt_checkpoint_is_named_never_a_fresh_start(data_dir, tmp_path, damage):
    run = tmp_path / "run"
    fit(model(), data.fashion_mnist(data_dir), small_config(epochs=1), run)
    target = next((run / "checkpoints").glob("e0001-*")) / "model.safetensors"
    raw = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        target.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    else:
        target.unlink()
    with pytest.raises(checkpoints.CheckpointError) as info:
        fit(model(), data.fashion_mnist(data_dir), small_config(epochs=2), run, resume=True)
    assert str(target) in info.value.message


def test_checkpoint_of_another_network_is_refused(data_dir, tmp_path):
    run = tmp_path / "run"
    fit(model(), data.fashion_mnist(data_dir), small_config(epochs=1), run)
    other = SMALL.replace("conv(8", "conv(6")
    with pytest.raises(checkpoints.CheckpointError) as info:
        fit(model(other), data.fashion_mnist(data_dir), small_config(), run, resume=True)
    assert info.value.message == (
        f"{run}: the weights do not fit this network: "
        "'f.0.weight' is 8x1x3x3 in the weights, 6x1x3x3 in the network"
    )


# --- the command, in its own process ------------------------------------------------------


def cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cnnspec", "train", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, **kwargs)  # fmt: skip


def wait_for_checkpoint(run: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not checkpoints.has_checkpoint(run):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def small_spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "small.cnn"
    path.write_text(SMALL)
    return path


@pytest.fixture(scope="module")
def uninterrupted(small_spec, data_dir, tmp_path_factory) -> dict:
    run = tmp_path_factory.mktemp("whole") / "run"
    p = cli(str(small_spec), "--data-dir", str(data_dir), "--epochs", "6", "--batch-size", "8",
            "--out", str(run), "--no-progress", "--device", "cpu")  # fmt: skip
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert out.splitlines()[-2].startswith("loss ")  # d2l's closing lines
    assert "examples/sec on cpu" in out.splitlines()[-1]
    return weights(run)


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_stopped_run_resumes_to_the_same_weights(how, small_spec, data_dir, tmp_path,
                                                 uninterrupted):  # fmt: skip
    run = tmp_path / "run"
    args = (str(small_spec), "--data-dir", str(data_dir), "--batch-size", "8", "--no-progress",
            "--device", "cpu")  # fmt: skip
    p = cli(*args, "--epochs", "6", "--out", str(run))
    wait_for_checkpoint(run, p)
    p.send_signal(how)
    out, err = p.communicate(timeout=120)
    if how == signal.SIGKILL:
        assert p.returncode == -signal.SIGKILL
    else:  # a clean stop, with a checkpoint at the step it reached, and no closing figures
        assert p.returncode == 128 + how, err
        last = out.splitlines()[-1]
        assert re.fullmatch(
            rf"stopped by {how.name} at epoch \d, step \d+; a checkpoint holds it: "
            rf"resume with  cnnspec train --resume {re.escape(str(run))}",
            last,
        ), last
        assert "examples/sec" not in out
    assert "Traceback" not in err
    checkpoints.load(run)  # whatever the moment, the latest checkpoint loads
    p = cli(*args, "--resume", str(run))
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert_same_weights(weights(run), uninterrupted)


def test_missing_data_is_one_clean_message_from_the_command(tmp_path, monkeypatch, capsys,
                                                             small_spec):  # fmt: skip
    from cnnspec.cli import main

    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setenv("CNNSPEC_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["train", str(small_spec), "--data-dir", str(tmp_path / "flag")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Fashion-MNIST: {tmp_path / 'flag'} (--data-dir) does not exist")
    assert len(err.splitlines()) == 1 and "apt-get install dataset-fashion-mnist" in err


def test_an_images_folder_that_cannot_serve_says_what_it_is_and_wants(tmp_path):
    (tmp_path / "file").write_text("")
    (tmp_path / "flat").mkdir()
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    states = {"absent": "does not exist", "file": "is not a folder",
              "flat": "holds no sub-folder", "empty": "no images found"}  # fmt: skip
    for name, state in states.items():
        with pytest.raises(data.DataError) as info:
            data.image_folder(tmp_path / name, (8, 8), 1)
        message = info.value.message
        assert message.startswith(f"{tmp_path / name} (--images)") and state in message
        assert message.endswith(data.IMAGES_LAYOUT) and "\n" not in message


@pytest.mark.slow
def test_training_size_is_checked_against_the_network(data_dir, tmp_path):
    args = ["--data-dir", str(data_dir), "--epochs", "1", "--no-progress", "--limit-train",
            "64", "--limit-test", "32", "--out"]  # fmt: skip
    p = cli(str(spec_path("alexnet")), *args, str(tmp_path / "a"), "--resize", "28")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1
    expected = f"{spec_path('alexnet')}:6:34: AlexNet does not accept 1x28x28 training images: "
    assert err.startswith(expected + "maxpool shrinks the height to 0"), err
    p = cli(str(spec_path("resnet18")), *args, str(tmp_path / "r"), "--batch-size", "32")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert "at 1x28x28" in out  # the recipe's size, re-inferred: global pooling copes


def first_conv_outputs(net) -> set:
    """The (dtype, channels_last?) pairs of the first convolution's output (its 1-channel
    input is both layouts at once)."""
    seen = set()

    def hook(module, args, out):
        seen.add((out.dtype, out.is_contiguous(memory_format=torch.channels_last)))

    net.f[0].register_forward_hook(hook)
    return seen


def test_gpu_code_path_trains_on_cpu(data_dir):
    """The GPU's path, exercised where tests run: bf16 autocast and channels_last, and the
    network still learns. By default a CPU trains in fp32 and NCHW, as d2l does."""
    net = model()
    seen = first_conv_outputs(net)
    config = small_config(precision="bf16", channels_last=True)
    results = fit(net, data.fashion_mnist(data_dir), config, report=lambda line: None)
    assert seen == {(torch.bfloat16, True)}
    assert results[-1].loss < results[0].loss and results[-1].train_acc > 0.5
    net = model()
    seen = first_conv_outputs(net)
    fit(net, data.fashion_mnist(data_dir), small_config(epochs=1), report=lambda line: None)
    assert seen == {(torch.float32, False)}


def test_unknown_precision_is_refused(data_dir):
    with pytest.raises(TrainError, match="unknown precision 'fp8' \\(auto, bf16 or fp32\\)"):
        fit(model(), data.fashion_mnist(data_dir), small_config(precision="fp8"))


def test_compiled_training_reports_compile_time_apart(data_dir):
    full = data.fashion_mnist(data_dir)
    tiny = data.Dataset("tiny", full.train.limit(96), full.test.limit(32), full.classes)
    lines = []
    results = fit(model(), tiny, small_config(epochs=1, compile=True), report=lines.append)
    assert lines[0].startswith("torch.compile: first step took ")
    assert results[0].compile_seconds > 0
    assert results[0].train_seconds < results[0].wall_seconds


@pytest.mark.parametrize(
    "network, message",
    [
        ("Few(input=1x28x28)", "Few gives 5 class scores, but fashion-mnist has 10 classes"),
        ("Few(input=1x28x28, classes=10)", "Few declares classes=10 but gives 5 class scores"),
    ],
)
def test_scores_that_miss_classes_are_refused_before_a_run(data_dir, tmp_path, network, message):
    """Fewer scores than the data's classes ended in cross-entropy's IndexError mid-run;
    declared classes the last layer ignores trained on another number silently."""
    spec = tmp_path / "few.cnn"
    spec.write_text(f"network {network}:\n    s: conv(4, k=3) gap flatten linear(5)\n")
    run = tmp_path / "r"
    p = cli(str(spec), "--data-dir", str(data_dir), "--epochs", "1", "--out", str(run))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1 and err.startswith(f"{spec}:2:33: {message}"), err  # linear(5)
    assert "Traceback" not in err and not run.exists()


@pytest.mark.parametrize("scores, note", [(10, True), (2, False)])
def test_more_scores_than_classes_train_with_a_note(scores, note, tmp_path, capsys):
    """More scores than the data's classes train (no label reaches the others), but most
    often the data did not follow `classes=`: the trainer says so once, at the start."""
    from PIL import Image

    from cnnspec.cli import main

    images = tmp_path / "images"
    for label, value in (("cat", 40), ("dog", 200)):
        (images / label).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (8, 8), value + i).save(images / label / f"{i}.png")
    spec = tmp_path / "few.cnn"
    layers = f"conv(4, k=3) gap flatten linear({scores})"
    spec.write_text(f"network Few(input=1x8x8):\n    s: {layers}\n")
    argv = ["train", str(spec), "--images", str(images), "--epochs", "1", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    message = "note: Few gives 10 class scores and images has 2 classes; scores 2 to 9 are never"
    assert (message in out) is note, out


def test_an_image_folder_refuses_a_network_of_other_than_1_or_3_channels(tmp_path, capsys):
    from PIL import Image

    from cnnspec.cli import main

    images = tmp_path / "images"
    for label in ("cat", "dog"):
        (images / label).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8)).save(images / label / f"{i}.png")
    spec = tmp_path / "four.cnn"
    spec.write_text("network Four(input=4x8x8):\n    s: conv(4, k=3) gap flatten linear(2)\n")
    run = tmp_path / "run"
    argv = ["train", str(spec), "--images", str(images), "--epochs", "1", "--out", str(run)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Four takes 4-channel images, but images from a folder (--images) are read as 1 " in err
    assert not run.exists()


def test_heads_that_miss_the_strips_classes_say_what_the_strips_are(data_dir, tmp_path):
    spec = tmp_path / "multi.cnn"
    spec.write_text(
        "network Multi(input=3x28x28):\n    s: conv(4, k=3) gap flatten\n"
        "    h:\n        heads:\n            main: linear(10)\n            aux: linear(10)\n"
    )
    run = tmp_path / "r"
    p = cli(str(spec), "--data-dir", str(data_dir), "--epochs", "1", "--out", str(run))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1 and err.startswith(
        f"{spec}:1:9: Multi gives 2 outputs (10, 10 scores); cnnspec train fits several "
        "outputs as heads reading strips of up to 2 Fashion-MNIST items (3-channel images), "
        "each head scoring 11 classes"
    ), err
    assert not run.exists()


def test_channel_mismatch_between_spec_and_data_is_refused(data_dir, tmp_path):
    spec = tmp_path / "rgb.cnn"
    spec.write_text("network RGB(input=3x28x28):\n    s: conv(4, k=3) gap flatten linear(10)\n")
    p = cli(str(spec), "--data-dir", str(data_dir), "--epochs", "1", "--out", str(tmp_path / "r"))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1
    assert err.startswith(f"{spec}:1:13: RGB takes 3-channel images but the data has 1 channel")
