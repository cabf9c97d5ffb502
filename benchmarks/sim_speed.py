"""Simulated cycles per second of the engine benches: per-clock bench, block bench, no Python.

    python benchmarks/sim_speed.py --rows 64 --cols 64 --rank 4 --sub-batch 32 --lanes 8 \
        --batches 2 --batch-size 256 --stall-prob 0.2 [--json out.json]

Runs the same random stream (random stalls on every port) through

* the per-clock cocotb bench (``mode="cycle"``: Python serves every port every clock),
* the block bench (``mode="block"``: test wrapper with ROM sources, LFSR stalls and comparing
  sinks, Python wakes once per block, built without ``--public-flat-rw``), and
* the same wrapper in a plain C++ Verilator loop (no Python at all),

and prints cycles/s by wall clock and by CPU time of the simulator process (the fair figure
on a machine shared with other jobs).  Every run must also be bit-exact.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hdl.engine_params import EngineParams  # noqa: E402
from testbench.engine_cosim import random_stream, run_engine_cosim  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in (("rows", 64), ("cols", 64), ("rank", 4), ("sub-batch", 32), ("lanes", 8),
                          ("batches", 2), ("batch-size", 256), ("seed", 1)):
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--stall-prob", type=float, default=0.2)
    ap.add_argument("--skip-cycle", action="store_true", help="skip the (slow) per-clock bench")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    p = EngineParams(rows=args.rows, cols=args.cols, rank=args.rank, sub_batch=args.sub_batch, lanes=args.lanes)
    stream = random_stream(p, args.batches, args.batch_size, seed=args.seed)
    rows = []
    ok = True
    if not args.skip_cycle:
        rep = run_engine_cosim(p, stream, stall_prob=args.stall_prob, stim_seed=args.seed, mode="cycle")
        ok &= rep["mismatches"] == 0
        rows.append(("per-clock cocotb bench", rep["sim_cycles_total"], rep["sim_cycles_per_second"],
                     rep["sim_cycles_per_cpu_second"]))
    rep = run_engine_cosim(p, stream, stall_prob=args.stall_prob, stim_seed=args.seed, mode="block", native=True)
    ok &= rep["mismatches"] == 0 and rep["native"]["mismatches"] == 0 and rep["native"]["done"] == 1
    rows.append(("block cocotb bench (Python per block)", rep["cycles"], rep["sim_cycles_per_second"],
                 rep["sim_cycles_per_cpu_second"]))
    nat = rep["native"]
    rows.append(("same wrapper, C++ loop, no Python (first block)", nat["cycles"], nat["cycles_per_second"],
                 nat["cycles_per_cpu_second"]))
    print(f"engine a={p.rows} b={p.cols} k={p.rank} s={p.sub_batch} P={p.lanes}, {args.batches}x{args.batch_size} "
          f"samples, stall {args.stall_prob} on every port; bit-exact: {ok}")
    print("| how it is simulated | cycles | cycles/s (wall) | cycles/s (CPU) |\n|---|---|---|---|")
    for name, cyc, wall, cpu in rows:
        print(f"| {name} | {cyc} | {wall:,.0f} | {cpu:,.0f} |")
    ratio = rows[-1][3] / rows[-2][3]
    print(f"no-Python / block bench (CPU): {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "ratio": ratio, "ok": ok}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
