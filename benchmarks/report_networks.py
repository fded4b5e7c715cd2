"""The networks benchmark's output: Markdown tables, the PNG chart, its line in the results index and its README
section."""
from statistics import geometric_mean
from typing import List

from .bench_networks import LAYER_TARGET, NETWORK_TARGET, SCALING_TARGET, TRAINING_TARGET_MIN_BATCH
from .report import _ms, machine_label, replace_readme_section, result_stem, run_header

DIRECTIONS = {"forward": "forward", "forward_backward": "fwd+bwd"}


def describe_run(results: dict) -> str:
    """The networks run's header: run_header with its batches."""
    meta = results["meta"]
    return run_header(meta, f"; batches {', '.join(map(str, meta['batches']))}; float32, no bias.")


def _batches(results: dict) -> List[str]:
    return [str(b) for b in results["meta"]["batches"]]


def headline_table(results: dict) -> List[str]:
    """Per network and batch: ext / torch of the summed convolution times, forward and fwd+bwd, in each format."""
    formats = results["meta"]["formats"]
    lines = ["| network | convs (distinct) | GMACs/image | batch | "
             + " | ".join(f"{DIRECTIONS[d]} ext / torch {f}" for f in formats for d in DIRECTIONS)
             + " |", "|---|--:|--:|--:|" + "--:|" * (2 * len(formats))]
    for name, net in results["networks"].items():
        for batch in _batches(results):
            cells = [f"{net['totals'][f][batch][d + '_ext_over_torch']:.2f}" for f in formats for d in DIRECTIONS]
            lines.append(f"| {name} | {net['convolutions']} ({net['distinct_layers']}) | "
                         f"{net['macs_per_image'] / 1e9:.3f} | {batch} | " + " | ".join(cells) + " |")
    return lines


def targets_lines(results: dict) -> List[str]:
    """How many target checks held, per target."""
    t = results["targets"]
    texts = {
        "network_totals": f"network totals <= {NETWORK_TARGET:.2f}x torch (forward at every batch, fwd+bwd at batch "
                          f">= {TRAINING_TARGET_MIN_BATCH})",
        "layers": f"every distinct layer <= {LAYER_TARGET:.2f}x torch, forward and fwd+bwd",
        "im2col_floor": "ext's forward no slower than im2col + GEMM's",
        "batch1_threads": f"batch 1 on the most threads <= {SCALING_TARGET:.2f}x its time on the fewest, where "
                          f"torch's is"}
    lines = ["| target | held | checked |", "|---|--:|--:|"]
    for key, text in texts.items():
        checked = t[key]["checked"]
        lines.append(f"| {text} | {checked - len(t[key]['missed'])} | {checked} |")
    return lines


def format_headline(results: dict) -> str:
    """The networks' ext / torch convolution totals and the targets held (the full tables' head)."""
    return "\n".join([describe_run(results), "", "Sum of each network's convolution times, ext / torch (lower is "
                      "faster; each distinct layer timed once and weighted by its count):", ""]
                     + headline_table(results) + [""] + targets_lines(results))


def readme_table(results: dict) -> List[str]:
    """One line per network: ext / torch of its summed convolution times at each batch, contiguous tensors."""
    batches = _batches(results)
    lines = ["| network | GMACs/image | " + " | ".join(f"{DIRECTIONS[d]} ext / torch, batch {'/'.join(batches)}"
                                                     for d in DIRECTIONS) + " |", "|---|--:|--:|--:|"]
    for name, net in results["networks"].items():
        totals = net["totals"]["contiguous"]
        cells = [" / ".join(f"{totals[b][d + '_ext_over_torch']:.2f}" for b in batches) for d in DIRECTIONS]
        lines.append(f"| {name} | {net['macs_per_image'] / 1e9:.3f} | " + " | ".join(cells) + " |")
    return lines


def format_readme_headline(results: dict) -> str:
    """What README shows: per network and batch, ext / torch of the convolution totals, and the targets held."""
    return "\n".join([describe_run(results), ""] + readme_table(results) + [""] + targets_lines(results))


def _kernels(kernels) -> str:
    return " / ".join(kernels) if kernels else "-"


def _network_batch_format(results: dict):
    """(name, network, batch, format) for every network, batch and memory format of a run, in report order."""
    for name, net in results["networks"].items():
        for batch in _batches(results):
            for f in results["meta"]["formats"]:
                yield name, net, batch, f


