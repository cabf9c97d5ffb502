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

# saturation stages, in the RTL's status-bit order (hdl.engine_params.SAT_NAMES)
SAT_NAMES = (
    "q", "A", "recip", "M_update", "M",
    "X_gs_h", "X_gs_v", "X_inv", "X_q",
    "p", "D",
    "Delta_gs_h", "Delta_gs_v", "Delta_inv", "Delta_q",
    "S", "sigma",
)
(S_Q, S_A, S_RECIP, S_MUPD, S_M, S_X_GSH, S_X_GSV, S_X_INV, S_X_Q, S_P, S_D,
 S_D_GSH, S_D_GSV, S_D_INV, S_D_Q, S_S, S_SIGMA) = range(17)


# ---------------------------------------------------------------------------- float64
@njit(cache=True)
def _orth(m):
    """Thin QR factor Q with diag(R) > 0 (sign 0 counts as +), as ``pymodel.sbpca.orth``."""
    q, r = np.linalg.qr(m)
    for c in range(q.shape[1]):
        if r[c, c] < 0:
            q[:, c] = -q[:, c]
    return q


@njit(cache=True)
def float_batch(x, d, X, D, sig, s, sigma_min):
    """One batch of float SBPCA; returns the new (X, Δ, σ).  ``sigma_min <= 0``: no guard.

    ``sig`` is updated in place.  Arrays are float64 (or all float32: numba compiles a twin).
    """
    B, b = x.shape
    a = d.shape[1]
    k = X.shape[1]
    n = float(s)
    dt = X.dtype  # float64, or float32 for a float32 torch state (sums still in float64)
    proj = np.empty((s, k), dtype=dt)
    upd_x = np.empty((b, k), dtype=dt)
    upd_d = np.empty((a, k), dtype=dt)
    div = np.empty(k, dtype=dt)
    for start in range(0, B, s):
        m = min(s, B - start)
        alpha = n / (n + m)
        beta = 1.0 / (n + m)
        for c in range(k):
            div[c] = sig[c] if sigma_min <= 0.0 or sig[c] >= sigma_min else sigma_min
        # X ← orth(α X + xsᵀ (β · ds Δ) ⊘ σ)
        for j in range(m):
            for c in range(k):
                acc = 0.0
                for r in range(a):
                    acc += d[start + j, r] * D[r, c]
                proj[j, c] = beta * acc
        for i in range(b):
            for c in range(k):
                acc = 0.0
                for j in range(m):
                    acc += x[start + j, i] * proj[j, c]
                upd_x[i, c] = alpha * X[i, c] + acc / div[c]
        X = _orth(upd_x)
        # Δ ← orth(α Δ + dsᵀ (β · xs X) ⊘ σ)
        for j in range(m):
            for c in range(k):
                acc = 0.0
                for i in range(b):
                    acc += x[start + j, i] * X[i, c]
                proj[j, c] = acc
        for r in range(a):
            for c in range(k):
                acc = 0.0
                for j in range(m):
                    acc += d[start + j, r] * (beta * proj[j, c])
                upd_d[r, c] = alpha * D[r, c] + acc / div[c]
        D = _orth(upd_d)
        # σ ← α σ + β · colsum((ds Δ) ⊙ (xs X))
        for c in range(k):
            tot = 0.0
            for j in range(m):
                acc = 0.0
                for r in range(a):
                    acc += d[start + j, r] * D[r, c]
                tot += acc * proj[j, c]
            sig[c] = alpha * sig[c] + beta * tot
        n += m
    return X, D, sig


# ---------------------------------------------------------------------------- fixed point
@njit(cache=True)
def _dot_requant(u, v, wide, from_frac, F, idx):
    """requantize(Σ u_i v_i) of two int64 vectors, the sum exact (int64 or 128 bits)."""
    if not wide:
        acc = np.int64(0)
        for i in range(u.shape[0]):
            acc += u[i] * v[i]
        return requant_i64(acc, from_frac, F, idx)
    hi, lo = np.uint64(0), np.uint64(0)
    for i in range(u.shape[0]):
        ph, pl = i128.mul(u[i], v[i])
        hi, lo = i128.add(hi, lo, ph, pl)
    return requant_128(hi, lo, from_frac, F, idx)


