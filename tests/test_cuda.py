"""The CUDA backend: parity with the CPU ops and with F.conv2d, gradients, the half types, streams,
torch.compile, bitwise repeatability and 64-bit indexing. Every test needs a CUDA GPU and a build of conv_ext with
its CUDA kernels; elsewhere the whole module is skipped with the reason."""
from typing import Optional, Tuple

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import conv_ext

# One module-level skip (not one per parametrised case) where there is nothing to run the CUDA kernels on.
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)
if not conv_ext.cuda_built():
    pytest.skip("conv_ext was built without its CUDA kernels (build with a CUDA torch and nvcc, or FORCE_CUDA=1)",
                allow_module_level=True)

CUDA = torch.device("cuda")

KERNELS = [(1, 1), (3, 3), (2, 3), (3, 5)]
STRIDES = [1, 2, 3]
PADDINGS = [0, 1]
DILATIONS = [1, 2]
GROUPS = [1, 2, "depthwise"]
BATCHES = [0, 1, 5]
IN_CHANNELS = 4
HEIGHT, WIDTH = 11, 12  # the largest dilated kernel, (3, 5) with dilation 2, spans 5 x 9: fits without padding


def make_problem(batch: int, kernel: Tuple[int, int], groups, bias: bool, dtype: torch.dtype,
                 device: torch.device, seed: int = 0):
    """Random input, weight and bias (or None) on `device`, made on the CPU from a fixed seed so that every
    device gets the same values; groups is an int or "depthwise" (groups = in_channels, two outputs each)."""
    groups = IN_CHANNELS if groups == "depthwise" else groups
    out_channels = 2 * IN_CHANNELS if groups == IN_CHANNELS else 6
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, IN_CHANNELS, HEIGHT, WIDTH, generator=generator, dtype=torch.float64)
    w = torch.randn(out_channels, IN_CHANNELS // groups, *kernel, generator=generator, dtype=torch.float64)
    b = torch.randn(out_channels, generator=generator, dtype=torch.float64) if bias else None
    to = dict(device=device, dtype=dtype)
    return x.to(**to), w.to(**to), (b.to(**to) if b is not None else None), groups


def forward_backward(x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor], conv=conv_ext.conv2d,
                     grad_output_dtype: Optional[torch.dtype] = None, **conv_args):
    """The output and the gradients of input, weight and bias (None without a bias) for a random grad_output
    made from a fixed seed (the same values for every device and dtype), rounded to grad_output_dtype first
    when given (the output's dtype otherwise)."""
    leaves = [t.detach().clone().requires_grad_() for t in (x, w) + ((b,) if b is not None else ())]
    out = conv(*leaves[:2], leaves[2] if b is not None else None, **conv_args)
    generator = torch.Generator().manual_seed(1)
    grad_output = torch.randn(out.shape, generator=generator, dtype=torch.float64)
    grad_output = grad_output.to(grad_output_dtype or out.dtype).to(out)
    grads = torch.autograd.grad(out, leaves, grad_output)
    return (out.detach(), *grads) + ((None,) if b is None else ())


def assert_scaled_close(actual: torch.Tensor, expected: torch.Tensor, rel: float, name: str) -> None:
    """max |actual - expected| <= rel * max(1, max |expected|), computed in float64: the error bound of a
    rounded sum of products is relative to the size of the terms, not to each (possibly cancelled) result."""
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a, e = actual.double().cpu(), expected.double().cpu()
    if e.numel() == 0:
        return
    error = (a - e).abs().max().item()
    bound = rel * max(1.0, e.abs().max().item())
    assert error <= bound, f"{name}: max abs error {error:.3g} > {bound:.3g}"


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("groups", GROUPS, ids=lambda g: f"groups={g}")
@pytest.mark.parametrize("dilation", DILATIONS, ids=lambda d: f"dilation={d}")
@pytest.mark.parametrize("padding", PADDINGS, ids=lambda p: f"padding={p}")
@pytest.mark.parametrize("stride", STRIDES, ids=lambda s: f"stride={s}")
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: f"kernel={k[0]}x{k[1]}")
def test_cuda_matches_cpu_float64(kernel, stride, padding, dilation, groups, bias, batch):
    args = dict(stride=stride, padding=padding, dilation=dilation)
    x, w, b, g = make_problem(batch, kernel, groups, bias, torch.float64, torch.device("cpu"))
    expected = forward_backward(x, w, b, groups=g, **args)
    actual = forward_backward(x.to(CUDA), w.to(CUDA), b.to(CUDA) if b is not None else None, groups=g, **args)
    oracle = forward_backward(x, w, b, conv=F.conv2d, groups=g, **args)
    for name, a, e, o in zip(["output", "grad_input", "grad_weight", "grad_bias"], actual, expected, oracle):
        if e is None:
            assert a is None
            continue
        assert a.device.type == "cuda", f"{name} is on {a.device}"
        torch.testing.assert_close(a.cpu(), e, rtol=1e-10, atol=1e-10, msg=lambda m: f"{name} vs CPU: {m}")
        torch.testing.assert_close(a.cpu(), o, rtol=1e-10, atol=1e-10, msg=lambda m: f"{name} vs F.conv2d: {m}")


