"""One-sided (Hestenes) Jacobi SVD of the small SKS core, in float64 and in exact integers.

The streaming Kronecker-sum estimator (:mod:`pymodel.sks`) needs the SVD of an
n×n core (n = r + q, a handful) once per block.  LAPACK does this in the float
reference; an FPGA scalar unit would instead run plane rotations, one column pair at a
time, with a division and two square roots per rotation.  This module writes that
form out twice:

* :func:`jacobi_svd` — float64, cyclic sweeps until every column pair is orthogonal
  to ``tol`` (tested against ``numpy.linalg.svd`` on random and ill-conditioned cores);
* :func:`jacobi_svd_int` — the bit-accurate integer twin: the same rotations with the
  project's exact rounded division (:func:`pymodel.fixedpoint.div_round_int`) and exact
  floor square root (:func:`pymodel.fixedpoint.isqrt_int`), every narrowing rounded
  as its format declares, a fixed maximum number of sweeps (what a hardware sequencer
  runs) and early exit after a sweep without rotation.

Rotation (columns i < j of A, A V = U Σ at the end):
    α = ‖a_i‖², β = ‖a_j‖², γ = a_iᵀ a_j,  d = β − α
    t = sgn(d) · 2γ / (|d| + √(d² + 4γ²))       (|t| ≤ 1, sgn(0) = +1)
    c = 1/√(1 + t²),  s = c·t
    a_i ← c a_i − s a_j,  a_j ← s a_i + c a_j   (and the same on the columns of V)
This is Rutishauser's t = sgn(ζ)/(|ζ| + √(1+ζ²)), ζ = d/(2γ), multiplied through by
|2γ| so that no quotient can overflow when γ → 0.
"""

from __future__ import annotations

import numpy as np

from .fixedpoint import SatFlags, div_round_int, isqrt_int

__all__ = ["jacobi_svd", "jacobi_svd_int", "canonical_signs", "JacobiIntResult"]


