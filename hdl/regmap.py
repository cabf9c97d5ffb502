"""The SBPCA control/status register map, declared once.

Every consumer is generated from :data:`REGS`:

* the RTL register bank (:class:`hdl.csr.CsrBank` lays out its ports and decoder
  from it),
* the firmware header ``firmware/sbpca_regs.h`` (:meth:`RegisterMap.to_c_header`),
* the Markdown table ``docs/REGISTERS.md`` (:meth:`RegisterMap.to_markdown`),
* Python constants for benches and tests (``REGS.CTRL.offset``,
  ``REGS.CTRL.START_BATCH.mask`` ...).

Run ``python -m hdl.regmap`` to rewrite the two committed generated files; a test
checks that they equal what this module generates.

Conventions: 32-bit registers at byte offsets (multiples of 4) inside a window of
``RegisterMap.window_bytes``; the bus is word addressed (``adr = offset >> 2``).
Each field has one access mode (:class:`Access`), in the spirit of amaranth-soc's
``csr.reg`` where a register's fields carry their own access.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from pymodel.formats import DEFAULT_FORMAT_SET, SBPCAFormats, get_format_set
from pymodel.saturation import SAT_NAMES

DATA_WIDTH = 32
"""Bus and register width in bits."""

LR_SCALE_FRAC = 24
"""Fraction bits of the unsigned learning-rate scale in ``LR_SCALE`` (Q8.24)."""

ID_MAGIC = 0x5BCA
REGMAP_VERSION = 4

_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")

HALF_BITS = 16
"""Width of one element slot when two elements share a 32-bit FIFO word."""


def elems_per_word(*bits: int) -> int:
    """Elements of these widths per 32-bit FIFO word: 2 (16-bit halves) when every width fits a
    half, else 1 (sign-extended to 32 bits)."""
    if not bits or any(isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= DATA_WIDTH for b in bits):
        raise ValueError(f"element widths must be integers in 1..{DATA_WIDTH}, not {bits!r}")
    return 2 if max(bits) <= HALF_BITS else 1


def words_per_vector(length: int, per_word: int) -> int:
    """FIFO words of one vector of ``length`` elements (each vector starts a new word)."""
    return -(-int(length) // int(per_word))


def pack_vector(values, per_word: int) -> list[int]:
    """One vector's FIFO words (the firmware's packing, Python twin for benches): with two per
    word, element 2i in bits [15:0] and 2i+1 in [31:16] as 16-bit two's complement, a missing
    last upper half 0; with one, the element as a 32-bit two's complement word."""
    vals = [int(v) for v in values]
    if per_word == 1:
        return [v & 0xFFFFFFFF for v in vals]
    if per_word != 2:
        raise ValueError(f"per_word must be 1 or 2, not {per_word!r}")
    for v in vals:
        if not -(1 << (HALF_BITS - 1)) <= v < (1 << (HALF_BITS - 1)):
            raise ValueError(f"element {v} does not fit a {HALF_BITS}-bit half word")
    out = []
    for i in range(0, len(vals), 2):
        hi = vals[i + 1] & 0xFFFF if i + 1 < len(vals) else 0
        out.append((vals[i] & 0xFFFF) | (hi << HALF_BITS))
    return out


def unpack_words(words, length: int, per_word: int) -> list[int]:
    """The ``length`` signed elements of one vector from its FIFO words (inverse of :func:`pack_vector`)."""
    if per_word == 1:
        vals = [int(w) & 0xFFFFFFFF for w in words]
        return [v - (1 << 32) if v >> 31 else v for v in vals][:length]
    out = []
    for w in words:
        for h in (int(w) & 0xFFFF, (int(w) >> HALF_BITS) & 0xFFFF):
            out.append(h - (1 << HALF_BITS) if h >> (HALF_BITS - 1) else h)
    if len(out) < length:
        raise ValueError(f"{len(words)} words hold {len(out)} elements, not {length}")
    return out[:length]


