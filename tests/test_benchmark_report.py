"""The benchmark report says, on CUDA, whether torch's cuDNN ran float32 convolutions in TF32 (ext's GEMMs are full
float32), and --no-tf32 turns TF32 off for the run; whether glibc's heap was pinned (benchmarks/heap.py)."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmarks package beside tests/
from benchmarks import bench  # noqa: E402
from benchmarks.report import _tf32_note  # noqa: E402


def test_tf32_note_follows_the_recorded_setting():
    assert _tf32_note({"cudnn_allow_tf32": None}) == ""  # a CPU run
    assert "in TF32 (its default" in _tf32_note({"cudnn_allow_tf32": True})
    assert "full float32 (--no-tf32)" in _tf32_note({"cudnn_allow_tf32": False})


def test_no_tf32_turns_cudnn_tf32_off_for_the_run():
    before = torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = True
        args = bench.parse_args(["--no-tf32", "--device", "cpu", "--shapes", "seed-conv1"])
        assert args.no_tf32
        bench.apply_settings(args)
        assert torch.backends.cudnn.allow_tf32 is False
    finally:
        torch.backends.cudnn.allow_tf32 = before


def test_heap_note_follows_the_recorded_setting():
    from benchmarks.report import _heap_note
    assert _heap_note({}) == ""
    assert "heap pinned" in _heap_note({"glibc_heap_pinned": True})
    assert "--default-heap" in _heap_note({"glibc_heap_pinned": False})


def test_the_heap_is_pinned_where_the_c_library_is_glibc():
    """mallopt takes both settings on glibc; elsewhere there is nothing to pin and the run says so."""
    import platform

    from benchmarks.heap import pin_glibc_heap
    assert pin_glibc_heap() == (platform.libc_ver()[0] == "glibc")


def test_the_training_step_takes_three_times_the_rounds_and_says_so(capsys):
    """The step's ratio is the headline target: its median is over 3x the suite's rounds, and the report says how
    many (a --quick run of one shape and the step)."""
    results = bench.main(["--quick", "--device", "cpu", "--shapes", "seed-conv1", "--no-networks", "--out", ""])
    step = results["training_step"]
    assert step["rounds"] == bench.TRAINING_ROUNDS_FACTOR * results["meta"]["rounds"] == 9
    assert f"Adam, medians of {step['rounds']} interleaved rounds):" in capsys.readouterr().out


def _quick_results():
    return bench.main(["--quick", "--device", "cpu", "--shapes", "seed-conv1", "--no-training", "--no-networks",
                       "--out", ""])


def test_a_cpu_run_has_the_four_implementations_from_unfold_to_torch():
    from benchmarks.report import format_headline
    results = _quick_results()
    shape = results["shapes"]["seed-conv1"]
    assert list(shape["forward_backward_seconds"]) == ["unfold", "im2col", "ext", "torch"]
    # The textbook path allocates columns; the default kernels for seed-conv1 allocate none.
    assert shape["memory"]["im2col"]["peak_workspace_bytes"] > 0
    assert shape["memory"]["ext"]["peak_workspace_bytes"] == 0
    assert "im2col + GEMM (C++)" in format_headline(results)


def test_update_readme_keeps_the_run_by_date_and_cpu_and_indexes_it(tmp_path):
    from benchmarks.report import result_stem, save_results, update_readme
    results = _quick_results()
    stem = result_stem(results)
    assert stem.startswith(results["meta"]["date"][:10] + "-") and stem.endswith("-" + results["meta"]["ext_simd_isa"])
    saved = save_results(results, str(tmp_path / "results"))
    written = {p.name for p in (tmp_path / "results").iterdir()}
    assert written == {stem + ".json", stem + ".md", "README.md"} | ({stem + ".png"} if _has_matplotlib() else set())
    assert f"[{stem}]({stem}.md)" in (tmp_path / "results" / "README.md").read_text()
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- benchmark:start -->\nSTALE TABLE\n<!-- benchmark:end -->\nafter\n")
    update_readme(str(readme), results, saved)
    text = readme.read_text()
    assert "STALE TABLE" not in text and text.startswith("before\n") and text.endswith("after\n")
    assert f"(results/{stem}.md)" in text and "Geometric mean" in text


def _has_matplotlib() -> bool:
    import importlib.util
    return importlib.util.find_spec("matplotlib") is not None
