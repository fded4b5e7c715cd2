"""The GEMM-shaped kernels of the CPU path on each instruction set the CPU offers (the SIMD kernels, ATen's GEMM in
the tiles) and with ATen's GEMM for everything, each over the whole grid and over shapes that reach every edge of
the micro-kernel: row tails (4-, 2- and 1-row kernels), column tails of 1 to 32, long sums (with and without
bias), long dw sums, the small GEMMs summed as dot products or as rows, and the implicit GEMM (stride 1, Wo == W)
for the forward and dx: panels across output rows, out_h != H, taps in the padding on every side, a negative
padding for dx."""
import contextlib
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

import conv_ext
from conv_ext import settings
from conv_cases import BASE, CPU_BACKENDS, SIMD_ISAS, assert_matches_torch, grid, with_bias
from test_determinism import num_threads

# The backends the CPU can run: ATen's always, ours on each instruction set the CPU offers (not a skip: there
# is no second kernel to test on a CPU without them).
BACKENDS = CPU_BACKENDS
backends = pytest.mark.parametrize("backend", list(BACKENDS))

EDGES = [
    # out_channels 7 = 4 + 2 + 1 rows in the forward; K = 3*3*3 = 27 = 3 * 8 + 2 + 1 rows in dx and dw.
    replace(BASE, name="row-tails", in_channels=3, out_channels=7, padding=1),
    # output widths 1..33 (column tails of every length, a full 32-column panel plus one).
    *[replace(BASE, name=f"width{w}", batch=3, size=(4, w + 2), kernel=3) for w in (1, 5, 16, 17, 31, 32, 33)],
    # K = 30 * 3 * 3 = 270: a long sum; the bias must be added once.
    replace(BASE, name="long-sum", in_channels=30, out_channels=9, size=(6, 7), padding=1),
    # 1,156 output positions per sample: a long dw sum;
    # 33 output channels: dw's columns (O/g) have a tail.
    replace(BASE, name="long-dw", batch=2, in_channels=2, out_channels=33, size=(34, 34), padding=1),
    replace(BASE, name="groups3-tails", in_channels=9, out_channels=15, groups=3, size=(11, 13), padding=1),
    replace(BASE, name="pointwise-tails", kernel=1, in_channels=17, out_channels=19, size=(5, 7)),
    # One pixel a plane (a squeeze-and-excitation layer): its small GEMMs run as dot products of 16 lanes, four
    # columns of B at a time (gemm.cpp): sums of 37 = 2 x 16 + 5 channels over 6 = 4 + 2 columns, and of 5 channels
    # (a tail alone) over 9 = 2 x 4 + 1.
    replace(BASE, name="dot-gemm-squeeze", batch=3, kernel=1, in_channels=37, out_channels=6, size=(1, 1)),
    replace(BASE, name="dot-gemm-short", batch=2, kernel=1, in_channels=5, out_channels=9, size=(1, 1)),
    # At batch 1 its dx and dw sum B's rows (gemm.cpp): rows of 70 = 64 + 6 and of 100 = 64 + 2 x 16 + 4 columns;
    # on a 2 x 3 plane the contiguous forward too (the bias per row of C).
    replace(BASE, name="row-gemm-squeeze", batch=1, kernel=1, in_channels=70, out_channels=5, size=(1, 1)),
    replace(BASE, name="row-gemm-wide", batch=1, kernel=1, in_channels=100, out_channels=3, size=(1, 1)),
    replace(BASE, name="row-gemm-plane", batch=1, kernel=1, in_channels=9, out_channels=6, size=(2, 3)),
    # Implicit GEMM: 35 output positions = a 32-position panel across output rows plus a 3-position tail.
    replace(BASE, name="implicit-panels", size=(5, 7), padding=1),
    # Wo == W but Ho = H - 2 (no padding in height); dx then pads its height by 2.
    replace(BASE, name="implicit-short", kernel=(3, 5), padding=(0, 2), size=(8, 9)),
    # Ho = H + 4: dx of it is a convolution with padding -2 in height.
    replace(BASE, name="implicit-tall", kernel=(1, 3), padding=(2, 1), size=(6, 5)),
    replace(BASE, name="implicit-dilated-groups", in_channels=6, out_channels=9, groups=3, kernel=3, dilation=(2, 3),
            padding=(2, 3), size=(9, 11)),
    replace(BASE, name="implicit-width1", kernel=(3, 1), padding=(1, 0), size=(7, 1)),
    # Row panels (Wo != W or stride 2): 'valid' padding (Wo 14; dx by the implicit GEMM too, W = 16).
    replace(BASE, name="rows-valid", size=(9, 16), kernel=3),
    # Wo 14 but W 17: dx runs the tiled path (rows of 17 fill too few lanes).
    replace(BASE, name="rows-valid-tiled-dx", size=(6, 17), kernel=(2, 4)),
    # Stride 2 in width (even lanes of two loads), 1 in height; Wo = 15.
    replace(BASE, name="rows-stride-w2", size=(5, 30), stride=(1, 2), padding=1),
    # Stride 2 both ways, dilation, Wo = 44: a 32-output panel and a 12-output one per row.
    replace(BASE, name="rows-stride2-dilated", size=(7, 90), stride=2, dilation=(1, 2), padding=(1, 3)),
    # Stride 2 in height only, padding larger than the kernel reach in width.
    replace(BASE, name="rows-stride-h2", size=(9, 12), stride=(2, 1), kernel=(3, 2), padding=(0, 3)),
    replace(BASE, name="rows-stride2-groups", in_channels=6, out_channels=9, groups=3, size=(6, 28), stride=2,
            padding=1),
    replace(BASE, name="rows-stride2-depthwise", in_channels=5, out_channels=5, groups=5, size=(6, 30), stride=2,
            padding=1),
    replace(BASE, name="rows-stride2-pointwise", kernel=1, size=(4, 32), stride=2),
    # The exact-taps dw (>= 16 output channels per group), output channels in the lanes: 3 input channels (a
    # 2 + 1-row block per tap), 17 lanes (a second vector of one lane), stride 2.
    replace(BASE, name="exact-dw-tails", in_channels=3, out_channels=17, size=(9, 11), stride=2, padding=1),
    # Two groups of 20 (16 + 4 lanes), stride 2 in width only, dilation in height, no padding in width.
    replace(BASE, name="exact-dw-groups", in_channels=4, out_channels=40, groups=2, size=(9, 13), stride=(1, 2),
            dilation=(2, 1), padding=(2, 0)),
    # No padding, 48 lanes (a 32-lane chunk and a 16-lane one), stride 3.
    replace(BASE, name="exact-dw-unpadded", in_channels=2, out_channels=48, size=(10, 10), stride=3),
    # dx by phases (stride > 1, dilation 1): each phase a stride-1 convolution of dy. Flat panels (phase width ==
    # Wo); phases of unequal rows and columns (13 x 31) with groups; stride 3 with a row phase no tap reaches (its
    # dx rows are zeros) and kernels narrower than the stride; padding 3 > k - 1 (phases that crop dy).
    replace(BASE, name="phased-dx-flat", in_channels=3, out_channels=8, size=(12, 16), stride=2, padding=1),
    replace(BASE, name="phased-dx-odd", in_channels=4, out_channels=6, groups=2, size=(13, 31), kernel=5, stride=2,
            padding=2),
    replace(BASE, name="phased-dx-stride3", size=(9, 48), kernel=(2, 4), stride=3, padding=(0, 1)),
    replace(BASE, name="phased-dx-cropped", size=(10, 30), stride=2, padding=3),
    # No tap reaches any input pixel (1 x 1 kernel, stride 2, padding 1 on a 1 x 1 input): dx is zeros.
    replace(BASE, name="phased-dx-unreached", size=(1, 1), kernel=1, stride=2, padding=1),
    # 25 samples of ~70 KB: two passes of samples (short sums per sample, to stay within the tolerance).
    replace(BASE, name="exact-dw-passes", batch=25, in_channels=64, out_channels=16, size=(16, 16), stride=2,
            padding=1),
]


