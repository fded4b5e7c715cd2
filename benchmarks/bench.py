"""The main job: four implementations of one convolution, side by side in one run.

    python -m benchmarks.bench [--shapes seed-conv1,seed-conv2] [--quick] [--device cpu|cuda] [--threads 1,2]
                               [--simd-isa avx2|avx512] [--out DIR] [--update-readme]
                               [--networks | --no-networks] [--network-names resnet18,...] [--batches 1,8,32]

The implementations, from the seed to the fastest:
  unfold   the seed's Python version: F.unfold + matmul, autograd's backward (conv_ext.reference)
  im2col   the textbook path in C++: im2col -> one GEMM per group -> bias, col2im for dx (CPU only: on CUDA it
           is what ext runs)
  ext      conv_ext.conv2d as it runs by default: the column-free CPU kernels where they apply
  torch    torch.nn.functional.conv2d (oneDNN / MKL on the CPU, cuDNN on a GPU)

Per shape: forward and forward+backward medians of each (interleaved rounds), the ratios, ext's share of the
machine's GEMM rate, bytes saved for backward, the peak column workspace (and peak CUDA memory on a GPU); then one
training step of the seed's CNN per implementation. Every output goes to --out (benchmarks/out, ignored by git);
--update-readme also keeps the run in benchmarks/results/ under its date and CPU, regenerates the index there and
puts the headline into README.md.

Then the networks benchmark (benchmarks/bench_networks.py): the convolutions of ResNet-18, ResNet-50, MobileNetV2,
EfficientNet-B0, VGG-11, ConvNeXt-T and the seed's CNN at batches 1, 8 and 32, contiguous and channels_last, ext
against torch, summed per network; its files are the suite's with -networks. --networks runs it alone,
--no-networks skips it. --threads takes a list: the suite and the networks run on the most threads, and the
networks' batch-1 layers on each count listed as well.
"""
import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import sys
from dataclasses import dataclass
from typing import Callable, ContextManager, Dict

import torch
import torch.nn.functional as F
from torch import nn

import conv_ext
from conv_ext import settings
from conv_ext.reference import UnfoldConv2d, conv2d_unfold
from examples.mnist.model import build_seed_cnn

from . import bench_networks, isa, report_networks
from .heap import pin_glibc_heap
from .memory import cuda_peak_bytes, saved_for_backward_bytes
from .networks import NETWORKS
from .report import format_markdown, save_results, update_readme, write_chart, write_run
from .shapes import SUITE, Shape
from .timing import gemm_flops_rate, interleaved_medians


@dataclass(frozen=True)
class Implementation:
    """One column of the report: a function with F.conv2d's signature, a module with nn.Conv2d's constructor, and
    the process-wide setting both run under (None: the defaults)."""
    conv2d: Callable[..., torch.Tensor]
    module: type
    setting: Callable[[], ContextManager[None]] = None

    def run(self, fn: Callable[[], object]) -> Callable[[], object]:
        """fn, called under this implementation's setting (the backward too, where fn runs one)."""
        if self.setting is None:
            return fn

        def in_setting():
            with self.setting():
                return fn()
        return in_setting


IMPLEMENTATIONS: Dict[str, Implementation] = {
    "unfold": Implementation(conv2d_unfold, UnfoldConv2d),
    "im2col": Implementation(conv_ext.conv2d, conv_ext.Conv2d, settings.im2col_gemm),
    "ext": Implementation(conv_ext.conv2d, conv_ext.Conv2d),
    "torch": Implementation(F.conv2d, nn.Conv2d),
}


