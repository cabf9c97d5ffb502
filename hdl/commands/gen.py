"""``sbpca gen <design>``: write Verilog and a JSON manifest for one design.

Each design (engine, driver, soc) registers its own sub-command from its own
module ``hdl.commands.gen_<design>`` exposing ``register(subparsers)``.
"""

from __future__ import annotations

import importlib
import importlib.util

DESIGNS = ("engine", "driver", "soc")


def register(sub) -> None:
    parser = sub.add_parser("gen", help="generate Verilog and a JSON manifest for a design")
    designs = parser.add_subparsers(dest="design", metavar="DESIGN")
    designs.required = True
    for design in DESIGNS:
        name = f"hdl.commands.gen_{design}"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(designs)
