"""Crossbar array model: weights as device states that change only through pulses.

A :class:`CrossbarArray` stands for one layer's a x b array of resistive devices
plus its row/column drivers.  :meth:`CrossbarArray.apply_update` takes the k factor
pairs of a rank-k update and applies them as k sequential rank-1 pulse updates:
update management and BL choice (:func:`~pymodel.crossbar.pulses.plan_update`),
the bit-exact driver schedule (:class:`~pymodel.crossbar.pulses.DriverModel`, the
same model the RTL is checked against), then the device response.

Within one rank-1 update every pulse a cell receives has the same direction (the
sign of ``-u_r v_c``), so the device sees ``n_rc`` equal-direction pulses whose slot
order does not matter; :meth:`DeviceModel.apply_pulses` applies them exactly
(closed forms where they exist, one pulse at a time otherwise).

Device response per pulse (aihwkit conventions), for a device with up/down steps
``dw_up``, ``dw_down`` and bounds ``lo < 0 < hi``:

* constant step: ``w += dw_up`` / ``w -= dw_down``, then clipped to ``[lo, hi]``;
* soft bounds: ``w += dw_up (1 - w/hi)`` / ``w -= dw_down (1 - w/lo)``;
* cycle-to-cycle variation multiplies each step by ``1 + c2c·ξ`` (ξ ~ N(0, 1));
* device-to-device variation draws ``dw`` (``d2d``), the up/down asymmetry
  (``asymmetry_d2d``) and the bounds (``bound_d2d``) once per device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Callable

import numpy as np

from ..formats import get_format_set
from .lfsr import LfsrSpec
from .params import SCHEMES, DriverParams
from .pulses import DriverModel, plan_update


@dataclass(frozen=True)
class DeviceConfig:
    """Nominal device parameters and their variations (all relative σ, dimensionless).

    dw_min        -- nominal step Δw_min (weight units)
    w_min, w_max  -- nominal bounds (w_min < 0 < w_max)
    soft          -- soft bounds (step shrinks linearly towards the bound it moves to)
    asymmetry     -- γ: up step dw(1+γ), down step dw(1-γ)
    asymmetry_d2d -- σ of γ across devices
    d2d           -- σ of the per-device step scale (1 + d2d·N, floored at 0.05)
    c2c           -- σ of the per-pulse step multiplier
    bound_d2d     -- σ of the per-device bounds (each scaled by 1 + bound_d2d·N, floored at 0.1)
    """

    dw_min: float = 0.001
    w_min: float = -1.0
    w_max: float = 1.0
    soft: bool = False
    asymmetry: float = 0.0
    asymmetry_d2d: float = 0.0
    d2d: float = 0.0
    c2c: float = 0.0
    bound_d2d: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "soft":
                if not isinstance(v, (bool, np.bool_)):
                    raise TypeError(f"soft must be a bool, not {type(v).__name__}")
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"{f.name} must be a number, not {type(v).__name__}")
            if not math.isfinite(v):
                raise ValueError(f"{f.name} must be finite, not {v!r}")
        if not self.dw_min > 0:
            raise ValueError(f"dw_min must be positive, not {self.dw_min!r}")
        if not self.w_min < 0 < self.w_max:
            raise ValueError(f"bounds must satisfy w_min < 0 < w_max, not ({self.w_min}, {self.w_max})")
        if not -1 < self.asymmetry < 1:
            raise ValueError(f"asymmetry must be in (-1, 1), not {self.asymmetry!r}")
        for name in ("asymmetry_d2d", "d2d", "c2c", "bound_d2d"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)!r}")
        if self.dw_min * (1 + abs(self.asymmetry)) >= min(-self.w_min, self.w_max):
            raise ValueError(f"dw_min={self.dw_min} is not smaller than the bound range")

    @property
    def on_grid(self) -> bool:
        """States are exact multiples of dw_min (constant symmetric step, no variation)."""
        return (not self.soft and self.asymmetry == 0 and self.asymmetry_d2d == 0
                and self.d2d == 0 and self.c2c == 0)


class DeviceModel:
    """A device type: its configuration and, once bound to a shape, per-device parameters."""

    name = "custom"
    defaults: dict = {}

    def __init__(self, **options) -> None:
        allowed = {f.name for f in fields(DeviceConfig)}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise TypeError(f"unknown device option(s) {unknown} for {self.name!r}; known: {sorted(allowed)}")
        self.config = DeviceConfig(**{**self.defaults, **options})
        self.dw_up: np.ndarray | None = None
        self.dw_down: np.ndarray | None = None
        self.lo: np.ndarray | None = None
        self.hi: np.ndarray | None = None

    def bind(self, shape: tuple[int, int], rng: np.random.Generator) -> "DeviceModel":
        """Draw the per-device parameters (device-to-device variation) for an array of ``shape``."""
        c = self.config
        scale = np.ones(shape)
        if c.d2d:
            scale = np.maximum(1.0 + c.d2d * rng.standard_normal(shape), 0.05)
        gamma = np.full(shape, float(c.asymmetry))
        if c.asymmetry_d2d:
            gamma = np.clip(gamma + c.asymmetry_d2d * rng.standard_normal(shape), -0.95, 0.95)
        self.dw_up = c.dw_min * scale * (1.0 + gamma)
        self.dw_down = c.dw_min * scale * (1.0 - gamma)
        self.lo = np.full(shape, float(c.w_min))
        self.hi = np.full(shape, float(c.w_max))
        if c.bound_d2d:
            self.lo = c.w_min * np.maximum(1.0 + c.bound_d2d * rng.standard_normal(shape), 0.1)
            self.hi = c.w_max * np.maximum(1.0 + c.bound_d2d * rng.standard_normal(shape), 0.1)
        if c.soft:  # a soft-bounded step must stay below the bound distance it scales with
            self.dw_up = np.minimum(self.dw_up, 0.5 * self.hi)
            self.dw_down = np.minimum(self.dw_down, 0.5 * -self.lo)
        return self

    def _check_bound(self) -> None:
        if self.dw_up is None:
            raise RuntimeError(f"device model {self.name!r} is not bound to an array shape (call bind)")

    def nearest_state(self, w: np.ndarray) -> np.ndarray:
        """Closest reachable state: clipped to the device bounds, on the dw grid when there is one."""
        self._check_bound()
        w = np.clip(w, self.lo, self.hi)
        if self.config.on_grid:
            dw = self.config.dw_min
            w = np.clip(np.rint(w / dw) * dw, self.lo, self.hi)
        return w

    def apply_pulses(self, w: np.ndarray, steps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Apply ``|steps|`` pulses per cell in the direction ``sign(steps)`` (+ = up); return new w."""
        self._check_bound()
        c = self.config
        steps = np.asarray(steps, dtype=np.int64)
        n = np.abs(steps).astype(np.float64)
        up = steps > 0
        dw = np.where(up, self.dw_up, self.dw_down)
        if not c.soft:
            if c.c2c:
                # the sum of n i.i.d. N(1, c2c²) step multipliers is N(n, n·c2c²)
                total = n + c.c2c * np.sqrt(n) * rng.standard_normal(w.shape)
            else:
                total = n
            w = w + np.where(up, 1.0, -1.0) * dw * total
            return np.clip(w, self.lo, self.hi)
        if not c.c2c:
            # (hi - w) shrinks by (1 - dw_up/hi) per up pulse; (w - lo) by (1 - dw_down/|lo|) per down pulse
            w_up = self.hi - (self.hi - w) * (1.0 - self.dw_up / self.hi) ** n
            w_dn = self.lo + (w - self.lo) * (1.0 - self.dw_down / -self.lo) ** n
            w = np.where(up, w_up, np.where(steps < 0, w_dn, w))
            return np.clip(w, self.lo, self.hi)
        w = w.copy()
        nmax = int(n.max(initial=0))
        for j in range(nmax):
            idx = np.nonzero(n > j)
            f = 1.0 + c.c2c * rng.standard_normal(idx[0].size)
            wi = w[idx]
            u = up[idx]
            delta = np.where(u, self.dw_up[idx] * (1.0 - wi / self.hi[idx]),
                             -self.dw_down[idx] * (1.0 - wi / self.lo[idx]))
            w[idx] = np.clip(wi + f * delta, self.lo[idx], self.hi[idx])
        return w


