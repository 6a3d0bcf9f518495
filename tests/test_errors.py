"""Every error path: one clear message at the right line and column, with a caret."""

import os
from pathlib import Path

import pytest
from conftest import error_of, net

from cnnspec.errors import LimitError, ShapeError, SpecError, SpecSyntaxError
from cnnspec.language.ir import _UNION_TAGS

BRANCHES = "network T(input=1x28x28, classes=10):\n    s:\n        {kind}:\n{branches}"


def branches(kind: str, *lines: str) -> str:
    return BRANCHES.format(kind=kind, branches="".join(f"            {x}\n" for x in lines))


# (spec text, error class, message fragment, line, column)
CNN_CASES = {
    "syntax: unclosed call": (
        net("conv(6, k=5"), SpecSyntaxError, "unexpected end of input", 3, 19),
    "syntax: stray bracket": (
        net("conv(6, k=5) )"), SpecSyntaxError, "unexpected ')'; expected end of line", 3, 21),
    "syntax: bad character": (
        net("conv(6, k=5) $"), SpecSyntaxError, "unexpected character '$'", 3, 21),
    "syntax: unexpected indentation": (
        "network T(input=1x28x28):\n  s: relu\n   t: relu\n", SpecSyntaxError,
        "unexpected indentation", 3, 4),
    "syntax: dedent to no level": (
        "network T(input=1x28x28):\n    s:\n        relu\n      relu\n", SpecSyntaxError,
        "indentation does not match any outer level", 4, 1),
    "unknown op": (
        net("conv(6, k=5) rleu"), SpecError,
        "unknown layer or block 'rleu' (did you mean 'relu'?)", 3, 21),
    "unknown block": (
        net("incepton(1, (1, 1), (1, 1), 1)"), SpecError,
        "unknown layer or block 'incepton' (did you mean 'inception'?)", 3, 8),
    "unknown keyword argument": (
        net("conv(6, kk=5)"), SpecError, "conv has no argument 'kk' (did you mean 'k'?)", 3, 16),
    "unknown block argument": (
        net("foo(chan=3)", blocks="block foo(chans):\n    conv(chans, k=1)\n"), SpecError,
        "foo has no argument 'chan' (did you mean 'chans'?)", 5, 12),
    "unknown name in an expression": (
        net("foo(3)", blocks="block foo(chans):\n    conv(chan, k=1)\n"), SpecError,
        "unknown name 'chan' (did you mean 'chans'?)", 2, 10),
    "wrong argument type": (
        net("conv(6, k=2.5)"), SpecError, ("conv argument 'k': input should be a valid integer, "
        "got 2.5"), 3, 18),
    "argument out of range": (
        net("dropout(1.5)"), SpecError, ("dropout argument 'p': input should be less than or "
        "equal to 1, got 1.5"), 3, 16),
    "too many arguments": (
        net("conv(6, 5, 1, 0, 1, 1, true, 9)"), SpecError,
        "conv takes at most 7 positional arguments (out, k, s, p, d, groups, bias), got 8",
        3, 37),
    "missing argument": (net("conv(6)"), SpecError, "conv is missing argument 'k'", 3, 8),
    "argument given twice": (
        net("conv(6, 3, k=3)"), SpecError, "conv argument 'k' is given twice", 3, 19),
    "channel mismatch in add": (
        branches("add", "a: conv(6, k=3, p=1)", "b: conv(8, k=3, p=1)"), ShapeError,
        "add branch b gives 8x28x28 but branch a gives 6x28x28", 5, 13),
    "add scale that is not a number": (
        branches("add(scale=true)", "conv(1, k=3, p=1)"), SpecError,
        "add option 'scale' must be a number or none, got true", 3, 19),
    "add scale on branches that are summed": (
        branches("add(scale=0.1)", "a: conv(1, k=1)", "b: conv(1, k=1)"), SpecError,
        "add has 2 branches, which are summed with no residual to scale; scale= applies",
        3, 13),
    "add scale on features": (
        branches("add(scale=0.1)", "flatten linear(784)"), ShapeError,
        "add: scale= needs the branch to give an image (C x H x W), got 784", 3, 13),
    "forbidden projection in add": (
        ("network T(input=1x28x28):\n    s:\n        add(project=false):\n"
        "            conv(6, k=3, p=1)\n"), ShapeError,
        "add: the branch turns 1x28x28 into 6x28x28 but project=false", 3, 9),
    "spatial mismatch in concat": (
        branches("concat", "conv(6, k=3, p=1)", "conv(8, k=3)"), ShapeError,
        "concat branch 1 gives 8x26x26 but branch 0 gives 6x28x28", 5, 13),
    "gate that cannot multiply the input": (
        branches("mul", "gap conv(2, k=1) sigmoid"), ShapeError,
        "mul: the gate gives 2x1x1, which cannot multiply the input 1x28x28 (from the network "
        "input); a gate gives the input's shape or 1 where it differs, such as 1x1x1 or 1x28x28",
        4, 13),
    "mul with two branches": (
        branches("mul", "a: conv(1, k=1) sigmoid", "b: conv(1, k=1) sigmoid"), SpecError,
        "mul takes one branch, the gate that multiplies the input; got 2", 5, 13),
    "split with one branch": (
        branches("split", "identity"), SpecError, "split needs two or more branches", 3, 9),
    "split channels not divisible": (
        ("network T(input=3x28x28):\n    s: conv(5, k=1)\n    t:\n        split:\n"
        "            identity\n            relu\n"), ShapeError,
        "split into 2 branches needs channels divisible by 2, got 5x28x28 (from conv at 2:8)",
        4, 9),
    "spatial mismatch in split": (
        branches("split", "conv(6, k=3, p=1)", "conv(8, k=3)").replace("1x28", "2x28"),
        ShapeError,
        "split branch 1 gives 8x26x26 but branch 0 gives 6x28x28", 5, 13),
    "size shrinks to zero": (
        net("conv(6, k=5) maxpool(2) conv(6, k=5) maxpool(2) conv(6, k=5)"), ShapeError,
        ("conv shrinks the height to 0: input height 4 is too small for kernel 5 (dilation 1) "
        "with padding 0 and stride 1 (from maxpool at 3:45)"), 3, 56),
    "size shrinks below zero": (
        net("maxpool(2) maxpool(2) maxpool(2) maxpool(2) maxpool(2)"), ShapeError,
        "maxpool shrinks the height to 0", 3, 52),
    "linear in_features disagrees": (
        net("conv(16, k=5) maxpool(2) conv(16, k=5) maxpool(2) flatten linear(120, "
            "in_features=400)"), ShapeError,
        "linear expects 400 input features, got 256 (from flatten at 3:58)", 3, 66),
    "conv after flatten": (
        net("flatten conv(3, k=1)"), ShapeError,
        "conv needs an image (C x H x W) as input, got 784 features (from flatten at 3:8)",
        3, 16),
    "linear on an image": (
        net("conv(6, k=5) linear(10)"), ShapeError,
        "linear needs features as input (add flatten), got 6x24x24 (from conv at 3:8)", 3, 21),
    "pointwise_linear after flatten": (
        net("flatten pointwise_linear(10)"), ShapeError,
        "pointwise_linear needs an image (C x H x W) as input, got 784 features "
        "(from flatten at 3:8)", 3, 16),
    "groupnorm groups do not divide the channels": (
        net("conv(6, k=1) groupnorm(4)"), ShapeError,
        "groupnorm g=4 must divide the channels (6) (from conv at 3:8)", 3, 21),
    "channel_shuffle groups do not divide the channels": (
        net("conv(6, k=1) channel_shuffle(4)"), ShapeError,
        "channel_shuffle g=4 must divide the channels (6) (from conv at 3:8)", 3, 21),
    "layer_scale after flatten": (
        net("flatten layer_scale"), ShapeError,
        "layer_scale needs an image (C x H x W) as input, got 784 features (from flatten at 3:8)",
        3, 16),
    "drop_path probability out of range": (
        net("relu drop_path(p=1.5)"), SpecError,
        "drop_path argument 'p': input should be less than or equal to 1, got 1.5", 3, 25),
    "block used before its definition": (
        "network T(input=1x28x28):\n    s: foo(3)\nblock foo(c):\n    conv(c, k=1)\n",
        SpecError, "block 'foo' is used before its definition at 3:7", 2, 8),
    "block used without definition": (
        net("foo(3)"), SpecError, "unknown layer or block 'foo'", 3, 8),
    "recursive block": (
        "block foo(c):\n    relu foo(c)\nnetwork T(input=1x28x28):\n    s: foo(3)\n",
        SpecError, "block 'foo' calls itself; blocks cannot be recursive", 2, 10),
    "duplicate stage names": (
        "network T(input=1x28x28):\n    s: relu\n    s: relu\n", SpecError,
        "duplicate stage name 's' (first at 2:5)", 3, 5),
    "duplicate block": (
        "block a():\n    relu\nblock a():\n    relu\nnetwork T(input=1x28x28):\n    s: a\n",
        SpecError, "block 'a' is defined twice (first at 1:7)", 3, 7),
    "stage name hides a module attribute": (
        "network T(input=1x28x28):\n    forward: relu\n", SpecError,
        "stage name 'forward' is reserved", 2, 5),
    "nothing may follow heads": (
        ("network T(input=1x28x28):\n    s:\n        heads:\n            a: flatten linear(3)\n"
        "    t: relu\n"), SpecError, "nothing can follow heads (at 3:9)", 5, 8),
    "a fraction as a size": (
        net("conv(6 / 2, k=1)"), SpecError, ("conv argument 'out': input should be a valid "
        "integer, got 3.0; use int(...) or round(...) to make a whole number"), 3, 13),
    "a fraction from a width rule inside a block": (
        net("unit(16)", blocks="block unit(c):\n    conv(c * 0.75, k=1)\n"), SpecError,
        "got 12.0; use int(...) or round(...)", 2, 10),
    "a fraction as a repeat count": (
        net("relu * (4 / 2)"), SpecError, "got 2.0; use int(...) or round(...)", 3, 16),
    "repeat index hides a parameter": (
        net("relu", blocks="block foo(i):\n    conv(i, k=1) * 2 as i\n"), SpecError,
        "repeat index 'i' is already a name here; choose another", 2, 25),
    "reserved repeat index": (
        net("relu * 2 as C"), SpecError, "repeat index 'C' is reserved", 3, 20),
    "repeat index that is a keyword": (
        net("relu * 2 as lambda"), SpecError, "repeat index name 'lambda' must be", 3, 20),
    "repeat index read outside its repeat": (
        net("(conv(1 + i, k=1)) * 2 as i conv(i, k=1)"), SpecError, "unknown name 'i'", 3, 41),
    "repeat count reads its own index": (
        net("relu * i as i"), SpecError, "unknown name 'i'", 3, 15),
    "a condition that is a number": (
        net("relu if 3"), SpecError, "a condition needs true or false, got 3", 3, 16),
    "'and' of a number": (
        net("relu if true and 2"), SpecError, "'and' needs true or false, got 2", 3, 25),
    "an ordering of tuples": (
        net("relu if (1, 2) < (2, 1)"), SpecError, "'<' needs numbers, got (1, 2)", 3, 16),
    "a chained comparison": (
        net("relu if 1 < 2 < 3"), SpecSyntaxError, "unexpected '<'", 3, 22),
    "a group after a layer, spaced as if it were no call": (
        net("relu (conv(4, k=1) relu) * 2"), SpecSyntaxError,
        "unexpected 'relu'; expected ')' or ',' ('relu (' is a call of relu, space or not; a "
        "group after it goes on a line of its own, or first)", 3, 27),
    "a repeat count that calls a function unbracketed": (
        net("b()", blocks="block b(n=2):\n    (conv(4, k=1)) * int(n)\n"), SpecError,
        "'int' is a function, called as int(...); a repeat count that calls one is "
        "bracketed: * (int(...))", 2, 22),
    "a repeat count that calls a function of two arguments unbracketed": (
        net("b()", blocks="block b(n=2):\n    (conv(4, k=1)) * max(n, 1)\n"), SpecSyntaxError,
        "unexpected ','; expected '(' or ')' or '*' or a combinator or a name or end of line "
        "(a repeat count is a number, a name or a bracketed expression: * (max(...)))", 2, 27),
    "a stage that reads itself": (
        "network T(input=1x8x8):\n    a: conv(4, k=1)\n    b: b conv(4, k=1)\n", SpecError,
        "stage b reads itself; a stage reads only tensors made above it", 3, 8),
    "softmax at the end": (
        net("flatten linear(classes) softmax"), SpecError,
        "unknown layer or block 'softmax'; leave it out: a network gives scores, "
        "cross-entropy applies the softmax", 3, 32),
    "a stage after outputs": (
        "network T(input=1x8x8):\n    a: conv(4, k=1)\n    outputs: a\n    b: relu\n",
        SpecSyntaxError, "'outputs: ...' is the network's last line: put the stages before it",
        4, 5),
    "a combinator after a layer on its line": (
        net("conv(4, k=1) add:\n        conv(4, k=1)"), SpecSyntaxError,
        "'add:' starts a line of its own, its branches indented below it; put what comes "
        "before it on a line above", 3, 21),
    "a combinator after a stage's name": (
        net("add:\n        conv(4, k=1)"), SpecSyntaxError,
        "'add:' starts a line of its own, its branches indented below it; put it on the line "
        "below 's:', indented", 3, 8),
    "if among a network's stages": (
        net("relu\n    if true:\n        t: relu"), SpecSyntaxError,
        "'if' stands inside a body (a stage's indented lines, a block's), not among a "
        "network's stages", 4, 5),
    "a named line inside a for": (
        net("u(4)", blocks="block u(c):\n    x: conv(c, k=1)\n    for i in [1, 2]:\n"
            "        y: x conv(c, k=1)\n    out: x relu\n"), SpecError,
        "a named line (y: ...) stands at the top of a block's body, not inside an if, a for "
        "or a repeat", 4, 9),
    "else without if": (
        net("relu\n    else: relu"), SpecSyntaxError,
        "'else' is a reserved word (a keyword of the language, which follows the lines of an "
        "if)", 4, 5),
    "a parameter called as a layer that holds a number": (
        net("u(4)", blocks="block u(c, act=3):\n    conv(c, k=1) act\n"), SpecError,
        "'act' is called as a layer but holds 3; pass a layer that needs no arguments", 2, 18),
    "a layer that needs arguments passed as a value": (
        net("u(4, act=conv)", blocks="block u(c, act=relu):\n    conv(c, k=1) act\n"),
        SpecError, "'conv' needs arguments, so it cannot be passed as a layer", 5, 17),
    "a layer as a size": (
        net("conv(relu, k=1)"), SpecError, "conv argument 'out': input should be a valid "
        "integer, got relu", 3, 13),
    "network parameter no stage reads": (
        "network T(input=1x28x28, width=2):\n    s: relu\n", SpecError,
        "network parameter 'width' is not read by any stage", 1, 26),
    "reserved network parameter": (
        "network T(input=1x28x28, lr=2):\n    s: conv(lr, k=1)\n", SpecError,
        "'lr' is reserved and cannot be a network parameter", 1, 26),
    "network parameter reading a later one": (
        "network T(input=1x28x28, a=b, b=2):\n    s: conv(a + b, k=1)\n", SpecError,
        "unknown name 'b'", 1, 28),
    "unknown function": (
        net("conv(rond(6.5), k=1)"), SpecError,
        "unknown function 'rond' (did you mean 'round'?)", 3, 13),
    "unknown function in a block never called": (
        net("relu", blocks="block foo(c):\n    conv(flor(c), k=1)\n"), SpecError,
        "unknown function 'flor'", 2, 10),
    "function with too many arguments": (
        net("conv(round(6.5, 1), k=1)"), SpecError,
        "round takes at most 1 arguments (x), got 2", 3, 24),
    "function with an unknown keyword": (
        net("conv(make_divisible(30, div=4), k=1)"), SpecError,
        "make_divisible has no argument 'div' (did you mean 'divisor'?)", 3, 32),
    "min of one number": (net("conv(min(3), k=1)"), SpecError,
        "min takes two or more numbers, by position", 3, 13),
    "make_divisible by zero": (
        net("conv(make_divisible(30, 0), k=1)"), SpecError,
        "make_divisible's divisor must be a whole number >= 1, got 0", 3, 32),
    "true division by zero": (net("conv(6 / (1 - 1), k=1)"), SpecError,
        "division by zero in '/'", 3, 13),
    "function of a tuple": (net("conv(max((1, 2), 3), k=1)"), SpecError,
        "'max' needs numbers, got (1, 2)", 3, 13),
    "index out of range": (
        net("foo((1, 2))", blocks="block foo(c):\n    conv(c[2], k=1)\n"), SpecError,
        "index 2 is out of range for (1, 2) of length 2", 2, 12),
    "unknown train option": (
        "network T(input=1x28x28):\n    s: relu\ntrain(lr=0.1, epoch=3)\n", SpecError,
        "unknown key 'epoch' in the train recipe (did you mean 'epochs'?)", 3, 15),
    "bad train value": (
        "network T(input=1x28x28):\n    s: relu\ntrain(optimizer=sgdd)\n", SpecError,
        "'optimizer' should be 'sgd', 'adam' or 'adamw', got 'sgdd'", 3, 7),
    "unknown network option": (
        "network T(input=1x28x28, clases=3):\n    s: relu\n", SpecError,
        "unknown key 'clases' in the network (did you mean 'classes'?)", 1, 26),
    "no network": (
        "block foo(c):\n    conv(c, k=1)\n", SpecError, "this spec has no network", 1, 1),
    "two networks": (
        net("relu") + "network U(input=1x28x28):\n    s: relu\n", SpecError,
        "a spec holds one network; this is a second one", 4, 9),
    "position key as a train option": (
        "network T(input=1x28x28):\n    s: relu\ntrain(pos=3)\n", SpecError,
        "train option 'pos' is not an option", 3, 7),
    "network option given twice": (
        "network T(input=1x28x28, input=1x8x8):\n    s: relu\n", SpecError,
        "network option 'input' is given twice", 1, 26),
    "negative repeat": (net("relu * (1 - 2)"), SpecError, ("a repeat count must be a whole "
                        "number >= 0, got -1"), 3, 16),
    # Names are checked as written, not as expanded: codegen and YAML see every one.
    "unknown keyword in a call repeated zero times": (
        net("(conv(4, kk=1)) * 0 relu"), SpecError, "conv has no argument 'kk'", 3, 17),
    "unknown block keyword in a call repeated zero times": (
        net("(foo(chan=3)) * 0", blocks="block foo(chans):\n    conv(chans, k=1)\n"),
        SpecError, "foo has no argument 'chan' (did you mean 'chans'?)", 5, 13),
    "missing argument in a call repeated zero times": (
        net("conv * 0 relu"), SpecError, "conv is missing argument 'out'", 3, 8),
    "unknown name in a default every call overrides": (
        net("foo(3)", blocks="block foo(c=cc):\n    conv(c, k=1)\n"), SpecError,
        "unknown name 'cc' (did you mean 'c'?)", 1, 13),
    "unknown name in a block never called": (
        net("relu", blocks="block foo(c):\n    conv(d, k=1)\n"), SpecError,
        "unknown name 'd'", 2, 10),
    "unknown combinator option in a block never called": (
        net("relu", blocks="block foo():\n    add(projet=true):\n        relu\n"),
        SpecError, "add has no option 'projet' (did you mean 'project'?)", 2, 9),
}  # fmt: skip

