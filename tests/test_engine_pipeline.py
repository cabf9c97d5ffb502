"""The engine's memory helpers: which memories are LUT RAM, and reads with a synchronous read's
timing whichever way they are built (``hdl.engine_pipeline``)."""

from __future__ import annotations

import random

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hdl.engine import SBPCAEngine
from hdl.engine_params import EngineParams
from hdl.engine_pipeline import LUTRAM_MAX_BITS, StreamSlice, distributed, ram_attrs, read_from_register, read_next_cycle, reg


def test_ram_style_rule():
    assert distributed(128, 32) and distributed(1, LUTRAM_MAX_BITS)
    assert not distributed(512, 128) and not distributed(LUTRAM_MAX_BITS + 1, 1)
    assert ram_attrs(16, 16, no_rw_check=1) == {"no_rw_check": 1, "ram_style": "distributed"}
    assert ram_attrs(1024, 64, no_rw_check=1) == {"no_rw_check": 1}


class _Reader(wiring.Component):
    """A memory written through one port and read through :func:`read_next_cycle`."""

    def __init__(self, depth: int, width: int, from_register: bool = False) -> None:
        self.depth, self.width, self.from_register = depth, width, from_register
        super().__init__({"waddr": In(range(depth)), "wdata": In(width), "wen": In(1),
                          "raddr": In(range(depth)), "rdata": Out(width)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=self.width, depth=self.depth, init=[],
                                               attrs=ram_attrs(self.depth, self.width))
        wp = mem.write_port()
        m.d.comb += [wp.addr.eq(self.waddr), wp.data.eq(self.wdata), wp.en.eq(self.wen)]
        if self.from_register:  # the caller's address register, then read_from_register
            ra = reg(m, range(self.depth), self.raddr, "t_addr")
            m.d.comb += self.rdata.eq(read_from_register(m, mem, ra, "t"))
        else:
            m.d.comb += self.rdata.eq(read_next_cycle(m, mem, self.raddr, "t"))
        return m


@pytest.mark.parametrize("depth, width", [(64, 16), (1024, 16)])  # LUT RAM, block RAM
def test_read_next_cycle_has_a_synchronous_reads_timing(depth, width):
    assert distributed(depth, width) == (depth * width <= LUTRAM_MAX_BITS)
    dut = _Reader(depth, width)
    rng = random.Random(depth)
    content = {a: rng.randrange(1 << width) for a in rng.sample(range(depth), 24)}
    seen = []

    async def bench(ctx):
        for a, v in content.items():
            ctx.set(dut.waddr, a)
            ctx.set(dut.wdata, v)
            ctx.set(dut.wen, 1)
            await ctx.tick()
        ctx.set(dut.wen, 0)
        for a in content:
            ctx.set(dut.raddr, a)
            before = ctx.get(dut.rdata)
            await ctx.tick()  # the data of an address appears after the clock edge that takes it
            seen.append((a, ctx.get(dut.rdata)))
            assert before != content[a] or a == next(iter(content))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [(a, content[a]) for a in content]


@pytest.mark.parametrize("depth, width", [(64, 16), (1024, 16)])  # LUT RAM, block RAM
def test_read_from_register_reads_a_cycle_after_its_address_register(depth, width):
    """Behind an address register, the data of an address appear two edges after it is set,
    and a write lands before a read of its address issued on the next cycle."""
    dut = _Reader(depth, width, from_register=True)
    rng = random.Random(depth + 1)
    addrs = rng.sample(range(depth), 24)
    content = {a: rng.randrange(1 << width) for a in addrs}
    seen = []

    async def bench(ctx):
        for a in addrs:  # each write, then a read of it set up in the next cycle
            ctx.set(dut.waddr, a)
            ctx.set(dut.wdata, content[a])
            ctx.set(dut.wen, 1)
            await ctx.tick()
            ctx.set(dut.wen, 0)
            ctx.set(dut.raddr, a)
            await ctx.tick()
            ctx.set(dut.raddr, (a + 1) % depth)
            await ctx.tick()
            seen.append((a, ctx.get(dut.rdata)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [(a, content[a]) for a in addrs]


def test_small_engine_memories_are_lut_ram_and_large_ones_are_left_to_yosys():
    """16×16 P = 2 s = 8: every memory fits LUT RAM; with s = 32 the input buffers (16 kbit) do not."""
    small = rtlil.convert(SBPCAEngine(EngineParams(rows=16, cols=16, rank=2, sub_batch=8, lanes=2)), name="e")
    big = rtlil.convert(SBPCAEngine(EngineParams(rows=16, cols=16, rank=2, sub_batch=32, lanes=2)), name="e")
    n_small = small.count('attribute \\ram_style "distributed"')
    assert n_small >= 2 + 2 * 3 + 2  # input buffers, three memories per lane, pq and wm
    assert big.count('attribute \\ram_style "distributed"') == n_small - 2


@pytest.mark.parametrize("p_valid,p_ready", [(1.0, 1.0), (0.7, 0.5), (0.3, 0.9), (1.0, 0.2)])
def test_stream_slice_passes_every_beat_in_order_at_full_rate(p_valid, p_ready):
    """Random valid gaps and back-pressure: every beat out once, in order; with both sides
    always willing, one beat a cycle; ``i.ready`` does not follow ``o.ready`` within a cycle."""
    dut = StreamSlice(16)
    rng = random.Random(int(p_valid * 10 + p_ready * 100))
    n_beats, sent, got, cycles_out = 300, [], [], []

    async def bench(ctx):
        nxt, cycle = 0, 0
        while len(got) < n_beats:
            offer = nxt < n_beats and rng.random() < p_valid
            ctx.set(dut.i.valid, offer)
            ctx.set(dut.i.payload, nxt if offer else 0xDEAD)
            ready_before = ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, 0)
            assert ctx.get(dut.i.ready) == ready_before
            take_out = rng.random() < p_ready
            ctx.set(dut.o.ready, take_out)
            assert ctx.get(dut.i.ready) == ready_before
            if offer and ready_before:
                sent.append(nxt)
                nxt += 1
            if take_out and ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
                cycles_out.append(cycle)
            await ctx.tick()
            cycle += 1
            assert cycle < 20 * n_beats

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == list(range(n_beats)) and sent == got
    if p_valid == 1.0 and p_ready == 1.0:
        assert cycles_out == list(range(1, n_beats + 1))