def test_non_contiguous_inputs():
    x, w, b, _ = make_problem(3, (3, 3), 1, True, torch.float64, CUDA)
    x_channels_last = x.to(memory_format=torch.channels_last)
    w_strided = w.transpose(2, 3).contiguous().transpose(2, 3)  # same values, non-contiguous strides
    assert not x_channels_last.is_contiguous() and not w_strided.is_contiguous()
    actual = forward_backward(x_channels_last, w_strided, b, stride=2, padding=1)
    expected = forward_backward(x, w, b, conv=F.conv2d, stride=2, padding=1)
    for name, a, e in zip(["output", "grad_input", "grad_weight", "grad_bias"], actual, expected):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_gradcheck_float64(bias):
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 7, 6, generator=generator, dtype=torch.float64).to(CUDA).requires_grad_()
    w = torch.randn(4, 2, 3, 2, generator=generator, dtype=torch.float64).to(CUDA).requires_grad_()
    b = torch.randn(4, generator=generator, dtype=torch.float64).to(CUDA).requires_grad_() if bias else None
    inputs = (x, w, b) if bias else (x, w)

    def conv(x, w, b=None):
        return conv_ext.conv2d(x, w, b, stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)

    assert torch.autograd.gradcheck(conv, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_opcheck():
    """Schema, fake (Meta) kernel and autograd registration agree with the CUDA kernel."""
    x, w, b, _ = make_problem(2, (3, 3), 2, True, torch.float32, CUDA)
    args = (x.requires_grad_(), w.requires_grad_(), b.requires_grad_(), [2, 1], [1, 1], [1, 2], 2)
    torch.library.opcheck(torch.ops.conv_ext.conv2d.default, args)


# (dtype, rel): half and bfloat16 keep 11 and 8 significant bits; the GEMM rounds dcols / partial dw to the
# dtype once more before col2im and the batch sum, so allow a few roundings relative to the largest value.
HALF_TYPES = [(torch.float16, 4e-3), (torch.bfloat16, 3e-2)]


@pytest.mark.parametrize("groups", [1, 2, "depthwise"], ids=lambda g: f"groups={g}")
@pytest.mark.parametrize("dtype,rel", HALF_TYPES, ids=["float16", "bfloat16"])
def test_half_types_against_f_conv2d(dtype, rel, groups):
    x, w, b, g = make_problem(4, (3, 3), groups, True, dtype, CUDA, seed=5)
    args = dict(stride=(1, 2), padding=1, dilation=(2, 1), groups=g)
    actual = forward_backward(x, w, b, **args)
    assert all(t.dtype == dtype for t in actual)
    # The oracle: F.conv2d in float64 on the very same rounded values (input, weight, bias and grad_output).
    expected = forward_backward(x.double(), w.double(), b.double(), conv=F.conv2d, grad_output_dtype=dtype, **args)
    for name, a, e in zip(["output", "grad_input", "grad_weight", "grad_bias"], actual, expected):
        assert_scaled_close(a, e, rel, f"{dtype} {name}")


def test_non_default_stream_matches_default_stream():
    """All the work of both ops (allocations, kernels, GEMMs) follows the current stream."""
    x, w, b, _ = make_problem(5, (3, 3), 2, True, torch.float64, CUDA, seed=7)
    args = dict(stride=2, padding=1, groups=2)
    expected = forward_backward(x, w, b, **args)
    torch.cuda.synchronize()

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        # Keep the side stream busy before the inputs are written on it: a kernel launched on another stream
        # would then read the inputs before they exist, and the result would be garbage.
        if hasattr(torch.cuda, "_sleep"):
            torch.cuda._sleep(50_000_000)
        x_side, w_side, b_side = (t * 1 for t in (x, w, b))
        actual = forward_backward(x_side, w_side, b_side, **args)
        assert torch.cuda.current_stream() == stream
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    for name, a, e in zip(["output", "grad_input", "grad_weight", "grad_bias"], actual, expected):
        # Equal up to float64 rounding (cuBLAS may pick its algorithm per stream; a race would be far off).
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12, msg=lambda m: f"{name} on a side stream: {m}")


