"""The engine's sequencer alone (Amaranth simulator) against ``build_schedule``'s program.

With every scoreboard bit held set, the sequencer must issue exactly the schedule's jobs in
order, each as its loop of uops (PROJ: chunks of the other matrix × m samples; ACC: m
samples × chunks; GS and SCALE: one pass over the chunks), with the tag fields the lanes
rely on and the sample slot of the job's own sub-batch: a sub-batch alone issues its head
and then its tail (a flush), sub-batches back to back issue each tail interleaved with the
next head.  Each slot is released once, after its sub-batch's last job that reads samples,
and a job whose scoreboard bit is clear does not start until the bit is set.
"""

from __future__ import annotations

import random

from amaranth.sim import Simulator

from hdl.engine import engine_layouts
from hdl.engine_params import GEN_NEW, GEN_PREV, EngineParams, Op, build_program, build_schedule
from hdl.engine_pipeline import index_bits
from hdl.engine_seq import Sequencer, scoreboard_bits


def _loops(p: EngineParams, job, m: int) -> list[tuple[int, int]]:
    """(chunk, sample) of each uop of ``job``: inner loop first."""
    R, Ro = p.chunks(job.mat), p.chunks(1 - job.mat)
    if job.op == Op.PROJ:
        return [(i, j) for j in range(m) for i in range(Ro)]
    if job.op == Op.ACC:
        return [(i, j) for i in range(R) for j in range(m)]
    return [(i, 0) for i in range(R)]


def _expected(p: EngineParams, subs: list[tuple[int, int]], back_to_back: bool) -> tuple[list, list]:
    """The uops of sub-batches ``subs`` [(slot, m)] in issue order (heads and tails of the
    schedule), and for each the index of the sub-batch whose samples it reads (or None)."""
    sched = build_schedule(p)
    jobs = []  # (job, sub-batch index)
    for n in range(len(subs)):
        if n and back_to_back:
            jobs += [(j, n if g == GEN_NEW else n - 1) for j, g in sched.entries]
        else:
            if n:
                jobs += [(j, n - 1) for j in sched.jobs(GEN_PREV)]
            jobs += [(j, n) for j in sched.jobs(GEN_NEW)]
    jobs += [(j, len(subs) - 1) for j in sched.jobs(GEN_PREV)]
    uops, owner = [], []
    for job, n in jobs:
        slot, m = subs[n]
        reads = job.op in (Op.PROJ, Op.ACC)
        for i, j in _loops(p, job, m):
            uops.append((int(job.op), int(job.mat), job.col, job.step if job.op == Op.GS else 0, i, j,
                         slot if reads else None))
            owner.append(n if reads else None)
    return uops, owner


def _releases(subs: list[tuple[int, int]], owner: list) -> list[tuple[int, int]]:
    """(uops issued, slot) when each sub-batch's slot must come free: after its last read."""
    return [(max(i for i, o in enumerate(owner) if o == n) + 1, slot) for n, (slot, _) in enumerate(subs)]


def _run(p: EngineParams, subs: list[tuple[int, int]], hold_bit: int | None = None,
         gap: int = 0) -> tuple[list, list, int, list]:
    """Offer sub-batches ``subs`` [(slot, m)] (the next one ``gap`` cycles after a begin), every
    scoreboard bit set (but ``hold_bit`` for 50 idle cycles); collect uops and releases."""
    dut = Sequencer(p, build_schedule(p), engine_layouts(p)["factor_req"])
    nf = scoreboard_bits(p.k)["total"]
    slot_shift = index_bits(p.chunks_b) + index_bits(p.s)
    got, releases, descs, longest_stall = [], [], [], [0]

    async def tb(ctx):
        ctx.set(dut.set, (1 << nf) - 1 if hold_bit is None else ((1 << nf) - 1) & ~(1 << hold_bit))
        ctx.set(dut.desc.ready, 1)
        nxt, wait, idle = 0, 0, 0
        for _ in range(40000):
            if nxt < len(subs) and wait == 0:
                slot, m = subs[nxt]
                ctx.set(dut.sub.payload, {"slot": slot, "m": m, "m1": m - 1, "last": int(nxt == len(subs) - 1)})
                ctx.set(dut.sub.valid, 1)
            else:
                ctx.set(dut.sub.valid, 0)
            began = ctx.get(dut.sub.valid) and ctx.get(dut.sub.ready)
            if began:
                nxt += 1
                wait = gap
            elif wait:
                wait -= 1
            if ctx.get(dut.desc.valid):
                descs.append(ctx.get(dut.desc.payload.m))
            u = ctx.get(dut.uop)
            if u.valid:
                slot = ctx.get(dut.x_addr) >> slot_shift if u.op in (Op.PROJ, Op.ACC) else None
                got.append((u.op, u.mat, u.c, u.step if u.op == Op.GS else 0, u.i, u.smp, slot))
                idle = 0
            else:
                idle += 1
                if ctx.get(dut.running):
                    longest_stall[0] = max(longest_stall[0], idle)
            if ctx.get(dut.release):
                releases.append((len(got), ctx.get(dut.release_slot)))
            if hold_bit is not None and idle == 50:
                ctx.set(dut.set, (1 << nf) - 1)  # the awaited result arrives
            if not ctx.get(dut.running) and not began and nxt == len(subs) and idle > 60:
                break
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert descs == [m for _, m in subs]  # each begun sub-batch's descriptor went to the scalar unit
    return got, releases, longest_stall[0], descs


