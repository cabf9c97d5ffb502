"""The SBPCA SoC top: register bank + power-iteration engine + crossbar row/column driver.

One Wishbone B4 pipelined target (:class:`hdl.csr.CsrBank`, map in :mod:`hdl.regmap`) controls
the engine (:class:`hdl.engine.SBPCAEngine`) and one crossbar driver
(:class:`hdl.driver.CrossbarDriver`); the driver's per-slot pulse words leave on the
``pulses`` stream (the crossbar pins).  Details and the sequence firmware follows are in
``docs/SOC.md``.

* **Samples** -- ``PACKING.SAMPLE_ELEMS`` elements per 32-bit ``SAMPLE_DATA`` word (two
  16-bit halves when the x and δ formats fit 16 bits, else one sign-extended element);
  per sample the x vector then the δ vector, each starting a new word.  A pipelined
  initiator writes one word per cycle; the SoC moves up to two elements per cycle into
  the engine's P-lane chunks (``x`` then ``d``; a pair may straddle two chunks) and marks
  the final x chunk of sample number ``BATCH_SIZE`` with ``last`` (the engine's
  end-of-batch).  Words outside an open batch are dropped and raise ``ERRORS.PROTOCOL``;
  so does an element that is not a sign-extended value of its format (its low bits are used).
* **START_BATCH** opens a batch of ``BATCH_SIZE`` samples; it raises ``PROTOCOL`` (and
  opens nothing) when a batch is still open, when ``SUB_BATCH`` differs from the engine's
  build-time s, or when ``BATCH_SIZE`` is 0.  A batch above ``max_batch`` (``MAX_BATCH``) is
  the engine's to detect: its ``error`` raises ``ERRORS.BATCH_LIMIT`` and
  ``STATUS.ENGINE_ERROR``, which only **CLEAR** (the engine's ``clear``) resets.  **END_BATCH** checks,
  once the sample FIFO has drained, that all ``BATCH_SIZE`` samples arrived (``PROTOCOL``
  otherwise).  ``STATUS.DONE`` rises
  when the engine completes the batch (σ final).
* **READ_SIGMA** pushes σ_0..σ_{k-1} (engine ``sigma`` port) into ``FACTOR_DATA``;
  **READ_FACTORS** requests all k pairs from the engine and pushes, for c = 0..k-1, Δ_c
  then X_c, ``PACKING.STATE_ELEMS`` elements per word, each vector starting a new word.
* **APPLY_UPDATE** requests the k pairs again and feeds the driver u = Δ_c, v = X_c with a
  configuration the SoC computes in integers (:func:`soc_update_config`, its golden twin):
  ``row_scale = sat(round(LR_SCALE · B · |σ_c| / 2^(24 + σ.frac − scale.frac)))`` in the
  driver's scale format, ``col_scale`` = 1.0 (stochastic) or BL (deterministic), BL =
  ``clamp(UPDATE_CFG.BL, 1, bl_max)``, ``negate = σ_c < 0``.  The expected change of cell
  (r, c) is then ``BL · LR_SCALE · B · σ_c · Δ_rc · X_cc`` device steps in both schemes, so
  firmware sets ``LR_SCALE = η / (Δw_min · BL)``.  ``UPDATE_CFG.MANAGE`` and ``SEED`` are
  stored but not used by this SoC (its scaling is the fixed rule above; the LFSR lane seeds
  are build parameters of the driver).  A ``SCHEME`` other than the driver's built scheme
  raises ``PROTOCOL`` and applies nothing (``UPD_DONE`` is set with ``UPDATES`` unchanged).
* **SOFT_RESET** resets everything behind the register bank (:class:`_Core`, under one
  ``ResetInserter``): the open batch is dropped, readout and update streams stop, the bank's
  FIFOs are flushed, the driver's LFSRs return to their seeds, and the engine's control,
  σ (to its build-time value), flags, counts and pending reciprocals return to reset.  The
  engine's X/Δ memories cannot be reset, so the state after a soft reset is not a valid
  SBPCA state: ``STATUS.STATE_VALID`` drops and ``START_BATCH`` is refused (``PROTOCOL``)
  until firmware writes a complete state (for c: Δ_c, X_c; then σ) through ``STATE_DATA``,
  which the SoC hands to the engine's ``load`` port.  The firmware keeps the last state it
  read as the checkpoint (``sbpca_soft_reset`` + ``sbpca_load_state``); the bank's
  configuration registers and counters are not reset.
* **STATE_DATA** (a load) is taken only while no batch is open; ``STATE_VALID`` drops at its
  first word and rises when the engine accepted the k-th σ word.
* Status and counters: ``BUSY`` = engine busy (stretched by ``BUSY_HOLD`` cycles: it
  drops briefly between the engine's scalar jobs) or a readout/update stream in flight;
  ``UPD_BUSY``/``UPD_DONE`` follow the k driver updates; ``SAMPLES`` counts samples whose
  last δ chunk entered the engine, ``SUB_BATCHES`` the steps of the engine's sub-batch count, ``CYCLES`` the engine's busy cycles, ``UPDATES`` the
  completed rank-1 updates.  ``SATURATION`` is raised when a new engine saturation flag
  appears, ``SIGMA_GUARD``/``DEGENERATE`` when the engine's counts grow (the engine's flags
  and counts are sticky until **CLEAR**, which the firmware pulses when it configures a batch,
  so these flags then describe one batch).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Array, Cat, Const, Elaboratable, Module, Mux, ResetInserter, Signal, Value, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from pymodel.crossbar.params import DriverParams
from pymodel.crossbar.pulses import UpdateConfig

from .csr import CsrBank, wishbone_signature
from .driver import CrossbarDriver, word_layout
from .engine import SBPCAEngine
from .engine_params import EngineParams
from .regmap import LR_SCALE_FRAC, REGS, build_constants, elems_per_word, words_per_vector

__all__ = ["SBPCASoC", "SoCParams", "soc_update_config", "scale_shift", "soc_manifest", "TOPLEVEL"]

TOPLEVEL = "sbpca_soc"
SCHEME_CODES = {"stochastic": 0, "deterministic": 1}
BUSY_HOLD = 16
"""Cycles STATUS.BUSY stays high after the engine's busy falls (gaps between its scalar jobs)."""


