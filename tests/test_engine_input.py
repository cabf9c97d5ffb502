"""The engine's input buffer alone (Amaranth simulator): batches split into sub-batches of s
as the golden model splits them (full ones, then the remainder), every sample word in its
slot (chunks past the vector's end zeroed), slots offered in order and reused after release,
counters and the over-long-batch error."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from hdl.engine import engine_layouts
from hdl.engine_input import InputBuffer
from hdl.engine_params import EngineParams
from hdl.engine_pipeline import index_bits


def _split(batch: int, s: int) -> list[int]:
    """Sub-batch sizes of one batch, as ``pymodel.sbpca.SBPCA`` takes them."""
    return [min(s, batch - i) for i in range(0, batch, s)]


def _vectors(rng, n, width, bits):
    return [[rng.randrange(-(1 << (bits - 1)), 1 << (bits - 1)) for _ in range(width)] for _ in range(n)]


@pytest.mark.parametrize("lanes", [2, 7])  # 7: one chunk per vector on both ports
def test_input_buffer_slots_match_the_sub_batch_split(lanes):
    p = EngineParams(rows=5, cols=7, rank=2, sub_batch=3, lanes=lanes, max_batch=8)
    f = p.fmts
    lay = engine_layouts(p)
    dut = InputBuffer(p, lay["x"], lay["d"])
    rng = random.Random(3)
    batches = [4, 3, 1, 6, 9]  # the last one is longer than max_batch: error
    xs = [_vectors(rng, b, p.cols, f.x.bits) for b in batches]
    ds = [_vectors(rng, b, p.rows, f.delta.bits) for b in batches]
    expected = [(m, i == len(_split(b, p.s)) - 1) for b in batches for i, m in enumerate(_split(b, p.s))]
    # the samples of each sub-batch, in order
    sub_x = [x[i:i + p.s] for x, b in zip(xs, batches) for i in range(0, b, p.s)]
    sub_d = [d[i:i + p.s] for d, b in zip(ds, batches) for i in range(0, b, p.s)]
    seen = []

    def chunks(vec, P):
        padded = vec + [0] * (-len(vec) % P)
        return [padded[i:i + P] for i in range(0, len(padded), P)]

    async def stream_in(ctx, port, vectors_by_batch, with_last):
        for vecs in vectors_by_batch:
            for j, vec in enumerate(vecs):
                cs = chunks(vec, p.P)
                for c, words in enumerate(cs):
                    while rng.random() < 0.3:
                        await ctx.tick()
                    payload = {"data": words}
                    if with_last:
                        payload["last"] = int(j == len(vecs) - 1 and c == len(cs) - 1)
                    ctx.set(port.payload, payload)
                    ctx.set(port.valid, 1)
                    await ctx.tick().until(port.ready)
                    ctx.set(port.valid, 0)

    async def feed_x(ctx):
        await stream_in(ctx, dut.x, xs, True)

    async def feed_d(ctx):
        await stream_in(ctx, dut.d, ds, False)

    async def sequencer(ctx):
        for n in range(len(expected)):
            for _ in range(2000):
                await ctx.tick()
                if ctx.get(dut.sub.valid):
                    break
            else:
                raise AssertionError(f"sub-batch {n} never announced")
            sub = ctx.get(dut.sub.payload)
            assert sub.slot == n % 2, n
            seen.append((sub.m, bool(sub.last)))
            assert sub.m1 == sub.m - 1
            # read the slot back through the read ports: two cycles of read latency
            for smp in range(sub.m):
                for which, R, vecs, addr, dat in (("x", p.chunks_b, sub_x[n], dut.x_addr, dut.x_data),
                                                  ("d", p.chunks_a, sub_d[n], dut.d_addr, dut.d_data)):
                    for c in range(R):
                        ctx.set(addr, _addr(c, R, smp, sub.slot))
                        await ctx.tick()
                        ctx.set(addr, 0)  # the data follow the address of two cycles before
                        await ctx.tick()
                        want = chunks(vecs[smp], p.P)[c]
                        assert [int(v) for v in ctx.get(dat)] == want, (which, n, smp, c)
            ctx.set(dut.sub.ready, 1)
            await ctx.tick()
            ctx.set(dut.sub.ready, 0)
            ctx.set(dut.release, 1)
            ctx.set(dut.release_slot, sub.slot)
            await ctx.tick()
            ctx.set(dut.release, 0)
        for _ in range(5):
            await ctx.tick()
        assert ctx.get(dut.samples) == sum(batches)
        assert ctx.get(dut.batches) == len(batches) and ctx.get(dut.batches_p1) == len(batches) + 1
        assert ctx.get(dut.batch_size) == batches[-1]
        assert ctx.get(dut.error) == 1 and ctx.get(dut.mid) == 0 and ctx.get(dut.any_full) == 0
        ctx.set(dut.clear, 1)
        await ctx.tick()
        assert ctx.get(dut.error) == 0

    def _addr(c, R, smp, slot):
        """mem_addr's field packing: chunk, then sample, then slot, each at a power-of-two stride."""
        wc, ws = index_bits(R), index_bits(p.s)
        return c | (smp << wc) | (slot << (wc + ws))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed_x)
    sim.add_testbench(feed_d)
    sim.add_testbench(sequencer)
    sim.run()
    assert seen == expected
