"""``sbpca cosim <design>``: run RTL and golden model side by side on Verilator.

Each design registers its own sub-command from ``testbench.commands.cosim_<design>``
exposing ``register(subparsers)``.
"""

from __future__ import annotations

from pymodel.cli import register_design_group

DESIGNS = ("engine", "driver", "soc")


def register(sub) -> None:
    register_design_group(sub, "cosim", "co-simulate a design against the golden model (Verilator)",
                          "testbench.commands.cosim_", DESIGNS)
