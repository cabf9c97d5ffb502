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
    "SAT_NAMES", "ISSUE_STAGES", "Schedule", "build_program", "build_schedule", "model_program", "model_steady",
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


#: Register stages between the sequencer's issue and the engine's cycle 0 (the uop tag, the
#: memories' read addresses and the h / 1/‖v‖ select, all registered together).  Why: on a
#: large engine the sequencer and the sample and column memories' block RAMs sit far apart
#: (64×64, P = 8: the issue logic → a DP16KD's address pins, 8 ns of routing in one cycle);
#: the stage splits that distance over two cycles.  Every latency below counts from the issue.
ISSUE_STAGES = 1

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
        return ISSUE_STAGES + l1 + lr + l2 + self.tree_latency + 12

    @property
    def lat_state(self) -> int:
        """Cycles from a SCALE uop's issue to its state write."""
        return ISSUE_STAGES + self.mul_latencies[0] + 5

    @property
    def norm_cycles(self) -> int:
        """Cycles of the scalar unit for one normalisation (sqrt then division) with hand-offs."""
        return self.sqrt_cycles + self.div_cycles + 10

    @property
    def sigma_cycles(self) -> int:
        """Cycles of the scalar unit from a column's S_c to its next r_c (σ' then the reciprocal)."""
        sc_lat = tile_latency(self.n_bits, self.fmts.sigma.bits, a_signed=False)
        return 2 * self.div_cycles + 2 * sc_lat + 14

    @property
    def bound_cycles_per_sample(self) -> float:
        """The throughput bound 2k(a+b)/P of the issue."""
        return 2 * self.rank * (self.rows + self.cols) / self.lanes

    # ------------------------------------------------------------------ program
    @property
    def program(self) -> list[Job]:
        return build_program(self)

    @property
    def schedule(self) -> "Schedule":
        return build_schedule(self)

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


def _standalone_order(p: EngineParams) -> list[Job]:
    """Order the jobs of one full sub-batch run alone by list scheduling on the timing model.

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


# ---------------------------------------------------------------------- two sub-batches in flight
GEN_NEW, GEN_PREV = 0, 1  # gen of a schedule entry: the sub-batch that begins, the one before it


@dataclass(frozen=True)
class Schedule:
    """The sequencer's static program, with two sub-batches in flight.

    ``entries`` lists (job, gen) in issue order: gen ``GEN_NEW`` (0) jobs belong to the
    sub-batch that begins with the program (its *head*), gen ``GEN_PREV`` (1) jobs are the
    previous sub-batch's *tail* (the jobs of ``tail``, left out of its own program).  A
    program runs both gens when a sub-batch begins while a tail is pending (steady state),
    only gen 0 when no tail is pending, and only gen 1 (a *flush*) when a tail is pending
    and no sub-batch can begin (input empty, factors requested).  ``period`` is the modelled
    steady-state cycles per full sub-batch (:func:`model_steady`).
    """

    entries: tuple[tuple[Job, int], ...]
    tail: frozenset
    period: int

    def jobs(self, gen: int) -> list[Job]:
        """The jobs of one gen, in issue order (the head for 0, the tail for 1)."""
        return [j for j, g in self.entries if g == gen]

    @property
    def standalone(self) -> list[Job]:
        """Issue order of one sub-batch with no neighbour: its head, then its tail (a flush)."""
        return self.jobs(GEN_NEW) + self.jobs(GEN_PREV)


def _cross_deps(p: EngineParams) -> dict[Job, list[tuple[Job, int]]]:
    """What a job of sub-batch i+1 needs from sub-batch i: (job, latency), latency 0 for an
    order-only edge (the sub-batch-i job must have issued first).

    Data: Δ'_c for PROJ(X,c) and ACC(D,c), X'_c for ACC(X,c) (their state columns), r_c
    (from σ_c after SCALE(D,c)) for ACC(X,c).  Order only, because a scoreboard bit or a
    memory is shared by the sub-batches: a job clearing a bit issues after every job of the
    older sub-batch that waits for that bit (ACC(m,c) clears 'column ready', PROJ(m,c)
    'projections done' and reuses their memory, ACC(D,c) 'r_c valid'); the σ tasks reach
    the scalar unit in sub-batch order (SCALE(D,k−1) before the next SCALE(D,0)).
    """
    k, ls = p.rank, p.lat_state
    e: dict[Job, list[tuple[Job, int]]] = {}

    def add(cur: Job, prev: Job, lat: int) -> None:
        e.setdefault(cur, []).append((prev, lat))

    for c in range(k):
        add(Job(OP_PROJ, MAT_X, c), Job(OP_SCALE, MAT_D, c), ls)
        add(Job(OP_ACC, MAT_X, c), Job(OP_SCALE, MAT_D, c), p.lat_final + p.sigma_cycles)
        add(Job(OP_ACC, MAT_D, c), Job(OP_ACC, MAT_X, c), 0)
        for mat in (MAT_X, MAT_D):
            acc = Job(OP_ACC, mat, c)
            add(Job(OP_PROJ, mat, c), acc, 0)
            add(acc, Job(OP_SCALE, mat, c), ls)
            add(acc, acc, 0)
            add(acc, Job(OP_PROJ, Mat(1 - mat), c), 0)
            if c == 0:
                for c2 in range(1, k):
                    add(acc, Job(OP_ACC, mat, c2), 0)
            for c2 in range(k):
                for j in range(c2):
                    if j == c or (j + 1 == c and j + 1 < c2):  # GS(m,c2,j) reads columns j and j+1
                        add(acc, Job(OP_GS, mat, c2, j), 0)
    add(Job(OP_SCALE, MAT_D, 0), Job(OP_SCALE, MAT_D, k - 1), 0)
    return e


def _is_sampler(job: Job) -> bool:
    """PROJ and ACC read the sub-batch's samples (its input slot)."""
    return job.op in (OP_PROJ, OP_ACC)


