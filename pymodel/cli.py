"""The ``sbpca`` command line: one entry point, one sub-command per module.

Each sub-command lives in its own module, which exposes ``register(subparsers)``;
``register`` adds a parser whose ``func`` default runs the command and returns an
exit status.  Keeping commands in separate modules lets the RTL, co-simulation
and training faces grow without touching each other's code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# (module, required) — a module listed here must import; the order is the
# order of ``sbpca --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "pymodel.commands.golden",
    "pymodel.commands.formats",
    "pymodel.commands.train",
    "pymodel.commands.study",
    "hdl.commands.gen",
    "hdl.commands.synth",
    "testbench.commands.cosim",
    "testbench.commands.demo",
)


def _available_modules() -> list[str]:
    """Command modules that exist in this checkout.

    A module that is absent (a face not built yet) is left out of the parser; a
    module that exists but fails to import raises, so breakage is never hidden.
    """
    found = []
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name.rsplit(".", 1)[0]) is None:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            found.append(name)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sbpca",
        description="Streaming batch PCA (SBPCA) training toolkit for crossbar arrays: "
        "golden model, RTL generation, co-simulation and accuracy studies.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _available_modules():
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
