"""Co-simulation of the SBPCA engine against the golden model (Python entry point).

:func:`run_engine_cosim` writes the engine's Verilog, runs the fixed-point golden model
(:class:`pymodel.sbpca.SBPCA`, ``record=True``) on the same stream to get every expected
state word, hands both to the cocotb bench ``testbench.bench_engine`` on Verilator through
a JSON job file, and returns the bench's report (mismatches, words compared, cycles ...).
The CLI (``sbpca cosim engine``), the tests, the benchmark and later the SoC/demo call it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from hdl.engine import SBPCAEngine, engine_manifest, initial_state
from hdl.engine_params import EngineParams
from pymodel.sbpca import SBPCA

__all__ = ["EngineBatch", "random_stream", "golden_expectation", "run_engine_cosim", "engine_job", "TOPLEVEL",
           "PORTS"]

TOPLEVEL = "sbpca_engine"
#: the engine's stream ports, each with its own stall probability
PORTS = ("x", "d", "load", "factor_req", "trace", "factors")


@dataclass
class EngineBatch:
    """One batch of the input stream: integer x (B×b) and δ (B×a).

    ``dump`` asks for the factor pairs after this batch (the bench holds the next batch back
    until they are out): all k, or only column ``dump_col``; ``load`` is an optional integer
    state ``(X, Delta, sigma)`` written through the engine's ``load`` port before this batch
    (the golden model takes it too).
    """

    x: np.ndarray
    d: np.ndarray
    dump: bool = True
    load: tuple | None = None
    dump_col: int | None = None


def random_stream(params: EngineParams, batches: int, batch_size: int, seed: int,
                  x_scale: float = 1.0, d_scale: float = 0.5) -> list[EngineBatch]:
    """Random integer samples: x ~ N(0, x_scale²), δ ~ N(0, d_scale²), quantised (saturating)."""
    if batches < 1:
        raise ValueError(f"batches must be >= 1, not {batches!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size!r}")
    rng = np.random.default_rng(seed)
    f = params.fmts
    out = []
    for _ in range(batches):
        x = f.x.quantize(np.clip(rng.normal(0, x_scale, (batch_size, params.cols)), -1e6, 1e6))
        d = f.delta.quantize(np.clip(rng.normal(0, d_scale, (batch_size, params.rows)), -1e6, 1e6))
        out.append(EngineBatch(x, d, True))
    return out


def _check_batches(params: EngineParams, batches: Sequence[EngineBatch]) -> None:
    f = params.fmts
    if not batches:
        raise ValueError("the stream has no batches")
    for i, b in enumerate(batches):
        if not isinstance(b, EngineBatch):
            raise TypeError(f"batch {i} must be an EngineBatch, not {type(b).__name__}")
        x, d = np.asarray(b.x), np.asarray(b.d)
        if x.ndim != 2 or x.shape[1] != params.cols:
            raise ValueError(f"batch {i}: x has shape {x.shape}, expected (B, {params.cols})")
        if d.ndim != 2 or d.shape[1] != params.rows:
            raise ValueError(f"batch {i}: d has shape {d.shape}, expected (B, {params.rows})")
        if x.shape[0] != d.shape[0] or x.shape[0] == 0:
            raise ValueError(f"batch {i}: x and d need the same, non-zero number of samples")
        if x.shape[0] > params.max_batch:
            raise ValueError(f"batch {i}: {x.shape[0]} samples exceed max_batch={params.max_batch}")
        for name, v, fmt in (("x", x, f.x), ("d", d, f.delta)):
            if not np.issubdtype(v.dtype, np.integer):
                raise TypeError(f"batch {i}: {name} must be an integer array in format {fmt}")
            if v.min() < fmt.min_int or v.max() > fmt.max_int:
                raise ValueError(f"batch {i}: {name} integers out of range for {fmt}")
        if b.load is not None:
            initial_state(params, b.load)  # validates shapes, integer type and ranges
        if b.dump_col is not None and not (isinstance(b.dump_col, (int, np.integer))
                                           and 0 <= b.dump_col < params.rank):
            raise ValueError(f"batch {i}: dump_col must be a column in 0..{params.rank - 1}, not {b.dump_col!r}")


def golden_expectation(params: EngineParams, batches: Sequence[EngineBatch], init) -> dict:
    """Every state word the RTL must emit: state after each sub-batch, factors after each
    dumped batch, and the status flags/counters at the end."""
    X0, D0, s0 = init
    f = params.fmts
    g = SBPCA(params.rows, params.cols, params.rank, params.sub_batch, fixed=f,
              init=(f.state.dequantize(X0), f.state.dequantize(D0), f.sigma.dequantize(s0)), record=True)
    # the float round trip must reproduce the integers exactly
    if not (np.array_equal(g.X_int, X0) and np.array_equal(g.Delta_int, D0) and np.array_equal(g.sigma_int, s0)):
        raise AssertionError("initial state does not round-trip through the golden model's init")
    history, dumps = [], []
    for bi, b in enumerate(batches):
        if b.load is not None:
            lx, ld, ls = initial_state(params, b.load)
            g.X_int, g.Delta_int, g.sigma_int = lx.copy(), ld.copy(), ls.copy()
        start = len(g.history)
        g.update_int(np.asarray(b.x, dtype=np.int64), np.asarray(b.d, dtype=np.int64))
        for h in g.history[start:]:
            history.append({"batch": bi, "X": h.X.tolist(), "Delta": h.Delta.tolist(),
                            "sigma": h.sigma.tolist(), "n": h.n, "m": h.m})
        if b.dump:
            dumps.append({"batch": bi, "X": g.X_int.tolist(), "Delta": g.Delta_int.tolist(),
                          "sigma": g.sigma_int.tolist(),
                          "cols": list(range(params.rank)) if b.dump_col is None else [int(b.dump_col)]})
    st = g.status
    return {
        "history": history,
        "dumps": dumps,
        # error: a batch beyond max_batch; _check_batches refuses such streams, so never set
        "status": {"sat": sorted(st.saturation.counts), "sigma_guard": st.sigma_guard,
                   "degenerate": st.degenerate, "error": 0},
        "final": {"X": g.X_int.tolist(), "Delta": g.Delta_int.tolist(), "sigma": g.sigma_int.tolist()},
    }


def _cache_root() -> Path:
    return Path(os.environ.get("SBPCA_ENGINE_CACHE", Path(tempfile.gettempdir()) / "sbpca_engine_cache"))


MODELS_DIR = Path(__file__).resolve().parent / "models"
_ROOT = Path(__file__).resolve().parent.parent


def dsp_models(primitive: str) -> list[Path]:
    """Simulation models of the vendor primitives a design built with ``dsp=primitive`` instantiates."""
    return {"generic": [], "ecp5": [MODELS_DIR / "ecp5_mult18x18d.v"]}[primitive]


def _design_key(params: EngineParams, state0) -> str:
    """Hash of everything the engine's Verilog depends on: parameters, reset state, RTL sources."""
    h = hashlib.sha1(json.dumps(params.to_dict(), sort_keys=True).encode())
    for v in state0:
        h.update(np.ascontiguousarray(v, dtype=np.int64).tobytes())
    # the RTL generator and the number formats it elaborates (the reset state is passed in);
    # the runner's own stamp still compares the Verilog text before reusing a build
    for f in sorted([*(_ROOT / "hdl").glob("*.py"), _ROOT / "pymodel" / "formats.py",
                     _ROOT / "pymodel" / "fixedpoint.py"]):
        h.update(f.read_bytes())
    return h.hexdigest()[:20]


