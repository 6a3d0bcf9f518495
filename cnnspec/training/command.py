"""The `cnnspec train` command: from a request (its flags, typed) to a trained run folder.

RUN/spec.cnn (or .yaml)   the spec as given
RUN/recipe.json           the training settings actually used
RUN/data.json             where the images came from (for a resume)
RUN/metrics.jsonl         one line per epoch
RUN/curves.png            loss and accuracies per epoch
RUN/checkpoints/          see checkpoints.py
RUN/trainer.lock          locked while a trainer runs there (see lock.py)
"""

from __future__ import annotations

import json
import shlex
import signal
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from ..atomic import write_atomic
from ..errors import CnnspecError
from ..limits import DEFAULT, Limits
from ..spec import Spec, load, transfer
from . import checkpoints, data, distributed, lock, run_files
from .loop import Interrupted, TrainConfig, TrainError, fit, modern
from .masks import mask_folder


@dataclass(frozen=True)
class TrainRequest:
    """What `cnnspec train` is asked to do. None: the spec's recipe (or the resumed run's)
    decides."""

    spec: str | None = None  # None: the resumed run's own
    resume: str | None = None
    out: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    resize: int | None = None
    recipe: str = "spec"  # spec | modern
    device: str | None = None
    precision: str = "auto"
    compile: bool = False
    seed: int = 0
    data_dir: str | None = None
    images: str | None = None
    masks: str | None = None  # with images: a class per pixel, for networks giving a map
    limit_train: int | None = None
    limit_test: int | None = None
    progress: bool = True
    sync_bn: bool = False
    limits: Limits = DEFAULT  # the spec's budgets (--max-params and the like)
    weights: str | None = None  # another model's state_dict to start from (by structure)
    overrides: tuple[tuple[str, str], ...] = ()  # --set NAME=VALUE, in order
    use_root: str | None = None  # the folder the spec's used files must be in


def _first(*values):
    """The first value that is not None."""
    return next((v for v in values if v is not None), None)


def config_for(spec: Spec, request: TrainRequest) -> TrainConfig:
    """The spec's recipe, overridden by flags."""
    recipe = spec.recipe
    size = _first(request.resize, recipe.resize)
    config = TrainConfig(
        epochs=_first(request.epochs, recipe.epochs),
        batch_size=_first(request.batch_size, recipe.batch),
        lr=_first(request.lr, recipe.lr),
        optimizer=recipe.optimizer,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        size=(size, size) if size else tuple(spec.input_shape[1:]) or None,
        device=request.device or ("cuda" if torch.cuda.is_available() else "cpu"),
        precision=request.precision,
        compile=request.compile,
        seed=request.seed,
        progress=request.progress,
        sync_bn=request.sync_bn,
    )
    return modern(config) if request.recipe == "modern" else config


def resumed_config(run: Path, request: TrainRequest) -> TrainConfig:
    """The settings the run was started with; only the epoch count and the progress bar may
    change."""
    path = run / "recipe.json"
    if not path.exists() and not checkpoints.has_checkpoint(run):  # stopped before writing it
        raise TrainError(
            f"{run} never began training (it has no recipe.json); start it again with --out {run}"
        )
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise TrainError(f"{path}: cannot read the run's recipe ({err})") from None
    saved = run_files.check(saved, run_files.RECIPE, path, TrainError)
    saved["size"] = tuple(saved["size"]) if saved["size"] else None
    return TrainConfig(
        **{**saved, "epochs": _first(request.epochs, saved["epochs"]), "progress": request.progress}
    )


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


@dataclass(frozen=True)
class DataSource:
    """Where a run's images come from. Kept in RUN/data.json, so that a resume trains on
    the same images without being told again (a flag given on resume still wins)."""

    data_dir: str | None = None  # Fashion-MNIST's folder, as found when the run began
    images: str | None = None  # or a folder of class folders
    limit_train: int | None = None
    limit_test: int | None = None
    masks: str | None = None  # with images: a folder of their masks, a class per pixel


def data_source(request: TrainRequest) -> DataSource:
    given = DataSource(
        request.data_dir, request.images, request.limit_train, request.limit_test, request.masks
    )
    if request.resume:
        saved = saved_source(Path(request.resume))
        return DataSource(**{k: _first(getattr(given, k), v) for k, v in asdict(saved).items()})
    if given.masks and not given.images:
        raise TrainError("--masks DIR goes with --images DIR: the masks of those images")
    if given.images:
        masks = str(Path(given.masks).resolve()) if given.masks else None
        return replace(given, images=str(Path(given.images).resolve()), masks=masks)
    return replace(given, data_dir=str(data.find_fashion_mnist(given.data_dir).resolve()))


