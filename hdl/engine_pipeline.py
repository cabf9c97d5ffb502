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

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .synth import DUP_ATTR

__all__ = ["LUTRAM_MAX_BITS", "LUTRAM_DEPTH", "distributed", "ram_attrs", "read_next_cycle", "read_from_register", "kept_net", "index_bits", "mem_addr", "mem_depth", "reg", "rreg", "delay", "dup_reg", "tag_stage", "UopPipe", "StreamSlice"]


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


#: Memories of at most this many bits are built from LUT RAM (``ram_style``), larger ones are
#: left to Yosys (block RAM).  Why: Yosys maps an ECP5 DP16KD without its output register, and
#: the block RAM's clock-to-out (~5.6 ns) plus one net to a flip-flop is ~7.4 ns on its own (the
#: engine's input buffer alone closed at 136 MHz); a LUT RAM read is one LUT before the same
#: flip-flop.  A few kbit of LUT RAM costs ~1-2 LUTs per 64 bits plus the read multiplexer.
LUTRAM_MAX_BITS = 8192


#: Words of one LUT-RAM primitive (ECP5 ``TRELLIS_DPR16X4``): a deeper memory adds a read
#: multiplexer after its asynchronous read.
LUTRAM_DEPTH = 16


def distributed(depth: int, width: int) -> bool:
    """Whether a memory of ``depth`` words of ``width`` bits is built from LUT RAM."""
    return depth * width <= LUTRAM_MAX_BITS


def ram_attrs(depth: int, width: int, **extra) -> dict:
    """Attributes of a :class:`amaranth.lib.memory.Memory` of ``depth`` words of ``width`` bits:
    ``ram_style = "distributed"`` when it fits :data:`LUTRAM_MAX_BITS`, plus ``extra``."""
    attrs = dict(extra)
    if distributed(depth, width):
        attrs["ram_style"] = "distributed"
    return attrs


def read_next_cycle(m: Module, mem, addr, name: str):
    """Data of ``mem`` at ``addr``, one cycle later (a synchronous read's timing).

    A block RAM reads synchronously.  A LUT-RAM memory gets its *address* registered and an
    asynchronous read: mapped from a synchronous read port, Yosys puts the flip-flop after the
    LUT RAM and its read multiplexer, so a combinational address (the sequencer's issue logic)
    ran through them in one cycle.  The caller guarantees no read meets a write to the same
    address in the same cycle (where the two forms would differ).
    """
    if distributed(mem.depth, Shape.cast(mem.shape).width):
        a = Value.cast(addr)
        addr_r = reg(m, a.shape(), a, f"{name}_ra")
        rp = mem.read_port(domain="comb")
        m.d.comb += rp.addr.eq(addr_r)
    else:
        rp = mem.read_port()
        m.d.comb += rp.addr.eq(addr)
    return rp.data


def read_from_register(m: Module, mem, addr_reg, name: str):
    """Data of ``mem`` at ``addr_reg`` (already a register), one cycle later, from a register.

    Same timing as :func:`read_next_cycle` on a registered address.  A LUT-RAM memory is read
    asynchronously from ``addr_reg`` itself and the *data* are registered: what leaves is a
    flip-flop beside the memory instead of its read multiplexer (with :func:`read_next_cycle`
    the address is registered a second time and the multiplexer's output travels on; read by
    every lane, that net crossed the device: the 64×64 engine's projection memory, 2.6 ns of
    its last net).  A block RAM reads synchronously as in :func:`read_next_cycle`.  The
    caller's writes must land at least a cycle before a read of their address (a read here
    sees the memory one cycle before the data appear).
    """
    if distributed(mem.depth, Shape.cast(mem.shape).width):
        rp = mem.read_port(domain="comb")
        m.d.comb += rp.addr.eq(addr_reg)
        return reg(m, mem.shape, rp.data, f"{name}_rd")
    rp = mem.read_port()
    m.d.comb += rp.addr.eq(addr_reg)
    return rp.data


def kept_net(m: Module, value, name: str) -> Signal:
    """``value`` on a one-bit net of its own that Yosys keeps (``keep``): the LUT mapper, which
    sees no routing, cannot fold a late signal into the cone behind it, so that signal meets
    only the LUTs after this net."""
    net = Signal(name=name, attrs={"keep": 1})
    m.d.comb += net.eq(value)
    return net


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


