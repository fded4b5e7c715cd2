"""The seed's CNN trained with nn.Conv2d and with conv_ext.Conv2d from the same weights follows the same path."""
import pytest
import torch
from torch import nn

import conv_ext
from conv_ext.reference import UnfoldConv2d
from examples.mnist.model import build_seed_cnn


def adam_losses(conv_cls, initial_state, images, labels, steps: int = 20):
    model = build_seed_cnn(conv_cls)
    model.load_state_dict(initial_state)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for step in range(steps):
        batch = slice(step * 10 % len(images), step * 10 % len(images) + 10)
        loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("conv_cls", [conv_ext.Conv2d, UnfoldConv2d], ids=["ext", "unfold"])
def test_twenty_adam_steps_match_nn_conv2d(conv_cls):
    torch.manual_seed(0)
    initial_state = build_seed_cnn(nn.Conv2d).state_dict()
    images = torch.rand(60, 1, 28, 28)
    labels = torch.randint(0, 10, (60,))
    expected = adam_losses(nn.Conv2d, initial_state, images, labels)
    losses = adam_losses(conv_cls, initial_state, images, labels)
    assert len(losses) == 20
    assert expected[-1] < expected[0]  # it trains
    for step, (got, want) in enumerate(zip(losses, expected)):
        assert abs(got - want) <= 1e-4, f"step {step}: loss {got} vs nn.Conv2d {want}"
