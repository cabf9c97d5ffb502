"""Compiled (numba) SBPCA kernels against the NumPy reference: every integer, every flag.

The NumPy code of :class:`pymodel.sbpca.SBPCA` (``backend="numpy"``) is the oracle; the
compiled backend must give the same X, Δ, σ integers, the same saturation counts per stage,
σ-guard hits and degenerate columns, after every sub-batch (``record=True``), over several
batches in a row.  The 128-bit helpers are checked against Python integers.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pymodel.fixedpoint import Fmt, Overflow, Rounding, _round_shift_int
from pymodel.formats import FORMAT_SETS, get_format_set
from pymodel.kernels import check_backend
from pymodel.sbpca import SBPCA, orth

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ROUNDINGS = [Rounding.TRUNCATE, Rounding.HALF_UP, Rounding.HALF_EVEN]


# ------------------------------------------------------------------------ 128-bit helpers
def _as_int(hi, lo) -> int:
    v = (int(hi) << 64) | int(lo)
    return v - (1 << 128) if v >> 127 else v


big = st.integers(min_value=-(2 ** 62) + 1, max_value=2 ** 62 - 1)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(big, big, st.integers(min_value=-4, max_value=100), st.sampled_from(ROUNDINGS),
       st.integers(min_value=2, max_value=62), st.sampled_from([Overflow.SATURATE, Overflow.WRAP]))
def test_int128_mul_round_fit_match_python_ints(a, b, shift, rounding, bits, ovf):
    from pymodel.kernels import fixed_ops, int128
    from pymodel.fixedpoint import fit

    hi, lo = (np.uint64(w) for w in int128.mul(np.int64(a), np.int64(b)))  # uint64 words, as in the kernels
    assert _as_int(hi, lo) == a * b
    code = fixed_ops.ROUNDING_CODES[rounding]
    if shift < 0 and (a * b).bit_length() - shift > 125:
        return
    rh, rl = (np.uint64(w) for w in fixed_ops.round_shift_128(hi, lo, np.int64(shift), np.int64(code)))
    want = _round_shift_int(a * b, shift, rounding)
    assert _as_int(rh, rl) == want
    val, over = fixed_ops.fit_128(rh, rl, (np.int64(bits), np.int64(0), np.int64(0), np.int64(fixed_ops.OVERFLOW_CODES[ovf])))
    fmt = Fmt(bits, 0, rounding, ovf)
    clipped = min(max(want, fmt.min_int - 1), fmt.max_int + 1)
    expect = int(fit(np.array([clipped]), fmt)[0]) if ovf is Overflow.SATURATE else \
        ((want - fmt.min_int) % (1 << bits)) + fmt.min_int
    assert (int(val), int(over)) == (expect, int(not fmt.min_int <= want <= fmt.max_int))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.integers(min_value=0, max_value=2 ** 120 - 1))
def test_int128_isqrt_is_exact(v):
    from pymodel.kernels import int128

    hi, lo = np.uint64(v >> 64), np.uint64(v & (2 ** 64 - 1))
    assert int(int128.isqrt(hi, lo)) == math.isqrt(v)


def test_int128_isqrt_edges():
    from pymodel.kernels import int128

    for v in [0, 1, 2, 3, 4, 2 ** 62 - 1, 2 ** 62, 2 ** 63 - 1, 2 ** 64, 2 ** 64 + 1, (2 ** 60 + 7) ** 2,
              (2 ** 60 + 7) ** 2 - 1, 2 ** 120 - 1]:
        assert int(int128.isqrt(np.uint64(v >> 64), np.uint64(v & (2 ** 64 - 1)))) == math.isqrt(v)


# ------------------------------------------------------------------------ whole batches
def _narrow(overflow: Overflow, rounding: Rounding, name: str):
    """q8 with narrow internals: proj, acc, mat, inv, recip and σ all saturate (or wrap)."""
    q8 = FORMAT_SETS["q8"]
    f = lambda bits, frac: Fmt(bits, frac, rounding, overflow)  # noqa: E731
    return replace(q8, name=name, proj=f(9, 6), acc=f(11, 7), mat=f(9, 6), inv=f(10, 5), recip=f(10, 6),
                   sigma=f(12, 6), sigma_min=2.0 ** -6)


FIXED_SETS = {name: get_format_set(name) for name in ("q16", "q12", "q8", "q24")}
FIXED_SETS["q8-narrow"] = _narrow(Overflow.SATURATE, Rounding.HALF_EVEN, "q8-narrow")
FIXED_SETS["q8-narrow-wrap-trn"] = _narrow(Overflow.WRAP, Rounding.TRUNCATE, "q8-narrow-wrap-trn")
FIXED_SETS["q8-narrow-rhu"] = _narrow(Overflow.SATURATE, Rounding.HALF_UP, "q8-narrow-rhu")

def _pair(a, b, k, s, fixed, init=None, sigma_min=None):
    kw = dict(seed=5, fixed=fixed, init=init, sigma_min=sigma_min, record=True)
    ref = SBPCA(a, b, k, s, backend="numpy", **kw)
    fast = SBPCA(a, b, k, s, backend="compiled", **kw)
    return ref, fast


def _assert_same_integers(ref: SBPCA, fast: SBPCA) -> None:
    assert fast.backend == "compiled", fast.backend_note
    np.testing.assert_array_equal(fast.X_int, ref.X_int)
    np.testing.assert_array_equal(fast.Delta_int, ref.Delta_int)
    np.testing.assert_array_equal(fast.sigma_int, ref.sigma_int)
    assert fast.status.as_dict() == ref.status.as_dict()
    assert len(fast.history) == len(ref.history)
    for i, (h1, h2) in enumerate(zip(ref.history, fast.history)):
        assert (h1.n, h1.m) == (h2.n, h2.m), i
        np.testing.assert_array_equal(h2.X, h1.X, err_msg=f"X after sub-batch {i}")
        np.testing.assert_array_equal(h2.Delta, h1.Delta, err_msg=f"Δ after sub-batch {i}")
        np.testing.assert_array_equal(h2.sigma, h1.sigma, err_msg=f"σ after sub-batch {i}")
    assert (fast.last_batch_size, fast.batches) == (ref.last_batch_size, ref.batches)


@st.composite
def fixed_cases(draw):
    k = draw(st.integers(1, 8))
    a = draw(st.integers(k, 130))
    b = draw(st.integers(k, 130).filter(lambda v: v != a))
    # keep the NumPy oracle quick: few samples when the layer is large
    s = draw(st.integers(1, 17))
    sizes = draw(st.lists(st.integers(1, max(2, 2400 // (a + b))), min_size=1, max_size=3))
    fset = FIXED_SETS[draw(st.sampled_from(sorted(FIXED_SETS)))]
    scale = draw(st.sampled_from([0.05, 1.0, 8.0, 200.0]))  # 200: q8 saturates at every stage
    state = draw(st.sampled_from(["random", "sigma_guard", "degenerate"]))
    seed = draw(st.integers(0, 2 ** 16))
    return k, a, b, s, sizes, fset, scale, state, seed


@SETTINGS
@given(fixed_cases())
def test_fixed_kernel_equals_numpy_reference(case):
    k, a, b, s, sizes, fset, scale, state, seed = case
    rng = np.random.default_rng(seed)
    init = None
    if state != "random":
        X0 = orth(rng.standard_normal((b, k)))
        D0 = orth(rng.standard_normal((a, k)))
        s0 = rng.uniform(-0.01, 0.002, k)  # below σ_min or negative: the guard fires
        if state == "degenerate":
            X0[:, -1] = 0.0  # with a zero stream the last column stays zero
            s0 = np.ones(k)
        init = (X0, D0, s0)
    ref, fast = _pair(a, b, k, s, fset, init=init)
    for B in sizes:
        x = rng.standard_normal((B, b)) * scale
        d = rng.standard_normal((B, a)) * scale * 0.25
        if state == "degenerate":
            x[:] = 0.0
        ref.update(x, d)
        fast.update(x, d)
        _assert_same_integers(ref, fast)


@pytest.mark.parametrize("fset", ["q8-narrow", "q8-narrow-wrap-trn", "q8-narrow-rhu"])
def test_fixed_kernel_counts_every_stage_on_narrow_q8(fset):
    """Narrow q8 internals saturate (or wrap) at many stages; the counts agree stage by stage."""
    rng = np.random.default_rng(1)
    ref, fast = _pair(24, 17, 4, 5, FIXED_SETS[fset])
    for _ in range(3):
        x, d = rng.standard_normal((23, 17)) * 4, rng.standard_normal((23, 24))
        ref.update(x, d)
        fast.update(x, d)
    _assert_same_integers(ref, fast)
    internal = set(ref.status.saturation.counts) - {"x", "delta"}
    assert len(internal) >= 3, ref.status.saturation.counts
    # the NumPy model's stage names are the declared ones (the RTL's status bits)
    from pymodel.saturation import SAT_NAMES

    assert internal <= set(SAT_NAMES), internal - set(SAT_NAMES)


def test_fixed_kernel_sigma_guard_and_degenerate_fire():
    rng = np.random.default_rng(2)
    X0, D0 = orth(rng.standard_normal((9, 3))), orth(rng.standard_normal((11, 3)))
    X0[:, 2] = 0.0
    ref, fast = _pair(11, 9, 3, 4, "q16", init=(X0, D0, np.array([1.0, -0.5, 0.0])))
    x, d = np.zeros((10, 9)), rng.standard_normal((10, 11)) * 0.1
    ref.update(x, d)
    fast.update(x, d)
    _assert_same_integers(ref, fast)
    assert fast.status.sigma_guard > 0 and fast.status.degenerate > 0


@pytest.mark.parametrize("fixed_scaling", ["first", "batch"])
def test_rule_scaling_modes_same_with_both_backends(fixed_scaling):
    """LayerRule's power-of-two scaling (σ register shifted between batches) over both backends."""
    from pymodel.nn.layers import Linear
    from pymodel.update_rules import LayerRule, RuleConfig

    rng = np.random.default_rng(3)
    rules = []
    for backend in ("numpy", "compiled"):
        layer = Linear(12, 7, rng=np.random.default_rng(0))
        cfg = RuleConfig(method="sbpca", rank=3, sub_batch=5, fixed="q12", fixed_scaling=fixed_scaling,
                         backend=backend)
        rules.append((layer, LayerRule(layer, cfg, seed=0)))
    for step in range(4):
        scale = 10.0 ** (step - 2)  # the exponents change from batch to batch
        x = rng.standard_normal((19, 13)) * scale
        d = rng.standard_normal((19, 7)) * scale
        for layer, rule in rules:
            layer.stream_x, layer.stream_delta = x, d
            rule.step(lr=0.1, n_samples=19)
    (l1, r1), (l2, r2) = rules
    _assert_same_integers(r1.estimator, r2.estimator)
    assert r1.rescales == r2.rescales and (fixed_scaling == "first" or r1.rescales > 0)
    np.testing.assert_array_equal(l1.W, l2.W)


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 70), st.integers(1, 70), st.integers(1, 20),
       st.lists(st.integers(1, 90), min_size=1, max_size=3), st.booleans(), st.integers(0, 999))
