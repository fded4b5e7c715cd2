"""conv_ext.conv2d (the registered op and its autograd) against torch.nn.functional.conv2d."""
import pytest
import torch
import torch.nn.functional as F

import conv_ext
from conv_ext.settings import im2col_gemm
from conv_cases import (GRID, TOLERANCES, assert_matches_torch, case_kwargs, dtypes, forward_and_grads,
                                 grid, make_tensors, with_bias)


@grid
@dtypes
@with_bias
def test_matches_torch(case, dtype, bias):
    assert_matches_torch(conv_ext.conv2d, case, dtype, bias)


@grid
@with_bias
def test_im2col_gemm_path_matches_torch(case, bias):
    """The per-element bodies that the CUDA kernels run, launched by a host loop, over the same grid."""
    with im2col_gemm():
        assert_matches_torch(conv_ext.conv2d, case, torch.float64, bias)


def test_im2col_gemm_switch_is_scoped_to_its_block():
    """On inside the block only, and off again after an exception in it."""
    assert not conv_ext.im2col_gemm_enabled()
    with pytest.raises(RuntimeError, match="inside"):
        with im2col_gemm():
            assert conv_ext.im2col_gemm_enabled()
            raise RuntimeError("inside")
    assert not conv_ext.im2col_gemm_enabled()


EXPLICIT_PADDING = [c for c in GRID if not isinstance(c.padding, str)]  # 'same'/'valid' are conv2d()'s job


@pytest.mark.parametrize("case", EXPLICIT_PADDING, ids=[c.name for c in EXPLICIT_PADDING])
def test_conv2d_function_matches_torch(case):
    """Conv2dFunction.apply with the op's normalised arguments is the same autograd definition."""
    def pair(v):
        return (v, v) if isinstance(v, int) else tuple(v)

    def apply(input, weight, bias, stride, padding, dilation, groups):
        return conv_ext.Conv2dFunction.apply(input, weight, bias, pair(stride), pair(padding), pair(dilation), groups)

    assert_matches_torch(apply, case, torch.float64, bias=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_half_types_match_float32(dtype):
    """The half types run too (the sums accumulate in float32): compared with F.conv2d in float32 on the same
    rounded values."""
    case = GRID[0]
    input, weight, bias = make_tensors(case, dtype, True)
    output, grads, grad_output = forward_and_grads(conv_ext.conv2d, input, weight, bias, None, **case_kwargs(case))
    assert output.dtype == dtype and all(g.dtype == dtype for g in grads)
    as32 = [t.detach().float().requires_grad_() for t in (input, weight, bias)]
    expected, expected_grads, _ = forward_and_grads(F.conv2d, *as32, grad_output.float(), **case_kwargs(case))
    tolerance = dict(rtol=2e-2, atol=5e-2) if dtype == torch.bfloat16 else dict(rtol=5e-3, atol=1e-2)
    torch.testing.assert_close(output.float(), expected, **tolerance)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got.float(), want, **tolerance)


def test_non_contiguous_input_weight_and_grad_output():
    x = torch.randn(3, 10, 4, 12, dtype=torch.float64).transpose(1, 3)[..., ::2].requires_grad_()  # (3,12,4,5)
    w = torch.randn(3, 12, 6, 2, dtype=torch.float64).transpose(0, 1).requires_grad_()  # (12,3,6,2) non-contig
    x_dense, w_dense = x.detach().contiguous().requires_grad_(), w.detach().contiguous().requires_grad_()
    assert not x.is_contiguous() and not w.is_contiguous()
    y = conv_ext.conv2d(x, w[:8], groups=4, padding=1)
    grad_output = torch.randn(y.shape[0], y.shape[1], y.shape[3], y.shape[2] * 2, dtype=torch.float64)
    grad_output = grad_output.transpose(2, 3)[:, :, ::2]
    assert grad_output.shape == y.shape and not grad_output.is_contiguous()
    gx, gw = torch.autograd.grad(y, (x, w), grad_output)
    y_ref = F.conv2d(x_dense, w_dense[:8], groups=4, padding=1)
    gx_ref, gw_ref = torch.autograd.grad(y_ref, (x_dense, w_dense), grad_output.contiguous())
    torch.testing.assert_close(y, y_ref, **TOLERANCES[torch.float64])
    torch.testing.assert_close(gx, gx_ref, **TOLERANCES[torch.float64])
    torch.testing.assert_close(gw, gw_ref, **TOLERANCES[torch.float64])


