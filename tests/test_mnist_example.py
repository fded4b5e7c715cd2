"""examples/mnist: the IDX reader and the training command, on a tiny learnable dataset written as IDX files."""
import gzip
import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from examples.mnist.data import FILES, DatasetError, load_dataset
from examples.mnist.train import main

REPOSITORY = Path(__file__).resolve().parents[1]
N_TRAIN, N_TEST = 300, 100


def write_idx(path: Path, values: torch.Tensor, gz: bool = False) -> Path:
    """``values`` (uint8) as an IDX file: 00 00 08 ndim, the big-endian uint32 sizes, the bytes."""
    content = bytes((0, 0, 8, values.dim())) + struct.pack(f">{values.dim()}I", *values.shape)
    content += bytes(values.flatten().tolist())
    path.write_bytes(gzip.compress(content) if gz else content)
    return path


def synthetic_split(n: int, seed: int):
    """``n`` noisy 28x28 images whose class is the position of a bright block (easy to learn), and the labels."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=generator)
    images = torch.randint(0, 60, (n, 28, 28), generator=generator)
    for i, k in enumerate(labels.tolist()):
        row, col = 2 + 9 * (k // 4), 1 + 7 * (k % 4)
        images[i, row:row + 6, col:col + 5] += 190
    return images.to(torch.uint8), labels.to(torch.uint8)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The four files of the synthetic dataset: the images gzipped, the labels not."""
    arrays = [*synthetic_split(N_TRAIN, seed=1), *synthetic_split(N_TEST, seed=2)]
    for name, values in zip(FILES, arrays):
        write_idx(tmp_path / (f"{name}.gz" if values.dim() == 3 else name), values, gz=values.dim() == 3)
    return tmp_path


def test_load_dataset_reads_the_files(data_dir: Path) -> None:
    data = load_dataset("mnist", data_dir)
    train_images, train_labels = synthetic_split(N_TRAIN, seed=1)
    assert torch.equal(data.train_images, train_images)
    assert torch.equal(data.train_labels, train_labels.long())
    assert data.test_images.shape == (N_TEST, 28, 28) and data.test_labels.dtype == torch.int64


# What is written over one file (train labels: FILES[1], test images: FILES[2]) and what the error must say.
BAD_FILES = {
    "not-idx": (1, lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n"), "expected 00000801"),
    "images-as-labels": (1, lambda p: write_idx(p, torch.zeros(4, 2, 2, dtype=torch.uint8)), "expected 00000801"),
    "truncated": (1, lambda p: p.write_bytes(p.read_bytes()[:-3]), f"= {N_TRAIN} bytes of data, the file holds "
                                                                      f"{N_TRAIN - 3}"),
    "corrupt-gzip": (2, lambda p: p.write_bytes(gzip.compress(b"\0" * 64)[:20]), "corrupt gzip data"),
    "label-count": (1, lambda p: write_idx(p, torch.zeros(7, dtype=torch.uint8)), f"7 labels for the {N_TRAIN}"),
    "label-range": (1, lambda p: write_idx(p, torch.full((N_TRAIN,), 10, dtype=torch.uint8)), "label 10 out of "
                                                                                             "range"),
    "image-size": (2, lambda p: write_idx(p, torch.zeros(N_TEST, 28, 27, dtype=torch.uint8)), "images of 28x27"),
    "empty": (1, lambda p: write_idx(p, torch.zeros(0, dtype=torch.uint8)), "holds no data"),
}


@pytest.mark.parametrize("index,corrupt,message", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_file_is_named(data_dir: Path, index: int, corrupt, message: str) -> None:
    path = next(data_dir.glob(f"{FILES[index]}*"))
    corrupt(path)
    with pytest.raises(DatasetError, match="^" + re.escape(str(path))) as info:
        load_dataset("mnist", data_dir)
    assert message in str(info.value)


def test_missing_files_say_where_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=f"holds no {FILES[0]} .*apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", tmp_path)
    with pytest.raises(DatasetError, match="mnist: pass --data-dir DIR"):
        load_dataset("mnist")


def test_compare_trains_the_three_from_the_same_start(data_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["--compare", "--data-dir", str(data_dir), "--epochs", "2", "--out", str(out)]) == 0
    report = capsys.readouterr().out
    assert "Seed target (MNIST, 1 epoch)" in report
    results = {r["implementation"]: r for r in json.loads((out / "mnist_compare.json").read_text())["results"]}
    assert list(results) == ["ext", "unfold", "torch"]
    for impl, r in results.items():
        assert len(r["losses"]) == 2 * N_TRAIN // 100  # 2 epochs of batches of 100
        assert r["test_accuracy"] >= 0.6, impl  # it learns (chance: 0.1)
        assert r["max_abs_logit_diff_vs_torch_initial"] <= 1e-4, impl  # the same initial weights
        assert f"\n{impl} " in report
    assert results["torch"]["max_abs_logit_diff_vs_torch"] == 0
    pytest.importorskip("matplotlib")
    assert (out / "mnist_loss.png").read_bytes().startswith(b"\x89PNG")


def test_one_implementation_from_the_command_line(data_dir: Path, tmp_path: Path) -> None:
    """``python -m examples.mnist.train`` from the repository root, one implementation: no comparison lines."""
    command = [sys.executable, "-m", "examples.mnist.train", "--impl", "unfold", "--dataset", "fashion-mnist",
               "--data-dir", str(data_dir), "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "\nunfold " in result.stdout and "\next " not in result.stdout and "logit difference" not in result.stdout
    assert json.loads((tmp_path / "fashion_mnist_unfold.json").read_text())["results"][0]["implementation"] == "unfold"


@pytest.mark.parametrize("argv,message", [
    (["--epochs", "0"], "must be >= 1, got 0"),
    (["--compare", "--impl", "ext"], "not allowed with argument"),
    (["--dataset", "cifar"], "invalid choice: 'cifar'"),
])
def test_bad_arguments_are_refused(argv, message, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_data_exits_with_the_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--data-dir", str(tmp_path), "--out", str(tmp_path)]) == 1
    assert f"error: mnist: {tmp_path} holds no {FILES[0]}" in capsys.readouterr().err
