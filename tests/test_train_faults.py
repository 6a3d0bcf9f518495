"""What a user meets when a run goes wrong around the trainer: a run stuck before its first
checkpoint, two trainers on one folder, damaged run files and data, unwritable folders,
bad flags. Each ends in a one-line error or a run that can go on; never a traceback."""

import errno
import gzip
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from safetensors import SafetensorError
from test_train import SMALL, assert_same_weights, model, small_config, weights

import cnnspec
from cnnspec.cli import main
from cnnspec.training import checkpoints, data, run_files
from cnnspec.training.loop import TrainConfig, fit


def cli_train(*args: str) -> int:
    return main(["train", *args])


@pytest.fixture(scope="module")
def one_epoch(data_dir, tmp_path_factory) -> dict:
    run = tmp_path_factory.mktemp("whole") / "run"
    fit(model(), data.fashion_mnist(data_dir), small_config(epochs=1), run)
    return weights(run)


@pytest.fixture
def small_spec(tmp_path) -> Path:
    path = tmp_path / "small.cnn"
    path.write_text(SMALL)
    return path


def fail_on_call(monkeypatch, n: int, error: BaseException) -> None:
    """Make the n-th tensor file written fail, as a kill or a full disk would."""
    real, calls = checkpoints._save_tensors, []

    def save_tensors(tensors, path):
        calls.append(path)
        if len(calls) == n:
            raise error
        real(tensors, path)

    monkeypatch.setattr(checkpoints, "_save_tensors", save_tensors)


# --- a run stuck before its first checkpoint ---------------------------------------------


@pytest.mark.slow
def test_run_killed_in_its_first_checkpoint_resumes_from_the_start(
    data_dir, tmp_path, monkeypatch, one_epoch
):
    run = tmp_path / "run"
    fail_on_call(monkeypatch, 2, KeyboardInterrupt())  # after model.safetensors
    with pytest.raises(KeyboardInterrupt):
        fit(model(), data.fashion_mnist(data_dir), small_config(epochs=1), run)
    assert list((run / "checkpoints").glob("e0001-*/model.safetensors"))  # half a checkpoint
    monkeypatch.undo()
    fit(model(), data.fashion_mnist(data_dir), small_config(epochs=1), run, resume=True)
    assert_same_weights(weights(run), one_epoch)


