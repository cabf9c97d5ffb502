"""The engine's sequencer and scoreboard: the job program issued as a uop stream.

The sequencer runs the static program of ``hdl.engine_params.build_schedule`` with up to two
sub-batches in flight: a *program* issues the jobs of the sub-batch that begins (gen 0, its
head) interleaved with the jobs left over from the previous one (gen 1, its tail: the end of
the Δ side, bound by the scalar unit), so the orthogonalisation of one sub-batch overlaps the
projections of the next.  Three modes run subsets of the same entry list: both gens (a
sub-batch begins while a tail is pending), gen 0 only (no tail pending), gen 1 only (a
*flush*: a tail is pending and no sub-batch can begin, e.g. the input is empty or the
factors are due).  Each job is a loop over chunks (inner) and samples (outer) issuing one
uop per cycle; the sample slot and the sample count m of its gen are registered with it.
A job starts when the scoreboard bits it waits on are set (a constant mask per job: its
column is ready, its projections are done, its h / 1/‖v‖ / r_c are valid) and clears the
bits it consumes; results set bits from outside (``set``).  Bits are shared by the two
sub-batches: the schedule orders every job that clears a bit after the older sub-batch's
jobs that wait on it (``hdl.engine_params._cross_deps``), so the result never depends on
timing.  The next job's descriptor and successor index are loaded into registers ahead,
so no program ROM sits on the issue path.

A sub-batch begins when the input buffer offers a full slot (``sub``), no factor dump is
running or due (``dump_hold``, this unit's own flip-flop), and the sub-batch descriptor FIFO
to the scalar unit has room; its slot is released after its last job that reads the samples.
A factor request is latched with the input-side batch it refers to and blocks the next
sub-batch once that batch has begun (``req_block``, from a register kept equal to the
comparison of the two batch counts but in the cycle after a begin, when nothing reads it),
until the dump starts (``dump_start``); the pending tail is flushed first.  A SCALE job
reserves its trace words (``reserve``) out of the trace FIFO's ``credit`` before it starts.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .engine_input import sub_batch_layout
from .engine_lane import uop_layout
from .engine_outputs import trace_depth
from .engine_params import GEN_PREV, EngineParams, Mat, Op, Schedule
from .engine_pipeline import index_bits, kept_net, mem_addr
from .engine_scalar import sub_layout
from .synth import DUP_ATTR

__all__ = ["Sequencer", "scoreboard_bits", "MODES"]

#: low bits of the batch counts the factor-request logic compares (see ``same`` in elaborate)
CMP_BITS = 4

#: program modes: which gens of the schedule's entries run
MODE_BOTH, MODE_NEW, MODE_PREV = 0, 1, 2
MODES = {MODE_BOTH: (0, 1), MODE_NEW: (0,), MODE_PREV: (1,)}


def scoreboard_bits(k: int) -> dict[str, int]:
    """First bit of each scoreboard group (2k column-ready, 2k projections-done, 2k h-valid,
    2k inv-valid, then k r-valid bits); bit ``group + mat·k + c``."""
    return {"col": 0, "proj": 2 * k, "h": 4 * k, "inv": 6 * k, "r": 8 * k, "total": 9 * k}


class Sequencer(wiring.Component):
    """Job issue and scoreboard (module docstring).

    ``uop`` is the issued tag (cycle 0); ``x_addr``/``d_addr``/``pq_addr``/``wm_addr`` the
    read addresses of the sample, projection and column memories for it; ``flags`` the
    scoreboard (reset: every column ready); ``running``: a program runs or a tail is pending.
    """

    def __init__(self, params: EngineParams, schedule: Schedule, factor_req_layout) -> None:
        p = params
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a Schedule, not {type(schedule).__name__}")
        self.params, self.schedule = params, schedule
        self.entries = list(schedule.entries)
        if not self.entries:
            raise ValueError("the schedule has no jobs")
        self.has_tail = any(g == GEN_PREV for _, g in self.entries)
        nf = scoreboard_bits(p.k)["total"]
        colw = index_bits(p.k)
        depth = trace_depth(p)
        super().__init__({
            "sub": In(stream.Signature(sub_batch_layout(p))),  # full slots of the input buffer
            "release": Out(1),
            "release_slot": Out(1),
            "desc": Out(stream.Signature(sub_layout(p))),  # the sub-batches begun, to the scalar unit
            "factor_req": In(stream.Signature(factor_req_layout)),
            "in_mid": In(1),  # the input side is inside a batch
            "in_batches": In(32),  # batches received, and that plus one
            "in_batches_p1": In(32),
            "req_pending": Out(1),
            "req_latch": Out(1),  # a factor request is latched this cycle (req_pending rises)
            "req_block": Out(1),  # a requested batch has begun: flush, dump, then the next sub-batch
            "req_col": Out(unsigned(colw)),
            "req_all": Out(1),
            "dumping": In(1),
            "dump_start": In(1),
            "trace_en": In(1),
            "room_x": In(1),  # the trace FIFO's credit covers a SCALE job of X / of Δ
            "room_d": In(1),
            "credit_pending": In(1),
            "reserve": Out(range(depth + 1)),
            "set": In(nf),  # scoreboard bits set by results this cycle (win over a job's clears)
            "unset": In(nf),  # scoreboard bits cleared from outside (win over everything)
            "flags": Out(nf, init=(1 << (2 * p.k)) - 1),
            "recip_check": Out(1),  # an X-pass ACC job starts: its r_c's flags count now
            "col": Out(unsigned(colw)),
            # mat·k + col of the job, in a register of its own (see ``sel_idx`` in elaborate)
            "sel_idx": Out(unsigned(index_bits(2 * p.k))),
            "uop": Out(uop_layout(p)),
            "x_addr": Out(unsigned(len(mem_addr((0, p.chunks_b), (0, p.s), (0, 2))))),
            "d_addr": Out(unsigned(len(mem_addr((0, p.chunks_a), (0, p.s), (0, 2))))),
            "pq_addr": Out(unsigned(len(mem_addr((0, p.s), (0, p.k), (0, 2))))),
            "wm_addr": Out(unsigned(len(mem_addr((0, p.chunks_max), (0, p.k), (0, 2))))),
            "running": Out(1),
            "in_batch": Out(1),
        })

    def mode_entries(self, mode: int) -> list[int]:
        """Indices of the entries a program of ``mode`` issues, in order."""
        return [i for i, (_, g) in enumerate(self.entries) if g in MODES[mode]]

    def _descriptors(self) -> list[dict]:
        p, k = self.params, self.params.k
        sb = scoreboard_bits(k)
        f_col, f_proj, f_h, f_inv, f_r = sb["col"], sb["proj"], sb["h"], sb["inv"], sb["r"]
        # successor of each entry in each mode, and whether it ends that mode's program
        nxt = {mode: {} for mode in MODES}
        for mode in MODES:
            idx = self.mode_entries(mode)
            for a, b in zip(idx, idx[1:] + [None]):
                nxt[mode][a] = b
        # the release: the sub-batch's last sample-reading job, in the tail if it has one
        samplers = [i for i, (j, _) in enumerate(self.entries) if j.op in (Op.PROJ, Op.ACC)]
        tail_samplers = [i for i in samplers if self.entries[i][1] == GEN_PREV]
        rel = max(tail_samplers) if tail_samplers else max(samplers)
        out = []
        for i, (job, gen) in enumerate(self.entries):
            mat, c, j = job.mat, job.col, job.step
            oth = 1 - mat
            norm = (job.op == Op.ACC and c == 0) or (job.op == Op.GS and j + 1 == c)
            if job.op == Op.PROJ:
                wait = [f_col + oth * k + c]
                clear = [f_proj + mat * k + c]
            elif job.op == Op.ACC:
                wait = [f_proj + mat * k + c, f_col + mat * k + c, f_r + c] + ([f_col + mat * k] if c else [])
                clear = [f_col + mat * k + c] + ([f_r + c] if mat == Mat.D else [])
            elif job.op == Op.GS:
                wait = [f_h + mat * k + c, f_col + mat * k + j] + ([] if norm else [f_col + mat * k + j + 1])
                clear = [f_h + mat * k + c]
            else:
                wait = [f_inv + mat * k + c]
                clear = [f_inv + mat * k + c]
            R = p.chunks(mat)
            Ro = p.chunks(oth)
            d = {"op": job.op, "mat": mat, "col": c, "step": j, "norm": int(norm), "scale": int(job.op == Op.SCALE),
                 "wait": sum(1 << b for b in wait), "clear": sum(1 << b for b in clear),
                 "chunks_mat": R, "gen": gen, "rel": int(i == rel),
                 # loop bounds minus one: constants, or the sub-batch's samples (``*_is_m``)
                 "in_m1": (Ro if job.op == Op.PROJ else R) - 1, "in_is_m": int(job.op == Op.ACC),
                 "out_m1": (R - 1) if job.op == Op.ACC else 0, "out_is_m": int(job.op == Op.PROJ)}
            for side in ("in", "out"):  # minus two and "one pass": registered next to the bound
                d[f"{side}_m2"], d[f"{side}_z"] = d[f"{side}_m1"] - 1, int(d[f"{side}_m1"] == 0)
            for mode in MODES:
                n = nxt[mode].get(i)
                d[f"nxt{mode}"] = 0 if n is None else n
                d[f"end{mode}"] = int(n is None)
            out.append(d)
        return out

    def elaborate(self, platform):  # noqa: C901 - one issue state machine, kept in one place
        m = Module()
        p = self.params
        k, s, Ra, Rb, Rm = p.k, p.s, p.chunks_a, p.chunks_b, p.chunks_max
        colw, smpw = index_bits(k), index_bits(s)
        NJ = len(self.entries)
        NF = scoreboard_bits(k)["total"]
        first = {mode: (self.mode_entries(mode) or [0])[0] for mode in MODES}
        prog = Signal()  # a program is running
        active = Signal()  # a job is issuing
        tail_pending = Signal()  # the last sub-batch begun has a tail not issued yet
        flush_go = Signal()  # a flush program starts (its first job is loaded) this cycle
        mode = Signal(range(3), init=MODE_NEW)
        maxn = max(Rm, s)
        inner = Signal(range(maxn + 1))
        outer = Signal(range(maxn + 1))
        # the two sub-batches in flight: the last one begun (gen 0) and the one before (gen 1)
        cur_slot, prv_slot = Signal(), Signal()
        cur_m1, prv_m1 = Signal(range(s + 1)), Signal(range(s + 1))
        cur_m2, prv_m2 = Signal(range(-1, s + 1)), Signal(range(-1, s + 1))  # m − 2: m1 minus one
        cur_z, prv_z = Signal(), Signal()  # m = 1
        flags = self.flags

        descs = self._descriptors()
        # descriptor of the current job, held in registers (loaded ahead: no ROM on the issue path)
        jd = {
            "op": Signal(2, name="j_op"), "mat": Signal(name="j_mat"), "col": Signal(colw, name="j_col"),
            "step": Signal(colw, name="j_step"), "norm": Signal(name="j_norm"),
            "wait": Signal(NF, name="j_wait"), "clear": Signal(NF, name="j_clear"),
            "chunks_mat": Signal(range(Rm + 1), name="j_chunks_mat"), "rel": Signal(name="j_rel"),
            "scale": Signal(name="j_scale"),
        }
        rom = {**jd, "gen": Signal(), "in_m1": Signal(range(Rm + 1)), "in_is_m": Signal(),
               "out_m1": Signal(range(Rm + 1)), "out_is_m": Signal(),
               "in_m2": Signal(range(-1, Rm + 1)), "in_z": Signal(),
               "out_m2": Signal(range(-1, Rm + 1)), "out_z": Signal()}
        for mode_ in MODES:
            rom[f"nxt{mode_}"] = Signal(range(NJ))
            rom[f"end{mode_}"] = Signal()
        j_op, j_mat, j_col, j_step, j_norm = jd["op"], jd["mat"], jd["col"], jd["step"], jd["norm"]
        chunks_mat = jd["chunks_mat"]
        j_slot = Signal()  # the input slot of the job's sub-batch
        j_end = Signal()  # the job ends its program
        pc1 = Signal(range(NJ), init=first[MODE_NEW])  # the entry loaded next
        load_desc = Signal()
        nd = {key: Signal.like(sig, name=f"nd_{key}") for key, sig in rom.items()}
        with m.Switch(pc1):
            for idx, dsc in enumerate(descs):
                with m.Case(idx):
                    m.d.comb += [nd[key].eq(dsc[key]) for key in rom]
        is_proj, is_acc = j_op == Op.PROJ, j_op == Op.ACC
        is_gs, is_scale = j_op == Op.GS, j_op == Op.SCALE
        nxt = self.sub.payload
        begin = Signal()
        # The loaded job's sample slot and loop bounds (minus one, minus two, one pass), from
        # its descriptor and the sub-batch of its gen.  A begin shifts the sub-batches (the one
        # begun so far becomes gen 1), so both cases are formed from registers and the
        # sub-batch offered, and ``begin`` picks between them last.
        sub_nxt = {"slot": nxt.slot, "m1": nxt.m1, "m2": nxt.m1 - 1, "z": nxt.m1 == 0}
        sub_cur = {"slot": cur_slot, "m1": cur_m1, "m2": cur_m2, "z": cur_z}
        sub_prv = {"slot": prv_slot, "m1": prv_m1, "m2": prv_m2, "z": prv_z}

        def job_bounds(g0: dict, g1: dict) -> dict:
            g = {key: Mux(nd["gen"], g1[key], g0[key]) for key in g0}
            out = {"slot": g["slot"]}
            for side in ("in", "out"):
                is_m = nd[f"{side}_is_m"]
                for key in ("m1", "m2", "z"):
                    out[f"{side}_{key}"] = Mux(is_m, g[key], nd[f"{side}_{key}"])
            return out

        on_begin, no_begin = job_bounds(sub_nxt, sub_cur), job_bounds(sub_cur, sub_prv)
        # the bounds of a begin are picked whenever one is offered and no program runs or
        # starts a flush (a begin loads them; an idle cycle's load is overwritten before use)
        pick_begin = ~prog & ~flush_go & self.sub.valid
        nb = {key: Mux(pick_begin, on_begin[key], no_begin[key]) for key in on_begin}
        job_done = Signal()
        # registered with the descriptor: the issue decision compares registers
        n_in_m1 = Signal(range(maxn + 1))
        n_out_m1 = Signal(range(maxn + 1))
        n_in_m2 = Signal(range(-1, maxn + 1))  # the bounds minus two: the penultimate uop
        n_out_m2 = Signal(range(-1, maxn + 1))
        in_single, out_single = Signal(), Signal()  # one pass of the inner / outer loop
        j_single = Signal()  # the job is a single uop
        single_next = nb["in_z"] & nb["out_z"]
        # The descriptor's registers (and the bounds beside them) load whenever no program runs,
        # not only on ``begin``: while idle ``pc1`` holds the next program's first entry, so a
        # begin finds them loaded already and ``begin`` drives neither their enables nor (but
        # for ``pc1`` and ``j_end``) anything of the job.  A flush loads them again in its
        # ``flush_go`` cycle, when no program runs either.
        jd_load = ~prog | job_done
        # The job's column index mat·k + col, loaded with the descriptor into a register kept
        # apart from ``j_mat``/``j_col`` in synthesis (DUP_ATTR: with k a power of two it is
        # their bits, which Yosys would otherwise merge): it selects h and 1/‖v‖ from their 2k
        # registers, and the descriptor's registers fan out to the whole uop tag besides.
        sel_idx = Signal(len(self.sel_idx), name="sel_idx", attrs={DUP_ATTR: 1})
        m.d.comb += self.sel_idx.eq(sel_idx)
        with m.If(jd_load):
            m.d.sync += [jd[key].eq(nd[key]) for key in jd]
            m.d.sync += sel_idx.eq(nd["mat"] * k + nd["col"])
            m.d.sync += [
                j_slot.eq(nb["slot"]),
                n_in_m1.eq(nb["in_m1"]), n_out_m1.eq(nb["out_m1"]),
                n_in_m2.eq(nb["in_m2"]), n_out_m2.eq(nb["out_m2"]),
                in_single.eq(nb["in_z"]), out_single.eq(nb["out_z"]), j_single.eq(single_next),
            ]
        with m.If(load_desc):
            with m.Switch(mode):
                for mode_ in MODES:
                    with m.Case(mode_):
                        m.d.sync += [pc1.eq(nd[f"nxt{mode_}"]), j_end.eq(nd[f"end{mode_}"])]
        job_tr = Signal()
        # a SCALE job's trace reservation reaches ``credit`` one cycle after its start; while
        # one is pending neither a SCALE job nor a σ trace word may reserve
        # The scoreboard test is precomputed a cycle ahead, for both descriptors the next cycle
        # can hold (the current one, or the one loaded this cycle from ``pc1``), from the flags
        # as this cycle's results and outside clears leave them: the issue decision then reads
        # flip-flops instead of an AND over every scoreboard bit.  A starting job's own
        # clears are not in that precomputation, so no job starts in the cycle after a start
        # (only back-to-back single-uop jobs lose a cycle).
        all_ones = (1 << NF) - 1
        flags_pre = (flags | self.set) & ~self.unset
        # Both tests are registered with a start's veto folded in (``started`` is not an input of
        # the issue decision); which one counts is a flip-flop too (``ok_src_nd``), so neither
        # ``begin`` nor a job's end reaches these registers through the AND trees.
        ok_cur, ok_nd, ok_src_nd, started = Signal(), Signal(), Signal(), Signal()
        start = Signal()
        # the two AND trees end in nets of their own (``keep``): the LUT mapper, which sees no
        # routing, put ``start`` at the head of a tree (16×16 seed 1 of ``32e94ef``: the trace
        # credit → ``start`` → four LUTs of the tree → ``ok_cur``); kept apart, ``start`` meets
        # one LUT before each register
        tree_cur = kept_net(m, (flags_pre | ~jd["wait"]) == all_ones, "ok_cur_tree")
        tree_nd = kept_net(m, (flags_pre | ~nd["wait"]) == all_ones, "ok_nd_tree")
        # A SCALE job with the trace on needs the trace FIFO's room for its matrix and nothing
        # pending; that test is registered with the scoreboard's (so ``start`` reads five
        # flip-flops of this unit: 64×64 seed 1 of ``cf4db4f``: the trace output's
        # ``room_x_offset`` → the room pick → ``start`` → the loop counters' enables across the
        # device, 8.86 ns of routing).  A test a cycle old is safe: with nothing pending the
        # credit cannot have fallen since (a reservation or a σ word lands only while
        # ``credit_pending``), a start vetoes the next cycle's test, and a σ word pushed
        # meanwhile takes credit only beyond the largest reservation (``room_sigma``).  The
        # sequencer reads ``trace_en`` a cycle late (``trace_on``), so the registered test and
        # the reservation of a start after it see the same value.
        trace_on = Signal(name="trace_on")
        m.d.sync += trace_on.eq(self.trace_en)

        def room_ok(scale, mat):
            return ~scale | ~self.trace_en | (Mux(mat == Mat.X, self.room_x, self.room_d) & ~self.credit_pending)

        m.d.sync += [
            ok_cur.eq(tree_cur & ~start & room_ok(jd["scale"], j_mat)),
            ok_nd.eq(tree_nd & ~start & room_ok(nd["scale"], nd["mat"])),
            ok_src_nd.eq(jd_load),
        ]
        flags_ok = Mux(ok_src_nd, ok_nd, ok_cur)
        m.d.comb += start.eq(prog & ~active & flags_ok)
        m.d.sync += started.eq(start)
        issue = active | start
        in_first = inner == 0
        in_last = inner == n_in_m1
        out_last = outer == n_out_m1
        ci = Mux(is_acc, outer, inner)
        cj = Mux(is_proj, outer, Mux(is_acc, inner, 0))
        m.d.comb += self.col.eq(j_col)
        with m.If(start):
            m.d.sync += [active.eq(1), job_tr.eq(trace_on)]
            for b in range(NF):
                with m.If(jd["clear"][b]):
                    m.d.sync += flags[b].eq(0)
            with m.If(is_acc & (j_mat == Mat.X)):
                m.d.comb += self.recip_check.eq(1)
            with m.If(is_scale & trace_on):
                m.d.comb += self.reserve.eq(chunks_mat)
        # results set their bits after a starting job's clears (a set wins), an outside clear last
        for b in range(NF):
            with m.If(self.set[b]):
                m.d.sync += flags[b].eq(1)
        # after a program the next one is most likely: both gens after a begun sub-batch (its
        # tail is pending), the new gen after a flush; its first entry is loaded when it begins
        after = Mux(mode == MODE_PREV, MODE_NEW, MODE_BOTH) if self.has_tail else MODE_NEW
        m.d.comb += self.release_slot.eq(j_slot)
        # ``at_last``: the uop issued this cycle is the job's last, kept in a flip-flop updated
        # from the loop counters' comparisons with the bounds minus one and minus two
        at_last = Signal()
        with m.If(issue):
            with m.If(in_last):
                m.d.sync += inner.eq(0)
                with m.If(out_last):
                    m.d.sync += [active.eq(0), outer.eq(0)]
                with m.Else():
                    m.d.sync += outer.eq(outer + 1)
                m.d.sync += at_last.eq(in_single & Mux(out_last, out_single, outer == n_out_m2))
            with m.Else():
                m.d.sync += [inner.eq(inner + 1), at_last.eq((inner == n_in_m2) & out_last)]
        with m.If(jd_load):
            m.d.sync += at_last.eq(single_next)
        # The job's end (release, the next descriptor or the program's end) is taken without
        # ``start``: a job of several uops ends on its last uop, issued while ``active``; a job
        # of one uop ends in the cycle after its start, when no job can start anyway
        # (``started``), so the next descriptor is still in place for the earliest next start.
        m.d.comb += job_done.eq((active & at_last) | (started & j_single))
        with m.If(job_done):
            with m.If(jd["rel"]):
                m.d.comb += self.release.eq(1)
            with m.If(j_end):
                m.d.sync += [prog.eq(0), mode.eq(after),
                             pc1.eq(Mux(after == MODE_BOTH, first[MODE_BOTH], first[MODE_NEW]))]
            with m.Else():
                m.d.comb += load_desc.eq(1)

        # program start; a begun sub-batch's descriptor goes to the scalar unit through a FIFO
        m.submodules.desc_fifo = desc_fifo = fifo.SyncFIFOBuffered(width=smpw + 2, depth=4)
        wiring.connect(m, wiring.flipped(self.desc), desc_fifo.r_stream)
        # factor requests are latched with the input-side batch they refer to (the batch being
        # received, or the last one received when the input sits at a batch boundary)
        req_pending = self.req_pending
        req_target = Signal(32)
        cmp_batches = Signal(32)  # batches whose last sub-batch has begun
        cmp_p1 = Signal(32, init=1)  # that plus one, counted alongside
        # req_hit == (cmp_batches == req_target), updated from comparisons of registers, so no
        # counter comparison sits in front of ``begin``.  A last sub-batch's begin is counted a
        # cycle later (``inc_r``), from a flip-flop, and req_hit follows in that cycle: the
        # cycle after a begin is the only one where req_hit can be stale, and then no
        # sub-batch can begin (``prog``) and no dump can start (``quiet_r`` is low).
        req_hit = Signal(init=1)
        inc_r = Signal(name="inc_r")
        latch = self.factor_req.valid & ~req_pending
        m.d.comb += [self.factor_req.ready.eq(~req_pending), self.req_latch.eq(latch)]
        with m.If(latch):
            m.d.sync += [req_pending.eq(1), self.req_col.eq(self.factor_req.payload.col),
                         self.req_all.eq(self.factor_req.payload.all),
                         req_target.eq(Mux(self.in_mid, self.in_batches_p1, self.in_batches))]
        # req_block == req_pending & req_hit at every cycle, a flip-flop of its own loaded from
        # their next values (below): ``begin`` reads it instead of an AND of the two (16×16 seed
        # 1 of ``57b48ab``: req_hit → req_block → begin → the program counter, 7 levels)
        req_block = Signal(name="req_block_r")
        m.d.comb += self.req_block.eq(req_block)
        # the dump blocks a begin from a flip-flop of this unit's own (set by the dump's start,
        # held while the dump runs, so it clears a cycle after the dump ends): ``dumping`` is
        # far away, beside the lanes' state rows
        dump_hold = Signal(name="dump_hold")
        m.d.sync += dump_hold.eq(self.dump_start | (dump_hold & self.dumping))
        can_begin = self.sub.valid & ~dump_hold & ~req_block & desc_fifo.w_stream.ready
        m.d.comb += begin.eq(~prog & ~flush_go & can_begin)
        m.d.comb += self.sub.ready.eq(begin)
        m.d.sync += inc_r.eq(begin & nxt.last)
        with m.If(inc_r):
            m.d.sync += [cmp_batches.eq(cmp_p1), cmp_p1.eq(cmp_p1 + 1)]

        def same(a, b):
            # The counts compared here differ by less than 8: the input side is at most two
            # slots (batches) ahead of the sub-batches begun, and a request targets the batch
            # being received or the last one received.  Equal low bits are therefore equal
            # counts, and a narrow comparison keeps two carry-free LUT levels before req_hit.
            return a[:CMP_BITS] == b[:CMP_BITS]

        e_b_c = same(self.in_batches, cmp_batches)
        e_b1_c = same(self.in_batches_p1, cmp_batches)
        e_b_c1 = same(self.in_batches, cmp_p1)  # (in_batches + 1 == cmp + 1 is e_b_c)
        new_now, new_inc = Mux(self.in_mid, e_b1_c, e_b_c), Mux(self.in_mid, e_b_c, e_b_c1)
        nx_hit = Mux(latch, Mux(inc_r, new_inc, new_now), Mux(inc_r, same(req_target, cmp_p1), req_hit))
        nx_pending = Mux(self.dump_start, 0, Mux(latch, 1, req_pending))
        m.d.sync += [req_hit.eq(nx_hit), req_block.eq(nx_pending & nx_hit)]
        with m.If(begin):
            m.d.comb += load_desc.eq(1)
            m.d.sync += prog.eq(1)
        # The sub-batches in flight shift a cycle after the begin, from a copy of the offer
        # registered every cycle: in that cycle nothing reads them (no job can end, no flush
        # can start: ``prog`` is set), and ``begin`` drives none of their enables.
        begin_r = Signal(name="begin_r")
        offer_q = {key: Signal.like(sig, name=f"offer_q_{key}") for key, sig in sub_nxt.items()}
        offer_last = Signal(name="offer_q_last")
        m.d.sync += [begin_r.eq(begin), offer_last.eq(nxt.last)]
        m.d.sync += [offer_q[key].eq(sub_nxt[key]) for key in sub_nxt]
        with m.If(begin_r):
            m.d.sync += [
                tail_pending.eq(int(self.has_tail)),
                prv_slot.eq(cur_slot), prv_m1.eq(cur_m1), prv_m2.eq(cur_m2), prv_z.eq(cur_z),
                cur_slot.eq(offer_q["slot"]), cur_m1.eq(offer_q["m1"]), cur_m2.eq(offer_q["m2"]),
                cur_z.eq(offer_q["z"]), self.in_batch.eq(~offer_last),
            ]
        # a pending tail is flushed when no sub-batch can begin: the gen-1 entries alone
        with m.If(~prog & ~flush_go & tail_pending & ~can_begin):
            m.d.sync += [flush_go.eq(1), tail_pending.eq(0), mode.eq(MODE_PREV), pc1.eq(first[MODE_PREV]),
                         prv_slot.eq(cur_slot), prv_m1.eq(cur_m1), prv_m2.eq(cur_m2), prv_z.eq(cur_z)]
        with m.If(flush_go):
            m.d.comb += load_desc.eq(1)
            m.d.sync += [flush_go.eq(0), prog.eq(1)]
        m.d.comb += self.running.eq(prog | tail_pending | flush_go)
        m.d.comb += [desc_fifo.w_stream.valid.eq(begin), desc_fifo.w_stream.payload.eq(Cat(nxt.m, nxt.last))]
        with m.If(self.dump_start):
            m.d.sync += req_pending.eq(0)

        # ---------------------------------------------------------------- the uop (stage 0)
        u0 = self.uop
        m.d.comb += [
            u0.valid.eq(issue), u0.op.eq(j_op), u0.mat.eq(j_mat), u0.c.eq(j_col), u0.step.eq(j_step),
            u0.i.eq(ci), u0.smp.eq(cj), u0.norm.eq(j_norm),
            u0.jlast.eq(in_last & out_last),
            u0.tr.eq(Mux(start, trace_on, job_tr)),
            u0.fj.eq(is_acc & in_first), u0.lj.eq(is_acc & in_last),
            u0.red.eq(is_proj | is_gs | (is_acc & in_last) | (is_scale & (j_mat == Mat.D))),
            u0.rfirst.eq(Mux(is_acc, outer == 0, in_first)),
            u0.rlast.eq(Mux(is_acc, out_last, in_last)),
            # memory read addresses: fields, not arithmetic (``hdl.engine_pipeline.mem_addr``)
            self.x_addr.eq(mem_addr((ci, Rb), (cj, s), (j_slot, 2))),
            self.d_addr.eq(mem_addr((ci, Ra), (cj, s), (j_slot, 2))),
            self.pq_addr.eq(mem_addr((cj, s), (j_col, k), (j_mat, 2))),
            self.wm_addr.eq(mem_addr((ci, Rm), (j_col, k), (j_mat, 2))),
        ]
        # the unset bits (a σ load clears its r_c's valid bit) win over every other update
        for b in range(NF):
            with m.If(self.unset[b]):
                m.d.sync += flags[b].eq(0)
        return m
