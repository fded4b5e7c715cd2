"""Every bad input raises a clear exception naming the problem, from conv2d() and from the op itself."""
import pytest
import torch

import conv_ext
from conv_ext.reference import conv2d_unfold


def tensors(input_shape=(2, 4, 8, 8), weight_shape=(6, 4, 3, 3), dtype=torch.float32):
    return torch.randn(input_shape, dtype=dtype), torch.randn(weight_shape, dtype=dtype)


# (name, input_shape, weight_shape, keyword arguments, exception type, message fragment)
BAD_ARGUMENTS = [
    ("input-2d", (4, 8), (6, 4, 3, 3), {}, ValueError, "expected 3-D (unbatched) or 4-D (batched) input, got 2-D"),
    ("input-5d", (1, 2, 4, 8, 8), (6, 4, 3, 3), {}, ValueError, "got 5-D input"),
    ("weight-3d", (2, 4, 8, 8), (6, 4, 3), {}, ValueError, "expected a 4-D weight"),
    ("channels-mismatch", (2, 5, 8, 8), (6, 4, 3, 3), {}, ValueError, "input has 5 channels but weight"),
    ("channels-vs-groups", (2, 4, 8, 8), (6, 1, 3, 3), dict(groups=2), ValueError,
     "input has 4 channels but weight of size [6, 1, 3, 3] with groups=2 expects 2"),
    ("in-channels-not-divisible", (2, 4, 8, 8), (6, 1, 3, 3), dict(groups=3), ValueError,
     "in_channels (4) is not divisible by groups (3)"),
    ("out-channels-not-divisible", (2, 4, 8, 8), (6, 1, 3, 3), dict(groups=4), ValueError,
     "out_channels (6) is not divisible by groups (4)"),
    ("stride-zero", (2, 4, 8, 8), (6, 4, 3, 3), dict(stride=0), ValueError, "stride must be positive, got [0, 0]"),
    ("stride-negative", (2, 4, 8, 8), (6, 4, 3, 3), dict(stride=(1, -2)), ValueError,
     "stride must be positive, got [1, -2]"),
    ("dilation-zero", (2, 4, 8, 8), (6, 4, 3, 3), dict(dilation=(0, 1)), ValueError, "dilation must be positive"),
    ("groups-zero", (2, 4, 8, 8), (6, 4, 3, 3), dict(groups=0), ValueError, "groups must be positive, got 0"),
    ("groups-negative", (2, 4, 8, 8), (6, 4, 3, 3), dict(groups=-1), ValueError, "groups must be positive, got -1"),
    ("padding-negative", (2, 4, 8, 8), (6, 4, 3, 3), dict(padding=-1), ValueError,
     "padding must be non-negative, got [-1, -1]"),
    ("kernel-larger-than-input", (2, 4, 4, 4), (6, 4, 5, 5), {}, ValueError, "is larger than the padded input"),
    ("dilated-kernel-larger", (2, 4, 8, 8), (6, 4, 3, 3), dict(dilation=4), ValueError,
     "(9 after dilation [4, 4]) is larger than the padded input"),
    ("same-strided", (2, 4, 8, 8), (6, 4, 3, 3), dict(padding="same", stride=2), ValueError,
     "padding='same' is not supported for strided convolutions"),
    ("padding-unknown-string", (2, 4, 8, 8), (6, 4, 3, 3), dict(padding="full"), ValueError,
     "padding must be 'valid', 'same', an int or a pair of ints, got 'full'"),
    ("stride-three-values", (2, 4, 8, 8), (6, 4, 3, 3), dict(stride=(1, 1, 1)), ValueError,
     "stride must be an int or a pair of ints, got 3 values"),
    ("stride-float", (2, 4, 8, 8), (6, 4, 3, 3), dict(stride=1.5), TypeError,
     "stride must be an int or a pair of ints, got 1.5"),
    ("groups-float", (2, 4, 8, 8), (6, 4, 3, 3), dict(groups=1.0), TypeError, "groups must be an int"),
]


@pytest.mark.parametrize("conv", [conv_ext.conv2d, conv2d_unfold], ids=["ext", "unfold"])
@pytest.mark.parametrize("name,input_shape,weight_shape,kwargs,error,message", BAD_ARGUMENTS,
                         ids=[a[0] for a in BAD_ARGUMENTS])
