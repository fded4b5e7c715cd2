"""The SIMD depthwise forward (float32 with our SIMD kernels, groups == in_channels): blocks of output rows of one
plane in registers, each tap a run of its input row (plain loads inside the image, masked ones at its edges), and
dx as the depthwise convolution of dy (stride 1, one output channel per group). Each case runs on every instruction
set the CPU offers (AVX-512: blocks of 16 rows, AVX2: 6) and with ATen's GEMM: it checks the kernels the op
chooses, then compares the forward and the three gradients with torch."""
from dataclasses import replace

import pytest
import torch

import conv_ext
from conv_ext import settings
from conv_cases import BASE, SIMD_ISAS, assert_matches_torch, with_bias
from test_exact_taps import assert_case_matches_torch, assert_same_on_1_and_2_threads, backends, chosen_kernels, \
    simd_isas

SIMD = "depthwise_simd"
CASES = [
    # 17 output rows (AVX-512: 16 + 1; AVX2: 6 + 6 + 5) and 35 columns (chunks of 16, 16 and 3).
    (replace(BASE, name="row-and-column-tails", batch=3, in_channels=5, out_channels=5, groups=5, size=(17, 35),
             padding=1), (SIMD, SIMD, "implicit")),
    # Two output channels per input plane, stride 2 (even lanes of two loads), a 3 x 5 kernel: dx and dw by the
    # depthwise loops.
    (replace(BASE, name="multiplier-2-strided", in_channels=4, out_channels=8, groups=4, size=(13, 37),
             kernel=(3, 5), stride=2, padding=(1, 2)), (SIMD, "depthwise", "depthwise")),
    # Dilation 3 with padding 4 on 5 x 20: for some outputs whole tap rows and columns lie in the padding.
    (replace(BASE, name="dilated-wide-padding", in_channels=3, out_channels=3, groups=3, size=(5, 20), dilation=3,
             padding=4), (SIMD, SIMD, "depthwise")),
    # Stride 3 in height only: rows of the block three input rows apart; dx and dw (a strided layer on little
    # input) by the NHWC depthwise kernel through a layout change.
    (replace(BASE, name="stride-h3", in_channels=6, out_channels=6, groups=6, size=(16, 16), kernel=(5, 3),
             stride=(3, 1), padding=(2, 1)), (SIMD, "depthwise_nhwc", "depthwise_nhwc")),
    # Planes shorter than the kernel's reach: padding 2 on 4 x 9 (6 x 11 outputs, most lanes idle; rows under 8
    # wide go to the NHWC depthwise kernel, whose test_kernel_table runs this kernel on them too).
    (replace(BASE, name="narrow-planes", in_channels=4, out_channels=4, groups=4, size=(4, 9), padding=2),
     (SIMD, SIMD, "depthwise")),
    # A 1 x 1 kernel (a per-channel scale) on rows of 40.
    (replace(BASE, name="one-by-one", in_channels=6, out_channels=6, groups=6, size=(9, 40), kernel=1),
     (SIMD, SIMD, "implicit")),
]
case_ids = [case.name for case, _ in CASES]


@backends
@pytest.mark.parametrize("case, kernels", CASES, ids=case_ids)
@with_bias
def test_depthwise_simd_cases_match_torch(backend, case, kernels, bias):
    assert_case_matches_torch(backend, case, kernels, bias)


def test_stride_w3_is_not_taken():
    """Runs of stride 3 are not built: the depthwise loops take the forward (float32, our SIMD kernels)."""
    case = replace(BASE, name="stride-w3", in_channels=4, out_channels=4, groups=4, size=(9, 40), stride=(1, 3))
    for isa in SIMD_ISAS:
        with settings.simd_isa(isa):
            assert chosen_kernels(case)[0] == "depthwise"
    assert_matches_torch(conv_ext.conv2d, case, torch.float32, True)


# The NHWC depthwise dw sums one partial per range of rows, a range per thread: its result depends on the thread
# count (within rounding), so the cases it takes are left out here.
FIXED_ORDER = [(case, kernels) for case, kernels in CASES if kernels[2] != "depthwise_nhwc"]


@simd_isas
@pytest.mark.parametrize("case, kernels", FIXED_ORDER, ids=[case.name for case, _ in FIXED_ORDER])
def test_depthwise_simd_results_do_not_depend_on_the_thread_count(isa, case, kernels):
    """Each output sums its taps in one register in a fixed order: bitwise equal on 1 and 2 threads."""
    assert_same_on_1_and_2_threads(isa, case, kernels)
