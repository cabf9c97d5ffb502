"""Verilog emission shared by every generator (engine, drivers, SoC)."""

from __future__ import annotations

from pathlib import Path

from amaranth.back import rtlil, verilog


class ZeroWidthCaseError(ValueError):
    """The design's RTLIL has a ``case 0'`` (a switch on a zero-width value, e.g. an index of
    ``Signal(range(1))``).  Yosys's ``proc`` can drop such a case when it follows another
    switch in the same branch, so the Verilog would lose assignments that Amaranth's own
    simulator performs (the one-lane SoC's state loader did: docs/VERIFICATION.md)."""


def zero_width_cases(rtlil_text: str) -> list[str]:
    """The ``case 0'`` lines of ``rtlil_text``, each with the ``switch`` line above it."""
    lines = rtlil_text.splitlines()
    return [f"{lines[i - 1].strip()} / {line.strip()}" for i, line in enumerate(lines)
            if line.strip().startswith("case 0'")]


def write_verilog(component, name: str, out_dir: Path) -> Path:
    """Convert an Amaranth component to Verilog ``<out_dir>/<name>.v`` and return the path.

    The RTLIL is checked first (:class:`ZeroWidthCaseError`): a design is emitted only when
    its Verilog and its Amaranth simulation can be trusted to agree.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = rtlil.convert(component, name=name, emit_src=False)
    bad = zero_width_cases(text)
    if bad:
        raise ZeroWidthCaseError(
            f"{name}: {len(bad)} switch(es) on a zero-width value (index a one-element range with a "
            f"constant instead, e.g. `for l in range(n): with m.If(idx == l)`): {bad[:3]}")
    # the same Yosys step ``verilog.convert`` runs on the RTLIL it makes
    path = out_dir / f"{name}.v"
    path.write_text(verilog._convert_rtlil_text(text))
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
