"""`--set NAME=VALUE`: one value of a spec changed for a run, as the spec would write it.

NAME is a network option (`input`, `classes`), a network parameter or a train option;
errors in VALUE are placed in it, shown as the source `--set NAME`.
"""

from __future__ import annotations

from pydantic import ValidationError

from .analysis.resolve import OP_VALUES
from .errors import CnnspecError, Source, SpecError, did_you_mean
from .language import ir
from .language.expressions import OpRef, describe, evaluate
from .language.parse_cnn import parse_expression


def override(doc: ir.Document, name: str, text: str) -> ir.Document:
    """`doc` with one value set, as `--set NAME=VALUE` asks; errors are placed in VALUE."""
    source = Source(f"--set {name}", text)
    net, recipe = doc.network, doc.train
    params = [kw.name for kw in net.params]
    try:
        expr = parse_expression(text)
        if name in ir.Recipe.model_fields and name not in ir.METADATA_KEYS:
            value = expr["id"] if expr["kind"] == "name" else evaluate(ir.to_expr(expr), {})
            try:
                fields = {**recipe.model_dump(exclude_unset=True), name: value}
                train = ir.Recipe.model_validate({**fields, "pos": recipe.pos})
            except ValidationError as err:
                message = err.errors(include_url=False)[0]["msg"]
                raise SpecError(
                    f"train option '{name}': {message[0].lower()}{message[1:]}", (1, 1)
                ) from None
            return doc.model_copy(update={"train": train})
        value = evaluate(ir.to_expr(expr), OP_VALUES)
        if name in ("input", "classes"):
            return doc.model_copy(update={"network": _network_option(net, name, value)})
        if name in params:
            kws = tuple(
                kw.model_copy(update={"value": _written(value, kw.pos)}) if kw.name == name else kw
                for kw in net.params
            )
            return doc.model_copy(update={"network": net.model_copy(update={"params": kws})})
    except CnnspecError as err:
        raise err.with_source(source) from None
    known = [
        "input",
        "classes",
        *params,
        *(f for f in ir.Recipe.model_fields if f not in ir.METADATA_KEYS),
    ]
    raise SpecError(
        f"--set {name}: the spec has no network option, network parameter or "
        f"train option '{name}'{did_you_mean(name, known)}"
    )


def _written(value, pos) -> ir.Expr:
    if isinstance(value, OpRef):  # a layer, as a parameter that stages call
        return ir.Name(kind="name", id=value.op, pos=pos)
    return ir.constant(value, pos)


def _network_option(net: ir.Network, name: str, value) -> ir.Network:
    """The network with `input` (a shape or a feature count) or `classes` set."""
    whole = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1  # noqa: E731
    if name == "classes" and not whole(value):
        raise SpecError(f"classes must be a whole number >= 1, got {describe(value)}", (1, 1))
    if name == "input":
        value = value if isinstance(value, tuple) else (value,)
        if not all(whole(v) for v in value):
            raise SpecError(f"input must be a shape such as 3x32x32, got {describe(value)}", (1, 1))
    return net.model_copy(update={name: value})
