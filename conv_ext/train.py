"""Reproduce the seed: train its small MNIST CNN with conv_ext.Conv2d, the unfold layer or torch.nn.Conv2d.

The seed (blog post "Convolutional Layer from Scratch") trains this network for one epoch and reports about 97%
test accuracy on MNIST:

    Conv 1->16 k5 s1 p2, ReLU, MaxPool 2, Conv 16->32 k5 s1 p2, ReLU, MaxPool 2, Flatten, Linear 1568->10

with cross-entropy on the logits, Adam (lr 0.01), batches of 100 and inputs scaled to [0, 1] (no normalisation).

Usage::

    python -m conv_ext.train --impl ext --dataset mnist --data-dir DIR --json run.json
    python -m conv_ext.train --compare --dataset fashion-mnist --plot losses.png

Every run starts from the weights that torch.nn.Conv2d gets under ``--seed`` and sees the images in the order that
``--seed`` gives, whatever the implementation, so runs of the three implementations differ only by their
convolution. ``--compare`` trains all three and prints a table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import torch
from torch import nn

from conv_ext.data import DATASETS, DatasetError, ImageDataset, download_dataset, load_dataset

__all__ = [
    "IMPLEMENTATIONS",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "build_parser",
    "build_seed_cnn",
    "compare_implementations",
    "conv_class",
    "evaluate",
    "format_comparison",
    "format_summary",
    "images_to_input",
    "initial_state_dict",
    "main",
    "max_abs_difference",
    "plot_losses",
    "prediction_agreement",
    "train_epoch",
    "train_model",
]

IMPLEMENTATIONS: tuple[str, ...] = ("ext", "unfold", "torch")
"""The values of ``--impl``: conv_ext.Conv2d, conv_ext.reference.UnfoldConv2d, torch.nn.Conv2d."""

SEED_TARGET_ACCURACY = 97.0
"""The seed's MNIST test accuracy after one epoch, in percent (reported, not enforced)."""
SEED_TARGET_GAP = 0.3
"""How far (in accuracy points) ext may be from torch.nn.Conv2d from the same initial weights."""

_LAYER_NAMES = {
    "ext": "conv_ext.Conv2d",
    "unfold": "conv_ext.reference.UnfoldConv2d",
    "torch": "torch.nn.Conv2d",
}


# ------------------------------------------------------------------------------------------------- the model


