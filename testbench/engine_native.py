"""The engine's test wrapper in a plain Verilator C++ loop: the no-Python reference speed.

:func:`native_speed` builds the same Verilog as the block-mode bench (engine + wrapper, no
``--public-flat-rw``) with a ten-line C++ ``main`` that toggles the clock, runs one block
of the job to ``done`` and prints the cycles, the seconds and the wrapper's mismatch count.
It answers "how fast could this design simulate at all", the yardstick of the cocotb bench.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from .engine_harness import HEX_FILES, TB_TOPLEVEL
from .runner import BUILD_ARGS, build_lock
from .simulator import SimulatorError, apply_simulation_env, verilator_root

__all__ = ["native_speed", "MAIN_CPP"]

MAIN_CPP = r"""
#include <chrono>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include "Vtb.h"
#include "verilated.h"
static Vtb* t;
static void tick() { t->clk_in = 1; t->eval(); t->clk_in = 0; t->eval(); }
int main(int argc, char** argv) {
    if (argc < 14) { std::fprintf(stderr, "usage: n_seg n_sub n_dump tr_total fr_total thr_x thr_d thr_l thr_q thr_t thr_f seed trace_en\n"); return 2; }
    unsigned long v[13];
    for (int i = 0; i < 13; i++) v[i] = std::strtoul(argv[i + 1], nullptr, 0);
    Verilated::commandArgs(argc, argv);
    t = new Vtb;
    t->n_seg = v[0]; t->n_sub = v[1]; t->n_dump = v[2]; t->tr_total = v[3]; t->fr_total = v[4];
    t->thr_x = v[5]; t->thr_d = v[6]; t->thr_l = v[7]; t->thr_q = v[8]; t->thr_t = v[9]; t->thr_f = v[10];
    t->seed = v[11]; t->trace_en = v[12];
    t->rst = 1; tick(); tick(); tick(); t->rst = 0;
    t->reload = 1; tick(); t->reload = 0; t->start = 1; tick(); t->start = 0;
    unsigned long n = 0;
    auto t0 = std::chrono::steady_clock::now();
    std::clock_t c0 = std::clock();
    while (!t->done && n < 400000000UL) { tick(); n++; }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;
    std::printf("{\"cycles\": %lu, \"seconds\": %.6f, \"cpu_seconds\": %.6f, \"done\": %d, \"mismatches\": %u}\n",
                n, s, cpu, (int)t->done, (unsigned)t->mism);
    delete t;
    return 0;
}
"""


def native_speed(sources: list[Path], build_dir: Path, block_dir: Path, meta: dict, stall: dict,
                 seed: int, trace: bool) -> dict:
    """Build (once per ``build_dir``) and run one block natively; return cycles/s and the counts."""
    apply_simulation_env()
    build_dir = Path(build_dir).resolve()
    exe = build_dir / "Vtb"
    stamp = build_dir / ".sbpca_native"
    key = hashlib.sha1((MAIN_CPP + "".join(Path(s).read_text() for s in sources)).encode()).hexdigest()
    with build_lock(build_dir):
        if not (exe.exists() and stamp.exists() and stamp.read_text() == key):
            main = build_dir / "main.cpp"
            main.write_text(MAIN_CPP)
            cmd = [str(verilator_root() / "bin" / "verilator"), "--cc", "--exe", "--build", "-j", "2",
                   *BUILD_ARGS, "--top-module", TB_TOPLEVEL, "--prefix", "Vtb", "-o", "Vtb",
                   "-Mdir", str(build_dir), str(main), *[str(Path(s).resolve()) for s in sources]]
            res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
            if res.returncode != 0:
                raise SimulatorError(f"native build failed:\n{(res.stdout + res.stderr)[-3000:]}")
            stamp.write_text(key)
    run_dir = build_dir / f"run_{os.getpid()}"
    run_dir.mkdir(exist_ok=True)
    try:
        for fname in HEX_FILES.values():
            shutil.copyfile(Path(block_dir) / fname, run_dir / fname)
        thr = [min(int(round(stall[p] * 65536)), 0xFFFF) for p in ("x", "d", "load", "factor_req", "trace", "factors")]
        args = [meta["n_seg"], meta["n_sub"], meta["n_dump"], meta["tr_total"], meta["fr_total"], *thr,
                int(seed) & 0xFFFFFFFF, int(trace)]
        res = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, cwd=run_dir)
        if res.returncode != 0:
            raise SimulatorError(f"native run failed:\n{(res.stdout + res.stderr)[-3000:]}")
        out = json.loads(res.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    out["cycles_per_second"] = out["cycles"] / max(out["seconds"], 1e-9)
    out["cycles_per_cpu_second"] = out["cycles"] / max(out["cpu_seconds"], 1e-9)
    return out