def implementations(device: str) -> Dict[str, Implementation]:
    """The columns of a run: on CUDA the textbook path is what ext runs, so it has no column of its own."""
    return {n: impl for n, impl in IMPLEMENTATIONS.items() if not (device == "cuda" and n == "im2col")}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=",".join(SUITE), help=f"comma-separated names from: {', '.join(SUITE)}")
    parser.add_argument("--quick", action="store_true", help="few, short repeats (a smoke run)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None,
                        help="default: cuda when available and built, else cpu")
    parser.add_argument("--threads", default=None,
                        help="torch threads, one count or a comma-separated list (default: torch's own choice): the "
                             "run uses the most; the networks' batch-1 layers also run on each count listed")
    parser.add_argument("--simd-isa", choices=["none", "avx2", "avx512"], default=None,
                        help="ext's float32 CPU kernels on this instruction set (default: the best the CPU offers; "
                             "none: no SIMD kernel, the tiled path on ATen's GEMM); avx2 holds torch's CPU kernels "
                             "to AVX2 as well, as on an AVX2 CPU (benchmarks/isa.py)")
    parser.add_argument("--no-training", action="store_true", help="skip the seed-CNN training step")
    parser.add_argument("--default-heap", action="store_true",
                        help="leave glibc's heap trimming as it is (by default the run pins the heap: see "
                             "benchmarks/heap.py)")
    parser.add_argument("--no-tf32", action="store_true",
                        help="on CUDA, torch.backends.cudnn.allow_tf32 = False: torch's cuDNN convolutions in full "
                             "float32 like ext's GEMMs (by default cuDNN runs float32 convolutions in TF32)")
    networks = parser.add_mutually_exclusive_group()
    networks.add_argument("--networks", action="store_true", help="only the networks benchmark (no suite)")
    networks.add_argument("--no-networks", action="store_true", help="only the suite (no networks benchmark)")
    parser.add_argument("--network-names", default=None,
                        help=f"comma-separated networks from: {', '.join(NETWORKS)} (default: all; with --quick: "
                             f"{', '.join(bench_networks.QUICK_NETWORKS)})")
    parser.add_argument("--batches", default=None,
                        help="the networks' batch sizes, comma-separated (default: "
                             f"{','.join(map(str, bench_networks.DEFAULT_BATCHES))}; with --quick: 1; add 64 where "
                             "time allows)")
    parser.add_argument("--no-models", action="store_true",
                        help="skip the networks' whole models (the seed's CNN, torchvision's where it imports)")
    parser.add_argument("--out", default="benchmarks/out",
                        help="folder for latest.json, latest.md and latest.png, and latest-networks.* ('' writes "
                             "none)")
    parser.add_argument("--update-readme", action="store_true",
                        help="also keep the run in benchmarks/results/ (named by date and CPU), regenerate "
                             "benchmarks/results/README.md and put the headline into README.md")
    args = parser.parse_args(argv)
    args.threads = positive_ints(parser, "--threads", args.threads) if args.threads else None
    args.batches = positive_ints(parser, "--batches", args.batches or ",".join(
        map(str, (1,) if args.quick else bench_networks.DEFAULT_BATCHES)))
    args.network_names = [n.strip() for n in (args.network_names or ",".join(
        bench_networks.QUICK_NETWORKS if args.quick else NETWORKS)).split(",") if n.strip()]
    unknown = [name for name in args.network_names if name not in NETWORKS]
    if unknown:
        parser.error(f"unknown network(s) {', '.join(unknown)}; choose from {', '.join(NETWORKS)}")
    args.shapes = [name.strip() for name in args.shapes.split(",") if name.strip()]
    unknown = [name for name in args.shapes if name not in SUITE]
    if unknown:
        parser.error(f"unknown shape(s) {', '.join(unknown)}; choose from {', '.join(SUITE)}")
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() and conv_ext.cuda_built() else "cpu"
    elif args.device == "cuda" and not (torch.cuda.is_available() and conv_ext.cuda_built()):
        parser.error("--device cuda needs a GPU and a CUDA build of conv_ext (conv_ext.cuda_built())")
    offered = {"avx512": ("none", "avx2", "avx512"), "avx2": ("none", "avx2")}.get(settings.cpu_simd_isa(), ("none",))
    if args.simd_isa and args.simd_isa not in offered:
        parser.error(f"--simd-isa {args.simd_isa}: this CPU's best instruction set is {settings.cpu_simd_isa()}")
    return args


def positive_ints(parser: argparse.ArgumentParser, option: str, text: str) -> list:
    """A comma-separated list of positive integers, in the order given without repeats ("1,2" -> [1, 2])."""
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        parser.error(f"{option} {text!r}: expected positive integers separated by commas, e.g. 1,2")
    if not values or min(values) < 1:
        parser.error(f"{option} {text!r}: expected positive integers separated by commas, e.g. 1,2")
    return list(dict.fromkeys(values))


