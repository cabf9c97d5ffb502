"""Per-layer update rules: turn a weight layer's (x, δ) stream into a weight update.

One rule per weight layer, all with the same interface (:class:`LayerRule`), wrapping
the estimators of :mod:`pymodel.baselines` (``mbgd``, ``sbpca``, ``svd``, ``powersgd``)
unchanged.  A rule

* feeds the layer's stream (x: P×(b+1) with the bias ones column, δ: P×a) to its
  estimator, which estimates ``G = Σ_j δ_j x_jᵀ``;
* applies ``W ← W − (lr / N)·Ĝ`` with N the number of *samples* in the batch (not the
  number of pairs P): the streams carry δ of each sample's own loss, so this is plain
  SGD on the batch-mean loss and ``lr`` means what it means in PyTorch;
* or, with a crossbar array model, applies the estimator's rank-1 factors as pulse
  updates and reads the weights back from the array (they change only that way);
* counts the array update operations of the batch and, optionally, measures the
  relative gradient error ``‖G − Ĝ‖/‖G‖``.

Fixed-point SBPCA: the x and δ formats have a fixed range (q16: x ±8, δ ±2), and δ of
a trained network is small, so the rule scales each layer's x and δ by powers of two
(``2^ex``, ``2^ed``; a shift in hardware) before quantisation and divides the estimate
by ``2^(ex+ed)``.  The exponents are chosen once, on the layer's first batch, as the
largest that keep ``max|x|`` at or below half of the x range (the ones column included)
and ``max|δ|`` at or below half of the δ range, and then kept, so that σ carried from
batch to batch stays in one scale.  Saturation beyond that headroom is counted by the
golden model's status flags and reported.  ``fixed_scaling="batch"`` instead re-chooses
the exponents on every batch (block floating point) and shifts the carried σ register by
the change of ``ex + ed``, since σ scales with x·δ while X and Δ are scale-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .baselines import make_estimator
from .fixedpoint import requantize
from .formats import FORMAT_SETS, get_format_set
from .kernels import check_backend
from .nn.layers import WeightLayer
from .sbpca import SBPCA

METHODS = ("mbgd", "sbpca", "svd", "powersgd", "sks", "sks-unbiased")
FIXED_METHODS = ("sbpca", "sks", "sks-unbiased")  # those with a bit-accurate golden model
SCHEMES = ("stochastic", "deterministic")
FIXED_SCALINGS = ("first", "batch")


@dataclass(frozen=True)
class RuleConfig:
    """What update rule every weight layer gets (same for all layers of a run)."""

    method: str = "sbpca"
    rank: int = 4
    sub_batch: int = 16
    fixed: str | None = None  # format-set name (sbpca only); None = float64
    error_feedback: bool = True  # powersgd
    sigma_min: float | None = None  # float sbpca: guard on σ in 1/σ (None = published equations)
    device_model: str | None = None  # crossbar device model name; None = ideal weights
    device_scheme: str = "stochastic"
    device_bl: int | None = None
    device_options: dict = field(default_factory=dict)
    fixed_scaling: str = "first"  # "first": x/δ exponents set on the first batch; "batch": every batch
    block: int = 1  # sks / sks-unbiased: pairs per core SVD (q)
    backend: str = "compiled"  # sbpca, sks: numba kernel ("compiled") or the NumPy reference ("numpy")

    def validate(self) -> "RuleConfig":
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        for name in ("rank", "sub_batch", "block"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if self.fixed is not None:
            if self.method not in FIXED_METHODS:
                raise ValueError(f"fixed-point formats apply to method {', '.join(FIXED_METHODS)} only (the "
                                 f"bit-accurate golden models), not {self.method!r}")
            get_format_set(self.fixed)  # raises with the list of names
        if self.sigma_min is not None and not self.sigma_min > 0:
            raise ValueError(f"sigma_min must be positive, not {self.sigma_min!r}")
        check_backend(self.backend)
        if self.fixed_scaling not in FIXED_SCALINGS:
            raise ValueError(f"unknown fixed_scaling {self.fixed_scaling!r}; choose one of {', '.join(FIXED_SCALINGS)}")
        if self.device_scheme not in SCHEMES:
            raise ValueError(f"unknown device scheme {self.device_scheme!r}; choose one of {', '.join(SCHEMES)}")
        if self.device_bl is not None and (not isinstance(self.device_bl, (int, np.integer)) or self.device_bl < 1):
            raise ValueError(f"device_bl must be a positive integer, not {self.device_bl!r}")
        return self


def pow2_exponent(max_abs: float, limit: float, lo: int = -24, hi: int = 24) -> int:
    """Largest e in [lo, hi] with ``max_abs · 2^e <= limit`` (0 for an all-zero stream)."""
    if not max_abs > 0 or not math.isfinite(max_abs):
        return 0
    return int(np.clip(math.floor(math.log2(limit / max_abs)), lo, hi))


def make_device_array(name: str, shape: tuple[int, int], seed: int, options: dict):
    """Build a crossbar array model (lazy import: the device model is optional)."""
    try:
        from .crossbar.array import make_array
    except ImportError as exc:
        raise ValueError(f"device model {name!r} needs pymodel.crossbar.array, which cannot be imported "
                         f"here ({exc})") from exc
    return make_array(name, shape, seed=seed, **options)


def rank1_updates(method: str, rank: int, pairs: int) -> int:
    """Rank-1 row/column updates one batch costs a layer: k, or one per stream pair for MBGD."""
    return pairs if method == "mbgd" else rank


class LayerRule:
    """The update rule of one weight layer (see the module docstring).

    ``array_factory(shape, seed)`` may replace the device-model lookup (used by tests
    and by callers that build their own arrays); it must return an object with the
    ``weights`` / ``program(W)`` / ``apply_update(factors, lr, scheme=, bl=)`` API.
    """

    def __init__(self, layer: WeightLayer, config: RuleConfig, seed: int = 0,
                 array_factory: Callable[[tuple[int, int], int], Any] | None = None) -> None:
        self.layer = layer
        self.config = config.validate()
        a, b = layer.rows, layer.cols
        self.rank = min(config.rank, a, b)  # a layer narrower than k gets its full rank
        self.method = config.method
        fixed = False if config.fixed is None else config.fixed
        self.fmts = None if config.fixed is None else get_format_set(config.fixed)
        self.estimator = make_estimator(config.method, a, b, rank=self.rank, sub_batch=config.sub_batch,
                                        seed=seed, fixed=fixed, error_feedback=config.error_feedback,
                                        sigma_min=config.sigma_min, block=config.block, backend=config.backend)
        self.x_exp: int | None = None
        self.d_exp: int | None = None
        self.rescales = 0  # times the σ register was shifted because the exponents changed
        self.array = None
        if array_factory is not None or config.device_model is not None:
            if array_factory is None:
                self.array = make_device_array(config.device_model, (a, b), seed, dict(config.device_options))
            else:
                self.array = array_factory((a, b), seed)
            self.array.program(layer.W)
            layer.set_weights(np.asarray(self.array.weights, dtype=np.float64))
        self.device_stats: dict[str, float] = {}

    # -------------------------------------------------------------- fixed-point scaling
    def scale_stream(self, x: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """The stream as the estimator sees it, and the factor that undoes the scaling of Ĝ.

        Idempotent for one batch (calling it again with the same stream changes nothing).
        """
        if self.fmts is None:
            return x, d, 1.0
        if self.x_exp is None or self.config.fixed_scaling == "batch":
            # half of the nominal range 2^(int_bits−1): e.g. |x| <= 4 and |δ| <= 1 for q16
            ex = pow2_exponent(float(np.max(np.abs(x))), 2.0 ** (self.fmts.x.int_bits - 2))
            ed = pow2_exponent(float(np.max(np.abs(d))), 2.0 ** (self.fmts.delta.int_bits - 2))
            if self.x_exp is not None:
                self._rescale_sigma((ex + ed) - (self.x_exp + self.d_exp))
            self.x_exp, self.d_exp = ex, ed
        return np.ldexp(x, self.x_exp), np.ldexp(d, self.d_exp), 2.0 ** -(self.x_exp + self.d_exp)

    def _rescale_sigma(self, shift: int) -> None:
        """σ estimates Δᵀ(δ xᵀ)X, so it scales with 2^(ex+ed): shift the σ register by the change.

        A left shift is exact; a right shift rounds as the σ format says; overflow saturates
        (counted as ``sigma_rescale`` in the status flags).  X and Δ are scale-free.
        """
        if shift == 0 or not isinstance(self.estimator, SBPCA):
            return  # SKS restarts its sketch every batch: no register carries the old scale
        est = self.estimator
        f = self.fmts.sigma
        est.sigma_int = requantize(est.sigma_int, f.frac - shift, f, "sigma_rescale", est.status.saturation)
        self.rescales += 1

    def quantized_stream(self, x: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fixed mode: the integer words the hardware engine would receive for this stream."""
        if self.fmts is None:
            raise TypeError("quantized_stream needs a fixed-point rule (fixed=<format set>)")
        xs, ds, _ = self.scale_stream(x, d)
        return self.fmts.x.quantize(xs, "x"), self.fmts.delta.quantize(ds, "delta")

    # -------------------------------------------------------------- one batch
    def step(self, lr: float, n_samples: int, measure_error: bool = False) -> dict:
        """Consume the layer's current stream and update its weights; returns this batch's counts."""
        layer = self.layer
        x, d = layer.stream_x, layer.stream_delta
        if x is None or d is None:
            raise RuntimeError(f"layer {layer.name}: no stream to consume (run backward first)")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(d))):
            raise FloatingPointError(f"layer {layer.name}: non-finite values in the (x, δ) stream")
        pairs = x.shape[0]
        xs, ds, unscale = self.scale_stream(x, d)
        self.estimator.update(xs, ds)
        scale = lr / n_samples
        out = {"rank1": rank1_updates(self.method, self.rank, pairs), "pairs": pairs}
        if self.method == "mbgd":
            out["dense_writes"] = min(layer.rows, layer.cols)
        G_hat = None
        if self.array is None:
            G_hat = self.estimator.gradient() * unscale
            layer.W -= scale * G_hat
        else:
            factors = [(u * unscale, v) for u, v in self.estimator.factors()]
            info = self.array.apply_update(factors, scale, scheme=self.config.device_scheme,
                                           bl=self.config.device_bl)
            for key, val in (info or {}).items():
                if isinstance(val, (int, float, np.integer, np.floating)) and not isinstance(val, bool):
                    self.device_stats[key] = self.device_stats.get(key, 0) + float(val)
            layer.set_weights(np.asarray(self.array.weights, dtype=np.float64))
        if measure_error:
            G = d.T @ x
            if G_hat is None:
                G_hat = self.estimator.gradient() * unscale
            nG = float(np.linalg.norm(G))
            out["grad_error"] = float(np.linalg.norm(G - G_hat) / nG) if nG > 0 else 0.0
            out["norm_ratio"] = float(np.linalg.norm(G_hat) / nG) if nG > 0 else 1.0
        return out

    # -------------------------------------------------------------- reporting
    def status(self) -> dict:
        """Fixed-point status flags, scaling exponents and device counters of this layer."""
        st: dict = {"rank": self.rank}
        if getattr(self.estimator, "fixed", False) is True:
            st["fixed"] = self.estimator.status.as_dict()
            st["x_exp"], st["delta_exp"] = self.x_exp, self.d_exp
            st["scaling"] = self.config.fixed_scaling
            st["sigma_rescales"] = self.rescales
        if self.array is not None:
            st["device"] = dict(self.device_stats)
        return st


__all__ = ["METHODS", "SCHEMES", "FIXED_SCALINGS", "FORMAT_SETS", "RuleConfig", "LayerRule", "pow2_exponent",
           "rank1_updates", "make_device_array"]
