"""The IDX reader and the dataset loader of conv_ext.data, on tiny files that the tests write byte by byte."""

from __future__ import annotations

import dataclasses
import gzip
import struct
import sys
import types
from pathlib import Path

import pytest
import torch

from conv_ext import data as data_module
from conv_ext.data import (
    DATASETS,
    DatasetError,
    DatasetNotFoundError,
    download_dataset,
    load_dataset,
    read_idx,
    write_idx,
)

FILE_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(type_code: int, sizes: tuple[int, ...], payload: bytes) -> bytes:
    """An IDX file's content, written by hand: magic number, big-endian sizes, payload."""
    return bytes([0, 0, type_code, len(sizes)]) + b"".join(struct.pack(">I", s) for s in sizes) + payload


def uint8_idx(tensor: torch.Tensor) -> bytes:
    """The IDX content of a uint8 tensor."""
    return idx_bytes(0x08, tuple(tensor.shape), bytes(tensor.flatten().tolist()))


def write_file(path: Path, content: bytes, gz: bool) -> Path:
    """Write ``content`` to ``path`` (``path.gz``, gzipped, when ``gz``); returns the path written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        content = gzip.compress(content)
    path.write_bytes(content)
    return path


def random_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random uint8 28x28 images and labels in [0, 10)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (n,), dtype=torch.uint8, generator=generator)
    return images, labels


def write_dataset(directory: Path, n_train: int = 12, n_test: int = 7, gz: tuple[bool, ...] = (True,) * 4):
    """Write the four IDX files of a tiny dataset into ``directory``; returns the four tensors."""
    tensors = (*random_split(n_train, seed=1), *random_split(n_test, seed=2))
    for name, tensor, compress in zip(FILE_NAMES, tensors, gz):
        write_file(directory / name, uint8_idx(tensor), compress)
    return tensors


# ------------------------------------------------------------------------------------------------ read_idx


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_read_idx_uint8_images(tmp_path: Path, gz: bool) -> None:
    images = torch.randint(0, 256, (3, 5, 4), dtype=torch.uint8)
    path = write_file(tmp_path / "images-idx3-ubyte", uint8_idx(images), gz)
    result = read_idx(path)
    assert result.dtype == torch.uint8
    assert torch.equal(result, images)


@pytest.mark.parametrize(
    "type_code, fmt, dtype, values",
    [
        (0x09, "b", torch.int8, [-128, -1, 0, 5, 127, 3]),
        (0x0B, "h", torch.int16, [-32768, -2, 0, 300, 32767, 7]),
        (0x0C, "i", torch.int32, [-(2**31), -70000, 0, 1, 2**31 - 1, 65536]),
        (0x0D, "f", torch.float32, [-1.5, 0.0, 3.25, 1e-3, 2.0**20, -7.0]),
        (0x0E, "d", torch.float64, [-1.5, 0.0, 3.25, 1e-300, 2.0**60, -7.0]),
    ],
)
def test_read_idx_big_endian_types(tmp_path: Path, type_code: int, fmt: str, dtype: torch.dtype, values) -> None:
    payload = struct.pack(f">{len(values)}{fmt}", *values)
    path = write_file(tmp_path / "values-idx2", idx_bytes(type_code, (2, 3), payload), gz=False)
    result = read_idx(path)
    assert result.dtype == dtype
    assert torch.equal(result, torch.tensor(values, dtype=dtype).reshape(2, 3))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.float32])
def test_write_idx_writes_the_bytes_of_the_format(tmp_path: Path, dtype: torch.dtype) -> None:
    tensor = (torch.arange(24) * 37 - 100).to(dtype).reshape(2, 3, 4)
    fmt = {torch.uint8: "B", torch.int16: "h", torch.int32: "i", torch.float32: "f"}[dtype]
    type_code = {torch.uint8: 0x08, torch.int16: 0x0B, torch.int32: 0x0C, torch.float32: 0x0D}[dtype]
    expected = idx_bytes(type_code, (2, 3, 4), struct.pack(f">24{fmt}", *tensor.flatten().tolist()))
    assert write_idx(tmp_path / "plain", tensor).read_bytes() == expected
    assert gzip.decompress(write_idx(tmp_path / "packed.gz", tensor).read_bytes()) == expected


def test_read_idx_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere-idx1-ubyte"
    with pytest.raises(DatasetNotFoundError, match="nowhere-idx1-ubyte") as info:
        read_idx(path)
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.path == path


VALID_HEADER = bytes([0, 0, 0x08, 2]) + struct.pack(">II", 2, 3)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "too short"),
        (b"\x00\x00", "too short"),
        (bytes([1, 2, 0x08, 1]) + struct.pack(">I", 1) + b"\x00", "bad magic number"),
        (bytes([0, 0, 0x0A, 1]) + struct.pack(">I", 1) + b"\x00", "unknown IDX type code 0x0a"),
        (bytes([0, 0, 0x08, 0]), "0 dimensions"),
        (bytes([0, 0, 0x08, 3]) + struct.pack(">II", 2, 3), "truncated IDX header"),
        (VALID_HEADER + bytes(5), "truncated"),
        (VALID_HEADER + bytes(9), "3 bytes after"),
    ],
    ids=["empty", "short-header", "bad-magic", "bad-type", "no-dims", "short-dims", "short-data", "trailing-data"],
)
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_read_idx_corrupt_file_names_it(tmp_path: Path, content: bytes, message: str, gz: bool) -> None:
    path = write_file(tmp_path / "broken-idx2-ubyte", content, gz)
    with pytest.raises(DatasetError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert info.value.path == path


def test_read_idx_accepts_the_valid_header_the_corrupt_cases_start_from(tmp_path: Path) -> None:
    path = write_file(tmp_path / "ok-idx2-ubyte", VALID_HEADER + bytes(range(6)), gz=False)
    assert torch.equal(read_idx(path), torch.arange(6, dtype=torch.uint8).reshape(2, 3))


@pytest.mark.parametrize(
    "make_content",
    [
        lambda valid: b"\x1f\x8b" + b"not really gzip data",
        lambda valid: gzip.compress(valid)[:-12],
        lambda valid: gzip.compress(valid)[:15] + bytes(40),
    ],
    ids=["garbage", "truncated-stream", "corrupt-stream"],
)
def test_read_idx_bad_gzip_names_the_file(tmp_path: Path, make_content) -> None:
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(make_content(uint8_idx(torch.zeros(4, 28, 28, dtype=torch.uint8))))
    with pytest.raises(DatasetError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_checks_dimensions_and_type(tmp_path: Path) -> None:
    path = write_file(tmp_path / "labels-idx1-ubyte", uint8_idx(torch.zeros(5, dtype=torch.uint8)), gz=False)
    with pytest.raises(DatasetError, match="has 1 dimensions .*expected 3") as info:
        read_idx(path, expected_ndim=3)
    assert str(path) in str(info.value)
    with pytest.raises(DatasetError, match="expected torch.float32"):
        read_idx(path, expected_dtype=torch.float32)
    assert read_idx(path, expected_ndim=1, expected_dtype=torch.uint8).shape == (5,)


# -------------------------------------------------------------------------------------------- load_dataset


@pytest.mark.parametrize(
    "name, layout",
    [
        ("mnist", "."),
        ("mnist", "MNIST/raw"),
        ("mnist", "mnist"),
        ("fashion-mnist", "."),
        ("fashion-mnist", "FashionMNIST/raw"),
        ("fashion-mnist", "fashion-mnist"),
    ],
)
def test_load_dataset_layouts(tmp_path: Path, name: str, layout: str) -> None:
    directory = tmp_path / layout
    expected = write_dataset(directory, gz=(True, False, False, True))
    loaded = load_dataset(name, tmp_path)
    train_images, train_labels, test_images, test_labels, description = loaded
    assert torch.equal(train_images, expected[0]) and train_images.dtype == torch.uint8
    assert torch.equal(test_images, expected[2])
    assert torch.equal(train_labels, expected[1].long()) and train_labels.dtype == torch.int64
    assert torch.equal(test_labels, expected[3].long())
    assert description.startswith(f"{name} from {directory}:")
    for file_name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte.gz"):
        assert file_name in description


def test_load_dataset_prefers_torchvision_layout_and_uncompressed(tmp_path: Path) -> None:
    write_dataset(tmp_path, n_train=3)  # flat: must be ignored
    nested = tmp_path / "MNIST" / "raw"
    expected = write_dataset(nested, n_train=5)
    write_dataset(nested, n_train=5, gz=(False,) * 4)  # torchvision keeps both; the same content
    train_images, *_, description = load_dataset("mnist", tmp_path)
    assert torch.equal(train_images, expected[0])
    assert description.startswith(f"mnist from {nested}:")
    assert ".gz" not in description


def test_load_dataset_missing_file_in_a_directory_names_it(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match="holds some of the files but not: .*t10k-labels-idx1-ubyte") as info:
        load_dataset("mnist", tmp_path)
    assert info.value.path == tmp_path / "t10k-labels-idx1-ubyte"


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_load_dataset_no_files_says_where_it_looked_and_how_to_get_them(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, tmp_path / "empty")
    message = str(info.value)
    assert str(tmp_path / "empty") in message
    assert "--download" in message
    assert ("dataset-fashion-mnist" in message) == (name == "fashion-mnist")


@pytest.mark.parametrize(
    "corrupt, message, culprit",
    [
        (lambda t: {1: uint8_idx(t[1][:-1])}, "11 labels, but .* holds 12 images", "train-labels-idx1-ubyte"),
        (lambda t: {3: uint8_idx(t[3] + 10)}, "out of range", "t10k-labels-idx1-ubyte"),
        (
            lambda t: {0: uint8_idx(torch.zeros(12, 32, 32, dtype=torch.uint8))},
            "32x32 pixels, expected 28x28",
            "train-images-idx3-ubyte",
        ),
        (lambda t: {2: uint8_idx(t[3])}, "has 1 dimensions", "t10k-images-idx3-ubyte"),
        (lambda t: {1: uint8_idx(t[1])[:-4]}, "truncated", "train-labels-idx1-ubyte"),
    ],
    ids=["label-count", "label-range", "image-size", "swapped-files", "truncated-labels"],
)
def test_load_dataset_inconsistent_files_name_the_culprit(tmp_path: Path, corrupt, message, culprit) -> None:
    tensors = write_dataset(tmp_path, gz=(False,) * 4)
    for index, content in corrupt(tensors).items():
        (tmp_path / FILE_NAMES[index]).write_bytes(content)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset("mnist", tmp_path)
    assert str(tmp_path / culprit) in str(info.value)


def test_unknown_dataset_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")


# ------------------------------------------------------------------------------------- the default search


@pytest.fixture
def system_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for Debian's fashion-mnist directory, and an empty working directory."""
    fake = tmp_path / "usr-share-datasets-fashion-mnist"
    spec = dataclasses.replace(DATASETS["fashion-mnist"], system_dirs=(fake,))
    monkeypatch.setitem(DATASETS, "fashion-mnist", spec)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return fake