def test_channels_last_input():
    input, weight, bias = make_tensors(GRID[0], torch.float64, True)
    channels_last = input.detach().to(memory_format=torch.channels_last).requires_grad_()
    assert not channels_last.is_contiguous()
    output, grads, grad_output = forward_and_grads(conv_ext.conv2d, channels_last, weight, bias, None, padding=1)
    expected, expected_grads, _ = forward_and_grads(F.conv2d, input, weight, bias, grad_output, padding=1)
    torch.testing.assert_close(output, expected, **TOLERANCES[torch.float64])
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, **TOLERANCES[torch.float64])


@with_bias
def test_unbatched_input(bias):
    input, weight, b = make_tensors(GRID[0], torch.float64, bias)
    unbatched = input[0].detach().requires_grad_()
    output, grads, grad_output = forward_and_grads(conv_ext.conv2d, unbatched, weight, b, None, stride=2, padding=1)
    expected, expected_grads, _ = forward_and_grads(F.conv2d, unbatched, weight, b, grad_output, stride=2, padding=1)
    assert output.dim() == 3
    torch.testing.assert_close(output, expected, **TOLERANCES[torch.float64])
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, **TOLERANCES[torch.float64])


def test_grads_only_where_required():
    """The backward op computes only what autograd asks for (output_mask); frozen weights get no grad."""
    input, weight, bias = make_tensors(GRID[0], torch.float64, True)
    weight.requires_grad_(False)
    output = conv_ext.conv2d(input, weight, bias, padding=1)
    output.sum().backward()
    assert weight.grad is None and input.grad is not None and bias.grad is not None
    torch.testing.assert_close(bias.grad, torch.full_like(bias, output[:, 0].numel()))


