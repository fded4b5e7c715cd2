"""Property-based checks (hypothesis) against torch.nn.functional.conv2d, on both CPU paths.

Valid configurations (batch 0-4, 1-8 channels per group, sizes 1-12, kernels 1-5, stride 1-4, padding 0-4 or
'same'/'valid', dilation 1-3, groups 1-4, with or without bias) give F.conv2d's output and gradients in float64.
Invalid ones raise the documented ValueError / TypeError (the message names conv_ext) and leave the process
working. Shapes past 2^31 elements are checked on the meta device, against F.conv2d's own meta kernel.

CI runs a fixed, derandomized set of examples. A long soak with fresh random examples:

    CONV_EXT_SOAK=1 pytest tests/test_properties.py          # 2000 examples per property
    CONV_EXT_SOAK=20000 pytest tests/test_properties.py      # any other count
"""
import contextlib
import os
from dataclasses import dataclass
from typing import Callable, ContextManager, Dict, Optional, Tuple, Union

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import conv_ext
from conv_cases import TOLERANCES, forward_and_grads
from conv_ext.args import normalize_conv_args
from conv_ext.settings import im2col_gemm

Pair = Tuple[int, int]
PATHS: Dict[str, Callable[[], ContextManager[None]]] = {"tiled": contextlib.nullcontext,
                                                        "shared": im2col_gemm}
paths = pytest.mark.parametrize("path", list(PATHS))


def property_settings(ci_examples: int) -> settings:
    """CI: `ci_examples` derandomized examples (the same ones every run), no deadline, no example database.
    CONV_EXT_SOAK=1: 2000 fresh random examples; CONV_EXT_SOAK=n (n > 1): n examples."""
    soak = int(os.environ.get("CONV_EXT_SOAK", "0") or 0)
    examples = ci_examples if soak <= 0 else (2000 if soak == 1 else soak)
    return settings(max_examples=examples, deadline=None, database=None, derandomize=soak <= 0,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@dataclass(frozen=True)
class Config:
    """One convolution: shapes and the keyword arguments of conv2d (ints or pairs, padding maybe a string)."""
    batch: int
    in_channels: int
    out_channels: int
    size: Pair
    kernel: Pair
    stride: Union[int, Pair]
    padding: Union[str, int, Pair]
    dilation: Union[int, Pair]
    groups: int
    bias: bool
    seed: int

    def kwargs(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def tensors(self, dtype: torch.dtype = torch.float64) -> Tuple[torch.Tensor, torch.Tensor,
                                                                   Optional[torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed)

        def randn(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype).requires_grad_()

        input = randn(self.batch, self.in_channels, *self.size)
        weight = randn(self.out_channels, self.in_channels // self.groups, *self.kernel)
        return input, weight, randn(self.out_channels) if self.bias else None


def _pair_or_int(draw: Callable, low: int, high: int) -> Tuple[Pair, Union[int, Pair]]:
    """A pair, and how to pass it: an int when both sides are equal (sometimes), else the pair."""
    pair = (draw(st.integers(low, high)), draw(st.integers(low, high)))
    as_int = pair[0] == pair[1] and draw(st.booleans())
    return pair, (pair[0] if as_int else pair)


@st.composite
def valid_configs(draw: Callable) -> Config:
    groups = draw(st.integers(1, 4))
    in_channels = groups * draw(st.integers(1, 8))
    out_channels = groups * draw(st.integers(1, 8))
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    dilation, dilation_arg = _pair_or_int(draw, 1, 3)
    padding_kind = draw(st.sampled_from(["explicit", "explicit", "explicit", "same", "valid"]))
    if padding_kind == "same":  # stride 1 only, as F.conv2d; any size works
        stride_arg: Union[int, Pair] = 1
        padding, padding_arg = (0, 0), "same"
        dilated = (0, 0)
    else:
        _, stride_arg = _pair_or_int(draw, 1, 4)
        padding, padding_arg = _pair_or_int(draw, 0, 4) if padding_kind == "explicit" else ((0, 0), "valid")
        dilated = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel))
    # The smallest input the (dilated) kernel fits in, padded; at most 12 unless the kernel needs more.
    lowest = [max(1, dk - 2 * p) for dk, p in zip(dilated, padding)]
    size = tuple(draw(st.integers(low, max(low, 12))) for low in lowest)
    return Config(batch=draw(st.integers(0, 4)), in_channels=in_channels, out_channels=out_channels, size=size,
                  kernel=kernel, stride=stride_arg, padding=padding_arg, dilation=dilation_arg, groups=groups,
                  bias=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)))