def test_default_search_finds_the_system_directory(system_dir: Path) -> None:
    expected = write_dataset(system_dir, n_train=4)
    train_images, *_, description = load_dataset("fashion-mnist")
    assert torch.equal(train_images, expected[0])
    assert str(system_dir) in description


def test_default_search_prefers_dot_data(system_dir: Path) -> None:
    write_dataset(system_dir, n_train=4)
    expected = write_dataset(Path("data") / "FashionMNIST" / "raw", n_train=6)
    train_images, *_, description = load_dataset("fashion-mnist")
    assert torch.equal(train_images, expected[0])
    assert str(system_dir) not in description


def test_default_search_uses_the_system_directory_only_for_its_dataset(system_dir: Path) -> None:
    write_dataset(system_dir)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist")
    assert str(system_dir) not in str(info.value)


def test_an_explicit_directory_disables_the_default_search(system_dir: Path, tmp_path: Path) -> None:
    write_dataset(system_dir)
    with pytest.raises(DatasetNotFoundError):
        load_dataset("fashion-mnist", tmp_path / "elsewhere")


# ---------------------------------------------------------------------------------------------- --download


def test_download_without_torchvision_says_how_to_get_the_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(DatasetError, match="needs torchvision") as info:
        download_dataset("fashion-mnist", "unused")
    assert "apt-get install dataset-fashion-mnist" in str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in str(info.value)


