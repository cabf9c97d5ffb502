"""Parameters, derived widths and the static job program of the SBPCA engine.

Everything the RTL sizes itself from lives here, computed from the same
:class:`~pymodel.formats.SBPCAFormats` objects the golden model uses, so that
``hdl.engine`` (the component), the manifest writer and the testbench agree.

The engine executes, per sub-batch, a *program*: an ordered list of jobs
(projection, accumulation + power step, Gram–Schmidt step, normalise/scale).  The
order is chosen here by a list scheduler over a timing model of the pipeline; the
hardware issues jobs in that order and a scoreboard makes each job wait for the
results it needs, so any order that respects the dependencies is bit-exact and the
model only decides how well the lanes are kept busy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.lib import enum

from pymodel.fixedpoint import Fmt, Overflow, bits_for
from pymodel.formats import SBPCAFormats, get_format_set
from pymodel.saturation import SAT_NAMES  # sticky status-bit order (declared once, in pymodel)
from .arith import tree_latency
from .dsp import PRIMITIVES, tile_latency

__all__ = [
    "EngineParams", "Job", "Op", "Mat", "Kind", "OP_PROJ", "OP_ACC", "OP_GS", "OP_SCALE", "MAT_X", "MAT_D",
    "SAT_NAMES", "build_program", "model_program",
]

class Op(enum.IntEnum, shape=2):
    """Job (and uop) operation codes; an ``IntEnum`` so a code is also a plain integer."""

    PROJ = 0  # projections q_j = Δᵀδ_j / p_j = X'ᵀx_j, reduced across lanes
    ACC = 1  # A = Σ x qᵀ in the lanes, then the power step and the first Gram–Schmidt dot
    GS = 2  # one modified Gram–Schmidt step fused with the next dot or the norm
    SCALE = 3  # q_c = R(v/‖v‖), state write, σ's S_c dot


class Mat(enum.IntEnum, shape=1):
    """Which state matrix a job works on."""

    X = 0
    D = 1


class Kind(enum.IntEnum, shape=2):
    """``kind`` field of the trace, load and factor words (X column, Δ column, σ)."""

    X = 0
    D = 1
    SIGMA = 2


OP_PROJ, OP_ACC, OP_GS, OP_SCALE = Op.PROJ, Op.ACC, Op.GS, Op.SCALE
OP_NAMES = {op: op.name for op in Op}
MAT_X, MAT_D = Mat.X, Mat.D

MAX_LANES = 64
MAX_DIM = 4096
MAX_SUB_BATCH = 4096


def _check_int(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"engine parameter {name} must be an integer, not {type(value).__name__}")
    if not lo <= int(value) <= hi:
        raise ValueError(f"engine parameter {name}={value!r} is out of range: allowed {lo}..{hi}")
    return int(value)


def _clog2(n: int) -> int:
    return max(0, (int(n) - 1).bit_length())


@dataclass(frozen=True)
class Job:
    """One entry of the engine program (see module docstring)."""

    op: Op
    mat: Mat
    col: int
    step: int = 0  # Gram–Schmidt step j (GS only): v -= h_j q_j, then dot with q_{j+1} or norm

    def __str__(self) -> str:
        m = "X" if self.mat == MAT_X else "D"
        s = f",{self.step}" if self.op == OP_GS else ""
        return f"{OP_NAMES[self.op]}({m},{self.col}{s})"


@dataclass(frozen=True)
class EngineParams:
    """Elaboration parameters of :class:`hdl.engine.SBPCAEngine`.

    rows a, cols b, rank k, sub_batch s, lanes P; ``formats`` a format-set name or
    :class:`SBPCAFormats`; ``max_batch`` bounds the samples of one batch (it sizes the
    sample counter n); ``iter_bits`` is the number of quotient/root bits the divider and
    square-root units resolve per clock; ``tree_levels_per_stage`` is the number of lane
    adder-tree levels between registers; ``dsp`` picks the multiplier tiles' primitive
    (``hdl.dsp``): ``generic`` (plain registers and ``*``, any tool and simulator) or
    ``ecp5`` (``MULT18X18D`` with its own input/output registers, for ECP5 synthesis) —
    the same latency and the same numbers either way.  Illegal values raise ``ValueError``/``TypeError``
    naming the parameter and its allowed range.
    """

    rows: int
    cols: int
    rank: int
    sub_batch: int
    lanes: int = 1
    formats: "SBPCAFormats | str" = "q16"
    max_batch: int = 65535
    iter_bits: int = 1
    tree_levels_per_stage: int = 1
    dsp: str = "generic"
    fmts: SBPCAFormats = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_int("rows", self.rows, 1, MAX_DIM)
        _check_int("cols", self.cols, 1, MAX_DIM)
        _check_int("rank", self.rank, 1, min(self.rows, self.cols))
        _check_int("sub_batch", self.sub_batch, 1, MAX_SUB_BATCH)
        _check_int("lanes", self.lanes, 1, min(MAX_LANES, max(self.rows, self.cols)))
        _check_int("max_batch", self.max_batch, 1, 1 << 24)
        _check_int("iter_bits", self.iter_bits, 1, 8)
        _check_int("tree_levels_per_stage", self.tree_levels_per_stage, 1, 8)
        if self.dsp not in PRIMITIVES:
            raise ValueError(f"engine parameter dsp={self.dsp!r} is unknown; allowed: {', '.join(PRIMITIVES)}")
        if isinstance(self.formats, SBPCAFormats):
            f = self.formats
        elif isinstance(self.formats, str):
            f = get_format_set(self.formats)
        else:
            raise TypeError(f"engine parameter formats must be a format-set name or SBPCAFormats, "
                            f"not {type(self.formats).__name__}")
        object.__setattr__(self, "fmts", f)
        for name, fmt in f.items():
            if fmt.overflow is Overflow.ERROR:
                raise ValueError(f"engine parameter formats: format {name!r} ({fmt}) uses overflow "
                                 f"'error', which hardware cannot raise; allowed: saturate, wrap")
        for name in ("inv", "recip", "sigma"):
            fmt = getattr(f, name)
            if fmt.overflow is not Overflow.SATURATE:
                raise ValueError(f"engine parameter formats: divider output {name!r} ({fmt}) must "
                                 f"saturate; allowed overflow: saturate")
        if f.norm_frac + f.inv.frac < 0 or f.sigma.frac + f.recip.frac < 0:
            raise ValueError("engine parameter formats: the reciprocal numerators 2^(norm_frac+inv.frac) "
                             "and 2^(sigma.frac+recip.frac) need non-negative exponents")
        if self.wide_bits > 4096:
            raise ValueError(f"engine parameter formats/rows/cols: an exact sum needs {self.wide_bits} bits; "
                             "allowed up to 4096")

    # ------------------------------------------------------------------ sizes
    @property
    def a(self) -> int:
        return self.rows

    @property
    def b(self) -> int:
        return self.cols

    @property
    def k(self) -> int:
        return self.rank

    @property
    def s(self) -> int:
        return self.sub_batch

    @property
    def P(self) -> int:
        return self.lanes

    @property
    def chunks_a(self) -> int:
        """Lane-wide words of a Δ column / δ vector: ceil(a / P)."""
        return -(-self.rows // self.lanes)

    @property
    def chunks_b(self) -> int:
        """Lane-wide words of an X column / x vector: ceil(b / P)."""
        return -(-self.cols // self.lanes)

    def chunks(self, mat: int) -> int:
        return self.chunks_b if mat == MAT_X else self.chunks_a

    @property
    def chunks_max(self) -> int:
        return max(self.chunks_a, self.chunks_b)

    @property
    def n_max(self) -> int:
        """Largest n (samples represented by the state) the engine must hold."""
        return self.sub_batch + self.max_batch

    @property
    def n_bits(self) -> int:
        return (self.n_max + self.sub_batch).bit_length()

    # exact-sum bounds (all in integer units; |min_int| is the largest magnitude of a format)
    def _mag(self, fmt: Fmt) -> int:
        return -fmt.min_int

    @property
    def proj_sum_bits(self) -> int:
        f = self.fmts
        return max(bits_for(self.rows * self._mag(f.delta) * self._mag(f.state)),
                   bits_for(self.cols * self._mag(f.x) * self._mag(f.state)))

    @property
    def acc_exact_bits(self) -> int:
        f = self.fmts
        return max(bits_for(self.sub_batch * self._mag(f.x) * self._mag(f.proj)),
                   bits_for(self.sub_batch * self._mag(f.delta) * self._mag(f.proj)))

    @property
    def dot_bits(self) -> int:
        f = self.fmts
        return bits_for(max(self.rows, self.cols) * self._mag(f.mat) * self._mag(f.state))

    @property
    def norm2_bits(self) -> int:
        """Unsigned bits of N2 = Σ v² (exact)."""
        f = self.fmts
        return (max(self.rows, self.cols) * self._mag(f.mat) ** 2).bit_length()

    @property
    def s_sum_bits(self) -> int:
        f = self.fmts
        return bits_for(self.rows * self._mag(f.state) * self._mag(f.acc))

    @property
    def red_bits(self) -> int:
        """Width of the lane reduction tree and chunk accumulator (holds every exact sum)."""
        return max(self.proj_sum_bits, self.dot_bits, self.norm2_bits + 1, self.s_sum_bits)

    @property
    def wide_bits(self) -> int:
        return max(self.red_bits, self.acc_exact_bits)

    @property
    def radicand_bits(self) -> int:
        return self.norm2_bits + 2 * self.fmts.norm_guard

    @property
    def root_bits(self) -> int:
        return -(-self.radicand_bits // 2)

    @property
    def div_quot_bits(self) -> int:
        f = self.fmts
        return max(f.inv.bits, f.recip.bits, f.sigma.bits) + 1

    @property
    def div_num_bits(self) -> int:
        f = self.fmts
        return max(f.norm_frac + f.inv.frac + 1, f.sigma.frac + f.recip.frac + 1,
                   bits_for(self.n_max * self._mag(f.sigma) + self._mag(f.sigma)))

    @property
    def div_den_bits(self) -> int:
        f = self.fmts
        return max(self.root_bits, (self.n_max * f.sigma.max_int).bit_length(),
                   (self.n_max + self.sub_batch).bit_length())

    @property
    def sqrt_cycles(self) -> int:
        return -(-self.root_bits // self.iter_bits)

    @property
    def div_cycles(self) -> int:
        return -(-self.div_quot_bits // self.iter_bits)

    # ------------------------------------------------------------------ pipeline timing
    @property
    def tree_latency(self) -> int:
        return tree_latency(self.lanes, self.tree_levels_per_stage)

    @property
    def mul_latencies(self) -> tuple[int, int, int]:
        """Latencies of the lane multipliers m1, m_r, m2 (DSP tiles, ``hdl.dsp.tile_latency``).

        m1 and m_r take their operands from multiplexers and register them in the fabric
        first; m2's operands are registers already.
        """
        f = self.fmts
        a1 = max(f.x.bits, f.delta.bits, f.mat.bits)
        b1 = max(f.state.bits, f.proj.bits, f.inv.bits)
        return (tile_latency(a1, b1, fabric_reg=True),
                tile_latency(f.acc.bits, max(f.recip.bits, f.state.bits), fabric_reg=True),
                tile_latency(f.mat.bits, f.mat.bits))

    @property
    def lat_final(self) -> int:
        """Cycles from a uop's issue until its reduction result is written (stage F) and visible."""
        l1, lr, l2 = self.mul_latencies
        return l1 + lr + l2 + self.tree_latency + 12

    @property
    def lat_state(self) -> int:
        """Cycles from a SCALE uop's issue to its state write."""
        return self.mul_latencies[0] + 5

    @property
    def norm_cycles(self) -> int:
        """Cycles of the scalar unit for one normalisation (sqrt then division) with hand-offs."""
        return self.sqrt_cycles + self.div_cycles + 10

    @property
    def bound_cycles_per_sample(self) -> float:
        """The throughput bound 2k(a+b)/P of the issue."""
        return 2 * self.rank * (self.rows + self.cols) / self.lanes

    # ------------------------------------------------------------------ program
    @property
    def program(self) -> list[Job]:
        return build_program(self)

    def to_dict(self) -> dict:
        return {"rows": self.rows, "cols": self.cols, "rank": self.rank, "sub_batch": self.sub_batch,
                "lanes": self.lanes, "max_batch": self.max_batch, "iter_bits": self.iter_bits,
                "tree_levels_per_stage": self.tree_levels_per_stage, "dsp": self.dsp,
                "formats": self.fmts.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "EngineParams":
        fm = d["formats"]
        fmts = SBPCAFormats.from_dict(fm) if isinstance(fm, dict) else fm
        return cls(rows=d["rows"], cols=d["cols"], rank=d["rank"], sub_batch=d["sub_batch"],
                   lanes=d["lanes"], formats=fmts, max_batch=d.get("max_batch", 65535),
                   iter_bits=d.get("iter_bits", 1),
                   tree_levels_per_stage=d.get("tree_levels_per_stage", 1), dsp=d.get("dsp", "generic"))


# ---------------------------------------------------------------------- scheduling
def _job_graph(p: EngineParams, m: int) -> dict[Job, tuple[int, list[tuple[Job, int]]]]:
    """Jobs of one sub-batch of m samples: duration (uops) and dependencies (job, latency)."""
    g: dict[Job, tuple[int, list[tuple[Job, int]]]] = {}
    lf, ls, ln = p.lat_final, p.lat_state, p.lat_final + p.norm_cycles
    for mat in (MAT_X, MAT_D):
        other = MAT_D if mat == MAT_X else MAT_X
        R, Ro = p.chunks(mat), p.chunks(other)
        for c in range(p.rank):
            proj = Job(OP_PROJ, mat, c)
            deps = [] if mat == MAT_X else [(Job(OP_SCALE, MAT_X, c), ls)]
            g[proj] = (m * Ro, deps)
            acc = Job(OP_ACC, mat, c)
            deps = [(proj, lf)]
            if c > 0:
                deps.append((Job(OP_SCALE, mat, 0), ls))
            g[acc] = (m * R, deps)
            prev = acc
            for j in range(c):
                gs = Job(OP_GS, mat, c, j)
                deps = [(prev, lf), (Job(OP_SCALE, mat, j), ls)]
                if j + 1 < c:
                    deps.append((Job(OP_SCALE, mat, j + 1), ls))
                g[gs] = (R, deps)
                prev = gs
            g[Job(OP_SCALE, mat, c)] = (R, [(prev, ln)])
    return g


def model_program(p: EngineParams, order: list[Job], m: int | None = None) -> int:
    """Cycles to issue ``order`` in sequence under the timing model (each job waits for its deps)."""
    m = p.sub_batch if m is None else m
    g = _job_graph(p, m)
    finish: dict[Job, int] = {}
    t = 0
    for job in order:
        dur, deps = g[job]
        start = max([t] + [finish[d] + lat for d, lat in deps])
        t = start + dur
        finish[job] = t
    return t


def build_program(p: EngineParams) -> list[Job]:
    """Order the jobs of a full sub-batch by list scheduling on the timing model.

    Among jobs whose dependencies are already placed, the one that can start earliest is
    taken; ties go to the longest remaining dependency chain (critical path first).
    """
    g = _job_graph(p, p.sub_batch)
    succ: dict[Job, list[tuple[Job, int]]] = {j: [] for j in g}
    for j, (_, deps) in g.items():
        for d, lat in deps:
            succ[d].append((j, lat))
    prio: dict[Job, int] = {}

    def path(j: Job) -> int:
        if j not in prio:
            prio[j] = g[j][0] + max([lat + path(s) for s, lat in succ[j]], default=0)
        return prio[j]

    for j in g:
        path(j)
    order: list[Job] = []
    finish: dict[Job, int] = {}
    t = 0
    placed: set[Job] = set()
    while len(order) < len(g):
        best = None
        for j, (dur, deps) in g.items():
            if j in placed or any(d not in placed for d, _ in deps):
                continue
            start = max([t] + [finish[d] + lat for d, lat in deps])
            key = (start, -prio[j], j.mat, j.col, j.op, j.step)
            if best is None or key < best[0]:
                best = (key, j, start)
        _, j, start = best
        order.append(j)
        placed.add(j)
        t = start + g[j][0]
        finish[j] = t
    return order
