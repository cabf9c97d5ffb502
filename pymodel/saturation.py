"""The saturation stages of the fixed-point SBPCA datapath, declared once.

The golden model counts a saturation per stage (``SatFlags`` keys in ``pymodel.sbpca``),
the compiled kernel indexes its counters by position, the engine RTL raises one sticky
status bit per stage (``sat[i]``), and the register map documents the stages that the
SoC ORs into ``ERRORS.SATURATION``.  All of them take the names and their order from
here, so a stage added or renamed changes the model, the RTL bit order, the manifests
and the firmware header together.
"""

from __future__ import annotations

#: Stage names in engine status-bit order (bit i of the engine's ``sat`` output).
SAT_NAMES: tuple[str, ...] = (
    "q", "A", "recip", "M_update", "M",
    "X_gs_h", "X_gs_v", "X_inv", "X_q",
    "p", "D",
    "Delta_gs_h", "Delta_gs_v", "Delta_inv", "Delta_q",
    "S", "sigma",
)

#: Name -> status bit.
SAT_BIT: dict[str, int] = {name: i for i, name in enumerate(SAT_NAMES)}

__all__ = ["SAT_NAMES", "SAT_BIT"]
