"""Block-mode cocotb bench of the engine: Python wakes once per block, not once per clock.

The DUT is the test wrapper of :mod:`testbench.engine_harness` (ROM-driven sources, LFSR
stall generators, comparing sinks).  For each block of the job written by
:func:`testbench.engine_block.write_blocks` the bench copies the block's memory files into
the working directory, pulses ``reload`` and ``start`` and sleeps until ``done``.  At the end
the sinks stay ready (``drain``) until the engine is idle, so a surplus word still shows up
as a mismatch; then every status output is scored (:mod:`testbench.engine_score`) and the
wrapper's first mismatch records are decoded into sample, word and both values.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer

from testbench.engine_harness import HEX_FILES, MM_RECORDS, MM_SOURCES
from testbench.engine_score import Layout, decode_record, score_end_of_run
from testbench.scoreboard import Scoreboard
from testbench.simulator import write_report

DRAIN_STEP = 256


@cocotb.test()
async def engine_block(dut):
    """Every block of the job through the wrapper; every word, flag and counter scored."""
    wall0 = time.perf_counter()
    cpu0 = time.process_time()
    job = json.loads(Path(os.environ["SBPCA_ENGINE_JOB"]).read_text())
    prm = job["params"]
    lay = {name: Layout(spec) for name, spec in job["payloads"].items()}
    sb = Scoreboard(reproduce=job.get("reproduce", ""))
    thr = {k: int(round(v * 65536)) for k, v in job["stall"].items()}
    clk = dut.clk_mon
    if not job.get("internal_clock"):  # else the wrapper's own clock (Verilator --timing) runs
        cocotb.start_soon(Clock(dut.clk_in, 10, unit="ns").start())
    dut.rst.value = 1
    for sig in (dut.reload, dut.start, dut.drain, dut.mm_sel, dut.n_seg, dut.n_sub, dut.n_dump,
                dut.tr_total, dut.fr_total):
        sig.value = 0
    dut.trace_en.value = int(job["trace"])
    dut.seed.value = int(job["stim_seed"]) & 0xFFFFFFFF
    for port, name in (("x", "thr_x"), ("d", "thr_d"), ("load", "thr_l"), ("factor_req", "thr_q"),
                       ("trace", "thr_t"), ("factors", "thr_f")):
        getattr(dut, name).value = min(thr[port], 0xFFFF)
    await ClockCycles(clk, 3)
    dut.rst.value = 0
    await RisingEdge(clk)
    starts: list[int] = []
    block_cycles = 0
    timeout = False
    for bi, meta in enumerate(job["blocks"]):
        for fname in HEX_FILES.values():
            shutil.copyfile(Path(meta["dir"]) / fname, fname)
        for name in ("n_seg", "n_sub", "n_dump", "tr_total", "fr_total"):
            getattr(dut, name).value = meta[name]
        dut.reload.value = 1
        await RisingEdge(clk)
        dut.reload.value = 0
        dut.start.value = 1
        await RisingEdge(clk)
        dut.start.value = 0
        c0 = int(dut.cyc.value)
        starts.append(c0)
        res = await First(RisingEdge(dut.done), Timer(meta["max_cycles"] * 10, unit="ns"))
        await RisingEdge(clk)  # counters of the done edge settled
        c1 = int(dut.cyc.value)
        block_cycles += c1 - c0
        where = f"block {bi} (sub-batches {meta['first_sub']}..{meta['first_sub'] + meta['n_sub'] - 1})"
        if not isinstance(res, RisingEdge) and not int(dut.done.value):
            timeout = True
            sb.fail(where, "block completion", 0, 1,
                    f"timeout after {meta['max_cycles']} cycles: x beats {int(dut.xi.value)}/{meta['x_beats']}, "
                    f"d beats {int(dut.di.value)}/{meta['d_beats']}, trace {int(dut.tr_got.value)}/"
                    f"{meta['tr_total']}, factors {int(dut.fr_got.value)}/{meta['fr_total']}")
            break
        sb.expect_count(where, "x beat", int(dut.xi.value), meta["x_beats"])
        sb.expect_count(where, "d beat", int(dut.di.value), meta["d_beats"])
        sb.expect_count(where, "load beat", int(dut.li.value), meta["load_beats"])
        sb.expect_count(where, "trace", int(dut.tr_got.value), meta["tr_total"])
        sb.expect_count(where, "factor", int(dut.fr_got.value), meta["fr_total"])
        sb.expect_count(where, "factor dump", int(dut.dump_idx.value), meta["n_dump"])
        sb.add_compared(meta["elements"])
    sim_wall = time.perf_counter() - wall0
    sim_cpu = time.process_time() - cpu0
    # ---- drain: sinks always ready until the engine is idle; anything arriving now is surplus
    dut.drain.value = 1
    waited = 0
    while waited < job["drain_limit"]:
        await ClockCycles(clk, DRAIN_STEP)
        waited += DRAIN_STEP
        if not int(dut.busy.value):
            break
    await ClockCycles(clk, DRAIN_STEP)
    await RisingEdge(clk)
    mism = int(dut.mism.value)
    counts = (int(dut.tmism_out.value), int(dut.fmism_out.value))
    for sink, n in enumerate(counts):
        for i in range(min(n, MM_RECORDS)):
            dut.mm_sel.value = sink * MM_RECORDS + i
            await RisingEdge(clk)
            await RisingEdge(clk)
            rec = {"src": int(dut.mm_src.value), "addr": int(dut.mm_addr.value), "got": int(dut.mm_got.value),
                   "exp": int(dut.mm_exp.value), "cyc": int(dut.mm_cyc.value)}
            blk = max([b for b, c in enumerate(starts) if c <= rec["cyc"]] or [0])
            where, word, got, exp = decode_record(job, lay, rec, job["blocks"][blk])
            sb.fail(where, word, got, exp, MM_SOURCES.get(rec["src"], f"source {rec['src']}"))
        if n > MM_RECORDS:
            sb.fail(("trace", "factor")[sink] + " sink", "further words", n - MM_RECORDS, 0,
                    "mismatches beyond the recorded ones")
    sb.mismatches += max(0, sum(counts) - sum(min(n, MM_RECORDS) + (n > MM_RECORDS) for n in counts))
    assert mism == sum(counts)
    sig_w = job["sigma_bits"]
    sig_word = int(dut.sigma.value)
    sigma = []
    for c in range(prm["rank"]):
        v = (sig_word >> (c * sig_w)) & ((1 << sig_w) - 1)
        sigma.append(v - (1 << sig_w) if v >> (sig_w - 1) else v)
    rtl = {name: int(getattr(dut, name).value) for name in
           ("sat", "error", "sigma_guard", "degenerate", "samples", "sub_batches", "batches", "batch_size",
            "cycles", "busy", "in_batch")}
    rtl["sigma"] = sigma
    rtl["busy_cycles_seen"] = int(dut.busy_cycles.value)
    rtl["pending"] = {"x": int(dut.x_valid_out.value), "d": int(dut.d_valid_out.value),
                      "load": int(dut.load_valid_out.value), "factor_req": int(dut.req_valid_out.value),
                      "trace": int(dut.trace_valid_out.value), "factors": int(dut.factors_valid_out.value)}
    score_end_of_run(sb, job, rtl)
    total_cyc = int(dut.cyc.value)
    wall = time.perf_counter() - wall0
    report = {
        **sb.report(),
        "mode": "block",
        "samples": job["samples"],
        "sub_batches": len(job["expected"]["history"]),
        "batches": job["n_batches"],
        "blocks": len(job["blocks"]),
        "trace_words": sum(m["tr_total"] for m in job["blocks"]),
        "factor_words": sum(m["fr_total"] for m in job["blocks"]),
        "cycles": block_cycles,
        "cycles_per_sample": block_cycles / job["samples"] if job["samples"] else None,
        "sim_cycles_total": total_cyc,
        "sim_wall_seconds": round(wall, 3),
        "sim_cycles_per_second": round(block_cycles / max(sim_wall, 1e-9), 1),
        # CPU time of the simulator process (Verilator + Python): the speed on a machine shared by others
        "sim_cpu_seconds": round(sim_cpu, 3),
        "sim_cycles_per_cpu_second": round(block_cycles / max(sim_cpu, 1e-9), 1),
        "rtl_busy_cycles": rtl["cycles"],
        "rtl_status": {"sat": [n for i, n in enumerate(job["sat_names"]) if rtl["sat"] >> i & 1],
                       "sigma_guard": rtl["sigma_guard"], "degenerate": rtl["degenerate"], "error": rtl["error"]},
        "golden_status": job["expected"]["status"],
        "coverage_counts": {"backpressure_x": int(dut.bp_x.value), "backpressure_d": int(dut.bp_d.value),
                            "backpressure_load": int(dut.bp_l.value),
                            "backpressure_factor_req": int(dut.bp_q.value),
                            "backpressure_trace": int(dut.bp_t.value),
                            "backpressure_factors": int(dut.bp_f.value),
                            "input_buffers_full": int(dut.full_x.value)},
        "timeout": timeout,
    }
    write_report(report)
    assert sb.mismatches == 0, "; ".join(sb.details[:3])