@pytest.mark.parametrize("config", [
    dict(stride=1, padding=0, dilation=1, groups=1),
    dict(stride=2, padding=1, dilation=1, groups=1),
    dict(stride=(1, 2), padding=(2, 1), dilation=(2, 1), groups=2),
    dict(stride=1, padding=1, dilation=1, groups=4),
], ids=["plain", "strided", "mixed", "depthwise"])
def test_gradcheck(config):
    torch.manual_seed(0)
    input = torch.randn(2, 4, 7, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 4 // config["groups"], 3, 2, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: conv_ext.conv2d(x, w, b, **config), (input, weight, bias))


OPCHECK_ARGS = [
    ((2, 3, 8, 8), (4, 3, 3, 3), True, [1, 1], [1, 1], [1, 1], 1),
    ((3, 4, 9, 7), (6, 2, 2, 3), False, [2, 1], [0, 2], [1, 2], 2),
    ((1, 4, 6, 6), (4, 1, 3, 3), True, [1, 1], [1, 1], [1, 1], 4),
]


@pytest.mark.parametrize("args", OPCHECK_ARGS, ids=["plain", "strided-groups", "depthwise"])
def test_opcheck_forward(args):
    input_shape, weight_shape, has_bias, stride, padding, dilation, groups = args
    input = torch.randn(input_shape, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(weight_shape, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(weight_shape[0], dtype=torch.float64, requires_grad=True) if has_bias else None
    torch.library.opcheck(torch.ops.conv_ext.conv2d.default, (input, weight, bias, stride, padding, dilation, groups))


@pytest.mark.parametrize("args", OPCHECK_ARGS, ids=["plain", "strided-groups", "depthwise"])
@pytest.mark.parametrize("output_mask", [[True, True, True], [True, False, False], [False, True, False]])
def test_opcheck_backward(args, output_mask):
    input_shape, weight_shape, _, stride, padding, dilation, groups = args
    input = torch.randn(input_shape, dtype=torch.float64)
    weight = torch.randn(weight_shape, dtype=torch.float64)
    output = torch.ops.conv_ext.conv2d(input, weight, None, stride, padding, dilation, groups)
    grad_output = torch.randn_like(output)
    torch.library.opcheck(torch.ops.conv_ext.conv2d_backward.default,
                          (grad_output, input, weight, stride, padding, dilation, groups, output_mask))


def test_the_ops_autograd_is_the_cpp_node():
    """The op's autograd is registered in C++ (csrc/ops/conv2d_autograd.cpp): its graph node is a C++ node, not a
    Python function (with which a small convolution paid more for Python than for its kernels)."""
    input, weight, bias = make_tensors(GRID[0], torch.float64, True)
    output = torch.ops.conv_ext.conv2d(input, weight, bias, [1, 1], [1, 1], [1, 1], 1)
    assert "Conv2dAutograd" in output.grad_fn.name()
    assert "Conv2dAutograd" in conv_ext.conv2d(input, weight, bias, padding=1).grad_fn.name()
    # Nothing to differentiate (no_grad, or no argument requires grad): no graph node, a plain tensor.
    with torch.no_grad():
        output = conv_ext.conv2d(input, weight, bias, padding=1)
    assert output.grad_fn is None and not output.requires_grad
    output = conv_ext.conv2d(input.detach(), weight.detach(), bias.detach(), padding=1)
    assert output.grad_fn is None and not output.requires_grad


def test_saves_only_input_and_weight():
    """The forward keeps input and weight for backward, never the columns."""
    input, weight, bias = make_tensors(GRID[0], torch.float32, True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        conv_ext.conv2d(input, weight, bias, padding=1)
    assert sum(t.numel() * t.element_size() for t in saved) == (
        input.numel() * input.element_size() + weight.numel() * weight.element_size())


def _spy_on_the_direct_binding(monkeypatch):
    calls = []
    direct = conv_ext._C.conv2d

    def spy(*args):
        calls.append(args)
        return direct(*args)
    monkeypatch.setattr(conv_ext._C, "conv2d", spy)
    return calls


def test_eager_calls_take_the_direct_binding(monkeypatch):
    """conv_ext.conv2d calls the op through its direct binding (conv_ext._C.conv2d: the dispatcher without
    torch.ops' boxed argument parsing), graph node and all."""
    calls = _spy_on_the_direct_binding(monkeypatch)
    input, weight, bias = make_tensors(GRID[0], torch.float64, True)
    output = conv_ext.conv2d(input, weight, bias, padding=1)
    assert len(calls) == 1
    assert "Conv2dAutograd" in output.grad_fn.name()
    torch.testing.assert_close(output, F.conv2d(input, weight, bias, padding=1))


def test_torch_function_modes_and_overrides_see_the_op(monkeypatch):
    """Under a TorchFunctionMode, or for a tensor subclass with __torch_function__, conv_ext.conv2d calls
    torch.ops.conv_ext.conv2d, which they see (the direct binding would bypass them)."""
    calls = _spy_on_the_direct_binding(monkeypatch)
    input, weight, bias = make_tensors(GRID[0], torch.float32, False)
    seen = []

    class Recording(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))

    with Recording():
        output = conv_ext.conv2d(input, weight, bias, padding=1)
    assert any("conv_ext.conv2d" in str(func) for func in seen), seen

    class Logged(torch.Tensor):
        functions = []

        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            cls.functions.append(func)
            return super().__torch_function__(func, types, args, kwargs or {})

    logged = conv_ext.conv2d(input.as_subclass(Logged), weight, bias, padding=1)
    assert any("conv_ext.conv2d" in str(func) for func in Logged.functions), Logged.functions
    assert calls == []
    torch.testing.assert_close(output, F.conv2d(input, weight, bias, padding=1))
    torch.testing.assert_close(logged.as_subclass(torch.Tensor), output)