def saved_source(run: Path) -> DataSource:
    """Where a run's images came from, as its data.json keeps it."""
    path = run / "data.json"
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise TrainError(f"{path}: cannot read where the run's data is ({err})") from None
    if isinstance(saved, dict):  # a run begun before --masks existed has no masks
        saved.setdefault("masks", None)
    return DataSource(**run_files.check(saved, run_files.DATA, path, TrainError))


def dataset_for(spec: Spec, source: DataSource, seed: int) -> data.Dataset:
    if source.masks:  # `spec` is at the training size already (see `fitted`)
        c, h, w = spec.input_shape
        classes, *out_size = spec.output_shape
        found = mask_folder(
            source.images, source.masks, (h, w), tuple(out_size), c, classes, seed=seed
        )
        return found.limit(source.limit_train, source.limit_test)
    if source.images:
        c, h, w = spec.input_shape
        return data.image_folder(source.images, (h, w), c, seed=seed)
    base = data.fashion_mnist(source.data_dir)
    base = base.limit(source.limit_train, source.limit_test)
    heads = spec.output_shape
    if heads and isinstance(heads[0], tuple):  # several heads: compose character strips
        _, h, w = spec.input_shape
        return data.Dataset(
            "fashion-mnist strips",
            data.strips(base.train, len(heads), seed, h, w),
            data.strips(base.test, len(heads), seed + 1, h, w),
            (*base.classes, "none"),
        )
    return base


def claim_run(spec: Spec, request: TrainRequest) -> Path:
    """The run folder, locked for this process: the resumed one, or a new one."""
    run = Path(request.resume or request.out or "runs")
    try:
        if request.resume:
            lock.hold(run)
            return run
        return new_run(spec, request.out)
    except OSError as err:  # under a file, read-only, full
        raise TrainError(
            f"{err.filename or run}: cannot write the run folder there ({err.strerror or err})"
        ) from None


def new_run(spec: Spec, out: str | None) -> Path:
    used = used_files(spec)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    stem = Path(spec.source.name).stem if spec.source.name != "<string>" else spec.name
    run = Path(out) if out else Path("runs") / f"{stem}-{stamp}"
    run.mkdir(parents=True, exist_ok=True)
    lock.hold(run)  # before looking inside: another trainer may be about to write there
    if checkpoints.has_checkpoint(run):  # a run killed before its first checkpoint is redone
        raise TrainError(f"{run} already holds a run; use --resume {run} or another --out")
    suffix = Path(spec.source.name).suffix or ".cnn"
    write_atomic(run / f"spec{suffix}", spec.source.text)
    for path, text in used.items():  # beside the copy, as beside the spec
        write_atomic(run / path, text)
    return run


def used_files(spec: Spec) -> dict[Path, str]:
    """The files the spec uses, by their paths from its folder: a run folder keeps them
    there beside its copy of the spec, so that a resume reads the same blocks."""
    folder = Path(spec.source.name).resolve().parent
    files = {}
    for source in spec.used:
        path = Path(source.name)
        if not path.is_relative_to(folder):
            raise TrainError(
                f"{path} is used by {spec.source.name} from outside its folder; a run folder "
                "keeps the files a spec uses beside it: move the file under the spec's folder"
            )
        files[path.relative_to(folder)] = source.text
    return files


def write_settings(run: Path, source: DataSource, config: TrainConfig) -> None:
    """Where the data is and the settings actually used, which a resume reads back; the
    recipe last, so that a run with a recipe always has its data.json."""
    for name, value in (("data.json", source), ("recipe.json", config)):
        try:
            write_atomic(run / name, json.dumps(asdict(value), indent=1))
        except OSError as err:
            raise TrainError(f"{run / name}: cannot write it ({err.strerror or err})") from None


def spec_for(request: TrainRequest) -> Spec:
    """The spec given, or on a resume the run's own; a resume refuses another one."""
    if not request.resume:
        if request.spec is None:
            raise TrainError("which network? give a SPEC, or --resume RUN")
        return load(
            request.spec,
            limits=request.limits,
            overrides=dict(request.overrides),
            use_root=request.use_root,
        )
    if request.overrides:
        raise TrainError("--set cannot change a run being resumed: it goes on as it began")
    run = Path(request.resume)
    saved = sorted(run.glob("spec.*"))
    if not saved:
        raise TrainError(f"{run}: not a run folder (it holds no spec.cnn or spec.yaml)")
    if request.spec is not None and Path(request.spec).read_bytes() != saved[0].read_bytes():
        raise TrainError(
            f"{request.spec} is not the spec {run} was trained with "
            f"({saved[0]}); leave SPEC out to resume with the run's own"
        )
    return load(saved[0], limits=request.limits)


