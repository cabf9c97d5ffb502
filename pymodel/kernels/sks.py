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


# ====================================================================== fixed point
# The integer twin of pymodel.sks_fixed.SKSFixed._fold, in int64 only.  The estimator
# calls it only when its static bounds prove every exact product and sum fits 63 bits
# (SKSFixed.compiled_ok); otherwise the Python-int reference runs.  Rounding is half
# even and overflow saturates (asserted by the caller).  Saturation counts go to
# ``counts`` indexed as SAT_NAMES; ``stats`` = [dropped, sweeps, rotations, cores, unconverged].

SAT_NAMES = ("U_h", "U_w", "U_c", "U_q", "V_h", "V_w", "V_c", "V_q", "K", "jac_A", "red_rot", "U_new", "V_new")
# params layout (int64 array)
P_DELTA_FRAC, P_X_FRAC, P_RESID_FRAC, P_RESID_MAX, P_COEF_FRAC, P_COEF_MAX, P_BASIS_FRAC, P_BASIS_MAX, \
    P_RECIP_BITS, P_UNUSED, P_CORE_FRAC, P_CORE_MAX, P_ROT_FRAC, P_ROT_MAX, P_GUARD, P_DROP, P_SWEEPS, \
    P_JBITS, P_JTOL = range(19)


@njit(cache=True)
def _rs(v, sh):
    """Round-half-even right shift of an int64 (left shift for sh <= 0)."""
    if sh <= 0:
        return v << (-sh)
    floor = v >> sh
    rem = v - (floor << sh)
    half = np.int64(1) << (sh - 1)
    if rem > half or (rem == half and (floor & 1) == 1):
        return floor + 1
    return floor


@njit(cache=True)
def _sat(v, vmax, counts, idx):
    """Saturate to [-vmax-1, vmax] (a two's complement format), counting when idx >= 0."""
    if v > vmax:
        if idx >= 0:
            counts[idx] += 1
        return vmax
    if v < -vmax - 1:
        if idx >= 0:
            counts[idx] += 1
        return -vmax - 1
    return v


@njit(cache=True)
def _clip_sym(v, vmax, counts, count):
    """Clip to [-vmax, vmax] (the Jacobi work matrix's guard), counted as jac_A."""
    if v > vmax or v < -vmax:
        if count:
            counts[9] += 1
        return vmax if v > 0 else -vmax
    return v


@njit(cache=True)
def _div_round(num, den):
    an = abs(num)
    ad = abs(den)
    q = (2 * an + ad) // (2 * ad)
    return -q if (num < 0) != (den < 0) else q


@njit(cache=True)
def _isqrt(v):
    r = np.int64(np.sqrt(np.float64(v)))
    while r * r > v:
        r -= 1
    while (r + 1) * (r + 1) <= v:
        r += 1
    return r


@njit(cache=True)
def _bitlen(v):
    v = abs(v)
    n = 0
    while v > 0:
        v >>= 1
        n += 1
    return n


@njit(cache=True)
def _extend_int(B, D, b0, m, in_frac, p, counts, base, stats):
    """Integer CGS2 (see SKSFixed._extend); ``base`` is the SAT_NAMES offset (0: U, 4: V)."""
    a, r = B.shape
    rf, rmax = p[P_RESID_FRAC], p[P_RESID_MAX]
    cf, cmax = p[P_COEF_FRAC], p[P_COEF_MAX]
    bf, bmax = p[P_BASIS_FRAC], p[P_BASIS_MAX]
    g = p[P_GUARD]
    W = np.zeros((a, r + m), dtype=np.int64)
    W[:, :r] = B
    R = np.zeros((r + m, m), dtype=np.int64)
    w = np.empty(a, dtype=np.int64)
    for j in range(m):
        n2_ref = np.int64(0)
        for i in range(a):
            w[i] = D[b0 + j, i] << (rf - in_frac)
            n2_ref += w[i] * w[i]
        c = np.zeros(r + m, dtype=np.int64)
        for _ in range(2):
            h = np.empty(r + j, dtype=np.int64)
            for cc in range(r + j):
                acc = np.int64(0)
                for i in range(a):
                    acc += w[i] * W[i, cc]
                h[cc] = _sat(_rs(acc, bf + rf - cf), cmax, counts, base + 0)
            for i in range(a):
                acc = np.int64(0)
                for cc in range(r + j):
                    acc += W[i, cc] * h[cc]
                corr = _sat(_rs(acc, bf + cf - rf), rmax, counts, -1)
                w[i] = _sat(w[i] - corr, rmax, counts, base + 1)
            for cc in range(r + j):
                c[cc] = _sat(c[cc] + h[cc], cmax, counts, base + 2)
        n2 = np.int64(0)
        for i in range(a):
            n2 += w[i] * w[i]
        if n2 == 0 or n2 <= (n2_ref >> (2 * p[P_DROP])):
            stats[0] += 1
        else:
            s = _isqrt(n2 << (2 * g))
            L = _bitlen(s) + p[P_RECIP_BITS]
            inv = _div_round(np.int64(1) << L, s)
            for i in range(a):
                W[i, r + j] = _sat(_rs(w[i] * inv, L - g - bf), bmax, counts, base + 3)
            c[r + j] = _sat(_rs(s, rf + g - cf), cmax, counts, base + 2)
        for cc in range(r + m):
            R[cc, j] = c[cc]
    return W, R


