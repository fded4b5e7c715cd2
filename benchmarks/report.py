"""The benchmark's output: Markdown tables, the PNG chart, and the README section they update."""
import json
import os
import re
from typing import Callable


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def _mib(n_bytes: float) -> str:
    return f"{n_bytes / 2 ** 20:.1f}"


def _tf32_note(meta: dict) -> str:
    """On CUDA, whether torch's cuDNN ran float32 convolutions in TF32 (ext's cuBLAS GEMMs are full float32)."""
    if meta.get("cudnn_allow_tf32") is None:
        return ""
    if meta["cudnn_allow_tf32"]:
        return (" torch's cuDNN convolutions in TF32 (its default; ext in full float32; --no-tf32 to compare in "
                "float32).")
    return " torch's cuDNN convolutions in full float32 (--no-tf32), as ext's."


def _heap_note(meta: dict) -> str:
    """Whether glibc's heap was pinned for the run (benchmarks/heap.py)."""
    if meta.get("glibc_heap_pinned") is None:  # a run from before the setting was recorded
        return ""
    if meta["glibc_heap_pinned"]:
        return (" glibc's heap pinned (no trimming, no mmap: no implementation pays re-faulted pages; "
                "benchmarks/heap.py).")
    return " glibc's heap as it comes (--default-heap, or not glibc): page faults land as the heap's history has it."


# The report's columns, from the seed to the fastest; a run has those it measured (older runs lack im2col).
ORDER = ("unfold", "im2col", "ext", "torch")
LABELS = {"unfold": "unfold (Python)", "im2col": "im2col + GEMM (C++)", "ext": "ext (fastest kernels)",
          "torch": "torch"}


def implementations(results: dict) -> list:
    """The implementations a run measured, in report order."""
    measured = next(iter(results["shapes"].values()))["forward_seconds"]
    return [name for name in ORDER if name in measured]


def machine_label(meta: dict) -> str:
    """The machine a run was measured on: its name, and x86's family and model where recorded."""
    return meta["machine"] + (f" ({meta['cpu_family_model']})" if meta.get("cpu_family_model") else "")


def run_header(meta: dict, details: str) -> str:
    """One line: when, on what and how a run was measured; `details` (the run's own) after the rounds."""
    return (f"Measured {meta['date']} on {machine_label(meta)} ({meta['device']}, {meta['threads']} threads), torch "
            f"{meta['torch']}, medians of {meta['rounds']} interleaved rounds{' (--quick)' if meta['quick'] else ''}"
            f"{details}" + (f" ext's float32 kernels: {meta['ext_simd_isa']}." if meta.get("ext_simd_isa") else "")
            + _torch_isa_note(meta) + _tf32_note(meta) + _heap_note(meta))


def _torch_isa_note(meta: dict) -> str:
    """Which instruction set torch's own CPU kernels ran on, where ext's ran on a lesser one than the CPU's best."""
    if meta.get("torch_isa_limit"):
        return f" torch's CPU kernels (oneDNN, MKL, ATen) held to {meta['torch_isa_limit']} as well."
    if meta.get("ext_simd_isa") == "avx2" and meta.get("torch_cpu_capability"):
        return f" torch's CPU kernels not held to avx2 (ATen: {meta['torch_cpu_capability']})."
    return ""


def describe_run(results: dict) -> str:
    """The suite's header: run_header with the machine's GEMM rate."""
    return run_header(results["meta"], f". Machine GEMM rate (float32 torch.mm): "
                                       f"{results['gemm_flops_per_second'] / 1e9:.1f} GFLOP/s.")


def _time_table(results: dict, key: str, title: str) -> list:
    names = implementations(results)
    lines = ["| shape | config | " + " | ".join(f"{title} ms {LABELS[n]}" for n in names)
             + " | ext / torch time |", "|---|---|" + "--:|" * (len(names) + 1)]
    for shape, s in results["shapes"].items():
        times = s[key]
        lines.append(f"| {shape} | {s['description']} | " + " | ".join(_ms(times[n]) for n in names)
                     + f" | {times['ext'] / times['torch']:.2f} |")
    return lines


def geometric_mean_line(results: dict) -> str:
    gm = results["geometric_mean"]
    im2col = (f"im2col + GEMM (C++) {gm['im2col_speedup_vs_unfold']:.2f}x, "
              if "im2col_speedup_vs_unfold" in gm else "")
    return (f"Geometric mean over the shapes (fwd+bwd), speed-up over unfold: {im2col}ext "
            f"{gm['ext_speedup_vs_unfold']:.2f}x, torch {gm['torch_speedup_vs_unfold']:.2f}x; ext takes "
            f"{gm['ext_over_torch']:.2f}x torch's time.")


