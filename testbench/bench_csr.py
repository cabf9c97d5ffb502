"""Co-simulation of the C firmware against the Wishbone register bank (Verilator + cocotb).

The C driver is loaded with ctypes inside the cocotb bench; its two platform
functions are ``cocotb.task.resume``-wrapped :class:`testbench.wishbone.WishboneMaster`
transactions and every driver call runs in a ``cocotb.task.bridge`` thread, so each
register access the C code makes is a real bus cycle on the RTL.

The DUT is :class:`CsrHarness`: the generated :class:`hdl.csr.CsrBank` plus a
loopback FIFO.  With ``loopback`` high, words written to SAMPLE_DATA come back out
of FACTOR_DATA (the data path alone).  With it low, the bank's streams and status
ports face :class:`MockEngine`, a behavioural engine in the bench whose arithmetic
is the fixed-point golden model (``pymodel.sbpca``); a second, independent golden
model is the scoreboard, so the test proves the firmware's sequencing and word
order end to end.  The SoC bench replaces the mock with the real engine.

Parameters arrive as JSON in ``$SBPCA_CSR_BENCH`` (see :func:`run_csr_cosim`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from amaranth import Module
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In
from cocotb.clock import Clock
from cocotb.task import bridge
from cocotb.triggers import ClockCycles, FallingEdge

from firmware.binding import STATUS, FirmwareDriver, FirmwareError
from hdl.csr import CsrBank
from hdl.regmap import REGS, build_constants, elems_per_word, pack_vector, unpack_words, words_per_vector
from testbench.wishbone import WishboneMaster

TOPLEVEL = "sbpca_csr_harness"
LOOP_DEPTH = 256


class CsrHarness(wiring.Component):
    """The register bank with the same ports, plus ``loopback`` (In 1).

    ``loopback`` = 1: sample stream -> FIFO (``LOOP_DEPTH`` words) -> factor stream,
    and the external stream ports are idle.  ``loopback`` = 0: the external ports
    are the bank's own.
    """

    def __init__(self, bank: CsrBank) -> None:
        if not isinstance(bank, CsrBank):
            raise TypeError(f"bank must be a CsrBank, not {type(bank).__name__}")
        self.bank = bank
        members = dict(bank.signature.members)
        members["loopback"] = In(1)
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        bank = self.bank
        m.submodules.bank = bank
        m.submodules.loop = loop = fifo.SyncFIFOBuffered(width=32, depth=LOOP_DEPTH)
        for name in bank.signature.members:
            if name in ("sample_data", "factor_data"):
                continue
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(bank, name))
        out, inp = bank.sample_data, bank.factor_data
        ext_out, ext_in = self.sample_data, self.factor_data
        with m.If(self.loopback):
            m.d.comb += [
                loop.w_data.eq(out.payload), loop.w_en.eq(out.valid), out.ready.eq(loop.w_rdy),
                inp.payload.eq(loop.r_data), inp.valid.eq(loop.r_rdy), loop.r_en.eq(inp.ready),
            ]
        with m.Else():
            m.d.comb += [
                ext_out.payload.eq(out.payload), ext_out.valid.eq(out.valid), out.ready.eq(ext_out.ready),
                inp.payload.eq(ext_in.payload), inp.valid.eq(ext_in.valid), ext_in.ready.eq(inp.ready),
            ]
        return m


def write_harness(out_dir: Path, *, rows: int, cols: int, rank: int, lanes: int = 1,
                  fifo_depth: int = 16, formats: str = "q16", max_batch: int = 65535) -> Path:
    """Verilog of the harness for one configuration; returns the file path."""
    from hdl.verilog import write_verilog

    bank = CsrBank(constants=build_constants(rows=rows, cols=cols, rank=rank, lanes=lanes,
                                             fifo_depth=fifo_depth, formats=formats, max_batch=max_batch),
                   fifo_depth=fifo_depth)
    return write_verilog(CsrHarness(bank), TOPLEVEL, Path(out_dir))


def run_csr_cosim(build_dir: Path, *, rows: int = 6, cols: int = 5, rank: int = 2, sub_batch: int = 3,
                  batch: int = 7, batches: int = 2, fifo_depth: int = 8, seed: int = 1,
                  formats: str = "q16", stalls: bool = True, waves: bool = False,
                  testcase: str | None = None, lanes: int = 1, max_batch: int = 65535):
    """Build the firmware and the harness, run this bench; returns the ``CocotbResult``."""
    from firmware.build import build_shared_library
    from testbench.simulator import run_cocotb

    for name, value in (("rows", rows), ("cols", cols), ("rank", rank), ("sub_batch", sub_batch),
                        ("batch", batch), ("batches", batches), ("fifo_depth", fifo_depth)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
    if rank > min(rows, cols):
        raise ValueError(f"rank {rank} exceeds min(rows, cols) = {min(rows, cols)}")
    build_dir = Path(build_dir).resolve()
    lib = build_shared_library(build_dir / "firmware")
    verilog = write_harness(build_dir / "rtl", rows=rows, cols=cols, rank=rank, lanes=lanes, fifo_depth=fifo_depth,
                            formats=formats, max_batch=max_batch)
    params = dict(library=str(lib), rows=rows, cols=cols, rank=rank, sub_batch=sub_batch, batch=batch,
                  batches=batches, fifo_depth=fifo_depth, seed=seed, formats=formats, stalls=stalls)
    try:
        return run_cocotb(verilog_sources=[verilog], toplevel=TOPLEVEL, test_module="testbench.bench_csr",
                          build_dir=build_dir / "sim", extra_env={"SBPCA_CSR_BENCH": json.dumps(params)},
                          waves=waves, testcase=testcase, seed=seed)
    except SystemExit as exc:  # cocotb's runner exits when a test fails under pytest
        from testbench.simulator import SimulatorError

        log = build_dir / "sim" / "sim.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        lines = [ln.strip() for ln in text.splitlines() if "Error" in ln or " FAIL " in ln]
        raise SimulatorError(f"firmware co-simulation failed (log: {log}):\n" + "\n".join(lines[-20:])) from exc


def input_ports(component: wiring.Component) -> list[str]:
    """Verilog names of the component's input ports (``ctrl__x`` style), bus excluded."""
    names = []
    for path, member, _ in component.signature.flatten(component):
        if path[0] != "bus" and member.flow is wiring.In:
            names.append("__".join(str(part) for part in path))
    return names


