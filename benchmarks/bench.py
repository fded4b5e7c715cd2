"""The main job: conv_ext against the seed's unfold version and torch's own conv2d, side by side in one run.

    python -m benchmarks.bench [--shapes seed-conv1,seed-conv2] [--quick] [--device cpu|cuda] [--threads N]
                               [--json PATH] [--png PATH] [--markdown PATH] [--update-readme]

Per shape: forward and forward+backward medians of each implementation (interleaved rounds), the ratios,
the ext's share of the machine's GEMM rate, bytes saved for backward, the ext's peak column workspace (and
peak CUDA memory on a GPU); then one training step of the seed's CNN per implementation.
"""
import argparse
import contextlib
import datetime
import json
import math
import os
import platform
from typing import Callable, Dict

import torch
import torch.nn.functional as F
from torch import nn

import conv_ext
from conv_ext import settings
from conv_ext.reference import UnfoldConv2d, conv2d_unfold
from examples.mnist.model import build_seed_cnn

from .heap import pin_glibc_heap
from .memory import cuda_peak_bytes, saved_for_backward_bytes
from .report import format_markdown, update_readme, write_chart
from .shapes import SUITE, Shape
from .timing import gemm_flops_rate, interleaved_medians

IMPLEMENTATIONS: Dict[str, Callable[..., torch.Tensor]] = {
    "ext": conv_ext.conv2d, "unfold": conv2d_unfold, "torch": F.conv2d}
MODULES = {"ext": conv_ext.Conv2d, "unfold": UnfoldConv2d, "torch": nn.Conv2d}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=",".join(SUITE), help=f"comma-separated names from: {', '.join(SUITE)}")
    parser.add_argument("--quick", action="store_true", help="few, short repeats (a smoke run)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None,
                        help="default: cuda when available and built, else cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--aten-gemm", action="store_true",
                        help="ext's float32 CPU GEMMs through ATen instead of its SIMD kernels (AVX-512 or AVX2), for "
                             "comparison")
    parser.add_argument("--no-training", action="store_true", help="skip the seed-CNN training step")
    parser.add_argument("--default-heap", action="store_true",
                        help="leave glibc's heap trimming as it is (by default the run pins the heap: see "
                             "benchmarks/heap.py)")
    parser.add_argument("--no-tf32", action="store_true",
                        help="on CUDA, torch.backends.cudnn.allow_tf32 = False: torch's cuDNN convolutions in full "
                             "float32 like ext's GEMMs (by default cuDNN runs float32 convolutions in TF32)")
    parser.add_argument("--json", default="benchmarks/results/latest.json", help="every figure, as JSON")
    parser.add_argument("--png", default="benchmarks/results/latest.png", help="chart of the ratios")
    parser.add_argument("--markdown", default="benchmarks/results/latest.md", help="the tables, as Markdown")
    parser.add_argument("--update-readme", action="store_true", help="put the tables into README.md")
    args = parser.parse_args(argv)
    args.shapes = [name.strip() for name in args.shapes.split(",") if name.strip()]
    unknown = [name for name in args.shapes if name not in SUITE]
    if unknown:
        parser.error(f"unknown shape(s) {', '.join(unknown)}; choose from {', '.join(SUITE)}")
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() and conv_ext.cuda_built() else "cpu"
    elif args.device == "cuda" and not (torch.cuda.is_available() and conv_ext.cuda_built()):
        parser.error("--device cuda needs a GPU and a CUDA build of conv_ext (conv_ext.cuda_built())")
    return args


def bench_shape(shape: Shape, device: str, rounds: int, seconds: float, gemm_rate: float) -> dict:
    torch.manual_seed(0)
    input = torch.randn(shape.batch, shape.in_channels, *shape.size, device=device)
    weight = torch.randn(shape.out_channels, shape.in_channels // shape.groups, shape.kernel, shape.kernel,
                         device=device)
    bias = torch.randn(shape.out_channels, device=device)
    leaves = [t.clone().requires_grad_() for t in (input, weight, bias)]
    kwargs = shape.conv_kwargs()
    grad_output = torch.randn(input.shape[0], shape.out_channels, *shape.output_size(), device=device)

    def forward(conv):
        def run():
            with torch.no_grad():
                return conv(input, weight, bias, **kwargs)
        return run

    def forward_backward(conv):
        def run():
            output = conv(*leaves, **kwargs)
            torch.autograd.backward(output, grad_output, inputs=leaves)
        return run

    fwd = interleaved_medians({n: forward(c) for n, c in IMPLEMENTATIONS.items()}, device, rounds, seconds)
    fwd_bwd = interleaved_medians({n: forward_backward(c) for n, c in IMPLEMENTATIONS.items()}, device, rounds,
                                  seconds)
    memory = {n: {"saved_for_backward_bytes": saved_for_backward_bytes(lambda c=c: c(*leaves, **kwargs))}
              for n, c in IMPLEMENTATIONS.items()}
    conv_ext.reset_peak_workspace_bytes()
    forward_backward(conv_ext.conv2d)()
    memory["ext"]["peak_workspace_bytes"] = conv_ext.peak_workspace_bytes()
    if device == "cuda":
        for n, c in IMPLEMENTATIONS.items():
            memory[n]["cuda_peak_bytes"] = cuda_peak_bytes(forward_backward(c))
    flops = shape.forward_flops()
    return {
        "shape": shape.as_dict(), "description": shape.describe(), "forward_flops": flops,
        "forward_seconds": fwd, "forward_backward_seconds": fwd_bwd,
        "ext_speedup_vs_unfold": fwd_bwd["unfold"] / fwd_bwd["ext"],
        "ext_over_torch": fwd_bwd["ext"] / fwd_bwd["torch"],
        "ext_forward_speedup_vs_unfold": fwd["unfold"] / fwd["ext"],
        "ext_forward_over_torch": fwd["ext"] / fwd["torch"],
        "ext_forward_gemm_share": flops / fwd["ext"] / gemm_rate,
        "ext_forward_backward_gemm_share": 3 * flops / fwd_bwd["ext"] / gemm_rate,
        "memory": memory,
        "workspace_limit_bytes": conv_ext.workspace_limit_bytes(),
    }