@paths
@pytest.mark.filterwarnings("ignore:Using padding='same'")  # F.conv2d's note on its own padded copy
@property_settings(ci_examples=100)
@given(config=valid_configs())
def test_valid_configurations_match_torch(path, config):
    input, weight, bias = config.tensors()
    expected, expected_grads, grad_output = forward_and_grads(F.conv2d, input, weight, bias, None, **config.kwargs())
    with PATHS[path]():
        output, grads, _ = forward_and_grads(conv_ext.conv2d, input, weight, bias, grad_output, **config.kwargs())
    assert output.shape == expected.shape and output.dtype == torch.float64
    torch.testing.assert_close(output, expected, **TOLERANCES[torch.float64])
    for name, got, want in zip(("input", "weight", "bias"), grads, expected_grads):
        torch.testing.assert_close(got, want, **TOLERANCES[torch.float64], msg=lambda m: f"grad of {name}: {m}")


# Invalid calls: a valid configuration with exactly one thing broken, and the exception it must raise.
# Each mutation takes (config, input, weight, bias, kwargs) and returns (input, weight, bias, kwargs).
def _other_dtype(t: torch.Tensor) -> torch.Tensor:
    return t.detach().float()


def _kernel_too_large(config: Config, input, weight, bias, kwargs):
    """A kernel one tap taller than the padded input admits (as dilated), explicit padding."""
    kwargs = dict(kwargs, padding=0, dilation=1, stride=1)
    too_tall = config.size[0] + 1
    weight = torch.randn(weight.shape[0], weight.shape[1], too_tall, weight.shape[3], dtype=weight.dtype)
    return input, weight, bias, kwargs


MUTATIONS = {
    "stride-zero": (ValueError, lambda c, x, w, b, kw: (x, w, b, dict(kw, stride=(1, 0), padding=0))),
    "stride-negative": (ValueError, lambda c, x, w, b, kw: (x, w, b, dict(kw, stride=-2, padding=0))),
    "stride-three-values": (ValueError, lambda c, x, w, b, kw: (x, w, b, dict(kw, stride=(1, 1, 1)))),
    "stride-float": (TypeError, lambda c, x, w, b, kw: (x, w, b, dict(kw, stride=1.0))),
    "padding-negative": (ValueError, lambda c, x, w, b, kw: (x, w, b, dict(kw, padding=(0, -1)))),
    "padding-unknown-string": (ValueError, lambda c, x, w, b, kw: (x, w, b, dict(kw, padding="full"))),
    "same-strided": (ValueError, lambda c, x, w, b, kw: (x, w, b, dict(kw, padding="same", stride=2))),
    "dilation-zero": (ValueError, lambda c, x, w, b, kw: (x, w, b, dict(kw, dilation=(0, 1)))),
    "groups-zero": (ValueError, lambda c, x, w, b, kw: (x, w, b, dict(kw, groups=0))),
    "groups-negative": (ValueError, lambda c, x, w, b, kw: (x, w, b, dict(kw, groups=-c.groups))),
    "groups-float": (TypeError, lambda c, x, w, b, kw: (x, w, b, dict(kw, groups=float(c.groups)))),
    "groups-not-dividing-in-channels": (ValueError, lambda c, x, w, b, kw: (
        x, w, b, dict(kw, groups=c.in_channels + 1))),
    "weight-channels-mismatch": (ValueError, lambda c, x, w, b, kw: (
        x, torch.randn(w.shape[0], w.shape[1] + 1, *w.shape[2:], dtype=w.dtype), b, kw)),
    "kernel-larger-than-input": (ValueError, _kernel_too_large),
    "input-2d": (ValueError, lambda c, x, w, b, kw: (x.detach().flatten(0, 2), w, b, kw)),
    "input-5d": (ValueError, lambda c, x, w, b, kw: (x.detach().unsqueeze(0), w, b, kw)),
    "weight-3d": (ValueError, lambda c, x, w, b, kw: (x, w.detach()[:, :, 0], b, kw)),
    "weight-dtype": (TypeError, lambda c, x, w, b, kw: (x, _other_dtype(w), b, kw)),
    "bias-dtype": (TypeError, lambda c, x, w, b, kw: (x, w, _other_dtype(torch.zeros(w.shape[0])), kw)),
    "bias-length": (ValueError, lambda c, x, w, b, kw: (x, w, torch.zeros(w.shape[0] + 1, dtype=x.dtype), kw)),
    "bias-2d": (ValueError, lambda c, x, w, b, kw: (x, w, torch.zeros(w.shape[0], 1, dtype=x.dtype), kw)),
    "bias-not-a-tensor": (TypeError, lambda c, x, w, b, kw: (x, w, 0.5, kw)),
    "input-integer": (TypeError, lambda c, x, w, b, kw: (x.detach().long(), w.detach().long(), None, kw)),
    "input-not-a-tensor": (TypeError, lambda c, x, w, b, kw: (x.detach().tolist(), w, b, kw)),
    "weight-on-meta": (ValueError, lambda c, x, w, b, kw: (x, w.detach().to("meta"), b, kw)),
}


