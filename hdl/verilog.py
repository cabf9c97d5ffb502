"""Verilog emission shared by every generator (engine, drivers, SoC)."""

from __future__ import annotations

from pathlib import Path

from amaranth.back import verilog


def write_verilog(component, name: str, out_dir: Path) -> Path:
    """Convert an Amaranth component to Verilog ``<out_dir>/<name>.v`` and return the path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = verilog.convert(component, name=name, emit_src=False)
    path = out_dir / f"{name}.v"
    path.write_text(text)
    return path
