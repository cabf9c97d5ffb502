"""How well a pulsed rank-k update reproduces -η Ĝ: the number a designer picks BL from.

For a 64 x 64 array and a rank-4 SBPCA estimate Ĝ (float SBPCA on a synthetic
low-rank stream), apply ``W -= η Ĝ`` as four rank-1 pulse updates and report the
relative error ``‖ΔW - (-η Ĝ)‖ / ‖η Ĝ‖`` for both schemes, BL in {7, 15, 31, 63}
(plus BL chosen by update management, 'auto'), on ideal and non-ideal devices.
η is set so the largest intended cell change is ``--steps`` device steps
(``max|η Ĝ| = steps · Δw_min``).  Each cell is the mean ± std over ``--seeds``.

Run: ``python benchmarks/bench_update.py [--steps 4,16] [--seeds 5] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from pymodel.crossbar import make_array
from pymodel.sbpca import SBPCA
from pymodel.streams import low_rank_stream

BLS = (7, 15, 31, 63)


def factors_for(seed: int, rows: int, cols: int, rank: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Rank-k factor pairs (B σ_c Δ_c, X_c) of a float SBPCA estimate after a few batches."""
    rng = np.random.default_rng(seed)
    draw = low_rank_stream(rng, rows, cols, batch=64)
    est = SBPCA(rows, cols, rank, sub_batch=64, seed=seed)
    for _ in range(4):
        est.update(*draw())
    return est.factors()


def relative_error(device: str, scheme: str, bl: int | None, steps: float, seed: int,
                   shape: tuple[int, int], rank: int) -> tuple[float, int]:
    """One trial: relative error of the array's change, and the slots it took."""
    factors = factors_for(seed, *shape, rank)
    g_hat = sum(np.outer(u, v) for u, v in factors)
    arr = make_array(device, shape, seed=seed, bl_max=max(BLS))
    rng = np.random.default_rng(seed + 1000)
    arr.program(rng.uniform(-0.3, 0.3, shape))  # away from 0 so soft bounds matter
    lr = steps * arr.dw_min / np.abs(g_hat).max()
    w0 = arr.weights
    stats = arr.apply_update(factors, lr, scheme=scheme, bl=bl)
    target = -lr * g_hat
    return float(np.linalg.norm(arr.weights - w0 - target) / np.linalg.norm(target)), stats["slots"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--cols", type=int, default=64)
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--steps", default="4,16", help="largest intended cell change in device steps (list)")
    ap.add_argument("--devices", default="ideal,realistic", help="device models (list)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--json", default=None, help="write the table as JSON here")
    args = ap.parse_args()
    steps_list = [float(s) for s in args.steps.split(",")]
    devices = args.devices.split(",")
    shape = (args.rows, args.cols)
    cols = [*BLS, None]
    rows = []
    t0 = time.perf_counter()
    for device in devices:
        for scheme in ("stochastic", "deterministic"):
            for steps in steps_list:
                cells = {}
                for bl in cols:
                    res = [relative_error(device, scheme, bl, steps, s, shape, args.rank) for s in range(args.seeds)]
                    errs = np.array([r[0] for r in res])
                    cells["auto" if bl is None else str(bl)] = {
                        "mean": float(errs.mean()), "std": float(errs.std()),
                        "slots_per_update": float(np.mean([r[1] for r in res]) / args.rank)}
                rows.append({"device": device, "scheme": scheme, "steps": steps, "cells": cells})
    elapsed = time.perf_counter() - t0
    heads = [str(b) for b in BLS] + ["auto"]
    print(f"relative error ‖ΔW + ηĜ‖/‖ηĜ‖, {shape[0]}x{shape[1]} array, rank-{args.rank} update, "
          f"mean ± std over {args.seeds} seeds  (auto: BL by update management, mean slots in brackets)")
    print(f"| device | scheme | max steps | " + " | ".join(f"BL={h}" for h in heads) + " |")
    print("|---|---|---|" + "---|" * len(heads))
    for r in rows:
        cells = []
        for h in heads:
            c = r["cells"][h]
            txt = f"{c['mean']:.3f} ± {c['std']:.3f}"
            if h == "auto":
                txt += f" [{c['slots_per_update']:.1f}]"
            cells.append(txt)
        print(f"| {r['device']} | {r['scheme']} | {r['steps']:g} | " + " | ".join(cells) + " |")
    print(f"({elapsed:.1f} s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"shape": shape, "rank": args.rank, "seeds": args.seeds, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
