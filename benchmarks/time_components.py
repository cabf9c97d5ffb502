"""Place and route each engine component alone: its own Fmax and critical path.

The whole engine takes tens of minutes per nextpnr run; a component alone takes one to a few
minutes, and its critical path is its own (every port of the component goes through the
pin-reduction wrapper's flip-flops, ``hdl.synth.io_wrapper_verilog``, so a port-to-port
path is registered on both sides).  A component that closes well above the target alone
still loses some of it to routing in the whole engine, so this is a first look, not a
timing claim: ``sbpca synth --top engine --seeds 1,2,3`` is.

Run: ``python benchmarks/time_components.py --rows 10 --cols 65 --rank 4 --sub-batch 8 --lanes 1
[--only lane,scalar] [--seed 1] [--freq 110] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from amaranth.hdl import Module, Signal, Value  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from hdl.engine import engine_layouts, initial_state  # noqa: E402
from hdl.engine_input import InputBuffer  # noqa: E402
from hdl.engine_lane import Lane  # noqa: E402
from hdl.engine_outputs import FactorDump, Status, TraceOut  # noqa: E402
from hdl.engine_params import EngineParams, build_schedule  # noqa: E402
from hdl.engine_reduce import Reducer  # noqa: E402
from hdl.engine_scalar import ScalarUnit  # noqa: E402
from hdl.engine_seq import Sequencer  # noqa: E402
from hdl.synth import synthesize  # noqa: E402


class PortsOnly(wiring.Component):
    """``inner`` with its constant port members (e.g. an ``always_ready`` stream's ``ready``)
    left out: a design's top level can only have signals as ports."""

    def __init__(self, inner: wiring.Component) -> None:
        self.inner = inner
        self._members = []
        members = {}
        for path, member, value in inner.signature.flatten(inner):
            flow = member.flow
            if not isinstance(Value.cast(value), Signal):  # a constant (``always_ready``)
                continue
            name = "__".join(str(x) for x in path)
            members[name] = (In if flow == wiring.In else Out)(value.shape())
            self._members.append((name, flow, value))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self.inner
        for name, flow, value in self._members:
            port = getattr(self, name)
            m.d.comb += (value.eq(port) if flow == wiring.In else port.eq(value))
        return m


def components(p: EngineParams) -> dict:
    """Constructors of the engine's components for ``p`` (lane 0 stands for every lane)."""
    lay = engine_layouts(p)
    X0, D0, S0 = initial_state(p, None, 0)
    return {
        "lane": lambda: Lane(p, 0, X0, D0),
        "scalar": lambda: ScalarUnit(p, S0),
        "input": lambda: InputBuffer(p, lay["x"], lay["d"]),
        "seq": lambda: Sequencer(p, build_schedule(p), lay["factor_req"]),
        "reduce": lambda: Reducer(p),
        "trace": lambda: TraceOut(p, lay["trace"]),
        "dump": lambda: FactorDump(p, lay["factors"]),
        "status": lambda: Status(),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10)
    ap.add_argument("--cols", type=int, default=65)
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--sub-batch", type=int, default=8)
    ap.add_argument("--lanes", type=int, default=1)
    ap.add_argument("--format-set", default="q16")
    ap.add_argument("--only", default=None, help="comma-separated component names (default: all)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--freq", type=float, default=100.0)
    ap.add_argument("--build-dir", default="build/components")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    p = EngineParams(rows=args.rows, cols=args.cols, rank=args.rank, sub_batch=args.sub_batch, lanes=args.lanes,
                     formats=args.format_set, dsp="ecp5")
    table = components(p)
    names = list(table) if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in table]
    if unknown:
        ap.error(f"unknown component(s) {unknown}; known: {', '.join(table)}")
    rows = []
    for name in names:
        t0 = time.time()
        rep = synthesize(PortsOnly(table[name]()), f"c_{name}", build_dir=Path(args.build_dir) / name, freq_mhz=args.freq,
                         seed=args.seed)
        cp = rep.critical_path or {}
        rows.append({"component": name, "fmax_mhz": rep.fmax_mhz, "luts": rep.luts, "ffs": rep.ffs,
                     "dsps": rep.dsps, "brams": rep.brams, "levels": cp.get("logic_levels"),
                     "delay_ns": cp.get("delay_ns"), "from": cp.get("from"), "to": cp.get("to"),
                     "seconds": round(time.time() - t0, 1)})
        r = rows[-1]
        print(f"{name:8s} {r['fmax_mhz']:7.1f} MHz  LUT {r['luts']:6d} FF {r['ffs']:6d} DSP {r['dsps']:3d} "
              f"BRAM {r['brams']:2d}  levels {r['levels']}  {r['from']} -> {r['to']}  ({r['seconds']} s)",
              flush=True)
    if args.json:
        print(json.dumps({"parameters": vars(args), "components": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