YAML_HEAD = "network:\n  name: T\n  input: 1x28x28\n  stages:\n"
YAML_CASES = {
    "unknown key": (
        "network:\n  name: T\n  input: 1x28x28\n  stagez: {}\n", SpecError,
        "unknown key 'stagez' in the network (did you mean 'stages'?)", 4, 3),
    "unknown top-level key": (
        YAML_HEAD + "    a: [relu]\ntrian: {}\n", SpecError,
        "unknown key 'trian' in the spec (did you mean 'train'?)", 6, 1),
    "anchor": (
        YAML_HEAD + "    a: &x [relu]\n", SpecError, "YAML anchors (&name) are not allowed", 5, 8),
    "alias": (
        YAML_HEAD + "    a: [relu]\n    b: *x\n", SpecError, ("YAML aliases (*name) are not "
        "allowed"), 6, 8),
    "python tag": (
        "network: !!python/object/apply:os.system ['echo hi']\n", SpecError,
        "YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed", 1, 10),
    "local tag": (YAML_HEAD + "    a: !thing [relu]\n", SpecError, "YAML tag '!thing'", 5, 8),
    "syntax": ("network:\n  name: [T\n  x: 1\n", SpecSyntaxError, "invalid YAML", 3, 4),
    "unknown argument": (
        YAML_HEAD + "    a: [{conv: 3, kk: 1}]\n", SpecError,
        "conv has no argument 'kk' (did you mean 'k'?)", 5, 19),
    "position key": (
        "network:\n  name: T\n  pos: [1, 1]\n", SpecError,
        "unknown key 'pos' in the network", 3, 3),
    "duplicate key": (
        YAML_HEAD + "    a: [relu]\n    a: [relu]\n", SpecError,
        "key 'a' appears twice (first at 5:5)", 6, 5),
    "bad expression string": (
        YAML_HEAD + "    a: [{conv: 'C *', k: 1}]\n", SpecSyntaxError,
        "unexpected end of input", 5, 19),
    "channel mismatch": (
        YAML_HEAD + "    a:\n      - add:\n          x: [{conv: 6, k: 3, p: 1}]\n"
        "          y: [{conv: 8, k: 3, p: 1}]\n", ShapeError,
        "add branch y gives 8x28x28 but branch x gives 6x28x28", 8, 11),
    "unknown key in a repeat": (
        YAML_HEAD + "    a: [{repeat: 2, idx: i, body: [relu]}]\n", SpecError,
        "repeat takes `repeat: n`, `body: [...]` and an optional `index: name`", 5, 21),
    "if without a body": (
        YAML_HEAD + "    a: [{if: true, then: [relu]}]\n", SpecError,
        "if takes `if: condition`, `body: [...]` and an optional `else: [...]`", 5, 20),
    "gate that cannot multiply the input": (
        YAML_HEAD + "    a:\n      - {conv: 4, k: 1}\n      - mul:\n"
        "          - [gap, {conv: 2, k: 1}, sigmoid]\n", ShapeError,
        "mul: the gate gives 2x1x1, which cannot multiply the input 4x28x28 (from conv at 6:10)",
        8, 13),
}  # fmt: skip


