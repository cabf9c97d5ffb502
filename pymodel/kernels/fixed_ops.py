"""Scalar fixed-point steps for the compiled kernels: rounding shift, overflow, division.

Each function is the scalar twin of a NumPy function in :mod:`pymodel.fixedpoint`
(``round_shift``, ``fit``, ``requantize``, ``div_round``), with the same semantics, on
int64 values or on the exact 128-bit pairs of :mod:`pymodel.kernels.int128`.

A format is passed as four integers (see :func:`pack_format`): bits, frac, rounding code,
overflow code.  Overflow ``error`` has no compiled form (it raises in the reference); the
estimators fall back to the NumPy reference for format sets that use it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..fixedpoint import Fmt, Overflow, Rounding
from . import int128 as i128

ROUNDING_CODES = {Rounding.TRUNCATE: 0, Rounding.HALF_UP: 1, Rounding.HALF_EVEN: 2}
OVERFLOW_CODES = {Overflow.SATURATE: 0, Overflow.WRAP: 1}


def compilable(fmt: Fmt) -> bool:
    """True when ``fmt``'s overflow rule has a compiled twin (saturate or wrap)."""
    return fmt.overflow in OVERFLOW_CODES


def pack_format(fmt: Fmt) -> list[int]:
    """(bits, frac, rounding code, overflow code) of ``fmt`` for a kernel's format table."""
    if not compilable(fmt):
        raise ValueError(f"format {fmt} has no compiled form (overflow {fmt.overflow.value!r})")
    return [fmt.bits, fmt.frac, ROUNDING_CODES[fmt.rounding], OVERFLOW_CODES[fmt.overflow]]


@njit(cache=True, inline="always")
def round_shift_i64(v, s, mode):
    """``v / 2**s`` rounded (|v| < 2**62); ``s <= 0`` is a left shift, as in the reference."""
    if s <= 0:
        return v << np.int64(-s)
    if mode == 0:
        return v >> np.int64(s)
    half = np.int64(1) << np.int64(s - 1)
    if mode == 1:
        return (v + half) >> np.int64(s)
    return (v + (half - 1) + ((v >> np.int64(s)) & 1)) >> np.int64(s)


@njit(cache=True, inline="always")
def fit_i64(v, fmt):
    """(value, 1 if it overflowed else 0) of ``v`` in format ``fmt`` = (bits, frac, rnd, ovf)."""
    bits = fmt[0]
    lo = -(np.int64(1) << np.int64(bits - 1))
    hi = (np.int64(1) << np.int64(bits - 1)) - 1
    if v >= lo and v <= hi:
        return v, 0
    if fmt[3] == 0:
        return (lo if v < lo else hi), 1
    sh = np.int64(64 - bits)
    return (v << sh) >> sh, 1


@njit(cache=True, inline="always")
def requant_i64(v, from_frac, fmt):
    """The one narrowing step on an int64 value: ``fmt``'s rounding, then its overflow rule.

    Formats travel as 4-tuples (passed by value): an array argument would cost a reference
    count update on every call, which dominated the kernel's time.
    """
    return fit_i64(round_shift_i64(v, from_frac - fmt[1], fmt[2]), fmt)


@njit(cache=True)
def _pow2(s):
    """2**s (0 <= s < 127) as a 128-bit pair."""
    if s < 64:
        return np.uint64(0), np.uint64(1) << np.uint64(s)
    return np.uint64(1) << np.uint64(s - 64), np.uint64(0)


@njit(cache=True)
def round_shift_128(hi, lo, s, mode):
    hi = np.uint64(hi)
    lo = np.uint64(lo)
    if s <= 0:
        return i128.shl(hi, lo, -s)
    if mode == 0:
        return i128.sar(hi, lo, s)
    hh, hl = _pow2(s - 1)
    if mode == 1:
        th, tl = i128.add(hi, lo, hh, hl)
        return i128.sar(th, tl, s)
    fh, fl = i128.sar(hi, lo, s)
    if (fl & np.uint64(1)) == np.uint64(0):  # add half - 1
        hh, hl = i128.usub(hh, hl, np.uint64(0), np.uint64(1))
    th, tl = i128.add(hi, lo, hh, hl)
    return i128.sar(th, tl, s)


@njit(cache=True)
def fit_128(hi, lo, fmt):
    hi = np.uint64(hi)
    lo = np.uint64(lo)
    if i128.fits_i64(hi, lo):
        return fit_i64(np.int64(lo), fmt)
    bits = fmt[0]
    if fmt[3] == 0:
        if i128.is_neg(hi):
            return -(np.int64(1) << np.int64(bits - 1)), 1
        return (np.int64(1) << np.int64(bits - 1)) - 1, 1
    sh = np.int64(64 - bits)
    return (np.int64(lo) << sh) >> sh, 1


@njit(cache=True)
def requant_128(hi, lo, from_frac, fmt):
    rh, rl = round_shift_128(hi, lo, from_frac - fmt[1], fmt[2])
    return fit_128(rh, rl, fmt)


@njit(cache=True, inline="always")
def requant_mul(a, b, wide, from_frac, fmt):
    """requantize(a·b): the exact product through int64 where it fits, else 128 bits.

    ``wide`` is the static answer from the formats (False: int64 always suffices); when it
    is True the product still takes the int64 route if these two operands' magnitudes
    (< 2^31 each, the common case) prove it fits: the result is the same exact integer.
    """
    if not wide or ((a < 2147483648 and a > -2147483648) and (b < 2147483648 and b > -2147483648)):
        return requant_i64(a * b, from_frac, fmt)
    hi, lo = i128.mul(a, b)
    return requant_128(hi, lo, from_frac, fmt)


@njit(cache=True, inline="always")
def div_round(num, den):
    """Rounded quotient, ties away from zero, on magnitudes (|num|, |den| < 2**61)."""
    an = -num if num < 0 else num
    ad = -den if den < 0 else den
    q = (2 * an + ad) // (2 * ad)
    return -q if (num < 0) != (den < 0) else q


@njit(cache=True)
def quantize(values, fmt):
    """``Fmt.quantize`` of a float array: (integers, overflow count, False if non-finite).

    Same operations as the NumPy method (power-of-two scale, floor / floor(v + ½) / rint,
    then the overflow rule), element by element; the caller raises on non-finite input.
    """
    flat = values.ravel()
    out = np.empty(flat.shape[0], dtype=np.int64)
    scale = 2.0 ** fmt[1]
    lo = -(np.int64(1) << np.int64(fmt[0] - 1))
    hi = (np.int64(1) << np.int64(fmt[0] - 1)) - 1
    big = float(np.int64(1) << np.int64(62))
    over = 0
    for i in range(flat.shape[0]):
        v = flat[i]
        if not np.isfinite(v):
            return out.reshape(values.shape), over, False
        t = v * scale
        if fmt[2] == 0:
            t = np.floor(t)
        elif fmt[2] == 1:
            t = np.floor(t + 0.5)
        else:
            t = np.rint(t)
        if t >= lo and t <= hi:
            out[i] = np.int64(t)
        else:
            t = min(max(t, -big), big)
            val, o = fit_i64(np.int64(t), fmt)
            out[i] = val
            over += o
    return out.reshape(values.shape), over, True
