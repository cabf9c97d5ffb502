"""Pulse schedules of one rank-1 update: the bit-exact golden model of ``hdl/driver.py``.

A rank-1 update ``W -= g * u v^T`` reaches the driver as integer vectors ``u`` (a
elements) and ``v`` (b elements) in the ``state`` format plus one :class:`UpdateConfig`
(row scale, column scale, burst length BL, negate).  Everything below is integer
arithmetic that the RTL reproduces bit for bit:

* magnitude ``m = |x|`` and polarity ``neg = x < 0`` (rows: ``XOR negate``);
* threshold ``t = min(cap, (m * scale + 2**(sh-1)) >> sh)`` with
  ``sh = state.frac + scale.frac - P`` (stochastic, ``cap = 2**P``) or
  ``sh = state.frac + scale.frac`` (deterministic: rows ``cap = level_max``,
  columns ``cap = BL``);
* **stochastic**: in slot ``t`` lane ``i`` fires iff ``(lfsr_i(t) & (2**P - 1)) < t_i``;
  every lane then leaps one slot (:class:`~pymodel.crossbar.lfsr.LfsrBank`);
* **deterministic**: row ``r`` carries level ``t_r`` (fires in every slot if non-zero),
  column ``c`` fires in slots ``0 .. t_c - 1``;
* a cell sees a coincidence when its row and column both fire; it moves up
  (towards larger weight) when the polarities differ and down when they agree, so
  the expected change has the sign of ``-u_r v_c`` (``+`` with ``negate``).

Update management (:func:`update_config`) turns a real gain into the two scale
registers and chooses BL the way aihwkit does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .lfsr import LfsrBank
from .params import DriverParams


@dataclass(frozen=True)
class UpdateConfig:
    """Per-update configuration word (integers exactly as the RTL's ``cfg`` stream carries them).

    ``bl`` is used as ``min(max(bl, 1), bl_max)`` (see :meth:`effective_bl`).
    """

    row_scale: int
    col_scale: int
    bl: int
    negate: bool = False

    def validate(self, params: DriverParams) -> "UpdateConfig":
        lim = (1 << params.scale_bits) - 1
        for name in ("row_scale", "col_scale"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name} must be an integer, not {type(v).__name__}")
            if not 0 <= v <= lim:
                raise ValueError(f"{name} must be in 0..{lim} ({params.scale_bits} bits), not {v}")
        if isinstance(self.bl, bool) or not isinstance(self.bl, (int, np.integer)):
            raise TypeError(f"bl must be an integer, not {type(self.bl).__name__}")
        if not 0 <= self.bl < (1 << params.bl_bits):
            raise ValueError(f"bl must fit {params.bl_bits} bits (0..{(1 << params.bl_bits) - 1}), not {self.bl}")
        return self

    def effective_bl(self, params: DriverParams) -> int:
        return min(max(int(self.bl), 1), params.bl_max)

    def to_dict(self) -> dict:
        return {"row_scale": int(self.row_scale), "col_scale": int(self.col_scale),
                "bl": int(self.bl), "negate": bool(self.negate)}

    def pack(self, params: DriverParams) -> int:
        """The configuration as one integer in :meth:`DriverParams.cfg_fields` order."""
        return pack_fields(params.cfg_fields(), self.to_dict())


def pack_fields(fields: list[tuple[str, int]], values: dict) -> int:
    """Pack integer field values LSB first (the layout of an Amaranth StructLayout)."""
    word, off = 0, 0
    for name, width in fields:
        v = int(values[name])
        if v < 0 or v >> width:
            raise ValueError(f"field {name}={v} does not fit {width} bits")
        word |= v << off
        off += width
    return word


def unpack_fields(fields: list[tuple[str, int]], word: int) -> dict:
    out, off = {}, 0
    for name, width in fields:
        out[name] = (int(word) >> off) & ((1 << width) - 1)
        off += width
    return out


def _bits_to_int(bits: np.ndarray) -> int:
    """Bool vector -> integer, element i at bit i."""
    return int.from_bytes(np.packbits(np.asarray(bits, dtype=bool), bitorder="little").tobytes(), "little")


def thresholds(mag: np.ndarray, scale: int, shift: int, cap: int) -> tuple[np.ndarray, int]:
    """``min(cap, round_half_up(mag * scale / 2**shift))`` and how many exceeded ``cap``."""
    mag = np.asarray(mag, dtype=np.int64)
    if int(np.max(mag, initial=0)).bit_length() + int(scale).bit_length() <= 62:
        raw = (mag * np.int64(scale) + np.int64(1 << (shift - 1))) >> np.int64(shift)
    else:  # exact on Python ints when the product exceeds int64
        big = [(int(m) * int(scale) + (1 << (shift - 1))) >> shift for m in mag]
        raw = np.array([min(x, cap + 1) for x in big], dtype=np.int64).reshape(mag.shape)
    return np.minimum(raw, cap), int(np.count_nonzero(raw > cap))


@dataclass
class Schedule:
    """Every time slot of one rank-1 update (what the RTL emits), plus its thresholds.

    row_fire (bl, a), col_fire (bl, b): bool pulse bits per slot;
    row_neg (a,), col_neg (b,): polarities (constant over the update);
    row_thr (a,), col_thr (b,): thresholds / levels / counts; row_level: levels (deterministic).
    """

    scheme: str
    bl: int
    row_fire: np.ndarray
    col_fire: np.ndarray
    row_neg: np.ndarray
    col_neg: np.ndarray
    row_thr: np.ndarray
    col_thr: np.ndarray
    clipped: int

    @property
    def row_level(self) -> np.ndarray | None:
        return None if self.scheme == "stochastic" else self.row_thr

    def cell_steps(self) -> np.ndarray:
        """Signed device steps per cell (a x b int64): + = weight up, - = weight down.

        Stochastic: one step per coincidence.  Deterministic: a coincidence with row
        level L is a pulse of |L| unit steps.
        """
        if self.scheme == "stochastic":
            count = self.row_fire.T.astype(np.float64) @ self.col_fire.astype(np.float64)
            count = np.rint(count).astype(np.int64)
        else:
            n = self.col_fire.sum(axis=0).astype(np.int64)
            count = np.outer(self.row_thr.astype(np.int64) * self.row_fire.any(axis=0), n)
        up = self.row_neg[:, None] != self.col_neg[None, :]
        return np.where(up, count, -count)

    def words(self, params: DriverParams) -> list[int]:
        """The packed output word of every slot (``params.word_fields()`` layout)."""
        fields = params.word_fields()
        rn, cn = _bits_to_int(self.row_neg), _bits_to_int(self.col_neg)
        lvl = 0
        if self.scheme == "deterministic":
            w = params.level_mag_bits
            for r, v in enumerate(self.row_thr):
                lvl |= int(v) << (r * w)
        out = []
        for t in range(self.bl):
            vals = {"row_fire": _bits_to_int(self.row_fire[t]), "row_neg": rn,
                    "col_fire": _bits_to_int(self.col_fire[t]), "col_neg": cn,
                    "row_level": lvl, "slot": t, "last": int(t == self.bl - 1)}
            out.append(pack_fields(fields, vals))
        return out

    def stats(self) -> dict:
        return {"bl": self.bl, "row_pulses": int(self.row_fire.sum()),
                "col_pulses": int(self.col_fire.sum()), "clipped": self.clipped}


def _check_vec(name: str, x, n: int, params: DriverParams) -> np.ndarray:
    arr = np.asarray(x)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), not {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers in the state format {params.state}, not {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < params.state.min_int or arr.max() > params.state.max_int):
        raise ValueError(f"{name} has values outside the state format {params.state}")
    return arr


class DriverModel:
    """Stateful golden model of one driver instance: its LFSR lanes persist across updates."""

    def __init__(self, params: DriverParams) -> None:
        if not isinstance(params, DriverParams):
            raise TypeError(f"params must be DriverParams, not {type(params).__name__}")
        self.params = params
        self.lfsr = LfsrBank(params.lfsr, params.seeds)

    def run(self, u_int, v_int, cfg: UpdateConfig) -> Schedule:
        """The schedule of one rank-1 update; advances the LFSRs by BL slots (stochastic)."""
        p = self.params
        u = _check_vec("u", u_int, p.rows, p)
        v = _check_vec("v", v_int, p.cols, p)
        if not isinstance(cfg, UpdateConfig):
            raise TypeError(f"cfg must be an UpdateConfig, not {type(cfg).__name__}")
        cfg.validate(p)
        bl = cfg.effective_bl(p)
        sh = p.threshold_shift
        row_cap = p.row_cap
        col_cap = (1 << p.prob_bits) if p.stochastic else bl
        rt, rclip = thresholds(np.abs(u), cfg.row_scale, sh, row_cap)
        ct, cclip = thresholds(np.abs(v), cfg.col_scale, sh, col_cap)
        row_neg = (u < 0) ^ bool(cfg.negate)
        col_neg = v < 0
        if p.stochastic:
            states = self.lfsr.advance(bl)  # (bl, a + b)
            rnd = (states & np.uint64((1 << p.prob_bits) - 1)).astype(np.int64)
            row_fire = rnd[:, : p.rows] < rt[None, :]
            col_fire = rnd[:, p.rows:] < ct[None, :]
        else:
            row_fire = np.broadcast_to(rt > 0, (bl, p.rows)).copy()
            col_fire = np.arange(bl)[:, None] < ct[None, :]
        return Schedule(p.scheme, bl, row_fire, col_fire, row_neg, col_neg, rt, ct, rclip + cclip)


# ---------------------------------------------------------------------- update management
def choose_bl(k_steps: float, params: DriverParams, bl_max: int | None = None) -> int:
    """Shortest burst that can deliver ``k_steps`` device steps to the largest cell.

    Stochastic (aihwkit ``update_bl_management``): ``BL = ceil(K)`` so that no
    probability exceeds 1; deterministic: ``BL = ceil(max(sqrt(K), K / level_max))``,
    the fewest slots that still allow the balanced split of :func:`real_scales`
    (largest level and largest count both about ``sqrt(K)``).  Clipped to
    ``1 .. bl_max``.  ``K = η · max|u| · max|v| / Δw_min``.
    """
    if not math.isfinite(k_steps) or k_steps < 0:
        raise ValueError(f"k_steps must be a finite non-negative number, not {k_steps!r}")
    hi = params.bl_max if bl_max is None else int(bl_max)
    if not 1 <= hi <= params.bl_max:
        raise ValueError(f"bl_max must be in 1..{params.bl_max}, not {bl_max!r}")
    if params.stochastic:
        need = k_steps
    else:
        need = max(math.sqrt(k_steps), k_steps / params.level_max)
    return int(min(hi, max(1, math.ceil(need - 1e-12))))


def real_scales(k_steps: float, bl: int, params: DriverParams, update_management: bool = True,
                ratio: float = 1.0) -> tuple[float, float]:
    """Real (row, column) scales for vectors normalised to max|u| = max|v| = 1.

    The largest cell must see ``K`` steps on average.  Stochastic: row probability
    ``a·|u|``, column ``b·|v|`` with ``a·b·BL = K``; update management makes ``a = b``
    (both pulse ranges equally used), otherwise ``a/b = ratio`` (= max|u|/max|v| of the
    un-normalised vectors, i.e. one common scale as without management).  Deterministic:
    levels ``a·|u|`` and counts ``b·|v|`` with ``a·b = K``; update management puts
    ``a = clip(max(sqrt K, K/BL), ., level_max)`` so the product's rounding error is
    smallest, otherwise ``a/b = ratio``.
    """
    k = float(k_steps)
    if k <= 0:
        return 0.0, 0.0
    if params.stochastic:
        g = k / bl
        if update_management:
            a = math.sqrt(g)
        else:
            a = math.sqrt(g * ratio)
        return a, g / a
    if update_management:
        a = min(float(params.level_max), max(math.sqrt(k), k / bl))
    else:
        a = math.sqrt(k * ratio)
    return a, k / a


def scale_register(value: float, params: DriverParams, unit: float) -> tuple[int, bool]:
    """Quantise a real scale (per unit of input ``unit``) into the scale format; flag saturation."""
    target = value / unit
    q = int(math.floor(target * (1 << params.scale.frac) + 0.5))
    lim = (1 << params.scale_bits) - 1
    return min(max(q, 0), lim), q > lim


def update_config(u_absmax: float, v_absmax: float, gain: float, dw_min: float, params: DriverParams,
                  bl: int | None = None, update_management: bool = True,
                  ratio: float | None = None) -> tuple[UpdateConfig, dict]:
    """Scale registers and BL for ``W -= gain · u vᵀ`` on a device with step ``dw_min``.

    ``u_absmax``/``v_absmax`` are the real maxima of the driver's *input* vectors
    (e.g. ``max|u_int| / 2**state.frac``).  ``bl=None`` chooses BL with
    :func:`choose_bl`; an integer fixes it.  A negative gain sets ``negate``.
    Without update management both vectors get the same scale per unit of the
    original vectors, whose maxima ratio is ``ratio`` (default ``u_absmax/v_absmax``).
    Returns the config and a dict (K, BL, real scales, saturation) for statistics.
    """
    for name, val in (("u_absmax", u_absmax), ("v_absmax", v_absmax), ("gain", gain)):
        if not math.isfinite(val):
            raise ValueError(f"{name} must be finite, not {val!r}")
    if u_absmax < 0 or v_absmax < 0:
        raise ValueError("u_absmax and v_absmax must be non-negative")
    if not (math.isfinite(dw_min) and dw_min > 0):
        raise ValueError(f"dw_min must be a positive finite number, not {dw_min!r}")
    k = abs(gain) * u_absmax * v_absmax / dw_min
    if bl is None:
        bl_eff = choose_bl(k, params)
    else:
        if isinstance(bl, bool) or not isinstance(bl, (int, np.integer)):
            raise TypeError(f"bl must be an integer or None, not {type(bl).__name__}")
        if not 1 <= bl <= params.bl_max:
            raise ValueError(f"bl must be in 1..{params.bl_max} (the driver's bl_max), not {bl}")
        bl_eff = int(bl)
    if k > 0:
        if ratio is None:
            ratio = u_absmax / v_absmax
        if not (math.isfinite(ratio) and ratio > 0):
            raise ValueError(f"ratio must be a positive finite number, not {ratio!r}")
        a, b = real_scales(k, bl_eff, params, update_management, ratio)
        rs, rsat = scale_register(a, params, u_absmax)
        cs, csat = scale_register(b, params, v_absmax)
    else:
        a = b = 0.0
        rs = cs = 0
        rsat = csat = False
    cfg = UpdateConfig(rs, cs, bl_eff, negate=gain < 0)
    info = {"k_steps": k, "bl": bl_eff, "row_scale": a, "col_scale": b,
            "scale_saturated": int(rsat) + int(csat)}
    return cfg, info


def config_for_vectors(u_int, v_int, gain: float, dw_min: float, params: DriverParams,
                       bl: int | None = None, update_management: bool = True) -> tuple[UpdateConfig, dict]:
    """:func:`update_config` for vectors already in the state format (the engine's Δ_c, X_c).

    This is what firmware does after the driver reports ``u_absmax``/``v_absmax``:
    ``gain = η · B · σ_c`` for the SBPCA update ``W -= η B σ_c Δ_c X_cᵀ``.
    """
    u = _check_vec("u", u_int, params.rows, params)
    v = _check_vec("v", v_int, params.cols, params)
    lsb = params.state.lsb
    return update_config(float(np.abs(u).max()) * lsb, float(np.abs(v).max()) * lsb, gain, dw_min, params,
                         bl=bl, update_management=update_management)


def input_unit(params: DriverParams) -> float:
    """Largest power of two the state format holds: normalised vectors peak there."""
    return 2.0 ** math.floor(math.log2(params.state.max_value))


@dataclass
class Plan:
    """One rank-1 update prepared for the driver: integer vectors, config, update-management info."""

    u_int: np.ndarray
    v_int: np.ndarray
    cfg: UpdateConfig
    info: dict


def plan_update(u, v, lr: float, dw_min: float, params: DriverParams, bl: int | None = None,
                update_management: bool = True) -> Plan:
    """Prepare float vectors for ``W -= lr · u vᵀ``: normalise, quantise to the state format, scale.

    Each vector is scaled so that its largest magnitude is exactly :func:`input_unit`
    in the state format (1.0 for Q2.14); the maxima go into the gain.
    """
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if u.shape != (params.rows,) or v.shape != (params.cols,):
        raise ValueError(f"u, v must have shapes ({params.rows},), ({params.cols},); got {u.shape}, {v.shape}")
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(v))):
        raise ValueError("u and v must be finite (NaN or inf found)")
    if not math.isfinite(lr):
        raise ValueError(f"lr must be finite, not {lr!r}")
    mu = float(np.max(np.abs(u))) if u.size else 0.0
    mv = float(np.max(np.abs(v))) if v.size else 0.0
    fmt = params.state
    unit = input_unit(params)
    if mu > 0 and mv > 0:
        u_int = fmt.quantize(u * (unit / mu), name="u")
        v_int = fmt.quantize(v * (unit / mv), name="v")
        gain = lr * mu * mv
    else:
        u_int = np.zeros(params.rows, np.int64)
        v_int = np.zeros(params.cols, np.int64)
        gain = 0.0
    cfg, info = update_config(unit, unit, gain / (unit * unit), dw_min, params, bl=bl,
                              update_management=update_management,
                              ratio=(mu / mv) if gain else None)
    info.update(u_absmax=mu, v_absmax=mv)
    return Plan(u_int, v_int, cfg, info)
