"""``sbpca gen driver``: Verilog of the crossbar row/column driver and its JSON manifest.

Example: ``sbpca gen driver --rows 64 --cols 64 --scheme stochastic --bl 31 -o build/driver``
writes ``build/driver/crossbar_driver.v`` and ``build/driver/crossbar_driver.json``
(parameters, ports, cfg and slot-word layouts, LFSR seeds, timing).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(designs) -> None:
    parser = designs.add_parser("driver", help="crossbar row/column pulse driver (stochastic or deterministic)",
                                description=__doc__.split("\n\n")[0])
    from ..driver_config import add_driver_args

    add_driver_args(parser)
    parser.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    parser.add_argument("--name", default="crossbar_driver", help="Verilog module name (default crossbar_driver)")
    parser.add_argument("--json", action="store_true", help="also print the manifest as JSON on stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..driver import CrossbarDriver
    from ..driver_config import manifest, params_from_args
    from ..verilog import write_verilog

    if not args.name.isidentifier():
        raise ValueError(f"--name must be a Verilog identifier, not {args.name!r}")
    params = params_from_args(args)
    comp = CrossbarDriver(params)
    path = write_verilog(comp, args.name, args.out)
    man = manifest(comp, args.name, str(path))
    man_path = Path(args.out) / f"{args.name}.json"
    man_path.write_text(json.dumps(man, indent=2))
    if args.json:
        print(json.dumps(man, indent=2))
    else:
        word = sum(f["width"] for f in man["word_fields"])
        print(f"wrote {path} and {man_path}: {params.rows}x{params.cols} {params.scheme} driver, "
              f"BL <= {params.bl_max}, {word}-bit slot word")
    return 0
