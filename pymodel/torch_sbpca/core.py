"""Float SBPCA in torch: the SPEC §2 equations on tensors, on the device they live on.

This mirrors :meth:`pymodel.sbpca.SBPCA._float_batch` operation for operation (same α, β,
same QR sign convention, same optional σ guard) so that in float64 both give the same
numbers to rounding; nothing here leaves the tensors' device, so it runs on CUDA as is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..sbpca import random_orthonormal


def orth(m: torch.Tensor) -> torch.Tensor:
    """Thin QR factor Q of ``m`` with columns signed so that diag(R) > 0 (as ``pymodel.sbpca.orth``)."""
    # geqrf + householder_product is what linalg.qr computes, but on CPU it skips the
    # parallel region linalg.qr opens even for one tiny matrix, which costs milliseconds
    # per call on a busy multi-core machine (measured: 5 µs vs 8 ms with 2 threads).
    a, tau = torch.geqrf(m)
    r = min(m.shape[-2], m.shape[-1])
    q = torch.linalg.householder_product(a[..., :r], tau)
    return q * torch.where(torch.diagonal(a)[:r] < 0, -1.0, 1.0)  # sign 0 counts as +


def check_positive_int(name: str, value: object) -> int:
    """A positive Python/NumPy integer (bools refused), else TypeError/ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, not {value}")
    return int(value)


def check_sigma_min(sigma_min: float | None) -> float | None:
    """``None`` or a positive finite float (the σ guard of the division by σ)."""
    if sigma_min is None:
        return None
    if isinstance(sigma_min, bool) or not isinstance(sigma_min, (int, float, np.floating)):
        raise TypeError(f"sigma_min must be a float or None, not {type(sigma_min).__name__}")
    if not (np.isfinite(sigma_min) and sigma_min > 0):
        raise ValueError(f"sigma_min must be positive and finite, not {sigma_min!r}")
    return float(sigma_min)


@dataclass
class SBPCAState:
    """Warm-started SBPCA state of one layer: X (b×k), Δ (a×k), σ (k).

    ``pairs`` is the number B of streamed (x, δ) pairs of the last batch, the scale of
    the estimate ``Ĝ = B · Δ diag(σ) Xᵀ``.
    """

    X: torch.Tensor
    Delta: torch.Tensor
    sigma: torch.Tensor
    pairs: int = 0

    @classmethod
    def seeded(cls, rows: int, cols: int, rank: int, seed: int, *, dtype: torch.dtype = torch.float64,
               device: torch.device | str | None = None) -> "SBPCAState":
        """The initial state ``pymodel.sbpca.SBPCA(rows, cols, rank, s, seed)`` starts from.

        Same seeding scheme: ``random_orthonormal(default_rng(seed), ...)`` for X first, then Δ;
        σ = 1.  Runs once per layer at set-up, so the NumPy detour is off the hot path.
        """
        rows, cols, rank = (check_positive_int(n, v) for n, v in
                            (("rows", rows), ("cols", cols), ("rank", rank)))
        if rank > min(rows, cols):
            raise ValueError(f"rank {rank} exceeds min(rows, cols) = {min(rows, cols)}")
        rng = np.random.default_rng(seed)
        X0 = random_orthonormal(rng, cols, rank)
        D0 = random_orthonormal(rng, rows, rank)
        kw = {"dtype": dtype, "device": device}
        return cls(torch.as_tensor(X0, **kw), torch.as_tensor(D0, **kw), torch.ones(rank, **kw))

    @classmethod
    def from_arrays(cls, rows: int, cols: int, rank: int, X, Delta, sigma, *,
                    dtype: torch.dtype = torch.float64,
                    device: torch.device | str | None = None) -> "SBPCAState":
        """An explicit initial state (arrays or tensors), shape- and finiteness-checked."""
        out = []
        for name, v, shape in (("X", X, (cols, rank)), ("Delta", Delta, (rows, rank)),
                               ("sigma", sigma, (rank,))):
            t = torch.as_tensor(v).detach().to(dtype=dtype, device=device).clone()
            if tuple(t.shape) != shape:
                raise ValueError(f"init {name} has shape {tuple(t.shape)}, expected {shape}")
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"init {name} contains NaN or infinite values")
            out.append(t)
        return cls(*out)

    @property
    def rank(self) -> int:
        return int(self.sigma.shape[0])

    def gradient(self) -> torch.Tensor:
        """Ĝ = B · Δ diag(σ) Xᵀ (a×b) for the last batch."""
        return (self.Delta * (self.pairs * self.sigma)) @ self.X.T

    def clone(self) -> "SBPCAState":
        return SBPCAState(self.X.clone(), self.Delta.clone(), self.sigma.clone(), self.pairs)


