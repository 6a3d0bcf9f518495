"""What `cnnspec train` does: from a spec and its flags to a trained run folder.

RUN/spec.cnn (or .yaml)   the spec as given
RUN/recipe.json           the training settings actually used
RUN/metrics.jsonl         one line per epoch
RUN/curves.png            loss and accuracies per epoch
RUN/checkpoints/          see checkpoint.py
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ..atomic import write_atomic
from ..errors import CnnspecError
from ..spec import Spec
from . import data, distributed
from .loop import TrainConfig, TrainError, fit, modern


def config_for(spec: Spec, args) -> TrainConfig:
    """The spec's recipe, overridden by flags."""
    recipe = spec.recipe
    size = args.resize or recipe.resize
    config = TrainConfig(
        epochs=args.epochs or recipe.epochs,
        batch_size=args.batch_size or recipe.batch,
        lr=args.lr or recipe.lr,
        optimizer=recipe.optimizer,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        size=(size, size) if size else tuple(spec.input_shape[1:]) or None,
        device=args.device or ("cuda" if torch.cuda.is_available() else "cpu"),
        precision=args.precision,
        compile=args.compile,
        seed=args.seed,
        progress=not args.no_progress,
        sync_bn=args.sync_bn,
    )
    return modern(config) if args.recipe == "modern" else config


def at_input_size(spec: Spec, channels: int, size: tuple[int, int]) -> Spec:
    """The spec re-inferred for the images it will be trained on, if they differ from its
    declared input (the seeds train ResNet-18 on 28x28 while printing 224x224 shapes)."""
    shape = (channels, *size)
    if shape == tuple(spec.input_shape):
        return spec
    if channels != spec.input_shape[0]:  # a different first layer: not what the spec says
        raise TrainError(
            f"{spec.name} takes {spec.input_shape[0]}-channel images but the data has "
            f"{channels} channel{'s' if channels != 1 else ''}; change the spec's input or "
            "train on other images (--images DIR)",
            spec.ir.network.keypos.get("input", spec.ir.network.pos),
            spec.source,
        )
    try:
        return spec.with_input(shape)
    except CnnspecError as err:
        raise TrainError(
            f"{spec.name} does not accept {'x'.join(map(str, shape))} training images: "
            f"{err.message}",
            err.pos,
            spec.source,
        ) from None


def dataset_for(spec: Spec, args) -> data.Dataset:
    if args.images:
        c, h, w = spec.input_shape
        return data.image_folder(args.images, (h, w), c, seed=args.seed)
    base = data.fashion_mnist(args.data_dir).limit(args.limit_train, args.limit_test)
    heads = spec.output_shape
    if heads and isinstance(heads[0], tuple):  # several heads: compose character strips
        _, h, w = spec.input_shape
        return data.Dataset(
            "fashion-mnist strips",
            data.strips(base.train, len(heads), args.seed, h, w),
            data.strips(base.test, len(heads), args.seed + 1, h, w),
            (*base.classes, "none"),
        )
    return base


def new_run(spec: Spec, out: str | None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    stem = Path(spec.source.name).stem if spec.source.name != "<string>" else spec.name
    run = Path(out) if out else Path("runs") / f"{stem}-{stamp}"
    if (run / "checkpoints").exists():
        raise TrainError(f"{run} already holds a run; use --resume {run} or another --out")
    run.mkdir(parents=True, exist_ok=True)
    suffix = Path(spec.source.name).suffix or ".cnn"
    write_atomic(run / f"spec{suffix}", spec.source.text)
    return run


def train(spec: Spec, args) -> int:
    if args.resume:
        run = Path(args.resume)
        try:
            saved = json.loads((run / "recipe.json").read_text())
        except (OSError, ValueError) as err:
            raise TrainError(f"{run / 'recipe.json'}: cannot read the run's recipe ({err})") \
                from None  # fmt: skip
        saved["size"] = tuple(saved["size"]) if saved["size"] else None
        config = TrainConfig(**{**saved, "epochs": args.epochs or saved["epochs"],
                                "progress": not args.no_progress})  # fmt: skip
    else:
        config = config_for(spec, args)
    group = distributed.join(torch.device(config.device).type)
    main = group is None or group.main
    say = print if main else (lambda *a, **k: None)
    dataset = dataset_for(spec, args)
    channels = dataset.train.images.shape[1]
    size = config.size or tuple(dataset.train.images.shape[-2:])
    trained = at_input_size(spec, channels, size)
    if not args.resume:  # rank 0 names the folder (its name has the time in it)
        run = distributed.broadcast(new_run(spec, args.out) if main else None, group)
    if main:
        recipe = asdict(replace(config, size=size))
        write_atomic(run / "recipe.json", json.dumps(recipe, indent=1))
    distributed.barrier(group)
    torch.manual_seed(config.seed)
    model = trained.build()
    ranks = f" on {group.world} processes" if group else ""
    say(f"training {spec.name} ({trained.params:,} parameters) on {dataset.name}: "
        f"{len(dataset.train):,} images at {'x'.join(map(str, trained.input_shape))}, "
        f"{config.epochs} epochs, batch {config.batch_size}, lr {config.lr}, "
        f"on {config.device}{ranks}; run folder {run}")  # fmt: skip
    start = time.perf_counter()
    results = fit(model, dataset, replace(config, size=size), run, resume=bool(args.resume))
    if results:
        last = results[-1]
        train_seconds = sum(r.train_seconds for r in results)
        seen = len(dataset.train) * len(results)
        say(f"loss {last.loss:.3f}, train acc {last.train_acc:.3f}, test acc {last.test_acc:.3f}")
        say(f"{seen / max(train_seconds, 1e-9):.1f} examples/sec on {config.device}{ranks} "
            f"(wall clock {time.perf_counter() - start:.1f} s)")  # fmt: skip
    return 0
