"""``sbpca cosim soc``: the C firmware drives the SoC RTL (Verilator) over Wishbone; σ, every factor
word and every crossbar pulse word are compared with the golden models.

Example: ``sbpca cosim soc --rows 6 --cols 5 --rank 2 --sub-batch 3 --lanes 2 --batches 2
--batch-size 7 --bus-stalls --pulse-stall 0.3 --json``; ``--stream captured`` replays one batch of
the digits CNN's fc layer captured from a fixed-point training step (use --rows 10 --cols 65).
Exit status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


HELP = "firmware co-simulation of the SoC against the golden model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run's options (the SoC's parameters, --seed included, come from hdl.designs)."""
    parser.add_argument("--batches", type=int, default=2, help="number of random batches (default 2)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="samples per batch (default 2*sub-batch + 1: ends with a partial sub-batch)")
    parser.add_argument("--stream", choices=("random", "captured"), default="random",
                        help="random samples, or one batch captured from a training step of the digits CNN")
    parser.add_argument("--lr-scale", type=float, default=2.0 ** -4,
                        help="LR_SCALE register value as a real number (unsigned Q8.24, default 1/16)")
    parser.add_argument("--bl", type=int, default=15, help="UPDATE_CFG.BL (default 15)")
    parser.add_argument("--bus-stalls", action="store_true", help="0..2 idle cycles before each bus transaction")
    parser.add_argument("--pulse-stall", type=float, default=0.0,
                        help="probability that the crossbar holds pulses.ready low in a slot (default 0)")
    parser.add_argument("--single-access", action="store_true",
                        help="no block transfers: the firmware moves every FIFO word with a single access")
    parser.add_argument("--build-dir", type=Path, default=None, help="build here (default: a cache dir)")
    parser.add_argument("--waves", action="store_true", help="write a VCD waveform (path in the report)")
    parser.add_argument("--json", action="store_true", help="print the full JSON report")


def lr_scale_register(value: float) -> int:
    """A real learning-rate scale as the unsigned Q8.24 LR_SCALE word (round half up)."""
    from hdl.regmap import LR_SCALE_FRAC

    word = int(value * (1 << LR_SCALE_FRAC) + 0.5) if value == value else -1
    if not 0 <= word < (1 << 32):
        raise ValueError(f"--lr-scale {value!r} does not fit the unsigned Q8.24 LR_SCALE register")
    return word


def run(args: argparse.Namespace) -> int:
    from hdl.designs import DESIGNS, design_values
    from testbench.soc_cosim import random_batches, run_soc_cosim

    if args.batches < 1:
        raise ValueError(f"--batches must be >= 1, not {args.batches}")
    params = DESIGNS["soc"].params(design_values("soc", args))
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
        batches = [(cap.batch.x, cap.batch.d)]
        init = cap.init
    else:
        bs = args.batch_size or 2 * args.sub_batch + 1
        batches = random_batches(params, args.batches, bs, seed=args.seed)
    report = run_soc_cosim(params, batches, init=init, seed=args.seed, lr_scale=lr_scale_register(args.lr_scale),
                           bl=args.bl, bus_stalls=args.bus_stalls, pulse_stall_prob=args.pulse_stall,
                           stim_seed=args.seed + 1, build_dir=args.build_dir, waves=args.waves,
                           block_ops=not args.single_access)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        e = params.engine
        print(f"soc cosim a={e.rows} b={e.cols} k={e.rank} s={e.sub_batch} P={e.lanes} {e.fmts.name} "
              f"{params.driver.scheme}: {report['mismatches']} mismatches in {report['words_compared']} words, "
              f"{report.get('samples')} samples, {report.get('pulse_words')} pulse words, engine "
              f"{report.get('cycles_per_sample') or 0:.1f} cycles/sample (bound {e.bound_cycles_per_sample:g}), "
              f"SoC {report.get('bus_cycles_per_sample') or 0:.1f} cycles/sample (ratio "
              f"{report.get('soc_ratio') or 0:.3f}; sample path {report.get('stream_cycles_per_sample') or 0:.1f})")
        for line in report.get("mismatch_details", [])[:10]:
            print(f"  {line}", file=sys.stderr)
    return 0 if report["mismatches"] == 0 else 1
