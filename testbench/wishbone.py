"""A cocotb Wishbone B4 *pipelined* master, reusable by every bench on the register bus.

Signals are found by prefix (``bus__adr``, ``bus__dat_w`` ... as Amaranth names a
``hdl.csr.wishbone_signature`` port, ``stall`` included).  The master drives on the falling
clock edge; it reads ``stall`` in the ReadOnly phase after driving (the value the next rising
edge sees) and ``ack``/``dat_r`` at the next falling edge (settled after the rising edge).
A request whose ``stb`` met ``stall`` low at a rising edge is taken; acks come back in
order, at most one per cycle, and the master counts them.  :meth:`burst` issues one request
per cycle (one word per cycle against a target that never stalls, as ``hdl.csr.CsrBank``),
:meth:`read`/:meth:`write` are bursts of one.  Addresses are byte addresses (``adr = addr >> 2``).
An optional ``pause`` generator inserts idle cycles (``stb`` low, ``cyc`` held) before each
request: the same test runs with and without master-side gaps.

Blocking code (the C firmware under ctypes) reaches it through :meth:`WishboneMaster.blocking`,
which returns ``cocotb.task.resume``-wrapped single and block functions to call from inside a
``cocotb.task.bridge`` thread.

Why not ``cocotbext-wishbone`` (PyPI, 2.0.1, cocotb >= 2.0): its ``WishboneMaster._drive`` awaits
the ack of every operation before driving the next one, also in pipelined mode (``stall``
present), so a block of N words takes at least 2N cycles, which is the classic-bus rate this
master exists to remove; it also needs ``cocotb-bus`` and runs a reader and a cycle-counter
coroutine that wake on every clock edge (docs/SOC.md, "Bus models").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from cocotb.task import resume
from cocotb.triggers import FallingEdge, Lock, ReadOnly


class WishboneTimeout(RuntimeError):
    """No ack arrived within the master's timeout."""


@dataclass
class WishboneStats:
    reads: int = 0
    writes: int = 0
    bursts: int = 0  # requests issued by block transfers (reads + writes of length > 1)
    wait_cycles: int = 0  # cycles without an ack while acks were outstanding, or stalled
    log: list[tuple[str, int, int]] = field(default_factory=list)  # (op, addr, value)


class WishboneMaster:
    """Drive a Wishbone pipelined target: ``await wb.write(0x20, 1)``, ``await wb.read(0x24)``,
    ``await wb.write_block(0x60, words)``, ``await wb.read_block(0x64, n)``."""

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
        self.stall = getattr(dut, f"{prefix}__stall", None)
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

    def _check(self, addr: int, value: int, sel: int) -> int:
        if addr % 4:
            raise ValueError(f"Wishbone address {addr:#x} is not word aligned")
        word = addr >> 2
        if not 0 <= word < self.adr_limit:
            raise ValueError(f"address {addr:#x} is outside the {4 * self.adr_limit:#x}-byte window")
        if not 0 <= value <= self.data_mask:
            raise ValueError(f"write value {value!r} does not fit the data bus")
        if not 0 <= sel <= self.sel_all:
            raise ValueError(f"sel {sel!r} does not fit {len(self.sel)} byte lanes")
        return word

    async def _cycle(self, ops: Sequence[tuple[int, bool, int, int]]) -> list[int]:
        """One bus cycle (``cyc`` high) carrying ``ops`` = (word address, write, value, sel) in order;
        returns the data of every ack (reads' words, writes' don't-care)."""
        words = [self._check(addr, value, sel) for addr, _, value, sel in ops]
        n = len(ops)
        out: list[int] = []
        issued = 0
        idle_left = next(self.pause, 0) if self.pause is not None else 0
        quiet = 0
        await FallingEdge(self.clock)
        self.cyc.value = 1
        while len(out) < n:
            offering = issued < n and idle_left == 0
            if offering:
                _, write, value, sel = ops[issued]
                self.adr.value = words[issued]
                self.we.value = int(write)
                self.sel.value = sel
                self.dat_w.value = value if write else 0
            self.stb.value = int(offering)
            taken = offering
            if offering and self.stall is not None:
                await ReadOnly()
                taken = not int(self.stall.value)
            await FallingEdge(self.clock)
            if int(self.ack.value):
                out.append(int(self.dat_r.value))
                quiet = 0
            elif issued > len(out) or (offering and not taken):
                quiet += 1
                self.stats.wait_cycles += 1
                if quiet > self.timeout_cycles:
                    self.idle()
                    raise WishboneTimeout(f"no ack for {n - len(out)} of {n} requests at "
                                          f"{ops[len(out)][0]:#x} in {self.timeout_cycles} cycles")
            if taken:
                issued += 1
                idle_left = next(self.pause, 0) if (self.pause is not None and issued < n) else 0
            elif not offering and idle_left:
                idle_left -= 1
        self.idle()
        for (addr, write, value, _), data in zip(ops, out):
            if write:
                self.stats.writes += 1
            else:
                self.stats.reads += 1
            if self.keep_log:
                self.stats.log.append(("w" if write else "r", addr, value if write else data))
        if n > 1:
            self.stats.bursts += n
        return out

    async def read(self, addr: int) -> int:
        """One read at byte address ``addr``; returns the 32-bit word."""
        async with self._lock:
            return (await self._cycle([(addr, False, 0, self.sel_all)]))[0]

    async def write(self, addr: int, value: int, sel: int | None = None) -> None:
        """One write of ``value`` at byte address ``addr`` (byte lanes ``sel``)."""
        async with self._lock:
            await self._cycle([(addr, True, int(value), self.sel_all if sel is None else sel)])

    async def read_block(self, addr: int, count: int) -> list[int]:
        """``count`` pipelined reads of one address (a FIFO window), one request per cycle."""
        if count < 1:
            raise ValueError(f"count must be >= 1, not {count!r}")
        async with self._lock:
            return await self._cycle([(addr, False, 0, self.sel_all)] * count)

    async def write_block(self, addr: int, values: Sequence[int]) -> None:
        """Pipelined writes of ``values`` to one address (a FIFO window), one request per cycle."""
        if not len(values):
            raise ValueError("write_block needs at least one word")
        async with self._lock:
            await self._cycle([(addr, True, int(v), self.sel_all) for v in values])

    def blocking(self) -> tuple[Callable[[int], int], Callable[[int, int], None]]:
        """(read, write) callables for code running in a ``cocotb.task.bridge`` thread."""
        return resume(self.read), resume(self.write)

    def blocking_blocks(self) -> tuple[Callable[[int, int], list[int]], Callable[[int, Sequence[int]], None]]:
        """(read_block, write_block) callables for code running in a ``cocotb.task.bridge`` thread."""
        return resume(self.read_block), resume(self.write_block)
