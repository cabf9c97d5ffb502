"""The engine's outputs: the trace stream, the factor dump and the status counters.

* :class:`TraceOut` — every state word written (a SCALE's row of q, one lane-wide word)
  and every σ' go into a FIFO that drains on ``trace``.  Words are never dropped: the
  sequencer reserves a SCALE job's words (``reserve``) before it starts, out of ``credit``
  (free FIFO entries not yet promised); the reservation, like a σ word's entry, reaches
  ``credit`` one cycle later (``pending`` meanwhile: neither the sequencer nor the scalar
  unit takes credit while it is high).  Since the FIFO is never written when full, it has no full check
  in front of its write enables, and its output is a register in LUT RAM and block RAM alike
  (``TraceOut._fifo``).
* :class:`FactorDump` — on ``start``, the factor pairs (Δ_c then X_c, lane-wide chunks, with
  σ_c) of one column or all, read from the lanes' state rows at ``addr``, out on ``factors``.
* :class:`Status` — sticky saturation flags, σ-guard and degenerate-column counts, the
  busy-cycle counter; events are registered once before they land (their conditions end deep
  in the datapath), and ``busy`` holds until they have.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .engine_params import SAT_NAMES, EngineParams, Kind
from .engine_pipeline import distributed, dup_reg, index_bits, ram_attrs

__all__ = ["TraceOut", "FactorDump", "Status", "trace_depth"]


def trace_depth(params: EngineParams) -> int:
    """Entries of the trace FIFO: two SCALE jobs' words (both matrices) and the σ words."""
    return 2 * params.chunks_max + 2 * params.k + 2