def _check(case, format):
    text, kind, message, line, col = case
    err = error_of(text, format)
    assert type(err) is kind, err.render()
    assert message in err.message
    assert err.pos == (line, col), err.render()
    rendered = err.render().splitlines()
    assert rendered[0] == f"<string>:{line}:{col}: {err.message}"
    if len(rendered) > 1:  # the line itself, then a caret under the column
        assert rendered[2].index("^") == 4 + col - 1


@pytest.mark.parametrize("case", CNN_CASES, ids=list(CNN_CASES))
def test_cnn_error(case):
    _check(CNN_CASES[case], "cnn")


@pytest.mark.parametrize("case", YAML_CASES, ids=list(YAML_CASES))
def test_yaml_error(case):
    _check(YAML_CASES[case], "yaml")


def test_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.cnn"
    bad.write_text(net("conv(6, k=5) rleu"))
    import cnnspec

    with pytest.raises(SpecError) as info:
        cnnspec.load(bad)
    assert info.value.render().splitlines()[0].startswith(f"{bad}:3:21: unknown layer")


def test_limit_errors_are_errors_too():
    assert issubclass(LimitError, SpecError.__base__)


# --- errors in files a spec uses: placed in that file, naming the `use` -------------------

USE_CASES = {
    "missing file": ({}, "cannot use 'nope.cnn'", "main.cnn", (1, 5)),
    "cycle": (
        {"a.cnn": 'use "b.cnn"\n', "b.cnn": 'use "a.cnn"\n'},
        "'a.cnn' is used in a cycle (a.cnn -> b.cnn -> a.cnn)", "b.cnn", (1, 5)),
    "unknown layer in a used block": (
        {"a.cnn": "block u(c):\n    conv(c, k=1) rleu\n"},
        "unknown layer or block 'rleu' (did you mean 'relu'?) (used at ", "a.cnn", (2, 18)),
    "shape error inside a used block": (
        {"a.cnn": "block u(c):\n    conv(c, k=3) conv(c, k=9)\n"},
        "main.cnn:3:8, used at ", "a.cnn", (2, 18)),
    "network in a used file": (
        {"a.cnn": "network U(input=1x2x2):\n    s: relu\n"},
        "a used file holds blocks only", "a.cnn", (1, 9)),
    "block defined twice across files": (
        {"a.cnn": "block u(c):\n    relu\n", "b.cnn": "block u(c):\n    relu\n"},
        "block 'u' is also defined in", "b.cnn", (1, 7)),
    "syntax error in a used file": (
        {"a.cnn": "block u(c):\n    conv(c, k=1\n"}, "unexpected", "a.cnn", (2, 16)),
}  # fmt: skip