@njit(cache=True)
def _jacobi_int(A, rot_frac, max_sweeps, amax, tol_bits, counts, count):
    """Integer one-sided Jacobi (pymodel.jacobi.jacobi_svd_int with keep_bits = 30)."""
    n = A.shape[0]
    one = np.int64(1) << rot_frac
    V = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        V[i, i] = one
    rotations = 0
    sweeps = 0
    for _ in range(max_sweeps):
        sweeps += 1
        rotated = False
        for i in range(n - 1):
            for j in range(i + 1, n):
                gamma = np.int64(0)
                for k in range(n):
                    gamma += A[k, i] * A[k, j]
                if gamma == 0:
                    continue
                alpha = np.int64(0)
                beta = np.int64(0)
                for k in range(n):
                    alpha += A[k, i] * A[k, i]
                    beta += A[k, j] * A[k, j]
                sh = max(0, _bitlen(max(alpha, beta)) - 30)
                al_ = _rs(alpha, sh)
                be_ = _rs(beta, sh)
                ga_ = _rs(gamma, sh)
                if ga_ * ga_ <= ((al_ * be_) >> (2 * tol_bits)) or ga_ * ga_ <= ((n * (al_ + be_)) >> sh):
                    continue
                d = beta - alpha
                g2 = 2 * gamma
                m = _bitlen(max(abs(d), abs(g2)))
                sh2 = max(0, m - 30)
                d = _rs(d, sh2)
                g2 = _rs(g2, sh2)
                if g2 == 0:
                    continue
                h = _isqrt(d * d + g2 * g2)
                num = g2 if d >= 0 else -g2
                t = _div_round(num << rot_frac, abs(d) + h)
                if t == 0:
                    continue
                c = _div_round(one << rot_frac, _isqrt((one << rot_frac) + t * t))
                s = _rs(c * t, rot_frac)
                rotated = True
                rotations += 1
                for k in range(n):
                    x = A[k, i]
                    y = A[k, j]
                    A[k, i] = _clip_sym(_rs(c * x - s * y, rot_frac), amax, counts, count)
                    A[k, j] = _clip_sym(_rs(s * x + c * y, rot_frac), amax, counts, count)
                    x = V[k, i]
                    y = V[k, j]
                    V[k, i] = _rs(c * x - s * y, rot_frac)
                    V[k, j] = _rs(s * x + c * y, rot_frac)
        if not rotated:
            break
    return V, sweeps, rotations


@njit(cache=True)
def _dead(s, s0, drop):
    return s <= 0 or s <= (s0 >> drop)


@njit(cache=True)
def _reduce_int(Cu, sig, Cv, signs, p, counts):
    """Integer unbiased reduction (SKSFixed._reduce); Cu, Cv hold columns as rows (n × len)."""
    fr = p[P_ROT_FRAC]
    one = np.int64(1) << fr
    n = sig.shape[0]
    if _dead(sig[n - 1], sig[0], p[P_DROP]):
        return Cu[:n - 1].copy(), sig[:n - 1].copy(), Cv[:n - 1].copy()
    m = n - 1
    s = sig[m]
    while m > 0:
        k_new = n - m
        if k_new * sig[m - 1] > s + sig[m - 1]:
            break
        m -= 1
        s += sig[m]
    k = n - 1 - m
    sk = _div_round(s, k)
    v = np.zeros(k + 1, dtype=np.int64)
    for i in range(k + 1):
        if sk > sig[m + i]:
            v[i] = _isqrt(_div_round((sk - sig[m + i]) << fr, sk) << fr)
    v[0] -= one
    Z = np.zeros((k + 1, k), dtype=np.int64)
    for i in range(k + 1):
        for j in range(k):
            z = _div_round(v[i] * v[j + 1], v[0])
            if i == j + 1:
                z += one
            Z[i, j] = signs[i] * z
    L = Cu.shape[1]
    nu = np.zeros((n - 1, L), dtype=np.int64)
    nv = np.zeros((n - 1, L), dtype=np.int64)
    ns = np.zeros(n - 1, dtype=np.int64)
    for c in range(m):
        nu[c] = Cu[c]
        nv[c] = Cv[c]
        ns[c] = sig[c]
    rmax = p[P_ROT_MAX]
    for j in range(k):
        ns[m + j] = sk
        for e in range(L):
            au = np.int64(0)
            av = np.int64(0)
            for i in range(k + 1):
                au += Cu[m + i, e] * Z[i, j]
                av += Cv[m + i, e] * Z[i, j]
            nu[m + j, e] = _sat(_rs(au, fr), rmax, counts, 10)
            nv[m + j, e] = _sat(_rs(av, fr), rmax, counts, 10)
    return nu, ns, nv


