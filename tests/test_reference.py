"""Each compiled spec is the seed's own network: same parameters, outputs and gradients.

Layers are paired in the order the forward pass calls them, and the seed's weights are
copied across pair by pair; then both networks see the same random input.
"""

import pytest
import torch
from conftest import SPEC_NAMES, spec_path
from seed_nets import SEED_NETS

import cnnspec

BATCH = 2


def stateful_modules_in_call_order(net: torch.nn.Module, x: torch.Tensor) -> list:
    """Modules that own parameters or buffers, in the order a forward pass first calls them."""
    order, hooks = [], []
    for module in net.modules():
        if any(True for _ in module.parameters(recurse=False)) or any(
            True for _ in module.buffers(recurse=False)
        ):
            hooks.append(module.register_forward_pre_hook(
                lambda m, args: order.append(m) if m not in order else None))  # fmt: skip
    with torch.no_grad():
        net.eval()(x)
    for hook in hooks:
        hook.remove()
    return order


def paired(name: str):
    torch.manual_seed(0)
    reference = SEED_NETS[name]()
    ours = cnnspec.compile(spec_path(name), init="default")
    x = torch.randn(BATCH, *cnnspec.load(spec_path(name)).input_shape)
    pairs = list(zip(stateful_modules_in_call_order(reference, x),
                     stateful_modules_in_call_order(ours, x), strict=True))  # fmt: skip
    return reference, ours, pairs, x


@pytest.fixture(scope="module", params=SPEC_NAMES)
def case(request):
    return request.param, *paired(request.param)


def test_same_parameter_count(case):
    _name, reference, ours, _, _ = case
    count = lambda net: sum(p.numel() for p in net.parameters())
    assert count(ours) == count(reference)


def test_same_parameter_and_buffer_shapes_layer_by_layer(case):
    _name, _reference, _ours, pairs, _ = case
    for theirs, mine in pairs:
        assert type(mine) is type(theirs)
        assert {k: v.shape for k, v in mine.state_dict().items()} == {
            k: v.shape for k, v in theirs.state_dict().items()
        }


def _copy_weights(pairs) -> None:
    for theirs, mine in pairs:
        mine.load_state_dict(theirs.state_dict())


def _outputs(out) -> tuple:
    return out if isinstance(out, tuple) else (out,)


def test_same_outputs_in_eval_mode(case):
    _name, reference, ours, pairs, x = case
    _copy_weights(pairs)
    with torch.no_grad():
        expected = _outputs(reference.eval()(x))
        got = _outputs(ours.eval()(x))
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_same_gradients_in_train_mode(case):
    name, reference, ours, pairs, x = case
    _copy_weights(pairs)
    for net in (reference, ours):
        net.train().zero_grad()
        torch.manual_seed(1)  # the same dropout masks: both draw them in the same order
        loss = sum(out.square().mean() for out in _outputs(net(x)))
        loss.backward()
    for theirs, mine in pairs:
        for (key, g_theirs), (_, g_mine) in zip(theirs.named_parameters(),
                                                 mine.named_parameters()):  # fmt: skip
            torch.testing.assert_close(g_mine.grad, g_theirs.grad, atol=1e-5, rtol=1e-4,
                                       msg=f"{name}: gradient of {key}")  # fmt: skip
    # batch norm running statistics moved identically too
    for theirs, mine in pairs:
        for (_, b_theirs), (_, b_mine) in zip(theirs.named_buffers(), mine.named_buffers()):
            torch.testing.assert_close(b_mine, b_theirs, atol=1e-5, rtol=1e-4)
