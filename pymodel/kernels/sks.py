"""Compiled float64 kernel of the streaming Kronecker-sum estimator (``pymodel.sks``).

One call folds a whole batch into the sketch without returning to Python: the same
steps as :func:`pymodel.sks.fold_block` (CGS2 basis extension, core, SVD by LAPACK or
the one-sided Jacobi of :func:`pymodel.jacobi.jacobi_svd`, canonical signs, unbiased
reduction or truncation), written as loops.  Results equal the NumPy reference to
rounding (tests/test_sks.py compares them).
"""

from __future__ import annotations

import numpy as np
from numba import njit

GS_TOL = 1e-12  # keep equal to pymodel.sks.GS_TOL / SIG_TOL (asserted in the tests)
SIG_TOL = 1e-12


@njit(cache=True)
def _extend(B, D, b0, m):
    """[B Q] and R for rows b0..b0+m of D (see pymodel.sks.extend_basis)."""
    a, r = B.shape
    W = np.zeros((a, r + m))
    W[:, :r] = B
    R = np.zeros((r + m, m))
    w = np.empty(a)
    for j in range(m):
        ref = 0.0
        for i in range(a):
            w[i] = D[b0 + j, i]
            ref += w[i] * w[i]
        ref = np.sqrt(ref)
        for _ in range(2):
            h = np.zeros(r + j)
            for c in range(r + j):
                acc = 0.0
                for i in range(a):
                    acc += W[i, c] * w[i]
                h[c] = acc
            for c in range(r + j):
                hc = h[c]
                if hc != 0.0:
                    for i in range(a):
                        w[i] -= W[i, c] * hc
                R[c, j] += hc
        nrm = 0.0
        for i in range(a):
            nrm += w[i] * w[i]
        nrm = np.sqrt(nrm)
        if nrm > GS_TOL * ref and nrm > 0.0:
            for i in range(a):
                W[i, r + j] = w[i] / nrm
            R[r + j, j] = nrm
    return W, R


@njit(cache=True)
def jacobi_svd_nb(K, tol=1e-14, max_sweeps=60):
    """Compiled twin of :func:`pymodel.jacobi.jacobi_svd` (U, s, Vt; s descending)."""
    n = K.shape[0]
    A = K.copy()
    V = np.eye(n)
    frob2 = 0.0
    for i in range(n):
        for j in range(n):
            frob2 += A[i, j] * A[i, j]
    tiny = tol * tol * frob2
    converged = False
    for _ in range(max_sweeps):
        rotated = False
        for i in range(n - 1):
            for j in range(i + 1, n):
                alpha = 0.0
                beta = 0.0
                gamma = 0.0
                for k in range(n):
                    alpha += A[k, i] * A[k, i]
                    beta += A[k, j] * A[k, j]
                    gamma += A[k, i] * A[k, j]
                if gamma == 0.0 or abs(gamma) <= tol * np.sqrt(alpha * beta) or min(alpha, beta) <= tiny:
                    continue
                rotated = True
                d = beta - alpha
                sgn = 1.0 if d >= 0 else -1.0
                t = sgn * 2.0 * gamma / (abs(d) + np.hypot(d, 2.0 * gamma))
                c = 1.0 / np.sqrt(1.0 + t * t)
                s = c * t
                for k in range(n):
                    x = A[k, i]
                    y = A[k, j]
                    A[k, i] = c * x - s * y
                    A[k, j] = s * x + c * y
                    x = V[k, i]
                    y = V[k, j]
                    V[k, i] = c * x - s * y
                    V[k, j] = s * x + c * y
        if not rotated:
            converged = True
            break
    if not converged:
        raise RuntimeError("jacobi_svd did not converge")
    s = np.zeros(n)
    for c in range(n):
        acc = 0.0
        for k in range(n):
            acc += A[k, c] * A[k, c]
        s[c] = np.sqrt(acc)
    order = np.argsort(-s, kind="mergesort")
    U = np.zeros((n, n))
    Vt = np.zeros((n, n))
    so = np.zeros(n)
    for cc in range(n):
        c = order[cc]
        so[cc] = s[c]
        for k in range(n):
            Vt[cc, k] = V[k, c]
            if s[c] > 0:
                U[k, cc] = A[k, c] / s[c]
    return U, so, Vt


