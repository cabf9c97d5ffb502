"""The engine's sequencer alone (Amaranth simulator) against ``build_program``'s schedule.

With every scoreboard bit held set, one sub-batch of m samples must issue exactly the
program's jobs in order, each as its loop of uops (PROJ: chunks of the other matrix × m
samples; ACC: m samples × chunks; GS and SCALE: one pass over the chunks), with the tag
fields the lanes rely on; the slot is released after the last job that reads samples, and
a job whose scoreboard bit is clear does not start until the bit is set.
"""

from __future__ import annotations

from amaranth.sim import Simulator

from hdl.engine import engine_layouts
from hdl.engine_params import EngineParams, Op, build_program
from hdl.engine_seq import Sequencer, scoreboard_bits


def _loops(p: EngineParams, job, m: int) -> list[tuple[int, int]]:
    """(chunk, sample) of each uop of ``job``: inner loop first."""
    R, Ro = p.chunks(job.mat), p.chunks(1 - job.mat)
    if job.op == Op.PROJ:
        return [(i, j) for j in range(m) for i in range(Ro)]
    if job.op == Op.ACC:
        return [(i, j) for i in range(R) for j in range(m)]
    return [(i, 0) for i in range(R)]


def _expected_uops(p: EngineParams, m: int) -> list[tuple]:
    return [(int(job.op), int(job.mat), job.col, job.step if job.op == Op.GS else 0, i, j)
            for job in build_program(p) for i, j in _loops(p, job, m)]


def _run(p: EngineParams, m: int, hold_bit: int | None = None) -> tuple[list, list, int, int]:
    dut = Sequencer(p, build_program(p), engine_layouts(p)["factor_req"])
    nf = scoreboard_bits(p.k)["total"]
    got, release_at, longest_stall = [], [], [0]

    async def tb(ctx):
        ctx.set(dut.set, (1 << nf) - 1 if hold_bit is None else ((1 << nf) - 1) & ~(1 << hold_bit))
        ctx.set(dut.sub.payload, {"slot": 1, "m": m, "m1": m - 1, "last": 1})
        ctx.set(dut.sub.valid, 1)
        await ctx.tick().until(dut.sub.ready)
        ctx.set(dut.sub.valid, 0)
        idle = 0
        for cyc in range(20000):
            u = ctx.get(dut.uop)
            if u.valid:
                got.append((u.op, u.mat, u.c, u.step if u.op == Op.GS else 0, u.i, u.smp))
                idle = 0
            else:
                idle += 1
                if ctx.get(dut.running):
                    longest_stall[0] = max(longest_stall[0], idle)
            if ctx.get(dut.release):
                assert ctx.get(dut.release_slot) == 1
                release_at.append(len(got))
            if hold_bit is not None and idle == 50:
                ctx.set(dut.set, (1 << nf) - 1)  # the awaited result arrives
            if not ctx.get(dut.running) and idle > 60:
                break
            await ctx.tick()
        # the sub-batch descriptor went to the scalar unit
        assert ctx.get(dut.desc.valid) and ctx.get(dut.desc.payload.m) == m

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return got, release_at, longest_stall[0], dut.release_idx


def test_sequencer_issues_the_program_schedule():
    p = EngineParams(rows=6, cols=9, rank=3, sub_batch=4, lanes=2)
    got, release_at, stall, release_idx = _run(p, m=3)
    assert got == _expected_uops(p, 3)
    assert stall < 5  # every bit set: back-to-back jobs
    # the slot is released when the last sample-reading job (PROJ/ACC) has issued its last uop
    assert release_at == [sum(len(_loops(p, job, 3)) for job in build_program(p)[:release_idx + 1])]


def test_sequencer_waits_for_the_scoreboard():
    p = EngineParams(rows=5, cols=4, rank=2, sub_batch=2, lanes=1)
    # hold back 'projections done' of X column 0: the ACC(X,0) job must wait for it
    bit = scoreboard_bits(p.k)["proj"]
    got, _, stall, _ = _run(p, m=2, hold_bit=bit)
    assert got == _expected_uops(p, 2)
    assert stall >= 50  # nothing issued while the bit was clear
