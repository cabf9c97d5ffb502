"""``sbpca demo``: the whole flow on a fresh set-up, with one summary table at the end.

1. synthesises the engine for ECP5 (Yosys + nextpnr from PyPI) and reads LUTs, FFs, DSPs,
   block RAMs and Fmax from the report.  This step starts first and runs **in the background**,
   in a child process of its own (Yosys and nextpnr are single-threaded WebAssembly
   subprocesses), so that it takes the second core while steps 2-4 run on the first;
2. trains the default small CNN on scikit-learn's bundled digits with bit-accurate fixed-point
   SBPCA (golden model, format set q16) for a few epochs;
3. captures one batch of the ``fc`` layer's (x, δ) stream (10 × 65 with the bias column) from a
   real training step, with the layer's SBPCA state before and after it;
4. runs that batch through the SoC RTL (register bank + engine + crossbar driver) on Verilator
   under the C firmware (ctypes, every register access a Wishbone cycle), checking σ, every
   factor word and every crossbar pulse word against the golden models, and that the RTL's
   final state is the state the training loop computed;
5. waits for the synthesis (the progress lines say what it is doing) and prints the summary
   (``--json FILE`` writes the same numbers).

``--quick`` (CI): 3 epochs, a 12-sample captured batch, a 2-lane engine in the SoC, and a
small engine (a = b = 8, k = 2, P = 1) on the ECP5-85k for synthesis.  The full run uses
6 epochs on all images, a 24-sample batch, 4 lanes in the SoC, and synthesises the captured
layer's engine (a = 10, b = 65, k = 4, s = 8) with one lane (P = 4 alone takes over 5 minutes of
place and route; the table says which engine was synthesised).  nextpnr runs with router2.  nextpnr's placement and routing dominate the run time (minutes
on two shared cores even for a small engine); with the overlap the demo takes about as long as
the synthesis alone.  Synthesis reports are cached in the build directory by a hash of the
Verilog (a cached report is only reused for the identical design, and the output says so).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of one demo run (``quick`` or full)."""

    epochs: int
    train_limit: int | None
    capture_batch: int
    capture_step: int
    soc_lanes: int
    synth_engine: dict
    synth_device: str = "85k"
    synth_router: str = "router2"
    rank: int = 4
    sub_batch: int = 8
    bl: int = 15
    dw_min: float = 0.01
    seed: int = 0

    @classmethod
    def preset(cls, quick: bool, seed: int = 0) -> "DemoConfig":
        if quick:
            return cls(epochs=3, train_limit=None, capture_batch=12, capture_step=2, soc_lanes=2,
                       synth_engine=dict(rows=8, cols=8, rank=2, sub_batch=4, lanes=1), seed=seed)
        # the synthesised engine is the captured layer's (10 x 65, k = 4, s = 8) with one lane: with
        # the SoC's 4 lanes place and route alone takes over 5 minutes on two shared cores
        return cls(epochs=6, train_limit=None, capture_batch=24, capture_step=5, soc_lanes=4,
                   synth_engine=dict(rows=10, cols=65, rank=4, sub_batch=8, lanes=1), seed=seed)


