"""Crossbar row/column pulse drivers (golden model) and the array device model.

``pulses`` holds the bit-exact schedules the RTL in ``hdl/driver.py`` reproduces,
``array`` the device models and :class:`~pymodel.crossbar.array.CrossbarArray`
that the training loop updates through those schedules.  See ``docs/DRIVERS.md``.
"""

from .lfsr import MAXIMAL_TAPS, LfsrBank, LfsrSpec, is_maximal, lane_seeds
from .params import SCHEMES, DriverParams
from .pulses import (
    DriverModel,
    Plan,
    Schedule,
    UpdateConfig,
    choose_bl,
    config_for_vectors,
    plan_update,
    update_config,
)

__all__ = [
    "MAXIMAL_TAPS", "LfsrBank", "LfsrSpec", "is_maximal", "lane_seeds", "SCHEMES", "DriverParams",
    "DriverModel", "Plan", "Schedule", "UpdateConfig", "choose_bl", "config_for_vectors", "plan_update", "update_config",
]

from .array import DEVICE_MODELS, CrossbarArray, DeviceConfig, DeviceModel, make_array  # noqa: E402

__all__ += ["DEVICE_MODELS", "CrossbarArray", "DeviceConfig", "DeviceModel", "make_array"]
