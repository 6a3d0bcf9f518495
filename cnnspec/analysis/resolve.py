"""Static checks on names, before any shape is inferred.

Every call names a built-in layer or a block defined *above* the place that uses it (so
blocks cannot recurse); block, parameter, stage and branch names are unique and usable as
Python identifiers, since they become module attributes and generated code.

The checks read the text, not what inference expands: a call repeated zero times, or a
default that every call overrides, is checked too, since generated code and the other
front end see every name a spec writes.
"""

from __future__ import annotations

import keyword
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache

from ..errors import CnnspecError, SpecError, did_you_mean
from ..language import ir
from ..language.expressions import FUNCTIONS, OpRef, bind_function
from ..language.parse_cnn import parse_prelude
from .binding import match_arguments
from .combinators import RULES
from .ops import LAYERS

# Names the input shape and the network bind in every argument list.
SHAPE_NAMES = ("C", "H", "W")
# ...and the shape of the input of the block being written (of the network, outside one):
# inside a branch, C is what that branch's layer receives, C_in still the block's input.
INPUT_NAMES = ("C_in", "H_in", "W_in")
# ...and the names generated block classes use for their own locals.
RESERVED_PARAMS = (
    *SHAPE_NAMES,
    *INPUT_NAMES,
    "classes",
    "in_channels",
    "channels",
    "stride",
    "layers",
    "units",
)

# The layers an expression may name as values, to pass to a block (`act=hardswish`): those
# that need no arguments.
OP_VALUES = {op: OpRef(op) for op, layer in LAYERS.items() if not layer.required()}

# Attributes of torch.nn.Module (and of the combinator modules) a child name must not hide.
MODULE_ATTRIBUTES = frozenset(
    """
    forward training train eval to cuda cpu type float double half bfloat16 apply
    parameters named_parameters buffers named_buffers children named_children modules
    named_modules state_dict load_state_dict zero_grad requires_grad_ register_buffer
    register_parameter register_module add_module get_submodule extra_repr branches
    shortcut torch nn self
    """.split()
)


# Attributes of the containers that hold stages (the network, an nn.Sequential) and branches
# (an nn.ModuleDict), as of torch 2.x: torch refuses a child of such a name, or the child
# hides a method the build calls. Listed here so that `check` needs no torch; a test holds
# the list to torch's own.
CONTAINER_ATTRIBUTES = (
    MODULE_ATTRIBUTES
    | frozenset(
        """
    T_destination add_module append apply bfloat16 buffers call_super_init children clear
    compile cpu cuda double dump_patches eval extend extra_repr float forward get_buffer
    get_extra_state get_parameter get_submodule half insert ipu items keys load_state_dict
    modules mtia named_buffers named_children named_modules named_parameters parameters pop
    register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
    register_full_backward_hook register_full_backward_pre_hook
    register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
    register_parameter register_state_dict_post_hook register_state_dict_pre_hook
    requires_grad_ set_extra_state set_submodule share_memory spec_name state_dict to
    to_empty train training type update values xpu zero_grad
    """.split()
    )
    | {
        "steps",  # where a network or block of named lines keeps its graph (runtime.py)
        "reset_parameters",  # what init_xavier calls on every module that has it
        "out_channels",  # what a generated block class keeps its output channels in
    }
)


def check_child_name(name: str, what: str, pos) -> None:
    """A stage or branch name: it becomes a child of a torch container."""
    check_identifier(name, what, pos)
    if name in CONTAINER_ATTRIBUTES:
        raise SpecError(
            f"{what} name '{name}' is taken by torch's module containers "
            "(nn.Sequential, nn.ModuleDict); choose another",
            pos,
        )


def check_identifier(name: str, what: str, pos) -> None:
    if name in ir.RESERVED_WORDS:
        kind = "a combinator" if name in ir.COMBINATORS else "a keyword of the language"
        raise SpecError(f"{what} name '{name}' is a reserved word ({kind}); choose another", pos)
    if not (name.isascii() and name.isidentifier()) or keyword.iskeyword(name):
        raise SpecError(
            f"{what} name {name!r} must be an ASCII identifier and not a Python keyword", pos
        )
    if name.startswith("_") or name in MODULE_ATTRIBUTES:
        why = _RESERVED_WHY.get(name, "an attribute of torch.nn.Module")
        if name.startswith("_"):
            why = "a name starting with _"
        raise SpecError(f"{what} name '{name}' is reserved ({why}); choose another", pos)


_RESERVED_WHY = {
    "shortcut": "add keeps its projection under it",
    "branches": "combinators keep their branches under it",
    "torch": "generated code imports it",
    "nn": "generated code imports it",
    "self": "generated code's own name",
}