class Steps:
    """Step lines on stderr: ``[2/5] capture ... done in 3.1 s``.

    A step started with :meth:`background` runs beside the following ones: its start line says
    so, each later step's line ends with what the background step is doing, and :meth:`join`
    prints how long it ran and how long the foreground then waited for it.
    """

    def __init__(self, total: int, out=None, enabled: bool = True) -> None:
        self.total, self.i, self.out, self.enabled = total, 0, out or sys.stderr, enabled
        self.seconds: dict[str, float] = {}
        self._bg: dict[str, tuple[int, str, "BackgroundJob"]] = {}

    def _say(self, line: str) -> None:
        if self.enabled:
            print(line, file=self.out, flush=True)

    def _bg_note(self) -> str:
        return "".join(f"  [{i}/{self.total} in parallel: {job.describe()}]" for i, _, job in self._bg.values())

    def run(self, name: str, what: str, fn: Callable[[], object]):
        self.i += 1
        self._say(f"[{self.i}/{self.total}] {what} ...{self._bg_note()}")
        t = time.time()
        result = fn()
        self.seconds[name] = round(time.time() - t, 2)
        self._say(f"[{self.i}/{self.total}] {what}: done in {self.seconds[name]:.1f} s{self._bg_note()}")
        return result

    def background(self, name: str, what: str, job: "BackgroundJob") -> "BackgroundJob":
        """Register ``job`` (already started) as a step that runs beside the next ones."""
        self.i += 1
        self._bg[name] = (self.i, what, job)
        self._say(f"[{self.i}/{self.total}] {what}: started in the background (in parallel with the next steps)")
        return job

    def join(self, name: str, report_every: float = 30.0):
        """Wait for background step ``name``; prints what it is doing every ``report_every`` s."""
        i, what, job = self._bg[name]
        waited0 = time.time()
        if not job.finished():
            self._say(f"[{i}/{self.total}] waiting for: {what} ({job.describe()})")
        try:
            result = job.result(on_wait=lambda: self._say(f"[{i}/{self.total}]   still running: {job.describe()}"),
                                every=report_every)
        finally:
            del self._bg[name]
        self.seconds[name] = round(job.elapsed(), 2)
        self._say(f"[{i}/{self.total}] {what}: done in {self.seconds[name]:.1f} s "
                  f"(in parallel; waited {time.time() - waited0:.1f} s for it)")
        return result

    def cancel_background(self) -> None:
        """Stop every background step still running (after a failure of a foreground step)."""
        for _, _, job in self._bg.values():
            job.cancel()
        self._bg.clear()


class BackgroundJob:
    """A function run in a spawned child process that leads its own process group.

    The child sends progress notes and finally its result (or the error text) through a pipe;
    :meth:`cancel` stops the child and every tool it started (``killpg`` on its group).  A
    process rather than a thread: the step's own Python work (Amaranth elaboration, Verilog
    generation) then does not compete with the foreground for the GIL.
    """

    def __init__(self, target: Callable, *args) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_child_main, args=(target, child_conn, *args), name="sbpca-demo-bg")
        self.t0 = time.time()
        self.t1: float | None = None
        self.notes: dict = {}
        self._outcome: tuple[str, object] | None = None
        self.proc.start()
        child_conn.close()

    def _drain(self, timeout: float = 0.0) -> None:
        """Read every message waiting (up to ``timeout`` s for the first one)."""
        while self._outcome is None and self._conn.poll(timeout):
            timeout = 0.0
            try:
                kind, payload = self._conn.recv()
            except EOFError:
                self.proc.join()
                self._outcome = ("error", f"the background process ended without a result "
                                          f"(exit code {self.proc.exitcode})")
                self.t1 = time.time()
                return
            if kind == "note":
                self.notes.update(payload)
            else:
                self._outcome = (kind, payload)
                self.t1 = time.time()

    def finished(self) -> bool:
        self._drain()
        return self._outcome is not None

    def elapsed(self) -> float:
        return (self.t1 or time.time()) - self.t0

    def describe(self) -> str:
        """What the child is doing, for progress lines."""
        self._drain()
        if self._outcome is not None:
            return f"finished after {self.elapsed():.0f} s"
        phase = self.notes.get("phase", "starting")
        probe = self.notes.get("probe")
        if probe:
            d = Path(probe)
            if (d / "nextpnr.log").exists():
                phase = "nextpnr place and route"
            elif (d / "yosys.log").exists():
                phase = "yosys synthesis"
        return f"{phase}, {self.elapsed():.0f} s so far"

    def result(self, on_wait: Callable[[], None] | None = None, every: float = 30.0):
        """Block until the child is done; its return value, or RuntimeError with its error."""
        while self._outcome is None:
            self._drain(timeout=every)
            if self._outcome is None and on_wait is not None:
                on_wait()
        self.proc.join()
        kind, payload = self._outcome
        if kind == "error":
            raise RuntimeError(f"background step failed: {payload}")
        return payload

    def cancel(self) -> None:
        if self.proc.is_alive():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.proc.join(timeout=10)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join()


