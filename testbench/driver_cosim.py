"""Python entry of the driver co-simulation (used by ``sbpca cosim driver``, tests and the SoC demo).

:func:`run_driver_cosim` generates the Verilog of one :class:`DriverParams`, writes
the stimulus (one or more runs, each with its own stall probability) as JSON,
builds and runs ``testbench/bench_driver.py`` on Verilator and returns the
bench's report: ``mismatches``, ``words_compared``, ``cycles`` and per-run detail.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Sequence

from pymodel.crossbar import DriverParams

from .driver_stimulus import make_updates
from .simulator import SimulatorError, run_cocotb

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


def run_driver_cosim(params: DriverParams, updates: int = 10, seed: int = 0,
                     stall_prob: float | Sequence[float] = 0.3, build_dir: Path | None = None,
                     waves: bool = False, update_list: list[dict] | None = None) -> dict:
    """Co-simulate the driver against the golden model; return the bench's JSON report.

    ``stall_prob`` may be a list: one run (reset + the same updates) per value, all
    in one Verilator build.  ``update_list`` replaces the generated stimulus (dicts as
    :func:`testbench.driver_stimulus.make_update` returns).  Raises
    :class:`SimulatorError` when the bench produced no report.
    """
    if not isinstance(params, DriverParams):
        raise TypeError(f"params must be DriverParams, not {type(params).__name__}")
    probs = [stall_prob] if isinstance(stall_prob, (int, float)) else list(stall_prob)
    if not probs:
        raise ValueError("stall_prob must give at least one run")
    probs = [_check_prob(p) for p in probs]
    ups = update_list if update_list is not None else make_updates(params, updates, seed)
    tmp = None
    if build_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="sbpca_driver_")
        build_dir = Path(tmp.name)
    build_dir = Path(build_dir).resolve()
    try:
        src = write_driver_verilog(params, build_dir / "rtl")
        stim = build_dir / "driver_stimulus.json"
        runs = [{"stall_prob": p, "seed": int(seed) * 1000 + i, "updates": ups} for i, p in enumerate(probs)]
        stim.write_text(json.dumps({"params": params.to_dict(), "runs": runs}))
        res = run_cocotb(verilog_sources=[src], toplevel=TOPLEVEL, test_module="testbench.bench_driver",
                         build_dir=build_dir / "sim", extra_env={"SBPCA_DRIVER_STIM": str(stim)},
                         waves=waves, seed=int(seed))
        if not res.report:
            raise SimulatorError(f"driver bench wrote no report (passed={res.passed}, failed={res.failed}); "
                                 f"see {build_dir / 'sim' / 'sim.log'}")
        report = dict(res.report)
        report.update(passed=res.passed, failed=res.failed, seed=int(seed), params=params.to_dict())
        if waves:
            report["waves"] = [str(p) for p in (build_dir / "sim").glob("*.fst")]
        return report
    finally:
        if tmp is not None:
            tmp.cleanup()