@backends
@pytest.mark.parametrize("case", EDGES, ids=[c.name for c in EDGES])
@with_bias
def test_kernel_edges_match_torch(backend, case, bias):
    with BACKENDS[backend]():
        assert_matches_torch(conv_ext.conv2d, case, torch.float32, bias)


# Samples over 1 MiB: the implicit dw sums them in blocks of panels, one block after another. (4 + 5) x 40,000
# floats with 'same' padding (flat panels); 'valid' padding on 300 x 302 (row panels: Wo != W; dx then runs the
# implicit GEMM on row panels too).
# With 16 output channels: the exact-taps dw (a 1.5 MB sample at stride 2; 3.2 MB at stride 1) sums it in passes
# of output rows.
LARGE_SAMPLES = {"flat-panels": ((200, 200), 1, (200, 200), 1, 5), "row-panels": ((300, 302), 0, (298, 300), 1, 5),
                 "exact-dw-rows": ((300, 302), 1, (150, 151), 2, 16),
                 "exact-dw-stride1": ((200, 200), 1, (200, 200), 1, 16)}


@backends
@pytest.mark.parametrize("size, padding, out_size, stride, out_channels", list(LARGE_SAMPLES.values()),
                         ids=list(LARGE_SAMPLES))
def test_dw_over_blocks_of_panels_stays_at_float32_rounding(backend, size, padding, out_size, stride, out_channels):
    """Sums of ~20,000-90,000 products: compared with float64 (float32 torch itself is off by ~7e-6 of the
    largest entry)."""
    generator = torch.Generator().manual_seed(0)
    input = torch.randn(1, 4, *size, generator=generator, dtype=torch.float64)
    weight = torch.randn(out_channels, 4, 3, 3, generator=generator, dtype=torch.float64)
    grad_output = torch.randn(1, out_channels, *out_size, generator=generator, dtype=torch.float64)
    args = ([stride, stride], [padding, padding], [1, 1], 1, [True, True, False])
    expected = torch.ops.conv_ext.conv2d_backward(grad_output, input, weight, *args)
    with BACKENDS[backend]():
        got = torch.ops.conv_ext.conv2d_backward(grad_output.float(), input.float(), weight.float(), *args)
    for name, g, e in zip(("input", "weight"), got, expected):
        error = (g.double() - e).abs().max().item() / e.abs().max().item()
        assert error < 2e-5, (name, error)


