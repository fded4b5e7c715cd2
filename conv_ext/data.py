"""MNIST and Fashion-MNIST from the standard IDX files, with no network needed.

The IDX format (http://yann.lecun.com/exdb/mnist/): a 4-byte magic number ``00 00 TT NN`` (``TT`` the element type,
``NN`` the number of dimensions), then ``NN`` big-endian uint32 sizes, then the elements in row-major order,
big-endian. The files may be gzipped (detected from their content, not their name).

Where the files are looked for, for a data directory ``DIR`` (first match wins):

    DIR/MNIST/raw/ (or DIR/FashionMNIST/raw/)   the layout that torchvision.datasets writes
    DIR/mnist/     (or DIR/fashion-mnist/)
    DIR/                                        the four files side by side

With no directory given, ``DIR`` is ``./data``, and for Fashion-MNIST Debian's package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist/``) comes after it. Every failure raises :class:`DatasetError` (or its
subclass :class:`DatasetNotFoundError`) with a message that names the file.
"""

from __future__ import annotations

import ctypes
import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional, Union

import torch

__all__ = [
    "DATASETS",
    "DEBIAN_FASHION_MNIST_DIR",
    "DEFAULT_DATA_DIR",
    "DatasetError",
    "DatasetNotFoundError",
    "DatasetSpec",
    "ImageDataset",
    "candidate_dirs",
    "download_dataset",
    "find_dataset_files",
    "load_dataset",
    "read_idx",
    "write_idx",
]

PathLike = Union[str, Path]

DEFAULT_DATA_DIR = Path("data")
"""Where the files are looked for (relative to the working directory) when no data directory is given."""

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's package ``dataset-fashion-mnist`` installs the Fashion-MNIST IDX files."""

IMAGE_SIZE = 28
NUM_CLASSES = 10

# IDX type code -> (torch dtype, bytes per element). The elements are stored big-endian.
_IDX_DTYPES: dict[int, tuple[torch.dtype, int]] = {
    0x08: (torch.uint8, 1),
    0x09: (torch.int8, 1),
    0x0B: (torch.int16, 2),
    0x0C: (torch.int32, 4),
    0x0D: (torch.float32, 4),
    0x0E: (torch.float64, 8),
}
_IDX_CODES: dict[torch.dtype, int] = {dtype: code for code, (dtype, _) in _IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


class DatasetError(ValueError):
    """A data file is missing, truncated or corrupt; the message names the file."""

    def __init__(self, message: str, path: Optional[PathLike] = None) -> None:
        super().__init__(message)
        self.path: Optional[Path] = Path(path) if path is not None else None


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The data files are not where they were looked for; the message says where to get them."""


@dataclass(frozen=True)
class DatasetSpec:
    """What names a dataset's files have and where they are looked for."""

    name: str
    """The name on the command line, e.g. ``"fashion-mnist"``."""
    torchvision_folder: str
    """The folder torchvision.datasets writes under its root, e.g. ``"FashionMNIST"`` (files in ``raw/``)."""
    system_dirs: tuple[Path, ...]
    """Directories searched after ``./data`` when no data directory is given."""
    home_page: str
    """Where a user can get the files by hand."""

    train_images: str = "train-images-idx3-ubyte"
    train_labels: str = "train-labels-idx1-ubyte"
    test_images: str = "t10k-images-idx3-ubyte"
    test_labels: str = "t10k-labels-idx1-ubyte"

    @property
    def file_names(self) -> tuple[str, str, str, str]:
        """The four file names (without ``.gz``): train images, train labels, test images, test labels."""
        return (self.train_images, self.train_labels, self.test_images, self.test_labels)


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        torchvision_folder="MNIST",
        system_dirs=(),
        home_page="http://yann.lecun.com/exdb/mnist/ (or any mirror of its four .gz files)",
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        torchvision_folder="FashionMNIST",
        system_dirs=(DEBIAN_FASHION_MNIST_DIR,),
        home_page="https://github.com/zalandoresearch/fashion-mnist (data/fashion/*.gz)",
    ),
}


