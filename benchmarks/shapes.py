"""The named benchmark suite: convolution shapes in F.conv2d's vocabulary."""
from dataclasses import asdict, dataclass
from typing import Dict, Tuple

import torch

import conv_ext


@dataclass(frozen=True)
class Shape:
    batch: int
    in_channels: int
    out_channels: int
    size: Tuple[int, int]
    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1

    def output_size(self) -> Tuple[int, int]:
        """(Ho, Wo), from the op's own formula (its Meta kernel), not a copy of it."""
        input = torch.empty(self.batch, self.in_channels, *self.size, device="meta")
        weight = torch.empty(self.out_channels, self.in_channels // self.groups, self.kernel, self.kernel,
                             device="meta")
        return tuple(conv_ext.conv2d(input, weight, **self.conv_kwargs()).shape[2:])

    def forward_flops(self) -> int:
        """Multiply-adds x 2 of the forward GEMMs: N * O * (C/g)*kh*kw * Ho*Wo * 2."""
        out_h, out_w = self.output_size()
        return 2 * self.batch * self.out_channels * (self.in_channels // self.groups) * self.kernel ** 2 * out_h * out_w

    def conv_kwargs(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def describe(self) -> str:
        text = (f"{self.batch}, {self.in_channels}->{self.out_channels}, {self.size[0]}x{self.size[1]}, "
                f"k{self.kernel}")
        for name, default in (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1)):
            value = getattr(self, name)
            if value != default:
                text += f" {name[0]}{value}"
        return text

    def as_dict(self) -> dict:
        return asdict(self)


SUITE: Dict[str, Shape] = {
    "seed-conv1": Shape(100, 1, 16, (28, 28), 5, padding=2),
    "seed-conv2": Shape(100, 16, 32, (14, 14), 5, padding=2),
    "resnet-3x3": Shape(8, 64, 64, (56, 56), 3, padding=1),
    "vgg-like": Shape(8, 128, 128, (28, 28), 3, padding=1),
    "strided-5x5": Shape(32, 16, 32, (32, 32), 5, stride=2, padding=2),
    "dilated": Shape(16, 32, 32, (32, 32), 3, padding=2, dilation=2),
    "grouped": Shape(16, 64, 64, (28, 28), 3, padding=1, groups=4),
    "depthwise": Shape(16, 64, 64, (28, 28), 3, padding=1, groups=64),
    "pointwise": Shape(16, 64, 128, (28, 28), 1),
}
