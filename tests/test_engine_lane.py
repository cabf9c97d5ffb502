"""One engine lane alone (Amaranth simulator) against integer products and dot products.

A stream of PROJ uops (both matrices, random chunks and columns, with gaps) must give, at
the pipeline's latency, each exact product x·X or δ·Δ of the lane's state row as its
reduction term (the engine's reducer sums these into the integer dot products).  A state
load writes one column of the lane's row, read back through the dump port.
"""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from hdl import engine_pipeline

from hdl.engine import initial_state
from hdl.engine_lane import Lane
from hdl.engine_params import EngineParams, Kind, Mat, Op
from hdl.engine_pipeline import LUTRAM_MAX_BITS


def _uop(**kw) -> dict:
    u = {"valid": 1, "op": 0, "mat": 0, "c": 0, "step": 0, "i": 0, "smp": 0, "rfirst": 0, "rlast": 0, "red": 0,
         "fj": 0, "lj": 0, "norm": 0, "jlast": 0, "tr": 0}
    u.update(kw)
    return u


@pytest.mark.parametrize("lutram_bits", [LUTRAM_MAX_BITS, 0], ids=["rows-in-lutram", "rows-in-bram"])
def test_lane_projection_terms_are_exact_products(monkeypatch, lutram_bits):
    # state rows in LUT RAM: m1's state column is picked a cycle ahead; in block RAM it is
    # picked from the registered rows (hdl.engine_lane): both must give the same terms
    monkeypatch.setattr(engine_pipeline, "LUTRAM_MAX_BITS", lutram_bits)
    p = EngineParams(rows=7, cols=9, rank=3, sub_batch=4, lanes=2, formats="q16")
    f = p.fmts
    X0, D0, _ = initial_state(p, seed=3)
    l = 1
    dut = Lane(p, l, X0, D0)
    assert dut.early_pick == (lutram_bits > 0)
    rng = random.Random(5)
    # a uop presented at cycle 1 gives its term at P2 = L1 + LR + L2 + 8 (hdl.engine_lane)
    wait = sum(p.mul_latencies) + 7
    checked = []

    async def tb(ctx):
        for _ in range(24):
            mat = rng.randrange(2)
            R = p.chunks_a if mat == Mat.X else p.chunks_b  # PROJ of X reads δ and Δ's rows, and vice versa
            i, c = rng.randrange(R), rng.randrange(p.k)
            xv = rng.randrange(f.x.min_int, f.x.max_int + 1)
            dv = rng.randrange(f.delta.min_int, f.delta.max_int + 1)
            ctx.set(dut.s_addr, i)  # cycle 0: the state rows' address and the uop's column
            ctx.set(dut.op0, {"op": Op.PROJ, "mat": mat, "c": c, "step": 0})
            await ctx.tick()
            ctx.set(dut.uop.valid, 1)  # cycle 1: the uop
            ctx.set(dut.uop.payload, _uop(op=Op.PROJ, mat=mat, c=c, i=i))
            await ctx.tick()
            ctx.set(dut.uop.valid, 0)  # cycle 2: the sample words
            ctx.set(dut.x, xv)
            ctx.set(dut.d, dv)
            row = i * p.P + l
            if mat == Mat.X:  # q_j = Δᵀ δ_j: the lane's term δ·Δ[row, c]
                want = dv * int(D0[row, c]) if row < p.rows else 0
            else:  # p_j = X'ᵀ x_j: the lane's term x·X[row, c]
                want = xv * int(X0[row, c]) if row < p.cols else 0
            for _ in range(wait):
                await ctx.tick()
            assert ctx.get(dut.red) == want, (mat, i, c)
            checked.append(want)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert len(checked) == 24 and sum(w != 0 for w in checked) > 12


def test_lane_state_load_and_dump_read():
    p = EngineParams(rows=5, cols=6, rank=2, sub_batch=4, lanes=2, formats="q16")
    f = p.fmts
    X0, D0, _ = initial_state(p, seed=1)
    dut = Lane(p, 0, X0, D0)

    async def tb(ctx):
        # load a row of X column 1 at chunk 2, then read it back through the dump port
        ctx.set(dut.load.en, 1)
        ctx.set(dut.load.kind, Kind.X)
        ctx.set(dut.load.col, 1)
        ctx.set(dut.load.chunk, 2)
        ctx.set(dut.load.data, -1234)
        await ctx.tick()  # the lane registers the beat
        ctx.set(dut.load.en, 0)
        await ctx.tick()  # and writes it
        ctx.set(dut.dumping, 1)
        ctx.set(dut.dump_addr, 2)
        await ctx.tick()
        row = ctx.get(dut.sx_row)
        assert int(row[1]) == -1234 and int(row[0]) == int(X0[2 * p.P, 0])
        assert [int(v) for v in ctx.get(dut.sd_row)] == [int(D0[2 * p.P, c]) for c in range(p.k)]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
