"""Throughput of the golden model: float vs bit-accurate fixed-point SBPCA.

a = b = 256, k = 4, s = 32, B = 1024 (SPEC foundation benchmark).  Goal: fixed point at
least half the float speed (issue 12; both on the default compiled backend).  Run:
``python benchmarks/bench_golden.py [--batches N] [--backend numpy]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pymodel.sbpca import SBPCA
from pymodel.streams import low_rank_stream


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--cols", type=int, default=256)
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--sub-batch", type=int, default=32)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--format-set", default="q16")
    ap.add_argument("--backend", default="compiled", choices=["compiled", "numpy"])
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    draw = low_rank_stream(rng, args.rows, args.cols, args.batch)
    batches = [draw() for _ in range(args.batches)]
    rates = {}
    for label, fixed in (("float", False), ("fixed", args.format_set)):
        eng = SBPCA(args.rows, args.cols, args.rank, args.sub_batch, seed=0, fixed=fixed, backend=args.backend)
        eng.update(*batches[0])  # warm-up
        t0 = time.perf_counter()
        for x, d in batches:
            eng.update(x, d)
        dt = time.perf_counter() - t0
        rates[label] = args.batch * args.batches / dt
    # the engine itself receives integers: time the fixed model without input quantisation
    eng = SBPCA(args.rows, args.cols, args.rank, args.sub_batch, seed=0, fixed=args.format_set,
                backend=args.backend)
    eng.update_int(*[eng.fmts.x.quantize(batches[0][0]), eng.fmts.delta.quantize(batches[0][1])])  # warm-up
    ints = [(eng.fmts.x.quantize(x), eng.fmts.delta.quantize(d)) for x, d in batches]
    t0 = time.perf_counter()
    for xi, di in ints:
        eng.update_int(xi, di)
    rates["fixed (int inputs)"] = args.batch * args.batches / (time.perf_counter() - t0)
    print(f"a={args.rows} b={args.cols} k={args.rank} s={args.sub_batch} B={args.batch} batches={args.batches} "
          f"backend={args.backend}")
    print(f"{'mode':<20}{'samples/s':>14}")
    for k, v in rates.items():
        print(f"{k:<20}{v:>14.0f}")
    ratio = rates["fixed"] / rates["float"]
    print(f"fixed/float speed ratio: {ratio:.2f} (goal >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
