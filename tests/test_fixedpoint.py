"""Property tests of the integer kernels against exact rational arithmetic."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymodel.fixedpoint import (
    Fmt,
    Overflow,
    Rounding,
    SatFlags,
    div_round,
    div_round_int,
    exact_matmul,
    fit,
    isqrt,
    requantize,
    requantize_wide,
    round_shift,
    sat_add,
)

ints = st.integers(min_value=-(1 << 52), max_value=(1 << 52))
shifts = st.integers(min_value=0, max_value=40)
modes = st.sampled_from(list(Rounding))


def ref_round(v: Fraction, mode: Rounding) -> int:
    """Reference rounding of an exact rational to an integer."""
    fl = math.floor(v)
    rem = v - fl
    if mode is Rounding.TRUNCATE:
        return fl
    if mode is Rounding.HALF_UP:
        return fl + (1 if rem >= Fraction(1, 2) else 0)
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2 == 1):
        return fl + 1
    return fl


@settings(max_examples=300, deadline=None)
@given(st.lists(ints, min_size=1, max_size=20), shifts, modes)
def test_round_shift_matches_rationals(vals, shift, mode):
    got = round_shift(np.array(vals, dtype=np.int64), shift, mode)
    want = [ref_round(Fraction(v, 1 << shift), mode) for v in vals]
    assert got.tolist() == want


@settings(max_examples=200, deadline=None)
@given(st.lists(ints, min_size=1, max_size=10), st.integers(2, 40), st.integers(-8, 50), shifts,
       modes, st.sampled_from([Overflow.SATURATE, Overflow.WRAP]))
def test_requantize_matches_rationals(vals, bits, frac, extra, mode, ovf):
    fmt = Fmt(bits, frac, mode, ovf)
    from_frac = frac + extra
    flags = SatFlags()
    got = requantize(np.array(vals, dtype=np.int64), from_frac, fmt, "t", flags)
    n_over = 0
    for g, v in zip(got.tolist(), vals):
        r = ref_round(Fraction(v, 1 << extra), mode)
        if fmt.min_int <= r <= fmt.max_int:
            assert g == r
        else:
            n_over += 1
            if ovf is Overflow.SATURATE:
                assert g == (fmt.max_int if r > 0 else fmt.min_int)
            else:
                assert g == ((r - fmt.min_int) % (1 << bits)) + fmt.min_int
    assert flags.counts.get("t", 0) == n_over
    # the wide path agrees with the int64 path
    wide = requantize_wide(np.array(vals, dtype=object), from_frac, fmt)
    assert wide.tolist() == got.tolist()


def test_requantize_error_mode_names_the_value():
    fmt = Fmt(8, 4, overflow=Overflow.ERROR)
    with pytest.raises(ValueError, match="weights out of range"):
        requantize(np.array([5000]), 4, fmt, "weights")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(ints, ints.filter(lambda d: d != 0)), min_size=1, max_size=20))
def test_div_round_matches_rationals(pairs):
    num = np.array([p[0] for p in pairs], dtype=np.int64)
    den = np.array([p[1] for p in pairs], dtype=np.int64)
    got = div_round(num, den).tolist()
    for g, (n, d) in zip(got, pairs):
        q = Fraction(abs(n), abs(d))
        mag = math.floor(q + Fraction(1, 2))  # ties away from zero on the magnitude
        want = mag if (n < 0) == (d < 0) else -mag
        assert g == want
        assert div_round_int(n, d) == want


def test_div_round_by_zero_raises():
    with pytest.raises(ZeroDivisionError):
        div_round(np.array([1]), np.array([0]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, (1 << 62) - 1), min_size=1, max_size=30))
def test_isqrt_exact(vals):
    got = isqrt(np.array(vals, dtype=np.int64)).tolist()
    assert got == [math.isqrt(v) for v in vals]


def test_isqrt_edges():
    edges = [0, 1, 2, 3, 4, 15, 16, 17, (1 << 62) - 1, (1 << 62), (1 << 63) - 1, 3037000499**2,
             3037000499**2 - 1]
    assert isqrt(np.array(edges, dtype=np.int64)).tolist() == [math.isqrt(v) for v in edges]
    with pytest.raises(ValueError):
        isqrt(np.array([-1]))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**40), st.data())
def test_exact_matmul_matches_python_ints(r, k, c, bound, data):
    elems = st.integers(-bound, bound)
    a = np.array(data.draw(st.lists(st.lists(elems, min_size=k, max_size=k), min_size=r, max_size=r)),
                 dtype=object)
    b = np.array(data.draw(st.lists(st.lists(elems, min_size=c, max_size=c), min_size=k, max_size=k)),
                 dtype=object)
    want = [[sum(int(a[i, t]) * int(b[t, j]) for t in range(k)) for j in range(c)] for i in range(r)]
    got = exact_matmul(a.astype(np.int64), b.astype(np.int64))
    assert [[int(v) for v in row] for row in got] == want


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-300, 300, allow_nan=False), min_size=1, max_size=20), modes)
def test_quantize_matches_rationals(vals, mode):
    fmt = Fmt(20, 10, mode, Overflow.SATURATE)
    got = fmt.quantize(vals).tolist()
    for g, v in zip(got, vals):
        r = ref_round(Fraction(v) * (1 << 10), mode)
        assert g == min(max(r, fmt.min_int), fmt.max_int)


def test_quantize_rejects_nan():
    with pytest.raises(ValueError, match="x contains NaN"):
        Fmt(16, 8).quantize([1.0, float("nan")], "x")


@settings(max_examples=100, deadline=None)
@given(st.integers(-40000, 40000), st.integers(-40000, 40000))
def test_sat_add(a, b):
    fmt = Fmt(16, 0)
    assert int(sat_add(np.int64(a), np.int64(b), fmt)) == min(max(a + b, -32768), 32767)


def test_fmt_validation_and_str():
    assert str(Fmt(16, 14)) == "Q2.14 (16b rhe/sat)"
    with pytest.raises(ValueError, match="bits"):
        Fmt(1, 0)
    with pytest.raises(ValueError):
        Fmt(16, 4, rounding="nearest")
    assert Fmt.from_dict(Fmt(12, 3, "truncate", "wrap").to_dict()) == Fmt(12, 3, "truncate", "wrap")


def test_fit_wrap():
    assert fit(np.array([128, -129]), Fmt(8, 0, overflow=Overflow.WRAP)).tolist() == [-128, 127]
