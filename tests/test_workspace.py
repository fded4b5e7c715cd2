"""The column workspace: chunks of the batch under a bound, identical results whatever the chunking."""
import torch

import conv_ext
from conv_cases import GRID, case_kwargs, forward_and_grads, make_tensors

CASE = next(c for c in GRID if c.name == "batch33")


def column_bytes_per_sample(input: torch.Tensor, weight: torch.Tensor, output: torch.Tensor) -> int:
    return input.shape[1] * weight.shape[2] * weight.shape[3] * output.shape[2] * output.shape[3] * input.element_size()


def test_chunked_equals_unchunked():
    input, weight, bias = make_tensors(CASE, torch.float64, True)
    with conv_ext.workspace_limit(1 << 30):
        whole, whole_grads, grad_output = forward_and_grads(conv_ext.conv2d, input, weight, bias, None,
                                                            **case_kwargs(CASE))
    with conv_ext.workspace_limit(1):  # one sample per chunk
        chunked, chunked_grads, _ = forward_and_grads(conv_ext.conv2d, input, weight, bias, grad_output,
                                                      **case_kwargs(CASE))
    torch.testing.assert_close(chunked, whole, rtol=1e-13, atol=1e-13)
    for got, want in zip(chunked_grads, whole_grads):
        torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)


def test_peak_workspace_stays_under_the_bound():
    input, weight, bias = make_tensors(CASE, torch.float32, True)
    output = conv_ext.conv2d(input, weight, bias, **case_kwargs(CASE))
    per_sample = column_bytes_per_sample(input, weight, output)
    limit = 5 * per_sample  # backward holds two column buffers: 2 samples per chunk
    with conv_ext.workspace_limit(limit):
        conv_ext.reset_peak_workspace_bytes()
        conv_ext.conv2d(input, weight, bias, **case_kwargs(CASE)).sum().backward()
        peak = conv_ext.peak_workspace_bytes()
    assert 0 < peak <= limit
    assert peak >= 4 * per_sample  # the chunks are as large as the bound allows: 5 in forward, 2 x 2 in backward
    with conv_ext.workspace_limit(1 << 30):
        conv_ext.reset_peak_workspace_bytes()
        conv_ext.conv2d(input, weight, bias, **case_kwargs(CASE))
        assert conv_ext.peak_workspace_bytes() == per_sample * input.shape[0]


def test_workspace_limit_context_restores_the_setting():
    before = conv_ext.workspace_limit_bytes()
    assert before == 64 << 20
    with conv_ext.workspace_limit(12345):
        assert conv_ext.workspace_limit_bytes() == 12345
    assert conv_ext.workspace_limit_bytes() == before