def test_bad_arguments(conv, name, input_shape, weight_shape, kwargs, error, message):
    input, weight = tensors(input_shape, weight_shape)
    with pytest.raises(error) as info:
        conv(input, weight, **kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize("bias_shape", [(5,), (6, 1), ()], ids=["wrong-length", "2d", "scalar"])
def test_bias_of_wrong_shape(bias_shape):
    input, weight = tensors()
    with pytest.raises(ValueError, match=r"expected bias of size \(6\) \(out_channels\)"):
        conv_ext.conv2d(input, weight, torch.randn(bias_shape))


@pytest.mark.parametrize("which", ["weight", "bias"])
def test_mismatched_dtypes(which):
    input, weight = tensors()
    bias = torch.randn(6)
    if which == "weight":
        weight = weight.double()
    else:
        bias = bias.double()
    with pytest.raises(TypeError, match=f"{which} dtype Double does not match input dtype Float"):
        conv_ext.conv2d(input, weight, bias)


@pytest.mark.parametrize("dtype", [torch.int64, torch.complex64, torch.bool], ids=str)
def test_unsupported_dtype(dtype):
    input = torch.ones(2, 4, 8, 8, dtype=dtype)
    weight = torch.ones(6, 4, 3, 3, dtype=dtype)
    with pytest.raises(TypeError, match="input dtype .* is not supported \\(expected float32, float64, float16 or "
                                        "bfloat16\\)"):
        conv_ext.conv2d(input, weight)


@pytest.mark.parametrize("which", ["weight", "bias"])
def test_mismatched_devices(which):
    """A tensor on another device (the meta device stands in for a GPU on machines without one)."""
    input, weight = tensors()
    bias = torch.randn(6)
    if which == "weight":
        weight = weight.to("meta")
    else:
        bias = bias.to("meta")
    with pytest.raises(ValueError, match=f"{which} is on meta but input is on cpu"):
        conv_ext.conv2d(input, weight, bias)


def test_non_tensor_arguments():
    with pytest.raises(TypeError, match="input and weight must be tensors, got list and Tensor"):
        conv_ext.conv2d([[1.0]], torch.randn(1, 1, 1, 1))
    with pytest.raises(TypeError, match="bias must be a tensor or None, got float"):
        conv_ext.conv2d(torch.randn(1, 1, 3, 3), torch.randn(1, 1, 1, 1), 0.5)


def test_op_checks_its_own_arguments():
    """Called directly, the op runs the same checks (one source, in C++)."""
    input, weight = tensors()
    with pytest.raises(ValueError, match="stride must be positive"):
        torch.ops.conv_ext.conv2d(input, weight, None, [0, 1], [0, 0], [1, 1], 1)
    with pytest.raises(ValueError, match="expected a 4-D input"):
        torch.ops.conv_ext.conv2d(input[0], weight, None, [1, 1], [0, 0], [1, 1], 1)


def test_backward_op_checks_grad_output():
    input, weight = tensors()
    with pytest.raises(ValueError, match=r"expected grad_output of size \[2, 6, 6, 6\] \(the output size\), got "
                                         r"\[2, 6, 5, 6\]"):
        torch.ops.conv_ext.conv2d_backward(torch.randn(2, 6, 5, 6), input, weight, [1, 1], [0, 0], [1, 1], 1,
                                           [True, True, False])
    with pytest.raises(TypeError, match="grad_output dtype Double does not match input dtype Float"):
        torch.ops.conv_ext.conv2d_backward(torch.randn(2, 6, 6, 6, dtype=torch.float64), input, weight, [1, 1],
                                           [0, 0], [1, 1], 1, [True, True, False])


@pytest.mark.parametrize("limit,error", [(0, ValueError), (-5, ValueError), (1.5, TypeError)])
def test_bad_workspace_limit(limit, error):
    before = conv_ext.workspace_limit_bytes()
    with pytest.raises(error, match="workspace limit must be"):
        conv_ext.set_workspace_limit_bytes(limit)
    assert conv_ext.workspace_limit_bytes() == before