def test_float_kernel_equals_numpy_reference(k, a, b, s, sizes, guard, seed):
    if k > min(a, b):
        k = min(a, b)
    rng = np.random.default_rng(seed)
    kw = dict(seed=seed, sigma_min=1e-3 if guard else None)
    ref = SBPCA(a, b, k, s, backend="numpy", **kw)
    fast = SBPCA(a, b, k, s, backend="compiled", **kw)
    for B in sizes:
        x, d = rng.standard_normal((B, b)), 0.1 * rng.standard_normal((B, a))
        ref.update(x, d)
        fast.update(x, d)
    for name in ("X", "Delta", "sigma"):
        want, got = getattr(ref, name), getattr(fast, name)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * max(1.0, float(np.max(np.abs(want)))),
                                   err_msg=name)


def test_backend_choice_and_fallback():
    with pytest.raises(ValueError, match="backend"):
        check_backend("cuda")
    with pytest.raises(ValueError, match="unknown backend"):
        SBPCA(4, 4, 1, 2, backend="fortran")
    err = replace(get_format_set("q16"), name="q16-err", x=replace(FORMAT_SETS["q16"].x, overflow=Overflow.ERROR))
    eng = SBPCA(4, 4, 1, 2, fixed=err)
    assert eng.backend == "numpy" and "error" in eng.backend_note
    assert SBPCA(4, 4, 1, 2, fixed="q16").backend == "compiled"


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-4)])
def test_torch_update_compiled_equals_torch_ops(dtype, tol):
    """The torch wrapper's CPU path (numba kernel through .numpy()) against its torch-op path."""
    import torch

    from pymodel.torch_sbpca import SBPCAState, sbpca_update

    rng = np.random.default_rng(4)
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    st = SBPCAState.seeded(9, 7, 3, seed=1, dtype=tdt)
    a_st = b_st = st
    for B in (13, 20, 5):
        x = torch.tensor(rng.standard_normal((B, 7)), dtype=tdt)
        d = torch.tensor(0.1 * rng.standard_normal((B, 9)), dtype=tdt)
        a_st = sbpca_update(a_st, x, d, 4, sigma_min=1e-3, backend="compiled")
        b_st = sbpca_update(b_st, x, d, 4, sigma_min=1e-3, backend="torch")
        assert a_st.X.dtype == tdt and a_st.pairs == B
    for name in ("X", "Delta", "sigma"):
        torch.testing.assert_close(getattr(a_st, name), getattr(b_st, name), rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="backend"):
        sbpca_update(st, x, d, 4, backend="cuda")
