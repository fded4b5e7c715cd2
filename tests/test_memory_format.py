"""Memory formats as F.conv2d has them: where the input or the weight is channels_last, the output, grad_input and
grad_weight are channels_last too (ATen's convolution and convolution_backward); otherwise contiguous. Checked on
every CPU path (each instruction set, none, the textbook path), on the Meta kernels (what torch.compile traces
with), and for values against torch in each format."""
import itertools

import pytest
import torch
import torch.nn.functional as F

import conv_ext
from conv_ext import settings
from conv_cases import CPU_BACKENDS

PATHS = {**CPU_BACKENDS, "im2col_gemm": settings.im2col_gemm}
FORMATS = list(itertools.product([False, True], repeat=2))  # (input channels_last, weight channels_last)
FORMAT_IDS = [f"input-{'cl' if i else 'c'}-weight-{'cl' if w else 'c'}" for i, w in FORMATS]
DTYPES = [torch.float32, torch.float64, torch.bfloat16]
# (in, out, size, kernel, stride, padding, groups): a plain 3x3, a strided one, a depthwise one, a 1x1.
LAYERS = [(4, 6, (7, 9), 3, 1, 1, 1), (4, 32, (9, 8), 3, 2, 1, 1), (8, 8, (7, 7), 3, 1, 1, 8),
          (16, 32, (5, 6), 1, 1, 0, 1)]


def make(layer, formats, dtype=torch.float32, device="cpu"):
    in_channels, out_channels, size, kernel, stride, padding, groups = layer
    torch.manual_seed(0)
    input = torch.randn(2, in_channels, *size, dtype=dtype, device=device)
    weight = torch.randn(out_channels, in_channels // groups, kernel, kernel, dtype=dtype, device=device)
    input, weight = (t.to(memory_format=torch.channels_last) if cl else t for t, cl in zip((input, weight), formats))
    return input, weight, dict(stride=stride, padding=padding, groups=groups)


def run_ops(conv, input, weight, kwargs):
    """Output and (grad_input, grad_weight, grad_bias) of the op, straight from the backward op (autograd would
    lay leaf gradients out like their leaves whatever the op returns)."""
    output = conv(input, weight, None, **kwargs)
    grad_output = torch.ones_like(output, memory_format=torch.contiguous_format)
    if conv is F.conv2d:
        grads = torch.ops.aten.convolution_backward(
            grad_output, input, weight, [weight.shape[0]], [kwargs["stride"]] * 2, [kwargs["padding"]] * 2, [1, 1],
            False, [0, 0], kwargs["groups"], [True, True, True])
    else:
        grads = torch.ops.conv_ext.conv2d_backward(grad_output, input, weight, [kwargs["stride"]] * 2,
                                                   [kwargs["padding"]] * 2, [1, 1], kwargs["groups"],
                                                   [True, True, True])
    return output, grads


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("formats", FORMATS, ids=FORMAT_IDS)
@pytest.mark.parametrize("layer", LAYERS, ids=["3x3", "strided", "depthwise", "1x1"])
def test_results_take_torchs_memory_format_and_values(path, formats, layer):
    input, weight, kwargs = make(layer, formats)
    expected, expected_grads = run_ops(F.conv2d, input, weight, kwargs)
    with PATHS[path]():
        output, grads = run_ops(conv_ext.conv2d, input, weight, kwargs)
    for got, want in zip((output, *grads[:2]), (expected, *expected_grads[:2])):
        assert got.stride() == want.stride(), (got.shape, got.stride(), want.stride())
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(grads[2], expected_grads[2], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("formats", FORMATS, ids=FORMAT_IDS)
def test_every_dtype_follows_the_rule(dtype, formats):
    input, weight, kwargs = make(LAYERS[0], formats, dtype)
    output, (grad_input, grad_weight, _) = run_ops(conv_ext.conv2d, input, weight, kwargs)
    expected, (expected_input, expected_weight, _) = run_ops(F.conv2d, input, weight, kwargs)
    assert [t.stride() for t in (output, grad_input, grad_weight)] == \
        [t.stride() for t in (expected, expected_input, expected_weight)]


@pytest.mark.parametrize("formats", FORMATS, ids=FORMAT_IDS)
def test_meta_kernels_give_the_same_strides(formats):
    """The Meta kernels (fake tensors, torch.compile) allocate what the CPU kernels return."""
    input, weight, kwargs = make(LAYERS[0], formats)
    output, grads = run_ops(conv_ext.conv2d, input, weight, kwargs)
    meta_output, meta_grads = run_ops(conv_ext.conv2d, input.to("meta"), weight.to("meta"), kwargs)
    assert meta_output.stride() == output.stride()
    assert [g.stride() for g in meta_grads] == [g.stride() for g in grads]


def test_a_channels_last_model_stays_channels_last():
    """conv_ext.convert on a channels_last model: every layer's output is channels_last, as with nn.Conv2d, and the
    gradients of the (channels_last) weights too."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3))
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 10, 10).to(memory_format=torch.channels_last)
    reference = model(x)
    conv_ext.convert(model)
    output = model(x)
    assert output.is_contiguous(memory_format=torch.channels_last) and not output.is_contiguous()
    torch.testing.assert_close(output, reference, atol=1e-5, rtol=1e-5)
    output.sum().backward()
    assert model[0].weight.grad.is_contiguous(memory_format=torch.channels_last)
