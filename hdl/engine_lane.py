"""One multiply/accumulate lane of the engine, fed by the uop stream of the issue stage.

Lane ``l`` owns element rows ``i·P + l`` of the state matrices (X, Δ and D_r memories),
and for every uop it computes, in a fixed pipeline (cycles from the issue, cycle 0):

* cycle 2: the operands of the first multiplier m1 by op: PROJ x·X' / δ·Δ (the other
  matrix's column), ACC x·q / δ·p, GS h·q_j, SCALE v·(1/‖v‖);
* P1 = 2 + L1: the ACC accumulator (exact), t = h·q_j and q = v·inv rounded, then range
  checked; R_acc(A) and the second multiplier m_r's operands (power step A·r_c, or the
  σ dot D_r·Δ');
* W = P1 + 3: the state write of a SCALE (q), the D_r write of a D-pass ACC;
* V = PR + 4: the new column value M = X + R(A·r) (ACC) or v − h·q_j (GS) for the
  column memory, and the third multiplier m2 (the next Gram–Schmidt dot or the norm);
* the lane's term of the cross-lane reduction: the projection product (PROJ), the σ dot
  (SCALE) or m2's product.

The lane carries its own copy of the uop tag down this pipeline (registered from the issue
stage's tag at cycle 2) and its own copies of the values every lane reads (projection, h,
1/‖v‖, r_c): its multiplexers are driven from registers beside it, and with several lanes
the copies are kept apart in synthesis (``hdl.synth.DUP_ATTR``).  Each saturation check
is registered in the lane (``*sat`` outputs) before the engine ORs the lanes.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import fit, round_shift
from .dsp import tiled_mul
from .engine_params import ISSUE_STAGES, EngineParams, Kind, Mat, Op
from .engine_pipeline import LUTRAM_DEPTH, distributed, dup_reg, index_bits, mem_addr, mem_depth, ram_attrs, reg, rreg, tag_stage

__all__ = ["Lane", "uop_layout", "state_rows"]


def uop_layout(params: EngineParams) -> data.StructLayout:
    """The tag of one issued uop (``valid`` first): op, matrix, column, GS step, chunk i, sample,
    reduction first/last, reduce, first/last of an ACC job, norm, job last, traced."""
    colw, chw, smpw = index_bits(params.k), index_bits(params.chunks_max), index_bits(params.s)
    return data.StructLayout({
        "valid": 1, "op": 2, "mat": 1, "c": colw, "step": colw, "i": chw, "smp": smpw,
        "rfirst": 1, "rlast": 1, "red": 1, "fj": 1, "lj": 1, "norm": 1, "jlast": 1, "tr": 1,
    })


def state_rows(M: np.ndarray, lanes: int, chunks: int, lane: int) -> list[list[int]]:
    """Lane ``lane``'s rows of a state matrix: row i holds element i·P + lane of every column."""
    k = M.shape[1]
    return [[int(M[i * lanes + lane, c]) if i * lanes + lane < M.shape[0] else 0 for c in range(k)]
            for i in range(chunks)]


