"""The kernel table (csrc/cpu/kernel_table.cpp) on real layers: every kernel that may run a pass gives F.conv2d's
result at batch 1 and at batches that are no multiple of any register block, in both memory formats; and the
table's choice for layers of real networks (wide layers on small planes run the tiled path, not a column-free
kernel whose traffic grows with the weight)."""
import contextlib

import pytest
import torch
import torch.nn.functional as F

import conv_ext
from conv_ext import _C, settings
from conv_cases import SIMD_ISAS
from test_determinism import num_threads

PASSES = ("forward", "grad_input", "grad_weight")
# Real layers, channels and planes cut down to keep the test quick where the kernel choice allows it:
# (in, out, size, kernel, stride, padding, groups[, dilation]).
LAYERS = {
    "resnet-stem": (3, 32, (23, 23), 7, 2, 3, 1),
    "resnet-3x3": (64, 64, (9, 9), 3, 1, 1, 1),
    "resnet-down-3x3": (64, 128, (9, 9), 3, 2, 1, 1),
    "resnet-down-1x1": (64, 128, (9, 9), 1, 2, 0, 1),
    "resnet-down-3x3-256": (32, 256, (15, 15), 3, 2, 1, 1),  # the direct kernel at stride 2 on contiguous tensors
    # dx by phases on the direct kernel (off Intel CPUs): stride 3 with a kernel of 2, whose third phase no tap
    # reaches (zeros); padding beyond the kernel's reach (phases that crop dy); a 2x2 downsampler (1x1 phases).
    "phases-unreached": (32, 40, (11, 13), 2, 3, 0, 1),
    "phases-cropped": (32, 48, (10, 9), 3, 2, 3, 1),
    "downsampler-2x2": (48, 64, (10, 10), 2, 2, 0, 1),
    "wide-7x7-plane": (128, 128, (7, 7), 3, 1, 1, 1),
    "large-weight-few-positions": (128, 1024, (3, 4), 3, 1, 1, 1),  # 2^20 floats: off Intel the direct dx (9,216 deep)
    "bottleneck-1x1": (64, 24, (7, 7), 1, 1, 0, 1),
    # 1x1 on the direct kernel (channels_last, AVX-512): 64 outputs of each pass, 128 with a stride; >= 512 positions.
    "pointwise-64": (64, 64, (23, 23), 1, 1, 0, 1),
    "strided-1x1-128": (64, 128, (45, 45), 1, 2, 0, 1),
    "reduction-1x1-192": (256, 192, (9, 9), 1, 1, 0, 1),  # the direct kernel's 1x1 forward with 3 blocks at batch 9
    # The direct kernel's last block as narrow as its channels: 112 = 64 + 48 outputs, dx 80 = 64 + 16; 96 = 64 + 32.
    "last-blocks-48-16": (80, 112, (7, 9), 3, 1, 1, 1),
    "last-blocks-32": (96, 96, (5, 6), 3, 1, 1, 1),
    # 1x1 on the direct kernel off Intel CPUs (>= 512 positions at every batch): 16 and 24 outputs (one vector, two
    # with 8 idle lanes); dx 40 (48 lanes).
    "pointwise-16": (40, 16, (17, 31), 1, 1, 0, 1),
    "pointwise-24": (40, 24, (17, 31), 1, 1, 0, 1),
    "seed-conv2": (16, 32, (14, 14), 5, 1, 2, 1),
    "strided-5x5": (16, 32, (11, 11), 5, 2, 2, 1),
    "depthwise-3x3": (32, 32, (10, 10), 3, 1, 1, 32),
    "depthwise-3x3-odd": (40, 40, (9, 21), 3, 1, 1, 40),  # pixels outer, 16 + 16 + 8 channels, a row of 16 + 5
    "depthwise-7x7": (40, 40, (9, 13), 7, 1, 3, 40),  # ConvNeXt's; 16 + 16 + 8 channels, a row of 13 pixels
    "depthwise-5x5-narrow": (24, 24, (6, 3), 5, 1, 2, 24),  # a row narrower than the taps
    # dw summing a kernel row's taps together on the pixels where they all lie inside the row (16 and 12 of them),
    # the edges tap by tap; 16 + 8 and 16 + 4 channels.
    "depthwise-5x5-wide": (24, 24, (5, 20), 5, 1, 2, 24),
    "depthwise-7x7-wide": (20, 20, (4, 19), 7, 1, 3, 20),
    "depthwise-s2-5x5": (24, 24, (11, 11), 5, 2, 2, 24),
    "depthwise-wide-s2": (72, 72, (9, 10), 3, 2, 1, 72),  # channel blocks of 64 + 8
    "depthwise-s2-3x3-row": (40, 40, (7, 37), 3, 2, 1, 40),  # sliding at stride 2: a row of 16 + 3 pixels
    # Few output rows at batch 1: the work splits into slabs of channels too (128 + 72).
    "depthwise-few-rows": (200, 200, (5, 9), 7, 1, 3, 200),
    "depthwise-multiplier": (8, 16, (9, 9), 3, 1, 1, 8),
    "depthwise-dilated": (20, 20, (10, 9), 3, 2, 3, 20, 2),  # padding beyond the kernel's reach on one side
    "dilated": (32, 32, (10, 10), 3, 1, 2, 1, 2),
    "padding-beyond-reach": (32, 32, (8, 8), 3, 1, 3, 1),  # dx as a convolution of dy would crop: padding -1
    "grouped": (32, 64, (8, 8), 3, 1, 1, 2),
    "squeeze-1x1-plane": (48, 16, (1, 1), 1, 1, 0, 1),
    "odd-channels": (40, 50, (9, 7), 3, 1, 1, 1),  # lanes past C, a block of output channels past O
    "stem-40-outputs": (3, 40, (17, 15), 3, 2, 1, 1),  # dw with the output channels in the lanes: 32 + 8 of 64
}
BATCHES = (1, 5, 9)  # register blocks are 8 samples (exact taps) and 4, 6 or 12 rows: none divides 5 or 9