def canonical_signs(U: np.ndarray, Vt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip singular pairs so that each column of U has its largest-magnitude entry positive.

    SVD factors are defined up to a sign per pair; fixing it makes the reference, the
    Jacobi form and the compiled kernel pick the same pair, which matters for the
    unbiased estimator (its random signs multiply the singular vectors).
    """
    U = U.copy()
    Vt = Vt.copy()
    for c in range(U.shape[1]):
        i = int(np.argmax(np.abs(U[:, c])))
        if U[i, c] < 0:
            U[:, c] = -U[:, c]
            Vt[c, :] = -Vt[c, :]
    return U, Vt


def jacobi_svd(K: np.ndarray, tol: float = 1e-14, max_sweeps: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SVD ``K = U diag(s) Vt`` of a square float matrix by one-sided Jacobi rotations.

    Returns (U, s, Vt) like ``numpy.linalg.svd`` (s descending).  Columns of U whose
    singular value is exactly zero are zero (the core's null space is never used).
    A pair is skipped when γ ≤ ``tol``·√(αβ) (orthogonal to working precision) or when
    one column's squared norm is below tol²·‖K‖²_F (numerically zero: rotating it against
    another column only shrinks it forever).  Raises ``RuntimeError`` if ``max_sweeps``
    cyclic sweeps do not converge.
    """
    A = np.array(K, dtype=np.float64, copy=True)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"jacobi_svd takes a square matrix, not shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError("jacobi_svd: matrix contains NaN or infinite values")
    n = A.shape[0]
    V = np.eye(n)
    tiny = tol * tol * float(np.sum(A * A))  # a column this small is numerically zero
    for _ in range(max_sweeps):
        rotated = False
        for i in range(n - 1):
            for j in range(i + 1, n):
                ai, aj = A[:, i], A[:, j]
                alpha = float(ai @ ai)
                beta = float(aj @ aj)
                gamma = float(ai @ aj)
                if gamma == 0.0 or abs(gamma) <= tol * np.sqrt(alpha * beta) or min(alpha, beta) <= tiny:
                    continue
                rotated = True
                d = beta - alpha
                sgn = 1.0 if d >= 0 else -1.0
                t = sgn * 2.0 * gamma / (abs(d) + np.hypot(d, 2.0 * gamma))
                c = 1.0 / np.sqrt(1.0 + t * t)
                s = c * t
                A[:, i], A[:, j] = c * ai - s * aj, s * ai + c * aj
                vi, vj = V[:, i].copy(), V[:, j].copy()
                V[:, i], V[:, j] = c * vi - s * vj, s * vi + c * vj
        if not rotated:
            break
    else:
        raise RuntimeError(f"jacobi_svd did not converge in {max_sweeps} sweeps")
    s = np.sqrt(np.sum(A * A, axis=0))
    order = np.argsort(-s, kind="stable")
    s, A, V = s[order], A[:, order], V[:, order]
    U = np.zeros_like(A)
    nz = s > 0
    U[:, nz] = A[:, nz] / s[nz]
    return U, s, V.T


class JacobiIntResult:
    """Integer one-sided Jacobi output: ``A`` (= U Σ, core format), ``V`` (rotation format),
    the number of sweeps run and of rotations applied."""

    def __init__(self, A: np.ndarray, V: np.ndarray, sweeps: int, rotations: int) -> None:
        self.A, self.V, self.sweeps, self.rotations = A, V, sweeps, rotations


def _round_shift(v: int, shift: int) -> int:
    """Round-half-even right shift of a Python int (the project's default rounding)."""
    if shift <= 0:
        return v << -shift
    floor = v >> shift
    rem = v & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    return floor + (1 if (rem > half or (rem == half and floor & 1)) else 0)


def _norm_pair(d: int, g2: int, keep_bits: int) -> tuple[int, int]:
    """Shift (d, 2γ) right together so the larger magnitude has at most ``keep_bits`` bits.

    t depends only on the ratio d/2γ; a leading-zero count and a barrel shift keep the
    square root's argument narrow (2·keep_bits + 1 bits) as hardware would.
    """
    m = max(abs(d), abs(g2)).bit_length()
    sh = max(0, m - keep_bits)
    return _round_shift(d, sh), _round_shift(g2, sh)


def jacobi_svd_int(A_int: np.ndarray, a_frac: int, a_max: int, rot_frac: int, max_sweeps: int,
                   flags: SatFlags | None = None, keep_bits: int = 30, tol_bits: int = 16) -> JacobiIntResult:
    """Bit-accurate one-sided Jacobi on an integer core (the fixed-point SKS's small SVD).

    ``A_int``: n×n integers at ``a_frac`` fraction bits, |A| ≤ ``a_max`` (saturated there,
    counted in ``flags`` as ``jac_A``).  Rotation parameters t, c, s and the accumulated V
    are integers at ``rot_frac`` fraction bits.  Per rotation, exactly:

        α, β, γ   exact integer dot products of columns (2·a_frac fraction bits)
        skip      when γ' = 0, or γ'² ≤ (α'β') >> 2·tol_bits, or γ'² ≤ n(α' + β') >> sh, where
                  (α', β', γ') = (α, β, γ) shifted right by sh until max(α', β') < 2^30: the columns
                  are orthogonal to 2^-tol_bits, or γ is within the rounding noise of the integer
                  columns (|γ| ≲ √(n(α+β)) LSB) — without these rounding keeps rotating forever
        d', g'    (β − α, 2γ) normalised to ``keep_bits`` bits together (:func:`_norm_pair`)
        h         = isqrt(d'² + g'²)                                   exact floor √
        t         = div_round(sgn(d')·g' · 2^rot_frac, |d'| + h)        |t| ≤ 2^rot_frac
        c         = div_round(2^(2·rot_frac), isqrt(2^(2·rot_frac) + t²))
        s         = R(c·t / 2^rot_frac)
        a_i, a_j  ← R((c a_i − s a_j) / 2^rot_frac), R((s a_i + c a_j) / 2^rot_frac)  (saturated)
        v_i, v_j  ← the same on V (|v| ≤ 1, never saturates)

    A pair is also skipped when t rounds to 0 (the rotation would be the identity).
    At most ``max_sweeps`` cyclic sweeps run; a sweep without rotation ends early.
    """
    A = [[int(v) for v in row] for row in np.asarray(A_int).T]  # columns as lists
    n = len(A)
    one = 1 << rot_frac
    V = [[one if r == c else 0 for r in range(n)] for c in range(n)]
    sat = flags if flags is not None else SatFlags()
    rotations = 0
    sweeps = 0

    def clip(v: int) -> int:
        if v > a_max:
            sat.add("jac_A", 1)
            return a_max
        if v < -a_max:
            sat.add("jac_A", 1)
            return -a_max
        return v

    for _ in range(max_sweeps):
        sweeps += 1
        rotated = False
        for i in range(n - 1):
            for j in range(i + 1, n):
                ai, aj = A[i], A[j]
                gamma = sum(x * y for x, y in zip(ai, aj))
                if gamma == 0:
                    continue
                alpha = sum(x * x for x in ai)
                beta = sum(y * y for y in aj)
                sh = max(0, max(alpha, beta).bit_length() - 30)
                al_, be_, ga_ = _round_shift(alpha, sh), _round_shift(beta, sh), _round_shift(gamma, sh)
                if ga_ * ga_ <= (al_ * be_) >> (2 * tol_bits) or ga_ * ga_ <= (n * (al_ + be_)) >> sh:
                    continue
                d, g2 = _norm_pair(beta - alpha, 2 * gamma, keep_bits)
                if g2 == 0:
                    continue
                h = isqrt_int(d * d + g2 * g2)
                num = g2 if d >= 0 else -g2
                t = div_round_int(num << rot_frac, abs(d) + h)
                if t == 0:
                    continue
                c = div_round_int(one << rot_frac, isqrt_int((one << rot_frac) + t * t))
                s = _round_shift(c * t, rot_frac)
                rotated = True
                rotations += 1
                A[i] = [clip(_round_shift(c * x - s * y, rot_frac)) for x, y in zip(ai, aj)]
                A[j] = [clip(_round_shift(s * x + c * y, rot_frac)) for x, y in zip(ai, aj)]
                vi, vj = V[i], V[j]
                V[i] = [_round_shift(c * x - s * y, rot_frac) for x, y in zip(vi, vj)]
                V[j] = [_round_shift(s * x + c * y, rot_frac) for x, y in zip(vi, vj)]
        if not rotated:
            break
    return JacobiIntResult(np.array(A, dtype=np.int64).T.copy(), np.array(V, dtype=np.int64).T.copy(),
                           sweeps, rotations)
