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

from testbench.simulator import write_report

MAX_DETAILS = 25


class Layout:
    """Pack/unpack a stream payload from the manifest's field list (offset, width, signedness)."""

    def __init__(self, spec: dict):
        self.width = spec["width"]
        self.fields = {f["name"]: f for f in spec["fields"]}

    def pack(self, **values) -> int:
        word = 0
        for name, val in values.items():
            fld = self.fields[name]
            if "elements" in fld:
                ew = fld["element_width"]
                mask = (1 << ew) - 1
                for i, v in enumerate(val):
                    word |= (int(v) & mask) << (fld["offset"] + i * ew)
            else:
                word |= (int(val) & ((1 << fld["width"]) - 1)) << fld["offset"]
        return word

    def unpack(self, word: int) -> dict:
        out = {}
        for name, fld in self.fields.items():
            if "elements" in fld:
                ew = fld["element_width"]
                vals = []
                for i in range(fld["elements"]):
                    v = (word >> (fld["offset"] + i * ew)) & ((1 << ew) - 1)
                    vals.append(v - (1 << ew) if v >> (ew - 1) else v)
                out[name] = vals
            else:
                v = (word >> fld["offset"]) & ((1 << fld["width"]) - 1)
                if fld.get("signed") and v >> (fld["width"] - 1):
                    v -= 1 << fld["width"]
                out[name] = v
        return out


