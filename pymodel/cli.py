"""The ``sbpca`` command line: one entry point, one sub-command per module.

Each sub-command lives in its own module, which exposes ``register(subparsers)``;
``register`` adds a parser whose ``func`` default runs the command and returns an
exit status.  Keeping commands in separate modules lets the RTL, co-simulation
and training faces grow without touching each other's code.  ``gen``, ``cosim`` and
``synth`` take their designs, with one flag vocabulary, from ``hdl.designs.DESIGNS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# The order is the order of ``sbpca --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "testbench.commands.demo",
    "pymodel.commands.golden",
    "pymodel.commands.formats",
    "pymodel.commands.train",
    "pymodel.commands.study",
    "hdl.commands.gen",
    "testbench.commands.cosim",
    "testbench.commands.regress",
    "hdl.commands.synth",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sbpca",
        description="Streaming batch PCA (SBPCA) training toolkit for crossbar arrays: "
        "golden model, RTL generation, co-simulation and accuracy studies.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"sbpca {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
