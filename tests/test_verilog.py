"""Verilog emission (``hdl.verilog.write_verilog``): a switch on a zero-width value is refused
before Yosys can drop it (the one-lane SoC's state loader lost its writes that way)."""

from __future__ import annotations

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hdl.verilog import ZeroWidthCaseError, write_verilog


class _OneElement(wiring.Component):
    """Writes element ``idx`` of a one-element array: ``idx`` has zero bits when ``n == 1``."""

    def __init__(self, n: int, constant_index: bool) -> None:
        self.n, self.constant_index = n, constant_index
        super().__init__({"i": In(8), "sel": In(range(n)), "o": Out(8)})

    def elaborate(self, platform):
        m = Module()
        arr = Signal(data.ArrayLayout(8, self.n))
        with m.If(self.i[0]):
            m.d.comb += arr.eq(0)
            if self.constant_index:
                for lane in range(self.n):
                    with m.If(self.sel == lane):
                        m.d.comb += arr[lane].eq(self.i)
            else:
                m.d.comb += arr[self.sel].eq(self.i)
        m.d.comb += self.o.eq(arr[0])
        return m


def test_zero_width_index_is_refused(tmp_path):
    with pytest.raises(ZeroWidthCaseError, match="zero-width value"):
        write_verilog(_OneElement(1, constant_index=False), "z", tmp_path)
    assert not (tmp_path / "z.v").exists()


@pytest.mark.parametrize("n, constant_index", [(1, True), (2, False), (2, True)])
def test_constant_or_wide_index_is_emitted(tmp_path, n, constant_index):
    text = write_verilog(_OneElement(n, constant_index), "z", tmp_path).read_text()
    assert "module z(" in text and "case 0'" not in text
