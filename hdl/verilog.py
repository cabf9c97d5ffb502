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


def port_list(component) -> list[dict]:
    """The component's ports as a manifest lists them: Verilog name, direction (``in``/``out``), width."""
    from amaranth.hdl import Shape

    ports = []
    for path, member in component.signature.members.flatten():
        if member.is_port:
            ports.append({"name": "__".join(str(x) for x in path), "direction": member.flow.value.lower(),
                          "width": int(Shape.cast(member.shape).width)})
    return ports
