"""DSP-tiled multipliers (hdl.dsp): exact products at the stated latency, tiling rules, errors."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from hdl.dsp import TILE_BITS, tile_count, tile_latency, tiled_mul, tiles


@pytest.mark.parametrize("aw,asg,bw,bsg,freg", [
    (16, True, 16, True, False), (24, True, 32, True, False), (40, True, 32, True, False),
    (18, True, 17, False, False), (35, False, 20, True, False), (7, False, 5, False, False),
    (16, True, 16, True, True), (40, True, 32, True, True), (35, False, 20, True, True)])
def test_tiled_product_is_exact_at_the_stated_latency(aw, asg, bw, bsg, freg):
    m = Module()
    a = Signal(signed(aw) if asg else unsigned(aw))
    b = Signal(signed(bw) if bsg else unsigned(bw))
    prod, lat = tiled_mul(m, a, b, name="mul", fabric_reg=freg)
    assert lat == tile_latency(aw, bw, asg, bsg, fabric_reg=freg)
    assert lat == tile_latency(aw, bw, asg, bsg) + int(freg)
    rng = np.random.default_rng(aw * 100 + bw)

    def draw(w, sg, n):
        lo, hi = (-(1 << (w - 1)), (1 << (w - 1)) - 1) if sg else (0, (1 << w) - 1)
        edge = [lo, hi, 0, -1 if sg else 1]
        return edge + [int(v) for v in rng.integers(lo, hi, size=n, endpoint=True)]

    av, bv = draw(aw, asg, 60), draw(bw, bsg, 60)
    bv = bv[::-1]
    sim = Simulator(m)
    sim.add_clock(1e-6)
    got = []

    async def bench(ctx):
        for t in range(len(av) + lat):
            if t < len(av):
                ctx.set(a, av[t])
                ctx.set(b, bv[t])
            await ctx.tick()
            if t + 1 >= lat:
                got.append(ctx.get(prod))

    sim.add_testbench(bench)
    sim.run()
    want = [x * y for x, y in zip(av, bv)]
    assert got[:len(want)] == want


def test_tiles_fit_one_dsp_each():
    for aw, bw in ((16, 16), (24, 32), (40, 32), (64, 18)):
        pairs = tiles(aw, True, bw, True)
        for (alo, ahi, asg), (blo, bhi, bsg) in pairs:
            # unsigned slices are 17 bits (zero-extended to 18), the signed top slice at most 18
            assert ahi - alo <= (TILE_BITS if asg else TILE_BITS - 1)
            assert bhi - blo <= (TILE_BITS if bsg else TILE_BITS - 1)
        assert len(pairs) == tile_count(aw, bw)
    assert tile_count(16, 16) == 1 and tile_latency(16, 16) == 2
    assert tile_count(40, 32) == 6 and tile_latency(40, 32) == 5
    assert tile_latency(40, 32, fabric_reg=True) == 6


def test_unknown_primitive_is_rejected():
    m = Module()
    m._MustUse__silence = True  # elaboration stops at the error
    with pytest.raises(ValueError, match="primitive 'xilinx' is unknown"):
        tiled_mul(m, Signal(signed(8)), Signal(signed(8)), name="x", primitive="xilinx")


def test_ecp5_primitive_instantiates_registered_mult18x18d():
    from amaranth.back import rtlil

    m = Module()
    a, b = Signal(signed(24)), Signal(signed(20))
    prod, lat = tiled_mul(m, a, b, name="mul", primitive="ecp5")
    out = Signal(signed(44))
    m.d.comb += out.eq(prod)
    text = rtlil.convert(m, ports=[a, b, out])
    assert text.count("cell \\MULT18X18D") == tile_count(24, 20) == 4
    for reg in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_OUTPUT_CLK"):
        assert f'parameter \\{reg} "CLK0"' in text
    assert lat == tile_latency(24, 20)
