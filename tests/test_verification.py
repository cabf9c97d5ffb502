"""The verification layer itself: memory-file packing, the shared scoreboard, the block plan,
the runner's port list, the driver scoreboard's completeness, the campaign's draw (cost model,
shards, SoC cases) and a short ``sbpca regress`` campaign (the CI campaign: one small engine
configuration and two drivers, built at -O0)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hdl.engine import engine_manifest
from hdl.engine_params import EngineParams
from pymodel.cli import main
from pymodel.crossbar import DriverParams
from testbench.driver_stimulus import compare_words, golden_words, make_updates
from testbench.engine_block import BLOCK_LIMITS, plan_blocks
from testbench.engine_cosim import random_stream
from testbench.engine_score import Layout
from testbench.hexpack import pack_hex
from testbench.regress import SOC_BINS, _cost, coverage_bins, draw_cases, shard_sizes, soc_draw, summarize
from testbench.runner import ports_vlt
from testbench.scoreboard import Scoreboard


def test_scoreboard_conditions_and_annotations():
    """End-of-run conditions are mismatches but not compared words; an annotation follows only
    a mismatch that got its own line; a line without a word names it in ``where``."""
    sb = Scoreboard(per_kind=1)
    assert sb.require("end of run", "STATUS.BUSY", 0, 0, "work left in flight")
    assert not sb.require("end of run", "FIFO_STATUS.FACTOR_LEVEL", 2, 0, "factor words left unread")
    assert not sb.check("batch 0 update 1 slot 2 pulse word", "", 6, 7)
    sb.annotate("differing fields: row_fire rtl=0x2 golden=0x3")
    assert not sb.check("batch 1 update 0 slot 0 pulse word", "", 1, 0)  # beyond per_kind: no line ...
    sb.annotate("differing fields: col_fire")  # ... and no annotation
    rep = sb.report()
    assert (rep["mismatches"], rep["words_compared"]) == (3, 2)
    assert rep["mismatch_details"] == [
        "end of run: FIFO_STATUS.FACTOR_LEVEL: rtl=2 golden=0 (factor words left unread)",
        "batch 0 update 1 slot 2 pulse word: rtl=6 golden=7",
        "  differing fields: row_fire rtl=0x2 golden=0x3"]


def test_campaign_cost_shards_and_soc_cases():
    """The cost model follows the engine's timing model (measured cycles/sample of two campaign
    configurations within 15 %); shards cover a case's samples; SoC cases are legal and come one
    per scheme in campaigns of >= 1000 samples only."""
    from hdl.soc import SoCParams

    # measured with two sub-batches in flight: `sbpca cosim engine --rows 51 --cols 62 --rank 1
    # --sub-batch 8 --lanes 2 --format-set q24 --batches 6 --batch-size 64 --stall-prob 0.25
    # --seed 1` (whole run) and the same for a=36 b=55 k=2 s=16 P=7 q16
    for cfg, measured in (((51, 62, 1, 8, 2, "q24"), 161.3), ((36, 55, 2, 16, 7, "q16"), 77.7)):
        a, b, k, s, P, f = cfg
        assert _cost(EngineParams(rows=a, cols=b, rank=k, sub_batch=s, lanes=P, formats=f)) \
            == pytest.approx(measured, rel=0.15)
    cases = draw_cases(1000000, seed=1)
    for c in cases:
        if c["kind"] == "engine":
            sizes = shard_sizes(c)
            assert sum(sizes) == c["samples"] and max(sizes) - min(sizes) <= 1
    soc = [c for c in cases if c["kind"] == "soc"]
    assert sorted(c["scheme"] for c in soc) == ["deterministic", "stochastic"]
    for i in range(40):
        d = soc_draw({"seed": i, "scheme": "stochastic", "max_dim": 12})
        p = SoCParams.make(**d["params"])  # legal: construction validates
        assert max(p.engine.rows, p.engine.cols) <= 12 and d["batch_size"] <= p.engine.max_batch
        assert d["resets"][0] is None and len(d["resets"]) == d["batches"] and any(d["resets"])
        assert d["extra_checks"] and d["pulse_stall_prob"] > 0  # every case reaches every SoC bin
    assert not [c for c in draw_cases(999, seed=1) if c["kind"] == "soc"]
    assert {f"soc_{b}" for b in SOC_BINS} <= set(coverage_bins())


def test_pack_hex_matches_the_payload_layout():
    p = EngineParams(rows=7, cols=5, rank=3, sub_batch=2, lanes=3, formats="q12")
    lay = engine_manifest(p)["payloads"]
    rng = np.random.default_rng(1)
    data = rng.integers(-(1 << 11), 1 << 11, (20, 3))
    sig = rng.integers(-(1 << 31), 1 << 31, 20)
    col, kind, chunk = rng.integers(0, 3, 20), rng.integers(0, 3, 20), rng.integers(0, 2, 20)
    f = {x["name"]: x for x in lay["load"]["fields"]}
    text = pack_hex(lay["load"]["width"], [(f["data"]["offset"], 12, data), (f["sigma"]["offset"], 32, sig),
                                           (f["col"]["offset"], f["col"]["width"], col),
                                           (f["kind"]["offset"], f["kind"]["width"], kind),
                                           (f["chunk"]["offset"], f["chunk"]["width"], chunk)])
    want = Layout(lay["load"])
    for line, i in zip(text.splitlines(), range(20)):
        assert int(line, 16) == want.pack(data=data[i], sigma=sig[i], col=col[i], kind=kind[i], chunk=chunk[i])
    with pytest.raises(ValueError, match="exceeds"):
        pack_hex(8, [(4, 8, np.zeros(2, np.int64))])


def test_scoreboard_counts_every_kind_and_quotes_the_reproducer():
    sb = Scoreboard(reproduce="sbpca regress --samples 10 --seed 1 --only 3")
    assert sb.check("sub-batch 0", "X[0,0]", 5, 5)
    assert not sb.check("sub-batch 0", "X[1,0]", 5, 6)
    for i in range(20):
        sb.fail("trace stream", f"word {i}", i, None, "surplus trace word")
    assert not sb.expect_count("end of run", "factor", 3, 4)
    assert not sb.check("end of run", "error output", 1, 0)
    rep = sb.report()
    assert rep["mismatches"] == 23 and rep["words_compared"] == 3
    assert rep["mismatch_kinds"] == {"differs": 2, "surplus trace word": 20, "missing words": 1}
    # the per-kind cap keeps the surplus words from hiding the wrong error output
    assert any("error output: rtl=1 golden=0" in line for line in rep["mismatch_details"])
    assert sum("surplus trace word" in line for line in rep["mismatch_details"]) == sb.per_kind
    assert all(line.endswith("| reproduce: sbpca regress --samples 10 --seed 1 --only 3")
               for line in rep["mismatch_details"])


def test_driver_scoreboard_counts_missing_and_surplus_words():
    params = DriverParams(4, 3, scheme="stochastic", bl_max=5, seed=2)
    ups = make_updates(params, 4, seed=2)
    exp = golden_words(params, ups)
    flat = [w for ws in exp for w in ws]
    clean = compare_words(params, ups, exp, flat)
    assert clean["mismatches"] == 0 and clean["words_compared"] == len(flat)
    surplus = compare_words(params, ups, exp, flat + [flat[0], flat[1]], reproduce="R")
    assert surplus["mismatches"] == 2 and surplus["extra_words"] == 2
    assert all("surplus word" in d and d.endswith("| reproduce: R") for d in surplus["mismatch_details"])
    missing = compare_words(params, ups, exp, flat[:-3])
    assert missing["mismatches"] == 3 and missing["missing_words"] == 3
    wrong = compare_words(params, ups, exp, [flat[0] ^ 1] + flat[1:])
    assert wrong["mismatches"] == 1 and wrong["first_mismatches"][0]["slot"] == 0


def test_block_plan_respects_limits_and_ends_blocks_where_every_word_is_out():
    p = EngineParams(rows=6, cols=5, rank=2, sub_batch=4, lanes=1, formats="q16")
    st = random_stream(p, 40, 60, seed=1)
    for b in st[::2]:
        b.dump = False
    blocks = plan_blocks(p, st, trace=False)
    assert sum(len(seg["batches"]) for blk in blocks for seg in blk) == 40
    for blk in blocks:
        assert blk[-1]["dump"] or blk is blocks[-1]  # trace off: a block ends after a dump
        assert sum(seg["need"]["samples"] for seg in blk) <= BLOCK_LIMITS["samples"]
    assert len(blocks) >= 3


def test_ports_vlt_lists_top_ports_of_both_verilog_styles():
    ansi = "module top (\n  input clk, input [3:0] a, b,\n  output reg [7:0] q, output done\n);\nendmodule"
    old = "module top(clk, a, q);\n  input clk;\n  input [3:0] a;\n  output q;\nendmodule"
    assert [ln.split('"')[-2] for ln in ports_vlt(ansi, "top").splitlines()[1:]] == ["clk", "a", "b", "q", "done"]
    assert [ln.split('"')[-2] for ln in ports_vlt(old, "top").splitlines()[1:]] == ["clk", "a", "q"]


def test_campaign_draws_legal_reproducible_cases_and_judges_coverage():
    a = draw_cases(100000, seed=7)
    assert a == draw_cases(100000, seed=7)
    eng = [c for c in a if c["kind"] == "engine"]
    assert len(eng) == 6 and any(c["kind"] == "driver" for c in a)  # ~1.2 log10(samples) configurations
    assert sum(c["samples"] for c in eng) >= 0.95 * 100000
    for c in eng:
        p = EngineParams.from_dict(c["params"])  # legal: construction validates
        assert 1 <= p.rows <= 96 and 1 <= p.cols <= 96 and 1 <= p.rank <= min(8, p.rows, p.cols)
    bins = coverage_bins()
    full = {"kind": "engine", "mismatches": 0, "samples": 5, "words_compared": 9, "cycles": 1,
            "coverage": {b: 1 for b in bins}}
    assert summarize([full], bins)["ok"]
    holed = dict(full, coverage={b: 1 for b in bins if b != "sigma_guard"})
    s = summarize([holed], bins)
    assert not s["ok"] and s["empty_bins"] == ["sigma_guard"]
    assert summarize([holed], bins, allow_empty=("sigma_guard",))["ok"]
    assert not summarize([dict(full, mismatches=1)], bins)["ok"]


@pytest.mark.cosim
def test_regress_short_campaign(capsys, tmp_path):
    """The CI campaign: a small random engine configuration and a driver, every word compared.
    A campaign this short cannot reach every event, so the bins it may miss are named."""
    hit = {"partial_sub_batch", "backpressure_x", "backpressure_d", "input_buffers_full", "driver_stall",
           "driver_stochastic", "driver_deterministic"}
    allow = ",".join(b for b in coverage_bins() if b not in hit)
    out = tmp_path / "summary.json"
    rc = main(["regress", "--samples", "400", "--seed", "3", "--max-dim", "8", "--max-configs", "1",
               "--fast-build", "--allow-empty", allow, "--out", str(out), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert rc == 0, summary
    assert summary["mismatches"] == 0 and summary["ok"]
    assert summary["configurations"] == 1 and summary["driver_cases"] == 2
    assert summary["samples"] >= 400 and summary["words_compared"] > 1000
    assert all(summary["coverage"][b] > 0 for b in hit)
    assert json.loads(out.read_text())["seed"] == 3
