"""Streaming batch PCA (SBPCA): rank-k gradient estimates from a stream of (x, δ) pairs.

Float mode follows SPEC §2 literally (α, β per sub-batch, QR with positive diag(R)).
Fixed mode is the bit-accurate golden model of the hardware engine; its every step is
written out in ``docs/FIXED_POINT.md`` and in :meth:`SBPCA._fixed_sub_batch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .fixedpoint import (
    SatFlags,
    div_round,
    div_round_int,
    exact_coldot,
    exact_matmul,
    exact_matmul_f64,
    exact_mul,
    fit,
    isqrt_int,
    requantize_wide,
)
from .formats import SBPCAFormats, get_format_set
from .kernels import check_backend


def orth(m: np.ndarray) -> np.ndarray:
    """Thin QR factor Q of ``m`` with columns signed so that diag(R) > 0."""
    q, r = np.linalg.qr(m)
    d = np.sign(np.diag(r))
    d[d == 0] = 1.0
    return q * d


def random_orthonormal(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return orth(rng.standard_normal((n, k)))


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, not {value}")
    return int(value)


@dataclass
class SubBatchRecord:
    """Integer state after one fixed-point sub-batch (what the RTL exposes for verification)."""

    X: np.ndarray
    Delta: np.ndarray
    sigma: np.ndarray
    n: int
    m: int


@dataclass
class FixedStatus:
    """Sticky status flags of the fixed-point datapath (mirrors the RTL's status register)."""

    saturation: SatFlags = field(default_factory=SatFlags)
    sigma_guard: int = 0  # times σ was replaced by sigma_min in 1/(nσ)
    degenerate: int = 0  # Gram–Schmidt columns of zero norm

    def as_dict(self) -> dict:
        return {"saturation": dict(self.saturation.counts), "sigma_guard": self.sigma_guard,
                "degenerate": self.degenerate}


class SBPCA:
    """Rank-k SBPCA estimator of one layer's gradient ``G = Σ δ xᵀ`` (a×b).

    Parameters: ``rows`` a, ``cols`` b, ``rank`` k, ``sub_batch`` s.  ``fixed`` is False
    (float64), True (default format set), a set name, or an :class:`SBPCAFormats`.
    ``init=(X, Delta, sigma)`` sets the initial state (b×k, a×k, k), otherwise a random
    orthonormal state from ``seed`` with σ = 1.  ``sigma_min`` (float mode) guards the
    division by σ as the fixed datapath does; fixed mode always uses its format's guard.
    ``record=True`` keeps the integer state after every sub-batch in ``history``.
    ``backend="compiled"`` (default) runs each batch in one numba kernel
    (:mod:`pymodel.kernels.sbpca`); ``backend="numpy"`` runs the readable NumPy code of this
    class, the reference the kernel is tested against.  Both give the same integers in fixed
    point and the same floats to rounding.  A format set the kernel cannot reproduce exactly
    (overflow ``error``, or values beyond 126 bits) runs on NumPy: ``backend`` then says
    ``"numpy"`` and ``backend_note`` why.
    """

    def __init__(
        self,
        rows: int,
        cols: int,
        rank: int,
        sub_batch: int,
        seed: int = 0,
        fixed: "bool | str | SBPCAFormats" = False,
        init: tuple | None = None,
        sigma_min: float | None = None,
        record: bool = False,
        backend: str = "compiled",
    ) -> None:
        self.rows = _check_positive_int("rows", rows)
        self.cols = _check_positive_int("cols", cols)
        self.rank = _check_positive_int("rank", rank)
        self.sub_batch = _check_positive_int("sub_batch", sub_batch)
        if self.rank > min(self.rows, self.cols):
            raise ValueError(
                f"rank {self.rank} exceeds min(rows, cols) = {min(self.rows, self.cols)}"
            )
        if sigma_min is not None and not sigma_min > 0:
            raise ValueError(f"sigma_min must be positive, not {sigma_min!r}")
        self.fmts: SBPCAFormats | None = None if fixed is False else get_format_set(fixed)
        self.sigma_min = sigma_min
        self.record = record
        self.backend = check_backend(backend)
        self.backend_note = ""
        self.history: list[SubBatchRecord] = []
        self.status = FixedStatus()
        self.last_batch_size = 0
        self.batches = 0

        if init is None:
            rng = np.random.default_rng(seed)
            X0 = random_orthonormal(rng, self.cols, self.rank)
            D0 = random_orthonormal(rng, self.rows, self.rank)
            s0 = np.ones(self.rank)
        else:
            X0, D0, s0 = (np.asarray(v, dtype=np.float64) for v in init)
            self._check_shape("init X", X0, (self.cols, self.rank))
            self._check_shape("init Delta", D0, (self.rows, self.rank))
            self._check_shape("init sigma", s0, (self.rank,))
            for name, v in (("init X", X0), ("init Delta", D0), ("init sigma", s0)):
                if not np.all(np.isfinite(v)):
                    raise ValueError(f"{name} contains NaN or infinite values")
        if self.fmts is None:
            self._X, self._D, self._s = X0.copy(), D0.copy(), s0.copy()
        else:
            f = self.fmts
            self.X_int = f.state.quantize(X0, "init X")
            self.Delta_int = f.state.quantize(D0, "init Delta")
            self.sigma_int = f.sigma.quantize(s0, "init sigma")
            self._fits = self._static_widths()
            if self.backend == "compiled":
                from .kernels.sbpca_tables import fixed_tables

                self._tables, self.backend_note = fixed_tables(f, self.rows, self.cols, self.sub_batch)
                if self._tables is None:
                    self.backend = "numpy"

    # ------------------------------------------------------------------ state access
    @property
    def fixed(self) -> bool:
        return self.fmts is not None

    @property
    def X(self) -> np.ndarray:
        return self._X.copy() if self.fmts is None else self.fmts.state.dequantize(self.X_int)

    @property
    def Delta(self) -> np.ndarray:
        return self._D.copy() if self.fmts is None else self.fmts.state.dequantize(self.Delta_int)

    @property
    def sigma(self) -> np.ndarray:
        return self._s.copy() if self.fmts is None else self.fmts.sigma.dequantize(self.sigma_int)

    def gradient(self) -> np.ndarray:
        """Ĝ = B · Δ diag(σ) Xᵀ for the last batch (B = its number of samples)."""
        return self.last_batch_size * (self.Delta * self.sigma) @ self.X.T

    def factors(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The k (row vector, column vector) pairs (B σ_c Δ_c, X_c) applied to the array."""
        D, X, s = self.Delta, self.X, self.sigma
        return [(self.last_batch_size * s[c] * D[:, c], X[:, c]) for c in range(self.rank)]

    @property
    def array_updates(self) -> int:
        """Rank-1 row/column updates one batch costs on the array: k."""
        return self.rank

    @property
    def state_numbers(self) -> int:
        """Numbers kept per layer: k(a + b + 1)."""
        return self.rank * (self.rows + self.cols + 1)

    # ------------------------------------------------------------------ input checks
    @staticmethod
    def _check_shape(name: str, arr: np.ndarray, shape: tuple) -> None:
        if arr.shape != shape:
            raise ValueError(f"{name} has shape {arr.shape}, expected {shape}")

    def _check_batch(self, x, delta) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x)
        delta = np.asarray(delta)
        if x.ndim != 2 or x.shape[1] != self.cols:
            raise ValueError(f"x has shape {x.shape}, expected (B, {self.cols})")
        if delta.ndim != 2 or delta.shape[1] != self.rows:
            raise ValueError(f"delta has shape {delta.shape}, expected (B, {self.rows})")
        if x.shape[0] != delta.shape[0]:
            raise ValueError(
                f"x and delta have different numbers of samples ({x.shape[0]} vs {delta.shape[0]})"
            )
        if x.shape[0] == 0:
            raise ValueError("empty batch: x and delta have no samples")
        return x, delta

    # ------------------------------------------------------------------ update
    def update(self, x, delta) -> None:
        """Consume one batch: ``x`` (B×b) and ``delta`` (B×a), float values."""
        x, delta = self._check_batch(x, delta)
        if self.fmts is None:
            x = np.asarray(x, dtype=np.float64)
            delta = np.asarray(delta, dtype=np.float64)
            if not np.all(np.isfinite(x)):
                raise ValueError("x contains NaN or infinite values")
            if not np.all(np.isfinite(delta)):
                raise ValueError("delta contains NaN or infinite values")
            self._float_batch(x, delta)
        else:
            sat = self.status.saturation
            if self.backend == "compiled":
                xi = self._quantize_compiled(x, self.fmts.x, "x")
                di = self._quantize_compiled(delta, self.fmts.delta, "delta")
            else:
                xi = self.fmts.x.quantize(x, "x", flags=sat)
                di = self.fmts.delta.quantize(delta, "delta", flags=sat)
            self._fixed_batch(xi, di)

    def _quantize_compiled(self, values, fmt, name: str) -> np.ndarray:
        """``fmt.quantize`` in one compiled pass (same integers and saturation count)."""
        from .kernels.fixed_ops import pack_format, quantize

        ints, over, finite = quantize(np.ascontiguousarray(values, dtype=np.float64), tuple(pack_format(fmt)))
        if not finite:
            raise ValueError(f"{name} contains NaN or infinite values")
        self.status.saturation.add(name, int(over))
        return ints

    def update_int(self, x_int, delta_int) -> None:
        """Fixed mode: consume one batch already in the x / delta integer formats."""
        if self.fmts is None:
            raise TypeError("update_int needs a fixed-point SBPCA (fixed=...)")
        x_int, delta_int = self._check_batch(x_int, delta_int)
        if not (np.issubdtype(x_int.dtype, np.integer) and np.issubdtype(delta_int.dtype, np.integer)):
            raise TypeError("update_int takes integer arrays")
        for name, v, f in (("x", x_int, self.fmts.x), ("delta", delta_int, self.fmts.delta)):
            if np.any(v < f.min_int) or np.any(v > f.max_int):
                raise ValueError(f"{name} integers out of range for {f}")
        self._fixed_batch(x_int.astype(np.int64), delta_int.astype(np.int64))

    # ------------------------------------------------------------------ float algorithm
    def _float_batch(self, x: np.ndarray, d: np.ndarray) -> None:
        if self.backend == "compiled":
            from .kernels.sbpca import float_batch

            smin = 0.0 if self.sigma_min is None else float(self.sigma_min)
            self._X, self._D, self._s = float_batch(
                np.ascontiguousarray(x), np.ascontiguousarray(d), self._X.copy(), self._D.copy(),
                self._s.copy(), self.sub_batch, smin)
            self.last_batch_size = x.shape[0]
            self.batches += 1
            return
        s = self.sub_batch
        n = s  # the carried state counts as one sub-batch
        X, D, sig = self._X, self._D, self._s
        for start in range(0, x.shape[0], s):
            xs, ds = x[start:start + s], d[start:start + s]
            m = xs.shape[0]
            alpha, beta = n / (n + m), 1.0 / (n + m)
            div = sig if self.sigma_min is None else np.maximum(sig, self.sigma_min)
            X = orth(alpha * X + xs.T @ (beta * (ds @ D)) / div)
            D = orth(alpha * D + ds.T @ (beta * (xs @ X)) / div)
            sig = alpha * sig + beta * np.sum((ds @ D) * (xs @ X), axis=0)
            n += m
        self._X, self._D, self._s = X, D, sig
        self.last_batch_size = x.shape[0]
        self.batches += 1

    # ------------------------------------------------------------------ fixed algorithm
    def _static_widths(self) -> dict[str, bool]:
        """Which exact products/sums provably fit int64, from the formats and dimensions."""
        f, a, b, s = self.fmts, self.rows, self.cols, self.sub_batch
        from .fixedpoint import static_fits

        return {
            "q": static_fits(f.delta.bits, f.state.bits, a),
            "A": static_fits(f.x.bits, f.proj.bits, s),
            "p": static_fits(f.x.bits, f.state.bits, b),
            "D": static_fits(f.delta.bits, f.proj.bits, s),
            # the per-sample passes are matrix products: exact in float64 BLAS when < 2**53
            "q_f64": static_fits(f.delta.bits, f.state.bits, a, limit=52),
            "A_f64": static_fits(f.x.bits, f.proj.bits, s, limit=52),
            "p_f64": static_fits(f.x.bits, f.state.bits, b, limit=52),
            "D_f64": static_fits(f.delta.bits, f.proj.bits, s, limit=52),
            "gs_dot": static_fits(f.mat.bits, f.state.bits, max(a, b)),
            "gs_mul": static_fits(f.state.bits, f.mat.bits),
            "n2": static_fits(f.mat.bits, f.mat.bits, max(a, b)),
            "q_inv": static_fits(f.mat.bits, f.inv.bits),
        }

    def _fixed_batch(self, x: np.ndarray, d: np.ndarray) -> None:
        if self.backend == "compiled" and self._tables.batch_fits(x.shape[0]):
            self._fixed_batch_compiled(x, d)
            return
        s = self.sub_batch
        n = s
        for start in range(0, x.shape[0], s):
            xs, ds = x[start:start + s], d[start:start + s]
            self._fixed_sub_batch(xs, ds, n)
            n += xs.shape[0]
            if self.record:
                self.history.append(SubBatchRecord(self.X_int.copy(), self.Delta_int.copy(),
                                                   self.sigma_int.copy(), n, xs.shape[0]))
        self.last_batch_size = x.shape[0]
        self.batches += 1

    def _fixed_batch_compiled(self, x: np.ndarray, d: np.ndarray) -> None:
        """The whole batch in :func:`pymodel.kernels.sbpca.fixed_batch` (same integers)."""
        from .kernels.sbpca import SAT_NAMES, fixed_batch

        t = self._tables
        XT = np.ascontiguousarray(self.X_int.T, dtype=np.int64)
        DT = np.ascontiguousarray(self.Delta_int.T, dtype=np.int64)
        sig = np.array(self.sigma_int, dtype=np.int64)
        cnt, guard, degen, hX, hD, hS, hN, hM = fixed_batch(
            np.ascontiguousarray(x, dtype=np.int64), np.ascontiguousarray(d, dtype=np.int64),
            XT, DT, sig, self.sub_batch, t.F, t.W, t.consts, self.record)
        self.X_int, self.Delta_int, self.sigma_int = XT.T.copy(), DT.T.copy(), sig
        st = self.status
        for name, c in zip(SAT_NAMES, cnt):
            st.saturation.add(name, int(c))
        st.sigma_guard += int(guard)
        st.degenerate += int(degen)
        for i in range(hN.shape[0]):
            self.history.append(SubBatchRecord(hX[i].T.copy(), hD[i].T.copy(), hS[i].copy(),
                                               int(hN[i]), int(hM[i])))
        self.last_batch_size = x.shape[0]
        self.batches += 1

    def _imatmul(self, a: np.ndarray, b: np.ndarray, key: str) -> np.ndarray:
        """Exact integer product for the step ``key``, by the fastest exact route."""
        if self._fits[key + "_f64"]:
            return exact_matmul_f64(a, b)
        return exact_matmul(a, b, self._fits[key])

    def _fixed_sub_batch(self, xs: np.ndarray, ds: np.ndarray, n: int) -> None:
        """One sub-batch in exact integer arithmetic (the hardware's definition).

        1. q_j = R_proj(δ_j · Δ)                      per sample, exact dot then one rounding
        2. A   = R_acc(Σ_j x_j q_jᵀ)                   exact sum, rounded once at sub-batch end
        3. r_c = R_recip(1 / (n · max(σ_c, σ_min)))    exact rounded division
        4. X'  = MGS(sat_mat(X + R_mat(A_ic · r_c)))
        5. p_j = R_proj(x_j · X'),  D = R_acc(Σ_j δ_j p_jᵀ)
        6. Δ'  = MGS(sat_mat(Δ + R_mat(D_rc · r_c)))
        7. σ'  = sat_σ(div_round(n σ + R_σ(Σ_r Δ'_rc D_rc), n + m))
        """
        f = self.fmts
        st = self.status
        sat = st.saturation
        m = xs.shape[0]
        # 1-2: pass 1
        q = requantize_wide(self._imatmul(ds, self.Delta_int, "q"), f.delta.frac + f.state.frac, f.proj, "q", sat)
        A = requantize_wide(self._imatmul(xs.T, q, "A"), f.x.frac + f.proj.frac, f.acc, "A", sat)
        # 3: reciprocal of n·σ with the guard
        guard = self.sigma_int < f.sigma_min_int
        st.sigma_guard += int(np.count_nonzero(guard))
        sig_g = np.where(guard, f.sigma_min_int, self.sigma_int)
        r = fit(div_round(np.int64(1) << np.int64(f.sigma.frac + f.recip.frac), n * sig_g),
                f.recip, "recip", sat)
        # 4: X update
        self.X_int = self._mgs(self._power_step(self.X_int, A, r), "X")
        # 5: pass 2 with the new X
        p = requantize_wide(self._imatmul(xs, self.X_int, "p"), f.x.frac + f.state.frac, f.proj, "p", sat)
        D = requantize_wide(self._imatmul(ds.T, p, "D"), f.delta.frac + f.proj.frac, f.acc, "D", sat)
        # 6: Δ update
        self.Delta_int = self._mgs(self._power_step(self.Delta_int, D, r), "Delta")
        # 7: σ update, S_c = Σ_r Δ'_rc D_rc
        S = exact_coldot(self.Delta_int, D)
        S_sig = requantize_wide(np.asarray(S), f.state.frac + f.acc.frac, f.sigma, "S", sat)
        num = n * self.sigma_int + S_sig
        self.sigma_int = fit(div_round(num, np.int64(n + m)), f.sigma, "sigma", sat)

    def _power_step(self, V: np.ndarray, acc: np.ndarray, r: np.ndarray) -> np.ndarray:
        """M = sat_mat(V·2^(mat−state) + R_mat(acc ⊙ r)) (r broadcast over rows)."""
        f = self.fmts
        upd = requantize_wide(exact_mul(acc, r[None, :]), f.acc.frac + f.recip.frac, f.mat,
                              "M_update", self.status.saturation)
        base = V.astype(np.int64) << np.int64(f.mat.frac - f.state.frac)
        return fit(base + upd, f.mat, "M", self.status.saturation)

    def _mgs(self, M: np.ndarray, name: str) -> np.ndarray:
        """Modified Gram–Schmidt, column 0 first, with exact integer normalisation.

        Column c is normalised, then removed from every later column j > c (right-looking
        form: each column sees the same subtractions, in the same order, as the textbook
        left-looking MGS, so the integers are identical):
        N2 = Σ v_c², s = isqrt(N2 << 2·guard), inv = sat_inv(div_round(2^(norm_frac+inv.frac), s)),
        q_c = R_state(v_c · inv); then for j > c: h = R_mat(v_j · q_c), v_j = sat_mat(v_j − R_mat(h q_c)).
        A zero column gives q_c = 0 and counts as degenerate.
        """
        f = self.fmts
        sat = self.status.saturation
        rows, k = M.shape
        Vt = np.ascontiguousarray(M.T, dtype=np.int64)  # one row per column: contiguous slices
        Qt = np.zeros((k, rows), dtype=np.int64)
        fm, fx = f.mat.frac, f.state.frac
        one = 1 << (f.norm_frac + f.inv.frac)
        for c in range(k):
            v = Vt[c]
            n2 = int(exact_matmul(v, v, self._fits["n2"]))
            if n2 == 0:
                self.status.degenerate += 1
            else:
                inv = div_round_int(one, isqrt_int(n2 << (2 * f.norm_guard)))
                if inv > f.inv.max_int:  # scalar saturation, as fit() would do
                    sat.add(f"{name}_inv", 1)
                    inv = f.inv.max_int
                Qt[c] = requantize_wide(exact_mul(v, np.int64(inv), self._fits["q_inv"]), fm + f.inv.frac,
                                   f.state, f"{name}_q", sat)
            if c + 1 < k:
                q = Qt[c]
                h = requantize_wide(exact_matmul(Vt[c + 1:], q, self._fits["gs_dot"]), fm + fx, f.mat,
                                    f"{name}_gs_h", sat)
                # R_mat(h·q) saturates like every mat value; it has no flag of its own (the
                # subtraction's own saturation, gs_v, is flagged) — the RTL's status bits match.
                corr = requantize_wide(exact_mul(h[:, None], q[None, :], self._fits["gs_mul"]), fx + fm,
                                       f.mat, f"{name}_gs_c")
                Vt[c + 1:] = fit(Vt[c + 1:] - corr, f.mat, f"{name}_gs_v", sat)
        return Qt.T.copy()