def fake_torchvision(monkeypatch: pytest.MonkeyPatch, dataset_cls: type) -> None:
    """Install a torchvision stand-in whose MNIST and FashionMNIST are ``dataset_cls``."""
    package = types.ModuleType("torchvision")
    datasets = types.ModuleType("torchvision.datasets")
    datasets.MNIST = datasets.FashionMNIST = dataset_cls
    package.datasets = datasets
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)


def test_download_failure_is_reported_with_the_cause(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    class Offline:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: network unreachable")

    fake_torchvision(monkeypatch, Offline)
    with pytest.raises(DatasetError, match="network unreachable") as info:
        download_dataset("mnist", tmp_path)
    assert "--download" in str(info.value) and str(tmp_path) in str(info.value)


def test_download_puts_the_files_where_load_dataset_finds_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = []

    class WritesFiles:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            calls.append((root, train, download))
            write_dataset(Path(root) / "MNIST" / "raw")

    fake_torchvision(monkeypatch, WritesFiles)
    raw_dir = download_dataset("mnist", tmp_path)
    assert {train for _, train, _ in calls} == {True, False} and all(d for *_, d in calls)
    assert raw_dir == tmp_path / "MNIST" / "raw"
    assert load_dataset("mnist", tmp_path).description.startswith(f"mnist from {raw_dir}")


def test_module_documents_every_public_name() -> None:
    for name in data_module.__all__:
        obj = getattr(data_module, name)
        if callable(obj):
            assert obj.__doc__, name
