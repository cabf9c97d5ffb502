"""Driver RTL without Verilator: elaboration checks, LFSR bank in the Amaranth simulator,
Verilog + manifest generation, the scoreboard, and ``sbpca gen driver``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl.driver import CrossbarDriver, cfg_layout, word_layout
from hdl.lfsr import LfsrBank as RtlLfsrBank
from pymodel.cli import main
from pymodel.crossbar import DriverParams, LfsrBank, LfsrSpec
from testbench.driver_stimulus import KINDS, compare_words, golden_words, make_updates


def test_illegal_parameters_fail_at_elaboration():
    with pytest.raises(TypeError, match="DriverParams"):
        CrossbarDriver({"rows": 4})
    with pytest.raises(ValueError, match="slot word"):
        CrossbarDriver(DriverParams(4096, 4096, scheme="deterministic", level_bits=16))
    with pytest.raises(ValueError, match="seeds"):
        RtlLfsrBank(LfsrSpec(8), [0])
    with pytest.raises(ValueError, match="prob_bits"):
        DriverParams(4, 4, prob_bits=0)


def test_layouts_follow_params():
    p = DriverParams(5, 3, scheme="deterministic", bl_max=20, level_bits=5)
    assert word_layout(p).size == sum(w for _, w in p.word_fields()) == 2 * 5 + 2 * 3 + 5 * 4 + 5 + 1
    assert cfg_layout(p).size == 2 * 31 + 5 + 1
    assert [n for n, _ in word_layout(p)] == [n for n, _ in p.word_fields()]


def test_rtl_lfsr_bank_matches_golden_in_amaranth_sim():
    spec = LfsrSpec(12)  # leap 16
    seeds = [1, 0x5A5, 0xFFF]
    dut = RtlLfsrBank(spec, seeds)
    enables = [1, 1, 0, 1, 0, 0, 1, 1, 1, 1]
    seen = []

    async def bench(ctx):
        for en in enables:
            ctx.set(dut.en, en)
            seen.append([ctx.get(dut.state[i]) for i in range(3)])
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    ref = LfsrBank(spec, seeds).advance(sum(enables) + 1)
    pos = np.cumsum([0] + enables[:-1])
    np.testing.assert_array_equal(np.array(seen), ref[pos].astype(np.int64))


def test_scoreboard_counts_mismatches_and_missing_words():
    p = DriverParams(4, 3, bl_max=7, prob_bits=4, lfsr=LfsrSpec(8))
    ups = make_updates(p, 6, seed=2)
    assert [u["kind"] for u in ups[:5]] == list(KINDS)
    exp = golden_words(p, ups)
    flat = [w for ws in exp for w in ws]
    assert compare_words(p, ups, exp, flat)["mismatches"] == 0
    bad = list(flat)
    bad[3] ^= 1  # row_fire bit 0 of the fourth word
    r = compare_words(p, ups, exp, bad)
    assert r["mismatches"] == 1 and r["first_mismatches"][0]["fields"].keys() == {"row_fire"}
    r = compare_words(p, ups, exp, flat[:-2])
    assert r["mismatches"] == 2 and r["missing_words"] == 2
    assert compare_words(p, ups, exp, flat + [0])["extra_words"] == 1


@pytest.mark.parametrize("scheme", ["stochastic", "deterministic"])
def test_gen_driver_writes_verilog_and_manifest(tmp_path, scheme, capsys):
    rc = main(["gen", "driver", "--rows", "6", "--cols", "5", "--scheme", scheme, "--bl", "15",
               "-o", str(tmp_path), "--json"])
    assert rc == 0
    man = json.loads(capsys.readouterr().out)
    text = (tmp_path / "crossbar_driver.v").read_text()
    assert "module crossbar_driver" in text
    assert json.loads((tmp_path / "crossbar_driver.json").read_text()) == man
    p = DriverParams.from_dict(man["params"])
    assert (p.rows, p.cols, p.scheme, p.bl_max) == (6, 5, scheme, 15)
    ports = {x["name"]: x for x in man["ports"]}
    assert ports["o__payload"]["width"] == sum(f["width"] for f in man["word_fields"])
    assert ports["i__payload"]["width"] == 16 and ports["i__ready"]["direction"] == "out"
    assert (man["lfsr"] is None) == (scheme == "deterministic")
    for name in ports:
        assert name in text


def test_gen_driver_rejects_bad_parameters(tmp_path, capsys):
    assert main(["gen", "driver", "--rows", "4", "--cols", "4", "--prob-bits", "20", "-o", str(tmp_path)]) == 2
    assert "prob_bits" in capsys.readouterr().err
    assert main(["gen", "driver", "--lfsr-width", "16", "--lfsr-taps", "16,15", "-o", str(tmp_path)]) == 2
    assert "maximal" in capsys.readouterr().err


def test_synth_builds_the_driver_from_its_registry_entry():
    from hdl.commands.synth import design_build
    from pymodel.cli import build_parser

    comp, name, _ = design_build(build_parser().parse_args(
        ["synth", "--top", "driver", "--rows", "3", "--cols", "2", "--scheme", "deterministic", "--bl", "9",
         "--seed", "1"]))
    assert name == "crossbar_driver" and comp.params.bl_max == 9 and comp.params.rows == 3
    assert comp.params.seed == 1
    from amaranth.hdl import Fragment

    Fragment.get(comp, None)  # it elaborates