@dataclass(frozen=True)
class SoCParams:
    """Parameters of one SoC: the engine's, the driver's (same a, b and state format) and the FIFO depth."""

    engine: EngineParams
    driver: DriverParams
    fifo_depth: int = 16

    def __post_init__(self) -> None:
        if not isinstance(self.engine, EngineParams):
            raise TypeError(f"engine must be an EngineParams, not {type(self.engine).__name__}")
        if not isinstance(self.driver, DriverParams):
            raise TypeError(f"driver must be a DriverParams, not {type(self.driver).__name__}")
        e, d = self.engine, self.driver
        if (d.rows, d.cols) != (e.rows, e.cols):
            raise ValueError(f"driver is {d.rows}x{d.cols} but the engine is {e.rows}x{e.cols}")
        if d.state != e.fmts.state:
            raise ValueError(f"driver state format {d.state} differs from the engine's {e.fmts.state}")
        if isinstance(self.fifo_depth, bool) or not isinstance(self.fifo_depth, int) or not 2 <= self.fifo_depth <= 4096:
            raise ValueError(f"fifo_depth must be an integer in 2..4096, not {self.fifo_depth!r}")

    @classmethod
    def make(cls, *, rows: int, cols: int, rank: int, sub_batch: int, lanes: int = 1, formats="q16",
             scheme: str = "stochastic", bl_max: int = 31, driver_seed: int = 0, fifo_depth: int = 16,
             **engine_kw) -> "SoCParams":
        """Build both parameter sets from the common ones (the driver takes the engine's state format)."""
        e = EngineParams(rows=rows, cols=cols, rank=rank, sub_batch=sub_batch, lanes=lanes, formats=formats,
                         **engine_kw)
        d = DriverParams(rows=rows, cols=cols, scheme=scheme, bl_max=bl_max, state=e.fmts.state, seed=driver_seed)
        return cls(e, d, fifo_depth)

    def to_dict(self) -> dict:
        return {"engine": self.engine.to_dict(), "driver": self.driver.to_dict(), "fifo_depth": self.fifo_depth}


def scale_shift(params: SoCParams) -> int:
    """Right shift from LR_SCALE·B·|σ| (fraction bits 24 + σ.frac) to the driver's scale format."""
    return LR_SCALE_FRAC + params.engine.fmts.sigma.frac - params.driver.scale.frac


