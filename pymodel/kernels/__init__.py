"""Compiled (numba) kernels of the golden model.

Each kernel has a readable NumPy reference elsewhere in ``pymodel`` (the oracle in the
tests); the kernel computes the same integers (fixed point) or the same floats to
rounding (float64), but runs the whole per-batch loop without returning to Python.
``njit(cache=True)``: the first call on a machine compiles and caches the machine code
beside the module (``__pycache__``); later processes load it in well under a second.
"""

from __future__ import annotations

BACKENDS = ("compiled", "numpy")


def check_backend(backend: str) -> str:
    """``"compiled"`` or ``"numpy"``, else ValueError naming the choices."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend
