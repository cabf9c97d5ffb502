"""``sbpca gen <design>``: write Verilog and a JSON manifest for one design.

Each design (engine, driver, soc) registers its own sub-command from its own
module ``hdl.commands.gen_<design>`` exposing ``register(subparsers)``.
"""

from __future__ import annotations

from pymodel.cli import register_design_group

DESIGNS = ("engine", "driver", "soc")


def register(sub) -> None:
    register_design_group(sub, "gen", "generate Verilog and a JSON manifest for a design",
                          "hdl.commands.gen_", DESIGNS)