class ImageDataset(NamedTuple):
    """A train/test split of 28x28 grey images with integer class labels, as read from IDX files."""

    train_images: torch.Tensor
    """uint8, shape (N, 28, 28)."""
    train_labels: torch.Tensor
    """int64, shape (N,), values in [0, 10)."""
    test_images: torch.Tensor
    """uint8, shape (M, 28, 28)."""
    test_labels: torch.Tensor
    """int64, shape (M,), values in [0, 10)."""
    description: str
    """Which files were read (one line per file, with its shape)."""


# ----------------------------------------------------------------------------------------------- IDX files


def _read_bytes(path: Path) -> bytes:
    """The content of ``path``, decompressed when it is gzipped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetNotFoundError(f"{path}: no such file", path) from None
    except OSError as error:
        raise DatasetError(f"{path}: cannot be read ({error.strerror or error})", path) from error
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"{path}: corrupt or truncated gzip data ({error})", path) from error


def _parse_idx_header(data: bytes, path: Path) -> tuple[int, tuple[int, ...], int]:
    """The type code, the sizes and the offset of the first element of the IDX content ``data``."""
    if len(data) < 4:
        raise DatasetError(f"{path}: {len(data)} bytes, too short for an IDX header (4 bytes at least)", path)
    zero, type_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise DatasetError(
            f"{path}: bad magic number 0x{data[:4].hex()} (an IDX file starts with 0x0000, a type code and the "
            "number of dimensions); is this an IDX file?",
            path,
        )
    if type_code not in _IDX_DTYPES:
        known = ", ".join(f"0x{code:02x}" for code in _IDX_DTYPES)
        raise DatasetError(f"{path}: unknown IDX type code 0x{type_code:02x} (known: {known})", path)
    if ndim == 0:
        raise DatasetError(f"{path}: the IDX header declares 0 dimensions", path)
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DatasetError(
            f"{path}: truncated IDX header: {ndim} dimensions need {header_size} bytes, the file has {len(data)}",
            path,
        )
    sizes = struct.unpack(f">{ndim}I", data[4:header_size])
    return type_code, tuple(sizes), header_size


def read_idx(
    path: PathLike,
    expected_ndim: Optional[int] = None,
    expected_dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    """Read an IDX file (gzipped or not) into a tensor of its declared type and shape.

    Args:
        path: the file.
        expected_ndim: if given, the number of dimensions the header must declare.
        expected_dtype: if given, the element type the header must declare (e.g. ``torch.uint8``).

    Raises:
        DatasetNotFoundError: the file does not exist.
        DatasetError: the file is not a well-formed IDX file (bad magic number, unknown type, truncated header or
            data, trailing bytes, corrupt gzip stream) or does not have the expected type or number of dimensions.
    """
    path = Path(path)
    data = _read_bytes(path)
    type_code, sizes, offset = _parse_idx_header(data, path)
    dtype, item_size = _IDX_DTYPES[type_code]
    if expected_dtype is not None and dtype != expected_dtype:
        raise DatasetError(f"{path}: holds {dtype} elements, expected {expected_dtype}", path)
    if expected_ndim is not None and len(sizes) != expected_ndim:
        shape = "x".join(map(str, sizes))
        raise DatasetError(f"{path}: has {len(sizes)} dimensions ({shape}), expected {expected_ndim}", path)
    numel = 1
    for size in sizes:
        numel *= size
    expected_bytes = numel * item_size
    found_bytes = len(data) - offset
    if found_bytes < expected_bytes:
        raise DatasetError(
            f"{path}: truncated: the header declares {'x'.join(map(str, sizes))} elements "
            f"({expected_bytes} bytes of data), the file has {found_bytes}",
            path,
        )
    if found_bytes > expected_bytes:
        raise DatasetError(
            f"{path}: {found_bytes - expected_bytes} bytes after the {expected_bytes} bytes of data that the header "
            "declares (corrupt file?)",
            path,
        )
    if numel == 0:
        return torch.empty(sizes, dtype=dtype)
    elements = torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=offset, count=expected_bytes)
    if item_size > 1:  # big-endian on disk -> native (little-endian) order
        elements = elements.view(-1, item_size).flip(-1).contiguous()
    return elements.view(dtype).reshape(sizes)


def write_idx(path: PathLike, tensor: torch.Tensor, compress: Optional[bool] = None) -> Path:
    """Write ``tensor`` as an IDX file, gzipped when ``compress`` is true (default: when ``path`` ends in .gz).

    The inverse of :func:`read_idx`; handy for making small subsets and test files.
    """
    path = Path(path)
    if tensor.dtype not in _IDX_CODES:
        known = ", ".join(str(dtype) for dtype in _IDX_CODES)
        raise TypeError(f"write_idx: tensor dtype {tensor.dtype} has no IDX type (supported: {known})")
    if tensor.dim() == 0 or tensor.dim() > 255:
        raise ValueError(f"write_idx: tensor must have 1 to 255 dimensions, got {tensor.dim()}")
    header = struct.pack(f">HBB{tensor.dim()}I", 0, _IDX_CODES[tensor.dtype], tensor.dim(), *tensor.shape)
    item_size = tensor.element_size()
    elements = tensor.detach().cpu().contiguous().view(torch.uint8).view(-1, item_size)
    if item_size > 1:
        elements = elements.flip(-1)
    elements = elements.contiguous()
    payload = ctypes.string_at(elements.data_ptr(), elements.numel()) if elements.numel() > 0 else b""
    content = header + payload
    if compress is None:
        compress = path.suffix == ".gz"
    path.write_bytes(gzip.compress(content) if compress else content)
    return path


# ------------------------------------------------------------------------------------------ finding the files


def _spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` called ``name``."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}") from None


def candidate_dirs(name: str, data_dir: Optional[PathLike] = None) -> list[Path]:
    """The directories searched, in order, for dataset ``name`` (see the module docstring)."""
    spec = _spec(name)
    roots = [Path(data_dir)] if data_dir is not None else [DEFAULT_DATA_DIR]
    dirs = [d for root in roots for d in (root / spec.torchvision_folder / "raw", root / spec.name, root)]
    if data_dir is None:
        dirs.extend(spec.system_dirs)
    return dirs


def _find_in_dir(directory: Path, file_name: str) -> Optional[Path]:
    """``directory/file_name`` or, failing that, ``directory/file_name.gz``, whichever exists."""
    for candidate in (directory / file_name, directory / f"{file_name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _how_to_get(spec: DatasetSpec, data_dir: Optional[PathLike]) -> str:
    """A few lines that tell a user how to get the files of ``spec``."""
    target = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    names = ", ".join(f"{name}.gz" for name in spec.file_names)
    lines = [
        f"To get {spec.name}: run again with --download (needs torchvision and a network), or fetch the four files "
        f"({names}) from {spec.home_page} and put them in {target}/ or {target / spec.torchvision_folder / 'raw'}/.",
    ]
    if spec.name == "fashion-mnist":
        lines.append(
            f"On Debian/Ubuntu: apt-get install dataset-fashion-mnist (installs them in {DEBIAN_FASHION_MNIST_DIR}/)."
        )
    return "\n".join(lines)


def find_dataset_files(name: str, data_dir: Optional[PathLike] = None) -> tuple[Path, Path, Path, Path]:
    """The paths of the four IDX files of dataset ``name``: train images, train labels, test images, test labels.

    The first directory of :func:`candidate_dirs` that holds any of the four files is taken, and must hold all four.

    Raises:
        DatasetNotFoundError: no directory holds them, or the one that holds some lacks others.
    """
    spec = _spec(name)
    searched = candidate_dirs(name, data_dir)
    for directory in searched:
        found = [_find_in_dir(directory, file_name) for file_name in spec.file_names]
        if not any(found):
            continue
        missing = [f"{directory / n}[.gz]" for n, path in zip(spec.file_names, found) if path is None]
        if missing:
            raise DatasetNotFoundError(
                f"{spec.name}: {directory} holds some of the files but not: {', '.join(missing)}\n"
                + _how_to_get(spec, data_dir),
                directory / spec.file_names[found.index(None)],
            )
        return tuple(found)  # type: ignore[return-value]
    where = "\n".join(f"  {d}" for d in searched)
    raise DatasetNotFoundError(
        f"{spec.name}: no IDX files ({spec.file_names[0]}[.gz], ...) found; looked in:\n{where}\n"
        + _how_to_get(spec, data_dir),
        searched[0],
    )


# ------------------------------------------------------------------------------------------------- loading


def _read_split(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (uint8, N x 28 x 28) and labels (int64, N) of one split, checked against each other."""
    images = read_idx(images_path, expected_ndim=3, expected_dtype=torch.uint8)
    if tuple(images.shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE):
        raise DatasetError(
            f"{images_path}: images of {images.shape[1]}x{images.shape[2]} pixels, expected "
            f"{IMAGE_SIZE}x{IMAGE_SIZE}",
            images_path,
        )
    labels = read_idx(labels_path, expected_ndim=1, expected_dtype=torch.uint8)
    if labels.shape[0] != images.shape[0]:
        raise DatasetError(
            f"{labels_path}: {labels.shape[0]} labels, but {images_path} holds {images.shape[0]} images",
            labels_path,
        )
    if labels.numel() > 0 and int(labels.max()) >= NUM_CLASSES:
        raise DatasetError(
            f"{labels_path}: label {int(labels.max())} out of range (expected 0 to {NUM_CLASSES - 1})", labels_path
        )
    return images, labels.long()


