"""The seed's reproduction: its small CNN trained on MNIST (or Fashion-MNIST) with conv_ext.Conv2d, the unfold
reference and torch.nn.Conv2d. Run ``python -m examples.mnist.train --help`` from the repository root."""
