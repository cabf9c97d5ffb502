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

from ..designs import DESIGNS, GIVEN, add_all_design_args, design_values, get_design
from ..synth import DEFAULT_DEVICE, DEVICES, SynthError, synthesize, synthesize_seeds


def register(sub) -> None:
    parser = sub.add_parser(
        "synth",
        help="synthesise, place and route a design (YoWASP Yosys + nextpnr): LUTs, FFs, DSPs, BRAMs, Fmax",
        description=__doc__.split("\n\n")[0],
        allow_abbrev=False,  # a design flag is spelled in full, the same in gen, cosim and synth
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
    parser.add_argument("--pnr-seed", type=int, default=None, help="nextpnr placement seed (default 1)")
    parser.add_argument("--seeds", type=_seed_list, default=None, metavar="S1,S2,...",
                        help="place and route the one netlist at each of these seeds (e.g. 1,2,3): a row per "
                             "seed and min/median/max of Fmax, critical path and resources")
    parser.add_argument("--jobs", type=int, default=1,
                        help="nextpnr runs at once with --seeds (default 1; each run uses one core)")
    parser.add_argument("--build-dir", type=Path, default=None,
                        help="where Verilog, netlist and logs go (default build/synth/<top>-<target>-<device>)")
    parser.add_argument("--json", type=Path, default=None, help="write the report as JSON here")
    parser.add_argument("--nextpnr-arg", action="append", default=[], metavar="ARG",
                        help="pass ARG to nextpnr as it is (repeatable; e.g. --nextpnr-arg=--placer-heap-beta "
                             "--nextpnr-arg=0.7)")
    parser.add_argument("--no-route", action="store_true",
                        help="stop after placement: report nextpnr's Fmax estimate before routing (fast look at a large design)")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="MINUTES",
                        help="stop a Yosys or nextpnr step that runs longer than this (default 60; a 64x64 "
                             "engine's placement on a loaded machine can need more)")
    parser.add_argument("--require-timing", action="store_true",
                        help="exit with status 1 when Fmax is below --freq")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="deprecated spelling of a design flag: --param iter_bits=2 is --iter-bits 2")
    add_all_design_args(parser)
    parser.set_defaults(func=run)


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds expects comma-separated integers, not {text!r}") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds expects distinct non-negative integers, not {text!r}")
    return seeds


def _param_overrides(items: list[str]) -> dict[str, str]:
    """``--param KEY=VALUE`` pairs (the old spelling of the design flags)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--param expects KEY=VALUE, not {item!r}")
        out[key] = text
    return out


def synth_values(args: argparse.Namespace):
    """``(design, values)`` of ``--top`` from the design flags (and the old ``--param`` spelling).

    For ``--target ecp5`` the engine's multiplier tiles default to ``MULT18X18D`` (``--dsp ecp5``).
    """
    design = get_design(args.top)
    values = design_values(design, args, _param_overrides(args.param))
    if args.target == "ecp5" and "dsp" in design.flags and "dsp" not in getattr(args, GIVEN, {}) \
            and not any(p.startswith("dsp=") for p in args.param):
        values.dsp = "ecp5"
    return design, values


def design_build(args: argparse.Namespace) -> tuple[object, str, dict]:
    """``(component, Verilog name, parameters for the JSON)`` of ``--top``."""
    design, values = synth_values(args)
    params = design.params(values)
    return design.component(params, values), design.verilog_name, {"top": design.name, **vars(values)}


def _write_json(path: Path, out: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"report written to {path}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    target = args.target
    device = args.device or DEFAULT_DEVICE[target]
    if device not in DEVICES[target]:
        raise ValueError(f"unknown {target} device {device!r}; choose one of {sorted(DEVICES[target])}")
    if args.seeds is not None and args.pnr_seed is not None:
        raise ValueError("give either --pnr-seed or --seeds, not both")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, not {args.jobs}")
    if not args.timeout > 0:
        raise ValueError(f"--timeout must be a positive number of minutes, not {args.timeout}")
    component, name, parameters = design_build(args)
    build_dir = args.build_dir or Path("build") / "synth" / f"{args.top}-{target}-{device}"
    options = dict(target=target, device=device, package=args.package, build_dir=build_dir, freq_mhz=args.freq,
                   io=args.io, abc9={"auto": None, "abc9": True, "abc": False}[args.mapper], router=args.router,
                   route=not args.no_route, pnr_args=args.nextpnr_arg, timeout_s=60.0 * args.timeout)
    if args.seeds is not None:
        return _run_seeds(args, component, name, options, parameters)
    print(f"sbpca synth: {args.top} ({name}) for {target} {device} at {args.freq:g} MHz in {build_dir} ...",
          file=sys.stderr)
    try:
        report = synthesize(component, name, seed=1 if args.pnr_seed is None else args.pnr_seed, **options)
    except SynthError as exc:
        print(f"sbpca synth: error: {exc}", file=sys.stderr)
        return 1
    print(report.table())
    if args.json is not None:
        _write_json(args.json, {"parameters": parameters, **report.to_dict()})
    if args.require_timing and not report.timing_met:
        print(f"sbpca synth: Fmax {report.fmax_mhz} MHz is below the {args.freq:g} MHz target", file=sys.stderr)
        return 1
    return 0


def _run_seeds(args: argparse.Namespace, component, name: str, options: dict, parameters: dict) -> int:
    """``--seeds``: one Yosys run, nextpnr at each seed (``--jobs`` at once), a table and the JSON."""
    print(f"sbpca synth: {args.top} ({name}) at seeds {args.seeds}, {args.jobs} at once, in {options['build_dir']} ...",
          file=sys.stderr)
    try:
        sweep = synthesize_seeds(component, name, seeds=args.seeds, jobs=args.jobs, **options)
    except SynthError as exc:
        print(f"sbpca synth: error: {exc}", file=sys.stderr)
        return 1
    print(sweep.table())
    if args.json is not None:
        _write_json(args.json, {"parameters": parameters, "target": options["target"],
                                "device": options["device"], "freq_mhz": args.freq, **sweep.to_dict()})
    if sweep.failed:
        for seed, err in sorted(sweep.failed.items()):
            print(f"sbpca synth: error: seed {seed}: {err}", file=sys.stderr)
        return 1
    if args.require_timing and not sweep.summary["timing_met_all"]:
        print(f"sbpca synth: Fmax below the {args.freq:g} MHz target at a seed "
              f"(min {sweep.summary['fmax_mhz']['min']} MHz)", file=sys.stderr)
        return 1
    return 0