class IdealDevice(DeviceModel):
    """Constant symmetric step, hard bounds, no variation."""

    name = "ideal"
    defaults: dict = {}


class SoftBoundsDevice(DeviceModel):
    """Soft bounds: the step shrinks linearly towards the bound it moves to."""

    name = "softbounds"
    defaults = {"soft": True}


class AsymmetricDevice(DeviceModel):
    """Constant step with up/down asymmetry (γ = 0.1 ± 0.05 across devices)."""

    name = "asymmetric"
    defaults = {"asymmetry": 0.1, "asymmetry_d2d": 0.05}


class VariableDevice(DeviceModel):
    """Constant step with device-to-device (30 %) and cycle-to-cycle (30 %) step variation."""

    name = "variable"
    defaults = {"d2d": 0.3, "c2c": 0.3, "bound_d2d": 0.1}


class RealisticDevice(DeviceModel):
    """Soft bounds, asymmetry and all variations together."""

    name = "realistic"
    defaults = {"soft": True, "asymmetry": 0.05, "asymmetry_d2d": 0.05, "d2d": 0.3,
                "c2c": 0.3, "bound_d2d": 0.1}


DEVICE_MODELS: dict[str, Callable[..., DeviceModel]] = {
    cls.name: cls for cls in (IdealDevice, SoftBoundsDevice, AsymmetricDevice, VariableDevice, RealisticDevice)
}

