"""A cocotb Wishbone B4 classic master, reusable by every bench on the register bus.

Signals are found by prefix (``bus__adr``, ``bus__dat_w`` ... as Amaranth names a
``wishbone_signature`` port).  The master drives on the falling clock edge and
samples there too, so the values it sees are settled after the rising edge: one
Python wake per clock of a transaction, no ReadOnly/ReadWrite juggling.  Addresses
are byte addresses (``adr = addr >> 2``); an optional ``pause`` generator inserts
idle cycles between transactions (the same test runs with and without stalls).

Blocking code (the C firmware under ctypes) reaches it through
:meth:`WishboneMaster.blocking`, which returns ``cocotb.task.resume``-wrapped read and
write functions to call from inside a ``cocotb.task.bridge`` thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

from cocotb.task import resume
from cocotb.triggers import FallingEdge, Lock


class WishboneTimeout(RuntimeError):
    """No ack arrived within the master's timeout."""


@dataclass
class WishboneStats:
    reads: int = 0
    writes: int = 0
    wait_cycles: int = 0  # cycles spent waiting for ack
    log: list[tuple[str, int, int]] = field(default_factory=list)  # (op, addr, value)


class WishboneMaster:
    """Drive a Wishbone classic slave: ``await wb.write(0x20, 1)``, ``await wb.read(0x24)``."""

    def __init__(self, dut, clock, *, prefix: str = "bus", timeout_cycles: int = 64,
                 pause: Iterator[int] | None = None, keep_log: bool = False) -> None:
        if timeout_cycles < 1:
            raise ValueError(f"timeout_cycles must be >= 1, not {timeout_cycles!r}")
        self.clock = clock
        self.timeout_cycles = timeout_cycles
        self.pause = pause
        self.keep_log = keep_log
        self.stats = WishboneStats()
        sig = lambda name: getattr(dut, f"{prefix}__{name}")  # noqa: E731
        self.adr, self.dat_w, self.dat_r = sig("adr"), sig("dat_w"), sig("dat_r")
        self.sel, self.cyc, self.stb, self.we, self.ack = (
            sig("sel"), sig("cyc"), sig("stb"), sig("we"), sig("ack"))
        self.sel_all = (1 << len(self.sel)) - 1
        self.data_mask = (1 << len(self.dat_w)) - 1
        self.adr_limit = 1 << len(self.adr)
        self._lock = Lock()  # several tasks may share one master
        self.idle()

    def idle(self) -> None:
        """Drive the bus idle (no cycle)."""
        self.cyc.value = 0
        self.stb.value = 0
        self.we.value = 0
        self.sel.value = 0
        self.adr.value = 0
        self.dat_w.value = 0

    async def _transaction(self, addr: int, write: bool, value: int, sel: int) -> int:
        if addr % 4:
            raise ValueError(f"Wishbone address {addr:#x} is not word aligned")
        word = addr >> 2
        if not 0 <= word < self.adr_limit:
            raise ValueError(f"address {addr:#x} is outside the {4 * self.adr_limit:#x}-byte window")
        if not 0 <= value <= self.data_mask:
            raise ValueError(f"write value {value!r} does not fit the data bus")
        if self.pause is not None:
            for _ in range(next(self.pause, 0)):
                await FallingEdge(self.clock)
        await FallingEdge(self.clock)
        self.adr.value = word
        self.we.value = int(write)
        self.sel.value = sel
        self.dat_w.value = value if write else 0
        self.cyc.value = 1
        self.stb.value = 1
        for waited in range(self.timeout_cycles):
            await FallingEdge(self.clock)
            if int(self.ack.value):
                data = int(self.dat_r.value)
                self.stats.wait_cycles += waited
                break
        else:
            self.idle()
            raise WishboneTimeout(
                f"no ack for {'write' if write else 'read'} of {addr:#x} in {self.timeout_cycles} cycles"
            )
        self.cyc.value = 0
        self.stb.value = 0
        self.we.value = 0
        if write:
            self.stats.writes += 1
        else:
            self.stats.reads += 1
        if self.keep_log:
            self.stats.log.append(("w" if write else "r", addr, value if write else data))
        return data

    async def read(self, addr: int) -> int:
        """One read cycle at byte address ``addr``; returns the 32-bit word."""
        async with self._lock:
            return await self._transaction(addr, False, 0, self.sel_all)

    async def write(self, addr: int, value: int, sel: int | None = None) -> None:
        """One write cycle of ``value`` at byte address ``addr`` (byte lanes ``sel``)."""
        sel = self.sel_all if sel is None else sel
        if not 0 <= sel <= self.sel_all:
            raise ValueError(f"sel {sel!r} does not fit {len(self.sel)} byte lanes")
        async with self._lock:
            await self._transaction(addr, True, int(value), sel)

    def blocking(self) -> tuple[Callable[[int], int], Callable[[int, int], None]]:
        """(read, write) callables for code running in a ``cocotb.task.bridge`` thread."""
        return resume(self.read), resume(self.write)
