"""``sbpca gen soc``: Verilog of the SoC top (register bank + engine + crossbar driver) and its manifest.

Example: ``sbpca gen soc --rows 10 --cols 65 --rank 4 --sub-batch 8 --lanes 4 -o build/soc``
writes ``build/soc/sbpca_soc.v`` and ``build/soc/sbpca_soc.json`` (parameters, ports, the
register map, the sample/factor word packing, the driver's pulse-word fields and the SoC's
scale rule).  The firmware header that matches is ``firmware/sbpca_regs.h``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(designs) -> None:
    from ..soc import add_soc_args

    parser = designs.add_parser("soc", help="SoC top: Wishbone register bank, SBPCA engine, crossbar driver",
                                description=__doc__.split("\n\n")[0])
    add_soc_args(parser)
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the golden model's initial engine state (default 0)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    parser.add_argument("--name", default="sbpca_soc", help="Verilog module name (default sbpca_soc)")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON on stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..soc import SBPCASoC, params_from_args, soc_manifest
    from ..verilog import write_verilog

    if not args.name.isidentifier():
        raise ValueError(f"--name must be a Verilog identifier, not {args.name!r}")
    params = params_from_args(args)
    soc = SBPCASoC(params, seed=args.seed)
    path = write_verilog(soc, args.name, args.out)
    man = soc_manifest(soc, name=args.name)
    man["verilog"] = str(path)
    man_path = Path(args.out) / f"{args.name}.json"
    man_path.write_text(json.dumps(man, indent=2))
    if args.json:
        print(json.dumps(man, indent=2))
    else:
        e = params.engine
        print(f"wrote {path} and {man_path}: a={e.rows} b={e.cols} k={e.rank} s={e.sub_batch} P={e.lanes} "
              f"{e.fmts.name}, {params.driver.scheme} driver BL<={params.driver.bl_max}, "
              f"FIFO depth {params.fifo_depth}")
    return 0