def engine_verilog(params: EngineParams, state0, cache_root: Path | None = None) -> Path:
    """The engine's Verilog, generated once per (parameters, reset state, RTL sources)."""
    from hdl.verilog import write_verilog

    d = Path(cache_root or _cache_root()) / "verilog" / _design_key(params, state0)
    path = d / f"{TOPLEVEL}.v"
    if not path.exists():
        tmp = Path(tempfile.mkdtemp(prefix="v_", dir=Path(cache_root or _cache_root())))
        write_verilog(SBPCAEngine(params, init=state0), TOPLEVEL, tmp)
        d.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / f"{TOPLEVEL}.v", path)  # atomic: parallel jobs see a whole file or none
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _stall_dict(stall_prob) -> dict[str, float]:
    if isinstance(stall_prob, dict):
        unknown = set(stall_prob) - set(PORTS)
        if unknown:
            raise ValueError(f"stall_prob names unknown ports {sorted(unknown)}; ports are {PORTS}")
        probs = {p: float(stall_prob.get(p, 0.0)) for p in PORTS}
    else:
        probs = {p: float(stall_prob) for p in PORTS}
    for port, v in probs.items():
        if not 0.0 <= v < 1.0:
            raise ValueError(f"stall_prob for port {port} must be in [0, 1), not {v!r}")
    return probs


