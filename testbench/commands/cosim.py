"""``sbpca cosim <design>``: run RTL and golden model side by side on Verilator.

Each design registers its own sub-command from ``testbench.commands.cosim_<design>``
exposing ``register(subparsers)``.
"""

from __future__ import annotations

import importlib
import importlib.util

DESIGNS = ("engine", "driver", "soc")


def register(sub) -> None:
    parser = sub.add_parser("cosim", help="co-simulate a design against the golden model (Verilator)")
    designs = parser.add_subparsers(dest="design", metavar="DESIGN")
    designs.required = True
    for design in DESIGNS:
        name = f"testbench.commands.cosim_{design}"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(designs)
