"""The YoWASP synthesis flow: wrapper generation, real Yosys + nextpnr runs, errors, ``sbpca synth``."""

from __future__ import annotations

import argparse
import json

import pytest
from amaranth import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.commands.synth import _param_overrides, design_build
from hdl.designs import DESIGNS
from hdl.synth import Port, SynthError, io_wrapper_verilog, parse_portlist, synthesize
from pymodel.cli import main


class MacLanes(wiring.Component):
    """P signed multiply-accumulate lanes with registered inputs and products (a tiny DSP design)."""

    def __init__(self, *, lanes: int, width: int, acc_width: int) -> None:
        if lanes < 1 or width < 2 or acc_width < 2 * width:
            raise ValueError("lanes >= 1, width >= 2, acc_width >= 2*width")
        self._lanes, self._w, self._acc = lanes, width, acc_width
        super().__init__({
            "a": In(signed(width)).array(lanes),
            "b": In(signed(width)),
            "clear": In(1),
            "acc": Out(signed(acc_width)).array(lanes),
        })

    def elaborate(self, platform):
        m = Module()
        for i in range(self._lanes):
            ra = Signal(signed(self._w), name=f"ra{i}")
            rb = Signal(signed(self._w), name=f"rb{i}")
            prod = Signal(signed(2 * self._w), name=f"p{i}")
            m.d.sync += [ra.eq(self.a[i]), rb.eq(self.b), prod.eq(ra * rb)]
            with m.If(self.clear):
                m.d.sync += self.acc[i].eq(0)
            with m.Else():
                m.d.sync += self.acc[i].eq(self.acc[i] + prod)
        return m