@pytest.mark.slow
def test_run_killed_in_its_first_checkpoint_restarts_in_place(
    data_dir, small_spec, tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    args = (str(small_spec), "--data-dir", str(data_dir), "--epochs", "1", "--no-progress",
            "--out", str(run))  # fmt: skip
    fail_on_call(monkeypatch, 1, KeyboardInterrupt())
    assert cli_train(*args) == 130  # interrupted, as Ctrl-C would
    monkeypatch.undo()
    assert cli_train(*args) == 0, capsys.readouterr().err  # not "already holds a run"
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["name"] == "e0001-s000000"
    assert cli_train(*args) == 1  # now it does hold one
    assert "already holds a run" in capsys.readouterr().err


def test_a_missing_pointer_beside_checkpoints_is_damage_not_a_fresh_start(data_dir, tmp_path):
    run = tmp_path / "run"
    fit(model(), data.fashion_mnist(data_dir), small_config(epochs=1), run)
    (run / "checkpoints" / "latest.json").unlink()
    with pytest.raises(checkpoints.CheckpointError, match="latest.json: missing"):
        fit(model(), data.fashion_mnist(data_dir), small_config(epochs=2), run, resume=True)
    assert checkpoints.has_checkpoint(run)  # and a fresh start there is refused


def test_a_run_that_never_checkpointed_resumes_to_the_same_weights(data_dir, tmp_path, one_epoch):
    run = tmp_path / "run"
    run.mkdir()  # killed before the trainer began: no checkpoints folder at all
    fit(model(), data.fashion_mnist(data_dir), small_config(epochs=1), run, resume=True)
    assert_same_weights(weights(run), one_epoch)


def test_a_run_killed_before_its_recipe_says_to_start_again(data_dir, small_spec, tmp_path,
                                                            capsys):  # fmt: skip
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(small_spec, run / "spec.cnn")  # new_run got this far, then was killed
    assert cli_train("--data-dir", str(data_dir), "--resume", str(run)) == 1
    assert capsys.readouterr().err == (
        f"{run} never began training (it has no recipe.json); start it again with --out {run}\n"
    )
    assert not checkpoints.has_checkpoint(run)  # which the fresh start checks


# --- two trainers on one folder ----------------------------------------------------------


def test_second_trainer_on_a_run_folder_is_refused_naming_the_holder(
    data_dir, small_spec, tmp_path, capsys
):
    run = tmp_path / "run"
    args = (str(small_spec), "--data-dir", str(data_dir), "--epochs", "1", "--no-progress")
    assert cli_train(*args, "--out", str(run)) == 0
    recipe = (run / "recipe.json").read_text()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from cnnspec.training import lock; "
         "lock.hold(sys.argv[1]); print('held', flush=True); time.sleep(60)", str(run)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        capsys.readouterr()
        for how in ("--out", "--resume"):
            assert cli_train(*args, how, str(run)) == 1
            err = capsys.readouterr().err
            assert f"in use by another trainer (pid {holder.pid})" in err, err
            assert len(err.splitlines()) == 1
        assert (run / "recipe.json").read_text() == recipe  # refused before writing anything
    finally:
        holder.kill()
        holder.wait()
    assert cli_train(*args, "--epochs", "2", "--resume", str(run)) == 0  # the lock died with it


# --- damaged run files that are still valid JSON ------------------------------------------


@pytest.fixture(scope="module")
def finished_run(data_dir, tmp_path_factory) -> Path:
    """A one-epoch run made by the command, copied by each test that damages it."""
    root = tmp_path_factory.mktemp("finished")
    (root / "small.cnn").write_text(SMALL)
    run = root / "run"
    assert cli_train(str(root / "small.cnn"), "--data-dir", str(data_dir), "--epochs", "1",
                     "--no-progress", "--out", str(run)) == 0  # fmt: skip
    return run


def resume_copy(finished_run, data_dir, tmp_path, capsys, damage) -> str:
    """Damage a copy of the finished run, resume it, and return its one-line error."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    damage(run)
    capsys.readouterr()
    code = cli_train(str(run / "spec.cnn"), "--data-dir", str(data_dir), "--epochs", "2",
                     "--no-progress", "--resume", str(run))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1, err
    return err


def edit_json(path: Path, change) -> None:
    value = json.loads(path.read_text())
    path.write_text(json.dumps(change(value)))


def latest_folder(run: Path) -> Path:
    return run / "checkpoints" / json.loads((run / "checkpoints/latest.json").read_text())["name"]


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda v: {**v, "files": list(v["files"])}, "'files' has a value"),
        (lambda v: {**v, "files": None}, "'files' has a value"),
        (lambda v: [v], "expected a JSON object, found list"),
        (lambda v: {**v, "name": "../../elsewhere"}, "'name' has a value"),
        (lambda v: {**v, "extra": 1}, "unexpected key 'extra'"),
        (lambda v: {"name": v["name"]}, "'files' is missing"),
        (lambda v: {"name": None, "files": {"x": 1}}, "files listed for no checkpoint"),
    ],
)
def test_damaged_pointer_is_named(finished_run, data_dir, tmp_path, capsys, change, expected):
    err = resume_copy(finished_run, data_dir, tmp_path, capsys,
                      lambda run: edit_json(run / "checkpoints/latest.json", change))  # fmt: skip
    assert "latest.json: " in err and expected in err, err


def test_a_missing_checksum_is_an_error_not_a_silent_load(finished_run, data_dir, tmp_path,
                                                          capsys):  # fmt: skip
    def damage(run):
        model_file = latest_folder(run) / "model.safetensors"
        raw = model_file.read_bytes()
        model_file.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))  # altered weights
        edit_json(run / "checkpoints/latest.json",
                  lambda v: {**v, "files": {k: h for k, h in v["files"].items()
                                            if k != "model.safetensors"}})  # fmt: skip

    err = resume_copy(finished_run, data_dir, tmp_path, capsys, damage)
    assert "latest.json: no checksum for model.safetensors" in err


@pytest.mark.parametrize(
    "name", ["model.safetensors", "optimizer.safetensors", "rng.safetensors", "trainer.json"]
)
def test_a_flipped_bit_in_any_checkpoint_file_is_refused_on_resume(
    finished_run, data_dir, tmp_path, capsys, name
):
    """Each file of a checkpoint is checked against latest.json's checksum before it is
    read: one flipped bit in a tensor's data would load silently otherwise."""

    def damage(run):
        target = latest_folder(run) / name
        raw = target.read_bytes()
        target.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))

    err = resume_copy(finished_run, data_dir, tmp_path, capsys, damage)
    assert f"{name}: corrupt or truncated (checksum differs)" in err, err


