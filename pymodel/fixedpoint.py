"""Signed fixed-point formats and the exact integer kernels of the SBPCA datapath.

One declaration per quantity (:class:`Fmt`) feeds both the golden model and the
RTL signal widths in ``hdl``.  All arithmetic here is on ``int64`` NumPy arrays
holding two's complement *integers*; a value ``v`` in format ``f`` means the real
number ``v / 2**f.frac``.  Products are kept exact; every narrowing goes through
:func:`requantize` (the one rounding helper), so the RTL can reproduce each bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Union

import numpy as np

ArrayLike = Union[np.ndarray, int]


class Rounding(str, Enum):
    """How the bits dropped by a right shift are resolved."""

    TRUNCATE = "truncate"  # floor (two's complement truncation)
    HALF_UP = "half_up"  # round half towards +inf: floor(v/2^s + 1/2)
    HALF_EVEN = "half_even"  # round half to even (convergent)


class Overflow(str, Enum):
    """What happens when a value does not fit the format."""

    SATURATE = "saturate"
    WRAP = "wrap"
    ERROR = "error"


@dataclass(frozen=True)
class Fmt:
    """A signed two's complement fixed-point format: ``bits`` in all, ``frac`` after the point."""

    bits: int
    frac: int
    rounding: Rounding = Rounding.HALF_EVEN
    overflow: Overflow = Overflow.SATURATE

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or not 2 <= self.bits <= 62:
            raise ValueError(f"Fmt.bits must be an integer in 2..62, not {self.bits!r}")
        if not isinstance(self.frac, int) or not -64 <= self.frac <= 96:
            raise ValueError(f"Fmt.frac must be an integer in -64..96, not {self.frac!r}")
        object.__setattr__(self, "rounding", Rounding(self.rounding))
        object.__setattr__(self, "overflow", Overflow(self.overflow))

    @property
    def min_int(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def max_int(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def int_bits(self) -> int:
        """Integer bits including the sign bit (``bits - frac``)."""
        return self.bits - self.frac

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.frac

    @property
    def max_value(self) -> float:
        return self.max_int * self.lsb

    @property
    def min_value(self) -> float:
        return self.min_int * self.lsb

    def __str__(self) -> str:
        rnd = {"truncate": "trn", "half_up": "rhu", "half_even": "rhe"}[self.rounding.value]
        ovf = {"saturate": "sat", "wrap": "wrap", "error": "err"}[self.overflow.value]
        return f"Q{self.int_bits}.{self.frac} ({self.bits}b {rnd}/{ovf})"

    def to_dict(self) -> dict:
        return {
            "bits": self.bits,
            "frac": self.frac,
            "rounding": self.rounding.value,
            "overflow": self.overflow.value,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Fmt":
        return cls(int(d["bits"]), int(d["frac"]), Rounding(d["rounding"]), Overflow(d["overflow"]))

    # -- conversions -----------------------------------------------------------------
    def quantize(self, values, name: str = "value", flags: "SatFlags | None" = None) -> np.ndarray:
        """Float array -> integers of this format (rounding and overflow as declared).

        NaN or infinite inputs raise ``ValueError`` naming ``name``.
        """
        arr = np.asarray(values, dtype=np.float64)
        total = float(np.sum(arr)) if arr.size else 0.0
        if not math.isfinite(total) and not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values")
        scaled = arr * (2.0 ** self.frac)  # exact: a power-of-two scale
        if self.rounding is Rounding.TRUNCATE:
            r = np.floor(scaled)
        elif self.rounding is Rounding.HALF_UP:
            r = np.floor(scaled + 0.5)
        else:
            r = np.rint(scaled)  # IEEE round half to even
        if r.size and r.min() >= self.min_int and r.max() <= self.max_int:
            return r.astype(np.int64)
        # clip before the cast so huge floats do not wrap in the conversion itself
        big = float(1 << 62)
        r = np.clip(r, -big, big).astype(np.int64)
        return fit(r, self, name=name, flags=flags)

    def dequantize(self, ints) -> np.ndarray:
        return np.ldexp(np.asarray(ints, dtype=np.float64), -self.frac)


class SatFlags:
    """Sticky per-stage saturation counters (the status flags the RTL exposes)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, name: str, count: int) -> None:
        if count:
            self.counts[name] = self.counts.get(name, 0) + int(count)

    @property
    def any(self) -> bool:
        return bool(self.counts)

    def __repr__(self) -> str:
        return f"SatFlags({self.counts})"


def fit(v: ArrayLike, fmt: Fmt, name: str = "value", flags: SatFlags | None = None) -> np.ndarray:
    """Apply ``fmt``'s overflow rule to integers ``v`` (already at ``fmt.frac``)."""
    v = np.asarray(v, dtype=np.int64)
    lo, hi = fmt.min_int, fmt.max_int
    if v.size == 0 or (v.min() >= lo and v.max() <= hi):
        return v
    over = (v < lo) | (v > hi)
    n_over = int(np.count_nonzero(over))
    if fmt.overflow is Overflow.ERROR:
        bad = v[over].ravel()[0]
        raise ValueError(
            f"{name} out of range for {fmt}: {int(bad) * fmt.lsb!r} not in "
            f"[{fmt.min_value!r}, {fmt.max_value!r}] ({n_over} values)"
        )
    if flags is not None:
        flags.add(name, n_over)
    if fmt.overflow is Overflow.SATURATE:
        return np.clip(v, lo, hi)
    span = np.int64(1) << np.int64(fmt.bits)
    return ((v - lo) % span) + lo


def round_shift(v: ArrayLike, shift: int, rounding: Rounding = Rounding.HALF_EVEN) -> np.ndarray:
    """``v / 2**shift`` rounded to an integer as ``rounding`` says (``shift <= 0``: exact left shift)."""
    v = np.asarray(v, dtype=np.int64)
    rounding = Rounding(rounding)
    if shift <= 0:
        return v << np.int64(-shift)
    s = np.int64(shift)
    if rounding is Rounding.TRUNCATE:
        return v >> s
    half = np.int64(1) << np.int64(shift - 1)
    if rounding is Rounding.HALF_UP:
        return (v + half) >> s
    # half-even: adding (half - 1 + lsb_of_floor) carries exactly when rounding up
    return (v + (half - 1) + ((v >> s) & 1)) >> s


def requantize(
    v: ArrayLike, from_frac: int, fmt: Fmt, name: str = "value", flags: SatFlags | None = None
) -> np.ndarray:
    """The one narrowing step: integers at ``from_frac`` -> ``fmt`` (its rounding, then overflow)."""
    return fit(round_shift(v, from_frac - fmt.frac, fmt.rounding), fmt, name=name, flags=flags)


def sat_add(a: ArrayLike, b: ArrayLike, fmt: Fmt, name: str = "sum", flags: SatFlags | None = None) -> np.ndarray:
    """``a + b`` in ``fmt`` (both operands already at ``fmt.frac``), overflow as declared."""
    return fit(np.asarray(a, dtype=np.int64) + np.asarray(b, dtype=np.int64), fmt, name=name, flags=flags)


def mul_exact(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Exact product (fraction bits add); raises if it cannot be held in int64."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    amax = int(np.max(np.abs(a))) if a.size else 0
    bmax = int(np.max(np.abs(b))) if b.size else 0
    if amax and bmax and amax.bit_length() + bmax.bit_length() > 63:
        raise OverflowError(
            f"exact product needs {amax.bit_length() + bmax.bit_length()} bits (> 63): widen int64 use"
        )
    return a * b


def div_round(num: ArrayLike, den: ArrayLike) -> np.ndarray:
    """Exact integer quotient ``num / den`` rounded to nearest, ties away from zero.

    Defined on magnitudes (as a restoring divider computes it):
    ``sign(num)*sign(den) * floor((2|num| + |den|) / (2|den|))``.  ``den`` must be non-zero.
    """
    num = np.asarray(num, dtype=np.int64)
    den = np.asarray(den, dtype=np.int64)
    if np.any(den == 0):
        raise ZeroDivisionError("div_round: division by zero")
    neg = (num < 0) ^ (den < 0)
    an, ad = np.abs(num), np.abs(den)
    if int(np.max(an, initial=0)).bit_length() + 1 > 62 or int(np.max(ad, initial=0)).bit_length() + 1 > 62:
        q = np.array(
            [(2 * int(n) + int(d)) // (2 * int(d)) for n, d in np.broadcast(an, ad)], dtype=np.int64
        ).reshape(np.broadcast(an, ad).shape)
    else:
        q = (2 * an + ad) // (2 * ad)
    return np.where(neg, -q, q)


def isqrt(v: ArrayLike) -> np.ndarray:
    """Exact ``floor(sqrt(v))`` for non-negative int64 ``v`` (vectorised, corrected float seed)."""
    v = np.asarray(v, dtype=np.int64)
    if np.any(v < 0):
        raise ValueError("isqrt of a negative value")
    r = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    r = np.minimum(r, np.int64(3037000499))  # floor(sqrt(2**63 - 1))
    for _ in range(3):
        r = np.where(r * r > v, r - 1, r)
        r1 = r + 1
        r = np.where((r1 <= 3037000499) & (r1 * r1 <= v), r1, r)
    return r


def isqrt_int(v: int) -> int:
    """Exact ``floor(sqrt(v))`` for a Python int of any size."""
    if v < 0:
        raise ValueError("isqrt of a negative value")
    return math.isqrt(int(v))


def bits_for(max_abs: int) -> int:
    """Signed two's complement width that holds every integer in ``[-max_abs, max_abs]``."""
    return int(max_abs).bit_length() + 1


def _bitlen(a: np.ndarray) -> int:
    if a.size == 0:
        return 0
    if a.dtype == object:
        return max(abs(int(v)).bit_length() for v in a.ravel())
    return max(int(a.max()), -int(a.min())).bit_length()


def static_fits(bits_a: int, bits_b: int, terms: int = 1, limit: int = 62) -> bool:
    """True when a sum of ``terms`` products of signed ``bits_a``- and ``bits_b``-bit integers
    always fits in ``limit`` magnitude bits (62: int64; 52: exact in float64 BLAS)."""
    return (bits_a - 1) + (bits_b - 1) + max(0, int(terms) - 1).bit_length() <= limit


def exact_matmul_f64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer ``a @ b`` through float64 BLAS.

    Only valid when :func:`static_fits` (..., limit=52) holds: every product and partial
    sum is then an integer below 2**53, which float64 represents exactly in any order.
    """
    return (np.asarray(a, dtype=np.float64) @ np.asarray(b, dtype=np.float64)).astype(np.int64)


def exact_matmul(a: ArrayLike, b: ArrayLike, fits: bool = False) -> np.ndarray:
    """Exact integer ``a @ b``: int64 when the worst-case sum fits, else Python ints (object array).

    The order of accumulation is irrelevant because nothing is rounded before the sum ends,
    which is what lets the RTL accumulate lanes in any order and still match bit for bit.
    ``fits=True`` asserts (from the formats, see :func:`static_fits`) that int64 is enough.
    """
    if fits:
        return np.asarray(a) @ np.asarray(b)
    a = np.asarray(a)
    b = np.asarray(b)
    inner = a.shape[-1] if a.ndim else 1
    need = _bitlen(a) + _bitlen(b) + max(1, int(inner).bit_length())
    if need <= 62 and a.dtype != object and b.dtype != object:
        return a.astype(np.int64) @ b.astype(np.int64)
    return a.astype(object) @ b.astype(object)


def exact_coldot(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Exact column sums of ``a * b`` (``Σ_r a[r, c] b[r, c]``), wide when needed."""
    a = np.asarray(a)
    b = np.asarray(b)
    need = _bitlen(a) + _bitlen(b) + max(1, int(a.shape[0]).bit_length())
    if need <= 62 and a.dtype != object and b.dtype != object:
        return np.einsum("rc,rc->c", a.astype(np.int64), b.astype(np.int64))
    return np.sum(a.astype(object) * b.astype(object), axis=0)


def exact_mul(a: ArrayLike, b: ArrayLike, fits: bool = False) -> np.ndarray:
    """Exact element-wise product: int64 when it fits, else Python ints (object array)."""
    if fits:
        return np.asarray(a) * np.asarray(b)
    a = np.asarray(a)
    b = np.asarray(b)
    if _bitlen(a) + _bitlen(b) <= 62 and a.dtype != object and b.dtype != object:
        return a.astype(np.int64) * b.astype(np.int64)
    return a.astype(object) * b.astype(object)


def requantize_wide(v: np.ndarray, from_frac: int, fmt: Fmt, name: str = "value",
                    flags: SatFlags | None = None) -> np.ndarray:
    """:func:`requantize` for values that may exceed int64 (object arrays of Python ints)."""
    v = np.asarray(v)
    if v.dtype != object:
        return requantize(v, from_frac, fmt, name=name, flags=flags)
    shift = from_frac - fmt.frac
    out = np.empty(v.shape, dtype=object)
    flat_in, flat_out = v.ravel(), out.ravel()
    for i, val in enumerate(flat_in):
        flat_out[i] = _round_shift_int(int(val), shift, fmt.rounding)
    # now clip/wrap/raise; values beyond int64 saturate to the format limits first
    lo, hi = fmt.min_int, fmt.max_int
    clipped = np.array([min(max(int(x), lo - 1), hi + 1) for x in flat_out], dtype=np.int64)
    if fmt.overflow is Overflow.WRAP:
        span = 1 << fmt.bits
        wrapped = np.array([((int(x) - lo) % span) + lo for x in flat_out], dtype=np.int64)
        n_over = int(np.count_nonzero((clipped < lo) | (clipped > hi)))
        if flags is not None:
            flags.add(name, n_over)
        return wrapped.reshape(v.shape)
    return fit(clipped, fmt, name=name, flags=flags).reshape(v.shape)


def _round_shift_int(v: int, shift: int, rounding: Rounding) -> int:
    """Scalar twin of :func:`round_shift` on Python ints (same semantics, any width)."""
    if shift <= 0:
        return v << -shift
    floor = v >> shift
    if rounding is Rounding.TRUNCATE:
        return floor
    rem = v & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    if rounding is Rounding.HALF_UP:
        return floor + (rem >= half)
    return floor + ((rem > half) or (rem == half and (floor & 1) == 1))


def div_round_int(num: int, den: int) -> int:
    """Scalar :func:`div_round` on Python ints of any width."""
    if den == 0:
        raise ZeroDivisionError("div_round: division by zero")
    q = (2 * abs(num) + abs(den)) // (2 * abs(den))
    return -q if (num < 0) != (den < 0) else q
