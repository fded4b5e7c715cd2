"""The seed's network and the training command, on a tiny learnable dataset written as IDX files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from conv_ext import train as train_module
from conv_ext.data import ImageDataset, write_idx
from conv_ext.train import (
    IMPLEMENTATIONS,
    TrainConfig,
    TrainResult,
    build_model,
    build_seed_cnn,
    conv_class,
    format_comparison,
    initial_state_dict,
    main,
    plot_losses,
    prediction_agreement,
    train_model,
)

N_TRAIN, N_TEST = 200, 100
QUICK = ["--epochs", "2", "--batch-size", "100", "--no-progress"]


def synthetic_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` noisy 28x28 uint8 images whose class is the position of a bright block (easy to learn)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=generator)
    images = torch.randint(0, 60, (n, 28, 28), generator=generator)
    for i, k in enumerate(labels.tolist()):
        row, col = 2 + 9 * (k // 4), 1 + 7 * (k % 4)
        images[i, row : row + 6, col : col + 5] += 190
    return images.to(torch.uint8), labels


@pytest.fixture(scope="module")
def dataset() -> ImageDataset:
    """The tiny learnable dataset in memory."""
    return ImageDataset(*synthetic_split(N_TRAIN, seed=1), *synthetic_split(N_TEST, seed=2), "synthetic")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, dataset: ImageDataset) -> Path:
    """The tiny dataset as IDX files side by side (images gzipped, labels not)."""
    directory = tmp_path_factory.mktemp("idx")
    write_idx(directory / "train-images-idx3-ubyte.gz", dataset.train_images)
    write_idx(directory / "train-labels-idx1-ubyte", dataset.train_labels.to(torch.uint8))
    write_idx(directory / "t10k-images-idx3-ubyte.gz", dataset.test_images)
    write_idx(directory / "t10k-labels-idx1-ubyte", dataset.test_labels.to(torch.uint8))
    return directory


# ------------------------------------------------------------------------------------------------- the model


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_build_seed_cnn_is_the_seed_network(impl: str) -> None:
    cls = conv_class(impl)
    model = build_seed_cnn(cls)
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert [type(m) for m in convs] == [cls, cls]
    assert [(m.in_channels, m.out_channels) for m in convs] == [(1, 16), (16, 32)]
    assert all(m.kernel_size == (5, 5) and m.stride == (1, 1) and m.padding == (2, 2) for m in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model) == 2
    linear = model[-1]
    assert isinstance(linear, nn.Linear) and (linear.in_features, linear.out_features) == (32 * 7 * 7, 10)
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_build_seed_cnn_defaults_to_torch_conv() -> None:
    assert all(type(m) is nn.Conv2d for m in build_seed_cnn() if isinstance(m, nn.Conv2d))


def test_initial_state_dict_depends_on_the_seed_only() -> None:
    first = initial_state_dict(3)
    torch.rand(100)  # consuming the global generator must not matter
    again, other = initial_state_dict(3), initial_state_dict(4)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["0.weight"], other["0.weight"])


@pytest.mark.parametrize("impl", ["ext", "unfold"])
def test_models_from_one_state_dict_agree_with_torch(impl: str) -> None:
    state = initial_state_dict(0)
    inputs = torch.rand(8, 1, 28, 28)
    expected = build_model("torch", state)(inputs)
    model = build_model(impl, state)
    assert all(torch.equal(p, state[name]) for name, p in model.state_dict().items())
    torch.testing.assert_close(model(inputs), expected, rtol=1e-4, atol=1e-5)


def test_conv_class_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown implementation 'cuda'"):
        conv_class("cuda")


# ---------------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_train_model_learns_the_synthetic_task(impl: str, dataset: ImageDataset) -> None:
    result = train_model(impl, dataset, TrainConfig(epochs=1, batch_size=25, progress=False))
    assert result.test_accuracy >= 0.9
    assert result.final_loss < result.losses[0] / 4
    assert result.test_correct == round(result.test_accuracy * N_TEST)


def test_train_model_counts_batches_and_time(dataset: ImageDataset) -> None:
    config = TrainConfig(epochs=2, batch_size=64, progress=False)  # 64 does not divide 200: a short last batch
    result = train_model("torch", dataset, config)
    assert len(result.losses) == config.epochs * math.ceil(N_TRAIN / config.batch_size)
    assert result.final_loss == result.losses[-1]
    assert len(result.epoch_seconds) == config.epochs and all(s > 0 for s in result.epoch_seconds)
    assert result.images_per_second == pytest.approx(N_TRAIN * config.epochs / sum(result.epoch_seconds))
    assert result.test_logits.shape == (N_TEST, 10)


def test_train_model_is_reproducible_and_seeded(dataset: ImageDataset) -> None:
    config = TrainConfig(epochs=1, batch_size=50, seed=5, progress=False)
    first, again = train_model("torch", dataset, config), train_model("torch", dataset, config)
    other = train_model("torch", dataset, TrainConfig(epochs=1, batch_size=50, seed=6, progress=False))
    assert first.losses == again.losses
    assert first.losses[0] != other.losses[0]


def test_prediction_agreement_counts_matching_classes() -> None:
    a = torch.tensor([[0.0, 1.0], [2.0, 1.0], [0.5, 0.4], [0.0, 3.0]])
    b = torch.tensor([[0.0, 9.0], [1.0, 2.0], [0.9, 0.1], [5.0, 3.0]])
    assert prediction_agreement(a, b) == 0.5
    assert prediction_agreement(a, a) == 1.0
    assert math.isnan(prediction_agreement(a, None))


def test_plot_losses_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    results = [
        TrainResult(impl, 0.5, 50, 100, 200, 0.1, 0.2, [1.0], [2.3 / (1 + i + k) for i in range(120)], torch.zeros(0))
        for k, impl in enumerate(IMPLEMENTATIONS)
    ]
    path = plot_losses(results, tmp_path / "losses.png", "title")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def fake_result(impl: str, accuracy: float) -> TrainResult:
    """A TrainResult with the given test accuracy and made-up other figures."""
    logits = torch.zeros(N_TEST, 10)
    return TrainResult(impl, accuracy, round(accuracy * N_TEST), N_TEST, N_TRAIN, 0.1, 0.2, [1.0], [0.5], logits)


@pytest.mark.parametrize("ext_accuracy, met", [(0.975, True), (0.9795, False), (0.965, False)])
def test_comparison_reports_the_seed_target_on_mnist(ext_accuracy: float, met: bool) -> None:
    results = [fake_result("ext", ext_accuracy), fake_result("unfold", 0.5), fake_result("torch", 0.976)]
    report = format_comparison(results, TrainConfig(), "mnist")
    target_line = next(line for line in report.splitlines() if line.startswith("Seed target"))
    assert target_line.split(": ")[-1].startswith("met" if met else "NOT met")
    assert "Seed target" not in format_comparison(results, TrainConfig(), "fashion-mnist")


# ------------------------------------------------------------------------------------------ the command line


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """Run ``main(argv)`` in this process; returns (exit status, stdout, stderr)."""
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_cli_trains_each_implementation_and_writes_json(
    impl: str, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    json_path = tmp_path / "run.json"
    argv = ["--impl", impl, "--data-dir", str(data_dir), "--json", str(json_path), "--seed", "1", *QUICK]
    status, out, _ = run_cli(argv, capsys)
    assert status == 0
    figures = json.loads(json_path.read_text())
    assert figures["implementation"] == impl
    assert figures["torch_version"] == torch.__version__
    assert (figures["dataset"], figures["epochs"], figures["batch_size"], figures["seed"]) == ("mnist", 2, 100, 1)
    assert figures["lr"] == 0.01
    assert (figures["train_images"], figures["test_images"]) == (N_TRAIN, N_TEST)
    assert figures["test_accuracy"] == figures["test_correct"] / N_TEST and figures["test_accuracy"] >= 0.9
    assert len(figures["losses"]) == 2 * N_TRAIN // 100 and figures["final_loss"] == figures["losses"][-1]
    assert figures["seconds_per_epoch"] == pytest.approx(sum(figures["epoch_seconds"]) / 2)
    assert figures["images_per_second"] == pytest.approx(2 * N_TRAIN / sum(figures["epoch_seconds"]))
    assert str(data_dir) in figures["data_files"] and str(data_dir) in out
    assert "Summary" in out and f"{100 * figures['test_accuracy']:.2f}%" in out


def test_cli_compare_trains_all_three_from_the_same_start(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    json_path = tmp_path / "compare.json"
    argv = ["--compare", "--dataset", "fashion-mnist", "--data-dir", str(data_dir), "--json", str(json_path), *QUICK]
    status, out, _ = run_cli(argv, capsys)
    assert status == 0
    results = {r["implementation"]: r for r in json.loads(json_path.read_text())["results"]}
    assert list(results) == list(IMPLEMENTATIONS)
    torch_run = results["torch"]
    for impl, run in results.items():
        assert run["losses"][0] == pytest.approx(torch_run["losses"][0], rel=1e-4)  # same weights, same batch
        unfold_speed = results["unfold"]["images_per_second"]
        assert run["speed_vs_unfold"] == pytest.approx(run["images_per_second"] / unfold_speed)
        assert run["max_abs_logit_diff_vs_torch_initial"] <= 1e-4
        assert run["max_abs_logit_diff_vs_torch"] <= 1e-2  # after 4 Adam steps; the logits are O(10)
        assert run["prediction_agreement_vs_torch"] >= 0.97
        assert abs(run["test_accuracy"] - torch_run["test_accuracy"]) <= 0.03
        assert any(line.startswith(impl) for line in out.splitlines())
    assert results["torch"]["max_abs_logit_diff_vs_torch"] == 0.0
    assert results["torch"]["prediction_agreement_vs_torch"] == 1.0
    assert "vs unfold" in out and "Largest |logit difference|" in out


def test_cli_shows_a_progress_bar(data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("tqdm")
    status, _, err = run_cli(["--impl", "torch", "--data-dir", str(data_dir), "--batch-size", "100"], capsys)
    assert status == 0
    assert "loss=" in err and "img/s" in err and "epoch 1/1" in err


def test_cli_runs_without_tqdm(data_dir: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setattr(train_module, "_warned_no_tqdm", False)
    status, out, err = run_cli(["--impl", "torch", "--data-dir", str(data_dir), "--batch-size", "100"], capsys)
    assert status == 0 and "Summary" in out
    assert "tqdm is not installed" in err and "img/s" not in err


def test_cli_missing_data_fails_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    status, _, err = run_cli(["--data-dir", str(tmp_path / "nothing")], capsys)
    assert status == 1
    assert err.startswith("error: ") and str(tmp_path / "nothing") in err and "--download" in err


def test_cli_download_without_torchvision(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    status, _, err = run_cli(["--download", "--data-dir", str(tmp_path)], capsys)
    assert status == 1 and "needs torchvision" in err and "train-images-idx3-ubyte.gz" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--epochs", "0"],
        ["--batch-size", "-5"],
        ["--lr", "0"],
        ["--threads", "0"],
        ["--impl", "ext", "--compare"],
        ["--impl", "cuda"],
        ["--dataset", "cifar10"],
        ["--json", "/nonexistent-dir/run.json"],
    ],
)
def test_cli_rejects_bad_arguments_before_any_work(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv + ["--data-dir", "/nonexistent-data"])
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_cli_plot_without_matplotlib_is_refused(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit):
        main(["--plot", "losses.png"])
    assert "--plot needs matplotlib" in capsys.readouterr().err


def test_python_dash_m_entry_point(data_dir: Path, tmp_path: Path) -> None:
    json_path = tmp_path / "run.json"
    command = [sys.executable, "-m", "conv_ext.train", "--impl", "ext", "--data-dir", str(data_dir)]
    command += ["--json", str(json_path), "--threads", "1", *QUICK]
    repo_root = Path(__file__).resolve().parents[1]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=repo_root)
    assert completed.returncode == 0, completed.stderr
    figures = json.loads(json_path.read_text())
    assert figures["implementation"] == "ext" and figures["threads"] == 1
