"""Command-line parameters and the JSON manifest of the crossbar driver.

Shared by ``sbpca gen driver``, ``sbpca cosim driver`` and ``sbpca synth --top driver``
(through :func:`hdl.driver.build_from_args`), so the three agree on every option.
"""

from __future__ import annotations

import argparse

from amaranth.hdl import Shape

from pymodel.crossbar.lfsr import LfsrSpec
from pymodel.crossbar.params import SCHEMES, DriverParams
from pymodel.formats import DEFAULT_FORMAT_SET, FORMAT_SETS, get_format_set


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {value}")
    return value


def _taps(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"taps must be comma-separated integers, not {text!r}") from None


def add_driver_args(parser: argparse.ArgumentParser) -> None:
    """The driver's parameters: size, scheme, BL, formats, LFSR, seeds."""
    g = parser.add_argument_group("driver parameters")
    g.add_argument("--rows", type=_positive, default=64, help="a: row drivers (default 64)")
    g.add_argument("--cols", type=_positive, default=64, help="b: column drivers (default 64)")
    g.add_argument("--scheme", choices=SCHEMES, default="stochastic", help="pulse scheme (default stochastic)")
    g.add_argument("--bl", "--bl-max", dest="bl_max", type=_positive, default=31,
                   help="longest burst BL in time slots (default 31)")
    g.add_argument("--format", default=DEFAULT_FORMAT_SET, choices=sorted(FORMAT_SETS),
                   help=f"format set whose 'state' format the vector elements use (default {DEFAULT_FORMAT_SET})")
    g.add_argument("--data-bits", type=_positive, default=None, help="override the state width of the format set")
    g.add_argument("--prob-bits", type=_positive, default=12, help="P: threshold fraction bits (default 12)")
    g.add_argument("--lfsr-width", type=_positive, default=16, help="LFSR width (default 16)")
    g.add_argument("--lfsr-taps", type=_taps, default=None, help="LFSR taps, e.g. 16,15,13,4 (default: maximal)")
    g.add_argument("--lfsr-leap", type=_positive, default=None,
                   help="LFSR steps per slot (default: smallest >= width coprime to the period)")
    g.add_argument("--level-bits", type=_positive, default=4,
                   help="deterministic row level code width incl. sign (default 4)")
    g.add_argument("--seed", type=int, default=0, help="seed of the per-lane LFSR seeds (default 0)")


def params_from_args(args: argparse.Namespace) -> DriverParams:
    """:class:`DriverParams` from parsed arguments (missing ones take the defaults above)."""
    fmt = get_format_set(getattr(args, "format", DEFAULT_FORMAT_SET))
    bits = getattr(args, "data_bits", None)
    if bits is not None:
        if not 2 <= bits <= 32:
            raise ValueError(f"--data-bits must be in 2..32, not {bits}")
        fmt = fmt.with_data_bits(bits)
    bl = getattr(args, "bl_max", None) or getattr(args, "bl", None) or 31
    return DriverParams(
        rows=args.rows, cols=args.cols, scheme=getattr(args, "scheme", "stochastic"), bl_max=bl,
        state=fmt.state, prob_bits=getattr(args, "prob_bits", 12),
        lfsr=LfsrSpec(getattr(args, "lfsr_width", 16), getattr(args, "lfsr_taps", None),
                      getattr(args, "lfsr_leap", None)),
        seed=getattr(args, "seed", 0), level_bits=getattr(args, "level_bits", 4),
    )


def _fields(fields: list[tuple[str, int]]) -> list[dict]:
    out, off = [], 0
    for name, width in fields:
        out.append({"name": name, "offset": off, "width": width})
        off += width
    return out


def manifest(component, name: str, verilog: str | None = None) -> dict:
    """Everything a user of the generated Verilog needs: parameters, ports, word layouts, timing."""
    p: DriverParams = component.params
    ports = []
    for path, member in component.signature.members.flatten():
        if member.is_port:
            width = Shape.cast(member.shape).width
            ports.append({"name": "__".join(str(x) for x in path), "direction": member.flow.value.lower(),
                          "width": int(width)})
    return {
        "design": "driver",
        "top": name,
        "verilog": verilog,
        "params": p.to_dict(),
        "clock": "clk (rising edge), synchronous active-high reset rst",
        "ports": ports,
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