def dup_reg(m: Module, shape, value, name: str, *, dup: bool, en=None, reset: bool = False) -> Signal:
    """``value`` registered (with a reset only if ``reset``: enables and valid bits), loaded
    when ``en`` (always if None); ``dup``: one of several per-lane copies, kept apart in
    synthesis (:data:`hdl.synth.DUP_ATTR`) instead of merged into one high-fanout register."""
    r = Signal(shape, name=name, reset_less=not reset, attrs={DUP_ATTR: 1} if dup else {})
    if en is None:
        m.d.sync += r.eq(value)
    else:
        with m.If(en):
            m.d.sync += r.eq(value)
    return r


def tag_stage(m: Module, layout: data.StructLayout, prev, name: str, *, dup: bool) -> data.View:
    """One register stage of a uop tag (``layout`` starts with its ``valid`` bit).

    A central stage (``dup`` False) resets only ``valid``; a lane's own copy among several
    (``dup``) is a plain reset-less register kept apart in synthesis: it follows the central
    stage it is copied from, whose ``valid`` is reset.
    """
    if dup:
        return dup_reg(m, layout, prev, name, dup=True)
    body = Signal(layout, name=name, reset_less=True)
    valid = Signal(name=f"{name}_valid")
    m.d.sync += [body.eq(prev), valid.eq(prev.valid)]
    return data.View(layout, Cat(valid, body.as_value()[1:]))


@dataclass
class UopPipe:
    """The central uop tag pipeline of the engine; ``stages`` lists every stage (the engine
    is quiet when none is valid)."""

    m: Module
    layout: data.StructLayout
    stages: list = field(default_factory=list)

    def __post_init__(self) -> None:
        first = next(iter(self.layout))
        if first[0] != "valid" or first[1].offset != 0:
            raise ValueError("a uop layout must start with its 'valid' bit")

    def stage(self, prev, name: str) -> data.View:
        """``prev`` one cycle later."""
        u = tag_stage(self.m, self.layout, prev, name, dup=False)
        self.stages.append(u)
        return u

    def delay(self, u, n: int, name: str) -> data.View:
        """``u`` ``n`` stages later."""
        for t in range(n):
            u = self.stage(u, f"{name}_{t}")
        return u


class StreamSlice(wiring.Component):
    """A full-rate register slice on a stream, built as a two-entry buffer: ``i.ready`` and
    ``o.valid`` are flip-flops, and the payload registers load from ``i`` alone.

    Why: the engine's input ports are fed from registers placed anywhere on the device (a
    DMA, a FIFO, the synthesis wrapper); without a slice, the port's ``valid`` and the input
    buffer's ``ready`` meet in the same LUTs that load the sample counters, one long net away.
    A skid buffer (output register plus skid) gives the same but its output register loads on
    ``o.ready``, a net to the enables of every payload bit (64×64, P = 8: 2 × 129 flip-flops),
    which pulled the consumer's ``ready`` logic across the device.  Here a pop moves only the
    read pointer and the fill state; ``o.payload`` is the entry under the read pointer (one LUT
    level before the consumer's registers).  A beat still passes every cycle, one cycle of
    latency.
    """

    def __init__(self, layout) -> None:
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        ent = [Signal.like(self.i.payload, name=f"ent{e}", reset_less=True) for e in range(2)]
        wp, rp = Signal(name="wp"), Signal(name="rp")
        count = Signal(range(3), name="count")
        full = Signal(name="full")  # == (count == 2)
        push = self.i.valid & ~full
        pop = self.o.valid & self.o.ready
        m.d.comb += [self.i.ready.eq(~full), self.o.payload.eq(Mux(rp, ent[1], ent[0]))]
        with m.If(push):
            m.d.sync += wp.eq(~wp)
            with m.If(wp):
                m.d.sync += ent[1].eq(self.i.payload)
            with m.Else():
                m.d.sync += ent[0].eq(self.i.payload)
        with m.If(pop):
            m.d.sync += rp.eq(~rp)
        nxt = Signal(range(3), name="count_next")
        m.d.comb += nxt.eq(count + push - pop)
        m.d.sync += [count.eq(nxt), full.eq(nxt == 2), self.o.valid.eq(nxt != 0)]
        return m
