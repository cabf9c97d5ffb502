"""Datasets for the training studies; nothing is ever downloaded.

* ``digits`` — scikit-learn's bundled 8×8 handwritten digits (1,797 images), always
  available.  Fixed split, independent of any random generator: within each class,
  taken in the order scikit-learn stores them, every fifth image (rank 4, 9, 14, … in
  that class) is a test image, the rest train — 1,442 train / 355 test images.
* ``mnist``, ``fashion-mnist`` — IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``,
  each optionally ``.gz``; the ``.idx3-ubyte`` spelling is accepted too) from a
  directory the user supplies, or its ``mnist/``, ``MNIST/raw/``, ``fashion-mnist/``,
  ``FashionMNIST/raw/`` sub-folder (the torchvision layout).
* ``cifar10`` — the python batches (``cifar-10-batches-py/data_batch_1..5``,
  ``test_batch``) or the binary ones (``cifar-10-batches-bin/data_batch_1..5.bin``,
  ``test_batch.bin``), in the directory or the named sub-folder.

Pixels are scaled to [0, 1]; images are float64 NCHW, labels int64.  A missing or
malformed file raises ``FileNotFoundError`` / ``ValueError`` naming the file and what
was expected.
"""

from __future__ import annotations

import gzip
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")


@dataclass
class Dataset:
    """Train/test arrays of one dataset (images NCHW float64 in [0, 1], labels int64)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    source: str = ""

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def limit(self, train: int | None = None, test: int | None = None) -> "Dataset":
        """The first ``train`` / ``test`` images (for quick runs on big datasets)."""
        for nm, v in (("train limit", train), ("test limit", test)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
                raise ValueError(f"{nm} must be a positive integer, not {v!r}")
        tr = slice(None) if train is None else slice(0, int(train))
        te = slice(None) if test is None else slice(0, int(test))
        return Dataset(self.name, self.x_train[tr], self.y_train[tr], self.x_test[te], self.y_test[te],
                       self.n_classes, self.source)

    def validation_split(self, fraction: float = 0.2) -> "Dataset":
        """Hold out part of the *training* set as the test set (for tuning; test data untouched).

        Deterministic: within each class every ``round(1/fraction)``-th training image
        (the last of each group) goes to validation.
        """
        if not 0 < fraction < 1:
            raise ValueError(f"validation fraction must be in (0, 1), not {fraction!r}")
        period = max(2, int(round(1 / fraction)))
        val = _every_nth_per_class(self.y_train, period)
        return Dataset(f"{self.name}-val", self.x_train[~val], self.y_train[~val], self.x_train[val],
                       self.y_train[val], self.n_classes, self.source + " (validation split of train)")


def _every_nth_per_class(labels: np.ndarray, period: int) -> np.ndarray:
    """Mask: the images whose rank within their class is ``period−1 (mod period)``."""
    mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        mask[idx[period - 1::period]] = True
    return mask


# ---------------------------------------------------------------------------- digits
def load_digits() -> Dataset:
    from sklearn.datasets import load_digits as _sk_digits

    d = _sk_digits()
    x = (d.images.astype(np.float64) / 16.0)[:, None, :, :]
    y = d.target.astype(np.int64)
    test = _every_nth_per_class(y, 5)
    return Dataset("digits", x[~test], y[~test], x[test], y[test], 10, "scikit-learn load_digits")


# ---------------------------------------------------------------------------- IDX (MNIST)
_IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ValueError(f"{path}: cannot read ({exc})") from exc


def read_idx(path: "str | Path", ndim: int | None = None) -> np.ndarray:
    """Parse one IDX file (optionally gzipped): magic 0x0000TTNN, big-endian sizes, data."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: IDX file not found")
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: bad IDX magic {raw[:4].hex()} (expected 0000TTNN with type 08..0e)")
    dtype, nd = _IDX_DTYPES[raw[2]], raw[3]
    if ndim is not None and nd != ndim:
        raise ValueError(f"{path}: IDX file has {nd} dimensions, expected {ndim}")
    head = 4 + 4 * nd
    if len(raw) < head:
        raise ValueError(f"{path}: truncated IDX header")
    dims = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=nd, offset=4))
    need = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - head != need:
        raise ValueError(f"{path}: IDX data has {len(raw) - head} bytes, expected {need} for shape {dims}")
    return np.frombuffer(raw, dtype=dtype, offset=head).reshape(dims)


def _find(dirs: list[Path], stems: list[str], what: str) -> Path:
    tried = []
    for d in dirs:
        for stem in stems:
            for suffix in ("", ".gz"):
                p = d / (stem + suffix)
                tried.append(p)
                if p.is_file():
                    return p
    raise FileNotFoundError(f"{what} not found: expected {stems[0]}[.gz] in {dirs[0]}"
                            + (f" (also looked in {', '.join(str(d) for d in dirs[1:])})" if len(dirs) > 1 else ""))


def _search_dirs(data_dir: "str | Path | None", subdirs: tuple[str, ...], dataset: str) -> list[Path]:
    if data_dir is None:
        raise ValueError(f"dataset {dataset!r} needs --data-dir: the directory holding its files "
                         "(nothing is downloaded)")
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data directory not found (dataset {dataset!r})")
    return [root] + [root / s for s in subdirs if (root / s).is_dir()]


