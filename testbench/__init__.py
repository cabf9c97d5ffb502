"""cocotb co-simulation benches run on Verilator, with the golden model as scoreboard."""