# ----------------------------------------------------------------------------- cocotb side

def _params() -> dict:
    raw = os.environ.get("SBPCA_CSR_BENCH")
    if not raw:
        raise RuntimeError("SBPCA_CSR_BENCH is not set: run this bench through run_csr_cosim()")
    return json.loads(raw)


def _word(value: int) -> int:
    return int(value) & 0xFFFFFFFF


_REPORT: dict = {}


def _report(test: str, result: dict) -> None:
    from testbench.simulator import write_report

    _REPORT[test] = result
    write_report(_REPORT)


class MockEngine:
    """Behavioural engine behind the bank: golden-model arithmetic, bank-facing handshakes.

    Samples the bank's ports at the falling clock edge and drives them there (the bank's
    stream ``ready``/``valid`` come from registered FIFO state, so a decision taken at the
    falling edge holds at the next rising edge).  ``rng`` adds random back-pressure.
    """

    def __init__(self, dut, clock, p: dict, rng: np.random.Generator | None) -> None:
        from pymodel.sbpca import SBPCA

        from pymodel.formats import get_format_set

        self.dut, self.clock, self.rng = dut, clock, rng
        self.rows, self.cols, self.rank = p["rows"], p["cols"], p["rank"]
        f = get_format_set(p["formats"])
        self.per_sample = elems_per_word(f.x.bits, f.delta.bits)  # elements per sample word
        self.per_state = elems_per_word(f.state.bits)
        self.wx, self.wd = words_per_vector(self.cols, self.per_sample), words_per_vector(self.rows, self.per_sample)
        self.model = SBPCA(p["rows"], p["cols"], p["rank"], p["sub_batch"], seed=p["seed"], fixed=p["formats"])
        self.words: list[int] = []
        self.out_queue: list[int] = []
        self.events: list[str] = []
        self.busy_left = 0
        self.upd_left = 0
        self.upd_pulses = 0
        self.pending_done = False
        self.sub_batch = p["sub_batch"]
        self.samples_in_sub = 0

    def _set(self, name: str, value: int) -> None:
        getattr(self.dut, name).value = value

    async def run(self) -> None:
        d = self.dut
        per_sample = self.wx + self.wd  # words per sample
        for name in ("status__busy", "status__done", "status__upd_busy", "status__upd_done",
                     "sample_data__ready", "factor_data__valid", "factor_data__payload",
                     "samples__count_inc", "sub_batches__count_inc", "cycles__count_inc",
                     "updates__count_inc", "errors__saturation_set", "errors__sigma_guard_set",
                     "errors__degenerate_set", "errors__protocol_set"):
            self._set(name, 0)
        while True:
            await FallingEdge(self.clock)
            # strobes last one cycle
            for name in ("samples__count_inc", "sub_batches__count_inc", "updates__count_inc",
                         "errors__saturation_set", "errors__sigma_guard_set", "errors__degenerate_set",
                         "errors__protocol_set"):
                self._set(name, 0)
            if int(d.ctrl__soft_reset.value):
                self.words.clear()
                self.out_queue.clear()
                self.events.append("soft_reset")
            if int(d.ctrl__start_batch.value):
                self.events.append("start")
                self.words.clear()
                self.samples_in_sub = 0
                self._set("status__done", 0)
                self._set("status__upd_done", 0)
            # sample stream: take the visible word now, it transfers at the next rising edge
            take = int(d.sample_data__valid.value) and (self.rng is None or self.rng.random() < 0.7)
            if take:
                self.words.append(int(d.sample_data__payload.value))
                if len(self.words) % per_sample == 0:
                    self._set("samples__count_inc", 1)
                    self.samples_in_sub += 1
                    if self.samples_in_sub == self.sub_batch:
                        self.samples_in_sub = 0
                        self._set("sub_batches__count_inc", 1)
            self._set("sample_data__ready", int(bool(take)))
            if int(d.ctrl__end_batch.value):
                self.events.append("end")
                if self.samples_in_sub:
                    self._set("sub_batches__count_inc", 1)
                    self.samples_in_sub = 0
                self._finish_batch(per_sample)
            if self.busy_left:
                self.busy_left -= 1
                self._set("cycles__count_inc", 1)
                if self.busy_left == 0:
                    self._set("status__busy", 0)
                    self._set("status__done", 1)
            else:
                self._set("cycles__count_inc", 0)
            if int(d.ctrl__read_sigma.value):
                self.events.append("read_sigma")
                self.out_queue += [_word(v) for v in self.model.sigma_int]
            if int(d.ctrl__read_factors.value):
                self.events.append("read_factors")
                for c in range(self.rank):
                    self.out_queue += pack_vector(self.model.Delta_int[:, c], self.per_state)
                    self.out_queue += pack_vector(self.model.X_int[:, c], self.per_state)
            # factor stream: offer a word when the bank can take it (ready is registered state)
            offer = bool(self.out_queue) and int(d.factor_data__ready.value) and (
                self.rng is None or self.rng.random() < 0.7)
            if offer:
                self._set("factor_data__payload", self.out_queue.pop(0))
            self._set("factor_data__valid", int(bool(offer)))
            if int(d.ctrl__apply_update.value):
                self.events.append("apply")
                self._set("status__upd_done", 0)
                self._set("status__upd_busy", 1)
                self.upd_left = 4 * self.rank
            if self.upd_left:
                self.upd_left -= 1
                if self.upd_left % 4 == 0:
                    self._set("updates__count_inc", 1)
                    self.upd_pulses += 1
                if self.upd_left == 0:
                    self._set("status__upd_busy", 0)
                    self._set("status__upd_done", 1)

    def _finish_batch(self, per_sample: int) -> None:
        if not self.words or len(self.words) % per_sample:
            self._set("errors__protocol_set", 1)
            self._set("status__done", 1)
            return
        arr = np.asarray(self.words, dtype=np.int64).reshape(-1, per_sample)
        x = np.asarray([unpack_words(w[: self.wx], self.cols, self.per_sample) for w in arr], dtype=np.int64)
        delta = np.asarray([unpack_words(w[self.wx:], self.rows, self.per_sample) for w in arr], dtype=np.int64)
        before = self.model.status.as_dict()
        self.model.update_int(x, delta)
        after = self.model.status.as_dict()
        if after["sigma_guard"] > before["sigma_guard"]:
            self._set("errors__sigma_guard_set", 1)
        if sum(after["saturation"].values()) > sum(before["saturation"].values()):
            self._set("errors__saturation_set", 1)
        if after["degenerate"] > before["degenerate"]:
            self._set("errors__degenerate_set", 1)
        self._set("status__busy", 1)
        self.busy_left = 5 + arr.shape[0]