@pytest.mark.parametrize("case", USE_CASES, ids=list(USE_CASES))
def test_use_error(case, tmp_path):
    import cnnspec

    files, message, where, pos = USE_CASES[case]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    uses = "".join(f'use "{n}"\n' for n in files if n != "b.cnn" or case != "cycle")
    if not files:
        uses = 'use "nope.cnn"\n'
    main = tmp_path / "main.cnn"
    main.write_text(uses + "network T(input=1x8x8):\n    s: u(4)\n")
    with pytest.raises(cnnspec.CnnspecError) as info:
        cnnspec.load(main)
    err = info.value
    assert message in err.message, err.render()
    assert err.source.name.endswith(where) and err.pos == pos, err.render()
    assert err.render().splitlines()[2].index("^") == 4 + pos[1] - 1


def test_use_is_bounded(tmp_path):
    import cnnspec

    for i in range(12):
        (tmp_path / f"f{i}.cnn").write_text(f'use "f{i + 1}.cnn"\n')
    (tmp_path / "f12.cnn").write_text("")
    main = tmp_path / "main.cnn"
    main.write_text('use "f0.cnn"\nnetwork T(input=1x8x8):\n    s: relu\n')
    with pytest.raises(LimitError, match="at most 64 files, 8 deep"):
        cnnspec.load(main)


