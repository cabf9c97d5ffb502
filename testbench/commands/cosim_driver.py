"""``sbpca cosim driver``: the driver RTL on Verilator against the golden pulse schedules.

Example: ``sbpca cosim driver --rows 8 --cols 8 --scheme stochastic --bl 15 --updates 20
--seed 1 --json``.  Prints ``mismatches``, ``words_compared`` and ``cycles`` (JSON with
``--json``) and exits with status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


HELP = "co-simulate the crossbar driver (every slot word compared)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run's options (the driver's parameters, --seed included, come from hdl.designs)."""
    parser.add_argument("--updates", type=int, default=10, help="rank-1 updates per run (default 10)")
    parser.add_argument("--stall", type=float, action="append", default=None,
                        help="probability of a stall cycle on every stream; repeat for several runs "
                             "(default: one run at 0.3)")
    parser.add_argument("--build-dir", type=Path, default=None,
                        help="build here (default: a cache directory keyed by the Verilog)")
    parser.add_argument("--waves", action="store_true", help="write a VCD waveform (path in the report)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from hdl.designs import DESIGNS, design_values
    from testbench.driver_cosim import driver_command, run_driver_cosim
    from testbench.simulator import SimulatorError

    if args.updates < 1:
        raise ValueError(f"--updates must be >= 1, not {args.updates}")
    params = DESIGNS["driver"].params(design_values("driver", args))
    stalls = args.stall if args.stall else [0.3]
    try:
        report = run_driver_cosim(params, updates=args.updates, seed=args.seed, stall_prob=stalls,
                                  build_dir=args.build_dir, waves=args.waves,
                                  reproduce=driver_command(params, args.updates, stalls))
    except SimulatorError as exc:
        print(f"sbpca cosim driver: error: {exc}", file=sys.stderr)
        return 1
    ok = report["mismatches"] == 0 and report["failed"] == 0
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"driver {params.rows}x{params.cols} {params.scheme} BL<={params.bl_max}: "
              f"{report['updates']} updates, {report['words_compared']} words compared, "
              f"{report['mismatches']} mismatches, {report['cycles']} cycles -> {'PASS' if ok else 'FAIL'}")
        for run_ in report["runs"]:
            for d in run_["first_mismatches"][:3]:
                print(f"  stall {run_['stall_prob']}: update {d['update']} ({d['kind']}) slot {d['slot']}: "
                      f"{d['fields']}", file=sys.stderr)
            for line in run_.get("mismatch_details", [])[:5]:
                print(f"  {line}", file=sys.stderr)
    return 0 if ok else 1