async def _setup(dut, p: dict, *, loopback: int, stall_seed: int | None):
    """Clock, reset, every harness input at 0, a bus master and an initialised driver."""
    Clock(dut.clk, 10, "ns").start()
    dut.rst.value = 1
    bank = CsrBank(constants=build_constants(rows=p["rows"], cols=p["cols"], rank=p["rank"],
                                             fifo_depth=p["fifo_depth"], formats=p["formats"]),
                   fifo_depth=p["fifo_depth"])
    harness = CsrHarness(bank)
    bank._MustUse__silence = harness._MustUse__silence = True  # built for its port list only
    for name in input_ports(harness):
        getattr(dut, name).value = 0
    dut.loopback.value = loopback
    pause = None
    if stall_seed is not None:
        prng = np.random.default_rng(stall_seed)
        pause = iter(lambda: int(prng.integers(0, 3)), None)
    wb = WishboneMaster(dut, dut.clk, pause=pause)
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    read, write = wb.blocking()
    read_block, write_block = wb.blocking_blocks()
    drv = FirmwareDriver(p["library"], read, write, read_block=read_block, write_block=write_block)
    await bridge(drv.init)()
    return wb, drv


@cocotb.test()
async def test_registers(dut):
    """Firmware init/configure read-back, W1S pulses, W1C flags, counters, byte lanes."""
    p = _params()
    wb, drv = await _setup(dut, p, loopback=1, stall_seed=None)
    dev = drv.dev
    assert (dev.rows, dev.cols, dev.rank, dev.fifo_depth) == (p["rows"], p["cols"], p["rank"], p["fifo_depth"]), \
        "ID/DIMS/PARAMS read by the firmware differ from the build parameters"
    assert dev.x_bits == 16 or p["formats"] != "q16"
    cfg = dict(batch_size=p["batch"], sub_batch=p["sub_batch"], scheme=1, manage=0, bl=200,
               lr_scale=0x123456, seed=0xACE1)
    await bridge(drv.configure)(**cfg)
    assert int(dut.batch_size__samples.value) == p["batch"]
    assert int(dut.sub_batch__samples.value) == p["sub_batch"]
    assert int(dut.update_cfg__scheme.value) == 1 and int(dut.update_cfg__bl.value) == 200
    assert int(dut.lr_scale__value.value) == 0x123456 and int(dut.seed__value.value) == 0xACE1
    # invalid configurations never reach the bus
    for bad in (dict(cfg, sub_batch=0), dict(cfg, sub_batch=p["batch"] + 1), dict(cfg, scheme=3),
                dict(cfg, seed=0), dict(cfg, bl=0)):
        before = wb.stats.writes
        try:
            await bridge(drv.configure)(**bad)
        except FirmwareError as exc:
            assert exc.status == STATUS["SBPCA_ERR_ARG"], exc
        else:
            raise AssertionError(f"configure accepted {bad}")
        assert wb.stats.writes == before
    # byte lanes: only the selected byte of SEED changes
    await wb.write(REGS.SEED.offset, 0x000000FF, sel=0b0001)
    assert await wb.read(REGS.SEED.offset) == 0xACFF
    # W1S: one write, one single-cycle pulse
    seen = []

    async def watch(cycles: int) -> None:
        for _ in range(cycles):
            await FallingEdge(dut.clk)
            if int(dut.ctrl__apply_update.value):
                seen.append(1)

    watcher = cocotb.start_soon(watch(12))
    await wb.write(REGS.CTRL.offset, REGS.CTRL.pack(APPLY_UPDATE=1))
    assert await wb.read(REGS.CTRL.offset) == 0, "CTRL must read 0"
    await watcher
    assert seen == [1], f"APPLY_UPDATE pulsed {len(seen)} times"
    # W1C: hardware sets, write 1 clears only that flag, set wins over a clear
    dut.errors__saturation_set.value = 1
    dut.errors__protocol_set.value = 1
    await ClockCycles(dut.clk, 1)
    dut.errors__saturation_set.value = 0
    dut.errors__protocol_set.value = 0
    await ClockCycles(dut.clk, 1)
    errs = await wb.read(REGS.ERRORS.offset)
    assert errs == REGS.ERRORS.SATURATION.mask | REGS.ERRORS.PROTOCOL.mask, hex(errs)
    status, flags = await bridge(drv.check_errors)()
    assert status == STATUS["SBPCA_ERR_PROTOCOL"] and flags == errs
    assert await wb.read(REGS.ERRORS.offset) == 0, "check_errors must clear what it saw"
    # counters: strobes count, a write loads
    for _ in range(5):
        dut.cycles__count_inc.value = 1
        await ClockCycles(dut.clk, 1)
    dut.cycles__count_inc.value = 0
    assert await wb.read(REGS.CYCLES.offset) == 5
    await wb.write(REGS.CYCLES.offset, 100)
    assert await wb.read(REGS.CYCLES.offset) == 100
    # unmapped address: acked, reads 0, flags BUS_ERROR
    assert await wb.read(0x0FC) == 0
    assert await wb.read(REGS.ERRORS.offset) == REGS.ERRORS.BUS_ERROR.mask
    await wb.write(REGS.ERRORS.offset, 0xFFFFFFFF)
    # underflow: reading an empty factor window returns 0 and flags it
    assert await wb.read(REGS.FACTOR_DATA.offset) == 0
    assert await wb.read(REGS.ERRORS.offset) == REGS.ERRORS.FACTOR_UNDERFLOW.mask
    status, _ = await bridge(drv.check_errors)()
    assert status == STATUS["SBPCA_ERR_PROTOCOL"]
    _report("test_registers", {"reads": wb.stats.reads, "writes": wb.stats.writes})

