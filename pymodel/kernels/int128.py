"""Exact signed 128-bit integer helpers for the compiled fixed-point kernels.

The NumPy reference falls back to Python integers (object arrays) where a product or a
sum may exceed int64 (e.g. ``acc × recip`` of q16 is 70 bits wide).  Numba has no
arbitrary-precision integers, so those steps use a (hi, lo) pair of ``uint64`` words
holding a two's complement 128-bit value.  Every operation here is exact; the callers
prove statically (from the formats) that their values stay below 2**126.

All arithmetic is done on unsigned words: mixing int64 and uint64 in numba promotes to
float64, so every conversion is spelled out, and constants are built inside the functions
(a global NumPy scalar is frozen as a plain integer literal, which would mix types).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def from_i64(v):
    """int64 -> (hi, lo) by sign extension."""
    lo = np.uint64(v)
    hi = np.uint64(0xFFFFFFFFFFFFFFFF) if v < 0 else np.uint64(0)
    return hi, lo


@njit(cache=True)
def neg(hi, lo):
    hi = np.uint64(hi)
    lo = np.uint64(lo)
    lo2 = ~lo + np.uint64(1)
    hi2 = ~hi + (np.uint64(1) if lo2 == np.uint64(0) else np.uint64(0))
    return hi2, lo2


@njit(cache=True)
def add(h1, l1, h2, l2):
    h1 = np.uint64(h1)
    l1 = np.uint64(l1)
    h2 = np.uint64(h2)
    l2 = np.uint64(l2)
    lo = l1 + l2
    carry = np.uint64(1) if lo < l1 else np.uint64(0)
    return h1 + h2 + carry, lo


@njit(cache=True)
def is_neg(hi):
    return (hi >> np.uint64(63)) == np.uint64(1)


@njit(cache=True)
def umul(a, b):
    """Unsigned 64×64 -> 128-bit product."""
    a_lo, a_hi = a & np.uint64(0xFFFFFFFF), a >> np.uint64(32)
    b_lo, b_hi = b & np.uint64(0xFFFFFFFF), b >> np.uint64(32)
    ll = a_lo * b_lo
    lh = a_lo * b_hi
    hl = a_hi * b_lo
    hh = a_hi * b_hi
    mid = (ll >> np.uint64(32)) + (lh & np.uint64(0xFFFFFFFF)) + (hl & np.uint64(0xFFFFFFFF))
    lo = (ll & np.uint64(0xFFFFFFFF)) | (mid << np.uint64(32))
    hi = hh + (lh >> np.uint64(32)) + (hl >> np.uint64(32)) + (mid >> np.uint64(32))
    return hi, lo


@njit(cache=True)
def mul(a, b):
    """Exact product of two int64 values (|a|, |b| < 2**63) as a 128-bit pair."""
    negative = (a < 0) != (b < 0)
    ua = np.uint64(-a) if a < 0 else np.uint64(a)
    ub = np.uint64(-b) if b < 0 else np.uint64(b)
    hi, lo = umul(ua, ub)
    if negative:
        return neg(hi, lo)
    return hi, lo


@njit(cache=True)
def sar(hi, lo, s):
    """Arithmetic right shift by ``s`` (0 <= s < 128)."""
    hi = np.uint64(hi)
    lo = np.uint64(lo)
    if s == 0:
        return hi, lo
    fill = np.uint64(0xFFFFFFFFFFFFFFFF) if is_neg(hi) else np.uint64(0)
    if s >= 64:
        t = s - 64
        if t == 0:
            return fill, hi
        lo2 = (hi >> np.uint64(t)) | (fill << np.uint64(64 - t))
        return fill, lo2
    us = np.uint64(s)
    lo2 = (lo >> us) | (hi << np.uint64(64 - s))
    hi2 = (hi >> us) | (fill << np.uint64(64 - s))
    return hi2, lo2


@njit(cache=True)
def shl(hi, lo, s):
    """Left shift by ``s`` (0 <= s < 128); the caller guarantees no significant bit is lost."""
    hi = np.uint64(hi)
    lo = np.uint64(lo)
    if s == 0:
        return hi, lo
    if s >= 64:
        return lo << np.uint64(s - 64), np.uint64(0)
    us = np.uint64(s)
    return (hi << us) | (lo >> np.uint64(64 - s)), lo << us


@njit(cache=True)
def fits_i64(hi, lo):
    """True when the 128-bit value is an int64 (hi is the sign extension of lo)."""
    hi = np.uint64(hi)
    lo = np.uint64(lo)
    if (lo >> np.uint64(63)) == np.uint64(1):
        return hi == np.uint64(0xFFFFFFFFFFFFFFFF)
    return hi == np.uint64(0)


@njit(cache=True)
def ucmp(h1, l1, h2, l2):
    """Unsigned comparison: -1, 0, 1."""
    if h1 != h2:
        return -1 if h1 < h2 else 1
    if l1 != l2:
        return -1 if l1 < l2 else 1
    return 0


@njit(cache=True)
def usub(h1, l1, h2, l2):
    lo = l1 - l2
    borrow = np.uint64(1) if l1 < l2 else np.uint64(0)
    return h1 - h2 - borrow, lo


@njit(cache=True)
def isqrt(hi, lo):
    """Exact floor(sqrt(v)) of a non-negative 128-bit value (digit-by-digit, 64 steps)."""
    hi = np.uint64(hi)
    lo = np.uint64(lo)
    if hi == np.uint64(0) and lo < np.uint64(1 << 62):
        return np.int64(isqrt_i64(np.int64(lo)))
    rh, rl = np.uint64(0), np.uint64(0)  # result
    bh, bl = np.uint64(1 << 62), np.uint64(0)  # bit = 4**63
    nh, nl = hi, lo
    while ucmp(bh, bl, nh, nl) > 0:
        bh, bl = sar(bh, bl, 2)
    while bh != np.uint64(0) or bl != np.uint64(0):
        th, tl = add(rh, rl, bh, bl)
        if ucmp(nh, nl, th, tl) >= 0:
            nh, nl = usub(nh, nl, th, tl)
            rh, rl = sar(rh, rl, 1)
            rh, rl = add(rh, rl, bh, bl)
        else:
            rh, rl = sar(rh, rl, 1)
        bh, bl = sar(bh, bl, 2)
    return np.int64(rl)


@njit(cache=True)
def isqrt_i64(v):
    """Exact floor(sqrt(v)) for 0 <= v < 2**63 (float seed, integer correction)."""
    r = np.int64(np.sqrt(np.float64(v)))
    if r > 3037000499:
        r = np.int64(3037000499)
    while r * r > v:
        r -= 1
    while r < 3037000499 and (r + 1) * (r + 1) <= v:
        r += 1
    return r