def load_idx_dataset(name: str, data_dir: "str | Path | None") -> Dataset:
    """MNIST or Fashion-MNIST from IDX files (same file names for both)."""
    subdirs = {"mnist": ("mnist", "MNIST/raw", "MNIST"),
               "fashion-mnist": ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "FashionMNIST")}[name]
    dirs = _search_dirs(data_dir, subdirs, name)
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        ip = _find(dirs, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"], f"{name} {split} images")
        lp = _find(dirs, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"], f"{name} {split} labels")
        images = read_idx(ip, ndim=3)
        labels = read_idx(lp, ndim=1)
        if images.dtype != np.uint8:
            raise ValueError(f"{ip}: images must be unsigned bytes (IDX type 08), got {images.dtype}")
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{lp}: {labels.shape[0]} labels for {images.shape[0]} images in {ip.name}")
        if images.shape[0] == 0:
            raise ValueError(f"{ip}: no images")
        if labels.min() < 0 or labels.max() > 9:
            raise ValueError(f"{lp}: labels must be in 0..9, found {int(labels.min())}..{int(labels.max())}")
        parts[split] = (images.astype(np.float64)[:, None] / 255.0, labels.astype(np.int64))
    return Dataset(name, *parts["train"], *parts["test"], 10, f"IDX files in {dirs[0]}")


# ---------------------------------------------------------------------------- CIFAR-10
class _SafeUnpickler(pickle.Unpickler):
    """Loads only what a CIFAR batch holds (dicts, lists, bytes, NumPy arrays): no code runs."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _cifar_py_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        obj = _SafeUnpickler(io.BytesIO(_read_bytes(path)), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(f"{path}: not a CIFAR-10 python batch ({exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict with 'data' and 'labels', got {type(obj).__name__}")
    get = lambda key: obj.get(key.encode(), obj.get(key))  # noqa: E731 — py2 pickles have bytes keys
    data, labels = get("data"), get("labels")
    if data is None or labels is None:
        raise ValueError(f"{path}: expected keys 'data' and 'labels', found {sorted(map(str, obj))}")
    data = np.asarray(data)
    labels = np.asarray(labels)
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise ValueError(f"{path}: 'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: {labels.size} labels for {data.shape[0]} images")
    return data, labels


def _cifar_bin_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = _read_bytes(path)
    if len(raw) == 0 or len(raw) % 3073:
        raise ValueError(f"{path}: size {len(raw)} is not a positive multiple of 3073 "
                         "(1 label byte + 3072 pixel bytes per record)")
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3073)
    return rec[:, 1:], rec[:, 0]


def load_cifar10(data_dir: "str | Path | None") -> Dataset:
    dirs = _search_dirs(data_dir, ("cifar-10-batches-py", "cifar-10-batches-bin", "cifar10", "cifar-10"), "cifar10")
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    files: list[Path] | None = None
    for d in dirs:  # python batches first, then binary
        if all((d / n).is_file() or (d / f"{n}.gz").is_file() for n in names):
            files = [d / n if (d / n).is_file() else d / f"{n}.gz" for n in names]
            reader = _cifar_py_batch
            break
        if all((d / f"{n}.bin").is_file() for n in names):
            files = [d / f"{n}.bin" for n in names]
            reader = _cifar_bin_batch
            break
    if files is None:
        missing = [n for n in names if not any((d / n).is_file() or (d / f"{n}.bin").is_file() for d in dirs)]
        raise FileNotFoundError(
            f"CIFAR-10 batches not found in {dirs[0]}: expected {', '.join(names)} (python) or the same "
            f"with .bin (binary), in the directory or cifar-10-batches-py/ or cifar-10-batches-bin/; "
            f"missing {missing or names}")
    batches = [reader(f) for f in files]
    for f, (_, labels) in zip(files, batches):
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(f"{f}: labels must be in 0..9, found {int(labels.min())}..{int(labels.max())}")
    to_x = lambda d: d.reshape(-1, 3, 32, 32).astype(np.float64) / 255.0  # noqa: E731
    xtr = np.concatenate([to_x(b[0]) for b in batches[:5]])
    ytr = np.concatenate([b[1] for b in batches[:5]]).astype(np.int64)
    return Dataset("cifar10", xtr, ytr, to_x(batches[5][0]), batches[5][1].astype(np.int64), 10,
                   f"CIFAR-10 batches in {files[0].parent}")


def load_dataset(name: str, data_dir: "str | Path | None" = None) -> Dataset:
    """Load a dataset by name: ``digits`` (bundled) or ``mnist`` / ``fashion-mnist`` / ``cifar10``
    from ``data_dir``."""
    key = name.lower().replace("_", "-")
    if key == "fashionmnist":
        key = "fashion-mnist"
    if key in ("cifar-10",):
        key = "cifar10"
    if key == "digits":
        return load_digits()
    if key in ("mnist", "fashion-mnist"):
        return load_idx_dataset(key, data_dir)
    if key == "cifar10":
        return load_cifar10(data_dir)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


# ---------------------------------------------------------------------------- writers (tests, tools)
def write_idx(path: "str | Path", array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzipped when the name ends in .gz)."""
    codes = {v: k for k, v in _IDX_DTYPES.items()}
    arr = np.asarray(array)
    dt = arr.dtype.newbyteorder(">") if arr.dtype.itemsize > 1 else arr.dtype
    if dt not in codes:
        raise TypeError(f"IDX cannot store dtype {arr.dtype}")
    header = bytes([0, 0, codes[dt], arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    payload = header + arr.astype(dt).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)
    return path
