"""The ``sbpca`` command line: one entry point, one sub-command per module.

Each sub-command lives in its own module, which exposes ``register(subparsers)``;
``register`` adds a parser whose ``func`` default runs the command and returns an
exit status.  Keeping commands in separate modules lets the RTL, co-simulation
and training faces grow without touching each other's code.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
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


def register_design_group(sub, command: str, help_text: str, module_prefix: str,
                          designs: tuple[str, ...]) -> None:
    """Add ``sbpca <command> <design>``, one sub-command per module ``<module_prefix><design>``.

    Used by ``gen`` and ``cosim``: each design (engine, driver, soc) registers its own
    arguments from its own module, so the faces never edit a shared file.
    """
    parser = sub.add_parser(command, help=help_text)
    group = parser.add_subparsers(dest="design", metavar="DESIGN")
    group.required = True
    for design in designs:
        name = f"{module_prefix}{design}"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(group)


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
