"""Register map declaration, its generated files, and the Wishbone bank it generates (Amaranth sim)."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from hdl.csr import CsrBank, wishbone_signature
from hdl.regmap import (
    C_HEADER_PATH,
    MARKDOWN_PATH,
    REGS,
    Access,
    Field,
    Register,
    RegisterMap,
    build_constants,
)
from pymodel.formats import get_format_set

# Banks built only to check their constructor or ports are never elaborated; Amaranth
# warns about them when they are garbage-collected (whichever test is running then).
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


# ----------------------------------------------------------------------------- declaration
def test_generated_files_are_committed_and_current():
    assert C_HEADER_PATH.read_text() == REGS.to_c_header(), \
        "firmware/sbpca_regs.h is stale: run `python -m hdl.regmap`"
    assert MARKDOWN_PATH.read_text() == REGS.to_markdown(), \
        "docs/REGISTERS.md is stale: run `python -m hdl.regmap`"


def test_issue_registers_present():
    for reg, fields in {
        "DIMS": ("ROWS", "COLS"), "PARAMS": ("RANK", "LANES"),
        "CTRL": ("START_BATCH", "END_BATCH", "APPLY_UPDATE", "SOFT_RESET", "READ_SIGMA", "READ_FACTORS"),
        "STATUS": ("BUSY", "DONE"), "ERRORS": ("SATURATION", "SIGMA_GUARD", "PROTOCOL"),
        "BATCH_SIZE": ("SAMPLES",), "SUB_BATCH": ("SAMPLES",), "UPDATE_CFG": ("SCHEME", "BL"),
        "LR_SCALE": ("VALUE",), "SAMPLES": ("COUNT",), "SUB_BATCHES": ("COUNT",), "CYCLES": ("COUNT",),
        "SAMPLE_DATA": ("WORD",), "FACTOR_DATA": ("WORD",),
    }.items():
        for f in fields:
            assert REGS[reg][f].name == f
    assert REGS.CTRL.START_BATCH.access is Access.W1S
    assert REGS.ERRORS.SIGMA_GUARD.access is Access.W1C
    assert REGS.CYCLES.COUNT.access is Access.CNT


def test_formats_come_from_pymodel():
    fmt = get_format_set("q16")
    assert REGS.FORMAT_IN.X_BITS.reset == fmt.x.bits
    assert REGS.FORMAT_IN.DELTA_FRAC.reset == fmt.delta.frac
    assert REGS.FORMAT_OUT.SIGMA_FRAC.reset == fmt.sigma.frac
    consts = build_constants(rows=10, cols=12, rank=3, formats="q8")
    q8 = get_format_set("q8")
    assert consts["FORMAT_IN_X_BITS"] == q8.x.bits and consts["DIMS_COLS"] == 12


def test_layout_is_sane():
    offsets = [r.offset for r in REGS]
    assert offsets == sorted(set(offsets))
    assert all(o % 4 == 0 and o < REGS.window_bytes for o in offsets)
    for reg in REGS:
        used = 0
        for f in reg.fields:
            assert not used & f.mask, f"{reg.name}.{f.name} overlaps"
            used |= f.mask
    assert REGS.addr_width == 6


def test_pack_unpack_roundtrip():
    word = REGS.UPDATE_CFG.pack(SCHEME=1, MANAGE=1, BL=200)
    assert word == 1 | (1 << 2) | (200 << 8)
    assert REGS.UPDATE_CFG.unpack(word) == {"SCHEME": 1, "MANAGE": 1, "BL": 200}
    with pytest.raises(ValueError, match="does not fit field SCHEME"):
        REGS.UPDATE_CFG.pack(SCHEME=4)
    with pytest.raises(KeyError, match="no field 'NOPE'"):
        REGS.UPDATE_CFG.pack(NOPE=1)
    with pytest.raises(AttributeError, match="no register 'NOPE'"):
        REGS.NOPE  # noqa: B018


@pytest.mark.parametrize("make, message", [
    (lambda: Field("bad", 0, 1, Access.RW), "UPPER_CASE"),
    (lambda: Field("A", 30, 4, Access.RW), "does not fit 32 bits"),
    (lambda: Field("A", 0, 2, Access.RW, reset=4), "reset 0x4 does not fit"),
    (lambda: Field("A", 0, 4, Access.FIFO_SPACE), "needs ref="),
    (lambda: Register("R", 2, (Field("A", 0, 1, Access.RW),)), "multiple of 4"),
    (lambda: Register("R", 0, (Field("A", 0, 4, Access.RW), Field("B", 3, 2, Access.RW))), "overlaps"),
    (lambda: Register("R", 0, ()), "no fields"),
    (lambda: Register("R", 0, (Field("A", 0, 32, Access.FIFO_W), Field("B", 0, 1, Access.RW))), "overlaps|only field"),
    (lambda: RegisterMap("m", (Register("A", 0, (Field("X", 0, 1, Access.RW),)),
                               Register("B", 0, (Field("X", 0, 1, Access.RW),)))), "already used"),
    (lambda: RegisterMap("m", (Register("A", 0x100, (Field("X", 0, 1, Access.RW),)),)), "outside"),
    (lambda: RegisterMap("m", (Register("A", 0, (Field("L", 0, 8, Access.FIFO_LEVEL, ref="NOPE"),)),)),
     "must name a fifo_r register"),
    (lambda: RegisterMap("m", (Register("A", 0, (Field("X", 0, 1, Access.RW),)),), fifo_flush=("A", "X")),
     "W1S field"),
])
def test_bad_declarations_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_build_constants_validates():
    with pytest.raises(ValueError, match="rows must be a positive integer"):
        build_constants(rows=0, cols=4, rank=1)
    with pytest.raises(TypeError, match="cols must be an integer"):
        build_constants(rows=4, cols=4.0, rank=1)
    with pytest.raises(ValueError, match="does not fit field ROWS"):
        build_constants(rows=1 << 16, cols=4, rank=1)
    with pytest.raises(ValueError, match="unknown constant"):
        REGS.const_values(DIMS_NOPE=3)


def test_c_macro_collisions_are_detected():
    m = RegisterMap("m", (Register("A_B", 0, (Field("C", 0, 1, Access.RW),)),
                          Register("A", 4, (Field("B_C", 0, 1, Access.RW),))), prefix="P")
    with pytest.raises(ValueError, match="duplicate C macro"):
        m.to_c_header()


# ----------------------------------------------------------------------------- the bank, simulated
def test_bank_parameters_are_checked():
    with pytest.raises(TypeError, match="regmap must be a RegisterMap"):
        CsrBank("REGS")
    with pytest.raises(ValueError, match="fifo_depth must be in"):
        CsrBank(fifo_depth=0)
    with pytest.raises(ValueError, match="contradicts"):
        CsrBank(constants={"PARAMS_FIFO_DEPTH": 4}, fifo_depth=8)
    with pytest.raises(ValueError, match="addr_width"):
        wishbone_signature(0)
    bank = CsrBank(fifo_depth=4)
    assert bank.const_values[("PARAMS", "FIFO_DEPTH")] == 4
    assert bank.port("CTRL", "START_BATCH") is bank.ctrl.start_batch
    assert bank.port("ERRORS", "SATURATION", "_set") is bank.errors.saturation_set
    with pytest.raises(ValueError, match="no SoC-facing ports"):
        bank.port("ID", "MAGIC")


class _Bus:
    """Wishbone pipelined initiator for Amaranth testbenches (post-edge sampling)."""

    def __init__(self, ctx, bus) -> None:
        self.ctx, self.bus = ctx, bus

    async def burst(self, addr: int, values: list[int | None], sel: int = 0xF) -> tuple[list[int], int]:
        """One request per cycle (None: a read) at one address; (data of each ack, cycles with cyc high)."""
        ctx, bus = self.ctx, self.bus
        ctx.set(bus.cyc, 1)
        acks: list[int] = []
        cycles = 0
        for value in values:
            ctx.set(bus.adr, addr >> 2)
            ctx.set(bus.we, int(value is not None))
            ctx.set(bus.dat_w, value or 0)
            ctx.set(bus.sel, sel)
            ctx.set(bus.stb, 1)
            assert not ctx.get(bus.stall), "the bank never stalls"
            await ctx.tick()
            cycles += 1
            if ctx.get(bus.ack):
                acks.append(ctx.get(bus.dat_r))
        ctx.set(bus.stb, 0)
        while len(acks) < len(values):
            if cycles > len(values) + 4:
                raise AssertionError(f"{len(values) - len(acks)} requests at {addr:#x} without ack")
            await ctx.tick()
            cycles += 1
            if ctx.get(bus.ack):
                acks.append(ctx.get(bus.dat_r))
        ctx.set(bus.cyc, 0)
        return acks, cycles

    async def access(self, addr: int, value: int | None = None, sel: int = 0xF) -> tuple[int, int]:
        acks, cycles = await self.burst(addr, [value], sel)
        return acks[0], cycles

    async def read(self, addr: int) -> int:
        return (await self.access(addr))[0]

    async def write(self, addr: int, value: int, sel: int = 0xF) -> None:
        await self.access(addr, value, sel)


def _simulate(bank: CsrBank, bench) -> None:
    sim = Simulator(bank)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_bank_register_semantics():
    consts = build_constants(rows=9, cols=7, rank=3, lanes=2, fifo_depth=4)
    bank = CsrBank(constants=consts, fifo_depth=4)
    seen = {}

    async def bench(ctx):
        wb = _Bus(ctx, bank.bus)
        # constants and reset values
        assert await wb.read(REGS.ID.offset) == REGS.ID.reset
        assert REGS.DIMS.unpack(await wb.read(REGS.DIMS.offset)) == {"ROWS": 9, "COLS": 7}
        assert REGS.PARAMS.unpack(await wb.read(REGS.PARAMS.offset)) == {"RANK": 3, "LANES": 2, "FIFO_DEPTH": 4}
        for reg in (REGS.BATCH_SIZE, REGS.SUB_BATCH, REGS.UPDATE_CFG, REGS.LR_SCALE, REGS.SEED):
            assert await wb.read(reg.offset) == reg.reset, reg.name
        # RW with byte lanes; constants ignore writes
        await wb.write(REGS.LR_SCALE.offset, 0xAABBCCDD)
        await wb.write(REGS.LR_SCALE.offset, 0x11223344, sel=0b0101)
        assert await wb.read(REGS.LR_SCALE.offset) == 0xAA22CC44
        assert ctx.get(bank.lr_scale.value) == 0xAA22CC44
        await wb.write(REGS.DIMS.offset, 0)
        assert REGS.DIMS.ROWS.get(await wb.read(REGS.DIMS.offset)) == 9
        # W1S: a pulse of exactly one cycle, CTRL reads 0
        await wb.write(REGS.CTRL.offset, REGS.CTRL.pack(START_BATCH=1, END_BATCH=1))
        seen["pulse_after_ack"] = (ctx.get(bank.ctrl.start_batch), ctx.get(bank.ctrl.end_batch))
        await ctx.tick()
        seen["pulse_next"] = ctx.get(bank.ctrl.start_batch)
        assert await wb.read(REGS.CTRL.offset) == 0
        # RO inputs
        ctx.set(bank.status.busy, 1)
        ctx.set(bank.status.upd_done, 1)
        ctx.set(bank.status.engine_error, 1)
        assert REGS.STATUS.unpack(await wb.read(REGS.STATUS.offset)) == {
            "BUSY": 1, "DONE": 0, "UPD_BUSY": 0, "UPD_DONE": 1, "ENGINE_ERROR": 1, "STATE_VALID": 0}
        ctx.set(bank.status.engine_error, 0)
        # W1C: sticky, write-1-to-clear, only the written bits
        ctx.set(bank.errors.sigma_guard_set, 1)
        ctx.set(bank.errors.degenerate_set, 1)
        await ctx.tick()
        ctx.set(bank.errors.sigma_guard_set, 0)
        ctx.set(bank.errors.degenerate_set, 0)
        await ctx.tick()
        both = REGS.ERRORS.SIGMA_GUARD.mask | REGS.ERRORS.DEGENERATE.mask
        assert await wb.read(REGS.ERRORS.offset) == both
        assert ctx.get(bank.errors.sigma_guard) == 1
        await wb.write(REGS.ERRORS.offset, REGS.ERRORS.SIGMA_GUARD.mask)
        assert await wb.read(REGS.ERRORS.offset) == REGS.ERRORS.DEGENERATE.mask
        # a set strobe in the same cycle as the clearing write wins
        ctx.set(bank.errors.degenerate_set, 1)
        await wb.write(REGS.ERRORS.offset, REGS.ERRORS.DEGENERATE.mask)
        ctx.set(bank.errors.degenerate_set, 0)
        assert await wb.read(REGS.ERRORS.offset) == REGS.ERRORS.DEGENERATE.mask
        await wb.write(REGS.ERRORS.offset, 0xFFFFFFFF)
        # counters: strobes count, writes load
        ctx.set(bank.samples.count_inc, 1)
        for _ in range(3):
            await ctx.tick()
        ctx.set(bank.samples.count_inc, 0)
        assert await wb.read(REGS.SAMPLES.offset) == 3
        await wb.write(REGS.SAMPLES.offset, 0xFFFFFFFF)
        ctx.set(bank.samples.count_inc, 1)
        await ctx.tick()
        ctx.set(bank.samples.count_inc, 0)
        assert await wb.read(REGS.SAMPLES.offset) == 0  # wraps
        # unmapped: read 0, BUS_ERROR
        assert await wb.read(0xFC) == 0
        assert await wb.read(REGS.ERRORS.offset) == REGS.ERRORS.BUS_ERROR.mask

    _simulate(bank, bench)
    assert seen["pulse_after_ack"] == (1, 1)
    assert seen["pulse_next"] == 0


def test_bank_fifo_windows():
    depth = 4
    bank = CsrBank(fifo_depth=depth)

    async def bench(ctx):
        wb = _Bus(ctx, bank.bus)
        status = lambda w: REGS.FIFO_STATUS.unpack(w)  # noqa: E731
        assert status(await wb.read(REGS.FIFO_STATUS.offset)) == {"SAMPLE_SPACE": depth, "FACTOR_LEVEL": 0}
        # a pipelined burst: one push per cycle, each request acked in the next cycle, pushed once
        acks, cycles = await wb.burst(REGS.SAMPLE_DATA.offset, [0xF0000000 | i for i in range(depth)])
        assert (len(acks), cycles) == (depth, depth), f"{len(acks)} acks in {cycles} cycles"
        assert status(await wb.read(REGS.FIFO_STATUS.offset))["SAMPLE_SPACE"] == 0
        assert await wb.read(REGS.ERRORS.offset) == 0
        await wb.write(REGS.SAMPLE_DATA.offset, 0xDEAD)  # full: dropped, flagged
        assert await wb.read(REGS.ERRORS.offset) == REGS.ERRORS.SAMPLE_OVERFLOW.mask
        # the stream side delivers the words in order
        got = []
        ctx.set(bank.sample_data.ready, 1)
        for _ in range(3 * depth):
            if ctx.get(bank.sample_data.valid):
                got.append(ctx.get(bank.sample_data.payload))
            await ctx.tick()
        ctx.set(bank.sample_data.ready, 0)
        assert got == [0xF0000000 | i for i in range(depth)]
        # factor window: the stream side pushes, each read pops one word
        for i in range(depth + 2):
            ctx.set(bank.factor_data.payload, 100 + i)
            ctx.set(bank.factor_data.valid, 1)
            await ctx.tick()
        ctx.set(bank.factor_data.valid, 0)
        assert status(await wb.read(REGS.FIFO_STATUS.offset))["FACTOR_LEVEL"] == depth
        words, cycles = await wb.burst(REGS.FACTOR_DATA.offset, [None] * depth)  # one pop per cycle
        assert words == [100 + i for i in range(depth)] and cycles == depth
        await wb.write(REGS.ERRORS.offset, 0xFFFFFFFF)
        assert await wb.read(REGS.FACTOR_DATA.offset) == 0  # empty
        assert await wb.read(REGS.ERRORS.offset) == REGS.ERRORS.FACTOR_UNDERFLOW.mask
        # SOFT_RESET flushes
        for i in range(2):
            await wb.write(REGS.SAMPLE_DATA.offset, i)
        assert status(await wb.read(REGS.FIFO_STATUS.offset))["SAMPLE_SPACE"] == depth - 2
        await wb.write(REGS.CTRL.offset, REGS.CTRL.pack(SOFT_RESET=1))
        await ctx.tick()
        assert status(await wb.read(REGS.FIFO_STATUS.offset))["SAMPLE_SPACE"] == depth

    _simulate(bank, bench)


def test_saturation_stage_names_declared_once():
    """Kernel, engine parameters, engine manifest, register map, header and docs: one list, one order."""
    import re

    from hdl.engine import engine_manifest
    from hdl.engine_params import SAT_NAMES as HDL_NAMES
    from hdl.engine_params import EngineParams
    from pymodel.kernels import sbpca as kernel
    from pymodel.saturation import SAT_NAMES

    assert HDL_NAMES is SAT_NAMES and kernel.SAT_NAMES is SAT_NAMES
    indices = [kernel.S_Q, kernel.S_A, kernel.S_RECIP, kernel.S_MUPD, kernel.S_M, kernel.S_X_GSH, kernel.S_X_GSV,
               kernel.S_X_INV, kernel.S_X_Q, kernel.S_P, kernel.S_D, kernel.S_D_GSH, kernel.S_D_GSV,
               kernel.S_D_INV, kernel.S_D_Q, kernel.S_S, kernel.S_SIGMA]
    assert indices == list(range(len(SAT_NAMES)))  # every stage counted, each at its status bit
    man = engine_manifest(EngineParams(rows=4, cols=3, rank=2, sub_batch=2))
    assert list(man["status_sat_bits"]) == list(SAT_NAMES)
    assert list(man["status_sat_bits"].values()) == list(range(len(SAT_NAMES)))
    header = re.search(r"#define SBPCA_SAT_STAGES (\d+)u /\* .*order: ([\w ]+) \*/", C_HEADER_PATH.read_text())
    assert header, "firmware/sbpca_regs.h has no SBPCA_SAT_STAGES"
    assert int(header.group(1)) == len(SAT_NAMES) and tuple(header.group(2).split()) == SAT_NAMES
    assert f"({', '.join(SAT_NAMES)};" in REGS.ERRORS.SATURATION.desc
    assert f"({', '.join(SAT_NAMES)};" in MARKDOWN_PATH.read_text()