def _child_main(target: Callable, conn, *args) -> None:
    """Child side of :class:`BackgroundJob`: own process group, result or error into the pipe."""
    os.setpgrp()  # the parent's cancel() stops this process and the tools it starts together
    try:
        result = target(*args, note=lambda **kw: conn.send(("note", kw)))
        conn.send(("ok", result))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        import traceback

        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"))
    finally:
        conn.close()


def train_step(cfg: DemoConfig) -> dict:
    """Step 1: fixed-point SBPCA training on digits; returns the training result."""
    from pymodel.training import TrainConfig, train

    tc = TrainConfig(method="sbpca", fixed="q16", rank=cfg.rank, sub_batch=16, batch=64, epochs=cfg.epochs,
                     seed=cfg.seed, train_limit=cfg.train_limit, measure_error=False)
    return train(tc)


def capture_step(cfg: DemoConfig):
    """Step 2: one batch of the fc layer from a training step (fixed-point SBPCA, q16)."""
    from testbench.engine_capture import capture_training_stream

    return capture_training_stream(layer="fc", rank=cfg.rank, sub_batch=cfg.sub_batch, batch=cfg.capture_batch,
                                   step=cfg.capture_step, format_set="q16", seed=cfg.seed,
                                   train_limit=cfg.train_limit or 1437)


def lr_scale_word(lr: float, dw_min: float, bl: int) -> int:
    """LR_SCALE = η / (Δw_min · BL) as unsigned Q8.24 (the SoC's scale rule, docs/SOC.md)."""
    from hdl.regmap import LR_SCALE_FRAC

    value = lr / (dw_min * bl)
    word = int(value * (1 << LR_SCALE_FRAC) + 0.5)
    if not 0 < word < (1 << 32):
        raise ValueError(f"LR_SCALE {value!r} does not fit unsigned Q8.24")
    return word


def compare_with_training(rtl_state: dict | None, state_after) -> tuple[int, list[str]]:
    """Words compared and the differences between the state read from the RTL over the bus
    (σ, Δ_c, X_c after the batch, as the firmware read them) and the training loop's own SBPCA
    state after the same batch (``state_after`` = (X b×k, Δ a×k, σ k) integers)."""
    import numpy as np

    Xa, Da, sa = (np.asarray(v, dtype=np.int64) for v in state_after)
    if rtl_state is None:
        return 0, ["the co-simulation read no state back from the RTL"]
    got = {"sigma": np.asarray(rtl_state["sigma"], dtype=np.int64),
           "Delta": np.asarray(rtl_state["Delta"], dtype=np.int64).T,
           "X": np.asarray(rtl_state["X"], dtype=np.int64).T}
    want = {"sigma": sa, "Delta": Da, "X": Xa}
    diffs, n = [], 0
    for name in ("sigma", "Delta", "X"):
        g, w = got[name], want[name]
        if g.shape != w.shape:
            diffs.append(f"{name}: RTL shape {g.shape}, training loop {w.shape}")
            continue
        n += w.size
        for idx in zip(*np.nonzero(g != w)):
            diffs.append(f"{name}[{','.join(str(int(i)) for i in idx)}]: rtl={int(g[idx])} "
                         f"training={int(w[idx])}")
    return n, diffs


