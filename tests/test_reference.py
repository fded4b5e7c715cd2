"""conv_ext/reference.py, the plain-torch oracle: F.conv2d's results and gradients on the shared grid with each of
its two backwards, gradcheck of both, and that it runs alone, without the extension."""
import functools
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conv_cases import BASE, assert_matches_torch, dtypes, grid, with_bias
from conv_ext.reference import BACKWARDS, conv2d_unfold

REFERENCE_PATH = Path(__file__).resolve().parents[1] / "conv_ext" / "reference.py"
backwards = pytest.mark.parametrize("backward", BACKWARDS)


@grid
@dtypes
@with_bias
@backwards
def test_matches_torch(case, dtype, bias, backward):
    assert_matches_torch(functools.partial(conv2d_unfold, backward=backward), case, dtype, bias)


# Shapes the grid leaves out: no input channels (F.conv2d gives an output without channels and zero gradients),
# an empty batch with groups and stride, 'same' with an even kernel in both dimensions.
EDGE_CASES = [
    replace(BASE, name="no-input-channels", in_channels=0, padding=1, stride=(1, 2)),
    replace(BASE, name="batch0-grouped-strided", batch=0, groups=2, stride=2, dilation=2),
    replace(BASE, name="same-even-kernel", padding="same", kernel=(4, 2)),
]


@pytest.mark.parametrize("case", EDGE_CASES, ids=[c.name for c in EDGE_CASES])
@backwards
def test_edge_cases_match_torch(case, backward):
    assert_matches_torch(functools.partial(conv2d_unfold, backward=backward), case, torch.float64, bias=True)


@backwards
def test_unbatched_input_matches_torch(backward):
    input = torch.randn(3, 7, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    output = conv2d_unfold(input, weight, stride=(2, 1), padding=1, backward=backward)
    expected = F.conv2d(input, weight, stride=(2, 1), padding=1)
    torch.testing.assert_close(output, expected)
    grad_output = torch.randn_like(expected)
    for got, want in zip(torch.autograd.grad(output, (input, weight), grad_output),
                         torch.autograd.grad(expected, (input, weight), grad_output)):
        torch.testing.assert_close(got, want)


GRADCHECK_CASES = {
    "plain": dict(),
    "strided-dilated-grouped": dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
    "same-odd-total": dict(padding="same", dilation=(1, 2)),
}


@pytest.mark.parametrize("kwargs", GRADCHECK_CASES.values(), ids=GRADCHECK_CASES.keys())
@backwards
def test_gradcheck(kwargs, backward):
    """Both backwards against finite differences, in float64, for the input, the weight and the bias."""
    generator = torch.Generator().manual_seed(0)
    input = torch.randn(2, 4, 6, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(4, 4 // kwargs.get("groups", 1), 2, 3, dtype=torch.float64, generator=generator,
                         requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, generator=generator, requires_grad=True)
    conv = functools.partial(conv2d_unfold, **kwargs, backward=backward)
    assert torch.autograd.gradcheck(conv, (input, weight, bias))
    assert torch.autograd.gradgradcheck(conv, (input, weight, bias))


def test_unknown_backward_is_refused():
    with pytest.raises(ValueError, match="backward must be one of 'autograd', 'textbook', got 'fold'"):
        conv2d_unfold(torch.randn(1, 1, 3, 3), torch.randn(1, 1, 2, 2), backward="fold")


STANDALONE = f"""
import importlib.util, sys
sys.modules["conv_ext"] = None  # no import of the package (and so of conv_ext._C) can succeed
spec = importlib.util.spec_from_file_location("reference", {str(REFERENCE_PATH)!r})
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)
import torch, torch.nn.functional as F
x, w = torch.randn(2, 4, 9, 8, dtype=torch.float64), torch.randn(6, 2, 3, 3, dtype=torch.float64)
for backward in reference.BACKWARDS:
    torch.testing.assert_close(reference.conv2d_unfold(x, w, stride=2, groups=2, backward=backward),
                               F.conv2d(x, w, stride=2, groups=2))
assert reference.UnfoldConv2d(4, 6, 3)(x.float()).shape == (2, 6, 7, 6)
print(sorted(name for name, module in sys.modules.items() if name.startswith("conv_ext") and module is not None))
"""


def test_runs_alone_without_the_extension():
    """Loaded by its path in a fresh interpreter where conv_ext (and so conv_ext._C) cannot be imported."""
    result = subprocess.run([sys.executable, "-c", STANDALONE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
