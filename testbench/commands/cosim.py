"""``sbpca cosim <design>``: run RTL and golden model side by side on Verilator.

A design's parameters come from its registry entry (:data:`hdl.designs.DESIGNS`, the same
flags as ``sbpca gen`` and ``sbpca synth``); the run's own options and the runner live in
``testbench.commands.cosim_<design>`` (``HELP``, ``add_arguments(parser)``, ``run(args)``).
"""

from __future__ import annotations

import importlib

from hdl.designs import add_design_args, get_design

RUNNERS = ("engine", "driver", "soc", "csr")
"""Designs with a co-simulation bench (every design of the registry)."""


def register(sub) -> None:
    parser = sub.add_parser("cosim", help="co-simulate a design against the golden model (Verilator)")
    group = parser.add_subparsers(dest="design", metavar="DESIGN")
    group.required = True
    for name in RUNNERS:
        runner = importlib.import_module(f"testbench.commands.cosim_{name}")
        p = group.add_parser(name, help=runner.HELP, description=runner.__doc__.split("\n\n")[0],
                             allow_abbrev=False)
        add_design_args(p, get_design(name))
        runner.add_arguments(p)
        p.set_defaults(func=runner.run)
