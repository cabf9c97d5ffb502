"""The design registry (``hdl.designs``): each design once, the same flags in gen, cosim and synth."""

from __future__ import annotations

import argparse
import json

import pytest
from amaranth.back import rtlil

from hdl.commands.synth import synth_values
from hdl.designs import DESIGNS, FLAGS, design_values, flag_text
from pymodel.cli import build_parser, main
from testbench.commands.cosim import RUNNERS

#: A value other than the default for every flag of the vocabulary (as typed on a command line).
SAMPLE = {
    "rows": "7", "cols": "6", "rank": "3", "sub_batch": "5", "lanes": "2", "format_set": "q8",
    "data_bits": "10", "max_batch": "1000", "iter_bits": "2", "tree_levels_per_stage": "2", "dsp": "ecp5",
    "scheme": "deterministic", "bl_max": "9", "prob_bits": "10", "lfsr_width": "8", "lfsr_taps": "8,6,5,4",
    "lfsr_leap": "9", "level_bits": "3", "fifo_depth": "8", "seed": "5", "driver_seed": "3",
}
SMALL = {"rows": "6", "cols": "5", "rank": "2", "sub_batch": "3", "lanes": "2"}


def _argv(design, values: dict[str, str]) -> list[str]:
    out = []
    for dest, text in values.items():
        if dest in design.flags:
            out += [FLAGS[dest].option, text]
    return out


def _commands(name: str) -> dict[str, list[str]]:
    """The command-line prefix of each command that builds design ``name``."""
    cmds = {"gen": ["gen", name, "-o", "unused"], "synth": ["synth", "--top", name]}
    if name in RUNNERS:
        cmds["cosim"] = ["cosim", name]
    return cmds


def test_vocabulary_covers_every_flag_once():
    assert set(SAMPLE) == set(FLAGS)
    for design in DESIGNS.values():
        options = design.options()
        assert len(options) == len(set(options)), design.name


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_design_builds_from_gen_defaults_and_elaborates(name):
    """Defaults of ``sbpca gen NAME`` are a valid design; a small one elaborates (no Yosys)."""
    design = DESIGNS[name]
    parser = build_parser()
    values = design_values(design, parser.parse_args(["gen", name, "-o", "unused"]))
    assert vars(values) == {d: FLAGS[d].default for d in design.flags}
    design.params(values)  # the reference point is a valid parameter set
    args = parser.parse_args(["gen", name, "-o", "unused", *_argv(design, SMALL)])
    values = design_values(design, args)
    params = design.params(values)
    comp = design.component(params, values)
    man = design.manifest(comp, params, values, design.verilog_name)
    assert man["top"] == design.verilog_name and man["ports"]
    json.dumps(man)
    text = rtlil.convert(comp, name=design.verilog_name)
    assert f"module \\{design.verilog_name}" in text
    assert design.summary(params)


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_gen_cosim_and_synth_parse_the_same_flags(name):
    """Every flag of the design, at a non-default value, means the same in each command."""
    design = DESIGNS[name]
    parser = build_parser()
    argv = _argv(design, SAMPLE)
    got = {}
    for cmd, prefix in _commands(name).items():
        got[cmd] = vars(design_values(design, parser.parse_args([*prefix, *argv])))
    first = next(iter(got.values()))
    assert all(v == first for v in got.values()), got
    assert all(first[d] != FLAGS[d].default for d in design.flags)
    # the old spellings give the same values
    if "format_set" in design.flags:
        for cmd, prefix in _commands(name).items():
            old = design_values(design, parser.parse_args([*prefix, "--format", "q8"]))
            assert old.format_set == "q8", cmd
    # and the reproduce text parses back to the same values
    text = flag_text(design, argparse.Namespace(**first))
    again = design_values(design, parser.parse_args([*_commands(name)["synth"], *text.split()]))
    assert vars(again) == first


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_unknown_flags_and_bad_values_fail_naming_them(name, capsys, tmp_path):
    design = DESIGNS[name]
    parser = build_parser()
    for cmd, prefix in _commands(name).items():
        with pytest.raises(SystemExit):
            parser.parse_args([*prefix, "--no-such-flag", "1"])
        assert "--no-such-flag" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            parser.parse_args([*prefix, "--rows", "0"])
        assert "--rows" in capsys.readouterr().err
        with pytest.raises(SystemExit):  # no abbreviations: a flag is spelled the same everywhere
            parser.parse_args([*prefix, "--row", "8"])
        capsys.readouterr()
    # a flag of another design: argparse refuses it in gen/cosim, synth names it and the design
    foreign = next(f for f in FLAGS.values() if f.dest not in design.flags)
    with pytest.raises(ValueError, match=f"{foreign.option} is not a parameter of the {name} design"):
        synth_values(parser.parse_args(["synth", "--top", name, foreign.option, SAMPLE[foreign.dest]]))
    # a value the parameter dataclass refuses: exit status 2 and the parameter's name
    assert main(["gen", name, "-o", str(tmp_path), "--rows", "3", "--cols", "3", *(
        ["--rank", "9"] if "rank" in design.flags else ["--bl-max", "99999"])]) == 2
    err = capsys.readouterr().err
    assert ("rank" if "rank" in design.flags else "bl_max") in err and "error" in err


def test_synth_soc_seed_is_the_state_seed_and_driver_seed_the_lfsr():
    parser = build_parser()
    design, values = synth_values(parser.parse_args(
        ["synth", "--top", "soc", "--rows", "6", "--cols", "5", "--rank", "2", "--lanes", "2", "--seed", "4",
         "--driver-seed", "7"]))
    params = design.params(values)
    assert design.verilog_name == "sbpca_soc" and params.driver.seed == 7 and values.seed == 4
    assert params.engine.dsp == "ecp5"  # --target ecp5
    with pytest.raises(ValueError, match="--bl is not a parameter of the soc design; did you mean --bl-max"):
        synth_values(parser.parse_args(["synth", "--top", "soc", "--bl", "4"]))
