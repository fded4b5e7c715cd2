"""MNIST and Fashion-MNIST from their four IDX files (gzipped or not), every file checked.

IDX (http://yann.lecun.com/exdb/mnist/): the magic number 00 00 08 NN (08: unsigned bytes, NN: the number of
dimensions), NN big-endian uint32 sizes, then the bytes. The images are N x 28 x 28, the labels N values in 0-9.
"""
import gzip
import math
import zlib
from pathlib import Path
from typing import List, NamedTuple, Optional

import torch

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DATASETS = ("mnist", "fashion-mnist")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's package dataset-fashion-mnist puts the files: the default for Fashion-MNIST."""
WHERE_TO_GET = {
    "mnist": "the four .gz files of http://yann.lecun.com/exdb/mnist/ (or a mirror)",
    "fashion-mnist": f"apt-get install dataset-fashion-mnist (into {DEBIAN_FASHION_MNIST}), or the four .gz files "
                     "of https://github.com/zalandoresearch/fashion-mnist",
}


class DatasetError(ValueError):
    """A data file is missing, corrupt or not what it should be; the message names it."""


class Dataset(NamedTuple):
    """A train/test split: uint8 images (N x 28 x 28) and int64 labels (N), and where they were read from."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str


def read_idx(path: Path, ndim: int) -> torch.Tensor:
    """The uint8 tensor in the IDX file ``path``, which must have ``ndim`` dimensions. Raises DatasetError."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":  # gzip's magic number: the content decides, not the name
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise DatasetError(f"{path}: corrupt gzip data ({error})") from error
    header = 4 + 4 * ndim
    if len(data) < header or data[:4] != bytes((0, 0, 8, ndim)):
        raise DatasetError(f"{path}: not an IDX file of bytes with {ndim} dimension(s): it starts with "
                           f"{data[:4].hex() or 'nothing'}, expected 000008{ndim:02x}")
    sizes = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    if len(data) - header != math.prod(sizes):
        raise DatasetError(f"{path}: the header declares {'x'.join(map(str, sizes))} = {math.prod(sizes)} bytes of "
                           f"data, the file holds {len(data) - header}")
    if math.prod(sizes) == 0:
        raise DatasetError(f"{path}: holds no data (sizes {'x'.join(map(str, sizes))})")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header).reshape(sizes)


def _read_split(images_path: Path, labels_path: Path) -> List[torch.Tensor]:
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if images.shape[1:] != (28, 28):
        raise DatasetError(f"{images_path}: images of {images.shape[1]}x{images.shape[2]} pixels, expected 28x28")
    if len(labels) != len(images):
        raise DatasetError(f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path}")
    if len(labels) and int(labels.max()) > 9:
        raise DatasetError(f"{labels_path}: label {int(labels.max())} out of range 0-9")
    return [images, labels.long()]


def load_dataset(name: str, data_dir: Optional[Path] = None) -> Dataset:
    """Dataset ``name`` (one of DATASETS) from ``data_dir``, which holds its four files, each gzipped or not
    (default: Debian's directory for Fashion-MNIST; MNIST needs one). Raises DatasetError saying what is missing."""
    directory = data_dir if data_dir is not None else DEBIAN_FASHION_MNIST if name == "fashion-mnist" else None
    if directory is None:
        raise DatasetError(f"{name}: pass --data-dir DIR, DIR holding {WHERE_TO_GET[name]}")
    paths = []
    for file in FILES:
        found = [p for p in (directory / file, directory / f"{file}.gz") if p.is_file()]
        if not found:
            raise DatasetError(f"{name}: {directory} holds no {file} (nor {file}.gz); get {WHERE_TO_GET[name]}")
        paths.append(found[0])
    return Dataset(*_read_split(*paths[:2]), *_read_split(*paths[2:]), source=f"{name} from {directory}")
