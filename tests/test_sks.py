"""Streaming Kronecker-sum estimators (pymodel/sks.py) and their compiled kernel."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymodel import sks as sks_mod
from pymodel.kernels import sks as ksks
from pymodel.sks import SKS, extend_basis, unbiased_reduce


def _stream(rng, P, a, b, rank=None, dead=0.0):
    if rank is None:
        d = rng.standard_normal((P, a))
        x = rng.standard_normal((P, b))
    else:  # a stream whose G has rank <= rank
        d = rng.standard_normal((P, rank)) @ rng.standard_normal((rank, a))
        x = rng.standard_normal((P, rank)) @ rng.standard_normal((rank, b))
    if dead:
        d[rng.random(P) < dead] = 0.0  # dead ReLUs: all-zero δ rows
    return x, d


def _opt(G, r):
    U, s, Vt = np.linalg.svd(G)
    return (U[:, :r] * s[:r]) @ Vt[:r]


def test_tolerances_match_kernel():
    assert ksks.GS_TOL == sks_mod.GS_TOL and ksks.SIG_TOL == sks_mod.SIG_TOL


@pytest.mark.parametrize("backend", ["numpy", "compiled"])
@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("block", [1, 3])
def test_exact_when_rank_fits(backend, unbiased, block):
    """A stream whose sum has rank <= r is reproduced exactly (nothing is ever discarded)."""
    rng = np.random.default_rng(1)
    x, d = _stream(rng, 40, 12, 9, rank=3, dead=0.2)
    est = SKS(12, 9, 4, block=block, unbiased=unbiased, seed=2, backend=backend)
    est.update(x, d)
    G = d.T @ x
    assert np.linalg.norm(est.gradient() - G) <= 1e-10 * np.linalg.norm(G)
    U = est.U[:, est.S > 0]
    np.testing.assert_allclose(U.T @ U, np.eye(U.shape[1]), atol=1e-10)


@pytest.mark.parametrize("svd", ["numpy", "jacobi"])
def test_one_block_is_the_optimum(svd):
    """With q = B the whole batch is one core: the result is the exact truncated SVD of G."""
    rng = np.random.default_rng(3)
    x, d = _stream(rng, 20, 10, 14, dead=0.3)
    est = SKS(10, 14, 3, block=20, svd=svd, backend="numpy")
    est.update(x, d)
    G = d.T @ x
    np.testing.assert_allclose(est.gradient(), _opt(G, 3), atol=1e-10 * np.abs(G).max())


def test_deterministic_close_to_optimum():
    """Per-pair sks on a decaying-spectrum stream stays within a small factor of the optimum."""
    rng = np.random.default_rng(4)
    a, b, P = 16, 30, 400
    basis_d = rng.standard_normal((6, a))
    basis_x = rng.standard_normal((6, b))
    scale = 2.0 ** -np.arange(6)
    d = (rng.standard_normal((P, 6)) * scale) @ basis_d + 0.01 * rng.standard_normal((P, a))
    x = rng.standard_normal((P, 6)) @ basis_x
    est = SKS(a, b, 4)
    est.update(x, d)
    G = d.T @ x
    err = np.linalg.norm(G - est.gradient()) / np.linalg.norm(G)
    opt = np.linalg.norm(G - _opt(G, 4)) / np.linalg.norm(G)
    assert opt <= err <= 3 * opt  # measured: 0.051 vs 0.022


def test_unbiased_reduce_expectation_exact():
    """Averaging over every sign pattern gives back the discarded diagonal exactly."""
    rng = np.random.default_rng(5)
    n = 5
    sig = np.sort(rng.random(n) + np.array([3, 0, 0, 0, 0]))[::-1]
    Cu = np.linalg.qr(rng.standard_normal((7, n)))[0]
    Cv = np.linalg.qr(rng.standard_normal((6, n)))[0]
    target = (Cu * sig) @ Cv.T
    acc = np.zeros_like(target)
    pats = list(itertools.product([-1.0, 1.0], repeat=n))
    for p in pats:
        nu, ns, nv = unbiased_reduce(Cu, sig, Cv, np.array(p))
        assert ns.shape == (n - 1,)
        np.testing.assert_allclose(nu.T @ nu, np.eye(n - 1), atol=1e-12)  # still orthonormal
        assert np.all(np.diff(ns) <= 1e-12)  # still descending
        acc += (nu * ns) @ nv.T
    np.testing.assert_allclose(acc / len(pats), target, atol=1e-12)


def test_unbiased_stream_mean():
    """E[Ĝ] = G for sks-unbiased: the Monte Carlo mean is within 4.5 standard errors."""
    rng = np.random.default_rng(6)
    x, d = _stream(rng, 10, 5, 6)
    G = d.T @ x
    samples = []
    for seed in range(600):
        est = SKS(5, 6, 2, unbiased=True, seed=seed)
        est.update(x, d)
        samples.append(est.gradient())
    S = np.array(samples)
    se = S.std(axis=0) / np.sqrt(len(S)) + 1e-12
    assert np.max(np.abs(S.mean(axis=0) - G) / se) < 4.5
    # and the deterministic form is biased on the same stream (the test can fail)
    det = SKS(5, 6, 2)
    det.update(x, d)
    assert np.max(np.abs(det.gradient() - G) / se) > 10


def test_warm_start_carries_decayed_sketch():
    rng = np.random.default_rng(7)
    x1, d1 = _stream(rng, 8, 9, 7, rank=1)
    x2, d2 = _stream(rng, 8, 9, 7, rank=2)
    est = SKS(9, 7, 4, warm_start=True, decay=0.5)
    est.update(x1, d1)
    est.update(x2, d2)
    G = 0.5 * d1.T @ x1 + d2.T @ x2
    np.testing.assert_allclose(est.gradient(), G, atol=1e-10 * np.abs(G).max())
    cold = SKS(9, 7, 4)
    cold.update(x1, d1)
    cold.update(x2, d2)
    np.testing.assert_allclose(cold.gradient(), d2.T @ x2, atol=1e-10 * np.abs(G).max())


def test_interface_counts():
    est = SKS(10, 65, 4, block=2)
    assert est.array_updates == 4
    assert est.state_numbers == 4 * (10 + 65 + 1)
    assert est.work_numbers == 2 * 75 + 3 * 36
    rng = np.random.default_rng(8)
    x, d = _stream(rng, 5, 10, 65)
    est.update(x, d)
    f = est.factors()
    assert len(f) == 4
    np.testing.assert_allclose(sum(np.outer(u, v) for u, v in f), est.gradient(), atol=1e-12)


def test_extend_basis_drops_in_span_and_zero():
    rng = np.random.default_rng(9)
    B = np.linalg.qr(rng.standard_normal((8, 2)))[0]
    D = np.stack([B @ np.array([1.0, 2.0]), np.zeros(8), rng.standard_normal(8)])
    W, R = extend_basis(B, D)
    np.testing.assert_allclose(W @ R, D.T, atol=1e-13)
    assert np.all(W[:, 2] == 0) and np.all(W[:, 3] == 0)
    np.testing.assert_allclose(np.linalg.norm(W[:, 4]), 1.0)


@pytest.mark.parametrize("kw, err", [
    (dict(rank=0), "rank must be >= 1"),
    (dict(rank=20), "exceeds min"),
    (dict(block=0), "block must be >= 1"),
    (dict(svd="lapack"), "unknown svd"),
    (dict(backend="gpu"), "unknown backend"),
    (dict(decay=1.5), "decay must be"),
])
def test_bad_parameters(kw, err):
    args = dict(rows=10, cols=12, rank=4)
    args.update(kw)
    with pytest.raises(ValueError, match=err):
        SKS(**args)


def test_bad_input():
    est = SKS(4, 5, 2)
    with pytest.raises(ValueError, match="x has shape"):
        est.update(np.zeros((3, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="different numbers"):
        est.update(np.zeros((3, 5)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="empty batch"):
        est.update(np.zeros((0, 5)), np.zeros((0, 4)))
    with pytest.raises(ValueError, match="NaN"):
        est.update(np.full((1, 5), np.nan), np.zeros((1, 4)))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(a=st.integers(1, 12), b=st.integers(1, 12), r=st.integers(1, 5), q=st.integers(1, 6),
       P=st.integers(1, 60), seed=st.integers(0, 2**31), svd=st.sampled_from(["numpy", "jacobi"]),
       dead=st.sampled_from([0.0, 0.5]), warm=st.booleans())
def test_compiled_equals_reference_sks(a, b, r, q, P, seed, svd, dead, warm):
    """Deterministic sks: the numba kernel equals the NumPy reference to rounding."""
    r = min(r, a, b)
    rng = np.random.default_rng(seed)
    ests = [SKS(a, b, r, block=q, svd=svd, backend=be, warm_start=warm) for be in ("numpy", "compiled")]
    for _ in range(2):
        x, d = _stream(rng, P, a, b, dead=dead)
        for e in ests:
            e.update(x, d)
        g0, g1 = ests[0].gradient(), ests[1].gradient()
        scale = max(np.abs(d.T @ x).max(), 1e-300)
        np.testing.assert_allclose(g1, g0, atol=1e-9 * scale, rtol=0)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(a=st.integers(2, 10), b=st.integers(2, 10), r=st.integers(1, 4), q=st.integers(1, 4),
       seed=st.integers(0, 2**31))
def test_compiled_equals_reference_unbiased(a, b, r, q, seed):
    """sks-unbiased: same signs, same result, while the spectrum is not yet degenerate.

    (Once several singular values are equal — the flat tail s_k — their vectors are any
    basis of the subspace, and the two SVD routines may pick different ones: the
    estimates then differ as two draws do, with the same distribution.)
    """
    r = min(r, a, b)
    rng = np.random.default_rng(seed)
    x, d = _stream(rng, r + q, a, b)
    e0 = SKS(a, b, r, block=q, unbiased=True, seed=seed, backend="numpy")
    e1 = SKS(a, b, r, block=q, unbiased=True, seed=seed, backend="compiled")
    e0.update(x, d)
    e1.update(x, d)
    scale = np.abs(d.T @ x).max()
    np.testing.assert_allclose(e1.gradient(), e0.gradient(), atol=1e-9 * scale, rtol=0)


@pytest.mark.parametrize("method", ["sks", "sks-unbiased"])
def test_training_runs_with_sks(method):
    """`sbpca train --method sks[-unbiased]`: the rule trains and measures the gradient error."""
    from pymodel.training import TrainConfig, train

    res = train(TrainConfig(method=method, epochs=1, max_batches=3, block=2, seed=1))
    assert set(res["grad_error"]) == {"conv1", "conv2", "fc"}
    assert all(np.isfinite(v) and v >= 0 for v in res["grad_error"].values())
    assert res["updates"]["rank1_per_batch"] == 4 + 4 + 4


def test_cli_train_sks(capsys):
    """`sbpca train --method sks --block 2 --fixed q8` on a slice of digits prints its status."""
    from pymodel.cli import main

    rc = main(["train", "--method", "sks", "--block", "2", "--fixed", "q8", "--epochs", "1",
               "--train-limit", "64", "--test-limit", "32", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "sks rank 4 block 2 fixed q8" in out
    assert "rotations" in out and "unconverged 0" in out


@pytest.mark.parametrize("fixed", [None, "q8"])
def test_rule_backends_agree(fixed):
    """RuleConfig.backend reaches SKS: the NumPy reference and the kernel give the same update."""
    from pymodel.training import TrainConfig, train

    res = [train(TrainConfig(method="sks", fixed=fixed, epochs=1, batch=4, train_limit=8, test_limit=8, seed=3,
                             backend=be)) for be in ("numpy", "compiled")]
    for name in ("conv1", "conv2", "fc"):
        assert res[0]["grad_error"][name] == pytest.approx(res[1]["grad_error"][name], rel=1e-9, abs=1e-12)
    assert res[0]["train_loss"] == pytest.approx(res[1]["train_loss"], rel=1e-9)
