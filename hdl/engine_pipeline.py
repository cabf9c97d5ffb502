"""Pipeline helpers of the engine: reset-less registers, delay lines, per-lane register copies
and the uop tag pipeline.

Why per-lane copies: a control word that every lane reads (the uop tag, a selected scalar)
would otherwise be one register driving a chip-wide net into every lane's multiplexers.  Each
lane gets its own copy, placed beside it; the wire attribute :data:`hdl.synth.DUP_ATTR` asks
Yosys (``hdl.synth``) not to merge the copies back.  Datapath registers carry no reset: only
the uop tags' ``valid`` bit and the control state are cleared, and a reset net reaching every
data flip-flop is a slow net.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amaranth.hdl import Cat, Const, Module, Signal, Value
from amaranth.lib import data

from .synth import DUP_ATTR

__all__ = ["index_bits", "mem_addr", "mem_depth", "reg", "rreg", "delay", "lane_regs", "lane_copies", "lanes_any", "Tag", "UopPipe"]


def index_bits(n: int) -> int:
    """Bits of an index in range(n) (at least 1)."""
    return max(1, (int(n) - 1).bit_length())


def mem_addr(*fields):
    """A memory address made of index fields ``(value, n)``, least significant first.

    Each field takes ``index_bits(n)`` bits (its power-of-two stride), so the address is
    wiring, not a multiply-add: read addresses come from the issue logic in the same cycle,
    and an adder there (a carry chain before a block RAM's address pins) was a critical path.
    """
    parts = []
    for v, n in fields:
        v = Value.cast(v).as_unsigned()
        w = index_bits(n)
        parts.append(v[:w] if len(v) >= w else Cat(v, Const(0, w - len(v))))
    return Cat(*parts)


def mem_depth(*ns: int) -> int:
    """Depth of a memory addressed by :func:`mem_addr` with fields of these ranges."""
    d = 1
    for n in ns:
        d <<= index_bits(n)
    return d


def reg(m: Module, shape, value, name: str) -> Signal:
    """``value`` registered (no reset)."""
    r = Signal(shape, name=name, reset_less=True)
    m.d.sync += r.eq(value)
    return r


def rreg(m: Module, value, name: str) -> Signal:
    """``value`` registered at its own width (e.g. a rounded value before its range check)."""
    value = Value.cast(value)
    return reg(m, value.shape(), value, name)


def delay(m: Module, vals: list, n: int, shape, name: str) -> list:
    """Each of ``vals`` delayed by ``n`` register stages."""
    for t in range(n):
        vals = [reg(m, shape, v, f"{name}_d{t}_{l}") for l, v in enumerate(vals)]
    return vals


def lane_regs(m: Module, shape, values: list, name: str) -> list[Signal]:
    """``values[l]`` registered once per lane, kept apart in synthesis when there are several."""
    dup = len(values) > 1
    outs = []
    for l, v in enumerate(values):
        r = Signal(shape, name=f"{name}_l{l}", reset_less=True, attrs={DUP_ATTR: 1} if dup else {})
        m.d.sync += r.eq(v)
        outs.append(r)
    return outs


def lane_copies(m: Module, shape, value, lanes: int, name: str) -> list[Signal]:
    """One ``value`` registered once per lane (see :func:`lane_regs`)."""
    return lane_regs(m, shape, [value] * lanes, name)


def lanes_any(m: Module, bits: list, name: str) -> Value:
    """Each lane's flag registered beside its lane, OR-ed over the lanes (a cycle later).

    A range check ends a lane's carry chain; OR-ing every lane's check in the same cycle
    would add a chip-wide net to it.  The caller pairs the result with the next stage.
    """
    return Cat(*[reg(m, 1, b, f"{name}_{l}") for l, b in enumerate(bits)]).any()


@dataclass
class Tag:
    """A uop tag at one pipeline stage: the central copy ``u`` and, where the lanes carry
    their own copies, one per lane (``lanes``)."""

    u: data.View
    lanes: list | None = None

    def lane(self, l: int) -> data.View:
        """Lane ``l``'s copy (the central one where the lanes carry none)."""
        return self.u if self.lanes is None else self.lanes[l]

    def __getattr__(self, name):
        return getattr(self.u, name)


@dataclass
class UopPipe:
    """The uop tag pipeline: each :meth:`stage` registers the tag (only ``valid`` is reset).

    With ``lanes > 1`` a tag that carries per-lane copies passes them on, so that from the
    operand stage on every lane reads its own registered copy.  ``stages`` lists every
    central stage (the engine is quiet when none is valid).
    """

    m: Module
    layout: data.StructLayout
    lanes: int
    stages: list = field(default_factory=list)

    def __post_init__(self) -> None:
        first = next(iter(self.layout))
        if first[0] != "valid" or first[1].offset != 0:
            raise ValueError("a uop layout must start with its 'valid' bit")

    def stage(self, prev: Tag, name: str, *, split: bool = False) -> Tag:
        """``prev`` one cycle later; ``split``: start the per-lane copies here."""
        m = self.m
        body = Signal(self.layout, name=name, reset_less=True)
        valid = Signal(name=f"{name}_valid")
        m.d.sync += [body.eq(prev.u), valid.eq(prev.u.valid)]
        u = data.View(self.layout, Cat(valid, body.as_value()[1:]))
        self.stages.append(u)
        lanes = None
        if self.lanes > 1:
            if split:
                lanes = lane_regs(m, self.layout, [prev.u] * self.lanes, name)
            elif prev.lanes is not None:
                lanes = lane_regs(m, self.layout, prev.lanes, name)
        return Tag(u, lanes)

    def delay(self, tag: Tag, n: int, name: str) -> Tag:
        """``tag`` ``n`` stages later."""
        for t in range(n):
            tag = self.stage(tag, f"{name}_{t}")
        return tag

    def central(self, tag: Tag) -> Tag:
        """The same stage without its per-lane copies (where lane results have been summed)."""
        return Tag(tag.u, None)