@paths
@property_settings(ci_examples=60)
@given(config=valid_configs(), mutation=st.sampled_from(sorted(MUTATIONS)))
def test_invalid_configurations_raise_the_documented_error(path, config, mutation):
    error, mutate = MUTATIONS[mutation]
    input, weight, bias, kwargs = mutate(config, *config.tensors(), config.kwargs())
    with PATHS[path](), pytest.raises(error) as info:
        conv_ext.conv2d(input, weight, bias, **kwargs)
    assert str(info.value).startswith("conv_ext.conv2d: "), f"{mutation}: {info.value}"
    # The process is intact and the op still works after the error.
    input, weight, bias = config.tensors()
    with PATHS[path]():
        torch.testing.assert_close(conv_ext.conv2d(input, weight, bias, **config.kwargs()),
                                   F.conv2d(input, weight, bias, **config.kwargs()), **TOLERANCES[torch.float64])


@paths
@property_settings(ci_examples=25)
@given(config=valid_configs(), wrong=st.sampled_from(["size", "dtype"]))
def test_backward_op_rejects_a_wrong_grad_output(path, config, wrong):
    input, weight, _ = config.tensors()
    output = F.conv2d(input, weight, None, **config.kwargs())
    args = normalize_conv_args(input, weight, None, config.stride, config.padding, config.dilation,
                                            config.groups)
    if wrong == "size":
        grad_output, error = torch.zeros(output.shape[0], output.shape[1], output.shape[2] + 1, output.shape[3],
                                         dtype=torch.float64), ValueError
    else:
        grad_output, error = torch.zeros(output.shape, dtype=torch.float32), TypeError
    with PATHS[path](), pytest.raises(error, match="conv_ext.conv2d"):
        torch.ops.conv_ext.conv2d_backward(grad_output, args.input.detach(), weight.detach(), args.stride,
                                           args.padding, args.dilation, args.groups, [True, True, True])


@st.composite
def huge_meta_shapes(draw: Callable) -> Tuple[Tuple[int, ...], Tuple[int, ...], Pair, Pair, Pair, int]:
    groups = draw(st.integers(1, 8))
    input_shape = (draw(st.integers(1, 64)), groups * draw(st.integers(1, 64)), draw(st.integers(1, 2**20)),
                   draw(st.integers(1, 2**20)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = (draw(st.integers(0, 64)), draw(st.integers(0, 64)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    kernel = tuple(draw(st.integers(1, min(7, (size + 2 * p - 1) // d + 1)))
                   for size, p, d in zip(input_shape[2:], padding, dilation))
    weight_shape = (groups * draw(st.integers(1, 64)), input_shape[1] // groups, *kernel)
    return input_shape, weight_shape, stride, padding, dilation, groups


@property_settings(ci_examples=50)
@given(shapes=huge_meta_shapes())
def test_output_shapes_of_huge_inputs_match_torch_on_meta(shapes):
    """The size checks and the output-size formula in 64-bit, on sizes up to 2^20 per side (tensors of far
    more than 2^31 elements), without allocating: the op's Meta kernel against F.conv2d's."""
    input_shape, weight_shape, stride, padding, dilation, groups = shapes
    input = torch.empty(input_shape, device="meta")
    weight = torch.empty(weight_shape, device="meta")
    expected = F.conv2d(input, weight, None, stride, padding, dilation, groups)
    output = torch.ops.conv_ext.conv2d(input, weight, None, stride, padding, dilation, groups)
    assert output.shape == expected.shape and output.device.type == "meta"
    grads = torch.ops.conv_ext.conv2d_backward(torch.empty(expected.shape, device="meta"), input, weight, stride,
                                               padding, dilation, groups, [True, True, True])
    assert [g.shape for g in grads] == [input.shape, weight.shape, torch.Size([weight_shape[0]])]