def _totals_table(results: dict) -> List[str]:
    lines = ["| network | batch | format | fwd ms im2col | fwd ms ext | fwd ms torch | fwd+bwd ms ext "
             "| fwd+bwd ms torch |", "|---|--:|---|--:|--:|--:|--:|--:|"]
    for name, net, batch, f in _network_batch_format(results):
        t = net["totals"][f][batch]
        fwd, fb = t["forward_seconds"], t["forward_backward_seconds"]
        lines.append(f"| {name} | {batch} | {f} | {_ms(fwd['im2col']) if 'im2col' in fwd else '-'} | "
                     f"{_ms(fwd['ext'])} | {_ms(fwd['torch'])} | {_ms(fb['ext'])} | {_ms(fb['torch'])} |")
    return lines


def _worst_table(results: dict) -> List[str]:
    lines = ["| network | batch | format | layer | count | fwd ext / torch | fwd+bwd ext / torch "
             "| ext kernels (forward / dx / dw) |", "|---|--:|---|---|--:|--:|--:|---|"]
    for name, net, batch, f in _network_batch_format(results):
        for row in net["worst_layers"][f][batch]:
            lines.append(f"| {name} | {batch} | {f} | {row['layer']} | {row['count']} | "
                         f"{row['forward_ext_over_torch']:.2f} | {row['forward_backward_ext_over_torch']:.2f}"
                         f" | {_kernels(row['kernels'])} |")
    return lines


def _scaling_table(results: dict) -> List[str]:
    """Batch 1 per network: summed time on the most threads over the fewest, ext and torch, forward and fwd+bwd."""
    counts = sorted(results["meta"]["thread_counts"])
    if len(counts) < 2 or "1" not in _batches(results):
        return []
    fewest, most = str(counts[0]), str(counts[-1])
    lines = [f"Batch 1 on {most} threads over {fewest} (summed over each network's convolutions; "
             f"{SCALING_TARGET:.2f} or less is the target where torch's is):", "",
             "| network | format | fwd ext | fwd torch | fwd+bwd ext | fwd+bwd torch |", "|---|---|--:|--:|--:|--:|"]
    layers = results["layers"]
    for name, net in results["networks"].items():
        for f in results["meta"]["formats"]:
            cells = []
            for key in ("forward_seconds", "forward_backward_seconds"):
                for impl in ("ext", "torch"):
                    total = {c: sum(count * layers[layer]["results"][f]["1"]["threads"][c][key][impl]
                                    for layer, count in net["layers"]) for c in (fewest, most)}
                    cells.append(f"{total[most] / total[fewest]:.2f}")
            lines.append(f"| {name} | {f} | " + " | ".join(cells) + " |")
    return lines


