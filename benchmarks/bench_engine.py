"""Engine throughput on Verilator: cycles per sample against the bound 2k(a+b)/P.

Presets (``--preset both``, the default, runs the two in turn):

* ``reference``: a = b = 64, k = 4, P = 8, s = 32, q16 (goal: steady ratio >= 0.95);
* ``small-layer``: the demo's captured fc layer, a = 10, b = 65, k = 4, P = 4, s = 16 (a small
  layer: the per-sub-batch orthogonalisation is a large share of the work; goal >= 0.85).

Each streams 4 batches of 64 samples back to back, no stalls (warm start; factors read after
the last one).  Explicit ``--rows`` ... override a preset.  Prints the cycles per sample over
the whole run and in steady state (between sub-batch completions, i.e. including the
per-sub-batch orthogonalisation), their ratio to the bound and the goal, the modelled
steady state of the schedule (``hdl.engine_params.build_schedule``), and the simulation
speed in simulated cycles per wall-clock second.  Every word is still checked against the
golden model.  Run: ``python benchmarks/bench_engine.py [--preset reference] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hdl.engine_params import EngineParams  # noqa: E402
from testbench.engine_cosim import random_stream, run_engine_cosim  # noqa: E402


PRESETS = {
    "reference": dict(rows=64, cols=64, rank=4, sub_batch=32, lanes=8),
    "small-layer": dict(rows=10, cols=65, rank=4, sub_batch=16, lanes=4),
}
GOALS = {"reference": 0.95, "small-layer": 0.85}  # steady-state ratio to the bound


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=(*PRESETS, "both"), default="both")
    for name in ("rows", "cols", "rank", "sub-batch", "lanes"):
        ap.add_argument(f"--{name}", type=int, default=None)
    ap.add_argument("--format-set", default="q16")
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--stall-prob", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the full report as JSON")
    args = ap.parse_args(argv)
    status = 0
    for preset in (PRESETS if args.preset == "both" else [args.preset]):
        dims = {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in PRESETS[preset].items()}
        goal = GOALS[preset] if dims == PRESETS[preset] else None
        status |= _run(EngineParams(**dims, formats=args.format_set), args, goal)
    return status


def _run(p: EngineParams, args: argparse.Namespace, goal: float | None) -> int:
    stream = random_stream(p, args.batches, args.batch_size, seed=args.seed)
    for b in stream[:-1]:
        b.dump = False
    t0 = time.time()
    rep = run_engine_cosim(p, stream, seed=args.seed, stall_prob=args.stall_prob, stim_seed=args.seed + 1,
                           mode="cycle")  # the per-clock bench times every sub-batch (steady state)
    wall = time.time() - t0
    bound = p.bound_cycles_per_sample
    steady = rep.get("steady_cycles_per_sample")
    summary = {
        "config": f"a={p.rows} b={p.cols} k={p.rank} s={p.sub_batch} P={p.lanes} {p.fmts.name}",
        "mismatches": rep["mismatches"],
        "words_compared": rep["words_compared"],
        "samples": rep["samples"],
        "cycles": rep["cycles"],
        "bound_cycles_per_sample": bound,
        "cycles_per_sample": rep["cycles_per_sample"],
        "bound_ratio": bound / rep["cycles_per_sample"],
        "steady_cycles_per_sample": steady,
        "steady_bound_ratio": bound / steady if steady else None,
        "steady_goal": goal,
        "model_cycles_per_sample": p.schedule.period / p.sub_batch,
        "sim_cycles_per_second": rep.get("sim_cycles_per_second"),
        "wall_seconds_total": round(wall, 1),
    }
    if args.json:
        print(json.dumps({**summary, "report": rep}, indent=2, default=str))
    else:
        print(f"engine {summary['config']}, {rep['samples']} samples, stall {args.stall_prob}")
        print(f"  bit-exact:             {rep['mismatches'] == 0} ({rep['words_compared']} words)")
        print(f"  bound 2k(a+b)/P:       {bound:.1f} cycles/sample")
        print(f"  achieved (whole run):  {rep['cycles_per_sample']:.1f} cycles/sample  "
              f"ratio {summary['bound_ratio']:.3f}")
        if steady:
            met = "" if goal is None else f"  (goal >= {goal}: {'met' if bound / steady >= goal else 'NOT met'})"
            print(f"  achieved (steady):     {steady:.1f} cycles/sample  "
                  f"ratio {summary['steady_bound_ratio']:.3f}{met}")
        print(f"  schedule model:        {summary['model_cycles_per_sample']:.1f} cycles/sample "
              f"(build_schedule, steady state)")
        print(f"  simulation speed:      {summary['sim_cycles_per_second']:.0f} cycles/s "
              f"(total wall {wall:.0f} s incl. build)")
    return 0 if rep["mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
