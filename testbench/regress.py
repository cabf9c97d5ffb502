"""Random-configuration regression campaigns: ``sbpca regress --samples N --seed S``.

A campaign draws random *legal* engine configurations — a, b in 1..96 (``max_dim``), k in
1..min(8, a, b), s, P (also P not dividing a or b), every format set including the
saturating q8 — and for each one a stream: batch sizes with partial sub-batches, stall
probabilities 0..0.5 drawn per port, trace on or off, single-column and all-column factor
requests, state loads that fire the σ guard, zero states with zero samples (degenerate
columns), extreme samples that saturate, and (once per campaign) a stream captured from a
training step of the digits CNN.  Driver cases (both schemes, random BL, stalls) and, in
campaigns of at least :data:`SOC_MIN_SAMPLES` samples, the SoC under its C firmware (small
random configurations, both driver schemes, soft resets, bus and pulse stalls) run in the
same campaign.  Everything derives from ``--seed``: case ``i`` can be rerun alone with
``--only i`` (the command is quoted with each mismatch).

Builds are cached by netlist (:mod:`testbench.runner`), so configurations that share one
are compiled once.  The sample budget is spread over the configurations in inverse
proportion to the cube of their cost (cycles per sample, from the engine's timing model),
so slow configurations still run but cheap ones carry most samples.  A large case is cut
into shards (one simulator run each, own seed) that ``--jobs`` workers share.  Coverage is counted per event bin; the campaign fails on any
mismatch and on any bin left empty (``--allow-empty`` names bins a short campaign may miss).
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from testbench.engine_block import BLOCK_LIMITS

__all__ = ["draw_cases", "run_case", "run_campaign", "coverage_bins", "summarize", "write_summary"]

FORMAT_SETS = ("q8", "q12", "q16", "q24")
SUB_BATCHES = (1, 2, 3, 4, 5, 8, 16, 32)
SUB_BATCH_WEIGHTS = (1, 1, 1, 2, 1, 3, 4, 4)  # small s costs many cycles per sample: drawn less often
CHUNK_SUB_BATCHES = 2000  # sub-batches per simulator run (bounds the golden model's memory) ...
CHUNK_SAMPLES = 50000  # ... and samples ...
CHUNK_CYCLES = 4_000_000  # ... and simulated cycles (by the cost model): ~20 s runs that --jobs can share
DRIVER_EVERY = 6  # one driver case per this many engine cases (at least one per scheme)
SOC_MIN_SAMPLES = 1000  # campaigns this large also run the SoC under its firmware (one case per scheme)
SOC_MAX_BATCH = 16  # MAX_BATCH of the SoC cases: small, so that the batch-limit check stays short
#: events of the SoC cases: each driver scheme under the firmware, a soft reset with the state
#: restored, back-pressure on the pulse port, the idle/timeout and MAX_BATCH checks
SOC_BINS = ("stochastic", "deterministic", "soft_reset", "pulse_backpressure", "batch_limit")
#: saturation stages no stimulus of the campaign has reached (random, rail samples into rail
#: states, σ at both ends): counted and reported, but an empty count does not fail a campaign
UNREACHED_SAT = ("A", "X_q", "p", "D", "Delta_q", "S", "sigma")


def coverage_bins() -> list[str]:
    """Every event bin a campaign must hit (see docs/VERIFICATION.md)."""
    from pymodel.saturation import SAT_NAMES

    return ([f"sat_{n}" for n in SAT_NAMES]
            + ["sigma_guard", "degenerate_column", "partial_sub_batch", "single_column_request", "trace_off",
               "state_load", "captured_training_stream", "p_not_dividing"]
            + [f"backpressure_{p}" for p in ("x", "d", "load", "factor_req", "trace", "factors")]
            + ["input_buffers_full", "format_q8", "format_q12", "format_q16", "format_q24",
               "driver_stochastic", "driver_deterministic", "driver_stall"]
            + [f"soc_{b}" for b in SOC_BINS])


# ---------------------------------------------------------------- case drawing
def _engine_params(rng: np.random.Generator, max_dim: int, fs: str | None = None):
    from hdl.engine_params import EngineParams

    while True:
        a, b = (int(v) for v in rng.integers(1, max_dim + 1, 2))
        k = int(rng.integers(1, min(8, a, b) + 1))
        s = int(rng.choice(SUB_BATCHES, p=np.array(SUB_BATCH_WEIGHTS) / sum(SUB_BATCH_WEIGHTS)))
        P = int(rng.integers(1, min(8, max(a, b)) + 1))
        fs_i = fs if fs is not None else str(rng.choice(FORMAT_SETS))
        try:
            return EngineParams(rows=a, cols=b, rank=k, sub_batch=s, lanes=P, formats=fs_i)
        except ValueError:
            continue


def _cost(p) -> float:
    """Simulated cycles per sample: the engine's own timing model of a full sub-batch in
    steady state (the period of :func:`hdl.engine_params.build_schedule`, two sub-batches in
    flight) over s, plus ~10 % for what the model leaves out (stalls, loads, dumps, flushes,
    block hand-overs).

    Measured against campaign runs (docs/VERIFICATION.md) it is within a few per cent; the
    throughput bound 2k(a+b)/P alone underestimated small-k, small-s configurations by up to
    36 %, which the inverse-cube sharing turned into 2.5x too many samples on them.
    """
    return 1.1 * p.schedule.period / p.sub_batch + 4


def draw_cases(samples: int, seed: int, max_dim: int = 96, max_configs: int | None = None) -> list[dict]:
    """The campaign's cases (engine and driver), each with its own seed and sample budget."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, not {samples}")
    if not 1 <= max_dim <= 96:
        raise ValueError(f"max_dim must be in 1..96, not {max_dim}")
    rng = np.random.default_rng([int(seed), 0x5EED])
    # number of configurations grows slowly with the budget: builds cost more than samples
    n_cfg = max(1, min(max_configs or 10 ** 9, int(round(1.2 * math.log10(max(samples, 10))))))
    # every format set in turn (from a random one), so that even a short campaign covers each
    f0 = int(rng.integers(len(FORMAT_SETS)))
    params = [_engine_params(rng, max_dim, FORMAT_SETS[(f0 + i) % len(FORMAT_SETS)]) for i in range(n_cfg)]
    w = np.array([1.0 / _cost(p) ** 3 for p in params])
    share = np.maximum(8, np.floor(samples * w / w.sum())).astype(int)
    cases = []
    for i, (p, n) in enumerate(zip(params, share)):
        cases.append({"kind": "engine", "params": p.to_dict(), "samples": int(n),
                      "seed": int(rng.integers(1 << 31))})
    n_drv = max(2, n_cfg // DRIVER_EVERY)  # both schemes, always
    for j in range(n_drv):
        cases.append({"kind": "driver", "scheme": ("stochastic", "deterministic")[j % 2],
                          "seed": int(rng.integers(1 << 31)), "max_dim": max_dim})
    if samples >= 20000 and max_dim >= 65:
        cases.append({"kind": "captured", "seed": int(rng.integers(1 << 31))})
    if samples >= SOC_MIN_SAMPLES:
        for scheme in ("stochastic", "deterministic"):
            cases.append({"kind": "soc", "scheme": scheme, "seed": int(rng.integers(1 << 31)),
                          "max_dim": min(max_dim, 12)})
    for i, c in enumerate(cases):
        c["index"] = i
    return cases


def _engine_stream(params, n_samples: int, rng: np.random.Generator):
    """Batches totalling ``n_samples`` with the events of the module docstring."""
    from testbench.engine_cosim import random_stream

    f = params.fmts
    out = []
    left = n_samples
    events = set()
    while left > 0:
        bsz = int(min(left, rng.integers(1, max(2, 4 * params.sub_batch + 3))))
        left -= bsz
        style = rng.random()
        xs, ds = (float(np.exp(rng.uniform(np.log(0.2), np.log(2.0)))),
                  float(np.exp(rng.uniform(np.log(0.05), np.log(1.0)))))
        b = random_stream(params, 1, bsz, seed=int(rng.integers(1 << 31)), x_scale=xs, d_scale=ds)[0]
        if style < 0.08:  # extreme samples: every element at a rail
            b.x = np.where(rng.random(b.x.shape) < 0.5, f.x.min_int, f.x.max_int).astype(np.int64)
            b.d = np.where(rng.random(b.d.shape) < 0.5, f.delta.min_int, f.delta.max_int).astype(np.int64)
            events.add("extreme")
        out.append(b)
        if bsz % params.sub_batch:
            events.add("partial_sub_batch")
    for i, b in enumerate(out):
        r = rng.random()
        if r < 0.12:  # a random state with small or negative sigma: the sigma guard fires
            X = f.state.quantize(rng.normal(0, 0.4, (params.cols, params.rank)))
            D = f.state.quantize(rng.normal(0, 0.4, (params.rows, params.rank)))
            sig = rng.integers(-8, 8, params.rank)
            b.load = (X, D, sig)
        elif r < 0.18:  # zero state, zero samples: every column degenerates
            b.load = (np.zeros((params.cols, params.rank), np.int64), np.zeros((params.rows, params.rank), np.int64),
                      np.full(params.rank, 1 << max(0, f.sigma.frac - 2), np.int64))
            b.x[:] = 0
            b.d[:] = 0
        elif r < 0.30:  # a state at the rails with a large sigma
            X = np.where(rng.random((params.cols, params.rank)) < 0.5, f.state.min_int, f.state.max_int)
            D = np.where(rng.random((params.rows, params.rank)) < 0.5, f.state.min_int, f.state.max_int)
            sig_hi = rng.random() < 0.5
            b.load = (X.astype(np.int64), D.astype(np.int64),
                      rng.integers(f.sigma.max_int // 2, f.sigma.max_int + 1, params.rank) if sig_hi
                      else rng.integers(-8, 8, params.rank))
            if rng.random() < 0.7:  # rail samples into a rail state: the wide stages saturate
                b.x = np.where(rng.random(b.x.shape) < 0.5, f.x.min_int, f.x.max_int).astype(np.int64)
                b.d = np.where(rng.random(b.d.shape) < 0.5, f.delta.min_int, f.delta.max_int).astype(np.int64)
        elif r < 0.33:  # a state of ±1 LSB with zero samples: ‖v‖ so small that 1/‖v‖ saturates (X_inv, Delta_inv)
            X = rng.integers(-1, 2, (params.cols, params.rank))
            D = rng.integers(-1, 2, (params.rows, params.rank))
            X[0], D[0] = 1, 1  # no zero column: that would be the degenerate case instead
            b.load = (X.astype(np.int64), D.astype(np.int64), np.full(params.rank, 1 << max(0, f.sigma.frac - 2),
                                                                        np.int64))
            b.x[:] = 0
            b.d[:] = 0
        d = rng.random()
        b.dump = bool(d < 0.6 or i == len(out) - 1)
        if b.dump and params.rank > 1 and rng.random() < 0.25:
            b.dump_col = int(rng.integers(params.rank))
    return out


def _stall(rng: np.random.Generator) -> dict:
    from testbench.engine_cosim import PORTS

    mode = rng.random()
    if mode < 0.15:
        return {p: 0.0 for p in PORTS}
    return {p: float(np.round(rng.uniform(0, 0.5), 3)) for p in PORTS}


def reproduce_command(seed: int, samples: int, index: int, max_dim: int, max_configs: int | None) -> str:
    mc = f" --max-configs {max_configs}" if max_configs else ""
    md = f" --max-dim {max_dim}" if max_dim != 96 else ""
    return f"sbpca regress --samples {samples} --seed {seed}{md}{mc} --only {index}"


# ---------------------------------------------------------------- running one case
def shard_sizes(case: dict) -> list[int]:
    """Samples of each simulator run (*shard*) of an engine case: within :data:`CHUNK_SAMPLES`,
    :data:`CHUNK_SUB_BATCHES` sub-batches and :data:`CHUNK_CYCLES` cycles, as even as possible.
    Shards are independent (each has its own seed), so ``--jobs`` spreads one large case
    over every worker; driver and captured cases are one shard."""
    if case["kind"] != "engine":
        return [0]
    from hdl.engine_params import EngineParams

    p = EngineParams.from_dict(case["params"])
    chunk = max(1, min(CHUNK_SAMPLES, CHUNK_SUB_BATCHES * p.sub_batch, int(CHUNK_CYCLES / _cost(p))))
    n = max(1, -(-int(case["samples"]) // chunk))
    q, r = divmod(int(case["samples"]), n)
    return [q + (1 if j < r else 0) for j in range(n)]


def run_case(case: dict, campaign: dict) -> dict:
    """Run one case (every shard of it, in turn); return its summary (counts, coverage, mismatch lines)."""
    t0 = time.time()
    parts = [run_shard(case, j, campaign) for j in range(len(shard_sizes(case)))]
    out = merge_shards(case, parts)
    out["seconds"] = round(time.time() - t0, 2)
    return out


def run_shard(case: dict, shard: int, campaign: dict) -> dict:
    """Run shard ``shard`` of ``case``; a crash is a failure of the case, reported with its reproducer."""
    t0 = time.time()
    repro = _repro(case, campaign)
    try:
        if case["kind"] == "driver":
            out = _run_driver_case(case, repro, campaign)
        elif case["kind"] == "soc":
            out = _run_soc_case(case, repro)
        else:
            out = _run_engine_shard(case, shard, repro, campaign)
    except Exception as exc:
        out = {"kind": case["kind"], "mismatches": 1, "words_compared": 0, "samples": 0, "cycles": 0,
               "coverage": {}, "details": [f"case crashed (shard {shard}): {type(exc).__name__}: {exc} "
                                           f"| reproduce: {repro}"]}
    out["seconds"] = round(time.time() - t0, 2)
    out.setdefault("reproduce", repro)
    return out


def _repro(case: dict, campaign: dict) -> str:
    return reproduce_command(campaign["seed"], campaign["samples"], case["index"], campaign["max_dim"],
                             campaign["max_configs"])


def merge_shards(case: dict, parts: list[dict]) -> dict:
    """One case's summary from its shards' summaries (sums, coverage, the first mismatch lines)."""
    out = dict(parts[0])
    if out["kind"] in ("engine", "captured"):
        for key in ("mismatches", "words_compared", "samples", "cycles"):
            out[key] = sum(int(q.get(key, 0)) for q in parts)
        out["sim_seconds"] = round(sum(float(q.get("sim_seconds", 0.0)) for q in parts), 2)
        cov: dict[str, int] = {}
        for q in parts:
            for key, v in q["coverage"].items():
                if key in ("p_not_dividing",) or key.startswith("format_"):
                    cov[key] = max(cov.get(key, 0), int(v))  # facts of the configuration, not events
                else:
                    _add(cov, key, int(v))
        out["coverage"] = cov
        out["details"] = [d for q in parts for d in q.get("details", [])][:5]
        out["runs"] = [r for q in parts for r in q.get("runs", [])]
        speeds = [s for q in parts for s in q.get("speeds", [])]
        out["sim_cycles_per_cpu_second"] = round(float(np.median(speeds)), 1) if speeds else None
        out.pop("speeds", None)
    out.update(index=case["index"], seconds=round(sum(float(q.get("seconds", 0.0)) for q in parts), 2),
               reproduce=parts[0].get("reproduce", ""), shards=len(parts))
    return out


def _run_engine_shard(case: dict, shard: int, repro: str, campaign: dict) -> dict:
    """One simulator run of an engine case: shard ``shard``'s stream, stalls and trace setting,
    all drawn from ``(case seed, shard)``."""
    from hdl.engine_params import EngineParams
    from testbench.engine_cosim import run_engine_cosim

    rng = np.random.default_rng([case["seed"], shard])
    cov: dict[str, int] = {}
    captured = case["kind"] == "captured"
    if captured:
        from testbench.engine_capture import capture_training_stream

        cap = capture_training_stream(rank=4, sub_batch=8, batch=20, seed=case["seed"] % 1000)
        p = cap.params(lanes=int(rng.integers(1, 9)))
        cap.batch.load = cap.init  # loaded through the port: the netlist stays the default one
        batches = [cap.batch]
        cov["captured_training_stream"] = 1
        # the capture's own check: the golden run reproduces the training loop's state
    else:
        p = EngineParams.from_dict(case["params"])
        batches = _engine_stream(p, shard_sizes(case)[shard], rng)
    stall = _stall(rng)
    trace = bool(rng.random() >= 0.1)
    if not trace:  # without trace words a block can only end after a dump: keep blocks small
        since = 0
        for b in batches:
            since += len(b.x)
            if since >= BLOCK_LIMITS["samples"] // 2:
                b.dump = True
            since = 0 if b.dump else since
    rep = run_engine_cosim(p, batches, seed=0, stall_prob=stall,
                           stim_seed=int(rng.integers(1 << 31)), trace=trace, reproduce=repro,
                           fast_build=campaign["fast_build"])
    st = rep.get("rtl_status", {})
    for n_ in st.get("sat", []):
        _add(cov, f"sat_{n_}", 1)
    _add(cov, "sigma_guard", int(st.get("sigma_guard", 0)))
    _add(cov, "degenerate_column", int(st.get("degenerate", 0)))
    _add(cov, "partial_sub_batch", sum(1 for b in batches if len(b.x) % p.sub_batch))
    _add(cov, "single_column_request", sum(1 for b in batches if b.dump and b.dump_col is not None))
    _add(cov, "trace_off", int(not trace))
    _add(cov, "state_load", sum(1 for b in batches if b.load is not None))
    for key, v in rep.get("coverage_counts", {}).items():
        _add(cov, key, int(v))
    cov["p_not_dividing"] = int(p.rows % p.lanes != 0 or p.cols % p.lanes != 0)
    cov[f"format_{p.fmts.name}"] = 1
    return {"kind": case["kind"], "config": _describe(p), "mismatches": int(rep["mismatches"]),
            "words_compared": int(rep.get("words_compared", 0)), "samples": int(rep.get("samples", 0)),
            "cycles": int(rep.get("sim_cycles_total", 0) or 0), "sim_seconds": float(rep.get("sim_seconds") or 0),
            "golden_seconds": float(rep.get("golden_seconds") or 0),
            "speeds": [rep["sim_cycles_per_cpu_second"]] if rep.get("sim_cycles_per_cpu_second") else [],
            "runs": [{"shard": shard, "samples": rep.get("samples"), "stall": stall, "trace": trace}],
            "coverage": cov, "details": rep.get("mismatch_details", [])[:5], "reproduce": repro}


def _add(cov: dict, key: str, v: int) -> None:
    cov[key] = cov.get(key, 0) + int(v)


def _describe(p) -> str:
    return f"a={p.rows} b={p.cols} k={p.rank} s={p.sub_batch} P={p.lanes} {p.fmts.name}"


def _run_driver_case(case: dict, repro: str, campaign: dict) -> dict:
    from pymodel.crossbar import DriverParams
    from testbench.driver_cosim import run_driver_cosim

    rng = np.random.default_rng(case["seed"])
    md = min(case.get("max_dim", 96), 32)
    seed = int(rng.integers(1 << 15))
    params = DriverParams(int(rng.integers(1, md + 1)), int(rng.integers(1, md + 1)), scheme=case["scheme"],
                          bl_max=int(rng.integers(1, 32)), seed=seed)
    stalls = [0.0, float(np.round(rng.uniform(0.05, 0.5), 3))]
    rep = run_driver_cosim(params, updates=int(rng.integers(10, 40)), seed=seed, stall_prob=stalls, reproduce=repro,
                           fast_build=campaign["fast_build"])
    cov = {f"driver_{params.scheme}": 1, "driver_stall": 1}
    return {"kind": "driver", "config": f"driver {params.rows}x{params.cols} {params.scheme} BL<={params.bl_max}",
            "mismatches": int(rep["mismatches"]), "words_compared": int(rep["words_compared"]),
            "samples": int(rep["updates"]), "cycles": int(rep["cycles"]), "stall": stalls, "coverage": cov,
            "details": [d for r in rep["runs"] for d in r.get("mismatch_details", [])][:5]}


def soc_draw(case: dict) -> dict:
    """A SoC case's random legal configuration and stimulus (small: the SoC is bus bound)."""
    rng = np.random.default_rng(case["seed"])
    md = case.get("max_dim", 12)
    a, b = (int(v) for v in rng.integers(1, md + 1, 2))
    s = int(rng.choice((1, 2, 3, 4, 5, 8)))
    bl_max = int(rng.integers(1, 32))
    cfg = {"rows": a, "cols": b, "rank": int(rng.integers(1, min(3, a, b) + 1)), "sub_batch": s,
           "lanes": int(rng.integers(1, min(4, max(a, b)) + 1)), "formats": str(rng.choice(FORMAT_SETS)),
           "scheme": case["scheme"], "bl_max": bl_max, "driver_seed": int(rng.integers(1 << 15)),
           "fifo_depth": int(rng.choice((4, 8, 16))), "max_batch": SOC_MAX_BATCH}
    n_batches = int(rng.integers(2, 5))
    # a soft reset before one random later batch (more with probability 0.3 each): every case
    # restores a state; the idle/timeout and MAX_BATCH checks always run (a few hundred cycles)
    scenarios = ("mid_batch", "mid_readout", "mid_update")
    first = int(rng.integers(1, n_batches))
    resets = [None] + [str(rng.choice(scenarios)) if (i == first or rng.random() < 0.3) else None
                       for i in range(1, n_batches)]
    return {"params": cfg, "batches": n_batches, "batch_size": int(rng.integers(1, min(2 * s + 2, SOC_MAX_BATCH) + 1)),
            "stream_seed": int(rng.integers(1 << 31)), "init_seed": int(rng.integers(1 << 15)),
            "lr_scale": 1 << int(rng.integers(16, 25)), "bl": int(rng.integers(1, bl_max + 1)),
            "bus_stalls": bool(rng.random() < 0.5), "pulse_stall_prob": float(np.round(rng.uniform(0.05, 0.4), 3)),
            "resets": resets, "extra_checks": True, "stim_seed": int(rng.integers(1 << 31))}


def _run_soc_case(case: dict, repro: str) -> dict:
    """The SoC under its C firmware (:func:`testbench.soc_cosim.run_soc_cosim`), scored by the
    shared scoreboard: σ, every factor word, every pulse word, counters, flags, end of run."""
    from hdl.soc import SoCParams
    from testbench.soc_cosim import random_batches, run_soc_cosim

    d = soc_draw(case)
    params = SoCParams.make(**d["params"])
    batches = random_batches(params, d["batches"], d["batch_size"], seed=d["stream_seed"])
    rep = run_soc_cosim(params, batches, seed=d["init_seed"], lr_scale=d["lr_scale"], bl=d["bl"],
                        bus_stalls=d["bus_stalls"], pulse_stall_prob=d["pulse_stall_prob"], stim_seed=d["stim_seed"],
                        extra_checks=d["extra_checks"], resets=d["resets"], reproduce=repro)
    cov = {f"soc_{params.driver.scheme}": 1, "soc_soft_reset": len(rep.get("soft_resets", [])),
           "soc_pulse_backpressure": int(rep.get("pulse_stall_cycles", 0)),
           "soc_batch_limit": int("batch_limit_check" in rep)}
    e = params.engine
    return {"kind": "soc", "config": f"soc a={e.rows} b={e.cols} k={e.rank} s={e.sub_batch} P={e.lanes} "
                                     f"{e.fmts.name} {params.driver.scheme}",
            "mismatches": int(rep["mismatches"]) + int(rep.get("failed", 0) != 0 and rep["mismatches"] == 0),
            "words_compared": int(rep.get("words_compared", 0)), "samples": int(rep.get("samples") or 0),
            "cycles": int(rep.get("cycles") or 0), "coverage": cov, "draw": d,
            "details": list(rep.get("mismatch_details", []))[:5]}


# ---------------------------------------------------------------- the campaign
def _shard_cost(case: dict, shard: int) -> float:
    """Expected simulated cycles of one shard (driver and captured cases are short; a SoC case
    costs about as much as a large shard: a build and a Python bus model)."""
    if case["kind"] == "soc":
        return 4e6
    if case["kind"] != "engine":
        return 1e5
    from hdl.engine_params import EngineParams

    return shard_sizes(case)[shard] * _cost(EngineParams.from_dict(case["params"]))


def _warm_golden() -> None:
    """Run the compiled golden kernel once in this process.  Compiling it costs ~40 s of CPU
    when numba's on-disk cache is cold (a fresh checkout, an edited kernel); done before the
    worker processes fork, it is paid once instead of once per worker, in parallel."""
    from pymodel.formats import FORMAT_SETS as FS
    from pymodel.sbpca import SBPCA

    g = SBPCA(2, 2, 1, 1, fixed=FS["q8"], record=True)
    g.update_int(np.ones((2, 2), np.int64), np.ones((2, 2), np.int64))


def run_campaign(samples: int, seed: int, *, jobs: int = 1, max_dim: int = 96, max_configs: int | None = None,
                 only: int | None = None, fast_build: bool = False, allow_empty: tuple[str, ...] = (),
                 progress=None) -> dict:
    """Draw and run the cases; return the campaign summary (``ok`` false on any failure)."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, not {jobs}")
    bins = coverage_bins()
    unknown = set(allow_empty) - set(bins)
    if unknown:
        raise ValueError(f"--allow-empty names unknown bins {sorted(unknown)}; bins are {bins}")
    allow_empty = tuple(sorted(set(allow_empty) | {f"sat_{n}" for n in UNREACHED_SAT}))
    cases = draw_cases(samples, seed, max_dim, max_configs)
    if only is not None:
        if not 0 <= only < len(cases):
            raise ValueError(f"--only {only}: the campaign has cases 0..{len(cases) - 1}")
        cases = [cases[only]]
    campaign = {"samples": samples, "seed": seed, "max_dim": max_dim, "max_configs": max_configs,
                "fast_build": fast_build}
    t0 = time.time()
    shards = [(c, j) for c in cases for j in range(len(shard_sizes(c)))]
    parts: dict[int, dict[int, dict]] = {c["index"]: {} for c in cases}
    n_shards = {c["index"]: len(shard_sizes(c)) for c in cases}
    by_index = {c["index"]: c for c in cases}
    results = []

    def collect(case: dict, j: int, part: dict) -> None:
        parts[case["index"]][j] = part
        if len(parts[case["index"]]) == n_shards[case["index"]]:
            got = parts[case["index"]]
            results.append(merge_shards(case, [got[i] for i in range(n_shards[case["index"]])]))
            if progress:
                progress(results[-1])

    if jobs == 1:
        for c, j in shards:
            collect(c, j, run_shard(c, j, campaign))
    else:
        _warm_golden()  # compile the golden kernel once: the forked workers inherit it
        # each case's first shard first (its build: workers build different netlists side by side
        # instead of waiting on one build lock), then the costliest shards, so the last to finish are short
        shards.sort(key=lambda cj: (cj[1] > 0, -_shard_cost(*cj)))
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            futs = {ex.submit(run_shard, c, j, campaign): (c["index"], j) for c, j in shards}
            for fut in as_completed(futs):
                i, j = futs[fut]
                try:
                    part = fut.result()
                except Exception as exc:  # a worker died (killed, out of memory): the shard failed
                    part = {"kind": by_index[i]["kind"], "mismatches": 1, "words_compared": 0, "samples": 0,
                            "cycles": 0, "coverage": {}, "reproduce": _repro(by_index[i], campaign),
                            "details": [f"shard {j} lost: {type(exc).__name__}: {exc}"]}
                collect(by_index[i], j, part)
    results.sort(key=lambda r: r["index"])
    summary = summarize(results, bins, allow_empty, only is not None)
    summary.update(command=reproduce_command(seed, samples, 0, max_dim, max_configs).rsplit(" --only", 1)[0]
                   + (f" --jobs {jobs}" if jobs > 1 else ""),
                   seed=seed, samples_requested=samples, wall_seconds=round(time.time() - t0, 1))
    return summary


def summarize(results: list[dict], bins: list[str], allow_empty=(), single_case: bool = False) -> dict:
    """Totals, coverage per bin and the verdict: ``ok`` only without mismatches and empty bins
    (bins in ``allow_empty`` may stay empty; a single ``--only`` case is judged on mismatches)."""
    cov = {b: 0 for b in bins}
    for r in results:
        for key, v in r["coverage"].items():
            if key in cov:
                cov[key] += int(v)
    empty = [] if single_case else [b for b in bins if cov[b] == 0 and b not in allow_empty]
    mism = sum(r["mismatches"] for r in results)
    engine = [r for r in results if r["kind"] in ("engine", "captured")]
    return {
        "configurations": len(engine), "driver_cases": sum(r["kind"] == "driver" for r in results),
        "soc_cases": sum(r["kind"] == "soc" for r in results),
        "samples": sum(r["samples"] for r in engine),
        "driver_updates": sum(r["samples"] for r in results if r["kind"] == "driver"),
        "soc_samples": sum(r["samples"] for r in results if r["kind"] == "soc"),
        "words_compared": sum(r["words_compared"] for r in results),
        "simulated_cycles": sum(r["cycles"] for r in results),
        "mismatches": mism, "coverage": cov, "empty_bins": empty, "allowed_empty": sorted(allow_empty),
        "ok": mism == 0 and not empty,
        "cases": results,
    }


def write_summary(summary: dict, path: Path) -> None:
    Path(path).write_text(json.dumps(summary, indent=1, default=str))