SET_CASES = {
    "unknown name": ({"widht": "2"}, "no network option, network parameter or train option "
                     "'widht' (did you mean 'width'?)", None),
    "bad value": ({"width": "0.5x"}, "unexpected 'x'", (1, 4)),
    "fraction as classes": ({"classes": "0.5"}, "classes must be a whole number >= 1", (1, 1)),
    "bad recipe value": ({"lr": "fast"}, "train option 'lr': input should be a valid number",
                         (1, 1)),
    "value the spec refuses": ({"width": "0.01"}, "conv argument 'out'", (2, 13)),
}  # fmt: skip


@pytest.mark.parametrize("case", SET_CASES, ids=list(SET_CASES))
def test_set_error(case):
    import cnnspec

    overrides, message, pos = SET_CASES[case]
    text = "network T(input=1x28x28, width=1.0):\n    s: conv(int(8 * width), k=1)\n"
    with pytest.raises(cnnspec.CnnspecError) as info:
        cnnspec.load(text, overrides=overrides)
    assert message in info.value.message, info.value.render()
    if pos is not None:
        assert info.value.pos == pos, info.value.render()


def test_names_are_checked_block_by_block_and_stage_by_stage():
    # The first wrong name is the error, as ever; the first of each other block and stage
    # comes with it, in the order written, each at its own place (editors show them all);
    # a second in one stage (`flaten`) waits for the first to be fixed.
    text = (
        "block unit(c):\n    conv(c, k=3) rleu\n"
        "network T(input=1x28x28, classes=10):\n"
        "    a: unit(4) maxpol(2) flaten\n    b: conv(4, k=3) relu\n"
        "    c: flatten linear(clases)\n"
    )
    err = error_of(text)
    assert "'rleu'" in err.message and err.pos == (2, 18)
    assert [(e.message.split(" (")[0], e.pos) for e in err.more] == [
        ("unknown layer or block 'maxpol'", (4, 16)),
        ("unknown name 'clases'", (6, 23)),
    ]


# --- what `use` may read: the spec's own folder, files that begin as specs do -------------

SECRET = "password: hunter2\n"


def _use_setup(tmp_path):
    """A root holding the spec, an outside folder holding a secret, and odd paths inside."""
    import os

    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.yaml").write_text(SECRET)
    (outside / "blocks.cnn").write_text("block u(c):\n    conv(c, k=1)\n")
    (root / "secrets.yaml").write_text(SECRET)
    (root / "notes.cnn").write_text("api_key = hunter2\nblock u(c):\n    relu\n")
    (root / "link.yaml").symlink_to(outside / "secret.yaml")
    (root / "loop.cnn").symlink_to(root / "loop.cnn")
    os.mkfifo(root / "pipe.cnn")
    return root, outside


USE_REFUSALS = {
    "absolute, outside": ("{outside}/secret.yaml", "is outside"),
    "absolute, outside, missing": ("{outside}/missing.yaml", "is outside"),
    "relative, outside": ("../outside/secret.yaml", "is outside"),
    "a link out": ("link.yaml", "a symbolic link leads outside"),
    "a link loop": ("loop.cnn", "cannot use 'loop.cnn'"),
    "a fifo": ("pipe.cnn", "not a regular file"),
    "no spec (yaml)": ("secrets.yaml", "does not begin as a file of blocks does"),
    "no spec (cnn)": ("notes.cnn", "does not begin as a file of blocks does"),
    "a lone surrogate": ("\\ud800.cnn", "that is no file name"),
    "a NUL": ("a\\0.cnn", "that is no file name"),
}


