"""Training on two processes with torchrun, DDP and gloo on CPU: ranks agree, match a
single process, share one run folder written by rank 0, resume, and fail as one job."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from safetensors.torch import load_file

import cnnspec
from cnnspec.training import data
from cnnspec.training.loop import TrainConfig, fit

pytestmark = pytest.mark.slow  # each test launches torchrun

PLAIN = """
network Plain(input=1x28x28, classes=10):
    f: conv(8, k=3, p=1) relu maxpool(2)
    c: flatten linear(10)
"""

DRIVER = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    import torch
    from safetensors.torch import save_file
    import cnnspec
    from cnnspec.training import checkpoints, data, distributed
    from cnnspec.training import loop as train

    out, mode, data_dir, epochs = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    rank = int(os.environ["RANK"])
    saves = []
    real_save = checkpoints.save
    checkpoints.save = lambda *a, **k: (saves.append(1), real_save(*a, **k))[1]
    if mode == "fail" and rank == 1:
        def broken(*args, **kwargs):
            raise RuntimeError("rank 1 fails on purpose")
        data.DeviceSplit.batch = broken
    torch.manual_seed(0)
    model = cnnspec.load(sys.argv[5]).build()
    config = train.TrainConfig(epochs=epochs, batch_size=32, lr=0.1, progress=False,
                               sync_bn=mode == "syncbn")
    results = train.fit(model, data.fashion_mnist(data_dir), config, out / "run",
                        resume=mode == "resume", group=distributed.join("cpu"))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / f"rank{rank}.safetensors"))
    (out / f"rank{rank}.json").write_text(json.dumps(
        {"saves": len(saves), "loss": [r.loss for r in results]}))
""")


def torchrun(out: Path, mode: str, data_dir: Path, epochs: int, timeout: float = 240):
    out.mkdir(parents=True, exist_ok=True)
    driver, spec = out / "driver.py", out / "plain.cnn"
    driver.write_text(DRIVER)
    spec.write_text(PLAIN)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "--max-restarts", "0", str(driver), str(out), mode, str(data_dir), str(epochs),
         str(spec)],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout, whatever is installed
    )  # fmt: skip
    return result, time.monotonic() - started


@pytest.fixture(scope="module")
def two_ranks(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    result, _ = torchrun(out, "train", data_dir, 2)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_both_ranks_end_with_the_same_weights(two_ranks):
    a, b = (load_file(str(two_ranks / f"rank{r}.safetensors")) for r in (0, 1))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_two_ranks_match_one_process_with_the_same_global_batch(two_ranks, data_dir):
    torch.manual_seed(0)
    model = cnnspec.load(PLAIN).build()
    config = TrainConfig(epochs=2, batch_size=32, lr=0.1, progress=False)
    single = fit(model, data.fashion_mnist(data_dir), config)
    ranked = json.loads((two_ranks / "rank0.json").read_text())["loss"]
    assert ranked == pytest.approx([r.loss for r in single], rel=1e-5)
    distributed = load_file(str(two_ranks / "rank0.safetensors"))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(distributed[key], value, atol=1e-5, rtol=1e-4)


def test_one_run_folder_written_by_rank_zero_only(two_ranks):
    saves = [json.loads((two_ranks / f"rank{r}.json").read_text())["saves"] for r in (0, 1)]
    assert saves == [2, 0]
    run = two_ranks / "run"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "e0001-s000000", "e0002-s000000", "latest.json"]  # fmt: skip


def test_two_ranks_resume_from_a_checkpoint(two_ranks, data_dir, tmp_path):
    import shutil

    out = tmp_path / "resumed"
    shutil.copytree(two_ranks / "run", out / "run")
    result, _ = torchrun(out, "resume", data_dir, 3)
    assert result.returncode == 0, result.stderr[-3000:]
    losses = json.loads((out / "rank0.json").read_text())["loss"]
    first_two = json.loads((two_ranks / "rank0.json").read_text())["loss"]
    assert len(losses) == 3 and losses[:2] == first_two  # history kept, one epoch more
    a, b = (load_file(str(out / f"rank{r}.safetensors")) for r in (0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    whole, _ = torchrun(tmp_path / "whole", "train", data_dir, 3)
    assert whole.returncode == 0, whole.stderr[-3000:]
    reference = load_file(str(tmp_path / "whole" / "rank0.safetensors"))
    for key in reference:
        torch.testing.assert_close(a[key], reference[key], atol=1e-5, rtol=1e-4)


def test_a_failing_rank_fails_the_whole_job_without_hanging(data_dir, tmp_path):
    result, seconds = torchrun(tmp_path, "fail", data_dir, 2, timeout=180)
    assert result.returncode != 0
    assert "rank 1 fails on purpose" in result.stderr
    assert seconds < 120


def test_nproc_relaunches_under_torchrun(data_dir, tmp_path):
    spec = tmp_path / "plain.cnn"
    spec.write_text(PLAIN)
    result = subprocess.run(
        [sys.executable, "-m", "cnnspec", "train", str(spec), "--nproc", "2", "--device", "cpu",
         "--data-dir", str(data_dir), "--epochs", "1", "--no-progress", "--out",
         str(tmp_path / "run")],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("epoch 1/1") == 1  # rank 0 alone prints
    assert "on 2 processes" in result.stdout


def test_sync_bn_on_cpu_is_refused_clearly(data_dir, tmp_path):
    result, _ = torchrun(tmp_path, "syncbn", data_dir, 1)
    assert result.returncode != 0
    assert "--sync-bn needs GPUs: torch's SyncBatchNorm runs on CUDA only" in result.stderr


def test_ctrl_c_under_nproc_stops_every_rank_at_a_checkpoint_with_code_130(data_dir, tmp_path):
    """Ctrl-C reaches torchrun and each rank (the terminal signals the whole group): the
    ranks checkpoint, rank 0 says how to resume, and the command ends as a shell expects."""
    import signal

    spec = tmp_path / "plain.cnn"
    spec.write_text(PLAIN)
    run = tmp_path / "run"
    p = subprocess.Popen(
        [sys.executable, "-m", "cnnspec", "train", str(spec), "--nproc", "2", "--device", "cpu",
         "--data-dir", str(data_dir), "--epochs", "100", "--batch-size", "8", "--no-progress",
         "--out", str(run)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while not list((run / "checkpoints").glob("*/model.safetensors")):
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-3000:]
    assert out.splitlines()[-1].endswith(f"resume with  cnnspec train --resume {run} --nproc 2")
    assert "SignalException" not in err and "Traceback" not in err