@cocotb.test()
async def test_loopback(dut):
    """Sample window -> loopback FIFO -> factor window, written and read by the firmware."""
    p = _params()
    wb, drv = await _setup(dut, p, loopback=1, stall_seed=p["seed"] if p["stalls"] else None)
    a, b, k = p["rows"], p["cols"], p["rank"]
    rng = np.random.default_rng(p["seed"] + 7)
    lo, hi = -(1 << (drv.dev.x_bits - 1)), (1 << (drv.dev.x_bits - 1))
    x = rng.integers(lo, hi, size=(k, b))
    x[0, 0], x[-1, -1] = lo, hi - 1  # the extremes of the format
    delta = rng.integers(-(1 << (drv.dev.delta_bits - 1)), 1 << (drv.dev.delta_bits - 1), size=(k, a))
    await bridge(drv.stream_samples)(x, delta)
    # the words on the bus, packed as docs/REGISTERS.md (PACKING) says; the loop hands them to the
    # factor window, where the firmware reads them as k (Delta_c, X_c) vectors
    es, ef = drv.dev.sample_elems, drv.dev.state_elems
    words = [w for j in range(k) for w in pack_vector(x[j], es) + pack_vector(delta[j], es)]
    await ClockCycles(dut.clk, 4)
    level = REGS.FIFO_STATUS.FACTOR_LEVEL.get(await wb.read(REGS.FIFO_STATUS.offset))
    assert level == min(len(words), p["fifo_depth"]), f"FACTOR_LEVEL {level}"
    d_f, x_f = await bridge(drv.read_factors)()
    wa, wb_ = words_per_vector(a, ef), words_per_vector(b, ef)
    assert len(words) == k * (wa + wb_), "the loop needs as many sample words as factor words"
    for c in range(k):
        pair = words[c * (wa + wb_): (c + 1) * (wa + wb_)]
        want_d = unpack_words(pair[:wa], a, ef)
        want_x = unpack_words(pair[wa:], b, ef)
        assert np.array_equal(d_f[:, c], want_d), f"word mismatch in pair {c} (Delta part)"
        assert np.array_equal(x_f[:, c], want_x), f"word mismatch in pair {c} (X part)"
    status, flags = await bridge(drv.check_errors)()
    assert status == STATUS["SBPCA_OK"], f"flags {flags:#x}"
    # overflow: more words than the sample FIFO holds with the loop blocked by a soft reset
    dut.loopback.value = 0
    for i in range(p["fifo_depth"] + 1):
        await wb.write(REGS.SAMPLE_DATA.offset, i)
    assert REGS.ERRORS.SAMPLE_OVERFLOW.get(await wb.read(REGS.ERRORS.offset)) == 1
    space = REGS.FIFO_STATUS.SAMPLE_SPACE.get(await wb.read(REGS.FIFO_STATUS.offset))
    assert space == 0
    await wb.write(REGS.CTRL.offset, REGS.CTRL.pack(SOFT_RESET=1))
    space = REGS.FIFO_STATUS.SAMPLE_SPACE.get(await wb.read(REGS.FIFO_STATUS.offset))
    assert space == p["fifo_depth"], "SOFT_RESET must flush the sample FIFO"
    _report("test_loopback", {"words": int(len(words)), "reads": wb.stats.reads, "writes": wb.stats.writes,
                              "ack_wait_cycles": wb.stats.wait_cycles})

