"""One-sided Jacobi SVD (pymodel/jacobi.py, kernels/sks.py) against numpy.linalg.svd."""

from __future__ import annotations

import numpy as np
import pytest

from pymodel.jacobi import canonical_signs, jacobi_svd
from pymodel.kernels.sks import jacobi_svd_nb


def _cores():
    rng = np.random.default_rng(11)
    out = []
    for n in (2, 5, 8, 12):
        out.append(("random", rng.standard_normal((n, n))))
    for cond in (1e6, 1e12):  # graded singular values
        n = 7
        Q1 = np.linalg.qr(rng.standard_normal((n, n)))[0]
        Q2 = np.linalg.qr(rng.standard_normal((n, n)))[0]
        s = np.logspace(0, -np.log10(cond), n)
        out.append((f"cond{cond:g}", (Q1 * s) @ Q2.T))
    # an SKS-shaped core: diag(S, 0) + rank-q update, with zero rows/columns (dead ReLUs)
    K = np.zeros((8, 8))
    K[:4, :4] = np.diag([9.0, 4.0, 1.0, 0.5])
    u = np.r_[rng.standard_normal(4), 0.7, 0.0, 0.0, 1.3]
    v = np.r_[rng.standard_normal(4), 2.0, 0.0, 0.0, 0.1]
    out.append(("sks-core", K + np.outer(u, v)))
    out.append(("rank1", np.outer(u, v)))
    out.append(("zero", np.zeros((4, 4))))
    out.append(("repeated", np.diag([2.0, 2.0, 2.0, 1.0])))
    return out


@pytest.mark.parametrize("impl", [jacobi_svd, jacobi_svd_nb], ids=["python", "numba"])
@pytest.mark.parametrize("name, K", _cores(), ids=[c[0] for c in _cores()])
def test_jacobi_matches_numpy(impl, name, K):
    U, s, Vt = impl(K)
    s_ref = np.linalg.svd(K, compute_uv=False)
    scale = max(s_ref[0], 1e-300)
    np.testing.assert_allclose(s, s_ref, atol=1e-13 * scale, rtol=0)
    np.testing.assert_allclose((U * s) @ Vt, K, atol=1e-13 * scale, rtol=0)
    np.testing.assert_allclose(Vt @ Vt.T, np.eye(len(s)), atol=1e-13)
    nz = s > 1e-12 * scale
    np.testing.assert_allclose(U[:, nz].T @ U[:, nz], np.eye(int(nz.sum())), atol=1e-10)
    # singular vectors up to sign where the singular values are well separated
    Ur, sr, Vtr = np.linalg.svd(K)
    Ur, Vtr = canonical_signs(Ur, Vtr)
    Uc, Vtc = canonical_signs(U, Vt)
    gaps = np.abs(np.diff(np.r_[np.inf, sr, -np.inf]))
    for c in range(len(s)):
        if min(gaps[c], gaps[c + 1]) > 1e-3 * scale and sr[c] > 1e-6 * scale:
            np.testing.assert_allclose(Uc[:, c], Ur[:, c], atol=1e-7)
            np.testing.assert_allclose(Vtc[c], Vtr[c], atol=1e-7)


def test_jacobi_rejects_bad_input():
    with pytest.raises(ValueError, match="square"):
        jacobi_svd(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        jacobi_svd(np.array([[np.nan]]))
