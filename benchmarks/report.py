"""The benchmark's output: Markdown tables, the PNG chart, and the README section they update."""
import os
import re


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
        return " glibc's heap pinned (no trimming: no implementation pays re-faulted pages; benchmarks/heap.py)."
    return " glibc's heap as it comes (--default-heap, or not glibc): page faults land as the heap's history has it."


def format_markdown(results: dict) -> str:
    meta = results["meta"]
    lines = [
        f"Measured {meta['date']} on {meta['machine']} ({meta['device']}, {meta['threads']} threads), torch "
        f"{meta['torch']}, medians of {meta['rounds']} interleaved rounds"
        f"{' (--quick)' if meta['quick'] else ''}. Machine GEMM rate (float32 torch.mm): "
        f"{results['gemm_flops_per_second'] / 1e9:.1f} GFLOP/s."
        + (f" ext's float32 kernels: {meta['ext_cpu_gemm']}." if meta.get("ext_cpu_gemm") else "")
        + _tf32_note(meta) + _heap_note(meta),
        "",
        "| shape | config | fwd ms ext | fwd ms unfold | fwd ms torch | fwd+bwd ms ext | fwd+bwd ms unfold "
        "| fwd+bwd ms torch | ext speed-up vs unfold (fwd+bwd) | ext / torch time (fwd+bwd) "
        "| ext fwd share of GEMM rate |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, s in results["shapes"].items():
        fwd, both = s["forward_seconds"], s["forward_backward_seconds"]
        lines.append(
            f"| {name} | {s['description']} | {_ms(fwd['ext'])} | {_ms(fwd['unfold'])} | {_ms(fwd['torch'])} "
            f"| {_ms(both['ext'])} | {_ms(both['unfold'])} | {_ms(both['torch'])} "
            f"| {s['ext_speedup_vs_unfold']:.2f}x | {s['ext_over_torch']:.2f} | {s['ext_forward_gemm_share']:.0%} |")
    gm = results["geometric_mean"]
    lines += ["", f"Geometric mean over the shapes (fwd+bwd): ext is {gm['ext_speedup_vs_unfold']:.2f}x faster than "
              f"unfold (torch: {gm['torch_speedup_vs_unfold']:.2f}x); ext takes {gm['ext_over_torch']:.2f}x "
              f"torch's time."]
    lines += ["", "| shape | saved for backward MiB ext | unfold | torch | ext peak column workspace MiB "
              "(limit " + _mib(next(iter(results["shapes"].values()))["workspace_limit_bytes"]) + ")"
              + (" | CUDA peak MiB ext | unfold | torch" if meta["device"] == "cuda" else "") + " |",
              "|---|--:|--:|--:|--:|" + ("--:|--:|--:|" if meta["device"] == "cuda" else "")]
    for name, s in results["shapes"].items():
        m = s["memory"]
        row = (f"| {name} | {_mib(m['ext']['saved_for_backward_bytes'])} | {_mib(m['unfold']['saved_for_backward_bytes'])} "
               f"| {_mib(m['torch']['saved_for_backward_bytes'])} | {_mib(m['ext']['peak_workspace_bytes'])} |")
        if meta["device"] == "cuda":
            row += " " + " | ".join(_mib(m[n]["cuda_peak_bytes"]) for n in ("ext", "unfold", "torch")) + " |"
        lines.append(row)
    if "training_step" in results:
        t = results["training_step"]
        rounds = f", medians of {t['rounds']} interleaved rounds" if "rounds" in t else ""
        lines += ["", f"Seed CNN training step (batch {t['batch']}: forward, loss, backward, Adam{rounds}):", "",
                  "| implementation | ms per step | images/s |", "|---|--:|--:|"]
        for n, seconds in t["step_seconds"].items():
            lines.append(f"| {n} | {_ms(seconds)} | {t['images_per_second'][n]:.0f} |")
        lines += ["", f"ext / torch step time: {t['ext_over_torch']:.2f}; ext speed-up vs unfold: "
                  f"{t['ext_speedup_vs_unfold']:.2f}x."]
    return "\n".join(lines)


def write_chart(results: dict, path: str) -> None:
    """Bar chart: speed-up of ext and torch over the unfold version, forward+backward, per shape (log scale)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: no chart written to {path} (pip install matplotlib)")
        return
    names = list(results["shapes"])
    ext = [results["shapes"][n]["ext_speedup_vs_unfold"] for n in names]
    torch_ = [results["shapes"][n]["forward_backward_seconds"]["unfold"]
              / results["shapes"][n]["forward_backward_seconds"]["torch"] for n in names]
    figure, axes = plt.subplots(figsize=(max(6, 1.1 * len(names)), 4))
    positions = range(len(names))
    axes.bar([p - 0.2 for p in positions], ext, width=0.4, label="conv_ext")
    axes.bar([p + 0.2 for p in positions], torch_, width=0.4, label="torch F.conv2d")
    axes.axhline(1.0, color="gray", linewidth=1, linestyle="--", label="unfold (baseline)")
    axes.set_yscale("log")
    axes.set_xticks(list(positions))
    axes.set_xticklabels(names, rotation=30, ha="right")
    axes.set_ylabel("speed-up over unfold, fwd+bwd")
    meta = results["meta"]
    axes.set_title(f"{meta['device']}: {meta['machine']} ({meta['threads']} threads), torch {meta['torch']}",
                   fontsize=9)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


README_START, README_END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"


def update_readme(readme_path: str, markdown: str, chart_path: str) -> None:
    """Replaces the README section between the benchmark markers with the latest tables and chart."""
    with open(readme_path) as f:
        text = f.read()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme_path} has no {README_START} ... {README_END} section to update")
    chart = f"\n\n![speed-up over unfold]({os.path.relpath(chart_path)})" if chart_path else ""
    section = f"{README_START}\n{markdown}{chart}\n{README_END}"
    text = re.sub(re.escape(README_START) + ".*?" + re.escape(README_END), lambda _: section, text, flags=re.S)
    with open(readme_path, "w") as f:
        f.write(text)