def bench_shape(shape: Shape, device: str, rounds: int, seconds: float, gemm_rate: float) -> dict:
    torch.manual_seed(0)
    input = torch.randn(shape.batch, shape.in_channels, *shape.size, device=device)
    weight = torch.randn(shape.out_channels, shape.in_channels // shape.groups, shape.kernel, shape.kernel,
                         device=device)
    bias = torch.randn(shape.out_channels, device=device)
    leaves = [t.clone().requires_grad_() for t in (input, weight, bias)]
    kwargs = shape.conv_kwargs()
    grad_output = torch.randn(input.shape[0], shape.out_channels, *shape.output_size(), device=device)
    impls = implementations(device)

    def forward(impl: Implementation):
        def run():
            with torch.no_grad():
                return impl.conv2d(input, weight, bias, **kwargs)
        return impl.run(run)

    def forward_backward(impl: Implementation):
        def run():
            output = impl.conv2d(*leaves, **kwargs)
            torch.autograd.backward(output, grad_output, inputs=leaves)
        return impl.run(run)

    fwd = interleaved_medians({n: forward(impl) for n, impl in impls.items()}, device, rounds, seconds)
    fwd_bwd = interleaved_medians({n: forward_backward(impl) for n, impl in impls.items()}, device, rounds,
                                  seconds)
    memory = {}
    for name, impl in impls.items():
        memory[name] = {"saved_for_backward_bytes": saved_for_backward_bytes(
            impl.run(lambda impl=impl: impl.conv2d(*leaves, **kwargs)))}
        if impl.conv2d is conv_ext.conv2d:  # the column workspace is the extension's own
            conv_ext.reset_peak_workspace_bytes()
            forward_backward(impl)()
            memory[name]["peak_workspace_bytes"] = conv_ext.peak_workspace_bytes()
        if device == "cuda":
            memory[name]["cuda_peak_bytes"] = cuda_peak_bytes(forward_backward(impl))
    flops = shape.forward_flops()
    result = {
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
    if "im2col" in impls:
        result["im2col_speedup_vs_unfold"] = fwd_bwd["unfold"] / fwd_bwd["im2col"]
    return result


TRAINING_ROUNDS_FACTOR = 3


def bench_training_step(device: str, rounds: int, seconds: float, batch: int = 100) -> dict:
    """One step of the seed's CNN (forward, cross-entropy, backward, Adam) per implementation, same weights."""
    torch.manual_seed(0)
    initial_state = build_seed_cnn(nn.Conv2d).state_dict()
    images = torch.rand(batch, 1, 28, 28, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)

    def step_fn(impl: Implementation):
        model = build_seed_cnn(impl.module).to(device)
        model.load_state_dict(initial_state)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

        def step():
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
        return impl.run(step)

    medians = interleaved_medians({n: step_fn(impl) for n, impl in implementations(device).items()}, device,
                                  rounds, seconds)
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


def cpu_family_model() -> str:
    """x86's CPU family and model numbers ("family 6 model 167"): the model name alone ("AMD EPYC") does not
    tell one generation from another. Empty where /proc/cpuinfo does not say."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() in ("cpu family", "model") and key.strip() not in fields:
                    fields[key.strip()] = value.strip()
                if not line.strip():
                    break
    except OSError:
        return ""
    return f"family {fields['cpu family']} model {fields['model']}" if len(fields) == 2 else ""


def geometric_mean(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main(argv=None) -> dict:
    """Runs the suite (unless --networks) and the networks benchmark (unless --no-networks). Returns the suite's
    results, with the networks' under "networks" (only those where --networks)."""
    args = parse_args(argv)
    with settings.simd_isa(args.simd_isa) if args.simd_isa else contextlib.nullcontext():
        results = {} if args.networks else run(args)
        if not args.no_networks:
            results["networks"] = run_networks(args)
        return results


def apply_settings(args: argparse.Namespace) -> None:
    """The process-wide settings the run is measured under: torch's thread count (the most of --threads), cuDNN's
    TF32."""
    if args.threads:
        torch.set_num_threads(max(args.threads))
    if args.no_tf32:
        torch.backends.cudnn.allow_tf32 = False


def run_meta(args: argparse.Namespace, heap_pinned: bool) -> dict:
    """What a run's figures were measured on and under."""
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": args.device,
            "machine": machine_name(args.device),
            "cpu_family_model": cpu_family_model() if args.device == "cpu" else None,
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "quick": args.quick, "glibc_heap_pinned": heap_pinned,
            "ext_simd_isa": settings.current_simd_isa() if args.device == "cpu" else None,
            "torch_isa_limit": isa.torch_isa_limit() if args.device == "cpu" else None,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability() if args.device == "cpu" else None,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32 if args.device == "cuda" else None}


