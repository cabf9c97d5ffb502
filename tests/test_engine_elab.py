"""Engine elaboration, parameter checks, manifest, the gen command, the job program, and the
shared RTL arithmetic (Amaranth simulation against the golden integer kernels)."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from hdl.arith import ISqrt, RoundDivider, requant
from hdl.engine import SBPCAEngine, engine_manifest, initial_state
from hdl.engine_params import (
    GEN_NEW, GEN_PREV, OP_ACC, OP_GS, OP_PROJ, OP_SCALE, EngineParams, _cross_deps, _job_graph, build_program,
    build_schedule, model_program, model_steady,
)
from pymodel.cli import main
from pymodel.fixedpoint import Fmt, Overflow, Rounding, SatFlags, div_round_int, requantize
from pymodel.formats import FORMAT_SETS


# ---------------------------------------------------------------------- parameters
@pytest.mark.parametrize("kw, name, allowed", [
    (dict(rank=6), "rank", "1..5"),
    (dict(rank=0), "rank", "1..5"),
    (dict(lanes=0), "lanes", "1..6"),
    (dict(lanes=7), "lanes", "1..6"),
    (dict(sub_batch=0), "sub_batch", "1..4096"),
    (dict(rows=0), "rows", "1..4096"),
    (dict(max_batch=0), "max_batch", "1.."),
    (dict(iter_bits=9), "iter_bits", "1..8"),
    (dict(tree_levels_per_stage=0), "tree_levels_per_stage", "1..8"),
])
def test_illegal_parameters_name_the_parameter_and_range(kw, name, allowed):
    base = dict(rows=6, cols=5, rank=2, sub_batch=4, lanes=1)
    with pytest.raises(ValueError) as err:
        EngineParams(**{**base, **kw})
    assert name in str(err.value) and allowed in str(err.value)


def test_parameter_types_and_formats_are_checked():
    with pytest.raises(TypeError, match="rank"):
        EngineParams(rows=6, cols=5, rank=2.0, sub_batch=4)
    with pytest.raises(TypeError, match="rows"):
        EngineParams(rows=True, cols=5, rank=1, sub_batch=4)
    with pytest.raises(ValueError, match="unknown format set"):
        EngineParams(rows=6, cols=5, rank=2, sub_batch=4, formats="q99")
    bad = replace(FORMAT_SETS["q16"], name="bad", mat=Fmt(24, 18, Rounding.HALF_EVEN, Overflow.ERROR))
    with pytest.raises(ValueError, match="'mat'.*allowed: saturate, wrap"):
        EngineParams(rows=6, cols=5, rank=2, sub_batch=4, formats=bad)
    wrap_inv = replace(FORMAT_SETS["q16"], name="w", inv=Fmt(32, 24, Rounding.HALF_EVEN, Overflow.WRAP))
    with pytest.raises(ValueError, match="'inv'.*must saturate"):
        EngineParams(rows=6, cols=5, rank=2, sub_batch=4, formats=wrap_inv)
    with pytest.raises(TypeError, match="EngineParams"):
        SBPCAEngine({"rows": 6})


def test_initial_state_checks():
    p = EngineParams(rows=6, cols=5, rank=2, sub_batch=4)
    X, D, s = initial_state(p, seed=3)
    assert X.shape == (5, 2) and D.shape == (6, 2) and s.shape == (2,)
    with pytest.raises(ValueError, match="init X has shape"):
        initial_state(p, (X.T, D, s))
    with pytest.raises(TypeError, match="integer"):
        initial_state(p, (X.astype(float), D, s))
    with pytest.raises(ValueError, match="out of range"):
        initial_state(p, (X, D, np.array([1 << 40, 0])))


# ---------------------------------------------------------------------- program / schedule
@pytest.mark.parametrize("cfg", [(6, 5, 1, 4, 1), (8, 6, 4, 4, 2), (64, 64, 4, 32, 8), (10, 65, 3, 8, 4)])
def test_program_is_a_complete_topological_order(cfg):
    p = EngineParams(*cfg)
    prog = build_program(p)
    graph = _job_graph(p, p.sub_batch)
    assert sorted(map(str, prog)) == sorted(map(str, graph))
    assert len(prog) == p.rank ** 2 + 5 * p.rank  # 2k PROJ, 2k ACC, k(k-1) GS, 2k SCALE
    seen = set()
    for job in prog:
        for dep, _ in graph[job][1]:
            assert dep in seen, f"{job} placed before its dependency {dep}"
        seen.add(job)
    kinds = {j.op for j in prog}
    assert kinds == ({OP_PROJ, OP_ACC, OP_SCALE} | ({OP_GS} if p.rank > 1 else set()))


@pytest.mark.parametrize("cfg,goal", [((64, 64, 4, 32, 8), 0.95), ((10, 65, 4, 16, 4), 0.85)])
def test_schedule_model_meets_the_throughput_goal_for_the_benchmark(cfg, goal):
    p = EngineParams(*cfg)
    sched = build_schedule(p)
    assert p.bound_cycles_per_sample * p.sub_batch / sched.period >= goal
    # two sub-batches in flight beat one at a time (the empty tail: each program alone)
    assert sched.period < model_steady(p, [])[0]
    assert sched.period == model_steady(p, sched.tail)[0]
    # every job once per program: the new sub-batch's head and the previous one's tail
    assert sorted(map(str, sched.jobs(0) + sched.jobs(1))) == sorted(map(str, build_program(p)))
    # a naive order (all of pass 1, then each column's MGS in turn, then pass 2 ...) is worse
    naive = sorted(build_program(p), key=lambda j: (j.mat, j.op != OP_PROJ, j.col,
                                                    {OP_PROJ: 0, OP_ACC: 0, OP_GS: 1, OP_SCALE: 2}[j.op], j.step))
    assert model_program(p, naive) > model_program(p, build_program(p))


@pytest.mark.parametrize("cfg", [(6, 5, 1, 4, 1), (8, 6, 4, 4, 2), (64, 64, 4, 32, 8), (10, 65, 3, 8, 4)])
def test_schedule_orders_shared_resources_between_sub_batches(cfg):
    """In the program of two sub-batches, each job follows what it needs of its own
    sub-batch and every older-sub-batch job it must follow (``_cross_deps``)."""
    p = EngineParams(*cfg)
    sched = build_schedule(p)
    graph, cross = _job_graph(p, p.sub_batch), _cross_deps(p)
    seen = set()
    for job, gen in sched.entries:
        for dep, _ in graph[job][1]:
            if (gen == GEN_NEW) == (dep not in sched.tail):  # the same program holds it
                assert (dep, gen) in seen, f"{job} before {dep} of its own sub-batch"
        if gen == GEN_NEW:
            for dep, _ in cross.get(job, []):
                if dep in sched.tail:
                    assert (dep, GEN_PREV) in seen, f"{job} before {dep} of the previous sub-batch"
        seen.add((job, gen))
    assert all(j in sched.tail for j, g in sched.entries if g == GEN_PREV)


# ---------------------------------------------------------------------- elaboration, manifest, gen
def test_manifest_ports_and_payloads():
    p = EngineParams(rows=6, cols=5, rank=2, sub_batch=4, lanes=2, formats="q12")
    man = engine_manifest(p)
    ports = {q["name"]: q for q in man["ports"]}
    assert ports["x__payload"]["width"] == 2 * 12 + 1 and ports["x__payload"]["direction"] == "input"
    assert ports["d__payload"]["width"] == 2 * 12
    assert ports["x__ready"]["direction"] == "output" and ports["factors__ready"]["direction"] == "input"
    assert ports["sigma"]["width"] == 2 * 32
    fields = {f["name"]: f for f in man["payloads"]["factors"]["fields"]}
    assert fields["data"]["elements"] == 2 and fields["data"]["element_width"] == 12
    assert man["payloads"]["load"] == man["payloads"]["trace"]
    assert man["bound_cycles_per_sample"] == pytest.approx(2 * 2 * 11 / 2)
    assert man["chunks"] == {"x": 3, "d": 3}
    assert list(man["status_sat_bits"])[:2] == ["q", "A"]
    json.dumps(man)  # serialisable


def test_gen_engine_command_writes_verilog_and_manifest(tmp_path, capsys):
    out = tmp_path / "eng"
    assert main(["gen", "engine", "--rows", "7", "--cols", "5", "--rank", "2", "--sub-batch", "3",
                 "--lanes", "2", "--format-set", "q8", "-o", str(out)]) == 0
    text = (out / "sbpca_engine.v").read_text()
    assert "module sbpca_engine" in text and "x__payload" in text
    man = json.loads((out / "sbpca_engine.json").read_text())
    assert man["params"]["rows"] == 7 and man["params"]["formats"]["name"] == "q8"
    assert "wrote" in capsys.readouterr().out
    assert main(["gen", "engine", "--rows", "2", "--cols", "5", "--rank", "3", "--sub-batch", "3",
                 "-o", str(out)]) == 2  # rank > min(a, b): clear error, non-zero status
    assert "rank" in capsys.readouterr().err


def test_synth_builds_the_engine_from_its_registry_entry():
    from hdl.commands.synth import design_build
    from pymodel.cli import build_parser

    argv = ["synth", "--top", "engine", "--rows", "6", "--cols", "5", "--rank", "2", "--sub-batch", "4",
            "--lanes", "2", "--format", "q8"]  # --format: the old spelling of --format-set
    comp, name, parameters = design_build(build_parser().parse_args(argv))
    comp._MustUse__silence = True
    assert name == "sbpca_engine" and comp.params.fmts.name == "q8" and parameters["format_set"] == "q8"
    assert comp.params.dsp == "ecp5"  # --target ecp5 (the default) picks the MULT18X18D tiles
    comp, _, _ = design_build(build_parser().parse_args([*argv, "--dsp", "generic"]))
    comp._MustUse__silence = True
    assert comp.params.dsp == "generic"


# ---------------------------------------------------------------------- RTL arithmetic
def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("bpc", [1, 2, 3])
def test_round_divider_matches_div_round(bpc):
    rng = random.Random(bpc)
    qb = 9
    cases = [(rng.randrange(1 << 20), rng.randrange(1, 1 << 12)) for _ in range(150)]
    cases += [(rng.randrange(1 << 12), rng.randrange(1 << 11, 1 << 12)) for _ in range(50)]  # small quotients
    cases += [(0, 7), (7, 2), (3, 2), (5, 0), ((1 << 19), 1), (255, 1)]
    dut = RoundDivider(num_width=20, den_width=12, quot_bits=qb, bits_per_cycle=bpc)
    out = []

    async def bench(ctx):
        for n, d in cases:
            ctx.set(dut.num, n)
            ctx.set(dut.den, d)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            cycles = 1
            while not ctx.get(dut.done):
                await ctx.tick()
                cycles += 1
            assert cycles <= dut.steps + 3
            out.append((ctx.get(dut.quotient), ctx.get(dut.overflow)))

    _run(dut, bench)
    for (n, d), (q, ov) in zip(cases, out):
        if d == 0 or (2 * n) // d >= 1 << qb:
            assert ov, (n, d)
        else:
            assert not ov and q == div_round_int(n, d), (n, d, q)


@pytest.mark.parametrize("width, bpc", [(13, 1), (13, 2), (20, 3), (65, 2)])
def test_isqrt_matches_math_isqrt(width, bpc):
    rng = random.Random(width)
    vals = [rng.randrange(1 << width) for _ in range(25)] + [0, 1, 2, 3, 4, (1 << width) - 1]
    dut = ISqrt(width=width, bits_per_cycle=bpc)
    out = []

    async def bench(ctx):
        for v in vals:
            ctx.set(dut.value, v)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            while not ctx.get(dut.done):
                await ctx.tick()
            out.append(ctx.get(dut.root))

    _run(dut, bench)
    assert out == [math.isqrt(v) for v in vals]


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("overflow", [Overflow.SATURATE, Overflow.WRAP])
def test_requant_matches_golden_requantize(rounding, overflow):
    fmt = Fmt(8, 3, rounding, overflow)
    vals = list(range(-8192, 8192, 5))
    for from_frac in (7, 3, 1):
        v, o, s = Signal(signed(14)), Signal(signed(8)), Signal()
        m = Module()
        r, sat = requant(v, from_frac, fmt)
        m.d.comb += [o.eq(r), s.eq(sat)]
        got = []

        async def bench(ctx):
            for x in vals:
                ctx.set(v, x)
                got.append((ctx.get(o), ctx.get(s)))

        sim = Simulator(m)
        sim.add_testbench(bench)
        sim.run()
        for x, (y, sf) in zip(vals, got):
            flags = SatFlags()
            want = int(requantize(np.int64(x), from_frac, fmt, "v", flags))
            assert (y, bool(sf)) == (want, flags.any), (from_frac, x)


@pytest.mark.parametrize("shape, values", [(signed(9), range(-256, 256)), (unsigned(9), range(512)),
                                           (unsigned(5), range(32))])
@pytest.mark.parametrize("overflow", [Overflow.SATURATE, Overflow.WRAP])
def test_fit_matches_golden_fit(shape, values, overflow):
    from hdl.arith import fit
    from pymodel.fixedpoint import fit as golden_fit

    fmt = Fmt(6, 2, overflow=overflow)
    v, o, s = Signal(shape), Signal(signed(6)), Signal()
    m = Module()
    r, sat = fit(v, fmt)
    m.d.comb += [o.eq(r), s.eq(sat)]
    got = []

    async def bench(ctx):
        for x in values:
            ctx.set(v, x)
            got.append((ctx.get(o), ctx.get(s)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    for x, (y, sf) in zip(values, got):
        flags = SatFlags()
        want = int(golden_fit(np.int64(x), fmt, "v", flags))
        assert (y, bool(sf)) == (want, flags.any), x
