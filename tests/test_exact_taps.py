"""The exact-taps kernels (float32 with our SIMD kernels): the forward, and dx as a convolution of dy, that sum only
the taps inside the image (samples in the register rows, output channels in the lanes), and the dw that sums each
tap over exactly the outputs whose window puts it inside the image. Each case runs on every instruction set the
CPU offers (AVX-512, AVX2) and with ATen's GEMM: it first checks that the op chooses the kernels it is meant to
reach (with ATen's GEMM the tiled or depthwise path runs them all and only the comparison is left), then compares
the forward and the three gradients with torch. The register-block tails in the comments are AVX-512's (8 or 16
rows, 32 lanes); AVX2's blocks are 6 rows x 16 lanes, so the same cases reach its tails too."""
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import conv_ext
from conv_ext import _C, settings
from conv_cases import (BASE, CPU_BACKENDS, SIMD_ISAS, ConvCase, assert_matches_torch, case_kwargs, forward_and_grads,
                        make_tensors, with_bias)
from test_determinism import num_threads


# (case, the kernels of the forward, dx and dw).
CASES = [
    # 17 output channels: a second vector of one lane; 19 samples: 2 blocks of 8 and a tail of 3 (4 + 2 + 1 rows);
    # 9 input channels: dw blocks of 8 and 1 channels.
    (replace(BASE, name="lane-and-sample-tails", batch=19, in_channels=9, out_channels=17, size=(7, 9), kernel=5,
             padding=2), ("exact_taps", "implicit", "exact_taps")),
    # Groups of 48 output channels (a 32-lane chunk and a 16-lane one), dilation 2.
    (replace(BASE, name="groups-of-48-dilated", batch=3, in_channels=16, out_channels=96, groups=2, size=(6, 6),
             dilation=2, padding=2), ("exact_taps", "implicit", "exact_taps")),
    # A 1x1 kernel with padding 2: the outer ring of outputs has no tap inside the image (bias only); 3 input
    # channels, but rows of 8 outputs are too short for the implicit GEMM: the exact-taps dw.
    (replace(BASE, name="windows-without-taps", in_channels=3, out_channels=16, size=(4, 4), kernel=1, padding=2),
     ("exact_taps", "tiled", "exact_taps")),
    # 16 output channels: blocks of 16 samples (35 = 16 + 16 + 3); dx (16 input channels) the same way. (Small
    # planes: dw sums batch x positions products in one lane, and torch's own float32 dw is off by ~2e-4 at 3,500.)
    (replace(BASE, name="blocks-of-16-samples", batch=35, in_channels=16, out_channels=16, size=(6, 7), kernel=5,
             padding=2), ("exact_taps", "exact_taps", "exact_taps")),
    # One sample: the output rows split into bands for the threads.
    (replace(BASE, name="one-sample-in-bands", batch=1, in_channels=16, out_channels=24, size=(12, 12), kernel=5,
             padding=2), ("exact_taps", "exact_taps", "exact_taps")),
    # Dilation 4, padding 4 on 2 x 2: taps i = 0 and 2 (and j = 0, 2) reach no output at all.
    (replace(BASE, name="taps-that-reach-nothing", in_channels=8, out_channels=16, size=(2, 2), dilation=4,
             padding=4), ("exact_taps", "implicit", "exact_taps")),
    # 15 input channels: dw's register blocks of 8, 4, 2 and 1 channels; stride 2.
    (replace(BASE, name="channel-tails-strided", batch=3, in_channels=15, out_channels=16, size=(9, 11), stride=2,
             padding=1), ("padded", "tiled", "exact_taps")),
    # Stride 2 in height only: the forward's windows step two input rows per output row; dx by phases (8 input
    # channels: with fewer, the tiled dx); rows of 9 outputs are too short for the implicit GEMM: the exact-taps dw.
    (replace(BASE, name="stride-h2", batch=4, in_channels=8, out_channels=24, size=(9, 9), kernel=5, stride=(2, 1),
             padding=2), ("exact_taps", "phased", "exact_taps")),
    # Two groups of 16 input and output channels: dx as a grouped convolution of dy.
    (replace(BASE, name="grouped-dx", batch=9, in_channels=32, out_channels=32, groups=2, size=(7, 7), kernel=5,
             padding=2), ("exact_taps", "exact_taps", "exact_taps")),
]
case_ids = [case.name for case, _ in CASES]


