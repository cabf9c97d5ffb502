"""The engine's scalar unit alone (Amaranth simulator) against the fixed-point kernels.

Random NORM tasks (N2 from 0 to the format's largest), SIGMA tasks over several sub-batches
(partial and batch-ending) and σ loads; every INV, r_c and σ the unit writes is compared
with ``pymodel.fixedpoint``'s ``isqrt_int``/``div_round_int`` and the saturation rules the
golden model (``pymodel.sbpca``) applies, flags included.
"""

from __future__ import annotations

import random

from amaranth.sim import Simulator

from hdl.engine_params import SAT_NAMES, EngineParams, Mat
from hdl.engine_scalar import ScalarUnit
from pymodel.fixedpoint import div_round_int, isqrt_int


class Model:
    """The scalar arithmetic of ``pymodel.sbpca`` on one column at a time."""

    def __init__(self, p: EngineParams, sigma):
        self.p, self.f = p, p.fmts
        self.sigma = [int(v) for v in sigma]
        self.n = p.s  # samples the state stands for (the unit's reset value)

    def inv(self, n2: int) -> tuple[int, bool]:
        f = self.f
        if n2 == 0:
            return 0, False
        q = div_round_int(1 << (f.norm_frac + f.inv.frac), isqrt_int(n2 << (2 * f.norm_guard)))
        return min(q, f.inv.max_int), q > f.inv.max_int

    def recip(self, c: int, n: int) -> tuple[int, bool, bool]:
        f = self.f
        guard = self.sigma[c] < f.sigma_min_int
        q = div_round_int(1 << (f.sigma.frac + f.recip.frac), n * max(self.sigma[c], f.sigma_min_int))
        return min(q, f.recip.max_int), q > f.recip.max_int, guard

    def sigma_update(self, c: int, S: int, m: int) -> bool:
        f = self.f
        q = div_round_int(self.n * self.sigma[c] + S, self.n + m)
        self.sigma[c] = max(f.sigma.min_int, min(f.sigma.max_int, q))
        return not f.sigma.min_int <= q <= f.sigma.max_int