class Access(str, enum.Enum):
    """How software and hardware see one field.

    CONST      read-only, value fixed when the bank is built (dimensions, formats).
    RO         read-only, driven by the SoC (an input of the bank).
    RW         read/write by software, an output of the bank.
    W1S        write 1 to fire a one-cycle pulse output; reads 0.
    W1C        sticky flag set by hardware, write 1 to clear; the flag is an output.
    CNT        counter incremented by a hardware strobe; a bus write loads it.
    FIFO_W     write port of a FIFO (each write pushes one word); reads 0.
    FIFO_R     read port of a FIFO (each read pops one word); writes are ignored.
    FIFO_SPACE read-only free entries of the FIFO_W register named by ``ref``.
    FIFO_LEVEL read-only filled entries of the FIFO_R register named by ``ref``.
    """

    CONST = "const"
    RO = "ro"
    RW = "rw"
    W1S = "w1s"
    W1C = "w1c"
    CNT = "cnt"
    FIFO_W = "fifo_w"
    FIFO_R = "fifo_r"
    FIFO_SPACE = "fifo_space"
    FIFO_LEVEL = "fifo_level"

    @property
    def software(self) -> str:
        """Short software view used in the tables (``R``, ``RW``, ``W1C`` ...)."""
        return {
            "const": "R",
            "ro": "R",
            "rw": "RW",
            "w1s": "W1S",
            "w1c": "R/W1C",
            "cnt": "R/W",
            "fifo_w": "W (push)",
            "fifo_r": "R (pop)",
            "fifo_space": "R",
            "fifo_level": "R",
        }[self.value]

    @property
    def hardware(self) -> str:
        """What the SoC sees of a field of this mode."""
        return {
            "const": "constant",
            "ro": "input",
            "rw": "output",
            "w1s": "pulse output",
            "w1c": "flag output, set strobe input",
            "cnt": "increment strobe input",
            "fifo_w": "stream output",
            "fifo_r": "stream input",
            "fifo_space": "internal",
            "fifo_level": "internal",
        }[self.value]


# Internal set sources for W1C flags that the bank raises itself.
INTERNAL_SOURCES = ("overflow", "underflow", "bus_error")


@dataclass(frozen=True)
class Field:
    """A bit range of a register with one access mode.

    ``ref`` names another register for FIFO_SPACE/FIFO_LEVEL (the FIFO it reports),
    and for W1C flags the bank sets itself it is ``"overflow:<FIFO_W reg>"``,
    ``"underflow:<FIFO_R reg>"`` or ``"bus_error"``.
    """

    name: str
    lsb: int
    width: int
    access: Access
    reset: int = 0
    desc: str = ""
    ref: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "access", Access(self.access))
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ValueError(f"field name must be UPPER_CASE, not {self.name!r}")
        for attr in ("lsb", "width", "reset"):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"field {self.name}: {attr} must be an integer, not {value!r}")
        if not 0 <= self.lsb < DATA_WIDTH:
            raise ValueError(f"field {self.name}: lsb must be in 0..{DATA_WIDTH - 1}, not {self.lsb}")
        if not 1 <= self.width <= DATA_WIDTH - self.lsb:
            raise ValueError(
                f"field {self.name}: width {self.width} at lsb {self.lsb} does not fit {DATA_WIDTH} bits"
            )
        if not 0 <= self.reset < (1 << self.width):
            raise ValueError(f"field {self.name}: reset {self.reset:#x} does not fit {self.width} bits")
        needs_ref = self.access in (Access.FIFO_SPACE, Access.FIFO_LEVEL)
        if needs_ref and not self.ref:
            raise ValueError(f"field {self.name}: {self.access.value} needs ref= naming its FIFO register")
        if self.ref is not None and not needs_ref and self.access is not Access.W1C:
            raise ValueError(f"field {self.name}: ref= is only meaningful for FIFO status and W1C fields")

    @property
    def msb(self) -> int:
        return self.lsb + self.width - 1

    @property
    def mask(self) -> int:
        """Mask of the field in its register (already shifted)."""
        return ((1 << self.width) - 1) << self.lsb

    @property
    def shift(self) -> int:
        return self.lsb

    @property
    def bits(self) -> str:
        return f"[{self.msb}:{self.lsb}]" if self.width > 1 else f"[{self.lsb}]"

    @property
    def internal_source(self) -> str | None:
        """``overflow``/``underflow``/``bus_error`` for a W1C flag the bank sets itself."""
        if self.access is not Access.W1C or self.ref is None:
            return None
        return self.ref.split(":", 1)[0]

    def get(self, word: int) -> int:
        """Extract this field from a register word."""
        return (int(word) >> self.lsb) & ((1 << self.width) - 1)

    def put(self, value: int) -> int:
        """Place ``value`` into this field's bits (ValueError when it does not fit)."""
        value = int(value)
        if not 0 <= value < (1 << self.width):
            raise ValueError(f"value {value:#x} does not fit field {self.name}{self.bits}")
        return value << self.lsb


