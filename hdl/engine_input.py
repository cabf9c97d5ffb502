"""The engine's input buffer: the ``x`` and ``d`` (δ) streams into a double-buffered sample memory.

Two slots of s samples each: the streams fill one slot while the lanes read the other.  A
slot closes when it holds s samples of both streams, or at the end of a batch
(``x.payload.last`` on a sample's final chunk) with as many δ as x samples; it is then
offered to the sequencer on ``sub`` (slot, samples m and m − 1, end of batch) and comes back
free on ``release``, when the sequencer has issued the sub-batch's last job that reads it.
Chunks past a's or b's end (the last lane-wide word of a vector) are written as zeros.
Both ports pass a full-rate register slice first (``hdl.engine_pipeline.StreamSlice``: one
cycle of latency), so the port side's handshake meets only flip-flops of this unit.
Counters: samples and batches received, the size of the last complete batch, and the
sticky ``error`` when a batch exceeds ``max_batch`` samples.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .engine_params import EngineParams
from .synth import DUP_ATTR
from .engine_pipeline import StreamSlice, kept_net, index_bits, mem_addr, mem_depth, ram_attrs, read_next_cycle, reg

__all__ = ["InputBuffer", "sub_batch_layout"]


def sub_batch_layout(params: EngineParams) -> data.StructLayout:
    """A closed slot offered to the sequencer: its index, samples m, m − 1, end of batch."""
    smpw = index_bits(params.s)
    return data.StructLayout({"slot": 1, "m": smpw + 1, "m1": smpw + 1, "last": 1})


class InputBuffer(wiring.Component):
    """Sample slots and their stream side (module docstring).

    ``x_addr``/``d_addr`` read the sample memories (chunk, sample, slot fields of
    :func:`mem_addr`); the data are there two cycles later (``x_data``, ``d_data``), from a
    register of this unit.  Why two: a block RAM's read data (a DP16KD without its output
    register, ~5.8 ns clock-to-out) then meet only a register placed beside it, and the net
    on to the lanes starts at a flip-flop (the 64×64 engine's δ buffer → its data register
    across the device: 114.3 MHz at seed 3 of ``d3d4f9d``).  The engine gives the address a
    cycle earlier (the sequencer's, unregistered), so the lanes see the same cycle as before.
    """

    def __init__(self, params: EngineParams, x_layout, d_layout) -> None:
        p, f = params, params.fmts
        self.params = params
        lane = lambda shape: data.ArrayLayout(shape, p.P)  # noqa: E731
        super().__init__({
            "x": In(stream.Signature(x_layout)),
            "d": In(stream.Signature(d_layout)),
            "sub": Out(stream.Signature(sub_batch_layout(p))),
            "release": In(1),
            "release_slot": In(1),
            "x_addr": In(unsigned(len(mem_addr((0, p.chunks_b), (0, p.s), (0, 2))))),
            "x_data": Out(lane(signed(f.x.bits))),
            "d_addr": In(unsigned(len(mem_addr((0, p.chunks_a), (0, p.s), (0, 2))))),
            "d_data": Out(lane(signed(f.delta.bits))),
            "mid": Out(1),
            "beat": Out(1),  # a beat is taken at a port (x or δ) this cycle
            "any_full": Out(1),
            "batches": Out(32),
            "batches_p1": Out(32, init=1),
            "samples": Out(32),
            "batch_size": Out(32),
            "error": Out(1),
            "clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        p, f = self.params, self.params.fmts
        P, s = p.P, p.s
        Ra, Rb = p.chunks_a, p.chunks_b
        lane = lambda shape: data.ArrayLayout(shape, P)  # noqa: E731
        # the lanes read one slot while this side writes the other, so a read never meets a
        # write to the same address: synthesis need not build read-before-write logic
        xdepth, ddepth = mem_depth(Rb, s, 2), mem_depth(Ra, s, 2)
        m.submodules.xb = xb = memory.Memory(shape=lane(signed(f.x.bits)), depth=xdepth, init=[],
                                             attrs=ram_attrs(xdepth, P * f.x.bits, no_rw_check=1))
        m.submodules.db = db = memory.Memory(shape=lane(signed(f.delta.bits)), depth=ddepth, init=[],
                                             attrs=ram_attrs(ddepth, P * f.delta.bits, no_rw_check=1))
        xb_w, db_w = xb.write_port(), db.write_port()
        m.d.comb += [self.x_data.eq(reg(m, xb.shape, read_next_cycle(m, xb, self.x_addr, "xb"), "xb_q")),
                     self.d_data.eq(reg(m, db.shape, read_next_cycle(m, db, self.d_addr, "db"), "db_q"))]

        # both ports through a register slice: what follows reads the slices' flip-flops
        m.submodules.x_slice = x_slice = StreamSlice(self.x.payload.shape())
        m.submodules.d_slice = d_slice = StreamSlice(self.d.payload.shape())
        wiring.connect(m, wiring.flipped(self.x), x_slice.i)
        wiring.connect(m, wiring.flipped(self.d), d_slice.i)
        xs, ds = x_slice.o, d_slice.o

        smpw = index_bits(s)
        in_slot = Signal()
        cmp_slot = Signal()  # the next slot offered to the sequencer
        slot_free = Array(Signal(name=f"slot_free{i}", init=1) for i in range(2))
        slot_full_l = [Signal(name=f"slot_full{i}") for i in range(2)]
        slot_full = Array(slot_full_l)
        desc_m = Array(Signal(smpw + 1, name=f"desc_m{i}") for i in range(2))
        desc_m1 = Array(Signal(smpw + 1, name=f"desc_m1_{i}") for i in range(2))  # samples minus one
        desc_last = Array(Signal(name=f"desc_last{i}") for i in range(2))
        x_smp = Signal(range(s + 1))
        x_chunk = Signal(range(Rb))
        x_closed = Signal()
        d_smp = Signal(range(s + 1))
        d_chunk = Signal(range(Ra))
        # The ports' readys are flip-flops: whether the slot being filled is free, whether its x
        # side is done (end of batch or s samples) and the two comparisons of the sample counters
        # are registered from the next values of what they depend on (below), and so are the two
        # readys themselves (``x_rdy`` == free_now & ~x_done, ``d_rdy`` == free_now &
        # (d_lt if x_done else d_le)), each in two copies: one for the slice and the counters,
        # one private to the predicates' next values.  A beat meets one LUT (valid & ready &
        # last chunk) before the picks of those next values; the ready decode, and a net that
        # also reaches every counter's enable, are off that loop.
        free_now = Signal(name="free_now", init=1)  # == slot_free[in_slot]
        x_done = Signal(name="x_done")  # == x_closed | (x_smp == s)
        # x_smp − d_smp (from −1 to s) as a thermometer code: bit i says x_smp − d_smp >= i, so
        # d_smp <= x_smp (``d_le``), d_smp < x_smp (``d_lt``) and d_smp + 1 < x_smp are single
        # flip-flops, not comparisons of the counters (a carry chain in front of the readys'
        # next values: 16×16 seed 2 of ``d960e43``, 122.0 MHz); a sample's end shifts it
        d_ge = Signal(s + 2, name="d_ge", init=1)
        d_le, d_lt = d_ge[0], d_ge[1]
        # both copies carry DUP_ATTR: with it on one alone, Yosys merged the other into it (the
        # 64×64 engine at ``aab89ea``: one flip-flop again, its LUTs shared with the counters')
        x_rdy = Signal(name="x_rdy", init=1, attrs={DUP_ATTR: 1})
        d_rdy = Signal(name="d_rdy", init=1, attrs={DUP_ATTR: 1})
        x_rdy_p = Signal(name="x_rdy_p", init=1, attrs={DUP_ATTR: 1})
        d_rdy_p = Signal(name="d_rdy_p", init=1, attrs={DUP_ATTR: 1})
        m.d.comb += [xs.ready.eq(x_rdy), ds.ready.eq(d_rdy)]

        def masked(payload, chunk, n):
            if n % P == 0:
                return payload
            return Cat(*[Mux(chunk * P + l < n, payload[l], 0) for l in range(P)])

        x_take = xs.valid & xs.ready
        d_take = ds.valid & ds.ready
        # the writes are registered (address, data, enable): the handshake logic then drives one
        # flip-flop instead of every write enable of a LUT-RAM buffer.  A write lands one cycle
        # after its beat; the slot it fills is read no earlier than two cycles after it closes
        # (offer, begin, issue), so the lanes never see it early.
        m.d.sync += [
            xb_w.addr.eq(mem_addr((x_chunk, Rb), (x_smp, s), (in_slot, 2))),
            xb_w.data.eq(masked(xs.payload.data, x_chunk, p.cols)),
            xb_w.en.eq(x_take),
            db_w.addr.eq(mem_addr((d_chunk, Ra), (d_smp, s), (in_slot, 2))),
            db_w.data.eq(masked(ds.payload.data, d_chunk, p.rows)),
            db_w.en.eq(d_take),
        ]
        # samples of the open batch so far, counted as they arrive, and whether they exceed
        # max_batch: the batch-length check at a sub-batch's close reads one register instead
        # of an adder and a 32-bit comparison behind the close condition
        batch_cnt = Signal(32)
        over = Signal()
        close = Signal(name="close")
        # a sample's last chunk taken; the sample counters' and x_closed's next values (a close
        # resets them; no beat is taken while it holds)
        x_end, d_end = Signal(name="x_end"), Signal(name="d_end")
        # whether each port's chunk counter is at the vector's last chunk, kept in a flip-flop
        # (updated from the counter, not compared after it): a beat meets one flip-flop, not a
        # comparison, on its way to the readys' predicates
        x_chunk_last = Signal(name="x_chunk_last", init=int(Rb == 1))
        d_chunk_last = Signal(name="d_chunk_last", init=int(Ra == 1))
        m.d.comb += [x_end.eq(x_take & x_chunk_last), d_end.eq(d_take & d_chunk_last)]
        # the same two events from the private ready copies, for the predicates' next values
        x_end_p, d_end_p = Signal(name="x_end_p"), Signal(name="d_end_p")
        m.d.comb += [x_end_p.eq(xs.valid & x_rdy_p & x_chunk_last), d_end_p.eq(ds.valid & d_rdy_p & d_chunk_last)]
        nx_x_smp, nx_d_smp = Signal.like(x_smp, name="nx_x_smp"), Signal.like(d_smp, name="nx_d_smp")
        nx_x_closed = Signal(name="nx_x_closed")
        m.d.comb += [
            nx_x_smp.eq(Mux(close, 0, Mux(x_end, x_smp + 1, x_smp))),
            nx_d_smp.eq(Mux(close, 0, Mux(d_end, d_smp + 1, d_smp))),
            nx_x_closed.eq(Mux(close, 0, Mux(x_end_p, xs.payload.last, x_closed))),
        ]
        m.d.sync += [x_smp.eq(nx_x_smp), d_smp.eq(nx_d_smp), x_closed.eq(nx_x_closed)]
        # The readys' predicates at the next cycle, one case per event (a close; a sample's end
        # on x, on δ, on both or neither), each formed from registers in parallel and picked
        # last: a beat reaches them through the pick alone, not through the counters' adders
        # and a comparison.  A close resets both counters (0 < 0 is false, 0 <= 0 true).
        # The counters' difference is a thermometer code (``d_ge``): its next value is a shift
        # (δ's counter never passes x's by more than one: a δ beat needs d_smp <= x_smp).
        nx_x_done = Signal(name="nx_x_done")
        nx_d_ge = Signal.like(d_ge, name="nx_d_ge")
        nx_d_le, nx_d_lt = nx_d_ge[0], nx_d_ge[1]
        ge_up = Cat(Const(1, 1), d_ge[:-1])  # x_smp + 1 (the difference is at least −1)
        ge_down = Cat(d_ge[1:], Const(0, 1))  # d_smp + 1 (the difference is at most s)
        m.d.comb += [
            nx_x_done.eq(Mux(close, 0, Mux(x_end_p, xs.payload.last | (x_smp == s - 1), x_done))),
            nx_d_ge.eq(Mux(close, 1, Mux(x_end_p & ~d_end_p, ge_up, Mux(d_end_p & ~x_end_p, ge_down, d_ge)))),
        ]
        m.d.sync += [x_done.eq(nx_x_done), d_ge.eq(nx_d_ge)]
        # the batch count follows a registered copy of the sample's end: its 32 enables and
        # the comparison sit behind a flip-flop, not behind the beat's take (64×64 seed 3 of
        # ``cf4db4f``: the slice's valid → the take → a LUT by the count's carry chain →
        # ``x_closed``, two hops across the device).  It is read at the close, at least two
        # cycles after the last beat, when the late count has landed; no beat is taken between
        # the last beat and the close, so the reset at a close never meets a late count.
        x_end_r = Signal(name="x_end_r")
        m.d.sync += x_end_r.eq(x_end)
        with m.If(x_end_r):
            m.d.sync += batch_cnt.eq(batch_cnt + 1)
            with m.If(batch_cnt >= p.max_batch):
                m.d.sync += over.eq(1)
        with m.If(x_take):
            with m.If(x_chunk_last):
                m.d.sync += [x_chunk.eq(0), x_chunk_last.eq(int(Rb == 1))]
            with m.Else():
                m.d.sync += [x_chunk.eq(x_chunk + 1), x_chunk_last.eq(x_chunk == Rb - 2)]
        with m.If(d_take):
            with m.If(d_chunk_last):
                m.d.sync += [d_chunk.eq(0), d_chunk_last.eq(int(Ra == 1))]
            with m.Else():
                m.d.sync += [d_chunk.eq(d_chunk + 1), d_chunk_last.eq(d_chunk == Ra - 2)]
        # batches fully received, and that plus one counted alongside (no adder where it is used)
        batches, batches_p1 = self.batches, self.batches_p1
        m.d.comb += [
            self.any_full.eq(Cat(*slot_full_l).any()),
        ]
        # A sub-batch closes the cycle after its last beats (x and δ) are in: the condition is
        # registered, so the comparisons behind the ports' ready stay off the many registers
        # the close resets or loads.  Nothing is accepted meanwhile (both readys are low once
        # it holds), so the state it reads is unchanged; a close vetoes the next cycle's.
        m.d.sync += close.eq(free_now & x_done & d_le & ~d_lt & ~close)
        with m.If(close & x_closed):
            m.d.sync += [batches.eq(batches_p1), batches_p1.eq(batches_p1 + 1)]
        # inside a batch: a beat has come through a port since the last close that ended a
        # batch.  A flip-flop equal at every cycle to "a slice holds a beat, or any sample
        # counter or the batch count is non-zero" (no beat leaves a slice while a close holds),
        # without the 32-bit OR behind ``load.ready``.  A close that ends a batch clears it
        # only if neither slice holds a beat: such a beat belongs to the next batch.
        port_take = (self.x.valid & self.x.ready) | (self.d.valid & self.d.ready)
        m.d.comb += self.beat.eq(port_take)
        with m.If(port_take):
            m.d.sync += self.mid.eq(1)
        with m.Elif(close & x_closed & ~xs.valid & ~ds.valid):
            m.d.sync += self.mid.eq(0)
        with m.If(close):
            m.d.sync += [
                slot_full[in_slot].eq(1),
                desc_m[in_slot].eq(x_smp), desc_last[in_slot].eq(x_closed),
                desc_m1[in_slot].eq(x_smp - 1),
                self.samples.eq(self.samples + x_smp),
            ]
            with m.If(over):
                m.d.sync += self.error.eq(1)
            with m.If(x_closed):
                m.d.sync += [self.batch_size.eq(batch_cnt), batch_cnt.eq(0), over.eq(0)]

        # the sequencer's side: the next full slot, taken when its sub-batch begins.  The offer
        # is kept in registers of its own, loaded with what the slot offered next cycle will
        # hold (a close into it lands now), so the sequencer's begin logic starts at flip-flops
        # rather than at a slot multiplexer.  Both candidates (the same slot, the other slot)
        # are formed from registers; the begin picks between them last.
        taken = self.sub.valid & self.sub.ready
        off = self.sub.payload
        off_valid = Signal(name="offer_valid")
        m.d.comb += [self.sub.valid.eq(off_valid), off.slot.eq(cmp_slot)]
        new_m, new_m1 = Signal(smpw + 1, name="close_m"), Signal(smpw + 1, name="close_m1")
        m.d.comb += [new_m.eq(x_smp), new_m1.eq(x_smp - 1)]
        new_desc = Cat(new_m, new_m1, x_closed)  # (m, m1, last) of a slot closing now
        off_desc = Cat(off.m, off.m1, off.last)

        def candidate(slot, valid_now, desc_now):
            closing = close & (in_slot == slot)
            return closing | valid_now, Mux(closing, new_desc, desc_now)

        other = ~cmp_slot
        stay_valid_e, stay_desc = candidate(cmp_slot, off_valid, off_desc)
        next_valid_e, next_desc = candidate(other, slot_full[other],
                                            Cat(desc_m[other], desc_m1[other], desc_last[other]))
        # the two candidates' valid bits are kept as nets of their own (``keep``: the LUT mapper
        # must not fold the sequencer's begin into their cones): the begin then meets one LUT,
        # the final pick, before ``offer_valid`` (16×16 seed 1 of ``cfb5633``: the begin → three
        # LUT levels of the slot logic → ``offer_valid``, 7 levels with the begin's own)
        stay_valid = kept_net(m, stay_valid_e, "offer_stay_valid")
        next_valid = kept_net(m, next_valid_e, "offer_next_valid")
        m.d.sync += [off_valid.eq(Mux(taken, next_valid, stay_valid)),
                     off_desc.eq(Mux(taken, next_desc, stay_desc))]
        with m.If(taken):
            m.d.sync += [slot_full[cmp_slot].eq(0), cmp_slot.eq(~cmp_slot)]
        # a close takes the slot being filled and moves to the other; a release frees one (never
        # the one a close takes: that one is free); ``free_now`` follows from the next values.
        # The sequencer's release is registered here first: the readys' next values then start
        # at flip-flops of this unit, not at the sequencer's release logic (16×16 seed 1 of
        # ``aab89ea``: close → the sequencer's release LUT → the slot's free bit → ``x_rdy``,
        # 5.3 ns of routing there and back).  A slot comes free one cycle later.
        release = Signal(name="release_r")
        release_slot = Signal(name="release_slot_r")
        m.d.sync += [release.eq(self.release), release_slot.eq(self.release_slot)]
        nx_in_slot = in_slot ^ close
        nx_free = [Mux(release & (release_slot == i), 1,
                       Mux(close & (in_slot == i), 0, slot_free[i])) for i in range(2)]
        nx_free_now = Signal(name="nx_free_now")
        m.d.comb += nx_free_now.eq(Mux(nx_in_slot, nx_free[1], nx_free[0]))
        m.d.sync += [in_slot.eq(nx_in_slot), free_now.eq(nx_free_now)]
        nx_x_rdy = nx_free_now & ~nx_x_done
        nx_d_rdy = nx_free_now & Mux(nx_x_done, nx_d_lt, nx_d_le)
        m.d.sync += [x_rdy.eq(nx_x_rdy), x_rdy_p.eq(nx_x_rdy), d_rdy.eq(nx_d_rdy), d_rdy_p.eq(nx_d_rdy)]
        m.d.sync += [slot_free[i].eq(nx_free[i]) for i in range(2)]
        with m.If(self.clear):
            m.d.sync += self.error.eq(0)
        return m
