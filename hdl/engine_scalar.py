"""The engine's scalar unit: 1/‖v‖, σ' and the reciprocals r_c = 1/(n·max(σ_c, σ_min)).

One iterative square root, one restoring divider and one (DSP-tiled) multiplier, shared by
three tasks, in the order the golden model (``pymodel.sbpca``) defines them:

* **NORM** (a column's N2 = Σ v², from the reducer): ``inv = sat_inv(div_round(2^(norm_frac +
  inv.frac), isqrt(N2 << 2·norm_guard)))``; N2 = 0 gives inv = 0 and a *degenerate* event.
* **SIGMA** (a column's S_c dot, from the reducer, once per sub-batch of m samples):
  ``σ' = sat_σ(div_round(n·σ + S, n + m))``; after column k−1 the sample count n advances.
* **RECIP** (after each σ', and for every column after reset or a σ load):
  ``r_c = sat_recip(div_round(2^(σ.frac + recip.frac), n·max(σ_c, σ_min)))`` with the guard
  flag when σ_c < σ_min.

Tasks arrive on the ``task`` stream (the reducer's task FIFO), the sub-batch descriptors
(samples m, last of batch) on ``sub``.  Results leave as single-cycle write strobes
(``inv``, ``rc``) that the engine's scoreboard turns into register writes and valid flags;
σ lives here (``sigma``) and is written through ``load``.  A σ trace word is pushed
(``push``) when the trace side allows it (``trace_room``).
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import ISqrt, RoundDivider
from .dsp import tiled_mul
from .engine_params import SAT_NAMES, EngineParams, Mat
from .engine_pipeline import index_bits as _w

__all__ = ["ScalarUnit", "task_layout", "sub_layout"]


def task_layout(params: EngineParams) -> data.StructLayout:
    """A scalar task: ``sigma`` (SIGMA, else NORM), matrix, column and the exact value."""
    return data.StructLayout({"sigma": 1, "mat": 1, "c": _w(params.k), "value": signed(task_value_bits(params))})


def task_value_bits(params: EngineParams) -> int:
    """Width of a task's value: N2 (unsigned, one sign bit more) or S_c in σ's format."""
    return max(params.norm2_bits + 1, params.fmts.sigma.bits)


def sub_layout(params: EngineParams) -> data.StructLayout:
    """A sub-batch descriptor: its samples m and whether it ends a batch."""
    return data.StructLayout({"m": _w(params.s) + 1, "last": 1})


class ScalarUnit(wiring.Component):
    """Scalar tasks of the engine (module docstring).  Cycle behaviour: one task at a time;
    a RECIP waits in the IDLE state behind queued NORM/SIGMA tasks."""

    def __init__(self, params: EngineParams, sigma_init) -> None:
        p, f = params, params.fmts
        self.params = params
        self.sigma_init = [int(v) for v in sigma_init]
        if len(self.sigma_init) != p.k:
            raise ValueError(f"sigma_init needs {p.k} values, not {len(self.sigma_init)}")
        colw = _w(p.k)
        super().__init__({
            "task": In(stream.Signature(task_layout(p))),
            "sub": In(stream.Signature(sub_layout(p))),
            "inv": Out(wiring.Signature({"en": Out(1), "idx": Out(unsigned(colw + 1)),
                                         "data": Out(signed(f.inv.bits))})),
            "rc": Out(wiring.Signature({"en": Out(1), "c": Out(unsigned(colw)), "data": Out(signed(f.recip.bits)),
                                        "sat": Out(1), "guard": Out(1)})),
            "load": In(wiring.Signature({"en": Out(1), "c": Out(unsigned(colw)), "sigma": Out(signed(f.sigma.bits))})),
            "sigma": Out(data.ArrayLayout(signed(f.sigma.bits), p.k)),
            "trace_en": In(1),
            "trace_room": In(1),
            "push": Out(1),
            "push_c": Out(unsigned(colw)),
            "push_sigma": Out(signed(f.sigma.bits)),
            "sat": Out(len(SAT_NAMES)),
            "degenerate": Out(1),
            "idle": Out(1),
            "sub_batches": Out(32),
            "batches": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        p, f = self.params, self.params.fmts
        k, s = p.k, p.s
        iw, rw, gw = f.inv.bits, f.recip.bits, f.sigma.bits
        colw = _w(k)
        VW = task_value_bits(p)
        sat_bit = {name: i for i, name in enumerate(SAT_NAMES)}

        def raise_sat(name: str, cond) -> None:
            with m.If(cond):
                m.d.comb += self.sat[sat_bit[name]].eq(1)

        SIG = Array(Signal(signed(gw), name=f"sigma{i}", init=v) for i, v in enumerate(self.sigma_init))
        # σ_c < σ_min, kept with each σ_c: the reciprocal's guard reads a flip-flop instead of a
        # comparison behind the σ select
        LOW = Array(Signal(name=f"sigma_low{i}", init=int(v < f.sigma_min_int))
                    for i, v in enumerate(self.sigma_init))
        for c in range(k):
            m.d.comb += self.sigma[c].eq(SIG[c])

        m.submodules.sqrt = sq = ISqrt(width=p.radicand_bits, bits_per_cycle=p.iter_bits)
        m.submodules.div = dv = RoundDivider(num_width=p.div_num_bits, den_width=p.div_den_bits,
                                             quot_bits=p.div_quot_bits, bits_per_cycle=p.iter_bits)
        tr_ = self.task.payload
        sc_mat = Signal()
        sc_c = Signal(colw)
        sc_val = Signal(signed(VW))
        sc_den = Signal(p.div_den_bits)
        sc_neg = Signal()
        sc_guard = Signal()
        sc_mag = Signal(gw)  # |σ'| after saturation (<= max_int + 1)
        # the unit's one multiplier (n·σ), DSP tiles with registered operands
        sc_ma = Signal(p.n_bits)
        sc_mb = Signal(signed(gw))
        sc_sel = Signal(signed(gw))
        sc_zero = Signal()
        sc_q = Signal(max(iw, rw))  # a saturated divider result on its way to INV or RC
        sc_big = Signal()
        sc_quot = Signal(p.div_quot_bits)  # σ's quotient, registered before its range check
        sc_prod, sc_lat = tiled_mul(m, sc_ma, sc_mb, name="sc_mul", primitive=p.dsp)
        sc_wait = Signal(range(sc_lat + 1))
        sn = Signal(p.n_bits, init=s)
        rn = Signal(p.n_bits)
        recip_pending = Signal(k, init=(1 << k) - 1)
        d_m = self.sub.payload.m
        d_last = self.sub.payload.last
        smin = f.sigma_min_int
        inv_max, rc_max = f.inv.max_int, f.recip.max_int
        num_inv = 1 << (f.norm_frac + f.inv.frac)
        num_rc = 1 << (f.sigma.frac + f.recip.frac)
        lowest = Signal(colw)
        for c in reversed(range(k)):
            with m.If(recip_pending[c]):
                m.d.comb += lowest.eq(c)
        inv_idx = sc_mat * k + sc_c
        m.d.comb += [self.inv.idx.eq(inv_idx), self.rc.c.eq(sc_c), self.push_c.eq(sc_c),
                     self.push_sigma.eq(SIG[sc_c])]
        # the sub-batch descriptor is popped one cycle after its last use (the next state never
        # reads it): the FIFO's level logic then hangs off a flip-flop, not off this state machine
        # and the trace-room decision
        sub_pop = Signal()
        m.d.comb += self.sub.ready.eq(sub_pop)
        with m.If(sub_pop):
            m.d.sync += sub_pop.eq(0)
        # the sub-batch and batch counters count a cycle after their event (the reciprocal states
        # follow, so the unit is not idle before they have): the state and trace-room decision
        # drive two flip-flops, not the enables of 64 counter bits
        count_sub, count_batch = Signal(), Signal()
        m.d.sync += [count_sub.eq(0), count_batch.eq(0)]
        with m.If(count_sub):
            m.d.sync += self.sub_batches.eq(self.sub_batches + 1)
        with m.If(count_batch):
            m.d.sync += self.batches.eq(self.batches + 1)
        def latch_quotient(limit: int) -> None:
            """The divider's quotient saturated at ``limit``, registered (with whether it was)
            before it is written to its column."""
            big = dv.overflow | (dv.quotient > limit)
            m.d.sync += [sc_q.eq(Mux(big, limit, dv.quotient)), sc_big.eq(big)]

        # ``at_idle`` is the IDLE state in a flip-flop of its own, set and cleared with the state
        # moves: the task FIFO's read handshake (and ``idle``) read it instead of a decode of the
        # state register
        at_idle = Signal(init=1, name="at_idle")
        at_sig_tr = Signal(name="at_sig_tr")
        # the writes of 1/‖v‖ (NORM with a zero norm, NDIV_SET) and of r_c (RCP_SET) are
        # flip-flops set on the way into those states: the scoreboard bits they set, and the
        # sequencer's scoreboard test behind them, start at a register, not at a state decode
        inv_go, rc_go = Signal(name="inv_go"), Signal(name="rc_go")
        m.d.sync += [inv_go.eq(0), rc_go.eq(0)]
        deg_go = Signal(name="deg_go")  # with ``inv_go``: the 1/‖v‖ = 0 written is a degenerate column
        m.d.sync += deg_go.eq(0)
        m.d.comb += self.degenerate.eq(deg_go)
        # σ_c's write (SIG_SET) likewise: σ's registers load from flip-flops and the σ load, not
        # from a decode of the state register (64×64: the state → the trace-room and SIG_TR
        # logic → every σ register's input, 6 levels, 7.2–7.6 ns of routing)
        sig_go = Signal(name="sig_go")
        m.d.sync += sig_go.eq(0)
        m.d.comb += [self.inv.en.eq(inv_go), self.inv.data.eq(sc_q),
                     self.rc.en.eq(rc_go), self.rc.data.eq(sc_q), self.rc.sat.eq(sc_big),
                     self.rc.guard.eq(sc_guard)]
        m.d.comb += [self.idle.eq(at_idle), self.task.ready.eq(at_idle)]
        # the divider's operands come from registers and constants whatever the state, chosen by
        # two flip-flops: ``div_sqrt`` (a NORM between its square root and its division: the
        # numerator 2^(norm_frac + inv.frac), the root) and ``rc_sel`` (a RECIP: the numerator
        # 2^(σ.frac + recip.frac), the product n·max(σ, σ_min)); else σ's |n·σ + S| and n + m.
        # Only ``start`` depends on the state: the state → ``sq.done`` → the operands' clock
        # enables was a 16×16 engine's critical path
        div_sqrt = Signal(name="div_sqrt")
        rc_sel = Signal(name="rc_sel")
        # σ's numerator |n·σ + S| and its sign, and the denominators (n + m for σ', n·max(σ, σ_min)
        # for r_c), are registered every cycle from the multiplier and the held task, whatever
        # the state: their operands hold from the multiply to the division's start and on
        # through SIG_SET, so no state decode reaches the enables of these ~100 flip-flops
        # (16×16 seed 3 of ``541064c``: the state → four LUTs → the numerator's enable)
        sig_sum = Signal(signed(p.div_num_bits + 1), name="sig_sum")  # n·σ + S
        sig_abs = Signal(signed(p.div_num_bits + 1), name="sig_abs")
        m.d.sync += [sig_sum.eq(sc_prod + sc_val), sig_abs.eq(Mux(sig_sum < 0, -sig_sum, sig_sum)),
                     sc_neg.eq(sig_sum < 0), sc_den.eq(Mux(rc_sel, sc_prod, sn + d_m))]
        sig_num = sig_abs.as_unsigned()[:p.div_num_bits]
        m.d.comb += [dv.num.eq(Mux(div_sqrt, num_inv, Mux(rc_sel, num_rc, sig_num))),
                     dv.den.eq(Mux(div_sqrt, sq.root, sc_den))]

        # the square root starts from flip-flops: ``sq_go`` is set on the way into NORM (the
        # one cycle NORM lasts) and the registered zero test vetoes it; decoded from the state,
        # the start ran into the root's ~50 load enables and resets (16×16 seeds 1 and 3 of
        # ``8d1b41d``: the state → ``sq.done`` / ``sc_zero`` LUTs → the count's reset, 5 levels)
        sq_go = Signal(name="sq_go")
        m.d.sync += sq_go.eq(0)
        m.d.comb += [sq.start.eq(sq_go & ~sc_zero), sq.value.eq(sc_val.as_unsigned() << (2 * f.norm_guard))]

        def to_idle() -> None:
            m.d.sync += [at_idle.eq(1), rc_sel.eq(0)]
            m.next = "IDLE"

        with m.FSM(name="scalar"):
            with m.State("IDLE"):
                with m.If(self.task.valid | (recip_pending != 0)):
                    m.d.sync += at_idle.eq(0)
                with m.If(self.task.valid):
                    # the task is registered first and dispatched in the next cycle
                    m.d.sync += [sc_mat.eq(tr_.mat), sc_c.eq(tr_.c), sc_val.eq(tr_.value),
                                 sc_zero.eq(tr_.value == 0)]
                    with m.If(tr_.sigma):
                        m.next = "SIG_NUM"
                    with m.Else():
                        m.d.sync += sq_go.eq(1)
                        m.next = "NORM"
                with m.Elif(recip_pending != 0):
                    m.d.sync += [sc_c.eq(lowest), rn.eq(s), recip_pending.bit_select(lowest, 1).eq(0)]
                    m.next = "RCP_SEL"
            with m.State("NORM"):
                with m.If(sc_zero):
                    # a zero norm writes 1/‖v‖ = 0 in the next cycle, from the registered test
                    # (``sc_zero``): the task FIFO's data → a wide zero test → the enables of
                    # ``sc_q`` was a 16×16 engine's critical path
                    m.d.sync += [inv_go.eq(1), sc_q.eq(0), deg_go.eq(1)]
                    to_idle()
                with m.Else():
                    m.d.sync += div_sqrt.eq(1)
                    m.next = "SQRT"
            with m.State("SQRT"):
                with m.If(sq.done):
                    m.d.comb += dv.start.eq(1)
                    m.d.sync += div_sqrt.eq(0)
                    m.next = "NDIV"
            with m.State("NDIV"):
                with m.If(dv.done):
                    latch_quotient(inv_max)
                    m.d.sync += inv_go.eq(1)
                    m.next = "NDIV_SET"
            with m.State("NDIV_SET"):
                raise_sat("X_inv", sc_big & (sc_mat == Mat.X))
                raise_sat("Delta_inv", sc_big & (sc_mat == Mat.D))
                to_idle()
            with m.State("SIG_NUM"):
                m.d.sync += [sc_ma.eq(sn), sc_mb.eq(SIG[sc_c]), sc_wait.eq(sc_lat)]
                m.next = "SIG_MUL"
            with m.State("SIG_MUL"):
                # the product of the operands set above is valid sc_lat cycles after they are
                with m.If(sc_wait == 0):
                    # the product is valid: ``sig_sum`` holds n·σ + S in SIG_ABS, ``sig_abs`` in SIG_DIV0
                    m.next = "SIG_ABS"
                with m.Else():
                    m.d.sync += sc_wait.eq(sc_wait - 1)
            with m.State("SIG_ABS"):
                # |n·σ + S|, its sign and n + m are being registered (above)
                m.next = "SIG_DIV0"
            with m.State("SIG_DIV0"):
                m.d.comb += dv.start.eq(1)
                m.next = "SIG_DIV"
            with m.State("SIG_DIV"):
                with m.If(dv.done):
                    # the quotient is registered before its range check (a carry chain) and the
                    # check before the flag is raised: neither sits behind the divider's outputs
                    m.d.sync += [sc_quot.eq(dv.quotient), sc_big.eq(dv.overflow)]
                    m.next = "SIG_SAT"
            with m.State("SIG_SAT"):
                # saturate the magnitude: |min_int| = max_int + 1 for a negative result
                lim = Mux(sc_neg, f.sigma.max_int + 1, f.sigma.max_int)
                big = sc_big | (sc_quot > lim)
                m.d.sync += [sc_mag.eq(Mux(big, lim, sc_quot)), sc_big.eq(big), sig_go.eq(1)]
                m.next = "SIG_SET"
            with m.State("SIG_SET"):
                # σ_c's write: ``sig_go`` below
                m.next = "SIG_TR"
            with m.State("SIG_TR"):
                # the σ trace word and the counts: ``sig_tr_go`` below
                with m.If(self.trace_room):
                    m.next = "RCP_SEL"
            with m.State("RCP_SEL"):
                # σ_c and whether it is below σ_min (kept beside σ: no comparison here)
                m.d.sync += [sc_sel.eq(SIG[sc_c]), sc_guard.eq(LOW[sc_c]), rc_sel.eq(1)]
                m.next = "RCP_MUL"
            with m.State("RCP_MUL"):
                m.d.sync += [sc_ma.eq(rn), sc_mb.eq(Mux(sc_guard, smin, sc_sel)), sc_wait.eq(sc_lat)]
                m.next = "RCP_MUL1"
            with m.State("RCP_MUL1"):
                with m.If(sc_wait == 0):
                    # the product is valid: ``sc_den`` holds it in RCP_DIV0
                    m.next = "RCP_DIV0"
                with m.Else():
                    m.d.sync += sc_wait.eq(sc_wait - 1)
            with m.State("RCP_DIV0"):
                m.d.comb += dv.start.eq(1)
                m.next = "RCP_DIV"
            with m.State("RCP_DIV"):
                with m.If(dv.done):
                    latch_quotient(rc_max)
                    m.d.sync += rc_go.eq(1)
                    m.next = "RCP_SET"
            with m.State("RCP_SET"):
                to_idle()
        with m.If(sig_go):  # the state is SIG_SET
            raise_sat("sigma", sc_big)
            # below σ_min (> 0): any σ ≤ 0, or a magnitude below σ_min
            m.d.sync += [SIG[sc_c].eq(Mux(sc_neg, -sc_mag, sc_mag)),
                         LOW[sc_c].eq(sc_neg | (sc_mag < smin)), at_sig_tr.eq(1)]
        # SIG_TR's work, from a flip-flop of its own (``at_sig_tr`` == the state is SIG_TR) and
        # the trace room: no decode of the state register before the trace push, the
        # descriptor's pop and the counters' enables
        sig_tr_go = at_sig_tr & self.trace_room
        with m.If(sig_tr_go):
            m.d.comb += self.push.eq(self.trace_en)
            n_next = Mux(d_last, s, sn + d_m)
            m.d.sync += [rn.eq(n_next), at_sig_tr.eq(0)]
            with m.If(sc_c == k - 1):
                m.d.sync += [sub_pop.eq(1), sn.eq(n_next), count_sub.eq(1), count_batch.eq(d_last)]
        # a σ load (engine idle at a batch boundary) sets σ_c and queues its reciprocal; it comes
        # after the state machine so that its pending bit wins over the IDLE state's clear
        with m.If(self.load.en):
            m.d.sync += [SIG[self.load.c].eq(self.load.sigma), LOW[self.load.c].eq(self.load.sigma < smin),
                         recip_pending.bit_select(self.load.c, 1).eq(1)]
        return m