@njit(cache=True)
def sks_fixed_batch(U, S, V, D, X, q, signs, unbiased, p, counts, stats):
    """Fold a batch of integer pairs (rows of D: δ ints, X: x ints) into (U, S, V), q per core."""
    r = S.shape[0]
    P = D.shape[0]
    U = U.copy()
    S = S.copy()
    V = V.copy()
    cmax = p[P_CORE_MAX]
    fr = p[P_ROT_FRAC]
    one = np.int64(1) << fr
    for b0 in range(0, P, q):
        m = min(q, P - b0)
        Wu, Ru = _extend_int(U, D, b0, m, p[P_DELTA_FRAC], p, counts, 0, stats)
        Wv, Rv = _extend_int(V, X, b0, m, p[P_X_FRAC], p, counts, 4, stats)
        n = r + m
        K = np.zeros((n, n), dtype=np.int64)
        for i in range(n):
            for j in range(n):
                acc = np.int64(0)
                for c in range(m):
                    acc += Ru[i, c] * Rv[j, c]
                K[i, j] = _sat(_rs(acc, 2 * p[P_COEF_FRAC] - p[P_CORE_FRAC]), cmax, counts, 8)
        for i in range(r):
            K[i, i] = _sat(K[i, i] + S[i], cmax, counts, 8)
        top = np.int64(0)
        for i in range(n):
            for j in range(n):
                top = max(top, abs(K[i, j]))
        e = max(0, _bitlen(top) - p[P_JBITS])
        A = np.empty((n, n), dtype=np.int64)
        for i in range(n):
            for j in range(n):
                A[i, j] = _rs(K[i, j], e)
        amax = (np.int64(1) << (p[P_JBITS] + 3)) - 1
        Vr, sweeps, rots = _jacobi_int(A, fr, p[P_SWEEPS], amax, p[P_JTOL], counts, True)
        stats[1] += sweeps
        stats[2] += rots
        stats[3] += 1
        if sweeps == p[P_SWEEPS] and rots > 0:
            A2 = A.copy()
            _, _, more = _jacobi_int(A2, fr, 1, amax, p[P_JTOL], counts, False)
            if more > 0:
                stats[4] += 1
        sig_n = np.zeros(n, dtype=np.int64)
        for c in range(n):
            acc = np.int64(0)
            for k in range(n):
                acc += A[k, c] * A[k, c]
            sig_n[c] = _isqrt(acc)
        order = np.argsort(-sig_n, kind="mergesort")
        sig = np.zeros(n, dtype=np.int64)
        Cu = np.zeros((n, n), dtype=np.int64)  # row c = column c of the left vectors
        Cv = np.zeros((n, n), dtype=np.int64)
        for cc in range(n):
            c = order[cc]
            sig[cc] = sig_n[c] << e
            for k in range(n):
                Cv[cc, k] = Vr[k, c]
                if sig_n[c] > 0:
                    L = _bitlen(sig_n[c]) + p[P_RECIP_BITS]
                    inv = _div_round(np.int64(1) << L, sig_n[c])
                    Cu[cc, k] = _rs(A[k, c] * inv, L - fr)
        for c in range(n):
            big = 0
            bv = np.int64(-1)
            for i in range(n):
                if abs(Cu[c, i]) > bv:
                    bv = abs(Cu[c, i])
                    big = i
            if Cu[c, big] < 0:
                for i in range(n):
                    Cu[c, i] = -Cu[c, i]
                    Cv[c, i] = -Cv[c, i]
        if unbiased:
            for step in range(m):
                Cu, sig, Cv = _reduce_int(Cu, sig, Cv, signs[b0 + step], p, counts)
        bf, bmax = p[P_BASIS_FRAC], p[P_BASIS_MAX]
        a = Wu.shape[0]
        b = Wv.shape[0]
        Un = np.zeros((a, r), dtype=np.int64)
        Vn = np.zeros((b, r), dtype=np.int64)
        for c in range(r):
            for i in range(a):
                acc = np.int64(0)
                for k in range(n):
                    acc += Wu[i, k] * Cu[c, k]
                Un[i, c] = _sat(_rs(acc, fr), bmax, counts, 11)
        for c in range(r):
            for i in range(b):
                acc = np.int64(0)
                for k in range(n):
                    acc += Wv[i, k] * Cv[c, k]
                Vn[i, c] = _sat(_rs(acc, fr), bmax, counts, 12)
        s0 = sig[0]
        for c in range(r):
            if _dead(sig[c], s0, p[P_DROP]):
                S[c] = 0
                Un[:, c] = 0
                Vn[:, c] = 0
            else:
                S[c] = sig[c]
        U = Un
        V = Vn
    return U, S, V
