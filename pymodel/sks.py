"""Streaming Kronecker-sum (SKS) gradient estimators: an incremental truncated SVD of G.

Gural, Nadeau, Tikekar, Murmann, "Low-Rank Training of Deep Neural Networks for
Emerging Memory Technology" (2020) keep a rank-r sketch ``Ĝ = U diag(S) Vᵀ`` of the
running sum ``G = Σ_j δ_j x_jᵀ`` and fold the stream in a block of q pairs at a time:

1. extend the bases: Gram–Schmidt the q new δ against U (a×r) and the q new x against V
   (b×r), giving W_u = [U Q_u] (a×(r+q)) and coefficients R_u with D = W_u R_u (same for x);
2. the core K = diag(S, 0) + R_u R_vᵀ ((r+q)×(r+q)) satisfies W_u K W_vᵀ = U S Vᵀ + D Xᵀ
   exactly — the new sum, in a basis of r+q columns;
3. K = C_u Σ C_vᵀ (a small SVD); keep r: U ← W_u C_u[:, :r], S ← Σ[:r], V ← W_v C_v[:, :r].

``sks`` truncates deterministically (the best rank-r sketch of the *sketched* sum, i.e.
an incremental truncated SVD).  ``sks-unbiased`` is the optimal Kronecker sum of Benzing
et al. (2019, used by Gural et al. as their default): instead of dropping the smallest
singular values it replaces the tail σ_m..σ_n by a rank-one-lower matrix
s_k·Z Zᵀ, Z = diag(±1) M, whose expectation over the random signs is the dropped
diagonal, with the least variance; Ĝ is then unbiased, E[Ĝ] = G.  For q > 1 the rank is
lowered one step at a time (each step unbiased given the last, so the whole is unbiased;
the minimum-variance property is proven per step).

Between batches the paper applies the update and resets the sketch (its ``uv.reset()``
after every weight update): ``warm_start=False`` is that default.  ``warm_start=True``
carries the last sketch into the next batch with its singular values multiplied by
``decay`` (the paper's ``discount`` for a skipped update), so Ĝ_t is a rank-r sketch of
G_t + decay·Ĝ_{t−1} — a momentum-like running sum, not the batch's own gradient.

Memory (numbers): r(a + b + 1) kept between pairs (U, V, S), and while a block is folded
in q(a + b) for the new basis columns plus 3(r+q)² for the core and its SVD factors.
"""

from __future__ import annotations

import numpy as np

from .jacobi import canonical_signs, jacobi_svd
from .kernels import BACKENDS, check_backend
from .sbpca import _check_positive_int

SVDS = ("numpy", "jacobi")
GS_TOL = 1e-12  # a new direction whose residual is below this fraction of |δ| (or |x|) is dropped
SIG_TOL = 1e-12  # singular values below this fraction of the largest are zero (pair dropped)


def extend_basis(B: np.ndarray, D: np.ndarray, tol: float = GS_TOL) -> tuple[np.ndarray, np.ndarray]:
    """Gram–Schmidt the rows of ``D`` (q×a) against the columns of ``B`` (a×r) and each other.

    Returns (W, R): W = [B Q] (a×(r+q)) and R ((r+q)×q) with Dᵀ = W R exactly up to
    rounding.  Each vector is projected out twice (CGS2: "twice is enough" for
    orthogonality to working precision).  A residual below ``tol``·|d| is dropped (its Q
    column is zero, its coefficient row zero): the columns of W are orthonormal or zero.
    """
    a, r = B.shape
    q = D.shape[0]
    W = np.zeros((a, r + q))
    W[:, :r] = B
    R = np.zeros((r + q, q))
    for j in range(q):
        w = D[j].astype(np.float64, copy=True)
        ref = float(np.sqrt(w @ w))
        c = np.zeros(r + q)
        for _ in range(2):
            h = W[:, :r + j].T @ w
            w -= W[:, :r + j] @ h
            c[:r + j] += h
        nrm = float(np.sqrt(w @ w))
        if nrm > tol * ref and nrm > 0.0:
            W[:, r + j] = w / nrm
            c[r + j] = nrm
        R[:, j] = c
    return W, R


