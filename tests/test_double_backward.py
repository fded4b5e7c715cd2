"""Higher-order gradients: the backward op (torch.ops.conv_ext.conv2d_backward) is itself differentiable.

gradgradcheck in float64, the backward op's own gradients for every output_mask, third-order derivatives, a
gradient penalty and Hessian-vector products, all against torch.nn.functional.conv2d.

torch.func transforms (grad, vjp, jvp) do not run through the op: its autograd is a C++
torch::autograd::Function, which functorch refuses.
The Hessian-vector products here use torch.autograd (double backward) instead.

The checks run on one thread: they are about the math (many tiny ops, where a busy machine would mostly add
OpenMP barrier waits); threads are the concern of test_determinism.py and test_threads_and_leaks.py.
"""
import contextlib
from typing import Callable, Iterator, Optional, Sequence, Tuple

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import conv_ext
from conv_cases import TOLERANCES
from conv_ext.settings import im2col_gemm

CONFIGS = {
    "plain": dict(stride=1, padding=0, dilation=1, groups=1),
    "strided-padded": dict(stride=2, padding=1, dilation=1, groups=1),
    "dilated": dict(stride=1, padding=(2, 1), dilation=(2, 1), groups=1),
    "mixed-groups": dict(stride=(1, 2), padding=(1, 2), dilation=(2, 1), groups=2),
    "depthwise": dict(stride=1, padding=1, dilation=1, groups=4),
}
configs = pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))
PATHS = {"tiled": contextlib.nullcontext, "shared": im2col_gemm}
CLOSE = TOLERANCES[torch.float64]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Each test on one thread; the thread count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_inputs(config: dict, bias: bool = True, seed: int = 0, batch: int = 2
                ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Small float64 input (N, 4, 6, 5), weight (4, 4/groups, 3, 2) and bias, requiring grad."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64).requires_grad_()

    return randn(batch, 4, 6, 5), randn(4, 4 // config["groups"], 3, 2), randn(4) if bias else None


def op_arguments(config: dict) -> Tuple[list, list, list, int]:
    """The op's normalised hyperparameters (pairs, explicit padding)."""
    def pair(v):
        return [v, v] if isinstance(v, int) else list(v)

    return pair(config["stride"]), pair(config["padding"]), pair(config["dilation"]), config["groups"]


@configs
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_gradgradcheck(config, bias):
    inputs = tuple(t for t in make_inputs(config, bias) if t is not None)

    def conv(input, weight, *rest):
        return conv_ext.conv2d(input, weight, rest[0] if rest else None, **config)

    assert torch.autograd.gradgradcheck(conv, inputs)


@pytest.mark.parametrize("config", [CONFIGS["plain"], CONFIGS["mixed-groups"]], ids=["plain", "mixed-groups"])
def test_gradgradcheck_shared_orchestration(config):
    """The same through the shared orchestration (the code CUDA runs), with the host-launched device bodies."""
    with im2col_gemm():
        assert torch.autograd.gradgradcheck(lambda x, w, b: conv_ext.conv2d(x, w, b, **config), make_inputs(config))


MASKS = [[True, True, True], [True, False, False], [False, True, False], [False, False, True], [True, True, False],
         [False, True, True]]


@pytest.mark.parametrize("output_mask", MASKS, ids=["".join("xwb"[i] if m else "-" for i, m in enumerate(mask))
                                                     for mask in MASKS])
def test_backward_op_gradcheck_for_each_output_mask(output_mask):
    """The backward op's own autograd, for every mask: outputs not asked for are empty and carry no grad."""
    config = CONFIGS["mixed-groups"]
    input, weight, _ = make_inputs(config, batch=1)
    args = op_arguments(config)
    output = torch.ops.conv_ext.conv2d(input.detach(), weight.detach(), None, *args)
    grad_output = torch.randn(output.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    grad_output.requires_grad_()

    def backward_op(grad_output, input, weight):
        return torch.ops.conv_ext.conv2d_backward(grad_output, input, weight, *args, output_mask)

    outputs = backward_op(grad_output, input, weight)
    assert [o.numel() > 0 for o in outputs] == output_mask
    assert torch.autograd.gradcheck(backward_op, (grad_output, input, weight))


def backward_op_inputs(config):
    """grad_output, input, weight (one sample, float64, all requiring grad) and the op's hyperparameters."""
    input, weight, _ = make_inputs(config, batch=1)
    args = op_arguments(config)
    grad_output = torch.randn(torch.ops.conv_ext.conv2d(input, weight, None, *args).shape, dtype=torch.float64,
                              requires_grad=True)
    return grad_output, input, weight, args


def test_backward_op_gradgradcheck():
    """Triple backward of the convolution: the backward op's double backward."""
    grad_output, input, weight, args = backward_op_inputs(CONFIGS["strided-padded"])
    assert torch.autograd.gradgradcheck(
        lambda gy, x, w: torch.ops.conv_ext.conv2d_backward(gy, x, w, *args, [True, True, True]),
        (grad_output, input, weight))


def test_backward_op_opcheck_with_grad():
    """opcheck with inputs that require grad: the double backward's registration and its fake/traced use."""
    grad_output, input, weight, args = backward_op_inputs(CONFIGS["mixed-groups"])
    torch.library.opcheck(torch.ops.conv_ext.conv2d_backward.default,
                          (grad_output, input, weight, *args, [True, True, True]))


LEAVES = {"input": 0, "weight": 1, "bias": 2}


@pytest.mark.parametrize("first", list(LEAVES))
@pytest.mark.parametrize("second", list(LEAVES))
def test_mixed_second_derivatives_match_torch(first, second):
    """d/d(second) <v, d/d(first) sum(tanh(conv))>: each pair of leaves, so that every combination of
    undefined incoming grads reaches the double backward."""
    config = CONFIGS["mixed-groups"]

    def second_derivative(conv: Callable) -> Optional[torch.Tensor]:
        leaves = make_inputs(config, seed=1)
        loss = torch.tanh(conv(*leaves, **config)).sum()
        (gradient,) = torch.autograd.grad(loss, leaves[LEAVES[first]], create_graph=True)
        v = torch.randn(gradient.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        (result,) = torch.autograd.grad((gradient * v).sum(), leaves[LEAVES[second]], allow_unused=True)
        return result

    got, want = second_derivative(conv_ext.conv2d), second_derivative(F.conv2d)
    assert got is not None and want is not None  # every pair is connected through the tanh
    torch.testing.assert_close(got, want, **CLOSE)


@pytest.mark.parametrize("path", list(PATHS))
def test_third_order_derivative_matches_torch(path):
    config = CONFIGS["mixed-groups"]

    def third_derivative(conv: Callable) -> Tuple[torch.Tensor, ...]:
        input, weight, bias = make_inputs(config, seed=4)
        loss = torch.tanh(conv(input, weight, bias, **config)).sum()
        (g_input,) = torch.autograd.grad(loss, input, create_graph=True)
        u = torch.randn(g_input.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
        (g_weight,) = torch.autograd.grad((g_input * u).sum(), weight, create_graph=True)
        v = torch.randn(g_weight.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
        return torch.autograd.grad((g_weight * v).sum(), (input, weight, bias))

    with PATHS[path]():
        got = third_derivative(conv_ext.conv2d)
    for g, w in zip(got, third_derivative(F.conv2d)):
        torch.testing.assert_close(g, w, **CLOSE)


def _two_layer_model(conv_type: type, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(conv_type(3, 4, 3, padding=1, stride=2), nn.Tanh(),
                         conv_type(4, 6, (3, 2), padding=(1, 0), groups=2, dilation=(2, 1)), nn.Tanh(),
                         nn.Flatten(), nn.LazyLinear(2)).double()


def test_gradient_penalty_matches_torch():
    """A WGAN-GP style loss: the penalty on |d output / d input| is back-propagated through a double backward
    of both convolutions; parameter and input gradients equal those of the same model built with nn.Conv2d."""
    x = torch.randn(3, 3, 9, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(7))

    def penalised_grads(model: nn.Module) -> Sequence[torch.Tensor]:
        input = x.clone().requires_grad_()
        output = model(input)
        (grad_input,) = torch.autograd.grad(output.sum(), input, create_graph=True)
        penalty = ((grad_input.flatten(1).norm(dim=1) - 1) ** 2).mean()
        loss = output.pow(2).mean() + 10 * penalty
        loss.backward()
        return [input.grad] + [p.grad for p in model.parameters()]

    ours, theirs = _two_layer_model(conv_ext.Conv2d, 0), _two_layer_model(nn.Conv2d, 0)
    ours(x), theirs(x)  # materialise the lazy layer
    theirs.load_state_dict(ours.state_dict())
    got, want = penalised_grads(ours), penalised_grads(theirs)
    assert len(got) == len(want) == 7
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, **CLOSE)


@pytest.mark.parametrize("path", list(PATHS))
def test_hessian_vector_product_matches_torch(path):
    """H v for the loss in all of (input, weight, bias), by double backward (torch.autograd)."""
    config = CONFIGS["strided-padded"]

    def hvp(conv: Callable) -> Tuple[torch.Tensor, ...]:
        leaves = make_inputs(config, seed=8)
        loss = torch.nn.functional.softplus(conv(*leaves, **config)).pow(2).sum()
        grads = torch.autograd.grad(loss, leaves, create_graph=True)
        generator = torch.Generator().manual_seed(9)
        vs = [torch.randn(g.shape, dtype=torch.float64, generator=generator) for g in grads]
        return torch.autograd.grad(sum((g * v).sum() for g, v in zip(grads, vs)), leaves)

    with PATHS[path]():
        got = hvp(conv_ext.conv2d)
    for g, w in zip(got, hvp(F.conv2d)):
        torch.testing.assert_close(g, w, **CLOSE)


def test_double_backward_through_conv2d_function():
    """Conv2dFunction shares the op's backward, so its double backward is the op's too."""
    config = CONFIGS["plain"]
    input, weight, bias = make_inputs(config)
    assert torch.autograd.gradgradcheck(
        lambda x, w, b: conv_ext.Conv2dFunction.apply(x, w, b, (1, 1), (0, 0), (1, 1), 1), (input, weight, bias))
