"""Verilog test wrapper of the engine for the block-mode bench (no Python per clock).

The wrapper ``sbpca_engine_tb`` holds the whole bench on the simulator side:

* **ROM-driven sources** — the x, δ and load beats and a segment table (load end, x end,
  δ end, factor request) are memories filled with ``$readmemh`` on a ``reload`` pulse;
  one block of segments runs from ``start`` to ``done`` with no Python in between.
* **Stall generators** — one 32-bit xorshift LFSR per port (x, δ, load, factor request,
  trace, factors) drops a source's valid or a sink's ready when its low 16 bits are below
  the port's threshold (``thr_* = p · 65536``), so the stall probability is an input, not
  part of the netlist.
* **Comparing sinks** — each trace or factor word is looked up by its identity (column,
  kind, chunk and the per-column sub-batch or dump counter) in an expected-word ROM and
  compared there; a tag memory marks each expected word seen once.  Mismatches, surplus
  words (past the expected count), duplicates, illegal fields and unrequested columns are
  counted, and each sink's first :data:`MM_RECORDS` are kept with both values for the report.

Only top-level ports are read, so the build needs no ``--public-flat-rw``.  The ROM depths
come from :class:`HarnessDepths`; the stimulus never changes the netlist, so a build is
reused for every stream of the same engine parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from hdl.engine_params import EngineParams
from pymodel.saturation import SAT_NAMES

__all__ = ["HarnessDepths", "harness_verilog", "TB_TOPLEVEL", "MM_RECORDS", "MM_SOURCES", "HEX_FILES"]

TB_TOPLEVEL = "sbpca_engine_tb"
MM_RECORDS = 4  # per sink: the trace sink's first four, then the factor sink's
#: mismatch source codes of the comparing sinks (``mm_src``)
MM_SOURCES = {1: "trace word differs", 2: "surplus trace word", 3: "trace word with illegal fields",
              4: "duplicate trace word", 5: "factor word differs", 6: "surplus factor word",
              7: "factor word of a column not requested", 8: "factor word with illegal fields",
              9: "duplicate factor word"}
#: ROM name -> file the wrapper reads (relative to the simulator's working directory)
HEX_FILES = {"x": "tb_x.hex", "d": "tb_d.hex", "ld": "tb_ld.hex", "seg": "tb_seg.hex",
             "texp": "tb_texp.hex", "fexp": "tb_fexp.hex", "fmask": "tb_fmask.hex"}


def _pow2(n: int) -> int:
    return 1 << max(4, (int(n) - 1).bit_length())


@dataclass(frozen=True)
class HarnessDepths:
    """ROM depths (powers of two) of one block: beats per port, segments, expected words."""

    x: int
    d: int
    ld: int
    seg: int
    texp: int
    fexp: int
    dumps: int

    @classmethod
    def for_block_limits(cls, params: EngineParams, samples: int, segments: int, sub_batches: int,
                         dumps: int) -> "HarnessDepths":
        p = params
        wps = p.k * (p.chunks_a + p.chunks_b + 1)
        return cls(x=_pow2(samples * p.chunks_b), d=_pow2(samples * p.chunks_a),
                   ld=_pow2(segments * p.k * (p.chunks_a + p.chunks_b + 1)), seg=_pow2(segments),
                   texp=_pow2(sub_batches * wps), fexp=_pow2(dumps * p.k * (p.chunks_a + p.chunks_b)),
                   dumps=_pow2(dumps))


def _field(payloads: dict, port: str, name: str) -> tuple[int, int]:
    for f in payloads[port]["fields"]:
        if f["name"] == name:
            return f["offset"], f["width"]
    raise KeyError(f"payload of {port!r} has no field {name!r}")


def harness_verilog(params: EngineParams, payloads: dict, depths: HarnessDepths, *,
                    engine_module: str = "sbpca_engine") -> str:
    """Verilog text of the wrapper around ``engine_module`` (whose payloads the manifest gives)."""
    p = params
    k, Ra, Rb = p.k, p.chunks_a, p.chunks_b
    wps = k * (Ra + Rb + 1)
    fps = k * (Ra + Rb)
    W = {n: payloads[n]["width"] for n in ("x", "d", "load", "factor_req", "trace", "factors")}
    t_do, t_dw = _field(payloads, "trace", "data")
    t_so, t_sw = _field(payloads, "trace", "sigma")
    t_co, t_cw = _field(payloads, "trace", "col")
    t_ko, t_kw = _field(payloads, "trace", "kind")
    t_ho, t_hw = _field(payloads, "trace", "chunk")
    f_do, f_dw = _field(payloads, "factors", "data")
    f_so, f_sw = _field(payloads, "factors", "sigma")
    f_co, f_cw = _field(payloads, "factors", "col")
    f_ko, _ = _field(payloads, "factors", "kind")
    f_ho, f_hw = _field(payloads, "factors", "chunk")
    f_lo, _ = _field(payloads, "factors", "last")
    assert (t_dw, t_sw) == (f_dw, f_sw), "trace and factor words must carry the same data and sigma fields"
    EW = t_dw + t_sw  # expected word: {sigma, data}
    SEGW = 96 + 1 + W["factor_req"]
    MW = max(W["trace"], W["factors"])
    sat_w = len(SAT_NAMES)
    sig_w = k * p.fmts.sigma.bits
    ports = ["x", "d", "load", "factor_req", "trace", "factors"]
    lfsr_consts = [0x9E3779B9, 0x85EBCA6B, 0xC2B2AE35, 0x27D4EB2F, 0x165667B1, 0xD3A2646C]

    L = []
    a = L.append
    a(f"// generated by testbench/engine_harness.py for a={p.rows} b={p.cols} k={k} s={p.s} P={p.P} "
      f"{p.fmts.name}: do not edit")
    a("`timescale 1ns/1ps")
    a(f"module {TB_TOPLEVEL} (")
    a("  input clk_in, output clk_mon, input rst, input reload, input start, input drain, input trace_en,")
    a("  input [31:0] seed, input [31:0] n_seg, input [31:0] n_sub, input [31:0] n_dump,")
    a("  input [31:0] tr_total, input [31:0] fr_total,")
    a("  input [15:0] thr_x, input [15:0] thr_d, input [15:0] thr_l, input [15:0] thr_q,")
    a("  input [15:0] thr_t, input [15:0] thr_f, input [2:0] mm_sel,")
    a("  output reg done, output reg [63:0] cyc, output reg [31:0] block,")
    a("  output reg [31:0] tr_got, output reg [31:0] fr_got, output reg [31:0] mism,")
    a("  output reg [31:0] xi, output reg [31:0] di, output reg [31:0] li, output reg [31:0] seg,")
    a("  output reg [31:0] busy_cycles, output reg [31:0] dump_idx,")
    a("  output reg [31:0] bp_x, output reg [31:0] bp_d, output reg [31:0] bp_l, output reg [31:0] bp_q,")
    a("  output reg [31:0] bp_t, output reg [31:0] bp_f, output reg [31:0] full_x,")
    a("  output [31:0] tmism_out, output [31:0] fmism_out,")
    a(f"  output [3:0] mm_src, output [31:0] mm_addr, output [{MW - 1}:0] mm_got, output [{EW - 1}:0] mm_exp,")
    a("  output [63:0] mm_cyc,")
    a(f"  output busy, output in_batch, output [{sat_w - 1}:0] sat, output error, output [31:0] sigma_guard,")
    a("  output [31:0] degenerate, output [31:0] samples, output [31:0] sub_batches, output [31:0] batches,")
    a(f"  output [31:0] batch_size, output [31:0] cycles, output [{sig_w - 1}:0] sigma,")
    a("  output trace_valid_out, output factors_valid_out, output x_valid_out, output d_valid_out,")
    a("  output load_valid_out, output req_valid_out")
    a(");")
    # the clock: generated here under Verilator --timing (no per-edge work for cocotb), or from
    # clk_in (the no-Python C++ loop drives it)
    a("`ifdef SBPCA_TB_TIMING")
    a("  reg clk = 1'b0;")
    a("  initial forever #5 clk = ~clk;")
    a("`else")
    a("  wire clk = clk_in;")
    a("`endif")
    a("  assign clk_mon = clk;")
    for name, dep, wid in (("x", depths.x, W["x"]), ("d", depths.d, W["d"]), ("ld", depths.ld, W["load"]),
                           ("seg", depths.seg, SEGW), ("texp", depths.texp, EW), ("fexp", depths.fexp, EW),
                           ("fmask", depths.dumps, k)):
        a(f"  reg [{wid - 1}:0] {name}_rom [0:{dep - 1}];")
    a(f"  reg [31:0] tseen [0:{depths.texp - 1}];")
    a(f"  reg [31:0] fseen [0:{depths.fexp - 1}];")
    a("  integer i;")
    a("  initial begin")
    a(f"    for (i = 0; i < {depths.texp}; i = i + 1) tseen[i] = 32'hffffffff;")
    a(f"    for (i = 0; i < {depths.fexp}; i = i + 1) fseen[i] = 32'hffffffff;")
    a("  end")
    a("  always @(posedge clk) if (reload) begin")
    for name in ("x", "d", "ld", "seg", "texp", "fexp", "fmask"):
        a(f'    $readmemh("{HEX_FILES[name]}", {name}_rom);')
    a("  end")
    # ---- stall generators
    for i, port in enumerate(ports):
        a(f"  reg [31:0] lf_{port};")
        a(f"  wire [31:0] lf_{port}_a = lf_{port} ^ (lf_{port} << 13);")
        a(f"  wire [31:0] lf_{port}_b = lf_{port}_a ^ (lf_{port}_a >> 17);")
        a(f"  wire [31:0] lf_{port}_n = lf_{port}_b ^ (lf_{port}_b << 5);")
    a("  wire st_x = lf_x[15:0] < thr_x, st_d = lf_d[15:0] < thr_d, st_l = lf_load[15:0] < thr_l;")
    a("  wire st_q = lf_factor_req[15:0] < thr_q, st_t = lf_trace[15:0] < thr_t, "
      "st_f = lf_factors[15:0] < thr_f;")
    # ---- engine
    a("  reg x_valid, d_valid, l_valid, q_valid, t_ready, f_ready;")
    a(f"  reg [{W['x'] - 1}:0] x_payload; reg [{W['d'] - 1}:0] d_payload; reg [{W['load'] - 1}:0] l_payload;")
    a("  wire x_ready, d_ready, l_ready, q_ready, t_valid, f_valid;")
    a(f"  wire [{W['trace'] - 1}:0] t_payload; wire [{W['factors'] - 1}:0] f_payload;")
    a("  reg running;")
    a(f"  wire [{SEGW - 1}:0] seg_word = seg_rom[seg[{max(1, (depths.seg - 1).bit_length()) - 1}:0]];")
    a("  wire [31:0] seg_l_end = seg_word[31:0], seg_x_end = seg_word[63:32], seg_d_end = seg_word[95:64];")
    a("  wire seg_dump = seg_word[96];")
    a(f"  wire [{W['factor_req'] - 1}:0] seg_req = seg_word[{SEGW - 1}:97];")
    a(f"  {engine_module} dut (.clk(clk), .rst(rst), .x__valid(x_valid), .x__payload(x_payload), .x__ready(x_ready),")
    a("    .d__valid(d_valid), .d__payload(d_payload), .d__ready(d_ready),")
    a("    .load__valid(l_valid), .load__payload(l_payload), .load__ready(l_ready),")
    a("    .factor_req__valid(q_valid), .factor_req__payload(seg_req), .factor_req__ready(q_ready),")
    a("    .trace__valid(t_valid), .trace__payload(t_payload), .trace__ready(t_ready),")
    a("    .factors__valid(f_valid), .factors__payload(f_payload), .factors__ready(f_ready),")
    a("    .trace_en(trace_en), .clear(1'b0), .busy(busy), .in_batch(in_batch), .sat(sat), .error(error),")
    a("    .sigma_guard(sigma_guard), .degenerate(degenerate), .samples(samples), .sub_batches(sub_batches),")
    a("    .batches(batches), .batch_size(batch_size), .cycles(cycles), .sigma(sigma));")
    a("  assign trace_valid_out = t_valid; assign factors_valid_out = f_valid;")
    a("  assign x_valid_out = x_valid; assign d_valid_out = d_valid; assign load_valid_out = l_valid;")
    a("  assign req_valid_out = q_valid;")
    # ---- sources: phase 0 load, 1 stream, 2 request, 3 next segment
    a("  reg [1:0] phase;")
    a("  wire x_fire = x_valid & x_ready, d_fire = d_valid & d_ready, l_fire = l_valid & l_ready;")
    a("  wire q_fire = q_valid & q_ready;")
    a("  wire [31:0] xi_n = xi + x_fire, di_n = di + d_fire, li_n = li + l_fire;")
    a("  wire seg_ok = running && seg < n_seg;")
    a("  wire [31:0] lim_l = (seg_ok && phase == 2'd0) ? seg_l_end : li_n;")
    a("  wire [31:0] lim_x = (seg_ok && phase == 2'd1) ? seg_x_end : xi_n;")
    a("  wire [31:0] lim_d = (seg_ok && phase == 2'd1) ? seg_d_end : di_n;")
    # ---- trace sink
    colw = max(1, (k - 1).bit_length())
    a(f"  wire [{t_dw - 1}:0] t_data = t_payload[{t_do + t_dw - 1}:{t_do}];")
    a(f"  wire [{t_sw - 1}:0] t_sig = t_payload[{t_so + t_sw - 1}:{t_so}];")
    a(f"  wire [{t_cw - 1}:0] t_col = t_payload[{t_co + t_cw - 1}:{t_co}];")
    a(f"  wire [{t_kw - 1}:0] t_kind = t_payload[{t_ko + t_kw - 1}:{t_ko}];")
    a(f"  wire [{t_hw - 1}:0] t_chunk = t_payload[{t_ho + t_hw - 1}:{t_ho}];")
    a(f"  reg [31:0] cnt_x [0:{k - 1}]; reg [31:0] cnt_d [0:{k - 1}]; reg [31:0] cnt_s [0:{k - 1}];")
    a(f"  wire t_legal = (t_kind != 2'd3) && ({{1'b0, t_col}} < {k}) && "
      f"(t_kind == 2'd2 ? t_chunk == 0 : ({{1'b0, t_chunk}} < (t_kind == 2'd0 ? {Rb} : {Ra})));")
    a(f"  wire [31:0] t_sub = t_kind == 2'd0 ? cnt_x[t_col[{colw - 1}:0]] : "
      f"(t_kind == 2'd1 ? cnt_d[t_col[{colw - 1}:0]] : cnt_s[t_col[{colw - 1}:0]]);")
    a(f"  wire [31:0] t_base = t_kind == 2'd0 ? t_col * {Rb} + t_chunk : "
      f"(t_kind == 2'd1 ? {k * Rb} + t_col * {Ra} + t_chunk : {k * (Ra + Rb)} + t_col);")
    a(f"  wire [31:0] t_addr = t_sub * {wps} + t_base;")
    tab = max(1, (depths.texp - 1).bit_length())
    a(f"  wire [{EW - 1}:0] t_exp = texp_rom[t_addr[{tab - 1}:0]];")
    a(f"  wire t_same = t_kind == 2'd2 ? (t_sig == t_exp[{EW - 1}:{t_dw}]) : (t_data == t_exp[{t_dw - 1}:0]);")
    a("  wire t_fire = t_valid & t_ready;")
    a("  wire t_surplus = t_sub >= n_sub;")
    a(f"  wire t_dup = tseen[t_addr[{tab - 1}:0]] == block;")
    a("  wire [3:0] t_err = !t_legal ? 4'd3 : (t_surplus ? 4'd2 : (t_dup ? 4'd4 : (!t_same ? 4'd1 : 4'd0)));")
    # ---- factor sink
    a(f"  wire [{f_dw - 1}:0] f_data = f_payload[{f_do + f_dw - 1}:{f_do}];")
    a(f"  wire [{f_sw - 1}:0] f_sig = f_payload[{f_so + f_sw - 1}:{f_so}];")
    a(f"  wire [{f_cw - 1}:0] f_col = f_payload[{f_co + f_cw - 1}:{f_co}];")
    a(f"  wire f_kind = f_payload[{f_ko}];")
    a(f"  wire [{f_hw - 1}:0] f_chunk = f_payload[{f_ho + f_hw - 1}:{f_ho}];")
    a(f"  wire f_last = f_payload[{f_lo}];")
    a(f"  wire f_legal = ({{1'b0, f_col}} < {k}) && ({{1'b0, f_chunk}} < (f_kind ? {Rb} : {Ra}));")
    a(f"  wire [31:0] f_base = f_kind ? f_col * {Rb} + f_chunk : {k * Rb} + f_col * {Ra} + f_chunk;")
    a(f"  wire [31:0] f_addr = dump_idx * {fps} + f_base;")
    fab = max(1, (depths.fexp - 1).bit_length())
    dab = max(1, (depths.dumps - 1).bit_length())
    a(f"  wire [{EW - 1}:0] f_exp = fexp_rom[f_addr[{fab - 1}:0]];")
    a(f"  wire [{k - 1}:0] f_mask = fmask_rom[dump_idx[{dab - 1}:0]];")
    a(f"  wire f_same = (f_sig == f_exp[{EW - 1}:{f_dw}]) && (f_data == f_exp[{f_dw - 1}:0]);")
    a("  wire f_fire = f_valid & f_ready;")
    a("  wire f_surplus = dump_idx >= n_dump;")
    a(f"  wire f_dup = fseen[f_addr[{fab - 1}:0]] == block;")
    a(f"  wire f_req = f_mask[f_col[{colw - 1}:0]];")
    a("  wire [3:0] f_err = !f_legal ? 4'd8 : (f_surplus ? 4'd6 : (!f_req ? 4'd7 : (f_dup ? 4'd9 : "
      "(!f_same ? 4'd5 : 4'd0))));")
    # ---- mismatch records: the first MM_RECORDS of the trace sink, then of the factor sink
    a(f"  reg [3:0] r_src [0:{2 * MM_RECORDS - 1}]; reg [31:0] r_addr [0:{2 * MM_RECORDS - 1}];")
    a(f"  reg [{MW - 1}:0] r_got [0:{2 * MM_RECORDS - 1}]; reg [{EW - 1}:0] r_exp [0:{2 * MM_RECORDS - 1}];")
    a(f"  reg [63:0] r_cyc [0:{2 * MM_RECORDS - 1}];")
    a("  reg [31:0] tmism, fmism;")
    a("  assign tmism_out = tmism; assign fmism_out = fmism;")
    a("  assign mm_src = r_src[mm_sel]; assign mm_addr = r_addr[mm_sel];")
    a("  assign mm_got = r_got[mm_sel]; assign mm_exp = r_exp[mm_sel]; assign mm_cyc = r_cyc[mm_sel];")
    # ---- sequential part
    a("  always @(posedge clk) begin")
    a("    if (rst) begin")
    a("      running <= 0; done <= 0; cyc <= 0; block <= 0; mism <= 0; tmism <= 0; fmism <= 0; busy_cycles <= 0;")
    a("      x_valid <= 0; d_valid <= 0; l_valid <= 0; q_valid <= 0; t_ready <= 0; f_ready <= 0;")
    a("      bp_x <= 0; bp_d <= 0; bp_l <= 0; bp_q <= 0; bp_t <= 0; bp_f <= 0; full_x <= 0;")
    for i, port in enumerate(ports):
        a(f"      lf_{port} <= (seed ^ 32'h{lfsr_consts[i]:08x}) | 32'h1;")
    a(f"      for (i = 0; i < {2 * MM_RECORDS}; i = i + 1) r_src[i] <= 0;")
    a("    end else begin")
    a("      cyc <= cyc + 1;")
    a("      if (busy) busy_cycles <= busy_cycles + 1;")
    for port in ports:
        a(f"      lf_{port} <= lf_{port}_n;")
    a("      if (x_valid & ~x_ready) bp_x <= bp_x + 1; if (d_valid & ~d_ready) bp_d <= bp_d + 1;")
    a("      if (l_valid & ~l_ready) bp_l <= bp_l + 1; if (q_valid & ~q_ready) bp_q <= bp_q + 1;")
    a("      if (t_valid & ~t_ready) bp_t <= bp_t + 1; if (f_valid & ~f_ready) bp_f <= bp_f + 1;")
    a("      if (~x_ready & ~d_ready & running & phase == 2'd1) full_x <= full_x + 1;")
    a("      if (start & ~running) begin")
    a("        running <= 1; done <= 0; block <= block + 1;")
    a("        xi <= 0; di <= 0; li <= 0; seg <= 0; phase <= 0; tr_got <= 0; fr_got <= 0; dump_idx <= 0;")
    a(f"        for (i = 0; i < {k}; i = i + 1) begin cnt_x[i] <= 0; cnt_d[i] <= 0; cnt_s[i] <= 0; end")
    a("      end else begin")
    a("        xi <= xi_n; di <= di_n; li <= li_n;")
    a("        if (running) begin")
    a("          if (phase == 2'd0 && seg < n_seg && li_n >= seg_l_end) phase <= 2'd1;")
    a("          if (phase == 2'd1 && xi_n >= seg_x_end && di_n >= seg_d_end) phase <= seg_dump ? 2'd2 : 2'd3;")
    a("          if ((phase == 2'd2 && q_fire) || phase == 2'd3) begin seg <= seg + 1; phase <= 2'd0; end")
    a("          if (seg >= n_seg && tr_got >= tr_total && fr_got >= fr_total && !x_valid && !d_valid"
      " && !l_valid && !q_valid) begin running <= 0; done <= 1; end")
    a("        end")
    a("      end")
    # source drive: a presented beat is held until accepted
    for (v, pl, idx_n, lim, st, rom, dep) in (("x_valid", "x_payload", "xi_n", "lim_x", "st_x", "x_rom", depths.x),
                                                ("d_valid", "d_payload", "di_n", "lim_d", "st_d", "d_rom", depths.d),
                                                ("l_valid", "l_payload", "li_n", "lim_l", "st_l", "ld_rom", depths.ld)):
        ab = max(1, (dep - 1).bit_length())
        fire = {"x_valid": "x_fire", "d_valid": "d_fire", "l_valid": "l_fire"}[v]
        a(f"      if (!{v} || {fire}) begin")
        a(f"        {v} <= running && !drain && {idx_n} < {lim} && !{st};")
        a(f"        {pl} <= {rom}[{idx_n}[{ab - 1}:0]];")
        a("      end")
    a("      if (q_fire) q_valid <= 0;")
    a("      else if (!q_valid) q_valid <= running && !drain && seg_ok && phase == 2'd2 && !st_q;")
    a("      t_ready <= drain | !st_t; f_ready <= drain | !st_f;")
    # trace sink
    a("      if (t_fire) begin")
    a("        tr_got <= tr_got + 1;")
    a("        if (t_legal) begin")
    a(f"          tseen[t_addr[{tab - 1}:0]] <= block;")
    a(f"          if (t_kind == 2'd0 && t_chunk == {Rb - 1}) cnt_x[t_col[{colw - 1}:0]] <= t_sub + 1;")
    a(f"          if (t_kind == 2'd1 && t_chunk == {Ra - 1}) cnt_d[t_col[{colw - 1}:0]] <= t_sub + 1;")
    a(f"          if (t_kind == 2'd2) cnt_s[t_col[{colw - 1}:0]] <= t_sub + 1;")
    a("        end")
    a("      end")
    a("      if (f_fire) begin")
    a("        fr_got <= fr_got + 1;")
    a(f"        if (f_legal) fseen[f_addr[{fab - 1}:0]] <= block;")
    a("        if (f_last) dump_idx <= dump_idx + 1;")
    a("      end")
    # records
    a("      mism <= mism + (t_fire && t_err != 0) + (f_fire && f_err != 0);")
    a("      if (t_fire && t_err != 0) begin")
    a("        tmism <= tmism + 1;")
    a(f"        if (tmism < {MM_RECORDS}) begin")
    a("          r_src[tmism[2:0]] <= t_err; r_addr[tmism[2:0]] <= t_addr; r_got[tmism[2:0]] <= t_payload;")
    a("          r_exp[tmism[2:0]] <= t_exp; r_cyc[tmism[2:0]] <= cyc;")
    a("        end")
    a("      end")
    a("      if (f_fire && f_err != 0) begin")
    a("        fmism <= fmism + 1;")
    a(f"        if (fmism < {MM_RECORDS}) begin")
    a(f"          r_src[fmism[2:0] + {MM_RECORDS}] <= f_err; r_addr[fmism[2:0] + {MM_RECORDS}] <= f_addr;")
    a(f"          r_got[fmism[2:0] + {MM_RECORDS}] <= f_payload; r_exp[fmism[2:0] + {MM_RECORDS}] <= f_exp;")
    a(f"          r_cyc[fmism[2:0] + {MM_RECORDS}] <= cyc;")
    a("        end")
    a("      end")
    a("    end")
    a("  end")
    a("endmodule")
    return "\n".join(L) + "\n"
