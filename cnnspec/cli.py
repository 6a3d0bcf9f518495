"""The `cnnspec` command.

Exit codes: 0 success, 1 a spec is wrong (the error is printed, one line plus a caret),
2 a usage error (bad flags, a file that does not exist), 130 interrupted by Ctrl-C and 143
by SIGTERM (no file is left half written; a training run checkpoints and says how to
resume), 141 the reader of the output went away (as for `cnnspec build SPEC | head`): the
codes a shell gives a command ended by SIGINT, SIGTERM or SIGPIPE.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .errors import CnnspecError, EscapedStream, shown
from .version import __version__

USAGE_ERROR = 2
INTERRUPTED = 128 + 2  # what a shell reports for a command ended by Ctrl-C (SIGINT)
TERMINATED = 128 + 15  # ... and by SIGTERM
BROKEN_PIPE = 128 + 13  # what a shell reports for a command ended by SIGPIPE


def _load(path: str, args: argparse.Namespace, sets: list[tuple[str, str]] | None = None):
    from .spec import load

    overrides = dict(getattr(args, "set", None) or [] if sets is None else sets)
    return load(path, limits=_limits(args), overrides=overrides, use_root=args.use_root)


# The variants one `compare` may put side by side: the specs times every combination of
# the values each `--set NAME=A,B,C` lists, counted before any is made.
MAX_VARIANTS = 256


def _sweep(sets: list[tuple[str, str]], specs: int = 1) -> list[list[tuple[str, str]]]:
    """Every combination of the values `--set NAME=A,B,C` lists (commas inside brackets
    belong to one value, like a tuple's), for `specs` specs; a usage error past
    MAX_VARIANTS, before the combinations are made."""
    from itertools import product
    from math import prod

    choices = [[(name, v) for v in _top_level_values(value)] for name, value in sets]
    count = specs * prod(len(c) for c in choices)
    if count > MAX_VARIANTS:
        sizes = " x ".join(str(n) for n in [specs, *(len(c) for c in choices)] if n > 1)
        raise _Usage(
            f"compare: {sizes} is {count:,} variants, more than the {MAX_VARIANTS} "
            "compared at once; list fewer values"
        )
    return [list(combo) for combo in product(*choices)]


class _Usage(Exception):
    """A usage error found by a command (exit 2): its message is printed as it is."""


def _top_level_values(text: str) -> list[str]:
    values, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "(["
        depth -= ch in ")]"
        if ch == "," and depth == 0:
            values.append(text[start:i].strip())
            start = i + 1
    return [*values, text[start:].strip()]


def _label(sets: list[tuple[str, str]]) -> str:
    return "".join(f" {name}={value}" for name, value in sets)


def _limits(args: argparse.Namespace):
    """The default budgets, raised (or lowered) by the flags given."""
    from .limits import BUDGETS, DEFAULT

    raised = {b: getattr(args, b) for b in BUDGETS if getattr(args, b, None) is not None}
    return replace(DEFAULT, **raised)


_BUDGET_HELP = {
    "max_params": "parameters",
    "max_macs": "multiply-accumulates per example",
    "max_activations": "values all layers output per example",
}


def _assignment(text: str) -> tuple[str, str]:
    """`NAME=VALUE`, as `--set` takes it."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def _spec_flags(p: argparse.ArgumentParser) -> None:
    """--set and the budgets: how any command that loads a spec may change it."""
    from .limits import BUDGETS, DEFAULT

    p.add_argument(
        "--set",
        action="append",
        type=_assignment,
        metavar="NAME=VALUE",
        help="set a network option (classes, input), network parameter or train "
        "option for this run, as the spec would write it",
    )

    _use_root_flag(p)
    for bound in BUDGETS:
        default = getattr(DEFAULT, bound)
        p.add_argument(
            f"--{bound.replace('_', '-')}",
            type=_positive,
            metavar="N",
            help=f"budget of {_BUDGET_HELP[bound]} (default {default:.3g})",
        )


def _use_root_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--use-root",
        metavar="DIR",
        help="the folder files the spec uses must be in (default: the spec's own folder)",
    )


def _positive(text: str) -> int:
    """A whole number >= 1, also written like 1e12."""
    try:
        value = int(float(text)) if "e" in text.lower() else int(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def cmd_check(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.specs:
        try:
            _load(path, args)
        except CnnspecError as err:
            _report(err)
            failed = 1
    return failed


def _report(err: CnnspecError) -> None:
    """Every error the check found, in the order they are written, each with its caret."""
    for found in (err, *err.more):
        print(found.render(), file=sys.stderr)


def cmd_build(args: argparse.Namespace) -> int:
    spec = _load(args.spec, args)
    if args.json:
        print(json.dumps(spec.to_dict(), indent=2))
    else:
        print(spec.summary(args.depth))
    if not args.no_forward:
        from .backends.build import check_forward

        check_forward(spec)
        if not args.json:
            print(f"built {spec.name}: a forward pass gives the inferred output shape")
    return 0


def cmd_codegen(args: argparse.Namespace) -> int:
    from .atomic import write_atomic
    from .backends.codegen.names import module_name

    # One module per spec, named so Python can import it and it hides no module it imports
    # (`my-net.cnn` -> my_net.py, `torch.cnn` -> torch_.py); two specs may not share one.
    targets = {
        path: Path(args.output) / f"{module_name(Path(path).stem)}.py" for path in args.specs
    }
    if not args.stdout:
        first: dict[str, str] = {}
        for path, target in targets.items():
            other = first.setdefault(str(target).casefold(), path)
            if other != path:
                print(
                    f"cnnspec: {shown(other)} and {shown(path)} would both be written to "
                    f"{shown(str(target))}: generate them into separate folders (-o DIR)",
                    file=sys.stderr,
                )
                return USAGE_ERROR
    # Generate everything before writing anything: a bad spec leaves no file behind.
    sources = {path: _load(path, args).codegen() for path in args.specs}
    for path, source in sources.items():
        if args.stdout:
            print(source, end="")
        else:
            write_atomic(targets[path], source)
            print(f"wrote {shown(str(targets[path]))}", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .training import distributed
    from .training.command import train

    if args.nproc and not distributed.launched():
        return distributed.relaunch(args.nproc, _without_option(args.argv, "--nproc"))
    return train(_train_request(args))


def _train_request(args: argparse.Namespace):
    """The train command's flags, typed, once."""
    from dataclasses import fields

    from .training.command import TrainRequest

    given = {f.name: getattr(args, f.name) for f in fields(TrainRequest) if hasattr(args, f.name)}
    overrides = tuple(getattr(args, "set", None) or ())
    return TrainRequest(
        **given, progress=not args.no_progress, limits=_limits(args), overrides=overrides
    )


def _without_option(argv: list[str], option: str) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


def cmd_schema(args: argparse.Namespace) -> int:
    from .backends.schema import layer_table, yaml_schema

    print(layer_table() if args.layers else json.dumps(yaml_schema(), indent=2) + "\n", end="")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from .atomic import write_atomic
    from .backends import dot, page

    spec = _load(args.spec, args)
    depth = dot.DEFAULT_DEPTH if args.depth is None else args.depth
    text = dot.to_dot(spec.graph, depth, args.layout)
    target = Path(args.output) if args.output else None
    kind = target.suffix.lower().lstrip(".") if target else "dot"
    try:
        if kind == "dot":
            data: str | bytes = text
        elif kind in ("svg", "png"):
            data = dot.render(text, kind)
        else:  # html, checked by the parser: laid out by the browser, no Graphviz
            depth = page.DEFAULT_DEPTH if args.depth is None else args.depth
            data = page.page(spec.graph, spec.source.name, depth, args.layout)
    except dot.GraphvizMissing as err:
        print(f"cnnspec: {err}", file=sys.stderr)
        return USAGE_ERROR
    if target is None:
        print(text, end="")
    else:
        write_atomic(target, data)
        print(f"wrote {shown(str(target))}", file=sys.stderr)
    return 0


def _picture_path(text: str) -> str:
    if Path(text).suffix.lower() not in (".dot", ".svg", ".png", ".html"):
        raise argparse.ArgumentTypeError(f"{text}: the name must end in .dot, .svg, .png or .html")
    return text


def cmd_export(args: argparse.Namespace) -> int:
    from .backends.export import output_names, refuse_unrunnable, to_onnx
    from .spec import TORCH_FILES, transfer

    spec = _load(args.spec, args)
    refused = refuse_unrunnable(spec.graph)
    if refused is not None:  # before any weights are read or a byte written
        file, err = refused
        used = {source.name: source for source in spec.used}
        raise err.with_source(used.get(file, spec.source) if file else spec.source)
    weights = args.weights
    if weights is None:  # say so: an export of fresh weights is easily taken for a trained one
        net = spec.build()
        held = (
            f"untrained weights (the recipe's {spec.recipe.init} init); "
            "--weights RUN exports a trained run's"
        )
    elif Path(weights).suffix in TORCH_FILES:
        net = spec.build()
        held = f"weights from {transfer(net, weights)}"
    else:
        net = spec.build(weights=weights)
        kind = "run's latest checkpoint" if Path(weights).is_dir() else "file"
        held = f"the trained weights of {shown(weights)} (the {kind})"
    declared = tuple(name.id for name in spec.ir.network.outputs)
    to_onnx(net, spec.input_shape, args.onnx, output_names(spec.graph, declared))
    print(f"wrote {shown(args.onnx)}, holding {held}", file=sys.stderr)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .training import compare

    if args.plot and not args.train:
        print("cnnspec: --plot needs --train (it plots test accuracy)", file=sys.stderr)
        return USAGE_ERROR
    sweep = _sweep(getattr(args, "set", None) or [], len(args.specs))
    specs = [
        (f"{Path(path).stem}{_label(sets)}", _load(path, args, sets))
        for path in args.specs
        for sets in sweep
    ]
    rows = [compare.static_row(label, spec) for label, spec in specs]
    if args.train:
        request = replace(_train_request(args), epochs=args.train, progress=False)
        for i, (label, spec) in enumerate(specs):
            print(
                f"training {label} for {args.train} epoch{'s' if args.train != 1 else ''}",
                file=sys.stderr,
            )
            rows[i] = compare.trained_row(rows[i], spec, request)
    print(compare.table(rows), end="")
    if args.plot:
        compare.plot(rows, args.plot)
        print(f"wrote {shown(args.plot)}", file=sys.stderr)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .backends.emit_yaml import to_yaml

    print(to_yaml(_load(args.spec, args).ir), end="")
    return 0


def cmd_lsp(args: argparse.Namespace) -> int:
    try:
        from .lsp.server import serve
    except ImportError as err:  # pygls is an optional dependency
        print(
            f"cnnspec lsp needs pygls ({err.name} is missing): pip install 'cnnspec[lsp]'",
            file=sys.stderr,
        )
        return USAGE_ERROR
    return serve()


def above_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnspec", description="A declarative architecture compiler for CNNs."
    )
    parser.add_argument("--version", action="version", version=f"cnnspec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = command("check", cmd_check, "parse, validate and infer shapes; print only errors")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    _spec_flags(p)

    p = command("build", cmd_build, "per-layer shapes, parameters and MACs; build the module")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-forward", action="store_true", help="skip the zero-batch forward check")
    p.add_argument(
        "--depth",
        type=_positive,
        metavar="N",
        help="table levels: 1 stages, 2 what they hold (default), ...",
    )
    _spec_flags(p)

    p = command("codegen", cmd_codegen, "write standalone PyTorch source for each spec")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    p.add_argument(
        "-o",
        "--output",
        default="generated",
        metavar="DIR",
        help="folder for the .py files (default: generated)",
    )
    p.add_argument("--stdout", action="store_true", help="print the source instead")
    _spec_flags(p)

    p = command("train", cmd_train, "train the spec's network (Fashion-MNIST by default)")
    p.add_argument("spec", metavar="SPEC", nargs="?", help="optional with --resume")
    _spec_flags(p)
    p.add_argument("--epochs", type=_positive, help="default: the spec's recipe")
    p.add_argument("--batch-size", type=_positive, help="default: the spec's recipe")
    p.add_argument("--lr", type=above_zero, help="default: the spec's recipe")
    p.add_argument("--resize", type=_positive, help="train on N x N images (default: the recipe's)")
    p.add_argument(
        "--recipe",
        choices=["spec", "modern"],
        default="spec",
        help="modern: momentum, weight decay, one-cycle, label smoothing, crop and flip",
    )
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    p.add_argument("--data-dir", help="folder holding the Fashion-MNIST .gz files")
    p.add_argument("--images", metavar="DIR", help="train on DIR/<class>/* images instead")
    p.add_argument(
        "--masks",
        metavar="DIR",
        help="with --images DIR of images: a class per pixel, in masks of the same names",
    )
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/SPEC-TIME)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder")
    p.add_argument(
        "--weights",
        metavar="FILE",
        help="start from another model's state_dict (.pt/.pth, e.g. torchvision's), "
        "matched by structure as far as the shapes agree",
    )
    p.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="auto: bf16 autocast on GPU, fp32 on CPU",
    )
    p.add_argument("--compile", action="store_true", help="use torch.compile")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit-train", type=_positive, metavar="N", help="use the first N images")
    p.add_argument("--limit-test", type=_positive, metavar="N", help="test on the first N images")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--nproc",
        type=_positive,
        metavar="N",
        help="train on N processes: relaunch this command under torchrun",
    )
    p.add_argument(
        "--sync-bn",
        action="store_true",
        help="under torchrun, batch-norm statistics over all processes",
    )

    p = command(
        "compare",
        cmd_compare,
        "variants side by side: params, MACs, memory, and with --train their speed and accuracy",
    )
    p.add_argument("specs", nargs="+", metavar="SPEC")
    _spec_flags(p)  # in compare, --set NAME=A,B,C makes a variant of each value
    p.add_argument(
        "--train",
        type=_positive,
        metavar="EPOCHS",
        help="train each for EPOCHS epochs (its own recipe otherwise)",
    )
    p.add_argument("--plot", metavar="FILE.png", help="test accuracy against MACs and params")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    p.add_argument("--data-dir", help="folder holding the Fashion-MNIST .gz files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit-train", type=_positive, metavar="N", help="use the first N images")
    p.add_argument("--limit-test", type=_positive, metavar="N", help="test on the first N images")
    p.set_defaults(no_progress=True)

    p = command("schema", cmd_schema, "the JSON Schema of the YAML form, for editors")
    p.add_argument("--layers", action="store_true", help="a Markdown table of the layers instead")

    p = command("graph", cmd_graph, "draw the network: DOT, SVG, PNG or an HTML page")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument(
        "-o",
        "--output",
        type=_picture_path,
        metavar="FILE",
        help="FILE.dot, .svg, .png or .html (default: DOT on stdout)",
    )
    p.add_argument(
        "--depth",
        type=int,
        metavar="N",
        help="levels of blocks drawn open (default 1; in a page 0, where a click opens them)",
    )
    p.add_argument(
        "--layout",
        choices=("tb", "lr"),
        default="tb",
        help="top to bottom (default) or left to right; a page switches with a button",
    )
    _spec_flags(p)

    p = command("export", cmd_export, "write the network as ONNX (batch size left free)")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--onnx", required=True, metavar="FILE", help="the .onnx file to write")
    p.add_argument(
        "--weights",
        metavar="RUN",
        help="a run folder or .safetensors file (or another model's .pt/.pth, matched by "
        "structure); without it, untrained weights",
    )
    _spec_flags(p)

    p = command("convert", cmd_convert, "print a spec in the YAML form")
    p.add_argument("spec", metavar="SPEC")
    _spec_flags(p)

    p = command("lsp", cmd_lsp, "the language server, on stdin and stdout (for editors)")
    p.add_argument("--stdio", action="store_true", help="talk over stdio (the only way; accepted)")

    for p in sub.choices.values():  # every argument that names a file or a folder
        for action in p._actions:
            if action.dest in PATH_ARGUMENTS:
                action.type = _path_then(action.type)
    return parser


# The arguments that name a file or a folder, in every command: none may be empty (an
# empty --data-dir or --out would otherwise be ignored, -o "" would write in the current
# folder, and an empty SPEC would be read as empty spec text).
PATH_ARGUMENTS = {
    "spec", "specs", "output", "data_dir", "images", "masks", "out", "resume", "weights",
}  # fmt: skip
PATH_ARGUMENTS |= {"onnx", "plot", "use_root"}


def _path_then(then: Callable[[str], Any] | None) -> Callable[[str], Any]:
    def path(text: str):
        if not text:
            raise argparse.ArgumentTypeError("an empty path names no file or folder")
        if "\0" in text:
            raise argparse.ArgumentTypeError("a path cannot hold a NUL character")
        return then(text) if then else text

    path.__name__ = "path"  # argparse names the type in its messages
    return path


class _Terminated(BaseException):
    """SIGTERM, raised where the program is, as Ctrl-C raises KeyboardInterrupt: whatever
    it was writing is cleaned up on the way out (see atomic.py) instead of left half done."""


def _terminate(signum, frame) -> None:
    raise _Terminated


def main(argv: Sequence[str] | None = None) -> int:
    # Everything the command prints, its own messages, argparse's and any library's, goes
    # out with control characters escaped: a name or a path can carry terminal sequences.
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = EscapedStream(sys.stdout), EscapedStream(sys.stderr)
    handling = threading.current_thread() is threading.main_thread()  # where signals arrive
    previous = signal.signal(signal.SIGTERM, _terminate) if handling else None
    try:
        return _run(argv)
    finally:
        if handling:
            signal.signal(signal.SIGTERM, previous)
        sys.stdout, sys.stderr = streams


def _run(argv: Sequence[str] | None) -> int:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        # Nobody reads the rest: say nothing, and keep Python's own exit flush quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    except CnnspecError as err:
        _report(err)
        return 1
    except OSError as err:
        if err.filename is None:  # not about a path the user named
            raise
        print(f"cnnspec: {shown(str(err.filename))}: {err.strerror}", file=sys.stderr)
        return USAGE_ERROR
    except _Usage as err:
        print(f"cnnspec: {err}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:  # outside training (the trainer stops at a step, and says so)
        print("cnnspec: interrupted", file=sys.stderr)
        return INTERRUPTED
    except _Terminated:
        print("cnnspec: terminated", file=sys.stderr)
        return TERMINATED


if __name__ == "__main__":
    sys.exit(main())