def test_damaged_trainer_state_is_named_even_with_a_matching_checksum(
    finished_run, data_dir, tmp_path, capsys
):
    def damage(run):
        trainer = latest_folder(run) / "trainer.json"
        edit_json(trainer, lambda v: {**v, "step": -3})
        edit_json(run / "checkpoints/latest.json",
                  lambda v: {**v, "files": {**v["files"], "trainer.json":
                                            checkpoints._sha256(trainer)}})  # fmt: skip

    err = resume_copy(finished_run, data_dir, tmp_path, capsys, damage)
    assert "trainer.json: 'step' has a value the trainer never writes: -3" in err


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda v: {}, "'epochs' is missing"),
        (lambda v: [v], "expected a JSON object, found list"),
        (lambda v: {**v, "colour": "red"}, "unexpected key 'colour'"),
        (lambda v: {**v, "batch_size": 0}, "'batch_size' has a value the trainer never writes: 0"),
        (lambda v: {**v, "size": [28]}, "'size' has a value"),
        (lambda v: {**v, "lr": 0.5}, "trained with lr=0.1, not 0.5"),  # valid, but not the run's
    ],
)
def test_damaged_recipe_is_named(finished_run, data_dir, tmp_path, capsys, change, expected):
    err = resume_copy(finished_run, data_dir, tmp_path, capsys,
                      lambda run: edit_json(run / "recipe.json", change))  # fmt: skip
    assert expected in err, err


def test_every_setting_has_a_rule_for_recipe_json():
    assert set(run_files.RECIPE) == {f.name for f in fields(TrainConfig)}


# --- damaged data ------------------------------------------------------------------------


def idx_bytes(shape: tuple[int, ...], body: bytes, dims: int | None = None) -> bytes:
    dims = len(shape) if dims is None else dims
    return struct.pack(">HBB", 0, 0x08, dims) + struct.pack(f">{len(shape)}I", *shape) + body


def damaged_copy(data_dir: Path, tmp_path: Path, name: str, raw: bytes) -> Path:
    """A copy of the small data set with file `name` replaced by gzipped `raw`."""
    root = tmp_path / "data"
    shutil.copytree(data_dir, root)
    (root / name).write_bytes(gzip.compress(raw))
    return root


TRAIN_IMAGES, TRAIN_LABELS = data.FILES["train_images"], data.FILES["train_labels"]


@pytest.mark.parametrize(
    "name, raw, expected",
    [
        (TRAIN_LABELS, idx_bytes((641,), bytes(641)), "641 labels for the 640 images"),
        (TRAIN_LABELS, idx_bytes((640,), bytes([200]) * 640), "label 200 found"),
        (TRAIN_IMAGES, idx_bytes((640, 784), bytes(640 * 784)), "expected 3 dimension(s)"),
        (TRAIN_IMAGES, idx_bytes((640 * 784,), bytes(640 * 784)), "expected 3 dimension(s)"),
        (TRAIN_LABELS, idx_bytes((640, 1), bytes(640)), "expected 1 dimension(s)"),
        (TRAIN_IMAGES, idx_bytes((0, 28, 28), b""), "holds no images"),
        (TRAIN_IMAGES, idx_bytes((640, 0, 28), b""), "images of size 0x28"),
        (TRAIN_IMAGES, idx_bytes((640, 28, 28), bytes(100)), "more than the 35-byte file"),
        (TRAIN_IMAGES, idx_bytes((64000, 2800, 28), b""), "more than the"),  # a lying header
        (TRAIN_IMAGES, idx_bytes((640, 28, 28), bytes(640 * 784 + 9)), "more data than"),
        (TRAIN_IMAGES, b"\x00\x00", "the header is cut short"),
    ],
)
def test_damaged_data_is_one_line_naming_the_file(data_dir, tmp_path, name, raw, expected):
    root = damaged_copy(data_dir, tmp_path, name, raw)
    with pytest.raises(data.DataError) as info:
        data.fashion_mnist(root)
    message = info.value.message
    assert message.startswith(str(root / name)) and expected in message, message
    assert len(message.splitlines()) == 1


