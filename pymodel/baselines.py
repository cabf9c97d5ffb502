"""Gradient estimators that SBPCA is compared with, behind one interface.

Every estimator consumes a batch as the per-sample stream (x: B×b, δ: B×a) through
``update`` and returns its estimate of ``G = Σ_j δ_j x_jᵀ`` (a×b) from ``gradient``.
``factors`` gives the rank-1 (row, column) pairs the crossbar would apply, and
``array_updates`` how many rank-1 row/column updates one batch costs on the array.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .sbpca import SBPCA, orth, random_orthonormal
from .sks import SKS


class GradientEstimator(Protocol):
    rows: int
    cols: int

    def update(self, x: np.ndarray, delta: np.ndarray) -> None: ...
    def gradient(self) -> np.ndarray: ...
    def factors(self) -> list[tuple[np.ndarray, np.ndarray]]: ...
    @property
    def array_updates(self) -> int: ...


def _check(rows: int, cols: int, x, delta) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    delta = np.asarray(delta, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != cols:
        raise ValueError(f"x has shape {x.shape}, expected (B, {cols})")
    if delta.ndim != 2 or delta.shape[1] != rows:
        raise ValueError(f"delta has shape {delta.shape}, expected (B, {rows})")
    if x.shape[0] != delta.shape[0]:
        raise ValueError(f"x and delta have different numbers of samples ({x.shape[0]} vs {delta.shape[0]})")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(delta))):
        raise ValueError("x or delta contains NaN or infinite values")
    return x, delta


def _check_rank(rank: int, rows: int, cols: int) -> int:
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        raise ValueError(f"rank must be a positive integer, not {rank!r}")
    if rank > min(rows, cols):
        raise ValueError(f"rank {rank} exceeds min(rows, cols) = {min(rows, cols)}")
    return int(rank)


class ExactGradient:
    """MBGD: the exact G.  On the array, one rank-1 update per sample (δ_j, x_j)."""

    def __init__(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols
        self._G = np.zeros((rows, cols))
        self._x = np.zeros((0, cols))
        self._d = np.zeros((0, rows))

    def update(self, x, delta) -> None:
        self._x, self._d = _check(self.rows, self.cols, x, delta)
        self._G = self._d.T @ self._x

    def gradient(self) -> np.ndarray:
        return self._G.copy()

    def factors(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(self._d[j], self._x[j]) for j in range(self._x.shape[0])]

    @property
    def array_updates(self) -> int:
        return int(self._x.shape[0])


class TruncatedSVD:
    """The Eckart–Young optimum: the exact rank-k truncated SVD of G."""

    def __init__(self, rows: int, cols: int, rank: int) -> None:
        self.rows, self.cols = rows, cols
        self.rank = _check_rank(rank, rows, cols)
        self._U = np.zeros((rows, self.rank))
        self._S = np.zeros(self.rank)
        self._V = np.zeros((cols, self.rank))

    def update(self, x, delta) -> None:
        x, d = _check(self.rows, self.cols, x, delta)
        U, S, Vt = np.linalg.svd(d.T @ x, full_matrices=False)
        k = self.rank
        self._U, self._S, self._V = U[:, :k], S[:k], Vt[:k].T

    def gradient(self) -> np.ndarray:
        return (self._U * self._S) @ self._V.T

    def factors(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(self._S[c] * self._U[:, c], self._V[:, c]) for c in range(self.rank)]

    @property
    def array_updates(self) -> int:
        return self.rank


class PowerSGD:
    """PowerSGD-style warm-started power iteration on the formed G (one step per batch).

    With ``error_feedback`` the residual ``M − Ĝ`` is added to the next batch's G.
    """

    def __init__(self, rows: int, cols: int, rank: int, seed: int = 0, error_feedback: bool = True) -> None:
        self.rows, self.cols = rows, cols
        self.rank = _check_rank(rank, rows, cols)
        self.error_feedback = error_feedback
        self._Q = random_orthonormal(np.random.default_rng(seed), cols, self.rank)
        self._P = np.zeros((rows, self.rank))
        self._E = np.zeros((rows, cols))

    def update(self, x, delta) -> None:
        x, d = _check(self.rows, self.cols, x, delta)
        M = d.T @ x
        if self.error_feedback:
            M = M + self._E
        P = orth(M @ self._Q)
        Q = M.T @ P
        self._P, self._Q = P, Q
        if self.error_feedback:
            self._E = M - P @ Q.T
        # warm start: keep Q for the next batch (PowerSGD reuses the unnormalised Q)

    def gradient(self) -> np.ndarray:
        return self._P @ self._Q.T

    def factors(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(self._P[:, c], self._Q[:, c]) for c in range(self.rank)]

    @property
    def array_updates(self) -> int:
        return self.rank


def make_estimator(method: str, rows: int, cols: int, rank: int = 4, sub_batch: int = 16,
                   seed: int = 0, fixed=False, error_feedback: bool = True,
                   sigma_min: float | None = None, block: int = 1, backend: str = "compiled") -> GradientEstimator:
    """Build an estimator by name: ``mbgd``, ``sbpca``, ``svd``, ``powersgd``, ``sks`` or ``sks-unbiased``.

    ``block`` is the SKS block size q (pairs per core SVD); ``backend`` chooses SBPCA's and
    SKS's compiled kernels or their NumPy references (same results)."""
    if method == "mbgd":
        return ExactGradient(rows, cols)
    if method == "sbpca":
        return SBPCA(rows, cols, rank, sub_batch, seed=seed, fixed=fixed, sigma_min=sigma_min, backend=backend)
    if method == "svd":
        return TruncatedSVD(rows, cols, rank)
    if method == "powersgd":
        return PowerSGD(rows, cols, rank, seed=seed, error_feedback=error_feedback)
    if method in ("sks", "sks-unbiased"):
        if fixed is not False:
            from .sks_fixed import SKSFixed

            return SKSFixed(rows, cols, rank, block=block, unbiased=method == "sks-unbiased", seed=seed,
                            fixed=fixed, backend=backend)
        return SKS(rows, cols, rank, block=block, unbiased=method == "sks-unbiased", seed=seed, backend=backend)
    raise ValueError(f"unknown method {method!r}; choose one of mbgd, sbpca, svd, powersgd, sks, sks-unbiased")
