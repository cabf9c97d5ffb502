"""A Wishbone register bank generated from a :class:`hdl.regmap.RegisterMap`.

Bus: Wishbone B4 *pipelined* target, 32-bit data, byte select (granularity 8), word
address ``adr`` of ``regmap.addr_width`` bits.  ``stall`` is tied low: a request (``cyc &
stb``) is taken in every cycle it is presented, and acknowledged in the next cycle
(registered ``ack`` and ``dat_r``), so an initiator can issue one request per cycle and a
block of N words to a FIFO window takes N + 1 cycles (a single access two).  Side effects
(pulses, FIFO push/pop, W1C clears) happen exactly once per request, in the cycle it is
taken.  A classic (non-pipelined) initiator that holds ``stb`` until ``ack`` would issue its
request twice: it needs the usual adapter (``stb & ~ack``-style one-shot).
Unmapped addresses are acknowledged, read 0, and raise the map's ``bus_error``
flag; there is no ``err`` line (the firmware reads the flag instead).  ``sel``
masks writes byte by byte: RW fields keep unselected bytes, other modes see
unselected bytes as 0 (a FIFO push always pushes one word).

FIFO windows are ``SyncFIFOBuffered`` of ``fifo_depth`` words (LUT RAM or block RAM
as the tools choose): a write to a full FIFO_W is dropped and sets the map's
``overflow`` flag, a read of an empty FIFO_R returns 0 and sets ``underflow``; the
map's ``fifo_flush`` pulse (``CTRL.SOFT_RESET``) empties every FIFO window.

Ports towards the SoC, one nested interface per register (lower-case names):
``bank.ctrl.start_batch`` (W1S pulse out), ``bank.status.busy`` (RO in),
``bank.errors.saturation`` / ``bank.errors.saturation_set`` (W1C flag out / set
strobe in), ``bank.samples.count_inc`` (CNT strobe in) and ``bank.samples.count``
(its value), ``bank.batch_size.samples`` (RW out), and the FIFO windows as streams:
``bank.sample_data`` (``stream.Signature(32)``, out: words firmware wrote) and
``bank.factor_data`` (in: words firmware will read).  In Verilog they are
``ctrl__start_batch``, ``sample_data__payload`` ... (Amaranth's ``__`` flattening).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from pymodel.formats import DEFAULT_FORMAT_SET, SBPCAFormats, get_format_set

from .regmap import DATA_WIDTH, REGS, Access, Field, Register, RegisterMap, build_constants

__all__ = ["wishbone_signature", "CsrBank", "CsrParams", "csr_manifest"]


@dataclass(frozen=True)
class CsrParams:
    """What a register bank alone is built for: the engine configuration its CONST fields
    report (``hdl.regmap.build_constants``) and the depth of its FIFO windows."""

    rows: int
    cols: int
    rank: int
    lanes: int = 1
    fifo_depth: int = 16
    formats: "SBPCAFormats | str" = DEFAULT_FORMAT_SET
    max_batch: int = 65535

    def __post_init__(self) -> None:
        # the same ranges as EngineParams: the bank describes an engine that can exist
        limits = {"rows": (1, 4096), "cols": (1, 4096), "rank": (1, min(self.rows, self.cols)),
                  "lanes": (1, min(64, max(self.rows, self.cols))), "fifo_depth": (2, 4096),
                  "max_batch": (1, 1 << 24)}
        for name, (lo, hi) in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"csr parameter {name} must be an integer, not {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"csr parameter {name}={value} is out of range: allowed {lo}..{hi}")
        get_format_set(self.formats)  # a known set (raises with the list of names)

    @property
    def fmts(self) -> SBPCAFormats:
        return get_format_set(self.formats)

    def constants(self) -> dict[str, int]:
        """CONST-field values for ``CsrBank(constants=...)`` (raises naming a bad parameter)."""
        return build_constants(rows=self.rows, cols=self.cols, rank=self.rank, lanes=self.lanes,
                               fifo_depth=self.fifo_depth, formats=self.fmts, max_batch=self.max_batch)

    def to_dict(self) -> dict:
        return {"rows": self.rows, "cols": self.cols, "rank": self.rank, "lanes": self.lanes,
                "fifo_depth": self.fifo_depth, "max_batch": self.max_batch, "formats": self.fmts.to_dict()}


def wishbone_signature(addr_width: int, data_width: int = DATA_WIDTH) -> wiring.Signature:
    """Wishbone B4 pipelined, seen from the initiator (flip it for a target).

    Members: ``adr`` (word address), ``dat_w``, ``sel`` (one bit per byte), ``cyc``,
    ``stb``, ``we`` driven by the initiator; ``dat_r``, ``ack`` and ``stall`` by the target.
    """
    if isinstance(addr_width, bool) or not isinstance(addr_width, int) or addr_width < 1:
        raise ValueError(f"addr_width must be a positive integer, not {addr_width!r}")
    if data_width not in (8, 16, 32, 64):
        raise ValueError(f"data_width must be 8, 16, 32 or 64, not {data_width!r}")
    return wiring.Signature({
        "adr": Out(addr_width),
        "dat_w": Out(data_width),
        "dat_r": In(data_width),
        "sel": Out(data_width // 8),
        "cyc": Out(1),
        "stb": Out(1),
        "we": Out(1),
        "ack": In(1),
        "stall": In(1),
    })


def _member_name(name: str) -> str:
    return name.lower()


def _register_signature(reg: Register) -> wiring.Signature | None:
    """The SoC-facing ports of one register (None when it has none)."""
    members: dict[str, wiring.Member] = {}
    for f in reg.fields:
        n = _member_name(f.name)
        if f.access is Access.RW:
            members[n] = Out(f.width, init=f.reset)
        elif f.access is Access.RO:
            members[n] = In(f.width)
        elif f.access is Access.W1S:
            members[n] = Out(f.width)
        elif f.access is Access.W1C:
            members[n] = Out(f.width)
            if f.internal_source is None:
                members[f"{n}_set"] = In(f.width)
        elif f.access is Access.CNT:
            members[n] = Out(f.width, init=f.reset)
            members[f"{n}_inc"] = In(1)
    return wiring.Signature(members) if members else None


class CsrBank(wiring.Component):
    """The control/status register bank of one engine, generated from ``regmap``.

    ``constants`` overrides CONST fields as ``{"DIMS_ROWS": 64, ...}`` (see
    :func:`hdl.regmap.build_constants`); ``fifo_depth`` sizes both FIFO windows and,
    when the map declares ``PARAMS.FIFO_DEPTH``, is what that field reads.
    """

    def __init__(
        self,
        regmap: RegisterMap = REGS,
        *,
        constants: dict[str, int] | None = None,
        fifo_depth: int = 16,
    ) -> None:
        if not isinstance(regmap, RegisterMap):
            raise TypeError(f"regmap must be a RegisterMap, not {type(regmap).__name__}")
        if isinstance(fifo_depth, bool) or not isinstance(fifo_depth, int):
            raise TypeError(f"fifo_depth must be an integer, not {fifo_depth!r}")
        if not 1 <= fifo_depth <= 0xFFFF:
            raise ValueError(f"fifo_depth must be in 1..65535, not {fifo_depth!r}")
        constants = dict(constants or {})
        if "PARAMS_FIFO_DEPTH" in constants and constants["PARAMS_FIFO_DEPTH"] != fifo_depth:
            raise ValueError(
                f"constants PARAMS_FIFO_DEPTH={constants['PARAMS_FIFO_DEPTH']} contradicts "
                f"fifo_depth={fifo_depth}"
            )
        if "PARAMS" in {r.name for r in regmap} and "FIFO_DEPTH" in {f.name for f in regmap["PARAMS"].fields}:
            constants["PARAMS_FIFO_DEPTH"] = fifo_depth
        self._regmap = regmap
        self._fifo_depth = fifo_depth
        self._const = regmap.const_values(**constants)
        members: dict[str, wiring.Member] = {"bus": In(wishbone_signature(regmap.addr_width))}
        for reg in regmap:
            name = _member_name(reg.name)
            if reg.fifo is Access.FIFO_W:
                members[name] = Out(stream.Signature(DATA_WIDTH))
            elif reg.fifo is Access.FIFO_R:
                members[name] = In(stream.Signature(DATA_WIDTH))
            else:
                sig = _register_signature(reg)
                if sig is not None:
                    members[name] = Out(sig)
        super().__init__(members)

    # -- introspection --------------------------------------------------------------------
    @property
    def regmap(self) -> RegisterMap:
        return self._regmap

    @property
    def fifo_depth(self) -> int:
        return self._fifo_depth

    @property
    def const_values(self) -> dict[tuple[str, str], int]:
        """The value every CONST field reads in this bank."""
        return dict(self._const)

    def port(self, register: str, field: str | None = None, suffix: str = ""):
        """The SoC-facing signal of ``register.field`` (``suffix`` ``"_set"``/``"_inc"``),
        or the stream interface of a FIFO register when ``field`` is None."""
        reg = self._regmap[register]
        iface = getattr(self, _member_name(reg.name), None)
        if iface is None:
            raise ValueError(f"register {register} has no SoC-facing ports")
        if field is None:
            return iface
        reg[field]  # raises KeyError naming the register when unknown
        try:
            return getattr(iface, _member_name(field) + suffix)
        except AttributeError:
            raise ValueError(f"{register}.{field} has no port {field.lower() + suffix!r}") from None

    # -- RTL --------------------------------------------------------------------------------
    def elaborate(self, platform) -> Module:
        m = Module()
        bus = self.bus
        rm = self._regmap

        # Pipelined: a request is taken in every cycle cyc & stb are seen (stall is never
        # raised); its ack follows in the next cycle.
        take = Signal()
        do_write = Signal()
        do_read = Signal()
        m.d.comb += [
            bus.stall.eq(0),
            take.eq(bus.cyc & bus.stb),
            do_write.eq(take & bus.we),
            do_read.eq(take & ~bus.we),
        ]
        m.d.sync += bus.ack.eq(take)
        wmask = Signal(DATA_WIDTH)
        m.d.comb += wmask.eq(Cat(*[bus.sel[i].replicate(8) for i in range(DATA_WIDTH // 8)]))
        wdata = Signal(DATA_WIDTH)
        m.d.comb += wdata.eq(bus.dat_w & wmask)

        hit = {reg.name: Signal(name=f"hit_{reg.name.lower()}") for reg in rm}
        m.d.comb += [hit[reg.name].eq(bus.adr == reg.word_address) for reg in rm]
        mapped = Signal()
        m.d.comb += mapped.eq(Cat(*hit.values()).any())

        # Internal strobes for the flags the bank sets itself.
        internal: dict[str, Signal] = {"bus_error": Signal(name="bus_error")}
        m.d.comb += internal["bus_error"].eq(take & ~mapped)

        # The FIFO windows (flushed by the map's soft-reset pulse, if it declares one).
        flush = Signal()
        fifos: dict[str, fifo.SyncFIFOBuffered] = {}
        for reg in rm:
            if reg.fifo is None:
                continue
            q = fifo.SyncFIFOBuffered(width=DATA_WIDTH, depth=self._fifo_depth)
            fifos[reg.name] = q
            m.submodules[f"fifo_{reg.name.lower()}"] = ResetInserter(flush)(q)
            port = getattr(self, _member_name(reg.name))
            if reg.fifo is Access.FIFO_W:
                over = Signal(name=f"overflow_{reg.name.lower()}")
                internal[f"overflow:{reg.name}"] = over
                m.d.comb += [
                    q.w_data.eq(wdata),
                    q.w_en.eq(do_write & hit[reg.name]),
                    over.eq(do_write & hit[reg.name] & ~q.w_rdy),
                    port.payload.eq(q.r_data),
                    port.valid.eq(q.r_rdy),
                    q.r_en.eq(port.ready),
                ]
            else:
                under = Signal(name=f"underflow_{reg.name.lower()}")
                internal[f"underflow:{reg.name}"] = under
                m.d.comb += [
                    q.w_data.eq(port.payload),
                    q.w_en.eq(port.valid),
                    port.ready.eq(q.w_rdy),
                    q.r_en.eq(do_read & hit[reg.name]),
                    under.eq(do_read & hit[reg.name] & ~q.r_rdy),
                ]

        rdata = Signal(DATA_WIDTH)
        read_terms = []
        for reg in rm:
            word = self._register_logic(m, reg, hit[reg.name], do_write, wdata, wmask, internal, fifos, flush)
            read_terms.append(word)
        # Read multiplexer on the word address (registered into dat_r with ack).
        with m.Switch(bus.adr):
            for reg, word in zip(rm, read_terms):
                with m.Case(reg.word_address):
                    m.d.comb += rdata.eq(word)
            with m.Default():
                m.d.comb += rdata.eq(0)
        with m.If(take):
            m.d.sync += bus.dat_r.eq(rdata)
        return m

    def _register_logic(self, m: Module, reg: Register, hit, do_write, wdata, wmask, internal, fifos, flush):
        """Storage and side effects of one register; returns its read-back word."""
        iface = getattr(self, _member_name(reg.name), None)
        word = Signal(DATA_WIDTH, name=f"rd_{reg.name.lower()}")
        wr = Signal(name=f"wr_{reg.name.lower()}")
        m.d.comb += wr.eq(do_write & hit)
        for f in reg.fields:
            n = _member_name(f.name)
            bits = wdata[f.lsb:f.lsb + f.width]
            value = None
            if f.access is Access.CONST:
                value = Const(self._const[(reg.name, f.name)], f.width)
            elif f.access is Access.RO:
                value = getattr(iface, n)
            elif f.access is Access.RW:
                sig = getattr(iface, n)
                with m.If(wr):
                    # byte lanes not selected keep their old bits
                    mask = wmask[f.lsb:f.lsb + f.width]
                    m.d.sync += sig.eq((sig & ~mask) | bits)
                value = sig
            elif f.access is Access.W1S:
                sig = getattr(iface, n)
                m.d.sync += sig.eq(0)
                with m.If(wr):
                    m.d.sync += sig.eq(bits)
                if self._is_flush(reg, f):
                    m.d.comb += flush.eq(sig.any())
                value = Const(0, f.width)
            elif f.access is Access.W1C:
                sig = getattr(iface, n)
                src = f.internal_source
                if src is None:
                    setter = getattr(iface, f"{n}_set")
                elif src == "bus_error":
                    setter = internal["bus_error"]
                else:
                    setter = internal[f.ref]
                with m.If(wr):
                    m.d.sync += sig.eq((sig & ~bits) | setter)
                with m.Else():
                    m.d.sync += sig.eq(sig | setter)
                value = sig
            elif f.access is Access.CNT:
                sig = getattr(iface, n)
                inc = getattr(iface, f"{n}_inc")
                with m.If(wr):
                    m.d.sync += sig.eq(bits)
                with m.Elif(inc):
                    m.d.sync += sig.eq(sig + 1)
                value = sig
            elif f.access is Access.FIFO_R:
                q = fifos[reg.name]
                value = Mux(q.r_rdy, q.r_data, 0)  # an empty FIFO reads 0
            elif f.access is Access.FIFO_W:
                value = Const(0, f.width)
            elif f.access is Access.FIFO_SPACE:
                q = fifos[f.ref]
                value = Const(self._fifo_depth, f.width) - q.level
            elif f.access is Access.FIFO_LEVEL:
                value = fifos[f.ref].level
            else:  # pragma: no cover - Access is closed
                raise AssertionError(f.access)
            m.d.comb += word[f.lsb:f.lsb + f.width].eq(value)
        return word

    def _is_flush(self, reg: Register, f: Field) -> bool:
        return self._regmap.fifo_flush == (reg.name, f.name)


def csr_manifest(bank: CsrBank, params: CsrParams, name: str = "sbpca_csr") -> dict:
    """Ports, the register map and the CONST values this bank reads back (``sbpca gen csr``)."""
    from .verilog import port_list

    return {
        "design": "csr",
        "top": name,
        "params": params.to_dict(),
        "clock": "clk (rising edge), synchronous active-high reset rst",
        "ports": port_list(bank),
        "bus": {"protocol": "Wishbone B4 pipelined (stall tied low, ack one cycle after each request)",
                "data_bits": DATA_WIDTH, "addr_bits": bank.regmap.addr_width},
        "regmap": bank.regmap.to_dict(),
        "constants": {f"{reg}.{fld}": value for (reg, fld), value in bank.const_values.items()},
    }
