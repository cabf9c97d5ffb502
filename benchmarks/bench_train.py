"""Benchmark: one 40-epoch digits training run, with the time split forward/backward/update.

Goal (issue #5): a float SBPCA run (cnn, batch 64, rank 4, sub-batch 16, 40 epochs)
takes at most 3 minutes on 2 cores.  Usage::

    python benchmarks/bench_train.py                      # float SBPCA (the goal)
    python benchmarks/bench_train.py --fixed q16          # bit-accurate q16 golden model
    python benchmarks/bench_train.py --method mbgd --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pymodel.training import TrainConfig, to_jsonable, train  # noqa: E402

LIMIT_S = 180.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="sbpca")
    p.add_argument("--fixed", default=None)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    cfg = TrainConfig(dataset="digits", model="cnn", method=args.method, rank=args.rank, sub_batch=16, batch=64,
                      epochs=args.epochs, seed=args.seed, fixed=args.fixed)
    res = train(cfg)
    t = res["time"]
    other = t["wall_s"] - t["forward_s"] - t["backward_s"] - t["update_s"] - t["evaluate_s"]
    print(f"digits cnn {args.method}{' ' + args.fixed if args.fixed else ''} rank {args.rank}, "
          f"{args.epochs} epochs, lr {res['lr']:g}, {os.cpu_count()} CPU(s)")
    print(f"test accuracy {100 * res['test_accuracy']:.2f} %, train accuracy {100 * res['train_accuracy']:.2f} %")
    print(f"wall    {t['wall_s']:8.2f} s")
    for key in ("forward", "backward", "update", "evaluate"):
        print(f"{key:<8}{t[key + '_s']:8.2f} s  {100 * t[key + '_s'] / t['wall_s']:5.1f} %")
    print(f"other   {other:8.2f} s  (data order, bookkeeping)")
    ok = t["wall_s"] <= LIMIT_S * args.epochs / 40
    print(f"goal: <= {LIMIT_S:.0f} s for 40 epochs -> {'met' if ok else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(to_jsonable({"time": t, "test_accuracy": res["test_accuracy"],
                                                             "config": res["config"], "goal_met": ok}), indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