def chosen_kernels(case: ConvCase):
    input, weight, _ = make_tensors(case, torch.float32, False)
    choices = conv_ext.explain(input, weight, None, case.stride, case.padding, case.dilation, case.groups)
    return tuple(choice.kernel for choice in choices.values())


backends = pytest.mark.parametrize("backend", list(CPU_BACKENDS))
# The thread-count test only where our kernels run (ATen's GEMM sums depend on the thread count; tests/
# test_determinism.py checks that path within rounding).
simd_isas = pytest.mark.parametrize("isa", SIMD_ISAS or [pytest.param("none", marks=pytest.mark.skip(
    reason="this CPU has neither AVX-512 nor AVX2: our SIMD kernels do not run"))])


@backends
@pytest.mark.parametrize("case, kernels", CASES, ids=case_ids)
@with_bias
def test_exact_taps_cases_match_torch(backend, case, kernels, bias):
    assert_case_matches_torch(backend, case, kernels, bias)


def assert_case_matches_torch(backend, case, kernels, bias):
    """On `backend` the op chooses `kernels` (with none: whatever it runs), and matches torch."""
    with CPU_BACKENDS[backend]():
        if backend != "none":
            assert chosen_kernels(case) == kernels
        assert_matches_torch(conv_ext.conv2d, case, torch.float32, bias)


@simd_isas
@pytest.mark.parametrize("case, kernels", CASES, ids=case_ids)
def test_exact_taps_results_do_not_depend_on_the_thread_count(isa, case, kernels):
    """Each output and each dw element is summed by one thread in a fixed order: bitwise equal on 1 and 2 threads."""
    assert_same_on_1_and_2_threads(isa, case, kernels)


def assert_same_on_1_and_2_threads(isa, case, kernels):
    """On `isa` the op chooses `kernels`, and the output and the three gradients are bitwise equal on 1 and 2
    threads."""
    def run():
        input, weight, bias = make_tensors(case, torch.float32, True)
        output, grads, _ = forward_and_grads(conv_ext.conv2d, input, weight, bias, None, **case_kwargs(case))
        return (output, *grads)

    with settings.simd_isa(isa):
        assert chosen_kernels(case) == kernels
        with num_threads(1):
            one = run()
        with num_threads(2):
            two = run()
    for name, a, b in zip(("output", "grad_input", "grad_weight", "grad_bias"), one, two):
        assert torch.equal(a, b), name


def test_windows_without_taps_are_the_bias():
    """Outputs whose window lies wholly in the padding sum nothing: exactly the bias."""
    input = torch.randn(2, 3, 4, 4)
    weight = torch.randn(16, 3, 1, 1)
    bias = torch.randn(16)
    output = conv_ext.conv2d(input, weight, bias, padding=2)
    ring = torch.ones(8, 8, dtype=torch.bool)
    ring[2:6, 2:6] = False
    assert torch.equal(output[:, :, ring], bias[None, :, None].expand(2, 16, int(ring.sum())))