def test_torch_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    model = nn.Sequential(
        conv_ext.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        conv_ext.Conv2d(8, 8, 3, stride=2, groups=2, bias=False), nn.ReLU(),
        conv_ext.Conv2d(8, 4, (2, 3), dilation=(1, 2)),
    ).to(CUDA)
    x = torch.randn(2, 3, 16, 16, device=CUDA)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)

    def run(module):
        module.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_()
        out = module(xi)
        out.square().sum().backward()
        return [out.detach(), xi.grad] + [p.grad for p in model.parameters()]

    eager = run(model)
    traced = run(compiled)
    for index, (a, e) in enumerate(zip(traced, eager)):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5, msg=lambda m: f"tensor {index}: {m}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["float32", "float16"])
def test_bitwise_repeatable(dtype):
    x, w, b, g = make_problem(5, (3, 5), "depthwise", True, dtype, CUDA, seed=11)
    args = dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=g)
    first = forward_backward(x, w, b, **args)
    second = forward_backward(x, w, b, **args)
    for name, a, e in zip(["output", "grad_input", "grad_weight", "grad_bias"], first, second):
        assert torch.equal(a, e), f"{name} differs between two identical runs"


def test_column_matrix_past_2_to_the_31_elements():
    """One chunk whose column matrix has more than 2^31 entries: the kernels' indices need 64 bits."""
    batch, channels, size, out_channels = 912, 16, 128, 4
    column_elements = channels * 9 * batch * size * size  # 3x3 kernel, padding 1: Ho*Wo = H*W
    assert column_elements > 2**31
    element_size = 4
    # Forward: input + columns + output; backward (dx only): grad columns + grad_input + grad_output;
    # the F.conv2d reference and its gradient about as much again as the tensors.
    needed = column_elements * element_size + 6 * batch * channels * size * size * element_size
    free, total = torch.cuda.mem_get_info()
    assert total == torch.cuda.get_device_properties(CUDA).total_memory
    if free < needed * 1.25:
        pytest.skip(f"needs about {needed * 1.25 / 2**30:.1f} GiB of free GPU memory, "
                    f"{free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB")

    generator = torch.Generator(device=CUDA).manual_seed(13)
    x = torch.randn(batch, channels, size, size, device=CUDA, generator=generator).requires_grad_()
    w = torch.randn(out_channels, channels, 3, 3, device=CUDA, generator=generator) / 12
    b = torch.randn(out_channels, device=CUDA, generator=generator)
    conv_ext.reset_peak_workspace_bytes()
    with conv_ext.workspace_limit(2 * column_elements * element_size):  # the whole batch in one chunk
        out = conv_ext.conv2d(x, w, b, padding=1)
        assert conv_ext.peak_workspace_bytes() >= column_elements * element_size, "the batch was chunked"
        grad_output = torch.randn(out.shape, device=CUDA, generator=generator)
        (grad_input,) = torch.autograd.grad(out, x, grad_output)

    # The oracle in float32 without TF32, checked in slices to bound its memory.
    cudnn_tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        for start in range(0, batch, 152):
            xs = x[start:start + 152].detach().requires_grad_()
            expected = F.conv2d(xs, w, b, padding=1)
            (expected_grad,) = torch.autograd.grad(expected, xs, grad_output[start:start + 152])
            torch.testing.assert_close(out[start:start + 152], expected, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(grad_input[start:start + 152], expected_grad, rtol=1e-4, atol=1e-4)
    finally:
        torch.backends.cudnn.allow_tf32 = cudnn_tf32