@dataclass(frozen=True)
class Register:
    """One 32-bit register: name, byte offset, fields, description."""

    name: str
    offset: int
    fields: tuple[Field, ...]
    desc: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields))
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ValueError(f"register name must be UPPER_CASE, not {self.name!r}")
        if isinstance(self.offset, bool) or not isinstance(self.offset, int):
            raise TypeError(f"register {self.name}: offset must be an integer, not {self.offset!r}")
        if self.offset < 0 or self.offset % 4:
            raise ValueError(f"register {self.name}: offset {self.offset:#x} is not a multiple of 4")
        if not self.fields:
            raise ValueError(f"register {self.name} has no fields")
        used = 0
        names = set()
        for f in self.fields:
            if not isinstance(f, Field):
                raise TypeError(f"register {self.name}: fields must be Field, not {type(f).__name__}")
            if f.name in names:
                raise ValueError(f"register {self.name}: duplicate field {f.name}")
            names.add(f.name)
            if used & f.mask:
                raise ValueError(f"register {self.name}: field {f.name}{f.bits} overlaps another field")
            used |= f.mask
        fifo = [f for f in self.fields if f.access in (Access.FIFO_W, Access.FIFO_R)]
        if fifo and len(self.fields) != 1:
            raise ValueError(f"register {self.name}: a FIFO port must be the register's only field")
        if fifo and fifo[0].width != DATA_WIDTH:
            raise ValueError(f"register {self.name}: a FIFO port must be {DATA_WIDTH} bits wide")

    def __getattr__(self, name: str) -> Field:
        # Only called when normal lookup fails: REGS.CTRL.START_BATCH
        for f in object.__getattribute__(self, "fields"):
            if f.name == name:
                return f
        raise AttributeError(f"register {object.__getattribute__(self, 'name')} has no field {name!r}")

    def __getitem__(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r}")

    @property
    def reset(self) -> int:
        """Reset value as software reads it (CONST fields at their declared default)."""
        word = 0
        for f in self.fields:
            if f.access in (Access.CONST, Access.RW, Access.CNT):
                word |= f.reset << f.lsb
        return word

    @property
    def word_address(self) -> int:
        return self.offset >> 2

    @property
    def access_summary(self) -> str:
        modes = sorted({f.access.software for f in self.fields})
        return "/".join(modes) if len(modes) > 1 else modes[0]

    @property
    def fifo(self) -> Access | None:
        """FIFO_W or FIFO_R when this register is a FIFO port."""
        acc = self.fields[0].access
        return acc if acc in (Access.FIFO_W, Access.FIFO_R) else None

    def pack(self, **values: int) -> int:
        """Build a register word from field values: ``REGS.CTRL.pack(START_BATCH=1)``."""
        word = 0
        for name, value in values.items():
            word |= self[name].put(value)
        return word

    def unpack(self, word: int) -> dict[str, int]:
        """Split a register word into its field values."""
        return {f.name: f.get(word) for f in self.fields}