def _items(items: tuple) -> Iterator:
    """Every item of a body as written, in order: inside repeats, both sides of a
    condition, and each combinator's branches (the combinator before them)."""
    stack = list(reversed(items))
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, (ir.Repeat, ir.For)):
            stack.extend(reversed(item.body))
        elif isinstance(item, ir.If):
            stack.extend(reversed((*item.body, *item.orelse)))
        elif isinstance(item, ir.Combinator):
            for branch in reversed(item.branches):
                stack.extend(reversed(branch.body))
        elif isinstance(item, ir.Line):
            stack.extend(reversed(item.body))


def _calls(items: tuple) -> Iterator[ir.Call]:
    return (item for item in _items(items) if isinstance(item, ir.Call))


def _combinators(items: tuple) -> Iterator[ir.Combinator]:
    return (item for item in _items(items) if isinstance(item, ir.Combinator))


@cache
def builtin_blocks() -> dict[str, ir.BlockDef]:
    """The built-in blocks (`prelude.cnn`), parsed and checked once."""
    plain, source = parse_prelude()
    try:
        blocks = tuple(ir.BlockDef.model_validate(ir.strict_ready(b)) for b in plain["blocks"])
        empty = ir.Network(name="prelude", input=(1,), stages=())
        return _resolve(ir.Document(blocks=blocks, network=empty), {})
    except CnnspecError as err:
        raise err.with_source(source) from None


def resolve(doc: ir.Document) -> dict[str, ir.BlockDef]:
    """Check the document's names; return every block it can call (its own and the
    built-in ones), by name."""
    return _resolve(doc, {**builtin_blocks(), **{b.name: b for b in doc.used}})


class _Errors:
    """The errors of a check that goes on past them: each block and each stage is checked
    on its own, so a spec with several wrong ones has each reported. The first is raised,
    as it always was, with the others in its `more`."""

    def __init__(self) -> None:
        self.found: list[CnnspecError] = []

    @contextmanager
    def each(self) -> Iterator[None]:
        try:
            yield
        except CnnspecError as err:
            self.found.append(err)

    def raise_first(self) -> None:
        if self.found:
            first, *more = self.found
            first.more = [*first.more, *more]
            raise first


def _resolve(doc: ir.Document, prelude: Mapping[str, ir.BlockDef]) -> dict[str, ir.BlockDef]:
    errors = _Errors()
    own: dict[str, ir.BlockDef] = {}
    for block in doc.blocks:
        with errors.each():
            _check_definition(block, doc, own)
        own.setdefault(block.name, block)  # a wrong one too, so its calls are not unknown

    with errors.each():
        check_identifier(doc.network.name, "network", doc.network.pos)
    network_params = {kw.name for kw in doc.network.params}
    with errors.each():
        network_params = _network_params(doc.network)
    visible = {**prelude, **own}
    for block in doc.blocks:
        with errors.each():
            params = {p.name for p in block.params}
            tensors, starts = _block_tensors(block, visible, params)
            _check_calls(block.body, block.pos, visible, own, block.name, params, tensors, starts)
            _check_names(block, {p.name for p in block.params})
    stages: dict[str, ir.Stage] = {}
    tensors = {ir.INPUT, *(stage.name for stage in doc.network.stages)}
    for stage in doc.network.stages:
        with errors.each():
            _check_stage(stage, stages, doc.network.pos, visible, own, tensors, network_params)
        stages.setdefault(stage.name, stage)
    for body in [b.body for b in doc.blocks] + [s.body for s in doc.network.stages]:
        with errors.each():
            for comb in _combinators(body):
                for branch in comb.branches:
                    if branch.name is not None:
                        check_child_name(branch.name, "branch", branch.pos)
    errors.raise_first()
    return visible


def _check_definition(block: ir.BlockDef, doc: ir.Document, own) -> None:
    """A block's name and parameters."""
    if block.name in ir.RESERVED_WORDS:
        check_identifier(block.name, "block", block.pos)  # says which reserved word
    if block.name in LAYERS:
        raise SpecError(f"block '{block.name}' has the name of a built-in layer", block.pos)
    check_identifier(block.name, "block", block.pos)
    origin = doc.origins.get(block.name)
    if origin is not None:
        raise SpecError(
            f"block '{block.name}' is also defined in {origin[0].name}; choose another name",
            block.pos,
        )
    if block.name in own:
        first = own[block.name].pos
        raise SpecError(
            f"block '{block.name}' is defined twice (first at {first[0]}:{first[1]})",
            block.pos,
        )
    seen: set[str] = set()
    for param in block.params:
        check_identifier(param.name, "parameter", param.pos)
        if param.name in RESERVED_PARAMS:
            raise SpecError(f"'{param.name}' is reserved and cannot be a parameter", param.pos)
        if param.name in seen:
            raise SpecError(f"parameter '{param.name}' is listed twice", param.pos)
        seen.add(param.name)