def soc_update_config(params: SoCParams, sigma_c: int, batch_size: int, lr_scale: int, bl: int) -> UpdateConfig:
    """The driver configuration the SoC computes for factor pair c (golden twin of the RTL).

    ``sigma_c`` is σ_c as an integer of the σ format, ``batch_size`` the engine's B of the
    last batch, ``lr_scale`` the ``LR_SCALE`` register (unsigned Q8.24), ``bl`` the
    ``UPDATE_CFG.BL`` field.
    """
    for name, v in (("sigma_c", sigma_c), ("batch_size", batch_size), ("lr_scale", lr_scale), ("bl", bl)):
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            raise TypeError(f"{name} must be an integer, not {v!r}")
    d = params.driver
    lim = (1 << d.scale_bits) - 1
    prod = int(lr_scale) * int(batch_size) * abs(int(sigma_c))
    sh = scale_shift(params)
    if sh > 0:
        row = (prod + (1 << (sh - 1))) >> sh
    else:
        row = prod << -sh
    bl_eff = min(max(int(bl), 1), d.bl_max)
    unit = 1 << d.scale.frac
    col = unit if d.stochastic else bl_eff * unit
    return UpdateConfig(min(row, lim), min(col, lim), bl_eff, bool(int(sigma_c) < 0))