class TraceOut(wiring.Component):
    """The trace FIFO and its credit (module docstring); ``layout`` is the trace payload."""

    def __init__(self, params: EngineParams, layout: data.StructLayout) -> None:
        p, f = params, params.fmts
        self.params, self.layout = params, layout
        depth = trace_depth(p)
        colw, chw = index_bits(p.k), index_bits(p.chunks_max)
        super().__init__({
            "state": In(wiring.Signature({"en": Out(1), "mat": Out(1), "col": Out(unsigned(colw)),
                                          "chunk": Out(unsigned(chw)),
                                          "data": Out(data.ArrayLayout(signed(f.state.bits), p.P))})),
            "sigma": In(wiring.Signature({"en": Out(1), "col": Out(unsigned(colw)),
                                          "value": Out(signed(f.sigma.bits))})),
            "reserve": In(range(depth + 1)),
            "credit": Out(range(depth + 1), init=depth),
            # credit >= chunks_b, >= chunks_a (a SCALE job of X, of Δ fits) and > chunks_max (a σ
            # word fits whatever the sequencer reserves): sign bits of registered offset counters
            "room_x": Out(1),
            "room_d": Out(1),
            "room_sigma": Out(1),
            "pending": Out(1),
            "trace": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        m = Module()
        depth = trace_depth(self.params)
        # never written when full: ``credit`` counts the free entries not yet promised.
        # Both words are registered, as they are, every cycle, before the FIFO write, and the
        # choice between them is made after the registers: the push decisions (a lane's SCALE
        # tag, the scalar unit's state and trace room) then drive two flip-flops, not the
        # select of every payload bit nor the LUT-RAM write enables.  ``credit`` is taken at the
        # push, so the FIFO is still never written when full.
        st = Signal.like(self.state.data, name="word_state_data", reset_less=True)
        st_mat, st_col, st_chunk = (Signal.like(sig, name=f"word_state_{name}", reset_less=True)
                                    for sig, name in ((self.state.mat, "mat"), (self.state.col, "col"),
                                                      (self.state.chunk, "chunk")))
        sg_col = Signal.like(self.sigma.col, name="word_sigma_col", reset_less=True)
        sg_value = Signal.like(self.sigma.value, name="word_sigma_value", reset_less=True)
        is_state, word_valid = Signal(name="word_is_state"), Signal(name="word_valid")
        m.d.sync += [st.eq(self.state.data), st_mat.eq(self.state.mat), st_col.eq(self.state.col),
                     st_chunk.eq(self.state.chunk), sg_col.eq(self.sigma.col), sg_value.eq(self.sigma.value),
                     is_state.eq(self.state.en), word_valid.eq(self.state.en | self.sigma.en)]
        word = Signal(self.layout, name="word")
        with m.If(is_state):
            m.d.comb += [word.kind.eq(st_mat), word.col.eq(st_col), word.chunk.eq(st_chunk), word.data.eq(st)]
        with m.Else():
            m.d.comb += [word.kind.eq(Kind.SIGMA), word.col.eq(sg_col), word.sigma.eq(sg_value)]
        pop = self._fifo(m, depth, word, word_valid)
        # The reservation lands a cycle after the sequencer makes it (``taken``), so ``pending``
        # is a flip-flop of its own rather than a comparison of ``taken``.  A σ word's credit
        # lands a cycle after its push as well (``sigma_taken``), and ``pending`` covers it: the
        # scalar unit's push decision (its trace room, the sequencer's pending reservation)
        # then drives flip-flops, not the four credit counters' carry chains (16×16 seed 1 of
        # ``541064c``: ``pending`` → the σ trace room → the push → ``room_sigma_offset``).
        # Each room bit is the sign of a counter kept at ``credit`` minus its threshold: the
        # update is the credit's own (two carry chains) and no comparison follows it.
        taken = Signal(range(depth + 1))
        sigma_taken = Signal(name="sigma_taken")
        m.d.sync += [taken.eq(self.reserve), sigma_taken.eq(self.sigma.en),
                     self.pending.eq((self.reserve != 0) | self.sigma.en)]
        p = self.params

        def advance(value):
            return value - taken - sigma_taken + pop

        m.d.sync += self.credit.eq(advance(self.credit))
        for room, threshold in ((self.room_x, p.chunks_b), (self.room_d, p.chunks_a),
                                (self.room_sigma, p.chunks_max + 1)):
            offset = Signal(range(-threshold - 1, depth + 1), init=depth - threshold,
                            name=f"{room.name}_offset")
            offset_next = Signal.like(offset, name=f"{room.name}_offset_next")
            m.d.comb += offset_next.eq(advance(offset))
            m.d.sync += offset.eq(offset_next)
            m.d.comb += room.eq(~offset[-1])
        return m

    def _fifo(self, m: Module, depth: int, word, word_valid):
        """The trace FIFO (``depth`` words) from ``word`` to ``trace``; returns the pop.

        The credit keeps it from ever being written when full, so it is written on
        ``word_valid`` alone, a flip-flop, with no level logic in front of the write enables.
        ``trace`` is driven from a register (``head``) in both forms:

        * LUT RAM (:func:`distributed`): the asynchronous read fills ``head``.
        * block RAM: the synchronous read's output latch is a stage of its own (``staged``)
          that moves into ``head``.  The block RAM's clock-to-out (~5.8 ns, Yosys maps a
          DP16KD without its output register) then ends at a flip-flop, not in the consumer's
          logic; the read is enabled only when the latch is empty or moving, so the two stages
          still pass one word a cycle.
        """
        width = self.layout.size
        lutram = distributed(depth, width)
        m.submodules.storage = mem = memory.Memory(shape=width, depth=depth, init=[],
                                                   attrs=ram_attrs(depth, width))
        wp = mem.write_port()
        rp = mem.read_port(domain="comb" if lutram else "sync")
        wptr, rptr = Signal(range(depth), name="wptr"), Signal(range(depth), name="rptr")
        count = Signal(range(depth + 1), name="count")  # words in the memory, not yet read out
        # count != 0 and count == 1 kept in flip-flops beside it, so the read decision (and the
        # count's own update behind it) does not start with a comparison of the count
        nonempty, single = Signal(name="count_nz"), Signal(name="count_one")
        head = Signal(width, name="head", reset_less=True)
        head_valid = Signal(name="head_valid")
        ready = self.trace.ready
        m.d.comb += [wp.addr.eq(wptr), wp.data.eq(word), wp.en.eq(word_valid), rp.addr.eq(rptr),
                     self.trace.valid.eq(head_valid), self.trace.payload.eq(head)]
        with m.If(word_valid):
            m.d.sync += wptr.eq(Mux(wptr == depth - 1, 0, wptr + 1))
        head_free = ~head_valid | ready
        if lutram:
            # count ≥ 1 only while the head is full or about to be filled, so it stays below
            # the depth and a live entry's address is never the one being written
            take = nonempty & head_free
            fill = take
        else:
            staged = Signal(name="staged")  # the read latch holds a word not yet in ``head``
            fill = staged & head_free
            take = nonempty & (~staged | fill)
            m.d.comb += rp.en.eq(take)
            m.d.sync += staged.eq(take | (staged & ~fill))
        with m.If(take):
            m.d.sync += rptr.eq(Mux(rptr == depth - 1, 0, rptr + 1))
        with m.If(fill):
            m.d.sync += [head.eq(rp.data), head_valid.eq(1)]
        with m.Elif(ready):
            m.d.sync += head_valid.eq(0)
        m.d.sync += count.eq(count + word_valid - take)
        with m.If(word_valid & ~take):
            m.d.sync += [nonempty.eq(1), single.eq(~nonempty)]
        with m.Elif(take & ~word_valid):
            m.d.sync += [nonempty.eq(~single), single.eq(count == 2)]
        return head_valid & ready


class FactorDump(wiring.Component):
    """The factor dump (module docstring); ``layout`` is the factors payload.

    ``addr`` issues the lanes' state-row reads; the rows arrive one cycle later (stage f),
    where each lane picks its word with its own copy of (column, kind), and the beat is
    pushed into a small FIFO (``amaranth.lib.fifo.SyncFIFOBuffered``, its output a register)
    that drives ``factors``.  Why a FIFO, and reads issued by credit: a read is issued only
    when the FIFO is sure to have room for it (its level and stage f, both registers), so
    stage f never waits and the lanes read their state rows every cycle: neither the lanes'
    read enables nor the dump's counters depend on ``factors.ready``.  (Held in the lanes'
    read registers, the data put ``ready`` onto a chip-wide net to their enables: the 64×64
    engine's path at ``8a29852``; driven straight from the lanes' multiplexers, the payload
    carried a chip-wide net from the column select to the consumer: its path at ``2c55987``.)
    ``dumping`` holds until the last beat has left.
    """

    FIFO_DEPTH = 4  # a read per cycle: issue, stage f, the FIFO's memory, its output register

    def __init__(self, params: EngineParams, layout: data.StructLayout) -> None:
        p, f = params, params.fmts
        self.params, self.layout = params, layout
        colw, chw = index_bits(p.k), index_bits(p.chunks_max)
        rows = data.ArrayLayout(data.ArrayLayout(signed(f.state.bits), p.k), p.P)
        super().__init__({
            "start": In(1),
            "col": In(unsigned(colw)),
            "all": In(1),
            "sigma": In(data.ArrayLayout(signed(f.sigma.bits), p.k)),
            "sx_rows": In(rows),  # the lanes' state rows read at ``addr`` (one cycle later)
            "sd_rows": In(rows),
            "dumping": Out(1),
            "addr": Out(unsigned(chw)),
            "factors": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        k, Ra, Rb = p.k, p.chunks_a, p.chunks_b
        colw, chw = index_bits(k), index_bits(p.chunks_max)
        depth = self.FIFO_DEPTH
        m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=self.layout.size, depth=depth)
        d_col = Signal(colw)
        d_end = Signal(colw)
        d_kind = Signal()
        d_more = Signal()
        # stage f: the rows read at the previous issue are on sx_rows / sd_rows
        f_valid = Signal()
        f = Signal(self.layout, reset_less=True)  # the beat's fields (data picked below)
        dumping, addr = self.dumping, self.addr
        issue = Signal()  # a read is issued at ``addr`` this cycle
        with m.If(self.start & ~dumping):
            m.d.sync += [
                dumping.eq(1), d_more.eq(1), d_kind.eq(0), addr.eq(0),
                d_col.eq(Mux(self.all, 0, self.col)), d_end.eq(Mux(self.all, k - 1, self.col)),
            ]
        # room for the beat when it reaches the FIFO a cycle later: registers only
        m.d.comb += issue.eq(dumping & d_more & (q.level + f_valid < depth))
        m.d.sync += f_valid.eq(issue)
        with m.If(issue):
            last_chunk = addr == Mux(d_kind, Rb, Ra) - 1
            m.d.sync += [f.col.eq(d_col), f.kind.eq(d_kind), f.chunk.eq(addr), f.sigma.eq(self.sigma[d_col]),
                         f.last.eq(last_chunk & d_kind & (d_col == d_end))]
            with m.If(last_chunk):
                m.d.sync += [addr.eq(0), d_kind.eq(~d_kind)]
                with m.If(d_kind == 1):
                    m.d.sync += d_col.eq(d_col + 1)
                    with m.If(d_col == d_end):
                        m.d.sync += d_more.eq(0)
            with m.Else():
                m.d.sync += addr.eq(addr + 1)
        # Each lane picks its word with its own copy of (column, kind), loaded with the read.
        words = []
        for ln in range(p.P):
            sel = dup_reg(m, unsigned(colw + 1), Cat(d_col, d_kind), f"dump_sel_l{ln}", dup=True, en=issue)
            words.append(Mux(sel[-1], self.sx_rows[ln][sel[:colw]], self.sd_rows[ln][sel[:colw]]))
        beat = Signal(self.layout)
        m.d.comb += [beat.eq(f), beat.data.eq(Cat(*words)),
                     q.w_en.eq(f_valid), q.w_data.eq(beat.as_value())]
        out = self.factors
        o = data.View(self.layout, q.r_data)
        m.d.comb += [out.valid.eq(q.r_rdy), out.payload.eq(o), q.r_en.eq(out.ready)]
        with m.If(q.r_rdy & out.ready & o.last):
            m.d.sync += dumping.eq(0)
        return m


class Status(wiring.Component):
    """Sticky flags, counters and ``busy`` (module docstring); ``active`` is every other
    reason to be busy (a job running, a stage valid, the scalar unit, a dump)."""

    def __init__(self) -> None:
        super().__init__({
            "sat_now": In(len(SAT_NAMES)),  # flags raised this cycle
            "guard_inc": In(1),
            "degen_inc": In(1),
            "active": In(1),
            "clear": In(1),
            "sat": Out(len(SAT_NAMES)),
            "sigma_guard": Out(32),
            "degenerate": Out(32),
            "cycles": Out(32),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        sat_r = Signal.like(self.sat_now)
        guard_r = Signal()
        degen_r = Signal()
        m.d.sync += [sat_r.eq(self.sat_now), guard_r.eq(self.guard_inc), degen_r.eq(self.degen_inc)]
        with m.If(self.clear):
            m.d.sync += [self.sat.eq(0), self.sigma_guard.eq(0), self.degenerate.eq(0), self.cycles.eq(0)]
        with m.Else():
            m.d.sync += [self.sat.eq(self.sat | sat_r), self.sigma_guard.eq(self.sigma_guard + guard_r),
                         self.degenerate.eq(self.degenerate + degen_r)]
            with m.If(self.busy):
                m.d.sync += self.cycles.eq(self.cycles + 1)
        # ``active`` is registered like the events above: busy (and the cycles it counts) follows
        # the engine one cycle late, and the many reasons to be busy stay off the counter's enable
        active_r = Signal()
        m.d.sync += active_r.eq(self.active)
        m.d.comb += self.busy.eq(active_r | sat_r.any() | guard_r | degen_r)
        return m
