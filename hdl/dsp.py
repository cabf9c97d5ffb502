"""Pipelined multipliers built from DSP-sized tiles.

A wide product ``a * b`` is split into 18 × 18 signed tiles (unsigned 17-bit low slices,
a signed top slice), the size of one ECP5 ``MULT18X18D`` (and of most FPGA multipliers).
Every tile product has its operands and its result registered — on ECP5 those are the
DSP block's own input and output registers, so no fabric path runs through the
multiplier array — and the shifted tile products are summed in a balanced adder tree with
one register per level.  The data registers have no reset (the caller's valid tags say
which products mean something), which keeps the reset net small.  The latency is fixed by the operand widths alone
(:func:`tile_latency`), whatever the primitive, so the generic and the ECP5 variant are
cycle- and bit-identical.

``primitive="generic"`` writes ``a * b`` of each tile between Amaranth registers (any
tool, any simulator); ``primitive="ecp5"`` instantiates ``MULT18X18D`` with
``REG_INPUTA/B_CLK`` and ``REG_OUTPUT_CLK`` on ``CLK0``, for synthesis with Yosys/nextpnr
(nextpnr then times the DSP as registered at both ends).
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Instance, Module, Shape, Signal, Value, signed

__all__ = ["TILE_BITS", "PRIMITIVES", "tiles", "tile_count", "tile_latency", "tiled_mul"]

TILE_BITS = 18  # signed operand width of one DSP tile
PRIMITIVES = ("generic", "ecp5")


def _slices(width: int, is_signed: bool) -> list[tuple[int, int, bool]]:
    """``(lo, hi, signed)`` slices of an operand: 17-bit unsigned pieces, signed top piece."""
    step = TILE_BITS - 1
    out = []
    lo = 0
    while True:
        if width - lo <= (TILE_BITS if is_signed else step):
            out.append((lo, width, is_signed))
            return out
        out.append((lo, lo + step, False))
        lo += step


def tiles(a_width: int, a_signed: bool, b_width: int, b_signed: bool) -> list[tuple[tuple, tuple]]:
    """Tile pairs ``((lo, hi, signed) of a, (lo, hi, signed) of b)`` covering ``a * b``."""
    return [(sa, sb) for sa in _slices(a_width, a_signed) for sb in _slices(b_width, b_signed)]


def tile_count(a_width: int, b_width: int, a_signed: bool = True, b_signed: bool = True) -> int:
    return len(tiles(a_width, a_signed, b_width, b_signed))


def _levels(n: int) -> int:
    return max(0, (n - 1).bit_length())


def tile_latency(a_width: int, b_width: int, a_signed: bool = True, b_signed: bool = True,
                 fabric_reg: bool = False) -> int:
    """Cycles from the operands (combinational) to the registered product.

    ``fabric_reg`` adds the fabric register of :func:`tiled_mul` in front of the tiles.
    """
    return 2 + int(fabric_reg) + _levels(tile_count(a_width, b_width, a_signed, b_signed))


def _piece(v: Value, lo: int, hi: int, is_signed: bool) -> Value:
    """An operand slice as an 18-bit signed tile input (unsigned slices zero-extended)."""
    p = v[lo:hi]
    p = p.as_signed() if is_signed else p.as_unsigned()
    return p


def _mul18(m: Module, a: Value, b: Value, name: str, primitive: str, domain: str) -> Signal:
    """One registered-in, registered-out 18 × 18 signed product (latency 2)."""
    out = Signal(signed(2 * TILE_BITS), name=f"{name}_p", reset_less=True)
    if primitive == "generic":
        ra = Signal(signed(TILE_BITS), name=f"{name}_a", reset_less=True)
        rb = Signal(signed(TILE_BITS), name=f"{name}_b", reset_less=True)
        m.d[domain] += [ra.eq(a), rb.eq(b), out.eq(ra * rb)]
        return out
    ea = Signal(signed(TILE_BITS), name=f"{name}_ai")
    eb = Signal(signed(TILE_BITS), name=f"{name}_bi")
    m.d.comb += [ea.eq(a), eb.eq(b)]
    ports = {f"i_A{i}": ea[i] for i in range(TILE_BITS)}
    ports.update({f"i_B{i}": eb[i] for i in range(TILE_BITS)})
    ports.update({f"i_C{i}": 0 for i in range(TILE_BITS)})
    ports.update({f"o_P{i}": out[i] for i in range(2 * TILE_BITS)})
    clk = ClockSignal(domain)
    m.submodules[name] = Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
        p_REG_INPUTA_CE="CE0", p_REG_INPUTB_CE="CE0", p_REG_OUTPUT_CE="CE0",
        p_REG_INPUTA_RST="RST0", p_REG_INPUTB_RST="RST0", p_REG_OUTPUT_RST="RST0",
        p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
        p_CLK0_DIV="ENABLED", p_GSR="DISABLED", p_RESETMODE="SYNC", p_SOURCEB_MODE="B_SHIFT",
        p_MULT_BYPASS="DISABLED", p_CAS_MATCH_REG="FALSE", p_HIGHSPEED_CLK="NONE",
        i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
        i_CLK0=clk, i_CLK1=0, i_CLK2=0, i_CLK3=0,
        i_CE0=1, i_CE1=0, i_CE2=0, i_CE3=0,
        i_RST0=0, i_RST1=0, i_RST2=0, i_RST3=0,
        **ports,
    )
    return out


def tiled_mul(m: Module, a: Value, b: Value, *, name: str, primitive: str = "generic",
              domain: str = "sync", fabric_reg: bool = False) -> tuple[Signal, int]:
    """``a * b`` (exact, signed result) registered after :func:`tile_latency` cycles.

    ``a`` and ``b`` are sampled in the cycle they are presented (their first register is the
    tiles' input register).  With ``fabric_reg`` they are first registered in the fabric,
    one cycle more: when the operands come out of multiplexer logic and the tiles sit in
    DSP columns far apart, the logic then ends at a register placed next to it and only a
    plain net crosses the chip to the DSP input registers.  Returns ``(product, latency)``.
    """
    if primitive not in PRIMITIVES:
        raise ValueError(f"multiplier primitive {primitive!r} is unknown; allowed: {', '.join(PRIMITIVES)}")
    a, b = Value.cast(a), Value.cast(b)
    sa, sb = a.shape(), b.shape()
    if fabric_reg:
        ra = Signal(sa, name=f"{name}_fa", reset_less=True)
        rb = Signal(sb, name=f"{name}_fb", reset_less=True)
        m.d[domain] += [ra.eq(a), rb.eq(b)]
        a, b = ra, rb
    width = len(a) + len(b) + (0 if (sa.signed or sb.signed) else 1)
    pairs = tiles(len(a), sa.signed, len(b), sb.signed)
    terms: list[Value] = []
    for t, ((alo, ahi, asg), (blo, bhi, bsg)) in enumerate(pairs):
        p = _mul18(m, _piece(a, alo, ahi, asg), _piece(b, blo, bhi, bsg), f"{name}_t{t}", primitive, domain)
        terms.append(p << (alo + blo) if alo + blo else p)
    level = 0
    while len(terms) > 1:
        nxt = []
        for i in range(0, len(terms), 2):
            r = Signal(signed(width), name=f"{name}_s{level}_{i // 2}", reset_less=True)
            m.d[domain] += r.eq(terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i])
            nxt.append(r)
        terms = nxt
        level += 1
    prod = terms[0]
    if len(pairs) == 1:
        res = Signal(signed(width), name=f"{name}_out")
        m.d.comb += res.eq(prod)
        prod = res
    lat = tile_latency(len(a), len(b), sa.signed, sb.signed, fabric_reg)
    assert 2 + int(fabric_reg) + level == lat, (level, lat)
    return prod, lat
