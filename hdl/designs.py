"""The designs of ``sbpca gen``, ``sbpca cosim`` and ``sbpca synth``: one registry entry each.

A :class:`Design` says, once, which command-line parameters a design takes (names from the
one vocabulary :data:`FLAGS`), how they become its parameter dataclass, how the component
is built, what its JSON manifest holds and the one-line summary ``sbpca gen`` prints.
``gen`` and ``cosim`` add a design's flags to their sub-command with
:func:`add_design_args`; ``synth`` (one ``--top`` option for every design) adds the union
with :func:`add_all_design_args` and checks with :func:`design_values` that each flag given
belongs to the chosen design.  The same flag therefore has the same name, type, default and
meaning in the three commands.

Spellings kept for old command lines (and docs/ results recorded with them), each accepted
and mapped to the canonical flag: ``--format`` for ``--format-set`` (every design), and
``--bl`` for ``--bl-max`` (the driver; ``sbpca cosim soc --bl`` is the run's UPDATE_CFG.BL).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Callable, Mapping

from pymodel.crossbar.params import SCHEMES
from pymodel.formats import DEFAULT_FORMAT_SET, FORMAT_SETS, SBPCAFormats, get_format_set

from .dsp import PRIMITIVES

__all__ = ["Flag", "FLAGS", "Design", "DESIGNS", "get_design", "add_design_args", "add_all_design_args",
           "design_values", "flag_text", "build"]

GIVEN = "_design_flags_given"
"""Namespace attribute: {dest: option string} of the design flags given on the command line."""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {value}")
    return value


def _taps(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"taps must be comma-separated integers, not {text!r}") from None


@dataclass(frozen=True)
class Flag:
    """One design parameter on the command line: the same in every command and design."""

    option: str  # canonical spelling, e.g. "--format-set"
    type: Callable[[str], object]
    default: object
    help: str
    choices: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()  # other spellings every design accepts

    @property
    def dest(self) -> str:
        return self.option[2:].replace("-", "_")

    def text(self, value) -> str:
        """``value`` as this flag's command-line argument (inverse of ``type``)."""
        if isinstance(value, (tuple, list)):
            return ",".join(str(v) for v in value)
        return str(value)


_FLAG_LIST = (
    Flag("--rows", _positive, 64, "a: rows (outputs) of the layer, the length of δ"),
    Flag("--cols", _positive, 64, "b: columns (inputs) of the layer, the length of x"),
    Flag("--rank", _positive, 4, "k: rank of the estimate"),
    Flag("--sub-batch", _positive, 16, "s: samples per sub-batch"),
    Flag("--lanes", _positive, 8, "P: parallel multiply-accumulate lanes"),
    Flag("--format-set", str, DEFAULT_FORMAT_SET, "fixed-point format set (pymodel.formats)",
         choices=tuple(sorted(FORMAT_SETS)), aliases=("--format",)),
    Flag("--data-bits", _positive, None, "override the x/δ/state width of the format set (2..32)"),
    Flag("--max-batch", _positive, 65535, "largest batch the engine's sample counter holds"),
    Flag("--iter-bits", _positive, 1, "quotient/root bits per clock of the divider and square root"),
    Flag("--tree-levels-per-stage", _positive, 1, "lane adder-tree levels between registers"),
    Flag("--dsp", str, "generic", "primitive of the engine's multiplier tiles (hdl.dsp); "
         "`sbpca synth --target ecp5` picks ecp5 unless this is given", choices=PRIMITIVES),
    Flag("--scheme", str, "stochastic", "crossbar pulse scheme", choices=SCHEMES),
    Flag("--bl-max", _positive, 31, "longest pulse train BL of the driver, in time slots"),
    Flag("--prob-bits", _positive, 12, "P: stochastic threshold fraction bits"),
    Flag("--lfsr-width", _positive, 16, "LFSR width"),
    Flag("--lfsr-taps", _taps, None, "LFSR taps, e.g. 16,15,13,4 (default: maximal)"),
    Flag("--lfsr-leap", _positive, None, "LFSR steps per slot (default: smallest >= width coprime to the period)"),
    Flag("--level-bits", _positive, 4, "deterministic row level code width incl. sign"),
    Flag("--fifo-depth", _positive, 16, "words in each FIFO window of the register bank"),
    Flag("--seed", int, 0, "the design's seed"),
    Flag("--driver-seed", int, 0, "seed of the driver's LFSR lane seeds"),
)
FLAGS: dict[str, Flag] = {f.dest: f for f in _FLAG_LIST}
"""The one vocabulary of design parameters, by ``dest``."""