def test_damaged_deflate_data_is_a_data_error(data_dir, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(data_dir, root)
    target = root / TRAIN_IMAGES
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 64] = bytes(64)  # the deflate stream, not the header
    target.write_bytes(bytes(raw))
    with pytest.raises(data.DataError, match="cannot read IDX data"):
        data.fashion_mnist(root)


def test_a_gzip_bomb_is_refused_without_inflating_it(data_dir, tmp_path):
    """A small file that inflates far beyond what its header declares: only the declared
    size (and a byte) is ever read."""
    bomb = gzip.compress(idx_bytes((640, 28, 28), bytes(200_000_000)), compresslevel=9)
    root = tmp_path / "data"
    shutil.copytree(data_dir, root)
    (root / TRAIN_IMAGES).write_bytes(bomb)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(data.DataError, match="more data than the 501760 values"):
        data.fashion_mnist(root)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, f"memory grew by {grown_mb:.0f} MB"


# --- folders that cannot be written, disks that fill up ----------------------------------


def test_out_under_a_regular_file_is_one_line(data_dir, small_spec, tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "file" / "run"
    code = cli_train(str(small_spec), "--data-dir", str(data_dir), "--out", str(out))
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1, err
    assert "cannot write the run folder there (Not a directory)" in err


def test_read_only_out_is_one_line(data_dir, small_spec, tmp_path, capsys, monkeypatch):
    def read_only(self, *args, **kwargs):  # root ignores permissions: fake the filesystem
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    code = cli_train(str(small_spec), "--data-dir", str(data_dir), "--out", str(tmp_path / "r"))
    err = capsys.readouterr().err
    assert code == 1 and err.strip().endswith("(Read-only file system)"), err
    assert len(err.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("code, seen_by", [(errno.ENOSPC, "os"), (errno.EFBIG, "os"),
                                            (errno.EFBIG, "safetensors")])  # fmt: skip
def test_full_disk_while_checkpointing_keeps_the_last_checkpoint(
    data_dir, small_spec, tmp_path, capsys, monkeypatch, code, seen_by
):
    run = tmp_path / "run"
    args = (str(small_spec), "--data-dir", str(data_dir), "--no-progress", "--out", str(run))
    assert cli_train(*args, "--epochs", "1") == 0
    error = OSError(code, os.strerror(code))
    if seen_by == "safetensors":  # its own error type, with the OS's words inside
        error = SafetensorError(f"Error while serializing: I/O error: {os.strerror(code)} "
                                f"(os error {code})")  # fmt: skip
    fail_on_call(monkeypatch, 2, error)  # in the next checkpoint
    capsys.readouterr()
    assert cli_train(*args[:-2], "--epochs", "2", "--resume", str(run)) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and os.strerror(code) in err, err
    assert "still names the last complete one" in err
    assert latest_folder(run).name == "e0001-s000000"
    assert not (run / "checkpoints" / "e0002-s000000").exists()  # the space it took, freed
    monkeypatch.undo()
    assert cli_train(*args[:-2], "--epochs", "2", "--resume", str(run)) == 0
    assert latest_folder(run).name == "e0002-s000000"


# --- flags and recipe values --------------------------------------------------------------


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--batch-size", "-5", "must be at least 1, got -5"),
        ("--batch-size", "0", "must be at least 1, got 0"),  # not the recipe's, silently
        ("--limit-train", "0", "must be at least 1, got 0"),
        ("--limit-test", "0", "must be at least 1, got 0"),
        ("--epochs", "-1", "must be at least 1, got -1"),
        ("--lr", "0", "must be a finite number above 0, got 0"),
        ("--resize", "ten", "not a whole number: 'ten'"),
    ],
)
def test_bad_flags_are_refused_when_parsed(small_spec, capsys, flag, value, expected):
    with pytest.raises(SystemExit) as info:
        cli_train(str(small_spec), flag, value)
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"argument {flag}: {expected}")


@pytest.mark.parametrize(
    "setting, expected",
    [
        ("batch=0", "'batch' should be greater than or equal to 1, got 0"),
        ("momentum=-1", "'momentum' should be greater than or equal to 0, got -1"),
        ("lr=0", "'lr' should be greater than 0, got 0"),
        ("epochs=0", "'epochs' should be greater than or equal to 1, got 0"),
        ("weight_decay=-0.5", "'weight_decay' should be greater than or equal to 0"),
        ("resize=0", "'resize' should be greater than or equal to 1, got 0"),
    ],
)
def test_recipe_values_are_checked_with_the_spec(tmp_path, capsys, setting, expected):
    path = tmp_path / "bad.cnn"
    path.write_text(SMALL.replace("train(lr=0.1, epochs=2, batch=32)", f"train({setting})"))
    assert main(["check", str(path)]) == 1
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith(f"{path}:5:7: the train recipe: {expected}"), first


# --- memory: images stay at their stored size ---------------------------------------------


@pytest.mark.parametrize("size", [(64, 64), (224, 224), (20, 36)])
def test_batches_resized_on_the_fly_equal_the_whole_set_resized(data_dir, size):
    split = data.fashion_mnist(data_dir).train
    served = data.on_device(split, size, torch.device("cpu"))
    assert served.images.shape[-2:] == (28, 28)  # held at the stored size
    whole = data.resize(split.images, size).float().div_(255)  # what the trainer held before
    for index in (torch.arange(0, 128), torch.randperm(640)[:97], torch.tensor([639])):
        x, y = served.batch(index)
        assert x.shape[-2:] == size
        assert torch.equal(x, whole[index]) and torch.equal(y, split.labels[index])


# --- usability ---------------------------------------------------------------------------


def test_resume_needs_no_spec_and_refuses_another(data_dir, small_spec, tmp_path, capsys):
    run = tmp_path / "run"
    common = ("--data-dir", str(data_dir), "--no-progress")
    assert cli_train(str(small_spec), *common, "--epochs", "1", "--out", str(run)) == 0
    assert "1 epoch, batch 32" in capsys.readouterr().out  # not "1 epochs"
    other = tmp_path / "other.cnn"
    other.write_text(SMALL.replace("conv(8", "conv(6"))
    assert cli_train(str(other), *common, "--epochs", "2", "--resume", str(run)) == 1
    err = capsys.readouterr().err
    assert err == (f"{other} is not the spec {run} was trained with ({run / 'spec.cnn'}); "
                   "leave SPEC out to resume with the run's own\n")  # fmt: skip
    assert cli_train(*common, "--epochs", "2", "--resume", str(run)) == 0
    assert latest_folder(run).name == "e0002-s000000"
    assert cli_train(*common) == 1
    assert "give a SPEC, or --resume RUN" in capsys.readouterr().err


def test_without_a_terminal_there_are_plain_epoch_lines_and_no_bar(data_dir, capsys):
    fit(model(), data.fashion_mnist(data_dir), small_config(epochs=2, progress=True))
    out, err = capsys.readouterr()
    assert "\r" not in err and "\r" not in out
    assert [line.split()[:2] for line in out.splitlines()] == [["epoch", "1/2"], ["epoch", "2/2"]]


