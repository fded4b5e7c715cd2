"""Reproduce the seed: train its MNIST CNN with conv_ext.Conv2d, the unfold reference or torch.nn.Conv2d.

The seed (the blog post "Convolutional Layer from Scratch") trains examples/mnist/model.py's network for one epoch,
Adam (lr 0.01), batches of 100, inputs scaled to [0, 1], and reports about 97% test accuracy on MNIST. Every run
here starts from the weights torch.nn.Conv2d draws under --seed and sees the images in the order --seed gives, so
implementations differ only by their convolution. From the repository root:

    python -m examples.mnist.train --compare --dataset fashion-mnist     # the three, side by side
    python -m examples.mnist.train --dataset mnist --data-dir DIR        # conv_ext.Conv2d alone

The report goes to the terminal; the figures (JSON) and the loss curves (PNG, with matplotlib) to --out.
"""
import argparse
import json
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

import conv_ext
from conv_ext.reference import UnfoldConv2d

from .data import DATASETS, Dataset, DatasetError, load_dataset
from .model import build_seed_cnn

IMPLEMENTATIONS = {"ext": conv_ext.Conv2d, "unfold": UnfoldConv2d, "torch": nn.Conv2d}
BATCH_SIZE, LEARNING_RATE = 100, 0.01  # the seed's
SEED_TARGET_ACCURACY, SEED_TARGET_GAP = 97.0, 0.3  # MNIST, one epoch: percent, and points from nn.Conv2d
DEFAULT_OUT = Path(__file__).resolve().parent / "out"  # ignored by git


@dataclass
class Run:
    """What training one implementation measured."""

    impl: str
    losses: List[float]  # every batch's, in order
    seconds: float  # the training loops, evaluation excluded
    images: int  # images trained on, all epochs
    initial_logits: torch.Tensor  # on the test set, before training
    logits: torch.Tensor  # on the test set, after training
    accuracy: float
    test_loss: float


@torch.no_grad()
def _logits(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model(chunk) for chunk in inputs.split(1000)])