@dataclass(frozen=True)
class RegisterMap:
    """An ordered set of registers with generators for every consumer."""

    name: str
    registers: tuple[Register, ...]
    window_bytes: int = 0x100
    prefix: str = "SBPCA"
    constants: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    fifo_flush: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "registers", tuple(sorted(self.registers, key=lambda r: r.offset)))
        object.__setattr__(self, "constants", dict(self.constants))
        if self.window_bytes < 4 or self.window_bytes & (self.window_bytes - 1):
            raise ValueError(f"window_bytes must be a power of two >= 4, not {self.window_bytes}")
        names, offsets = set(), set()
        for reg in self.registers:
            if reg.name in names:
                raise ValueError(f"duplicate register name {reg.name}")
            if reg.offset in offsets:
                raise ValueError(f"register {reg.name}: offset {reg.offset:#x} is already used")
            if reg.offset >= self.window_bytes:
                raise ValueError(
                    f"register {reg.name}: offset {reg.offset:#x} is outside the {self.window_bytes:#x}-byte window"
                )
            names.add(reg.name)
            offsets.add(reg.offset)
        for reg in self.registers:
            for f in reg.fields:
                self._check_ref(reg, f)
        if self.fifo_flush is not None:
            reg_name, field_name = self.fifo_flush
            reg = self._by_name().get(reg_name)
            if reg is None or field_name not in {f.name for f in reg.fields} \
                    or reg[field_name].access is not Access.W1S:
                raise ValueError(f"fifo_flush {self.fifo_flush!r} must name a W1S field")

    def _check_ref(self, reg: Register, f: Field) -> None:
        if f.access in (Access.FIFO_SPACE, Access.FIFO_LEVEL):
            want = Access.FIFO_W if f.access is Access.FIFO_SPACE else Access.FIFO_R
            target = self._by_name().get(f.ref or "")
            if target is None or target.fifo is not want:
                raise ValueError(f"{reg.name}.{f.name}: ref {f.ref!r} must name a {want.value} register")
        source = f.internal_source
        if source is not None:
            if source not in INTERNAL_SOURCES:
                raise ValueError(f"{reg.name}.{f.name}: unknown internal source {f.ref!r}")
            if source in ("overflow", "underflow"):
                want = Access.FIFO_W if source == "overflow" else Access.FIFO_R
                target_name = f.ref.split(":", 1)[1] if ":" in f.ref else ""
                target = self._by_name().get(target_name)
                if target is None or target.fifo is not want:
                    raise ValueError(f"{reg.name}.{f.name}: ref {f.ref!r} must name a {want.value} register")

    def _by_name(self) -> dict[str, Register]:
        return {r.name: r for r in self.registers}

    # -- Python access ------------------------------------------------------------------
    def __getattr__(self, name: str) -> Register:
        for reg in object.__getattribute__(self, "registers"):
            if reg.name == name:
                return reg
        raise AttributeError(f"register map has no register {name!r}")

    def __getitem__(self, name: str) -> Register:
        try:
            return self._by_name()[name]
        except KeyError:
            raise KeyError(f"register map has no register {name!r}") from None

    def __iter__(self) -> Iterator[Register]:
        return iter(self.registers)

    def __len__(self) -> int:
        return len(self.registers)

    @property
    def addr_width(self) -> int:
        """Width of the word address of the bus window."""
        return max(1, (self.window_bytes // 4 - 1).bit_length())

    def at(self, offset: int) -> Register | None:
        """The register at byte ``offset`` (None when unmapped)."""
        for reg in self.registers:
            if reg.offset == offset:
                return reg
        return None

    def const_values(self, **overrides: int) -> dict[tuple[str, str], int]:
        """Values of every CONST field: declared defaults, replaced by ``REG_FIELD=value``."""
        values: dict[tuple[str, str], int] = {}
        known = {}
        for reg in self.registers:
            for f in reg.fields:
                if f.access is Access.CONST:
                    values[(reg.name, f.name)] = f.reset
                    known[f"{reg.name}_{f.name}"] = (reg, f)
        for key, value in overrides.items():
            if key not in known:
                raise ValueError(f"unknown constant {key!r}; choose one of {sorted(known)}")
            reg, f = known[key]
            f.put(value)  # raises when it does not fit
            values[(reg.name, f.name)] = int(value)
        return values

    # -- generators -----------------------------------------------------------------------
    def to_c_header(self) -> str:
        """The firmware header: offsets, field shifts/masks/widths, reset values."""
        p = self.prefix
        guard = f"{p}_REGS_H"
        lines = [
            "/*",
            f" * {p} register map ({self.name}), version {REGMAP_VERSION}.",
            " * GENERATED by `python -m hdl.regmap` from hdl/regmap.py -- do not edit.",
            " * Offsets are byte offsets from the bank's base address; registers are 32 bits.",
            " */",
            f"#ifndef {guard}",
            f"#define {guard}",
            "",
            f"#define {p}_REG_WINDOW_BYTES 0x{self.window_bytes:03X}u",
            f"#define {p}_REG_ADDR_WIDTH {self.addr_width}u",
        ]
        for cname, (value, desc) in self.constants.items():
            shown = f"0x{value:X}u" if value > 255 else f"{value}u"
            lines.append(f"#define {p}_{cname} {shown} /* {_ascii(desc)} */")
        for reg in self.registers:
            lines += ["", f"/* {reg.name} @ 0x{reg.offset:03X}: {_ascii(reg.desc)} */"]
            lines.append(f"#define {p}_{reg.name} 0x{reg.offset:03X}u")
            lines.append(f"#define {p}_{reg.name}_RESET 0x{reg.reset:08X}u")
            for f in reg.fields:
                stem = f"{p}_{reg.name}_{f.name}"
                lines.append(f"#define {stem}_SHIFT {f.lsb}u")
                lines.append(f"#define {stem}_WIDTH {f.width}u")
                lines.append(f"#define {stem}_MASK 0x{f.mask:08X}u")
        lines += [
            "",
            f"/* Extract / place a field: {p}_GET(CTRL_START_BATCH, word), {p}_PUT(CTRL_START_BATCH, 1). */",
            f"#define {p}_GET(F, word) (((word) & {p}_##F##_MASK) >> {p}_##F##_SHIFT)",
            f"#define {p}_PUT(F, value) (((uint32_t)(value) << {p}_##F##_SHIFT) & {p}_##F##_MASK)",
            "",
            f"#endif /* {guard} */",
            "",
        ]
        macros = [ln.split()[1] for ln in lines if ln.startswith("#define ")]
        dupes = sorted({m for m in macros if macros.count(m) > 1})
        if dupes:
            raise ValueError(f"register map gives duplicate C macro names: {dupes}")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The register table for ``docs/REGISTERS.md``."""
        out = [
            f"# {self.prefix} register map",
            "",
            f"GENERATED by `python -m hdl.regmap` from `hdl/regmap.py` ({self.name}, version "
            f"{REGMAP_VERSION}) -- do not edit by hand.",
            "",
            f"32-bit registers on a Wishbone B4 pipelined target (`hdl/csr.py`), byte offsets in a "
            f"0x{self.window_bytes:X}-byte window (word address = offset >> 2, "
            f"{self.addr_width} address bits). Unmapped addresses read 0, ignore writes and set "
            f"`ERRORS.BUS_ERROR`.",
            "",
            "Reset values of constant (`const`) fields are the defaults of the declaration "
            "(a = b = 64, k = 4, P = 8, format set q16); a bank built for other parameters "
            "reads back its own values.",
            "",
            "| Mode | Software | Hardware (ports of `CsrBank`) |",
            "|---|---|---|",
            *[f"| `{a.value}` | {a.software} | {a.hardware} |" for a in Access],
            "",
            "## Summary",
            "",
            "| Offset | Register | Access | Reset | Description |",
            "|---|---|---|---|---|",
        ]
        for reg in self.registers:
            out.append(
                f"| 0x{reg.offset:03X} | `{reg.name}` | {reg.access_summary} | 0x{reg.reset:08X} | "
                f"{_one_line(reg.desc)} |"
            )
        if self.constants:
            out += ["", "## Constants", "", "| Name | Value | Meaning |", "|---|---|---|"]
            for cname, (value, desc) in self.constants.items():
                out.append(f"| `{self.prefix}_{cname}` | {value if value <= 255 else hex(value)} | {desc} |")
        out += ["", "## Registers"]
        for reg in self.registers:
            out += [
                "",
                f"### `{reg.name}` (0x{reg.offset:03X})",
                "",
                reg.desc,
                "",
                "| Bits | Field | Access | Reset | Hardware | Description |",
                "|---|---|---|---|---|---|",
            ]
            for f in sorted(reg.fields, key=lambda f: -f.lsb):
                hw = f.access.hardware
                if f.ref:
                    hw += f" ({f.ref})"
                out.append(
                    f"| {f.bits} | `{f.name}` | {f.access.software} | 0x{f.reset:X} | {hw} | {f.desc} |"
                )
        out.append("")
        return "\n".join(out)

    def to_dict(self) -> dict:
        """JSON-friendly description (for manifests and reports)."""
        return {
            "name": self.name,
            "window_bytes": self.window_bytes,
            "registers": [
                {
                    "name": r.name,
                    "offset": r.offset,
                    "desc": r.desc,
                    "fields": [
                        {"name": f.name, "lsb": f.lsb, "width": f.width, "access": f.access.value,
                         "reset": f.reset, "desc": f.desc, "ref": f.ref}
                        for f in r.fields
                    ],
                }
                for r in self.registers
            ],
        }


def _one_line(text: str) -> str:
    return " ".join(text.split())


_ASCII = {"σ": "sigma", "Δ": "Delta", "δ": "delta", "η": "eta", "–": "-", "—": "-", "≥": ">=",
          "≤": "<=", "×": "x"}


def _ascii(text: str) -> str:
    """One-line ASCII rendering for C comments (the header must stay plain C99 source)."""
    out = "".join(_ASCII.get(ch, ch) for ch in _one_line(text)).replace("*/", "* /")
    if not out.isascii():
        raise ValueError(f"no ASCII rendering for {out!r}; extend hdl.regmap._ASCII")
    return out


def _build_sbpca_map() -> RegisterMap:
    fmt = get_format_set(DEFAULT_FORMAT_SET)
    C, RO, RW, W1S, W1C, CNT = Access.CONST, Access.RO, Access.RW, Access.W1S, Access.W1C, Access.CNT
    regs = [
        Register("ID", 0x000, (
            Field("VERSION", 0, 16, C, REGMAP_VERSION, "Register-map version."),
            Field("MAGIC", 16, 16, C, ID_MAGIC, "Identifies an SBPCA engine bank (0x5BCA)."),
        ), "Identification: firmware checks it before anything else."),
        Register("DIMS", 0x004, (
            Field("ROWS", 0, 16, C, 64, "a: rows (outputs) of the layer, length of δ and Δ columns."),
            Field("COLS", 16, 16, C, 64, "b: columns (inputs) of the layer, length of x and X columns."),
        ), "Layer dimensions the engine was built for."),
        Register("PARAMS", 0x008, (
            Field("RANK", 0, 8, C, 4, "k: rank of the estimate (number of factor pairs)."),
            Field("LANES", 8, 8, C, 8, "P: parallel multiply-accumulate lanes."),
            Field("FIFO_DEPTH", 16, 16, C, 16, "Depth in words of the SAMPLE_DATA, FACTOR_DATA and STATE_DATA FIFOs."),
        ), "Build-time engine parameters."),
        Register("FORMAT_IN", 0x00C, (
            Field("X_BITS", 0, 8, C, fmt.x.bits, "Total bits of an x element."),
            Field("X_FRAC", 8, 8, C, fmt.x.frac, "Fraction bits of an x element."),
            Field("DELTA_BITS", 16, 8, C, fmt.delta.bits, "Total bits of a δ element."),
            Field("DELTA_FRAC", 24, 8, C, fmt.delta.frac, "Fraction bits of a δ element."),
        ), "Fixed-point formats of the streamed inputs (from pymodel.formats)."),
        Register("FORMAT_OUT", 0x010, (
            Field("STATE_BITS", 0, 8, C, fmt.state.bits, "Total bits of an X or Δ entry."),
            Field("STATE_FRAC", 8, 8, C, fmt.state.frac, "Fraction bits of an X or Δ entry."),
            Field("SIGMA_BITS", 16, 8, C, fmt.sigma.bits, "Total bits of σ."),
            Field("SIGMA_FRAC", 24, 8, C, fmt.sigma.frac, "Fraction bits of σ."),
        ), "Fixed-point formats of the words read from FACTOR_DATA (from pymodel.formats)."),
        Register("PACKING", 0x018, (
            Field("SAMPLE_ELEMS", 0, 4, C, elems_per_word(fmt.x.bits, fmt.delta.bits),
                  "Elements per SAMPLE_DATA word: 2 when the x and δ formats fit 16 bits (element 2i in "
                  "bits [15:0], 2i+1 in [31:16], each sign-extended to 16 bits), else 1 (sign-extended to 32)."),
            Field("STATE_ELEMS", 4, 4, C, elems_per_word(fmt.state.bits),
                  "Elements per FACTOR_DATA/STATE_DATA word for Δ and X (same rule, state format); σ words "
                  "always carry one σ each."),
        ), "How elements share the 32-bit FIFO words. Each vector (x, δ, Δ_c, X_c) starts a new word; "
           "the upper half of a vector's last word, when its length is odd, is written as 0 and read as 0."),
        Register("MAX_BATCH", 0x014, (
            Field("SAMPLES", 0, 32, C, 65535, "max_batch: the most samples one batch may have (it sizes the "
                  "engine's sample count n); a larger batch raises ERRORS.BATCH_LIMIT."),
        ), "Largest batch the engine was built for (firmware refuses larger BATCH_SIZE values)."),
        Register("CTRL", 0x020, (
            Field("START_BATCH", 0, 1, W1S, 0, "Begin a batch: the carried state counts as one sub-batch."),
            Field("END_BATCH", 1, 1, W1S, 0, "No more samples in this batch: process the last (partial) sub-batch."),
            Field("READ_SIGMA", 2, 1, W1S, 0, "Push the k σ words into FACTOR_DATA."),
            Field("READ_FACTORS", 3, 1, W1S, 0, "Push the k factor pairs into FACTOR_DATA: for c = 0..k-1, Δ_c (a words) then X_c (b words)."),
            Field("APPLY_UPDATE", 4, 1, W1S, 0, "Apply the k rank-1 row/column updates to the array."),
            Field("SOFT_RESET", 5, 1, W1S, 0, "Reset everything behind the bank: the open batch is dropped, "
                  "readout and update streams stop, the FIFOs are flushed, the driver's LFSRs return to their "
                  "seeds and the engine's control, σ, flags and counts return to reset. The engine's X/Δ "
                  "memories keep stale contents, so STATUS.STATE_VALID reads 0 and START_BATCH is refused "
                  "until a complete state has been written through STATE_DATA. Configuration registers and "
                  "counters of the bank keep their values."),
            Field("CLEAR", 6, 1, W1S, 0, "Clear the engine's sticky status (its saturation flags, σ-guard and "
                  "degenerate counts and STATUS.ENGINE_ERROR) so that the next event raises ERRORS again; "
                  "ERRORS itself is cleared by writing 1s to it."),
        ), "Control pulses (write 1 to fire; several bits fire together, lowest first in meaning)."),
        Register("STATUS", 0x024, (
            Field("BUSY", 0, 1, RO, 0, "The engine is processing a sub-batch or a readout."),
            Field("DONE", 1, 1, RO, 0, "The batch has been processed; σ and the factors are ready. Cleared by START_BATCH."),
            Field("UPD_BUSY", 2, 1, RO, 0, "The row/column drivers are applying updates."),
            Field("UPD_DONE", 3, 1, RO, 0, "All k updates of the last APPLY_UPDATE were applied. Cleared by APPLY_UPDATE and START_BATCH."),
            Field("ENGINE_ERROR", 4, 1, RO, 0, "The engine's sticky error: a batch had more than MAX_BATCH samples "
                  "(raised ERRORS.BATCH_LIMIT). Cleared only by CTRL.CLEAR."),
            Field("STATE_VALID", 5, 1, RO, 0, "The engine holds a consistent state (X, Δ, σ): 1 after power-on "
                  "(the build-time state), 0 from CTRL.SOFT_RESET or the first STATE_DATA word of a load until "
                  "the load's last σ word has reached the engine."),
        ), "Engine and driver status."),
        Register("ERRORS", 0x028, (
            Field("SATURATION", 0, 1, W1C, 0, "A datapath value saturated to its format's range: a new one of "
                  f"the engine's {len(SAT_NAMES)} sticky stage flags ({', '.join(SAT_NAMES)}; "
                  "SBPCA_SAT_STAGES) rose."),
            Field("SIGMA_GUARD", 1, 1, W1C, 0, "σ fell below sigma_min and was replaced by it in 1/(nσ)."),
            Field("DEGENERATE", 2, 1, W1C, 0, "Gram–Schmidt met a column of zero norm."),
            Field("PROTOCOL", 3, 1, W1C, 0, "The SoC saw a protocol error (e.g. samples outside a batch, a readout while busy)."),
            Field("SAMPLE_OVERFLOW", 4, 1, W1C, 0, "A SAMPLE_DATA write found the FIFO full; the word was dropped.", "overflow:SAMPLE_DATA"),
            Field("FACTOR_UNDERFLOW", 5, 1, W1C, 0, "A FACTOR_DATA read found the FIFO empty and returned 0.", "underflow:FACTOR_DATA"),
            Field("BUS_ERROR", 6, 1, W1C, 0, "A bus access hit an unmapped address.", "bus_error"),
            Field("BATCH_LIMIT", 7, 1, W1C, 0, "The engine received a batch of more than MAX_BATCH samples (its "
                  "error output rose); σ and the factors of that batch are not valid."),
        ), "Sticky error flags: set by hardware, write 1 to clear."),
        Register("BATCH_SIZE", 0x030, (
            Field("SAMPLES", 0, 32, RW, 64, "B: samples in a batch (the scale factor of the update)."),
        ), "Batch size."),
        Register("SUB_BATCH", 0x034, (
            Field("SAMPLES", 0, 16, RW, 16, "s: samples per sub-batch (1..BATCH_SIZE)."),
        ), "Sub-batch size."),
        Register("UPDATE_CFG", 0x038, (
            Field("SCHEME", 0, 2, RW, 0, "Pulse scheme: 0 stochastic coincidence, 1 deterministic."),
            Field("MANAGE", 2, 1, RW, 1, "Update management: rescale u and v by a common factor."),
            Field("BL", 8, 16, RW, 31, "Pulse-train length BL (time slots per update)."),
        ), "Crossbar update configuration."),
        Register("LR_SCALE", 0x03C, (
            Field("VALUE", 0, 32, RW, 1 << (LR_SCALE_FRAC - 4),
                  f"Learning-rate scale η, unsigned Q{32 - LR_SCALE_FRAC}.{LR_SCALE_FRAC}."),
        ), "Learning-rate scale applied to the row vectors B σ_c Δ_c."),
        Register("SEED", 0x040, (
            Field("VALUE", 0, 32, RW, 1, "LFSR seed of the stochastic scheme (non-zero)."),
        ), "Random seed of the pulse generators."),
        Register("SAMPLES", 0x050, (
            Field("COUNT", 0, 32, CNT, 0, "Samples accepted by the engine."),
        ), "Sample counter (a write loads it; write 0 to clear)."),
        Register("SUB_BATCHES", 0x054, (
            Field("COUNT", 0, 32, CNT, 0, "Sub-batches processed."),
        ), "Sub-batch counter (a write loads it)."),
        Register("CYCLES", 0x058, (
            Field("COUNT", 0, 32, CNT, 0, "Clock cycles with the engine busy."),
        ), "Busy-cycle counter (a write loads it)."),
        Register("UPDATES", 0x05C, (
            Field("COUNT", 0, 32, CNT, 0, "Rank-1 row/column updates applied to the array."),
        ), "Array-update counter (a write loads it)."),
        Register("SAMPLE_DATA", 0x060, (
            Field("WORD", 0, 32, Access.FIFO_W, 0,
                  "PACKING.SAMPLE_ELEMS elements: per sample the b elements of x, then the a elements of δ, "
                  "each vector starting a new word."),
        ), "Sample window: each write pushes one word towards the engine (one write per cycle on the "
           "pipelined bus)."),
        Register("FACTOR_DATA", 0x064, (
            Field("WORD", 0, 32, Access.FIFO_R, 0,
                  "A σ word (one σ, sign-extended) after READ_SIGMA; after READ_FACTORS, PACKING.STATE_ELEMS "
                  "elements per word: for c = 0..k-1, Δ_c then X_c, each vector starting a new word."),
        ), "Factor window: each read pops one word that the engine pushed after READ_SIGMA or READ_FACTORS."),
        Register("FIFO_STATUS", 0x068, (
            Field("SAMPLE_SPACE", 0, 16, Access.FIFO_SPACE, 0, "Free words in the SAMPLE_DATA FIFO.", "SAMPLE_DATA"),
            Field("FACTOR_LEVEL", 16, 16, Access.FIFO_LEVEL, 0, "Words waiting in the FACTOR_DATA FIFO.", "FACTOR_DATA"),
        ), "FIFO fill state: write up to SAMPLE_SPACE words, read up to FACTOR_LEVEL words without checking "
           "(after reset SAMPLE_SPACE reads PARAMS.FIFO_DEPTH)."),
        Register("STATE_DATA", 0x06C, (
            Field("WORD", 0, 32, Access.FIFO_W, 0,
                  "State words as READ_FACTORS delivers them (for c = 0..k-1, Δ_c then X_c, PACKING.STATE_ELEMS "
                  "elements per word, each vector starting a new word), then one word per σ_0..σ_{k-1}."),
        ), "State load window: a complete state (k(a+b) + k words) replaces the engine's X, Δ and σ at a "
           "batch boundary (after SOFT_RESET, or to restore a checkpoint)."),
        Register("STATE_STATUS", 0x070, (
            Field("SPACE", 0, 16, Access.FIFO_SPACE, 0, "Free words in the STATE_DATA FIFO.", "STATE_DATA"),
        ), "State-load FIFO fill state: write up to SPACE words without checking."),
    ]
    constants = {
        "ID_MAGIC": (ID_MAGIC, "value of ID.MAGIC"),
        "REGMAP_VERSION": (REGMAP_VERSION, "value of ID.VERSION this header describes"),
        "LR_SCALE_FRAC": (LR_SCALE_FRAC, "fraction bits of LR_SCALE.VALUE"),
        "SCHEME_STOCHASTIC": (0, "UPDATE_CFG.SCHEME: stochastic coincidence"),
        "SCHEME_DETERMINISTIC": (1, "UPDATE_CFG.SCHEME: deterministic pulse count x amplitude"),
        "SAT_STAGES": (len(SAT_NAMES), "engine saturation stages ORed into ERRORS.SATURATION, in status-bit "
                                      "order: " + " ".join(SAT_NAMES)),
    }
    return RegisterMap(name="sbpca-engine-csr", registers=tuple(regs), window_bytes=0x100,
                       constants=constants, fifo_flush=("CTRL", "SOFT_RESET"))


REGS: RegisterMap = _build_sbpca_map()
"""The SBPCA engine's register map (the one declaration)."""


def build_constants(
    *,
    rows: int,
    cols: int,
    rank: int,
    lanes: int = 1,
    fifo_depth: int = 16,
    formats: "str | SBPCAFormats" = DEFAULT_FORMAT_SET,
    max_batch: int = 65535,
) -> dict[str, int]:
    """CONST-field overrides for a bank built for one engine configuration.

    The result goes to ``CsrBank(constants=...)``; formats come from ``pymodel.formats``.
    """
    fmt = get_format_set(formats)
    values = {
        "DIMS_ROWS": rows,
        "DIMS_COLS": cols,
        "PARAMS_RANK": rank,
        "PARAMS_LANES": lanes,
        "PARAMS_FIFO_DEPTH": fifo_depth,
        "FORMAT_IN_X_BITS": fmt.x.bits,
        "FORMAT_IN_X_FRAC": fmt.x.frac,
        "FORMAT_IN_DELTA_BITS": fmt.delta.bits,
        "FORMAT_IN_DELTA_FRAC": fmt.delta.frac,
        "FORMAT_OUT_STATE_BITS": fmt.state.bits,
        "FORMAT_OUT_STATE_FRAC": fmt.state.frac,
        "FORMAT_OUT_SIGMA_BITS": fmt.sigma.bits,
        "FORMAT_OUT_SIGMA_FRAC": fmt.sigma.frac,
        "MAX_BATCH_SAMPLES": max_batch,
        "PACKING_SAMPLE_ELEMS": elems_per_word(fmt.x.bits, fmt.delta.bits),
        "PACKING_STATE_ELEMS": elems_per_word(fmt.state.bits),
    }
    for name, value in (("rows", rows), ("cols", cols), ("rank", rank), ("lanes", lanes),
                        ("fifo_depth", fifo_depth), ("max_batch", max_batch)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an integer, not {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
    REGS.const_values(**values)  # range-checks every value against its field
    return values


ROOT = Path(__file__).resolve().parent.parent
C_HEADER_PATH = ROOT / "firmware" / "sbpca_regs.h"
MARKDOWN_PATH = ROOT / "docs" / "REGISTERS.md"


def write_generated(root: Path = ROOT) -> list[Path]:
    """Rewrite the committed generated files (C header, Markdown table)."""
    out = []
    for rel, text in (("firmware/sbpca_regs.h", REGS.to_c_header()), ("docs/REGISTERS.md", REGS.to_markdown())):
        path = Path(root) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        out.append(path)
    return out


if __name__ == "__main__":  # pragma: no cover - developer tool
    for p in write_generated():
        print(f"wrote {p}")