@dataclass(frozen=True)
class Design:
    """Everything the commands need to know about one design."""

    name: str  # "engine"
    verilog_name: str  # default module name
    help: str
    flags: tuple[str, ...]  # dests in FLAGS, in help order
    params: Callable[[argparse.Namespace], object]  # design values -> parameter dataclass
    component: Callable[[object, argparse.Namespace], object]  # (params, values) -> component
    manifest: Callable[[object, object, argparse.Namespace, str], dict]  # (comp, params, values, name)
    summary: Callable[[object], str]  # params -> one line for `sbpca gen`
    helps: Mapping[str, str] = field(default_factory=dict)  # design-specific meaning of a flag
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # extra spellings for this design

    def __post_init__(self) -> None:
        unknown = [d for d in self.flags if d not in FLAGS]
        if unknown:
            raise ValueError(f"design {self.name!r} names flags outside the vocabulary: {unknown}")

    def spellings(self, dest: str) -> tuple[str, ...]:
        f = FLAGS[dest]
        return (f.option, *f.aliases, *self.aliases.get(dest, ()))

    def options(self) -> list[str]:
        """Every option string this design accepts, canonical ones first."""
        return [s for d in self.flags for s in self.spellings(d)]


class _Given(argparse.Action):
    """Store the value and remember which spelling set it (``synth`` checks them per design)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        given = dict(getattr(namespace, GIVEN, {}))
        given[self.dest] = option_string
        setattr(namespace, GIVEN, given)


def _default_text(value) -> str:
    return "none" if value is None else str(value)


def add_design_args(parser: argparse.ArgumentParser, design: "Design | str") -> None:
    """Add ``design``'s parameters (with their defaults) to a ``gen``/``cosim`` sub-command."""
    d = get_design(design) if isinstance(design, str) else design
    g = parser.add_argument_group(f"{d.name} parameters")
    for dest in d.flags:
        f = FLAGS[dest]
        old = d.spellings(dest)[1:]
        also = f"; old spelling {', '.join(old)}" if old else ""
        g.add_argument(*d.spellings(dest), dest=dest, type=f.type, default=f.default, choices=f.choices,
                       action=_Given,
                       help=f"{d.helps.get(dest, f.help)} (default {_default_text(f.default)}{also})")


def add_all_design_args(parser: argparse.ArgumentParser) -> None:
    """Add every design's parameters to ``sbpca synth`` (one parser, ``--top`` picks the design).

    Nothing is stored unless given; :func:`design_values` fills the chosen design's
    defaults and refuses a flag that design does not take.
    """
    g = parser.add_argument_group("design parameters (each design takes its own; see `sbpca gen DESIGN -h`)")
    for dest, f in FLAGS.items():
        users = [d for d in DESIGNS.values() if dest in d.flags]
        if not users:
            continue
        spellings = list(dict.fromkeys(s for d in users for s in d.spellings(dest)))
        meaning = "; ".join([f.help, *(f"{d.name}: {d.helps[dest]}" for d in users if dest in d.helps)])
        g.add_argument(*spellings, dest=dest, type=f.type, default=argparse.SUPPRESS, choices=f.choices,
                       action=_Given, help=f"{meaning} (default {_default_text(f.default)}; "
                                           f"{', '.join(d.name for d in users)})")