def _chunks(vec: list[int], P: int) -> list[list[int]]:
    n = -(-len(vec) // P)
    padded = list(vec) + [0] * (n * P - len(vec))
    return [padded[i * P:(i + 1) * P] for i in range(n)]


class Scoreboard:
    """Integer comparison with a bounded list of readable mismatch descriptions."""

    def __init__(self):
        self.compared = 0
        self.mismatches = 0
        self.details: list[str] = []

    def check(self, what: str, got: int, exp: int) -> None:
        self.compared += 1
        if int(got) != int(exp):
            self.mismatches += 1
            if len(self.details) < MAX_DETAILS:
                self.details.append(f"{what}: rtl={int(got)} golden={int(exp)}")


@cocotb.test()
async def engine_cosim(dut):
    """Random stream through the engine, every state and factor word checked."""
    wall0 = time.perf_counter()
    job = json.loads(Path(os.environ["SBPCA_ENGINE_JOB"]).read_text())
    prm = job["params"]
    P, k = prm["lanes"], prm["rank"]
    a, b = prm["rows"], prm["cols"]
    Ra, Rb = -(-a // P), -(-b // P)
    lay = {name: Layout(spec) for name, spec in job["payloads"].items()}
    exp = job["expected"]
    hist, dumps = exp["history"], exp["dumps"]
    p_stall = job["stall_prob"]
    rng = random.Random(job["stim_seed"])
    sb = Scoreboard()

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

    def expect_col(entry, key, col, chunk):
        vec = [row[col] for row in entry[key]]
        return _chunks(vec, P)[chunk]

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
        if tr_ready and dut.trace__valid.value:
            w = lay["trace"].unpack(int(dut.trace__payload.value))
            kind, col, chunk = w["kind"], w["col"], w["chunk"]
            tr_got += 1
            t_last = cyc
            if kind == 2:
                i = n_s[col]
                if i < len(hist):
                    sb.check(f"sub-batch {i} (batch {hist[i]['batch']}) sigma[{col}]", w["sigma"],
                             hist[i]["sigma"][col])
                else:
                    sb.check(f"unexpected sigma[{col}] trace #{i}", 1, 0)
                n_s[col] += 1
                if col == k - 1:
                    sub_done_cycle.append(cyc)
            else:
                key, cnt, R = ("X", n_x, Rb) if kind == 0 else ("Delta", n_d, Ra)
                i = cnt[col]
                if i < len(hist):
                    ev = expect_col(hist[i], key, col, chunk)
                    for lane in range(P):
                        sb.check(f"sub-batch {i} (batch {hist[i]['batch']}) {key}[{chunk * P + lane},{col}]",
                                 w["data"][lane], ev[lane])
                else:
                    sb.check(f"unexpected {key} col {col} trace #{i}", 1, 0)
                if chunk == R - 1:
                    cnt[col] += 1
        if fr_ready and dut.factors__valid.value:
            w = lay["factors"].unpack(int(dut.factors__payload.value))
            dump_got += 1
            if dump_idx < len(dumps):
                e = dumps[dump_idx]
                if w["col"] not in e["cols"]:
                    sb.check(f"factors after batch {e['batch']}: column {w['col']} was not requested", 1, 0)
                key = "X" if w["kind"] == 1 else "Delta"
                ev = expect_col(e, key, w["col"], w["chunk"])
                for lane in range(P):
                    sb.check(f"factors after batch {e['batch']} {key}[{w['chunk'] * P + lane},{w['col']}]",
                             w["data"][lane], ev[lane])
                sb.check(f"factors after batch {e['batch']} sigma[{w['col']}]", w["sigma"], e["sigma"][w["col"]])
                if w["last"]:
                    dump_idx += 1
            else:
                sb.check("unexpected factor word", 1, 0)
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
        if not lv and li < lim_l and rng.random() >= p_stall:
            lv = 1
            dut.load__payload.value = ld_beats[li]
        dut.load__valid.value = lv
        if not xv and xi < lim_x and rng.random() >= p_stall:
            xv = 1
            dut.x__payload.value = x_beats[xi]
        dut.x__valid.value = xv
        if not dv and di < lim_d and rng.random() >= p_stall:
            dv = 1
            dut.d__payload.value = d_beats[di]
        dut.d__valid.value = dv
        tr_ready = int(rng.random() >= p_stall)
        fr_ready = int(rng.random() >= p_stall)
        dut.trace__ready.value = tr_ready
        dut.factors__ready.value = fr_ready
        # ---- done?
        inputs_done = xi >= len(x_beats) and di >= len(d_beats)
        if inputs_done and tr_got >= tr_total and dump_got >= dump_words_total and seg >= len(segments):
            break
        if cyc > max_cycles:
            timeout = True
            break

    # let the engine settle, then read status
    settle = 0
    while dut.busy.value and settle < 20000:
        await RisingEdge(dut.clk)
        settle += 1
    sat_bits = int(dut.sat.value)
    names = job["sat_names"]
    rtl_sat = sorted(n for i, n in enumerate(names) if sat_bits >> i & 1)
    for n in names:
        sb.check(f"status saturation flag {n}", int(n in rtl_sat), int(n in exp["status"]["sat"]))
    sb.check("status sigma_guard count", int(dut.sigma_guard.value), exp["status"]["sigma_guard"])
    sb.check("status degenerate count", int(dut.degenerate.value), exp["status"]["degenerate"])
    sb.check("status samples counter", int(dut.samples.value), samples)
    sb.check("status sub_batches counter", int(dut.sub_batches.value), len(hist))
    sb.check("status batches counter", int(dut.batches.value), len(job["batches"]))
    # sigma output port holds the final sigma
    sig_lay = job["payloads"]["factors"]["fields"]
    sig_w = next(f["width"] for f in sig_lay if f["name"] == "sigma")
    sig_word = int(dut.sigma.value)
    for c in range(k):
        v = (sig_word >> (c * sig_w)) & ((1 << sig_w) - 1)
        v = v - (1 << sig_w) if v >> (sig_w - 1) else v
        sb.check(f"final sigma port [{c}]", v, exp["final"]["sigma"][c])
    if timeout:
        sb.mismatches += 1
        sb.details.append(f"timeout after {cyc} cycles: trace {tr_got}/{tr_total} words, "
                          f"factors {dump_got}/{dump_words_total}, x beats {xi}/{len(x_beats)}, "
                          f"d beats {di}/{len(d_beats)}")
    cycles = (t_last - t_first + 1) if (t_first is not None and t_last is not None) else cyc
    steady = None
    if len(sub_done_cycle) >= 3:
        # sub-batches of full size only, between the first and the last completion
        diffs = [t1 - t0 for t0, t1, h in zip(sub_done_cycle, sub_done_cycle[1:], hist[1:]) if h["m"] == prm["sub_batch"]]
        if diffs:
            steady = sorted(diffs)[len(diffs) // 2]
    report = {
        "mismatches": sb.mismatches,
        "mismatch_details": sb.details,
        "words_compared": sb.compared,
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
        "rtl_busy_cycles": int(dut.cycles.value),
        "rtl_status": {"sat": rtl_sat, "sigma_guard": int(dut.sigma_guard.value),
                       "degenerate": int(dut.degenerate.value), "error": int(dut.error.value)},
        "golden_status": exp["status"],
        "timeout": timeout,
    }
    write_report(report)
    assert sb.mismatches == 0, "; ".join(sb.details[:5])