def _run(p: EngineParams, seed: int) -> dict:
    rng = random.Random(seed)
    f = p.fmts
    sigma0 = [rng.randrange(f.sigma_min_int // 2, 4 << f.sigma.frac) for _ in range(p.k)]
    dut = ScalarUnit(p, sigma0)
    model = Model(p, sigma0)
    counts = {"inv": 0, "rc": 0, "sigma": 0, "sat": 0, "degen": 0, "guard": 0}
    bit = {n: i for i, n in enumerate(SAT_NAMES)}

    async def expect_writes(ctx, n_inv: int, n_rc: int, rn: int, cycles: int = 4000):
        """Run until ``n_inv`` INV and ``n_rc`` r_c writes came, checking each against the model."""
        got_inv = got_rc = 0
        for _ in range(cycles):
            if ctx.get(dut.inv.en):
                got_inv += 1
            if ctx.get(dut.rc.en):
                c = ctx.get(dut.rc.c)
                want, sat, guard = model.recip(c, rn)
                assert ctx.get(dut.rc.data) == want, (c, rn)
                assert ctx.get(dut.rc.sat) == sat and ctx.get(dut.rc.guard) == guard
                counts["rc"] += 1
                counts["guard"] += guard
                got_rc += 1
            if got_inv == n_inv and got_rc == n_rc and ctx.get(dut.idle):
                return
            await ctx.tick()
        raise AssertionError(f"timeout: {got_inv}/{n_inv} INV, {got_rc}/{n_rc} r_c writes")

    async def push(ctx, stream, value: dict):
        ctx.set(stream.payload, value)
        ctx.set(stream.valid, 1)
        await ctx.tick().until(stream.ready)
        ctx.set(stream.valid, 0)

    async def tb(ctx):
        ctx.set(dut.trace_room, 1)
        ctx.set(dut.trace_en, 1)
        # reset: every column's reciprocal with n = s
        await expect_writes(ctx, 0, p.k, p.s)
        # NORM tasks: zero (degenerate), random, tiny (saturating inv), the largest N2
        big = (1 << p.norm2_bits) - 1
        for n2 in [0, rng.randrange(1, big), 1, big, *(rng.randrange(1, 1 << rng.randrange(1, p.norm2_bits))
                                                         for _ in range(6))]:
            mat, c = rng.randrange(2), rng.randrange(p.k)
            want, sat = model.inv(n2)
            await push(ctx, dut.task, {"sigma": 0, "mat": mat, "c": c, "value": n2})
            for _ in range(400):
                if ctx.get(dut.inv.en):
                    break
                await ctx.tick()
            assert ctx.get(dut.inv.idx) == mat * p.k + c
            assert ctx.get(dut.inv.data) == want, n2
            assert ctx.get(dut.degenerate) == (n2 == 0)
            flag = "X_inv" if mat == Mat.X else "Delta_inv"
            assert ctx.get(dut.sat) == (sat << bit[flag])
            counts["inv"] += 1
            counts["sat"] += sat
            counts["degen"] += n2 == 0
            await ctx.tick()
        # sub-batches: one SIGMA task per column, then the reciprocals with the new n
        for sb in range(5):
            m = rng.randrange(1, p.s + 1)
            last = sb in (2, 4)
            dut_sub = {"m": m, "last": int(last)}
            ctx.set(dut.sub.payload, dut_sub)
            ctx.set(dut.sub.valid, 1)
            rn = p.s if last else model.n + m
            for c in range(p.k):
                # S_c arrives already fitted to σ's format; sub-batch 3 takes its extremes
                S = rng.choice((f.sigma.min_int, f.sigma.max_int)) if sb == 3 else \
                    rng.randrange(-(8 << f.sigma.frac), 8 << f.sigma.frac)
                await push(ctx, dut.task, {"sigma": 1, "mat": Mat.D, "c": c, "value": S})
                sat = model.sigma_update(c, S, m)
                for _ in range(400):
                    if ctx.get(dut.push):
                        break
                    await ctx.tick()
                assert ctx.get(dut.push_c) == c and ctx.get(dut.push_sigma) == model.sigma[c]
                assert not ctx.get(dut.sub.ready)
                counts["sigma"] += 1
                counts["sat"] += sat
                await ctx.tick()
                # the descriptor is popped one cycle after the sub-batch's last σ is pushed
                assert ctx.get(dut.sub.ready) == (c == p.k - 1)
                await expect_writes(ctx, 0, 1, rn)
            ctx.set(dut.sub.valid, 0)
            model.n = rn
            assert [ctx.get(dut.sigma[c]) for c in range(p.k)] == model.sigma
        assert ctx.get(dut.sub_batches) == 5 and ctx.get(dut.batches) == 2
        # σ load of one column (below σ_min): its reciprocal is recomputed, guarded
        ctx.set(dut.load.en, 1)
        ctx.set(dut.load.c, p.k - 1)
        ctx.set(dut.load.sigma, 3)
        await ctx.tick()
        ctx.set(dut.load.en, 0)
        model.sigma[p.k - 1] = 3
        await expect_writes(ctx, 0, 1, p.s)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return counts


def test_scalar_unit_matches_the_fixed_point_kernels():
    counts = _run(EngineParams(rows=6, cols=5, rank=2, sub_batch=4, lanes=1, formats="q16"), seed=1)
    assert counts["inv"] == 10 and counts["degen"] == 1 and counts["sigma"] == 10
    assert counts["sat"] >= 2 and counts["guard"] >= 1  # saturations and the σ guard were exercised


def test_scalar_unit_two_bits_per_cycle_narrow_format():
    counts = _run(EngineParams(rows=5, cols=7, rank=3, sub_batch=3, lanes=2, formats="q8", iter_bits=2), seed=2)
    assert counts["sigma"] == 15 and counts["rc"] == 3 + 15 + 1
