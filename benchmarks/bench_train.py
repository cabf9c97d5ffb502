"""Benchmark: seconds per training epoch, split into forward, backward and update, per method.

    python benchmarks/bench_train.py --size mnist          # 60,000 + 10,000 random 28×28 images
    python benchmarks/bench_train.py --size cifar          # 50,000 + 10,000 random 3×32×32 images
    python benchmarks/bench_train.py --size digits --epochs 40 --methods sbpca   # the bundled digits

For ``mnist`` and ``cifar`` the script writes MNIST-shaped IDX files / CIFAR-10 binary batches
of random pixels itself (only time is measured, accuracy means nothing here) and loads them
through the same loaders a user's files go through.  ``--train-limit N`` times N images and
scales the seconds to the full epoch (said in the output).  Each method trains the default
CNN (batch 64, rank 4, sub-batch 16) without the optional gradient-error measurement.

Methods: ``mbgd``, ``sbpca`` (float64), ``sbpca:q16`` (bit-accurate fixed point; any format
set name after the colon), ``svd``, ``powersgd``; ``sbpca@numpy`` runs the NumPy reference
instead of the compiled kernel.  The last table row is the same network's forward + backward
in PyTorch on the CPU (one thread, as the NumPy CNN), as a ratio.

Targets (issue 12): update / (forward + backward) ≤ 1.0 for q16 SBPCA and ≤ 0.5 for float SBPCA.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pymodel.datasets import load_dataset, write_idx  # noqa: E402
from pymodel.training import TrainConfig, to_jsonable, train  # noqa: E402

SIZES = {"mnist": ("mnist", (1, 28, 28), 60000, 10000), "cifar": ("cifar10", (3, 32, 32), 50000, 10000),
         "digits": ("digits", (1, 8, 8), None, None)}
TARGETS = {"sbpca": 0.5, "sbpca:q16": 1.0}


def write_random_dataset(size: str, root: Path, seed: int = 0) -> Path:
    """Random images in the on-disk format of ``size`` (IDX for mnist, binary batches for cifar)."""
    rng = np.random.default_rng(seed)
    _, shape, n_train, n_test = SIZES[size]
    if size == "mnist":
        for prefix, n in (("train", n_train), ("t10k", n_test)):
            write_idx(root / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
            write_idx(root / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8))
        return root
    out = root / "cifar-10-batches-bin"
    out.mkdir(parents=True, exist_ok=True)
    per = 3 * 32 * 32
    for name, n in [(f"data_batch_{i}", n_train // 5) for i in range(1, 6)] + [("test_batch", n_test)]:
        rec = np.empty((n, 1 + per), dtype=np.uint8)
        rec[:, 0] = rng.integers(0, 10, n, dtype=np.uint8)
        rec[:, 1:] = rng.integers(0, 256, (n, per), dtype=np.uint8)
        (out / f"{name}.bin").write_bytes(rec.tobytes())
    return root


def warm_kernels() -> None:
    """Compile (or load from the cache) the SBPCA kernels before anything is timed."""
    from pymodel.sbpca import SBPCA

    rng = np.random.default_rng(0)
    x, d = rng.standard_normal((5, 3)), rng.standard_normal((5, 4))
    for fixed in (False, "q16"):
        SBPCA(4, 3, 2, 2, fixed=fixed).update(x, d)


def parse_method(spec: str) -> dict:
    """``sbpca:q16@numpy`` -> method sbpca, fixed q16, backend numpy."""
    backend = "compiled"
    if "@" in spec:
        spec, backend = spec.split("@", 1)
    method, _, fixed = spec.partition(":")
    return {"method": method, "fixed": fixed or None, "backend": backend}


def torch_forward_backward(shape: tuple[int, int, int], batches: int, batch: int, seed: int) -> float:
    """Seconds for ``batches`` forward + backward passes of the same CNN in PyTorch (CPU, 1 thread)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    c, h, w = shape
    net = nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(16 * (h // 4) * (w // 4), 10)).double()
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, c, h, w, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (batch,), generator=g)
    t0 = time.perf_counter()
    for _ in range(batches):
        net.zero_grad()
        F.cross_entropy(net(x), y).backward()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="mnist")
    p.add_argument("--methods", default="mbgd,sbpca,sbpca:q16,svd,powersgd")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-limit", type=int, default=None, help="time this many images, scale to the epoch")
    p.add_argument("--data-dir", default=None, help="use these dataset files instead of random ones")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    dataset, shape, n_full, _ = SIZES[args.size]
    tmp = None
    data_dir = args.data_dir
    if data_dir is None and args.size != "digits":
        tmp = tempfile.TemporaryDirectory(prefix=f"bench_{args.size}_")
        t0 = time.perf_counter()
        data_dir = str(write_random_dataset(args.size, Path(tmp.name), args.seed))
        print(f"wrote random {args.size} files in {time.perf_counter() - t0:.1f} s")
    data = load_dataset(dataset, data_dir)
    n_full = len(data.x_train)
    if args.train_limit:
        data = data.limit(train=args.train_limit, test=1000)
    else:
        data = data.limit(test=1000)
    n_used = len(data.x_train)
    scale = n_full / n_used / args.epochs  # seconds per full epoch
    print(f"{args.size}: {n_full} training images of {'x'.join(map(str, shape))}; timing {n_used} "
          f"x {args.epochs} epoch(s){'' if scale == 1 else f', scaled to one {n_full}-image epoch'}; "
          f"cnn, batch 64, rank 4, s 16; {os.cpu_count()} CPU(s), 1 BLAS thread")
    t0 = time.perf_counter()
    warm_kernels()
    print(f"compiled kernels ready in {time.perf_counter() - t0:.1f} s (compiled on the first run on a "
          f"machine, loaded from numba's cache afterwards; not part of the epoch times)")
    rows = []
    for spec in args.methods.split(","):
        m = parse_method(spec)
        cfg = TrainConfig(dataset=dataset, model="cnn", method=m["method"], rank=4, sub_batch=16, batch=64,
                          epochs=args.epochs, seed=args.seed, fixed=m["fixed"], backend=m["backend"],
                          measure_error=False)
        t = train(cfg, data=data)["time"]
        fwd, bwd, upd = (t[f"{k}_s"] * scale for k in ("forward", "backward", "update"))
        rows.append({"method": spec, "forward_s": fwd, "backward_s": bwd, "update_s": upd,
                     "update_ratio": upd / (fwd + bwd)})
        print(f"  {spec:<16} forward {fwd:7.2f} s  backward {bwd:7.2f} s  update {upd:7.2f} s  "
              f"update/(fwd+bwd) {upd / (fwd + bwd):6.2f}", flush=True)
    n_batches = -(-n_used // 64)
    torch_s = torch_forward_backward(shape, n_batches, 64, args.seed) * (n_full / n_used)  # one epoch
    numpy_fb = float(np.median([r["forward_s"] + r["backward_s"] for r in rows]))
    print()
    print(f"| method | forward s/epoch | backward s/epoch | update s/epoch | update / (fwd + bwd) | target |")
    print("|---|---|---|---|---|---|")
    ok = True
    for r in rows:
        target = TARGETS.get(r["method"])
        met = "" if target is None else (f"≤ {target}: {'met' if r['update_ratio'] <= target else 'NOT met'}")
        ok &= target is None or r["update_ratio"] <= target
        print(f"| {r['method']} | {r['forward_s']:.2f} | {r['backward_s']:.2f} | {r['update_s']:.2f} | "
              f"{r['update_ratio']:.2f} | {met} |")
    print(f"\nPyTorch CPU forward + backward of the same net: {torch_s:.2f} s/epoch; NumPy CNN (median over "
          f"methods) {numpy_fb:.2f} s/epoch: NumPy / PyTorch = {numpy_fb / torch_s:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(to_jsonable({
            "size": args.size, "images_timed": n_used, "epoch_images": n_full, "epochs": args.epochs,
            "rows": rows, "torch_forward_backward_s": torch_s, "numpy_forward_backward_s": numpy_fb}), indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