@pytest.mark.parametrize("case", USE_REFUSALS)
def test_use_reads_nothing_outside_the_root_nor_shows_a_file_that_is_no_spec(case, tmp_path):
    """Every way a `use` can reach what it should not is one positioned line at the `use`,
    quoting nothing of the file; outside the root, the same words whether or not the file
    exists (so the message tells nothing of what is there)."""
    import cnnspec

    root, outside = _use_setup(tmp_path)
    path, words = USE_REFUSALS[case]
    spec = root / "net.yaml"
    spec.write_text(
        f'use: ["{path.format(outside=outside)}"]\n'
        "network: {name: T, input: 1x8x8, classes: 10, stages: {s: [relu]}}\n"
    )
    with pytest.raises(cnnspec.CnnspecError) as info:
        cnnspec.load(spec)
    err = info.value
    assert words in err.message and err.pos == (1, 7) and err.source.name == str(spec)
    shown = err.render()
    assert "hunter2" not in shown and "\n" not in err.message
    if "outside" in case and "link" not in case:
        assert err.message == (
            f"cannot use '{path.format(outside=outside)}': it is outside {root}, the folder "
            "used files must be in (--use-root names another)"
        )


def test_use_root_names_another_folder(tmp_path, capsys):
    from cnnspec.cli import main

    root, outside = _use_setup(tmp_path)
    spec = root / "net.cnn"
    network = "network T(input=1x8x8, classes=10):\n    s: u(2)\n"
    spec.write_text(f'use "{outside}/blocks.cnn"\n{network}')
    assert main(["check", str(spec)]) == 1
    assert "is outside" in capsys.readouterr().err
    assert main(["check", str(spec), "--use-root", str(tmp_path)]) == 0


