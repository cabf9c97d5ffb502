"""The SBPCA power-iteration engine (SPEC §2/§4), bit-exact to ``pymodel.sbpca`` fixed mode.

Architecture (details, port formats and timing in ``docs/ENGINE.md``):

* **Input** — two streams, ``x`` and ``d`` (δ), one lane-wide chunk of ``P`` elements per
  beat; ``x.payload.last`` on a sample's final chunk marks the end of a batch.  Samples go
  into a double-buffered sample memory (2 × s samples) so that one sub-batch is received
  while the previous one is computed.
* **Lanes** — ``P`` multiply/accumulate lanes behind one issue stage.  A per-sub-batch
  *program* (``hdl.engine_params.build_program``) lists jobs: ``PROJ`` (projections
  q_j = Δᵀδ_j or p_j = X'ᵀx_j, reduced across lanes), ``ACC`` (A = Σ x qᵀ accumulated in
  the lanes, then the power step M = X + R(A·r) and the first Gram–Schmidt dot in the
  same pass), ``GS`` (one modified Gram–Schmidt step fused with the next dot or the
  norm) and ``SCALE`` (q_c = R(v/‖v‖), state write, σ's S_c dot).  Work is column-major,
  so column c of pass 2 only needs X'_c, and the orthogonalisation of one column overlaps
  the projections of the others.  A scoreboard makes each job wait for its inputs.
* **Scalar unit** — an iterative square root and a restoring divider serve the
  normalisations 1/‖v‖, the reciprocals r_c = 1/(n·max(σ_c, σ_min)) and the σ update.
* **Outputs** — ``factors`` streams factor pairs (σ_c, Δ_c, X_c) on request at a batch
  boundary; ``trace`` streams every state word as it is written (verification);
  status signals give sticky saturation flags, σ-guard and degenerate-column counts and
  sample/sub-batch/batch/cycle counters.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from pymodel.sbpca import SBPCA

from .engine_input import InputBuffer
from .engine_lane import Lane, uop_layout
from .engine_outputs import FactorDump, Status, TraceOut
from .engine_reduce import Reducer
from .engine_pipeline import UopPipe, index_bits, mem_addr, mem_depth
from .engine_pipeline import reg as _reg
from .engine_scalar import ScalarUnit, task_layout
from .engine_params import (
    MAT_D, MAT_X, OP_ACC, OP_GS, OP_PROJ, OP_SCALE, SAT_NAMES, EngineParams, Job, Kind, build_program,
)

__all__ = ["SBPCAEngine", "EngineParams", "engine_manifest", "engine_layouts", "initial_state", "SAT_NAMES"]


_w, _addr, _depth = index_bits, mem_addr, mem_depth


def engine_layouts(params: EngineParams) -> dict[str, data.StructLayout]:
    """Payload layouts of the engine's streams (also what the manifest documents)."""
    p, f = params, params.fmts
    colw, chw = _w(p.k), _w(p.chunks_max)
    out = {
        "x": data.StructLayout({"data": data.ArrayLayout(signed(f.x.bits), p.P), "last": 1}),
        "d": data.StructLayout({"data": data.ArrayLayout(signed(f.delta.bits), p.P)}),
        "factor_req": data.StructLayout({"col": unsigned(colw), "all": 1}),
        "factors": data.StructLayout({
            "data": data.ArrayLayout(signed(f.state.bits), p.P), "sigma": signed(f.sigma.bits),
            "col": unsigned(colw), "kind": 1, "chunk": unsigned(chw), "last": 1}),
        "trace": data.StructLayout({
            "data": data.ArrayLayout(signed(f.state.bits), p.P), "sigma": signed(f.sigma.bits),
            "col": unsigned(colw), "kind": 2, "chunk": unsigned(chw)}),
    }
    out["load"] = out["trace"]  # a state word written in: same fields as one traced out
    return out


