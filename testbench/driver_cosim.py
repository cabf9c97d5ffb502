"""Python entry of the driver co-simulation (used by ``sbpca cosim driver``, tests and the SoC demo).

:func:`run_driver_cosim` generates the Verilog of one :class:`DriverParams`, writes
the stimulus (one or more runs, each with its own stall probability) as JSON,
builds and runs ``testbench/bench_driver.py`` on Verilator and returns the
bench's report: ``mismatches``, ``words_compared``, ``cycles`` and per-run detail.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

from pymodel.crossbar import DriverParams

from .driver_stimulus import make_updates
from .simulator import SimulatorError

TOPLEVEL = "crossbar_driver"


def write_driver_verilog(params: DriverParams, out_dir: Path) -> Path:
    """Elaborate the driver for ``params`` and write ``<out_dir>/crossbar_driver.v``."""
    from hdl.driver import CrossbarDriver
    from hdl.verilog import write_verilog

    return write_verilog(CrossbarDriver(params), TOPLEVEL, Path(out_dir))


def _check_prob(p) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"stall_prob must be a number in [0, 1), not {p!r}")
    return float(p)


def driver_command(params: DriverParams, updates: int, stalls: Sequence[float]) -> str:
    """The ``sbpca cosim driver`` command line that reruns exactly this stimulus (its ``--seed``
    seeds both the LFSRs and the updates, so the stimulus seed is ``params.seed``)."""
    from pymodel.formats import FORMAT_SETS

    fmt = next((name for name, fs in sorted(FORMAT_SETS.items()) if fs.state == params.state), None)
    fmt_args = f"--format-set {fmt}" if fmt else f"--data-bits {params.state.bits}"
    lf = params.lfsr
    taps = ",".join(str(t) for t in lf.taps)
    stall_args = " ".join(f"--stall {p:g}" for p in stalls)
    return (f"sbpca cosim driver --rows {params.rows} --cols {params.cols} --scheme {params.scheme} "
            f"--bl-max {params.bl_max} {fmt_args} --prob-bits {params.prob_bits} --lfsr-width {lf.width} "
            f"--lfsr-taps {taps} --lfsr-leap {lf.leap} --level-bits {params.level_bits} --seed {params.seed} "
            f"--updates {updates} {stall_args}")


def _cache_root() -> Path:
    return Path(os.environ.get("SBPCA_DRIVER_CACHE", Path(tempfile.gettempdir()) / "sbpca_driver_cache"))


def run_driver_cosim(params: DriverParams, updates: int = 10, seed: int = 0,
                     stall_prob: float | Sequence[float] = 0.3, build_dir: Path | None = None,
                     waves: bool = False, update_list: list[dict] | None = None,
                     reproduce: str | None = None, fast_build: bool = False) -> dict:
    """Co-simulate the driver against the golden model; return the bench's JSON report.

    ``stall_prob`` may be a list: one run (reset + the same updates) per value, all
    in one Verilator build.  ``update_list`` replaces the generated stimulus (dicts as
    :func:`testbench.driver_stimulus.make_update` returns).  Without ``build_dir`` the build
    is cached by the Verilog (``$SBPCA_DRIVER_CACHE``).  ``reproduce`` — the command quoted
    with each mismatch (default: :func:`driver_command` when ``seed == params.seed``);
    ``fast_build`` — compile the simulator at -O0 (short runs).
    Raises :class:`SimulatorError` when the bench produced no report.
    """
    from hdl.driver import CrossbarDriver
    from hdl.verilog import write_verilog

    from .runner import cache_dir, run_bench

    if not isinstance(params, DriverParams):
        raise TypeError(f"params must be DriverParams, not {type(params).__name__}")
    probs = [stall_prob] if isinstance(stall_prob, (int, float)) else list(stall_prob)
    if not probs:
        raise ValueError("stall_prob must give at least one run")
    probs = [_check_prob(p) for p in probs]
    ups = update_list if update_list is not None else make_updates(params, updates, seed)
    if reproduce is None:
        reproduce = driver_command(params, len(ups), probs) if (update_list is None and seed == params.seed) else ""
    with tempfile.TemporaryDirectory(prefix="driver_v_") as vtmp:
        vtext = write_verilog(CrossbarDriver(params), TOPLEVEL, Path(vtmp)).read_text()
    bdir = (Path(build_dir).resolve() if build_dir is not None
            else cache_dir(_cache_root(), [vtext], "driver", waves, fast_build))
    src = bdir / "rtl" / f"{TOPLEVEL}.v"
    src.parent.mkdir(parents=True, exist_ok=True)
    if not src.exists() or src.read_text() != vtext:
        src.write_text(vtext)
    runs_dir = bdir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    test_dir = Path(tempfile.mkdtemp(prefix="run_", dir=runs_dir))
    stim = test_dir / "driver_stimulus.json"
    runs = [{"stall_prob": p, "seed": int(seed) * 1000 + i, "updates": ups, "reproduce": reproduce}
            for i, p in enumerate(probs)]
    stim.write_text(json.dumps({"params": params.to_dict(), "runs": runs}))
    res = run_bench(sources=[src], toplevel=TOPLEVEL, test_module="testbench.bench_driver",
                    build_dir=bdir / "sim", extra_env={"SBPCA_DRIVER_STIM": str(stim)},
                    waves=waves, seed=int(seed), test_dir=test_dir, public="ports", fast_build=fast_build)
    if not res.report:
        raise SimulatorError(f"driver bench wrote no report (passed={res.passed}, failed={res.failed}); "
                             f"see {test_dir / 'sim.log'}")
    report = dict(res.report)
    report.update(passed=res.passed, failed=res.failed, seed=int(seed), params=params.to_dict(),
                  reproduce=reproduce)
    if waves:
        report["waves"] = [str(p) for p in test_dir.glob("*.vcd")]
    elif report["mismatches"] == 0 and res.failed == 0:
        shutil.rmtree(test_dir, ignore_errors=True)
    return report