class _Core(Elaboratable):
    """Glue, engine and driver: everything that SOFT_RESET resets (the bank stays outside).

    ``state_valid`` (in) is the SoC's STATE_VALID flag, kept outside the reset; ``load_start``
    and ``load_done`` (out) strobe on a state load's first word and on its last σ beat.
    """

    def __init__(self, soc: "SBPCASoC", state_valid: Signal, load_start: Signal, load_done: Signal) -> None:
        self.soc = soc
        self.state_valid, self.load_start, self.load_done = state_valid, load_start, load_done

    def elaborate(self, platform) -> Module:  # noqa: C901 - one control block, written top to bottom
        m = Module()
        soc = self.soc
        prm = soc.params
        p, dp = prm.engine, prm.driver
        f = p.fmts
        a, b, k, P = p.rows, p.cols, p.rank, p.lanes
        bank, eng, drv = soc.bank, soc.engine, soc.driver
        m.submodules.engine = eng
        m.submodules.driver = drv
        ctrl = bank.ctrl
        m.d.comb += [eng.trace_en.eq(0), eng.trace.ready.eq(1), eng.clear.eq(ctrl.clear)]

        proto = Signal()  # protocol error seen this cycle
        batch_open = Signal()
        loading = self._state_loader(m, proto, batch_open)

        # ------------------------------------------------------------ batch control
        smp_cnt = Signal(32)  # samples completed in the open batch
        bsize = bank.batch_size.samples
        start_ok = Signal()
        # BATCH_SIZE above max_batch is not refused here: the engine counts the samples it
        # receives and raises its error (ERRORS.BATCH_LIMIT), the one place that checks it
        m.d.comb += start_ok.eq(~batch_open & (bank.sub_batch.samples == p.sub_batch) & (bsize != 0)
                                & self.state_valid & ~loading)
        with m.If(ctrl.start_batch):
            with m.If(start_ok):
                m.d.sync += [batch_open.eq(1), smp_cnt.eq(0)]
            with m.Else():
                m.d.comb += proto.eq(1)
        # END_BATCH may arrive while the last words still wait in the sample FIFO: it is
        # checked once the FIFO has drained (samples missing -> PROTOCOL)
        end_pending = Signal()
        with m.If(ctrl.end_batch & batch_open):
            m.d.sync += end_pending.eq(1)
        with m.If(end_pending):
            with m.If(~batch_open):
                m.d.sync += end_pending.eq(0)
            with m.Elif(~bank.sample_data.valid):
                m.d.sync += end_pending.eq(0)
                m.d.comb += proto.eq(1)

        # ------------------------------------------------------------ sample words -> x/d chunks
        # E elements per word (PACKING.SAMPLE_ELEMS); up to two elements enter the lanes per cycle
        E = elems_per_word(f.x.bits, f.delta.bits)
        sd = bank.sample_data
        widx = Signal(range(a + b))  # element of the sample
        half = Signal(range(E))  # element of the held word
        lane = Signal(range(P))
        xbuf = Signal(eng.layouts["x"])
        dbuf = Signal(eng.layouts["d"])
        xv = Signal()
        dv = Signal()
        m.d.comb += [eng.x.payload.eq(xbuf), eng.x.valid.eq(xv), eng.d.payload.eq(dbuf), eng.d.valid.eq(dv)]
        with m.If(eng.x.valid & eng.x.ready):
            m.d.sync += xv.eq(0)
        dchunk = Signal(range(p.chunks_a))
        smp_acc = Signal()  # the final δ chunk of a sample entered the engine
        with m.If(eng.d.valid & eng.d.ready):
            m.d.sync += [dv.eq(0), dchunk.eq(Mux(dchunk == p.chunks_a - 1, 0, dchunk + 1))]
            m.d.comb += smp_acc.eq(dchunk == p.chunks_a - 1)
        in_x = Signal()
        elem = Signal(range(max(a, b)))
        vlen1 = Signal(range(max(a, b)))
        m.d.comb += [
            in_x.eq(widx < b),
            elem.eq(Mux(in_x, widx, widx - b)),
            vlen1.eq(Mux(in_x, b - 1, a - 1)),
        ]
        word = sd.payload
        xw, dw = f.x.bits, f.delta.bits
        slot = 32 // E  # bits of one element's slot in the word
        slots = [word[i * slot:(i + 1) * slot] for i in range(E)]

        def ext_ok(v: Value) -> Value:
            """v (one slot) is a sign-extended value of the x or δ format."""
            top_x, top_d = v[xw - 1:], v[dw - 1:]
            return Mux(in_x, (top_x == 0) | (top_x == (1 << (slot + 1 - xw)) - 1),
                       (top_d == 0) | (top_d == (1 << (slot + 1 - dw)) - 1))

        e0 = Signal(slot)
        e1 = Signal(slot)
        m.d.comb += [e0.eq(Array(slots)[half] if E > 1 else slots[0]), e1.eq(slots[-1])]
        two = Signal()  # a second element of the same word goes into the next lane this cycle
        if E > 1:
            m.d.comb += two.eq((half == 0) & (elem != vlen1) & (lane != P - 1))
        vec_end = Signal()  # the last element written this cycle ends x or δ
        chunk_end = Signal()
        consume = Signal()  # the held word is used up this cycle
        m.d.comb += [
            vec_end.eq(Mux(two, elem + 1, elem) == vlen1),
            chunk_end.eq(vec_end | (Mux(two, lane + 1, lane) == P - 1)),
            consume.eq((half == E - 1) | two | (elem == vlen1)),
        ]
        work = Signal()  # a held word meets free chunk buffers
        m.d.comb += [work.eq(sd.valid & ~xv & ~dv),
                     sd.ready.eq(~xv & ~dv & (consume | ~batch_open))]
        with m.If(work):
            with m.If(~batch_open):
                m.d.comb += proto.eq(1)  # dropped: no open batch
            with m.Else():
                with m.If(~ext_ok(e0) | (two & ~ext_ok(e1))):
                    m.d.comb += proto.eq(1)
                last_smp = smp_cnt + 1 == bsize
                for buf, width, valid, sel in ((xbuf, xw, xv, in_x), (dbuf, dw, dv, ~in_x)):
                    with m.If(sel):
                        with m.If(lane == 0):
                            m.d.sync += buf.data.eq(0)
                        for l in range(P):
                            with m.If(lane == l):
                                m.d.sync += buf.data[l].eq(e0[:width])
                            if l > 0:
                                with m.If(two & (lane == l - 1)):
                                    m.d.sync += buf.data[l].eq(e1[:width])
                        if buf is xbuf:
                            m.d.sync += xbuf.last.eq(vec_end & last_smp)
                        with m.If(chunk_end):
                            m.d.sync += valid.eq(1)
                m.d.sync += [lane.eq(Mux(chunk_end, 0, Mux(two, lane + 2, lane + 1))),
                             half.eq(Mux(consume, 0, half + 1))]
                with m.If(vec_end & ~in_x):
                    m.d.sync += [widx.eq(0), smp_cnt.eq(smp_cnt + 1)]
                    with m.If(last_smp):
                        m.d.sync += batch_open.eq(0)
                with m.Else():
                    m.d.sync += widx.eq(Mux(two, widx + 2, widx + 1))

        # ------------------------------------------------------------ done / counters / flags
        done = Signal()
        prev_batches = Signal(32)
        prev_sub = Signal(32)
        prev_sat = Signal(len(eng.sat))
        prev_guard = Signal(32)
        prev_degen = Signal(32)
        prev_err = Signal()
        m.d.sync += [prev_batches.eq(eng.batches), prev_sub.eq(eng.sub_batches),
                     prev_sat.eq(eng.sat), prev_guard.eq(eng.sigma_guard), prev_degen.eq(eng.degenerate),
                     prev_err.eq(eng.error)]
        with m.If(eng.batches != prev_batches):
            m.d.sync += done.eq(1)
        with m.If(ctrl.start_batch & start_ok):
            m.d.sync += done.eq(0)
        # CTRL.CLEAR zeroes the engine's counts one cycle later: that step is not an event
        cleared = Signal()
        m.d.sync += cleared.eq(ctrl.clear)
        m.d.comb += [
            bank.samples.count_inc.eq(smp_acc),
            bank.sub_batches.count_inc.eq(eng.sub_batches != prev_sub),
            bank.cycles.count_inc.eq(eng.busy),
            bank.errors.saturation_set.eq((eng.sat & ~prev_sat).any()),
            bank.errors.sigma_guard_set.eq((eng.sigma_guard != prev_guard) & ~cleared),
            bank.errors.degenerate_set.eq((eng.degenerate != prev_degen) & ~cleared),
            bank.errors.protocol_set.eq(proto),
            bank.errors.batch_limit_set.eq(eng.error & ~prev_err),
        ]

        # ------------------------------------------------------------ readout and update streams
        DEST_FIFO, DEST_DRV = 0, 1
        dest = Signal()
        fd = bank.factor_data
        sig_idx = Signal(range(k))
        fbuf = Signal(eng.layouts["factors"])
        fv = Signal()
        flane = Signal(range(P))
        fn1 = Signal(range(P))  # index of the last valid lane of the held beat
        bcnt = Signal(range(p.chunks_a + p.chunks_b))  # beat within the current factor pair
        upd_busy = Signal()
        upd_done = Signal()
        upd_cnt = Signal(range(k + 1))
        lrb = Signal(64)  # LR_SCALE * B, latched by APPLY_UPDATE
        cfg_sigma = Signal(signed(f.sigma.bits))
        cfg_v = Signal()
        scheme_ok = Signal()
        m.d.comb += scheme_ok.eq(bank.update_cfg.scheme == SCHEME_CODES[dp.scheme])
        elem_out = Signal(signed(f.state.bits))
        m.d.comb += elem_out.eq(fbuf.data[flane])
        ES = elems_per_word(f.state.bits)
        fvlast = Signal()  # the held beat is its vector's last chunk
        hv = Signal()  # a low half waits in lo
        lo = Signal(16)

        with m.FSM(name="readout") as fsm:
            with m.State("IDLE"):
                with m.If(ctrl.read_sigma):
                    m.d.sync += sig_idx.eq(0)
                    m.next = "SIGMA"
                with m.Elif(ctrl.read_factors):
                    m.d.sync += dest.eq(DEST_FIFO)
                    m.next = "REQ"
                with m.Elif(ctrl.apply_update):
                    with m.If(upd_busy):
                        m.d.comb += proto.eq(1)
                    with m.Elif(~scheme_ok):
                        m.d.comb += proto.eq(1)
                        m.d.sync += upd_done.eq(1)
                    with m.Else():
                        m.d.sync += [dest.eq(DEST_DRV), upd_busy.eq(1), upd_done.eq(0), upd_cnt.eq(0),
                                     lrb.eq(bank.lr_scale.value * eng.batch_size)]
                        m.next = "REQ"
            with m.State("SIGMA"):
                m.d.comb += [fd.valid.eq(1), fd.payload.eq(eng.sigma[sig_idx].as_signed())]
                with m.If(fd.ready):
                    m.d.sync += sig_idx.eq(sig_idx + 1)
                    with m.If(sig_idx == k - 1):
                        m.next = "IDLE"
            with m.State("REQ"):
                m.d.comb += [eng.factor_req.valid.eq(1), eng.factor_req.payload.all.eq(1)]
                with m.If(eng.factor_req.ready):
                    m.d.sync += [bcnt.eq(0), fv.eq(0)]
                    m.next = "STREAM"
            with m.State("STREAM"):
                block = (dest == DEST_DRV) & cfg_v & (bcnt == 0)
                m.d.comb += eng.factors.ready.eq(~fv & ~block)
                with m.If(eng.factors.valid & eng.factors.ready):
                    pl = eng.factors.payload
                    rem = Signal(range(max(a, b) + 1))
                    m.d.comb += rem.eq(Mux(pl.kind == 0, a, b) - pl.chunk * P)
                    m.d.sync += [fbuf.eq(pl), fv.eq(1), flane.eq(0), fvlast.eq(rem <= P),
                                 fn1.eq(Mux(rem >= P, P - 1, rem - 1)),
                                 bcnt.eq(Mux(bcnt == p.chunks_a + p.chunks_b - 1, 0, bcnt + 1))]
                    with m.If((dest == DEST_DRV) & (bcnt == 0)):
                        m.d.sync += [cfg_sigma.eq(pl.sigma), cfg_v.eq(1)]
                take = Signal()
                # FACTOR_DATA words hold ES elements (PACKING.STATE_ELEMS): with two, an element
                # that does not end its vector waits in `lo` for the next one
                store_lo = Signal()
                if ES > 1:
                    m.d.comb += store_lo.eq(~hv & ~(fvlast & (flane == fn1)))
                    h16 = Signal(signed(16))
                    m.d.comb += [h16.eq(elem_out),
                                 fd.payload.eq(Mux(hv, Cat(lo, h16), Cat(h16, Const(0, 16))))]
                    with m.If(take & (dest == DEST_FIFO)):
                        m.d.sync += [hv.eq(store_lo), lo.eq(h16)]
                else:
                    m.d.comb += fd.payload.eq(elem_out)
                m.d.comb += [
                    fd.valid.eq(fv & (dest == DEST_FIFO) & ~store_lo),
                    drv.i.payload.eq(elem_out),
                    drv.i.valid.eq(fv & (dest == DEST_DRV)),
                    take.eq(Mux(dest == DEST_FIFO, fv & (store_lo | fd.ready), drv.i.valid & drv.i.ready)),
                ]
                with m.If(take):
                    m.d.sync += flane.eq(flane + 1)
                    with m.If(flane == fn1):
                        m.d.sync += fv.eq(0)
                        with m.If(fbuf.last):
                            m.next = "IDLE"
            busy_rd = Signal()
            m.d.comb += busy_rd.eq(~fsm.ongoing("IDLE"))
        with m.If(~fsm.ongoing("IDLE") & (ctrl.read_sigma | ctrl.read_factors | ctrl.apply_update)):
            m.d.comb += proto.eq(1)  # a second readout while one is in flight: ignored

        # driver configuration (integer rule of soc_update_config)
        sh = scale_shift(prm)
        lim = (1 << dp.scale_bits) - 1
        mag = Signal(f.sigma.bits)
        m.d.comb += mag.eq(Mux(cfg_sigma < 0, -cfg_sigma, cfg_sigma))
        prod = Signal(64 + f.sigma.bits + 1)
        if sh > 0:
            m.d.comb += prod.eq((lrb * mag + (1 << (sh - 1))) >> sh)
        else:
            m.d.comb += prod.eq((lrb * mag) << -sh)
        bl_reg = bank.update_cfg.bl
        bl_eff = Signal(dp.bl_bits)
        m.d.comb += bl_eff.eq(Mux(bl_reg == 0, 1, Mux(bl_reg > dp.bl_max, dp.bl_max, bl_reg)))
        unit = 1 << dp.scale.frac
        cfgp = drv.cfg.payload
        m.d.comb += [
            drv.cfg.valid.eq(cfg_v),
            cfgp.row_scale.eq(Mux(prod > lim, lim, prod)),
            cfgp.bl.eq(bl_eff),
            cfgp.negate.eq(cfg_sigma < 0),
        ]
        if dp.stochastic:
            m.d.comb += cfgp.col_scale.eq(min(unit, lim))
        else:
            colv = Signal(dp.bl_bits + dp.scale.frac)
            m.d.comb += [colv.eq(bl_eff << dp.scale.frac), cfgp.col_scale.eq(Mux(colv > lim, lim, colv))]
        with m.If(drv.cfg.valid & drv.cfg.ready):
            m.d.sync += cfg_v.eq(0)

        # pulses out; update completion
        m.d.comb += [soc.pulses.payload.eq(drv.o.payload), soc.pulses.valid.eq(drv.o.valid),
                     drv.o.ready.eq(soc.pulses.ready)]
        upd_end = Signal()
        m.d.comb += [upd_end.eq(drv.o.valid & drv.o.ready & drv.o.payload.last),
                     bank.updates.count_inc.eq(upd_end)]
        with m.If(upd_end):
            m.d.sync += upd_cnt.eq(upd_cnt + 1)
            with m.If(upd_cnt == k - 1):
                m.d.sync += [upd_busy.eq(0), upd_done.eq(1)]
        with m.If(ctrl.start_batch & start_ok):
            m.d.sync += upd_done.eq(0)

        # the engine's busy drops for a few cycles between its scalar jobs (e.g. the
        # reciprocals it computes after reset): STATUS.BUSY stretches it by BUSY_HOLD cycles
        hold = Signal(range(BUSY_HOLD + 1))
        with m.If(eng.busy):
            m.d.sync += hold.eq(BUSY_HOLD)
        with m.Elif(hold != 0):
            m.d.sync += hold.eq(hold - 1)
        m.d.comb += [
            bank.status.busy.eq(eng.busy | (hold != 0) | busy_rd | loading),
            bank.status.done.eq(done),
            bank.status.upd_busy.eq(upd_busy),
            bank.status.upd_done.eq(upd_done),
            bank.status.engine_error.eq(eng.error),
        ]
        return m

    def _state_loader(self, m: Module, proto: Signal, batch_open: Signal) -> Signal:
        """STATE_DATA words -> the engine's ``load`` beats; returns "a load is in progress".

        Words come as READ_FACTORS delivers them (for c: Δ_c a words, X_c b words), then the k
        σ words; Δ/X words are packed into P-lane chunks like the samples.  Words wait in the
        FIFO while a batch is open (the engine takes loads only at a batch boundary).  A word
        that is not a sign-extended value of its format raises PROTOCOL (its low bits are used).
        """
        soc = self.soc
        p = soc.params.engine
        f = p.fmts
        a, b, k, P = p.rows, p.cols, p.rank, p.lanes
        eng, sd = soc.engine, soc.bank.state_data
        KIND_X, KIND_D, KIND_SIGMA = 0, 1, 2  # the engine's load kinds (hdl.engine)
        col = Signal(range(k))
        phase = Signal(2, init=KIND_D)  # Δ_c, then X_c; σ after the k-th pair
        elem = Signal(range(max(a, b)))
        chunk = Signal(range(p.chunks_max))
        lane = Signal(range(P))
        beat = Signal(eng.layouts["load"])
        bv = Signal()
        active = Signal()  # a load has started and its last σ beat has not been accepted
        m.d.comb += [eng.load.payload.eq(beat), eng.load.valid.eq(bv)]
        with m.If(eng.load.valid & eng.load.ready):
            m.d.sync += bv.eq(0)
            with m.If((beat.kind == KIND_SIGMA) & (beat.col == k - 1)):
                m.d.sync += active.eq(0)
                m.d.comb += self.load_done.eq(1)
        word = sd.payload
        sw, gw = f.state.bits, f.sigma.bits
        ES = elems_per_word(sw)  # state elements per word (PACKING.STATE_ELEMS); σ: one per word
        slot = 32 // ES
        half = Signal(range(ES))
        ev = Signal(slot)  # the state element taken this cycle
        m.d.comb += ev.eq(Array([word[i * slot:(i + 1) * slot] for i in range(ES)])[half] if ES > 1 else word)
        top_s, top_g = ev[sw - 1:], word[gw - 1:]
        ext_ok = Signal()
        m.d.comb += ext_ok.eq(Mux(phase == KIND_SIGMA, (top_g == 0) | (top_g == (1 << (33 - gw)) - 1),
                                  (top_s == 0) | (top_s == (1 << (slot + 1 - sw)) - 1)))
        vlen1 = Mux(phase == KIND_X, b - 1, a - 1)
        end_chunk = Signal()
        consume = Signal()  # the word is used up this cycle
        m.d.comb += [end_chunk.eq((lane == P - 1) | (elem == vlen1)),
                     consume.eq((phase == KIND_SIGMA) | (half == ES - 1) | (elem == vlen1)),
                     sd.ready.eq(~bv & ~batch_open & consume)]
        with m.If(sd.valid & ~bv & ~batch_open):
            m.d.sync += half.eq(Mux(consume, 0, half + 1))
            with m.If(~active):
                m.d.comb += self.load_start.eq(1)
                m.d.sync += active.eq(1)
            with m.If(~ext_ok):
                m.d.comb += proto.eq(1)
            with m.If(phase == KIND_SIGMA):
                m.d.sync += [beat.kind.eq(KIND_SIGMA), beat.col.eq(col), beat.sigma.eq(word[:gw]), bv.eq(1),
                             col.eq(Mux(col == k - 1, 0, col + 1))]
                with m.If(col == k - 1):
                    m.d.sync += phase.eq(KIND_D)
            with m.Else():
                with m.If(lane == 0):
                    m.d.sync += beat.data.eq(0)
                # one constant-indexed write per lane, as on the sample path: with P = 1 ``lane``
                # has no bits, and ``beat.data[lane]`` becomes a zero-width switch (RTLIL
                # ``case 0'``) that Yosys's ``proc`` drops after the write above (docs/VERIFICATION.md)
                for l in range(P):
                    with m.If(lane == l):
                        m.d.sync += beat.data[l].eq(ev[:sw])
                m.d.sync += [beat.kind.eq(phase), beat.col.eq(col), beat.chunk.eq(chunk),
                             lane.eq(Mux(end_chunk, 0, lane + 1))]
                with m.If(end_chunk):
                    m.d.sync += [bv.eq(1), chunk.eq(chunk + 1)]
                with m.If(elem == vlen1):
                    m.d.sync += [elem.eq(0), chunk.eq(0)]
                    with m.If(phase == KIND_D):
                        m.d.sync += phase.eq(KIND_X)
                    with m.Elif(col == k - 1):
                        m.d.sync += [phase.eq(KIND_SIGMA), col.eq(0)]
                    with m.Else():
                        m.d.sync += [phase.eq(KIND_D), col.eq(col + 1)]
                with m.Else():
                    m.d.sync += elem.eq(elem + 1)
        loading = Signal()
        m.d.comb += loading.eq(active | bv | sd.valid)
        return loading


