"""Synthetic (x, δ) streams with a known low-rank gradient, for checks, benchmarks and demos."""

from __future__ import annotations

from typing import Callable

import numpy as np


def low_rank_stream(
    rng: np.random.Generator,
    rows: int,
    cols: int,
    batch: int,
    rank: int = 6,
    decay: float = 0.6,
    noise: float = 0.02,
    x_scale: float = 0.5,
    delta_scale: float = 0.1,
) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """Return a function that draws batches whose G = Σ δ xᵀ has a decaying spectrum.

    Latent factors z (batch × rank) with scales ``decay**i`` drive both x and δ through
    fixed random orthonormal bases, plus isotropic noise: like a layer's stream, G is
    dominated by a few directions, which is what SBPCA is built to find.
    """
    rank = min(rank, rows, cols)
    U = np.linalg.qr(rng.standard_normal((rows, rows)))[0][:, :rank]
    V = np.linalg.qr(rng.standard_normal((cols, cols)))[0][:, :rank]
    scales = 3.0 * decay ** np.arange(rank)

    def draw() -> tuple[np.ndarray, np.ndarray]:
        z = rng.standard_normal((batch, rank)) * scales
        x = x_scale * z @ V.T + noise * rng.standard_normal((batch, cols))
        d = delta_scale * z @ U.T + noise * delta_scale * rng.standard_normal((batch, rows))
        return x, d

    return draw
