"""conv_ext.Conv2d as a drop-in torch.nn.Conv2d, convert(), the unfold module, and torch.compile."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import conv_ext
from conv_ext.reference import UnfoldConv2d

CONSTRUCTOR_ARGS = [
    dict(in_channels=3, out_channels=8, kernel_size=3),
    dict(in_channels=4, out_channels=6, kernel_size=(2, 3), stride=2, padding=1, bias=False),
    dict(in_channels=4, out_channels=8, kernel_size=3, padding="same", dilation=2, groups=2),
    dict(in_channels=4, out_channels=4, kernel_size=3, padding=1, groups=4, padding_mode="reflect"),
    dict(in_channels=2, out_channels=3, kernel_size=(3, 2), padding=(1, 2), padding_mode="circular"),
    dict(in_channels=2, out_channels=3, kernel_size=3, padding=2, stride=(2, 1), padding_mode="replicate"),
]
CONSTRUCTOR_IDS = ["plain", "strided-nobias", "same-grouped", "reflect-depthwise", "circular", "replicate"]


@pytest.mark.parametrize("module_cls", [conv_ext.Conv2d, UnfoldConv2d], ids=["ext", "unfold"])
@pytest.mark.parametrize("kwargs", CONSTRUCTOR_ARGS, ids=CONSTRUCTOR_IDS)
def test_module_equals_nn_conv2d(module_cls, kwargs):
    """Same seed -> same initial parameters; same outputs and gradients as nn.Conv2d for every padding_mode."""
    torch.manual_seed(0)
    expected_module = nn.Conv2d(**kwargs, dtype=torch.float64)
    torch.manual_seed(0)
    module = module_cls(**kwargs, dtype=torch.float64)
    for (name, p), (_, q) in zip(module.named_parameters(), expected_module.named_parameters()):
        assert torch.equal(p, q), name
    x = torch.randn(2, kwargs["in_channels"], 9, 8, dtype=torch.float64, requires_grad=True)
    y, y_ref = module(x), expected_module(x)
    torch.testing.assert_close(y, y_ref)
    grad_output = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x, *module.parameters()], grad_output)
    grads_ref = torch.autograd.grad(y_ref, [x, *expected_module.parameters()], grad_output)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want)


def test_state_dict_loads_both_ways():
    ours = conv_ext.Conv2d(3, 5, 3, padding=1)
    theirs = nn.Conv2d(3, 5, 3, padding=1)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(theirs(x), ours(x))
    with torch.no_grad():
        theirs.weight.mul_(2)
    ours.load_state_dict(theirs.state_dict())
    torch.testing.assert_close(ours(x), theirs(x))
    assert set(ours.state_dict()) == {"weight", "bias"}


def test_repr_and_parameter_shapes_follow_nn_conv2d():
    ours = conv_ext.Conv2d(4, 8, (3, 5), stride=2, groups=2, bias=False)
    theirs = nn.Conv2d(4, 8, (3, 5), stride=2, groups=2, bias=False)
    assert ours.weight.shape == theirs.weight.shape == (8, 2, 3, 5)
    assert ours.bias is None
    assert repr(ours) == repr(theirs)
    assert isinstance(ours, nn.Conv2d)


def test_module_rejects_what_nn_conv2d_rejects():
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        conv_ext.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        conv_ext.Conv2d(3, 4, 3, groups=2)


def seed_cnn() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                         nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.BatchNorm2d(4)), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 3))


def test_convert_replaces_every_conv_and_keeps_weights():
    torch.manual_seed(0)
    model = seed_cnn()
    x = torch.randn(2, 1, 8, 8)
    expected = model(x)
    parameters_before = [id(p) for p in model.parameters()]
    converted = conv_ext.convert(model)
    assert converted is model
    assert isinstance(model[0], conv_ext.Conv2d) and isinstance(model[2][0], conv_ext.Conv2d)
    assert sum(type(m) is nn.Conv2d for m in model.modules()) == 0
    assert [id(p) for p in model.parameters()] == parameters_before
    torch.testing.assert_close(model(x), expected)


def test_convert_keeps_training_mode_and_frozen_weights():
    conv = nn.Conv2d(2, 3, 3).eval()
    conv.weight.requires_grad_(False)
    converted = conv_ext.convert(conv)  # a bare module cannot be replaced in place: the new one is returned
    assert isinstance(converted, conv_ext.Conv2d)
    assert not converted.training and not converted.weight.requires_grad
    assert converted.weight is conv.weight


def test_torch_compile_fullgraph_equals_eager():
    torch.manual_seed(0)
    model = nn.Sequential(conv_ext.Conv2d(3, 8, 3, padding=1), nn.ReLU(), conv_ext.Conv2d(8, 4, 3, stride=2))
    x = torch.randn(2, 3, 10, 10, requires_grad=True)
    compiled = torch.compile(model, fullgraph=True)
    y_compiled = compiled(x)
    y_eager = model(x)
    torch.testing.assert_close(y_compiled, y_eager)
    grads_compiled = torch.autograd.grad(y_compiled.square().sum(), [x, *model.parameters()])
    grads_eager = torch.autograd.grad(y_eager.square().sum(), [x, *model.parameters()])
    for got, want in zip(grads_compiled, grads_eager):
        torch.testing.assert_close(got, want)


def test_torch_compile_dynamic_shapes():
    model = conv_ext.Conv2d(3, 4, 3, padding=1)
    compiled = torch.compile(model, fullgraph=True, dynamic=True)
    for batch, size in [(2, 8), (3, 11)]:
        x = torch.randn(batch, 3, size, size)
        torch.testing.assert_close(compiled(x), F.conv2d(x, model.weight, model.bias, padding=1))