def test_sequencer_issues_one_sub_batch_head_then_tail():
    p = EngineParams(rows=6, cols=9, rank=3, sub_batch=4, lanes=2)
    sched = build_schedule(p)
    assert sched.jobs(GEN_PREV), "this configuration has a tail"
    assert build_program(p) == sched.jobs(GEN_NEW) + sched.jobs(GEN_PREV)
    subs = [(1, 3)]
    got, releases, stall, _ = _run(p, subs)
    exp, owner = _expected(p, subs, back_to_back=False)
    assert got == exp
    assert stall < 5  # every bit set: back-to-back jobs (the flush follows at once)
    assert releases == _releases(subs, owner)


def test_sequencer_overlaps_a_tail_with_the_next_head():
    p = EngineParams(rows=6, cols=9, rank=3, sub_batch=4, lanes=2)
    subs = [(0, 4), (1, 2), (0, 4)]
    got, releases, stall, _ = _run(p, subs)
    exp, owner = _expected(p, subs, back_to_back=True)
    assert got == exp
    assert stall < 5
    assert releases == _releases(subs, owner)


def test_sequencer_flushes_the_tail_when_the_input_is_empty():
    p = EngineParams(rows=6, cols=9, rank=3, sub_batch=4, lanes=2)
    subs = [(0, 4), (1, 3)]
    got, releases, _, _ = _run(p, subs, gap=400)  # the second sub-batch comes long after the first
    exp, owner = _expected(p, subs, back_to_back=False)
    assert got == exp
    assert releases == _releases(subs, owner)


def test_sequencer_waits_for_the_scoreboard():
    p = EngineParams(rows=5, cols=4, rank=2, sub_batch=2, lanes=1)
    # hold back 'projections done' of X column 0: the ACC(X,0) job must wait for it
    bit = scoreboard_bits(p.k)["proj"]
    got, _, stall, _ = _run(p, [(0, 2)], hold_bit=bit)
    assert got == _expected(p, [(0, 2)], back_to_back=False)[0]
    assert stall >= 50  # nothing issued while the bit was clear


def test_sequencer_blocks_at_the_requested_batch():
    """A factor request latched with the input side's batch blocks the next sub-batch exactly
    while the sub-batches begun have completed that batch (``req_block`` ==
    ``req_pending`` and the two batch counts equal, at every cycle but the one after a
    begin, when no sub-batch can begin), with sub-batches, batch ends and requests arriving
    at random."""

    p = EngineParams(rows=5, cols=4, rank=2, sub_batch=2, lanes=1)
    rng = random.Random(3)
    lasts = [rng.random() < 0.4 for _ in range(60)]
    dut = Sequencer(p, build_schedule(p), engine_layouts(p)["factor_req"])
    nf = scoreboard_bits(p.k)["total"]
    seen = {"blocked": 0, "latched": 0, "dumps": 0, "latched_after_last": 0}

    async def tb(ctx):
        ctx.set(dut.set, (1 << nf) - 1)
        ctx.set(dut.desc.ready, 1)
        ctx.set(dut.room_x, 1)
        ctx.set(dut.room_d, 1)
        recv = begun = 0  # sub-batches received by the input side / begun by the sequencer
        target, quiet, dumping, after_begin = None, 0, 0, False
        for _ in range(6000):
            in_batches = sum(lasts[:recv])
            in_mid = recv > 0 and not lasts[recv - 1]
            ctx.set(dut.in_batches, in_batches)
            ctx.set(dut.in_batches_p1, in_batches + 1)
            ctx.set(dut.in_mid, int(in_mid))
            offer = begun < recv
            if offer:
                ctx.set(dut.sub.payload, {"slot": begun % 2, "m": 2, "m1": 1, "last": int(lasts[begun])})
            ctx.set(dut.sub.valid, int(offer))
            ask = int(rng.random() < (0.5 if after_begin else 0.05))  # often just after a begin
            ctx.set(dut.factor_req.valid, ask)
            pending, block = ctx.get(dut.req_pending), ctx.get(dut.req_block)
            cmp_batches = sum(lasts[:begun])
            if after_begin:  # the one cycle req_block may be stale: nothing may begin
                assert not ctx.get(dut.sub.ready)
            else:
                assert block == (pending and cmp_batches == target), (begun, target)
            seen["blocked"] += block
            if ask and ctx.get(dut.factor_req.ready):
                target = in_batches + 1 if in_mid else in_batches
                seen["latched"] += 1
                seen["latched_after_last"] += after_begin and lasts[begun - 1]
            # the dump: a few cycles after the block holds with nothing running, then 8 busy
            quiet = quiet + 1 if block and not ctx.get(dut.running) and not dumping else 0
            start = int(quiet == 3)
            ctx.set(dut.dump_start, start)
            if start:
                dumping, seen["dumps"] = 8, seen["dumps"] + 1
            ctx.set(dut.dumping, int(dumping > 0))
            dumping = max(0, dumping - 1)
            began = offer and ctx.get(dut.sub.ready)
            await ctx.tick()
            begun += int(began)
            after_begin = bool(began)
            if recv < len(lasts) and recv - begun < 2 and rng.random() < 0.3:
                recv += 1
            if begun == len(lasts):
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert seen["latched"] >= 5 and seen["blocked"] > 20 and seen["dumps"] >= 3
    assert seen["latched_after_last"] >= 2  # a request in the cycle a batch's end is counted