def cosim_step(cfg: DemoConfig, cap, lr: float, build_dir: Path) -> dict:
    """Step 3: the captured batch through the SoC under the firmware; golden model as scoreboard,
    then the state read from the RTL over the bus against the training loop's state."""
    from hdl.soc import SoCParams
    from testbench.soc_cosim import run_soc_cosim

    params = SoCParams.make(rows=cap.rows, cols=cap.cols, rank=cap.rank, sub_batch=cap.sub_batch,
                            lanes=cfg.soc_lanes, formats=cap.format_set, bl_max=31, fifo_depth=16)
    batches = [(cap.batch.x, cap.batch.d)]
    lrw = lr_scale_word(lr, cfg.dw_min, cfg.bl)
    rep = run_soc_cosim(params, batches, init=cap.init, lr_scale=lrw, bl=cfg.bl, bus_stalls=True,
                        pulse_stall_prob=0.2, build_dir=build_dir / "soc_cosim" / f"P{cfg.soc_lanes}")
    # the RTL's words were checked against the golden model; independently, the state the firmware
    # read back from the RTL must be the state the training loop's estimator computed
    n, diffs = compare_with_training(rep.get("final_state"), cap.state_after)
    rep.update(training_state_words=n, training_state_mismatches=len(diffs), training_state_details=diffs,
               training_state_match=bool(n > 0 and not diffs), lr_scale_word=lrw, bl=cfg.bl)
    return rep


def synth_step(cfg: DemoConfig, build_dir: Path, note: Callable[..., None] | None = None) -> dict:
    """Step 1 (background): engine on ECP5; a report cached for the identical Verilog is reused.

    ``note(phase=..., probe=...)`` receives progress: the phase, and the folder whose log files
    tell whether Yosys or nextpnr is running.
    """
    note = note or (lambda **kw: None)
    note(phase="elaborating the engine, writing Verilog")
    from hdl.engine import SBPCAEngine
    from hdl.engine_params import EngineParams
    from hdl.synth import synthesize
    from hdl.verilog import write_verilog

    import tempfile

    eng = SBPCAEngine(EngineParams(**cfg.synth_engine, formats="q16", dsp="ecp5"), seed=cfg.seed)
    with tempfile.TemporaryDirectory(prefix="sbpca_demo_v_") as tmp:
        vtext = write_verilog(eng, "sbpca_engine", Path(tmp)).read_text()
    key = hashlib.sha1(f"{cfg.synth_router}\n{vtext}".encode()).hexdigest()[:16]
    out = build_dir / "synth" / key
    cached = out / "demo_synth.json"
    if cached.exists():
        rep = json.loads(cached.read_text())
        rep["cached"] = True
        return rep
    out.mkdir(parents=True, exist_ok=True)
    (out / "sbpca_engine.v").write_text(vtext)
    note(phase="yosys port list", probe=str(out))
    r = synthesize(out / "sbpca_engine.v", "sbpca_engine", target="ecp5", device=cfg.synth_device, build_dir=out,
                   router=cfg.synth_router)
    rep = {"design": "engine", **cfg.synth_engine, "luts": r.luts, "ffs": r.ffs, "dsps": r.dsps, "brams": r.brams,
           "lutram": r.lutram, "fmax_mhz": r.fmax_mhz, "timing_met": r.timing_met, "target": r.target,
           "device": r.device, "router": cfg.synth_router, "seconds": r.seconds}
    cached.write_text(json.dumps(rep, indent=2))
    rep["cached"] = False
    return rep


