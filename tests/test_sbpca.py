"""Float and fixed-point SBPCA: published equations, Eckart–Young limit, fixed→float trend, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from pymodel.baselines import PowerSGD, TruncatedSVD, make_estimator
from pymodel.formats import FORMAT_SETS, get_format_set
from pymodel.sbpca import SBPCA, orth


def low_rank_stream(rng, a, b, B, rank=6, scale=(3, 2, 1, 0.5, 0.2, 0.1), noise=0.02):
    U = np.linalg.qr(rng.standard_normal((a, a)))[0][:, :rank]
    V = np.linalg.qr(rng.standard_normal((b, b)))[0][:, :rank]

    def batch():
        z = rng.standard_normal((B, rank)) * np.array(scale[:rank])
        x = 0.5 * z @ V.T + noise * rng.standard_normal((B, b))
        d = 0.1 * z @ U.T + noise * 0.1 * rng.standard_normal((B, a))
        return x, d

    return batch


def published_sbpca(X, D, sig, batches, s):
    """Independent re-statement of the published per-sub-batch equations (B a multiple of s).

    For sub-batch i of every batch: α = (i+1)/(i+2), β = 1/((i+2)s).
    """
    for x, d in batches:
        for i in range(x.shape[0] // s):
            xs, ds = x[i * s:(i + 1) * s], d[i * s:(i + 1) * s]
            alpha, beta = (i + 1) / (i + 2), 1.0 / ((i + 2) * s)
            Xn = alpha * X + beta * xs.T @ (ds @ D) / sig[None, :]
            X, _ = np.linalg.qr(Xn)
            X = X * np.sign(np.diag(np.linalg.qr(Xn)[1]))
            Dn = alpha * D + beta * ds.T @ (xs @ X) / sig[None, :]
            D = np.linalg.qr(Dn)[0] * np.sign(np.diag(np.linalg.qr(Dn)[1]))
            sig = alpha * sig + beta * np.einsum("jc,jc->c", ds @ D, xs @ X)
    return X, D, sig


def test_float_equals_published_equations():
    rng = np.random.default_rng(3)
    a, b, k, s, B = 12, 9, 3, 4, 16
    gen = low_rank_stream(rng, a, b, B)
    batches = [gen() for _ in range(5)]
    X0 = orth(rng.standard_normal((b, k)))
    D0 = orth(rng.standard_normal((a, k)))
    s0 = np.array([1.0, 0.7, 0.4])
    eng = SBPCA(a, b, k, s, init=(X0, D0, s0))
    for x, d in batches:
        eng.update(x, d)
    X, D, sig = published_sbpca(X0, D0, s0, batches, s)
    np.testing.assert_allclose(eng.X, X, atol=1e-12, rtol=0)
    np.testing.assert_allclose(eng.Delta, D, atol=1e-12, rtol=0)
    np.testing.assert_allclose(eng.sigma, sig, atol=1e-12, rtol=1e-12)
    np.testing.assert_allclose(eng.gradient(), B * (D * sig) @ X.T, atol=1e-12)


def test_partial_last_sub_batch_uses_true_size():
    rng = np.random.default_rng(5)
    a, b, k, s = 7, 6, 2, 4
    x, d = rng.standard_normal((10, b)), rng.standard_normal((10, a))  # 4 + 4 + 2
    eng = SBPCA(a, b, k, s, seed=1)
    X, D, sig = eng.X, eng.Delta, eng.sigma
    eng.update(x, d)
    n = s
    for start in (0, 4, 8):
        xs, ds = x[start:start + 4], d[start:start + 4]
        m = xs.shape[0]
        al, be = n / (n + m), 1 / (n + m)
        X = orth(al * X + be * xs.T @ (ds @ D) / sig)
        D = orth(al * D + be * ds.T @ (xs @ X) / sig)
        sig = al * sig + be * np.sum((ds @ D) * (xs @ X), axis=0)
        n += m
    np.testing.assert_allclose(eng.sigma, sig, rtol=1e-12)
    assert eng.last_batch_size == 10
    np.testing.assert_allclose(eng.gradient(), 10 * (D * sig) @ X.T, atol=1e-12)


def test_full_batch_converges_to_truncated_svd():
    """s = B and a fixed G: repeated batches reach the Eckart–Young optimum."""
    rng = np.random.default_rng(0)
    a, b, k, B = 10, 8, 3, 40
    x = rng.standard_normal((B, b))
    d = rng.standard_normal((B, a)) @ np.diag(np.linspace(2, 0.2, a))
    G = d.T @ x
    S = np.linalg.svd(G, compute_uv=False)
    optimum = np.sqrt(np.sum(S[k:] ** 2)) / np.linalg.norm(G)
    eng = SBPCA(a, b, k, sub_batch=B, seed=2)
    for _ in range(200):
        eng.update(x, d)
    err = np.linalg.norm(G - eng.gradient()) / np.linalg.norm(G)
    assert abs(err - optimum) < 1e-6
    svd = TruncatedSVD(a, b, k)
    svd.update(x, d)
    np.testing.assert_allclose(eng.gradient(), svd.gradient(), atol=1e-6 * np.linalg.norm(G))


def test_warm_start_carries_state():
    rng = np.random.default_rng(1)
    gen = low_rank_stream(rng, 10, 10, 32)
    eng = SBPCA(10, 10, 2, 8, seed=0)
    x, d = gen()
    eng.update(x, d)
    X1 = eng.X
    eng.update(x, d)
    assert not np.allclose(X1, eng.X)  # state moved on from the carried start
    assert eng.batches == 2


def test_sigma_guard_option_in_float():
    x = np.ones((4, 3))
    d = np.zeros((4, 2))
    eng = SBPCA(2, 3, 1, 4, seed=0, init=(np.eye(3)[:, :1], np.eye(2)[:, :1], np.array([1e-12])),
                sigma_min=1e-3)
    eng.update(x, d)
    assert np.all(np.isfinite(eng.X))


def fixed_vs_float_error(fmt_name, seed=0, batches=6):
    rng = np.random.default_rng(seed)
    a, b, k, s, B = 16, 12, 3, 8, 32
    gen = low_rank_stream(rng, a, b, B)
    fl = SBPCA(a, b, k, s, seed=4)
    fx = SBPCA(a, b, k, s, seed=4, fixed=fmt_name, init=(fl.X, fl.Delta, fl.sigma))
    fl2 = SBPCA(a, b, k, s, init=(fx.X, fx.Delta, fx.sigma))  # float from the quantised start
    for _ in range(batches):
        x, d = gen()
        fl2.update(x, d)
        fx.update(x, d)
    g = fl2.gradient()
    return np.linalg.norm(fx.gradient() - g) / np.linalg.norm(g), fx


def test_fixed_approaches_float_as_bits_grow():
    fmts = {bits: FORMAT_SETS["q16"].with_data_bits(bits) for bits in (8, 10, 12, 14, 16)}
    errs = [fixed_vs_float_error(f)[0] for f in fmts.values()]
    # error shrinks monotonically, roughly halving per extra bit (a factor >= 8 over 6 bits)
    assert all(e1 > e2 for e1, e2 in zip(errs, errs[1:])), errs
    assert errs[0] / errs[-1] > 8, errs
    assert errs[-1] < 5e-3


def test_default_format_within_documented_bound():
    err, fx = fixed_vs_float_error("q16", seed=7)
    assert err < 1e-2  # documented in docs/FIXED_POINT.md
    assert not fx.status.saturation.any
    q24, _ = fixed_vs_float_error("q24", seed=7)
    assert q24 < err


def test_fixed_is_deterministic_and_orthonormal():
    rng = np.random.default_rng(9)
    gen = low_rank_stream(rng, 9, 7, 20)
    batches = [gen() for _ in range(3)]
    runs = []
    for _ in range(2):
        e = SBPCA(9, 7, 2, 6, seed=3, fixed=True, record=True)
        for x, d in batches:
            e.update(x, d)
        runs.append(e)
    assert np.array_equal(runs[0].X_int, runs[1].X_int)
    assert np.array_equal(runs[0].sigma_int, runs[1].sigma_int)
    assert len(runs[0].history) == 3 * 4  # 20 = 6+6+6+2 per batch
    X = runs[0].X
    assert np.abs(X.T @ X - np.eye(2)).max() < 1e-3


def test_narrow_format_saturates_and_flags():
    e = SBPCA(4, 4, 1, 2, seed=0, fixed="q8")
    e.update(np.full((4, 4), 100.0), np.full((4, 4), 0.5))
    assert e.status.saturation.counts.get("x", 0) == 16


def test_update_int_matches_update():
    rng = np.random.default_rng(2)
    x, d = rng.standard_normal((12, 5)), 0.2 * rng.standard_normal((12, 4))
    f = get_format_set("q16")
    e1 = SBPCA(4, 5, 2, 4, seed=0, fixed=True)
    e2 = SBPCA(4, 5, 2, 4, seed=0, fixed=True)
    e1.update(x, d)
    e2.update_int(f.x.quantize(x), f.delta.quantize(d))
    assert np.array_equal(e1.Delta_int, e2.Delta_int)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(rows=4, cols=3, rank=4, sub_batch=2), ValueError, "rank 4 exceeds"),
        (dict(rows=4, cols=3, rank=2, sub_batch=0), ValueError, "sub_batch must be >= 1"),
        (dict(rows=4, cols=3, rank=0, sub_batch=2), ValueError, "rank must be >= 1"),
        (dict(rows=4.0, cols=3, rank=1, sub_batch=2), TypeError, "rows must be an integer"),
        (dict(rows=4, cols=3, rank=1, sub_batch=2, fixed="q7"), ValueError, "unknown format set"),
        (dict(rows=4, cols=3, rank=1, sub_batch=2, init=(np.zeros((2, 1)), np.zeros((4, 1)), [1.0])),
         ValueError, "init X has shape"),
    ],
)
def test_bad_construction(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        SBPCA(**kwargs)


@pytest.mark.parametrize("fixed", [False, True])
def test_bad_batches(fixed):
    e = SBPCA(4, 3, 1, 2, fixed=fixed)
    with pytest.raises(ValueError, match=r"x has shape"):
        e.update(np.zeros((5, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"delta has shape"):
        e.update(np.zeros((5, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="different numbers of samples"):
        e.update(np.zeros((5, 3)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="NaN"):
        e.update(np.full((2, 3), np.nan), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="empty batch"):
        e.update(np.zeros((0, 3)), np.zeros((0, 4)))


def test_error_format_rejects_out_of_range_input():
    from dataclasses import replace

    from pymodel.fixedpoint import Overflow

    base = FORMAT_SETS["q16"]
    strict = replace(base, name="strict", x=replace(base.x, overflow=Overflow.ERROR))
    e = SBPCA(4, 3, 1, 2, fixed=strict)
    with pytest.raises(ValueError, match="x out of range"):
        e.update(np.full((2, 3), 9.0), np.zeros((2, 4)))


def test_baselines():
    rng = np.random.default_rng(0)
    x, d = rng.standard_normal((30, 8)), rng.standard_normal((30, 6))
    G = d.T @ x
    mb = make_estimator("mbgd", 6, 8)
    mb.update(x, d)
    np.testing.assert_allclose(mb.gradient(), G)
    assert mb.array_updates == 30
    # PowerSGD with error feedback: the accumulated estimates converge to the accumulated G
    ps = PowerSGD(6, 8, 2, seed=0, error_feedback=True)
    total = np.zeros_like(G)
    for _ in range(60):
        ps.update(x, d)
        total += ps.gradient()
    assert np.linalg.norm(total / 60 - G) / np.linalg.norm(G) < 0.1
    ps_noef = PowerSGD(6, 8, 2, seed=0, error_feedback=False)
    for _ in range(30):
        ps_noef.update(x, d)
    svd = TruncatedSVD(6, 8, 2)
    svd.update(x, d)
    np.testing.assert_allclose(ps_noef.gradient(), svd.gradient(), atol=1e-6 * np.linalg.norm(G))
    with pytest.raises(ValueError, match="unknown method"):
        make_estimator("adam", 6, 8)
