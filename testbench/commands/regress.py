"""``sbpca regress``: a random-configuration regression campaign (engine, drivers, SoC under its firmware).

Example: ``sbpca regress --samples 100000 --seed 1 --jobs 2 --json``.  Prints the
configurations, samples, words compared, mismatches, wall time and the coverage of every
event bin; exits with status 1 on any mismatch or on an empty coverage bin.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub) -> None:
    parser = sub.add_parser("regress", help="random-configuration regression campaign (engine, drivers, SoC)",
                            description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, required=True, help="engine samples in the whole campaign")
    parser.add_argument("--seed", type=int, required=True, help="seed of every random choice of the campaign")
    parser.add_argument("--jobs", type=int, default=1, help="simulator runs in parallel (default 1)")
    parser.add_argument("--max-dim", type=int, default=96, help="largest a and b drawn (1..96, default 96)")
    parser.add_argument("--max-configs", type=int, default=None,
                        help="at most this many engine configurations (default: grows with --samples)")
    parser.add_argument("--only", type=int, default=None, help="run case INDEX of the campaign alone (reproducer)")
    parser.add_argument("--fast-build", action="store_true", help="compile the simulators at -O0 (short campaigns)")
    parser.add_argument("--allow-empty", default="", help="comma-separated coverage bins allowed to stay empty")
    parser.add_argument("--out", type=Path, default=None, help="also write the full JSON summary here")
    parser.add_argument("--json", action="store_true", help="print the full JSON summary")
    parser.set_defaults(func=run)


def _progress(r: dict) -> None:
    status = "ok" if r["mismatches"] == 0 else f"{r['mismatches']} MISMATCHES"
    print(f"  case {r['index']:3d} {r.get('config', r['kind']):38s} {r['samples']:7d} samples "
          f"{r['words_compared']:10d} words {r['seconds']:7.1f} s  {status}", file=sys.stderr, flush=True)


def _progress_json(r: dict) -> None:
    """With --json, each finished case as one JSON line on stderr (a long campaign's record so far)."""
    print(json.dumps(r, default=str), file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from testbench.regress import run_campaign, write_summary

    allow = tuple(b for b in args.allow_empty.split(",") if b)
    summary = run_campaign(args.samples, args.seed, jobs=args.jobs, max_dim=args.max_dim,
                           max_configs=args.max_configs, only=args.only, fast_build=args.fast_build,
                           allow_empty=allow, progress=_progress_json if args.json else _progress)
    if args.out:
        write_summary(summary, args.out)
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    else:
        print(f"regress seed {summary['seed']}: {summary['configurations']} engine configurations, "
              f"{summary['driver_cases']} driver cases, {summary['soc_cases']} SoC cases, {summary['samples']} "
              f"samples, {summary['driver_updates']} driver updates, {summary['soc_samples']} SoC samples, "
              f"{summary['words_compared']} words compared, "
              f"{summary['simulated_cycles']} cycles, {summary['mismatches']} mismatches, "
              f"{summary['wall_seconds']} s")
        print("coverage: " + ", ".join(f"{k}={v}" for k, v in summary["coverage"].items()))
        if summary["empty_bins"]:
            print(f"EMPTY coverage bins: {', '.join(summary['empty_bins'])}", file=sys.stderr)
        for r in summary["cases"]:
            for line in r["details"][:3]:
                print(f"  case {r['index']}: {line}", file=sys.stderr)
        print("PASS" if summary["ok"] else "FAIL")
    return 0 if summary["ok"] else 1