def run_demo(*, quick: bool, seed: int = 0, build_dir: Path | None = None, progress: bool = True,
             skip_synth: bool = False) -> dict:
    """The whole demo; returns the summary dict (``--json`` writes it).

    The synthesis starts first, in a background process, and is joined after the co-simulation;
    ``seconds["synth"]`` is its own run time, ``seconds["total"]`` the demo's wall time.
    """
    cfg = DemoConfig.preset(quick, seed)
    build_dir = Path(build_dir) if build_dir is not None else ROOT / "build" / "demo"
    build_dir.mkdir(parents=True, exist_ok=True)
    steps = Steps(4 if skip_synth else 5, enabled=progress)
    t0 = time.time()
    syn = None
    try:
        if not skip_synth:
            se = cfg.synth_engine
            steps.background("synth", f"synthesising the engine for ECP5-{cfg.synth_device} (a={se['rows']} "
                                      f"b={se['cols']} k={se['rank']} P={se['lanes']})",
                             BackgroundJob(synth_step, cfg, build_dir))
        tr = steps.run("train", f"training the CNN on digits, fixed-point SBPCA q16, k={cfg.rank}, "
                                f"{cfg.epochs} epochs", lambda: train_step(cfg))
        cap = steps.run("capture", f"capturing one batch of the fc layer (step {cfg.capture_step}, "
                                   f"{cfg.capture_batch} samples)", lambda: capture_step(cfg))
        rep = steps.run("cosim", f"SoC RTL on Verilator under the C firmware ({cap.rows}x{cap.cols}, k={cap.rank}, "
                                 f"s={cap.sub_batch}, P={cfg.soc_lanes})",
                        lambda: cosim_step(cfg, cap, float(tr["lr"]), build_dir))
        if not skip_synth:
            syn = steps.join("synth")
    finally:
        steps.cancel_background()  # only does something when a step above raised
    tc = tr["config"]
    ep = rep["params"]["engine"]
    summary = {
        "mode": "quick" if quick else "full",
        "test_accuracy": float(tr["test_accuracy"]),
        "train_accuracy": float(tr["train_accuracy"]),
        "epochs": int(tr["epochs"]),
        "training": {key: tc[key] for key in ("method", "fixed", "rank", "sub_batch", "batch", "model", "dataset")
                     if key in tc},
        "soc": {"rows": ep["rows"], "cols": ep["cols"], "rank": ep["rank"], "sub_batch": ep["sub_batch"],
                "lanes": ep["lanes"], "formats": ep.get("formats"), "scheme": rep["params"]["driver"]["scheme"],
                "bl": rep["bl"], "passed": rep.get("passed"), "failed": rep.get("failed")},
        "train_images": cfg.train_limit or "all",
        "layer": f"{cap.layer} ({cap.rows}x{cap.cols})",
        "captured_samples": int(cap.batch.x.shape[0]),
        "mismatches": int(rep["mismatches"]),
        "words_compared": int(rep["words_compared"]),
        "pulse_words": rep.get("pulse_words"),
        "training_state_match": rep["training_state_match"],
        "training_state_words": rep["training_state_words"],
        "training_state_mismatches": rep["training_state_mismatches"],
        "training_state_details": rep["training_state_details"][:25],
        "cycles_per_sample": rep.get("cycles_per_sample"),
        "bound_cycles_per_sample": rep["bound_cycles_per_sample"],
        "bus_cycles_per_sample": rep.get("bus_cycles_per_sample"),
        "stream_cycles_per_sample": rep.get("stream_cycles_per_sample"),
        "soc_lanes": ep["lanes"],
        "lr_scale_word": rep["lr_scale_word"],
        "luts": syn["luts"] if syn else None,
        "ffs": syn["ffs"] if syn else None,
        "dsps": syn["dsps"] if syn else None,
        "brams": syn["brams"] if syn else None,
        "fmax_mhz": syn["fmax_mhz"] if syn else None,
        "synth": syn,
        "synth_cached": syn["cached"] if syn else None,
        "mismatch_details": rep.get("mismatch_details", []),
        "seconds": {**steps.seconds, "total": round(time.time() - t0, 2)},
    }
    summary["ok"] = bool(summary["mismatches"] == 0 and summary["training_state_match"]
                         and rep.get("failed", 1) == 0)
    return summary


