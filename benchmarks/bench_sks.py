"""Gradient error of every low-rank estimator on the *same* streams, against the optimum.

Trains the digits CNN with MBGD (exact gradients, so the trajectory does not depend on
any estimator) and, at every batch, feeds each weight layer's (x, δ) stream to side
estimators: sbpca, sks, sks-unbiased, powersgd with and without error feedback, and the
exact rank-k truncated SVD (the Eckart–Young optimum).  Reports the mean relative error
‖G − Ĝ‖/‖G‖ per layer and method, and each method's ratio to the optimum's, plus the
update time per batch of each estimator.

    python benchmarks/bench_sks.py --epochs 40 --seeds 0,1,2 --json sks_errors.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from pymodel.baselines import make_estimator
from pymodel.training import Trainer, TrainConfig, blas_limit

METHODS = {  # label -> (make_estimator method, kwargs)
    "svd (optimum)": ("svd", {}),
    "sbpca": ("sbpca", {}),
    "sks": ("sks", {}),
    "sks-unbiased": ("sks-unbiased", {}),
    "powersgd EF": ("powersgd", {"error_feedback": True}),
    "powersgd no EF": ("powersgd", {"error_feedback": False}),
}


def run_seed(seed: int, epochs: int, rank: int, sub_batch: int, block: int, lr: float) -> dict:
    cfg = TrainConfig(method="mbgd", epochs=epochs, seed=seed, lr=lr, measure_error=False)
    tr = Trainer(cfg)
    layers = tr.model.weight_layers
    ests = {}
    for i, layer in enumerate(layers):
        k = min(rank, layer.rows, layer.cols)
        for label, (m, kw) in METHODS.items():
            ests[layer.name, label] = make_estimator(m, layer.rows, layer.cols, rank=k, sub_batch=sub_batch,
                                                     seed=seed * 1009 + i + 1, block=block, **kw)
    err = {key: 0.0 for key in ests}
    secs = dict.fromkeys(METHODS, 0.0)
    n = 0
    with blas_limit(1):
        for epoch in range(epochs):
            for b, (xb, yb) in enumerate(tr.batches()):
                tr.forward_backward(xb, yb, epoch, b)
                for layer in layers:
                    x, d = layer.stream_x, layer.stream_delta
                    G = d.T @ x
                    nG = float(np.linalg.norm(G))
                    for label in METHODS:
                        est = ests[layer.name, label]
                        t0 = time.perf_counter()
                        est.update(x, d)
                        G_hat = est.gradient()
                        secs[label] += time.perf_counter() - t0
                        err[layer.name, label] += float(np.linalg.norm(G - G_hat)) / nG if nG > 0 else 0.0
                tr.apply_updates(len(xb), epoch, b)
                n += 1
    out = {"seed": seed, "batches": n, "error": {}, "seconds_per_batch": {k: v / n for k, v in secs.items()}}
    for (name, label), v in err.items():
        out["error"].setdefault(name, {})[label] = v / n
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--sub-batch", type=int, default=16)
    p.add_argument("--block", type=int, default=1)
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    runs = []
    for s in (int(v) for v in a.seeds.split(",")):
        runs.append(run_seed(s, a.epochs, a.rank, a.sub_batch, a.block, a.lr))
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"args": vars(a), "runs": runs}, f, indent=1)
    layers = list(runs[0]["error"])
    print(f"mean relative error ||G - Ĝ||/||G|| over {len(runs)} seed(s) x {runs[0]['batches']} batches "
          f"(MBGD trajectory, lr {a.lr}, rank {a.rank}, sbpca sub-batch {a.sub_batch}, sks block {a.block})")
    print("| method | " + " | ".join(layers) + " | ratio to optimum | update s/batch |")
    print("|---|" + "---|" * (len(layers) + 2))
    for label in METHODS:
        errs = [np.mean([r["error"][ly][label] for r in runs]) for ly in layers]
        opt = [np.mean([r["error"][ly]["svd (optimum)"] for r in runs]) for ly in layers]
        ratio = " / ".join(f"{e / o:.2f}" for e, o in zip(errs, opt))
        t = np.mean([r["seconds_per_batch"][label] for r in runs])
        print(f"| {label} | " + " | ".join(f"{e:.3f}" for e in errs) + f" | {ratio} | {t:.4f} |")


if __name__ == "__main__":
    main()