@simd_isas
@pytest.mark.parametrize("batch", [1, 24])
def test_seed_conv2_geometry_stays_at_float32_rounding(isa, batch):
    """seed-conv2's geometry (16 -> 32, 14 x 14, 5 x 5, padding 2), where the exact-taps kernels run all three
    passes, against float64: each dw element sums up to batch * 196 products in one accumulator lane."""
    generator = torch.Generator().manual_seed(0)
    input = torch.randn(batch, 16, 14, 14, generator=generator, dtype=torch.float64)
    weight = torch.randn(32, 16, 5, 5, generator=generator, dtype=torch.float64)
    grad_output = torch.randn(batch, 32, 14, 14, generator=generator, dtype=torch.float64)
    args = ([1, 1], [2, 2], [1, 1], 1)
    expected = (torch.ops.conv_ext.conv2d(input, weight, None, *args),
                *torch.ops.conv_ext.conv2d_backward(grad_output, input, weight, *args, [True, True, False])[:2])
    with settings.simd_isa(isa):
        assert [c.kernel for c in conv_ext.explain(input.float(), weight.float(), None, *args).values()] == \
            ["exact_taps"] * 3
        got = (torch.ops.conv_ext.conv2d(input.float(), weight.float(), None, *args),
               *torch.ops.conv_ext.conv2d_backward(grad_output.float(), input.float(), weight.float(), *args,
                                                   [True, True, False])[:2])
    for name, g, e in zip(("output", "grad_input", "grad_weight"), got, expected):
        error = (g.double() - e).abs().max().item() / e.abs().max().item()
        assert error < 1e-5, (name, error)


# The kernels of the benchmark suite's shapes (forward, dx, dw), as README's "How it works" lists them.
SUITE_KERNELS = {
    "seed-conv1": ("implicit", "implicit", "implicit"),
    "seed-conv2": ("exact_taps", "exact_taps", "exact_taps"),
    "resnet-3x3": ("direct_nhwc", "direct_nhwc", "exact_taps"),
    "vgg-like": ("direct_nhwc", "direct_nhwc", "exact_taps"),
    "strided-5x5": ("padded", "phased", "exact_taps"),
    "dilated": ("implicit", "implicit", "exact_taps"),
    "grouped": ("implicit", "implicit", "exact_taps"),
    "depthwise": ("depthwise_simd", "depthwise_simd", "implicit"),
    "pointwise": ("tiled", "tiled", "tiled"),
}


# Groups of 64 output channels or more run the forward and dx on the tiled path (csrc/cpu/kernel_table.cpp), where
# the direct kernel (on contiguous tensors AVX-512 only) does not take them; on AVX2 their dw too.
SUITE_KERNELS_AVX2 = {**SUITE_KERNELS, **{name: ("tiled",) * 3 for name in ("resnet-3x3", "vgg-like", "pointwise")}}
# Off Intel CPUs (MKL's GEMM slower there) the pointwise shape's dx (64 channels each way) runs the direct kernel
# (AVX-512), and on AVX2 the 3x3 shapes' forward and dx.
if not _C._intel_cpu():
    SUITE_KERNELS = {**SUITE_KERNELS, "pointwise": ("tiled", "direct_nhwc", "tiled")}
    SUITE_KERNELS_AVX2 = {**SUITE_KERNELS_AVX2,
                          **{name: ("direct_nhwc", "direct_nhwc", "tiled") for name in ("resnet-3x3", "vgg-like")}}


@pytest.mark.parametrize("name", list(SUITE_KERNELS))
def test_benchmark_suite_runs_the_kernels_readme_names(name):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmarks package beside tests/
    from benchmarks.shapes import SUITE

    shape = SUITE[name]
    case = ConvCase(name, batch=shape.batch, in_channels=shape.in_channels, out_channels=shape.out_channels,
                    size=shape.size, kernel=shape.kernel, stride=shape.stride, padding=shape.padding,
                    dilation=shape.dilation, groups=shape.groups)
    for isa in SIMD_ISAS:
        with settings.simd_isa(isa):
            assert chosen_kernels(case) == {"avx512": SUITE_KERNELS, "avx2": SUITE_KERNELS_AVX2}[isa][name], isa
    # Without the SIMD kernels (and on CPUs without AVX-512 or AVX2): the depthwise loops or the tiled path.
    fallback = "depthwise" if 1 < shape.groups == shape.in_channels else "tiled"
    with settings.simd_isa("none"):
        assert chosen_kernels(case) == (fallback,) * 3
