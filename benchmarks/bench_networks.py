"""The networks benchmark: the convolutions of real architectures (benchmarks/networks.py), ext against torch.

Each distinct layer runs once per batch size and memory format (contiguous, channels_last: input, weight and
gradient alike): forward (no grad) and forward+backward (input and weight gradients) of ext and torch, as
interleaved medians of a few rounds, without torch.utils.benchmark's warm-up calls before each measurement (they
would triple the time of every layer that outlasts a measurement); then the forward of im2col + GEMM interleaved
with ext's forward again (the floor check), apart, so that its columns do not evict what ext's measurement beside
torch reads. A network's figure is the sum over its convolutions, each layer's time weighted by how many times the
network uses it. At batch 1, where several thread counts are given, ext and torch also run on each of them in the
same rounds (the scaling).
Whole models (the seed's CNN; torchvision's where it imports), converted with conv_ext.convert against the same
model unconverted, at the batches up to MODEL_MAX_BATCH.

The targets (reported, not asserted): per network and batch, ext's total convolution time <= torch's for the
forward and, at batch >= 8, for forward+backward; per layer, ext <= LAYER_TARGET x torch for both, and ext's
forward no slower than im2col + GEMM; at batch 1, a layer on the most threads takes <= SCALING_TARGET x its
1-thread time wherever torch's does.
"""
import copy
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

import conv_ext
from examples.mnist.model import build_seed_cnn

from .networks import NETWORKS, Network, at_batch, torchvision_model, without_batch
from .shapes import Shape
from .timing import interleaved_medians

FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
DEFAULT_BATCHES = (1, 8, 32)
QUICK_NETWORKS = ("seed_cnn", "resnet18")
MODEL_MAX_BATCH = 8
WORST_LAYERS = 5
NETWORK_TARGET, LAYER_TARGET, SCALING_TARGET = 1.0, 1.25, 0.6
TRAINING_TARGET_MIN_BATCH = 8
# Rounds and seconds per measurement: few, short ones (a network run times hundreds of layers).
ROUNDS, SECONDS = 3, 0.02
QUICK_ROUNDS, QUICK_SECONDS = 1, 0.002


def _tensors(shape: Shape, memory_format: torch.memory_format, device: str):
    """Input, weight (no bias: a batch norm follows most of these convolutions) and the gradient of the output,
    all in memory_format, as a network in that format hands them to the convolution."""
    torch.manual_seed(0)
    input = torch.randn(shape.batch, shape.in_channels, *shape.size, device=device)
    weight = torch.randn(shape.out_channels, shape.in_channels // shape.groups, shape.kernel, shape.kernel,
                         device=device)
    grad_output = torch.randn(shape.batch, shape.out_channels, *shape.output_size(), device=device)
    return tuple(t.contiguous(memory_format=memory_format) for t in (input, weight, grad_output))


def kernels(shape: Shape, memory_format: torch.memory_format) -> List[str]:
    """The CPU kernels ext runs for the layer: [forward, input gradient, weight gradient]."""
    input, weight, _ = _tensors(shape, memory_format, "cpu")
    choices = conv_ext.explain(input, weight, None, shape.stride, shape.padding, shape.dilation, shape.groups)
    return [choice.kernel for choice in choices.values()]


def time_layer(shape: Shape, memory_format: torch.memory_format, impls: Dict[str, object], device: str,
               rounds: int, seconds: float, thread_counts: Sequence[int] = ()) -> dict:
    """Forward medians of every implementation in impls but unfold (ext and torch interleaved, the others apart),
    forward+backward medians of ext and torch; on each of thread_counts besides torch's current one, ext and torch
    again, both ways, in the same rounds."""
    input, weight, grad_output = _tensors(shape, memory_format, device)
    leaves = (input.clone().requires_grad_(), weight.clone().requires_grad_())
    kwargs = shape.conv_kwargs()

    def forward(impl):
        def run():
            with torch.no_grad():
                return impl.conv2d(input, weight, None, **kwargs)
        return impl.run(run)

    def forward_backward(impl):
        def run():
            torch.autograd.backward(impl.conv2d(*leaves, None, **kwargs), grad_output, inputs=leaves)
        return impl.run(run)

    others = [t for t in thread_counts if t != torch.get_num_threads()]
    result = {}
    for key, build in (("forward_seconds", forward), ("forward_backward_seconds", forward_backward)):
        # ext and torch interleaved with each other only: without warm-up calls, the first call of a measurement
        # finds the caches as the previous one left them, and the textbook path's columns evict the input (ResNet-50's
        # 256->64 1x1 at batch 8, channels_last: ext 3.8 ms right after it, 2.85 after torch; torch 2.7 either way).
        fns = {n: build(impls[n]) for n in ("ext", "torch")}
        threads = {}
        for count in others:
            for n in ("ext", "torch"):
                fns[f"{n}@{count}"] = build(impls[n])
                threads[f"{n}@{count}"] = count
        medians = interleaved_medians(fns, device, rounds, seconds, threads, warm_up_each=False)
        result[key] = {n: medians[n] for n in ("ext", "torch")}
        rest = {n: build(impls[n]) for n in impls if n not in ("unfold", "ext", "torch")}
        if key == "forward_seconds" and rest:
            # The other implementations' forwards, with ext's again for the floor check side by side: ext right
            # after the textbook path, whose columns evict its input (the check errs against ext).
            floor = interleaved_medians({**rest, "ext": build(impls["ext"])}, device, rounds, seconds,
                                        warm_up_each=False)
            result[key].update({n: floor[n] for n in rest})
            result["floor_seconds"] = floor
        for count in others:
            result.setdefault("threads", {}).setdefault(str(count), {})[key] = {
                n: medians[f"{n}@{count}"] for n in ("ext", "torch")}
    if others:
        result["threads"][str(torch.get_num_threads())] = {
            key: {n: result[key][n] for n in ("ext", "torch")}
            for key in ("forward_seconds", "forward_backward_seconds")}
    if device == "cpu":
        result["kernels"] = kernels(shape, memory_format)
    return result


