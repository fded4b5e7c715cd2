"""The convolutions of real networks: each network's distinct convolution layers at its input size (224 px; the
seed's CNN at 28 px) and how many times it uses each.

A layer is a Shape (benchmarks/shapes.py) at batch 1: its geometry in F.conv2d's vocabulary. Each list is walked
from the architecture's published definition (the paper's table and torchvision's model file, both named in the
network's `source`), the way the model's forward pass meets its convolutions: the channels and the spatial size
each one sees. Every nn.Conv2d of the model is there, squeeze-and-excitation 1x1 convolutions included; linear
layers (classifiers, ConvNeXt's pointwise MLPs) are not convolutions and are not. tests/test_networks.py checks
the lists against the published multiply-adds and, where torchvision imports, against its models' own
convolutions.
"""
import contextlib
from dataclasses import dataclass, replace
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import nn

from .shapes import Shape


@dataclass(frozen=True)
class Network:
    """A network's convolutions: (layer at batch 1, times the network uses it), in the order the forward pass
    first meets each; where the list comes from; torchvision's constructor of the same model (None: not in
    torchvision) and the input it takes (channels, height, width)."""
    name: str
    source: str
    layers: Tuple[Tuple[Shape, int], ...]
    input_shape: Tuple[int, int, int]
    torchvision_name: Optional[str] = None

    def convolutions(self) -> int:
        """How many convolution modules the network has."""
        return sum(count for _, count in self.layers)

    def macs_per_image(self) -> int:
        """Multiply-adds of the network's convolutions for one image (forward)."""
        return sum(count * shape.forward_flops() // 2 for shape, count in self.layers)


class _Walk:
    """The state of a forward pass through a network's convolutions: the channels and spatial size the next
    convolution sees. Each conv() records a layer (or one more use of it) and, unless told otherwise, moves on to
    its output."""

    def __init__(self, channels: int, size: int):
        self.channels, self.size = channels, (size, size)
        self.layers: Dict[Shape, int] = {}

    def conv(self, out_channels: int, kernel: int, stride: int = 1, groups: int = 1, padding: Optional[int] = None,
             advance: bool = True) -> None:
        """A convolution of the current tensor (padding: kernel // 2 unless given, as the networks here pad)."""
        shape = Shape(1, self.channels, out_channels, self.size, kernel, stride=stride,
                      padding=kernel // 2 if padding is None else padding, groups=groups)
        self.layers[shape] = self.layers.get(shape, 0) + 1
        if advance:
            self.channels, self.size = out_channels, shape.output_size()

    def depthwise(self, kernel: int, stride: int = 1) -> None:
        self.conv(self.channels, kernel, stride=stride, groups=self.channels)

    def squeeze_excitation(self, squeeze_channels: int) -> None:
        """The two 1x1 convolutions of squeeze-and-excitation, on the globally pooled 1x1 map; the block's tensor
        keeps its size."""
        channels, size = self.channels, self.size
        self.size = (1, 1)
        self.conv(squeeze_channels, 1)
        self.conv(channels, 1)
        self.size = size

    def pool(self, factor: int) -> None:
        """A pooling layer that divides the spatial size by `factor` (ResNet's 3x3 s2 p1 max-pool and VGG's 2x2
        halve even sizes alike)."""
        self.size = (self.size[0] // factor, self.size[1] // factor)

    def finish(self) -> Tuple[Tuple[Shape, int], ...]:
        return tuple(self.layers.items())


def resnet(blocks: Tuple[int, ...], bottleneck: bool) -> Tuple[Tuple[Shape, int], ...]:
    """ResNet (He et al., "Deep Residual Learning for Image Recognition", 2016, Table 1), as torchvision builds it
    (torchvision/models/resnet.py): a 7x7 s2 stem and a max-pool, then four stages of 64, 128, 256, 512 channels;
    the first block of stages 2-4 strides by 2 (in a bottleneck, on its 3x3: "ResNet v1.5") and, where its input
    and output differ, adds a 1x1 projection of its input (stride included)."""
    walk = _Walk(3, 224)
    walk.conv(64, 7, stride=2)
    walk.pool(2)
    expansion = 4 if bottleneck else 1
    for stage, count in enumerate(blocks):
        width = 64 * 2 ** stage
        for block in range(count):
            stride = 2 if stage > 0 and block == 0 else 1
            if stride != 1 or walk.channels != width * expansion:
                walk.conv(width * expansion, 1, stride=stride, advance=False)  # the projection shortcut
            if bottleneck:
                walk.conv(width, 1)
                walk.conv(width, 3, stride=stride)
                walk.conv(width * expansion, 1)
            else:
                walk.conv(width, 3, stride=stride)
                walk.conv(width, 3)
    return walk.finish()


# MobileNetV2's inverted residuals (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
# 2018, Table 2; torchvision/models/mobilenetv2.py): expansion t, output channels c, repeats n, first stride s.
MOBILENET_V2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1))


def mobilenet_v2() -> Tuple[Tuple[Shape, int], ...]:
    """A 3x3 s2 stem of 32 channels; each inverted residual expands by t (a 1x1, absent where t = 1), filters with
    a 3x3 depthwise convolution (the block's stride) and projects back (a 1x1); a last 1x1 to 1280 channels."""
    walk = _Walk(3, 224)
    walk.conv(32, 3, stride=2)
    for expansion, channels, repeats, first_stride in MOBILENET_V2_BLOCKS:
        for block in range(repeats):
            if expansion != 1:
                walk.conv(walk.channels * expansion, 1)
            walk.depthwise(3, stride=first_stride if block == 0 else 1)
            walk.conv(channels, 1)
    walk.conv(1280, 1)
    return walk.finish()


# EfficientNet-B0's MBConv stages (Tan and Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
# Networks", 2019, Table 1; torchvision/models/efficientnet.py, width and depth 1.0): expansion, kernel, first
# stride, output channels, repeats.
EFFICIENTNET_B0_BLOCKS = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
                          (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))