def engine_job(params: EngineParams, batches: Sequence[EngineBatch], state0, *, stall: dict,
               stim_seed: int, trace: bool, reproduce: str = "") -> dict:
    """What both engine benches need: stream facts, expected words (golden model), settings."""
    from pymodel.saturation import SAT_NAMES

    expected = golden_expectation(params, batches, state0)
    sizes = [int(np.asarray(b.x).shape[0]) for b in batches]
    first = []
    batch_start = np.concatenate([[0], np.cumsum(sizes)])
    seen: dict[int, int] = {}
    for h in expected["history"]:
        off = seen.get(h["batch"], 0)
        first.append(int(batch_start[h["batch"]]) + off)
        seen[h["batch"]] = off + h["m"]
    manifest = engine_manifest(params, init=state0)
    return {
        "params": params.to_dict(),
        "payloads": manifest["payloads"],
        "sat_names": list(SAT_NAMES),
        "expected": expected,
        "samples": int(sum(sizes)),
        "n_batches": len(batches),
        "last_batch_size": sizes[-1],
        "sub_first_sample": first,
        "stall": stall,
        "stall_prob": max(stall.values()),
        "stim_seed": int(stim_seed),
        "trace": bool(trace),
        "reproduce": reproduce,
        "chunks": {"x": params.chunks_b, "d": params.chunks_a},
        "state_bits": params.fmts.state.bits,
        "sigma_bits": params.fmts.sigma.bits,
    }


def _max_cycles(params: EngineParams, samples: int, stall: dict) -> int:
    slow = 1.0 / (1.0 - max(stall.values())) ** 2
    return int(20000 + slow * samples * (4 * params.bound_cycles_per_sample + 8 * params.chunks_max
                                         + 60 * params.rank ** 2))