def _ratio(times: Dict[str, float]) -> float:
    return times["ext"] / times["torch"]


def network_totals(network: Network, layers: Dict[str, dict], format_name: str, batch: int) -> dict:
    """A network's convolution time at one batch and format: each measured layer's medians weighted by its count."""
    totals = {}
    for key in ("forward_seconds", "forward_backward_seconds"):
        names = layers[without_batch(network.layers[0][0])]["results"][format_name][str(batch)][key]
        totals[key] = {n: sum(count * layers[without_batch(shape)]["results"][format_name][str(batch)][key][n]
                              for shape, count in network.layers) for n in names}
    totals["forward_ext_over_torch"] = _ratio(totals["forward_seconds"])
    totals["forward_backward_ext_over_torch"] = _ratio(totals["forward_backward_seconds"])
    return totals


def worst_layers(network: Network, layers: Dict[str, dict], format_name: str, batch: int,
                 n: int = WORST_LAYERS) -> List[dict]:
    """The network's n distinct layers with the highest ext / torch ratio (forward or forward+backward) at one
    batch and format, with the kernels that ran them."""
    rows = []
    for shape, count in network.layers:
        name = without_batch(shape)
        r = layers[name]["results"][format_name][str(batch)]
        rows.append({"layer": name, "count": count, "forward_ext_over_torch": _ratio(r["forward_seconds"]),
                     "forward_backward_ext_over_torch": _ratio(r["forward_backward_seconds"]),
                     "kernels": r.get("kernels")})
    rows.sort(key=lambda row: max(row["forward_ext_over_torch"], row["forward_backward_ext_over_torch"]),
              reverse=True)
    return rows[:n]


def _scaling(r: dict, fewest: str, most: str) -> Dict[str, Dict[str, float]]:
    """Time on the most threads over time on the fewest, per implementation and direction."""
    return {key: {n: r["threads"][most][key][n] / r["threads"][fewest][key][n] for n in ("ext", "torch")}
            for key in ("forward_seconds", "forward_backward_seconds")}


def evaluate_targets(results: dict) -> dict:
    """Every target check of the run: how many were checked, and those missed (with the figures)."""
    checks = {name: {"checked": 0, "missed": []} for name in ("network_totals", "layers", "im2col_floor",
                                                              "batch1_threads")}

    def check(name: str, ok: bool, **where) -> None:
        checks[name]["checked"] += 1
        if not ok:
            checks[name]["missed"].append(where)

    for name, net in results["networks"].items():
        for format_name, by_batch in net["totals"].items():
            for batch, totals in by_batch.items():
                ratio = totals["forward_ext_over_torch"]
                check("network_totals", ratio <= NETWORK_TARGET, network=name, format=format_name,
                      batch=int(batch), direction="forward", ext_over_torch=ratio)
                if int(batch) >= TRAINING_TARGET_MIN_BATCH:
                    ratio = totals["forward_backward_ext_over_torch"]
                    check("network_totals", ratio <= NETWORK_TARGET, network=name, format=format_name,
                          batch=int(batch), direction="forward_backward", ext_over_torch=ratio)
    for layer, entry in results["layers"].items():
        for format_name, by_batch in entry["results"].items():
            for batch, r in by_batch.items():
                where = dict(layer=layer, format=format_name, batch=int(batch), kernels=r.get("kernels"))
                for key, direction in (("forward_seconds", "forward"),
                                       ("forward_backward_seconds", "forward_backward")):
                    ratio = _ratio(r[key])
                    check("layers", ratio <= LAYER_TARGET, direction=direction, ext_over_torch=ratio, **where)
                if "im2col" in r["forward_seconds"]:
                    floor = r.get("floor_seconds", r["forward_seconds"])
                    ratio = floor["ext"] / floor["im2col"]
                    check("im2col_floor", ratio <= 1.0, ext_over_im2col=ratio, **where)
                if "threads" in r:
                    counts = sorted(r["threads"], key=int)
                    for key, s in _scaling(r, counts[0], counts[-1]).items():
                        if s["torch"] <= SCALING_TARGET:
                            check("batch1_threads", s["ext"] <= SCALING_TARGET, direction=key.rsplit("_", 1)[0],
                                  threads=[int(counts[0]), int(counts[-1])], ext=s["ext"], torch=s["torch"],
                                  **where)
    return checks


