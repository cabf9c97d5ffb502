"""A bank of Fibonacci LFSR lanes that leap one time slot per enable (see ``pymodel/crossbar/lfsr.py``).

The leap ``M**leap`` over GF(2) is unrolled at elaboration into one XOR per state
bit (:meth:`~pymodel.crossbar.lfsr.LfsrSpec.leap_sources`), so a lane moves by
``leap`` register steps in one clock — exactly what the golden model's
:class:`~pymodel.crossbar.lfsr.LfsrBank` does per slot.
"""

from __future__ import annotations

from functools import reduce
from operator import xor

from amaranth.hdl import Cat, Const, Module, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from pymodel.crossbar.lfsr import LfsrSpec


def lfsr_leap(state: Value, spec: LfsrSpec) -> Value:
    """Combinational state after one slot (``spec.leap`` steps) of the register ``state``."""
    if not isinstance(spec, LfsrSpec):
        raise TypeError(f"spec must be an LfsrSpec, not {type(spec).__name__}")
    bits = []
    for sources in spec.leap_sources():
        bits.append(reduce(xor, [state[i] for i in sources]) if sources else Const(0, 1))
    return Cat(*bits)


class LfsrBank(wiring.Component):
    """``len(seeds)`` LFSR lanes; all leap one slot in a cycle where ``en`` is high.

    Ports: ``en`` (in), ``state`` (out, ArrayLayout of lanes, lane i = ``state[i]``).
    Each lane's reset value is its seed.
    """

    def __init__(self, spec: LfsrSpec, seeds) -> None:
        if not isinstance(spec, LfsrSpec):
            raise TypeError(f"spec must be an LfsrSpec, not {type(spec).__name__}")
        seeds = tuple(int(s) for s in seeds)
        if not seeds:
            raise ValueError("an LFSR bank needs at least one lane (seed)")
        bad = [s for s in seeds if not 1 <= s <= spec.mask]
        if bad:
            raise ValueError(f"LFSR seeds must be non-zero {spec.width}-bit values, not {bad[:4]}")
        self._spec = spec
        self._seeds = seeds
        super().__init__({
            "en": In(1),
            "state": Out(data.ArrayLayout(spec.width, len(seeds))),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        for i, seed in enumerate(self._seeds):
            lane = Signal(self._spec.width, init=seed, name=f"lane{i}")
            with m.If(self.en):
                m.d.sync += lane.eq(lfsr_leap(lane, self._spec))
            m.d.comb += self.state[i].eq(lane)
        return m
