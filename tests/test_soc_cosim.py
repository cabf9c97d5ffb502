"""SoC top: parameters, the integer scale rule, ``sbpca gen soc``, and the firmware co-simulation
(C driver via ctypes -> Wishbone cycles on Verilator -> engine + driver) against the golden models.

The two co-simulations build different designs (stochastic / deterministic driver) so that
pytest-xdist can run them side by side; each takes about a minute (mostly the Verilator build).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hdl.regmap import REGS
from hdl.soc import SBPCASoC, SoCParams, scale_shift, soc_update_config
from pymodel.crossbar import DriverParams
from testbench import soc_cosim
from testbench.soc_cosim import random_batches, run_soc_cosim


def small(scheme: str = "stochastic", **kw) -> SoCParams:
    args = dict(rows=6, cols=5, rank=2, sub_batch=3, lanes=2, fifo_depth=8, scheme=scheme)
    args.update(kw)
    return SoCParams.make(**args)


def test_params_are_validated():
    p = small()
    assert (p.driver.rows, p.driver.cols) == (6, 5) and p.driver.state == p.engine.fmts.state
    with pytest.raises(ValueError, match="driver is 5x5"):
        SoCParams(p.engine, DriverParams(rows=5, cols=5), 8)
    with pytest.raises(ValueError, match="fifo_depth"):
        SoCParams(p.engine, p.driver, 1)
    with pytest.raises(TypeError, match="SoCParams"):
        SBPCASoC(p.engine)
    with pytest.raises(ValueError, match="rank"):
        small(rank=7)


def test_update_config_integer_rule():
    p = small()
    sh = scale_shift(p)
    assert sh == 24 + p.engine.fmts.sigma.frac - p.driver.scale.frac
    # LR_SCALE 1.0 (Q8.24), B = 4, sigma = 0.5: row scale 2.0 in the driver's scale format
    half = 1 << (p.engine.fmts.sigma.frac - 1)
    cfg = soc_update_config(p, half, 4, 1 << 24, 9)
    assert cfg.row_scale == 2 << p.driver.scale.frac and cfg.col_scale == 1 << p.driver.scale.frac
    assert (cfg.bl, cfg.negate) == (9, False)
    neg = soc_update_config(p, -half, 4, 1 << 24, 0)
    assert neg.negate and neg.row_scale == cfg.row_scale and neg.bl == 1  # BL 0 -> 1
    assert soc_update_config(p, half, 4, 1 << 24, 1000).bl == p.driver.bl_max
    big = soc_update_config(p, (1 << 31) - 1, 65535, (1 << 32) - 1, 5)
    assert big.row_scale == (1 << p.driver.scale_bits) - 1  # saturates
    # round half up at the shift
    odd = soc_update_config(p, 1, 1, 1 << (sh - 1), 5)
    assert odd.row_scale == 1
    det = soc_update_config(small("deterministic"), half, 4, 1 << 24, 7)
    assert det.col_scale == 7 << p.driver.scale.frac
    with pytest.raises(TypeError, match="sigma_c"):
        soc_update_config(p, 0.5, 4, 1 << 24, 7)


def test_gen_soc_writes_verilog_and_manifest(tmp_path, capsys):
    from pymodel.cli import main

    assert main(["gen", "soc", "--rows", "6", "--cols", "5", "--rank", "2", "--sub-batch", "3",
                 "--lanes", "2", "-o", str(tmp_path)]) == 0
    text = (tmp_path / "sbpca_soc.v").read_text()
    assert "module sbpca_soc" in text and "pulses__payload" in text and "bus__ack" in text
    man = json.loads((tmp_path / "sbpca_soc.json").read_text())
    names = {p["name"]: p for p in man["ports"]}
    assert names["bus__adr"]["width"] == 6 and names["pulses__valid"]["direction"] == "out"
    assert sum(f["width"] for f in man["pulse_word_fields"]) == names["pulses__payload"]["width"]
    assert man["params"]["engine"]["rows"] == 6 and man["regmap"]["registers"][0]["name"] == "ID"
    assert "wrote" in capsys.readouterr().out


@pytest.mark.cosim
def test_firmware_cosim_stochastic_with_stalls():
    """Four warm-started batches (each with a partial sub-batch), bus and pulse stalls; before
    batches 1-3 a CTRL.SOFT_RESET in the middle of a batch, of a factor readout and of a pulse
    update, each followed by the checkpoint's restore; then ``sbpca_wait_idle`` against a stuck
    crossbar, and the engine's max_batch error with CTRL.CLEAR."""
    p = small(max_batch=8)
    batches = random_batches(p, 4, 7, seed=3)
    resets = [None, "mid_batch", "mid_readout", "mid_update"]
    rep = run_soc_cosim(p, batches, seed=1, lr_scale=1 << 22, bl=7, bus_stalls=True, pulse_stall_prob=0.3,
                        extra_checks=True, resets=resets)
    assert rep["mismatches"] == 0, rep["mismatch_details"]
    assert (rep["passed"], rep["failed"]) == (1, 0)
    k, a, b = 2, 6, 5
    assert rep["samples"] == 28 and rep["pulse_words"] == 4 * k * 7
    # sigma + factors + pulse words + counters + flags per batch; per soft reset 9 checks and the
    # restored state read back; init and final checks; the 19 checks of the max_batch phase
    assert rep["words_compared"] == (4 * (k + k * (a + b) + k * 7 + 3 + 8) + 3 * (9 + k * (a + b) + k)
                                     + 5 + 1 + 19)
    assert [r["scenario"] for r in rep["soft_resets"]] == resets[1:]
    for r in rep["soft_resets"]:
        assert (r["reset_status"], r["load_status"]) == ("SBPCA_OK", "SBPCA_OK")
        assert REGS.STATUS.STATE_VALID.get(r["status_after"]) == 0
    # sbpca_wait_idle: exactly its budget of STATUS reads while the crossbar holds UPD_BUSY high,
    # then success once it takes the words again
    idle = rep["idle_check"]
    assert idle["upd_busy_before"] == 1
    assert (idle["timeout_status"], idle["timeout_polls"]) == ("SBPCA_ERR_TIMEOUT", idle["budget"])
    assert idle["idle_status"] == "SBPCA_OK" and idle["idle_polls"] >= 1
    assert idle["status_after"] & (REGS.STATUS.BUSY.mask | REGS.STATUS.UPD_BUSY.mask) == 0
    # a batch of max_batch + 1 samples: refused by the firmware, flagged by the engine when forced
    lim = rep["batch_limit_check"]
    assert lim["max_batch_register"] == 8 and lim["samples"] == 9
    assert lim["configure_status"] == "SBPCA_ERR_ARG"
    for phase in ("first", "second"):
        got = lim[phase]
        assert got["errors"] & REGS.ERRORS.BATCH_LIMIT.mask and not got["errors"] & REGS.ERRORS.PROTOCOL.mask
        assert REGS.STATUS.ENGINE_ERROR.get(got["status"]) == 1
        assert (got["samples"], got["sub_batches"]) == (9, 3)
    assert lim["check_errors"]["status"] == "SBPCA_ERR_PROTOCOL"
    assert lim["after_w1c"]["errors"] == 0 and REGS.STATUS.ENGINE_ERROR.get(lim["after_w1c"]["status"]) == 1
    assert lim["after_clear"]["errors"] == 0 and REGS.STATUS.ENGINE_ERROR.get(lim["after_clear"]["status"]) == 0
    assert rep["pulse_stall_cycles"] > 0
    assert all(bt["status"] in ("SBPCA_OK", "SBPCA_ERR_HW") for bt in rep["batches"])
    assert rep["bound_cycles_per_sample"] == pytest.approx(2 * k * (a + b) / 2)
    assert rep["cycles_per_sample"] > rep["bound_cycles_per_sample"]  # tiny sizes are latency bound
    assert rep["bus_cycles_per_sample"] > 0


