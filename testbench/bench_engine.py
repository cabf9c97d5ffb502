"""cocotb bench for the SBPCA engine: random streams in, golden model as scoreboard.

Parameters come from the JSON job file named by ``$SBPCA_ENGINE_JOB`` (written by
``testbench.engine_cosim.run_engine_cosim``).  One coroutine wakes once per clock and
serves all ports (cheaper than one per port under cocotb's ~60 µs per wake-up): the two
input sources with random valid gaps, the trace and factor sinks with random ready
back-pressure, and the factor requests after each dumped batch.  Values read right
after a rising edge are the ones the DUT sampled at that edge (cocotb's read-only view
of the edge), so a handshake is ``valid & ready`` as read there.

Every trace word (X, Δ columns and σ after each sub-batch), every factor word and the
status flags are compared as integers with the golden model's; a mismatch names the
sub-batch or batch, the word and both values.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from testbench.engine_score import Layout, score_end_of_run, sub_batch_where
from testbench.scoreboard import Scoreboard
from testbench.simulator import write_report

def _chunks(vec: list[int], P: int) -> list[list[int]]:
    n = -(-len(vec) // P)
    padded = list(vec) + [0] * (n * P - len(vec))
    return [padded[i * P:(i + 1) * P] for i in range(n)]


@cocotb.test()
async def engine_cosim(dut):
    """Random stream through the engine, every state and factor word checked."""
    wall0 = time.perf_counter()
    cpu0 = time.process_time()
    job = json.loads(Path(os.environ["SBPCA_ENGINE_JOB"]).read_text())
    prm = job["params"]
    P, k = prm["lanes"], prm["rank"]
    a, b = prm["rows"], prm["cols"]
    Ra, Rb = -(-a // P), -(-b // P)
    lay = {name: Layout(spec) for name, spec in job["payloads"].items()}
    exp = job["expected"]
    hist, dumps = exp["history"], exp["dumps"]
    p_st = job["stall"]
    rng = random.Random(job["stim_seed"])
    sb = Scoreboard(reproduce=job.get("reproduce", ""))

    # ---- input beats; the stream is cut into segments at batches that load a state first
    # (the load waits for the engine to be idle) and after batches that dump their factors
    x_beats, d_beats, ld_beats = [], [], []
    segments = []  # dicts: load (start, end) into ld_beats, x_end, d_end, dump
    samples = 0
    for bi, batch in enumerate(job["batches"]):
        if bi == 0 or batch["load"] is not None or job["batches"][bi - 1]["dump"]:
            ls = len(ld_beats)
            if batch["load"] is not None:
                LX, LD, LS = batch["load"]
                for kind, M, R in ((0, LX, Rb), (1, LD, Ra)):
                    for c in range(k):
                        for ci, ch in enumerate(_chunks([row[c] for row in M], P)):
                            ld_beats.append(lay["load"].pack(kind=kind, col=c, chunk=ci, data=ch))
                for c in range(k):
                    ld_beats.append(lay["load"].pack(kind=2, col=c, sigma=LS[c]))
            segments.append({"load": (ls, len(ld_beats)), "dump": False, "dump_col": None})
        n = len(batch["x"])
        for j in range(n):
            ch = _chunks(batch["x"][j], P)
            for ci, c in enumerate(ch):
                x_beats.append(lay["x"].pack(data=c, last=int(j == n - 1 and ci == len(ch) - 1)))
            for c in _chunks(batch["d"][j], P):
                d_beats.append(lay["d"].pack(data=c))
        samples += n
        segments[-1].update(x_end=len(x_beats), d_end=len(d_beats), dump=bool(batch["dump"]),
                            dump_col=batch.get("dump_col"))

    period_ns = 10
    cocotb.start_soon(Clock(dut.clk, period_ns, unit="ns").start())
    dut.rst.value = 1
    for sig in (dut.x__valid, dut.d__valid, dut.factor_req__valid, dut.trace__ready, dut.factors__ready,
                dut.load__valid, dut.clear):
        sig.value = 0
    dut.trace_en.value = int(job["trace"])
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    # ---- state of the single per-cycle coroutine
    xi = di = li = 0  # next beat to present
    xv = dv = lv = 0  # valid currently driven
    seg = 0  # current segment
    phase = "load"  # load -> stream -> request (when the segment dumps) -> next segment
    tr_ready = fr_ready = 0
    n_x = [0] * k  # X column sets received per column (= sub-batch index)
    n_d = [0] * k
    n_s = [0] * k
    tr_total = len(hist) * k * (Rb + Ra + 1) if job["trace"] else 0
    tr_got = 0
    dump_words_total = sum(len(e["cols"]) for e in dumps) * (Ra + Rb)
    dump_got = 0
    dump_idx = 0
    cyc = 0
    t_first = None
    t_last = None
    sub_done_cycle = []  # cycle at which sigma of the last column arrived, per sub-batch
    max_cycles = job["max_cycles"]
    timeout = False

    busy_seen = 0

    def expect_col(entry, key, col, chunk):
        vec = [row[col] for row in entry[key]]
        return _chunks(vec, P)[chunk]

    def take_trace(payload: int) -> None:
        nonlocal tr_got
        w = lay["trace"].unpack(payload)
        kind, col, chunk = w["kind"], w["col"], w["chunk"]
        tr_got += 1
        if kind == 3 or col >= k or chunk >= (Rb if kind == 0 else Ra if kind == 1 else 1):
            sb.fail("trace stream", f"word kind={kind} col={col} chunk={chunk}", payload, None, "illegal fields")
            return
        if not job["trace"]:
            sb.fail("trace stream", f"word kind={kind} col={col}", payload, None, "surplus word: trace is off")
            return
        if kind == 2:
            i = n_s[col]
            if i < len(hist):
                sb.check(sub_batch_where(job, i), f"sigma[{col}]", w["sigma"], hist[i]["sigma"][col])
            else:
                sb.fail(sub_batch_where(job, i), f"sigma[{col}]", w["sigma"], None, "surplus trace word")
            n_s[col] += 1
            if col == k - 1:
                sub_done_cycle.append(cyc)
            return
        key, cnt, R = ("X", n_x, Rb) if kind == 0 else ("Delta", n_d, Ra)
        i = cnt[col]
        if i < len(hist):
            ev = expect_col(hist[i], key, col, chunk)
            for lane in range(P):
                sb.check(sub_batch_where(job, i), f"{key}[{chunk * P + lane},{col}]", w["data"][lane], ev[lane])
        else:
            sb.fail(sub_batch_where(job, i), f"{key} column {col} chunk {chunk}", w["data"], None,
                    "surplus trace word")
        if chunk == R - 1:
            cnt[col] += 1

    def take_factor(payload: int) -> None:
        nonlocal dump_got, dump_idx
        w = lay["factors"].unpack(payload)
        dump_got += 1
        if w["col"] >= k or w["chunk"] >= (Rb if w["kind"] == 1 else Ra):
            sb.fail("factor stream", f"word kind={w['kind']} col={w['col']} chunk={w['chunk']}", payload, None,
                    "illegal fields")
            return
        if dump_idx >= len(dumps):
            sb.fail("factor stream", f"word col={w['col']} chunk={w['chunk']}", w["data"], None,
                    "surplus factor word")
            return
        e = dumps[dump_idx]
        where = f"factors after batch {e['batch']}"
        if w["col"] not in e["cols"]:
            sb.fail(where, f"column {w['col']}", w["col"], e["cols"], "column not requested")
        key = "X" if w["kind"] == 1 else "Delta"
        ev = expect_col(e, key, w["col"], w["chunk"])
        for lane in range(P):
            sb.check(where, f"{key}[{w['chunk'] * P + lane},{w['col']}]", w["data"][lane], ev[lane])
        sb.check(where, f"sigma[{w['col']}]", w["sigma"], e["sigma"][w["col"]])
        if w["last"]:
            dump_idx += 1

    while True:
        await RisingEdge(dut.clk)
        cyc += 1
        # ---- sample the handshakes of this edge
        if xv and dut.x__ready.value:
            xi += 1
            xv = 0
            if t_first is None:
                t_first = cyc
        if dv and dut.d__ready.value:
            di += 1
            dv = 0
            if t_first is None:
                t_first = cyc
        if lv and dut.load__ready.value:
            li += 1
            lv = 0
        req_accepted = phase == "request" and dut.factor_req__ready.value
        if dut.busy.value:
            busy_seen += 1
        if tr_ready and dut.trace__valid.value:
            take_trace(int(dut.trace__payload.value))
            t_last = cyc
        if fr_ready and dut.factors__valid.value:
            take_factor(int(dut.factors__payload.value))
        # ---- segment phases: load the state, stream the batches, request the factors
        sg = segments[seg] if seg < len(segments) else None
        if sg is not None and phase == "load" and li >= sg["load"][1]:
            phase = "stream"
        if sg is not None and phase == "stream" and xi >= sg["x_end"] and di >= sg["d_end"]:
            phase = "request" if sg["dump"] else "next"
        if req_accepted or phase == "next":
            seg += 1
            phase = "load"
            sg = segments[seg] if seg < len(segments) else None
        dut.factor_req__valid.value = int(phase == "request")
        if sg is not None and sg["dump_col"] is not None:
            dut.factor_req__payload.value = lay["factor_req"].pack(col=sg["dump_col"], all=0)
        else:
            dut.factor_req__payload.value = lay["factor_req"].pack(col=0, all=1)
        lim_l = sg["load"][1] if sg is not None and phase == "load" else li
        lim_x = sg["x_end"] if sg is not None and phase == "stream" else xi
        lim_d = sg["d_end"] if sg is not None and phase == "stream" else di
        # ---- drive the next beats (a presented beat is held until accepted)
        if not lv and li < lim_l and rng.random() >= p_st["load"]:
            lv = 1
            dut.load__payload.value = ld_beats[li]
        dut.load__valid.value = lv
        if not xv and xi < lim_x and rng.random() >= p_st["x"]:
            xv = 1
            dut.x__payload.value = x_beats[xi]
        dut.x__valid.value = xv
        if not dv and di < lim_d and rng.random() >= p_st["d"]:
            dv = 1
            dut.d__payload.value = d_beats[di]
        dut.d__valid.value = dv
        tr_ready = int(rng.random() >= p_st["trace"])
        fr_ready = int(rng.random() >= p_st["factors"])
        dut.trace__ready.value = tr_ready
        dut.factors__ready.value = fr_ready
        # ---- done?
        inputs_done = xi >= len(x_beats) and di >= len(d_beats)
        if inputs_done and tr_got >= tr_total and dump_got >= dump_words_total and seg >= len(segments):
            break
        if cyc > max_cycles:
            timeout = True
            break

    # drain: sinks always ready until the engine is idle; every word arriving now is scored
    # (a surplus word fails), then every status output and the end-of-run conditions
    settle = 0
    quiet = 0
    while settle < job.get("drain_limit", 200000) and quiet < 64:
        dut.trace__ready.value = 1
        dut.factors__ready.value = 1
        dut.factor_req__valid.value = 0
        tr_ready = fr_ready = 1
        await RisingEdge(dut.clk)
        settle += 1
        if dut.busy.value:
            busy_seen += 1
        if tr_ready and dut.trace__valid.value:
            take_trace(int(dut.trace__payload.value))
        if fr_ready and dut.factors__valid.value:
            take_factor(int(dut.factors__payload.value))
        quiet = 0 if (dut.busy.value or dut.trace__valid.value or dut.factors__valid.value) else quiet + 1
    sb.expect_count("end of run", "trace", tr_got, tr_total)
    sb.expect_count("end of run", "factor", dump_got, dump_words_total)
    if timeout:
        sb.fail("end of run", "completion", 0, 1,
                f"timeout after {cyc} cycles: trace {tr_got}/{tr_total} words, factors {dump_got}/"
                f"{dump_words_total}, x beats {xi}/{len(x_beats)}, d beats {di}/{len(d_beats)}")
    sig_w = job["sigma_bits"]
    sig_word = int(dut.sigma.value)
    sigma = []
    for c in range(k):
        v = (sig_word >> (c * sig_w)) & ((1 << sig_w) - 1)
        sigma.append(v - (1 << sig_w) if v >> (sig_w - 1) else v)
    rtl = {name: int(getattr(dut, name).value) for name in
           ("sat", "error", "sigma_guard", "degenerate", "samples", "sub_batches", "batches", "batch_size",
            "cycles", "busy", "in_batch")}
    rtl.update(sigma=sigma, busy_cycles_seen=busy_seen,
               pending={"x": int(xi < len(x_beats)), "d": int(di < len(d_beats)), "load": int(li < len(ld_beats)),
                        "factor_req": int(seg < len(segments)), "trace": int(dut.trace__valid.value),
                        "factors": int(dut.factors__valid.value)})
    score_end_of_run(sb, job, rtl)
    names = job["sat_names"]
    rtl_sat = [n for i, n in enumerate(names) if rtl["sat"] >> i & 1]
    cycles = (t_last - t_first + 1) if (t_first is not None and t_last is not None) else cyc
    steady = None
    if len(sub_done_cycle) >= 3:
        # sub-batches of full size only, between the first and the last completion
        diffs = [t1 - t0 for t0, t1, h in zip(sub_done_cycle, sub_done_cycle[1:], hist[1:]) if h["m"] == prm["sub_batch"]]
        if diffs:
            steady = sorted(diffs)[len(diffs) // 2]
    report = {
        **sb.report(),
        "mode": "cycle",
        "samples": samples,
        "sub_batches": len(hist),
        "batches": len(job["batches"]),
        "trace_words": tr_got,
        "factor_words": dump_got,
        "cycles": cycles,
        "cycles_per_sample": cycles / samples if samples else None,
        "steady_cycles_per_sub_batch": steady,
        "steady_cycles_per_sample": (steady / prm["sub_batch"]) if steady else None,
        "sim_cycles_total": cyc,
        "sim_wall_seconds": round(time.perf_counter() - wall0, 3),
        "sim_cycles_per_second": round(cyc / max(time.perf_counter() - wall0, 1e-9), 1),
        "sim_cpu_seconds": round(time.process_time() - cpu0, 3),
        "sim_cycles_per_cpu_second": round(cyc / max(time.process_time() - cpu0, 1e-9), 1),
        "rtl_busy_cycles": int(dut.cycles.value),
        "rtl_status": {"sat": rtl_sat, "sigma_guard": int(dut.sigma_guard.value),
                       "degenerate": int(dut.degenerate.value), "error": int(dut.error.value)},
        "golden_status": exp["status"],
        "timeout": timeout,
    }
    write_report(report)
    assert sb.mismatches == 0, "; ".join(sb.details[:5])

