"""The driver's own formats and parameters, declared once for the golden model and the RTL.

:class:`DriverParams` fixes everything a pulse schedule depends on: array size,
scheme, the longest burst ``bl_max``, the input element format (the engine's
``state`` format from :mod:`pymodel.formats`), the scale-register format, the
probability (threshold) width, the LFSR family and its per-lane seeds, and the
deterministic level-code width.  ``hdl/driver.py`` sizes every signal from it and
``sbpca gen driver`` writes it into the JSON manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..fixedpoint import Fmt, Overflow, Rounding
from ..formats import get_format_set
from .lfsr import LfsrSpec, lane_seeds

SCHEMES = ("stochastic", "deterministic")

# Scale registers: unsigned magnitudes held in a signed Fmt (the sign bit stays 0).
# Q12.20: values up to 2048 with a resolution of about 1e-6.
DEFAULT_SCALE_FMT = Fmt(32, 20, Rounding.HALF_UP, Overflow.SATURATE)
MAX_BL = 4095
MAX_LANES = 4096


def _check_int(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__} ({value!r})")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, not {value!r}")
    return int(value)


@dataclass(frozen=True)
class DriverParams:
    """Parameters of one row/column driver (``rows`` = a outputs, ``cols`` = b inputs).

    rows, cols   -- a row drivers (the row vector u) and b column drivers (column vector v)
    scheme       -- 'stochastic' (coincidence of random pulses) or 'deterministic'
                    (signed row level code x column pulse count)
    bl_max       -- the longest burst (time slots per rank-1 update) the hardware supports
    state        -- format of the streamed vector elements (the engine's ``state`` format)
    scale        -- format of the row/column scale registers (non-negative values)
    prob_bits    -- P: stochastic thresholds are ``round(p * 2**P)`` in 0..2**P
    lfsr         -- LFSR width, taps and leap (steps per slot)
    seed         -- derives the per-lane LFSR seeds when ``seeds`` is not given
    seeds        -- explicit per-lane seeds: rows first, then columns (a + b values)
    level_bits   -- deterministic row level code width incl. sign: |level| <= 2**(level_bits-1)-1
    """

    rows: int
    cols: int
    scheme: str = "stochastic"
    bl_max: int = 31
    state: Fmt = field(default_factory=lambda: get_format_set("q16").state)
    scale: Fmt = DEFAULT_SCALE_FMT
    prob_bits: int = 12
    lfsr: LfsrSpec = field(default_factory=LfsrSpec)
    seed: int = 0
    seeds: tuple[int, ...] | None = None
    level_bits: int = 4

    def __post_init__(self) -> None:
        _check_int("rows", self.rows, 1, MAX_LANES)
        _check_int("cols", self.cols, 1, MAX_LANES)
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, not {self.scheme!r}")
        _check_int("bl_max", self.bl_max, 1, MAX_BL)
        if not isinstance(self.state, Fmt):
            raise TypeError(f"state must be a Fmt, not {type(self.state).__name__}")
        if not isinstance(self.scale, Fmt):
            raise TypeError(f"scale must be a Fmt, not {type(self.scale).__name__}")
        if not isinstance(self.lfsr, LfsrSpec):
            raise TypeError(f"lfsr must be an LfsrSpec, not {type(self.lfsr).__name__}")
        if self.state.bits > 32:
            raise ValueError(f"state format {self.state} is wider than the 32 bits the driver supports")
        if self.scale.bits > 40:
            raise ValueError(f"scale format {self.scale} is wider than the 40 bits the driver supports")
        _check_int("prob_bits", self.prob_bits, 1, self.lfsr.width)
        _check_int("level_bits", self.level_bits, 2, 16)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        if self.threshold_shift < 1:
            raise ValueError(
                f"state.frac + scale.frac - shift_bits must be >= 1 (got {self.threshold_shift}): "
                f"give the scale format more fraction bits than {self.scale.frac}"
            )
        if self.seeds is None:
            object.__setattr__(self, "seeds", lane_seeds(self.lfsr.width, self.lanes, self.seed))
        else:
            seeds = tuple(int(s) for s in self.seeds)
            if len(seeds) != self.lanes:
                raise ValueError(f"seeds must hold rows + cols = {self.lanes} values, not {len(seeds)}")
            bad = [s for s in seeds if not 1 <= s <= self.lfsr.mask]
            if bad:
                raise ValueError(f"LFSR seeds must be non-zero {self.lfsr.width}-bit values, not {bad[:4]}")
            object.__setattr__(self, "seeds", seeds)

    # ---------------------------------------------------------------- derived widths
    @property
    def lanes(self) -> int:
        return self.rows + self.cols

    @property
    def stochastic(self) -> bool:
        return self.scheme == "stochastic"

    @property
    def level_max(self) -> int:
        """Largest deterministic level magnitude."""
        return (1 << (self.level_bits - 1)) - 1

    @property
    def level_mag_bits(self) -> int:
        return self.level_bits - 1

    @property
    def bl_bits(self) -> int:
        """Width of a burst length / slot counter (holds 0..bl_max)."""
        return int(self.bl_max).bit_length()

    @property
    def mag_bits(self) -> int:
        """Width of |element| (|min_int| = 2**(bits-1) needs all ``state.bits``)."""
        return self.state.bits

    @property
    def scale_bits(self) -> int:
        """Unsigned width of a scale register (the Fmt's sign bit is dropped)."""
        return self.scale.bits - 1

    @property
    def shift_bits(self) -> int:
        """Fraction bits kept in a threshold: P (stochastic) or 0 (levels and counts are integers)."""
        return self.prob_bits if self.stochastic else 0

    @property
    def threshold_shift(self) -> int:
        """Right shift that turns |element| * scale into a threshold / level / count."""
        return self.state.frac + self.scale.frac - self.shift_bits

    @property
    def row_cap(self) -> int:
        """Saturation value of a row threshold (2**P) or level (level_max)."""
        return (1 << self.prob_bits) if self.stochastic else self.level_max

    @property
    def thr_bits(self) -> int:
        """Width of a stored threshold / level / count."""
        if self.stochastic:
            return self.prob_bits + 1
        return max(self.level_mag_bits, self.bl_bits)

    @property
    def row_seeds(self) -> tuple[int, ...]:
        return self.seeds[: self.rows]

    @property
    def col_seeds(self) -> tuple[int, ...]:
        return self.seeds[self.rows:]

    def word_fields(self) -> list[tuple[str, int]]:
        """Fields of one output time-slot word, LSB first (the RTL's StructLayout order)."""
        f = [("row_fire", self.rows), ("row_neg", self.rows), ("col_fire", self.cols), ("col_neg", self.cols)]
        if not self.stochastic:
            f.append(("row_level", self.rows * self.level_mag_bits))
        f += [("slot", max(self.bl_bits, 1)), ("last", 1)]
        return f

    def cfg_fields(self) -> list[tuple[str, int]]:
        """Fields of one per-update configuration word, LSB first."""
        return [("row_scale", self.scale_bits), ("col_scale", self.scale_bits),
                ("bl", self.bl_bits), ("negate", 1)]

    def with_scheme(self, scheme: str) -> "DriverParams":
        return replace(self, scheme=scheme)

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        return {
            "rows": self.rows, "cols": self.cols, "scheme": self.scheme, "bl_max": self.bl_max,
            "state": self.state.to_dict(), "scale": self.scale.to_dict(), "prob_bits": self.prob_bits,
            "lfsr": self.lfsr.to_dict(), "seed": self.seed, "seeds": list(self.seeds),
            "level_bits": self.level_bits,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "DriverParams":
        lf = d.get("lfsr", {})
        return cls(
            rows=int(d["rows"]), cols=int(d["cols"]), scheme=d.get("scheme", "stochastic"),
            bl_max=int(d.get("bl_max", 31)), state=Fmt.from_dict(d["state"]) if "state" in d else
            get_format_set("q16").state, scale=Fmt.from_dict(d["scale"]) if "scale" in d else DEFAULT_SCALE_FMT,
            prob_bits=int(d.get("prob_bits", 12)),
            lfsr=LfsrSpec(int(lf.get("width", 16)), tuple(lf["taps"]) if "taps" in lf else None,
                          lf.get("leap")),
            seed=int(d.get("seed", 0)), seeds=tuple(d["seeds"]) if d.get("seeds") else None,
            level_bits=int(d.get("level_bits", 4)),
        )

    @classmethod
    def for_format_set(cls, format_set: str = "q16", **kw) -> "DriverParams":
        """Parameters whose input format is the ``state`` format of a named SBPCA format set."""
        return cls(state=get_format_set(format_set).state, **kw)
