"""Counting what a process hands to ``torch.distributed`` collectives.

The DDP hooks compared here (plain all-reduce, PowerSGD, SBPCA) all call the Python
collectives ``dist.all_reduce`` / ``dist.all_gather``; :class:`CommCounter` wraps those
for the duration of a ``with`` block and adds up the bytes of their input tensors, so the
three are measured the same way, by what they actually send, not by a formula.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

COUNTED = ("all_reduce", "all_gather", "all_gather_into_tensor", "broadcast", "reduce_scatter_tensor")


class CommCounter:
    """Bytes and calls per collective, counted on this process (its inputs, i.e. its payload).

    Wire traffic depends on the algorithm: a ring all-reduce of P bytes moves about
    2(W−1)/W·P per rank, a ring all-gather of P bytes per rank moves (W−1)·P per rank.
    """

    def __init__(self) -> None:
        self.bytes: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())

    def reset(self) -> None:
        with self._lock:
            self.bytes.clear()
            self.calls.clear()

    def _add(self, name: str, t: torch.Tensor) -> None:
        with self._lock:
            self.bytes[name] = self.bytes.get(name, 0) + t.numel() * t.element_size()
            self.calls[name] = self.calls.get(name, 0) + 1

    @contextmanager
    def patch(self) -> Iterator["CommCounter"]:
        """Count every call of the collectives in :data:`COUNTED` made inside the block."""
        saved = {n: getattr(dist, n) for n in COUNTED if hasattr(dist, n)}

        def wrap(name, fn):
            def counted(*args, **kwargs):
                # The payload is the tensor this rank contributes: the last positional
                # tensor for all_gather(out_list, tensor) and the first for the others.
                tensors = [a for a in args if isinstance(a, torch.Tensor)]
                if name == "all_gather":
                    t = kwargs.get("tensor", tensors[-1] if tensors else None)
                elif name in ("all_gather_into_tensor", "reduce_scatter_tensor"):
                    t = kwargs.get("input_tensor", args[1] if len(args) > 1 else None)
                else:
                    t = kwargs.get("tensor", tensors[0] if tensors else None)
                if t is not None:
                    self._add(name, t)
                return fn(*args, **kwargs)
            return counted

        for n, fn in saved.items():
            setattr(dist, n, wrap(n, fn))
        try:
            yield self
        finally:
            for n, fn in saved.items():
                setattr(dist, n, fn)
