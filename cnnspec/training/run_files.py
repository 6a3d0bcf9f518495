"""The shape of each JSON file a resume reads back (recipe.json, data.json, latest.json,
a checkpoint's trainer.json), checked before anything is taken from it: a damaged or
hand-edited file that is still valid JSON is named in one line rather than failing deep
in torch, or worse, being half-used."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from ..errors import CnnspecError

Rule = Callable[[object], bool]


class RunFileError(CnnspecError):
    """A run folder's file is not what the trainer writes."""


def whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def number(v) -> bool:
    return (whole(v) or isinstance(v, float)) and math.isfinite(v)


def at_least(low: float, strictly: bool = False) -> Rule:
    return lambda v: number(v) and (v > low if strictly else v >= low)


def whole_at_least(low: int) -> Rule:
    return lambda v: whole(v) and v >= low


def flag(v) -> bool:
    return isinstance(v, bool)


def one_of(*values) -> Rule:
    return lambda v: isinstance(v, str) and v in values


def optional(rule: Rule) -> Rule:
    return lambda v: v is None or rule(v)


def list_of(rule: Rule, length: int | None = None) -> Rule:
    return lambda v: (
        isinstance(v, list) and (length is None or len(v) == length) and all(rule(x) for x in v)
    )


def matches(pattern: str) -> Rule:
    return lambda v: isinstance(v, str) and re.fullmatch(pattern, v) is not None


# recipe.json: TrainConfig's fields, each with the values the trainer accepts
RECIPE = {
    "epochs": whole_at_least(1),
    "batch_size": whole_at_least(1),
    "lr": at_least(0, strictly=True),
    "optimizer": one_of("sgd", "adam", "adamw"),
    "momentum": at_least(0),
    "nesterov": flag,
    "weight_decay": at_least(0),
    "schedule": one_of("constant", "onecycle", "cosine"),
    "warmup_epochs": at_least(0),
    "label_smoothing": lambda v: number(v) and 0 <= v < 1,
    "augment": flag,
    "size": optional(list_of(whole_at_least(1), 2)),
    "device": matches(r"cpu|cuda(:\d+)?"),
    "precision": one_of("auto", "bf16", "fp32"),
    "channels_last": optional(flag),
    "compile": flag,
    "seed": whole,
    "progress": flag,
    "sync_bn": flag,
}

# data.json: where a run's images come from (command.DataSource)
DATA = {
    "data_dir": optional(lambda v: isinstance(v, str)),
    "images": optional(lambda v: isinstance(v, str)),
    "limit_train": optional(whole_at_least(1)),
    "limit_test": optional(whole_at_least(1)),
    "masks": optional(lambda v: isinstance(v, str)),
}

CHECKPOINT_NAME = r"e\d{4}-s\d{6}"
CHECKPOINT_FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors", "trainer.json")
SHA256 = matches(r"[0-9a-f]{64}")

EPOCH_RESULT = {
    "epoch": whole_at_least(1),
    **{k: number for k in ("loss", "train_acc", "test_acc", "examples_per_sec")},
    **{k: at_least(0) for k in ("train_seconds", "wall_seconds", "compile_seconds")},
}

TRAINER = {
    "epoch": whole_at_least(0),
    "step": whole_at_least(0),
    "history": list_of(lambda v: _fits(v, EPOCH_RESULT)),
    "partial": list_of(at_least(0), 3),
    "train_seconds": at_least(0),
    "config": lambda v: isinstance(v, dict),  # compared with recipe.json by the caller
    "optimizer": lambda v: (
        isinstance(v, dict)
        and isinstance(v.get("param_groups"), list)
        and isinstance(v.get("state"), dict)
    ),
}


def _fits(value, rules: dict[str, Rule]) -> bool:
    return (
        isinstance(value, dict)
        and value.keys() == rules.keys()
        and all(rule(value[key]) for key, rule in rules.items())
    )


def check(value, rules: dict[str, Rule], path, error: type[CnnspecError] = RunFileError) -> dict:
    """`value` if it is an object with exactly the keys of `rules`, each value passing its
    rule; otherwise `error` naming `path` and the first thing wrong."""
    if not isinstance(value, dict):
        raise error(f"{path}: expected a JSON object, found {type(value).__name__}")
    missing = [k for k in rules if k not in value]
    if missing:
        raise error(f"{path}: '{missing[0]}' is missing")
    extra = [k for k in value if k not in rules]
    if extra:
        raise error(f"{path}: unexpected key '{extra[0]}'")
    for key, rule in rules.items():
        if not rule(value[key]):
            raise error(f"{path}: '{key}' has a value the trainer never writes: {value[key]!r}")
    return value


def check_pointer(value, path, error: type[CnnspecError] = RunFileError) -> dict:
    """latest.json: no checkpoint yet, or one checkpoint's name and each file's sha256."""
    rules = {"name": optional(matches(CHECKPOINT_NAME)), "files": lambda v: isinstance(v, dict)}
    check(value, rules, path, error)
    if value["name"] is None:
        if value["files"]:
            raise error(f"{path}: files listed for no checkpoint")
        return value
    for file in CHECKPOINT_FILES:
        if file not in value["files"]:
            raise error(f"{path}: no checksum for {file}")
        if not SHA256(value["files"][file]):
            raise error(f"{path}: the checksum of {file} is not a sha256")
    extra = sorted(set(value["files"]) - set(CHECKPOINT_FILES))
    if extra:
        raise error(f"{path}: unexpected file '{extra[0]}'")
    return value