class Lane(wiring.Component):
    """Lane ``lane`` of ``params.lanes`` (module docstring); ``X0``/``D0`` the initial state."""

    def __init__(self, params: EngineParams, lane: int, X0: np.ndarray, D0: np.ndarray) -> None:
        p, f = params, params.fmts
        if not 0 <= lane < p.P:
            raise ValueError(f"lane must be in 0..{p.P - 1}, not {lane}")
        self.params, self.lane = params, lane
        self.X0, self.D0 = X0, D0
        #: m1's state column picked a cycle ahead (rows one LUT RAM deep; see ``elaborate``)
        self.early_pick = all(distributed(R, p.k * f.state.bits) and R <= LUTRAM_DEPTH
                              for R in (p.chunks_b, p.chunks_a))
        colw, chw = index_bits(p.k), index_bits(p.chunks_max)
        row = data.ArrayLayout(signed(f.state.bits), p.k)
        super().__init__({
            "uop": In(stream.Signature(uop_layout(p), always_ready=True)),  # cycle 1
            "s_addr": In(unsigned(chw)),  # cycle 0: the uop's chunk, the state rows' read address
            # cycle 0: the uop's op, matrix, column and GS step (m1's state column is picked a
            # cycle ahead, from these)
            "op0": In(data.StructLayout({"op": 2, "mat": 1, "c": colw, "step": colw})),
            "dumping": In(1),  # factor dump: the state rows are read at dump_addr instead
            "dump_addr": In(unsigned(chw)),
            "pq": In(signed(f.proj.bits)),  # cycle 1: values every lane uses, registered here
            "h": In(signed(f.mat.bits)),
            "inv": In(signed(f.inv.bits)),
            "x": In(signed(f.x.bits)),  # cycle 2: this lane's element of the sample chunks
            "d": In(signed(f.delta.bits)),
            "wm": In(signed(f.mat.bits)),  # cycle 2: this lane's element of the column memory word
            "rc": In(signed(f.recip.bits)),  # cycle P1 + 1: r_c of the uop's column
            # a state load beat as the engine's port takes it (registered here, written a cycle later)
            "load": In(wiring.Signature({"en": Out(1), "kind": Out(2), "col": Out(unsigned(colw)),
                                         "chunk": Out(unsigned(chw)), "data": Out(signed(f.state.bits))})),
            "sx_row": Out(row),  # the state rows read (one cycle after their address)
            "sd_row": Out(row),
            "q": Out(signed(f.state.bits)),  # cycle W: q of a SCALE (the state word written)
            "v": Out(signed(f.mat.bits)),  # cycle V: the new column value
            "red": Out(signed(p.red_bits)),  # cycle P2: this lane's reduction term
            "qsat": Out(1), "asat": Out(1), "vsat": Out(1), "usat": Out(1), "msat": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p, f, l = self.params, self.params.fmts, self.lane
        P, k = p.P, p.k
        Ra, Rb = p.chunks_a, p.chunks_b
        xw, dw, sw, pw, aw, mw = f.x.bits, f.delta.bits, f.state.bits, f.proj.bits, f.acc.bits, f.mat.bits
        iw, rw = f.inv.bits, f.recip.bits
        LW = p.acc_exact_bits
        lay = uop_layout(p)
        dup = P > 1  # several lanes: keep this lane's copies apart from the others'
        prim = p.dsp

        def stage(prev, name):
            return tag_stage(m, lay, prev, name, dup=dup)

        def udelay(u, n, name):
            for t in range(n):
                u = stage(u, f"{name}_{t}")
            return u

        def copy(shape, value, name):
            """A value every lane uses, registered in this lane (kept apart from the others')."""
            return dup_reg(m, shape, value, name, dup=dup)

        def delay(v, n, shape, name):
            for t in range(n):
                v = reg(m, shape, v, f"{name}_d{t}")
            return v

        # ------------------------------------------------------------ state memories (this lane's rows)
        m.submodules.sx = sx = memory.Memory(shape=data.ArrayLayout(signed(sw), k), depth=Rb,
                                             init=state_rows(self.X0, P, Rb, l), attrs=ram_attrs(Rb, k * sw))
        m.submodules.sd = sd = memory.Memory(shape=data.ArrayLayout(signed(sw), k), depth=Ra,
                                             init=state_rows(self.D0, P, Ra, l), attrs=ram_attrs(Ra, k * sw))
        # D_r = R_acc(D) per column, read and written from the lane's own uop copy (the power
        # step needs it only at cycle R2, so it is read late)
        m.submodules.drm = drm = memory.Memory(shape=signed(aw), depth=mem_depth(Ra, k), init=[],
                                               attrs=ram_attrs(mem_depth(Ra, k), aw))
        sx_r, sx_w = sx.read_port(), sx.write_port(granularity=1)
        sd_r, sd_w = sd.read_port(), sd.write_port(granularity=1)
        dr_r, dr_w = drm.read_port(), drm.write_port()

        # ------------------------------------------------------------ cycle 1 -> 2: operands
        # the state rows (distributed RAM, registered read) are read from the uop's own chunk
        # index one cycle after the issue, so every operand is a register at cycle 2
        s_addr = copy(unsigned(index_bits(p.chunks_max)), self.s_addr, "s_addr")
        for rp in (sx_r, sd_r):
            m.d.comb += rp.addr.eq(Mux(self.dumping, self.dump_addr, s_addr))
        sxd, sdd = sx_r.data, sd_r.data
        m.d.comb += [self.sx_row.eq(sxd), self.sd_row.eq(sdd)]
        u1r = data.View(lay, Cat(self.uop.valid, self.uop.payload.as_value()[1:]))
        h_sel = copy(signed(mw), self.h, "h_sel")
        u1 = stage(u1r, "u2")

        # The operands at cycle 2 are one-hot picks: which source each one takes is decoded
        # from the tag at cycle 1 (``u1r``) into this lane's own select flip-flops, so the
        # pick is an AND-OR of registers, three LUT levels, with no decode of the tag's op,
        # matrix and column behind it (64×64 seed 2 of ``f6ac943``: lane 6's op bit → the
        # 4-way op switch over the 8-way column selects → ``m1_fb``, 5 levels, 8.6 ns of routing)
        op1, mat1, c1, step1 = u1r.op, u1r.mat, u1r.c, u1r.step
        is_proj, is_acc, is_gs, is_scale = (op1 == Op.PROJ), (op1 == Op.ACC), (op1 == Op.GS), (op1 == Op.SCALE)

        def col_sel(name: str, cond_x, cond_d):
            """Select flip-flops for the state rows' columns: ``cond_x(j)`` picks X's column j,
            ``cond_d(j)`` Δ's."""
            return (copy(k, Cat(*[cond_x(j) for j in range(k)]), f"{name}_selx"),
                    copy(k, Cat(*[cond_d(j) for j in range(k)]), f"{name}_seld"))

        def pick(shape, name: str, terms) -> Signal:
            """The one source of ``terms`` (select, value) whose select is set (0 if none)."""
            out = Signal(shape, name=name)
            acc = None
            for sel, value in terms:
                t = Mux(sel, value, 0)
                acc = t if acc is None else acc | t
            m.d.comb += out.eq(acc)
            return out

        def row_terms(sels):
            selx, seld = sels
            return [(selx[j], sxd[j]) for j in range(k)] + [(seld[j], sdd[j]) for j in range(k)]

        # m1's state operand.  PROJ: the other matrix's column c; GS: the own matrix's column
        # step (X: mat 0).  With the state rows in LUT RAM, that column is picked a cycle
        # ahead, in cycle 1, from an asynchronous read of the rows at ``s_addr`` (a second read
        # port: one more LUT-RAM copy) by select flip-flops decoded from the cycle-0 tag, and
        # registered beside the rows: at cycle 2 the operand is one LUT (that register, or the
        # projection / 1/‖v‖ copy) before m1's fabric register (64×64 seed 1 of ``d3d4f9d``:
        # lane 6's select flip-flop → the 10-way pick → 4.11 ns across the device → the pick's
        # last LUTs → ``m1_fb``, 108.1 MHz).  Only where the rows are one LUT RAM deep (at most
        # 16 words, one ``TRELLIS_DPR16X4`` level, no read multiplexer): deeper, the read and its
        # multiplexer before the pick outweigh it (the 10×65 engine's 65 rows: ``s_addr`` → the
        # rows' read → their register was its seed-1 path at ``d3d4f9d``, 8.27 ns), and rows in
        # block RAM have no asynchronous read.  Then the column is picked at cycle 2 from the
        # registered rows.
        def b1_conds(op, mat, c, step):
            proj, gs = op == Op.PROJ, op == Op.GS
            return (lambda j: (proj & mat & (c == j)) | (gs & ~mat & (step == j)),
                    lambda j: (proj & ~mat & (c == j)) | (gs & mat & (step == j)))

        early = self.early_pick
        if early:
            o0 = self.op0
            sel0x, sel0d = b1_conds(o0.op, o0.mat, o0.c, o0.step)
            b1_sels = (copy(k, Cat(*[sel0x(j) for j in range(k)]), "b1_selx"),
                       copy(k, Cat(*[sel0d(j) for j in range(k)]), "b1_seld"))
            ax_r, ad_r = sx.read_port(domain="comb"), sd.read_port(domain="comb")
            m.d.comb += [ax_r.addr.eq(s_addr), ad_r.addr.eq(s_addr)]
            selx, seld = b1_sels
            early_terms = [(selx[j], ax_r.data[j]) for j in range(k)] + [(seld[j], ad_r.data[j]) for j in range(k)]
            b1_col = reg(m, signed(sw), pick(signed(sw), "b1_col_pick", early_terms), "b1_col")
        else:
            b1_col = pick(signed(sw), "b1_col", row_terms(col_sel("b1", *b1_conds(op1, mat1, c1, step1))))
        # the projection (ACC) or 1/‖v‖ (SCALE), picked before this lane's copy
        pi_w = max(pw, iw)
        b1_pi = copy(signed(pi_w), Mux(is_scale, self.inv, self.pq), "b1_pi")
        b1_selpi = copy(1, is_acc | is_scale, "b1_selpi")
        a1_x = copy(1, (is_proj & mat1) | (is_acc & ~mat1), "a1_selx")
        a1_d = copy(1, (is_proj & ~mat1) | (is_acc & mat1), "a1_seld")
        a1_h, a1_wm = copy(1, is_gs, "a1_selh"), copy(1, is_scale, "a1_selwm")
        # the next q of a GS step (the own column step + 1), else the own column 0; the own column c
        cb_rows = col_sel("cb", lambda j: ~mat1 & Mux(is_gs, step1 + 1 == j, j == 0),
                          lambda j: mat1 & Mux(is_gs, step1 + 1 == j, j == 0))
        cx_rows = col_sel("cx", lambda j: ~mat1 & (c1 == j), lambda j: mat1 & (c1 == j))
        A1W = max(xw, dw, mw)
        B1W = max(sw, pw, iw)
        MRB = max(rw, sw)
        a1 = pick(signed(A1W), "a1", [(a1_x, self.x), (a1_d, self.d), (a1_h, h_sel), (a1_wm, self.wm)])
        b1 = pick(signed(B1W), "b1", [(1, b1_col), (b1_selpi, b1_pi)])
        cv = reg(m, signed(mw), self.wm, "s2_v")
        cb = reg(m, signed(sw), pick(signed(sw), "s2_qn_pick", row_terms(cb_rows)), "s2_qn")
        cx = reg(m, signed(sw), pick(signed(sw), "s2_x_pick", row_terms(cx_rows)), "s2_x")

        # ------------------------------------------------------------ m1 (cycles 2 .. P1)
        p1, L1 = tiled_mul(m, a1, b1, name="m1", primitive=prim, fabric_reg=True)
        uP1 = udelay(u1, L1, "u_m1")  # cycle P1 = 2 + L1: p1 valid
        cv = delay(cv, L1 - 1, signed(mw), "m1_v")
        cb = delay(cb, L1 - 1, signed(sw), "m1_qn")
        cx = delay(cx, L1 - 1, signed(sw), "m1_x")

        # ------------------------------------------------------------ P1: accumulate, round
        lacc = Signal(signed(LW), name="lacc", reset_less=True)
        with m.If(uP1.valid & (uP1.op == Op.ACC)):
            m.d.sync += lacc.eq(Mux(uP1.fj, p1, lacc + p1))
        sh_t = f.state.frac + f.mat.frac  # product frac of t = h·q_j and of the SCALE product v·inv
        t_r = rreg(m, round_shift(p1, sh_t - f.mat.frac, f.mat.rounding), "rt")
        q_r = rreg(m, round_shift(p1, f.mat.frac + f.inv.frac - f.state.frac, f.state.rounding), "rq")
        pr_p = reg(m, signed(A1W + B1W), p1, "pp")
        uR1 = stage(uP1, "u_r1")  # P1 + 1
        cv, cb, cx = delay(cv, 1, signed(mw), "r1_v"), delay(cb, 1, signed(sw), "r1_qn"), \
            delay(cx, 1, signed(sw), "r1_x")
        # D_r read at R1, data at R2
        m.d.comb += dr_r.addr.eq(mem_addr((uR1.i, Ra), (uR1.c, k)))
        cdr = dr_r.data

        # ------------------------------------------------------------ P1+1: fit t, q; round lacc
        tv, _ = fit(t_r, f.mat)  # silent (golden passes no flags)
        qv, qs_ = fit(q_r, f.state)
        t_f = reg(m, signed(mw), tv, "ft")
        q_f = reg(m, signed(sw), qv, "fq")
        m.d.comb += self.qsat.eq(reg(m, 1, qs_, "qsat"))  # seen at R2
        la_x = rreg(m, round_shift(lacc, f.x.frac + f.proj.frac - f.acc.frac, f.acc.rounding), "rax")
        la_d = rreg(m, round_shift(lacc, f.delta.frac + f.proj.frac - f.acc.frac, f.acc.rounding), "rad")
        r_sel = copy(signed(rw), self.rc, "r_sel")  # r_c for the power step
        uR2 = stage(uR1, "u_r2")  # P1 + 2
        cv, cb, cx = delay(cv, 1, signed(mw), "r2_v"), delay(cb, 1, signed(sw), "r2_qn"), \
            delay(cx, 1, signed(sw), "r2_x")
        pr_p = delay(pr_p, 1, signed(A1W + B1W), "pp_r2")

        # ------------------------------------------------------------ P1+2: v, m_r operands
        fx, sx_ = fit(la_x, f.acc)
        fd, sd_ = fit(la_d, f.acc)
        m.d.comb += self.asat.eq(reg(m, 1, Mux(uR2.mat, sd_, sx_), "asat"))  # seen at W
        # m_r operands: ACC: R_acc(A) × r_c (power step); SCALE: D_r × Δ' (σ's S dot)
        mra = Signal(signed(aw), name="mra")
        mrb = Signal(signed(MRB), name="mrb")
        acc_l = uR2.op == Op.ACC
        m.d.comb += [mra.eq(Mux(acc_l, Mux(uR2.mat, fd, fx), cdr)), mrb.eq(Mux(acc_l, r_sel, q_f))]
        mra_w = reg(m, signed(aw), mra, "w_dr")
        vv, vs_ = fit(cv - t_f, f.mat)
        m.d.comb += self.vsat.eq(reg(m, 1, vs_, "vsat"))
        v_w = reg(m, signed(mw), vv, "w_v")
        q_w = reg(m, signed(sw), q_f, "w_q")
        m.d.comb += self.q.eq(q_w)
        uW = stage(uR2, "u_w")  # P1 + 3: state write, D_r write
        cb, cx = delay(cb, 1, signed(sw), "w_qn"), delay(cx, 1, signed(sw), "w_x")
        # state writes from the lane's own uop copy, or a load beat (only while the engine is
        # idle at a batch boundary, so never together with a SCALE).  The beat comes from the
        # engine's load port and is registered here, in this lane's own copy: the write
        # enables' decode then starts at flip-flops beside the lane's memories (64×64 seed 3
        # of ``6a5858b``: one central load register → lane 0's write-enable LUTs, 4.72 ns
        # across the device, 102.5 MHz); the write lands one cycle after the beat, as before.
        # The per-column write enables are decoded before their registers, so each is one
        # OR of two flip-flops: a SCALE's (decoded from the tag at P1 + 2, registered with the
        # tag's W stage) and a load beat's (decoded from the port's beat, registered here)
        # (10×65 seeds 1, 2 of ``6a5858b``: the W tag's valid → the op, matrix and column
        # decode → the state rows' LUT RAM ``WRE``, 5 levels, 111.5 MHz).
        li = self.load
        ld_en = dup_reg(m, 1, li.en, "ld_en", dup=dup, reset=True)
        ld_chunk = copy(li.chunk.shape(), li.chunk, "ld_chunk")
        ld_data = copy(li.data.shape(), li.data, "ld_data")
        wrow = Mux(ld_en, ld_data, q_w)
        for wp, kind, mat in ((sx_w, Kind.X, Mat.X), (sd_w, Kind.D, Mat.D)):
            we = []
            for c in range(k):
                ld_we = dup_reg(m, 1, li.en & (li.kind == kind) & (li.col == c),
                                f"ld_we_{mat.name.lower()}{c}", dup=dup, reset=True)
                sc_we = Signal(name=f"sc_we_{mat.name.lower()}{c}")
                m.d.sync += sc_we.eq(uR2.valid & (uR2.op == Op.SCALE) & (uR2.mat == mat) & (uR2.c == c))
                we.append(ld_we | sc_we)
            m.d.comb += [
                wp.addr.eq(Mux(ld_en, ld_chunk, uW.i)),
                wp.data.eq(Cat(*[wrow] * k)),
                wp.en.eq(Cat(*we)),
            ]
        m.d.comb += [dr_w.addr.eq(mem_addr((uW.i, Ra), (uW.c, k))), dr_w.data.eq(mra_w),
                     dr_w.en.eq(uW.valid & (uW.op == Op.ACC) & uW.lj & (uW.mat == Mat.D))]
        assert ISSUE_STAGES + 2 + L1 + 3 == p.lat_state, (L1, p.lat_state)

        # ------------------------------------------------------------ m_r (P1+2 .. PR)
        prr, LR = tiled_mul(m, mra, mrb, name="mr", primitive=prim, fabric_reg=True)
        uPR = udelay(uW, LR - 1, "u_mr")  # PR = P1 + 2 + LR
        v_w = delay(v_w, LR - 1, signed(mw), "mr_v")
        cb = delay(cb, LR - 1, signed(sw), "mr_qn")
        cx = delay(cx, LR - 1, signed(sw), "mr_x")
        pr_p = delay(pr_p, LR, signed(A1W + B1W), "pp_mr")
        # PR: round the power-step update
        upd_r = rreg(m, round_shift(prr, f.acc.frac + f.recip.frac - f.mat.frac, f.mat.rounding), "rupd")
        prs = reg(m, signed(aw + MRB), prr, "prs")
        uU1 = stage(uPR, "u_u1")
        v_w, cb, cx = delay(v_w, 1, signed(mw), "u1_v"), delay(cb, 1, signed(sw), "u1_qn"), \
            delay(cx, 1, signed(sw), "u1_x")
        pr_p = delay(pr_p, 1, signed(A1W + B1W), "pp_u1")
        # PR+1: fit it
        uv, us_ = fit(upd_r, f.mat)
        m.d.comb += self.usat.eq(reg(m, 1, us_, "usat"))
        upd = reg(m, signed(mw), uv, "fupd")
        uU2 = stage(uU1, "u_u2")
        v_w, cb, cx = delay(v_w, 1, signed(mw), "u2_v"), delay(cb, 1, signed(sw), "u2_qn"), \
            delay(cx, 1, signed(sw), "u2_x")
        pr_p = delay(pr_p, 1, signed(A1W + B1W), "pp_u2")
        prs = delay(prs, 1, signed(aw + MRB), "prs_u2")
        # PR+2: M = X + update (exact sum, registered before its range check)
        msum = rreg(m, (cx << (f.mat.frac - f.state.frac)) + upd, "msum")
        uU3 = stage(uU2, "u_u3")
        v_w, cb = delay(v_w, 1, signed(mw), "u3_v"), delay(cb, 1, signed(sw), "u3_qn")
        pr_p = delay(pr_p, 1, signed(A1W + B1W), "pp_u3")
        prs = delay(prs, 1, signed(aw + MRB), "prs_u3")
        # PR+3: the new column value and the m2 operand
        mv, ms_ = fit(msum, f.mat)
        m.d.comb += self.msat.eq(reg(m, 1, ms_, "msat"))
        vnew = Mux(uU3.op == Op.ACC, mv, v_w)
        v8 = reg(m, signed(mw), vnew, "s8_v")
        # m2 operand: the norm v·v, or the dot with q_0 (ACC) / q_{j+1} (GS)
        b2_8 = reg(m, signed(mw), Mux(uU3.norm, vnew, cb), "s8_b2")
        m.d.comb += self.v.eq(v8)
        u8 = stage(uU3, "u_v")  # V = PR + 4
        pr_p = delay(pr_p, 1, signed(A1W + B1W), "pp_v")
        prs = delay(prs, 1, signed(aw + MRB), "prs_v")

        # ------------------------------------------------------------ m2 (V .. P2): the lane's term
        p2, L2 = tiled_mul(m, v8, b2_8, name="m2", primitive=prim)
        assert (L1, LR, L2) == p.mul_latencies, ((L1, LR, L2), p.mul_latencies)
        # the term is m2's product, the projection product (PROJ, carried from P1) or the σ
        # dot (SCALE).  The two carried values are picked at V, before their delay, and the
        # pick of m2's product is a flip-flop delayed beside them: the term is one LUT (a
        # 2-way pick) after registers, then the net to the reduction tree (64×64 seed 1 of
        # ``6a5858b``: m2's product → the 3-way op decode of the tag → across the device to the
        # tree's first adder, 107.7 MHz, 7.2 ns of routing).
        sw_ = max(A1W + B1W, aw + MRB)
        side = delay(Mux(u8.op == Op.PROJ, pr_p, prs), L2, signed(sw_), "side_m2")
        use_m2 = delay((u8.op != Op.PROJ) & (u8.op != Op.SCALE), L2, 1, "use_m2")
        m.d.comb += self.red.eq(Mux(use_m2, p2, side))
        return m