def run_networks(args: argparse.Namespace) -> dict:
    """The networks benchmark under the run's settings; writes --out/latest-networks.* and, with --update-readme,
    keeps the run in benchmarks/results/ as <stem>-networks.* and puts its headline into README.md."""
    apply_settings(args)
    heap_pinned = not args.default_heap and pin_glibc_heap()
    rounds, seconds = ((bench_networks.QUICK_ROUNDS, bench_networks.QUICK_SECONDS) if args.quick
                       else (bench_networks.ROUNDS, bench_networks.SECONDS))
    distinct = bench_networks.distinct_layers([NETWORKS[n] for n in args.network_names])
    steps = len(args.batches) * len(distinct) + (0 if args.no_models else len(args.network_names))
    with progress_bar("networks", steps) as advance:
        results = bench_networks.run(args.network_names, args.batches, args.threads or [torch.get_num_threads()],
                                     implementations(args.device), args.device, rounds, seconds,
                                     models=not args.no_models, meta=run_meta(args, heap_pinned), progress=advance)
    markdown = report_networks.format_markdown(results)
    print(markdown)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        write_run(results, os.path.join(args.out, "latest-networks"), report_networks.format_markdown,
                  report_networks.write_chart)
    if args.update_readme:
        saved = save_results(results, "benchmarks/results", report_networks.networks_stem(results),
                             report_networks.format_markdown, report_networks.write_chart)
        report_networks.update_readme("README.md", results, saved)
    return results


@contextlib.contextmanager
def progress_bar(label: str, steps: int):
    """A tqdm bar of `steps` (where tqdm is installed); yields advance(postfix)."""
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a nicety
        yield lambda _: None
        return
    bar = tqdm(total=steps, desc=label, unit="step")

    def advance(postfix: str) -> None:
        bar.set_postfix_str(postfix)
        bar.update(1)
    try:
        yield advance
    finally:
        bar.close()


def run(args: argparse.Namespace) -> dict:
    """The suite: each shape, the GEMM rate and the training step; writes --out/latest.* and, with
    --update-readme, keeps the run and puts its headline into README.md."""
    apply_settings(args)
    heap_pinned = not args.default_heap and pin_glibc_heap()
    rounds, seconds = (3, 0.02) if args.quick else (9, 0.2)
    steps = len(args.shapes) + 1 + (0 if args.no_training else 1)
    with progress_bar("benchmark", steps) as advance:
        gemm_rate = gemm_flops_rate(args.device, 2048 if args.device == "cpu" else 8192, rounds, seconds)
        advance("gemm")
        results = {"meta": dict(run_meta(args, heap_pinned), rounds=rounds), "gemm_flops_per_second": gemm_rate,
                   "shapes": {}}
        for name in args.shapes:
            results["shapes"][name] = bench_shape(SUITE[name], args.device, rounds, seconds, gemm_rate)
            advance(name)
        if not args.no_training:
            # Three times the rounds: the step's ratio is the headline target, and on a shared machine its median
            # over 9-15 rounds moved 0.97-1.08 between runs of the same code.
            results["training_step"] = bench_training_step(args.device, TRAINING_ROUNDS_FACTOR * rounds, seconds)
            advance("training")
    shapes = results["shapes"].values()
    results["geometric_mean"] = {
        "ext_speedup_vs_unfold": geometric_mean(s["ext_speedup_vs_unfold"] for s in shapes),
        "ext_over_torch": geometric_mean(s["ext_over_torch"] for s in shapes),
        "torch_speedup_vs_unfold": geometric_mean(
            s["forward_backward_seconds"]["unfold"] / s["forward_backward_seconds"]["torch"] for s in shapes)}
    if all("im2col_speedup_vs_unfold" in s for s in shapes):
        results["geometric_mean"]["im2col_speedup_vs_unfold"] = geometric_mean(
            s["im2col_speedup_vs_unfold"] for s in shapes)

    markdown = format_markdown(results)
    print(markdown)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "latest.json"), "w") as f:
            json.dump(results, f, indent=2)
        with open(os.path.join(args.out, "latest.md"), "w") as f:
            f.write(markdown + "\n")
        write_chart(results, os.path.join(args.out, "latest.png"))
    if args.update_readme:
        saved = save_results(results, "benchmarks/results")
        update_readme("README.md", results, saved)
    return results


if __name__ == "__main__":
    isa.reexec_with_torch_limit("benchmarks.bench", sys.argv[1:])
    main()