@cocotb.test()
async def test_train_batch(dut):
    """sbpca_train_batch against the mock engine; scoreboard: an independent golden model."""
    from pymodel.formats import get_format_set
    from pymodel.sbpca import SBPCA

    p = _params()
    wb, drv = await _setup(dut, p, loopback=0, stall_seed=p["seed"] if p["stalls"] else None)
    rng = np.random.default_rng(p["seed"])
    engine = MockEngine(dut, dut.clk, p, np.random.default_rng(p["seed"] + 1) if p["stalls"] else None)
    cocotb.start_soon(engine.run())
    fmts = get_format_set(p["formats"])
    golden = SBPCA(p["rows"], p["cols"], p["rank"], p["sub_batch"], seed=p["seed"], fixed=p["formats"])
    results = []
    for batch in range(p["batches"]):
        x = fmts.x.quantize(rng.normal(0, 1.0, size=(p["batch"], p["cols"])))
        delta = fmts.delta.quantize(rng.normal(0, 0.3, size=(p["batch"], p["rows"])))
        res = await bridge(drv.train_batch)(x, delta, sub_batch=p["sub_batch"], bl=31,
                                                  seed=batch + 1)
        golden.update_int(x, delta)
        assert res.status in (STATUS["SBPCA_OK"], STATUS["SBPCA_ERR_HW"]), res.status_name
        assert np.array_equal(res.sigma, golden.sigma_int), (
            f"batch {batch}: sigma from firmware {res.sigma.tolist()} != golden {golden.sigma_int.tolist()}")
        want_sub = -(-p["batch"] // p["sub_batch"])
        assert (res.samples, res.sub_batches, res.updates) == (p["batch"], want_sub, p["rank"]), res
        assert res.cycles > 0
        g_flags = golden.status.as_dict()
        if res.status == STATUS["SBPCA_ERR_HW"]:
            assert res.errors & (REGS.ERRORS.SIGMA_GUARD.mask | REGS.ERRORS.SATURATION.mask
                                 | REGS.ERRORS.DEGENERATE.mask), hex(res.errors)
        results.append({"status": res.status_name, "sigma": res.sigma.tolist(), "cycles": res.cycles,
                        "errors": res.errors, "golden_flags": g_flags})
    d_f, x_f = await bridge(drv.read_factors)()
    assert np.array_equal(d_f, golden.Delta_int), "Delta read by the firmware differs from the golden model"
    assert np.array_equal(x_f, golden.X_int), "X read by the firmware differs from the golden model"
    assert engine.events.count("start") == p["batches"] and engine.events.count("apply") == p["batches"]
    _report("test_train_batch", {"batches": results, "bus_reads": wb.stats.reads,
                                 "bus_writes": wb.stats.writes, "events": engine.events})

@cocotb.test()
async def test_firmware_errors(dut):
    """Out-of-range samples never reach the bus; a silent engine times out."""
    p = _params()
    wb, drv = await _setup(dut, p, loopback=0, stall_seed=None)
    dut.sample_data__ready.value = 0
    dut.status__done.value = 0
    bad = np.zeros((1, p["cols"]), dtype=np.int64)
    bad[0, 0] = 1 << (drv.dev.x_bits - 1)
    before = wb.stats.writes
    try:
        await bridge(drv.stream_samples)(bad, np.zeros((1, p["rows"]), dtype=np.int64))
    except FirmwareError as exc:
        assert exc.status == STATUS["SBPCA_ERR_RANGE"], exc
    else:
        raise AssertionError("an out-of-range x word was accepted")
    assert wb.stats.writes == before
    try:
        await bridge(drv.wait_done)(max_polls=5)
    except FirmwareError as exc:
        assert exc.status == STATUS["SBPCA_ERR_TIMEOUT"], exc
    else:
        raise AssertionError("wait_done returned without DONE")
    # the engine never takes words: the stream stops after the FIFO fills
    big = np.zeros((p["fifo_depth"], p["cols"]), dtype=np.int64)
    try:
        await bridge(drv.stream_samples)(big, np.zeros((p["fifo_depth"], p["rows"]), dtype=np.int64),
                                               max_polls=4)
    except FirmwareError as exc:
        assert exc.status == STATUS["SBPCA_ERR_TIMEOUT"], exc
    else:
        raise AssertionError("streaming into a stuck engine did not time out")
    status, flags = await bridge(drv.check_errors)()
    assert status == STATUS["SBPCA_OK"], f"the firmware overflowed the FIFO: {flags:#x}"
    _report("test_firmware_errors", {"writes": wb.stats.writes})
