"""conv_ext.explain(): the kernel of each pass and the rule that chose it, for F.conv2d's arguments, following the
settings in force; invalid arguments raise what conv_ext.conv2d raises."""
import pytest
import torch

import conv_ext
from conv_ext import settings
from conv_cases import SIMD_ISAS

KERNELS = {"padded", "exact_taps", "implicit", "phased", "depthwise", "depthwise_simd", "depthwise_nhwc", "tiled_nhwc",
           "tiled"}


def test_every_pass_gets_a_kernel_and_its_rule():
    choices = conv_ext.explain(torch.randn(2, 16, 14, 14), torch.randn(32, 16, 5, 5), padding=2)
    assert list(choices) == ["forward", "grad_input", "grad_weight"]
    for choice in choices.values():
        assert isinstance(choice, conv_ext.KernelChoice)
        assert choice.kernel in KERNELS and len(choice.rule) > 20


@pytest.mark.parametrize("isa", SIMD_ISAS)
def test_a_rule_says_why(isa):
    """seed-conv2's geometry runs the exact-taps kernels because of the padding (its rule says so); a stride-2
    layer's forward runs the padded one; float64 runs the floor of the table."""
    with settings.simd_isa(isa):
        forward = conv_ext.explain(torch.randn(4, 16, 14, 14), torch.randn(32, 16, 5, 5), padding=2)["forward"]
        assert forward.kernel == "exact_taps" and "padding and idle lanes" in forward.rule
        strided = conv_ext.explain(torch.randn(2, 16, 32, 32), torch.randn(32, 16, 3, 3), stride=2, padding=1)
        assert strided["forward"].kernel == "padded" and "stride_w > 1" in strided["forward"].rule
    float64 = conv_ext.explain(torch.randn(2, 16, 14, 14, dtype=torch.float64),
                               torch.randn(32, 16, 5, 5, dtype=torch.float64), padding=2)
    assert {c.kernel for c in float64.values()} == {"tiled"}
    assert "floor" in float64["forward"].rule


def test_settings_in_force_change_the_answer():
    input, weight = torch.randn(2, 8, 12, 12), torch.randn(8, 8, 3, 3)
    with settings.simd_isa("none"):
        assert {c.kernel for c in conv_ext.explain(input, weight, padding=1).values()} == {"tiled"}
    with settings.im2col_gemm():
        choices = conv_ext.explain(input, weight, padding=1)
    assert {c.kernel for c in choices.values()} == {"textbook"}
    assert "im2col" in choices["forward"].rule


def test_f_conv2d_arguments_as_conv2d_takes_them():
    """'same' padding (odd total: the input padded on one side), unbatched input, groups, pairs."""
    weight = torch.randn(8, 2, 2, 3)
    same = conv_ext.explain(torch.randn(8, 9, 9), weight, padding="same", dilation=(1, 2), groups=4)
    pairs = conv_ext.explain(torch.randn(1, 8, 9, 9), weight, stride=(1, 2), padding=(1, 0), groups=4)
    assert all(c.kernel in KERNELS for c in (*same.values(), *pairs.values()))


@pytest.mark.parametrize("kwargs, message", [
    (dict(groups=3), "not divisible by groups"),
    (dict(stride=0), "stride must be positive"),
    (dict(padding="full"), "padding must be 'valid', 'same'"),
    (dict(bias=torch.randn(5)), "expected bias of size"),
])
def test_invalid_arguments_raise_as_conv2d_does(kwargs, message):
    input, weight = torch.randn(1, 4, 8, 8), torch.randn(6, 4, 3, 3)
    for function in (conv_ext.explain, conv_ext.conv2d):
        with pytest.raises(ValueError, match=message):
            function(input, weight, **kwargs)
