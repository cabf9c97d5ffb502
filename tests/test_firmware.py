"""The C firmware driver: strict build, header values, error paths, and the RTL co-simulation."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from firmware.binding import STATUS, FirmwareDriver, FirmwareError
from firmware.build import FIRMWARE_DIR, STRICT_FLAGS, FirmwareBuildError, build_shared_library, find_compiler
from hdl.regmap import REGS, Access, pack_vector


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return build_shared_library(tmp_path_factory.mktemp("fw"))


def test_builds_with_strict_flags(tmp_path):
    assert {"-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"} <= set(STRICT_FLAGS)
    lib = build_shared_library(tmp_path, force=True, extra_flags=("-Wconversion", "-Wshadow"))
    assert lib.exists() and lib.stat().st_size > 0
    with pytest.raises(FirmwareBuildError, match="compiling the firmware failed"):
        build_shared_library(tmp_path / "bad", force=True, extra_flags=("-include", "no_such_header.h"))


def test_missing_compiler_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(FirmwareBuildError, match="no C compiler"):
        find_compiler()


def test_header_values_match_regmap(tmp_path):
    """Compile a C program that prints every macro and compare with the Python map."""
    lines = ['#include <stdio.h>', '#include <stdint.h>', '#include "sbpca_regs.h"', "int main(void) {"]
    expected = []
    for reg in REGS:
        lines.append(f'    printf("%lu\\n", (unsigned long)SBPCA_{reg.name});')
        expected.append(reg.offset)
        lines.append(f'    printf("%lu\\n", (unsigned long)SBPCA_{reg.name}_RESET);')
        expected.append(reg.reset)
        for f in reg.fields:
            lines.append(f'    printf("%lu\\n", (unsigned long)SBPCA_{reg.name}_{f.name}_MASK);')
            expected.append(f.mask)
            lines.append(f'    printf("%lu\\n", (unsigned long)SBPCA_GET({reg.name}_{f.name}, 0xFFFFFFFFu));')
            expected.append((1 << f.width) - 1)
    lines += ["    return 0;", "}"]
    src = tmp_path / "check.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "check"
    subprocess.run([find_compiler(), *STRICT_FLAGS, "-I", str(FIRMWARE_DIR), str(src), "-o", str(exe)],
                   check=True, capture_output=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    assert [int(v) for v in out] == expected


class FakeBank:
    """A register-level Python stand-in for the bank, for the driver's error paths only.

    (The real RTL is exercised in :func:`test_cosim_firmware_drives_rtl`.)
    """

    def __init__(self, *, rows=3, cols=2, rank=1, magic=REGS.ID.reset, drop_writes_to=None) -> None:
        self.values = {r.offset: r.reset for r in REGS}
        self.values[REGS.ID.offset] = magic
        self.values[REGS.DIMS.offset] = REGS.DIMS.pack(ROWS=rows, COLS=cols)
        self.values[REGS.PARAMS.offset] = REGS.PARAMS.pack(RANK=rank, LANES=1, FIFO_DEPTH=4)
        self.values[REGS.FIFO_STATUS.offset] = REGS.FIFO_STATUS.pack(SAMPLE_SPACE=4)
        self.drop = drop_writes_to
        self.pushed: list[int] = []
        self.state: list[int] = []
        self.pulses: list[str] = []
        self.log: list[tuple[str, int, int]] = []

    def read(self, addr: int) -> int:
        self.log.append(("r", addr, self.values.get(addr, 0)))
        return self.values.get(addr, 0)

    def write(self, addr: int, value: int) -> None:
        self.log.append(("w", addr, value))
        reg = REGS.at(addr)
        if reg is None or addr == self.drop:
            return
        if reg.name == "CTRL":
            self.pulses += [f.name for f in reg.fields if f.get(value)]
        elif reg.name == "SAMPLE_DATA":
            self.pushed.append(value)
        elif reg.name == "STATE_DATA":
            self.state.append(value)
        elif reg.name == "ERRORS":
            self.values[addr] &= ~value
        elif all(f.access in (Access.RW, Access.CNT) for f in reg.fields):
            self.values[addr] = value


def _driver(library, bank: FakeBank) -> FirmwareDriver:
    return FirmwareDriver(library, bank.read, bank.write, base=0)


def test_init_checks_id(library):
    drv = _driver(library, FakeBank(rows=5, cols=7, rank=2))
    dev = drv.init()
    assert (dev.rows, dev.cols, dev.rank, dev.fifo_depth, dev.x_bits) == (5, 7, 2, 4, 16)
    with pytest.raises(FirmwareError, match="SBPCA_ERR_ID"):
        _driver(library, FakeBank(magic=0x12340001)).init()
    with pytest.raises(ValueError, match="base must be"):
        FirmwareDriver(library, int, print, base=2)
    with pytest.raises(FileNotFoundError):
        FirmwareDriver(library.parent / "missing.so", int, print)


def test_configure_validates_and_reads_back(library):
    bank = FakeBank()
    drv = _driver(library, bank)
    drv.init()
    drv.configure(batch_size=8, sub_batch=4, scheme=1, bl=100, lr_scale=77, seed=5)
    assert bank.values[REGS.UPDATE_CFG.offset] == REGS.UPDATE_CFG.pack(SCHEME=1, MANAGE=1, BL=100)
    assert bank.values[REGS.LR_SCALE.offset] == 77
    n_writes = sum(1 for op, *_ in bank.log if op == "w")
    for bad in (dict(batch_size=0, sub_batch=1), dict(batch_size=4, sub_batch=5),
                dict(batch_size=4, sub_batch=1, scheme=2), dict(batch_size=4, sub_batch=1, seed=0),
                dict(batch_size=4, sub_batch=1, bl=1 << 16)):
        with pytest.raises(FirmwareError, match="SBPCA_ERR_ARG"):
            drv.configure(**bad)
    assert sum(1 for op, *_ in bank.log if op == "w") == n_writes, "a rejected configuration wrote registers"
    stuck = FakeBank(drop_writes_to=REGS.SEED.offset)
    drv2 = _driver(library, stuck)
    drv2.init()
    with pytest.raises(FirmwareError, match="SBPCA_ERR_READBACK"):
        drv2.configure(batch_size=4, sub_batch=2, seed=9)
    busy = FakeBank()
    busy.values[REGS.STATUS.offset] = REGS.STATUS.pack(BUSY=1)
    drv3 = _driver(library, busy)
    drv3.init()
    with pytest.raises(FirmwareError, match="SBPCA_ERR_STATE"):
        drv3.configure(batch_size=4, sub_batch=2)
    with pytest.raises(FirmwareError, match="SBPCA_ERR_STATE"):
        drv3.start_batch()


def test_stream_order_range_and_space(library):
    bank = FakeBank(rows=3, cols=2)
    drv = _driver(library, bank)
    drv.init()
    x = np.array([[1, -2], [3, -32768]])
    d = np.array([[4, 5, -6], [32767, 0, -1]])
    drv.stream_samples(x, d)
    # two 16-bit elements per word (PACKING), each vector starting a new word
    assert drv.dev.sample_elems == 2
    assert bank.pushed == [0xFFFE0001, 0x00050004, 0x0000FFFA, 0x80000003, 0x00007FFF, 0x0000FFFF]
    assert bank.pushed == [w for j in range(2) for w in pack_vector(x[j], 2) + pack_vector(d[j], 2)]
    # it asks for space before writing more than SAMPLE_SPACE words
    reads = [i for i, (op, addr, _) in enumerate(bank.log) if op == "r" and addr == REGS.FIFO_STATUS.offset]
    assert len(reads) == 2  # 6 words, 4 at a time
    with pytest.raises(FirmwareError, match="SBPCA_ERR_RANGE"):
        drv.stream_samples(np.array([[32768, 0]]), np.zeros((1, 3), dtype=int))
    with pytest.raises(ValueError, match="expected"):
        drv.stream_samples(np.zeros((1, 3), dtype=int), np.zeros((1, 3), dtype=int))
    with pytest.raises(TypeError, match="integers"):
        drv.stream_samples(np.zeros((1, 2)), np.zeros((1, 3)))
    bank.values[REGS.FIFO_STATUS.offset] = 0
    with pytest.raises(FirmwareError, match="SBPCA_ERR_TIMEOUT"):
        drv.stream_samples(np.zeros((1, 2), dtype=int), np.zeros((1, 3), dtype=int), max_polls=3)


def test_soft_reset_and_state_load(library):
    """sbpca_load_state writes Δ_c, X_c per pair then σ, never past STATE_STATUS.SPACE, then waits
    for STATE_VALID; out-of-format words are refused before any write; soft reset pulses SOFT_RESET."""
    bank = FakeBank(rows=3, cols=2, rank=2)
    bank.values[REGS.STATE_STATUS.offset] = REGS.STATE_STATUS.pack(SPACE=5)
    drv = _driver(library, bank)
    drv.init()
    drv.soft_reset()
    assert bank.pulses == ["SOFT_RESET"]
    D = np.array([[1, 2], [3, 4], [5, 6]])  # a x k
    X = np.array([[-7, 8], [9, -10]])  # b x k
    sg = np.array([100, -200])
    with pytest.raises(FirmwareError, match="SBPCA_ERR_TIMEOUT"):
        drv.load_state(D, X, sg, max_polls=4)  # STATE_VALID never rises in the fake bank
    # per pair Delta_c then X_c, two elements per word (each vector starting a new word), then sigma
    assert bank.state == [*pack_vector([1, 3, 5], 2), *pack_vector([-7, 9], 2), *pack_vector([2, 4, 6], 2),
                          *pack_vector([8, -10], 2), 100, (-200) & 0xFFFFFFFF]
    reads = [i for i, (op, addr, _) in enumerate(bank.log) if op == "r" and addr == REGS.STATE_STATUS.offset]
    assert len(reads) == 5  # one per vector (Delta_0, X_0, Delta_1, X_1, sigma): space is not carried over
    bank.state.clear()
    bank.values[REGS.STATUS.offset] = REGS.STATUS.STATE_VALID.mask
    drv.load_state(D, X, sg)
    assert len(bank.state) == 8
    bank.state.clear()
    with pytest.raises(FirmwareError, match="SBPCA_ERR_RANGE"):
        drv.load_state(D * 0 + 40000, X, sg)  # outside the 16-bit state format
    assert bank.state == []
    bank.values[REGS.STATE_STATUS.offset] = 0
    with pytest.raises(FirmwareError, match="SBPCA_ERR_TIMEOUT"):
        drv.load_state(D, X, sg, max_polls=3)


def test_block_transfers_one_per_status_read(library):
    """With block functions the driver moves one block per FIFO status read (never more words than
    the status allows) and no FIFO word as a single access; the factor readout unpacks the halves."""
    bank = FakeBank(rows=3, cols=2, rank=1)
    blocks: list[tuple[str, int, int]] = []
    factor_words = pack_vector([7, -8, 9], 2) + pack_vector([-10, 11], 2)

    def write_block(addr: int, words: list[int]) -> None:
        blocks.append(("w", addr, len(words)))
        for w in words:
            bank.write(addr, w)

    def read_block(addr: int, n: int) -> list[int]:
        blocks.append(("r", addr, n))
        return [factor_words.pop(0) for _ in range(n)]

    singles: list[int] = []  # addresses of single writes

    def write(addr: int, value: int) -> None:
        singles.append(addr)
        bank.write(addr, value)

    drv = FirmwareDriver(library, bank.read, write, read_block=read_block, write_block=write_block)
    drv.init()
    x, d = np.arange(10).reshape(5, 2), -np.arange(15).reshape(5, 3)
    drv.stream_samples(x, d)  # 5 samples x (1 + 2) words, SAMPLE_SPACE = 4
    assert [n for op, addr, n in blocks] == [4, 4, 4, 3]
    assert bank.pushed == [w for j in range(5) for w in pack_vector(x[j], 2) + pack_vector(d[j], 2)]
    assert REGS.SAMPLE_DATA.offset not in singles  # every sample word went through write_block
    blocks.clear()
    bank.values[REGS.FIFO_STATUS.offset] = REGS.FIFO_STATUS.pack(SAMPLE_SPACE=4, FACTOR_LEVEL=3)
    d_f, x_f = drv.read_factors()
    assert d_f[:, 0].tolist() == [7, -8, 9] and x_f[:, 0].tolist() == [-10, 11]
    assert blocks == [("r", REGS.FACTOR_DATA.offset, 2), ("r", REGS.FACTOR_DATA.offset, 1)]
    assert drv.block_words == 15 + 3
    with pytest.raises(TypeError, match="both"):
        FirmwareDriver(library, bank.read, bank.write, read_block=read_block)


def test_check_errors_classifies_flags(library):
    bank = FakeBank()
    drv = _driver(library, bank)
    drv.init()
    assert drv.check_errors() == (STATUS["SBPCA_OK"], 0)
    bank.values[REGS.ERRORS.offset] = REGS.ERRORS.SIGMA_GUARD.mask
    assert drv.check_errors() == (STATUS["SBPCA_ERR_HW"], REGS.ERRORS.SIGMA_GUARD.mask)
    assert bank.values[REGS.ERRORS.offset] == 0
    bank.values[REGS.ERRORS.offset] = REGS.ERRORS.SATURATION.mask | REGS.ERRORS.SAMPLE_OVERFLOW.mask
    status, flags = drv.check_errors()
    assert status == STATUS["SBPCA_ERR_PROTOCOL"] and flags & REGS.ERRORS.SAMPLE_OVERFLOW.mask


def test_update_counter_is_checked(library):
    bank = FakeBank(rank=3)
    drv = _driver(library, bank)
    drv.init()
    bank.values[REGS.STATUS.offset] = REGS.STATUS.pack(UPD_DONE=1)
    with pytest.raises(FirmwareError, match="SBPCA_ERR_UPDATE"):
        drv.apply_updates(max_polls=4)  # UPDATES never advances in the fake
    assert bank.pulses == ["APPLY_UPDATE"]


def test_wait_idle_polls_a_bounded_number_of_times(library):
    bank = FakeBank()
    drv = _driver(library, bank)
    drv.init()

    def status_reads() -> int:
        return sum(1 for op, addr, _ in bank.log if op == "r" and addr == REGS.STATUS.offset)

    for busy in (REGS.STATUS.pack(BUSY=1), REGS.STATUS.pack(UPD_BUSY=1, DONE=1)):
        bank.values[REGS.STATUS.offset] = busy
        before = status_reads()
        with pytest.raises(FirmwareError, match="SBPCA_ERR_TIMEOUT"):
            drv.wait_idle(max_polls=7)
        assert status_reads() - before == 7  # exactly the budget, then it gives up
    with pytest.raises(FirmwareError, match="SBPCA_ERR_TIMEOUT"):
        drv.wait_idle(max_polls=0)  # no budget: no read
    # DONE and UPD_DONE do not count as busy: one read is enough
    bank.values[REGS.STATUS.offset] = REGS.STATUS.pack(DONE=1, UPD_DONE=1, ENGINE_ERROR=1)
    before = status_reads()
    drv.wait_idle(max_polls=7)
    assert status_reads() - before == 1
    # the bit falls while polling: the driver returns on the first idle read
    seq = iter([REGS.STATUS.pack(BUSY=1)] * 3 + [0] * 10)
    real_read = bank.read

    def falling(addr: int) -> int:
        if addr == REGS.STATUS.offset:
            bank.values[addr] = next(seq)
        return real_read(addr)

    drv2 = FirmwareDriver(library, falling, bank.write, base=0)
    drv2.init()
    before = status_reads()
    drv2.wait_idle(max_polls=100)
    assert status_reads() - before == 4


def test_train_batch_waits_for_idle_and_respects_max_batch(library):
    """sbpca_train_batch waits (bounded) for an idle engine first; B above MAX_BATCH is refused."""
    bank = FakeBank()
    bank.values[REGS.MAX_BATCH.offset] = 5
    drv = _driver(library, bank)
    assert drv.init().max_batch == 5
    bank.values[REGS.STATUS.offset] = REGS.STATUS.pack(BUSY=1)
    n_writes = sum(1 for op, *_ in bank.log if op == "w")
    res = drv.train_batch(np.zeros((2, 2), dtype=int), np.zeros((2, 3), dtype=int), sub_batch=1, max_polls=9)
    assert res.status_name == "SBPCA_ERR_TIMEOUT"
    assert sum(1 for op, *_ in bank.log if op == "w") == n_writes, "it configured a busy engine"
    bank.values[REGS.STATUS.offset] = 0
    with pytest.raises(FirmwareError, match="SBPCA_ERR_ARG"):
        drv.configure(batch_size=6, sub_batch=2)
    drv.configure(batch_size=5, sub_batch=2)
    # configure pulses CTRL.CLEAR (the engine's sticky flags) before clearing ERRORS
    assert bank.pulses == ["CLEAR"]
    writes = [addr for op, addr, _ in bank.log if op == "w"]
    assert writes.index(REGS.CTRL.offset) < len(writes) - 1 and writes[-1] == REGS.ERRORS.offset


def test_batch_limit_voids_the_batch(library):
    bank = FakeBank()
    drv = _driver(library, bank)
    drv.init()
    bank.values[REGS.ERRORS.offset] = REGS.ERRORS.BATCH_LIMIT.mask
    assert drv.check_errors() == (STATUS["SBPCA_ERR_PROTOCOL"], REGS.ERRORS.BATCH_LIMIT.mask)


def test_callback_exceptions_propagate(library):
    calls = []

    def read(addr):
        calls.append(addr)
        raise KeyError(f"bus fault at {addr:#x}")

    drv = FirmwareDriver(library, read, lambda a, v: None)
    with pytest.raises(KeyError, match="bus fault at 0x0"):
        drv.init()
    assert calls == [0], "accesses after a failed callback must be skipped"


@pytest.mark.cosim
def test_cosim_firmware_drives_rtl(tmp_path):
    """cocotb + Verilator: the C driver (ctypes) drives the Wishbone bank through real bus cycles."""
    from testbench.bench_csr import run_csr_cosim

    result = run_csr_cosim(tmp_path, rows=6, cols=5, rank=2, sub_batch=3, batch=7, batches=2,
                           fifo_depth=8, seed=3)
    assert (result.passed, result.failed) == (4, 0), result.build_dir
    rep = result.report
    assert set(rep) == {"test_registers", "test_loopback", "test_train_batch", "test_firmware_errors"}
    train = rep["test_train_batch"]
    assert len(train["batches"]) == 2
    assert train["events"].count("apply") == 2
    assert rep["test_loopback"]["words"] == 2 * (3 + 3)  # per sample ceil(5/2) + ceil(6/2) packed words