def check_trainable(spec: Spec, per_pixel: bool = False) -> None:
    """The trainer fits class scores: one output of features, or several heads of them;
    with masks (`per_pixel`), one map of them, a score per class at each pixel. Anything
    else (a pyramid of feature maps) is refused before any work."""
    outputs = spec.output_shape
    shapes = outputs if outputs and isinstance(outputs[0], tuple) else (outputs,)
    got = ", ".join("x".join(map(str, shape)) for shape in shapes)
    if per_pixel:
        if len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][0] >= 2:
            return _check_declared_classes(spec, shapes[0][0], " per pixel")
        why = (
            f"{spec.name} returns {got}; with --masks, cnnspec train fits one map of class "
            "scores (classes x H x W, two classes or more) with cross-entropy at each pixel"
        )
    elif all(len(shape) == 1 for shape in shapes):
        return _check_declared_classes(spec, shapes[0][0], "") if len(shapes) == 1 else None
    else:
        why = (
            f"{spec.name} returns {got}; cnnspec train fits class scores (an output of "
            "features, one per class, or several heads of them) with cross-entropy, or with "
            "--images DIR --masks DIR a map of them, a class per pixel"
        )
    raise TrainError(f"{why}, so it cannot train this network", spec.ir.network.pos, spec.source)


def _check_declared_classes(spec: Spec, scores: int, where: str) -> None:
    """A network that declares its classes scores that many: the trainer reads the
    classes from the scores, so a spec whose last layer does not follow `classes` (or a
    `--set classes=` it ignores) would train on another number silently."""
    net = spec.ir.network
    if "classes" in net.model_fields_set and scores != net.classes:
        raise TrainError(
            f"{spec.name} declares classes={net.classes} but gives {scores} class "
            f"scores{where}; make its last layer give `classes` of them",
            *_scored_at(spec),
        )


def check_scores(spec: Spec, dataset: data.Dataset) -> None:
    """Each output scores every class of the data, before any work: fewer scores end in
    cross-entropy's IndexError mid-run."""
    outputs = spec.output_shape
    shapes = outputs if outputs and isinstance(outputs[0], tuple) else (outputs,)
    scores, classes = min(shape[0] for shape in shapes), len(dataset.classes)
    if scores >= classes:
        return
    if len(shapes) > 1:  # heads: the strips task, whatever the outputs were meant for
        gives = ", ".join(str(shape[0]) for shape in shapes)
        raise TrainError(
            f"{spec.name} gives {len(shapes)} outputs ({gives} scores); cnnspec train fits "
            f"several outputs as heads reading strips of up to {len(shapes)} Fashion-MNIST "
            f"items (3-channel images), each head scoring {classes} classes, the last meaning "
            f"no item; give each head {classes} scores",
            spec.ir.network.pos,
            spec.source,
        )
    raise TrainError(
        f"{spec.name} gives {scores} class scores, but {dataset.name} has {classes} "
        f"classes; give it {classes} outputs (--set classes={classes} where its last layer "
        "gives `classes`)",
        *_scored_at(spec),
    )


def _scored_at(spec: Spec) -> tuple:
    """Where the scores are made: the last layer, where the spec itself writes it (else the
    network's line), and the text it is in."""
    layers = spec.graph.layers()
    if layers and layers[-1][1].file is None and layers[-1][1].pos != (0, 0):
        return layers[-1][1].pos, spec.source
    return spec.ir.network.pos, spec.source


def _spare_scores(spec: Spec, dataset: data.Dataset) -> str:
    """A note where one output gives more scores than the data has classes: trainable (no
    label reaches the others), but most often a `classes=` the data did not follow."""
    outputs, classes = spec.output_shape, len(dataset.classes)
    if not outputs or isinstance(outputs[0], tuple) or outputs[0] <= classes:
        return ""
    return (
        f"note: {spec.name} gives {outputs[0]} class scores and {dataset.name} has {classes} "
        f"classes; scores {classes} to {outputs[0] - 1} are never a label "
        f"(--set classes={classes} where its last layer gives `classes`)"
    )


