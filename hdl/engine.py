"""The SBPCA power-iteration engine (SPEC §2/§4), bit-exact to ``pymodel.sbpca`` fixed mode.

The engine is built from components (``docs/ENGINE.md`` has the diagram, port formats and
timing): :class:`~hdl.engine_input.InputBuffer`, :class:`~hdl.engine_seq.Sequencer`,
``P`` × :class:`~hdl.engine_lane.Lane`, :class:`~hdl.engine_reduce.Reducer`,
:class:`~hdl.engine_scalar.ScalarUnit` and the outputs of ``hdl.engine_outputs``; this module
joins them, holds the memories shared by the lanes (projections, the Gram–Schmidt column
memory) and the scoreboard values (h, 1/‖v‖, r_c), and runs the central uop pipeline beside
the lanes for the control that is not per lane.

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

import operator
from functools import reduce

import numpy as np
from amaranth.hdl import Array, Cat, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from pymodel.sbpca import SBPCA

from .engine_input import InputBuffer
from .engine_lane import Lane, uop_layout
from .engine_outputs import FactorDump, Status, TraceOut
from .engine_reduce import Reducer
from .engine_seq import Sequencer, scoreboard_bits
from .engine_pipeline import UopPipe, index_bits, mem_addr, mem_depth, ram_attrs, read_from_register, read_next_cycle, rreg
from .engine_pipeline import reg as _reg
from .engine_scalar import ScalarUnit, task_layout
from .engine_params import (
    ISSUE_STAGES, MAT_D, MAT_X, OP_ACC, OP_GS, OP_PROJ, OP_SCALE, SAT_NAMES, EngineParams, Job, Kind, build_schedule,
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
        self.schedule = build_schedule(params)
        self.program: list[Job] = self.schedule.standalone
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
    def elaborate(self, platform):
        m = Module()
        p, f = self.params, self.params.fmts
        P, k, s = p.P, p.k, p.s
        Rm = p.chunks_max
        xw, dw, pw, mw = f.x.bits, f.delta.bits, f.proj.bits, f.mat.bits
        iw, rw = f.inv.bits, f.recip.bits
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
        pq_depth, wm_depth = _depth(s, k, 2), _depth(Rm, k, 2)
        m.submodules.pq = pq = memory.Memory(shape=signed(pw), depth=pq_depth, init=[], attrs=ram_attrs(pq_depth, pw))
        m.submodules.wm = wm = memory.Memory(shape=lane(signed(mw)), depth=wm_depth, init=[],
                                             attrs=ram_attrs(wm_depth, P * mw, **no_rw))
        pq_w, wm_w = pq.write_port(), wm.write_port()
        # read addresses come from the sequencer's issue logic (cycle 0), data one cycle later
        seq_pq_addr = Signal(len(_addr((0, s), (0, k), (0, 2))), name="pq_addr")
        seq_wm_addr = Signal(len(_addr((0, Rm), (0, k), (0, 2))), name="wm_addr")
        # the projection memory's data leave a register beside it (read by every lane)
        pq_rdata = read_from_register(m, pq, seq_pq_addr, "pq")
        wm_rdata = read_next_cycle(m, wm, seq_wm_addr, "wm")

        # ---------------------------------------------------------------- scoreboard values
        # H, 1/‖v‖ and r_c per column, written with their scoreboard bits (``hdl.engine_seq``)
        sb = scoreboard_bits(k)
        H = Array([Signal(signed(mw), name=f"h{i}") for i in range(2 * k)])
        INV = Array([Signal(signed(iw), name=f"inv{i}") for i in range(2 * k)])
        RC = Array([Signal(signed(rw), name=f"r{i}") for i in range(k)])
        r_sat = Array([Signal(name=f"r_sat{i}") for i in range(k)])
        r_guard = Array([Signal(name=f"r_guard{i}") for i in range(k)])
        flag_set = Signal(sb["total"])  # scoreboard bits set by results this cycle

        def set_flag(group: str, idx) -> None:
            m.d.comb += flag_set.bit_select(sb[group] + idx, 1).eq(1)

        # A result whose tag is one unconditional register stage away sets its bit from a
        # flip-flop, decoded from the stage before (same cycle as ``set_flag`` at the later
        # stage): the sequencer's scoreboard test then starts at flip-flops, not at a tag
        # decode at the far side of the lanes or the reduction tree.
        flag_set_early = Signal(sb["total"], name="flag_set_early")
        early_terms = []

        def flag_bit(group: str, cond, idx):
            """The scoreboard bits with bit ``group + idx`` set when ``cond`` (else none)."""
            return Mux(cond, 1 << sb[group], 0) << idx

        def set_flag_early(group: str, cond, idx) -> None:
            early_terms.append(flag_bit(group, cond, idx))

        # the scalar unit (divider, square root, reciprocal and σ logic) holds σ
        m.submodules.scalar = sc = ScalarUnit(p, S0)
        m.d.comb += self.sigma.eq(sc.sigma)

        # ---------------------------------------------------------------- input side
        m.submodules.input = inbuf = InputBuffer(p, self.layouts["x"], self.layouts["d"])
        wiring.connect(m, wiring.flipped(self.x), inbuf.x)
        wiring.connect(m, wiring.flipped(self.d), inbuf.d)

        # ---------------------------------------------------------------- sequencer (stage 0)
        m.submodules.seq = seq = Sequencer(p, self.schedule, self.layouts["factor_req"])
        m.submodules.trace_out = tro = TraceOut(p, self.layouts["trace"])
        m.submodules.dump = dump = FactorDump(p, self.layouts["factors"])
        wiring.connect(m, inbuf.sub, seq.sub)
        wiring.connect(m, wiring.flipped(self.factor_req), seq.factor_req)
        wiring.connect(m, seq.desc, sc.sub)
        m.d.comb += [
            flag_set.eq(0),
            seq.set.eq(flag_set | flag_set_early),
            inbuf.release.eq(seq.release), inbuf.release_slot.eq(seq.release_slot),
            seq.in_mid.eq(inbuf.mid), seq.in_batches.eq(inbuf.batches), seq.in_batches_p1.eq(inbuf.batches_p1),
            seq.dumping.eq(dump.dumping), seq.trace_en.eq(self.trace_en),
            seq.room_x.eq(tro.room_x), seq.room_d.eq(tro.room_d), seq.credit_pending.eq(tro.pending),
            tro.reserve.eq(seq.reserve),
        ]
        # the issue stage (``ISSUE_STAGES``): the read addresses registered with the uop tag below;
        # the sample buffers take the sequencer's a cycle earlier and give their data two cycles
        # later (``InputBuffer``), from a register beside the block RAM, at cycle 1 as the others
        assert ISSUE_STAGES == 1, ISSUE_STAGES
        m.d.comb += [
            inbuf.x_addr.eq(seq.x_addr),
            inbuf.d_addr.eq(seq.d_addr),
            seq_pq_addr.eq(_reg(m, len(seq.pq_addr), seq.pq_addr, "iss_pq_addr")),
            seq_wm_addr.eq(_reg(m, len(seq.wm_addr), seq.wm_addr, "iss_wm_addr")),
        ]
        guard_inc = Signal()
        with m.If(seq.recip_check):
            raise_sat("recip", r_sat[seq.col])
            m.d.comb += guard_inc.eq(r_guard[seq.col])
        running, in_batch, req_pending, req_block = seq.running, seq.in_batch, seq.req_pending, seq.req_block
        dumping, dump_addr = dump.dumping, dump.addr
        take_pending = tro.pending
        uop = uop_layout(p)
        pipe = UopPipe(m, uop)
        stage, udelay = pipe.stage, pipe.delay
        u0 = stage(seq.uop, "u0")  # the issue stage: cycle 0 of everything below

        def reg(shape, value, name):
            return _reg(m, shape, value, name)

        # ---------------------------------------------------------------- lanes
        # Cycle numbers count from the issue stage (cycle 0); ``hdl.engine_lane`` has each lane's
        # pipeline.  The central uop tag runs beside the lanes for the control that is not per
        # lane (sticky flags, column-memory and trace writes, the reduction).
        L1, LR, L2 = p.mul_latencies
        u1r = stage(u0, "u1")
        # cycle 1: block-RAM read data are registered (a DP16KD's clock-to-out is ~5.6 ns on ECP5);
        # the sample words leave a register of the input buffer and are registered again here,
        # on their way to the lanes
        xb_d = reg(lane(signed(xw)), inbuf.x_data, "xb_d")
        db_d = reg(lane(signed(dw)), inbuf.d_data, "db_d")
        wm_d = reg(lane(signed(mw)), wm_rdata, "wm_d")
        # h and 1/‖v‖ of the uop's column are selected at cycle 0 (by the sequencer's
        # ``sel_idx``, registered in the issue stage) and registered centrally, r_c a cycle before its use likewise:
        # each lane's copy then loads from one central register, not from a 2k-way multiplexer
        # (64×64: H → the multiplexer → a lane across the device, 8.4 ns of routing).  The
        # scoreboard starts a job only after its h, 1/‖v‖ and r_c have landed, so the earlier
        # read sees the same values.
        idx0 = _reg(m, len(seq.sel_idx), seq.sel_idx, "iss_sel_idx")  # == u0.mat * k + u0.c
        h_c = reg(signed(mw), H[idx0], "h_c")
        inv_c = reg(signed(iw), INV[idx0], "inv_c")
        u1 = stage(u1r, "u2")
        uP1 = udelay(u1, L1, "u_m1")  # cycle P1 = 2 + L1
        uR1 = stage(uP1, "u_r1")  # P1 + 1
        rc_c = reg(signed(rw), RC[uP1.c], "rc_c")
        uR2 = stage(uR1, "u_r2")  # P1 + 2
        uW = stage(uR2, "u_w")  # P1 + 3: state write, D_r write, trace
        uPR = udelay(uW, LR - 1, "u_mr")  # PR = P1 + 2 + LR
        uU1 = stage(uPR, "u_u1")
        uU2 = stage(uU1, "u_u2")
        uU3 = stage(uU2, "u_u3")
        u8 = stage(uU3, "u_v")  # V = PR + 4
        u9 = udelay(u8, L2, "u_m2")  # the lanes' reduction terms
        assert ISSUE_STAGES + 2 + L1 + 3 == p.lat_state, (L1, p.lat_state)
        # a load beat is registered before it is written (the handshake logic stays off the
        # memories' wide write-data multiplexer); the write lands one cycle later, still idle.
        # The state rows' beat is registered in each lane (its own copy beside its memories);
        # ``load_r`` here feeds the scalar unit's σ load
        load_take = Signal()
        m.d.comb += load_take.eq(self.load.valid & self.load.ready)
        ld_v = Signal(name="load_v")
        ld_r = Signal(self.layouts["load"], name="load_r", reset_less=True)
        m.d.sync += [ld_v.eq(load_take), ld_r.eq(self.load.payload)]
        # a σ load invalidates its r_c until the scalar unit has recomputed it: the scoreboard
        # bit to clear is decoded before the register, so the sequencer's scoreboard test
        # reads flip-flops (decoded after it, the clear ran from ``load_v`` across the scalar
        # unit into that test: the 64×64 engine's critical path)
        unset_r = Signal(sb["total"], name="load_unset")
        ld_in = self.load.payload
        m.d.sync += unset_r.eq(flag_bit("r", load_take & (ld_in.kind == Kind.SIGMA), ld_in.col))
        lanes = []
        for l in range(P):
            m.submodules[f"lane{l}"] = ln = Lane(p, l, X0, D0)
            m.d.comb += [
                ln.uop.valid.eq(u1r.valid), ln.uop.payload.eq(u1r),
                ln.s_addr.eq(u0.i), ln.dumping.eq(dumping), ln.dump_addr.eq(dump_addr),
                ln.op0.op.eq(u0.op), ln.op0.mat.eq(u0.mat), ln.op0.c.eq(u0.c), ln.op0.step.eq(u0.step),
                # values every lane uses (the projection, h, 1/‖v‖, r_c) are read centrally
                # one cycle ahead and registered in each lane (h, 1/‖v‖, r_c from central
                # registers)
                ln.pq.eq(pq_rdata), ln.h.eq(h_c), ln.inv.eq(inv_c), ln.rc.eq(rc_c),
                ln.x.eq(xb_d[l]), ln.d.eq(db_d[l]), ln.wm.eq(wm_d[l]),
                # the load beat as the port takes it: each lane registers its own copy
                ln.load.en.eq(load_take), ln.load.kind.eq(ld_in.kind), ln.load.col.eq(ld_in.col),
                ln.load.chunk.eq(ld_in.chunk), ln.load.data.eq(ld_in.data[l]),
            ]
            lanes.append(ln)
        sxd = [ln.sx_row for ln in lanes]
        sdd = [ln.sd_row for ln in lanes]

        lanes_any_r: dict[str, Signal] = {}

        def raise_lane_sat(flag: str, cond, check: str):
            """Raise ``flag`` a cycle after ``cond`` held with lane check ``check`` (each lane's
            check a flip-flop of its own) set in any lane.  Why a cycle later: the lanes sit
            across the device, and their OR, with the tag's condition and the sticky flags
            behind it, made one path (64×64: a lane's ``vsat`` → the OR → ``sat_r``, 7.5–8.2 ns
            of routing).  The OR and the condition are registered apart; ``busy`` does not drop
            between: the tag stage's valid holds it (``Status`` registers ``active``) in the
            cycle the flag is registered, the status event register from the next."""
            if check not in lanes_any_r:
                lanes_any_r[check] = rreg(m, Cat(*[getattr(ln, check) for ln in lanes]).any(),
                                          f"lanes_{check}_r")
            cond_r = Signal(name=f"sat_{flag}_cond_r")  # reset, like the tag's valid it follows
            m.d.sync += cond_r.eq(cond)
            raise_sat(flag, cond_r & lanes_any_r[check])

        v_scale_r2 = uR2.valid & (uR2.op == OP_SCALE)
        raise_lane_sat("X_q", v_scale_r2 & (uR2.mat == MAT_X), "qsat")
        raise_lane_sat("Delta_q", v_scale_r2 & (uR2.mat == MAT_D), "qsat")
        acc_last_w = uW.valid & (uW.op == OP_ACC) & uW.lj
        gs_w = uW.valid & (uW.op == OP_GS)
        raise_lane_sat("A", acc_last_w & (uW.mat == MAT_X), "asat")
        raise_lane_sat("D", acc_last_w & (uW.mat == MAT_D), "asat")
        raise_lane_sat("X_gs_v", gs_w & (uW.mat == MAT_X), "vsat")
        raise_lane_sat("Delta_gs_v", gs_w & (uW.mat == MAT_D), "vsat")
        qrow = Cat(*[ln.q for ln in lanes])
        # uW's SCALE job ends: its column is ready (decoded from uR2, uW's stage before)
        set_flag_early("col", uR2.valid & (uR2.op == OP_SCALE) & uR2.jlast, uR2.mat * k + uR2.c)
        # uW's trace push (a SCALE uop's word), registered from uR2 (the stage before uW): the
        # scalar unit's trace room and the trace FIFO's credit read a flip-flop, not uW's tag
        pipe_push = Signal(name="pipe_push")
        m.d.sync += pipe_push.eq(uR2.valid & (uR2.op == OP_SCALE) & uR2.tr)
        raise_lane_sat("M_update", uU2.valid & (uU2.op == OP_ACC) & uU2.lj, "usat")
        raise_lane_sat("M", u8.valid & (u8.op == OP_ACC) & u8.lj, "msat")
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
        # The reducer's results are written at stage G (``ug``); their write enables, scoreboard
        # sets and the task FIFO's valid are decoded from ``tag_next`` (the stage before ug, one
        # unconditional register away) into flip-flops, so nothing decodes the tag between the
        # reducer and the memories, H registers and scoreboard spread across the device.
        un = red.tag_next
        fin_n = un.valid & un.red & un.rlast
        idx_n = un.mat * k + un.c
        proj_n = fin_n & (un.op == OP_PROJ)
        dot_n = fin_n & ((un.op == OP_ACC) | (un.op == OP_GS))
        scale_n = fin_n & (un.op == OP_SCALE)
        pq_we, task_we = Signal(name="pq_we"), Signal(name="task_we")
        h_we = Signal(2 * k, name="h_we")  # one-hot: the H register written
        m.d.sync += [pq_we.eq(proj_n), task_we.eq((dot_n & un.norm) | scale_n),
                     h_we.eq(Mux(dot_n & ~un.norm, 1, 0) << idx_n)]
        set_flag_early("proj", proj_n & un.jlast, idx_n)
        set_flag_early("h", dot_n & ~un.norm, idx_n)
        # PROJ -> projection memory
        fin_proj = fin & (ug.op == OP_PROJ)
        m.d.comb += [
            pq_w.addr.eq(_addr((ug.smp, s), (ug.c, k), (ug.mat, 2))),
            pq_w.data.eq(g_q),
            pq_w.en.eq(pq_we),
        ]
        raise_sat("q", fin_proj & (ug.mat == MAT_X) & g_qs)
        raise_sat("p", fin_proj & (ug.mat == MAT_D) & g_qs)
        # Gram–Schmidt dot -> h register
        fin_dot = fin & ((ug.op == OP_ACC) | (ug.op == OP_GS))
        for i in range(2 * k):
            with m.If(h_we[i]):
                m.d.sync += H[i].eq(g_h)
        raise_sat("X_gs_h", fin_dot & ~ug.norm & (ug.mat == MAT_X) & g_hs)
        raise_sat("Delta_gs_h", fin_dot & ~ug.norm & (ug.mat == MAT_D) & g_hs)
        # scalar tasks: NORM (N2) and SIGMA (S)
        fin_scale = fin & (ug.op == OP_SCALE)
        raise_sat("S", fin_scale & g_ss)
        # the task FIFO holds at most 2k norms and k σ tasks at once (the scoreboard lets no more
        # jobs finish before the scalar unit has taken them), so it is never written when full
        task = task_layout(p)
        m.submodules.task_fifo = task_fifo = fifo.SyncFIFOBuffered(width=task.size, depth=3 * k + 2)
        tw = data.View(task, task_fifo.w_stream.payload)
        m.d.comb += [
            tw.sigma.eq(fin_scale), tw.mat.eq(ug.mat), tw.c.eq(ug.c), tw.value.eq(g_val),
            task_fifo.w_stream.valid.eq(task_we),
        ]

        # ---------------------------------------------------------------- scalar unit
        wiring.connect(m, sc.task, task_fifo.r_stream)
        # its results land in the scoreboard here, after the sequencer's clears (a write wins)
        with m.If(sc.inv.en):
            m.d.sync += INV[sc.inv.idx].eq(sc.inv.data)
            set_flag("inv", sc.inv.idx)
        with m.If(sc.rc.en):
            m.d.sync += [RC[sc.rc.c].eq(sc.rc.data), r_sat[sc.rc.c].eq(sc.rc.sat), r_guard[sc.rc.c].eq(sc.rc.guard)]
            set_flag("r", sc.rc.c)
        m.d.sync += flag_set_early.eq(reduce(operator.or_, early_terms))
        # a reservation of the sequencer this cycle takes at most chunks_max credits, so
        # credit > chunks_max (``room_sigma``) leaves room for a σ word whatever the sequencer does
        m.d.comb += [sc.trace_en.eq(self.trace_en),
                     sc.trace_room.eq(~self.trace_en | (tro.room_sigma & ~pipe_push & ~take_pending))]
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
        # Loads and the dump start from ``quiet`` of the cycle before (registered: the scalar
        # unit's state and the pipeline's valid bits stay off the load handshake, the dump's
        # registers and the request's clear).  Once quiet, the engine stays quiet unless a
        # sub-batch begins, so a begin clears it; a σ load's reciprocal (the scalar unit leaves
        # IDLE) reads neither the state rows the dump reads nor what a load writes.
        quiet_r = Signal(name="quiet_r")
        m.d.sync += quiet_r.eq(quiet & ~seq.sub.ready)
        # ``load.ready`` is a flip-flop: the load condition of the next cycle (quiet_r, not in a
        # batch, no beat in, no slot full, no dump, no request pending), formed from this
        # cycle's state with each event that could break it vetoed: a begin, a beat at a port,
        # a factor request latched.  (A dump starts only with a request pending; a slot fills
        # only after a beat.)  It may rise a cycle later than the condition, never earlier.
        load_ok = Signal(name="load_ok")
        m.d.sync += load_ok.eq(quiet & ~seq.sub.ready & ~in_batch & ~inbuf.mid & ~inbuf.any_full & ~dumping
                               & ~req_pending & ~inbuf.beat & ~seq.req_latch)
        m.d.comb += self.load.ready.eq(load_ok)
        load_sigma = ld_v & (ld_r.kind == Kind.SIGMA)
        m.d.comb += [sc.load.en.eq(load_sigma), sc.load.c.eq(ld_r.col), sc.load.sigma.eq(ld_r.sigma)]
        m.d.comb += seq.unset.eq(unset_r)
        wiring.connect(m, wiring.flipped(self.factors), dump.factors)
        m.d.comb += [
            dump.start.eq(req_block & quiet_r), dump.col.eq(seq.req_col), dump.all.eq(seq.req_all),
            dump.sigma.eq(sc.sigma), dump.sx_rows.eq(Cat(*sxd)), dump.sd_rows.eq(Cat(*sdd)),
        ]
        m.d.comb += seq.dump_start.eq(~dumping & req_block & quiet_r)

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
        "schedule": [f"{j}{'@prev' if gen else ''}" for j, gen in eng.schedule.entries],
        "chunks": {"x": params.chunks_b, "d": params.chunks_a},
        "bound_cycles_per_sample": params.bound_cycles_per_sample,
        "scalar_unit": {"sqrt_cycles": params.sqrt_cycles, "div_cycles": params.div_cycles},
    }