@contextlib.contextmanager
def preferred(pass_index, kernel):
    _C._prefer_cpu_kernel(pass_index, kernel)
    try:
        yield
    finally:
        _C._prefer_cpu_kernel(pass_index, "")


def make(layer, batch, channels_last, dtype=torch.float32):
    in_channels, out_channels, size, kernel, stride, padding, groups, *dilation = layer
    generator = torch.Generator().manual_seed(batch)
    input = torch.randn(batch, in_channels, *size, generator=generator, dtype=dtype)
    weight = torch.randn(out_channels, in_channels // groups, kernel, kernel, generator=generator, dtype=dtype)
    if channels_last:
        input = input.contiguous(memory_format=torch.channels_last)
    return input, weight, dict(stride=stride, padding=padding, dilation=dilation[0] if dilation else 1, groups=groups)


def candidates(input, weight, kwargs):
    s, p, d = kwargs["stride"], kwargs["padding"], kwargs.get("dilation", 1)
    return _C._cpu_kernel_candidates(input, weight, [s, s], [p, p], [d, d], kwargs["groups"])


def pass_results(input, weight, kwargs, grad_output):
    """Forward, dx and dw straight from the ops."""
    s, p, d, g = [kwargs["stride"]] * 2, [kwargs["padding"]] * 2, [kwargs["dilation"]] * 2, kwargs["groups"]
    output = torch.ops.conv_ext.conv2d(input, weight, None, s, p, d, g)
    dx, dw, _ = torch.ops.conv_ext.conv2d_backward(grad_output, input, weight, s, p, d, g, [True, True, False])
    return output, dx, dw


@pytest.mark.parametrize("isa", SIMD_ISAS + ["none"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("name", list(LAYERS))
def test_every_candidate_kernel_matches_torch(name, batch, channels_last, isa):
    input, weight, kwargs = make(LAYERS[name], batch, channels_last)
    expected_output = F.conv2d(input.double(), weight.double(), **kwargs)
    grad_output = torch.randn(expected_output.shape, generator=torch.Generator().manual_seed(7))
    expected = (expected_output, *torch.ops.aten.convolution_backward(
        grad_output.double(), input.double(), weight.double(), None, [kwargs["stride"]] * 2,
        [kwargs["padding"]] * 2, [kwargs["dilation"]] * 2, False, [0, 0], kwargs["groups"], [True, True, False])[:2])
    with settings.simd_isa(isa):
        every = candidates(input, weight, kwargs)
        chosen = [choice.kernel for choice in conv_ext.explain(input, weight, **kwargs).values()]
        for pass_index, kernels in enumerate(every):
            assert kernels[0] == chosen[pass_index]  # the table's choice is its first candidate
            for kernel in kernels:
                with preferred(pass_index, kernel):
                    assert conv_ext.explain(input, weight, **kwargs)[PASSES[pass_index]].kernel == kernel
                    got = pass_results(input, weight, kwargs, grad_output)[pass_index]
                want = expected[pass_index]
                error = (got.double() - want).abs().max().item() / want.abs().max().item()
                assert error < 2e-6, (PASSES[pass_index], kernel, error)


@pytest.mark.parametrize("name", ["resnet-3x3", "odd-channels", "bottleneck-1x1", "pointwise-64", "depthwise-3x3",
                                  "depthwise-dilated"])
def test_nhwc_kernels_with_bias_and_channels_last_gradients(name):
    """The kernels on NHWC memory through autograd: a bias, grad_output and the weight in channels_last too (no
    layout change anywhere; the direct kernel packs the weight from its own memory format), float32 and float64
    (tiled_nhwc's other dtype)."""
    for dtype in (torch.float32, torch.float64):
        input, weight, kwargs = make(LAYERS[name], 3, True, dtype)
        weight = weight.contiguous(memory_format=torch.channels_last)
        bias = torch.randn(weight.shape[0], dtype=dtype)
        leaves = [t.clone().requires_grad_() for t in (input, weight, bias)]
        refs = [t.detach().double().requires_grad_() for t in leaves]
        output = conv_ext.conv2d(*leaves, **kwargs)
        expected = F.conv2d(*refs, **kwargs)
        assert output.is_contiguous(memory_format=torch.channels_last)
        grad_output = torch.randn_like(expected).contiguous(memory_format=torch.channels_last)
        output.backward(grad_output.to(dtype))
        expected.backward(grad_output)
        tolerance = 2e-6 if dtype == torch.float32 else 1e-12
        for got, want in zip((output, *(t.grad for t in leaves)), (expected, *(t.grad for t in refs))):
            error = (got.double() - want).abs().max().item() / want.abs().max().item()
            assert error < tolerance, (name, dtype, error)


@pytest.mark.parametrize("isa", SIMD_ISAS)
@pytest.mark.parametrize("name", ["depthwise-s2-5x5", "depthwise-wide-s2", "depthwise-dilated"])
def test_strided_depthwise_grad_input_alone_through_nhwc(name, isa):
    """dx alone of a contiguous strided depthwise layer on the NHWC kernel, which then copies dy but not the input."""
    input, weight, kwargs = make(LAYERS[name], 5, False)
    s, p, d = [kwargs["stride"]] * 2, [kwargs["padding"]] * 2, [kwargs["dilation"]] * 2
    grad_output = torch.randn(F.conv2d(input, weight, **kwargs).shape, generator=torch.Generator().manual_seed(3))
    expected = torch.ops.aten.convolution_backward(grad_output.double(), input.double(), weight.double(), None, s, p,
                                                   d, False, [0, 0], kwargs["groups"], [True, False, False])[0]
    with settings.simd_isa(isa):
        assert conv_ext.explain(input, weight, **kwargs)["grad_input"].kernel == "depthwise_nhwc"
        got = torch.ops.conv_ext.conv2d_backward(grad_output, input, weight, s, p, d, kwargs["groups"],
                                                 [True, False, False])[0]
    assert got.is_contiguous()
    error = (got.double() - expected).abs().max().item() / expected.abs().max().item()
    assert error < 2e-6, (name, error)


# Contiguous depthwise layers at stride 2 whose dx and dw run their NCHW kernels (output rows >= 8 wide; dw: a
# kernel 3, 5 or 7 wide): (channels, height, width, kernel, padding). Odd widths and a chunk of 32 dx columns plus a remainder, even and 1-wide kernels (a row
# of dx no tap reaches), padding beyond the kernel's reach.
STRIDE2_DEPTHWISE = [(24, 17, 33, 3, 1), (16, 16, 16, 5, 2), (8, 20, 47, 7, 3), (20, 18, 64, 3, 0),
                     (12, 16, 19, 4, 1), (3, 21, 16, 1, 0), (8, 16, 20, 3, 3), (5, 30, 31, 5, 0)]


@pytest.mark.parametrize("isa", SIMD_ISAS)
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("layer", STRIDE2_DEPTHWISE)
def test_stride2_depthwise_gradients_on_their_kernels(layer, batch, isa):
    """dx and dw of a contiguous depthwise layer at stride 2: dx's even and odd columns from runs of dy's rows,
    interleaved; dw's taps as runs of dy's rows times runs of the input rows' even or odd columns."""
    channels, height, width, kernel, padding = layer
    generator = torch.Generator().manual_seed(batch)
    input = torch.randn(batch, channels, height, width, generator=generator)
    weight = torch.randn(channels, 1, kernel, kernel, generator=generator)
    kwargs = dict(stride=2, padding=padding, groups=channels)
    grad_output = torch.randn(F.conv2d(input, weight, **kwargs).shape, generator=generator)
    expected = torch.ops.aten.convolution_backward(grad_output.double(), input.double(), weight.double(), None, [2, 2],
                                                   [padding] * 2, [1, 1], False, [0, 0], channels,
                                                   [True, True, False])[:2]
    with settings.simd_isa(isa):
        explained = conv_ext.explain(input, weight, **kwargs)
        assert explained["grad_input"].kernel == "depthwise_simd"
        assert explained["grad_weight"].kernel == ("depthwise_simd" if kernel in (3, 5, 7) else "depthwise_nhwc")
        got = torch.ops.conv_ext.conv2d_backward(grad_output, input, weight, [2, 2], [padding] * 2, [1, 1], channels,
                                                 [True, True, False])[:2]
    for result, want, name in zip(got, expected, ("dx", "dw")):
        assert result.is_contiguous() and result.shape == want.shape
        error = (result.double() - want).abs().max().item() / want.abs().max().item()
        assert error < 2e-6, (name, layer, error)


# Weights in the memory layouts the direct kernel packs from (channels_last: 16 channels of a tap at a time;
# contiguous: 16 taps of a channel; else element by element).
WEIGHT_LAYOUTS = {
    "contiguous": lambda weight: weight,
    "channels_last": lambda weight: weight.contiguous(memory_format=torch.channels_last),
    "taps-transposed": lambda weight: weight.transpose(2, 3).contiguous().transpose(2, 3),
    "every-other-output": lambda weight: torch.stack((weight, torch.zeros_like(weight)), 1)[:, 0],
}


@pytest.mark.parametrize("isa", SIMD_ISAS)
@pytest.mark.parametrize("layout", list(WEIGHT_LAYOUTS))
@pytest.mark.parametrize("name", ["odd-channels", "seed-conv2", "resnet-stem", "last-blocks-48-16"])
def test_the_direct_kernel_packs_weights_of_any_layout(name, layout, isa):
    """The direct forward and dx (where they may run) from weights in any strides: 9, 25 and 49 taps (tiles of 16),
    channels and blocks of output channels past multiples of 16."""
    input, weight, kwargs = make(LAYERS[name], 5, True)
    weight = WEIGHT_LAYOUTS[layout](weight)
    expected_output = F.conv2d(input.double(), weight.double(), **kwargs)
    grad_output = torch.randn(expected_output.shape, generator=torch.Generator().manual_seed(7))
    expected = (expected_output, torch.ops.aten.convolution_backward(
        grad_output.double(), input.double(), weight.double(), None, [kwargs["stride"]] * 2,
        [kwargs["padding"]] * 2, [kwargs["dilation"]] * 2, False, [0, 0], 1, [True, False, False])[0])
    with settings.simd_isa(isa):
        ran = 0
        for pass_index, kernels in enumerate(candidates(input, weight, kwargs)[:2]):
            if "direct_nhwc" not in kernels:
                continue
            with preferred(pass_index, "direct_nhwc"):
                got = pass_results(input, weight, kwargs, grad_output)[pass_index]
            want = expected[pass_index]
            error = (got.double() - want).abs().max().item() / want.abs().max().item()
            assert error < 2e-6, (PASSES[pass_index], error)
            ran += 1
        assert ran > 0


@pytest.mark.parametrize("isa", SIMD_ISAS)
@pytest.mark.parametrize("name", ["depthwise-7x7", "depthwise-s2-5x5", "depthwise-few-rows"])
def test_depthwise_by_channel_blocks_on_contiguous_tensors(name, isa):
    """The forward of a contiguous depthwise layer whose kernel slides runs by blocks of 16 channels (the last one
    partial), reading and writing NCHW memory, on either instruction set (AVX2's sliding block is 4 pixels): with a
    bias at batch 1 and 5."""
    for batch in (1, 5):
        input, weight, kwargs = make(LAYERS[name], batch, False)
        bias = torch.randn(weight.shape[0])
        with settings.simd_isa(isa):
            assert conv_ext.explain(input, weight, bias, **kwargs)["forward"].kernel == "depthwise_nhwc"
            output = conv_ext.conv2d(input, weight, bias, **kwargs)
        expected = F.conv2d(input.double(), weight.double(), bias.double(), **kwargs)
        assert output.is_contiguous()
        error = (output.double() - expected).abs().max().item() / expected.abs().max().item()
        assert error < 2e-6, (name, batch, error)


@pytest.mark.parametrize("threads", [1, 2])
def test_every_dw_candidate_over_a_large_input(threads):
    """A 1x1 dw over 32768 positions of 8 MiB of input: where the direct dw runs it on 2 threads, they split the
    output rows (each summing every channel into its own partial), on 1 thread the channels; each candidate's sums
    stay within float32's reach of F.conv2d's in float64."""
    input, weight, kwargs = make((64, 40, (128, 128), 1, 1, 0, 1), 2, True)
    grad_output = torch.randn(2, 40, 128, 128, generator=torch.Generator().manual_seed(3))
    want = torch.ops.aten.convolution_backward(grad_output.double(), input.double(), weight.double(), None, [1, 1],
                                               [0, 0], [1, 1], False, [0, 0], 1, [False, True, False])[1]
    with num_threads(threads):
        for kernel in candidates(input, weight, kwargs)[2]:
            with preferred(2, kernel):
                got = pass_results(input, weight, dict(kwargs), grad_output)[2]
            error = (got.double() - want).abs().max().item() / want.abs().max().item()
            assert error < 2e-6, (kernel, error)


# Layers whose channels_last output (or dx) is large enough to be streamed past the caches (>= 1 MiB a thread, a
# multiple of 16 channels: cpu/simd/streamed_output.h): a 1x1 expansion, a 3-channel stem, a depthwise layer.
STREAMED = {"expansion-1x1": (16, 64, (96, 100), 1, 1, 0, 1), "stem-7x7": (3, 32, (150, 160), 7, 2, 3, 1),
            "projection-1x1": (64, 16, (96, 100), 1, 1, 0, 1), "depthwise-3x3": (64, 64, (96, 100), 3, 1, 1, 64)}


@pytest.mark.parametrize("isa", SIMD_ISAS)
@pytest.mark.parametrize("name", list(STREAMED))
def test_streamed_outputs_match_torch(name, isa):
    """Every candidate of the forward and dx (the passes whose NHWC outputs are streamed, non-temporal stores) on 2
    threads at batch 3, channels_last: each gives F.conv2d's result in float64 to float32's reach; and the direct
    dw, whose sums over the stem's 18,000 positions run row by row."""
    input, weight, kwargs = make(STREAMED[name], 3, True)
    s, p, g = [kwargs["stride"]] * 2, [kwargs["padding"]] * 2, kwargs["groups"]
    grad_output = torch.randn(F.conv2d(input, weight, **kwargs).shape, generator=torch.Generator().manual_seed(5))
    grad_output = grad_output.contiguous(memory_format=torch.channels_last)
    expected = (F.conv2d(input.double(), weight.double(), **kwargs), *torch.ops.aten.convolution_backward(
        grad_output.double(), input.double(), weight.double(), None, s, p, [1, 1], False, [0, 0], g,
        [True, True, False])[:2])
    assert 3 * max(expected[0][0].numel(), input[0].numel()) * 4 >= 2 << 20  # at least 1 MiB a thread
    with num_threads(2), settings.simd_isa(isa):
        every = candidates(input, weight, kwargs)
        runs = [(0, kernel) for kernel in every[0]] + [(1, kernel) for kernel in every[1]]
        runs += [(2, "direct_nhwc")] if "direct_nhwc" in every[2] else []
        for pass_index, kernel in runs:
            with preferred(pass_index, kernel):
                got = pass_results(input, weight, kwargs, grad_output)[pass_index]
            want = expected[pass_index]
            error = (got.double() - want).abs().max().item() / want.abs().max().item()
            assert error < 2e-6, (PASSES[pass_index], kernel, error)


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
def test_no_output_channels_on_every_path(channels_last):
    """A weight with no output channels (an empty output): every pass of every candidate returns empty or zero
    gradients, as F.conv2d's backward does."""
    input = torch.randn(3, 8, 5, 5, dtype=torch.float64)
    if channels_last:
        input = input.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(0, 8, 3, 3, dtype=torch.float64)
    kwargs = dict(stride=1, padding=1, groups=1)
    grad_output = torch.randn(3, 0, 5, 5, dtype=torch.float64)
    for pass_index, kernels in enumerate(candidates(input, weight, kwargs)):
        for kernel in kernels:
            with preferred(pass_index, kernel):
                output, dx, dw = pass_results(input, weight, dict(kwargs, dilation=1), grad_output)
            assert output.shape == (3, 0, 5, 5) and dw.shape == weight.shape
            assert dx.shape == input.shape and not dx.any(), kernel


def test_a_preferred_kernel_that_cannot_run_the_problem_leaves_the_tables_choice():
    input, weight, kwargs = make(LAYERS["resnet-3x3"], 1, False, torch.float64)
    with preferred(0, "depthwise_simd"):
        assert conv_ext.explain(input, weight, **kwargs)["forward"].kernel == "tiled"
    with pytest.raises(ValueError, match="unknown CPU kernel 'gemm'"):
        _C._prefer_cpu_kernel(0, "gemm")
    with pytest.raises(IndexError, match="pass must be 0"):
        _C._prefer_cpu_kernel(3, "tiled")
    assert [_C._preferred_cpu_kernel(i) for i in range(3)] == ["", "", ""]


def kernels_of(shape, channels_last=False, groups=1, stride=1, padding=0):
    """The table's kernels for a layer given as (batch, in, out, size, kernel)."""
    batch, in_channels, out_channels, size, kernel = shape
    input = torch.empty(batch, in_channels, size, size)
    if channels_last:
        input = input.contiguous(memory_format=torch.channels_last)
    weight = torch.empty(out_channels, in_channels // groups, kernel, kernel)
    choices = conv_ext.explain(input, weight, stride=stride, padding=padding, groups=groups)
    return tuple(choice.kernel for choice in choices.values())


@pytest.mark.parametrize("isa", SIMD_ISAS)
def test_the_tables_choice_for_layers_of_real_networks(isa):
    """ResNet-18's last stage at batch 1 ran the exact-taps kernels at 24x torch's time: wide layers run the tiled
    path's GEMM; few output channels per group keep the column-free kernels; depthwise layers their own."""
    with settings.simd_isa(isa), num_threads(2):
        # dw of a large weight on under 256 positions: the direct dw on AVX-512, the NHWC GEMM on AVX2 (both through
        # a layout change); at a batch under the thread count, the tiled path, which then sums dw in place.
        dw_of_wide = "direct_nhwc" if isa == "avx512" else "tiled_nhwc"
        # (Off Intel CPUs dx runs the direct kernel, through a layout change, on any weight.)
        wide_dx = "tiled" if _C._intel_cpu() else "direct_nhwc"
        # (Off Intel CPUs on AVX-512 the forward too: the direct kernel on any weight.)
        off_intel_avx512 = "direct_nhwc" if isa == "avx512" and not _C._intel_cpu() else None
        wide_forward = off_intel_avx512 or "tiled"
        assert kernels_of((1, 512, 512, 7, 3), padding=1) == (wide_forward, wide_dx, "tiled")
        with num_threads(1):
            assert kernels_of((1, 512, 512, 7, 3), padding=1) == (wide_forward, wide_dx, dw_of_wide)
        assert kernels_of((1, 512, 512, 7, 3), channels_last=True, padding=1)[0] == (off_intel_avx512 or "tiled_nhwc")
        assert kernels_of((1, 512, 512, 7, 3), channels_last=True, padding=1)[2] != "tiled"
        # Output planes under 128 positions: at batch 1 the tiled path's one GEMM covers the plane; at batch > 1 the
        # NHWC tiled path's GEMMs run over the positions of several samples (through a layout change).
        # (dx off Intel CPUs on AVX-512 by phases on the direct kernel, through the same layout change, but at batch 1.)
        assert kernels_of((1, 256, 512, 14, 3), stride=2, padding=1) == (wide_forward, "tiled", "tiled")
        assert kernels_of((3, 256, 512, 14, 3), stride=2, padding=1) == (
            off_intel_avx512 or "tiled_nhwc", off_intel_avx512 or "tiled_nhwc", dw_of_wide)
        # Over 256 positions, or a smaller weight, the exact-taps dw (AVX-512).
        assert kernels_of((8, 512, 512, 7, 3), padding=1)[2] == ("exact_taps" if isa == "avx512" else "tiled_nhwc")
        assert kernels_of((1, 64, 64, 56, 3), padding=1)[2] == ("exact_taps" if isa == "avx512" else "tiled")
        # Under 256 positions at batch 1: the tiled path, summing dw in place.
        assert kernels_of((1, 256, 256, 14, 3), padding=1)[2] == "tiled"
        # 196 positions a plane (not narrow): not the NHWC GEMM; dx the direct kernel on AVX-512 (below).
        assert kernels_of((3, 256, 256, 14, 3), padding=1)[1] == (
            "direct_nhwc" if isa == "avx512" or not _C._intel_cpu() else "tiled")
        assert kernels_of((1, 2048, 512, 7, 1))[:2] == ("tiled", off_intel_avx512 or "tiled")
        # A contiguous 1x1 forward 64 to 127 deep: the direct kernel off Intel CPUs on planes under 256 positions,
        # where the tiled path's GEMMs are a plane narrow; on larger planes the tiled path.
        assert kernels_of((8, 96, 576, 14, 1))[0] == (off_intel_avx512 or "tiled")
        assert kernels_of((8, 64, 64, 56, 1))[0] == "tiled"
        # 1x1 dw on planes under 128 positions: one GEMM over the NHWC rows of every sample (at batch 1, under the
        # thread count, the tiled path).
        assert kernels_of((3, 512, 2048, 7, 1))[2] == "tiled_nhwc"
        assert kernels_of((1, 512, 2048, 7, 1))[2] == "tiled"
        assert kernels_of((2, 1024, 2048, 14, 1), stride=2)[2] == "tiled_nhwc"
        with num_threads(1):
            assert kernels_of((1, 256, 1024, 14, 1))[2] == "tiled_nhwc"  # 196 positions in all
        assert kernels_of((2, 256, 1024, 14, 1))[2] != "tiled_nhwc"  # 392
        # Squeeze-and-excitation's 1x1 layers on one pixel a plane (the same memory in both formats): every pass
        # one GEMM on the NHWC rows.
        assert kernels_of((1, 1152, 48, 1, 1)) == ("tiled_nhwc",) * 3
        assert kernels_of((8, 48, 1152, 1, 1), channels_last=True) == ("tiled_nhwc",) * 3
        # MobileNetV2's projection: a pointwise forward on the GEMM, dx (few output channels) column-free.
        assert kernels_of((5, 144, 24, 56, 1)) == ("tiled", "implicit", "tiled")
        assert kernels_of((8, 16, 32, 14, 5), padding=2) == ("exact_taps",) * 3  # the seed's second layer
        assert kernels_of((1, 144, 144, 56, 3), groups=144, padding=1)[0] == "depthwise_simd"
        # Output rows under 8 wide fill under half the NCHW depthwise kernel's 16 columns: the NHWC kernel (by blocks
        # of 16 channels).
        assert kernels_of((8, 768, 768, 7, 7), groups=768, padding=3) == ("depthwise_nhwc",) * 3
        assert kernels_of((8, 672, 672, 14, 5), groups=672, stride=2, padding=2)[0] == "depthwise_nhwc"
        # The forward of 5 and 7 wide kernels by blocks of 16 channels, at any plane, on either instruction set; 3x3
        # layers on rows under 8 wide only (at stride 2 too), rows of 14 keep the NCHW kernel; but on AVX2 strided
        # 3x3 layers at batch > 1 take the channel blocks (the NCHW kernel's strided loads are masked there).
        assert kernels_of((8, 96, 96, 56, 7), groups=96, padding=3)[0] == "depthwise_nhwc"
        assert kernels_of((1, 240, 240, 28, 5), groups=240, padding=2)[0] == "depthwise_nhwc"
        assert kernels_of((8, 576, 576, 14, 3), groups=576, stride=2, padding=1)[0] == "depthwise_nhwc"
        assert kernels_of((8, 192, 192, 28, 3), groups=192, stride=2, padding=1)[0] == (
            "depthwise_nhwc" if isa == "avx2" else "depthwise_simd")
        assert kernels_of((1, 192, 192, 28, 3), groups=192, stride=2, padding=1)[0] == "depthwise_simd"
        assert kernels_of((8, 192, 192, 28, 3), groups=192, padding=1)[0] == "depthwise_simd"
        # channels_last: the tiled passes run on the NHWC memory; the others keep their kernels.
        # (dw with >= 64 output channels on NHWC memory too, not through a layout change to the exact-taps dw.)
        direct_dw = "direct_nhwc" if isa == "avx512" else "tiled_nhwc"
        # (Off Intel CPUs on AVX-512 the forward is the direct kernel on any weight.)
        direct_forward = "direct_nhwc" if isa == "avx512" and not _C._intel_cpu() else "tiled_nhwc"
        assert kernels_of((1, 512, 512, 7, 3), channels_last=True, padding=1) == (
            direct_forward, "tiled_nhwc" if _C._intel_cpu() else "direct_nhwc", direct_dw)
        assert kernels_of((1, 144, 144, 56, 3), channels_last=True, groups=144, padding=1) == ("depthwise_nhwc",) * 3
        # No layout change (off Intel CPUs, forward and dx the direct kernel: the 1x1 rules below; its dw on AVX-512
        # only).
        if _C._intel_cpu():
            pointwise_cl = ("tiled_nhwc",) * 3
        else:
            pointwise_cl = ("direct_nhwc", "direct_nhwc", "direct_nhwc" if isa == "avx512" else "tiled_nhwc")
        assert kernels_of((5, 144, 24, 56, 1), channels_last=True) == pointwise_cl
        assert kernels_of((8, 64, 256, 56, 1), channels_last=True)[:2] == pointwise_cl[:2]
        assert kernels_of((8, 64, 256, 56, 1))[0] == "tiled"  # contiguous: the GEMM (a layout change lost)
        # channels_last layers with kernels larger than 1x1: the direct NHWC kernel (on AVX2, whose 6 x 16 blocks
        # have half the FMAs a broadcast, the forward up to 64 output channels or with a kernel 3x3 or larger, dx at
        # any width; else the tiled path on NHWC memory). It reads the input unpadded, so strides (the forward), the
        # 3-channel stems and dx's negative padding (its convolution of dy crops) are its too.
        direct = "direct_nhwc" if isa == "avx512" else "tiled_nhwc"
        assert kernels_of((1, 64, 64, 56, 3), channels_last=True, padding=1)[:2] == ("direct_nhwc", "direct_nhwc")
        assert kernels_of((5, 256, 256, 14, 3), channels_last=True, padding=1)[:2] == ("direct_nhwc",) * 2
        assert kernels_of((8, 96, 192, 56, 2), channels_last=True, stride=2)[0] == direct  # a 2x2 downsampler
        assert kernels_of((5, 512, 256, 14, 3), channels_last=True, padding=1)[1] == "direct_nhwc"  # dx: 512 outs
        assert kernels_of((1, 3, 64, 224, 7), channels_last=True, stride=2, padding=3)[0] == "direct_nhwc"
        assert kernels_of((1, 3, 64, 224, 3), channels_last=True, padding=1)[0] == "direct_nhwc"  # 27 steps a window
        assert kernels_of((8, 3, 32, 224, 3), channels_last=True, stride=2, padding=1)[0] == "direct_nhwc"
        # dx of a strided layer: off Intel CPUs by phases on the direct kernel for kernels larger than 1x1 (on AVX2
        # 3x3 or larger), else the GEMM on NHWC rows.
        phases_cl = "tiled_nhwc" if _C._intel_cpu() else "direct_nhwc"
        assert kernels_of((3, 64, 128, 56, 3), channels_last=True, stride=2, padding=1)[:2] == ("direct_nhwc",
                                                                                                 phases_cl)
        assert kernels_of((8, 96, 192, 56, 2), channels_last=True, stride=2)[1] == (
            "direct_nhwc" if isa == "avx512" and not _C._intel_cpu() else "tiled_nhwc")
        assert kernels_of((8, 64, 128, 56, 1), channels_last=True, stride=2)[1] == "tiled_nhwc"
        # dx of a channels_last stem whose windows cover each pixel >= 9 times, at batch > 1 (off Intel CPUs): the
        # tiled path's col2im on the planes; with less overlap or at batch 1 the NHWC tiled path.
        stem_dx = "tiled_nhwc" if _C._intel_cpu() else "tiled"
        assert kernels_of((8, 3, 64, 224, 7), channels_last=True, stride=2, padding=3)[1] == stem_dx
        assert kernels_of((2, 3, 64, 56, 3), channels_last=True, padding=1)[1] == stem_dx
        assert kernels_of((1, 3, 64, 56, 7), channels_last=True, stride=2, padding=3)[1] == "tiled_nhwc"
        assert kernels_of((8, 3, 32, 56, 3), channels_last=True, stride=2, padding=1)[1] == "tiled_nhwc"
        assert kernels_of((3, 32, 32, 8, 3), channels_last=True, padding=3)[:2] == ("direct_nhwc", "direct_nhwc")
        # 1x1 kernels: the GEMM on the NHWC rows, but on AVX-512 with >= 512 output positions the direct kernel: on
        # an Intel CPU (MKL's GEMM at its best) where its blocks fill every lane (a multiple of 64 outputs of the
        # pass, up to 128 or no more than the depth) and the depth is >= 64; elsewhere with >= 16 channels each way.
        # dw the GEMM on an Intel CPU; elsewhere the direct dw from 32 input channels, with no more than 4x as many
        # output channels and a weight under 2^19 floats.
        # On AVX2 the forward and dx off Intel CPUs (channels_last only), dw the GEMM.
        intel = _C._intel_cpu()
        one_by_one = "direct_nhwc" if isa == "avx512" or not intel else "tiled_nhwc"
        off_intel = "tiled_nhwc" if intel else "direct_nhwc"  # the 1x1 layers the direct kernel runs elsewhere
        off_intel_dw = "direct_nhwc" if isa == "avx512" and not intel else "tiled_nhwc"
        assert kernels_of((3, 64, 128, 56, 1), channels_last=True, stride=2) == (one_by_one, "tiled_nhwc", off_intel_dw)
        assert kernels_of((3, 256, 64, 56, 1), channels_last=True) == (one_by_one, off_intel, off_intel_dw)
        assert kernels_of((3, 64, 256, 56, 1), channels_last=True) == (off_intel, one_by_one, off_intel_dw)
        assert kernels_of((8, 576, 96, 14, 1), channels_last=True) == (off_intel, off_intel, off_intel_dw)
        # A reduction to 256 (the forward), an expansion to 1024 (its dx, the convolution of dy, reduces).
        assert kernels_of((3, 512, 256, 28, 1), channels_last=True) == (one_by_one, off_intel, off_intel_dw)
        assert kernels_of((3, 256, 1024, 14, 1), channels_last=True) == (off_intel, one_by_one, off_intel_dw)
        # Under 512 positions the GEMM, but off Intel CPUs the direct kernel where the pass expands (its dx here).
        assert kernels_of((1, 384, 64, 14, 1), channels_last=True) == ("tiled_nhwc", off_intel, off_intel_dw)  # 196
        assert kernels_of((1, 160, 960, 7, 1), channels_last=True)[:2] == (off_intel, "tiled_nhwc")
        assert kernels_of((8, 160, 960, 7, 1))[0] == off_intel_dw  # 392; contiguous: on AVX2 the GEMM
        assert kernels_of((1, 160, 960, 7, 1))[0] == "tiled"  # a contiguous forward at batch 1: one GEMM
        # The dw GEMM everywhere for 6x as many output channels, a weight of 2^19 floats, under 32 input channels.
        assert kernels_of((8, 96, 576, 14, 1), channels_last=True)[2] == "tiled_nhwc"
        assert kernels_of((8, 512, 1024, 28, 1), channels_last=True, stride=2)[2] == "tiled_nhwc"
        assert kernels_of((8, 24, 48, 56, 1), channels_last=True)[2] == "tiled_nhwc"
        assert kernels_of((8, 16, 64, 56, 1), channels_last=True)[0] == off_intel  # a depth of 16
        assert kernels_of((8, 8, 64, 56, 1), channels_last=True)[0] == "tiled_nhwc"  # a depth of 8
        assert kernels_of((8, 64, 16, 56, 1), channels_last=True)[0] == off_intel  # 16 outputs: one vector
        assert kernels_of((3, 256, 64, 56, 1))[0] == ("tiled" if _C._intel_cpu() or isa != "avx512" else "direct_nhwc")
        # Nor a large weight on few positions (its packing); dw the other way round: the direct dw on few positions,
        # the GEMM over many (on an Intel CPU; elsewhere the direct dw there too, on AVX-512).
        wide_dw = "direct_nhwc" if isa == "avx512" and not _C._intel_cpu() else "tiled_nhwc"
        assert kernels_of((8, 512, 512, 7, 3), channels_last=True, padding=1) == ("direct_nhwc",) * 2 + (
            wide_dw,)  # 392 positions
        assert kernels_of((8, 512, 512, 28, 3), channels_last=True, padding=1)[2] == wide_dw
        assert kernels_of((8, 64, 64, 56, 3), channels_last=True, padding=1)[2] == direct_dw
        assert kernels_of((8, 16, 32, 14, 5), channels_last=True, padding=2)[2] != "direct_nhwc"  # 16 input channels
        # dx of a strided 3-channel stem: the tiled path (the implicit GEMM's phases would fill 3 of a register
        # block's rows); of 16 input channels, the phases; of a contiguous depthwise layer at stride 2, its NCHW
        # kernel, but with output rows under 8 wide (and at other strides) the NHWC depthwise kernel through the
        # layout changes of dy and dx (not the phases' GEMMs one deep); dw likewise (a kernel up to 7 x 7), where
        # the input is under 32 MiB (else the scalar loops).
        assert kernels_of((8, 3, 32, 224, 3), stride=2, padding=1)[1] == "tiled"
        assert kernels_of((8, 3, 32, 224, 3), channels_last=True, stride=2, padding=1)[1] == "tiled_nhwc"
        assert kernels_of((8, 96, 96, 112, 3), groups=96, stride=2, padding=1)[1:] == ("depthwise_simd",) * 2
        assert kernels_of((1, 144, 144, 56, 3), groups=144, stride=2, padding=1) == ("depthwise_simd",) * 3
        assert kernels_of((8, 576, 576, 14, 3), groups=576, stride=2, padding=1)[1:] == ("depthwise_nhwc",) * 2
        assert kernels_of((8, 96, 96, 112, 3), groups=96, stride=3, padding=1)[1:] == ("depthwise_nhwc", "depthwise")
        assert kernels_of((1, 96, 96, 112, 3), groups=96, stride=3, padding=1)[1:] == ("depthwise_nhwc",) * 2
        assert kernels_of((8, 96, 96, 112, 3), channels_last=True, groups=96, stride=2, padding=1)[1] == (
            "depthwise_nhwc")
        assert kernels_of((8, 16, 32, 32, 5), stride=2, padding=2)[1] == "phased"
        # 3-channel stems: the direct dw with the output channels in the lanes (either instruction set); contiguous
        # strided ones too on AVX-512 (through the layout changes), not at stride 1 (the implicit GEMM's dw).
        avx512 = isa == "avx512"
        assert kernels_of((8, 3, 32, 224, 3), stride=2, padding=1)[2] == ("direct_nhwc" if avx512 else "exact_taps")
        assert kernels_of((8, 3, 64, 224, 3), padding=1)[2] != "direct_nhwc"
        assert kernels_of((8, 3, 32, 224, 3), channels_last=True, stride=2, padding=1)[2] == "direct_nhwc"
        assert kernels_of((1, 3, 64, 224, 7), channels_last=True, stride=2, padding=3)[2] == "direct_nhwc"
        # Contiguous: the direct forward at stride 1 from 64 output channels, from 256 on with >= 256 output
        # positions (its NHWC copy is the layout change); dx at stride 1 where dy has no more channels than dx. Off
        # Intel CPUs (MKL's GEMM slower there) at any stride and depth, dx with more channels in dy too; on AVX2 only
        # at stride 1 with >= 16 input channels.
        intel = _C._intel_cpu()
        contiguous_direct = "direct_nhwc" if isa == "avx512" or not intel else "tiled"  # stride 1, C >= 16
        strided_direct = "direct_nhwc" if isa == "avx512" else "tiled"
        off_intel = "tiled" if intel else "direct_nhwc"
        off_intel_avx512 = "tiled" if intel or isa != "avx512" else "direct_nhwc"
        assert kernels_of((8, 64, 64, 56, 3), padding=1)[:2] == (contiguous_direct, contiguous_direct)
        assert kernels_of((8, 64, 128, 56, 3), padding=1)[:2] == (contiguous_direct, off_intel)  # dy: 128 channels
        assert kernels_of((8, 512, 256, 28, 3), padding=1)[1] == contiguous_direct
        assert kernels_of((8, 32, 32, 28, 3), padding=1)[1] not in ("direct_nhwc", "tiled")  # < 64 outputs
        assert kernels_of((1, 256, 256, 14, 3), padding=1)[0] == off_intel  # 196 positions
        assert kernels_of((8, 256, 256, 14, 3), padding=1)[0] == contiguous_direct
        assert kernels_of((8, 64, 128, 56, 3), stride=2, padding=1)[0] == off_intel_avx512
        # At stride 2 from 256 output channels with a kernel 3x3 or larger (not a 2x2 downsampler).
        assert kernels_of((8, 128, 256, 28, 3), stride=2, padding=1)[0] == strided_direct
        assert kernels_of((8, 192, 384, 28, 2), stride=2)[0] == off_intel_avx512
        assert kernels_of((8, 3, 64, 224, 3), padding=1)[0] == off_intel_avx512  # under 16 input channels
        # Off Intel CPUs on AVX2 the forward at batch 1 at any stride and depth (kernels 3x3 or larger).
        assert kernels_of((1, 3, 64, 224, 7), stride=2, padding=3)[0] == off_intel
        assert kernels_of((1, 64, 128, 56, 3), stride=2, padding=1)[0] == off_intel
        assert kernels_of((2, 64, 128, 56, 3), stride=2, padding=1)[0] == off_intel_avx512
        assert kernels_of((1, 96, 192, 56, 2), stride=2)[0] == off_intel_avx512
        assert kernels_of((1, 3, 96, 224, 4), stride=4)[0] == off_intel_avx512  # windows that do not overlap
        # 1x1 layers off Intel CPUs (AVX-512): >= 64 channels each way, the forward from 128 input channels.
        assert kernels_of((8, 64, 64, 56, 1))[:2] == ("tiled", off_intel_avx512)
        assert kernels_of((8, 256, 64, 56, 1))[:2] == (off_intel_avx512, off_intel_avx512)
        assert kernels_of((8, 144, 32, 28, 1))[0] == "tiled"