def load_dataset(name: str, data_dir: Optional[PathLike] = None) -> ImageDataset:
    """Read dataset ``name`` (``"mnist"`` or ``"fashion-mnist"``) from its IDX files.

    Args:
        name: a key of :data:`DATASETS`.
        data_dir: where to look (see the module docstring); ``None`` searches ``./data`` and, for Fashion-MNIST,
            Debian's location.

    Returns:
        An :class:`ImageDataset`, which unpacks as
        ``(train_images, train_labels, test_images, test_labels, description)``.

    Raises:
        DatasetNotFoundError, DatasetError: see :func:`find_dataset_files` and :func:`read_idx`.
    """
    paths = find_dataset_files(name, data_dir)
    train_images, train_labels = _read_split(paths[0], paths[1])
    test_images, test_labels = _read_split(paths[2], paths[3])
    shapes = [train_images.shape, train_labels.shape, test_images.shape, test_labels.shape]
    lines = [f"{name} from {paths[0].parent}:"]
    lines += [f"  {path.name}  ({'x'.join(map(str, shape))})" for path, shape in zip(paths, shapes)]
    return ImageDataset(train_images, train_labels, test_images, test_labels, "\n".join(lines))


def download_dataset(name: str, data_dir: Optional[PathLike] = None) -> Path:
    """Download dataset ``name`` with torchvision.datasets into ``data_dir`` (default ``./data``).

    The files land in ``data_dir/MNIST/raw/`` (or ``FashionMNIST/raw/``), where :func:`load_dataset` finds them.
    Returns that directory.

    Raises:
        DatasetError: torchvision is not installed or the download failed; the message says how to get the files.
    """
    spec = _spec(name)
    root = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    try:
        import torchvision.datasets as tv_datasets  # noqa: PLC0415 (optional dependency)
    except ImportError:
        raise DatasetError(
            "--download needs torchvision, which is not installed (pip install torchvision).\n"
            + _how_to_get(spec, data_dir)
        ) from None
    dataset_cls = tv_datasets.MNIST if spec.name == "mnist" else tv_datasets.FashionMNIST
    try:
        dataset_cls(root=str(root), train=True, download=True)
        dataset_cls(root=str(root), train=False, download=True)
    except Exception as error:  # noqa: BLE001 (torchvision raises RuntimeError, URLError, OSError, ...)
        raise DatasetError(
            f"downloading {spec.name} into {root} failed ({type(error).__name__}: {error}).\n"
            + _how_to_get(spec, data_dir),
            root,
        ) from error
    return root / spec.torchvision_folder / "raw"
