"""Compiled SBPCA batch kernels: float64 (SPEC §2) and the bit-accurate fixed point.

One call consumes a layer's whole stream of one batch — every sub-batch, the partial last
one included — so the per-sub-batch loop that dominates training runs as machine code.

* :func:`float_batch` follows ``SBPCA._float_batch`` operation for operation (same α, β,
  σ guard, Householder QR with diag(R) > 0); results agree to rounding.
* :func:`fixed_batch` follows ``SBPCA._fixed_sub_batch`` / ``_power_step`` / ``_mgs``
  step for step and gives the same integers: every product and sum is exact (int64 where
  the formats prove it fits, else 128 bits), every narrowing is the same rounding shift and
  overflow rule, division and square root are the same exact integer operations.  It also
  counts the same saturation flags, σ-guard hits and degenerate Gram–Schmidt columns.

The NumPy methods stay the readable definition and the test oracle (``backend="numpy"``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import int128 as i128
from .fixed_ops import div_round, fit_i64, requant_128, requant_i64, requant_mul

# format table rows (see SBPCA._fixed_tables)
FX, FDELTA, FSTATE, FPROJ, FACC, FMAT, FINV, FRECIP, FSIGMA = range(9)
from .sbpca_tables import FORMAT_ORDER  # noqa: E402,F401  (one declaration)

# wide-arithmetic switches (True: exact 128-bit route), see SBPCA._fixed_tables
W_Q, W_A, W_P, W_D, W_MU, W_N2, W_N2S, W_QINV, W_GSDOT, W_GSMUL, W_S = range(11)

# saturation stages (one declaration: pymodel.saturation, also the RTL's status-bit order)
from ..saturation import SAT_BIT, SAT_NAMES  # noqa: E402,F401

S_Q, S_A, S_RECIP, S_MUPD, S_M = SAT_BIT["q"], SAT_BIT["A"], SAT_BIT["recip"], SAT_BIT["M_update"], SAT_BIT["M"]
S_X_GSH, S_X_GSV, S_X_INV, S_X_Q = SAT_BIT["X_gs_h"], SAT_BIT["X_gs_v"], SAT_BIT["X_inv"], SAT_BIT["X_q"]
S_P, S_D = SAT_BIT["p"], SAT_BIT["D"]
S_D_GSH, S_D_GSV = SAT_BIT["Delta_gs_h"], SAT_BIT["Delta_gs_v"]
S_D_INV, S_D_Q = SAT_BIT["Delta_inv"], SAT_BIT["Delta_q"]
S_S, S_SIGMA = SAT_BIT["S"], SAT_BIT["sigma"]


# ---------------------------------------------------------------------------- float64
@njit(cache=True)
def _orth(m):
    """Thin QR factor Q of ``m`` (a new array); see :func:`_orth_inplace`."""
    a = m.copy()
    k = m.shape[1]
    _orth_inplace(a, np.empty(k, dtype=m.dtype), np.empty(k, dtype=m.dtype))
    return a


@njit(cache=True)
def _orth_inplace(a, tau, rsign):
    """Overwrite ``a`` by its thin QR factor Q with diag(R) > 0 (sign 0 counts as +), as
    ``pymodel.sbpca.orth``; ``tau`` and ``rsign`` (length k) are scratch.

    Householder QR written out (LAPACK's unblocked dgeqr2 + dorg2r, which is what
    ``np.linalg.qr`` runs on these narrow matrices): a LAPACK call from numba allocates and
    queries workspace each time, which cost more than the arithmetic at k ≤ 8.
    """
    rows, k = a.shape
    for i in range(k):  # dgeqr2: reflector H_i zeroes a[i+1:, i]
        alpha = a[i, i]
        ss = 0.0
        for r in range(i + 1, rows):
            ss += a[r, i] * a[r, i]
        xnorm = np.sqrt(ss)
        if not (xnorm < 1e150 and (xnorm > 1e-150 or ss == 0.0)):  # dnrm2's scaling, only when needed
            scale = 0.0
            for r in range(i + 1, rows):
                scale = max(scale, abs(a[r, i]))
            ss = 0.0
            for r in range(i + 1, rows):
                t = a[r, i] / scale
                ss += t * t
            xnorm = scale * np.sqrt(ss)
        if xnorm == 0.0:
            tau[i] = 0.0
            beta = alpha
        else:
            beta = -np.copysign(np.hypot(alpha, xnorm), alpha)
            tau[i] = (beta - alpha) / beta
            f = 1.0 / (alpha - beta)
            for r in range(i + 1, rows):
                a[r, i] *= f
        a[i, i] = beta
        rsign[i] = -1.0 if beta < 0.0 else 1.0
        if tau[i] != 0.0:  # apply H_i = I - tau v vᵀ (v = [1; a[i+1:, i]]) to the columns right of i
            for c in range(i + 1, k):
                w = a[i, c]
                for r in range(i + 1, rows):
                    w += a[r, i] * a[r, c]
                w *= tau[i]
                a[i, c] -= w
                for r in range(i + 1, rows):
                    a[r, c] -= w * a[r, i]
    for i in range(k - 1, -1, -1):  # dorg2r: Q = H_0 ... H_{k-1} applied to the first k columns of I
        if i < k - 1:
            a[i, i] = 1.0
            for c in range(i + 1, k):
                w = a[i, c]
                for r in range(i + 1, rows):
                    w += a[r, i] * a[r, c]
                w *= tau[i]
                a[i, c] -= w
                for r in range(i + 1, rows):
                    a[r, c] -= w * a[r, i]
        for r in range(i + 1, rows):
            a[r, i] *= -tau[i]
        a[i, i] = 1.0 - tau[i]
        for r in range(i):
            a[r, i] = 0.0
    for c in range(k):
        if rsign[c] < 0.0:
            for r in range(rows):
                a[r, c] = -a[r, c]


@njit(cache=True)
def float_batch(x, d, X, D, sig, s, sigma_min):
    """One batch of float SBPCA; returns the new (X, Δ, σ).  ``sigma_min <= 0``: no guard.

    ``X``, ``D`` are used as scratch and ``sig`` is updated in place (callers pass copies).
    Arrays are float64 (or all float32: numba compiles a twin).  Each matrix product is
    written with the k output columns innermost: every output keeps NumPy's summation
    order, and the k independent sums run side by side instead of one latency-bound chain.
    """
    B, b = x.shape
    a = d.shape[1]
    k = X.shape[1]
    n = float(s)
    dt = X.dtype  # float64, or float32 for a float32 torch state
    proj = np.empty((s, k), dtype=dt)  # β·(ds Δ), then xs X
    dD = np.empty((s, k), dtype=dt)  # ds Δ' (σ step)
    upd_x = np.empty((b, k), dtype=dt)
    upd_d = np.empty((a, k), dtype=dt)
    div = np.empty(k, dtype=dt)
    tau = np.empty(k, dtype=dt)
    rsign = np.empty(k, dtype=dt)
    for start in range(0, B, s):
        m = min(s, B - start)
        alpha = n / (n + m)
        beta = 1.0 / (n + m)
        for c in range(k):
            div[c] = sig[c] if sigma_min <= 0.0 or sig[c] >= sigma_min else sigma_min
        # X ← orth(α X + xsᵀ (β · ds Δ) ⊘ σ)
        _rows_times(d, start, m, D, proj)
        _scale_rows(proj, m, beta, proj)
        _power_half(x, start, m, proj, X, div, alpha, upd_x, tau, rsign)
        X, upd_x = upd_x, X
        # Δ ← orth(α Δ + dsᵀ (β · xs X) ⊘ σ)
        _rows_times(x, start, m, X, proj)  # p = xs X, kept unscaled for the σ step
        _scale_rows(proj, m, beta, dD)
        _power_half(d, start, m, dD, D, div, alpha, upd_d, tau, rsign)
        D, upd_d = upd_d, D
        # σ ← α σ + β · colsum((ds Δ) ⊙ (xs X))
        _rows_times(d, start, m, D, dD)
        for c in range(k):
            tot = 0.0
            for j in range(m):
                tot += dD[j, c] * proj[j, c]
            sig[c] = alpha * sig[c] + beta * tot
        n += m
    return X, D, sig


@njit(cache=True)
def _scale_rows(src, m, beta, dst):
    """dst[:m] = β · src[:m] (dst may be src)."""
    for j in range(m):
        for c in range(src.shape[1]):
            dst[j, c] = beta * src[j, c]


@njit(cache=True)
def _power_half(z, start, m, Pb, V, div, alpha, upd, tau, rsign):
    """upd = orth(α V + z[start:start+m]ᵀ Pb ⊘ σ): the X half-step (z = xs) or the Δ one (z = ds)."""
    _cols_times(z, start, m, Pb, upd)
    rows, k = upd.shape
    for i in range(rows):
        for c in range(k):
            upd[i, c] = alpha * V[i, c] + upd[i, c] / div[c]
    _orth_inplace(upd, tau, rsign)


@njit(cache=True)
def _rows_times(z, start, m, V, out):
    """out[:m] = z[start:start+m] @ V, each sum in index order.

    Four output columns at a time in scalar accumulators: numba cannot prove that ``out``
    and ``V`` do not alias, so accumulating in ``out`` itself would store on every step.
    """
    n, k = V.shape
    for j in range(m):
        row = start + j
        c = 0
        while c + 4 <= k:
            a0 = a1 = a2 = a3 = 0.0
            for i in range(n):
                zi = z[row, i]
                a0 += zi * V[i, c]
                a1 += zi * V[i, c + 1]
                a2 += zi * V[i, c + 2]
                a3 += zi * V[i, c + 3]
            out[j, c], out[j, c + 1], out[j, c + 2], out[j, c + 3] = a0, a1, a2, a3
            c += 4
        while c < k:
            a0 = 0.0
            for i in range(n):
                a0 += z[row, i] * V[i, c]
            out[j, c] = a0
            c += 1


@njit(cache=True)
def _cols_times(z, start, m, P, out):
    """out = z[start:start+m].T @ P[:m], each sum in index order (four columns at a time)."""
    n = z.shape[1]
    k = P.shape[1]
    for i in range(n):
        c = 0
        while c + 4 <= k:
            a0 = a1 = a2 = a3 = 0.0
            for j in range(m):
                zi = z[start + j, i]
                a0 += zi * P[j, c]
                a1 += zi * P[j, c + 1]
                a2 += zi * P[j, c + 2]
                a3 += zi * P[j, c + 3]
            out[i, c], out[i, c + 1], out[i, c + 2], out[i, c + 3] = a0, a1, a2, a3
            c += 4
        while c < k:
            a0 = 0.0
            for j in range(m):
                a0 += z[start + j, i] * P[j, c]
            out[i, c] = a0
            c += 1


# ---------------------------------------------------------------------------- fixed point
# Formats travel as (bits, frac, rounding, overflow) tuples, and helpers take whole arrays once
# per sub-batch, never per element: an array argument costs a reference-count update per call.
@njit(cache=True)
def _fmt(F, i):
    return (F[i, 0], F[i, 1], F[i, 2], F[i, 3])


@njit(cache=True)
def _sum128_rows(A, i, B, j, n):
    """Σ_t A[i, t] B[j, t] exactly, as a 128-bit pair (the wide route)."""
    hi, lo = np.uint64(0), np.uint64(0)
    for t in range(n):
        ph, pl = i128.mul(A[i, t], B[j, t])
        hi, lo = i128.add(hi, lo, ph, pl)
    return hi, lo


@njit(cache=True)
def _sum128_cols(A, start, i, B, c, m):
    """Σ_j A[start + j, i] B[j, c] exactly, as a 128-bit pair (the wide route)."""
    hi, lo = np.uint64(0), np.uint64(0)
    for j in range(m):
        ph, pl = i128.mul(A[start + j, i], B[j, c])
        hi, lo = i128.add(hi, lo, ph, pl)
    return hi, lo


@njit(cache=True)
def _project(z, start, m, Vt, wide, from_frac, fmt, out):
    """out[j, c] = R(z_{start+j} · V_c) for the m samples (pass 1: q = R_proj(δ·Δ); pass 2: p);
    returns the overflow count."""
    k, n = Vt.shape
    over = 0
    for j in range(m):
        row = start + j
        for c in range(k):
            if not wide:
                acc = np.int64(0)
                for i in range(n):
                    acc += z[row, i] * Vt[c, i]
                v, o = requant_i64(acc, from_frac, fmt)
            else:
                hh, hl = _sum128_rows(z, row, Vt, c, n)
                v, o = requant_128(hh, hl, from_frac, fmt)
            over += o
            out[j, c] = v
    return over


@njit(cache=True)
def _accumulate(z, start, m, P, wide, from_frac, fmt, outT):
    """outT[c, i] = R(Σ_j z_{start+j, i} P[j, c]) (A = R_acc(Σ x qᵀ), D = R_acc(Σ δ pᵀ));
    returns the overflow count."""
    k, n = outT.shape
    over = 0
    for c in range(k):
        for i in range(n):
            if not wide:
                acc = np.int64(0)
                for j in range(m):
                    acc += z[start + j, i] * P[j, c]
                v, o = requant_i64(acc, from_frac, fmt)
            else:
                hh, hl = _sum128_cols(z, start, i, P, c, m)
                v, o = requant_128(hh, hl, from_frac, fmt)
            over += o
            outT[c, i] = v
    return over


@njit(cache=True)
def _power_step(Vt, accT, r, fmat, up, from_frac, wide, cnt):
    """M = sat_mat(V·2^(mat−state) + R_mat(acc ⊙ r)), in place on the transposed ``Vt`` (k×n)."""
    k, rows = Vt.shape
    n_upd = 0
    n_m = 0
    for c in range(k):
        rc = r[c]
        for i in range(rows):
            u, o = requant_mul(accT[c, i], rc, wide, from_frac, fmat)
            n_upd += o
            val, o = fit_i64((Vt[c, i] << up) + u, fmat)
            n_m += o
            Vt[c, i] = val
    cnt[S_MUPD] += n_upd
    cnt[S_M] += n_m


@njit(cache=True)
def _mgs(Vt, Qt, fmat, fstate, inv_frac, inv_max, wides, guard2, one, cnt, s_inv, s_q, s_gsh, s_gsv):
    """Modified Gram–Schmidt with exact integer normalisation (``SBPCA._mgs``), rows of Vt/Qt.

    ``wides`` = (n2, n2 << guard, q_inv, gs_dot, gs_mul) wide-route switches.
    """
    w_n2, w_n2s, w_qinv, w_gsdot, w_gsmul = wides
    k, rows = Vt.shape
    fm = fmat[1]
    fx = fstate[1]
    degenerate = 0
    for c in range(k):
        # N2 = Σ v², exact
        if not w_n2:
            n2 = np.int64(0)
            for i in range(rows):
                n2 += Vt[c, i] * Vt[c, i]
            zero = n2 == 0
            if not w_n2s:
                nh, nl = i128.from_i64(n2 << np.int64(guard2))
            else:
                nh, nl = i128.from_i64(n2)
                nh, nl = i128.shl(nh, nl, guard2)
        else:
            nh, nl = _sum128_rows(Vt, c, Vt, c, rows)
            zero = nh == np.uint64(0) and nl == np.uint64(0)
            nh, nl = i128.shl(nh, nl, guard2)
        if zero:
            degenerate += 1
            for i in range(rows):
                Qt[c, i] = 0
        else:
            inv = div_round(one, i128.isqrt(nh, nl))
            if inv > inv_max:
                cnt[s_inv] += 1
                inv = inv_max
            n_q = 0
            for i in range(rows):
                q, o = requant_mul(Vt[c, i], inv, w_qinv, fm + inv_frac, fstate)
                n_q += o
                Qt[c, i] = q
            cnt[s_q] += n_q
        for j in range(c + 1, k):
            if not w_gsdot:
                acc = np.int64(0)
                for i in range(rows):
                    acc += Vt[j, i] * Qt[c, i]
                h, o = requant_i64(acc, fm + fx, fmat)
            else:
                hh, hl = _sum128_rows(Vt, j, Qt, c, rows)
                h, o = requant_128(hh, hl, fm + fx, fmat)
            cnt[s_gsh] += o
            n_v = 0
            for i in range(rows):
                corr, o = requant_mul(h, Qt[c, i], w_gsmul, fx + fm, fmat)  # no flag of its own
                val, o = fit_i64(Vt[j, i] - corr, fmat)
                n_v += o
                Vt[j, i] = val
            cnt[s_gsv] += n_v
    return degenerate


@njit(cache=True)
def fixed_batch(x, d, XT, DT, sig, s, F, W, consts, record):
    """One batch of bit-accurate fixed-point SBPCA.

    ``x`` (B×b) and ``d`` (B×a) are integers in the x / δ formats; ``XT`` (k×b), ``DT``
    (k×a) and ``sig`` (k) the state, transposed so each column is a contiguous row, updated
    in place.  ``F`` is the format table (:data:`FORMAT_ORDER` rows of bits, frac, rounding,
    overflow), ``W`` the wide-arithmetic switches, ``consts`` = (norm_guard, 2^(norm_frac +
    inv.frac), sigma_min_int).  Returns the saturation counts (:data:`SAT_NAMES` order),
    σ-guard hits, degenerate columns, and — with ``record`` — the state after every
    sub-batch (Xᵀ, Δᵀ, σ, n, m).
    """
    B, b = x.shape
    a = d.shape[1]
    k = XT.shape[0]
    fx_, fd_, fst, fpr = _fmt(F, FX), _fmt(F, FDELTA), _fmt(F, FSTATE), _fmt(F, FPROJ)
    fac, fmat, fre, fsg = _fmt(F, FACC), _fmt(F, FMAT), _fmt(F, FRECIP), _fmt(F, FSIGMA)
    w_q, w_a, w_p, w_d, w_mu, w_s = W[W_Q], W[W_A], W[W_P], W[W_D], W[W_MU], W[W_S]
    wides = (W[W_N2], W[W_N2S], W[W_QINV], W[W_GSDOT], W[W_GSMUL])
    inv_frac = F[FINV, 1]
    inv_max = (np.int64(1) << np.int64(F[FINV, 0] - 1)) - 1
    guard2 = consts[0] * 2
    one = consts[1]
    sigma_min_int = consts[2]
    cnt = np.zeros(len(SAT_NAMES), dtype=np.int64)
    guard_hits = 0
    degenerate = 0
    nsub = (B + s - 1) // s
    nrec = nsub if record else 0
    hX = np.zeros((nrec, k, b), dtype=np.int64)
    hD = np.zeros((nrec, k, a), dtype=np.int64)
    hS = np.zeros((nrec, k), dtype=np.int64)
    hN = np.zeros(nrec, dtype=np.int64)
    hM = np.zeros(nrec, dtype=np.int64)
    q = np.empty((s, k), dtype=np.int64)
    accT = np.empty((k, b), dtype=np.int64)
    Dacc = np.empty((k, a), dtype=np.int64)
    r = np.empty(k, dtype=np.int64)
    QX = np.empty((k, b), dtype=np.int64)
    QD = np.empty((k, a), dtype=np.int64)
    fq = fd_[1] + fst[1]
    fA = fx_[1] + fpr[1]
    fp = fx_[1] + fst[1]
    fD = fd_[1] + fpr[1]
    fS = fst[1] + fac[1]
    fmu = fac[1] + fre[1]
    up = np.int64(fmat[1] - fst[1])
    one_r = np.int64(1) << np.int64(fsg[1] + fre[1])
    n = np.int64(s)
    for si in range(nsub):
        start = si * s
        m = min(s, B - start)
        # 1. q_j = R_proj(δ_j · Δ);  2. A = R_acc(Σ_j x_j q_jᵀ)
        cnt[S_Q] += _project(d, start, m, DT, w_q, fq, fpr, q)
        cnt[S_A] += _accumulate(x, start, m, q, w_a, fA, fac, accT)
        # 3. r_c = R_recip(1 / (n · max(σ_c, σ_min)))
        for c in range(k):
            sg = sig[c]
            if sg < sigma_min_int:
                guard_hits += 1
                sg = sigma_min_int
            v, o = fit_i64(div_round(one_r, n * sg), fre)
            cnt[S_RECIP] += o
            r[c] = v
        # 4. X' = MGS(sat_mat(X + R_mat(A ⊙ r)))
        _power_step(XT, accT, r, fmat, up, fmu, w_mu, cnt)
        degenerate += _mgs(XT, QX, fmat, fst, inv_frac, inv_max, wides, guard2, one, cnt,
                           S_X_INV, S_X_Q, S_X_GSH, S_X_GSV)
        XT[:, :] = QX
        # 5. p_j = R_proj(x_j · X'),  D = R_acc(Σ_j δ_j p_jᵀ)
        cnt[S_P] += _project(x, start, m, XT, w_p, fp, fpr, q)
        cnt[S_D] += _accumulate(d, start, m, q, w_d, fD, fac, Dacc)
        # 6. Δ' = MGS(sat_mat(Δ + R_mat(D ⊙ r)))
        _power_step(DT, Dacc, r, fmat, up, fmu, w_mu, cnt)
        degenerate += _mgs(DT, QD, fmat, fst, inv_frac, inv_max, wides, guard2, one, cnt,
                           S_D_INV, S_D_Q, S_D_GSH, S_D_GSV)
        DT[:, :] = QD
        # 7. σ' = sat_σ(div_round(n σ + R_σ(Σ_r Δ'_rc D_rc), n + m))
        for c in range(k):
            if not w_s:
                acc = np.int64(0)
                for i in range(a):
                    acc += DT[c, i] * Dacc[c, i]
                v, o = requant_i64(acc, fS, fsg)
            else:
                hh, hl = _sum128_rows(DT, c, Dacc, c, a)
                v, o = requant_128(hh, hl, fS, fsg)
            cnt[S_S] += o
            v, o = fit_i64(div_round(n * sig[c] + v, n + m), fsg)
            cnt[S_SIGMA] += o
            sig[c] = v
        n += m
        if record:
            hX[si] = XT
            hD[si] = DT
            hS[si] = sig
            hN[si] = n
            hM[si] = m
    return cnt, guard_hits, degenerate, hX, hD, hS, hN, hM
