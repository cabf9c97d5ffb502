"""Fibonacci LFSRs with leap-ahead stepping: the random bits of the stochastic pulse scheme.

Convention (the RTL in ``hdl/lfsr.py`` implements exactly this):

* A ``width``-bit state ``s`` (bit 0 = LSB), never zero.  One *step* is
  ``s <- ((s << 1) | fb) & (2**width - 1)`` with ``fb = parity(s & tapmask)``, where
  ``tapmask`` has bit ``t - 1`` set for every tap ``t`` (taps are 1-indexed as in
  Xilinx XAPP052, the highest tap equals ``width``).
* Per time slot a lane advances by ``leap`` steps at once (an XOR network, the
  matrix ``M**leap`` over GF(2)).  With ``leap >= width`` successive slots see
  non-overlapping ``width``-bit chunks of the m-sequence instead of a shifted copy
  of the previous value.  The leap must be coprime to the period ``2**width - 1`` so
  a lane still visits every non-zero state; the default is the smallest such
  ``leap >= width`` (e.g. 16 for widths 12 and 16).

Each lane (every row and every column driver) has its own register seeded with a
distinct non-zero value; lanes are phases of the same m-sequence.  The step is
linear over GF(2), so the golden model applies ``M**(leap*t)`` to all lanes and all
slots of an update in one vectorised pass (:meth:`LfsrBank.advance`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Maximal-length taps (XAPP052 table, 1-indexed); every entry is checked by
# ``is_maximal`` in the tests.
MAXIMAL_TAPS: dict[int, tuple[int, ...]] = {
    3: (3, 2),
    4: (4, 3),
    5: (5, 3),
    6: (6, 5),
    7: (7, 6),
    8: (8, 6, 5, 4),
    9: (9, 5),
    10: (10, 7),
    11: (11, 9),
    12: (12, 6, 4, 1),
    13: (13, 4, 3, 1),
    14: (14, 5, 3, 1),
    15: (15, 14),
    16: (16, 15, 13, 4),
    17: (17, 14),
    18: (18, 11),
    19: (19, 6, 2, 1),
    20: (20, 17),
    21: (21, 19),
    22: (22, 21),
    23: (23, 18),
    24: (24, 23, 22, 17),
    25: (25, 22),
    26: (26, 6, 2, 1),
    27: (27, 5, 2, 1),
    28: (28, 25),
    29: (29, 27),
    30: (30, 6, 4, 1),
    31: (31, 28),
    32: (32, 22, 2, 1),
}

# A GF(2) matrix of size w is a tuple of w column masks: column i is the image of 1 << i.
Gf2Matrix = tuple[int, ...]


def _parity(v: int) -> int:
    return bin(v).count("1") & 1


def _mat_vec(m: Gf2Matrix, v: int) -> int:
    out = 0
    i = 0
    while v:
        if v & 1:
            out ^= m[i]
        v >>= 1
        i += 1
    return out


def _mat_mul(a: Gf2Matrix, b: Gf2Matrix) -> Gf2Matrix:
    """``a @ b`` over GF(2)."""
    return tuple(_mat_vec(a, col) for col in b)


def _identity(width: int) -> Gf2Matrix:
    return tuple(1 << i for i in range(width))


def _mat_pow(m: Gf2Matrix, e: int) -> Gf2Matrix:
    result = _identity(len(m))
    base = m
    while e:
        if e & 1:
            result = _mat_mul(base, result)
        base = _mat_mul(base, base)
        e >>= 1
    return result


def _prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        if n % p == 0:
            out.append(p)
            while n % p == 0:
                n //= p
        p += 1 if p == 2 else 2
    if n > 1:
        out.append(n)
    return out


def check_taps(width: int, taps) -> tuple[int, ...]:
    """Validate a tap tuple (1-indexed, distinct, highest = ``width``); return it sorted descending."""
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or not 2 <= width <= 63:
        raise ValueError(f"LFSR width must be an integer in 2..63, not {width!r}")
    try:
        t = tuple(int(x) for x in taps)
    except TypeError as exc:
        raise TypeError(f"LFSR taps must be a sequence of integers, not {taps!r}") from exc
    if len(t) < 2 or len(set(t)) != len(t):
        raise ValueError(f"LFSR taps must be at least two distinct positions, not {taps!r}")
    if max(t) != width or min(t) < 1:
        raise ValueError(f"LFSR taps must lie in 1..{width} and include {width}, not {taps!r}")
    return tuple(sorted(t, reverse=True))


@dataclass(frozen=True)
class LfsrSpec:
    """One LFSR family: ``width`` bits, feedback ``taps``, ``leap`` steps per time slot."""

    width: int = 16
    taps: tuple[int, ...] | None = None
    leap: int | None = None

    def __post_init__(self) -> None:
        w = self.width
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)):
            raise TypeError(f"LFSR width must be an integer, not {type(w).__name__}")
        if self.taps is None:
            if w not in MAXIMAL_TAPS:
                raise ValueError(
                    f"no built-in maximal taps for LFSR width {w}; give taps explicitly "
                    f"or pick a width in {min(MAXIMAL_TAPS)}..{max(MAXIMAL_TAPS)}"
                )
            object.__setattr__(self, "taps", MAXIMAL_TAPS[w])
        taps = check_taps(w, self.taps)
        if not is_maximal(w, taps):
            raise ValueError(f"LFSR taps {taps} do not give a maximal-length sequence for width {w}")
        object.__setattr__(self, "taps", taps)
        period = (1 << w) - 1
        leap = self.leap
        if leap is None:  # smallest leap >= width that keeps the full period per lane
            leap = w
            while math.gcd(leap, period) != 1:
                leap += 1
        if isinstance(leap, bool) or not isinstance(leap, (int, np.integer)) or not 1 <= leap <= 4 * w:
            raise ValueError(f"LFSR leap must be an integer in 1..{4 * w}, not {self.leap!r}")
        if math.gcd(int(leap), period) != 1:
            raise ValueError(
                f"LFSR leap {leap} shares a factor with the period {period}: a lane would repeat "
                f"after {period // math.gcd(int(leap), period)} slots; pick a leap coprime to it"
            )
        object.__setattr__(self, "leap", int(leap))
        object.__setattr__(self, "width", int(w))

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1

    @property
    def tapmask(self) -> int:
        return sum(1 << (t - 1) for t in self.taps)

    @property
    def period(self) -> int:
        return (1 << self.width) - 1

    def step(self, state: int) -> int:
        """One shift of the register (the reference definition)."""
        fb = _parity(state & self.tapmask)
        return ((state << 1) | fb) & self.mask

    def step_matrix(self) -> Gf2Matrix:
        return _step_matrix(self.width, self.taps)

    def leap_matrix(self) -> Gf2Matrix:
        """``M**leap``: the map one time slot applies (the RTL's XOR network)."""
        return _mat_pow(self.step_matrix(), self.leap)

    def leap_sources(self) -> list[list[int]]:
        """For each output bit j of one slot's leap, the state bits whose XOR gives it."""
        cols = self.leap_matrix()
        return [[i for i in range(self.width) if (cols[i] >> j) & 1] for j in range(self.width)]

    def slot_powers(self, slots: int) -> np.ndarray:
        """Column masks of ``M**(leap*t)`` for ``t = 0 .. slots-1``, shape ``(slots, width)``."""
        return _slot_powers(self.width, self.taps, self.leap, int(slots))

    def to_dict(self) -> dict:
        return {"width": self.width, "taps": list(self.taps), "leap": self.leap}


@lru_cache(maxsize=None)
def _step_matrix(width: int, taps: tuple[int, ...]) -> Gf2Matrix:
    tapmask = sum(1 << (t - 1) for t in taps)
    mask = (1 << width) - 1
    return tuple((((1 << i) << 1) & mask) | _parity((1 << i) & tapmask) for i in range(width))


@lru_cache(maxsize=None)
def is_maximal(width: int, taps: tuple[int, ...]) -> bool:
    """True when the step matrix has order exactly ``2**width - 1`` (a primitive polynomial)."""
    m = _step_matrix(width, tuple(taps))
    n = (1 << width) - 1
    ident = _identity(width)
    if _mat_pow(m, n) != ident:
        return False
    return all(_mat_pow(m, n // p) != ident for p in _prime_factors(n))


@lru_cache(maxsize=64)
def _slot_powers(width: int, taps: tuple[int, ...], leap: int, slots: int) -> np.ndarray:
    leap_m = _mat_pow(_step_matrix(width, taps), leap)
    out = np.zeros((max(slots, 0), width), dtype=np.uint64)
    cur = _identity(width)
    for t in range(slots):
        out[t] = cur
        cur = _mat_mul(leap_m, cur)
    out.setflags(write=False)
    return out


def lane_seeds(width: int, lanes: int, seed: int) -> tuple[int, ...]:
    """``lanes`` distinct non-zero ``width``-bit seeds drawn deterministically from ``seed``."""
    if isinstance(lanes, bool) or not isinstance(lanes, (int, np.integer)) or lanes < 1:
        raise ValueError(f"lanes must be a positive integer, not {lanes!r}")
    period = (1 << width) - 1
    if lanes > period:
        raise ValueError(f"{lanes} lanes need distinct seeds but a {width}-bit LFSR has only {period}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, width, lanes])
    chosen: list[int] = []
    seen: set[int] = set()
    while len(chosen) < lanes:
        for v in rng.integers(1, period + 1, size=lanes, dtype=np.int64):
            v = int(v)
            if v not in seen:
                seen.add(v)
                chosen.append(v)
                if len(chosen) == lanes:
                    break
    return tuple(chosen)


class LfsrBank:
    """``n`` LFSR lanes stepped together, one leap per time slot (the golden twin of the RTL bank)."""

    def __init__(self, spec: LfsrSpec, seeds) -> None:
        if not isinstance(spec, LfsrSpec):
            raise TypeError(f"spec must be an LfsrSpec, not {type(spec).__name__}")
        s = np.asarray(seeds, dtype=np.int64).ravel()
        if s.size == 0:
            raise ValueError("an LFSR bank needs at least one seed")
        if np.any(s <= 0) or np.any(s > spec.mask):
            raise ValueError(f"LFSR seeds must be in 1..{spec.mask} (non-zero {spec.width}-bit values)")
        self.spec = spec
        self.state = s.astype(np.uint64)

    @property
    def lanes(self) -> int:
        return int(self.state.size)

    def advance(self, slots: int) -> np.ndarray:
        """States seen in the next ``slots`` time slots, shape ``(slots, lanes)``; then step past them.

        Slot ``t`` uses ``M**(leap*t) s`` where ``s`` is the current state; afterwards the
        state is ``M**(leap*slots) s``.
        """
        if slots < 0:
            raise ValueError(f"slots must be >= 0, not {slots}")
        pw = self.spec.slot_powers(slots + 1)  # (slots+1, W)
        out = np.zeros((slots + 1, self.lanes), dtype=np.uint64)
        one = np.uint64(1)
        for i in range(self.spec.width):
            bit = (self.state >> np.uint64(i)) & one  # (lanes,)
            out ^= pw[:, i][:, None] * bit[None, :]
        self.state = out[slots].copy()
        return out[:slots]