def _check_stage(stage: ir.Stage, stages, user_pos, visible, own, tensors, params) -> None:
    """A stage's name, the calls in it and the names its expressions read."""
    check_child_name(stage.name, "stage", stage.pos)
    if stage.name == ir.INPUT:
        raise SpecError(f"'{ir.INPUT}' names the network's input; choose another", stage.pos)
    if stage.name in stages:
        first = stages[stage.name].pos
        raise SpecError(
            f"duplicate stage name '{stage.name}' (first at {first[0]}:{first[1]})", stage.pos
        )
    body = stage.body
    if body and _names_tensor(body[0], tensors, visible):
        body = body[1:]  # what the stage starts from: inference checks it was made above
    _check_calls(body, user_pos, visible, own, None, tensors=tensors)
    _check_names(stage, params)


# Recipe fields: a network parameter may not take one's name, so `--set NAME=...` is clear.
_RECIPE_FIELDS = frozenset(ir.Recipe.model_fields) - set(ir.METADATA_KEYS)


def _network_params(net: ir.Network) -> set[str]:
    """The network's own parameters: fresh names that some stage reads. One that none reads
    is most often a misspelt option."""
    names: set[str] = set()
    read = {name.id for stage in net.stages for name in names_in(stage)}
    for kw in net.params:
        check_identifier(kw.name, "network parameter", kw.pos)
        if kw.name in RESERVED_PARAMS or kw.name in _RECIPE_FIELDS:
            raise SpecError(f"'{kw.name}' is reserved and cannot be a network parameter", kw.pos)
        _check_names(kw.value, names)  # a parameter may read those before it
        if kw.name not in read:
            hint = did_you_mean(kw.name, ir.NETWORK_OPTIONS)
            if hint:
                raise SpecError(f"unknown key '{kw.name}' in the network{hint}", kw.pos)
            raise SpecError(f"network parameter '{kw.name}' is not read by any stage", kw.pos)
        names.add(kw.name)
    return names


def names_in(node: ir.Node) -> Iterator[ir.Name]:
    """Every name read under `node`."""
    stack: list = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ir.Name):
            yield item
        elif isinstance(item, ir.Node):
            stack.extend(getattr(item, f) for f in type(item).model_fields)
        elif isinstance(item, tuple):
            stack.extend(item)


def _block_tensors(block: ir.BlockDef, visible, params) -> tuple[set[str], set[int]]:
    """The tensors a block's named lines make (with its input), and the lines' first items
    that read one (by id): what each of those lines starts from."""
    for item in block.body:
        inner = (*item.body, *item.orelse) if isinstance(item, ir.If) else ()
        if isinstance(item, (ir.Repeat, ir.For)):
            inner = item.body
        for line in (i for i in _items(inner) if isinstance(i, ir.Line)):
            raise SpecError(
                f"a named line ({line.name}: ...) stands at the top of a block's body, not "
                "inside an if, a for or a repeat: the tensor it names must be made once, "
                "whatever the condition or the rows",
                line.pos,
            )
    lines = [item for item in block.body if isinstance(item, ir.Line)]
    if not lines:
        return set(), set()
    tensors = {ir.INPUT}
    for line in lines:
        check_child_name(line.name, "line", line.pos)
        if line.name == ir.INPUT:
            raise SpecError(f"'{ir.INPUT}' names the block's input; choose another", line.pos)
        if line.name in tensors:
            raise SpecError(f"line '{line.name}' is named twice in block '{block.name}'", line.pos)
        tensors.add(line.name)
    starts = {
        id(line.body[0])
        for line in lines
        if line.body and _names_tensor(line.body[0], tensors - params, visible)
    }
    return tensors - params, starts


def _names_tensor(item, tensors, visible) -> bool:
    """A bare name, first in a stage, naming a tensor rather than a layer or a block."""
    return (
        isinstance(item, ir.Call)
        and not item.args
        and not item.kwargs
        and item.op in tensors
        and item.op not in LAYERS
        and item.op not in visible
    )