TRAINING_ROUNDS_FACTOR = 3


def bench_training_step(device: str, rounds: int, seconds: float, batch: int = 100) -> dict:
    """One step of the seed's CNN (forward, cross-entropy, backward, Adam) per implementation, same weights."""
    torch.manual_seed(0)
    initial_state = build_seed_cnn(nn.Conv2d).state_dict()
    images = torch.rand(batch, 1, 28, 28, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)

    def step_fn(conv_cls):
        model = build_seed_cnn(conv_cls).to(device)
        model.load_state_dict(initial_state)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

        def step():
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
        return step

    medians = interleaved_medians({n: step_fn(cls) for n, cls in MODULES.items()}, device, rounds, seconds)
    return {"batch": batch, "rounds": rounds, "step_seconds": medians,
            "images_per_second": {n: batch / s for n, s in medians.items()},
            "ext_over_torch": medians["ext"] / medians["torch"],
            "ext_speedup_vs_unfold": medians["unfold"] / medians["ext"]}


def machine_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def geometric_mean(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main(argv=None) -> dict:
    args = parse_args(argv)
    with settings.aten_gemm() if args.aten_gemm else contextlib.nullcontext():
        return run(args)


def apply_settings(args: argparse.Namespace) -> None:
    """The process-wide settings the run is measured under: torch's thread count, cuDNN's TF32."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.no_tf32:
        torch.backends.cudnn.allow_tf32 = False


def run(args: argparse.Namespace) -> dict:
    apply_settings(args)
    heap_pinned = not args.default_heap and pin_glibc_heap()
    rounds, seconds = (3, 0.02) if args.quick else (9, 0.2)
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a nicety
        tqdm = None
    steps = len(args.shapes) + 1 + (0 if args.no_training else 1)
    bar = tqdm(total=steps, desc="benchmark", unit="step") if tqdm else None

    def advance(label: str) -> None:
        if bar:
            bar.set_postfix_str(label)
            bar.update(1)

    gemm_rate = gemm_flops_rate(args.device, 2048 if args.device == "cpu" else 8192, rounds, seconds)
    advance("gemm")
    results = {
        "meta": {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": args.device,
                 "machine": machine_name(args.device), "date": datetime.datetime.now().isoformat(timespec="seconds"),
                 "quick": args.quick, "rounds": rounds, "glibc_heap_pinned": heap_pinned,
                 "ext_cpu_gemm": settings.cpu_gemm() if args.device == "cpu" else None,
                 "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32 if args.device == "cuda" else None},
        "gemm_flops_per_second": gemm_rate, "shapes": {}}
    for name in args.shapes:
        results["shapes"][name] = bench_shape(SUITE[name], args.device, rounds, seconds, gemm_rate)
        advance(name)
    if not args.no_training:
        # Three times the rounds: the step's ratio is the headline target, and on a shared machine its median
        # over 9-15 rounds moved 0.97-1.08 between runs of the same code.
        results["training_step"] = bench_training_step(args.device, TRAINING_ROUNDS_FACTOR * rounds, seconds)
        advance("training")
    if bar:
        bar.close()
    shapes = results["shapes"].values()
    results["geometric_mean"] = {
        "ext_speedup_vs_unfold": geometric_mean(s["ext_speedup_vs_unfold"] for s in shapes),
        "ext_over_torch": geometric_mean(s["ext_over_torch"] for s in shapes),
        "torch_speedup_vs_unfold": geometric_mean(
            s["forward_backward_seconds"]["unfold"] / s["forward_backward_seconds"]["torch"] for s in shapes)}

    markdown = format_markdown(results)
    print(markdown)
    for path in (args.json, args.png, args.markdown):
        if path and os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown + "\n")
    if args.png:
        write_chart(results, args.png)
    if args.update_readme:
        update_readme("README.md", markdown, args.png)
    return results


if __name__ == "__main__":
    main()
