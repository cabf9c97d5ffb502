"""``sbpca gen <design>``: write Verilog and a JSON manifest for one design.

Examples: ``sbpca gen engine --rows 64 --cols 64 --rank 4 --sub-batch 32 --lanes 8 -o build/engine``
writes ``build/engine/sbpca_engine.v`` and ``sbpca_engine.json`` (parameters, formats, ports,
stream payload fields, status bits, job program, throughput bound); ``sbpca gen driver --rows 64
--cols 64 --scheme stochastic --bl-max 31 -o build/driver`` the crossbar driver (ports, cfg and
slot-word layouts, LFSR seeds, timing); ``sbpca gen soc --rows 10 --cols 65 --rank 4 --sub-batch 8
--lanes 4 -o build/soc`` the SoC (register map, word packing, pulse-word fields, scale rule; the
firmware header that matches is ``firmware/sbpca_regs.h``); ``sbpca gen csr`` the register bank
alone.  Every design, its flags and its manifest come from :data:`hdl.designs.DESIGNS`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..designs import DESIGNS, add_design_args, design_values, get_design


def register(sub) -> None:
    parser = sub.add_parser("gen", help="generate Verilog and a JSON manifest for a design",
                            description=__doc__.split("\n\n")[0])
    group = parser.add_subparsers(dest="design", metavar="DESIGN")
    group.required = True
    for design in DESIGNS.values():
        p = group.add_parser(design.name, help=design.help, description=f"sbpca gen {design.name}: {design.help}",
                             allow_abbrev=False)
        add_design_args(p, design)
        p.add_argument("-o", "--out", type=Path, required=True, help="output directory")
        p.add_argument("--name", default=design.verilog_name,
                       help=f"Verilog module name (default {design.verilog_name})")
        p.add_argument("--json", action="store_true", help="also print the manifest as JSON on stdout")
        p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..verilog import write_verilog

    design = get_design(args.design)
    if not args.name.isidentifier():
        raise ValueError(f"--name must be a Verilog identifier, not {args.name!r}")
    values = design_values(design, args)
    params = design.params(values)
    comp = design.component(params, values)
    path = write_verilog(comp, args.name, args.out)
    man = design.manifest(comp, params, values, args.name)
    man["verilog"] = str(path)
    man_path = Path(args.out) / f"{args.name}.json"
    man_path.write_text(json.dumps(man, indent=2))
    if args.json:
        print(json.dumps(man, indent=2))
    else:
        print(f"wrote {path} and {man_path}: {design.summary(params)}")
    return 0