@njit(cache=True)
def _canonical(U, Vt):
    n = U.shape[1]
    for c in range(n):
        best = 0
        bv = -1.0
        for i in range(U.shape[0]):
            if abs(U[i, c]) > bv:
                bv = abs(U[i, c])
                best = i
        if U[best, c] < 0:
            U[:, c] = -U[:, c]
            Vt[c, :] = -Vt[c, :]


@njit(cache=True)
def _reduce(Cu, sig, Cv, signs):
    """Compiled twin of :func:`pymodel.sks.unbiased_reduce`."""
    n = sig.shape[0]
    if not sig[n - 1] > SIG_TOL * sig[0]:
        return Cu[:, :n - 1].copy(), sig[:n - 1].copy(), Cv[:, :n - 1].copy()
    m = n - 1
    s = sig[m]
    while m > 0:
        k_new = n - m
        if k_new * sig[m - 1] > s + sig[m - 1]:
            break
        m -= 1
        s += sig[m]
    k = n - 1 - m
    sk = s / k
    w = np.empty(k + 1)
    for i in range(k + 1):
        w[i] = np.sqrt(max(0.0, 1.0 - sig[m + i] / sk))
    v = w.copy()
    v[0] -= 1.0
    Z = np.zeros((k + 1, k))
    for i in range(k + 1):
        for j in range(k):
            z = v[i] * (v[j + 1] / v[0])
            if i == j + 1:
                z += 1.0
            Z[i, j] = signs[i] * z
    rows = Cu.shape[0]
    nu = np.zeros((rows, n - 1))
    nv = np.zeros((rows, n - 1))
    ns = np.zeros(n - 1)
    for c in range(m):
        nu[:, c] = Cu[:, c]
        nv[:, c] = Cv[:, c]
        ns[c] = sig[c]
    for j in range(k):
        ns[m + j] = sk
        for i in range(k + 1):
            z = Z[i, j]
            for rr in range(rows):
                nu[rr, m + j] += Cu[rr, m + i] * z
                nv[rr, m + j] += Cv[rr, m + i] * z
    return nu, ns, nv


@njit(cache=True)
def sks_batch(U, S, V, D, X, q, signs, unbiased, use_jacobi):
    """Fold a batch (rows of D: δ, rows of X: x) into (U, S, V), q pairs per core SVD."""
    r = S.shape[0]
    P = D.shape[0]
    U = U.copy()
    S = S.copy()
    V = V.copy()
    for b0 in range(0, P, q):
        m = min(q, P - b0)
        Wu, Ru = _extend(U, D, b0, m)
        Wv, Rv = _extend(V, X, b0, m)
        K = Ru @ Rv.T
        for i in range(r):
            K[i, i] += S[i]
        if use_jacobi:
            Cu, sig, Cvt = jacobi_svd_nb(K)
        else:
            Cu, sig, Cvt = np.linalg.svd(K)
        _canonical(Cu, Cvt)
        Cv = Cvt.T.copy()
        if unbiased:
            for step in range(m):
                Cu, sig, Cv = _reduce(Cu, sig, Cv, signs[b0 + step])
        Cu_r = np.ascontiguousarray(Cu[:, :r])
        Cv_r = np.ascontiguousarray(Cv[:, :r])
        U = Wu @ Cu_r
        V = Wv @ Cv_r
        top = sig[0]
        for c in range(r):
            if top > 0 and sig[c] > SIG_TOL * top:
                S[c] = sig[c]
            else:
                S[c] = 0.0
                U[:, c] = 0.0
                V[:, c] = 0.0
    return U, S, V
