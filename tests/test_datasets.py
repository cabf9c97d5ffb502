"""Dataset loaders: the bundled digits split, and MNIST / Fashion-MNIST / CIFAR-10 files
written by the tests in the real formats (IDX, python pickles, binary batches)."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest

from pymodel.datasets import load_dataset, read_idx, write_idx


def test_digits_split_is_fixed_stratified_and_disjoint():
    a = load_dataset("digits")
    b = load_dataset("digits")
    assert a.x_train.shape == (1442, 1, 8, 8) and a.x_test.shape == (355, 1, 8, 8)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    # every class is in the test set, in proportion (every fifth image of each class)
    counts = np.bincount(a.y_test, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 37
    # disjoint: no test image equals a train image at the same position of the full set
    from sklearn.datasets import load_digits
    full = load_digits().images.reshape(1797, -1) / 16.0
    flat = np.concatenate([a.x_train.reshape(len(a.x_train), -1), a.x_test.reshape(len(a.x_test), -1)])
    # train ∪ test is exactly the full set (as a multiset of images): nothing lost or duplicated
    key = lambda m: sorted(map(bytes, (m * 16).astype(np.uint8)))  # noqa: E731
    assert key(flat) == key(full)
    # the split rule: within class c, the images of rank 4, 9, 14, ... are test images
    y_full = load_digits().target
    idx3 = np.flatnonzero(y_full == 3)
    np.testing.assert_array_equal(a.x_test[a.y_test == 3].reshape(-1, 64), full[idx3[4::5]])
    val = a.validation_split(0.2)
    assert len(val.x_train) + len(val.x_test) == 1442
    np.testing.assert_array_equal(val.x_test, a.validation_split(0.2).x_test)


def _mnist_like(rng, n):
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def _write_mnist(folder, rng, gz=True, dot_names=False, n_train=12, n_test=5):
    folder.mkdir(parents=True, exist_ok=True)
    sfx = ".gz" if gz else ""
    sep = "." if dot_names else "-"
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x, y = _mnist_like(rng, n)
        write_idx(folder / f"{prefix}-images{sep}idx3-ubyte{sfx}", x)
        write_idx(folder / f"{prefix}-labels{sep}idx1-ubyte{sfx}", y)
        data[prefix] = (x, y)
    return data


@pytest.mark.parametrize("name,sub,gz,dot", [("mnist", "", True, False), ("mnist", "MNIST/raw", False, False),
                                             ("fashion-mnist", "fashion-mnist", True, True),
                                             ("fashion-mnist", "FashionMNIST/raw", False, False)])
def test_idx_datasets_load_from_user_directory(tmp_path, name, sub, gz, dot):
    rng = np.random.default_rng(0)
    data = _write_mnist(tmp_path / sub if sub else tmp_path, rng, gz=gz, dot_names=dot)
    ds = load_dataset(name, tmp_path)
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (5, 1, 28, 28)
    np.testing.assert_allclose(ds.x_train[:, 0] * 255, data["train"][0])
    np.testing.assert_array_equal(ds.y_test, data["t10k"][1])
    assert ds.y_train.dtype == np.int64 and ds.n_classes == 10


def test_idx_round_trip_other_dtypes(tmp_path):
    arr = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "a.idx", arr)), arr)
    f = np.linspace(-1, 1, 6).astype(np.float64)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "f.idx.gz", f), ndim=1), f)


def test_idx_errors_name_the_file(tmp_path):
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match="--data-dir"):
        load_dataset("mnist")
    with pytest.raises(FileNotFoundError, match="data directory not found"):
        load_dataset("mnist", tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_dataset("mnist", tmp_path)
    _write_mnist(tmp_path, rng, gz=False)
    img = tmp_path / "train-images-idx3-ubyte"
    good = img.read_bytes()
    img.write_bytes(b"\x01\x02" + good[2:])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: bad IDX magic"):
        load_dataset("mnist", tmp_path)
    img.write_bytes(good[:-7])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: IDX data has \d+ bytes, expected"):
        load_dataset("mnist", tmp_path)
    img.write_bytes(good)
    lab = tmp_path / "t10k-labels-idx1-ubyte"
    write_idx(lab, np.zeros(4, dtype=np.uint8))  # 4 labels for 5 images
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: 4 labels for 5 images"):
        load_dataset("mnist", tmp_path)
    write_idx(lab, np.full(5, 12, dtype=np.uint8))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: labels must be in 0..9"):
        load_dataset("mnist", tmp_path)
    write_idx(lab, np.zeros((5, 1), dtype=np.uint8))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: IDX file has 2 dimensions, expected 1"):
        load_dataset("mnist", tmp_path)
    gzf = tmp_path / "bad.gz"
    gzf.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="bad.gz: cannot read"):
        read_idx(gzf)


def _cifar_arrays(rng, n):
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n)


def test_cifar10_python_batches(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        x, y = _cifar_arrays(rng, 3)
        batches[name] = (x, y)
        # the original files are Python 2 pickles with bytes keys; accept str keys as well
        d = {b"data": x, b"labels": list(map(int, y))} if i % 2 else {"data": x, "labels": list(map(int, y))}
        with open(folder / name, "wb") as fh:
            pickle.dump(d, fh, protocol=2)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.x_train.shape == (15, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    x0 = batches["data_batch_1"][0][0]
    # channel-major rows: 1024 red, 1024 green, 1024 blue values
    np.testing.assert_allclose(ds.x_train[0, 1] * 255, x0[1024:2048].reshape(32, 32))
    np.testing.assert_array_equal(ds.y_test, batches["test_batch"][1])


def test_cifar10_binary_batches_and_errors(tmp_path):
    rng = np.random.default_rng(3)
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        load_dataset("cifar10", tmp_path)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name in [f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]:
        x, y = _cifar_arrays(rng, 2)
        (folder / f"{name}.bin").write_bytes(np.concatenate([y[:, None].astype(np.uint8), x], axis=1).tobytes())
    ds = load_dataset("cifar10", tmp_path)
    assert ds.x_train.shape == (10, 3, 32, 32) and ds.input_shape == (3, 32, 32)
    (folder / "test_batch.bin").write_bytes(b"\x00" * 3000)
    with pytest.raises(ValueError, match="test_batch.bin: size 3000 is not a positive multiple of 3073"):
        load_dataset("cifar10", tmp_path)


def test_cifar10_refuses_pickles_that_run_code(tmp_path):
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": Evil(), "labels": []}, fh)
    with pytest.raises(ValueError, match="data_batch_1: not a CIFAR-10 python batch .*refusing"):
        load_dataset("cifar10", tmp_path)


def test_unknown_dataset_and_limits():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet")
    ds = load_dataset("digits").limit(100, 50)
    assert len(ds.x_train) == 100 and len(ds.x_test) == 50
    with pytest.raises(ValueError, match="train limit"):
        load_dataset("digits").limit(0)
