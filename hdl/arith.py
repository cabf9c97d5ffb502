"""Shared RTL arithmetic: the hardware twins of ``pymodel.fixedpoint``.

Combinational helpers (:func:`round_shift`, :func:`fit`, :func:`requant`) build Amaranth
expressions that compute exactly what ``round_shift`` / ``fit`` / ``requantize`` compute on
integers, sized from the same :class:`~pymodel.fixedpoint.Fmt` objects.  The iterative units
(:class:`RoundDivider`, :class:`ISqrt`) are the exact restoring division and digit-by-digit
square root that ``div_round`` and ``isqrt`` define; they take a few bits per cycle so that
no long combinational path is built.  :func:`tree_sum` is a pipelined adder tree.

Everything here is general (no SBPCA state): the crossbar driver and later designs reuse it.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from pymodel.fixedpoint import Fmt, Overflow, Rounding

__all__ = ["round_shift", "fit", "requant", "RoundDivider", "ISqrt", "tree_sum", "tree_latency", "check_hw_format"]


def check_hw_format(name: str, fmt: Fmt) -> None:
    """Reject a format the RTL cannot implement (``Overflow.ERROR`` cannot raise in hardware)."""
    if not isinstance(fmt, Fmt):
        raise TypeError(f"format {name!r} must be a pymodel.fixedpoint.Fmt, not {type(fmt).__name__}")
    if fmt.overflow is Overflow.ERROR:
        raise ValueError(f"format {name!r} ({fmt}) uses overflow='error', which hardware cannot raise; "
                         "use 'saturate' or 'wrap'")


def round_shift(v: Value, shift: int, rounding: Rounding) -> Value:
    """``v / 2**shift`` rounded as ``rounding`` says; ``shift <= 0`` is an exact left shift.

    Mirrors :func:`pymodel.fixedpoint.round_shift` bit for bit on signed values:
    half-up adds half before the arithmetic shift; half-even adds ``half - 1 + lsb(floor)``.
    """
    v = Value.cast(v)
    rounding = Rounding(rounding)
    if shift <= 0:
        return v << -shift
    if rounding is Rounding.TRUNCATE:
        return v >> shift
    half = 1 << (shift - 1)
    if rounding is Rounding.HALF_UP:
        return (v + half) >> shift
    odd = v[shift]  # lsb of floor(v / 2**shift)
    return (v + (half - 1) + odd) >> shift


def fit(v: Value, fmt: Fmt) -> tuple[Value, Value]:
    """Apply ``fmt``'s overflow rule to ``v`` (already at ``fmt.frac``): ``(value, out_of_range)``.

    The value has shape ``signed(fmt.bits)``; ``out_of_range`` is the saturation/wrap flag
    the golden model counts in its ``SatFlags``.
    """
    v = Value.cast(v)
    lo, hi = fmt.min_int, fmt.max_int
    vs = v if v.shape().signed else Cat(v, Const(0, 1)).as_signed()  # unsigned: zero-extend
    if len(vs) <= fmt.bits:
        return vs, Const(0, 1)
    # in range iff the bits from the format's sign bit up are all equal (no carry chain)
    upper = vs[fmt.bits - 1:]
    sign = vs[-1]
    over = ~sign & upper.any()
    under = sign & ~upper.all()
    if fmt.overflow is Overflow.WRAP:
        out = vs[:fmt.bits].as_signed()
    else:
        out = Mux(over, Const(hi, signed(fmt.bits)), Mux(under, Const(lo, signed(fmt.bits)), vs[:fmt.bits].as_signed()))
    return out, over | under


def requant(v: Value, from_frac: int, fmt: Fmt) -> tuple[Value, Value]:
    """The one narrowing step (:func:`pymodel.fixedpoint.requantize`): round, then fit."""
    return fit(round_shift(v, from_frac - fmt.frac, fmt.rounding), fmt)


def tree_sum(m: Module, values: list[Value], width: int, levels_per_stage: int = 1,
             enable: Value | None = None, name: str = "tree") -> tuple[Value, int]:
    """Sum ``values`` (signed) in a balanced adder tree, registered every ``levels_per_stage`` levels.

    The sum always leaves through a register (a lone value is just registered), so what
    follows starts from a register.  Returns ``(sum, latency)`` with ``sum`` of shape
    ``signed(width)`` and ``latency = max(1, ceil(levels / levels_per_stage))``.  ``width``
    must hold the exact sum.
    """
    if not values:
        raise ValueError("tree_sum needs at least one value")
    if levels_per_stage < 1:
        raise ValueError(f"levels_per_stage must be >= 1, not {levels_per_stage!r}")
    level = [Value.cast(v) for v in values]
    latency = 0
    depth = 0
    while True:
        if len(level) > 1:
            nxt = []
            for i in range(0, len(level), 2):
                nxt.append(level[i] + level[i + 1] if i + 1 < len(level) else level[i])
            level = nxt
            depth += 1
        if len(level) == 1 or depth % levels_per_stage == 0:
            regs = []
            for idx, val in enumerate(level):
                r = Signal(signed(width), name=f"{name}_l{depth}_{idx}", reset_less=True)
                m.d.sync += r.eq(val)
                regs.append(r)
            level = regs
            latency += 1
        if len(level) == 1:
            return level[0], latency


def tree_latency(n: int, levels_per_stage: int = 1) -> int:
    """Register stages :func:`tree_sum` puts in a tree over ``n`` values."""
    levels = max(0, (n - 1).bit_length())
    return max(1, -(-levels // levels_per_stage))


class RoundDivider(wiring.Component):
    """Iterative (non-restoring) divider: ``q = floor((2·num + den) / (2·den))`` on unsigned operands.

    This is :func:`pymodel.fixedpoint.div_round` on magnitudes.  The unit computes
    ``q2 = floor(2·num / den)`` with ``quot_bits`` bits, ``bits_per_cycle`` quotient bits per
    clock, then rounds ``q = (q2 + 1) >> 1``.  ``overflow`` is set when ``q2 >= 2**quot_bits``
    (then ``q >= 2**(quot_bits-1)``, and ``quotient`` is not meaningful): a caller that saturates
    to a signed ``W``-bit result uses ``quot_bits = W + 1`` and saturates on ``overflow``.

    Handshake: pulse ``start`` while ``busy`` is low; ``done`` pulses one cycle with the result
    (registered), which then holds until the next start.  Latency:
    ``ceil(quot_bits / bits_per_cycle) + 3`` cycles (the operands are registered first; the range
    check is registered and acted on during the first iteration).
    ``den == 0`` reports ``overflow``.
    """

    def __init__(self, *, num_width: int, den_width: int, quot_bits: int, bits_per_cycle: int = 1):
        for nm, val in (("num_width", num_width), ("den_width", den_width), ("quot_bits", quot_bits),
                        ("bits_per_cycle", bits_per_cycle)):
            if not isinstance(val, int) or val < 1:
                raise ValueError(f"RoundDivider {nm} must be a positive integer, not {val!r}")
        self.num_width = num_width
        self.den_width = den_width
        self.quot_bits = quot_bits
        self.bits_per_cycle = bits_per_cycle
        self.steps = -(-quot_bits // bits_per_cycle)
        super().__init__({
            "start": In(1),
            "num": In(unsigned(num_width)),
            "den": In(unsigned(den_width)),
            "busy": Out(1),
            "done": Out(1),
            "quotient": Out(unsigned(quot_bits)),
            "overflow": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        qp = self.steps * self.bits_per_cycle  # padded quotient bits
        nw = self.num_width + 1  # width of 2*num
        dw = self.den_width
        den = Signal(dw)
        rem = Signal(signed(dw + 2))  # non-restoring partial remainder, in [-den, den)
        low = Signal(max(qp, 1))  # the low qp bits of 2*num, shifted out MSB first
        q2 = Signal(qp)
        count = Signal(range(self.steps + 1))
        two_num = Signal(nw)
        checking = Signal()  # the cycle after start: operands are registered, range compared
        deciding = Signal()  # the first iteration, when the range check (registered) is acted on
        too_big = Signal()
        # ``count != 0`` kept in a flip-flop, updated with the count: the iteration's enables
        # (rem, low, q2 and the count itself) start at one register, not at a decode of the
        # count (16×16 seed 1 of ``e9decda``: ``count`` → two LUTs → the remainder's
        # add/subtract → ``rem``, 5 levels, 128.4 MHz)
        running = Signal()
        m.d.sync += self.done.eq(0)
        # register the operands first: the caller's operand multiplexers and the wide comparison
        # below would otherwise share one cycle.  They load at every idle cycle (they are read
        # only while busy), so ``start`` drives two flip-flops, not the enables of every operand
        # bit: a caller's state decode behind ``start`` stays off the operands' clock enables
        with m.If(~self.busy):
            m.d.sync += [den.eq(self.den), two_num.eq(self.num << 1)]
        with m.If(self.start & ~self.busy):
            m.d.sync += [checking.eq(1), self.busy.eq(1)]
        # the branches below are separate: ``checking`` and the iteration both imply ``busy``, so
        # ``start`` (accepted only while idle) stays off their registers' enables
        with m.If(checking):
            high = two_num >> qp  # bits of 2*num above the quotient window
            m.d.sync += [
                checking.eq(0), deciding.eq(1),
                low.eq(two_num[:qp] if nw > qp else two_num),
                q2.eq(0),
                count.eq(self.steps), running.eq(1),
                rem.eq(high),
                self.overflow.eq(0),
                # the wide comparison lands in one flip-flop: the first iteration runs meanwhile,
                # and is abandoned below when the quotient does not fit
                too_big.eq(high >= den),
            ]
        with m.If(self.busy & ~checking):
            r = rem
            lo = low
            q = q2
            for _ in range(self.bits_per_cycle):
                # non-restoring step: add or subtract by the sign of the partial remainder (a
                # register for one bit per cycle), so no wide comparison drives a wide multiplexer;
                # the quotient bits are the restoring division's (bit = new remainder >= 0)
                shifted = Cat(lo[qp - 1], r).as_signed()  # 2r + next bit
                r = Mux(r[-1], shifted + den, shifted - den)[:dw + 2].as_signed()
                ge = ~r[-1]
                lo = Cat(Const(0, 1), lo[:qp - 1]) if qp > 1 else Const(0, 1)
                q = Cat(ge, q[:qp - 1]) if qp > 1 else ge
            with m.If(running):
                m.d.sync += [rem.eq(r), low.eq(lo), q2.eq(q), count.eq(count - 1), running.eq(count != 1)]
                # overflow if the padded quotient exceeds quot_bits
                if qp > self.quot_bits:
                    with m.If(count == 1):
                        m.d.sync += self.overflow.eq(q[self.quot_bits:] != 0)
            with m.Else():
                # rounding, registered: (q2 + 1) >> 1 ; q2 < 2**quot_bits so it fits quot_bits bits
                m.d.sync += [self.quotient.eq((q2[:self.quot_bits] + 1) >> 1),
                             self.busy.eq(0), self.done.eq(1)]
        # the range check of the cycle before, acted on during the first iteration (these
        # assignments come last: they win over that iteration's)
        with m.If(deciding):
            m.d.sync += deciding.eq(0)
            with m.If(too_big):
                # quotient does not fit in qp bits (also den == 0)
                m.d.sync += [self.overflow.eq(1), self.done.eq(1), rem.eq(0), self.busy.eq(0)]
        return m


class ISqrt(wiring.Component):
    """Iterative digit-by-digit integer square root: ``root = floor(sqrt(value))``.

    Exactly :func:`pymodel.fixedpoint.isqrt_int` for unsigned ``value`` of ``width`` bits,
    ``bits_per_cycle`` root bits per clock.  Same handshake as :class:`RoundDivider`.
    """

    def __init__(self, *, width: int, bits_per_cycle: int = 1):
        for nm, val in (("width", width), ("bits_per_cycle", bits_per_cycle)):
            if not isinstance(val, int) or val < 1:
                raise ValueError(f"ISqrt {nm} must be a positive integer, not {val!r}")
        self.width = width
        self.bits_per_cycle = bits_per_cycle
        self.root_bits = -(-width // 2)
        self.steps = -(-self.root_bits // bits_per_cycle)
        super().__init__({
            "start": In(1),
            "value": In(unsigned(width)),
            "busy": Out(1),
            "done": Out(1),
            "root": Out(unsigned(self.root_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        rb = self.steps * self.bits_per_cycle  # padded root bits
        vw = 2 * rb
        val = Signal(vw)
        rem = Signal(rb + 2)
        root = Signal(rb)
        count = Signal(range(self.steps + 1))
        m.d.sync += self.done.eq(0)
        with m.If(self.start & ~self.busy):
            m.d.sync += [val.eq(self.value), rem.eq(0), root.eq(0), count.eq(self.steps),
                         self.busy.eq(1)]
        with m.Elif(self.busy):
            v, r, q = val, rem, root
            for _ in range(self.bits_per_cycle):
                cur = Cat(v[vw - 2:vw], r)[:rb + 3]  # (r << 2) | top pair
                trial = Cat(Const(1, 2), q)[:rb + 3]  # (q << 2) | 1
                ge = cur >= trial
                r = Mux(ge, cur - trial, cur)[:rb + 2]
                q = Cat(ge, q)[:rb]
                v = Cat(Const(0, 2), v[:vw - 2])
            m.d.sync += [val.eq(v), rem.eq(r), root.eq(q), count.eq(count - 1)]
            with m.If(count == 1):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        m.d.comb += self.root.eq(root)
        return m