def fail_lines(s: dict) -> list[str]:
    """One ``FAIL: ...`` line per failed check (empty when the run passed)."""
    out = []
    if s["mismatches"] != 0:
        out.append(f"FAIL: RTL vs golden model: {s['mismatches']} mismatches in {s['words_compared']} words")
        out += [f"FAIL:   {d}" for d in s["mismatch_details"][:10]]
    if s["soc"].get("failed", 1) != 0:
        out.append(f"FAIL: the SoC bench reported {s['soc'].get('failed')} failed test(s)")
    if not s["training_state_match"]:
        out.append(f"FAIL: RTL state read over the bus vs the training loop's estimator: "
                   f"{s['training_state_mismatches']} differences in {s['training_state_words']} words")
        out += [f"FAIL:   {d}" for d in s["training_state_details"][:10]]
    return out


def summary_table(s: dict) -> str:
    """The one human table the demo prints."""
    def fmt(v, spec=""):
        return "n/a" if v is None else format(v, spec)

    syn = s.get("synth") or {}
    eng = (f"a={syn.get('rows')} b={syn.get('cols')} k={syn.get('rank')} P={syn.get('lanes')}"
           + (f" (the SoC above used P={s['soc_lanes']})" if syn.get("lanes") != s["soc_lanes"] else "")
           + (" (cached report)" if s.get("synth_cached") else "")) if syn else "skipped"
    t, soc = s["training"], s["soc"]
    state = (f"{s['training_state_words'] - s['training_state_mismatches']} of {s['training_state_words']} "
             f"words (σ, Δ, X) read from the RTL over the bus equal the training loop's estimator")
    rows = [
        ("mode", s["mode"]),
        ("test accuracy", f"{100 * s['test_accuracy']:.2f} % after {s['epochs']} epochs ({t.get('method')} "
                          f"{t.get('fixed')}, k={t.get('rank')}, s={t.get('sub_batch')}, batch {t.get('batch')})"),
        ("SoC cosim", f"layer {s['layer']}, {s['captured_samples']} captured samples, k={soc['rank']}, "
                      f"s={soc['sub_batch']}, P={soc['lanes']}, {soc['scheme']} BL={soc['bl']}"),
        ("mismatches", f"{s['mismatches']} in {s['words_compared']} words (σ, factors, {s['pulse_words']} pulse words)"),
        ("training state", state),
        ("cycles/sample", f"{fmt(s['cycles_per_sample'], '.1f')} engine busy (bound {fmt(s['bound_cycles_per_sample'], 'g')}), "
                          f"{fmt(s['bus_cycles_per_sample'], '.1f')} SoC under the firmware, "
                          f"{fmt(s.get('stream_cycles_per_sample'), '.1f')} start to done"),
        ("engine on ECP5", eng + (f" on {syn.get('device')}" if syn else "")),
        ("resources", f"{fmt(s['luts'])} LUTs, {fmt(s['ffs'])} FFs, {fmt(s['dsps'])} DSPs, {fmt(s['brams'])} BRAMs"),
        ("Fmax", f"{fmt(s['fmax_mhz'], '.1f')} MHz"),
        ("time", ", ".join(f"{k} {v:.0f} s" + (" (in parallel)" if k == "synth" else "")
                           for k, v in s["seconds"].items())),
        ("result", "PASS" if s["ok"] else "FAIL"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def register(sub) -> None:
    parser = sub.add_parser("demo", help="train, capture, co-simulate the SoC under firmware, synthesise: one table",
                            description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes for CI (about 4 minutes cold on 2 shared cores, synthesis included)")
    parser.add_argument("--seed", type=int, default=0, help="seed of training, capture and initial state (default 0)")
    parser.add_argument("--build-dir", type=Path, default=None, help="build directory (default build/demo)")
    parser.add_argument("--no-synth", action="store_true", help="skip the FPGA synthesis step")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no step lines on stderr")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    s = run_demo(quick=args.quick, seed=args.seed, build_dir=args.build_dir, progress=not args.no_progress,
                 skip_synth=args.no_synth)
    print(summary_table(s))
    for line in fail_lines(s):
        print(line)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(s, indent=2, default=str))
    return 0 if s["ok"] else 1
