"""``sbpca gen engine``: Verilog of the SBPCA power-iteration engine and its JSON manifest.

Example: ``sbpca gen engine --rows 64 --cols 64 --rank 4 --sub-batch 32 --lanes 8 -o build/engine``
writes ``build/engine/sbpca_engine.v`` and ``build/engine/sbpca_engine.json`` (parameters,
formats, ports with widths, stream payload fields, status bits, job program, throughput bound).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(designs) -> None:
    from ..engine_params import add_engine_args

    parser = designs.add_parser("engine", help="SBPCA power-iteration engine (streams x/δ, emits factor pairs)",
                                description=__doc__.split("\n\n")[0])
    add_engine_args(parser)
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the golden model's initial state baked into the state memories (default 0)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    parser.add_argument("--name", default="sbpca_engine", help="Verilog module name (default sbpca_engine)")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON on stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine import SBPCAEngine, engine_manifest
    from ..engine_params import params_from_args
    from ..verilog import write_verilog

    if not args.name.isidentifier():
        raise ValueError(f"--name must be a Verilog identifier, not {args.name!r}")
    params = params_from_args(args)
    path = write_verilog(SBPCAEngine(params, seed=args.seed), args.name, args.out)
    man = engine_manifest(params, name=args.name, seed=args.seed)
    man["verilog"] = str(path)
    man_path = Path(args.out) / f"{args.name}.json"
    man_path.write_text(json.dumps(man, indent=2))
    if args.json:
        print(json.dumps(man, indent=2))
    else:
        print(f"wrote {path} and {man_path}: a={params.rows} b={params.cols} k={params.rank} "
              f"s={params.sub_batch} P={params.lanes} {params.fmts.name}, "
              f"bound {params.bound_cycles_per_sample:g} cycles/sample, {len(man['program'])} jobs per sub-batch")
    return 0
