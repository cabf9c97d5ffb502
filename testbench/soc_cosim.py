"""Firmware co-simulation of the SoC against the golden model (Python entry point).

:func:`run_soc_cosim` writes the Verilog of :class:`hdl.soc.SBPCASoC`, builds the C firmware
driver as a shared library, computes every word the SoC must produce with the golden models
(:class:`pymodel.sbpca.SBPCA` fixed-point for σ and the factor pairs,
:class:`pymodel.crossbar.DriverModel` with the SoC's integer scale rule
:func:`hdl.soc.soc_update_config` for the pulse words), and runs the cocotb bench
``testbench.bench_soc`` on Verilator.  In the bench the C driver (ctypes) sequences each batch
(``sbpca_train_batch``: configure, stream, end, wait, σ, apply the k updates, check errors,
then ``sbpca_read_factors``); each register access is a Wishbone cycle on the RTL.  The bench
compares σ, every factor word read through ``FACTOR_DATA`` and every pulse word on the
``pulses`` port, as integers.

Everything around the bench is the shared verification layer: :func:`testbench.runner.run_bench`
builds (cached by the Verilog text under ``$SBPCA_SOC_CACHE``, default ``build/soc_cosim`` in the
repository; only the top-level ports public, a build locked while it is made) and runs each
simulation in its own directory, so parallel runs share one build (pytest-xdist, ``sbpca
regress --jobs``); the bench scores with :class:`testbench.scoreboard.Scoreboard`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from hdl.engine import initial_state
from hdl.soc import TOPLEVEL, SBPCASoC, SoCParams, soc_update_config
from pymodel.crossbar import DriverModel
from pymodel.sbpca import SBPCA

__all__ = ["run_soc_cosim", "soc_golden", "random_batches", "TOPLEVEL"]

ROOT = Path(__file__).resolve().parent.parent


def random_batches(params: SoCParams, batches: int, batch_size: int, seed: int,
                   x_scale: float = 1.0, d_scale: float = 0.3) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random integer batches (x B×b, δ B×a), quantised (saturating) to the input formats."""
    for name, v in (("batches", batches), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")
    rng = np.random.default_rng(seed)
    f = params.engine.fmts
    return [(f.x.quantize(rng.normal(0, x_scale, (batch_size, params.engine.cols))),
             f.delta.quantize(rng.normal(0, d_scale, (batch_size, params.engine.rows))))
            for _ in range(batches)]


def _check_batches(params: SoCParams, batches) -> list[tuple[np.ndarray, np.ndarray]]:
    p, f = params.engine, params.engine.fmts
    if not batches:
        raise ValueError("the stream has no batches")
    out = []
    for i, item in enumerate(batches):
        if len(item) != 2:
            raise ValueError(f"batch {i} must be a pair (x, delta)")
        x, d = (np.asarray(v) for v in item)
        if x.ndim != 2 or x.shape[1] != p.cols or d.ndim != 2 or d.shape[1] != p.rows:
            raise ValueError(f"batch {i}: x {x.shape} and delta {d.shape} must be (B, {p.cols}) and (B, {p.rows})")
        if x.shape[0] != d.shape[0] or x.shape[0] == 0 or x.shape[0] > p.max_batch:
            raise ValueError(f"batch {i}: x and delta need the same number of samples in 1..{p.max_batch}")
        for name, v, fmt in (("x", x, f.x), ("delta", d, f.delta)):
            if not np.issubdtype(v.dtype, np.integer):
                raise TypeError(f"batch {i}: {name} must be an integer array in format {fmt}")
            if v.min() < fmt.min_int or v.max() > fmt.max_int:
                raise ValueError(f"batch {i}: {name} integers out of range for {fmt}")
        out.append((x.astype(np.int64), d.astype(np.int64)))
    return out


def _sat_counts(model: SBPCA) -> dict[str, int]:
    return dict(model.status.saturation.counts)


RESET_SCENARIOS = ("mid_batch", "mid_readout", "mid_update")
"""Where the bench pulses CTRL.SOFT_RESET before a batch (``resets=`` of :func:`run_soc_cosim`)."""


def soc_golden(params: SoCParams, batches: Sequence[tuple[np.ndarray, np.ndarray]], init, *,
               lr_scale: int, bl: int, resets: Sequence[str | None] | None = None) -> list[dict]:
    """Per batch: σ, Δ, X after it, the pulse words of its k updates, counters and error flags.

    ``resets[i]`` names a soft reset before batch i (docs/SOC.md): the firmware restores the
    state it read after batch i-1, so the engine's state carries on unchanged, while the
    driver's LFSRs restart from their seeds.
    """
    p, f = params.engine, params.engine.fmts
    resets = list(resets) if resets is not None else [None] * len(batches)
    X0, D0, s0 = init
    g = SBPCA(p.rows, p.cols, p.rank, p.sub_batch, fixed=f,
              init=(f.state.dequantize(X0), f.state.dequantize(D0), f.sigma.dequantize(s0)))
    g.X_int, g.Delta_int, g.sigma_int = X0.copy(), D0.copy(), s0.copy()
    drv = DriverModel(params.driver)
    out = []
    for (x, d), reset in zip(batches, resets):
        if reset:
            drv = DriverModel(params.driver)
        # the firmware pulses CTRL.CLEAR when it configures a batch: the engine's sticky
        # flags start from zero, so each flag says whether its event happened in this batch
        sat0, guard0, degen0 = _sat_counts(g), g.status.sigma_guard, g.status.degenerate
        g.update_int(x, d)
        B = int(x.shape[0])
        words, cfgs = [], []
        for c in range(p.rank):
            cfg = soc_update_config(params, int(g.sigma_int[c]), B, lr_scale, bl)
            sched = drv.run(g.Delta_int[:, c], g.X_int[:, c], cfg)
            words.append([int(w) for w in sched.words(params.driver)])
            cfgs.append(cfg.to_dict())
        out.append({
            "sigma": [int(v) for v in g.sigma_int], "Delta": g.Delta_int.T.tolist(), "X": g.X_int.T.tolist(),
            "pulses": words, "cfgs": cfgs, "samples": B, "sub_batches": -(-B // p.sub_batch),
            "flags": {"saturation": any(c > sat0.get(n, 0) for n, c in _sat_counts(g).items()),
                      "sigma_guard": g.status.sigma_guard > guard0,
                      "degenerate": g.status.degenerate > degen0},
        })
    return out


def _cache_root() -> Path:
    return Path(os.environ.get("SBPCA_SOC_CACHE", ROOT / "build" / "soc_cosim"))


def run_soc_cosim(params: SoCParams, batches: Sequence[tuple[np.ndarray, np.ndarray]], *, init=None,
                  seed: int = 0, lr_scale: int = 1 << 20, bl: int = 15, bus_stalls: bool = False,
                  pulse_stall_prob: float = 0.0, stim_seed: int = 1, build_dir: "str | Path | None" = None,
                  waves: bool = False, fast_build: bool = True, extra_checks: bool = False,
                  resets: Sequence[str | None] | None = None, block_ops: bool = True,
                  reproduce: str = "", keep: bool = False) -> dict:
    """Run ``batches`` through the SoC RTL under the C firmware and compare with the golden model.

    ``init`` -- integer engine state (X, Δ, σ), else the golden model's seeded state for ``seed``;
    ``lr_scale`` -- the LR_SCALE register (unsigned Q8.24); ``bl`` -- UPDATE_CFG.BL;
    ``bus_stalls`` -- 0..2 idle cycles before each bus transaction; ``pulse_stall_prob`` --
    probability that the crossbar holds ``pulses.ready`` low in a slot; ``fast_build`` --
    compile the simulator at -O0 (much faster to build; these runs are bus bound anyway);
    ``extra_checks`` -- after the batches, ``sbpca_wait_idle`` against a stuck crossbar (report
    ``idle_check``) and a batch of ``max_batch + 1`` samples with ``CTRL.CLEAR`` (report
    ``batch_limit_check``; needs ``max_batch`` <= 64 to stay short), both scored;
    ``resets`` -- per batch None or one of :data:`RESET_SCENARIOS`: CTRL.SOFT_RESET in the
    middle of a batch, a factor readout or a pulse update before that batch, then the state
    restored from the last checkpoint (report ``soft_resets``; not before batch 0);
    ``block_ops`` -- give the firmware the block functions (pipelined bursts to the FIFO
    windows); False: one single access per word, for comparison; ``reproduce`` -- the command
    line that reruns this stimulus (quoted with each mismatch); ``keep`` -- keep the run
    directory (job, logs, waves) also when the run is clean.
    Returns the report: ``mismatches``, ``mismatch_details``, ``words_compared``, ``samples``,
    ``cycles`` (clock cycles of the whole firmware sequence), ``cycles_per_sample`` (the engine's
    busy cycles per sample, from the CYCLES counter), ``bus_cycles_per_sample`` (the whole
    ``sbpca_train_batch`` per sample), ``stream_cycles_per_sample`` (START_BATCH to the STATUS
    read that finds DONE: the sample path), ``soc_ratio`` (bus / engine busy cycles per sample),
    ``bound_cycles_per_sample`` (2k(a+b)/P), ``bound_ratio``, per-batch detail and more.
    """
    from firmware.build import build_shared_library
    from hdl.verilog import write_verilog
    from testbench.runner import build_lock, cache_dir, run_bench

    if not isinstance(params, SoCParams):
        raise TypeError(f"params must be a SoCParams, not {type(params).__name__}")
    if isinstance(pulse_stall_prob, bool) or not 0.0 <= float(pulse_stall_prob) < 1.0:
        raise ValueError(f"pulse_stall_prob must be in [0, 1), not {pulse_stall_prob!r}")
    for name, v, hi in (("lr_scale", lr_scale, (1 << 32) - 1), ("bl", bl, 0xFFFF)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= hi:
            raise ValueError(f"{name} must be an integer in 0..{hi}, not {v!r}")
    if extra_checks and params.engine.max_batch > 64:
        raise ValueError(f"extra_checks streams a batch of max_batch + 1 samples: build the SoC with "
                         f"max_batch <= 64, not {params.engine.max_batch}")
    batches = _check_batches(params, batches)
    resets = [None] * len(batches) if resets is None else list(resets)
    if len(resets) != len(batches):
        raise ValueError(f"resets has {len(resets)} entries for {len(batches)} batches")
    for i, r in enumerate(resets):
        if r is not None and (r not in RESET_SCENARIOS or i == 0):
            raise ValueError(f"resets[{i}] must be None or one of {RESET_SCENARIOS} (not before batch 0), "
                             f"not {r!r}")
    state0 = initial_state(params.engine, init, seed)
    t0 = time.time()
    expected = soc_golden(params, batches, state0, lr_scale=int(lr_scale), bl=int(bl), resets=resets)
    t_golden = time.time() - t0
    root = _cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="soc_v_", dir=root) as vtmp:
        vtext = write_verilog(SBPCASoC(params, init=state0), TOPLEVEL, Path(vtmp)).read_text()
    bdir = Path(build_dir).resolve() if build_dir else cache_dir(root, [vtext], "soc", waves, fast_build)
    bdir.mkdir(parents=True, exist_ok=True)
    vpath = bdir / f"{TOPLEVEL}.v"
    with build_lock(bdir):  # parallel runs of one design: one writer of the Verilog and the library
        if not vpath.exists() or vpath.read_text() != vtext:
            vpath.write_text(vtext)
        library = build_shared_library(bdir / "firmware")
    p = params.engine
    job = {
        "params": params.to_dict(),
        "word_fields": params.driver.word_fields(),
        "batches": [{"x": x.tolist(), "d": d.tolist()} for x, d in batches],
        "expected": expected,
        "config": {"lr_scale": int(lr_scale), "bl": int(bl), "scheme": 0 if params.driver.stochastic else 1,
                   "manage": 0, "seed": 1},
        "bus_stalls": bool(bus_stalls),
        "pulse_stall_prob": float(pulse_stall_prob),
        "stim_seed": int(stim_seed),
        "extra_checks": bool(extra_checks),
        "resets": resets,
        "block_ops": bool(block_ops),
        "init": [v.tolist() for v in state0],
        "library": str(library),
        "reproduce": reproduce,
    }
    runs = bdir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    test_dir = Path(tempfile.mkdtemp(prefix="run_", dir=runs))
    job_path = test_dir / "soc_job.json"
    job_path.write_text(json.dumps(job))
    t1 = time.time()
    res = run_bench(sources=[vpath], toplevel=TOPLEVEL, test_module="testbench.bench_soc", build_dir=bdir / "sim",
                    extra_env={"SBPCA_SOC_JOB": str(job_path)}, waves=waves, seed=int(stim_seed),
                    fast_build=fast_build, public="ports", test_dir=test_dir)
    report = dict(res.report)
    if "mismatches" not in report:
        report.update(mismatches=-1, words_compared=0,
                      mismatch_details=[f"bench produced no report (see {test_dir / 'sim.log'})"])
    clean = report["mismatches"] == 0 and res.failed == 0
    if waves:
        report["waves"] = [str(q) for q in sorted(test_dir.glob("*.vcd"))]
    if clean and not keep and not waves:  # a failing run keeps its files for debugging
        shutil.rmtree(test_dir, ignore_errors=True)
    report.update(passed=res.passed, failed=res.failed, golden_seconds=round(t_golden, 3),
                  sim_seconds=round(time.time() - t1, 3), params=params.to_dict(),
                  bound_cycles_per_sample=p.bound_cycles_per_sample, build_dir=str(bdir),
                  run_dir=None if (clean and not keep and not waves) else str(test_dir))
    if report.get("cycles_per_sample"):
        report["bound_ratio"] = p.bound_cycles_per_sample / report["cycles_per_sample"]
        report["soc_ratio"] = report["bus_cycles_per_sample"] / report["cycles_per_sample"]
        if report.get("stream_cycles_per_sample") is not None:
            report["stream_ratio"] = report["stream_cycles_per_sample"] / report["cycles_per_sample"]
    return report
