"""The seed's MNIST network, with the convolution class as a parameter."""
from torch import nn


def build_seed_cnn(conv_cls: type = nn.Conv2d) -> nn.Sequential:
    """The seed's network, with ``conv_cls`` (nn.Conv2d's constructor) for its two convolutions; input N x 1 x 28 x 28
    in [0, 1], output the logits of the 10 classes:

        Conv 1->16 k5 p2, ReLU, MaxPool 2, Conv 16->32 k5 p2, ReLU, MaxPool 2, Flatten, Linear 1568->10

    The state dicts of networks built with different classes are interchangeable."""
    return nn.Sequential(
        conv_cls(1, 16, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        conv_cls(16, 32, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )
