"""What a checkpoint holds (model, optimizer, RNG and trainer state) and how it is kept:
tensors in safetensors, everything else in JSON, so that it survives a crash.

    RUN/checkpoints/e0003-s000000/model.safetensors      weights and buffers
                                 /optimizer.safetensors  optimizer state tensors
                                 /rng.safetensors        RNG states
                                 /trainer.json           epoch, step, history, settings
    RUN/checkpoints/latest.json   which checkpoint is current, with each file's sha256

Every file is written atomically (temporary file, fsync, rename), and latest.json is
written only once its checkpoint is complete, so a kill at any moment leaves the previous
checkpoint loadable. Before the first checkpoint, latest.json names none (`begin`): a run
killed while writing it starts again from the beginning, where a missing latest.json
would be indistinguishable from a damaged run. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..atomic import atomic_path, write_atomic
from ..errors import CnnspecError
from ..tensors import same_kind
from .run_files import TRAINER, check, check_pointer

LATEST = "latest.json"
KEEP = 2  # checkpoints kept besides the newest


class CheckpointError(CnnspecError):
    """A checkpoint is missing, truncated or corrupt."""


@dataclass
class TrainerState:
    """Where the trainer is: what a resume needs besides tensors."""

    epoch: int = 0  # epochs completed
    step: int = 0  # steps completed in the current epoch
    history: list[dict] = field(default_factory=list)  # one EpochResult per finished epoch
    partial: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # loss, hits, n
    train_seconds: float = 0.0  # of the current epoch, before it was stopped

    @property
    def name(self) -> str:
        """The checkpoint's folder name: sorts in training order."""
        return f"e{self.epoch:04d}-s{self.step:06d}"


def save_state(
    run: Path, model, optimizer, state: TrainerState, config: dict, device: torch.device
) -> Path:
    """Checkpoint everything a resume needs: weights, optimizer, RNG states, `state`, and the
    settings it trained with (`config`)."""
    rng = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    trainer = {**asdict(state), "config": config}
    return save(run, state.name, model.state_dict(), optimizer.state_dict(), rng, trainer)


# Settings a resume may change: they do not alter what is computed.
MAY_CHANGE_ON_RESUME = ("epochs", "progress")


def restore_state(
    run: Path, model, optimizer, device: torch.device, config: dict
) -> TrainerState | None:
    """Load the latest checkpoint of `run` into `model`, `optimizer` and the RNGs; None if
    the run has none yet (it stopped before its first was complete). `config`, the settings
    to go on with, must be those the checkpoint was written with."""
    saved = load(run)
    if saved is None:
        return None
    weights, opt_state, rng, trainer = saved
    _check_same_settings(trainer["config"], config, run)
    load_weights(model, weights, run)
    try:
        optimizer.load_state_dict(opt_state)
    except (RuntimeError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"{run}: the optimizer state does not fit this network ({str(err).splitlines()[0]})"
        ) from None
    torch.set_rng_state(rng["cpu"])
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)
    trainer.pop("config", None)
    return TrainerState(**trainer)


def load_weights(model, weights: dict[str, torch.Tensor], source: Path) -> None:
    """Put `weights` into `model`, or say where they first differ from what it holds."""
    expected = model.state_dict()
    difference = first_difference(weights, expected)
    if difference:
        raise CheckpointError(f"{source}: the weights do not fit this network: {difference}")
    model.load_state_dict(weights)


def first_difference(saved: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> str:
    """The first key, in the network's order, that is missing or shaped otherwise in
    `saved`, or the first one `saved` has and the network lacks; "" when they match."""

    def shape(t: torch.Tensor) -> str:
        return "x".join(map(str, t.shape)) or "a scalar"

    def dtype(t: torch.Tensor) -> str:
        return str(t.dtype).removeprefix("torch.")

    for key, tensor in expected.items():
        if key not in saved:
            return f"'{key}' is in the network, not in the weights"
        if saved[key].shape != tensor.shape:
            return f"'{key}' is {shape(saved[key])} in the weights, {shape(tensor)} in the network"
        if not same_kind(tensor, saved[key]):
            return (
                f"'{key}' holds {dtype(saved[key])} in the weights, {dtype(tensor)} in the network"
            )
    extra = [key for key in saved if key not in expected]
    return f"the weights have '{extra[0]}', which the network lacks" if extra else ""


def weights_in(path: Path) -> dict[str, torch.Tensor]:
    """The model weights of a run folder's latest checkpoint (checksum verified), or of a
    .safetensors file."""
    path = Path(path)
    if path.is_dir():
        latest = path / "checkpoints" / LATEST
        if not latest.is_file():
            raise CheckpointError(f"{path}: not a run folder with a checkpoint (no {latest})")
        pointer = check_pointer(_read_json(latest), latest, CheckpointError)
        if pointer["name"] is None:
            raise CheckpointError(f"{path}: the run has no complete checkpoint yet")
        path = latest.parent / pointer["name"] / "model.safetensors"
        if not path.is_file() or _sha256(path) != pointer["files"]["model.safetensors"]:
            raise CheckpointError(f"{path}: missing, corrupt or truncated (checksum differs)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: cannot read weights ({err})") from None


def _check_same_settings(saved: dict, config: dict, run: Path) -> None:
    """The checkpoint is checksummed and recipe.json is not: the two must agree."""
    for key in sorted(saved.keys() | config.keys()):
        if key in MAY_CHANGE_ON_RESUME:
            continue
        old, new = saved.get(key), config.get(key)
        if isinstance(old, list):
            old = tuple(old)
        if isinstance(new, list):
            new = tuple(new)
        if old != new:
            raise CheckpointError(
                f"{run}: the checkpoint was trained with {key}={old!r}, not {new!r} "
                "(is recipe.json edited or damaged?)"
            )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))


def flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer state_dict as tensors (for safetensors) plus plain data (for JSON)."""
    tensors, plain = {}, {"param_groups": state["param_groups"], "state": {}}
    for index, entries in state["state"].items():
        plain["state"][str(index)] = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value
                plain["state"][str(index)][key] = {"tensor": f"{index}.{key}"}
            else:
                plain["state"][str(index)][key] = value
    return tensors, plain


def unflatten_optimizer(tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    state = {}
    for index, entries in plain["state"].items():
        state[int(index)] = {
            key: tensors[value["tensor"]] if isinstance(value, dict) else value
            for key, value in entries.items()
        }
    return {"state": state, "param_groups": plain["param_groups"]}


def begin(run: Path) -> None:
    """Mark `run` as started with no checkpoint yet, clearing any incomplete ones."""
    root = Path(run) / "checkpoints"
    for folder in _folders(root):
        shutil.rmtree(folder)
    write_atomic(root / LATEST, json.dumps({"name": None, "files": {}}, indent=1))


def has_checkpoint(run: Path) -> bool:
    """Whether `run` holds anything a resume would continue from (or a damaged pointer):
    anything but no checkpoints folder or a pointer that names none."""
    root = Path(run) / "checkpoints"
    if not (root / LATEST).exists():
        return bool(_folders(root))
    try:
        return json.loads((root / LATEST).read_text())["name"] is not None
    except (OSError, ValueError, KeyError, TypeError):
        return True


def save(run: Path, name: str, model: dict, optimizer: dict, rng: dict, trainer: dict) -> Path:
    """Write checkpoint `name` under `run/checkpoints`, then make it the latest. If the disk
    refuses (full, read-only, file too large), the previous latest stays the latest."""
    root = Path(run) / "checkpoints"
    folder = root / name
    try:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        opt_tensors, opt_plain = flatten_optimizer(optimizer)
        _save_tensors(model, folder / "model.safetensors")
        _save_tensors(opt_tensors, folder / "optimizer.safetensors")
        _save_tensors(rng, folder / "rng.safetensors")
        write_atomic(folder / "trainer.json", json.dumps({**trainer, "optimizer": opt_plain}))
        files = {p.name: _sha256(p) for p in sorted(folder.iterdir())}
        write_atomic(root / LATEST, json.dumps({"name": name, "files": files}, indent=1))
    except (OSError, SafetensorError) as err:  # safetensors reports a full disk its own way
        shutil.rmtree(folder, ignore_errors=True)  # frees what it took; never the latest
        reason = getattr(err, "strerror", None) or str(err).rpartition("I/O error: ")[2]
        raise CheckpointError(
            f"{folder}: cannot write the checkpoint ({reason}); "
            f"{root / LATEST} still names the last complete one"
        ) from None
    older = sorted(p for p in root.iterdir() if p.is_dir() and p.name != name)
    for stale in older[: max(len(older) - KEEP, 0)]:
        shutil.rmtree(stale, ignore_errors=True)
    return folder


def load(run: Path) -> tuple[dict, dict, dict, dict] | None:
    """(model state, optimizer state, RNG tensors, trainer state) of the latest checkpoint;
    None when the run has started but saved none (or has no checkpoints folder at all)."""
    root = Path(run) / "checkpoints"
    latest = root / LATEST
    if not latest.is_file():
        if not _folders(root):  # stopped before the trainer began
            return None
        raise CheckpointError(f"{latest}: missing, so the run cannot be resumed")
    pointer = check_pointer(_read_json(latest), latest, CheckpointError)
    if pointer["name"] is None:
        return None
    folder, files = root / pointer["name"], pointer["files"]
    for file, digest in files.items():
        path = folder / file
        if not path.is_file():
            raise CheckpointError(f"{path}: missing from the checkpoint")
        if _sha256(path) != digest:
            raise CheckpointError(f"{path}: corrupt or truncated (checksum differs)")
    try:
        model = load_file(str(folder / "model.safetensors"))
        opt_tensors = load_file(str(folder / "optimizer.safetensors"))
        rng = load_file(str(folder / "rng.safetensors"))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{folder}: unreadable checkpoint ({err})") from None
    trainer = check(
        _read_json(folder / "trainer.json"), TRAINER, folder / "trainer.json", CheckpointError
    )
    if "cpu" not in rng or rng["cpu"].dtype != torch.uint8:
        raise CheckpointError(f"{folder / 'rng.safetensors'}: no CPU random-number state")
    try:
        optimizer = unflatten_optimizer(opt_tensors, trainer.pop("optimizer"))
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise CheckpointError(
            f"{folder}: the optimizer state does not match its tensors ({err!r})"
        ) from None
    return model, optimizer, rng, trainer


def _folders(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: unreadable ({err})") from None