@pytest.mark.parametrize("isa", SIMD_ISAS or [pytest.param("none", marks=pytest.mark.skip(
    reason="this CPU has neither AVX-512 nor AVX2: our SIMD kernels do not run"))])
def test_implicit_dw_over_blocks_of_samples(isa):
    """seed-conv1's geometry (1 -> 16, 28 x 28, 5 x 5, padding 2) at batch 48: the implicit dw sums its blocks of
    samples that fit L2 (19, 19 and 10) one after another, each thread over its own (o, k) blocks in one parallel
    region. Against float64, and bitwise equal on 1 and 2 threads."""
    generator = torch.Generator().manual_seed(0)
    input = torch.randn(48, 1, 28, 28, generator=generator, dtype=torch.float64)
    weight = torch.randn(16, 1, 5, 5, generator=generator, dtype=torch.float64)
    grad_output = torch.randn(48, 16, 28, 28, generator=generator, dtype=torch.float64)
    args = ([1, 1], [2, 2], [1, 1], 1)
    expected = torch.ops.conv_ext.conv2d_backward(grad_output, input, weight, *args, [False, True, False])[1]
    got = {}
    with settings.simd_isa(isa):
        assert conv_ext.explain(input.float(), weight.float(), None, *args)["grad_weight"].kernel == "implicit"
        for threads in (1, 2):
            with num_threads(threads):
                got[threads] = torch.ops.conv_ext.conv2d_backward(grad_output.float(), input.float(), weight.float(),
                                                                  *args, [False, True, False])[1]
    assert torch.equal(got[1], got[2])
    error = (got[2].double() - expected).abs().max().item() / expected.abs().max().item()
    assert error < 2e-5, error


@grid
@with_bias
def test_without_simd_kernels_matches_torch_over_the_grid(case, bias):
    """float32 runs our kernels by default where it can; the grid again without them (ATen's GEMM)."""
    with settings.simd_isa("none"):
        assert_matches_torch(conv_ext.conv2d, case, torch.float32, bias)


def test_simd_isa_none_switches_the_kernels_off_and_restores():
    before = settings.current_simd_isa()
    assert before == (SIMD_ISAS[0] if SIMD_ISAS else "none")
    with settings.simd_isa("none"):
        assert settings.current_simd_isa() == "none"
    assert settings.current_simd_isa() == before


@pytest.mark.parametrize("isa", SIMD_ISAS)
def test_simd_isa_switch_runs_that_instruction_set_and_restores(isa):
    before, limit = settings.current_simd_isa(), conv_ext._C.simd_isa_limit()
    with settings.simd_isa(isa):
        assert settings.current_simd_isa() == isa
        with settings.simd_isa("none"):
            assert settings.current_simd_isa() == "none"
        assert settings.current_simd_isa() == isa
    assert settings.current_simd_isa() == before
    assert conv_ext._C.simd_isa_limit() == limit