def unbiased_reduce(Cu: np.ndarray, sig: np.ndarray, Cv: np.ndarray, signs: np.ndarray,
                    tol: float = SIG_TOL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower the rank of ``Cu diag(sig) Cvᵀ`` by one, unbiasedly (Benzing et al.'s optimal Kronecker sum).

    ``sig`` descending (length n), ``Cu``/``Cv`` with n columns, ``signs`` ±1 (≥ n entries).
    The tail m..n−1 is the longest run of smallest values with k·σ_m ≤ Σ_{i≥m} σ_i
    (k = n−1−m); it becomes s_k = Σ tail / k on k new columns Cu[:, m:] Z, Z = diag(signs) M,
    where M ((k+1)×k) holds orthonormal columns orthogonal to w, w_i = √(1 − σ_i/s_k):
    then E[Z Zᵀ] = I − diag(w²) = diag(σ_tail)/s_k.  M is the Householder reflection of e_0
    onto w without its first column.  If σ_{n−1} is zero (below ``tol``·σ_0) it is dropped:
    that is exact.
    """
    n = sig.shape[0]
    if n < 2:
        raise ValueError("unbiased_reduce needs at least two singular values")
    if not sig[n - 1] > tol * sig[0]:
        return Cu[:, :n - 1], sig[:n - 1], Cv[:, :n - 1]
    m = n - 1
    s = float(sig[m])
    while m > 0:
        k_new = n - m  # tail size n−(m−1), replacement rank n−m
        if k_new * sig[m - 1] > s + sig[m - 1]:
            break
        m -= 1
        s += float(sig[m])
    k = n - 1 - m
    sk = s / k
    w = np.sqrt(np.maximum(0.0, 1.0 - sig[m:] / sk))
    v = w.copy()
    v[0] -= 1.0
    M = np.eye(k + 1)[:, 1:] + np.outer(v, v[1:] / v[0])
    Z = signs[:k + 1, None] * M
    new_sig = np.concatenate([sig[:m], np.full(k, sk)])
    return (np.concatenate([Cu[:, :m], Cu[:, m:] @ Z], axis=1), new_sig,
            np.concatenate([Cv[:, :m], Cv[:, m:] @ Z], axis=1))


def fold_block(U: np.ndarray, S: np.ndarray, V: np.ndarray, D: np.ndarray, X: np.ndarray,
               svd: str = "numpy", signs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fold q pairs (rows of ``D``: δ, rows of ``X``: x) into the rank-r sketch (U, S, V).

    ``signs`` (q × (r+q) of ±1) selects the unbiased reduction; None truncates.  The
    reference form of the compiled kernel (``pymodel.kernels.sks``).
    """
    r = S.shape[0]
    Wu, Ru = extend_basis(U, D)
    Wv, Rv = extend_basis(V, X)
    K = Ru @ Rv.T
    K[np.arange(r), np.arange(r)] += S
    if svd == "numpy":
        Cu, sig, Cvt = np.linalg.svd(K)
    else:
        Cu, sig, Cvt = jacobi_svd(K)
    Cu, Cvt = canonical_signs(Cu, Cvt)
    Cv = Cvt.T
    if signs is not None:
        for step in range(D.shape[0]):
            Cu, sig, Cv = unbiased_reduce(Cu, sig, Cv, signs[step])
    Cu, sig, Cv = Cu[:, :r], sig[:r].copy(), Cv[:, :r]
    U, V = Wu @ Cu, Wv @ Cv
    dead = ~(sig > SIG_TOL * sig[0]) if sig[0] > 0 else np.ones(r, dtype=bool)
    sig[dead] = 0.0
    U[:, dead] = 0.0
    V[:, dead] = 0.0
    return U, sig, V


class SKS:
    """Rank-r streaming Kronecker-sum estimator of one layer's gradient ``G = Σ δ xᵀ`` (a×b).

    ``rows`` a, ``cols`` b, ``rank`` r, ``block`` q (pairs folded in per core SVD: 1 is the
    paper's per-pair form).  ``unbiased`` selects the optimal-Kronecker-sum reduction with
    random signs from ``numpy.random.default_rng(seed)``.  ``warm_start`` / ``decay``: see
    the module docstring (default: reset per batch, as the paper).  ``svd``: ``"numpy"``
    (LAPACK) or ``"jacobi"`` (the written-out one-sided Jacobi).  ``backend``:
    ``"compiled"`` (numba kernel, the default) or ``"numpy"`` (the readable reference).
    """

    def __init__(self, rows: int, cols: int, rank: int, block: int = 1, unbiased: bool = False,
                 seed: int = 0, warm_start: bool = False, decay: float = 0.9, svd: str = "numpy",
                 backend: str = "compiled") -> None:
        self.rows = _check_positive_int("rows", rows)
        self.cols = _check_positive_int("cols", cols)
        self.rank = _check_positive_int("rank", rank)
        self.block = _check_positive_int("block", block)
        if self.rank > min(self.rows, self.cols):
            raise ValueError(f"rank {self.rank} exceeds min(rows, cols) = {min(self.rows, self.cols)}")
        if svd not in SVDS:
            raise ValueError(f"unknown svd {svd!r}; choose one of {', '.join(SVDS)}")
        check_backend(backend)
        if not (isinstance(decay, (int, float)) and 0.0 <= decay <= 1.0):
            raise ValueError(f"decay must be a number in [0, 1], not {decay!r}")
        self.unbiased = bool(unbiased)
        self.warm_start = bool(warm_start)
        self.decay = float(decay)
        self.svd = svd
        self.backend = backend
        self._rng = np.random.default_rng(seed)
        self._U = np.zeros((self.rows, self.rank))
        self._S = np.zeros(self.rank)
        self._V = np.zeros((self.cols, self.rank))
        self.batches = 0

    # ------------------------------------------------------------------ interface
    @property
    def U(self) -> np.ndarray:
        return self._U.copy()

    @property
    def S(self) -> np.ndarray:
        return self._S.copy()

    @property
    def V(self) -> np.ndarray:
        return self._V.copy()

    def gradient(self) -> np.ndarray:
        """Ĝ = U diag(S) Vᵀ (the sketch of the last batch's Σ δ xᵀ)."""
        return (self._U * self._S) @ self._V.T

    def factors(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The r (row vector, column vector) pairs (S_c U_c, V_c) applied to the array."""
        return [(self._S[c] * self._U[:, c], self._V[:, c].copy()) for c in range(self.rank)]

    @property
    def array_updates(self) -> int:
        """Rank-1 row/column updates one batch costs on the array: r."""
        return self.rank

    @property
    def state_numbers(self) -> int:
        """Numbers kept per layer between pairs: r(a + b + 1)."""
        return self.rank * (self.rows + self.cols + 1)

    @property
    def work_numbers(self) -> int:
        """Extra numbers while one block is folded in: q(a + b) + 3(r + q)²."""
        n = self.rank + self.block
        return self.block * (self.rows + self.cols) + 3 * n * n

    # ------------------------------------------------------------------ update
    def _check_batch(self, x, delta) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float64)
        delta = np.asarray(delta, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.cols:
            raise ValueError(f"x has shape {x.shape}, expected (B, {self.cols})")
        if delta.ndim != 2 or delta.shape[1] != self.rows:
            raise ValueError(f"delta has shape {delta.shape}, expected (B, {self.rows})")
        if x.shape[0] != delta.shape[0]:
            raise ValueError(f"x and delta have different numbers of samples ({x.shape[0]} vs {delta.shape[0]})")
        if x.shape[0] == 0:
            raise ValueError("empty batch: x and delta have no samples")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(delta))):
            raise ValueError("x or delta contains NaN or infinite values")
        return x, delta

    def draw_signs(self, pairs: int) -> np.ndarray:
        """The ±1 signs one batch of ``pairs`` pairs consumes: one row of r+q per rank reduction."""
        n_blocks = -(-pairs // self.block)
        return (2.0 * self._rng.integers(0, 2, size=(n_blocks * self.block, self.rank + self.block)) - 1.0)

    def update(self, x, delta) -> None:
        """Consume one batch: ``x`` (B×b) and ``delta`` (B×a)."""
        x, d = self._check_batch(x, delta)
        if self.warm_start:
            U, S, V = self._U, self._S * self.decay, self._V
        else:
            U, S, V = np.zeros_like(self._U), np.zeros_like(self._S), np.zeros_like(self._V)
        signs = self.draw_signs(x.shape[0]) if self.unbiased else None
        if self.backend == "compiled":
            from .kernels.sks import sks_batch

            U, S, V = sks_batch(U, S, V, d, x, self.block, signs if signs is not None else np.zeros((0, 0)),
                                self.unbiased, self.svd == "jacobi")
        else:
            q = self.block
            for b0 in range(0, x.shape[0], q):
                sg = None if signs is None else signs[b0:b0 + q]
                U, S, V = fold_block(U, S, V, d[b0:b0 + q], x[b0:b0 + q], self.svd, sg)
        self._U, self._S, self._V = U, S, V
        self.batches += 1
