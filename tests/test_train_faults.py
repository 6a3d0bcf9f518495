"""What a user meets when a run goes wrong around the trainer: a run stuck before its first
checkpoint, two trainers on one folder, damaged run files and data, unwritable folders,
bad flags. Each ends in a one-line error or a run that can go on; never a traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from test_train import SMALL, assert_same_weights, model, small_config, weights

from cnnspec.cli import main
from cnnspec.training import checkpoints, data
from cnnspec.training.loop import fit


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


def test_run_killed_in_its_first_checkpoint_restarts_in_place(
    data_dir, small_spec, tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    args = (str(small_spec), "--data-dir", str(data_dir), "--epochs", "1", "--no-progress",
            "--out", str(run))  # fmt: skip
    fail_on_call(monkeypatch, 1, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        cli_train(*args)
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