_ARRAY_OPTIONS = ("bl_max", "update_management", "formats", "prob_bits", "lfsr_width", "level_bits")


class CrossbarArray:
    """One a x b array of devices with its row/column drivers (see the module docstring)."""

    def __init__(self, device: DeviceModel, shape: tuple[int, int], seed: int = 0, *, bl_max: int = 31,
                 update_management: bool = True, formats: str = "q16", prob_bits: int = 12,
                 lfsr_width: int = 16, level_bits: int = 4) -> None:
        if not isinstance(device, DeviceModel):
            raise TypeError(f"device must be a DeviceModel, not {type(device).__name__}")
        if (not isinstance(shape, (tuple, list)) or len(shape) != 2
                or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shape)):
            raise ValueError(f"shape must be a pair of positive integers (rows, cols), not {shape!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
        self.shape = (int(shape[0]), int(shape[1]))
        self.seed = int(seed)
        self.update_management = bool(update_management)
        dev_rng, self._rng, drv_seed = np.random.default_rng([self.seed, 0xCB]).spawn(2) + [self.seed]
        self.device = device.bind(self.shape, dev_rng)
        self.params = DriverParams(
            rows=self.shape[0], cols=self.shape[1], scheme="stochastic", bl_max=bl_max,
            state=get_format_set(formats).state, prob_bits=prob_bits, lfsr=LfsrSpec(lfsr_width),
            seed=drv_seed, level_bits=level_bits,
        )
        self._drivers: dict[str, DriverModel] = {}
        self._w = self.device.nearest_state(np.zeros(self.shape))
        self.totals = {"updates": 0, "slots": 0, "row_pulses": 0, "col_pulses": 0, "coincidences": 0,
                       "device_steps": 0}

    # ------------------------------------------------------------------ state
    @property
    def weights(self) -> np.ndarray:
        """Current weights (a read-only copy)."""
        w = self._w.copy()
        w.setflags(write=False)
        return w

    @property
    def dw_min(self) -> float:
        """Nominal device step Δw_min (used for BL choice and scaling)."""
        return self.device.config.dw_min

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.device.lo.copy(), self.device.hi.copy()

    def program(self, W) -> None:
        """Set the weights directly (initialisation) to the nearest reachable device states."""
        W = np.asarray(W, dtype=np.float64)
        if W.shape != self.shape:
            raise ValueError(f"W has shape {W.shape}, expected {self.shape}")
        if not np.all(np.isfinite(W)):
            raise ValueError("W contains NaN or infinite values")
        self._w = self.device.nearest_state(W)

    def driver(self, scheme: str) -> DriverModel:
        """The stateful driver model of ``scheme`` (its LFSRs persist across updates)."""
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, not {scheme!r}")
        if scheme not in self._drivers:
            self._drivers[scheme] = DriverModel(replace(self.params, scheme=scheme))
        return self._drivers[scheme]

    # ------------------------------------------------------------------ updates
    def apply_update(self, factors, lr: float, scheme: str = "stochastic", bl: int | None = None) -> dict:
        """Apply ``W -= lr · Σ_c u_c v_cᵀ`` as k sequential rank-1 pulse updates.

        ``factors``: list of (u (a,), v (b,)) float pairs.  ``bl=None`` lets BL
        management choose each burst (≤ bl_max); an integer fixes it.  Returns
        statistics: updates, per-update BL, slots, row/column pulses, coincidences,
        device steps, clipped thresholds, saturated scales, skipped (zero) updates.
        """
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)):
            raise TypeError(f"lr must be a number, not {type(lr).__name__}")
        if not math.isfinite(lr):
            raise ValueError(f"lr must be finite, not {lr!r}")
        if isinstance(factors, tuple) and len(factors) == 2 and isinstance(factors[0], np.ndarray) \
                and factors[0].ndim == 1:
            raise TypeError("factors must be a list of (u, v) pairs; wrap a single pair in a list")
        try:
            pairs = list(factors)
        except TypeError as exc:
            raise TypeError(f"factors must be a list of (u, v) pairs, not {type(factors).__name__}") from exc
        drv = self.driver(scheme)
        a, b = self.shape
        checked = []
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"factors[{i}] must be a (u, v) pair")
            u = np.asarray(pair[0], dtype=np.float64)
            v = np.asarray(pair[1], dtype=np.float64)
            if u.shape != (a,) or v.shape != (b,):
                raise ValueError(f"factors[{i}]: u, v must have shapes ({a},), ({b},); got {u.shape}, {v.shape}")
            if not (np.all(np.isfinite(u)) and np.all(np.isfinite(v))):
                raise ValueError(f"factors[{i}] contains NaN or infinite values")
            checked.append((u, v))
        stats = {"updates": len(checked), "bl": [], "slots": 0, "row_pulses": 0, "col_pulses": 0,
                 "coincidences": 0, "device_steps": 0, "clipped": 0, "scale_saturated": 0, "skipped": 0}
        for u, v in checked:
            plan = plan_update(u, v, float(lr), self.dw_min, drv.params, bl=bl,
                               update_management=self.update_management)
            if plan.info["k_steps"] == 0:
                stats["skipped"] += 1
                stats["bl"].append(0)
                continue
            sched = drv.run(plan.u_int, plan.v_int, plan.cfg)
            steps = sched.cell_steps()
            self._w = self.device.apply_pulses(self._w, steps, self._rng)
            stats["bl"].append(sched.bl)
            stats["slots"] += sched.bl
            stats["row_pulses"] += int(sched.row_fire.sum())
            stats["col_pulses"] += int(sched.col_fire.sum())
            stats["coincidences"] += int(np.sum(sched.row_fire.sum(axis=1) * sched.col_fire.sum(axis=1)))
            stats["device_steps"] += int(np.abs(steps).sum())
            stats["clipped"] += sched.clipped
            stats["scale_saturated"] += plan.info["scale_saturated"]
        for key in self.totals:
            self.totals[key] += stats[key] if key != "updates" else stats["updates"] - stats["skipped"]
        return stats

    def __repr__(self) -> str:
        return f"CrossbarArray({self.device.name!r}, shape={self.shape}, seed={self.seed}, dw_min={self.dw_min})"


def make_array(name: str, shape: tuple[int, int], seed: int = 0, **options) -> CrossbarArray:
    """A crossbar array of device model ``name`` (see ``DEVICE_MODELS``).

    ``options`` may set any :class:`DeviceConfig` field (dw_min, w_min, w_max, soft,
    asymmetry, asymmetry_d2d, d2d, c2c, bound_d2d) and the driver options bl_max,
    update_management, formats, prob_bits, lfsr_width, level_bits.  Deterministic under ``seed``.
    """
    if name not in DEVICE_MODELS:
        raise ValueError(f"unknown device model {name!r}; choose one of {sorted(DEVICE_MODELS)}")
    array_opts = {k: options.pop(k) for k in _ARRAY_OPTIONS if k in options}
    device = DEVICE_MODELS[name](**options)
    return CrossbarArray(device, shape, seed, **array_opts)
