"""Format tables and wide-arithmetic switches for :func:`pymodel.kernels.sbpca.fixed_batch`.

Kept free of numba imports so that building an estimator does not compile anything; the
kernel is compiled (or loaded from the cache) on the first batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fixedpoint import static_fits
from ..formats import SBPCAFormats
from .fixed_ops import compilable, pack_format

FORMAT_ORDER = ("x", "delta", "state", "proj", "acc", "mat", "inv", "recip", "sigma")
WIDE_LIMIT = 125  # magnitude bits a 128-bit sum may use (rounding adds one more)
SCALAR_LIMIT = 60  # magnitude bits of the int64 operands of the exact divisions


@dataclass(frozen=True)
class KernelTables:
    """What the fixed kernel needs to know about the formats, as arrays numba can take."""

    F: np.ndarray  # (9, 4) bits, frac, rounding code, overflow code, rows in FORMAT_ORDER
    W: np.ndarray  # (11,) True where a step needs the exact 128-bit route
    consts: np.ndarray  # norm_guard, 2^(norm_frac + inv.frac), sigma_min_int
    sub_batch: int
    sigma_bits: int

    def batch_fits(self, batch: int) -> bool:
        """Whether n·σ and the σ numerator stay within int64 for a batch of ``batch`` samples."""
        return (self.sub_batch + batch).bit_length() + self.sigma_bits <= SCALAR_LIMIT


def _bits(bits_a: int, bits_b: int, terms: int = 1) -> int:
    """Magnitude bits of a sum of ``terms`` products of signed ``bits_a``/``bits_b`` integers."""
    return (bits_a - 1) + (bits_b - 1) + max(0, int(terms) - 1).bit_length()


def fixed_tables(f: SBPCAFormats, rows: int, cols: int, sub_batch: int) -> tuple[KernelTables | None, str]:
    """The kernel tables for ``f`` at a×b = rows×cols, or (None, why the kernel cannot be exact)."""
    bad = [name for name in FORMAT_ORDER if not compilable(getattr(f, name))]
    if bad:
        return None, f"formats {', '.join(bad)} use overflow 'error', which only the NumPy reference raises"
    a, b, s = rows, cols, sub_batch
    big = max(a, b)
    wide_sums = {  # name: (bits of the exact value, fits int64 per the reference's rule)
        "q": (_bits(f.delta.bits, f.state.bits, a), static_fits(f.delta.bits, f.state.bits, a)),
        "A": (_bits(f.x.bits, f.proj.bits, s), static_fits(f.x.bits, f.proj.bits, s)),
        "p": (_bits(f.x.bits, f.state.bits, b), static_fits(f.x.bits, f.state.bits, b)),
        "D": (_bits(f.delta.bits, f.proj.bits, s), static_fits(f.delta.bits, f.proj.bits, s)),
        "mu": (_bits(f.acc.bits, f.recip.bits), static_fits(f.acc.bits, f.recip.bits)),
        "n2": (_bits(f.mat.bits, f.mat.bits, big), static_fits(f.mat.bits, f.mat.bits, big)),
        "qinv": (_bits(f.mat.bits, f.inv.bits), static_fits(f.mat.bits, f.inv.bits)),
        "gsdot": (_bits(f.mat.bits, f.state.bits, big), static_fits(f.mat.bits, f.state.bits, big)),
        "gsmul": (_bits(f.state.bits, f.mat.bits), static_fits(f.state.bits, f.mat.bits)),
        "S": (_bits(f.state.bits, f.acc.bits, a), static_fits(f.state.bits, f.acc.bits, a)),
    }
    for name, (nbits, _) in wide_sums.items():
        if nbits > WIDE_LIMIT:
            return None, f"step {name} needs {nbits} bits, beyond the kernel's 128-bit arithmetic"
    n2s_bits = wide_sums["n2"][0] + 2 * f.norm_guard
    if n2s_bits > 120:
        return None, f"‖v‖² << 2·norm_guard needs {n2s_bits} bits (kernel limit 120)"
    if f.norm_frac + f.inv.frac > SCALAR_LIMIT or f.sigma.frac + f.recip.frac > SCALAR_LIMIT:
        return None, "the reciprocal numerators need more than 60 bits"
    if f.state.bits + (f.mat.frac - f.state.frac) > 62:
        return None, "state << (mat.frac − state.frac) does not fit int64"
    F = np.array([pack_format(getattr(f, name)) for name in FORMAT_ORDER], dtype=np.int64)
    W = np.array([not wide_sums[n][1] for n in ("q", "A", "p", "D", "mu", "n2")]
                 + [n2s_bits > 62]
                 + [not wide_sums[n][1] for n in ("qinv", "gsdot", "gsmul", "S")], dtype=np.bool_)
    consts = np.array([f.norm_guard, 1 << (f.norm_frac + f.inv.frac), f.sigma_min_int], dtype=np.int64)
    return KernelTables(F, W, consts, s, f.sigma.bits), ""