def training_line(results: dict) -> str:
    t = results["training_step"]
    names = [n for n in ORDER if n in t["step_seconds"]]
    times = ", ".join(f"{LABELS[n]} {_ms(t['step_seconds'][n])}" for n in names)
    return (f"Seed-CNN training step (batch {t['batch']}: forward, loss, backward, Adam; ms): {times}. "
            f"ext / torch: {t['ext_over_torch']:.2f}.")


def format_headline(results: dict) -> str:
    """What README shows: the forward+backward times of each implementation per shape, and the summary lines."""
    lines = [describe_run(results), ""] + _time_table(results, "forward_backward_seconds", "fwd+bwd")
    lines += ["", geometric_mean_line(results)]
    if "training_step" in results:
        lines += ["", training_line(results)]
    return "\n".join(lines)


def format_markdown(results: dict) -> str:
    """Every table of a run: the headline, the forward alone, memory, and the training step."""
    meta = results["meta"]
    names = implementations(results)
    lines = [format_headline(results), "", "Forward only (no grad):", ""]
    lines += _time_table(results, "forward_seconds", "fwd")
    lines += ["", "| shape | ext fwd share of GEMM rate | ext fwd+bwd share |", "|---|--:|--:|"]
    for shape, s in results["shapes"].items():
        lines.append(f"| {shape} | {s['ext_forward_gemm_share']:.0%} | {s['ext_forward_backward_gemm_share']:.0%} |")
    workspace = [n for n in names if "peak_workspace_bytes" in next(iter(results["shapes"].values()))["memory"][n]]
    cuda = meta["device"] == "cuda"
    limit = _mib(next(iter(results["shapes"].values()))["workspace_limit_bytes"])
    lines += ["", "| shape | " + " | ".join(f"saved for backward MiB {n}" for n in names)
              + "".join(f" | peak column workspace MiB {n} (limit {limit})" for n in workspace)
              + "".join(f" | CUDA peak MiB {n}" for n in names if cuda) + " |",
              "|---|" + "--:|" * (len(names) * (2 if cuda else 1) + len(workspace))]
    for shape, s in results["shapes"].items():
        m = s["memory"]
        cells = ([_mib(m[n]["saved_for_backward_bytes"]) for n in names]
                 + [_mib(m[n]["peak_workspace_bytes"]) for n in workspace]
                 + [_mib(m[n]["cuda_peak_bytes"]) for n in names if cuda])
        lines.append(f"| {shape} | " + " | ".join(cells) + " |")
    if "training_step" in results:
        t = results["training_step"]
        rounds = f", medians of {t['rounds']} interleaved rounds" if "rounds" in t else ""
        lines += ["", f"Seed CNN training step (batch {t['batch']}: forward, loss, backward, Adam{rounds}):", "",
                  "| implementation | ms per step | images/s |", "|---|--:|--:|"]
        for n in (n for n in ORDER if n in t["step_seconds"]):
            lines.append(f"| {LABELS[n]} | {_ms(t['step_seconds'][n])} | {t['images_per_second'][n]:.0f} |")
        lines += ["", f"ext / torch step time: {t['ext_over_torch']:.2f}; ext speed-up vs unfold: "
                  f"{t['ext_speedup_vs_unfold']:.2f}x."]
    return "\n".join(lines)


def write_chart(results: dict, path: str) -> None:
    """Bar chart: speed-up of each implementation over the unfold version, forward+backward, per shape (log
    scale)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: no chart written to {path} (pip install matplotlib)")
        return
    shapes = list(results["shapes"])
    bars = [n for n in implementations(results) if n != "unfold"]
    width = 0.8 / len(bars)
    figure, axes = plt.subplots(figsize=(max(6, 1.2 * len(shapes)), 4))
    for i, name in enumerate(bars):
        speedups = [results["shapes"][s]["forward_backward_seconds"]["unfold"]
                    / results["shapes"][s]["forward_backward_seconds"][name] for s in shapes]
        axes.bar([p + (i - (len(bars) - 1) / 2) * width for p in range(len(shapes))], speedups, width=width,
                 label=LABELS[name])
    axes.axhline(1.0, color="gray", linewidth=1, linestyle="--", label=LABELS["unfold"] + " = 1")
    axes.set_yscale("log")
    axes.set_xticks(list(range(len(shapes))))
    axes.set_xticklabels(shapes, rotation=30, ha="right")
    axes.set_ylabel("speed-up over unfold, fwd+bwd")
    meta = results["meta"]
    axes.set_title(f"{meta['device']}: {meta['machine']} ({meta['threads']} threads), torch {meta['torch']}, "
                   f"{meta['date'][:10]}", fontsize=9)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def result_stem(results: dict) -> str:
    """A kept run's file name: its date, its CPU (or GPU) and the kernels ext ran, e.g.
    2026-12-02-intel-xeon-avx512."""
    meta = results["meta"]
    machine = re.sub(r"\((r|tm)\)|\bprocessor\b|\bcpu\b", "", meta["machine"].lower())
    machine = re.sub(r"[^a-z0-9]+", "-", machine).strip("-")
    return f"{meta['date'][:10]}-{machine}-{meta.get('ext_simd_isa') or meta['device']}"


def write_run(results: dict, stem: str, markdown: Callable[[dict], str] = None,
              chart: Callable[[dict, str], None] = None) -> dict:
    """Writes a run as <stem>.json (every figure), .md (markdown(results); default: the suite's tables) and .png
    (chart; default: the suite's). Returns the paths written."""
    paths = {"json": stem + ".json", "markdown": stem + ".md", "png": stem + ".png"}
    with open(paths["json"], "w") as f:
        json.dump(results, f, indent=2)
    with open(paths["markdown"], "w") as f:
        f.write((markdown or format_markdown)(results) + "\n")
    (chart or write_chart)(results, paths["png"])
    return paths


def save_results(results: dict, directory: str, stem: str = None, markdown: Callable[[dict], str] = None,
                 chart: Callable[[dict, str], None] = None) -> dict:
    """Keeps a run in `directory` as <stem>.json, .md and .png (stem: result_stem(results); a later run of the same
    day, CPU and kernels replaces it), then regenerates the directory's index. Returns the paths written."""
    os.makedirs(directory, exist_ok=True)
    paths = write_run(results, os.path.join(directory, stem or result_stem(results)), markdown, chart)
    write_results_index(directory)
    return paths


def write_results_index(directory: str) -> str:
    """directory/README.md: one line per kept run (newest first) with its headline figures and its files."""
    from .report_networks import index_lines as networks_index_lines  # (report_networks builds on this module)
    runs, networks_runs = [], []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json"):
            with open(os.path.join(directory, name)) as f:
                results = json.load(f)
            if "meta" in results and "shapes" in results:
                runs.append((name[:-len(".json")], results))
            elif "meta" in results and "networks" in results and "targets" in results:
                networks_runs.append((name[:-len(".json")], results))
    for kept in (runs, networks_runs):
        kept.sort(key=lambda run: run[1]["meta"]["date"], reverse=True)
    lines = ["# Benchmark results", "",
             "Each kept run of `python -m benchmarks.bench --update-readme`: `<date>-<machine>-<kernels>.json` "
             "(every figure), `.md` (the tables) and `.png` (the chart). Ratios are from one run; the CPU and date "
             "of each are in its header. This index is regenerated by the benchmark. "
             "`<date>-<machine>-fashion-mnist.*` are kept runs of the MNIST example's `--compare` (examples/mnist).",
             "",
             "| run | machine | threads | torch | ext vs unfold | im2col + GEMM vs unfold | torch vs unfold "
             "| ext / torch | step ext / torch |", "|---|---|--:|---|--:|--:|--:|--:|--:|"]
    for stem, results in runs:
        meta, gm = results["meta"], results["geometric_mean"]
        machine = machine_label(meta)
        im2col = f"{gm['im2col_speedup_vs_unfold']:.2f}x" if "im2col_speedup_vs_unfold" in gm else "-"
        step = f"{results['training_step']['ext_over_torch']:.2f}" if "training_step" in results else "-"
        lines.append(f"| [{stem}]({stem}.md) | {machine}, {meta.get('ext_simd_isa') or meta['device']} "
                     f"| {meta['threads']} | {meta['torch']} | {gm['ext_speedup_vs_unfold']:.2f}x | {im2col} "
                     f"| {gm['torch_speedup_vs_unfold']:.2f}x | {gm['ext_over_torch']:.2f} | {step} |")
    lines += networks_index_lines(networks_runs)
    path = os.path.join(directory, "README.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


README_START, README_END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"


def update_readme(readme_path: str, results: dict, saved: dict) -> None:
    """Replaces the README section between the benchmark markers with the run's headline, its chart and a link to
    its full tables (the files save_results kept)."""
    replace_readme_section(readme_path, README_START, README_END, format_headline(results), saved,
                           "Every table of this run (forward alone, memory, the training step)", "speed-up over unfold")


def replace_readme_section(readme_path: str, start: str, end: str, headline: str, saved: dict, tables_text: str,
                           chart_text: str) -> None:
    """Replaces the README section between the markers start and end with headline, a link to the kept tables
    (saved["markdown"]) and the kept chart (saved["png"])."""
    with open(readme_path) as f:
        text = f.read()
    if start not in text or end not in text:
        raise ValueError(f"{readme_path} has no {start} ... {end} section to update")
    base = os.path.dirname(os.path.abspath(readme_path))
    chart, tables = (os.path.relpath(os.path.abspath(saved[k]), base) for k in ("png", "markdown"))
    section = f"{start}\n{headline}\n\n{tables_text}: [{tables}]({tables}).\n\n![{chart_text}]({chart})\n{end}"
    text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: section, text, flags=re.S)
    with open(readme_path, "w") as f:
        f.write(text)
