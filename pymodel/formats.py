"""The named format sets of the SBPCA datapath: the single source of truth for widths.

``pymodel.sbpca`` computes with these formats and ``hdl`` sizes every signal from
the same objects, so a changed width changes both at once.  See
``docs/FIXED_POINT.md`` for where each format is used in the algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from .fixedpoint import Fmt, Overflow, Rounding


@dataclass(frozen=True)
class SBPCAFormats:
    """Formats of every quantity of the fixed-point SBPCA datapath.

    x, delta  -- streamed inputs (activations, back-propagated errors)
    state     -- entries of X and Δ (orthonormal columns, so |v| <= 1)
    proj      -- per-sample projections q = Δᵀδ and p = Xᵀx
    acc       -- sub-batch accumulators A = Σ x qᵀ and D = Σ δ pᵀ, after rounding
    mat       -- M = X + A/(nσ) before orthogonalisation, and Gram–Schmidt work values
    inv       -- 1/‖v‖ in Gram–Schmidt normalisation
    recip     -- r = 1/(n σ), the per-column scale of the power-iteration step
    sigma     -- the weights σ
    norm_guard -- extra fraction bits given to the integer square root of ‖v‖²
    sigma_min -- guard: σ below this is replaced by it in 1/(nσ) and a flag is raised
    """

    name: str
    x: Fmt
    delta: Fmt
    state: Fmt
    proj: Fmt
    acc: Fmt
    mat: Fmt
    inv: Fmt
    recip: Fmt
    sigma: Fmt
    norm_guard: int = 6
    sigma_min: float = 2.0 ** -10

    def __post_init__(self) -> None:
        if self.mat.frac < self.state.frac:
            raise ValueError(
                f"format set {self.name!r}: mat.frac ({self.mat.frac}) must be >= state.frac "
                f"({self.state.frac}) so X and Δ embed exactly in M"
            )
        if not 0 <= self.norm_guard <= 16:
            raise ValueError(f"norm_guard must be in 0..16, not {self.norm_guard!r}")
        if not self.sigma_min > 0:
            raise ValueError(f"sigma_min must be positive, not {self.sigma_min!r}")
        if self.sigma_min_int < 1:
            raise ValueError(
                f"sigma_min={self.sigma_min} is below one LSB of sigma format {self.sigma}"
            )

    @property
    def sigma_min_int(self) -> int:
        return int(round(self.sigma_min * 2 ** self.sigma.frac))

    @property
    def norm_frac(self) -> int:
        """Fraction bits of ‖v‖ as the integer square root returns it."""
        return self.mat.frac + self.norm_guard

    def items(self) -> list[tuple[str, Fmt]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self) if isinstance(getattr(self, f.name), Fmt)]

    def to_dict(self) -> dict:
        d: dict = {"name": self.name}
        for key, fmt in self.items():
            d[key] = fmt.to_dict()
        d["norm_guard"] = self.norm_guard
        d["sigma_min"] = self.sigma_min
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SBPCAFormats":
        kw = {k: Fmt.from_dict(v) for k, v in d.items() if isinstance(v, dict)}
        return cls(name=d["name"], norm_guard=int(d["norm_guard"]), sigma_min=float(d["sigma_min"]), **kw)

    def with_data_bits(self, bits: int, name: str | None = None) -> "SBPCAFormats":
        """This set with inputs and state narrowed/widened to ``bits`` (integer bits kept)."""
        def scale(f: Fmt) -> Fmt:
            return replace(f, bits=bits, frac=f.frac + (bits - f.bits))
        return replace(self, name=name or f"{self.name}-d{bits}", x=scale(self.x),
                       delta=scale(self.delta), state=scale(self.state))


def _set(name: str, d: int, rounding: Rounding = Rounding.HALF_EVEN) -> SBPCAFormats:
    """A set whose inputs and state are ``d`` bits wide; wider internals scale with ``d``."""
    sat = Overflow.SATURATE
    return SBPCAFormats(
        name=name,
        x=Fmt(d, d - 4, rounding, sat),  # range ±8
        delta=Fmt(d, d - 2, rounding, sat),  # range ±2
        state=Fmt(d, d - 2, rounding, sat),  # range ±2 (|entries| <= 1)
        proj=Fmt(d + 8, d, rounding, sat),  # range ±128
        acc=Fmt(d + 24, d + 8, rounding, sat),  # range ±32768
        mat=Fmt(d + 8, d + 2, rounding, sat),  # range ±32
        inv=Fmt(32, 24, rounding, sat),  # 1/‖v‖ up to 128
        recip=Fmt(32, 24, rounding, sat),  # 1/(nσ) up to 128
        sigma=Fmt(32, 20, rounding, sat),  # range ±2048, LSB ~1e-6
    )


FORMAT_SETS: dict[str, SBPCAFormats] = {
    "q16": _set("q16", 16),
    "q12": _set("q12", 12),
    "q8": _set("q8", 8),
    "q24": _set("q24", 24),
}
DEFAULT_FORMAT_SET = "q16"


def get_format_set(spec: "str | SBPCAFormats | bool") -> SBPCAFormats:
    """Resolve a format-set name (or ``True`` for the default, or a set itself)."""
    if isinstance(spec, SBPCAFormats):
        return spec
    if spec is True:
        return FORMAT_SETS[DEFAULT_FORMAT_SET]
    if isinstance(spec, str) and spec in FORMAT_SETS:
        return FORMAT_SETS[spec]
    raise ValueError(f"unknown format set {spec!r}; choose one of {sorted(FORMAT_SETS)}")


# ------------------------------------------------------------------ streaming Kronecker sum
@dataclass(frozen=True)
class SKSFormats:
    """Formats of the fixed-point streaming Kronecker-sum datapath (``pymodel.sks_fixed``).

    x, delta  -- streamed inputs (same ranges as SBPCA's, so the same power-of-two scaling applies)
    basis     -- entries of U, V and of the new Gram–Schmidt columns (orthonormal, |v| <= 1)
    coef      -- Gram–Schmidt coefficients h = Wᵀw and residual norms (|h| <= |δ| or |x|)
    resid     -- the residual vector w during Gram–Schmidt
    core      -- entries of the (r+q)×(r+q) core K, of the Jacobi work matrix A = UΣ, and S
    rot       -- Jacobi t, c, s, the accumulated right vectors, the left vectors A/σ, the
                 unbiased reduction's w, v and M (all |.| <= 1)
    norm_guard -- extra fraction bits given to the square roots
    recip_bits -- mantissa bits of the reciprocals 1/‖w‖ and 1/σ (normalised: a leading-zero count
                 sets the exponent, so they have no range limit and never saturate)
    drop_bits -- a new direction (or singular value) below 2^-drop_bits of its reference is dropped
    jacobi_sweeps -- the most cyclic Jacobi sweeps per core (a sweep without rotation ends early)
    jacobi_bits -- the core is shifted right (block floating point) until max|K| < 2^jacobi_bits
                 before the rotations, so every Jacobi product fits 63 bits for n <= 64
    jacobi_tol_bits -- a column pair counts as orthogonal when |γ| <= 2^-tol √(αβ)
    """

    name: str
    x: Fmt
    delta: Fmt
    basis: Fmt
    coef: Fmt
    resid: Fmt
    core: Fmt
    rot: Fmt
    norm_guard: int = 4
    recip_bits: int = 29
    drop_bits: int = 12
    jacobi_sweeps: int = 10
    jacobi_bits: int = 24
    jacobi_tol_bits: int = 16

    def __post_init__(self) -> None:
        if not 0 <= self.norm_guard <= 16:
            raise ValueError(f"norm_guard must be in 0..16, not {self.norm_guard!r}")
        if not 8 <= self.recip_bits <= 30:
            raise ValueError(f"recip_bits must be in 8..30, not {self.recip_bits!r}")
        if not 1 <= self.drop_bits <= 40:
            raise ValueError(f"drop_bits must be in 1..40, not {self.drop_bits!r}")
        if not 1 <= self.jacobi_sweeps <= 64:
            raise ValueError(f"jacobi_sweeps must be in 1..64, not {self.jacobi_sweeps!r}")
        if not 8 <= self.jacobi_bits <= 24:
            raise ValueError(f"jacobi_bits must be in 8..24, not {self.jacobi_bits!r}")
        if not 2 <= self.jacobi_tol_bits <= 26:
            raise ValueError(f"jacobi_tol_bits must be in 2..26, not {self.jacobi_tol_bits!r}")
        if self.resid.frac < max(self.x.frac, self.delta.frac):
            raise ValueError(f"format set {self.name!r}: resid.frac must be >= the input fractions "
                             f"so x and δ embed exactly")

    def items(self) -> list[tuple[str, Fmt]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self) if isinstance(getattr(self, f.name), Fmt)]

    def to_dict(self) -> dict:
        d: dict = {"name": self.name}
        for key, fmt in self.items():
            d[key] = fmt.to_dict()
        d.update(norm_guard=self.norm_guard, recip_bits=self.recip_bits, drop_bits=self.drop_bits, jacobi_sweeps=self.jacobi_sweeps,
                 jacobi_bits=self.jacobi_bits, jacobi_tol_bits=self.jacobi_tol_bits)
        return d


def _sks_set(name: str, d: int, rounding: Rounding = Rounding.HALF_EVEN) -> SKSFormats:
    """An SKS set whose inputs and bases are ``d`` bits wide (inputs as SBPCA's set of that width)."""
    sat = Overflow.SATURATE
    return SKSFormats(
        name=name,
        x=Fmt(d, d - 4, rounding, sat),  # range ±8
        delta=Fmt(d, d - 2, rounding, sat),  # range ±2
        basis=Fmt(d, d - 2, rounding, sat),  # range ±2 (|entries| <= 1)
        coef=Fmt(d + 8, d, rounding, sat),  # range ±128
        resid=Fmt(d + 8, d, rounding, sat),  # range ±128
        core=Fmt(d + 24, d, rounding, sat),  # range ±2^23: S sums a whole batch of pairs
        rot=Fmt(d + 8, d + 6, rounding, sat),  # range ±2
        drop_bits=max(4, d - 4),
        jacobi_tol_bits=min(d, 16),
    )


SKS_FORMAT_SETS: dict[str, SKSFormats] = {
    "q16": _sks_set("q16", 16),
    "q12": _sks_set("q12", 12),
    "q8": _sks_set("q8", 8),
    "q24": _sks_set("q24", 24),
}


def get_sks_format_set(spec: "str | SKSFormats | bool") -> SKSFormats:
    """Resolve an SKS format-set name (``True``: the default, q16), or a set itself."""
    if isinstance(spec, SKSFormats):
        return spec
    if spec is True:
        return SKS_FORMAT_SETS[DEFAULT_FORMAT_SET]
    if isinstance(spec, str) and spec in SKS_FORMAT_SETS:
        return SKS_FORMAT_SETS[spec]
    raise ValueError(f"unknown format set {spec!r}; choose one of {sorted(SKS_FORMAT_SETS)}")