def design_values(design: "Design | str", args: argparse.Namespace,
                  overrides: Mapping[str, str] | None = None) -> argparse.Namespace:
    """The design's parameter values from parsed ``args``: each of its flags, given or default.

    Raises ``ValueError`` naming a flag given on the command line that ``design`` does not
    take.  ``overrides`` (``dest -> text``, from ``synth --param``) are parsed by the flag's
    own type.
    """
    d = get_design(design) if isinstance(design, str) else design
    given = getattr(args, GIVEN, {})
    accepted = set(d.options())
    for dest, option in given.items():
        if option not in accepted:
            hint = f"; did you mean {FLAGS[dest].option}?" if dest in d.flags else ""
            raise ValueError(f"{option} is not a parameter of the {d.name} design{hint} "
                             f"(its parameters: {' '.join(FLAGS[x].option for x in d.flags)})")
    values = argparse.Namespace(**{dest: getattr(args, dest, FLAGS[dest].default) for dest in d.flags})
    for dest, text in (overrides or {}).items():
        if dest not in d.flags:
            raise ValueError(f"--param {dest}: not a parameter of the {d.name} design "
                             f"(its parameters: {', '.join(d.flags)})")
        if dest in given:
            raise ValueError(f"--param {dest} repeats {given[dest]}: give it once")
        f = FLAGS[dest]
        try:
            value = f.type(text)
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise ValueError(f"--param {dest}={text}: {exc}") from None
        if f.choices is not None and value not in f.choices:
            raise ValueError(f"--param {dest}={text}: choose one of {', '.join(f.choices)}")
        setattr(values, dest, value)
    return values


def flag_text(design: "Design | str", values: argparse.Namespace) -> str:
    """The canonical flags that give ``values`` again (for the reproduce line of a report)."""
    d = get_design(design) if isinstance(design, str) else design
    parts = []
    for dest in d.flags:
        value = getattr(values, dest)
        if value is not None:
            parts.append(f"{FLAGS[dest].option} {FLAGS[dest].text(value)}")
    return " ".join(parts)


# ------------------------------------------------------------------------------ parameters
def _formats(v: argparse.Namespace) -> SBPCAFormats:
    fmt = get_format_set(v.format_set)
    if v.data_bits is not None:
        if not 2 <= v.data_bits <= 32:
            raise ValueError(f"--data-bits must be in 2..32, not {v.data_bits}")
        fmt = fmt.with_data_bits(v.data_bits)
    return fmt


def _engine_params(v: argparse.Namespace):
    from .engine_params import EngineParams

    return EngineParams(rows=v.rows, cols=v.cols, rank=v.rank, sub_batch=v.sub_batch, lanes=v.lanes,
                        formats=_formats(v), max_batch=v.max_batch, iter_bits=v.iter_bits,
                        tree_levels_per_stage=v.tree_levels_per_stage, dsp=v.dsp)


def _driver_params(v: argparse.Namespace):
    from pymodel.crossbar.lfsr import LfsrSpec
    from pymodel.crossbar.params import DriverParams

    return DriverParams(rows=v.rows, cols=v.cols, scheme=v.scheme, bl_max=v.bl_max, state=_formats(v).state,
                        prob_bits=v.prob_bits, lfsr=LfsrSpec(v.lfsr_width, v.lfsr_taps, v.lfsr_leap),
                        seed=v.seed, level_bits=v.level_bits)


def _soc_params(v: argparse.Namespace):
    from pymodel.crossbar.params import DriverParams

    from .soc import SoCParams

    e = _engine_params(v)
    d = DriverParams(rows=e.rows, cols=e.cols, scheme=v.scheme, bl_max=v.bl_max, state=e.fmts.state,
                     seed=v.driver_seed)
    return SoCParams(e, d, v.fifo_depth)


def _csr_params(v: argparse.Namespace):
    from .csr import CsrParams

    return CsrParams(rows=v.rows, cols=v.cols, rank=v.rank, lanes=v.lanes, fifo_depth=v.fifo_depth,
                     formats=_formats(v), max_batch=v.max_batch)


# ------------------------------------------------------------------------------ components
def _engine(p, v):
    from .engine import SBPCAEngine

    return SBPCAEngine(p, seed=v.seed)


def _driver(p, v):
    from .driver import CrossbarDriver

    return CrossbarDriver(p)


def _soc(p, v):
    from .soc import SBPCASoC

    return SBPCASoC(p, seed=v.seed)


def _csr(p, v):
    from .csr import CsrBank

    return CsrBank(constants=p.constants(), fifo_depth=p.fifo_depth)


# ------------------------------------------------------------------------------ manifests
def _engine_manifest(comp, p, v, name: str) -> dict:
    from .engine import engine_manifest

    return engine_manifest(p, name=name, seed=v.seed)


def _driver_manifest(comp, p, v, name: str) -> dict:
    from .driver_config import manifest

    return manifest(comp, name)


def _soc_manifest(comp, p, v, name: str) -> dict:
    from .soc import soc_manifest

    return soc_manifest(comp, name=name)


def _csr_manifest(comp, p, v, name: str) -> dict:
    from .csr import csr_manifest

    return csr_manifest(comp, p, name)


# ------------------------------------------------------------------------------ summaries
def _engine_summary(p) -> str:
    return (f"a={p.rows} b={p.cols} k={p.rank} s={p.sub_batch} P={p.lanes} {p.fmts.name}, "
            f"bound {p.bound_cycles_per_sample:g} cycles/sample, {len(p.program)} jobs per sub-batch")


def _driver_summary(p) -> str:
    word = sum(w for _, w in p.word_fields())
    return f"{p.rows}x{p.cols} {p.scheme} driver, BL <= {p.bl_max}, {word}-bit slot word"


def _soc_summary(p) -> str:
    e = p.engine
    return (f"a={e.rows} b={e.cols} k={e.rank} s={e.sub_batch} P={e.lanes} {e.fmts.name}, "
            f"{p.driver.scheme} driver BL<={p.driver.bl_max}, FIFO depth {p.fifo_depth}")


def _csr_summary(p) -> str:
    return (f"register bank for a={p.rows} b={p.cols} k={p.rank} P={p.lanes} {p.fmts.name}, "
            f"FIFO depth {p.fifo_depth}")


ENGINE_FLAGS = ("rows", "cols", "rank", "sub_batch", "lanes", "format_set", "data_bits", "max_batch",
                "iter_bits", "tree_levels_per_stage", "dsp", "seed")

DESIGNS: dict[str, Design] = {d.name: d for d in (
    Design("engine", "sbpca_engine", "SBPCA power-iteration engine (streams x/δ, emits factor pairs)",
           ENGINE_FLAGS, _engine_params, _engine, _engine_manifest, _engine_summary,
           helps={"seed": "seed of the golden model's initial state, baked into the state memories "
                          "(cosim: also of the stimulus)"}),
    Design("driver", "crossbar_driver", "crossbar row/column pulse driver (stochastic or deterministic)",
           ("rows", "cols", "scheme", "bl_max", "format_set", "data_bits", "prob_bits", "lfsr_width",
            "lfsr_taps", "lfsr_leap", "level_bits", "seed"),
           _driver_params, _driver, _driver_manifest, _driver_summary,
           helps={"seed": "seed of the per-lane LFSR seeds (cosim: also of the updates)",
                  "format_set": "format set whose 'state' format the vector elements use"},
           aliases={"bl_max": ("--bl",)}),
    Design("soc", "sbpca_soc", "SoC top: Wishbone register bank, SBPCA engine, crossbar driver",
           (*ENGINE_FLAGS, "scheme", "bl_max", "driver_seed", "fifo_depth"),
           _soc_params, _soc, _soc_manifest, _soc_summary,
           helps={"seed": "seed of the golden model's initial engine state (cosim: also of the stimulus)"}),
    Design("csr", "sbpca_csr", "Wishbone control/status register bank alone (hdl.csr)",
           ("rows", "cols", "rank", "lanes", "format_set", "data_bits", "max_batch", "fifo_depth"),
           _csr_params, _csr, _csr_manifest, _csr_summary),
)}
"""Every design the commands can build, by name."""


def get_design(name: str) -> Design:
    """``DESIGNS[name]`` with a clear error naming the choices."""
    try:
        return DESIGNS[name]
    except KeyError:
        raise ValueError(f"unknown design {name!r}; choose one of {sorted(DESIGNS)}") from None


def build(name: str, values: argparse.Namespace):
    """``(component, params)`` of design ``name`` from its values (:func:`design_values`)."""
    d = get_design(name)
    params = d.params(values)
    return d.component(params, values), params
