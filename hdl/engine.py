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
from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from pymodel.sbpca import SBPCA

from .arith import fit, round_shift, tree_sum
from .dsp import tiled_mul
from .engine_input import InputBuffer
from .engine_pipeline import Tag, UopPipe, index_bits, mem_addr, mem_depth
from .engine_pipeline import delay as _delay, lane_copies as _lane_copies, lanes_any as _lanes_any
from .engine_pipeline import reg as _reg, rreg as _rreg
from .engine_scalar import ScalarUnit, task_layout, task_value_bits
from .engine_params import (
    MAT_D, MAT_X, OP_ACC, OP_GS, OP_PROJ, OP_SCALE, SAT_NAMES, EngineParams, Job, build_program,
)

__all__ = ["SBPCAEngine", "EngineParams", "engine_manifest", "engine_layouts", "initial_state", "SAT_NAMES"]

KIND_X, KIND_D, KIND_SIGMA = 0, 1, 2


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
    def elaborate(self, platform):  # noqa: C901 - one datapath, written stage by stage
        m = Module()
        p, f = self.params, self.params.fmts
        P, k, s = p.P, p.k, p.s
        Ra, Rb, Rm = p.chunks_a, p.chunks_b, p.chunks_max
        xw, dw, sw, pw, aw, mw = f.x.bits, f.delta.bits, f.state.bits, f.proj.bits, f.acc.bits, f.mat.bits
        iw, rw, gw = f.inv.bits, f.recip.bits, f.sigma.bits
        colw, chw, smpw = _w(k), _w(Rm), _w(s)
        RW = p.red_bits
        LW = p.acc_exact_bits
        sat_bit = {name: i for i, name in enumerate(SAT_NAMES)}
        sat_now = Signal(len(SAT_NAMES))  # flags raised this cycle (OR-ed into the sticky ``sat``)

        def raise_sat(name: str, cond):
            """Raise flag ``name`` when ``cond`` holds, in the current control context."""
            with m.If(cond):
                m.d.comb += sat_now[sat_bit[name]].eq(1)

        X0, D0, S0 = self.init_state

        # ---------------------------------------------------------------- memories
        def state_rows(M: np.ndarray, R: int, l: int) -> list:
            """Lane ``l``'s rows of a state matrix: row i holds element i·P + l of every column."""
            return [[int(M[i * P + l, c]) if i * P + l < M.shape[0] else 0 for c in range(k)]
                    for i in range(R)]

        lane = lambda shape: data.ArrayLayout(shape, P)  # noqa: E731
        # The sample buffers are double-buffered (the input side writes one slot while the lanes
        # read the other) and the Gram–Schmidt column memory is read only after a job's writes
        # are done (scoreboard), so a read never meets a write to the same address: synthesis
        # need not build read-before-write collision logic around these block RAMs.
        no_rw = {"no_rw_check": 1}
        # the state matrices: one memory per lane (all k columns of the lane's rows), each read
        # from the lane's own registered address, so no read address spans the lanes
        sx_l, sd_l = [], []
        for l in range(P):
            for nm, M, R, lst in (("sx", X0, Rb, sx_l), ("sd", D0, Ra, sd_l)):
                m.submodules[f"{nm}{l}"] = mem_l = memory.Memory(
                    shape=data.ArrayLayout(signed(sw), k), depth=R, init=state_rows(M, R, l))
                lst.append((mem_l.read_port(), mem_l.write_port(granularity=1)))
        m.submodules.pq = pq = memory.Memory(shape=signed(pw), depth=_depth(s, k, 2), init=[])
        m.submodules.wm = wm = memory.Memory(shape=lane(signed(mw)), depth=_depth(Rm, k, 2), init=[], attrs=no_rw)
        # D_r = R_acc(D) per column: one memory per lane, read and written from the lane's own
        # copy of the uop tags (the power step needs it only at cycle R2, so it is read late)
        drm_l = []
        for l in range(P):
            m.submodules[f"drm{l}"] = mem_l = memory.Memory(shape=signed(aw), depth=_depth(Ra, k), init=[])
            drm_l.append((mem_l.read_port(), mem_l.write_port()))
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
        r_sat_l, r_sat = flags("r_sat", k)
        r_guard_l, r_guard = flags("r_guard", k)
        H = Array([Signal(signed(mw), name=f"h{i}") for i in range(2 * k)])
        INV = Array([Signal(signed(iw), name=f"inv{i}") for i in range(2 * k)])
        RC = Array([Signal(signed(rw), name=f"r{i}") for i in range(k)])
        # the scalar unit (divider, square root, reciprocal and σ logic) holds σ
        m.submodules.scalar = sc = ScalarUnit(p, S0)
        SIG = sc.sigma
        m.d.comb += self.sigma.eq(sc.sigma)

        sat = Signal(len(SAT_NAMES))
        guard_cnt = Signal(32)
        degen_cnt = Signal(32)
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
        dumping = Signal()
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
        # trace credits
        tdepth = 2 * Rm + 2 * k + 2
        credit = Signal(range(tdepth + 1), init=tdepth)
        job_tr = Signal()
        flag_vec = Cat(*all_flags)
        # a SCALE job's trace reservation reaches ``credit`` one cycle after its start
        # (``take_r``); while one is pending neither a SCALE job nor a σ trace word may reserve
        take_r = Signal(range(tdepth + 1))
        take_pending = take_r != 0
        wait_ok = ((flag_vec | ~jd["wait"]) == (1 << NF) - 1) & (
            ~is_scale | ~self.trace_en | ((credit >= chunks_mat) & ~take_pending))
        start = running & ~active & (pc < NJ) & wait_ok
        issue = active | start
        in_first = inner == 0
        in_last = inner == n_in_m1
        out_last = outer == n_out_m1
        ci = Mux(is_acc, outer, inner)
        cj = Mux(is_proj, outer, Mux(is_acc, inner, 0))
        seq_take = Signal(range(tdepth + 1))
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
        uop = data.StructLayout({
            "valid": 1, "op": 2, "mat": 1, "c": colw, "step": colw, "i": chw, "smp": smpw,
            "rfirst": 1, "rlast": 1, "red": 1, "fj": 1, "lj": 1, "norm": 1, "jlast": 1, "tr": 1,
        })
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
        dump_addr = Signal(chw)
        dump_adv = Signal()
        m.d.comb += [
            inbuf.x_addr.eq(_addr((ci, Rb), (cj, s), (cur_slot, 2))),
            inbuf.d_addr.eq(_addr((ci, Ra), (cj, s), (cur_slot, 2))),
            pq_r.addr.eq(_addr((cj, s), (j_col, k), (j_mat, 2))),
            wm_r.addr.eq(_addr((ci, Rm), (j_col, k), (j_mat, 2))),
        ]

        # Per-lane control: from the operand stage on, every lane carries its own copy of the
        # uop tags down its own pipeline (``Tag.lane``), so the lanes' multiplexers are driven
        # from registers next to them and only one register-to-register hop crosses the chip.
        pipe = UopPipe(m, uop, P)
        stage, udelay = pipe.stage, pipe.delay

        def reg(shape, value, name):
            return _reg(m, shape, value, name)

        def lane_copies(shape, value, name):
            return _lane_copies(m, shape, value, P, name)

        # ---------------------------------------------------------------- stage 1: operands
        # Cycle numbers below count from the issue (cycle 0).  Multipliers are DSP tiles
        # (``hdl.dsp.tiled_mul``): their operands are sampled by the tiles' input registers,
        # every tile product is registered, and the tiles are summed one tree level per cycle.
        # Each requantisation is split: round (registered), then range check (registered).
        u1r = stage(Tag(u0), "u1")
        # cycle 1: block-RAM read data are registered (a DP16KD's clock-to-out is ~5.6 ns on
        # ECP5); the state memories (distributed RAM, registered read) are read one cycle
        # later instead, from the uop's own chunk index, so every operand is a register at cycle 2
        s_addr = lane_copies(unsigned(chw), u0.i, "s_addr")  # = u1r.i, once per lane
        for l in range(P):
            for rp, _ in (sx_l[l], sd_l[l]):
                m.d.comb += [rp.addr.eq(Mux(dumping, dump_addr, s_addr[l])), rp.en.eq(~dumping | dump_adv)]
        sxd = [rp.data for rp, _ in sx_l]
        sdd = [rp.data for rp, _ in sd_l]
        xb_d = reg(lane(signed(xw)), inbuf.x_data, "xb_d")
        db_d = reg(lane(signed(dw)), inbuf.d_data, "db_d")
        idx1 = u1r.mat * k + u1r.c
        # values every lane uses (the projection, h, 1/‖v‖) are selected centrally one cycle
        # ahead and registered once per lane
        pq_d = lane_copies(signed(pw), pq_r.data, "pq_d")
        h_sel = lane_copies(signed(mw), H[idx1], "h_sel")
        inv_sel = lane_copies(signed(iw), INV[idx1], "inv_sel")
        wm_d = reg(lane(signed(mw)), wm_r.data, "wm_d")
        u1 = stage(u1r, "u2", split=True)
        A1W = max(xw, dw, mw)
        B1W = max(sw, pw, iw)
        MRB = max(rw, sw)
        prim = p.dsp

        def rreg(value, name):
            return _rreg(m, value, name)

        def lanes_any(bits, name):
            return _lanes_any(m, bits, name)

        a1, b1, cv2, cb2, cx2 = [], [], [], [], []
        for l in range(P):
            ul = u1.lane(l)
            s_own_c = Mux(ul.mat, sdd[l][ul.c], sxd[l][ul.c])
            s_j = Mux(ul.mat, sdd[l][ul.step], sxd[l][ul.step])
            s_j1 = Mux(ul.mat, sdd[l][ul.step + 1], sxd[l][ul.step + 1])
            s_0 = Mux(ul.mat, sdd[l][0], sxd[l][0])
            s_oth_c = Mux(ul.mat, sxd[l][ul.c], sdd[l][ul.c])
            x_l, d_l = xb_d[l], db_d[l]
            av = Signal(signed(A1W), name=f"a1_{l}")
            bv = Signal(signed(B1W), name=f"b1_{l}")
            with m.Switch(ul.op):
                with m.Case(OP_PROJ):
                    m.d.comb += [av.eq(Mux(ul.mat, x_l, d_l)), bv.eq(s_oth_c)]
                with m.Case(OP_ACC):
                    m.d.comb += [av.eq(Mux(ul.mat, d_l, x_l)), bv.eq(pq_d[l])]
                with m.Case(OP_GS):
                    m.d.comb += [av.eq(h_sel[l]), bv.eq(s_j)]
                with m.Case(OP_SCALE):
                    m.d.comb += [av.eq(wm_d[l]), bv.eq(inv_sel[l])]
            a1.append(av)
            b1.append(bv)
            cv2.append(reg(signed(mw), wm_d[l], f"s2_v_{l}"))
            cb2.append(reg(signed(sw), Mux(ul.op == OP_GS, s_j1, s_0), f"s2_qn_{l}"))
            cx2.append(reg(signed(sw), s_own_c, f"s2_x_{l}"))

        def delay(vals, n, shape, name):
            return _delay(m, vals, n, shape, name)

        # ---------------------------------------------------------------- m1 (cycles 1 .. P1)
        m1 = [tiled_mul(m, a1[l], b1[l], name=f"m1_{l}", primitive=prim, fabric_reg=True) for l in range(P)]
        L1 = m1[0][1]
        p1 = [v for v, _ in m1]
        uP1 = udelay(u1, L1, "u_m1")  # cycle P1 = 2 + L1: p1 valid
        cv = delay(cv2, L1 - 1, signed(mw), "m1_v")
        cb = delay(cb2, L1 - 1, signed(sw), "m1_qn")
        cx = delay(cx2, L1 - 1, signed(sw), "m1_x")

        # ---------------------------------------------------------------- P1: accumulate, round
        lacc = [Signal(signed(LW), name=f"lacc_{l}", reset_less=True) for l in range(P)]
        for l in range(P):
            ul = uP1.lane(l)
            with m.If(ul.valid & (ul.op == OP_ACC)):
                m.d.sync += lacc[l].eq(Mux(ul.fj, p1[l], lacc[l] + p1[l]))
        sh_t = f.state.frac + f.mat.frac  # product frac of t = h·q_j and of the SCALE product v·inv
        t_r = [rreg(round_shift(p1[l], sh_t - f.mat.frac, f.mat.rounding), f"rt_{l}")
               for l in range(P)]
        q_r = [rreg(round_shift(p1[l], f.mat.frac + f.inv.frac - f.state.frac, f.state.rounding),
                   f"rq_{l}") for l in range(P)]
        pr_p = [reg(signed(A1W + B1W), p1[l], f"pp_{l}") for l in range(P)]
        uR1 = stage(uP1, "u_r1")  # P1 + 1
        cv, cb, cx = (delay(v, 1, sh, nm) for v, sh, nm in
                      ((cv, signed(mw), "r1_v"), (cb, signed(sw), "r1_qn"), (cx, signed(sw), "r1_x")))
        # D_r read at R1 from the lane's own uop copy, data at R2
        cdr = []
        for l, (rp, _) in enumerate(drm_l):
            ul = uR1.lane(l)
            m.d.comb += rp.addr.eq(_addr((ul.i, Ra), (ul.c, k)))
            cdr.append(rp.data)

        # ---------------------------------------------------------------- P1+1: fit t, q; round lacc
        t_f, q_f, qsat = [], [], []
        for l in range(P):
            tv, _ = fit(t_r[l], f.mat)  # silent (golden passes no flags)
            qv, qs_ = fit(q_r[l], f.state)
            qsat.append(qs_)
            t_f.append(reg(signed(mw), tv, f"ft_{l}"))
            q_f.append(reg(signed(sw), qv, f"fq_{l}"))
        any_qsat = lanes_any(qsat, "qsat")  # seen at R2
        la_x = [rreg(round_shift(lacc[l], f.x.frac + f.proj.frac - f.acc.frac, f.acc.rounding), f"rax_{l}")
                for l in range(P)]
        la_d = [rreg(round_shift(lacc[l], f.delta.frac + f.proj.frac - f.acc.frac, f.acc.rounding),
                    f"rad_{l}") for l in range(P)]
        r_sel = lane_copies(signed(rw), RC[uR1.c], "r_sel")  # r_c for the power step, per lane
        uR2 = stage(uR1, "u_r2")  # P1 + 2
        cv, cb, cx = (delay(v, 1, sh, nm) for v, sh, nm in
                      ((cv, signed(mw), "r2_v"), (cb, signed(sw), "r2_qn"), (cx, signed(sw), "r2_x")))
        pr_p = delay(pr_p, 1, signed(A1W + B1W), "pp_r2")

        # ---------------------------------------------------------------- P1+2: v, m_r operands
        v_scale_r2 = uR2.valid & (uR2.op == OP_SCALE)
        raise_sat("X_q", v_scale_r2 & (uR2.mat == MAT_X) & any_qsat)
        raise_sat("Delta_q", v_scale_r2 & (uR2.mat == MAT_D) & any_qsat)
        mra, mrb, v_w, q_w, mra_w = [], [], [], [], []
        asat, vsat = [], []
        for l in range(P):
            fx, sx_ = fit(la_x[l], f.acc)
            fd, sd_ = fit(la_d[l], f.acc)
            ul = uR2.lane(l)
            asat.append(Mux(ul.mat, sd_, sx_))
            # m_r operands: ACC: R_acc(A) × r_c (power step); SCALE: D_r × Δ' (σ's S dot)
            ra = Signal(signed(aw), name=f"mra_{l}")
            rb = Signal(signed(MRB), name=f"mrb_{l}")
            acc_l = ul.op == OP_ACC
            m.d.comb += [ra.eq(Mux(acc_l, Mux(ul.mat, fd, fx), cdr[l])), rb.eq(Mux(acc_l, r_sel[l], q_f[l]))]
            mra.append(ra)
            mrb.append(rb)
            mra_w.append(reg(signed(aw), ra, f"w_dr_{l}"))
            vv, vs_ = fit(cv[l] - t_f[l], f.mat)
            vsat.append(vs_)
            v_w.append(reg(signed(mw), vv, f"w_v_{l}"))
            q_w.append(reg(signed(sw), q_f[l], f"w_q_{l}"))
        any_asat, any_vsat = lanes_any(asat, "asat"), lanes_any(vsat, "vsat")  # seen at W
        uW = stage(uR2, "u_w")  # P1 + 3: state write, D_r write, trace
        acc_last_w = uW.valid & (uW.op == OP_ACC) & uW.lj
        gs_w = uW.valid & (uW.op == OP_GS)
        raise_sat("A", acc_last_w & (uW.mat == MAT_X) & any_asat)
        raise_sat("D", acc_last_w & (uW.mat == MAT_D) & any_asat)
        raise_sat("X_gs_v", gs_w & (uW.mat == MAT_X) & any_vsat)
        raise_sat("Delta_gs_v", gs_w & (uW.mat == MAT_D) & any_vsat)
        cb, cx = delay(cb, 1, signed(sw), "w_qn"), delay(cx, 1, signed(sw), "w_x")
        scale_w = uW.valid & (uW.op == OP_SCALE)
        qrow = Cat(*q_w)
        # state load (only while the engine is idle at a batch boundary, so never with a SCALE)
        # a load beat is registered before it is written (the handshake logic stays off the
        # memories' wide write-data multiplexer); the write lands one cycle later, still idle
        load_take = Signal()
        m.d.comb += load_take.eq(self.load.valid & self.load.ready)
        ld_v = Signal(name="load_v")
        ld_r = Signal(self.layouts["load"], name="load_r", reset_less=True)
        m.d.sync += [ld_v.eq(load_take), ld_r.eq(self.load.payload)]
        ld = ld_r
        load_take = ld_v
        for l in range(P):
            # each lane's state memories are written from the lane's own uop copy
            ul = uW.lane(l)
            scale_l = ul.valid & (ul.op == OP_SCALE)
            wcol = Mux(load_take, ld.col, ul.c)
            wrow = Mux(load_take, ld.data[l], q_w[l])
            for (_, wp), kind, mat in ((sx_l[l], KIND_X, MAT_X), (sd_l[l], KIND_D, MAT_D)):
                wsel = Mux(load_take, ld.kind == kind, scale_l & (ul.mat == mat))
                m.d.comb += [
                    wp.addr.eq(Mux(load_take, ld.chunk, ul.i)),
                    wp.data.eq(Cat(*[wrow] * k)),
                    wp.en.eq(Cat(*[wsel & (wcol == c) for c in range(k)])),
                ]
        for l, (_, wp) in enumerate(drm_l):
            ul = uW.lane(l)
            m.d.comb += [wp.addr.eq(_addr((ul.i, Ra), (ul.c, k))), wp.data.eq(mra_w[l]),
                         wp.en.eq(ul.valid & (ul.op == OP_ACC) & ul.lj & (ul.mat == MAT_D))]
        with m.If(scale_w & uW.jlast):
            m.d.sync += col_ready[uW.mat * k + uW.c].eq(1)
        pipe_push = scale_w & uW.tr
        assert 2 + L1 + 3 == p.lat_state, (L1, p.lat_state)

        # ---------------------------------------------------------------- m_r (P1+2 .. PR)
        mr = [tiled_mul(m, mra[l], mrb[l], name=f"mr_{l}", primitive=prim, fabric_reg=True) for l in range(P)]
        LR = mr[0][1]
        prr = [v for v, _ in mr]
        uPR = udelay(uW, LR - 1, "u_mr")  # PR = P1 + 2 + LR
        v_w = delay(v_w, LR - 1, signed(mw), "mr_v")
        cb = delay(cb, LR - 1, signed(sw), "mr_qn")
        cx = delay(cx, LR - 1, signed(sw), "mr_x")
        pr_p = delay(pr_p, LR, signed(A1W + B1W), "pp_mr")
        # PR: round the power-step update
        upd_r = [rreg(round_shift(prr[l], f.acc.frac + f.recip.frac - f.mat.frac, f.mat.rounding),
                     f"rupd_{l}") for l in range(P)]
        prs = [reg(signed(aw + MRB), prr[l], f"prs_{l}") for l in range(P)]
        uU1 = stage(uPR, "u_u1")
        v_w, cb, cx = delay(v_w, 1, signed(mw), "u1_v"), delay(cb, 1, signed(sw), "u1_qn"), delay(cx, 1, signed(sw), "u1_x")
        pr_p = delay(pr_p, 1, signed(A1W + B1W), "pp_u1")
        # PR+1: fit it
        upd, usat = [], []
        for l in range(P):
            uv, us_ = fit(upd_r[l], f.mat)
            usat.append(us_)
            upd.append(reg(signed(mw), uv, f"fupd_{l}"))
        any_usat = lanes_any(usat, "usat")
        uU2 = stage(uU1, "u_u2")
        raise_sat("M_update", uU2.valid & (uU2.op == OP_ACC) & uU2.lj & any_usat)
        v_w, cb, cx = delay(v_w, 1, signed(mw), "u2_v"), delay(cb, 1, signed(sw), "u2_qn"), delay(cx, 1, signed(sw), "u2_x")
        pr_p = delay(pr_p, 1, signed(A1W + B1W), "pp_u2")
        prs = delay(prs, 1, signed(aw + MRB), "prs_u2")
        # PR+2: M = X + update (exact sum, registered before its range check)
        shift = f.mat.frac - f.state.frac
        msum = [rreg((cx[l] << shift) + upd[l], f"msum_{l}") for l in range(P)]
        uU3 = stage(uU2, "u_u3")
        v_w, cb = delay(v_w, 1, signed(mw), "u3_v"), delay(cb, 1, signed(sw), "u3_qn")
        pr_p = delay(pr_p, 1, signed(A1W + B1W), "pp_u3")
        prs = delay(prs, 1, signed(aw + MRB), "prs_u3")
        # PR+3: the new column value and the m2 operand
        v8, b2_8, msat = [], [], []
        for l in range(P):
            mv, ms_ = fit(msum[l], f.mat)
            msat.append(ms_)
            ul = uU3.lane(l)
            vnew = Mux(ul.op == OP_ACC, mv, v_w[l])
            v8.append(reg(signed(mw), vnew, f"s8_v_{l}"))
            # m2 operand: the norm v·v, or the dot with q_0 (ACC) / q_{j+1} (GS)
            b2_8.append(reg(signed(mw), Mux(ul.norm, vnew, cb[l]), f"s8_b2_{l}"))
        any_msat = lanes_any(msat, "msat")
        u8 = stage(uU3, "u_v")  # V = PR + 4
        raise_sat("M", u8.valid & (u8.op == OP_ACC) & u8.lj & any_msat)
        pr_p = delay(pr_p, 1, signed(A1W + B1W), "pp_v")
        prs = delay(prs, 1, signed(aw + MRB), "prs_v")
        w8 = u8.valid & (((u8.op == OP_ACC) & u8.lj) | (u8.op == OP_GS))
        m.d.comb += [
            wm_w.addr.eq(_addr((u8.i, Rm), (u8.c, k), (u8.mat, 2))),
            wm_w.data.eq(Cat(*v8)),
            wm_w.en.eq(w8),
        ]

        # ---------------------------------------------------------------- m2 (V .. P2)
        m2 = [tiled_mul(m, v8[l], b2_8[l], name=f"m2_{l}", primitive=prim) for l in range(P)]
        L2 = m2[0][1]
        p2 = [v for v, _ in m2]
        u9 = udelay(u8, L2, "u_m2")
        prs9 = delay(prs, L2, signed(aw + MRB), "prs_m2")
        pr = delay(pr_p, L2, signed(A1W + B1W), "pp_m2")  # the projection product, carried from P1
        red_in = []
        for l in range(P):
            rv = Signal(signed(RW), name=f"red_in_{l}")
            ul = u9.lane(l)
            m.d.comb += rv.eq(Mux(ul.op == OP_PROJ, pr[l], Mux(ul.op == OP_SCALE, prs9[l], p2[l])))
            red_in.append(rv)
        u9 = pipe.central(u9)  # from here on the lanes' results are summed: no per-lane control

        # ---------------------------------------------------------------- reduction
        tsum, tlat = tree_sum(m, red_in, RW, p.tree_levels_per_stage, name="red")
        assert tlat == p.tree_latency, (tlat, p.tree_latency)
        ut = udelay(u9, tlat, "ut")
        racc = Signal(signed(RW), reset_less=True)
        with m.If(ut.valid & ut.red):
            m.d.sync += racc.eq(Mux(ut.rfirst, tsum, racc + tsum))
        uf = stage(ut, "uf")
        # finalise: every requantisation of the exact sum — round, then range check, each registered
        rq_x = rreg(round_shift(racc, f.delta.frac + f.state.frac - f.proj.frac, f.proj.rounding), "rf_qx")
        rq_d = rreg(round_shift(racc, f.x.frac + f.state.frac - f.proj.frac, f.proj.rounding), "rf_qd")
        rh = rreg(round_shift(racc, f.mat.frac + f.state.frac - f.mat.frac, f.mat.rounding), "rf_h")
        rs = rreg(round_shift(racc, f.state.frac + f.acc.frac - f.sigma.frac, f.sigma.rounding), "rf_s")
        VW = task_value_bits(p)
        rval = reg(signed(RW), racc, "rf_val")
        uf2 = stage(uf, "uf2")
        qx, qxs = fit(rq_x, f.proj)
        qd, qds = fit(rq_d, f.proj)
        hv, hs = fit(rh, f.mat)
        sv, ss = fit(rs, f.sigma)
        ug = stage(uf2, "ug")
        g_q = reg(signed(pw), Mux(uf2.mat, qd, qx), "g_q")
        g_qs = reg(1, Mux(uf2.mat, qds, qxs), "g_qs")
        g_h = reg(signed(mw), hv, "g_h")
        g_hs = reg(1, hs, "g_hs")
        g_ss = reg(1, ss, "g_ss")
        g_val = reg(signed(VW), Mux(uf2.op == OP_SCALE, sv, rval), "g_val")
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
        tlay = self.layouts["trace"]
        m.submodules.trace_fifo = tfifo = fifo.SyncFIFOBuffered(width=tlay.size, depth=tdepth)
        tw_ = Signal(tlay)
        with m.If(pipe_push):
            m.d.comb += [tw_.kind.eq(uW.mat), tw_.col.eq(uW.c), tw_.chunk.eq(uW.i), tw_.data.eq(qrow),
                         tfifo.w_en.eq(1)]
        with m.Elif(sc_push):
            m.d.comb += [tw_.kind.eq(KIND_SIGMA), tw_.col.eq(sc.push_c), tw_.sigma.eq(sc.push_sigma),
                         tfifo.w_en.eq(1)]
        m.d.comb += [
            tfifo.w_data.eq(tw_),
            self.trace.valid.eq(tfifo.r_rdy),
            self.trace.payload.eq(tfifo.r_data),
            tfifo.r_en.eq(self.trace.ready),
        ]
        pop = tfifo.r_rdy & self.trace.ready
        m.d.sync += [take_r.eq(seq_take), credit.eq(credit - take_r - sc_push + pop)]

        # ---------------------------------------------------------------- factor dump
        assert len(pipe.stages) + 1 == p.lat_final, (len(pipe.stages), p.lat_final)
        stages_valid = Cat(*[u.valid for u in pipe.stages])
        quiet = ~running & ~stages_valid.any() & sc_idle & (task_fifo.level == 0)
        load_ok = quiet & ~in_batch & ~in_mid & ~inbuf.any_full & ~dumping & ~req_pending
        m.d.comb += self.load.ready.eq(load_ok)
        load_sigma = load_take & (ld.kind == KIND_SIGMA)
        m.d.comb += [sc.load.en.eq(load_sigma), sc.load.c.eq(ld.col), sc.load.sigma.eq(ld.sigma)]
        with m.If(load_sigma):
            m.d.sync += r_valid[ld.col].eq(0)
        d_col = Signal(colw)
        d_end = Signal(colw)
        d_kind = Signal()
        f_valid = Signal()
        f_col = Signal(colw)
        f_kind = Signal()
        f_chunk = Signal(chw)
        f_last = Signal()
        f_sigma = Signal(signed(gw))
        d_more = Signal()
        with m.If(~dumping & req_block & quiet):
            m.d.sync += [
                dumping.eq(1), d_more.eq(1), d_kind.eq(0), dump_addr.eq(0), req_pending.eq(0),
                d_col.eq(Mux(req_all, 0, req_col)), d_end.eq(Mux(req_all, k - 1, req_col)),
            ]
        m.d.comb += dump_adv.eq(dumping & (~f_valid | self.factors.ready))
        with m.If(dump_adv):
            with m.If(d_more):
                chunks_k = Mux(d_kind, Rb, Ra)
                last_chunk = dump_addr == chunks_k - 1
                m.d.sync += [f_valid.eq(1), f_col.eq(d_col), f_kind.eq(d_kind), f_chunk.eq(dump_addr),
                             f_sigma.eq(SIG[d_col]),
                             f_last.eq(last_chunk & d_kind & (d_col == d_end))]
                with m.If(last_chunk):
                    m.d.sync += [dump_addr.eq(0), d_kind.eq(~d_kind)]
                    with m.If(d_kind == 1):
                        m.d.sync += d_col.eq(d_col + 1)
                        with m.If(d_col == d_end):
                            m.d.sync += d_more.eq(0)
                with m.Else():
                    m.d.sync += dump_addr.eq(dump_addr + 1)
            with m.Else():
                m.d.sync += [f_valid.eq(0), dumping.eq(0)]
        fl = self.factors.payload
        m.d.comb += [
            self.factors.valid.eq(f_valid),
            fl.data.eq(Mux(f_kind, Cat(*[d[f_col] for d in sxd]), Cat(*[d[f_col] for d in sdd]))),
            fl.sigma.eq(f_sigma), fl.col.eq(f_col), fl.kind.eq(f_kind), fl.chunk.eq(f_chunk),
            fl.last.eq(f_last),
        ]

        # ---------------------------------------------------------------- status
        cycles = Signal(32)
        # status events are registered once before they reach the sticky flags and the counters
        # (their conditions end deep in the datapath); busy holds until they have landed
        sat_now_r = Signal.like(sat_now)
        guard_inc_r = Signal()
        degen_inc_r = Signal()
        m.d.sync += [sat_now_r.eq(sat_now | sc.sat), guard_inc_r.eq(guard_inc), degen_inc_r.eq(degen_inc)]
        status_pending = sat_now_r.any() | guard_inc_r | degen_inc_r
        with m.If(self.clear):
            m.d.sync += [sat.eq(0), guard_cnt.eq(0), degen_cnt.eq(0), cycles.eq(0)]
        with m.Else():
            m.d.sync += [sat.eq(sat | sat_now_r), guard_cnt.eq(guard_cnt + guard_inc_r),
                         degen_cnt.eq(degen_cnt + degen_inc_r)]
            with m.If(self.busy):
                m.d.sync += cycles.eq(cycles + 1)
        busy = (running | stages_valid.any() | ~sc_idle | dumping | (task_fifo.level != 0)
                | status_pending)
        m.d.comb += [
            self.busy.eq(busy), self.in_batch.eq(in_batch),
            self.sat.eq(sat), self.error.eq(inbuf.error), inbuf.clear.eq(self.clear),
            self.sigma_guard.eq(guard_cnt), self.degenerate.eq(degen_cnt),
            self.samples.eq(inbuf.samples), self.sub_batches.eq(sc.sub_batches), self.batches.eq(sc.batches),
            self.batch_size.eq(inbuf.batch_size), self.cycles.eq(cycles),
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
