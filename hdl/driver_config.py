"""The JSON manifest of the crossbar driver (``sbpca gen driver``; the driver's command-line
parameters are its entry in :data:`hdl.designs.DESIGNS`)."""

from __future__ import annotations

from pymodel.crossbar.params import DriverParams

from .verilog import port_list


def _fields(fields: list[tuple[str, int]]) -> list[dict]:
    out, off = [], 0
    for name, width in fields:
        out.append({"name": name, "offset": off, "width": width})
        off += width
    return out


def manifest(component, name: str, verilog: str | None = None) -> dict:
    """Everything a user of the generated Verilog needs: parameters, ports, word layouts, timing."""
    p: DriverParams = component.params
    return {
        "design": "driver",
        "top": name,
        "verilog": verilog,
        "params": p.to_dict(),
        "clock": "clk (rising edge), synchronous active-high reset rst",
        "ports": port_list(component),
        "input_stream": {"port": "i", "element": f"signed {p.state.bits}-bit {p.state}",
                         "order": f"{p.rows} row elements u[0..{p.rows - 1}], then "
                                  f"{p.cols} column elements v[0..{p.cols - 1}]"},
        "cfg_fields": _fields(p.cfg_fields()),
        "word_fields": _fields(p.word_fields()),
        "widths": {"scale_bits": p.scale_bits, "scale_frac": p.scale.frac, "thr_bits": p.thr_bits,
                   "threshold_shift": p.threshold_shift, "bl_bits": p.bl_bits,
                   "level_max": p.level_max},
        "lfsr": {**p.lfsr.to_dict(), "row_seeds": list(p.row_seeds), "col_seeds": list(p.col_seeds)}
        if p.stochastic else None,
        "timing": {
            "load_cycles": p.lanes, "cfg_cycles": 1, "scale_cycles": p.lanes + 3,
            "slot_cycles": "BL (one per accepted o word)",
            "cycles_per_update_no_stall": f"{2 * p.lanes + 4} + BL",
        },
    }
