"""``sbpca synth``: Yosys + nextpnr (YoWASP) resource and Fmax report for one design.

Example: ``sbpca synth --target ecp5 --device 85k --top engine --rows 64 --cols 64
--rank 4 --lanes 8 --json synth.json``.  The Verilog, netlist, logs and nextpnr's
report stay in ``--build-dir``; the JSON holds the parameters and the
:class:`hdl.synth.SynthReport` (at least ``luts``, ``ffs``, ``dsps``, ``brams``,
``fmax_mhz``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..designs import DESIGNS, add_design_args, build
from ..synth import DEFAULT_DEVICE, DEVICES, SynthError, synthesize


def register(sub) -> None:
    parser = sub.add_parser(
        "synth",
        help="synthesise, place and route a design (YoWASP Yosys + nextpnr): LUTs, FFs, DSPs, BRAMs, Fmax",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--target", choices=sorted(DEVICES), default="ecp5", help="FPGA family (default ecp5)")
    parser.add_argument("--device", default=None,
                        help="device of the family: " + "; ".join(
                            f"{t}: {', '.join(DEVICES[t])} (default {DEFAULT_DEVICE[t]})" for t in sorted(DEVICES)))
    parser.add_argument("--package", default=None, help="package (default: the device's usual one)")
    parser.add_argument("--top", choices=sorted(DESIGNS), default="engine", help="design to build (default engine)")
    parser.add_argument("--freq", type=float, default=100.0, help="target clock in MHz (default 100)")
    parser.add_argument("--io", choices=("wrap", "none"), default="wrap",
                        help="wrap: pin-reduction wrapper (default); none: ports straight to pins")
    parser.add_argument("--mapper", choices=("auto", "abc9", "abc"), default="auto",
                        help="Yosys LUT mapper: abc9, abc, or auto = abc9 with a fallback to abc when "
                             "Yosys crashes inside ABC9 (default auto)")
    parser.add_argument("--router", choices=("router1", "router2"), default=None,
                        help="nextpnr router (default: nextpnr's, router1; router2 is faster on large designs)")
    parser.add_argument("--pnr-seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    parser.add_argument("--build-dir", type=Path, default=None,
                        help="where Verilog, netlist and logs go (default build/synth/<top>-<target>-<device>)")
    parser.add_argument("--json", type=Path, default=None, help="write the report as JSON here")
    parser.add_argument("--nextpnr-arg", action="append", default=[], metavar="ARG",
                        help="pass ARG to nextpnr as it is (repeatable; e.g. --nextpnr-arg=--placer-heap-beta "
                             "--nextpnr-arg=0.7)")
    parser.add_argument("--no-route", action="store_true",
                        help="stop after placement: report nextpnr's Fmax estimate before routing (fast look at a large design)")
    parser.add_argument("--require-timing", action="store_true",
                        help="exit with status 1 when Fmax is below --freq")
    add_design_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    target = args.target
    device = args.device or DEFAULT_DEVICE[target]
    if device not in DEVICES[target]:
        raise ValueError(f"unknown {target} device {device!r}; choose one of {sorted(DEVICES[target])}")
    component, name = build(args.top, args)
    build_dir = args.build_dir or Path("build") / "synth" / f"{args.top}-{target}-{device}"
    print(f"sbpca synth: {args.top} ({name}) for {target} {device} at {args.freq:g} MHz in {build_dir} ...",
          file=sys.stderr)
    try:
        report = synthesize(component, name, target=target, device=device, package=args.package,
                            build_dir=build_dir, freq_mhz=args.freq, io=args.io, seed=args.pnr_seed,
                            abc9={"auto": None, "abc9": True, "abc": False}[args.mapper], router=args.router,
                            route=not args.no_route, pnr_args=args.nextpnr_arg)
    except SynthError as exc:
        print(f"sbpca synth: error: {exc}", file=sys.stderr)
        return 1
    print(report.table())
    if args.json is not None:
        params = {k: getattr(args, k) for k in ("top", "rows", "cols", "rank", "sub_batch", "lanes", "format",
                                                "data_bits", "fifo_depth", "scheme", "bl_max", "seed")
                  if hasattr(args, k)}
        out = {"parameters": params, **report.to_dict()}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
        print(f"report written to {args.json}", file=sys.stderr)
    if args.require_timing and not report.timing_met:
        print(f"sbpca synth: Fmax {report.fmax_mhz} MHz is below the {args.freq:g} MHz target", file=sys.stderr)
        return 1
    return 0