def test_parse_portlist_and_wrapper():
    text = "module top\ninput [15:0] a\ninput [0:0] clk\ninput [0:0] rst\noutput [39:0] acc\ninput [3:1] b\nendmodule\n"
    ports = parse_portlist(text)
    assert ports == [Port("a", "input", 16), Port("clk", "input", 1), Port("rst", "input", 1),
                     Port("acc", "output", 40), Port("b", "input", 3)]
    verilog, info = io_wrapper_verilog("top", ports)
    assert info == {"in_bits": 19, "out_bits": 40, "clock": "clk", "reset": "rst"}
    assert ".a(ish[15:0])" in verilog and ".b(ish[18:16])" in verilog and ".acc(outs[39:0])" in verilog
    assert ".rst(rst_q)" in verilog and ".clk(clk)" in verilog
    with pytest.raises(ValueError, match="inout"):
        io_wrapper_verilog("top", ports + [Port("pad", "inout", 1)])


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown target"):
        synthesize("x.v", "top", target="xc7", build_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown ecp5 device"):
        synthesize("x.v", "top", device="999k", build_dir=tmp_path)
    with pytest.raises(ValueError, match="freq_mhz"):
        synthesize("x.v", "top", freq_mhz=0, build_dir=tmp_path)
    with pytest.raises(ValueError, match="io must be"):
        synthesize("x.v", "top", io="pins", build_dir=tmp_path)
    with pytest.raises(ValueError, match="router must be"):
        synthesize("x.v", "top", router="router3", build_dir=tmp_path)
    with pytest.raises(ValueError, match="pnr_args may not set --json"):
        synthesize("x.v", "top", pnr_args=["--json", "other.json"], build_dir=tmp_path)
    with pytest.raises(FileNotFoundError):
        synthesize(tmp_path / "missing.v", "top", build_dir=tmp_path)
    with pytest.raises(ValueError, match="no module named 'top'"):
        synthesize("module other(input a); endmodule", "top", build_dir=tmp_path)
    with pytest.raises(TypeError, match="design must be"):
        synthesize(42, "top", build_dir=tmp_path)


def test_mac_ecp5_uses_dsps_and_meets_100mhz(tmp_path):
    report = synthesize(MacLanes(lanes=2, width=16, acc_width=40), "mac_lanes", target="ecp5", device="85k",
                        build_dir=tmp_path, freq_mhz=100)
    d = report.to_dict()
    for key in ("luts", "ffs", "dsps", "brams", "fmax_mhz"):
        assert key in d
    assert report.dsps == 2, report.utilization  # one MULT18X18D per 16x16 product
    # the design's own flip-flops, wrapper excluded: per lane a (16), product (32), acc (40),
    # and one shared copy of b (Yosys merges the identical per-lane b registers)
    assert report.ffs == 2 * (16 + 32 + 40) + 16
    assert report.wrapper["in_bits"] == 2 * 16 + 16 + 1 and report.wrapper["out_bits"] == 80
    assert report.totals["ffs"] == report.ffs + report.wrapper["ffs"]
    assert 0 < report.luts < 1000
    assert report.brams == 0
    assert report.fmax_mhz is not None and report.fmax_mhz >= 100 and report.timing_met
    cp = report.critical_path
    assert cp is not None and cp["delay_ns"] > 0 and cp["logic_levels"] >= 1
    assert cp["delay_ns"] == pytest.approx(1000 / report.fmax_mhz, rel=0.05)
    for key in ("verilog", "netlist", "yosys_log", "nextpnr_log", "nextpnr_report"):
        assert (tmp_path / d["files"][key].split("/")[-1]).exists()
    assert "Fmax" in report.table()
    assert report.mapping == "abc9" and "splitnets" in (tmp_path / "synth.ys").read_text()


def test_classic_abc_fallback_script(tmp_path):
    """The classic-ABC flow (used when Yosys crashes inside ABC9) maps the same design."""
    report = synthesize(MacLanes(lanes=1, width=16, acc_width=40), "mac1", target="ecp5", device="25k",
                        build_dir=tmp_path, abc9=False)
    assert report.mapping == "abc" and "abc -lut 4:7" in (tmp_path / "synth.ys").read_text()
    assert report.dsps == 1 and report.ffs == 16 + 16 + 32 + 40
    assert report.fmax_mhz and report.fmax_mhz > 50


class DupRegs(wiring.Component):
    """One input registered three times: plain copies merge in Yosys, ``sbpca_dup`` copies stay."""

    def __init__(self, *, dup: bool) -> None:
        self._dup = dup
        super().__init__({"a": In(4), "o": Out(4).array(3)})

    def elaborate(self, platform):
        m = Module()
        for i in range(3):
            r = Signal(4, name=f"r{i}", attrs={"sbpca_dup": 1} if self._dup else {})
            m.d.sync += r.eq(self.a)
            m.d.comb += self.o[i].eq(r + i)
        return m


def test_registers_duplicated_on_purpose_are_kept(tmp_path):
    kept = synthesize(DupRegs(dup=True), "dup", target="ecp5", device="25k", build_dir=tmp_path / "k",
                      abc9=False, route=False)
    merged = synthesize(DupRegs(dup=False), "dup", target="ecp5", device="25k", build_dir=tmp_path / "m",
                        abc9=False, route=False)
    assert kept.ffs == 12 and merged.ffs == 4


def test_placement_only_reports_the_estimate(tmp_path):
    """``route=False``: no bitstream config, Fmax from the placer's estimate, said in the notes."""
    report = synthesize(MacLanes(lanes=1, width=16, acc_width=40), "mac1", target="ecp5", device="25k",
                        build_dir=tmp_path, abc9=False, route=False, pnr_args=["--placer-heap-beta", "0.8"])
    assert report.fmax_mhz and report.fmax_mhz > 50
    assert any("placement only" in n for n in report.notes)
    assert not (tmp_path / "mac1.config").exists()
    assert report.dsps == 1


def test_mac_ice40_and_failures(tmp_path):
    mac = MacLanes(lanes=1, width=8, acc_width=20)
    report = synthesize(mac, "mac8", target="ice40", device="up5k", build_dir=tmp_path / "ok", freq_mhz=24)
    assert report.dsps == 1 and report.ffs == 8 + 8 + 16 + 20
    assert report.luts > 0 and report.fmax_mhz and report.fmax_mhz > 24
    assert report.totals["ios"] == 5  # clk, rst, si, cap, so
    # straight to pins: the 39 pins of the SG48 package cannot hold 27 input + 40 output bits
    with pytest.raises(SynthError, match="nextpnr-ice40 failed") as info:
        synthesize(MacLanes(lanes=2, width=8, acc_width=20), "mac8", target="ice40", device="up5k",
                   build_dir=tmp_path / "pins", io="none")
    assert info.value.log is not None and info.value.log.name == "nextpnr.log"
    assert "ERROR" in str(info.value)
    # a Verilog syntax error is reported by the Yosys step
    with pytest.raises(SynthError, match="yosys.* failed"):
        synthesize("module broken(input a, output b); assign b = ; endmodule", "broken",
                   build_dir=tmp_path / "broken")


def test_sbpca_synth_command_on_register_bank(tmp_path, capsys):
    out = tmp_path / "csr.json"
    status = main(["synth", "--target", "ecp5", "--device", "85k", "--top", "csr", "--rows", "64", "--cols", "64",
                   "--rank", "4", "--lanes", "8", "--build-dir", str(tmp_path / "build"), "--json", str(out),
                   "--require-timing"])
    assert status == 0
    data = json.loads(out.read_text())
    for key in ("luts", "ffs", "dsps", "brams", "fmax_mhz"):
        assert key in data
    assert data["parameters"]["top"] == "csr" and data["parameters"]["rows"] == 64
    assert data["ffs"] >= 32 * 9  # at least the RW registers and counters
    assert data["luts"] > 0 and data["dsps"] == 0
    assert data["fmax_mhz"] >= 100 and data["timing_met"]
    assert "LUTs" in capsys.readouterr().out
    assert (tmp_path / "build" / "yosys.log").exists() and (tmp_path / "build" / "nextpnr.log").exists()


def test_design_registry():
    """``sbpca synth --top csr``: the register bank from its registry entry, its flags only."""
    from pymodel.cli import build_parser

    assert {"engine", "driver", "soc", "csr"} <= set(DESIGNS)
    parser = build_parser()
    args = parser.parse_args(["synth", "--top", "csr", "--rows", "8", "--cols", "6", "--rank", "2",
                              "--fifo-depth", "4"])
    bank, name, parameters = design_build(args)
    bank._MustUse__silence = True  # built to inspect, not to elaborate
    assert name == "sbpca_csr" and bank.fifo_depth == 4
    assert bank.const_values[("DIMS", "COLS")] == 6
    assert parameters["top"] == "csr" and parameters["format_set"] == "q16" and "sub_batch" not in parameters
    with pytest.raises(ValueError, match="--sub-batch is not a parameter of the csr design"):
        design_build(parser.parse_args(["synth", "--top", "csr", "--sub-batch", "4"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["synth", "--rows", "0"])
    with pytest.raises(SystemExit):
        parser.parse_args(["synth", "--top", "gpu"])


def test_abc9_crash_detection(tmp_path):
    from hdl.synth import _abc9_crash

    log = tmp_path / "yosys.log"
    log.write_text("4.46. Executing ABC9 pass.\n...\nERROR: Assert `count_id(wire->name) == 0' failed in rtlil.cc\n")
    assert _abc9_crash(log)
    log.write_text("4.46. Executing ABC9 pass.\n4.50 done\n")
    assert not _abc9_crash(log)
    log.write_text("1. Executing Verilog frontend\nERROR: syntax error, unexpected ';'\n")
    assert not _abc9_crash(log)
    assert not _abc9_crash(tmp_path / "missing.log")


def test_param_overrides():
    """``--param KEY=VALUE``, the old spelling of a design flag, is parsed by that flag's type."""
    from pymodel.cli import build_parser

    assert _param_overrides(["iter_bits=2", "dsp=generic"]) == {"iter_bits": "2", "dsp": "generic"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        _param_overrides(["iter_bits"])
    parser = build_parser()
    eng, _, parameters = design_build(parser.parse_args(
        ["synth", "--top", "engine", "--rows", "6", "--cols", "5", "--rank", "2", "--lanes", "2",
         "--param", "iter_bits=2", "--param", "dsp=generic"]))
    eng._MustUse__silence = True
    assert eng.params.iter_bits == 2 and eng.params.dsp == "generic" and parameters["iter_bits"] == 2
    for bad, message in ((["--param", "ratio=0.5"], "ratio: not a parameter of the engine"),
                         (["--param", "iter_bits=two"], "iter_bits=two"),
                         (["--param", "dsp=xilinx"], "choose one of generic, ecp5"),
                         (["--iter-bits", "2", "--param", "iter_bits=3"], "give it once")):
        with pytest.raises(ValueError, match=message):
            design_build(parser.parse_args(["synth", "--top", "engine", *bad]))


def test_seed_sweep_one_netlist_every_seed(tmp_path):
    """``synthesize_seeds``: Yosys once, nextpnr per seed (two at once), per-seed reports and min/median/max."""
    from hdl.synth import synthesize_seeds

    sweep = synthesize_seeds(MacLanes(lanes=1, width=16, acc_width=40), "mac1", seeds=[1, 2, 3], jobs=2,
                             target="ecp5", device="25k", build_dir=tmp_path, abc9=False)
    assert [r.seed for r in sweep.reports] == [1, 2, 3]
    fmax = [r.fmax_mhz for r in sweep.reports]
    assert all(f and f > 50 for f in fmax)
    s = sweep.summary
    assert s["fmax_mhz"] == {"min": min(fmax), "median": sorted(fmax)[1], "max": max(fmax)}
    assert s["ffs"] == {"min": 104, "median": 104, "max": 104}  # one netlist: the same flip-flops at every seed
    assert s["dsps"]["max"] == 1 and s["logic_levels"]["min"] >= 1
    for seed in (1, 2, 3):  # each seed placed and routed in its own folder, the netlist run once
        assert (tmp_path / f"seed-{seed}" / "report.json").exists()
        assert not (tmp_path / f"seed-{seed}" / "yosys.log").exists()
    assert (tmp_path / "yosys.log").exists()
    d = sweep.to_dict()
    assert d["seeds"] == [1, 2, 3] and len(d["per_seed"]) == 3 and d["per_seed"][0]["critical_path"]["from"]
    table = sweep.table()
    assert table.splitlines()[0].split()[:2] == ["seed", "Fmax"] and "median" in table
    with pytest.raises(ValueError, match="distinct"):
        synthesize_seeds("x.v", "top", seeds=[1, 1], build_dir=tmp_path)
    with pytest.raises(ValueError, match="jobs"):
        synthesize_seeds("x.v", "top", seeds=[1], jobs=0, build_dir=tmp_path)


def test_seed_sweep_keeps_the_seeds_that_finished(tmp_path, monkeypatch):
    """A seed whose place and route fails (here seed 2, made to fail) is listed as failed; the
    other seeds are still reported, and timing is not met "at every seed"."""
    import hdl.synth as synth

    real = synth._place_route

    def flaky(ctx, out_dir, **kw):
        if kw["seed"] == 2:
            raise synth.SynthError("nextpnr-ecp5", "timed out after 1 s")
        return real(ctx, out_dir, **kw)

    monkeypatch.setattr(synth, "_place_route", flaky)
    sweep = synth.synthesize_seeds(MacLanes(lanes=1, width=16, acc_width=40), "mac1", seeds=[1, 2, 3], jobs=2,
                                   target="ecp5", device="25k", build_dir=tmp_path, abc9=False, freq_mhz=25)
    assert [r.seed for r in sweep.reports] == [1, 3] and all(r.timing_met for r in sweep.reports)
    assert sweep.failed == {2: "nextpnr-ecp5 failed: timed out after 1 s"}
    s = sweep.summary
    assert s["seeds_failed"] == [2] and s["timing_met_all"] is False
    assert s["fmax_mhz"]["min"] == min(r.fmax_mhz for r in sweep.reports)
    assert sweep.to_dict()["failed"] == [{"seed": 2, "error": "nextpnr-ecp5 failed: timed out after 1 s"}]
    row = [line for line in sweep.table().splitlines() if line.startswith("2 ")]
    assert row and "failed" in row[0] and "timed out" in row[0]

    monkeypatch.setattr(synth, "_place_route", lambda ctx, out_dir, **kw: flaky(ctx, out_dir, **{**kw, "seed": 2}))
    with pytest.raises(synth.SynthError, match="at every seed: seed 1: nextpnr-ecp5 failed"):
        synth.synthesize_seeds(MacLanes(lanes=1, width=16, acc_width=40), "mac1", seeds=[1, 2], jobs=1,
                               target="ecp5", device="25k", build_dir=tmp_path / "all", abc9=False)


def test_synth_command_seed_options(capsys):
    assert main(["synth", "--top", "csr", "--seeds", "1,2", "--pnr-seed", "3"]) == 2
    assert "either --pnr-seed or --seeds" in capsys.readouterr().err
    for bad in ("1,x", "1,1", "-1"):
        with pytest.raises(SystemExit):
            main(["synth", "--top", "csr", "--seeds", bad])


def test_synth_command_timeout(tmp_path, capsys):
    """``--timeout`` (minutes) reaches every tool step: a step over it fails with its name."""
    assert main(["synth", "--top", "csr", "--timeout", "0"]) == 2
    assert "--timeout must be a positive number of minutes" in capsys.readouterr().err
    assert main(["synth", "--top", "csr", "--timeout", "0.001", "--build-dir", str(tmp_path)]) == 1
    assert "ran longer than" in capsys.readouterr().err
