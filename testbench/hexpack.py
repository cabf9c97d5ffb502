"""Vectorised packing of integer fields into ``$readmemh`` lines (one memory word per line).

The block-mode benches fill simulator-side memories with hundreds of thousands of words;
packing each word as a Python integer field by field would cost more than simulating it.
Here every field is an integer array, its two's-complement bits are placed at their offset
with NumPy, and the words become hexadecimal text in one pass.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["pack_hex"]

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def pack_hex(width: int, fields: Sequence[tuple[int, int, np.ndarray]], rows: int | None = None) -> str:
    """``$readmemh`` text of ``rows`` words of ``width`` bits.

    ``fields`` — ``(offset, element_width, values)``; ``values`` is ``(rows,)`` or
    ``(rows, n)`` integers (``n`` elements of ``element_width`` bits from ``offset`` up, the
    first element least significant); negative values are written in two's complement.
    """
    if width < 1:
        raise ValueError(f"width must be >= 1, not {width}")
    if rows is None:
        rows = len(np.asarray(fields[0][2])) if fields else 0
    if rows == 0:
        return "0\n"  # $readmemh needs at least one word; unused past the counts
    bits = np.zeros((rows, width), dtype=np.uint8)
    for offset, ew, values in fields:
        v = np.asarray(values, dtype=np.int64)
        if v.ndim == 1:
            v = v[:, None]
        if v.shape[0] != rows:
            raise ValueError(f"field at offset {offset} has {v.shape[0]} rows, expected {rows}")
        n = v.shape[1]
        if offset + n * ew > width:
            raise ValueError(f"field at offset {offset} ({n}x{ew} bits) exceeds the {width}-bit word")
        u = v.astype(np.uint64) & np.uint64((1 << ew) - 1 if ew < 64 else (1 << 64) - 1)
        b = ((u[:, :, None] >> np.arange(ew, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
        bits[:, offset:offset + n * ew] = b.reshape(rows, n * ew)
    nd = -(-width // 4)
    pad = nd * 4 - width
    if pad:
        bits = np.concatenate([bits, np.zeros((rows, pad), np.uint8)], axis=1)
    nib = bits.reshape(rows, nd, 4) @ np.array([1, 2, 4, 8], dtype=np.uint8)
    chars = _HEX[nib[:, ::-1]]
    out = np.concatenate([chars, np.full((rows, 1), ord("\n"), np.uint8)], axis=1)
    return out.tobytes().decode()
