"""Amaranth HDL components: the SBPCA power-iteration engine, crossbar drivers, SoC top."""
