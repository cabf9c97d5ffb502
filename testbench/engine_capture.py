"""A stream captured from a real training step, ready for the engine co-simulation.

``pymodel.training.capture_stream`` trains the NumPy CNN on scikit-learn's digits with the
fixed-point SBPCA rule and captures one batch of one layer: the integer words the engine
receives (x, δ), and the layer's SBPCA state before and after that batch.  Here it becomes
an :class:`~testbench.engine_cosim.EngineBatch` plus the initial state for the RTL, so the
co-simulation replays exactly what the training loop's golden model computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdl.engine_params import EngineParams

from .engine_cosim import EngineBatch

__all__ = ["CapturedEngineStream", "capture_training_stream"]


@dataclass
class CapturedEngineStream:
    """One captured batch of one layer: dimensions, the batch, and the states around it."""

    layer: str
    rows: int
    cols: int
    rank: int
    sub_batch: int
    format_set: str
    batch: EngineBatch
    init: tuple[np.ndarray, np.ndarray, np.ndarray]
    state_after: tuple[np.ndarray, np.ndarray, np.ndarray]

    def params(self, lanes: int = 1, **kw) -> EngineParams:
        """Engine parameters that match this layer."""
        return EngineParams(rows=self.rows, cols=self.cols, rank=self.rank, sub_batch=self.sub_batch,
                            lanes=lanes, formats=self.format_set, **kw)


def capture_training_stream(*, layer: str = "fc", rank: int = 4, sub_batch: int = 8, batch: int = 20,
                            step: int = 1, format_set: str = "q16", seed: int = 0,
                            train_limit: int = 200) -> CapturedEngineStream:
    """Train ``step`` batches of the default CNN on digits (fixed-point SBPCA rule), then capture
    batch ``step`` of ``layer``.  ``batch`` need not be a multiple of ``sub_batch``."""
    from pymodel.training import TrainConfig, capture_stream

    cfg = TrainConfig(method="sbpca", fixed=format_set, rank=rank, sub_batch=sub_batch, batch=batch,
                      epochs=1, seed=seed, train_limit=train_limit, test_limit=max(10, batch))
    cap = capture_stream(cfg, layer=layer, step=step)
    if cap.x_int is None or cap.state_before_int is None:
        raise RuntimeError("the capture carries no fixed-point stream/state (is the rule fixed-point?)")
    init = tuple(np.asarray(v, dtype=np.int64) for v in cap.state_before_int)
    after = tuple(np.asarray(v, dtype=np.int64) for v in cap.state_after_int)
    return CapturedEngineStream(
        layer=cap.layer, rows=int(cap.rows), cols=int(cap.cols), rank=rank, sub_batch=sub_batch,
        format_set=format_set,
        batch=EngineBatch(np.asarray(cap.x_int, dtype=np.int64), np.asarray(cap.delta_int, dtype=np.int64), True),
        init=init, state_after=after)
