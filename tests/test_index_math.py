"""The index math of the per-element bodies (csrc/textbook/im2col.h, the code the GPU runs), checked against the
formula, written out here independently: in 64 bits on problems whose column matrix and input pass 2^31 elements (far too
large to allocate, so the offsets themselves are checked), in 32 bits on problems just under that bound, and the
bound itself (the launchers use the 32-bit math only where every offset fits)."""
import itertools

import pytest

from conv_ext import _C

FIELDS = ("batch", "channels", "height", "width", "kernel_h", "kernel_w", "stride_h", "stride_w", "pad_h", "pad_w",
          "dilation_h", "dilation_w", "out_h", "out_w")


def geometry(batch, channels, height, width, kernel, stride, padding, dilation):
    g = dict(batch=batch, channels=channels, height=height, width=width, kernel_h=kernel[0], kernel_w=kernel[1],
             stride_h=stride[0], stride_w=stride[1], pad_h=padding[0], pad_w=padding[1], dilation_h=dilation[0],
             dilation_w=dilation[1])
    for side, size in (("h", "height"), ("w", "width")):
        g[f"out_{side}"] = (g[size] + 2 * g[f"pad_{side}"] - g[f"dilation_{side}"] * (g[f"kernel_{side}"] - 1)
                            - 1) // g[f"stride_{side}"] + 1
    return g


HUGE = [
    # columns: 576 rows x 40000*3136 positions = 7.2e10 entries; input 8.0e9 elements
    geometry(40000, 64, 56, 56, (3, 3), (1, 1), (1, 1), (1, 1)),
    # strided, dilated, rectangular: columns 2.0e10, input 1.1e10
    geometry(3000, 96, 190, 200, (3, 5), (2, 3), (2, 1), (2, 1)),
]


def fields(g):
    return [g[name] for name in FIELDS]


def decompose_column(g, index):
    ow = index % g["out_w"]
    rest = index // g["out_w"]
    oh = rest % g["out_h"]
    rest //= g["out_h"]
    n = rest % g["batch"]
    row = rest // g["batch"]
    c, i, j = row // (g["kernel_h"] * g["kernel_w"]), row // g["kernel_w"] % g["kernel_h"], row % g["kernel_w"]
    return n, c, i, j, oh, ow


def expected_source(g, index):
    n, c, i, j, oh, ow = decompose_column(g, index)
    h = oh * g["stride_h"] - g["pad_h"] + i * g["dilation_h"]
    w = ow * g["stride_w"] - g["pad_w"] + j * g["dilation_w"]
    if not (0 <= h < g["height"] and 0 <= w < g["width"]):
        return -1
    return ((n * g["channels"] + c) * g["height"] + h) * g["width"] + w


def column_numel(g):
    return g["channels"] * g["kernel_h"] * g["kernel_w"] * g["batch"] * g["out_h"] * g["out_w"]


def input_numel(g):
    return g["batch"] * g["channels"] * g["height"] * g["width"]


def sample_indices(total):
    """Indices at both ends and around every power of two past 2^31."""
    picks = {0, 1, total - 1, total - 2}
    power = 1 << 31
    while power < total:
        picks.update({power - 1, power, power + 1})
        power <<= 1
    picks.update(range(total - 5000, total, 997))
    return sorted(p for p in picks if 0 <= p < total)


@pytest.mark.parametrize("g", HUGE, ids=["resnet-batch40000", "strided-dilated"])
def test_im2col_offsets_past_2_31(g):
    assert column_numel(g) > 2 ** 34 and input_numel(g) > 2 ** 32
    sources = []
    for index in sample_indices(column_numel(g)):
        got = _C._im2col_source_offset(fields(g), index)
        assert got == expected_source(g, index), index
        sources.append(got)
    assert max(sources) > 2 ** 32  # the offsets themselves pass 32 bits


@pytest.mark.parametrize("g", HUGE, ids=["resnet-batch40000", "strided-dilated"])
def test_col2im_gathers_exactly_the_columns_that_read_the_element(g):
    """Every column offset col2im visits reads the element back through im2col, and no tap is missed (counted
    against a brute-force walk over taps and output positions)."""
    for index in sample_indices(input_numel(g))[::7]:
        offsets = _C._col2im_column_offsets(fields(g), index)
        assert offsets == sorted(set(offsets))  # taps in order, each once
        for offset in offsets:
            assert expected_source(g, offset) == index
        w, h = index % g["width"], index // g["width"] % g["height"]
        expected_taps = sum(
            1 for i, j in itertools.product(range(g["kernel_h"]), range(g["kernel_w"]))
            if (h + g["pad_h"] - i * g["dilation_h"]) % g["stride_h"] == 0
            and 0 <= (h + g["pad_h"] - i * g["dilation_h"]) // g["stride_h"] < g["out_h"]
            and (w + g["pad_w"] - j * g["dilation_w"]) % g["stride_w"] == 0
            and 0 <= (w + g["pad_w"] - j * g["dilation_w"]) // g["stride_w"] < g["out_w"])
        assert len(offsets) == expected_taps


# Just under the 32-bit bound (the launchers run these in int32_t): the last offsets sit near 2^31 - 1.
NEAR_INT32 = [
    # columns: 9 rows x 15446^2 positions = 2^31 - 2.7e5; input 2.4e8
    geometry(1, 1, 15446, 15446, (3, 3), (1, 1), (1, 1), (1, 1)),
    # input 2^31 - 1.1e5 elements, columns 2.0e9; strided and dilated, taps in the padding on every side
    geometry(1, 3, 23170, 30893, (3, 5), (4, 4), (3, 2), (2, 1)),
]


@pytest.mark.parametrize("g", NEAR_INT32, ids=["square", "strided-dilated"])
def test_int32_math_near_its_bound(g):
    assert _C._fits_int32_indexing(fields(g))
    assert max(column_numel(g), input_numel(g)) > 2 ** 30
    for index in sample_indices(column_numel(g)) + list(range(0, 5000, 7)):
        assert _C._im2col_source_offset(fields(g), index) == expected_source(g, index), index
    for index in sample_indices(input_numel(g))[::5]:
        for offset in _C._col2im_column_offsets(fields(g), index):
            assert expected_source(g, offset) == index


def test_int32_bound():
    """Exactly 2^31 - 1 column entries fit in 32 bits, one more sample does not; the input and a padding that
    takes tap coordinates past 2^31 each force the 64-bit math too."""
    fits = geometry(1, 1, 1, 2 ** 31 - 1, (1, 1), (1, 1), (0, 0), (1, 1))
    assert column_numel(fits) == 2 ** 31 - 1 and _C._fits_int32_indexing(fields(fits))
    assert not _C._fits_int32_indexing(fields(dict(fits, batch=2)))
    wide_input = geometry(1, 1, 1, 2 ** 31, (1, 1), (2 ** 31, 2 ** 31), (0, 0), (1, 1))  # 1 output, 2^31 inputs
    assert column_numel(wide_input) == 1 and not _C._fits_int32_indexing(fields(wide_input))
    far_padding = geometry(1, 1, 4, 4, (3, 3), (2 ** 30, 2 ** 30), (2 ** 30, 2 ** 30), (1, 1))
    assert column_numel(far_padding) < 100 and not _C._fits_int32_indexing(fields(far_padding))
