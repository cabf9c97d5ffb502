"""ctypes binding of the C firmware driver.

The platform's two register-access functions are Python callables handed to
:class:`FirmwareDriver`; ctypes turns them into C function pointers.  In a cocotb
bench they are ``cocotb.task.resume``-wrapped bus transactions, and the driver calls run
in a ``cocotb.task.bridge`` thread, so every register access the C code makes is a real
bus cycle in the simulator (see ``testbench/bench_csr.py``).

A Python exception raised inside a callback cannot cross the C frames; it is kept,
further accesses are skipped, and it is re-raised when the C call returns.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

READ_FN = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_uint32)
WRITE_FN = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32)
READ_BLOCK_FN = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32), ctypes.c_uint32)
WRITE_BLOCK_FN = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32), ctypes.c_uint32)

STATUS_NAMES = {
    0: "SBPCA_OK",
    -1: "SBPCA_ERR_ARG",
    -2: "SBPCA_ERR_ID",
    -3: "SBPCA_ERR_READBACK",
    -4: "SBPCA_ERR_TIMEOUT",
    -5: "SBPCA_ERR_RANGE",
    -6: "SBPCA_ERR_HW",
    -7: "SBPCA_ERR_PROTOCOL",
    -8: "SBPCA_ERR_UPDATE",
    -9: "SBPCA_ERR_STATE",
}
STATUS = {name: code for code, name in STATUS_NAMES.items()}


class SbpcaDev(ctypes.Structure):
    """Mirror of ``sbpca_dev_t`` (checked against ``sbpca_dev_size()`` at load)."""

    _fields_ = [
        ("base", ctypes.c_uint32),
        ("read", READ_FN),
        ("write", WRITE_FN),
        *[(name, ctypes.c_uint32) for name in (
            "rows", "cols", "rank", "lanes", "fifo_depth",
            "x_bits", "x_frac", "delta_bits", "delta_frac",
            "state_bits", "state_frac", "sigma_bits", "sigma_frac", "max_batch",
            "sample_elems", "state_elems",
        )],
        ("read_block", READ_BLOCK_FN),
        ("write_block", WRITE_BLOCK_FN),
    ]


class SbpcaConfig(ctypes.Structure):
    """Mirror of ``sbpca_config_t``."""

    _fields_ = [(name, ctypes.c_uint32) for name in (
        "batch_size", "sub_batch", "scheme", "manage", "bl", "lr_scale", "seed")]


class SbpcaStats(ctypes.Structure):
    """Mirror of ``sbpca_stats_t``."""

    _fields_ = [(name, ctypes.c_uint32) for name in (
        "samples", "sub_batches", "cycles", "updates", "errors")]


class FirmwareError(RuntimeError):
    """A driver call returned a status other than SBPCA_OK."""

    def __init__(self, function: str, status: int, message: str) -> None:
        self.function = function
        self.status = status
        self.name = STATUS_NAMES.get(status, str(status))
        super().__init__(f"{function}: {self.name} ({message})")


@dataclass
class BatchResult:
    """What ``sbpca_train_batch`` returned: status, σ words and the batch statistics."""

    status: int
    sigma: np.ndarray
    samples: int
    sub_batches: int
    cycles: int
    updates: int
    errors: int

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, str(self.status))


def _int32_array(name: str, values, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(values)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers (fixed-point words), not {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}, expected {shape}")
    if arr.size and (arr.min() < -(1 << 31) or arr.max() >= (1 << 31)):
        raise ValueError(f"{name} values do not fit int32")
    return np.ascontiguousarray(arr, dtype=np.int32)


def _ptr(arr: np.ndarray):
    return arr.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))


class FirmwareDriver:
    """The C driver, bound to one register bank through two Python callables.

    ``read(addr) -> int`` and ``write(addr, value)`` receive absolute byte addresses;
    the optional ``read_block(addr, n) -> list[int]`` and ``write_block(addr, words)`` move a
    block of words to or from one address (a FIFO window) as one burst, installed with
    ``sbpca_set_block_ops`` (without them the driver uses single accesses).
    Call :meth:`init` first (reads ID, DIMS, PARAMS, formats and packing into :attr:`dev`).
    """

    def __init__(self, library: Path | str, read: Callable[[int], int],
                 write: Callable[[int, int], None], *, base: int = 0,
                 read_block: Callable[[int, int], list[int]] | None = None,
                 write_block: Callable[[int, list[int]], None] | None = None) -> None:
        if not callable(read) or not callable(write):
            raise TypeError("read and write must be callables")
        if (read_block is None) != (write_block is None) or not all(
                f is None or callable(f) for f in (read_block, write_block)):
            raise TypeError("read_block and write_block must both be callables, or both None")
        if isinstance(base, bool) or not isinstance(base, int) or base < 0 or base % 4:
            raise ValueError(f"base must be a non-negative multiple of 4, not {base!r}")
        path = Path(library)
        if not path.exists():
            raise FileNotFoundError(f"firmware library {path} does not exist; build it with "
                                    "firmware.build.build_shared_library")
        self.lib = ctypes.CDLL(str(path))
        self._declare()
        if self.lib.sbpca_dev_size() != ctypes.sizeof(SbpcaDev):
            raise RuntimeError(
                f"sbpca_dev_t is {self.lib.sbpca_dev_size()} bytes in C but the ctypes mirror is "
                f"{ctypes.sizeof(SbpcaDev)}: update firmware/binding.py"
            )
        self._user_read, self._user_write = read, write
        self._pending: BaseException | None = None
        self._read_cb = READ_FN(self._read)  # keep references: C holds the pointers
        self._write_cb = WRITE_FN(self._write)
        self._user_read_block, self._user_write_block = read_block, write_block
        self._read_block_cb = READ_BLOCK_FN(self._read_block) if read_block else READ_BLOCK_FN()
        self._write_block_cb = WRITE_BLOCK_FN(self._write_block) if write_block else WRITE_BLOCK_FN()
        self.block_words = 0  # words moved by block transfers
        self.base = base
        self.dev = SbpcaDev()
        self.accesses = 0

    def _declare(self) -> None:
        lib = self.lib
        P = ctypes.POINTER
        i32p = P(ctypes.c_int32)
        u32 = ctypes.c_uint32
        sig = {
            "sbpca_dev_size": (u32, []),
            "sbpca_init": (ctypes.c_int, [P(SbpcaDev), u32, READ_FN, WRITE_FN]),
            "sbpca_read_reg": (u32, [P(SbpcaDev), u32]),
            "sbpca_write_reg": (None, [P(SbpcaDev), u32, u32]),
            "sbpca_configure": (ctypes.c_int, [P(SbpcaDev), P(SbpcaConfig)]),
            "sbpca_start_batch": (ctypes.c_int, [P(SbpcaDev)]),
            "sbpca_stream_samples": (ctypes.c_int, [P(SbpcaDev), i32p, i32p, u32, u32]),
            "sbpca_end_batch": (ctypes.c_int, [P(SbpcaDev)]),
            "sbpca_wait_idle": (ctypes.c_int, [P(SbpcaDev), u32]),
            "sbpca_wait_done": (ctypes.c_int, [P(SbpcaDev), u32]),
            "sbpca_read_sigma": (ctypes.c_int, [P(SbpcaDev), i32p, u32, u32]),
            "sbpca_read_factors": (ctypes.c_int, [P(SbpcaDev), i32p, i32p, u32]),
            "sbpca_apply_updates": (ctypes.c_int, [P(SbpcaDev), u32]),
            "sbpca_check_errors": (ctypes.c_int, [P(SbpcaDev), P(u32)]),
            "sbpca_train_batch": (ctypes.c_int, [P(SbpcaDev), P(SbpcaConfig), i32p, i32p, u32, i32p,
                                                 u32, P(SbpcaStats), u32]),
            "sbpca_soft_reset": (ctypes.c_int, [P(SbpcaDev), u32]),
            "sbpca_load_state": (ctypes.c_int, [P(SbpcaDev), i32p, i32p, i32p, u32]),
            "sbpca_read_state": (ctypes.c_int, [P(SbpcaDev), i32p, i32p, i32p, u32]),
            "sbpca_set_block_ops": (ctypes.c_int, [P(SbpcaDev), READ_BLOCK_FN, WRITE_BLOCK_FN]),
            "sbpca_strerror": (ctypes.c_char_p, [ctypes.c_int]),
        }
        for name, (restype, argtypes) in sig.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes

    # -- callbacks --------------------------------------------------------------------------
    def _read(self, addr: int) -> int:
        if self._pending is not None:
            return 0
        try:
            self.accesses += 1
            value = int(self._user_read(int(addr)))
            if not 0 <= value < (1 << 32):
                raise ValueError(f"platform read of {addr:#x} returned {value!r}, not a 32-bit word")
            return value
        except BaseException as exc:  # noqa: BLE001 - re-raised after the C call
            self._pending = exc
            return 0

    def _write(self, addr: int, value: int) -> None:
        if self._pending is not None:
            return
        try:
            self.accesses += 1
            self._user_write(int(addr), int(value))
        except BaseException as exc:  # noqa: BLE001 - re-raised after the C call
            self._pending = exc

    def _read_block(self, addr: int, words, n: int) -> None:
        if self._pending is not None:
            return
        try:
            self.accesses += n
            self.block_words += n
            got = list(self._user_read_block(int(addr), int(n)))
            if len(got) != n or any(not 0 <= int(v) < (1 << 32) for v in got):
                raise ValueError(f"platform block read of {n} words at {addr:#x} returned {got!r}")
            for i, v in enumerate(got):
                words[i] = int(v)
        except BaseException as exc:  # noqa: BLE001 - re-raised after the C call
            self._pending = exc

    def _write_block(self, addr: int, words, n: int) -> None:
        if self._pending is not None:
            return
        try:
            self.accesses += n
            self.block_words += n
            self._user_write_block(int(addr), [int(words[i]) for i in range(n)])
        except BaseException as exc:  # noqa: BLE001 - re-raised after the C call
            self._pending = exc

    def _call(self, name: str, *args) -> int:
        self._pending = None
        status = getattr(self.lib, name)(*args)
        if self._pending is not None:
            exc, self._pending = self._pending, None
            raise exc
        return status

    def _check(self, name: str, *args) -> None:
        status = self._call(name, *args)
        if status != 0:
            raise FirmwareError(name, status, self.strerror(status))

    def strerror(self, status: int) -> str:
        return self.lib.sbpca_strerror(int(status)).decode()

    # -- driver API -------------------------------------------------------------------------
    def init(self) -> SbpcaDev:
        """``sbpca_init``: bind to the bank and read its build parameters."""
        self._check("sbpca_init", ctypes.byref(self.dev), self.base, self._read_cb, self._write_cb)
        if self._user_read_block is not None:
            self._check("sbpca_set_block_ops", ctypes.byref(self.dev), self._read_block_cb, self._write_block_cb)
        return self.dev

    @property
    def shape(self) -> tuple[int, int, int]:
        """(rows a, cols b, rank k) as the bank reports them."""
        return self.dev.rows, self.dev.cols, self.dev.rank

    def read_reg(self, offset: int) -> int:
        value = self._call("sbpca_read_reg", ctypes.byref(self.dev), offset)
        return int(value)

    def write_reg(self, offset: int, value: int) -> None:
        self._call("sbpca_write_reg", ctypes.byref(self.dev), offset, value)

    @staticmethod
    def make_config(*, batch_size: int, sub_batch: int, scheme: int = 0, manage: int = 1,
                    bl: int = 31, lr_scale: int = 1 << 20, seed: int = 1) -> SbpcaConfig:
        values = dict(batch_size=batch_size, sub_batch=sub_batch, scheme=scheme, manage=manage,
                      bl=bl, lr_scale=lr_scale, seed=seed)
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{key} must be an integer, not {value!r}")
            if not 0 <= value < (1 << 32):
                raise ValueError(f"{key} must fit an unsigned 32-bit word, not {value!r}")
        return SbpcaConfig(**{k: int(v) for k, v in values.items()})

    def configure(self, **config: int) -> None:
        """``sbpca_configure`` with the fields of :meth:`make_config`."""
        self._check("sbpca_configure", ctypes.byref(self.dev), ctypes.byref(self.make_config(**config)))

    def start_batch(self) -> None:
        self._check("sbpca_start_batch", ctypes.byref(self.dev))

    def stream_samples(self, x, delta, *, max_polls: int = 10000) -> None:
        """``sbpca_stream_samples``: x (n×b) and delta (n×a) integer words."""
        x = np.asarray(x)
        n = x.shape[0] if x.ndim == 2 else -1
        xa = _int32_array("x", x, (n, self.dev.cols))
        da = _int32_array("delta", delta, (n, self.dev.rows))
        self._check("sbpca_stream_samples", ctypes.byref(self.dev), _ptr(xa), _ptr(da), n, max_polls)

    def end_batch(self) -> None:
        self._check("sbpca_end_batch", ctypes.byref(self.dev))

    def wait_idle(self, *, max_polls: int = 10000) -> None:
        """``sbpca_wait_idle``: poll STATUS until BUSY and UPD_BUSY are clear (FirmwareError on timeout)."""
        self._check("sbpca_wait_idle", ctypes.byref(self.dev), max_polls)

    def wait_done(self, *, max_polls: int = 10000) -> None:
        self._check("sbpca_wait_done", ctypes.byref(self.dev), max_polls)

    def read_sigma(self, *, max_polls: int = 10000) -> np.ndarray:
        out = np.zeros(self.dev.rank, dtype=np.int32)
        self._check("sbpca_read_sigma", ctypes.byref(self.dev), _ptr(out), out.size, max_polls)
        return out.astype(np.int64)

    def read_factors(self, *, max_polls: int = 10000) -> tuple[np.ndarray, np.ndarray]:
        """(Delta a×k, X b×k) integer state words, as the bank delivers them."""
        k = self.dev.rank
        d = np.zeros((k, self.dev.rows), dtype=np.int32)
        x = np.zeros((k, self.dev.cols), dtype=np.int32)
        self._check("sbpca_read_factors", ctypes.byref(self.dev), _ptr(d), _ptr(x), max_polls)
        return d.T.astype(np.int64), x.T.astype(np.int64)

    def apply_updates(self, *, max_polls: int = 10000) -> None:
        self._check("sbpca_apply_updates", ctypes.byref(self.dev), max_polls)

    def check_errors(self) -> tuple[int, int]:
        """(status, flags) of ``sbpca_check_errors`` (never raises for flags)."""
        flags = ctypes.c_uint32(0)
        status = self._call("sbpca_check_errors", ctypes.byref(self.dev), ctypes.byref(flags))
        if status == STATUS["SBPCA_ERR_ARG"]:
            raise FirmwareError("sbpca_check_errors", status, self.strerror(status))
        return status, int(flags.value)

    def train_batch(self, x, delta, *, sub_batch: int, max_polls: int = 10000,
                    **config: int) -> BatchResult:
        """``sbpca_train_batch`` on one batch; the status is returned, not raised."""
        x = np.asarray(x)
        n = x.shape[0] if x.ndim == 2 else -1
        xa = _int32_array("x", x, (n, self.dev.cols))
        da = _int32_array("delta", delta, (n, self.dev.rows))
        cfg = self.make_config(batch_size=n, sub_batch=sub_batch, **config)
        sigma = np.zeros(max(1, self.dev.rank), dtype=np.int32)
        stats = SbpcaStats()
        status = self._call("sbpca_train_batch", ctypes.byref(self.dev), ctypes.byref(cfg), _ptr(xa),
                            _ptr(da), n, _ptr(sigma), sigma.size, ctypes.byref(stats), max_polls)
        return BatchResult(status=status, sigma=sigma[: self.dev.rank].astype(np.int64),
                           samples=stats.samples, sub_batches=stats.sub_batches, cycles=stats.cycles,
                           updates=stats.updates, errors=stats.errors)

    def soft_reset(self, *, max_polls: int = 10000) -> None:
        """``sbpca_soft_reset``: CTRL.SOFT_RESET, then wait idle; a state must be loaded before the next batch."""
        self._check("sbpca_soft_reset", ctypes.byref(self.dev), max_polls)

    def load_state(self, delta_f, x_f, sigma, *, max_polls: int = 10000) -> None:
        """``sbpca_load_state``: Delta (a×k), X (b×k) and σ (k) integer words into the engine."""
        k, a, b = self.dev.rank, self.dev.rows, self.dev.cols
        d = _int32_array("delta_f", np.asarray(delta_f).T, (k, a))
        x = _int32_array("x_f", np.asarray(x_f).T, (k, b))
        s = _int32_array("sigma", sigma, (k,))
        self._check("sbpca_load_state", ctypes.byref(self.dev), _ptr(d), _ptr(x), _ptr(s), max_polls)

    def read_state(self, *, max_polls: int = 10000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``sbpca_read_state``: (Delta a×k, X b×k, σ k), the checkpoint :meth:`load_state` restores."""
        k = self.dev.rank
        d = np.zeros((k, self.dev.rows), dtype=np.int32)
        x = np.zeros((k, self.dev.cols), dtype=np.int32)
        s = np.zeros(max(1, k), dtype=np.int32)
        self._check("sbpca_read_state", ctypes.byref(self.dev), _ptr(d), _ptr(x), _ptr(s), max_polls)
        return d.T.astype(np.int64), x.T.astype(np.int64), s[:k].astype(np.int64)