@njit(cache=True)
def _power_step(Vt, accT, r, F, W, cnt):
    """M = sat_mat(V·2^(mat−state) + R_mat(acc ⊙ r)), in place on the transposed ``Vt`` (k×n)."""
    k, rows = Vt.shape
    up = F[FMAT, 1] - F[FSTATE, 1]
    ff = F[FACC, 1] + F[FRECIP, 1]
    for c in range(k):
        for i in range(rows):
            u, o = requant_mul(accT[c, i], r[c], W[W_MU], ff, F, FMAT)
            cnt[S_MUPD] += o
            val, o = fit_i64((Vt[c, i] << np.int64(up)) + u, F[FMAT, 0], F[FMAT, 3])
            cnt[S_M] += o
            Vt[c, i] = val


@njit(cache=True)
def _mgs(Vt, Qt, F, W, consts, cnt, s_inv, s_q, s_gsh, s_gsv):
    """Modified Gram–Schmidt with exact integer normalisation (``SBPCA._mgs``), rows of Vt/Qt."""
    k, rows = Vt.shape
    fm = F[FMAT, 1]
    fx = F[FSTATE, 1]
    guard2 = consts[0] * 2
    one = consts[1]
    inv_max = (np.int64(1) << np.int64(F[FINV, 0] - 1)) - 1
    degenerate = 0
    for c in range(k):
        v = Vt[c]
        # N2 = Σ v², exact
        if not W[W_N2]:
            n2 = np.int64(0)
            for i in range(rows):
                n2 += v[i] * v[i]
            zero = n2 == 0
            if not W[W_N2S]:
                nh, nl = i128.from_i64(n2 << np.int64(guard2))
            else:
                nh, nl = i128.from_i64(n2)
                nh, nl = i128.shl(nh, nl, guard2)
        else:
            nh, nl = np.uint64(0), np.uint64(0)
            for i in range(rows):
                ph, pl = i128.mul(v[i], v[i])
                nh, nl = i128.add(nh, nl, ph, pl)
            zero = nh == np.uint64(0) and nl == np.uint64(0)
            nh, nl = i128.shl(nh, nl, guard2)
        if zero:
            degenerate += 1
            for i in range(rows):
                Qt[c, i] = 0
        else:
            sq = i128.isqrt(nh, nl)
            inv = div_round(one, sq)
            if inv > inv_max:
                cnt[s_inv] += 1
                inv = inv_max
            for i in range(rows):
                q, o = requant_mul(v[i], inv, W[W_QINV], fm + F[FINV, 1], F, FSTATE)
                cnt[s_q] += o
                Qt[c, i] = q
        q = Qt[c]
        for j in range(c + 1, k):
            h, o = _dot_requant(Vt[j], q, W[W_GSDOT], fm + fx, F, FMAT)
            cnt[s_gsh] += o
            for i in range(rows):
                corr, o = requant_mul(h, q[i], W[W_GSMUL], fx + fm, F, FMAT)  # no flag of its own
                val, o = fit_i64(Vt[j, i] - corr, F[FMAT, 0], F[FMAT, 3])
                cnt[s_gsv] += o
                Vt[j, i] = val
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
    accT = np.empty((k, max(a, b)), dtype=np.int64)
    Dacc = np.empty((k, a), dtype=np.int64)
    r = np.empty(k, dtype=np.int64)
    QX = np.empty((k, b), dtype=np.int64)
    QD = np.empty((k, a), dtype=np.int64)
    fq = F[FDELTA, 1] + F[FSTATE, 1]
    fA = F[FX, 1] + F[FPROJ, 1]
    fp = F[FX, 1] + F[FSTATE, 1]
    fD = F[FDELTA, 1] + F[FPROJ, 1]
    fS = F[FSTATE, 1] + F[FACC, 1]
    one_r = np.int64(1) << np.int64(F[FSIGMA, 1] + F[FRECIP, 1])
    sigma_min_int = consts[2]
    n = np.int64(s)
    col = np.empty(max(s, 1), dtype=np.int64)
    for si in range(nsub):
        start = si * s
        m = min(s, B - start)
        # 1. q_j = R_proj(δ_j · Δ)
        for j in range(m):
            for c in range(k):
                v, o = _dot_requant(d[start + j], DT[c], W[W_Q], fq, F, FPROJ)
                cnt[S_Q] += o
                q[j, c] = v
        # 2. A = R_acc(Σ_j x_j q_jᵀ)
        for c in range(k):
            for j in range(m):
                col[j] = q[j, c]
            for i in range(b):
                if not W[W_A]:
                    acc = np.int64(0)
                    for j in range(m):
                        acc += x[start + j, i] * col[j]
                    v, o = requant_i64(acc, fA, F, FACC)
                else:
                    hi, lo = np.uint64(0), np.uint64(0)
                    for j in range(m):
                        ph, pl = i128.mul(x[start + j, i], col[j])
                        hi, lo = i128.add(hi, lo, ph, pl)
                    v, o = requant_128(hi, lo, fA, F, FACC)
                cnt[S_A] += o
                accT[c, i] = v
        # 3. r_c = R_recip(1 / (n · max(σ_c, σ_min)))
        for c in range(k):
            sg = sig[c]
            if sg < sigma_min_int:
                guard_hits += 1
                sg = sigma_min_int
            v, o = fit_i64(div_round(one_r, n * sg), F[FRECIP, 0], F[FRECIP, 3])
            cnt[S_RECIP] += o
            r[c] = v
        # 4. X' = MGS(sat_mat(X + R_mat(A ⊙ r)))
        _power_step(XT, accT[:, :b], r, F, W, cnt)
        degenerate += _mgs(XT, QX, F, W, consts, cnt, S_X_INV, S_X_Q, S_X_GSH, S_X_GSV)
        XT[:, :] = QX
        # 5. p_j = R_proj(x_j · X'),  D = R_acc(Σ_j δ_j p_jᵀ)
        for j in range(m):
            for c in range(k):
                v, o = _dot_requant(x[start + j], XT[c], W[W_P], fp, F, FPROJ)
                cnt[S_P] += o
                q[j, c] = v
        for c in range(k):
            for j in range(m):
                col[j] = q[j, c]
            for i in range(a):
                if not W[W_D]:
                    acc = np.int64(0)
                    for j in range(m):
                        acc += d[start + j, i] * col[j]
                    v, o = requant_i64(acc, fD, F, FACC)
                else:
                    hi, lo = np.uint64(0), np.uint64(0)
                    for j in range(m):
                        ph, pl = i128.mul(d[start + j, i], col[j])
                        hi, lo = i128.add(hi, lo, ph, pl)
                    v, o = requant_128(hi, lo, fD, F, FACC)
                cnt[S_D] += o
                Dacc[c, i] = v
        # 6. Δ' = MGS(sat_mat(Δ + R_mat(D ⊙ r)))
        _power_step(DT, Dacc, r, F, W, cnt)
        degenerate += _mgs(DT, QD, F, W, consts, cnt, S_D_INV, S_D_Q, S_D_GSH, S_D_GSV)
        DT[:, :] = QD
        # 7. σ' = sat_σ(div_round(n σ + R_σ(Σ_r Δ'_rc D_rc), n + m))
        for c in range(k):
            v, o = _dot_requant(DT[c], Dacc[c], W[W_S], fS, F, FSIGMA)
            cnt[S_S] += o
            v, o = fit_i64(div_round(n * sig[c] + v, n + m), F[FSIGMA, 0], F[FSIGMA, 3])
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