def _merge(p: EngineParams, g, cross, tail: frozenset, ready: dict) -> tuple[list[tuple[Job, int]], dict, int]:
    """List-schedule one program: the previous sub-batch's ``tail`` (gen 1) with the head of
    the new one (gen 0).  ``ready`` gives the finish times, relative to this program's first
    issue, of jobs of earlier programs, keyed (gen, job) as seen from this program (1: the
    previous sub-batch, 2: the one before it)."""
    nodes = [(GEN_PREV, j) for j in g if j in tail] + [(GEN_NEW, j) for j in g if j not in tail]
    inside = set(nodes)
    deps: dict = {}
    for n in nodes:
        gen, j = n
        d = [((gen, dj), lat) for dj, lat in g[j][1]]
        d += [((gen + 1, dj), lat) for dj, lat in cross.get(j, [])]
        deps[n] = d
    succ: dict = {n: [] for n in nodes}
    for n, d in deps.items():
        for dn, lat in d:
            if dn in inside:
                succ[dn].append((n, lat))
    prio: dict = {}

    def path(n) -> int:
        if n not in prio:
            prio[n] = g[n[1]][0] + max([lat + path(s) for s, lat in succ[n]], default=0)
        return prio[n]

    for n in nodes:
        path(n)
    order, finish, placed, t = [], {}, set(), 0
    while len(order) < len(nodes):
        best = None
        for n in nodes:
            if n in placed or any(dn in inside and dn not in placed for dn, _ in deps[n]):
                continue
            start = t
            for dn, lat in deps[n]:
                f = finish.get(dn) if dn in inside else ready.get(dn)
                if f is not None:
                    start = max(start, f + lat)
            j = n[1]
            key = (start, -n[0], -prio[n], j.mat, j.col, j.op, j.step)
            if best is None or key < best[0]:
                best = (key, n, start)
        _, n, start = best
        order.append(n)
        placed.add(n)
        t = start + g[n[1]][0]
        finish[n] = t
    return [(j, gen) for gen, j in order], finish, t


def model_steady(p: EngineParams, tail, rounds: int = 5) -> tuple[int, list[tuple[Job, int]]]:
    """Steady-state cycles per full sub-batch when each program runs the previous sub-batch's
    ``tail`` beside the new head (timing model of :func:`model_program`), and that program.

    Programs follow each other with one cycle between them; the next sub-batch can begin only
    once its input slot is filled, ``fill`` cycles after the previous tail's last sample read
    released it.  Iterated from the stand-alone schedule until the period repeats.
    """
    m = p.sub_batch
    g = _job_graph(p, m)
    cross = _cross_deps(p)
    tail = frozenset(tail)
    fill = m * p.chunks_max + 4
    finish: dict = {}
    t = 0
    for j in _standalone_order(p):
        dur, deps = g[j]
        t = max([t] + [finish[d] + lat for d, lat in deps]) + dur
        finish[j] = t
    ready = {(GEN_PREV, j): f - t - 1 for j, f in finish.items()}
    period, entries, seen = None, [], []
    for _ in range(rounds):
        entries, fin, length = _merge(p, g, cross, tail, ready)
        period = length + 1
        rel = [fin[(GEN_PREV, j)] for j, gen in entries if gen == GEN_PREV and _is_sampler(j)]
        if rel:
            period = max(period, max(rel) + fill)
        ready = {(gen + 1, j): f - period for (gen, j), f in fin.items()}
        if period in seen:
            break
        seen.append(period)
    return period, entries


_SCHEDULES: dict = {}


def build_schedule(p: EngineParams) -> Schedule:
    """The sequencer's program (:class:`Schedule`), chosen on the timing model.

    The tail is a suffix of the stand-alone order (so it holds every job that follows one of
    its jobs); among the cut points from a third of the way on (every one up to 48 jobs, 16
    spread out beyond; the empty tail, i.e. the stand-alone program, included) the one with
    the shortest modelled steady-state period is taken.
    """
    key = (p.rows, p.cols, p.rank, p.sub_batch, p.lanes, p.mul_latencies, p.tree_latency, p.lat_final,
           p.lat_state, p.norm_cycles, p.sigma_cycles)
    if key not in _SCHEDULES:
        std = _standalone_order(p)
        n = len(std)
        lo = n // 3
        cuts = range(lo, n + 1) if n <= 48 else sorted({n} | {lo + (n - lo) * i // 15 for i in range(16)})
        best = None
        for r in cuts:
            period, entries = model_steady(p, std[r:])
            if best is None or (period, -r) < best[0]:
                best = ((period, -r), entries, frozenset(std[r:]))
        (period, _), entries, tail = best
        _SCHEDULES[key] = Schedule(tuple(entries), tail, period)
    return _SCHEDULES[key]


def build_program(p: EngineParams) -> list[Job]:
    """The jobs of one sub-batch in the order they issue: :attr:`Schedule.standalone`."""
    return build_schedule(p).standalone