def _check_calls(
    body,
    user_pos,
    visible,
    own,
    inside: str | None,
    own_params=(),
    tensors=frozenset(),
    starts=frozenset(),
) -> None:
    for comb in _combinators(body):
        for kw in comb.kwargs:
            options = RULES[comb.kind].options
            if kw.name not in options:
                hint = did_you_mean(kw.name, options)
                raise SpecError(f"{comb.kind} has no option '{kw.name}'{hint}", kw.pos)
    for call in _calls(body):
        if id(call) in starts:
            continue  # what a line starts from: inference checks it was made above
        if call.op in own_params and call.op not in LAYERS and call.op not in visible:
            continue  # a parameter holding a layer: checked when the block is called
        if call.op in LAYERS:
            model = LAYERS[call.op]
            match_arguments(call, model.signature(), model.required())
            continue
        if call.op in tensors and call.op not in visible:
            raise SpecError(
                f"'{call.op}' is a tensor, not a layer: a stage or a named line reads a tensor "
                f"as the first thing in it ({call.op} conv(...)), or joins several "
                f"(add({call.op}, ...))",
                call.pos,
            )
        if call.op not in visible:
            hint = did_you_mean(call.op, [*LAYERS, *visible, *ir.COMBINATORS])
            if call.op in ("softmax", "log_softmax"):  # scores go to cross-entropy as they are
                hint = "; leave it out: a network gives scores, cross-entropy applies the softmax"
            raise SpecError(f"unknown layer or block '{call.op}'{hint}", call.pos)
        if call.op == inside:
            raise SpecError(f"block '{inside}' calls itself; blocks cannot be recursive", call.pos)
        target = own.get(call.op)
        if target is not None and target.pos > user_pos:
            line, col = target.pos
            raise SpecError(
                f"block '{call.op}' is used before its definition at {line}:{col}", call.pos
            )
        params = visible[call.op].params
        match_arguments(
            call, [p.name for p in params], {p.name for p in params if p.default is None}
        )


def _check_names(node: ir.Node, params: set[str]) -> None:
    """Every name an expression reads is a parameter, `classes`, a shape name or the index
    of a repeat around it, and every function it calls is one of the language's, called
    with its arguments. Errors come in the order things are written."""
    stack: list = [(node, frozenset({*params, "classes", *SHAPE_NAMES, *INPUT_NAMES, *OP_VALUES}))]
    while stack:
        item, known = stack.pop()
        if isinstance(item, ir.Name) and item.id not in known:
            if item.id in LAYERS:
                raise SpecError(
                    f"'{item.id}' needs arguments, so it cannot be passed as a layer "
                    "(only layers that need none can)",
                    item.pos,
                )
            if item.id in FUNCTIONS:  # `* int(n)`: the count is `int`, then a group
                raise SpecError(
                    f"'{item.id}' is a function, called as {item.id}(...); a repeat count "
                    f"that calls one is bracketed: * ({item.id}(...))",
                    item.pos,
                )
            hint = did_you_mean(item.id, sorted(known - OP_VALUES.keys()))
            raise SpecError(f"unknown name '{item.id}'{hint}", item.pos)
        if isinstance(item, ir.Func):
            bind_function(item)
        if isinstance(item, ir.Join):
            continue  # its names are tensors, which inference checks where they are read
        if isinstance(item, ir.Call) and item.op in LAYERS:
            # Tensor names (`like=lat4`) and words (`mode=bilinear`) are no expressions.
            model = LAYERS[item.op]
            plain = set(model.tensor_fields) | set(model.words())
            exprs = match_arguments(item, model.signature(), model.required())
            stack.extend((e, known) for n, e in reversed(exprs.items()) if n not in plain)
            continue
        if isinstance(item, ir.Repeat) and item.index is not None:
            stack.append((item.body, known | {_index_name(item, known)}))
            stack.append((item.count, known))  # the count cannot see its own index
        elif isinstance(item, ir.For):
            where = item.keypos.get("names", item.pos)
            names = {_fresh_name(n, "for", where, known) for n in item.names}
            if len(names) < len(item.names):
                raise SpecError("a for names each of its values once", where)
            stack.append((item.body, known | names))
            stack.append((item.rows, known))  # the rows cannot see the names they bind
        elif isinstance(item, ir.Node):
            fields = [
                getattr(item, f) for f in type(item).model_fields if f not in ir.METADATA_KEYS
            ]
            stack.extend((f, known) for f in reversed(fields))
        elif isinstance(item, tuple):
            stack.extend((i, known) for i in reversed(item))


def _index_name(repeat: ir.Repeat, known: frozenset[str]) -> str:
    """A repeat's index: a fresh name, since it becomes a loop variable in block classes."""
    return _fresh_name(repeat.index, "repeat index", repeat.keypos.get("index", repeat.pos), known)


def _fresh_name(name: str, what: str, pos, known: frozenset[str]) -> str:
    check_identifier(name, what, pos)
    if name in RESERVED_PARAMS or name in known:
        why = "is reserved" if name in RESERVED_PARAMS else "is already a name here"
        raise SpecError(f"{what} '{name}' {why}; choose another", pos)
    return name
