"""``sbpca cosim csr``: the C firmware drives the register bank alone over Wishbone (Verilator +
cocotb); a behavioural engine whose arithmetic is the golden model stands behind the bank.

Example: ``sbpca cosim csr --rows 6 --cols 5 --rank 2 --fifo-depth 8 --sub-batch 3 --batch-size 7
--json``.  Four benches (register read-back and pulses, the FIFO loopback, training batches
through the firmware, the firmware's error paths; ``testbench/bench_csr.py``); exit status 1
when one fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HELP = "the C firmware against the register bank alone (a behavioural engine behind it)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run's options (the bank's parameters come from hdl.designs)."""
    parser.add_argument("--sub-batch", type=int, default=3,
                        help="s the firmware writes to SUB_BATCH and the behavioural engine uses (default 3); "
                             "the bank itself is built without it")
    parser.add_argument("--batch-size", type=int, default=7, help="samples per batch (default 7)")
    parser.add_argument("--batches", type=int, default=2, help="training batches (default 2)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the stimulus and the bus stalls (default 1)")
    parser.add_argument("--no-stalls", action="store_true", help="no idle cycles between bus transactions")
    parser.add_argument("--build-dir", type=Path, default=None, help="build here (default: a new temporary dir)")
    parser.add_argument("--waves", action="store_true", help="write a waveform in the build directory")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from hdl.designs import DESIGNS, design_values
    from testbench.bench_csr import run_csr_cosim
    from testbench.simulator import SimulatorError

    values = design_values("csr", args)
    params = DESIGNS["csr"].params(values)
    if values.data_bits is not None:
        raise ValueError("the firmware bench runs a named format set: drop --data-bits")
    build_dir = args.build_dir or Path(tempfile.mkdtemp(prefix="sbpca_csr_"))
    try:
        result = run_csr_cosim(build_dir, rows=params.rows, cols=params.cols, rank=params.rank, lanes=params.lanes,
                               max_batch=params.max_batch, fifo_depth=params.fifo_depth, formats=values.format_set,
                               sub_batch=args.sub_batch, batch=args.batch_size, batches=args.batches,
                               seed=args.seed, stalls=not args.no_stalls, waves=args.waves)
    except SimulatorError as exc:
        print(f"sbpca cosim csr: error: {exc}", file=sys.stderr)
        return 1
    ok = result.failed == 0 and result.passed > 0
    if args.json:
        print(json.dumps({"passed": result.passed, "failed": result.failed, "build_dir": str(result.build_dir),
                          "params": params.to_dict(), "benches": result.report}, indent=2, default=str))
    else:
        print(f"csr cosim a={params.rows} b={params.cols} k={params.rank} P={params.lanes} {params.fmts.name}, "
              f"FIFO depth {params.fifo_depth}: {result.passed} benches passed, {result.failed} failed "
              f"({', '.join(sorted(result.report))}) -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1