BACKENDS = ("compiled", "torch")


def _kernel_applies(state: SBPCAState, x: torch.Tensor) -> bool:
    """The numba kernel takes CPU float32/float64 tensors (zero-copy through ``.numpy()``)."""
    return (state.X.device.type == "cpu" and x.device.type == "cpu"
            and state.X.dtype in (torch.float32, torch.float64))


def _kernel_update(state: SBPCAState, x: torch.Tensor, delta: torch.Tensor, s: int,
                   sigma_min: float | None) -> SBPCAState:
    """The whole batch in :func:`pymodel.kernels.sbpca.float_batch` (one call, no per-sub-batch Python)."""
    from ..kernels.sbpca import float_batch

    as_np = lambda t: t.detach().contiguous().numpy()  # noqa: E731 — a view, no copy, for contiguous CPU tensors
    X, D, sig = float_batch(as_np(x), as_np(delta), as_np(state.X).copy(), as_np(state.Delta).copy(),
                            as_np(state.sigma).copy(), s, 0.0 if sigma_min is None else float(sigma_min))
    return SBPCAState(torch.from_numpy(X), torch.from_numpy(D), torch.from_numpy(sig), int(x.shape[0]))


def sbpca_update(state: SBPCAState, x: torch.Tensor, delta: torch.Tensor, sub_batch: int,
                 sigma_min: float | None = None, backend: str = "compiled") -> SBPCAState:
    """Consume one batch of the stream (x: B×b, δ: B×a) and return the new state.

    SPEC §2: sub-batches of ``sub_batch`` rows in stream order, the last one of its true
    size m; the carried state counts as one sub-batch (n = s at the start of the batch).
    ``sigma_min`` replaces σ by max(σ, sigma_min) in the divisions only.
    The input state is not modified.

    ``backend="compiled"`` (default): CPU tensors go through the numba kernel of the NumPy
    golden model (same equations; float32 states keep float32 storage with float64 sums);
    tensors on another device (CUDA) always take the torch path below, whose per-sub-batch
    operations stay on that device.  ``backend="torch"`` forces the torch path everywhere.
    """
    s = check_positive_int("sub_batch", sub_batch)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if x.dim() != 2 or delta.dim() != 2:
        raise ValueError(f"x and delta must be 2-D, got shapes {tuple(x.shape)} and {tuple(delta.shape)}")
    b, k = state.X.shape
    a = state.Delta.shape[0]
    if x.shape[1] != b or delta.shape[1] != a:
        raise ValueError(f"stream shapes {tuple(x.shape)}, {tuple(delta.shape)} do not match "
                         f"the state (x: B×{b}, delta: B×{a})")
    if x.shape[0] != delta.shape[0]:
        raise ValueError(f"x and delta have different numbers of samples ({x.shape[0]} vs {delta.shape[0]})")
    if x.shape[0] == 0:
        raise ValueError("empty batch: x and delta have no samples")
    dt = state.X.dtype
    x = x.to(dt)
    delta = delta.to(dt)
    if backend == "compiled" and _kernel_applies(state, x):
        return _kernel_update(state, x, delta, s, sigma_min)
    X, D, sig = state.X, state.Delta, state.sigma
    n = s  # the carried state counts as one sub-batch
    # Per sub-batch, in the fewest tensor ops (each costs microseconds of dispatch):
    #   c = β / max(σ, σ_min)                    (column scale of the power step)
    #   X ← orth(α X + xsᵀ (ds (Δ ⊙ c)))         = orth(α X + xsᵀ(β ds Δ) ⊘ σ)
    #   p = xs X;  Δ ← orth(α Δ + dsᵀ (p ⊙ c))
    #   σ ← α σ + β colsum((ds Δ) ⊙ p)
    for xs, ds in zip(x.split(s), delta.split(s)):
        m = xs.shape[0]
        alpha, beta = n / (n + m), 1.0 / (n + m)
        c = beta / (sig if sigma_min is None else torch.clamp_min(sig, sigma_min))
        X = orth(torch.addmm(X, xs.T, ds @ (D * c), beta=alpha))
        p = xs @ X
        D = orth(torch.addmm(D, ds.T, p * c, beta=alpha))
        sig = torch.add(sig * alpha, torch.linalg.vecdot(ds @ D, p, dim=0), alpha=beta)
        n += m
    return SBPCAState(X, D, sig, int(x.shape[0]))
