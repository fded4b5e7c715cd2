"""The benchmark report says, on CUDA, whether torch's cuDNN ran float32 convolutions in TF32 (ext's GEMMs are full
float32), and --no-tf32 turns TF32 off for the run; whether glibc's heap was pinned (benchmarks/heap.py); on
which instruction set torch's CPU kernels ran (benchmarks/isa.py)."""
import json
import os
import subprocess
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


def test_simd_isa_is_read_from_the_command_line_in_either_spelling():
    from benchmarks.isa import requested_isa
    assert requested_isa(["--quick", "--simd-isa", "avx2"]) == "avx2"
    assert requested_isa(["--simd-isa=none", "--quick"]) == "none"
    assert requested_isa(["--quick"]) is None


def test_torch_isa_note_says_where_torch_ran_on_more_than_ext():
    from benchmarks.report import _torch_isa_note
    assert _torch_isa_note({"ext_simd_isa": "avx512", "torch_cpu_capability": "AVX512"}) == ""
    assert "held to avx2 as well" in _torch_isa_note({"ext_simd_isa": "avx2", "torch_isa_limit": "avx2"})
    assert "not held to avx2 (ATen: AVX512)" in _torch_isa_note({"ext_simd_isa": "avx2",
                                                                  "torch_cpu_capability": "AVX512"})


def test_an_avx2_run_holds_torch_to_avx2_too(tmp_path):
    """`--simd-isa avx2` re-executes the run with oneDNN, MKL and ATen held to AVX2: ext and torch both as on an
    AVX2 CPU. Needs a CPU whose best is AVX-512 (where it is AVX2, torch is there already)."""
    from conv_ext import settings
    if settings.cpu_simd_isa() != "avx512":
        import pytest
        pytest.skip("needs an AVX-512 CPU: there --simd-isa avx2 is a limit below the CPU's best")
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
                                                            "ATEN_CPU_CAPABILITY")}
    subprocess.run([sys.executable, "-m", "benchmarks.bench", "--simd-isa", "avx2", "--quick", "--device", "cpu",
                    "--shapes", "seed-conv1", "--no-training", "--no-networks", "--out", str(tmp_path)],
                   cwd=Path(__file__).resolve().parents[1], env=env, check=True, capture_output=True)
    meta = json.loads((tmp_path / "latest.json").read_text())["meta"]
    assert (meta["ext_simd_isa"], meta["torch_isa_limit"], meta["torch_cpu_capability"]) == ("avx2", "avx2", "AVX2")
    assert "held to avx2 as well" in (tmp_path / "latest.md").read_text()


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