def test_compile_takes_a_runs_weights_or_a_file(data_dir, tmp_path):
    run = tmp_path / "run"
    fit(model(), data.fashion_mnist(data_dir), small_config(epochs=1), run)
    trained = weights(run)
    for source in (run, latest_folder(run) / "model.safetensors"):
        net = cnnspec.compile(SMALL, weights=source)
        assert_same_weights(net.state_dict(), trained)
    with pytest.raises(checkpoints.CheckpointError, match="'f.0.weight' is 8x1x3x3 in the"):
        cnnspec.compile(SMALL.replace("conv(8", "conv(6"), weights=run)
    target = latest_folder(run) / "model.safetensors"
    raw = target.read_bytes()
    target.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    with pytest.raises(checkpoints.CheckpointError, match="checksum differs"):
        cnnspec.compile(SMALL, weights=run)
    with pytest.raises(checkpoints.CheckpointError, match="not a run folder"):
        cnnspec.compile(SMALL, weights=tmp_path)


def test_resume_trains_on_the_runs_own_data_unasked(data_dir, small_spec, tmp_path, capsys,
                                                     monkeypatch):  # fmt: skip
    run = tmp_path / "run"
    limits = ("--limit-train", "320", "--limit-test", "80")
    args = (str(small_spec), "--data-dir", str(data_dir), "--no-progress", *limits)
    assert cli_train(*args, "--epochs", "1", "--out", str(run)) == 0
    monkeypatch.setenv("CNNSPEC_DATA", str(tmp_path / "elsewhere"))  # not looked at
    assert cli_train("--epochs", "2", "--no-progress", "--resume", str(run)) == 0
    out = capsys.readouterr().out
    assert "320 images" in out.splitlines()[-5], out  # the same data, the same limits
    edit_json(run / "data.json", lambda v: {**v, "data_dir": 5})
    assert cli_train("--epochs", "3", "--resume", str(run)) == 1
    assert "data.json: 'data_dir' has a value the trainer never writes: 5" in (
        capsys.readouterr().err
    )


def test_train_honours_the_budget_flags(data_dir, small_spec, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_train(str(small_spec), "--max-params", "100", "--out", str(out)) == 1
    assert "network has more than 100 parameters" in capsys.readouterr().err
    assert not out.exists()  # refused before a run folder was made


@pytest.mark.slow
def test_a_run_keeps_the_files_its_spec_uses_and_resumes_with_them(data_dir, tmp_path, capsys):
    """The run folder holds a copy of the spec: the files it uses are kept beside that copy
    at their places, so a resume reads the same blocks even once the originals are gone."""
    import shutil

    source = tmp_path / "src"
    (source / "lib").mkdir(parents=True)
    blocks = "block unit(c):\n    conv(c, k=3, p=1) relu\n"
    (source / "lib" / "blocks.cnn").write_text(blocks)
    (source / "all.cnn").write_text('use "lib/blocks.cnn"\n')  # a file that only uses others
    body = SMALL.strip().split("\n", 1)[1]  # the network's stages, under another header
    (source / "net.cnn").write_text(
        f'use "all.cnn"\nnetwork Small(input=1x28x28, classes=10):\n    u: unit(2)\n{body}\n'
    )
    run = tmp_path / "run"
    common = ("--data-dir", str(data_dir), "--no-progress", "--limit-train", "64")
    assert cli_train(str(source / "net.cnn"), *common, "--epochs", "1", "--out", str(run)) == 0
    assert (run / "lib" / "blocks.cnn").read_text() == blocks
    shutil.rmtree(source)
    assert cli_train(*common, "--epochs", "2", "--resume", str(run)) == 0, capsys.readouterr()
    assert latest_folder(run).name.startswith("e0002")
    # A used file outside the spec's folder (allowed by --use-root) has no place in the run.
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "b.cnn").write_text("block unit(c):\n    relu\n")
    (tmp_path / "net").mkdir()
    header = "network Small(input=1x28x28, classes=10):\n    u: unit(2)"
    (tmp_path / "net" / "net.cnn").write_text(f'use "../shared/b.cnn"\n{header}\n{body}\n')
    capsys.readouterr()
    args = [str(tmp_path / "net" / "net.cnn"), *common, "--use-root", str(tmp_path)]
    assert cli_train(*args, "--out", str(tmp_path / "run2")) == 1
    assert "from outside its folder" in capsys.readouterr().err
    assert not (tmp_path / "run2").exists()