class SBPCASoC(wiring.Component):
    """SoC top: ``bus`` (Wishbone B4 pipelined target, ``hdl.csr``) in, ``pulses`` (driver slot words) out.

    ``init``/``seed`` give the engine's initial state (reset content of its state memories),
    as for :class:`hdl.engine.SBPCAEngine`.
    """

    def __init__(self, params: SoCParams, *, init=None, seed: int = 0) -> None:
        if not isinstance(params, SoCParams):
            raise TypeError(f"params must be a SoCParams, not {type(params).__name__}")
        self.params = params
        p = params.engine
        self.bank = CsrBank(constants=build_constants(rows=p.rows, cols=p.cols, rank=p.rank, lanes=p.lanes,
                                                      fifo_depth=params.fifo_depth, formats=p.fmts,
                                                      max_batch=p.max_batch),
                            fifo_depth=params.fifo_depth)
        self.engine = SBPCAEngine(p, init=init, seed=seed)
        self.driver = CrossbarDriver(params.driver)
        self.init_state = self.engine.init_state
        super().__init__({
            "bus": In(wishbone_signature(REGS.addr_width)),
            "pulses": Out(stream.Signature(word_layout(params.driver))),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.bank = self.bank
        wiring.connect(m, wiring.flipped(self.bus), self.bank.bus)
        soft = self.bank.ctrl.soft_reset
        # STATE_VALID lives outside the soft reset: it is what the reset takes away
        state_valid = Signal(init=1)
        load_start, load_done = Signal(), Signal()
        m.submodules.core = ResetInserter(soft)(_Core(self, state_valid, load_start, load_done))
        with m.If(soft | load_start):
            m.d.sync += state_valid.eq(0)
        with m.Elif(load_done):
            m.d.sync += state_valid.eq(1)
        m.d.comb += self.bank.status.state_valid.eq(state_valid)
        return m


def soc_manifest(soc: SBPCASoC, name: str = TOPLEVEL) -> dict:
    """What a user of the generated Verilog needs: parameters, ports, register map, word packing."""
    from .verilog import port_list

    prm = soc.params
    ports = port_list(soc)
    off, fields = 0, []
    for fname, width in prm.driver.word_fields():
        fields.append({"name": fname, "offset": off, "width": width})
        off += width
    e = prm.engine
    es, ef = elems_per_word(e.fmts.x.bits, e.fmts.delta.bits), elems_per_word(e.fmts.state.bits)
    return {
        "design": "soc",
        "top": name,
        "params": prm.to_dict(),
        "clock": "clk (rising edge), synchronous active-high reset rst",
        "ports": ports,
        "bus": {"protocol": "Wishbone B4 pipelined (stall tied low, ack one cycle after each request)",
                "data_bits": 32, "addr_bits": REGS.addr_width, "addressing": "word address = byte offset >> 2"},
        "regmap": REGS.to_dict(),
        "sample_words": f"{es} element(s) per 32-bit word (PACKING.SAMPLE_ELEMS), each vector starting a new "
                        f"word: per sample {words_per_vector(e.cols, es)} words of x ({e.fmts.x}) then "
                        f"{words_per_vector(e.rows, es)} words of delta ({e.fmts.delta})",
        "factor_words": f"READ_SIGMA: {e.rank} sigma words ({e.fmts.sigma}); READ_FACTORS: for c = 0..{e.rank - 1}, "
                        f"{words_per_vector(e.rows, ef)} words of Delta_c then {words_per_vector(e.cols, ef)} words "
                        f"of X_c ({e.fmts.state}, {ef} per word); STATE_DATA takes the same words, then the sigma "
                        f"words",
        "pulse_word_fields": fields,
        "scale_rule": {"row_scale": f"sat(round(LR_SCALE * B * |sigma_c| / 2^{scale_shift(prm)}))",
                       "col_scale": "1.0" if prm.driver.stochastic else "BL",
                       "bl": f"clamp(UPDATE_CFG.BL, 1, {prm.driver.bl_max})", "negate": "sigma_c < 0",
                       "scale_format": str(prm.driver.scale)},
        "bound_cycles_per_sample": e.bound_cycles_per_sample,
    }
