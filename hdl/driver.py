"""Crossbar row/column pulse driver: factor vectors + scale configuration -> per-slot pulse words.

Bit-exact twin of :class:`pymodel.crossbar.pulses.DriverModel` (``docs/DRIVERS.md``).
Every width comes from :class:`pymodel.crossbar.params.DriverParams` (and through it
from the engine's ``state`` format in :mod:`pymodel.formats`).

Ports (all streams are Amaranth ``lib.stream``: payload/valid/ready):

* ``i``   -- in, ``signed(state.bits)``: one rank-1 update is ``rows`` elements of the
  row vector u followed by ``cols`` elements of the column vector v;
* ``cfg`` -- in, ``cfg_layout``: ``row_scale``, ``col_scale``, ``bl``, ``negate``; one
  word per update, accepted only after the update's vectors are loaded (so firmware
  may read ``u_absmax``/``v_absmax`` before choosing the scales);
* ``o``   -- out, ``word_layout``: one word per time slot (``row_fire``, ``row_neg``,
  ``col_fire``, ``col_neg``, [``row_level``], ``slot``, ``last``);
* ``u_absmax``, ``v_absmax`` -- max |u|, max |v| of the loaded vectors (valid while
  ``loaded`` is high and until the next load starts);
* ``loaded`` -- vectors loaded, waiting for ``cfg``; ``busy`` -- not accepting vectors.

Timing per update: ``rows + cols`` load cycles (one per accepted element), one cycle
to accept ``cfg``, ``rows + cols + 3`` cycles computing thresholds through one
4-stage multiply/round pipeline, then ``BL`` slot words (one per accepted ``o``
transfer): ``2 (rows + cols) + 4 + BL`` cycles without stalls.
Ready/valid outputs depend only on the state register, never combinationally on
the partner's valid/ready.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from pymodel.crossbar.params import DriverParams

from .lfsr import LfsrBank

MAX_WORD_BITS = 1 << 16
MUL_SLICE = 17  # scale bits per partial product: an unsigned 17-bit operand fits an 18x18 DSP


def cfg_layout(params: DriverParams) -> data.StructLayout:
    """Layout of the per-update configuration word (``DriverParams.cfg_fields`` order)."""
    return data.StructLayout({name: unsigned(width) for name, width in params.cfg_fields()})


def word_layout(params: DriverParams) -> data.StructLayout:
    """Layout of one time-slot output word (``DriverParams.word_fields`` order)."""
    return data.StructLayout({name: unsigned(width) for name, width in params.word_fields()})


class CrossbarDriver(wiring.Component):
    """Row/column pulse driver for one ``params.rows`` x ``params.cols`` array (see module doc)."""

    def __init__(self, params: DriverParams) -> None:
        if not isinstance(params, DriverParams):
            raise TypeError(f"params must be a DriverParams, not {type(params).__name__}")
        width = sum(w for _, w in params.word_fields())
        if width > MAX_WORD_BITS:
            raise ValueError(
                f"a {params.rows}x{params.cols} {params.scheme} driver needs a {width}-bit slot word, "
                f"more than the {MAX_WORD_BITS} bits this generator supports"
            )
        if params.mag_bits + params.scale_bits > 72:
            raise ValueError(
                f"threshold product of {params.mag_bits}x{params.scale_bits} bits exceeds 72 bits"
            )
        self._p = params
        super().__init__({
            "i": In(stream.Signature(signed(params.state.bits))),
            "cfg": In(stream.Signature(cfg_layout(params))),
            "o": Out(stream.Signature(word_layout(params))),
            "u_absmax": Out(params.mag_bits),
            "v_absmax": Out(params.mag_bits),
            "loaded": Out(1),
            "busy": Out(1),
        })

    @property
    def params(self) -> DriverParams:
        return self._p

    def elaborate(self, platform) -> Module:
        p = self._p
        m = Module()
        n = p.lanes
        a = p.rows

        # ---------------------------------------------------------------- storage
        mag = [Signal(p.mag_bits, name=f"mag{k}") for k in range(n)]
        neg = [Signal(1, name=f"neg{k}") for k in range(n)]
        thr = [Signal(p.thr_bits, name=f"thr{k}") for k in range(n)]
        idx = Signal(range(n + 3))
        umax = Signal(p.mag_bits)
        vmax = Signal(p.mag_bits)
        row_scale = Signal(p.scale_bits)
        col_scale = Signal(p.scale_bits)
        bl = Signal(p.bl_bits)
        negate = Signal()
        slot = Signal(max(p.bl_bits, 1))
        m.d.comb += [self.u_absmax.eq(umax), self.v_absmax.eq(vmax)]

        # ---------------------------------------------------------------- threshold pipeline
        # stage 1: register the chain head and its scale; stage 2: partial products of
        # the magnitude with 17-bit slices of the scale (one DSP multiplier each);
        # stage 3: their sum plus the rounding half; stage 4: shift, saturate, and shift
        # into the threshold chain
        sh = p.threshold_shift
        op_mag = Signal(p.mag_bits)
        op_scale = Signal(p.scale_bits)
        op_row = Signal()
        op_valid = Signal()
        slices = [(lo, min(lo + MUL_SLICE, p.scale_bits)) for lo in range(0, p.scale_bits, MUL_SLICE)]
        part = [Signal(p.mag_bits + hi - lo, name=f"part{i}") for i, (lo, hi) in enumerate(slices)]
        part_row = Signal()
        part_valid = Signal()
        prod = Signal(p.mag_bits + p.scale_bits + 1)  # |x| * scale + 2**(sh-1)
        prod_row = Signal()
        prod_valid = Signal()
        rounded = Signal(p.mag_bits + p.scale_bits + 1)
        m.d.comb += rounded.eq(prod >> sh)
        if p.stochastic:
            cap = Const(1 << p.prob_bits, p.thr_bits)
            cap_now = cap
        else:
            cap_now = Mux(prod_row, Const(p.level_max, p.thr_bits), bl)
        thr_new = Signal(p.thr_bits)
        m.d.comb += thr_new.eq(Mux(rounded > cap_now, cap_now, rounded))

        # ---------------------------------------------------------------- LFSRs
        if p.stochastic:
            m.submodules.lfsr = lfsr = LfsrBank(p.lfsr, p.seeds)
            pmask = (1 << p.prob_bits) - 1

        # ---------------------------------------------------------------- output word
        w = self.o.payload
        fire_r = [Signal(name=f"fire_r{r}") for r in range(a)]
        fire_c = [Signal(name=f"fire_c{c}") for c in range(p.cols)]
        for k in range(n):
            tgt = fire_r[k] if k < a else fire_c[k - a]
            if p.stochastic:
                m.d.comb += tgt.eq((lfsr.state[k] & pmask) < thr[k])
            elif k < a:
                m.d.comb += tgt.eq(thr[k] != 0)
            else:
                m.d.comb += tgt.eq(slot < thr[k])
        m.d.comb += [
            w.row_fire.eq(Cat(*fire_r)),
            w.row_neg.eq(Cat(*neg[:a]) ^ Mux(negate, (1 << a) - 1, 0)),
            w.col_fire.eq(Cat(*fire_c)),
            w.col_neg.eq(Cat(*neg[a:])),
            w.slot.eq(slot),
            w.last.eq(slot + 1 == bl),
        ]
        if not p.stochastic:
            m.d.comb += w.row_level.eq(Cat(*[t[: p.level_mag_bits] for t in thr[:a]]))

        # ---------------------------------------------------------------- control
        elem = self.i.payload
        elem_mag = Signal(p.mag_bits)
        m.d.comb += elem_mag.eq(abs(elem))

        with m.FSM(name="phase"):
            with m.State("LOAD"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    for k in range(n - 1):
                        m.d.sync += [mag[k].eq(mag[k + 1]), neg[k].eq(neg[k + 1])]
                    m.d.sync += [mag[n - 1].eq(elem_mag), neg[n - 1].eq(elem < 0), idx.eq(idx + 1)]
                    with m.If(idx == 0):
                        m.d.sync += umax.eq(elem_mag)
                    with m.Elif((idx < a) & (elem_mag > umax)):
                        m.d.sync += umax.eq(elem_mag)
                    with m.If(idx == a):
                        m.d.sync += vmax.eq(elem_mag)
                    with m.Elif((idx > a) & (elem_mag > vmax)):
                        m.d.sync += vmax.eq(elem_mag)
                    with m.If(idx == n - 1):
                        m.d.sync += idx.eq(0)
                        m.next = "CFG"
            with m.State("CFG"):
                m.d.comb += [self.cfg.ready.eq(1), self.loaded.eq(1), self.busy.eq(1)]
                with m.If(self.cfg.valid):
                    c = self.cfg.payload
                    eff_bl = Mux(c.bl == 0, 1, Mux(c.bl > p.bl_max, p.bl_max, c.bl))
                    m.d.sync += [row_scale.eq(c.row_scale), col_scale.eq(c.col_scale),
                                 bl.eq(eff_bl), negate.eq(c.negate), idx.eq(0),
                                 op_valid.eq(0), part_valid.eq(0), prod_valid.eq(0)]
                    m.next = "SCALE"
            with m.State("SCALE"):
                m.d.comb += self.busy.eq(1)
                # rotate the magnitude chain through the multiplier, shift results into thr
                for k in range(n - 1):
                    m.d.sync += mag[k].eq(mag[k + 1])
                m.d.sync += [
                    mag[n - 1].eq(mag[0]),
                    op_mag.eq(mag[0]),
                    op_scale.eq(Mux(idx < a, row_scale, col_scale)),
                    op_row.eq(idx < a),
                    op_valid.eq(idx < n),
                    part_row.eq(op_row),
                    part_valid.eq(op_valid),
                    prod.eq(sum((pt << lo) for pt, (lo, _) in zip(part, slices)) + (1 << (sh - 1))),
                    prod_row.eq(part_row),
                    prod_valid.eq(part_valid),
                    idx.eq(idx + 1),
                ]
                for pt, (lo, hi) in zip(part, slices):
                    m.d.sync += pt.eq(op_mag * op_scale[lo:hi])
                with m.If(prod_valid):
                    for k in range(n - 1):
                        m.d.sync += thr[k].eq(thr[k + 1])
                    m.d.sync += thr[n - 1].eq(thr_new)
                with m.If(idx == n + 2):
                    m.d.sync += [idx.eq(0), slot.eq(0)]
                    m.next = "FIRE"
            with m.State("FIRE"):
                m.d.comb += [self.o.valid.eq(1), self.busy.eq(1)]
                with m.If(self.o.ready):
                    m.d.sync += slot.eq(slot + 1)
                    if p.stochastic:
                        m.d.comb += lfsr.en.eq(1)
                    with m.If(slot + 1 == bl):
                        m.next = "LOAD"
        return m