def train(impl: str, data: Dataset, state_dict: Dict[str, torch.Tensor], epochs: int, seed: int) -> Run:
    """Trains the seed's network with the convolution of ``impl`` from ``state_dict``, the images in the order that
    ``seed`` gives, and evaluates it on the test split."""
    model = build_seed_cnn(IMPLEMENTATIONS[impl])
    model.load_state_dict(state_dict)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    # uint8 images -> N x 1 x 28 x 28 in [0, 1], as the seed
    train_inputs, test_inputs = (x.unsqueeze(1).float().div(255) for x in (data.train_images, data.test_images))
    initial_logits = _logits(model, test_inputs)
    order = torch.Generator().manual_seed(seed)
    losses: List[float] = []
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        for batch in torch.randperm(len(train_inputs), generator=order).split(BATCH_SIZE):
            loss = F.cross_entropy(model(train_inputs[batch]), data.train_labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        print(f"{impl}: epoch {epoch}/{epochs}, loss of the last batch {losses[-1]:.4f}", file=sys.stderr)
    seconds = time.perf_counter() - start
    logits = _logits(model, test_inputs)
    return Run(impl, losses, seconds, epochs * len(train_inputs), initial_logits, logits,
               accuracy=(logits.argmax(1) == data.test_labels).double().mean().item(),
               test_loss=F.cross_entropy(logits, data.test_labels).item())


def figures(runs: Sequence[Run]) -> Dict[str, Dict[str, float]]:
    """Per implementation: images/s and, when those were run, the speed relative to unfold and the agreement with
    nn.Conv2d's logits (the largest difference before and after training, the share of the same predictions)."""
    by_impl = {r.impl: r for r in runs}
    unfold, reference = by_impl.get("unfold"), by_impl.get("torch")
    result = {}
    for r in runs:
        f = result[r.impl] = {"images_per_second": r.images / r.seconds}
        if unfold is not None:
            f["speed_vs_unfold"] = f["images_per_second"] * unfold.seconds / unfold.images
        if reference is not None:
            f["max_abs_logit_diff_vs_torch_initial"] = (r.initial_logits - reference.initial_logits).abs().max().item()
            f["max_abs_logit_diff_vs_torch"] = (r.logits - reference.logits).abs().max().item()
            same_class = r.logits.argmax(1) == reference.logits.argmax(1)
            f["prediction_agreement_vs_torch"] = same_class.double().mean().item()
    return result


def report(runs: Sequence[Run], title: str, dataset: str) -> str:
    """The table of the runs, their agreement with nn.Conv2d and, on MNIST, whether ext meets the seed's target."""
    fig = figures(runs)
    rows = [["impl", "test acc", "final loss", "test loss", "images/s", "vs unfold"]]
    rows += [[r.impl, f"{100 * r.accuracy:.2f}%", f"{r.losses[-1]:.4f}", f"{r.test_loss:.4f}",
              f"{fig[r.impl]['images_per_second']:.0f}",
              f"{fig[r.impl]['speed_vs_unfold']:.2f}x" if "unfold" in fig else "-"] for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [title] + ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                       for row in rows]
    lines.append("final loss: the last training batch's; test loss: the mean over the test set")
    by_impl = {r.impl: r for r in runs}
    if "torch" in by_impl and len(runs) > 1:
        torch_run = by_impl["torch"]
        lines.append(f"Largest |logit difference| to torch.nn.Conv2d on the {len(torch_run.logits)} test images, "
                     "same initial weights:")
        for r in runs:
            if r is not torch_run:
                f = fig[r.impl]
                lines.append(f"  {r.impl:<6} {f['max_abs_logit_diff_vs_torch_initial']:.2e} at the initial weights, "
                             f"{f['max_abs_logit_diff_vs_torch']:.2e} after training; same class predicted for "
                             f"{100 * f['prediction_agreement_vs_torch']:.2f}% of them; accuracy "
                             f"{100 * (r.accuracy - torch_run.accuracy):+.2f} points")
        lines.append("  (rounding differences compound during training; the initial-weights figure isolates the layer)")
    if dataset == "mnist" and "ext" in by_impl and "torch" in by_impl:
        ext, gap = 100 * by_impl["ext"].accuracy, 100 * abs(by_impl["ext"].accuracy - by_impl["torch"].accuracy)
        met = ext >= SEED_TARGET_ACCURACY and gap <= SEED_TARGET_GAP
        lines.append(f"Seed target (MNIST, 1 epoch): ext >= {SEED_TARGET_ACCURACY:g}% and within {SEED_TARGET_GAP:g} "
                     f"points of torch: {'met' if met else 'NOT met'} (ext {ext:.2f}%, gap {gap:.2f} points)")
    return "\n".join(lines)


def plot_losses(runs: Sequence[Run], path: Path, title: str) -> None:
    """The training-loss curves (each batch's, faint, and a moving mean) as a PNG."""
    import matplotlib  # noqa: PLC0415 (optional: asked for only when installed)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(figsize=(8, 4.5))
    window = max(1, len(runs[0].losses) // 50)
    for r in runs:
        losses = torch.tensor(r.losses, dtype=torch.float64)
        (line,) = axes.plot(range(window, len(losses) + 1), losses.unfold(0, window, 1).mean(1), label=r.impl)
        axes.plot(range(1, len(losses) + 1), losses, color=line.get_color(), alpha=0.2, linewidth=0.8)
    axes.set(xlabel="training step (batch)", ylabel="cross-entropy loss", yscale="log")
    axes.set_title(textwrap.fill(title, 100), fontsize=9)  # the run's description, on as many lines as it needs
    axes.legend(title=f"mean of {window} batches")
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m examples.mnist.train``."""
    parser = argparse.ArgumentParser(prog="python -m examples.mnist.train", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--compare", action="store_true", help="train ext, unfold and torch from the same start")
    mode.add_argument("--impl", choices=IMPLEMENTATIONS, help="train this one alone (default: ext)")
    parser.add_argument("--dataset", choices=DATASETS, default="mnist", help="default: mnist")
    parser.add_argument("--data-dir", type=Path, help="the directory of the four IDX files (default for "
                        "fashion-mnist: /usr/share/datasets/fashion-mnist, Debian's dataset-fashion-mnist)")
    parser.add_argument("--epochs", type=_positive_int, default=1, help="default: 1, as the seed")
    parser.add_argument("--seed", type=int, default=0, help="seeds the initial weights and the data order (default 0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"where to write the figures and the curves (default {DEFAULT_OUT})")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line ``argv`` (default: sys.argv[1:]); returns the exit status."""
    args = build_parser().parse_args(argv)
    args.impl = args.impl or "ext"
    try:
        data = load_dataset(args.dataset, args.data_dir)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    torch.manual_seed(args.seed)
    state_dict = build_seed_cnn(nn.Conv2d).state_dict()
    runs = [train(impl, data, state_dict, args.epochs, args.seed)
            for impl in (IMPLEMENTATIONS if args.compare else [args.impl])]
    title = (f"{data.source}: {len(data.train_images)} training and {len(data.test_images)} test images, "
             f"{args.epochs} epoch(s), batch {BATCH_SIZE}, Adam lr {LEARNING_RATE}, seed {args.seed}, "
             f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(report(runs, title, args.dataset))

    # The names of benchmarks/results' copies of a --compare run: --out benchmarks/results refreshes them.
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.dataset.replace("-", "_") + ("" if args.compare else f"_{args.impl}")
    json_path, png_path = args.out / f"{stem}{'_compare' if args.compare else ''}.json", args.out / f"{stem}_loss.png"
    fig = figures(runs)
    results = [{"implementation": r.impl, "test_accuracy": r.accuracy, "final_loss": r.losses[-1],
                "test_loss": r.test_loss, "seconds": r.seconds, "losses": r.losses, **fig[r.impl]} for r in runs]
    json_path.write_text(json.dumps({"title": title, "epochs": args.epochs, "seed": args.seed, "results": results},
                                    indent=2) + "\n")
    print(f"figures written to {json_path}")
    try:
        plot_losses(runs, png_path, title)
        print(f"loss curves written to {png_path}")
    except ImportError:
        print("matplotlib is not installed: no loss curves (pip install matplotlib)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
