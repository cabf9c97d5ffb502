"""Co-simulation of the SBPCA engine RTL (Verilator, cocotb 2) against the golden model.

Each test builds one parameter set (cached by Verilog hash, compiled at -O0) and streams
several batches with random valid gaps and ready back-pressure; the bench compares every
state word after every sub-batch, every factor word after each dumped batch and the status
flags as integers.  Together: k = 1, 2, 4; generic and ECP5 DSP multiplier tiles; a != b; a narrow format that saturates; batches
that are not a multiple of s; state loads (σ guard, degenerate columns); warm start; and
one batch captured from a training step of the digits CNN.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hdl.engine import engine_layouts, initial_state
from hdl.engine_outputs import trace_depth
from hdl.engine_params import EngineParams
from hdl.engine_pipeline import distributed
from pymodel.cli import main
from testbench import engine_cosim
from testbench.engine_capture import capture_training_stream
from testbench.engine_cosim import golden_expectation, random_stream, run_engine_cosim

pytestmark = pytest.mark.cosim


def _assert_clean(report: dict, min_words: int) -> None:
    assert report["mismatches"] == 0, report.get("mismatch_details")
    assert report["passed"] == 1 and report["failed"] == 0
    assert not report["timeout"]
    assert report["words_compared"] >= min_words


def _k2_stream(p: EngineParams):
    """4 batches of 10 (s = 4: partial sub-batches), loads exercising the σ guard and
    degenerate columns, and two batches back to back (warm start without a dump)."""
    f = p.fmts
    st = random_stream(p, 4, 10, seed=5)
    rng = np.random.default_rng(0)
    X = f.state.quantize(rng.normal(0, 0.4, (p.cols, p.rank)))
    X[:, 1] = 0
    D = f.state.quantize(rng.normal(0, 0.4, (p.rows, p.rank)))
    st[1].load = (X, D, np.array([0, -5]))  # both σ below σ_min: guarded
    zero_x = np.zeros((p.cols, p.rank), np.int64)
    zero_d = np.zeros((p.rows, p.rank), np.int64)
    st[2].load = (zero_x, zero_d, np.array([1 << 20, 3 << 19]))
    st[2].x[:] = 0  # zero state and zero samples: every column degenerates
    st[2].d[:] = 0
    st[2].dump = False  # batch 3 follows without a factor request in between
    return st


@pytest.mark.parametrize("mode", ["block", "cycle"])
def test_cosim_k2_partial_batches_loads_and_stalls(mode):
    p = EngineParams(rows=6, cols=5, rank=2, sub_batch=4, lanes=1, formats="q16")
    st = _k2_stream(p)
    exp = golden_expectation(p, st, initial_state(p))
    assert exp["status"]["sigma_guard"] > 0 and exp["status"]["degenerate"] > 0
    rep = run_engine_cosim(p, st, stall_prob=0.3, stim_seed=3, fast_build=True, mode=mode)
    assert rep["mode"] == mode
    n_sub = sum(-(-10 // 4) for _ in st)
    _assert_clean(rep, n_sub * 2 * (5 + 6 + 1))
    assert rep["samples"] == 40 and rep["sub_batches"] == n_sub
    assert rep["rtl_status"]["sigma_guard"] == exp["status"]["sigma_guard"]
    assert rep["rtl_status"]["degenerate"] == exp["status"]["degenerate"]


def test_cosim_k1_narrow_format_saturates_with_ecp5_dsp_primitives():
    # dsp="ecp5": the multiplier tiles are MULT18X18D instances (testbench/models simulates them)
    p = EngineParams(rows=5, cols=7, rank=1, sub_batch=3, lanes=4, formats="q8", dsp="ecp5")
    f = p.fmts
    st = random_stream(p, 3, 8, seed=2, x_scale=4.0, d_scale=1.0)
    X0, D0, _ = initial_state(p)
    st[1].load = (X0, D0, np.array([1]))  # σ far below σ_min: 1/(nσ) saturates
    st[1].x[:] = f.x.max_int
    st[1].x[::2] = f.x.min_int
    st[1].d[:] = f.delta.max_int
    exp = golden_expectation(p, st, initial_state(p))
    assert {"M", "M_update", "recip", "X_inv"} <= set(exp["status"]["sat"])
    rep = run_engine_cosim(p, st, stall_prob=0.25, stim_seed=7, fast_build=True)
    _assert_clean(rep, 9 * (7 + 5 + 1))
    assert set(rep["rtl_status"]["sat"]) == set(exp["status"]["sat"])


def test_cosim_k4_captured_training_stream():
    cap = capture_training_stream(layer="fc", rank=4, sub_batch=8, batch=20, step=1)
    p = cap.params(lanes=4)
    assert (p.rows, p.cols) == (10, 65)
    exp = golden_expectation(p, [cap.batch], cap.init)
    # the engine's golden run reproduces what the training loop's estimator computed
    for got, want in zip((exp["final"]["X"], exp["final"]["Delta"], exp["final"]["sigma"]), cap.state_after):
        np.testing.assert_array_equal(np.asarray(got), want)
    rep = run_engine_cosim(p, [cap.batch], init=cap.init, stall_prob=0.2, stim_seed=11, fast_build=True)
    _assert_clean(rep, 3 * 4 * (65 + 10 + 1))


def test_cosim_demo_engine_with_a_block_ram_trace_fifo():
    """The demo's engine (10×65, k 4, one lane): its trace FIFO is over the LUT-RAM size, so
    this is the block-RAM form (read latch, then the output register), under stalls."""
    p = EngineParams(rows=10, cols=65, rank=4, sub_batch=8, lanes=1)
    width = engine_layouts(p)["trace"].size
    assert not distributed(trace_depth(p), width), "this configuration must use block RAM"
    rep = run_engine_cosim(p, random_stream(p, 2, 17, seed=3), stall_prob=0.2, stim_seed=4, fast_build=True)
    _assert_clean(rep, 2 * 3 * 4 * (65 + 10) + 2 * 4 * (65 + 10))


def test_cosim_cli_json_and_exit_status(capsys):
    args = ["cosim", "engine", "--rows", "6", "--cols", "5", "--rank", "2", "--sub-batch", "4",
            "--lanes", "1", "--batches", "2", "--seed", "0", "--stall-prob", "0.1", "--fast-build", "--json"]
    assert main(args) == 0
    rep = json.loads(capsys.readouterr().out)
    for key in ("mismatches", "words_compared", "samples", "cycles", "cycles_per_sample",
                "bound_cycles_per_sample"):
        assert key in rep
    assert rep["mismatches"] == 0 and rep["samples"] == 18
    assert rep["bound_cycles_per_sample"] == pytest.approx(2 * 2 * (6 + 5) / 1)
    assert "waves" not in rep  # no waveform unless asked for
    assert rep["mode"] == "block" and rep["sim_cycles_per_second"] > 0
    assert rep["reproduce"].startswith("sbpca cosim engine --rows 6 --cols 5 --rank 2 --sub-batch 4")


@pytest.mark.parametrize("mode", ["block", "cycle"])
def test_cosim_detects_surplus_words_error_and_flags(monkeypatch, mode):
    """Completeness: words the golden model does not expect (the RTL's last sub-batch and the
    dump after it become surplus), a wrong ``error`` output and a saturation flag the RTL did
    not raise each fail, with the sample range, the word, both values and the reproducer."""
    real = engine_cosim.golden_expectation

    def mutated(params, batches, init):
        exp = real(params, batches, init)
        exp["history"].pop()  # the RTL's words of the last sub-batch are now surplus
        exp["dumps"][-1]["cols"] = [0]  # column 1 of the last dump was "not requested"
        exp["status"]["error"] = 1
        exp["status"]["sat"] = sorted(set(exp["status"]["sat"]) | {"S"})
        return exp

    monkeypatch.setattr(engine_cosim, "golden_expectation", mutated)
    p = EngineParams(rows=6, cols=5, rank=2, sub_batch=4, lanes=1, formats="q16")
    rep = run_engine_cosim(p, random_stream(p, 1, 9, seed=4), stall_prob=0.1, fast_build=True, mode=mode,
                           reproduce="sbpca cosim engine --example")
    assert rep["failed"] == 1 and rep["mismatches"] > 0
    text = "\n".join(rep["mismatch_details"])
    assert "surplus" in text
    assert "not requested" in text
    assert "error output: rtl=0 golden=1" in text
    assert "saturation flag S: rtl=0 golden=1" in text
    assert "sub_batches counter" in text
    assert all(line.endswith("| reproduce: sbpca cosim engine --example") for line in rep["mismatch_details"])


@pytest.mark.parametrize("mode", ["block", "cycle"])
def test_cosim_detects_a_wrong_word(monkeypatch, mode):
    """The scoreboard is not blind: one corrupted golden word must be reported and fail."""
    real = engine_cosim.golden_expectation

    def corrupted(params, batches, init):
        exp = real(params, batches, init)
        exp["history"][1]["X"][3][1] += 1
        return exp

    monkeypatch.setattr(engine_cosim, "golden_expectation", corrupted)
    p = EngineParams(rows=6, cols=5, rank=2, sub_batch=4, lanes=1, formats="q16")
    rep = run_engine_cosim(p, random_stream(p, 1, 9, seed=4), stall_prob=0.1, fast_build=True, mode=mode)
    assert rep["mismatches"] == 1 and rep["failed"] == 1
    line = rep["mismatch_details"][0]
    # the sub-batch with its samples, the element, both values
    assert line.startswith("sub-batch 1 (batch 0, samples 4..7): X[3,1]")
    assert "rtl=" in line and "golden=" in line


def test_cosim_without_trace_and_single_column_requests():
    """trace_en = 0 (what an SoC that never drains the trace uses): only the factor pairs
    come out; a request for one column returns only that pair."""
    p = EngineParams(rows=6, cols=5, rank=2, sub_batch=4, lanes=1, formats="q16")
    st = random_stream(p, 3, 6, seed=8)
    st[0].dump_col = 1
    st[1].dump = False
    rep = run_engine_cosim(p, st, stall_prob=0.2, stim_seed=5, trace=False, fast_build=True)
    _assert_clean(rep, (5 + 6) * (1 + 2))
    assert rep["trace_words"] == 0 and rep["factor_words"] == (6 + 5) * (1 + 2)  # P = 1: one beat per element