def efficientnet_b0() -> Tuple[Tuple[Shape, int], ...]:
    """A 3x3 s2 stem of 32 channels; each MBConv expands (a 1x1, absent where the expansion is 1), filters with a
    kxk depthwise convolution (the block's stride), squeezes and excites (two 1x1s on the pooled map, squeezing
    to a quarter of the block's input channels) and projects (a 1x1); a last 1x1 to 1280 channels."""
    walk = _Walk(3, 224)
    walk.conv(32, 3, stride=2)
    for expansion, kernel, first_stride, channels, repeats in EFFICIENTNET_B0_BLOCKS:
        for block in range(repeats):
            block_input = walk.channels
            if expansion != 1:
                walk.conv(block_input * expansion, 1)
            walk.depthwise(kernel, stride=first_stride if block == 0 else 1)
            walk.squeeze_excitation(max(1, block_input // 4))
            walk.conv(channels, 1)
    walk.conv(1280, 1)
    return walk.finish()


# VGG's configuration A (Simonyan and Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
# Recognition", 2015, Table 1; torchvision/models/vgg.py, cfgs["A"]): 3x3 p1 convolutions, "M" a 2x2 max-pool.
VGG_11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def vgg_11() -> Tuple[Tuple[Shape, int], ...]:
    walk = _Walk(3, 224)
    for item in VGG_11:
        if item == "M":
            walk.pool(2)
        else:
            walk.conv(item, 3)
    return walk.finish()


def convnext_tiny() -> Tuple[Tuple[Shape, int], ...]:
    """ConvNeXt-T (Liu et al., "A ConvNet for the 2020s", 2022; torchvision/models/convnext.py): a 4x4 s4
    "patchify" stem to 96 channels; stages of 3, 3, 9, 3 blocks at 96, 192, 384, 768 channels, each block a 7x7
    depthwise convolution (its MLP is linear layers, not convolutions); a 2x2 s2 convolution doubles the channels
    between stages."""
    walk = _Walk(3, 224)
    walk.conv(96, 4, stride=4, padding=0)
    for stage, depth in enumerate((3, 3, 9, 3)):
        if stage > 0:
            walk.conv(walk.channels * 2, 2, stride=2, padding=0)
        for _ in range(depth):
            walk.depthwise(7)
    return walk.finish()


def seed_cnn() -> Tuple[Tuple[Shape, int], ...]:
    """The seed's MNIST CNN (examples.mnist.model.build_seed_cnn) at 28 px: 1->16 5x5 p2, a 2x2 max-pool, 16->32 5x5
    p2."""
    walk = _Walk(1, 28)
    walk.conv(16, 5)
    walk.pool(2)
    walk.conv(32, 5)
    return walk.finish()


def _network(name: str, layers: Callable[[], Tuple[Tuple[Shape, int], ...]], source: str, input_shape=(3, 224, 224),
             torchvision_name: Optional[str] = None) -> Network:
    return Network(name, source, layers(), input_shape, torchvision_name)


NETWORKS: Dict[str, Network] = {n.name: n for n in (
    _network("resnet18", lambda: resnet((2, 2, 2, 2), bottleneck=False),
             "He et al. 2016, Table 1; torchvision/models/resnet.py", torchvision_name="resnet18"),
    _network("resnet50", lambda: resnet((3, 4, 6, 3), bottleneck=True),
             "He et al. 2016, Table 1 (v1.5: stride on the 3x3); torchvision/models/resnet.py",
             torchvision_name="resnet50"),
    _network("mobilenet_v2", mobilenet_v2, "Sandler et al. 2018, Table 2; torchvision/models/mobilenetv2.py",
             torchvision_name="mobilenet_v2"),
    _network("efficientnet_b0", efficientnet_b0, "Tan and Le 2019, Table 1; torchvision/models/efficientnet.py",
             torchvision_name="efficientnet_b0"),
    _network("vgg11", vgg_11, "Simonyan and Zisserman 2015, Table 1 (A); torchvision/models/vgg.py",
             torchvision_name="vgg11"),
    _network("convnext_tiny", convnext_tiny, "Liu et al. 2022; torchvision/models/convnext.py",
             torchvision_name="convnext_tiny"),
    _network("seed_cnn", seed_cnn, "examples.mnist.model.build_seed_cnn", input_shape=(1, 28, 28)),
)}


def without_batch(shape: Shape) -> str:
    """A layer's name: its geometry without the batch ("64->64, 56x56, k3 p1")."""
    return shape.describe().split(", ", 1)[1]


def traced_layers(model: nn.Module, input_shape: Tuple[int, int, int]) -> Dict[Shape, int]:
    """The convolutions a model's forward pass runs on one image of `input_shape` (hooks on every nn.Conv2d and
    subclass), as layers at batch 1 with their counts: what a Network's list says, read off the model itself."""
    layers: Dict[Shape, int] = {}

    def record(module: nn.Conv2d, inputs, _output) -> None:
        if module.kernel_size[0] != module.kernel_size[1] or len(set(module.stride)) != 1 \
                or len(set(module.padding)) != 1 or len(set(module.dilation)) != 1:
            raise ValueError(f"{module}: a Shape has square kernels, strides, paddings and dilations")
        shape = Shape(1, module.in_channels, module.out_channels, tuple(inputs[0].shape[2:]), module.kernel_size[0],
                      module.stride[0], module.padding[0], module.dilation[0], module.groups)
        layers[shape] = layers.get(shape, 0) + 1

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape))
    finally:
        for hook in hooks:
            hook.remove()
    return layers


def torchvision_models():
    """torchvision.models, or None where torchvision is not installed. A torchvision wheel built for another torch
    (the CUDA build beside a CPU torch) fails to import because its compiled ops (nms, roi_align, ...) do not load
    and its fake-tensor registrations for them then raise; the models are plain Python and use none of them, so
    the import is retried with those registrations skipped."""
    try:
        import torchvision.models
        return torchvision.models
    except ImportError:
        return None
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
    with _fake_registrations_skipped():
        import torchvision.models
    return torchvision.models


@contextlib.contextmanager
def _fake_registrations_skipped():
    def register_fake(_op, func=None, **_kwargs):
        return func if func is not None else (lambda f: f)
    original = torch.library.register_fake
    torch.library.register_fake = register_fake
    try:
        yield
    finally:
        torch.library.register_fake = original


def torchvision_model(network: Network) -> Optional[nn.Module]:
    """torchvision's model of `network` with random weights (none downloaded), or None where torchvision does not
    import or has no such model."""
    models = torchvision_models() if network.torchvision_name else None
    return getattr(models, network.torchvision_name)() if models is not None else None


def at_batch(shape: Shape, batch: int) -> Shape:
    """The layer at another batch size."""
    return replace(shape, batch=batch)
