"""Bit-accurate fixed-point twin of the streaming Kronecker-sum estimators (``pymodel.sks``).

Every step of :func:`pymodel.sks.fold_block` in exact integers, with the formats of
:class:`pymodel.formats.SKSFormats`; each narrowing rounds as its format declares and
saturates with a sticky, counted flag.  ``docs/TRAINING.md`` (SKS section) lists the steps;
:meth:`SKSFixed._fold` is the definition.  Divisions are the project's exact rounded
division (``div_round``), square roots its exact floor square root (``isqrt``), the small
SVD the integer one-sided Jacobi of :func:`pymodel.jacobi.jacobi_svd_int`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .fixedpoint import Overflow, Rounding, SatFlags, div_round_int, exact_matmul, fit, isqrt_int, requantize_wide
from .formats import SKSFormats, get_sks_format_set
from .jacobi import jacobi_svd_int
from .kernels import check_backend
from .sbpca import _check_positive_int


@dataclass
class SKSStatus:
    """Sticky status of the fixed-point SKS datapath."""

    saturation: SatFlags = field(default_factory=SatFlags)
    dropped: int = 0  # new Gram–Schmidt directions dropped (residual below 2^-drop_bits of the input)
    sweeps: int = 0  # Jacobi sweeps run, all cores
    rotations: int = 0  # Jacobi rotations applied, all cores
    cores: int = 0  # core SVDs run
    unconverged: int = 0  # cores whose last allowed sweep still rotated

    def as_dict(self) -> dict:
        return {"saturation": dict(self.saturation.counts), "dropped": self.dropped, "sweeps": self.sweeps,
                "rotations": self.rotations, "cores": self.cores, "unconverged": self.unconverged}


def _rshift(v: int, sh: int) -> int:
    """Round-half-even right shift (the core's block-floating-point normalisation)."""
    if sh <= 0:
        return v
    floor = v >> sh
    rem = v & ((1 << sh) - 1)
    half = 1 << (sh - 1)
    return floor + (1 if (rem > half or (rem == half and floor & 1)) else 0)


def _dot(a: list[int], b: list[int]) -> int:
    return sum(x * y for x, y in zip(a, b))


class SKSFixed:
    """Fixed-point SKS (``unbiased=False``: ``sks``; True: ``sks-unbiased``) of one layer's G (a×b).

    Same interface as :class:`pymodel.sks.SKS`; ``fixed`` is a format-set name, True (q16)
    or an :class:`SKSFormats`.  Random signs come from ``numpy.random.default_rng(seed)``
    in the same order as the float estimator's.  The state is ``U_int``, ``V_int`` (basis
    format) and ``S_int`` (core format).
    """

    def __init__(self, rows: int, cols: int, rank: int, block: int = 1, unbiased: bool = False,
                 seed: int = 0, warm_start: bool = False, decay: float = 0.9,
                 fixed: "bool | str | SKSFormats" = True, backend: str = "compiled") -> None:
        self.rows = _check_positive_int("rows", rows)
        self.cols = _check_positive_int("cols", cols)
        self.rank = _check_positive_int("rank", rank)
        self.block = _check_positive_int("block", block)
        if self.rank > min(self.rows, self.cols):
            raise ValueError(f"rank {self.rank} exceeds min(rows, cols) = {min(self.rows, self.cols)}")
        if not (isinstance(decay, (int, float)) and 0.0 <= decay <= 1.0):
            raise ValueError(f"decay must be a number in [0, 1], not {decay!r}")
        self.fmts = get_sks_format_set(fixed)
        check_backend(backend)
        # "compiled" where the int64 kernel is exact (static bounds), else the Python-int reference
        self.backend = backend if self.compiled_ok() else "numpy"
        self.unbiased = bool(unbiased)
        self.warm_start = bool(warm_start)
        self.decay_int = int(self.fmts.rot.quantize(decay, "decay"))
        self._rng = np.random.default_rng(seed)
        self.status = SKSStatus()
        self.U_int = np.zeros((self.rows, self.rank), dtype=np.int64)
        self.V_int = np.zeros((self.cols, self.rank), dtype=np.int64)
        self.S_int = np.zeros(self.rank, dtype=np.int64)
        self.batches = 0

    fixed = True

    # ------------------------------------------------------------------ interface
    @property
    def U(self) -> np.ndarray:
        return self.fmts.basis.dequantize(self.U_int)

    @property
    def V(self) -> np.ndarray:
        return self.fmts.basis.dequantize(self.V_int)

    @property
    def S(self) -> np.ndarray:
        return self.fmts.core.dequantize(self.S_int)

    def gradient(self) -> np.ndarray:
        return (self.U * self.S) @ self.V.T

    def factors(self) -> list[tuple[np.ndarray, np.ndarray]]:
        U, S, V = self.U, self.S, self.V
        return [(S[c] * U[:, c], V[:, c].copy()) for c in range(self.rank)]

    @property
    def array_updates(self) -> int:
        return self.rank

    @property
    def state_numbers(self) -> int:
        return self.rank * (self.rows + self.cols + 1)

    def draw_signs(self, pairs: int) -> np.ndarray:
        """±1 signs, drawn exactly as :meth:`pymodel.sks.SKS.draw_signs` draws them."""
        n_blocks = -(-pairs // self.block)
        return 2 * self._rng.integers(0, 2, size=(n_blocks * self.block, self.rank + self.block)) - 1

    # ------------------------------------------------------------------ update
    def _check_batch(self, x, delta) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x)
        delta = np.asarray(delta)
        if x.ndim != 2 or x.shape[1] != self.cols:
            raise ValueError(f"x has shape {x.shape}, expected (B, {self.cols})")
        if delta.ndim != 2 or delta.shape[1] != self.rows:
            raise ValueError(f"delta has shape {delta.shape}, expected (B, {self.rows})")
        if x.shape[0] != delta.shape[0]:
            raise ValueError(f"x and delta have different numbers of samples ({x.shape[0]} vs {delta.shape[0]})")
        if x.shape[0] == 0:
            raise ValueError("empty batch: x and delta have no samples")
        return x, delta

    def update(self, x, delta) -> None:
        """Consume one batch of float ``x`` (B×b) and ``delta`` (B×a): quantised, then :meth:`update_int`."""
        x, delta = self._check_batch(x, delta)
        sat = self.status.saturation
        self._batch(self.fmts.x.quantize(x, "x", flags=sat), self.fmts.delta.quantize(delta, "delta", flags=sat))

    def update_int(self, x_int, delta_int) -> None:
        """Consume one batch already in the x / delta integer formats."""
        x_int, delta_int = self._check_batch(x_int, delta_int)
        if not (np.issubdtype(x_int.dtype, np.integer) and np.issubdtype(delta_int.dtype, np.integer)):
            raise TypeError("update_int takes integer arrays")
        for name, v, f in (("x", x_int, self.fmts.x), ("delta", delta_int, self.fmts.delta)):
            if np.any(v < f.min_int) or np.any(v > f.max_int):
                raise ValueError(f"{name} integers out of range for {f}")
        self._batch(x_int.astype(np.int64), delta_int.astype(np.int64))

    def _batch(self, xi: np.ndarray, di: np.ndarray) -> None:
        f = self.fmts
        if self.warm_start:
            S = requantize_wide(exact_matmul(self.S_int[:, None], np.array([[self.decay_int]])).ravel(),
                                f.core.frac + f.rot.frac, f.core, "S_decay", self.status.saturation)
            U, V = self.U_int, self.V_int
        else:
            U = np.zeros_like(self.U_int)
            V = np.zeros_like(self.V_int)
            S = np.zeros_like(self.S_int)
        signs = self.draw_signs(xi.shape[0]) if self.unbiased else None
        q = self.block
        if self.backend == "compiled":
            self._batch_compiled(U, S, V, xi, di, signs)
            return
        for b0 in range(0, xi.shape[0], q):
            sg = None if signs is None else signs[b0:b0 + q]
            U, S, V = self._fold(U, S, V, di[b0:b0 + q], xi[b0:b0 + q], sg)
        self.U_int, self.S_int, self.V_int = U, S, V
        self.batches += 1

    # ------------------------------------------------------------------ compiled kernel
    def compiled_ok(self) -> bool:
        """Whether every exact product and sum of the int64 kernel provably fits 63 bits.

        Bounds from the formats and the layer's dimensions (n = r + q the core size);
        the Python-int reference has no such limit and runs otherwise.
        """
        f = self.fmts
        n = self.rank + self.block
        dim = max(self.rows, self.cols)
        if any(fm.rounding is not Rounding.HALF_EVEN or fm.overflow is not Overflow.SATURATE
               for _, fm in f.items()):
            return False
        bl = int.bit_length
        checks = [
            (f.basis.bits - 1) + (f.resid.bits - 1) + bl(max(dim, n)),  # GS dots and W h
            2 * (f.resid.bits - 1) + bl(dim) + 2 * f.norm_guard,  # ‖w‖² · 2^(2g)
            (f.resid.bits - 1 + f.norm_guard + (bl(dim) + 1) // 2) + f.recip_bits + 2,  # 2^L in div_round
            (f.resid.bits - 1) + f.recip_bits + 1,  # w · inv
            (f.jacobi_bits + 3 + (bl(n) + 1) // 2) + f.recip_bits + 2,  # 2^L for 1/σ'
            (f.jacobi_bits + 3) + f.recip_bits + 1,  # A · inv
            2 * (f.coef.bits - 1) + bl(n),  # K = R_u R_vᵀ
            (f.core.bits - 1) + f.rot.frac + 1,  # 2·(s_k − σ)·2^rot in div_round
            (f.core.bits - 1) + bl(n) + 2,  # k·σ and tail sums
            2 * (f.jacobi_bits + 3) + bl(n),  # Jacobi α, β, γ
            30 + f.rot.frac + 2,  # t = div_round(g'·2^rot, ·)
            2 * f.rot.frac + 2,  # 2^(2 rot) + t²
            (f.basis.bits - 1) + (f.rot.bits - 1) + bl(n),  # U ← W C_u
            2 * (f.rot.bits - 1) + bl(n),  # reduction mixing
        ]
        return max(checks) <= 62

    def _params(self) -> np.ndarray:
        f = self.fmts
        return np.array([f.delta.frac, f.x.frac, f.resid.frac, f.resid.max_int, f.coef.frac, f.coef.max_int,
                         f.basis.frac, f.basis.max_int, f.recip_bits, 0, f.core.frac, f.core.max_int,
                         f.rot.frac, f.rot.max_int, f.norm_guard, f.drop_bits, f.jacobi_sweeps, f.jacobi_bits,
                         f.jacobi_tol_bits], dtype=np.int64)

    def _batch_compiled(self, U, S, V, xi, di, signs) -> None:
        from .kernels.sks import SAT_NAMES, sks_fixed_batch

        counts = np.zeros(len(SAT_NAMES), dtype=np.int64)
        stats = np.zeros(5, dtype=np.int64)
        sg = signs.astype(np.int64) if signs is not None else np.zeros((0, 0), dtype=np.int64)
        U, S, V = sks_fixed_batch(np.ascontiguousarray(U, dtype=np.int64), np.asarray(S, dtype=np.int64),
                                  np.ascontiguousarray(V, dtype=np.int64), np.ascontiguousarray(di, dtype=np.int64),
                                  np.ascontiguousarray(xi, dtype=np.int64), self.block, sg, self.unbiased,
                                  self._params(), counts, stats)
        for name, cnt in zip(SAT_NAMES, counts):
            self.status.saturation.add(name, int(cnt))
        st = self.status
        st.dropped += int(stats[0])
        st.sweeps += int(stats[1])
        st.rotations += int(stats[2])
        st.cores += int(stats[3])
        st.unconverged += int(stats[4])
        self.U_int, self.S_int, self.V_int = U, S, V
        self.batches += 1

    # ------------------------------------------------------------------ the datapath
    def _extend(self, B: np.ndarray, D: np.ndarray, in_frac: int, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Integer Gram–Schmidt (CGS2) of the rows of D against B's columns and each other.

        Per new vector w (resid format; the input embeds exactly):
          two passes of h = R_coef(Wᵀw), w = sat_resid(w − R_resid(W h)), c += h (sat_coef);
          n2 = Σ w²; dropped when n2 = 0 or n2 ≤ (Σ δ²) >> 2·drop_bits (the input's own norm²);
          else s = isqrt(n2·2^(2g)), L = bitlen(s) + recip_bits, inv = div_round(2^L, s),
          new column = R_basis(w·inv / 2^(L−g−basis)) (a normalised reciprocal: no range limit),
          its coefficient = R_coef(s).
        """
        f = self.fmts
        sat = self.status.saturation
        a, r = B.shape
        m = D.shape[0]
        W = np.zeros((a, r + m), dtype=np.int64)
        W[:, :r] = B
        R = np.zeros((r + m, m), dtype=np.int64)
        g = f.norm_guard
        for j in range(m):
            w = D[j].astype(np.int64) << np.int64(f.resid.frac - in_frac)
            n2_ref = int(exact_matmul(w, w))
            c = np.zeros(r + m, dtype=np.int64)
            for _ in range(2):
                Wj = W[:, :r + j]
                h = requantize_wide(exact_matmul(w, Wj), f.basis.frac + f.resid.frac, f.coef, f"{name}_h", sat)
                corr = requantize_wide(exact_matmul(Wj, h), f.basis.frac + f.coef.frac, f.resid)
                w = fit(w - corr, f.resid, f"{name}_w", sat)
                c[:r + j] = fit(c[:r + j] + h, f.coef, f"{name}_c", sat)
            n2 = int(exact_matmul(w, w))
            if n2 == 0 or n2 <= (n2_ref >> (2 * f.drop_bits)):
                self.status.dropped += 1
            else:
                s = isqrt_int(n2 << (2 * g))
                L = s.bit_length() + f.recip_bits
                inv = div_round_int(1 << L, s)
                W[:, r + j] = requantize_wide(exact_matmul(w[:, None], np.array([[inv]])).ravel(),
                                              L - g, f.basis, f"{name}_q", sat)
                c[r + j] = int(requantize_wide(np.array([s]), f.resid.frac + g, f.coef, f"{name}_c", sat)[0])
            R[:, j] = c
        return W, R

    def _dead(self, s: int, s0: int) -> bool:
        return s <= 0 or s <= (s0 >> self.fmts.drop_bits)

    def _reduce(self, Cu: list[list[int]], sig: list[int], Cv: list[list[int]], signs) -> tuple:
        """Integer twin of :func:`pymodel.sks.unbiased_reduce` (columns as lists, rot format).

        s_k = div_round(Σ tail, k); w_i = isqrt(div_round((s_k − σ_i)·2^rot, s_k)·2^rot) (0 if σ_i ≥ s_k);
        v = w − e_0; M_ij = [i = j+1]·2^rot + div_round(v_i v_{j+1}, v_0); Z = diag(signs) M;
        tail columns ← R_rot(Σ_i col_i Z_ij).
        """
        f = self.fmts
        fr = f.rot.frac
        one = 1 << fr
        n = len(sig)
        if self._dead(sig[n - 1], sig[0]):
            return Cu[:n - 1], sig[:n - 1], Cv[:n - 1]
        m = n - 1
        s = sig[m]
        while m > 0:
            k_new = n - m
            if k_new * sig[m - 1] > s + sig[m - 1]:
                break
            m -= 1
            s += sig[m]
        k = n - 1 - m
        sk = div_round_int(s, k)
        w = [isqrt_int(div_round_int((sk - sig[m + i]) << fr, sk) << fr) if sk > sig[m + i] else 0
             for i in range(k + 1)]
        v = list(w)
        v[0] -= one  # v_0 <= √½ − 1 < 0: σ_m/s_k >= 1/2 for the largest tail value
        Z = [[int(signs[i]) * ((one if i == j + 1 else 0) + div_round_int(v[i] * v[j + 1], v[0]))
              for j in range(k)] for i in range(k + 1)]
        sat = self.status.saturation

        def mix(cols: list[list[int]]) -> list[list[int]]:
            out = []
            for j in range(k):
                acc = [sum(cols[m + i][e] * Z[i][j] for i in range(k + 1)) for e in range(len(cols[0]))]
                out.append([int(v_) for v_ in requantize_wide(np.array(acc, dtype=object), 2 * fr, f.rot,
                                                              "red_rot", sat)])
            return cols[:m] + out

        return mix(Cu), sig[:m] + [sk] * k, mix(Cv)

    def _fold(self, U, S, V, D, X, signs):
        """One block of m pairs: the integer twin of :func:`pymodel.sks.fold_block`.

        1. (W_u, R_u) = GS(U; δ rows), (W_v, R_v) = GS(V; x rows)          see :meth:`_extend`
        2. K = sat_core(R_core(R_u R_vᵀ) + diag(S))
        3. e = max(0, bitlen(max|K|) − jacobi_bits); K' = R(K / 2^e) (half even);
           (A, V_rot) = integer one-sided Jacobi of K' (A = UΣ/2^e, V_rot at rot frac)
        4. σ'_c = isqrt(Σ_k A_kc²), σ_c = σ'_c · 2^e; columns sorted by σ descending (stable)
        5. left vectors C_u[k, c] = R(A_kc · inv_c / 2^(L_c − rot)), L_c = bitlen(σ'_c) + recip_bits,
           inv_c = div_round(2^L_c, σ'_c) (0 when σ'_c = 0); C_v = V_rot
        6. signs canonical: the largest-|.| entry of each C_u column positive (first on ties)
        7. unbiased: m reductions (:meth:`_reduce`); else keep the first r
        8. U ← R_basis(W_u C_u[:, :r]), V ← R_basis(W_v C_v[:, :r]), S ← σ[:r];
           a column with σ_c ≤ σ_0 >> drop_bits (or σ_c = 0) is zeroed
        """
        f = self.fmts
        st = self.status
        sat = st.saturation
        r = self.rank
        Wu, Ru = self._extend(U, D, f.delta.frac, "U")
        Wv, Rv = self._extend(V, X, f.x.frac, "V")
        n = Wu.shape[1]
        K = requantize_wide(exact_matmul(Ru, Rv.T), 2 * f.coef.frac, f.core, "K", sat)
        K = np.asarray(K, dtype=object)
        for i in range(r):
            K[i, i] = int(K[i, i]) + int(S[i])
        K = fit(np.array([[min(max(int(v), f.core.min_int - 1), f.core.max_int + 1) for v in row] for row in K],
                         dtype=np.int64), f.core, "K", sat)
        top = int(np.max(np.abs(K))) if K.size else 0
        e = max(0, top.bit_length() - f.jacobi_bits)  # block floating point: max|K'| < 2^jacobi_bits
        Kn = np.array([[_rshift(int(v), e) for v in row] for row in K], dtype=np.int64)
        jac = jacobi_svd_int(Kn, f.core.frac - e, (1 << (f.jacobi_bits + 3)) - 1, f.rot.frac, f.jacobi_sweeps,
                             sat, tol_bits=f.jacobi_tol_bits)
        st.cores += 1
        st.sweeps += jac.sweeps
        st.rotations += jac.rotations
        if jac.sweeps == f.jacobi_sweeps and jac.rotations and self._last_sweep_rotated(K, jac):
            st.unconverged += 1
        A = [[int(v) for v in jac.A[:, c]] for c in range(n)]
        Vr = [[int(v) for v in jac.V[:, c]] for c in range(n)]
        sig_n = [isqrt_int(_dot(col, col)) for col in A]  # at core.frac − e
        sig = [s_ << e for s_ in sig_n]
        order = sorted(range(n), key=lambda c: -sig_n[c])
        sig = [sig[c] for c in order]
        sig_n = [sig_n[c] for c in order]
        A = [A[c] for c in order]
        Cv = [Vr[c] for c in order]
        one = 1 << f.rot.frac
        Cu = []
        for col, s_ in zip(A, sig_n):
            if s_ > 0:
                L = s_.bit_length() + f.recip_bits
                inv = div_round_int(1 << L, s_)
                Cu.append([_rshift(v * inv, L - f.rot.frac) for v in col])
            else:
                Cu.append([0] * n)
        for c in range(n):
            col = Cu[c]
            big = max(range(n), key=lambda i: (abs(col[i]), -i))
            if col[big] < 0:
                Cu[c] = [-v for v in col]
                Cv[c] = [-v for v in Cv[c]]
        if signs is not None:
            for step in range(D.shape[0]):
                Cu, sig, Cv = self._reduce(Cu, sig, Cv, signs[step])
        Cu_m = np.array(Cu[:r], dtype=np.int64).T
        Cv_m = np.array(Cv[:r], dtype=np.int64).T
        U_new = requantize_wide(exact_matmul(Wu, Cu_m), f.basis.frac + f.rot.frac, f.basis, "U_new", sat)
        V_new = requantize_wide(exact_matmul(Wv, Cv_m), f.basis.frac + f.rot.frac, f.basis, "V_new", sat)
        S_new = np.array(sig[:r], dtype=np.int64)
        for c in range(r):
            if self._dead(int(S_new[c]), sig[0]):
                S_new[c] = 0
                U_new[:, c] = 0
                V_new[:, c] = 0
        return U_new, S_new, V_new

    def _last_sweep_rotated(self, K: np.ndarray, jac) -> bool:
        """Whether one more sweep would still rotate (the sweep limit cut the iteration short)."""
        f = self.fmts
        more = jacobi_svd_int(jac.A, f.core.frac, (1 << (f.jacobi_bits + 3)) - 1, f.rot.frac, 1,
                              tol_bits=f.jacobi_tol_bits)
        return more.rotations > 0
