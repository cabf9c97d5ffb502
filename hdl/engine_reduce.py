"""The engine's cross-lane reducer: the lanes' terms summed exactly and requantised once.

Per uop: the P terms (``hdl.engine_lane``) go through a balanced adder tree
(``hdl.arith.tree_sum``, registered every ``tree_levels_per_stage`` levels); a job's chunks
are accumulated exactly (``rfirst`` starts a sum).  The exact sum is then requantised
every way a consumer needs it, as the golden model does each once (round, registered; range
check, registered):

* ``q`` — a projection (q_j in proj format from Δᵀδ_j, or p_j from X'ᵀx_j), with its flag;
* ``h`` — a Gram–Schmidt coefficient R_mat(v·q_j), with its flag;
* ``value`` — a SCALE's σ dot S_c in σ's format (flag ``s_sat``), or the exact norm N2 of
  an ACC/GS job (for the scalar unit).

``out`` carries them with the uop tag at stage G (``lat_final − 1`` cycles after the issue).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .arith import fit, round_shift, tree_sum
from .engine_lane import uop_layout
from .engine_params import EngineParams, Op
from .engine_pipeline import reg, rreg, tag_stage
from .engine_scalar import task_value_bits

__all__ = ["Reducer"]


class Reducer(wiring.Component):
    """Cross-lane sum, chunk accumulation and requantisation (module docstring).

    ``terms``/``uop``: the lanes' terms and their uop tag (stage P2); ``tag`` and the results
    are registered at stage G; ``busy`` while any of its stages holds a valid uop.
    """

    def __init__(self, params: EngineParams) -> None:
        p, f = params, params.fmts
        self.params = params
        self.stages = p.tree_latency + 3  # tree, accumulator, round, range check
        super().__init__({
            "terms": In(data.ArrayLayout(signed(p.red_bits), p.P)),
            "uop": In(uop_layout(p)),
            "tag": Out(uop_layout(p)),
            "tag_next": Out(uop_layout(p)),  # the tag one (unconditional) register stage before ``tag``
            "q": Out(signed(f.proj.bits)), "q_sat": Out(1),
            "h": Out(signed(f.mat.bits)), "h_sat": Out(1),
            "value": Out(signed(task_value_bits(p))), "s_sat": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p, f = self.params, self.params.fmts
        RW = p.red_bits
        lay = uop_layout(p)
        valids = []

        def stage(prev, name):
            u = tag_stage(m, lay, prev, name, dup=False)
            valids.append(u.valid)
            return u

        tsum, tlat = tree_sum(m, list(self.terms), RW, p.tree_levels_per_stage, name="red")
        assert tlat == p.tree_latency, (tlat, p.tree_latency)
        ut = self.uop
        for t in range(tlat):
            ut = stage(ut, f"ut_{t}")
        racc = Signal(signed(RW), reset_less=True)
        with m.If(ut.valid & ut.red):
            m.d.sync += racc.eq(Mux(ut.rfirst, tsum, racc + tsum))
        uf = stage(ut, "uf")
        # every requantisation of the exact sum — round, then range check, each registered
        rq_x = rreg(m, round_shift(racc, f.delta.frac + f.state.frac - f.proj.frac, f.proj.rounding), "rf_qx")
        rq_d = rreg(m, round_shift(racc, f.x.frac + f.state.frac - f.proj.frac, f.proj.rounding), "rf_qd")
        rh = rreg(m, round_shift(racc, f.mat.frac + f.state.frac - f.mat.frac, f.mat.rounding), "rf_h")
        rs = rreg(m, round_shift(racc, f.state.frac + f.acc.frac - f.sigma.frac, f.sigma.rounding), "rf_s")
        rval = reg(m, signed(RW), racc, "rf_val")
        uf2 = stage(uf, "uf2")
        qx, qxs = fit(rq_x, f.proj)
        qd, qds = fit(rq_d, f.proj)
        hv, hs = fit(rh, f.mat)
        sv, ss = fit(rs, f.sigma)
        ug = stage(uf2, "ug")
        m.d.comb += [
            self.tag.eq(ug), self.tag_next.eq(uf2),
            self.q.eq(reg(m, signed(f.proj.bits), Mux(uf2.mat, qd, qx), "g_q")),
            self.q_sat.eq(reg(m, 1, Mux(uf2.mat, qds, qxs), "g_qs")),
            self.h.eq(reg(m, signed(f.mat.bits), hv, "g_h")),
            self.h_sat.eq(reg(m, 1, hs, "g_hs")),
            self.s_sat.eq(reg(m, 1, ss, "g_ss")),
            self.value.eq(reg(m, signed(task_value_bits(p)), Mux(uf2.op == Op.SCALE, sv, rval), "g_val")),
            self.busy.eq(Cat(*valids).any()),
        ]
        assert len(valids) == self.stages
        return m