def test_the_spec_and_its_used_files_share_one_bound_on_text(tmp_path):
    """64 files of 1 MiB each would be 64 MiB to parse: the bound on text is for all of them
    together, checked as each file is read and before it is parsed."""
    import cnnspec
    from cnnspec.limits import DEFAULT

    comments = ("# " + "x" * 77 + "\n") * (DEFAULT.max_file_bytes // 80 * 11 // 20)  # 55% each
    (tmp_path / "a.cnn").write_text(comments)
    spec = tmp_path / "net.cnn"
    spec.write_text(f'use "a.cnn"\n{comments}network T(input=1x8x8, classes=10):\n    s: relu\n')
    with pytest.raises(LimitError) as info:
        cnnspec.load(spec)
    assert info.value.message == (
        f"the spec and the files it uses hold more than {DEFAULT.max_file_bytes:,} bytes of "
        "text together"
    )
    assert info.value.pos == (1, 5)


@pytest.mark.skipif(not os.access("/proc/kmsg", os.R_OK), reason="needs a readable /proc/kmsg")
def test_a_regular_file_that_waits_for_data_is_not_waited_for():
    """/proc/kmsg is a regular file of size 0 whose read waits for the kernel's next message:
    it is opened without blocking and refused, not read for ever. (Where kernel messages
    are pending, the read returns them at once, and they are refused as no spec.)"""
    import subprocess
    import sys

    from conftest import ROOT

    code = "import cnnspec; cnnspec.load('/proc/kmsg', format='cnn')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)  # fmt: skip
    last = done.stderr.splitlines()[-1]
    assert "a file that waits for data to read" in last or "SpecError: /proc/kmsg:" in last


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(st.lists(st.integers(0, 6_000), min_size=1, max_size=40), st.booleans())
@settings(max_examples=25, deadline=None, derandomize=True)
def test_used_text_is_bounded_in_all_not_per_file(sizes, chained):
    """The spec and the files it uses hold at most max_file_bytes of text together: no more
    is ever parsed, whatever their number, sizes and nesting (64 files of 1 MiB each took
    hours), and a set within the bound loads."""
    import tempfile

    import cnnspec
    from cnnspec.analysis import uses

    limits = cnnspec.Limits(max_file_bytes=20_000, max_use_depth=64)
    parsed = []
    parse_cnn = uses.parse_cnn

    def counting(text, limits):
        parsed.append(len(text.encode()))
        return parse_cnn(text, limits)

    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        patch.setattr(uses, "parse_cnn", counting)
        root = Path(folder)
        texts = []
        for i, size in enumerate(sizes):
            nxt = f'use "f{i + 1}.cnn"\n' if chained and i + 1 < len(sizes) else ""
            head = f"{nxt}block b{i}():\n    relu\n"
            texts.append(head + "#" * max(size - len(head) - 1, 0) + "\n")
            (root / f"f{i}.cnn").write_text(texts[-1])
        named = ["f0"] if chained else [f"f{i}" for i in range(len(sizes))]
        main = "".join(f'use "{n}.cnn"\n' for n in named) + net("b0")
        (root / "main.cnn").write_text(main)
        total = len(main) + sum(len(t) for t in texts)
        try:
            cnnspec.load(root / "main.cnn", limits=limits)
            assert total <= limits.max_file_bytes
        except LimitError as err:
            assert total > limits.max_file_bytes
            assert "hold more than 20,000 bytes of text together" in err.message
            assert err.pos[0] >= 1 and err.source is not None
        assert len(main) + sum(parsed) <= limits.max_file_bytes


# --- an unknown key is named as written, whatever it is called ------------------------------

# Names the IR also uses as the kinds of its nodes (`mul`, `call`, `repeat`...), which once
# hid the key they spelled, and misspellings of the real options.
KEY_NAMES = sorted({*_UNION_TAGS, "lrr", "epoch"})
CNN_WORDS = {"if", "for", "not", "and", "or", "in", "as", "else", "true", "false", "none"}
YAML_NET = "network:\n  name: T\n  input: 1x8x8\n  stages:\n    s: [relu]\n"


@pytest.mark.parametrize("name", KEY_NAMES)
def test_an_unknown_key_is_named_where_it_is_written(name):
    from cnnspec.language import ir

    cases = [(YAML_NET + f"train: {{lr: 0.1, {name}: 1}}\n", "yaml", "the train recipe", (6, 18))]
    if name not in ir.BlockDef.model_fields:
        block = f"blocks:\n  b:\n    params: []\n    body: [relu]\n    {name}: 1\n"
        cases.append((block + YAML_NET, "yaml", "a block", (5, 5)))
    if name not in ir.Network.model_fields:
        cases.append((YAML_NET + f"  {name}: 1\n", "yaml", "the network", (6, 3)))
    if name not in CNN_WORDS:
        text = f"network T(input=1x8x8):\n    s: relu\ntrain(lr=0.1, {name}=1)\n"
        cases.append((text, "cnn", "the train recipe", (3, 15)))
    for text, format, where, pos in cases:
        err = error_of(text, format)
        assert err.message.startswith(f"unknown key '{name}' in {where}"), err.message
        assert f"did you mean '{name}'" not in err.message
        assert err.pos == pos, err.render()
    hint = {"lrr": "lr", "epoch": "epochs"}.get(name)
    if hint:
        assert f"(did you mean '{hint}'?)" in error_of(cases[0][0], "yaml").message


# --- a hint fits the argument it is about -----------------------------------------------------


def _numeric_fields():
    """(op, field, whole numbers only) for every argument of every op that takes numbers."""
    from typing import Annotated, get_args, get_origin

    from cnnspec.analysis.ops import LAYERS

    for op, model in sorted(LAYERS.items()):
        for name, field in model.model_fields.items():
            found, stack = set(), [field.annotation]
            while stack:
                kind = stack.pop()
                if get_origin(kind) is Annotated:
                    stack.append(get_args(kind)[0])
                elif get_args(kind):
                    stack.extend(get_args(kind))
                elif isinstance(kind, type):
                    found.add(kind)
            if found & {int, float}:
                yield op, name, float not in found


def _example_call(op: str, **changed: str) -> str:
    """The op's registry example with its arguments given by name, some of them changed."""
    import cnnspec
    from cnnspec.analysis.ops import LAYERS
    from cnnspec.language.expressions import unparse

    model = LAYERS[op]
    call, shape = model.example
    spec = cnnspec.load(f"network T(input={shape}):\n    s: {call}\n")
    written = spec.ir.network.stages[0].body[0]
    args = dict(zip(model.signature(), (unparse(a) for a in written.args)))
    args |= {kw.name: unparse(kw.value) for kw in written.kwargs} | changed
    written = ", ".join(f"{k}={v}" for k, v in args.items())
    return f"network T(input={shape}):\n    s: {op}({written})\n"


@pytest.mark.parametrize("op, name, whole", list(_numeric_fields()))
def test_the_whole_number_hint_is_given_only_where_sizes_are_taken(op, name, whole):
    """A fraction given to a size or a count is best made whole with int() or round(); a
    rate or a probability out of its range (batchnorm(momentum=1.5)) is no such case."""
    import cnnspec

    errors = 0
    for value in ("2.5", "-1.5", "(1, 2.5)"):
        try:
            cnnspec.load(_example_call(op, **{name: value}))
        except cnnspec.CnnspecError as err:
            errors += 1
            hinted = "int(...) or round(...)" in err.message
            assert hinted == (whole and f"argument '{name}'" in err.message), err.message
    assert errors or not whole  # a fraction is never a size


# --- an error inside a block names the calls that led to it -----------------------------------


@given(
    depth=st.integers(1, 5),
    calls=st.integers(1, 4),
    bad=st.integers(0, 3),
    pads=st.lists(st.integers(0, 3), min_size=6, max_size=6),
    used=st.booleans(),
)
@settings(max_examples=30, deadline=None, derandomize=True)
def test_an_error_in_a_block_names_each_call_that_led_to_it(depth, calls, bad, pads, used):
    """Blocks calling blocks, the outermost called several times and one call wrong: the
    error stays where it is raised and names every call on the way, innermost first, each
    with its position (in the spec's own file, or qualified when the blocks are used from
    another), on one line."""
    import tempfile

    import cnnspec

    bad %= calls
    lines = ["block b0(c, k):", "    conv(c, k=k)"]
    chain = []  # (block, line, column) of each call, innermost first
    for level in range(1, depth + 1):
        prefix = "relu " * pads[level]
        lines += [f"block b{level}(c, k):", f"    {prefix}b{level - 1}(c, k)"]
        chain.append((f"b{level - 1}", len(lines), 5 + len(prefix)))
    top = [f"b{depth}(4, {9 if i == bad else 1})" for i in range(calls)]
    stage = "    s: " + "relu " * pads[0] + " ".join(top)
    column = len(stage) - len(" ".join(top[bad:])) + 1
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        if used:
            (root / "blocks.cnn").write_text("\n".join(lines) + "\n")
            main = ['use "blocks.cnn"', "network T(input=1x8x8):", stage]
            chain.append((f"b{depth}", 3, column))
        else:
            main = [*lines, "network T(input=1x8x8):", stage]
            chain.append((f"b{depth}", len(lines) + 2, column))
        (root / "net.cnn").write_text("\n".join(main) + "\n")
        with pytest.raises(cnnspec.CnnspecError) as info:
            cnnspec.load(root / "net.cnn")
        err = info.value
        spec = str(root / "net.cnn")
        places = []
        for block, line, col in chain:
            in_spec = used and block == f"b{depth}"
            places.append(f"in {block} called at {spec + ':' if in_spec else ''}{line}:{col}")
        expected = ", ".join(places) + (f", used at {spec}:1:5" if used else "")
        assert err.message.endswith(f"({expected})"), err.message
        assert err.pos == (2, 5) and err.source.name.endswith("blocks.cnn" if used else "net.cnn")
        assert "\n" not in err.headline()


def test_an_error_in_a_builtin_block_names_its_call_and_the_calls_around_it():
    import cnnspec

    blocks = "block pair(c):\n    relu vgg_block(1, c)\n"
    text = net("pair(4) pair(4) pair(4)", input="1x2x2", blocks=blocks)
    with pytest.raises(cnnspec.CnnspecError) as info:
        cnnspec.load(text)
    err = info.value
    assert err.pos == (2, 10)  # the call of the built-in block: prelude.cnn is not the user's
    assert err.message.endswith(
        "(at prelude.cnn:7:5 in vgg_block called at 2:10, in pair called at 5:16)"
    )


# --- reserved words as names -------------------------------------------------------------------

# Every place a spec names something, with {w} where the name stands.
NAMING = {
    "first stage": "network N(input=3x8x8, classes=2):\n    {w}: conv(4, k=3)\n    b: flatten\n",
    "indented stage": "network N(input=3x8x8, classes=2):\n    a: conv(4, k=3)\n    {w}:\n"
                      "        conv(4, k=1)\n    b: flatten\n",
    "stage after an indented one": "network N(input=3x8x8, classes=2):\n    a:\n        relu\n"
                                   "    {w}: conv(4, k=1)\n    b: flatten\n",
    "named line": "block blk(c):\n    {w}: conv(c, k=1)\n    out: input relu\n"
                  "network N(input=3x8x8, classes=2):\n    a: blk(4)\n",
    "block": "block blk(c):\n    relu\nblock {w}(c):\n    relu\n"
             "network N(input=3x8x8):\n    a: relu\n",
    "parameter": "block blk(c, {w}=1):\n    relu\nnetwork N(input=3x8x8):\n    a: blk(4)\n",
    "repeat index": "network N(input=3x8x8, classes=2):\n    a: relu * 2 as {w}\n",
    "for name": "block blk(c):\n    for {w} in [1, 2]:\n        relu\n"
                "network N(input=3x8x8):\n    a: blk(4)\n",
    "network parameter": "network N(input=3x8x8, classes=2, {w}=1):\n    a: conv(4, k=1)\n",
    "YAML stage": "network:\n  name: N\n  input: 3x8x8\n  stages:\n    {w}: [relu]\n",
    "YAML block": "blocks:\n  {w}:\n    params: [c]\n    body: [relu]\n"
                  "network:\n  name: N\n  input: 3x8x8\n  stages:\n    a: [relu]\n",
}  # fmt: skip


def test_the_reserved_words_are_the_grammars_keywords_and_the_combinators():
    from importlib.resources import files

    from cnnspec.language import ir

    grammar = files("cnnspec.language").joinpath("grammar.lark").read_text()
    quoted = set(__import__("re").findall(r'"([a-z]+)"', grammar))
    assert set(ir.KEYWORDS) == quoted
    assert set(ir.RESERVED_WORDS) == quoted | set(ir.COMBINATORS)


@pytest.mark.parametrize("place", NAMING)
def test_a_reserved_word_as_a_name_is_refused_naming_the_word(place):
    """Wherever a spec names something, a keyword of the language or a combinator is
    refused with a message that names it, at the name, whichever way the parser first
    read it (`block:` and `heads:` were syntax errors about other things, or accepted)."""
    from cnnspec.language import ir

    template = NAMING[place]
    format = "yaml" if place.startswith("YAML") else "cnn"
    for word in ir.RESERVED_WORDS:
        text = template.format(w=word)
        before = text[: text.index(word, template.index("{w}"))]
        where = (before.count("\n") + 1, len(before) - before.rfind("\n"))
        if word == "outputs" and place == "network parameter":
            continue  # an option of the network, `outputs=` is no parameter
        err = error_of(text, format)
        if format == "yaml" and word in ("true", "false"):  # YAML reads them as no name
            assert f"must be names, got {word}, which YAML" in err.message
        else:
            assert f"'{word}' is a reserved word" in err.message, (word, err.render())
        assert err.pos == where, (word, err.render())
        assert "\n" not in err.headline()


@pytest.mark.parametrize("kind", ["concat", "add", "mul", "split", "select", "heads", "res2"])
def test_a_branch_that_gives_several_outputs_is_refused_not_crashed(kind):
    body = "            h:\n                heads:\n                    a: conv(4, k=1)\n"
    text = f"network N(input=4x8x8):\n    s:\n        {kind}:\n{body}"
    if kind not in ("mul", "res2"):  # the kinds of one branch
        text += "            o: conv(4, k=1)\n"
    err = error_of(text)
    assert "heads" in err.message and err.pos[0] in (3, 4), err.render()


def test_the_readme_lists_the_reserved_words_the_checks_refuse():
    import re

    from conftest import ROOT

    from cnnspec.analysis.resolve import MODULE_ATTRIBUTES, RESERVED_PARAMS
    from cnnspec.language import ir

    readme = (ROOT / "README.md").read_text()
    paragraph = readme[readme.index("**Reserved words.**") :].split("\n\n")[0]
    keywords, combinators = (
        re.findall(r"`(\w+)`", part)
        for part in re.search(r"text form \((.*?)\)\s+and the combinators \((.*?)\)",
                              paragraph, re.S).groups()
    )  # fmt: skip
    assert keywords == list(ir.KEYWORDS) and combinators == list(ir.COMBINATORS)
    params = re.findall(r"`(\w+)`", paragraph[paragraph.index("may not be called") :])
    assert sorted(params) == sorted(RESERVED_PARAMS)
    named = paragraph[paragraph.index("own (") : paragraph.index("names starting with")]
    attributes = set(re.findall(r"`(\w+)`", named)) - {"add"}  # add: the combinator
    assert attributes <= MODULE_ATTRIBUTES and {"shortcut", "branches", "self"} <= attributes


def test_check_prints_every_wrong_name_it_found(tmp_path, capsys):
    from cnnspec.cli import main

    spec = tmp_path / "net.cnn"
    spec.write_text(
        "block unit(c):\n    conv(c, k=3) rleu\n"
        "network T(input=1x28x28, classes=10):\n"
        "    a: unit(4) maxpol(2)\n    b: conv(4, k=3) relu\n    c: flatten linear(clases)\n"
    )
    assert main(["check", str(spec)]) == 1
    headlines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("/")]
    assert [h.split(": ")[0].rsplit(":", 2)[1:] for h in headlines] == [
        ["2", "18"], ["4", "16"], ["6", "23"]
    ]  # fmt: skip