def initial_state(params: EngineParams, init=None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer initial state (X b×k, Δ a×k, σ k): ``init`` as given, else the golden model's seeded one."""
    p, f = params, params.fmts
    if init is None:
        g = SBPCA(p.rows, p.cols, p.rank, p.sub_batch, seed=seed, fixed=f)
        return g.X_int.copy(), g.Delta_int.copy(), g.sigma_int.copy()
    if len(init) != 3:
        raise ValueError("init must be (X_int, Delta_int, sigma_int)")
    X, D, sg = (np.asarray(v) for v in init)
    for name, arr, shape, fmt in (("X", X, (p.cols, p.rank), f.state), ("Delta", D, (p.rows, p.rank), f.state),
                                  ("sigma", sg, (p.rank,), f.sigma)):
        if arr.shape != shape:
            raise ValueError(f"init {name} has shape {arr.shape}, expected {shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"init {name} must be an integer array (format {fmt})")
        if arr.size and (arr.min() < fmt.min_int or arr.max() > fmt.max_int):
            raise ValueError(f"init {name} integers out of range for {fmt}")
    return X.astype(np.int64), D.astype(np.int64), sg.astype(np.int64)


class SBPCAEngine(wiring.Component):
    """Streaming SBPCA power-iteration engine.  See the module docstring and ``docs/ENGINE.md``.

    ``params`` — :class:`EngineParams` (a, b, k, s, P, formats ...); ``init`` — optional integer
    initial state ``(X_int, Delta_int, sigma_int)``, else the golden model's seeded state for
    ``seed``.  The initial state is the reset content of the state memories.
    """

    def __init__(self, params: EngineParams, *, init=None, seed: int = 0):
        if not isinstance(params, EngineParams):
            raise TypeError(f"params must be an EngineParams, not {type(params).__name__}")
        self.params = params
        self.program: list[Job] = build_program(params)
        self.init_state = initial_state(params, init, seed)
        p, f = params, params.fmts
        lay = engine_layouts(params)
        self.layouts = lay
        super().__init__({
            "x": In(stream.Signature(lay["x"])),
            "d": In(stream.Signature(lay["d"])),
            "factor_req": In(stream.Signature(lay["factor_req"])),
            "factors": Out(stream.Signature(lay["factors"])),
            "trace": Out(stream.Signature(lay["trace"])),
            "load": In(stream.Signature(lay["load"])),
            "trace_en": In(1),
            "clear": In(1),
            "busy": Out(1),
            "in_batch": Out(1),
            "sat": Out(len(SAT_NAMES)),
            "error": Out(1),
            "sigma_guard": Out(32),
            "degenerate": Out(32),
            "samples": Out(32),
            "sub_batches": Out(32),
            "batches": Out(32),
            "batch_size": Out(32),
            "cycles": Out(32),
            "sigma": Out(data.ArrayLayout(signed(f.sigma.bits), p.k)),
        })

    # ------------------------------------------------------------------ elaboration
    def elaborate(self, platform):  # noqa: C901 - the sequencer, scoreboard, reducer and outputs
        m = Module()
        p, f = self.params, self.params.fmts
        P, k, s = p.P, p.k, p.s
        Ra, Rb, Rm = p.chunks_a, p.chunks_b, p.chunks_max
        xw, dw, pw, mw = f.x.bits, f.delta.bits, f.proj.bits, f.mat.bits
        iw, rw = f.inv.bits, f.recip.bits
        colw, smpw = _w(k), _w(s)
        sat_bit = {name: i for i, name in enumerate(SAT_NAMES)}
        sat_now = Signal(len(SAT_NAMES))  # flags raised this cycle (OR-ed into the sticky ``sat``)

        def raise_sat(name: str, cond):
            """Raise flag ``name`` when ``cond`` holds, in the current control context."""
            with m.If(cond):
                m.d.comb += sat_now[sat_bit[name]].eq(1)

        X0, D0, S0 = self.init_state

        # ---------------------------------------------------------------- memories
        lane = lambda shape: data.ArrayLayout(shape, P)  # noqa: E731
        # The sample buffers are double-buffered (the input side writes one slot while the lanes
        # read the other) and the Gram–Schmidt column memory is read only after a job's writes
        # are done (scoreboard), so a read never meets a write to the same address: synthesis
        # need not build read-before-write collision logic around these block RAMs.
        no_rw = {"no_rw_check": 1}
        m.submodules.pq = pq = memory.Memory(shape=signed(pw), depth=_depth(s, k, 2), init=[])
        m.submodules.wm = wm = memory.Memory(shape=lane(signed(mw)), depth=_depth(Rm, k, 2), init=[], attrs=no_rw)
        pq_r, pq_w = pq.read_port(), pq.write_port()
        wm_r, wm_w = wm.read_port(), wm.write_port()

        # ---------------------------------------------------------------- scoreboard & scalar state
        def flags(name, n, init=0):
            sigs = [Signal(name=f"{name}{i}", init=init) for i in range(n)]
            return sigs, Array(sigs)

        col_ready_l, col_ready = flags("col_ready", 2 * k, init=1)
        proj_done_l, proj_done = flags("proj_done", 2 * k)
        h_valid_l, h_valid = flags("h_valid", 2 * k)
        inv_valid_l, inv_valid = flags("inv_valid", 2 * k)
        r_valid_l, r_valid = flags("r_valid", k)
        _, r_sat = flags("r_sat", k)
        _, r_guard = flags("r_guard", k)
        H = Array([Signal(signed(mw), name=f"h{i}") for i in range(2 * k)])
        INV = Array([Signal(signed(iw), name=f"inv{i}") for i in range(2 * k)])
        RC = Array([Signal(signed(rw), name=f"r{i}") for i in range(k)])
        # the scalar unit (divider, square root, reciprocal and σ logic) holds σ
        m.submodules.scalar = sc = ScalarUnit(p, S0)
        m.d.comb += self.sigma.eq(sc.sigma)

        guard_inc = Signal()

        # ---------------------------------------------------------------- input side
        m.submodules.input = inbuf = InputBuffer(p, self.layouts["x"], self.layouts["d"])
        wiring.connect(m, wiring.flipped(self.x), inbuf.x)
        wiring.connect(m, wiring.flipped(self.d), inbuf.d)
        in_mid = inbuf.mid

        # ---------------------------------------------------------------- sequencer (stage 0)
        prog = self.program
        NJ = len(prog)
        release_idx = max(i for i, j in enumerate(prog) if j.op in (OP_PROJ, OP_ACC))
        pc = Signal(range(NJ + 1))
        running = Signal()
        active = Signal()
        maxn = max(Rm, s)
        inner = Signal(range(maxn + 1))
        outer = Signal(range(maxn + 1))
        cur_slot = Signal()
        in_batch = Signal()
        m.submodules.dump = dump = FactorDump(p, self.layouts["factors"])
        dumping = dump.dumping
        # the scoreboard as one bit vector; each job waits on / clears a constant mask of it
        all_flags = col_ready_l + proj_done_l + h_valid_l + inv_valid_l + r_valid_l
        NF = len(all_flags)
        f_col, f_proj, f_h, f_inv, f_r = 0, 2 * k, 4 * k, 6 * k, 8 * k

        def job_desc(job: Job) -> dict:
            mat, c, j = job.mat, job.col, job.step
            oth = 1 - mat
            wait, clear = [], []
            norm = (job.op == OP_ACC and c == 0) or (job.op == OP_GS and j + 1 == c)
            if job.op == OP_PROJ:
                wait = [f_col + oth * k + c]
                clear = [f_proj + mat * k + c]
            elif job.op == OP_ACC:
                wait = [f_proj + mat * k + c, f_col + mat * k + c, f_r + c] + ([f_col + mat * k] if c else [])
                clear = [f_col + mat * k + c] + ([f_r + c] if mat == MAT_D else [])
            elif job.op == OP_GS:
                wait = [f_h + mat * k + c, f_col + mat * k + j] + ([] if norm else [f_col + mat * k + j + 1])
                clear = [f_h + mat * k + c]
            else:
                wait = [f_inv + mat * k + c]
                clear = [f_inv + mat * k + c]
            R = p.chunks(mat)
            Ro = p.chunks(oth)
            return {"op": job.op, "mat": mat, "col": c, "step": j, "norm": int(norm),
                    "wait": sum(1 << b for b in wait), "clear": sum(1 << b for b in clear),
                    "chunks_mat": R,
                    # loop bounds minus one: constants, or the sub-batch's samples (``*_is_m``)
                    "in_m1": (Ro if job.op == OP_PROJ else R) - 1, "in_is_m": int(job.op == OP_ACC),
                    "out_m1": (R - 1) if job.op == OP_ACC else 0, "out_is_m": int(job.op == OP_PROJ)}

        descs = [job_desc(j) for j in prog]
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
        is_proj, is_acc = j_op == OP_PROJ, j_op == OP_ACC
        is_gs, is_scale = j_op == OP_GS, j_op == OP_SCALE
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
        # trace credits (``hdl.engine_outputs.TraceOut``)
        m.submodules.trace_out = tro = TraceOut(p, self.layouts["trace"])
        credit = tro.credit
        job_tr = Signal()
        flag_vec = Cat(*all_flags)
        # a SCALE job's trace reservation reaches ``credit`` one cycle after its start
        # (``take_r``); while one is pending neither a SCALE job nor a σ trace word may reserve
        take_pending = tro.pending
        wait_ok = ((flag_vec | ~jd["wait"]) == (1 << NF) - 1) & (
            ~is_scale | ~self.trace_en | ((credit >= chunks_mat) & ~take_pending))
        start = running & ~active & (pc < NJ) & wait_ok
        issue = active | start
        in_first = inner == 0
        in_last = inner == n_in_m1
        out_last = outer == n_out_m1
        ci = Mux(is_acc, outer, inner)
        cj = Mux(is_proj, outer, Mux(is_acc, inner, 0))
        seq_take = tro.reserve
        with m.If(start):
            m.d.sync += [active.eq(1), job_tr.eq(self.trace_en)]
            for b_, flag in enumerate(all_flags):
                with m.If(jd["clear"][b_]):
                    m.d.sync += flag.eq(0)
            with m.If(is_acc & (j_mat == MAT_X)):
                raise_sat("recip", r_sat[j_col])
                m.d.comb += guard_inc.eq(r_guard[j_col])
            with m.If(is_scale & self.trace_en):
                m.d.comb += seq_take.eq(chunks_mat)
        pc1 = Signal(range(NJ + 2))  # pc + 1, kept in a register for the descriptor lookup
        m.d.comb += pc_load.eq(pc1)
        with m.If(issue):
            with m.If(in_last):
                m.d.sync += inner.eq(0)
                with m.If(out_last):
                    m.d.sync += [active.eq(0), outer.eq(0), pc.eq(pc1), pc1.eq(pc1 + 1)]
                    m.d.comb += load_desc.eq(1)
                    with m.If(pc == release_idx):
                        m.d.comb += inbuf.release.eq(1)
                    with m.If(pc == NJ - 1):
                        m.d.sync += running.eq(0)
                with m.Else():
                    m.d.sync += outer.eq(outer + 1)
            with m.Else():
                m.d.sync += inner.eq(inner + 1)

        # program start (one sub-batch)
        desc_fifo = fifo.SyncFIFOBuffered(width=smpw + 2, depth=4)
        m.submodules.desc_fifo = desc_fifo
        # factor requests are latched with the input-side batch they refer to (the batch being
        # received, or the last one received when the input sits at a batch boundary)
        req_pending = Signal()
        req_col = Signal(colw)
        req_all = Signal()
        req_target = Signal(32)
        cmp_batches = Signal(32)  # batches whose last sub-batch has begun
        m.d.comb += self.factor_req.ready.eq(~req_pending)
        with m.If(self.factor_req.valid & ~req_pending):
            m.d.sync += [req_pending.eq(1), req_col.eq(self.factor_req.payload.col),
                         req_all.eq(self.factor_req.payload.all), req_target.eq(Mux(in_mid, inbuf.batches_p1, inbuf.batches))]
        req_block = req_pending & (cmp_batches == req_target)
        nxt = inbuf.sub.payload
        begin = ~running & inbuf.sub.valid & ~dumping & ~req_block & desc_fifo.w_rdy
        m.d.comb += [inbuf.sub.ready.eq(begin), inbuf.release_slot.eq(cur_slot)]
        with m.If(begin):
            m.d.comb += [pc_load.eq(0), load_desc.eq(1)]
            m.d.sync += [
                running.eq(1), pc.eq(0), pc1.eq(1), cur_slot.eq(nxt.slot),
                cur_m1.eq(nxt.m1), in_batch.eq(~nxt.last),
            ]
            with m.If(nxt.last):
                m.d.sync += cmp_batches.eq(cmp_batches + 1)
        m.d.comb += m_next_m1.eq(Mux(begin, nxt.m1, cur_m1))
        m.d.comb += [
            desc_fifo.w_en.eq(begin),
            desc_fifo.w_data.eq(Cat(nxt.m, nxt.last)),
        ]

        # ---------------------------------------------------------------- uop tags
        uop = uop_layout(p)
        u0 = Signal(uop)
        m.d.comb += [
            u0.valid.eq(issue), u0.op.eq(j_op), u0.mat.eq(j_mat), u0.c.eq(j_col), u0.step.eq(j_step),
            u0.i.eq(ci), u0.smp.eq(cj), u0.norm.eq(j_norm),
            u0.jlast.eq(in_last & out_last),
            u0.tr.eq(Mux(start, self.trace_en, job_tr)),
            u0.fj.eq(is_acc & in_first), u0.lj.eq(is_acc & in_last),
            u0.red.eq(is_proj | is_gs | (is_acc & in_last) | (is_scale & (j_mat == MAT_D))),
            u0.rfirst.eq(Mux(is_acc, outer == 0, in_first)),
            u0.rlast.eq(Mux(is_acc, out_last, in_last)),
        ]
        # memory read addresses (stage 0)
        dump_addr, dump_adv = dump.addr, dump.advance
        m.d.comb += [
            inbuf.x_addr.eq(_addr((ci, Rb), (cj, s), (cur_slot, 2))),
            inbuf.d_addr.eq(_addr((ci, Ra), (cj, s), (cur_slot, 2))),
            pq_r.addr.eq(_addr((cj, s), (j_col, k), (j_mat, 2))),
            wm_r.addr.eq(_addr((ci, Rm), (j_col, k), (j_mat, 2))),
        ]

        pipe = UopPipe(m, uop)
        stage, udelay = pipe.stage, pipe.delay

        def reg(shape, value, name):
            return _reg(m, shape, value, name)

        # ---------------------------------------------------------------- lanes
        # Cycle numbers count from the issue (cycle 0); ``hdl.engine_lane`` has each lane's
        # pipeline.  The central uop tag runs beside the lanes for the control that is not per
        # lane (sticky flags, column-memory and trace writes, the reduction).
        L1, LR, L2 = p.mul_latencies
        u1r = stage(u0, "u1")
        # cycle 1: block-RAM read data are registered (a DP16KD's clock-to-out is ~5.6 ns on ECP5)
        xb_d = reg(lane(signed(xw)), inbuf.x_data, "xb_d")
        db_d = reg(lane(signed(dw)), inbuf.d_data, "db_d")
        wm_d = reg(lane(signed(mw)), wm_r.data, "wm_d")
        idx1 = u1r.mat * k + u1r.c
        u1 = stage(u1r, "u2")
        uP1 = udelay(u1, L1, "u_m1")  # cycle P1 = 2 + L1
        uR1 = stage(uP1, "u_r1")  # P1 + 1
        uR2 = stage(uR1, "u_r2")  # P1 + 2
        uW = stage(uR2, "u_w")  # P1 + 3: state write, D_r write, trace
        uPR = udelay(uW, LR - 1, "u_mr")  # PR = P1 + 2 + LR
        uU1 = stage(uPR, "u_u1")
        uU2 = stage(uU1, "u_u2")
        uU3 = stage(uU2, "u_u3")
        u8 = stage(uU3, "u_v")  # V = PR + 4
        u9 = udelay(u8, L2, "u_m2")  # the lanes' reduction terms
        assert 2 + L1 + 3 == p.lat_state, (L1, p.lat_state)
        # a load beat is registered before it is written (the handshake logic stays off the
        # memories' wide write-data multiplexer); the write lands one cycle later, still idle
        load_take = Signal()
        m.d.comb += load_take.eq(self.load.valid & self.load.ready)
        ld_v = Signal(name="load_v")
        ld_r = Signal(self.layouts["load"], name="load_r", reset_less=True)
        m.d.sync += [ld_v.eq(load_take), ld_r.eq(self.load.payload)]
        ld = ld_r
        load_take = ld_v
        lanes = []
        for l in range(P):
            m.submodules[f"lane{l}"] = ln = Lane(p, l, X0, D0)
            m.d.comb += [
                ln.uop.valid.eq(u1r.valid), ln.uop.payload.eq(u1r),
                ln.s_addr.eq(u0.i), ln.dumping.eq(dumping), ln.dump_addr.eq(dump_addr), ln.dump_adv.eq(dump_adv),
                # values every lane uses (the projection, h, 1/‖v‖, r_c) are selected centrally
                # one cycle ahead and registered in each lane
                ln.pq.eq(pq_r.data), ln.h.eq(H[idx1]), ln.inv.eq(INV[idx1]), ln.rc.eq(RC[uR1.c]),
                ln.x.eq(xb_d[l]), ln.d.eq(db_d[l]), ln.wm.eq(wm_d[l]),
                ln.load.en.eq(load_take), ln.load.kind.eq(ld.kind), ln.load.col.eq(ld.col),
                ln.load.chunk.eq(ld.chunk), ln.load.data.eq(ld.data[l]),
            ]
            lanes.append(ln)
        sxd = [ln.sx_row for ln in lanes]
        sdd = [ln.sd_row for ln in lanes]

        def lanes_any(name):
            """A saturation check of every lane (each registered in its lane), OR-ed."""
            return Cat(*[getattr(ln, name) for ln in lanes]).any()

        v_scale_r2 = uR2.valid & (uR2.op == OP_SCALE)
        raise_sat("X_q", v_scale_r2 & (uR2.mat == MAT_X) & lanes_any("qsat"))
        raise_sat("Delta_q", v_scale_r2 & (uR2.mat == MAT_D) & lanes_any("qsat"))
        acc_last_w = uW.valid & (uW.op == OP_ACC) & uW.lj
        gs_w = uW.valid & (uW.op == OP_GS)
        raise_sat("A", acc_last_w & (uW.mat == MAT_X) & lanes_any("asat"))
        raise_sat("D", acc_last_w & (uW.mat == MAT_D) & lanes_any("asat"))
        raise_sat("X_gs_v", gs_w & (uW.mat == MAT_X) & lanes_any("vsat"))
        raise_sat("Delta_gs_v", gs_w & (uW.mat == MAT_D) & lanes_any("vsat"))
        scale_w = uW.valid & (uW.op == OP_SCALE)
        qrow = Cat(*[ln.q for ln in lanes])
        with m.If(scale_w & uW.jlast):
            m.d.sync += col_ready[uW.mat * k + uW.c].eq(1)
        pipe_push = scale_w & uW.tr
        raise_sat("M_update", uU2.valid & (uU2.op == OP_ACC) & uU2.lj & lanes_any("usat"))
        raise_sat("M", u8.valid & (u8.op == OP_ACC) & u8.lj & lanes_any("msat"))
        w8 = u8.valid & (((u8.op == OP_ACC) & u8.lj) | (u8.op == OP_GS))
        m.d.comb += [
            wm_w.addr.eq(_addr((u8.i, Rm), (u8.c, k), (u8.mat, 2))),
            wm_w.data.eq(Cat(*[ln.v for ln in lanes])),
            wm_w.en.eq(w8),
        ]

        # ---------------------------------------------------------------- reduction
        m.submodules.reduce = red = Reducer(p)
        m.d.comb += [red.uop.eq(u9), red.terms.eq(Cat(*[ln.red for ln in lanes]))]
        ug = red.tag
        g_q, g_qs, g_h, g_hs, g_ss, g_val = red.q, red.q_sat, red.h, red.h_sat, red.s_sat, red.value
        fin = ug.valid & ug.red & ug.rlast
        idxf = ug.mat * k + ug.c
        # PROJ -> projection memory
        fin_proj = fin & (ug.op == OP_PROJ)
        m.d.comb += [
            pq_w.addr.eq(_addr((ug.smp, s), (ug.c, k), (ug.mat, 2))),
            pq_w.data.eq(g_q),
            pq_w.en.eq(fin_proj),
        ]
        raise_sat("q", fin_proj & (ug.mat == MAT_X) & g_qs)
        raise_sat("p", fin_proj & (ug.mat == MAT_D) & g_qs)
        with m.If(fin_proj & ug.jlast):
            m.d.sync += proj_done[idxf].eq(1)
        # Gram–Schmidt dot -> h register
        fin_dot = fin & ((ug.op == OP_ACC) | (ug.op == OP_GS))
        with m.If(fin_dot & ~ug.norm):
            m.d.sync += [H[idxf].eq(g_h), h_valid[idxf].eq(1)]
        raise_sat("X_gs_h", fin_dot & ~ug.norm & (ug.mat == MAT_X) & g_hs)
        raise_sat("Delta_gs_h", fin_dot & ~ug.norm & (ug.mat == MAT_D) & g_hs)
        # scalar tasks: NORM (N2) and SIGMA (S)
        fin_scale = fin & (ug.op == OP_SCALE)
        raise_sat("S", fin_scale & g_ss)
        task = task_layout(p)
        m.submodules.task_fifo = task_fifo = fifo.SyncFIFOBuffered(width=task.size, depth=3 * k + 2)
        tw = Signal(task)
        m.d.comb += [
            tw.sigma.eq(fin_scale), tw.mat.eq(ug.mat), tw.c.eq(ug.c),
            tw.value.eq(g_val),
            task_fifo.w_data.eq(tw),
            task_fifo.w_en.eq((fin_dot & ug.norm) | fin_scale),
        ]

        # ---------------------------------------------------------------- scalar unit
        wiring.connect(m, sc.task, task_fifo.r_stream)
        wiring.connect(m, sc.sub, desc_fifo.r_stream)
        # its results land in the scoreboard here, after the sequencer's clears (a write wins)
        with m.If(sc.inv.en):
            m.d.sync += [INV[sc.inv.idx].eq(sc.inv.data), inv_valid[sc.inv.idx].eq(1)]
        with m.If(sc.rc.en):
            m.d.sync += [RC[sc.rc.c].eq(sc.rc.data), r_sat[sc.rc.c].eq(sc.rc.sat),
                         r_guard[sc.rc.c].eq(sc.rc.guard), r_valid[sc.rc.c].eq(1)]
        # a reservation of the sequencer this cycle takes at most chunks_max credits, so
        # credit > chunks_max leaves room for a σ word whatever the sequencer does
        m.d.comb += [sc.trace_en.eq(self.trace_en),
                     sc.trace_room.eq(~self.trace_en | ((credit > Rm) & ~pipe_push & ~take_pending))]
        sc_push, sc_idle = sc.push, sc.idle
        degen_inc = sc.degenerate

        # ---------------------------------------------------------------- trace output
        wiring.connect(m, wiring.flipped(self.trace), tro.trace)
        m.d.comb += [
            tro.state.en.eq(pipe_push), tro.state.mat.eq(uW.mat), tro.state.col.eq(uW.c), tro.state.chunk.eq(uW.i),
            tro.state.data.eq(qrow),
            tro.sigma.en.eq(sc_push), tro.sigma.col.eq(sc.push_c), tro.sigma.value.eq(sc.push_sigma),
        ]

        # ---------------------------------------------------------------- factor dump
        assert len(pipe.stages) + red.stages + 1 == p.lat_final, (len(pipe.stages), red.stages, p.lat_final)
        stages_valid = Cat(*[u.valid for u in pipe.stages], red.busy)
        quiet = ~running & ~stages_valid.any() & sc_idle & (task_fifo.level == 0)
        load_ok = quiet & ~in_batch & ~in_mid & ~inbuf.any_full & ~dumping & ~req_pending
        m.d.comb += self.load.ready.eq(load_ok)
        load_sigma = load_take & (ld.kind == Kind.SIGMA)
        m.d.comb += [sc.load.en.eq(load_sigma), sc.load.c.eq(ld.col), sc.load.sigma.eq(ld.sigma)]
        with m.If(load_sigma):
            m.d.sync += r_valid[ld.col].eq(0)
        wiring.connect(m, wiring.flipped(self.factors), dump.factors)
        m.d.comb += [
            dump.start.eq(req_block & quiet), dump.col.eq(req_col), dump.all.eq(req_all), dump.sigma.eq(sc.sigma),
            dump.sx_rows.eq(Cat(*sxd)), dump.sd_rows.eq(Cat(*sdd)),
        ]
        with m.If(~dumping & req_block & quiet):
            m.d.sync += req_pending.eq(0)

        # ---------------------------------------------------------------- status
        m.submodules.status = st = Status()
        m.d.comb += [
            st.sat_now.eq(sat_now | sc.sat), st.guard_inc.eq(guard_inc), st.degen_inc.eq(degen_inc),
            st.clear.eq(self.clear),
            st.active.eq(running | stages_valid.any() | ~sc_idle | dumping | (task_fifo.level != 0)),
            self.busy.eq(st.busy), self.in_batch.eq(in_batch),
            self.sat.eq(st.sat), self.error.eq(inbuf.error), inbuf.clear.eq(self.clear),
            self.sigma_guard.eq(st.sigma_guard), self.degenerate.eq(st.degenerate),
            self.samples.eq(inbuf.samples), self.sub_batches.eq(sc.sub_batches), self.batches.eq(sc.batches),
            self.batch_size.eq(inbuf.batch_size), self.cycles.eq(st.cycles),
        ]
        return m


def engine_manifest(params: EngineParams, *, name: str = "sbpca_engine", seed: int = 0,
                    init=None) -> dict:
    """Everything a wrapper needs without reading the Verilog: parameters, formats, ports
    (Verilog names, directions, widths; stream payload fields with bit offsets), status
    flag bits, the job program and the throughput bound."""
    eng = SBPCAEngine(params, init=init, seed=seed)
    eng._MustUse__silence = True  # only the signature is needed here
    ports = []
    for path, member in eng.signature.members.flatten():
        if not member.is_port:
            continue
        ports.append({"name": "__".join(str(x) for x in path),
                      "direction": "input" if member.flow is In else "output",
                      "width": Shape.cast(member.shape).width})
    layouts = {}
    for key, lay in eng.layouts.items():
        fields = []
        for fname, fld in lay:
            shape = fld.shape
            entry = {"name": fname, "offset": fld.offset, "width": fld.width}
            if isinstance(shape, data.ArrayLayout):
                entry.update(elements=shape.length, element_width=data.Layout.cast(shape).size // shape.length,
                             signed=True)
            else:
                entry["signed"] = bool(getattr(shape, "signed", False))
            fields.append(entry)
        layouts[key] = {"width": lay.size, "fields": fields}
    return {
        "design": "sbpca_engine",
        "top": name,
        "params": params.to_dict(),
        "formats": {k: str(v) for k, v in params.fmts.items()},
        "ports": ports,
        "payloads": layouts,
        "status_sat_bits": {n: i for i, n in enumerate(SAT_NAMES)},
        "program": [str(j) for j in eng.program],
        "chunks": {"x": params.chunks_b, "d": params.chunks_a},
        "bound_cycles_per_sample": params.bound_cycles_per_sample,
        "scalar_unit": {"sqrt_cycles": params.sqrt_cycles, "div_cycles": params.div_cycles},
    }


def build_from_args(args) -> tuple[SBPCAEngine, str]:
    """``hdl.designs`` hook: the engine from ``sbpca synth``'s shared design arguments.

    ``--param KEY=VALUE`` sets any other :class:`EngineParams` field; for ``--target ecp5``
    the multiplier tiles default to the ECP5 ``MULT18X18D`` primitive (``dsp=ecp5``).
    """
    from pymodel.formats import get_format_set

    from .designs import _overrides, _params_dataclass

    fmt = get_format_set(getattr(args, "format", None) or getattr(args, "format_set", None) or "q16")
    bits = getattr(args, "data_bits", None)
    if bits is not None:
        fmt = fmt.with_data_bits(bits)
    available = dict(rows=args.rows, cols=args.cols, rank=args.rank, sub_batch=args.sub_batch,
                     lanes=args.lanes, formats=fmt)
    if getattr(args, "target", None) == "ecp5":
        available["dsp"] = "ecp5"
    params = _params_dataclass(EngineParams, available, _overrides(args), "engine")
    return SBPCAEngine(params, seed=getattr(args, "seed", 0) or 0), "sbpca_engine"