def build_seed_cnn(conv_cls: type[nn.Conv2d] = nn.Conv2d) -> nn.Sequential:
    """The seed's MNIST network, with ``conv_cls`` for its two convolutions (input: N x 1 x 28 x 28 in [0, 1]).

    Conv 1->16 k5 s1 p2, ReLU, MaxPool 2, Conv 16->32 k5 s1 p2, ReLU, MaxPool 2, Flatten, Linear 1568->10. The
    output is the logits. ``conv_cls`` takes torch.nn.Conv2d's constructor arguments; the state dicts of networks
    built with different classes are interchangeable.
    """
    return nn.Sequential(
        conv_cls(1, 16, kernel_size=5, stride=1, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        conv_cls(16, 32, kernel_size=5, stride=1, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
    )


def conv_class(impl: str) -> type[nn.Conv2d]:
    """The convolution class of implementation ``impl`` (one of :data:`IMPLEMENTATIONS`)."""
    if impl == "ext":
        import conv_ext  # noqa: PLC0415 (the package is loaded already; imported here to name it)

        return conv_ext.Conv2d
    if impl == "unfold":
        from conv_ext.reference import UnfoldConv2d  # noqa: PLC0415

        return UnfoldConv2d
    if impl == "torch":
        return nn.Conv2d
    raise ValueError(f"unknown implementation {impl!r}; choose one of {IMPLEMENTATIONS}")


def initial_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """The initial weights of the seed's network: those that torch.nn.Conv2d and nn.Linear draw under ``seed``."""
    torch.manual_seed(seed)
    return build_seed_cnn(nn.Conv2d).state_dict()


def build_model(impl: str, state_dict: dict[str, torch.Tensor]) -> nn.Sequential:
    """The seed's network with the convolution of ``impl``, holding a copy of ``state_dict``."""
    model = build_seed_cnn(conv_class(impl))
    model.load_state_dict(state_dict)
    return model


def images_to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N x 28 x 28) -> float32 network input (N x 1 x 28 x 28) scaled to [0, 1], as in the seed."""
    return images.unsqueeze(1).to(torch.float32).div_(255.0)


# ---------------------------------------------------------------------------------------------- training


@dataclass
class TrainConfig:
    """The hyperparameters of a run; the defaults are the seed's."""

    epochs: int = 1
    batch_size: int = 100
    lr: float = 0.01
    seed: int = 0
    eval_batch_size: int = 1000
    progress: bool = True
    """Show a progress bar (tqdm) per epoch."""


@dataclass
class TrainResult:
    """What one training run measured."""

    implementation: str
    test_accuracy: float
    """Fraction of the test images classified correctly, in [0, 1]."""
    test_correct: int
    test_images: int
    train_images: int
    final_loss: float
    """Training loss of the last batch."""
    test_loss: float
    """Mean cross-entropy over the test set after training."""
    epoch_seconds: list[float]
    """Wall time of each epoch's training loop (evaluation excluded)."""
    losses: list[float]
    """Training loss of every batch, in order."""
    test_logits: torch.Tensor = field(repr=False)
    """Logits of the test set after training."""
    initial_test_logits: Optional[torch.Tensor] = field(default=None, repr=False)
    """Logits of the test set at the initial weights, when asked for."""

    @property
    def seconds_per_epoch(self) -> float:
        """Mean wall time of an epoch's training loop."""
        return sum(self.epoch_seconds) / len(self.epoch_seconds)

    @property
    def images_per_second(self) -> float:
        """Training throughput: images trained on per second of training loop."""
        total = sum(self.epoch_seconds)
        return self.train_images * len(self.epoch_seconds) / total if total > 0 else math.inf

    def to_json(self) -> dict[str, Any]:
        """The figures of this run as a JSON-serialisable dict (the per-batch losses included)."""
        return {
            "implementation": self.implementation,
            "layer": _LAYER_NAMES.get(self.implementation, self.implementation),
            "torch_version": torch.__version__,
            "test_accuracy": self.test_accuracy,
            "test_correct": self.test_correct,
            "test_images": self.test_images,
            "train_images": self.train_images,
            "final_loss": self.final_loss,
            "test_loss": self.test_loss,
            "seconds_per_epoch": self.seconds_per_epoch,
            "epoch_seconds": list(self.epoch_seconds),
            "images_per_second": self.images_per_second,
            "losses": list(self.losses),
        }


class _NoProgress:
    """Stands in for a tqdm bar when there is none."""

    def update(self, n: int) -> None:
        """Does nothing."""

    def set_postfix(self, **kwargs: Any) -> None:
        """Does nothing."""

    def close(self) -> None:
        """Does nothing."""


_warned_no_tqdm = False


def _progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar over ``total`` images, or a stand-in when disabled or tqdm is missing (said once)."""
    global _warned_no_tqdm
    if not enabled:
        return _NoProgress()
    try:
        from tqdm import tqdm  # noqa: PLC0415 (optional at import time)
    except ImportError:
        if not _warned_no_tqdm:
            print("tqdm is not installed: no progress bar (pip install tqdm)", file=sys.stderr)
            _warned_no_tqdm = True
        return _NoProgress()
    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, dynamic_ncols=True, leave=True)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    order: torch.Tensor,
    batch_size: int,
    progress_desc: str = "",
    progress: bool = False,
) -> tuple[list[float], float]:
    """One pass over ``inputs`` in the order ``order``, batches of ``batch_size``; returns (batch losses, seconds).

    The last batch is smaller when ``batch_size`` does not divide the number of images.
    """
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    losses: list[float] = []
    bar = _progress_bar(len(order), progress_desc, progress)
    start = time.perf_counter()
    try:
        for batch_indices in order.split(batch_size):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs[batch_indices]), labels[batch_indices])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
            bar.update(len(batch_indices))
    finally:
        seconds = time.perf_counter() - start
        bar.close()
    return losses, seconds


@torch.no_grad()
def evaluate(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000
) -> tuple[torch.Tensor, float, int]:
    """The model's logits on ``inputs``, its mean cross-entropy against ``labels`` and its number of correct guesses."""
    model.eval()
    logits = torch.cat([model(chunk) for chunk in inputs.split(batch_size)]) if len(inputs) else torch.empty(0, 10)
    loss = nn.functional.cross_entropy(logits, labels).item() if len(inputs) else math.nan
    correct = int((logits.argmax(dim=1) == labels).sum())
    return logits, loss, correct


def _epoch_orders(num_images: int, epochs: int, seed: int) -> list[torch.Tensor]:
    """The order of the training images in each epoch: a permutation per epoch, drawn from ``seed`` alone."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randperm(num_images, generator=generator) for _ in range(epochs)]


def train_model(
    impl: str,
    data: ImageDataset,
    config: TrainConfig,
    state_dict: Optional[dict[str, torch.Tensor]] = None,
    evaluate_initial: bool = False,
) -> TrainResult:
    """Train the seed's network with the convolution of ``impl`` on ``data`` and evaluate it on the test split.

    Args:
        impl: one of :data:`IMPLEMENTATIONS`.
        data: the dataset (uint8 images).
        config: hyperparameters.
        state_dict: initial weights; default :func:`initial_state_dict` of ``config.seed``.
        evaluate_initial: also keep the test logits at the initial weights (``initial_test_logits``).
    """
    if state_dict is None:
        state_dict = initial_state_dict(config.seed)
    model = build_model(impl, state_dict)
    train_inputs, test_inputs = images_to_input(data.train_images), images_to_input(data.test_images)
    initial_logits = None
    if evaluate_initial:
        initial_logits, _, _ = evaluate(model, test_inputs, data.test_labels, config.eval_batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    losses: list[float] = []
    epoch_seconds: list[float] = []
    for epoch, order in enumerate(_epoch_orders(len(train_inputs), config.epochs, config.seed), start=1):
        desc = f"{impl:>6} epoch {epoch}/{config.epochs}"
        epoch_losses, seconds = train_epoch(
            model, optimizer, train_inputs, data.train_labels, order, config.batch_size, desc, config.progress
        )
        losses += epoch_losses
        epoch_seconds.append(seconds)
    logits, test_loss, correct = evaluate(model, test_inputs, data.test_labels, config.eval_batch_size)
    return TrainResult(
        implementation=impl,
        test_accuracy=correct / len(test_inputs) if len(test_inputs) else math.nan,
        test_correct=correct,
        test_images=len(test_inputs),
        train_images=len(train_inputs),
        final_loss=losses[-1] if losses else math.nan,
        test_loss=test_loss,
        epoch_seconds=epoch_seconds,
        losses=losses,
        test_logits=logits,
        initial_test_logits=initial_logits,
    )


def compare_implementations(
    data: ImageDataset, config: TrainConfig, impls: Sequence[str] = IMPLEMENTATIONS
) -> list[TrainResult]:
    """Train the seed's network once per implementation, all from the same initial weights and data order."""
    state_dict = initial_state_dict(config.seed)
    return [train_model(impl, data, config, state_dict, evaluate_initial=True) for impl in impls]


def max_abs_difference(a: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> float:
    """The largest absolute elementwise difference of two tensors of one shape (nan when either is missing)."""
    if a is None or b is None or a.numel() == 0:
        return math.nan
    return (a.double() - b.double()).abs().max().item()


def prediction_agreement(a: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> float:
    """The fraction of rows where two logit tensors (N x classes) pick the same class (nan when either is missing)."""
    if a is None or b is None or a.shape[0] == 0:
        return math.nan
    return (a.argmax(dim=1) == b.argmax(dim=1)).double().mean().item()


# ------------------------------------------------------------------------------------------------ reporting


def _format_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Rows of strings as a text table: first column left-aligned, the others right-aligned."""
    rows = [list(header)] + [list(row) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    return "\n".join([line(rows[0]), "  ".join("-" * w for w in widths)] + [line(row) for row in rows[1:]])


def _describe_config(config: TrainConfig, dataset: str) -> str:
    """One line with the dataset, the hyperparameters, torch's version and its thread count."""
    epochs = f"{config.epochs} epoch{'s' if config.epochs != 1 else ''}"
    return (
        f"{dataset}, {epochs}, batch {config.batch_size}, Adam lr {config.lr:g}, seed {config.seed}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


def format_summary(result: TrainResult, config: TrainConfig, dataset: str) -> str:
    """The figures of one run, as a few aligned lines."""
    rows = [
        ("implementation", f"{result.implementation} ({_LAYER_NAMES.get(result.implementation, '?')})"),
        ("test accuracy", f"{100 * result.test_accuracy:.2f}%  ({result.test_correct}/{result.test_images})"),
        ("final loss", f"{result.final_loss:.4f}  (last training batch)"),
        ("test loss", f"{result.test_loss:.4f}"),
        ("time per epoch", f"{result.seconds_per_epoch:.2f} s"),
        ("images/s", f"{result.images_per_second:.0f}"),
    ]
    lines = [f"Summary ({_describe_config(config, dataset)})"]
    lines += [f"  {name:<15} {value}" for name, value in rows]
    return "\n".join(lines)


def _comparison_figures(results: Sequence[TrainResult]) -> dict[str, dict[str, float]]:
    """Per implementation: speed relative to unfold and the largest logit differences to torch (before/after)."""
    by_impl = {r.implementation: r for r in results}
    unfold, reference = by_impl.get("unfold"), by_impl.get("torch")
    figures: dict[str, dict[str, float]] = {}
    for r in results:
        figures[r.implementation] = {
            "speed_vs_unfold": r.images_per_second / unfold.images_per_second if unfold else math.nan,
            "max_abs_logit_diff_vs_torch_initial": max_abs_difference(
                r.initial_test_logits, reference.initial_test_logits if reference else None
            ),
            "max_abs_logit_diff_vs_torch": max_abs_difference(
                r.test_logits, reference.test_logits if reference else None
            ),
            "prediction_agreement_vs_torch": prediction_agreement(
                r.test_logits, reference.test_logits if reference else None
            ),
        }
    return figures


def format_comparison(results: Sequence[TrainResult], config: TrainConfig, dataset: str) -> str:
    """The comparison table of :func:`compare_implementations`, with the logit agreement spelled out below it."""
    figures = _comparison_figures(results)
    header = ["impl", "test acc", "final loss", "test loss", "s/epoch", "images/s", "vs unfold", "max|dlogit| vs torch"]
    rows = [
        [
            r.implementation,
            f"{100 * r.test_accuracy:.2f}%",
            f"{r.final_loss:.4f}",
            f"{r.test_loss:.4f}",
            f"{r.seconds_per_epoch:.2f}",
            f"{r.images_per_second:.0f}",
            f"{figures[r.implementation]['speed_vs_unfold']:.2f}x",
            f"{figures[r.implementation]['max_abs_logit_diff_vs_torch']:.2e}",
        ]
        for r in results
    ]
    lines = [
        f"Comparison ({_describe_config(config, dataset)})",
        _format_table(header, rows),
        "final loss: training loss of the last batch; test loss: mean over the test set; "
        "vs unfold: images/s relative to the unfold layer",
        "",
    ]
    by_impl = {r.implementation: r for r in results}
    if "torch" in by_impl:
        n = by_impl["torch"].test_images
        lines.append(f"Largest |logit difference| to torch.nn.Conv2d on the {n} test images, same initial weights:")
        for r in results:
            if r.implementation == "torch":
                continue
            f = figures[r.implementation]
            accuracy_gap = 100 * (r.test_accuracy - by_impl["torch"].test_accuracy)
            lines.append(
                f"  {r.implementation:<6} {f['max_abs_logit_diff_vs_torch_initial']:.2e} at the initial weights, "
                f"{f['max_abs_logit_diff_vs_torch']:.2e} after training; same class predicted for "
                f"{100 * f['prediction_agreement_vs_torch']:.2f}% of them; accuracy {accuracy_gap:+.2f} points"
            )
        lines.append("  (rounding differences compound during training; the initial-weights figure isolates the layer)")
    if dataset == "mnist" and "ext" in by_impl and "torch" in by_impl:
        lines.append(_seed_target_line(by_impl["ext"], by_impl["torch"]))
    return "\n".join(lines)


def _seed_target_line(ext: TrainResult, reference: TrainResult) -> str:
    """Whether ext meets the seed's target on MNIST: >= 97% and within 0.3 points of torch.nn.Conv2d."""
    ext_accuracy, gap = 100 * ext.test_accuracy, 100 * abs(ext.test_accuracy - reference.test_accuracy)
    met = ext_accuracy >= SEED_TARGET_ACCURACY and gap <= SEED_TARGET_GAP
    return (
        f"Seed target (MNIST, 1 epoch): ext >= {SEED_TARGET_ACCURACY:g}% and within {SEED_TARGET_GAP:g} points of "
        f"torch: {'met' if met else 'NOT met'} (ext {ext_accuracy:.2f}%, gap {gap:.2f} points)"
    )


def plot_losses(results: Sequence[TrainResult], path: Path, title: str) -> Path:
    """Write the training-loss curves of ``results`` (raw and smoothed) to the PNG ``path``.

    Raises:
        ImportError: matplotlib is not installed.
    """
    import matplotlib  # noqa: PLC0415 (optional dependency, only for --plot)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(figsize=(8, 4.5))
    window = max(1, max((len(r.losses) for r in results), default=0) // 50)
    for r in results:
        steps = torch.arange(1, len(r.losses) + 1, dtype=torch.float64)
        losses = torch.tensor(r.losses, dtype=torch.float64)
        smooth = losses.unfold(0, window, 1).mean(dim=1) if len(r.losses) >= window else losses[:0]
        (line,) = axes.plot(steps[window - 1 :].tolist(), smooth.tolist(), label=r.implementation)
        axes.plot(steps.tolist(), losses.tolist(), color=line.get_color(), alpha=0.2, linewidth=0.8)
    axes.set_xlabel("training step (batch)")
    axes.set_ylabel("cross-entropy loss")
    axes.set_yscale("log")
    axes.set_title(title, fontsize=9)
    axes.legend(title=f"mean of {window} batch{'es' if window > 1 else ''}")
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


# ------------------------------------------------------------------------------------------- command line


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m conv_ext.train``."""
    parser = argparse.ArgumentParser(
        prog="python -m conv_ext.train",
        description="Train the seed's MNIST CNN with conv_ext.Conv2d, the unfold layer or torch.nn.Conv2d. "
        "The defaults are the seed's hyperparameters.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--impl", choices=IMPLEMENTATIONS, default=None,
        help="convolution: ext = conv_ext.Conv2d (default), unfold = conv_ext.reference.UnfoldConv2d, "
        "torch = torch.nn.Conv2d",
    )
    mode.add_argument(
        "--compare", action="store_true",
        help="train all three implementations from the same initial weights and data order, and print a table",
    )
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="mnist", help="default: mnist")
    parser.add_argument(
        "--data-dir", type=Path, default=None,
        help="where the IDX files are (DIR, DIR/MNIST/raw or DIR/FashionMNIST/raw); default: ./data, then for "
        "fashion-mnist /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist)",
    )
    parser.add_argument(
        "--download", action="store_true",
        help="download the dataset with torchvision.datasets into --data-dir (default ./data) first",
    )
    parser.add_argument("--epochs", type=_positive_int, default=1, help="default: 1")
    parser.add_argument("--batch-size", type=_positive_int, default=100, help="default: 100")
    parser.add_argument("--lr", type=_positive_float, default=0.01, help="Adam learning rate; default: 0.01")
    parser.add_argument("--seed", type=int, default=0, help="seeds the initial weights and the data order; default: 0")
    parser.add_argument("--threads", type=_positive_int, default=None, help="torch.set_num_threads; default: torch's")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write every figure to this file")
    parser.add_argument("--plot", type=Path, default=None, metavar="PATH", help="loss curves as a PNG (matplotlib)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _run_json(results: Sequence[TrainResult], config: TrainConfig, args: argparse.Namespace, files: str) -> dict:
    """The content of --json: the run's settings and every figure of every result."""
    settings = {
        "dataset": args.dataset,
        "data_files": files,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "seed": config.seed,
    }
    if not args.compare:
        return {**settings, **results[0].to_json()}
    figures = _comparison_figures(results)
    return {**settings, "results": [{**r.to_json(), **figures[r.implementation]} for r in results]}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``python -m conv_ext.train`` with ``argv`` (default: sys.argv[1:]); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        parser.error("--plot needs matplotlib, which is not installed (pip install matplotlib)")
    for path in (args.json, args.plot):
        if path is not None and not path.parent.is_dir():
            parser.error(f"cannot write {path}: directory {path.parent} does not exist")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, progress=not args.no_progress
    )

    try:
        if args.download:
            print(f"downloaded into {download_dataset(args.dataset, args.data_dir)}")
        data = load_dataset(args.dataset, args.data_dir)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Data: {data.description}")

    if args.compare:
        results = compare_implementations(data, config)
        report = format_comparison(results, config, args.dataset)
    else:
        results = [train_model(args.impl or "ext", data, config)]
        report = format_summary(results[0], config, args.dataset)
    print(report)

    if args.json is not None:
        args.json.write_text(json.dumps(_run_json(results, config, args, data.description), indent=2) + "\n")
        print(f"figures written to {args.json}")
    if args.plot is not None:
        title = f"Training loss of the seed's CNN\n{_describe_config(config, args.dataset)}"
        print(f"loss curves written to {plot_losses(results, args.plot, title)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