def run_engine_cosim(params: EngineParams, batches: Sequence[EngineBatch], *, init=None, seed: int = 0,
                     stall_prob: "float | dict" = 0.0, stim_seed: int = 1, waves: bool = False,
                     build_dir: "str | Path | None" = None, trace: bool = True,
                     max_cycles: int | None = None, fast_build: bool = False, mode: str = "block",
                     reproduce: str = "", keep: bool = False, native: bool = False,
                     clock: str = "internal") -> dict:
    """Run ``batches`` through the RTL on Verilator and the golden model; return the report.

    ``mode`` — ``"block"``: the test wrapper of :mod:`testbench.engine_harness` drives and
    checks the engine on the simulator side and Python wakes once per block (fast, built
    without ``--public-flat-rw``); ``"cycle"``: the per-clock bench ``testbench.bench_engine``
    (every handshake visible to Python; for debugging).  Both score every trace and factor
    word, surplus and missing words, every status output and the end-of-run conditions.
    ``init`` — integer initial state (reset content of the state memories), else the golden
    model's seeded state for ``seed``; ``stall_prob`` — probability of a valid gap on each
    input and of ready low on each output, every cycle (one number, or a dict per port of
    :data:`PORTS`); ``waves`` — write a VCD waveform (path in the report); ``build_dir`` —
    where to build, else a cache directory keyed by the design (``$SBPCA_ENGINE_CACHE``,
    default under the system temp dir); ``fast_build`` — compile the C++ at -O0 (short runs);
    ``reproduce`` — the command line that reruns this stimulus (quoted with each mismatch);
    ``keep`` — keep the run directory (memory files, logs) instead of deleting it;
    ``native`` (block mode) — also run the first block in a plain C++ Verilator loop with no
    Python (:mod:`testbench.engine_native`) and report its speed as ``native``;
    ``clock`` (block mode) — ``"internal"``: the wrapper makes its clock itself (Verilator
    ``--timing``), so cocotb has no work per edge; ``"cocotb"``: cocotb's C++ clock drives it.
    The report holds ``mismatches`` (count), ``mismatch_details``, ``words_compared``,
    ``samples``, ``cycles``, ``cycles_per_sample``, ``sim_cycles_per_second`` and more.
    """
    from testbench.runner import cache_dir, run_bench

    if not isinstance(params, EngineParams):
        raise TypeError(f"params must be an EngineParams, not {type(params).__name__}")
    if mode not in ("block", "cycle"):
        raise ValueError(f"mode must be 'block' or 'cycle', not {mode!r}")
    if clock not in ("internal", "cocotb"):
        raise ValueError(f"clock must be 'internal' or 'cocotb', not {clock!r}")
    if native and mode != "block":
        raise ValueError("native=True measures the block-mode wrapper: use mode='block'")
    stall = _stall_dict(stall_prob)
    _check_batches(params, batches)
    state0 = initial_state(params, init, seed)
    t0 = time.time()
    job = engine_job(params, batches, state0, stall=stall, stim_seed=stim_seed, trace=trace, reproduce=reproduce)
    t_golden = time.time() - t0
    root = _cache_root()
    root.mkdir(parents=True, exist_ok=True)
    vpath = engine_verilog(params, state0, root)
    sources = [vpath, *dsp_models(params.dsp)]
    if mode == "block":
        from testbench.engine_block import depths_for, plan_blocks, write_blocks
        from testbench.engine_harness import TB_TOPLEVEL, harness_verilog

        blocks = plan_blocks(params, batches, trace)
        depths = depths_for(params, blocks)
        htext = harness_verilog(params, job["payloads"], depths)
        bdir = Path(build_dir).resolve() if build_dir else cache_dir(root, [vpath.name, vpath.parent.name, htext],
                                                                      "block", waves, fast_build, clock)
        bdir.mkdir(parents=True, exist_ok=True)
        hpath = bdir / f"{TB_TOPLEVEL}.v"
        if not hpath.exists() or hpath.read_text() != htext:
            hpath.write_text(htext)
        sources.append(hpath)
        toplevel, module = TB_TOPLEVEL, "testbench.bench_engine_block"
    else:
        bdir = Path(build_dir).resolve() if build_dir else cache_dir(root, [vpath.name, vpath.parent.name],
                                                                      "cycle", waves, fast_build)
        toplevel, module = TOPLEVEL, "testbench.bench_engine"
    runs = bdir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    test_dir = Path(tempfile.mkdtemp(prefix="run_", dir=runs))
    ok = False
    try:
        if mode == "block":
            loads = [None if b.load is None else initial_state(params, b.load) for b in batches]
            metas = write_blocks(params, batches, job["expected"], job["payloads"], blocks, loads,
                                 test_dir / "blocks", trace)
            P, k, Ra, Rb = params.P, params.k, params.chunks_a, params.chunks_b
            for meta, blk in zip(metas, blocks):
                n_smp = sum(sg["need"]["samples"] for sg in blk)
                meta["max_cycles"] = max_cycles or _max_cycles(params, n_smp, stall)
                meta["elements"] = ((meta["n_sub"] * k * ((Ra + Rb) * P + 1) if trace else 0)
                                    + meta["fr_total"] * (P + 1))
            job["blocks"] = metas
            job["drain_limit"] = 200000
            # the words are in the memory files: the bench needs only where each one belongs
            exp = job["expected"]
            job["expected"] = {"history": [{"batch": h["batch"], "m": h["m"]} for h in exp["history"]],
                               "dumps": [{"batch": d["batch"], "cols": d["cols"]} for d in exp["dumps"]],
                               "status": exp["status"], "final": {"sigma": exp["final"]["sigma"]}}
            job["internal_clock"] = clock == "internal"
        else:
            job["batches"] = [{"x": np.asarray(b.x).tolist(), "d": np.asarray(b.d).tolist(), "dump": bool(b.dump),
                               "dump_col": None if b.dump_col is None else int(b.dump_col),
                               "load": None if b.load is None else [np.asarray(v).tolist()
                                                                    for v in initial_state(params, b.load)]}
                              for b in batches]
            job["max_cycles"] = int(max_cycles or _max_cycles(params, job["samples"], stall))
        job_path = test_dir / "engine_job.json"
        job_path.write_text(json.dumps(job))
        t1 = time.time()
        # --timing needs C++20 coroutines; the PyPI wheel's verilated.mk leaves those flags empty
        timing = (["--timing", "-DSBPCA_TB_TIMING", "-CFLAGS", "-std=gnu++20 -fcoroutines"]
                  if (mode == "block" and clock == "internal") else [])
        res = run_bench(sources=sources, toplevel=toplevel, test_module=module, build_dir=bdir / "sim",
                        extra_env={"SBPCA_ENGINE_JOB": str(job_path)}, waves=waves, seed=stim_seed,
                        fast_build=fast_build, public="ports", test_dir=test_dir, build_args=timing)
        t_sim = time.time() - t1
        report = dict(res.report)
        if native and mode == "block":
            from testbench.engine_native import native_speed

            report["native"] = native_speed(sources, bdir / "native", Path(metas[0]["dir"]), metas[0], stall,
                                            stim_seed, trace)
        ok = report.get("mismatches") == 0 and res.failed == 0
        if waves:
            report["waves"] = [str(p) for p in sorted(test_dir.glob("*.vcd"))]
            keep = True
    finally:
        if ok and not keep and not waves:  # a failing run keeps its files for debugging
            shutil.rmtree(test_dir, ignore_errors=True)
    report.setdefault("mismatches", None)
    report["passed"] = res.passed
    report["failed"] = res.failed
    report["golden_seconds"] = round(t_golden, 3)
    report["sim_seconds"] = round(t_sim, 3)
    report["params"] = params.to_dict()
    report["bound_cycles_per_sample"] = params.bound_cycles_per_sample
    if report.get("cycles_per_sample"):
        report["bound_ratio"] = params.bound_cycles_per_sample / report["cycles_per_sample"]
    if report["mismatches"] is None:
        report["mismatches"] = -1  # the bench did not report: count as a failure
        report["mismatch_details"] = [f"bench produced no report (see {test_dir / 'sim.log'})"]
        report.setdefault("words_compared", 0)
        report.setdefault("timeout", False)
    report["build_dir"] = str(bdir)
    report["run_dir"] = None if (ok and not keep and not waves) else str(test_dir)
    return report