def _model_fns(model: nn.Module, images: torch.Tensor) -> Dict[str, Callable[[], object]]:
    """A model's forward (eval mode, no grad) and forward+backward (train mode, the gradient of the outputs' sum)."""
    evaluating, training = copy.deepcopy(model).eval(), copy.deepcopy(model).train()

    def forward():
        with torch.no_grad():
            return evaluating(images)

    def forward_backward():
        training.zero_grad(set_to_none=True)
        training(images).sum().backward()
    return {"forward_seconds": forward, "forward_backward_seconds": forward_backward}


def time_model(model: nn.Module, input_shape, batch: int, memory_format: torch.memory_format, device: str,
               rounds: int, seconds: float) -> dict:
    """A whole model against itself converted with conv_ext.convert (same weights), forward and forward+backward."""
    torch.manual_seed(0)
    model = model.to(device).to(memory_format=memory_format)
    converted = conv_ext.convert(copy.deepcopy(model))
    images = torch.randn(batch, *input_shape, device=device).contiguous(memory_format=memory_format)
    ext, reference = _model_fns(converted, images), _model_fns(model, images)
    result = {}
    for key in ext:
        result[key] = interleaved_medians({"ext": ext[key], "torch": reference[key]}, device, rounds, seconds,
                                          warm_up_each=False)
    result["forward_ext_over_torch"] = _ratio(result["forward_seconds"])
    result["forward_backward_ext_over_torch"] = _ratio(result["forward_backward_seconds"])
    return result


def whole_model(network: Network) -> Optional[nn.Module]:
    """The network as a model: the seed's CNN, or torchvision's (None where torchvision does not import)."""
    if network.name == "seed_cnn":
        return build_seed_cnn(nn.Conv2d)
    return torchvision_model(network)


def distinct_layers(networks: Sequence[Network]) -> Dict[str, Shape]:
    """Every distinct layer of the networks, by name, each once (in the order the networks first use them)."""
    distinct: Dict[str, Shape] = {}
    for network in networks:
        for shape, _ in network.layers:
            distinct.setdefault(without_batch(shape), shape)
    return distinct


def run(names: Sequence[str], batches: Sequence[int], thread_counts: Sequence[int], impls: Dict[str, object],
        device: str, rounds: int, seconds: float, models: bool = True, meta: Optional[dict] = None,
        progress: Optional[Callable[[str], None]] = None) -> dict:
    """The networks benchmark: every distinct layer of the named networks at each batch and format, the
    networks' totals, their worst layers, whole models (models=True) and the targets. thread_counts: the batch-1
    scaling runs on each of them (torch's current count is the main one)."""
    networks = [NETWORKS[name] for name in names]
    distinct = distinct_layers(networks)
    layers = {name: {"shape": shape.as_dict(), "results": {f: {} for f in FORMATS}}
              for name, shape in distinct.items()}
    for batch in batches:
        for name, shape in distinct.items():
            for format_name, memory_format in FORMATS.items():
                layers[name]["results"][format_name][str(batch)] = time_layer(
                    at_batch(shape, batch), memory_format, impls, device, rounds, seconds,
                    thread_counts if batch == 1 and len(thread_counts) > 1 else ())
            if progress:
                progress(f"batch {batch}: {name}")
    results = {"meta": dict(meta or {}, batches=list(batches), formats=list(FORMATS),
                            thread_counts=list(thread_counts), rounds=rounds, seconds_per_measurement=seconds),
               "layers": layers, "networks": {}}
    for network in networks:
        results["networks"][network.name] = {
            "source": network.source, "convolutions": network.convolutions(), "distinct_layers": len(network.layers),
            "macs_per_image": network.macs_per_image(),
            "layers": [[without_batch(shape), count] for shape, count in network.layers],
            "totals": {f: {str(b): network_totals(network, layers, f, b) for b in batches} for f in FORMATS},
            "worst_layers": {f: {str(b): worst_layers(network, layers, f, b) for b in batches} for f in FORMATS}}
    if models:
        results["models"] = {}
        for network in networks:
            model = whole_model(network)
            if model is None:
                continue
            results["models"][network.name] = {
                f: {str(b): time_model(model, network.input_shape, b, memory_format, device, rounds, seconds)
                    for b in batches if b <= MODEL_MAX_BATCH} for f, memory_format in FORMATS.items()}
            if progress:
                progress(f"model {network.name}")
    results["targets"] = evaluate_targets(results)
    return results
