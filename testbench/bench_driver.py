"""cocotb bench of ``hdl/driver.py``: every slot word compared with the golden model.

Parameters and stimulus arrive in the JSON file named by ``$SBPCA_DRIVER_STIM``:
``{"params": DriverParams.to_dict(), "runs": [{"stall_prob", "seed", "updates"}]}``.
Each run resets the DUT (LFSRs back to their seeds) and streams its updates.

One coroutine does all the work, woken once per clock at the falling edge: the
DUT's ready/valid outputs are Moore (state only), so the transfers of the coming
rising edge are known when the bench drives its side.  Source valid and sink ready
are dropped at random with probability ``stall_prob``.  Words are collected and
compared with the golden model at the end of the run.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from pymodel.crossbar import DriverParams
from testbench.driver_stimulus import compare_words, config_of, golden_words
from testbench.simulator import write_report

MAX_REPORTED = 8
DRAIN_CYCLES = 16


def _int(handle) -> int:
    return int(handle.value)


async def _reset(dut) -> None:
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.cfg__valid.value = 0
    dut.o__ready.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def _run(dut, params: DriverParams, run: dict) -> dict:
    updates = run["updates"]
    stall = float(run.get("stall_prob", 0.0))
    rnd = random.Random(int(run.get("seed", 0)))
    expected = golden_words(params, updates)
    elems = [x & ((1 << params.state.bits) - 1) for up in updates for x in up["u"] + up["v"]]
    cfgs = [config_of(up).pack(params) for up in updates]
    absmax = [(max(abs(x) for x in up["u"]), max(abs(x) for x in up["v"])) for up in updates]
    n_words = sum(len(w) for w in expected)
    limit = 50 + 4 * (len(elems) * 2 + n_words + 3 * len(updates)) * (1 + int(8 * stall))

    await _reset(dut)
    got: list[int] = []
    seen_absmax: list[tuple[int, int]] = []
    ei = ci = cycles = 0
    while len(got) < n_words and cycles < limit:
        # the falling edge: DUT outputs settled; decide this cycle's transfers
        i_ready, c_ready, o_valid = _int(dut.i__ready), _int(dut.cfg__ready), _int(dut.o__valid)
        i_valid = int(ei < len(elems) and rnd.random() >= stall)
        c_valid = int(ci < len(cfgs) and rnd.random() >= stall)
        o_ready = int(rnd.random() >= stall)
        dut.i__valid.value = i_valid
        if i_valid:
            dut.i__payload.value = elems[ei]
        dut.cfg__valid.value = c_valid
        if c_valid:
            dut.cfg__payload.value = cfgs[ci]
        dut.o__ready.value = o_ready
        if i_valid and i_ready:
            ei += 1
        if c_valid and c_ready:
            seen_absmax.append((_int(dut.u_absmax), _int(dut.v_absmax)))
            ci += 1
        if o_valid and o_ready:
            got.append(_int(dut.o__payload))
        await FallingEdge(dut.clk)
        cycles += 1

    # afterwards the driver must fall idle: every word beyond the expected ones is surplus
    dut.i__valid.value = 0
    dut.cfg__valid.value = 0
    dut.o__ready.value = 1
    for _ in range(DRAIN_CYCLES):
        if _int(dut.o__valid):
            got.append(_int(dut.o__payload))
        await FallingEdge(dut.clk)
    result = compare_words(params, updates, expected, got, MAX_REPORTED, reproduce=run.get("reproduce", ""))
    sb = result.pop("scoreboard")
    for (ui, (s, w)) in enumerate(zip(seen_absmax, absmax)):
        sb.check(f"update {ui} ({updates[ui]['kind']})", "u_absmax", s[0], w[0])
        sb.check(f"update {ui} ({updates[ui]['kind']})", "v_absmax", s[1], w[1])
    absmax_bad = sum(1 for s, w in zip(seen_absmax, absmax) if s != w)
    # end of run: every vector element and configuration taken, nothing left valid or loaded
    sb.expect_count("end of run", "vector element", ei, len(elems))
    sb.expect_count("end of run", "configuration", ci, len(cfgs))
    sb.check("end of run", "busy output", _int(dut.busy), 0)
    sb.check("end of run", "loaded output", _int(dut.loaded), 0)
    sb.check("end of run", "o.valid (word unread)", _int(dut.o__valid), 0)
    rep = sb.report()
    result["mismatches"] = rep["mismatches"]  # slot words, counts, absmax and end-of-run outputs
    result["mismatch_details"] = rep["mismatch_details"]
    return {"stall_prob": stall, "updates": len(updates), **result, "absmax_mismatches": absmax_bad,
            "absmax_compared": len(seen_absmax), "cycles": cycles}


@cocotb.test()
async def driver_matches_golden(dut) -> None:
    """Every slot word of every run equals the golden model's word."""
    spec = json.loads(open(os.environ["SBPCA_DRIVER_STIM"]).read())
    params = DriverParams.from_dict(spec["params"])
    assert sum(w for _, w in params.word_fields()) == len(dut.o__payload), "word layout differs from the RTL"
    Clock(dut.clk, 10, unit="ns").start()
    runs = []
    for run in spec["runs"]:
        runs.append(await _run(dut, params, run))
    report = {
        "design": "driver", "scheme": params.scheme, "rows": params.rows, "cols": params.cols,
        "bl_max": params.bl_max, "runs": runs,
        "mismatches": sum(r["mismatches"] for r in runs),
        "words_compared": sum(r["words_compared"] for r in runs),
        "cycles": sum(r["cycles"] for r in runs),
        "updates": sum(r["updates"] for r in runs),
    }
    write_report(report)
    bad = [r for r in runs if r["mismatches"] or r["absmax_mismatches"]]
    assert not bad, f"driver RTL differs from the golden model: {bad[0]['first_mismatches'][:2]}"
