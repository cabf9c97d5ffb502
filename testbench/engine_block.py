"""Block-mode engine co-simulation: the stream cut into blocks of segments for the test wrapper.

A *segment* is what the wrapper runs without help: an optional state load, the x/δ beats of
one or more batches, and a factor request when the last batch dumps.  A *block* is a run of
segments that fits the wrapper's memories (:data:`BLOCK_LIMITS`) and ends where every
expected word of it has come out (after a dump, or anywhere while the trace is on).  For
each block :func:`write_blocks` writes the ``$readmemh`` files of the sources, the segment
table, the expected trace and factor words and the requested-column masks, and the block's
counts; the cocotb bench (``testbench.bench_engine_block``) wakes once per block.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hdl.engine_params import EngineParams

from .engine_harness import HEX_FILES, HarnessDepths
from .hexpack import pack_hex

__all__ = ["BLOCK_LIMITS", "plan_blocks", "write_blocks", "depths_for"]

#: per-block capacity of the wrapper's memories (a larger single segment enlarges them)
BLOCK_LIMITS = {"samples": 1024, "segments": 64, "sub_batches": 128, "dumps": 64}


def _segments(batches) -> list[dict]:
    """Cut the batch list as the per-cycle bench does: a new segment at the first batch, at a
    batch that loads a state, and after a batch that dumps its factors."""
    segs: list[dict] = []
    for bi, b in enumerate(batches):
        if bi == 0 or b.load is not None or batches[bi - 1].dump:
            segs.append({"batches": [], "load": b.load, "dump": False, "dump_col": None})
        segs[-1]["batches"].append(bi)
        segs[-1]["dump"] = bool(b.dump)
        segs[-1]["dump_col"] = b.dump_col
    return segs


def plan_blocks(params: EngineParams, batches, trace: bool) -> list[list[dict]]:
    """Group the segments into blocks within :data:`BLOCK_LIMITS` (see the module docstring)."""
    s = params.s
    blocks: list[list[dict]] = []
    cur: list[dict] = []
    tot = {"samples": 0, "segments": 0, "sub_batches": 0, "dumps": 0}
    for seg in _segments(batches):
        n = [len(batches[i].x) for i in seg["batches"]]
        need = {"samples": sum(n), "segments": 1, "sub_batches": sum(-(-m // s) for m in n),
                "dumps": int(seg["dump"])}
        seg["need"] = need
        fits = all(tot[key] + need[key] <= BLOCK_LIMITS[key] for key in tot)
        may_end = bool(cur) and (trace or cur[-1]["dump"])
        if cur and not fits and may_end:
            blocks.append(cur)
            cur, tot = [], {key: 0 for key in tot}
        cur.append(seg)
        for key in tot:
            tot[key] += need[key]
    if cur:
        blocks.append(cur)
    return blocks


def depths_for(params: EngineParams, blocks: list[list[dict]]) -> HarnessDepths:
    """Memory depths for the limits, or for the largest block when one exceeds them."""
    need = {key: max([BLOCK_LIMITS[key]] + [sum(sg["need"][key] for sg in blk) for blk in blocks])
            for key in BLOCK_LIMITS}
    return HarnessDepths.for_block_limits(params, need["samples"], need["segments"], need["sub_batches"],
                                          need["dumps"])


def _lane_rows(M: np.ndarray, R: int, P: int) -> np.ndarray:
    """Columns of ``M`` (n×k) cut into R chunks of P lanes, column-major: (k·R, P)."""
    n, k = M.shape
    pad = np.zeros((R * P, k), dtype=np.int64)
    pad[:n] = M
    return pad.reshape(R, P, k).transpose(2, 0, 1).reshape(k * R, P)


def _field(payloads: dict, port: str, name: str) -> tuple[int, int]:
    for f in payloads[port]["fields"]:
        if f["name"] == name:
            return f["offset"], f.get("element_width", f["width"])
    raise KeyError(f"{port}.{name}")


def write_blocks(params: EngineParams, batches, expected: dict, payloads: dict, blocks: list[list[dict]],
                 loads: list, out_dir: Path, trace: bool) -> list[dict]:
    """Write every block's memory files under ``out_dir/NNNN/``; return each block's counts.

    ``loads`` — per batch, the integer state loaded before it (or None), validated already.
    """
    p = params
    P, k, Ra, Rb = p.P, p.k, p.chunks_a, p.chunks_b
    wps = k * (Ra + Rb + 1)
    sw, gw = p.fmts.state.bits, p.fmts.sigma.bits
    hist = expected["history"]
    dumps = expected["dumps"]
    sub_of_batch: dict[int, list[int]] = {}
    for i, h in enumerate(hist):
        sub_of_batch.setdefault(h["batch"], []).append(i)
    dump_of_batch = {d["batch"]: j for j, d in enumerate(dumps)}
    W = {n: payloads[n]["width"] for n in payloads}
    req_off = {f["name"]: f["offset"] for f in payloads["factor_req"]["fields"]}
    ld = {name: _field(payloads, "load", name) for name in ("data", "sigma", "col", "kind", "chunk")}
    metas = []
    for bno, blk in enumerate(blocks):
        xs, ds, lds, segrows, texp_d, texp_s, fexp_d, fexp_s, fmask = [], [], [], [], [], [], [], [], []
        lasts = []
        subs: list[int] = []
        dump_ids: list[int] = []
        nl = nx = nd = 0
        for seg in blk:
            bi0 = seg["batches"][0]
            if loads[bi0] is not None:
                LX, LD, LS = loads[bi0]
                rows_x, rows_d = _lane_rows(LX, Rb, P), _lane_rows(LD, Ra, P)
                kinds = np.concatenate([np.zeros(k * Rb), np.ones(k * Ra), np.full(k, 2)]).astype(np.int64)
                cols = np.concatenate([np.repeat(np.arange(k), Rb), np.repeat(np.arange(k), Ra), np.arange(k)])
                chunks = np.concatenate([np.tile(np.arange(Rb), k), np.tile(np.arange(Ra), k), np.zeros(k, int)])
                data = np.concatenate([rows_x, rows_d, np.zeros((k, P), np.int64)])
                sig = np.concatenate([np.zeros(k * (Ra + Rb), np.int64), np.asarray(LS, np.int64)])
                lds.append((data, sig, cols, kinds, chunks))
                nl += len(kinds)
            for bi in seg["batches"]:
                b = batches[bi]
                x, d = np.asarray(b.x, np.int64), np.asarray(b.d, np.int64)
                xs.append(np.pad(x, ((0, 0), (0, Rb * P - x.shape[1]))).reshape(-1, P))
                ds.append(np.pad(d, ((0, 0), (0, Ra * P - d.shape[1]))).reshape(-1, P))
                last = np.zeros(len(x) * Rb, np.int64)
                last[-1] = 1
                lasts.append(last)
                nx += len(x) * Rb
                nd += len(d) * Ra
                subs += sub_of_batch.get(bi, [])
            dump = seg["dump"]
            col = seg["dump_col"]
            req = (1 << req_off["all"]) if col is None else (int(col) << req_off["col"])
            segrows.append((nl, nx, nd, int(dump), req))
            if dump:
                j = dump_of_batch[seg["batches"][-1]]
                dump_ids.append(j)
                e = dumps[j]
                X, D, S = np.asarray(e["X"], np.int64), np.asarray(e["Delta"], np.int64), np.asarray(e["sigma"])
                fexp_d.append(np.concatenate([_lane_rows(X, Rb, P), _lane_rows(D, Ra, P)]))
                fexp_s.append(np.concatenate([np.repeat(S, Rb), np.repeat(S, Ra)]).astype(np.int64))
                fmask.append(sum(1 << c for c in e["cols"]))
        for i in subs:
            h = hist[i]
            X, D, S = np.asarray(h["X"], np.int64), np.asarray(h["Delta"], np.int64), np.asarray(h["sigma"])
            texp_d.append(np.concatenate([_lane_rows(X, Rb, P), _lane_rows(D, Ra, P), np.zeros((k, P), np.int64)]))
            texp_s.append(np.concatenate([np.zeros(k * (Ra + Rb), np.int64), S.astype(np.int64)]))
        d_dir = Path(out_dir) / f"{bno:04d}"
        d_dir.mkdir(parents=True, exist_ok=True)
        x_all = np.concatenate(xs) if xs else np.zeros((0, P), np.int64)
        xd_off, _ = _field(payloads, "x", "data")
        xl_off, _ = _field(payloads, "x", "last")
        files = {
            "x": pack_hex(W["x"], [(xd_off, p.fmts.x.bits, x_all), (xl_off, 1, np.concatenate(lasts))]),
            "d": pack_hex(W["d"], [(0, p.fmts.delta.bits, np.concatenate(ds))]),
            "seg": pack_hex(97 + W["factor_req"], [(0, 32, np.array([r[0] for r in segrows])),
                                                   (32, 32, np.array([r[1] for r in segrows])),
                                                   (64, 32, np.array([r[2] for r in segrows])),
                                                   (96, 1, np.array([r[3] for r in segrows])),
                                                   (97, W["factor_req"], np.array([r[4] for r in segrows]))]),
        }
        if lds:
            data, sig, cols, kinds, chunks = (np.concatenate([t[i] for t in lds]) for i in range(5))
            files["ld"] = pack_hex(W["load"], [(ld["data"][0], sw, data), (ld["sigma"][0], gw, sig),
                                               (ld["col"][0], ld["col"][1], cols), (ld["kind"][0], ld["kind"][1], kinds),
                                               (ld["chunk"][0], ld["chunk"][1], chunks)])
        else:
            files["ld"] = "0\n"
        ew = P * sw
        files["texp"] = (pack_hex(ew + gw, [(0, sw, np.concatenate(texp_d)), (ew, gw, np.concatenate(texp_s))])
                         if texp_d else "0\n")
        files["fexp"] = (pack_hex(ew + gw, [(0, sw, np.concatenate(fexp_d)), (ew, gw, np.concatenate(fexp_s))])
                         if fexp_d else "0\n")
        files["fmask"] = pack_hex(k, [(0, k, np.array(fmask, np.int64))]) if fmask else "0\n"
        for name, text in files.items():
            (d_dir / HEX_FILES[name]).write_text(text)
        n_sub = len(subs)
        metas.append({
            "dir": str(d_dir), "n_seg": len(blk), "n_sub": n_sub, "n_dump": len(dump_ids),
            "tr_total": n_sub * wps if trace else 0,
            "fr_total": int(sum(len(dumps[j]["cols"]) * (Ra + Rb) for j in dump_ids)),
            "first_sub": subs[0] if subs else 0, "subs": subs, "dumps": dump_ids,
            "x_beats": nx, "d_beats": nd, "load_beats": nl,
        })
    return metas
