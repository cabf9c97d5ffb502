"""cocotb bench of the SoC: the C firmware drives the RTL over Wishbone, the golden model scores.

The job (JSON named by ``$SBPCA_SOC_JOB``, written by :func:`testbench.soc_cosim.run_soc_cosim`)
holds the parameters, the batches, the firmware configuration and the expected words.  The C
driver is loaded with ctypes; its register functions are ``cocotb.task.resume``-wrapped
:class:`testbench.wishbone.WishboneMaster` transactions and every driver call runs in a
``cocotb.task.bridge`` thread.  Per batch the firmware runs ``sbpca_train_batch`` (configure,
start, stream, end, wait DONE, check errors, read σ, apply the k updates, check errors) and then
``sbpca_read_factors``.  A monitor coroutine wakes only while ``pulses.valid`` is high and
records every pulse word (optionally holding ``ready`` low at random).  σ, Δ_c, X_c and every
pulse word are compared as integers by the shared :class:`testbench.scoreboard.Scoreboard` (a
mismatch names the batch, the word, both values and the reproduce command; a pulse word also
its differing fields), and the run ends with :func:`end_of_run` (nothing left in flight).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge
from cocotb.utils import get_sim_time

from firmware.binding import STATUS, STATUS_NAMES, FirmwareDriver, FirmwareError
from hdl.regmap import REGS
from pymodel.crossbar.pulses import unpack_fields
from testbench.scoreboard import Scoreboard
from testbench.simulator import write_report
from testbench.wishbone import WishboneMaster

PERIOD_NS = 10


class PulseMonitor:
    """Records every transfer on ``pulses``; wakes per clock only while ``valid`` is high."""

    def __init__(self, dut, stall_prob: float, rng: random.Random) -> None:
        self.dut, self.stall, self.rng = dut, stall_prob, rng
        self.words: list[int] = []
        self.stall_cycles = 0
        self.hold = False  # the crossbar refuses every word while set (a stuck array)

    async def run(self) -> None:
        d = self.dut
        d.pulses__ready.value = 1
        while True:
            if not int(d.pulses__valid.value):
                await RisingEdge(d.pulses__valid)
            await FallingEdge(d.clk)
            # outputs are settled after the rising edge; the transfer happens at the next one
            if self.hold:
                d.pulses__ready.value = 0
                continue
            ready = int(self.rng.random() >= self.stall)
            d.pulses__ready.value = ready
            if int(d.pulses__valid.value):
                if ready:
                    self.words.append(int(d.pulses__payload.value))
                else:
                    self.stall_cycles += 1


@cocotb.test()
async def soc_firmware_cosim(dut):
    """Firmware-sequenced batches through the SoC; σ, factors and pulse words checked."""
    wall0 = time.perf_counter()
    job = json.loads(Path(os.environ["SBPCA_SOC_JOB"]).read_text())
    ep = job["params"]["engine"]
    a, b, k, s = ep["rows"], ep["cols"], ep["rank"], ep["sub_batch"]
    cfg = job["config"]
    fields = [tuple(f) for f in job["word_fields"]]
    rng = random.Random(job["stim_seed"])
    sb = Scoreboard(reproduce=job.get("reproduce", ""))

    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    pause = iter(lambda: rng.randrange(3), None) if job["bus_stalls"] else None
    wb = WishboneMaster(dut, dut.clk, pause=pause)
    dut.pulses__ready.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    mon = PulseMonitor(dut, job["pulse_stall_prob"], random.Random(job["stim_seed"] + 1))
    cocotb.start_soon(mon.run())
    # the sample-path window of each batch: from the START_BATCH write to the first STATUS read
    # that finds DONE set and BUSY clear (what the firmware waits for)
    win: dict = {"start": None, "done": None}

    async def write_t(addr: int, value: int) -> None:
        if addr == REGS.CTRL.offset and value & REGS.CTRL.START_BATCH.mask:
            win.update(start=get_sim_time("ns"), done=None)
        await wb.write(addr, value)

    async def read_t(addr: int) -> int:
        v = await wb.read(addr)
        if (addr == REGS.STATUS.offset and win["start"] is not None and win["done"] is None
                and v & REGS.STATUS.DONE.mask and not v & REGS.STATUS.BUSY.mask):
            win["done"] = get_sim_time("ns")
        return v

    read_block, write_block = wb.blocking_blocks()
    drv = FirmwareDriver(job["library"], resume(read_t), resume(write_t),
                         read_block=read_block if job.get("block_ops", True) else None,
                         write_block=write_block if job.get("block_ops", True) else None)
    await bridge(drv.init)()
    dev = drv.dev
    for name, got, want in (("rows", dev.rows, a), ("cols", dev.cols, b), ("rank", dev.rank, k),
                            ("lanes", dev.lanes, ep["lanes"]),
                            ("fifo_depth", dev.fifo_depth, job["params"]["fifo_depth"])):
        sb.check("firmware init", name, got, want)

    # the engine computes its first reciprocals after reset: the firmware waits for idle
    status = await _firmware_status(drv.wait_idle, max_polls=10000)
    if status != "SBPCA_OK":
        sb.fail("after reset", "sbpca_wait_idle", status, "SBPCA_OK", "firmware call failed")
    batches_out = []
    resets_out = []
    final_state = None  # the state read over the bus after the last batch (σ, Δ_c, X_c words)
    total_cycles = busy_cycles = samples = stream_cycles = 0
    X0, D0, s0 = (np.asarray(v, dtype=np.int64) for v in job["init"])
    checkpoint = (D0, X0, s0)  # the last state read back: what a soft reset restores
    for bi, (batch, exp) in enumerate(zip(job["batches"], job["expected"])):
        x = np.asarray(batch["x"], dtype=np.int64)
        d = np.asarray(batch["d"], dtype=np.int64)
        scenario = job["resets"][bi]
        if scenario:
            resets_out.append(await soft_reset_scenario(scenario, bi, drv, wb, mon, sb, job, x, d, checkpoint))
        n_words0 = len(mon.words)
        t0 = get_sim_time("ns")
        res = await bridge(drv.train_batch)(x, d, sub_batch=s, scheme=cfg["scheme"], manage=cfg["manage"],
                                            bl=cfg["bl"], lr_scale=cfg["lr_scale"], seed=cfg["seed"])
        t1 = get_sim_time("ns")
        if res.status not in (STATUS["SBPCA_OK"], STATUS["SBPCA_ERR_HW"]):
            sb.fail(f"batch {bi}", "sbpca_train_batch", f"{res.status_name} (errors {res.errors:#x})",
                    "SBPCA_OK or SBPCA_ERR_HW", "firmware call failed")
        for c in range(k):
            sb.check(f"batch {bi}", f"sigma[{c}]", res.sigma[c], exp["sigma"][c])
        d_f, x_f = await bridge(drv.read_factors)()
        for c in range(k):
            for r in range(a):
                sb.check(f"batch {bi}", f"Delta[{r},{c}]", d_f[r, c], exp["Delta"][c][r])
            for r in range(b):
                sb.check(f"batch {bi}", f"X[{r},{c}]", x_f[r, c], exp["X"][c][r])
        got = mon.words[n_words0:]
        want = [(c, t, w) for c, ws in enumerate(exp["pulses"]) for t, w in enumerate(ws)]
        for (c, t, w), g in zip(want, got):
            if not sb.check(f"batch {bi} update {c} slot {t} pulse word", "", g, w):
                gf, wf = unpack_fields(fields, g), unpack_fields(fields, w)
                sb.annotate("differing fields: " + ", ".join(
                    f"{n} rtl={gf[n]:#x} golden={wf[n]:#x}" for n in gf if gf[n] != wf[n]))
        sb.expect_count(f"batch {bi}", "pulse", len(got), len(want))
        sb.check(f"batch {bi}", "SAMPLES counter", res.samples, exp["samples"])
        sb.check(f"batch {bi}", "SUB_BATCHES counter", res.sub_batches, exp["sub_batches"])
        sb.check(f"batch {bi}", "UPDATES counter", res.updates, k)
        flags = exp["flags"]
        for name, field in (("saturation", "SATURATION"), ("sigma_guard", "SIGMA_GUARD"),
                            ("degenerate", "DEGENERATE")):
            sb.check(f"batch {bi}", f"ERRORS.{field}", REGS.ERRORS[field].get(res.errors), int(flags[name]))
        for field in ("PROTOCOL", "SAMPLE_OVERFLOW", "FACTOR_UNDERFLOW", "BUS_ERROR", "BATCH_LIMIT"):
            sb.check(f"batch {bi}", f"ERRORS.{field}", REGS.ERRORS[field].get(res.errors), 0)
        checkpoint = (d_f, x_f, np.asarray(res.sigma, dtype=np.int64))
        final_state = {"sigma": [int(v) for v in res.sigma], "Delta": d_f.T.tolist(), "X": x_f.T.tolist()}
        cycles = int((t1 - t0) // PERIOD_NS)
        stream = int((win["done"] - win["start"]) // PERIOD_NS) if win["done"] is not None else -1
        if stream < 0:
            sb.fail(f"batch {bi}", "STATUS.DONE", 0, 1, "no STATUS read with DONE after START_BATCH")
        stream_cycles += max(stream, 0)
        total_cycles += cycles
        busy_cycles += res.cycles
        samples += int(x.shape[0])
        batches_out.append({"status": res.status_name, "samples": int(x.shape[0]), "cycles": cycles,
                            "stream_cycles": stream,
                            "engine_busy_cycles": res.cycles, "errors": res.errors,
                            "pulse_words": len(got), "sigma": res.sigma.tolist()})

    status, flags = await bridge(drv.check_errors)()
    sb.check("end of run", "ERRORS register", flags, 0)
    await end_of_run(dut, drv, wb, mon, sb, job)
    pulse_words = len(mon.words)
    extra = {}
    if job.get("extra_checks"):
        extra["idle_check"] = await idle_check(drv, wb, mon, sb)
        extra["batch_limit_check"] = await batch_limit_check(drv, wb, sb, job, rng)
    report = {
        **sb.report(),
        "samples": samples,
        "batches": batches_out,
        "cycles": total_cycles,
        "engine_busy_cycles": busy_cycles,
        "cycles_per_sample": busy_cycles / samples if samples else None,
        "bus_cycles_per_sample": total_cycles / samples if samples else None,
        "stream_cycles": stream_cycles,
        "stream_cycles_per_sample": stream_cycles / samples if samples else None,
        "block_words": drv.block_words,
        "pulse_words": pulse_words,
        "pulse_stall_cycles": mon.stall_cycles,
        "bus_reads": wb.stats.reads,
        "bus_writes": wb.stats.writes,
        "firmware_accesses": drv.accesses,
        "sim_wall_seconds": round(time.perf_counter() - wall0, 3),
        "soft_resets": resets_out,
        "final_state": final_state,
        **extra,
    }
    write_report(report)
    assert sb.mismatches == 0, "; ".join(sb.details[:5])


async def end_of_run(dut, drv: FirmwareDriver, wb: WishboneMaster, mon: PulseMonitor, sb: Scoreboard,
                     job: dict) -> None:
    """Nothing in flight after the last batch: the engine and the drivers go idle within the
    firmware's poll budget (``sbpca_wait_idle``; STATUS.BUSY is stretched 16 cycles past the
    engine's own busy), the sample FIFO is drained, no factor word is unread, no pulse word is
    offered and none came beyond the golden count.  These are conditions, not stream words, so
    they do not add to ``words_compared``."""
    FS = REGS.FIFO_STATUS
    idle = await _firmware_status(drv.wait_idle, max_polls=10000)
    sb.require("end of run", "sbpca_wait_idle", idle, "SBPCA_OK", "engine or driver work left in flight")
    fifo = await wb.read(FS.offset)
    sb.require("end of run", "FIFO_STATUS.SAMPLE_SPACE", FS.SAMPLE_SPACE.get(fifo), job["params"]["fifo_depth"],
               "sample words left in the FIFO")
    sb.require("end of run", "FIFO_STATUS.FACTOR_LEVEL", FS.FACTOR_LEVEL.get(fifo), 0, "factor words left unread")
    sb.require("end of run", "pulses.valid", int(dut.pulses__valid.value), 0, "pulse word in flight")
    sb.expect_count("end of run", "pulse", len(mon.words),
                    sum(len(ws) for e in job["expected"] for ws in e["pulses"]))


async def _firmware_status(fn, **kw) -> str:
    """Run one driver call in a bridge thread; its status name (FirmwareError caught)."""
    try:
        await bridge(fn)(**kw)
    except FirmwareError as exc:
        return exc.name
    return "SBPCA_OK"


async def soft_reset_scenario(scenario: str, bi: int, drv: FirmwareDriver, wb: WishboneMaster, mon: PulseMonitor,
                              sb: Scoreboard, job: dict, x: np.ndarray, d: np.ndarray, checkpoint) -> dict:
    """CTRL.SOFT_RESET in the middle of a batch, a factor readout or a pulse update, then the restore.

    The interrupted work is set up with the firmware's own steps (or raw register writes), the
    reset is ``sbpca_soft_reset``; expected (docs/SOC.md): STATE_VALID 0 and START_BATCH refused
    with PROTOCOL, the interrupted stream gone (FACTOR_LEVEL 0, UPD_BUSY 0, no pulse word while
    the crossbar was held), then ``sbpca_load_state`` of the checkpoint (the state read after the
    last batch) gives STATE_VALID 1 and reads back word for word.  The normal batch that follows
    is scored against the golden model, whose driver LFSRs restart from their seeds here.
    """
    ep = job["params"]["engine"]
    s, k = ep["sub_batch"], ep["rank"]
    R, ST = REGS, REGS.STATUS
    tag = f"batch {bi} soft reset {scenario}"
    out: dict = {"batch": bi, "scenario": scenario}
    if scenario == "mid_batch":
        cfg = job["config"]
        # as sbpca_train_batch does: the previous call's work (a factor dump, whose STATUS.BUSY
        # is stretched BUSY_HOLD cycles) must be over before sbpca_configure
        idle = await _firmware_status(drv.wait_idle, max_polls=10000)
        sb.require(tag, "sbpca_wait_idle", idle, "SBPCA_OK", "engine busy before the configuration")
        await bridge(drv.configure)(batch_size=int(x.shape[0]), sub_batch=s, scheme=cfg["scheme"],
                                    manage=cfg["manage"], bl=cfg["bl"], lr_scale=cfg["lr_scale"], seed=cfg["seed"])
        await bridge(drv.start_batch)()
        part = min(int(x.shape[0]) - 1, s + 1)  # one whole sub-batch in the engine, the next one open
        await bridge(drv.stream_samples)(x[:part], d[:part])
        out["samples_before"] = await wb.read(R.SAMPLES.offset)
        out["status_before"] = await wb.read(ST.offset)
        sb.check(tag, "samples streamed before the reset", int(out["samples_before"] >= 1), 1)
    elif scenario == "mid_readout":
        await wb.write(R.CTRL.offset, R.CTRL.READ_FACTORS.mask)
        # the engine starts its dump only once it is quiet, a design-dependent number of cycles
        # later: wait (bounded) for two words -- a readout has at least 2k, each vector starting
        # a new word -- and take one, so that the reset finds the readout under way
        for _ in range(1000):
            if R.FIFO_STATUS.FACTOR_LEVEL.get(await wb.read(R.FIFO_STATUS.offset)) >= 2:
                break
        await wb.read(R.FACTOR_DATA.offset)
        out["factor_level_before"] = R.FIFO_STATUS.FACTOR_LEVEL.get(await wb.read(R.FIFO_STATUS.offset))
        sb.check(tag, "words waiting in FACTOR_DATA before the reset", int(out["factor_level_before"] > 0), 1)
    elif scenario == "mid_update":
        mon.hold = True
        await wb.write(R.CTRL.offset, R.CTRL.APPLY_UPDATE.mask)
        for _ in range(4):
            await wb.read(R.ID.offset)  # the first pair reaches the driver
        out["status_before"] = await wb.read(ST.offset)
        sb.check(tag, "UPD_BUSY before the reset", ST.UPD_BUSY.get(out["status_before"]), 1)
    else:
        raise ValueError(f"unknown soft-reset scenario {scenario!r}")
    n_pulses = len(mon.words)
    out["reset_status"] = await _firmware_status(drv.soft_reset, max_polls=10000)
    mon.hold = False
    sb.check(tag, "sbpca_soft_reset", int(out["reset_status"] == "SBPCA_OK"), 1)
    after = await wb.read(ST.offset)
    fifo = await wb.read(R.FIFO_STATUS.offset)
    out.update(status_after=after, fifo_status_after=fifo)
    sb.check(tag, "STATUS.STATE_VALID after the reset", ST.STATE_VALID.get(after), 0)
    sb.check(tag, "STATUS.UPD_BUSY after the reset", ST.UPD_BUSY.get(after), 0)
    sb.check(tag, "FIFO_STATUS after the reset (flushed)", fifo,
             R.FIFO_STATUS.pack(SAMPLE_SPACE=job["params"]["fifo_depth"], FACTOR_LEVEL=0))
    sb.check(tag, "pulse words during the held update", len(mon.words) - n_pulses, 0)
    await wb.write(R.ERRORS.offset, 0xFFFFFFFF)
    await wb.write(R.CTRL.offset, R.CTRL.START_BATCH.mask)
    refused = await wb.read(R.ERRORS.offset)
    sb.check(tag, "START_BATCH refused (PROTOCOL) without a state", R.ERRORS.PROTOCOL.get(refused), 1)
    await wb.write(R.ERRORS.offset, 0xFFFFFFFF)
    D, X, sg = checkpoint
    out["load_status"] = await _firmware_status(drv.load_state, delta_f=D, x_f=X, sigma=sg)
    sb.check(tag, "sbpca_load_state", int(out["load_status"] == "SBPCA_OK"), 1)
    sb.check(tag, "STATUS.STATE_VALID after the load", ST.STATE_VALID.get(await wb.read(ST.offset)), 1)
    D2, X2, s2 = await bridge(drv.read_state)()
    for c in range(k):
        sb.check(tag, f"restored sigma[{c}]", s2[c], sg[c])
        for r in range(D.shape[0]):
            sb.check(tag, f"restored Delta[{r},{c}]", D2[r, c], D[r, c])
        for r in range(X.shape[0]):
            sb.check(tag, f"restored X[{r},{c}]", X2[r, c], X[r, c])
    return out


async def idle_check(drv: FirmwareDriver, wb: WishboneMaster, mon: PulseMonitor, sb: Scoreboard) -> dict:
    """``sbpca_wait_idle`` against a stuck crossbar, then a free one.

    With ``pulses.ready`` held low, an APPLY_UPDATE (the last batch's pairs again) keeps
    ``STATUS.UPD_BUSY`` high: ``sbpca_wait_idle`` must give up after exactly its poll budget with
    ``SBPCA_ERR_TIMEOUT``.  Released, it must return ``SBPCA_OK`` once the k updates left.
    """
    budget = 20
    mon.hold = True
    await wb.write(REGS.CTRL.offset, REGS.CTRL.APPLY_UPDATE.mask)
    busy_before = REGS.STATUS.UPD_BUSY.get(await wb.read(REGS.STATUS.offset))
    r0 = wb.stats.reads
    timeout_status = await _firmware_status(drv.wait_idle, max_polls=budget)
    timeout_polls = wb.stats.reads - r0
    mon.hold = False
    r1 = wb.stats.reads
    idle_status = await _firmware_status(drv.wait_idle, max_polls=100000)
    idle_polls = wb.stats.reads - r1
    status_after = await wb.read(REGS.STATUS.offset)
    out = {"budget": budget, "upd_busy_before": busy_before, "timeout_status": timeout_status,
           "timeout_polls": timeout_polls, "idle_status": idle_status, "idle_polls": idle_polls,
           "status_after": status_after}
    if (busy_before, timeout_status, timeout_polls) != (1, "SBPCA_ERR_TIMEOUT", budget):
        sb.fail("idle check", "sbpca_wait_idle with a stuck crossbar",
                (busy_before, timeout_status, timeout_polls), (1, "SBPCA_ERR_TIMEOUT", budget), "wrong outcome")
    if idle_status != "SBPCA_OK" or status_after & (REGS.STATUS.BUSY.mask | REGS.STATUS.UPD_BUSY.mask):
        sb.fail("idle check", "sbpca_wait_idle after release", (idle_status, status_after), ("SBPCA_OK", "idle"),
                "wrong outcome")
    return out


async def batch_limit_check(drv: FirmwareDriver, wb: WishboneMaster, sb: Scoreboard, job: dict,
                            rng: random.Random) -> dict:
    """A batch of MAX_BATCH + 1 samples: the engine's error through ERRORS/STATUS, and CTRL.CLEAR.

    The firmware refuses such a batch (``SBPCA_ERR_ARG`` without a bus write), so the batch is
    set up with raw register writes, then streamed by the driver.  Expected (docs/REGISTERS.md):
    ``ERRORS.BATCH_LIMIT`` and ``STATUS.ENGINE_ERROR`` set, ``PROTOCOL`` clear, the counters
    count the samples and sub-batches; a W1C write clears ``ERRORS`` but not the engine's error;
    ``CTRL.CLEAR`` clears it without raising any flag; a second oversized batch raises
    ``BATCH_LIMIT`` again (the flag is re-armed).
    """
    ep = job["params"]["engine"]
    a, b, s, max_batch = ep["rows"], ep["cols"], ep["sub_batch"], ep["max_batch"]
    R, ST, ER = REGS, REGS.STATUS, REGS.ERRORS
    n = max_batch + 1
    out: dict = {"max_batch_register": drv.dev.max_batch, "samples": n}
    sb.check("batch limit", "MAX_BATCH register", drv.dev.max_batch, max_batch)
    w0 = wb.stats.writes
    out["configure_status"] = await _firmware_status(drv.configure, batch_size=n, sub_batch=s)
    sb.check("batch limit", "configure(B = MAX_BATCH + 1) refused without a bus write", int(
        out["configure_status"] == "SBPCA_ERR_ARG" and wb.stats.writes == w0), 1)
    fm = ep["formats"]

    def draw(rows: int, cols: int, bits: int) -> np.ndarray:
        # values of the format (the firmware refuses others), at most ±2000
        lo, hi = max(-2000, -(1 << (bits - 1))), min(2000, (1 << (bits - 1)) - 1)
        return np.asarray([[rng.randrange(lo, hi) for _ in range(cols)] for _ in range(rows)], dtype=np.int64)

    x, d = draw(n, b, fm["x"]["bits"]), draw(n, a, fm["delta"]["bits"])

    async def oversized_batch(tag: str) -> dict:
        for reg in (R.SAMPLES, R.SUB_BATCHES):
            await wb.write(reg.offset, 0)
        await wb.write(R.ERRORS.offset, 0xFFFFFFFF)
        await wb.write(R.BATCH_SIZE.offset, n)
        await bridge(drv.start_batch)()
        await bridge(drv.stream_samples)(x, d)
        await bridge(drv.end_batch)()
        done = await _firmware_status(drv.wait_done, max_polls=100000)
        got = {"wait_done": done, "errors": await wb.read(R.ERRORS.offset),
               "status": await wb.read(R.STATUS.offset), "samples": await wb.read(R.SAMPLES.offset),
               "sub_batches": await wb.read(R.SUB_BATCHES.offset)}
        sb.check(tag, "wait_done", int(done == "SBPCA_OK"), 1)
        sb.check(tag, "ERRORS.BATCH_LIMIT", ER.BATCH_LIMIT.get(got["errors"]), 1)
        sb.check(tag, "ERRORS.PROTOCOL", ER.PROTOCOL.get(got["errors"]), 0)
        sb.check(tag, "STATUS.ENGINE_ERROR", ST.ENGINE_ERROR.get(got["status"]), 1)
        sb.check(tag, "SAMPLES counter", got["samples"], n)
        sb.check(tag, "SUB_BATCHES counter", got["sub_batches"], -(-n // s))
        return got

    out["first"] = await oversized_batch("oversized batch")
    status, flags = await bridge(drv.check_errors)()
    out["check_errors"] = {"status": STATUS_NAMES.get(status, str(status)), "flags": flags}
    sb.check("batch limit", "check_errors on BATCH_LIMIT returns SBPCA_ERR_PROTOCOL", status, STATUS["SBPCA_ERR_PROTOCOL"])
    out["after_w1c"] = {"errors": await wb.read(R.ERRORS.offset), "status": await wb.read(R.STATUS.offset)}
    sb.check("batch limit", "ERRORS after the W1C write", out["after_w1c"]["errors"], 0)
    sb.check("batch limit", "STATUS.ENGINE_ERROR after the W1C write (only CLEAR clears it)",
             ST.ENGINE_ERROR.get(out["after_w1c"]["status"]), 1)
    await wb.write(R.CTRL.offset, R.CTRL.CLEAR.mask)
    for _ in range(3):
        await wb.read(R.ID.offset)  # a few cycles for a spurious flag to show
    out["after_clear"] = {"errors": await wb.read(R.ERRORS.offset), "status": await wb.read(R.STATUS.offset)}
    sb.check("batch limit", "STATUS.ENGINE_ERROR after CTRL.CLEAR", ST.ENGINE_ERROR.get(out["after_clear"]["status"]), 0)
    sb.check("batch limit", "ERRORS after CTRL.CLEAR (clearing raises no flag)", out["after_clear"]["errors"], 0)
    out["second"] = await oversized_batch("oversized batch after CLEAR")
    return out