@pytest.mark.cosim
def test_firmware_cosim_deterministic_detects_a_wrong_pulse_word(monkeypatch):
    """Deterministic driver, three lanes (pairs of packed elements straddle the lane chunks);
    one corrupted golden pulse word must be reported by name."""
    real = soc_cosim.soc_golden

    def corrupted(params, batches, init, **kw):
        exp = real(params, batches, init, **kw)
        exp[0]["pulses"][1][2] ^= 1  # update 1, slot 2, bit 0 (row_fire of row 0)
        return exp

    monkeypatch.setattr(soc_cosim, "soc_golden", corrupted)
    p = small("deterministic", lanes=3)
    rep = run_soc_cosim(p, random_batches(p, 1, 5, seed=8), seed=2, lr_scale=1 << 23, bl=6)
    assert rep["mismatches"] == 1 and rep["failed"] == 1
    assert "batch 0 update 1 slot 2 pulse word" in rep["mismatch_details"][0]
    assert "row_fire" in rep["mismatch_details"][1]


@pytest.mark.parametrize("kw", [dict(lanes=1, rank=1, formats="q12"), dict(lanes=1, rank=2, formats="q24"),
                                dict(lanes=2, rank=1, formats="q16")])
def test_rtlil_has_no_zero_width_case(kw):
    """No ``case 0'`` in the SoC's RTLIL (one lane or rank 1 give zero-width indices): Yosys's
    ``proc`` can drop such a case, so its assignments vanish from the Verilog while Amaranth's
    own simulator still performs them (the P = 1 state load of docs/VERIFICATION.md)."""
    from amaranth.back import rtlil

    text = rtlil.convert(SBPCASoC(SoCParams.make(rows=3, cols=4, sub_batch=2, fifo_depth=4, **kw)), name="sbpca_soc")
    assert "module " in text and "case 1'1" in text
    lines = text.splitlines()
    bad = [lines[i - 1].strip() + " / " + l.strip() for i, l in enumerate(lines) if l.strip().startswith("case 0'")]
    assert not bad, bad