def test_simd_isa_switch_rejects_what_the_cpu_lacks():
    with pytest.raises(ValueError, match="unknown instruction set 'sse2'"):
        settings.simd_isa("sse2")
    for isa in ("avx2", "avx512"):
        if isa not in SIMD_ISAS:
            with pytest.raises(ValueError, match=f"does not offer {isa}"):
                settings.simd_isa(isa)
    assert settings.current_simd_isa() == (SIMD_ISAS[0] if SIMD_ISAS else "none")


@backends
def test_accumulation_error_stays_at_float32_rounding(backend):
    """A long sum (K = 64 * 5 * 5 = 1,600) stays within float32 rounding of a float64 reference, for each GEMM."""
    generator = torch.Generator().manual_seed(0)
    input = torch.randn(2, 64, 12, 12, generator=generator, dtype=torch.float64)
    weight = torch.randn(24, 64, 5, 5, generator=generator, dtype=torch.float64)
    expected = F.conv2d(input, weight, padding=2)
    with BACKENDS[backend]():
        output = conv_ext.conv2d(input.float(), weight.float(), padding=2)
    # sqrt(K) * eps * |terms|: the bound a float32 sum of 1,600 unit-scale products stays inside.
    torch.testing.assert_close(output.double(), expected, rtol=0, atol=40 * 2**-23 * 40)


@backends
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16], ids=["f32", "f64", "f16"])
@pytest.mark.parametrize("stride, padding, width", [(1, 1, 16), (2, 1, 30), (1, 0, 10)],
                         ids=["implicit-flat", "implicit-rows", "tiled"])
def test_non_contiguous_bias(backend, dtype, stride, padding, width):
    """The bias is read as a plain array by every path: a strided view must give the same output."""
    generator = torch.Generator().manual_seed(0)
    input = torch.randn(2, 4, 6, width, generator=generator).to(dtype)
    weight = torch.randn(8, 4, 3, 3, generator=generator).to(dtype)
    bias = torch.randn(16, generator=generator).to(dtype)[::2]
    with BACKENDS[backend]():
        output = conv_ext.conv2d(input, weight, bias, stride=stride, padding=padding)
    expected = F.conv2d(input.float(), weight.float(), bias.float(), stride=stride, padding=padding)
    tolerance = dict(rtol=1e-2, atol=1e-2) if dtype == torch.float16 else dict(rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(output.float(), expected, **tolerance)


@backends
def test_no_channels_at_all(backend):
    """0 input and 0 output channels: an empty output and empty gradients, no division by zero."""
    input = torch.randn(2, 0, 5, 7)
    weight = torch.randn(0, 0, 3, 3)
    with BACKENDS[backend]():
        output = conv_ext.conv2d(input, weight, None, padding=1)
        grads = torch.ops.conv_ext.conv2d_backward(torch.randn_like(output), input, weight, [1, 1], [1, 1], [1, 1],
                                                   1, [True, True, True])
    assert output.shape == (2, 0, 5, 7)
    assert [g.shape for g in grads] == [input.shape, weight.shape, (0,)]


@pytest.mark.parametrize("backend", [*BACKENDS, "im2col-gemm"])
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_no_input_channels_follow_torch(backend, device):
    """0 input channels but 16 output channels, as torch has it (ATen's Convolution.cpp): the output has 0 channels,
    not 16 channels of bias, and the gradients are zeros of the input's, weight's and bias's sizes. On each CPU
    GEMM and on the shared orchestration that the CUDA op runs (settings.im2col_gemm())."""
    input = torch.randn(2, 0, 5, 7, device=device, requires_grad=True)
    weight = torch.randn(16, 0, 3, 3, device=device, requires_grad=True)
    bias = torch.randn(16, device=device, requires_grad=True)
    expected = F.conv2d(input, weight, bias, padding=1, stride=(1, 2))
    with {**BACKENDS, "im2col-gemm": settings.im2col_gemm}[backend]():
        output = conv_ext.conv2d(input, weight, bias, padding=1, stride=(1, 2))
        assert output.shape == expected.shape == (2, 0, 5, 4)
        if device == "meta":
            return
        output.sum().backward()
    expected_grads = torch.autograd.grad(expected.sum(), (input, weight, bias))
    for got, want in zip((input.grad, weight.grad, bias.grad), expected_grads):
        assert got.shape == want.shape
        assert torch.equal(got, want)
    assert bias.grad.shape == (16,) and torch.equal(bias.grad, torch.zeros(16))