def check_image_channels(spec: Spec) -> None:
    """Images from a folder are read as grayscale or RGB: a network taking another number
    of channels would fail in its first step."""
    channels = spec.input_shape[0]
    if channels not in (1, 3):
        raise TrainError(
            f"{spec.name} takes {channels}-channel images, but images from a folder "
            "(--images) are read as 1 channel (grayscale) or 3 (RGB)",
            spec.ir.network.keypos.get("input", spec.ir.network.pos),
            spec.source,
        )


def fitted(
    spec: Spec, source: DataSource, config: TrainConfig
) -> tuple[Spec, data.Dataset, TrainConfig]:
    """The images to train on, and the spec and settings fitted to their size."""
    check_trainable(spec, per_pixel=bool(source.masks))
    if source.images:
        check_image_channels(spec)
    if source.masks:  # masks are cut to the map the network gives at the training size
        size = config.size or tuple(spec.input_shape[1:])
        trained = at_input_size(spec, spec.input_shape[0], size)
        check_trainable(trained, per_pixel=True)
        if config.augment and tuple(trained.output_shape[1:]) != tuple(size):
            raise TrainError(
                f"{spec.name} gives a {'x'.join(map(str, trained.output_shape[1:]))} map of "
                f"{'x'.join(map(str, size))} images; crops and flips (--recipe modern) move a "
                "map only where it is the image's size"
            )
        return trained, dataset_for(trained, source, config.seed), replace(config, size=size)
    dataset = dataset_for(spec, source, config.seed)
    check_scores(spec, dataset)
    size = config.size or tuple(dataset.train.images.shape[-2:])
    trained = at_input_size(spec, dataset.train.images.shape[1], size)
    return trained, dataset, replace(config, size=size)


def train(request: TrainRequest) -> int:
    spec = spec_for(request)
    # before the data is looked for or a process group joined
    check_trainable(spec, per_pixel=bool(request.masks) or _resumed_with_masks(request))
    if request.resume:
        run = Path(request.resume)
        config = resumed_config(run, request)
    else:
        config = config_for(spec, request)
    group = distributed.join(torch.device(config.device).type)
    source = data_source(request)
    trained, dataset, config = fitted(spec, source, config)
    run = distributed.on_main(group, lambda: claim_run(spec, request))  # rank 0 names it
    try:
        distributed.on_main(group, lambda: write_settings(run, source, config))
        return _train_in(run, trained, dataset, config, request, group)
    finally:
        lock.release(run)


def _resumed_with_masks(request: TrainRequest) -> bool:
    if not request.resume:
        return False
    try:
        return bool(saved_source(Path(request.resume)).masks)
    except TrainError:
        return False  # a data.json it cannot read is named where the data is looked for


def _train_in(
    run: Path, trained: Spec, dataset, config: TrainConfig, request: TrainRequest, group
) -> int:
    say = print if distributed.is_main(group) else (lambda *a, **k: None)
    torch.manual_seed(config.seed)
    model = trained.build()
    if request.weights and not request.resume:  # a resume has its own weights
        say(transfer(model, request.weights))
    ranks = f" on {group.world} processes" if group else ""
    say(
        f"training {trained.name} ({trained.params:,} parameters) on {dataset.name}: "
        f"{len(dataset.train):,} images at {'x'.join(map(str, trained.input_shape))}, "
        f"{config.epochs} epoch{'s' if config.epochs != 1 else ''}, "
        f"batch {config.batch_size}, lr {config.lr}, "
        f"on {config.device}{ranks}; run folder {run}"
    )
    spare = _spare_scores(trained, dataset)
    if spare:
        say(spare)
    start = time.perf_counter()
    try:
        results = fit(model, dataset, config, run, resume=bool(request.resume), group=group)
    except Interrupted as stop:
        # Not a finished run: no closing figures, the shell's code for the signal, and the
        # command that goes on from the checkpoint just written.
        resume = f"cnnspec train --resume {shlex.quote(str(run))}"
        if group is not None:
            resume += f" --nproc {group.world}"
        say(f"{stop}; a checkpoint holds it: resume with  {resume}")
        return 128 + (stop.signum or signal.SIGTERM)
    if results:
        last = results[-1]
        train_seconds = sum(r.train_seconds for r in results)
        seen = len(dataset.train) * len(results)
        say(f"loss {last.loss:.3f}, train acc {last.train_acc:.3f}, test acc {last.test_acc:.3f}")
        say(
            f"{seen / max(train_seconds, 1e-9):.1f} examples/sec on {config.device}{ranks} "
            f"(wall clock {time.perf_counter() - start:.1f} s)"
        )
    return 0