@pytest.mark.cosim
def test_firmware_cosim_one_lane_state_load():
    """One lane (the loader's lane index has no bits): a soft reset in a factor readout, then
    the checkpoint loaded through STATE_DATA reads back word for word and the next batch
    matches the golden model (before the fix every loaded Δ/X element read back as 0); q8,
    whose 8-bit samples also bound the max_batch phase's random batch."""
    p = small(lanes=1, formats="q8", max_batch=8)
    k, a, b, bl = 2, 6, 5, 5
    rep = run_soc_cosim(p, random_batches(p, 2, 4, seed=5), seed=4, lr_scale=1 << 22, bl=bl, bus_stalls=True,
                        resets=[None, "mid_readout"], extra_checks=True)
    assert rep["mismatches"] == 0, rep["mismatch_details"]
    assert (rep["passed"], rep["failed"]) == (1, 0)
    assert [(r["reset_status"], r["load_status"]) for r in rep["soft_resets"]] == [("SBPCA_OK", "SBPCA_OK")]
    # per batch sigma + factors + pulse words (BL slots per update) + counters + flags; the
    # reset's 9 checks and the restored state (k sigma, k(a + b) elements); init and end of run;
    # the 19 checks of the max_batch phase
    assert rep["words_compared"] == 2 * (k + k * (a + b) + k * bl + 3 + 8) + 9 + k * (a + b) + k + 5 + 1 + 19
    assert rep["batch_limit_check"]["first"]["samples"] == 9
    assert rep["soft_resets"][0]["factor_level_before"] >= 1
    assert any(v != 0 for col in rep["final_state"]["Delta"] for v in col)


def test_cosim_rejects_bad_stimulus():
    p = small()
    with pytest.raises(ValueError, match="batch 0"):
        run_soc_cosim(p, [(np.zeros((2, 4), np.int64), np.zeros((2, 6), np.int64))])
    with pytest.raises(TypeError, match="integer"):
        run_soc_cosim(p, [(np.zeros((2, 5)), np.zeros((2, 6)))])
    with pytest.raises(ValueError, match="pulse_stall_prob"):
        run_soc_cosim(p, random_batches(p, 1, 2, seed=0), pulse_stall_prob=1.0)
    with pytest.raises(ValueError, match="resets"):
        run_soc_cosim(p, random_batches(p, 2, 2, seed=0), resets=["mid_batch", None])
    with pytest.raises(ValueError, match="resets"):
        run_soc_cosim(p, random_batches(p, 2, 2, seed=0), resets=[None, "sometimes"])
