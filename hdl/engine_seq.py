"""The engine's sequencer and scoreboard: the job program issued as a uop stream.

Per sub-batch the sequencer runs the static program of ``hdl.engine_params.build_program``:
each job is a loop over chunks (inner) and samples (outer) issuing one uop per cycle.  A
job starts when the scoreboard bits it waits on are set (a constant mask per job: its
column is ready, its projections are done, its h / 1/‖v‖ / r_c are valid) and clears the
bits it consumes; results set bits from outside (``set``).  The next job's descriptor is
loaded into registers ahead, so no program ROM sits on the issue path.

A sub-batch begins when the input buffer offers a full slot (``sub``), no factor dump is
running or due, and the sub-batch descriptor FIFO to the scalar unit has room; its slot is
released after the last job that reads the samples.  A factor request is latched with the
input-side batch it refers to and blocks the next sub-batch once that batch has been
computed (``req_block``), until the dump starts (``dump_start``).  A SCALE job reserves its
trace words (``reserve``) out of the trace FIFO's ``credit`` before it starts.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .engine_input import sub_batch_layout
from .engine_lane import uop_layout
from .engine_outputs import trace_depth
from .engine_params import EngineParams, Job, Mat, Op
from .engine_pipeline import index_bits, mem_addr
from .engine_scalar import sub_layout

__all__ = ["Sequencer", "scoreboard_bits"]


def scoreboard_bits(k: int) -> dict[str, int]:
    """First bit of each scoreboard group (2k column-ready, 2k projections-done, 2k h-valid,
    2k inv-valid, then k r-valid bits); bit ``group + mat·k + c``."""
    return {"col": 0, "proj": 2 * k, "h": 4 * k, "inv": 6 * k, "r": 8 * k, "total": 9 * k}


class Sequencer(wiring.Component):
    """Job issue and scoreboard (module docstring).

    ``uop`` is the issued tag (cycle 0); ``x_addr``/``d_addr``/``pq_addr``/``wm_addr`` the
    read addresses of the sample, projection and column memories for it; ``flags`` the
    scoreboard (reset: every column ready).
    """

    def __init__(self, params: EngineParams, program: list[Job], factor_req_layout) -> None:
        p = params
        self.params, self.program = params, list(program)
        if not self.program:
            raise ValueError("the program has no jobs")
        nf = scoreboard_bits(p.k)["total"]
        colw = index_bits(p.k)
        depth = trace_depth(p)
        self.release_idx = max(i for i, j in enumerate(self.program) if j.op in (Op.PROJ, Op.ACC))
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
            "req_block": Out(1),  # a requested batch is computed: dump before the next sub-batch
            "req_col": Out(unsigned(colw)),
            "req_all": Out(1),
            "dumping": In(1),
            "dump_start": In(1),
            "trace_en": In(1),
            "credit": In(range(depth + 1)),
            "credit_pending": In(1),
            "reserve": Out(range(depth + 1)),
            "set": In(nf),  # scoreboard bits set by results this cycle (win over a job's clears)
            "unset": In(nf),  # scoreboard bits cleared from outside (win over everything)
            "flags": Out(nf, init=(1 << (2 * p.k)) - 1),
            "recip_check": Out(1),  # an X-pass ACC job starts: its r_c's flags count now
            "col": Out(unsigned(colw)),
            "uop": Out(uop_layout(p)),
            "x_addr": Out(unsigned(len(mem_addr((0, p.chunks_b), (0, p.s), (0, 2))))),
            "d_addr": Out(unsigned(len(mem_addr((0, p.chunks_a), (0, p.s), (0, 2))))),
            "pq_addr": Out(unsigned(len(mem_addr((0, p.s), (0, p.k), (0, 2))))),
            "wm_addr": Out(unsigned(len(mem_addr((0, p.chunks_max), (0, p.k), (0, 2))))),
            "running": Out(1),
            "in_batch": Out(1),
        })

    def _descriptors(self) -> list[dict]:
        p, k = self.params, self.params.k
        sb = scoreboard_bits(k)
        f_col, f_proj, f_h, f_inv, f_r = sb["col"], sb["proj"], sb["h"], sb["inv"], sb["r"]
        out = []
        for job in self.program:
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
            out.append({"op": job.op, "mat": mat, "col": c, "step": j, "norm": int(norm),
                        "wait": sum(1 << b for b in wait), "clear": sum(1 << b for b in clear),
                        "chunks_mat": R,
                        # loop bounds minus one: constants, or the sub-batch's samples (``*_is_m``)
                        "in_m1": (Ro if job.op == Op.PROJ else R) - 1, "in_is_m": int(job.op == Op.ACC),
                        "out_m1": (R - 1) if job.op == Op.ACC else 0, "out_is_m": int(job.op == Op.PROJ)})
        return out

    def elaborate(self, platform):
        m = Module()
        p = self.params
        k, s, Ra, Rb, Rm = p.k, p.s, p.chunks_a, p.chunks_b, p.chunks_max
        colw, smpw = index_bits(k), index_bits(s)
        NJ = len(self.program)
        NF = scoreboard_bits(k)["total"]
        pc = Signal(range(NJ + 1))
        running = self.running
        active = Signal()
        maxn = max(Rm, s)
        inner = Signal(range(maxn + 1))
        outer = Signal(range(maxn + 1))
        cur_slot = Signal()
        flags = self.flags

        descs = self._descriptors()
        # descriptor of the current job, held in registers (loaded ahead: no ROM on the issue path)
        jd = {
            "op": Signal(2, name="j_op"), "mat": Signal(name="j_mat"), "col": Signal(colw, name="j_col"),
            "step": Signal(colw, name="j_step"), "norm": Signal(name="j_norm"),
            "wait": Signal(NF, name="j_wait"), "clear": Signal(NF, name="j_clear"),
            "chunks_mat": Signal(range(Rm + 1), name="j_chunks_mat"),
            "in_m1": Signal(range(Rm + 1), name="j_in_m1"), "in_is_m": Signal(name="j_in_is_m"),
            "out_m1": Signal(range(Rm + 1), name="j_out_m1"), "out_is_m": Signal(name="j_out_is_m"),
        }
        j_op, j_mat, j_col, j_step, j_norm = jd["op"], jd["mat"], jd["col"], jd["step"], jd["norm"]
        chunks_mat = jd["chunks_mat"]
        pc_load = Signal(range(NJ + 1))
        load_desc = Signal()
        nd = {key: Signal.like(sig, name=f"nd_{key}") for key, sig in jd.items()}
        with m.Switch(pc_load):
            for idx, dsc in enumerate(descs):
                with m.Case(idx):
                    m.d.comb += [nd[key].eq(dsc[key]) for key in jd]
        with m.If(load_desc):
            m.d.sync += [jd[key].eq(nd[key]) for key in jd]
        is_proj, is_acc = j_op == Op.PROJ, j_op == Op.ACC
        is_gs, is_scale = j_op == Op.GS, j_op == Op.SCALE
        # loop bounds minus one, registered with the descriptor: the issue decision compares
        # two registers instead of multiplexing and subtracting first
        n_in_m1 = Signal(range(maxn + 1))
        n_out_m1 = Signal(range(maxn + 1))
        m_next_m1 = Signal(range(s + 1))  # samples minus one of the sub-batch of the next descriptor
        cur_m1 = Signal(range(s + 1))
        with m.If(load_desc):
            m.d.sync += [
                n_in_m1.eq(Mux(nd["in_is_m"], m_next_m1, nd["in_m1"])),
                n_out_m1.eq(Mux(nd["out_is_m"], m_next_m1, nd["out_m1"])),
            ]
        job_tr = Signal()
        # a SCALE job's trace reservation reaches ``credit`` one cycle after its start; while
        # one is pending neither a SCALE job nor a σ trace word may reserve
        wait_ok = ((flags | ~jd["wait"]) == (1 << NF) - 1) & (
            ~is_scale | ~self.trace_en | ((self.credit >= chunks_mat) & ~self.credit_pending))
        start = running & ~active & (pc < NJ) & wait_ok
        issue = active | start
        in_first = inner == 0
        in_last = inner == n_in_m1
        out_last = outer == n_out_m1
        ci = Mux(is_acc, outer, inner)
        cj = Mux(is_proj, outer, Mux(is_acc, inner, 0))
        m.d.comb += self.col.eq(j_col)
        with m.If(start):
            m.d.sync += [active.eq(1), job_tr.eq(self.trace_en)]
            for b in range(NF):
                with m.If(jd["clear"][b]):
                    m.d.sync += flags[b].eq(0)
            with m.If(is_acc & (j_mat == Mat.X)):
                m.d.comb += self.recip_check.eq(1)
            with m.If(is_scale & self.trace_en):
                m.d.comb += self.reserve.eq(chunks_mat)
        # results set their bits after a starting job's clears (a set wins), an outside clear last
        for b in range(NF):
            with m.If(self.set[b]):
                m.d.sync += flags[b].eq(1)
        pc1 = Signal(range(NJ + 2))  # pc + 1, kept in a register for the descriptor lookup
        m.d.comb += pc_load.eq(pc1)
        with m.If(issue):
            with m.If(in_last):
                m.d.sync += inner.eq(0)
                with m.If(out_last):
                    m.d.sync += [active.eq(0), outer.eq(0), pc.eq(pc1), pc1.eq(pc1 + 1)]
                    m.d.comb += load_desc.eq(1)
                    with m.If(pc == self.release_idx):
                        m.d.comb += self.release.eq(1)
                    with m.If(pc == NJ - 1):
                        m.d.sync += running.eq(0)
                with m.Else():
                    m.d.sync += outer.eq(outer + 1)
            with m.Else():
                m.d.sync += inner.eq(inner + 1)

        # program start (one sub-batch); its descriptor goes to the scalar unit through a FIFO
        m.submodules.desc_fifo = desc_fifo = fifo.SyncFIFOBuffered(width=smpw + 2, depth=4)
        wiring.connect(m, wiring.flipped(self.desc), desc_fifo.r_stream)
        # factor requests are latched with the input-side batch they refer to (the batch being
        # received, or the last one received when the input sits at a batch boundary)
        req_pending = self.req_pending
        req_target = Signal(32)
        cmp_batches = Signal(32)  # batches whose last sub-batch has begun
        m.d.comb += self.factor_req.ready.eq(~req_pending)
        with m.If(self.factor_req.valid & ~req_pending):
            m.d.sync += [req_pending.eq(1), self.req_col.eq(self.factor_req.payload.col),
                         self.req_all.eq(self.factor_req.payload.all),
                         req_target.eq(Mux(self.in_mid, self.in_batches_p1, self.in_batches))]
        req_block = req_pending & (cmp_batches == req_target)
        m.d.comb += self.req_block.eq(req_block)
        nxt = self.sub.payload
        begin = ~running & self.sub.valid & ~self.dumping & ~req_block & desc_fifo.w_stream.ready
        m.d.comb += [self.sub.ready.eq(begin), self.release_slot.eq(cur_slot)]
        with m.If(begin):
            m.d.comb += [pc_load.eq(0), load_desc.eq(1)]
            m.d.sync += [
                running.eq(1), pc.eq(0), pc1.eq(1), cur_slot.eq(nxt.slot),
                cur_m1.eq(nxt.m1), self.in_batch.eq(~nxt.last),
            ]
            with m.If(nxt.last):
                m.d.sync += cmp_batches.eq(cmp_batches + 1)
        m.d.comb += m_next_m1.eq(Mux(begin, nxt.m1, cur_m1))
        m.d.comb += [desc_fifo.w_stream.valid.eq(begin), desc_fifo.w_stream.payload.eq(Cat(nxt.m, nxt.last))]
        with m.If(self.dump_start):
            m.d.sync += req_pending.eq(0)

        # ---------------------------------------------------------------- the uop (stage 0)
        u0 = self.uop
        m.d.comb += [
            u0.valid.eq(issue), u0.op.eq(j_op), u0.mat.eq(j_mat), u0.c.eq(j_col), u0.step.eq(j_step),
            u0.i.eq(ci), u0.smp.eq(cj), u0.norm.eq(j_norm),
            u0.jlast.eq(in_last & out_last),
            u0.tr.eq(Mux(start, self.trace_en, job_tr)),
            u0.fj.eq(is_acc & in_first), u0.lj.eq(is_acc & in_last),
            u0.red.eq(is_proj | is_gs | (is_acc & in_last) | (is_scale & (j_mat == Mat.D))),
            u0.rfirst.eq(Mux(is_acc, outer == 0, in_first)),
            u0.rlast.eq(Mux(is_acc, out_last, in_last)),
            # memory read addresses: fields, not arithmetic (``hdl.engine_pipeline.mem_addr``)
            self.x_addr.eq(mem_addr((ci, Rb), (cj, s), (cur_slot, 2))),
            self.d_addr.eq(mem_addr((ci, Ra), (cj, s), (cur_slot, 2))),
            self.pq_addr.eq(mem_addr((cj, s), (j_col, k), (j_mat, 2))),
            self.wm_addr.eq(mem_addr((ci, Rm), (j_col, k), (j_mat, 2))),
        ]
        # the unset bits (a σ load clears its r_c's valid bit) win over every other update
        for b in range(NF):
            with m.If(self.unset[b]):
                m.d.sync += flags[b].eq(0)
        return m
