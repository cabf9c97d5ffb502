"""The trace output alone (``hdl.engine_outputs.TraceOut``): its room bits, kept as the sign
bits of offset counters, equal the credit comparisons they replace at every cycle,
reservations taken out of the credit keep the FIFO from ever being written when full, and
every state and σ word pushed comes out, in order, with its fields."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from hdl.engine import engine_layouts
from hdl.engine_outputs import FactorDump, TraceOut, trace_depth
from hdl.engine_params import EngineParams


@pytest.mark.parametrize("rows, cols, lanes", [(10, 65, 1), (16, 16, 2), (12, 5, 3), (80, 80, 1)])  # LUT RAM; block RAM
def test_room_bits_follow_the_credit(rows, cols, lanes):
    p = EngineParams(rows=rows, cols=cols, rank=2, sub_batch=4, lanes=lanes)
    dut = TraceOut(p, engine_layouts(p)["trace"])
    depth = trace_depth(p)
    rng = random.Random(rows * 1000 + cols)
    seen = {"rooms": 0, "full": 0, "reserved": 0}
    pushed, popped = [], []

    async def bench(ctx):
        owed = 0  # words reserved and not yet pushed
        credit_model = depth
        taken = sigma_taken = 0  # what lands in the credit at this cycle's edge
        for _ in range(1500):
            credit = ctx.get(dut.credit)
            assert credit == credit_model
            room_x, room_d, room_sigma = ctx.get(dut.room_x), ctx.get(dut.room_d), ctx.get(dut.room_sigma)
            assert room_x == (credit >= p.chunks_b) and room_d == (credit >= p.chunks_a)
            assert room_sigma == (credit > p.chunks_max)
            assert ctx.get(dut.pending) == (taken != 0 or sigma_taken)
            seen["rooms"] += room_x + room_d + room_sigma
            # the sequencer's rule: reserve only with room and nothing pending; σ likewise
            pending = bool(taken or sigma_taken)
            reserve = 0
            if not pending and rng.random() < 0.3:
                mat_rows = rng.choice([p.chunks_a, p.chunks_b])
                if credit >= mat_rows:
                    reserve = mat_rows
                    seen["reserved"] += 1
            sigma = int(room_sigma and not pending and rng.random() < 0.1)
            push = int(owed > 0 and rng.random() < 0.7)
            ready = int(rng.random() < 0.4)
            ctx.set(dut.reserve, reserve)
            ctx.set(dut.state.en, push)
            ctx.set(dut.sigma.en, sigma if not push else 0)
            ctx.set(dut.trace.ready, ready)
            word = _random_word(p, rng)
            for field in ("mat", "col", "chunk", "data"):
                ctx.set(getattr(dut.state, field), word[field])
            ctx.set(dut.sigma.col, word["scol"])
            ctx.set(dut.sigma.value, word["sigma"])
            if push:
                pushed.append((word["mat"], word["col"], word["chunk"], tuple(word["data"]), 0))
            elif sigma:
                pushed.append((2, word["scol"], 0, (0,) * p.P, word["sigma"]))
            pop = ctx.get(dut.trace.valid) and ready
            if pop:
                out = ctx.get(dut.trace.payload)
                popped.append((out.kind, out.col, out.chunk, tuple(out.data), out.sigma))
            seen["full"] += int(credit < min(p.chunks_a, p.chunks_b))
            await ctx.tick()
            owed += reserve - push
            credit_model += -taken - sigma_taken + pop
            assert credit_model >= 0, "a word was promised that the FIFO has no entry for"
            # whatever is still in flight to the credit: the words held plus those promised fit
            assert len(pushed) - len(popped) + owed <= depth, "the FIFO was promised more than it holds"
            taken, sigma_taken = reserve, (sigma if not push else 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen["rooms"] and seen["reserved"] >= 5 and seen["full"] > 0
    assert len(popped) > 100 and popped == pushed[:len(popped)]
    assert any(w[0] == 2 for w in popped) and any(w[0] != 2 for w in popped)


def _random_word(p: EngineParams, rng: random.Random) -> dict:
    half = 1 << (p.fmts.state.bits - 1)
    return {"mat": rng.randrange(2), "col": rng.randrange(p.k), "chunk": rng.randrange(p.chunks_max),
            "data": [rng.randrange(-half, half) for _ in range(p.P)], "scol": rng.randrange(p.k),
            "sigma": rng.randrange(1 << (p.fmts.sigma.bits - 1))}


@pytest.mark.parametrize("rows, cols, lanes", [(10, 65, 1), (80, 80, 1)])  # LUT RAM; block RAM
def test_trace_passes_a_word_every_cycle(rows, cols, lanes):
    """A run of state words pushed back to back comes out back to back once ``trace`` is
    ready: the registered output (and the block RAM's read stage) cost latency, not rate."""
    p = EngineParams(rows=rows, cols=cols, rank=2, sub_batch=4, lanes=lanes)
    dut = TraceOut(p, engine_layouts(p)["trace"])
    run = p.chunks_b
    rng = random.Random(7)
    words = [_random_word(p, rng) for _ in range(run)]
    out_cycles, popped = [], []

    async def bench(ctx):
        ctx.set(dut.reserve, run)
        await ctx.tick()
        ctx.set(dut.reserve, 0)
        for cycle in range(3 * run + 10):
            push = cycle < run
            ctx.set(dut.state.en, int(push))
            if push:
                for field in ("mat", "col", "chunk", "data"):
                    ctx.set(getattr(dut.state, field), words[cycle][field])
            # held back while half the words are in, then always ready
            ready = int(cycle >= run // 2)
            ctx.set(dut.trace.ready, ready)
            if ctx.get(dut.trace.valid) and ready:
                out = ctx.get(dut.trace.payload)
                popped.append((out.kind, out.chunk, tuple(out.data)))
                out_cycles.append(cycle)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert popped == [(w["mat"], w["chunk"], tuple(w["data"])) for w in words]
    assert out_cycles == list(range(out_cycles[0], out_cycles[0] + run)), "a bubble in the trace stream"


def _dump_expected(p: EngineParams, sx, sd, sigma, cols) -> list:
    """The factor dump's beats in order: per column, Δ's chunks (kind 0) then X's (kind 1)."""
    beats = []
    for c in cols:
        for kind, mem, chunks in ((0, sd, p.chunks_a), (1, sx, p.chunks_b)):
            for ch in range(chunks):
                beats.append((tuple(mem[ln][ch][c] for ln in range(p.P)), sigma[c], c, kind, ch,
                              int(kind == 1 and ch == chunks - 1 and c == cols[-1])))
    return beats


@pytest.mark.parametrize("rows, cols, rank, lanes, ready_p", [
    (10, 65, 4, 1, 1.0), (16, 16, 2, 2, 0.5), (64, 64, 4, 8, 0.3), (12, 5, 3, 3, 0.7)])
def test_factor_dump_beats(rows, cols, rank, lanes, ready_p):
    """``FactorDump`` against a model of the lanes' state rows (read at ``addr`` every cycle,
    the data a cycle later): every beat of one column or all columns, in order and with its fields,
    under random back-pressure; the payload holds while it waits; ``dumping`` holds until the
    last beat has left; with ``factors`` always ready the beats leave one per cycle."""
    p = EngineParams(rows=rows, cols=cols, rank=rank, sub_batch=4, lanes=lanes)
    dut = FactorDump(p, engine_layouts(p)["factors"])
    rng = random.Random(rows * 100 + lanes)
    half = 1 << (p.fmts.state.bits - 1)

    def mem():
        return [[[rng.randrange(-half, half) for _ in range(p.k)] for _ in range(p.chunks_max)]
                for _ in range(p.P)]

    sx, sd = mem(), mem()
    sigma = [rng.randrange(1 << (p.fmts.sigma.bits - 1)) for _ in range(p.k)]
    requests = [(True, 0)] + [(False, c) for c in range(p.k)] + [(True, 0)]
    got: list[list] = []
    cycles: list[list] = []

    async def bench(ctx):
        for i, c in enumerate(sigma):
            ctx.set(dut.sigma[i], c)
        rd = [[0] * p.k for _ in range(p.P)], [[0] * p.k for _ in range(p.P)]
        for all_cols, col in requests:
            beats, when = [], []
            ctx.set(dut.start, 1)
            ctx.set(dut.all, int(all_cols))
            ctx.set(dut.col, col)
            await ctx.tick()
            ctx.set(dut.start, 0)
            assert ctx.get(dut.dumping)
            held = None
            cycle = 0
            while ctx.get(dut.dumping):
                ready = int(rng.random() < ready_p)
                ctx.set(dut.factors.ready, ready)
                for ln in range(p.P):
                    for j in range(p.k):
                        ctx.set(dut.sx_rows[ln][j], rd[0][ln][j])
                        ctx.set(dut.sd_rows[ln][j], rd[1][ln][j])
                if ctx.get(dut.factors.valid):
                    o = ctx.get(dut.factors.payload)
                    beat = (tuple(o.data), o.sigma, o.col, o.kind, o.chunk, o.last)
                    assert held is None or beat == held, "the payload changed while it waited"
                    held = None if ready else beat
                    if ready:
                        beats.append(beat)
                        when.append(cycle)
                a = ctx.get(dut.addr)
                await ctx.tick()
                cycle += 1
                rd = ([row[a][:] for row in sx], [row[a][:] for row in sd])  # read every cycle
                assert cycle < 10_000
            assert not ctx.get(dut.factors.valid)
            got.append(beats)
            cycles.append(when)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for (all_cols, col), beats, when in zip(requests, got, cycles):
        cols = list(range(p.k)) if all_cols else [col]
        assert beats == _dump_expected(p, sx, sd, sigma, cols)
        if ready_p == 1.0:
            assert when == list(range(when[0], when[0] + len(beats))), "a bubble in the factor dump"
