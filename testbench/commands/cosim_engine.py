"""``sbpca cosim engine``: a random (or training-captured) stream through the engine RTL on
Verilator and through the golden model, every state and factor word compared.

Example: ``sbpca cosim engine --rows 8 --cols 6 --rank 2 --sub-batch 4 --lanes 2 --batches 3
--seed 1 --stall-prob 0.2 --json``.  Exit status 1 on any mismatch; each mismatch line ends
with the command that reproduces it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


HELP = "co-simulate the SBPCA engine against the golden model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run's options (the engine's parameters, --seed included, come from hdl.designs)."""
    parser.add_argument("--batches", type=int, default=2, help="number of batches (default 2)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="samples per batch (default 2*sub-batch + 1: ends with a partial sub-batch)")
    parser.add_argument("--stall-prob", type=float, default=0.0,
                        help="per-cycle probability of a valid gap / ready low on every port (default 0)")
    parser.add_argument("--stream", choices=("random", "captured"), default="random",
                        help="random samples, or one batch captured from a training step of the digits CNN "
                             "(its 'fc' layer: --rows 10 --cols 65)")
    parser.add_argument("--no-dump", action="store_true",
                        help="stream all batches back to back, factors only after the last one")
    parser.add_argument("--mode", choices=("block", "cycle"), default="block",
                        help="block: the test wrapper drives and checks the engine, Python wakes once per "
                             "block (fast, default); cycle: Python serves every port every clock (debugging)")
    parser.add_argument("--trace-off", action="store_true",
                        help="run with trace_en low: only the factor pairs come out")
    parser.add_argument("--waves", action="store_true", help="write a VCD waveform (path in the report)")
    parser.add_argument("--native-speed", action="store_true",
                        help="also run the first block in a plain C++ Verilator loop (no Python) and print "
                             "both speeds (block mode)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (memory files, logs)")
    parser.add_argument("--build-dir", type=Path, default=None, help="build here (default: a cache dir)")
    parser.add_argument("--fast-build", action="store_true", help="compile the simulator at -O0")
    parser.add_argument("--json", action="store_true", help="print the full JSON report")


def command_line(args: argparse.Namespace) -> str:
    """The ``sbpca cosim engine`` command that reruns this stimulus (quoted with each mismatch)."""
    from hdl.designs import design_values, flag_text

    parts = [f"sbpca cosim engine {flag_text('engine', design_values('engine', args))}",
             f"--batches {args.batches} --stall-prob {args.stall_prob:g} --stream {args.stream} --mode {args.mode}"]
    if args.batch_size:
        parts.append(f"--batch-size {args.batch_size}")
    for flag in ("no_dump", "trace_off"):
        if getattr(args, flag):
            parts.append("--" + flag.replace("_", "-"))
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    from hdl.designs import DESIGNS, design_values
    from testbench.engine_cosim import random_stream, run_engine_cosim

    if args.batches < 1:
        raise ValueError(f"--batches must be >= 1, not {args.batches}")
    if not 0.0 <= args.stall_prob < 1.0:
        raise ValueError(f"--stall-prob must be in [0, 1), not {args.stall_prob}")
    params = DESIGNS["engine"].params(design_values("engine", args))
    init = None
    if args.stream == "captured":
        if args.data_bits is not None:
            raise ValueError("--stream captured replays a training step of a named format set: "
                             "drop --data-bits")
        from testbench.engine_capture import capture_training_stream

        cap = capture_training_stream(rank=args.rank, sub_batch=args.sub_batch,
                                      batch=args.batch_size or 2 * args.sub_batch + 1, seed=args.seed,
                                      format_set=args.format_set)
        if (cap.rows, cap.cols) != (args.rows, args.cols):
            raise ValueError(f"the captured '{cap.layer}' layer is {cap.rows}x{cap.cols}: "
                             f"use --rows {cap.rows} --cols {cap.cols}")
        batches = [cap.batch]
        init = cap.init
    else:
        bs = args.batch_size or 2 * args.sub_batch + 1
        batches = random_stream(params, args.batches, bs, seed=args.seed)
        if args.no_dump:
            for b in batches[:-1]:
                b.dump = False
    report = run_engine_cosim(params, batches, init=init, seed=args.seed, stall_prob=args.stall_prob,
                              stim_seed=args.seed + 1, waves=args.waves, build_dir=args.build_dir,
                              fast_build=args.fast_build, mode=args.mode, trace=not args.trace_off,
                              reproduce=command_line(args), keep=args.keep,
                              native=args.native_speed)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        ratio = report.get("bound_ratio")
        print(f"engine cosim a={params.rows} b={params.cols} k={params.rank} s={params.sub_batch} "
              f"P={params.lanes} {params.fmts.name}: {report['mismatches']} mismatches in "
              f"{report['words_compared']} words, {report.get('samples')} samples, "
              f"{report.get('cycles_per_sample') or 0:.1f} cycles/sample (bound "
              f"{params.bound_cycles_per_sample:g}, ratio {ratio or 0:.3f}), "
              f"{report.get('sim_cycles_per_second') or 0:,.0f} simulated cycles/s ({args.mode} mode)")
        if report.get("native"):
            nat = report["native"]
            print(f"  no-Python C++ loop (first block, {nat['cycles']} cycles): "
                  f"{nat['cycles_per_second']:,.0f} simulated cycles/s")
        for line in report.get("mismatch_details", [])[:10]:
            print(f"  {line}", file=sys.stderr)
    return 0 if report["mismatches"] == 0 else 1
