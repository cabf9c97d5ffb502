"""``sbpca golden``: run the golden model on a synthetic low-rank stream and compare estimators."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from ..baselines import PowerSGD, TruncatedSVD
from ..formats import FORMAT_SETS, get_format_set
from ..sbpca import SBPCA
from ..streams import low_rank_stream


def register(sub) -> None:
    p = sub.add_parser(
        "golden",
        help="run float and fixed-point SBPCA on a synthetic stream and report gradient errors",
        description="Streams B-sample batches with a known low-rank gradient through float SBPCA, "
        "fixed-point SBPCA, exact truncated SVD and PowerSGD, and reports ‖G − Ĝ‖/‖G‖.",
    )
    p.add_argument("--rows", type=int, default=64, help="a: layer outputs (default 64)")
    p.add_argument("--cols", type=int, default=64, help="b: layer inputs (default 64)")
    p.add_argument("--rank", type=int, default=4, help="k (default 4)")
    p.add_argument("--sub-batch", type=int, default=16, help="s (default 16)")
    p.add_argument("--batch", type=int, default=64, help="B samples per batch (default 64)")
    p.add_argument("--batches", type=int, default=20, help="number of batches (default 20)")
    p.add_argument("--format-set", default="q16", choices=sorted(FORMAT_SETS), help="fixed-point formats")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON ('-' for stdout only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for name in ("rows", "cols", "rank", "sub_batch", "batch", "batches"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, not {getattr(args, name)}")
    rng = np.random.default_rng(args.seed)
    draw = low_rank_stream(rng, args.rows, args.cols, args.batch)
    fmts = get_format_set(args.format_set)
    fl = SBPCA(args.rows, args.cols, args.rank, args.sub_batch, seed=args.seed)
    fx = SBPCA(args.rows, args.cols, args.rank, args.sub_batch, seed=args.seed, fixed=fmts)
    svd = TruncatedSVD(args.rows, args.cols, args.rank)
    ps = PowerSGD(args.rows, args.cols, args.rank, seed=args.seed, error_feedback=False)
    errs: dict[str, list[float]] = {"sbpca_float": [], "sbpca_fixed": [], "svd": [], "powersgd": [],
                                    "fixed_vs_float": []}
    times = {"float": 0.0, "fixed": 0.0}
    for _ in range(args.batches):
        x, d = draw()
        G = d.T @ x
        t0 = time.perf_counter()
        fl.update(x, d)
        t1 = time.perf_counter()
        fx.update(x, d)
        t2 = time.perf_counter()
        times["float"] += t1 - t0
        times["fixed"] += t2 - t1
        svd.update(x, d)
        ps.update(x, d)
        nG = np.linalg.norm(G)
        for key, est in (("sbpca_float", fl), ("sbpca_fixed", fx), ("svd", svd), ("powersgd", ps)):
            errs[key].append(float(np.linalg.norm(G - est.gradient()) / nG))
        errs["fixed_vs_float"].append(
            float(np.linalg.norm(fx.gradient() - fl.gradient()) / np.linalg.norm(fl.gradient())))
    tail = max(1, args.batches // 2)
    result = {
        "params": {k: getattr(args, k) for k in ("rows", "cols", "rank", "sub_batch", "batch", "batches", "seed")},
        "format_set": fmts.name,
        "relative_error_last_half": {k: float(np.mean(v[-tail:])) for k, v in errs.items()},
        "relative_error_per_batch": errs,
        "sigma_float": fl.sigma.tolist(),
        "sigma_fixed": fx.sigma.tolist(),
        "fixed_status": fx.status.as_dict(),
        "samples_per_s": {k: args.batch * args.batches / max(v, 1e-12) for k, v in times.items()},
    }
    print(f"SBPCA golden model: a={args.rows} b={args.cols} k={args.rank} s={args.sub_batch} "
          f"B={args.batch}, {args.batches} batches, formats {fmts.name}")
    print(f"{'estimator':<16}{'‖G−Ĝ‖/‖G‖ (mean of last half)':>32}")
    for k, v in result["relative_error_last_half"].items():
        print(f"{k:<16}{v:>32.4g}")
    print(f"fixed-point status: {result['fixed_status']}")
    if args.json and args.json != "-":
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    elif args.json == "-":
        print(json.dumps(result, indent=2))
    return 0
