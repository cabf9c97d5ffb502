"""Engine-specific scoring shared by the per-cycle and the block-mode engine benches.

Pure Python (no Amaranth): it runs inside the cocotb process.  :func:`score_end_of_run`
scores every status output of the engine — each saturation flag by name, ``error``, the
σ-guard and degenerate counts, the sample / sub-batch / batch / batch-size counters, the
busy-cycle counter against the cycles the bench saw ``busy`` high, the final σ port — and
the end-of-run conditions: the engine idle, no batch open, no input beat left unsent and
no output word left valid and unread.
"""

from __future__ import annotations

from .scoreboard import Scoreboard

__all__ = ["score_end_of_run", "sub_batch_where", "dump_where", "Layout", "decode_record"]


def sub_batch_where(job: dict, i: int) -> str:
    """'sub-batch i (batch b, samples s0..s1)' for global sub-batch ``i`` of the job."""
    hist = job["expected"]["history"]
    if i >= len(hist):
        return f"sub-batch {i} (beyond the {len(hist)} expected)"
    s0 = job["sub_first_sample"][i]
    return f"sub-batch {i} (batch {hist[i]['batch']}, samples {s0}..{s0 + hist[i]['m'] - 1})"


def dump_where(job: dict, j: int) -> str:
    dumps = job["expected"]["dumps"]
    if j >= len(dumps):
        return f"factor dump {j} (beyond the {len(dumps)} expected)"
    return f"factors after batch {dumps[j]['batch']}"


def score_end_of_run(sb: Scoreboard, job: dict, rtl: dict) -> None:
    """Score every status output and the end-of-run conditions (see the module docstring).

    ``rtl`` — the values read from the engine after the run: ``sat`` (bit vector), ``error``,
    ``sigma_guard``, ``degenerate``, ``samples``, ``sub_batches``, ``batches``, ``batch_size``,
    ``cycles``, ``sigma`` (list), ``busy``, ``in_batch``, ``busy_cycles_seen`` and
    ``pending`` (port name -> 1 when a word was still valid / a beat still unsent).
    """
    exp = job["expected"]
    st = exp["status"]
    names = job["sat_names"]
    bits = int(rtl["sat"])
    for i, n in enumerate(names):
        sb.check("end of run", f"saturation flag {n}", bits >> i & 1, int(n in st["sat"]))
    sb.check("end of run", "error output", rtl["error"], int(st.get("error", 0)))
    sb.check("end of run", "sigma_guard count", rtl["sigma_guard"], st["sigma_guard"])
    sb.check("end of run", "degenerate count", rtl["degenerate"], st["degenerate"])
    sb.check("end of run", "samples counter", rtl["samples"], job["samples"])
    sb.check("end of run", "sub_batches counter", rtl["sub_batches"], len(exp["history"]))
    sb.check("end of run", "batches counter", rtl["batches"], job["n_batches"])
    sb.check("end of run", "batch_size (last batch)", rtl["batch_size"], job["last_batch_size"])
    sb.check("end of run", "cycles counter (busy cycles)", rtl["cycles"], rtl["busy_cycles_seen"])
    for c, (g, w) in enumerate(zip(rtl["sigma"], exp["final"]["sigma"])):
        sb.check("end of run", f"sigma port [{c}]", g, w)
    sb.check("end of run", "busy (work left in flight)", rtl["busy"], 0)
    sb.check("end of run", "in_batch (a batch left open)", rtl["in_batch"], 0)
    for port, left in sorted(rtl["pending"].items()):
        if left:
            sb.fail("end of run", f"{port} port", left, 0, "word in flight or unread at the end")


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
                out[name] = [_signed(word >> (fld["offset"] + i * ew), ew) for i in range(fld["elements"])]
            else:
                v = (word >> fld["offset"]) & ((1 << fld["width"]) - 1)
                out[name] = _signed(v, fld["width"]) if fld.get("signed") else v
        return out


def _signed(v: int, w: int) -> int:
    v &= (1 << w) - 1
    return v - (1 << w) if v >> (w - 1) else v


def decode_record(job: dict, lay: dict, rec: dict, meta: dict) -> tuple[str, str, object, object]:
    """A comparing-sink record (source, address, got payload, expected word) as
    ``(where, word, rtl value, golden value)`` with the sub-batch's samples and the element."""
    P, k = job["params"]["lanes"], job["params"]["rank"]
    Ra, Rb = job["chunks"]["d"], job["chunks"]["x"]
    sw, gw = job["state_bits"], job["sigma_bits"]
    exp_lanes = [_signed(rec["exp"] >> (lane * sw), sw) for lane in range(P)]
    exp_sig = _signed(rec["exp"] >> (P * sw), gw)
    trace = rec["src"] <= 4
    w = lay["trace" if trace else "factors"].unpack(rec["got"])
    fields = f"kind={w['kind']} col={w['col']} chunk={w['chunk']}"
    if rec["src"] in (2, 3, 6, 8):  # surplus or illegal: no expected word to show
        return (f"{'trace' if trace else 'factor'} stream", f"word {fields}", w["data"] + [w["sigma"]], None)
    if trace:
        per = k * (Ra + Rb + 1)
        rel = rec["addr"] // per
        where = sub_batch_where(job, meta["subs"][rel]) if rel < len(meta["subs"]) else f"sub-batch +{rel}"
        if w["kind"] == 2:
            return where, f"sigma[{w['col']}]", w["sigma"], exp_sig
        key = "X" if w["kind"] == 0 else "Delta"
    else:
        per = k * (Ra + Rb)
        rel = rec["addr"] // per
        where = dump_where(job, meta["dumps"][rel]) if rel < len(meta["dumps"]) else f"factor dump +{rel}"
        if w["sigma"] != exp_sig:
            return where, f"sigma[{w['col']}] ({fields})", w["sigma"], exp_sig
        key = "X" if w["kind"] == 1 else "Delta"
    diffs = [lane for lane in range(P) if w["data"][lane] != exp_lanes[lane]] or [0]
    lane = diffs[0]
    more = f" (+{len(diffs) - 1} more lanes)" if len(diffs) > 1 else ""
    return where, f"{key}[{w['chunk'] * P + lane},{w['col']}]{more}", w["data"][lane], exp_lanes[lane]