def _models_table(results: dict) -> List[str]:
    models = results.get("models") or {}
    if not models:
        return []
    lines = ["Whole models, conv_ext.convert(model) against the model as it is (same weights; forward in eval mode "
             "without grad, fwd+bwd in train mode):", "",
             "| model | format | batch | fwd ms ext | fwd ms torch | fwd ext / torch | fwd+bwd ms ext "
             "| fwd+bwd ms torch | fwd+bwd ext / torch |", "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
    for name, by_format in models.items():
        for f, by_batch in by_format.items():
            for batch, m in by_batch.items():
                fwd, fb = m["forward_seconds"], m["forward_backward_seconds"]
                lines.append(f"| {name} | {f} | {batch} | {_ms(fwd['ext'])} | {_ms(fwd['torch'])} | "
                             f"{m['forward_ext_over_torch']:.2f} | {_ms(fb['ext'])} | {_ms(fb['torch'])} | "
                             f"{m['forward_backward_ext_over_torch']:.2f} |")
    return lines


def _missed_table(results: dict) -> List[str]:
    """The layers that missed the per-layer targets, worst first."""
    missed = sorted(results["targets"]["layers"]["missed"], key=lambda m: m["ext_over_torch"], reverse=True)
    floor = results["targets"]["im2col_floor"]["missed"]
    lines = []
    if missed:
        lines += [f"Layers over {LAYER_TARGET:.2f}x torch:", "",
                  "| layer | batch | format | direction | ext / torch | ext kernels |", "|---|--:|---|---|--:|---|"]
        lines += [f"| {m['layer']} | {m['batch']} | {m['format']} | {DIRECTIONS[m['direction']]} | "
                  f"{m['ext_over_torch']:.2f} | {_kernels(m['kernels'])} |" for m in missed]
        lines.append("")
    if floor:
        lines += ["Layers whose forward is slower than im2col + GEMM's:", "",
                  "| layer | batch | format | ext / im2col | ext kernels |", "|---|--:|---|--:|---|"]
        lines += [f"| {m['layer']} | {m['batch']} | {m['format']} | {m['ext_over_im2col']:.2f} | "
                  f"{_kernels(m['kernels'])} |" for m in sorted(floor, key=lambda m: -m["ext_over_im2col"])]
        lines.append("")
    return lines


def format_markdown(results: dict) -> str:
    """Every table of a networks run: the headline, the totals in ms, the worst layers, the misses, the batch-1
    scaling and the whole models."""
    lines = [format_headline(results), "", "Summed convolution times (ms):", ""] + _totals_table(results)
    lines += ["", "Each network's worst layers by ext / torch:", ""]
    lines += _worst_table(results) + [""] + _missed_table(results)
    for section in (_scaling_table(results), _models_table(results)):
        if section:
            lines += section + [""]
    lines += ["Sources of the layer lists: " + "; ".join(f"{name}: {net['source']}"
                                                         for name, net in results["networks"].items()) + "."]
    return "\n".join(lines)


def write_chart(results: dict, path: str) -> None:
    """Bars of ext / torch per network and batch, forward and fwd+bwd, one panel per memory format (1 = level)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: no chart written to {path} (pip install matplotlib)")
        return
    formats, batches = results["meta"]["formats"], _batches(results)
    names = list(results["networks"])
    bars = [(b, d) for b in batches for d in DIRECTIONS]
    width = 0.8 / len(bars)
    figure, panels = plt.subplots(len(formats), 1, figsize=(max(7, 1.3 * len(names)), 3.2 * len(formats)),
                                  squeeze=False)
    for axes, f in zip(panels[:, 0], formats):
        for i, (batch, direction) in enumerate(bars):
            ratios = [results["networks"][n]["totals"][f][batch][direction + "_ext_over_torch"] for n in names]
            axes.bar([p + (i - (len(bars) - 1) / 2) * width for p in range(len(names))], ratios, width=width,
                     label=f"batch {batch} {DIRECTIONS[direction]}", hatch="//" if direction != "forward" else None)
        axes.axhline(NETWORK_TARGET, color="gray", linewidth=1, linestyle="--")
        axes.set_xticks(list(range(len(names))))
        axes.set_xticklabels(names, rotation=20, ha="right")
        axes.set_ylabel(f"ext / torch time\n({f})")
    meta = results["meta"]
    panels[0, 0].set_title(f"Each network's convolutions, ext / torch time (1 = level)\n{meta['device']}: "
                           f"{meta['machine']} ({meta['threads']} threads), torch {meta['torch']}, {meta['date'][:10]}",
                           fontsize=9)
    panels[0, 0].legend(fontsize=7, ncol=len(batches))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def networks_stem(results: dict) -> str:
    """A kept networks run's file name: the suite's stem with -networks."""
    return result_stem(results) + "-networks"


def mean_ratio(results: dict, format_name: str, batch: str, direction: str) -> float:
    """The geometric mean over the networks of ext / torch (summed convolution times) at one batch and format."""
    return geometric_mean(net["totals"][format_name][batch][direction + "_ext_over_torch"]
                          for net in results["networks"].values())


def index_lines(runs: list) -> List[str]:
    """The results index's networks table: one line per kept networks run, (stem, results) newest first."""
    if not runs:
        return []
    lines = ["", "Networks (`-networks`): the sum of each network's convolution times, ext / torch, geometric mean "
             "over the networks, per batch (contiguous; forward, fwd+bwd), and the targets held.", "",
             f"| run | machine | threads | forward | fwd+bwd | layers <= {LAYER_TARGET:.2f}x | network totals |",
             "|---|---|--:|---|---|--:|--:|"]
    for stem, results in runs:
        meta, t = results["meta"], results["targets"]
        per_batch = {d: ", ".join(f"batch {b}: {mean_ratio(results, 'contiguous', b, d):.2f}"
                                  for b in _batches(results)) for d in DIRECTIONS}
        held = {k: f"{t[k]['checked'] - len(t[k]['missed'])}/{t[k]['checked']}" for k in ("layers", "network_totals")}
        lines.append(f"| [{stem}]({stem}.md) | {machine_label(meta)}, {meta.get('ext_simd_isa') or meta['device']} | "
                     f"{meta['threads']} | {per_batch['forward']} | {per_batch['forward_backward']} | "
                     f"{held['layers']} | {held['network_totals']} |")
    return lines


README_START, README_END = "<!-- networks:start -->", "<!-- networks:end -->"


def update_readme(readme_path: str, results: dict, saved: dict) -> None:
    """Replaces the README section between the networks markers with the run's headline, its chart and a link to
    its tables (the files save_results kept)."""
    replace_readme_section(readme_path, README_START, README_END, format_readme_headline(results), saved,
                           "Every table of this run (channels_last too, times, worst layers and their kernels, "
                           "threads, whole models)",
                           "ext / torch per network")
