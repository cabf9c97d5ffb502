"""Registry of the designs ``sbpca synth`` (and scripts) can build from command-line parameters.

``DESIGNS[top](args) -> (component, verilog_name)``.  The engine, driver and SoC
modules are imported lazily, so this registry works while they are still being
written and gives a clear error naming the missing module.  A design module may
provide its own ``build_from_args(args) -> (component, name)``; it is used when
present, otherwise the adapters here construct the component from the shared
parameters (:func:`add_design_args`), passing each constructor the keyword
arguments it declares.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
from typing import Callable

from pymodel.formats import DEFAULT_FORMAT_SET, FORMAT_SETS, SBPCAFormats, get_format_set

Builder = Callable[[argparse.Namespace], tuple[object, str]]


class DesignUnavailable(ValueError):
    """The module of a design is not in this checkout, or it cannot be built from the arguments."""


def _formats(args: argparse.Namespace) -> SBPCAFormats:
    fmt = get_format_set(getattr(args, "format", DEFAULT_FORMAT_SET))
    bits = getattr(args, "data_bits", None)
    if bits is not None:
        if not 2 <= bits <= 32:
            raise ValueError(f"--data-bits must be in 2..32, not {bits}")
        fmt = fmt.with_data_bits(bits)
    return fmt


def _import(module: str, top: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise DesignUnavailable(
                f"design {top!r} needs {module}, which is not in this checkout yet"
            ) from exc
        raise


def _find_component_class(mod, names: tuple[str, ...]):
    """The component class of a design module: a preferred name, else the only Component."""
    from amaranth.lib import wiring

    for name in names:
        cls = getattr(mod, name, None)
        if isinstance(cls, type) and issubclass(cls, wiring.Component):
            return cls
    own = [obj for obj in vars(mod).values()
           if isinstance(obj, type) and issubclass(obj, wiring.Component) and obj.__module__ == mod.__name__]
    if len(own) == 1:
        return own[0]
    raise DesignUnavailable(
        f"{mod.__name__} has no build_from_args() and no single component class "
        f"(tried {', '.join(names)}; found {[c.__name__ for c in own]})"
    )


def _construct(cls, available: dict[str, object], top: str):
    """Call ``cls`` with the keyword arguments its constructor declares, from ``available``."""
    sig = inspect.signature(cls.__init__)
    kwargs, missing = {}, []
    for name, param in list(sig.parameters.items())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name in available:
            kwargs[name] = available[name]
        elif param.default is param.empty:
            missing.append(name)
    if missing:
        raise DesignUnavailable(
            f"cannot build {top!r}: {cls.__module__}.{cls.__name__} needs {missing}, which "
            f"`sbpca synth` does not know how to supply; add build_from_args(args) to {cls.__module__}"
        )
    return cls(**kwargs)


def _common(args: argparse.Namespace) -> dict[str, object]:
    fmt = _formats(args)
    return {
        "rows": args.rows, "cols": args.cols, "rank": args.rank, "sub_batch": args.sub_batch,
        "lanes": args.lanes, "formats": fmt, "fmts": fmt, "fmt": fmt, "fixed": fmt,
        "fifo_depth": args.fifo_depth,
    }


def _params_dataclass(cls, available: dict[str, object], overrides: dict[str, object], top: str):
    """Build a parameter dataclass (EngineParams ...) from the fields it declares."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"--param {unknown} are not fields of {cls.__name__}; choose from {sorted(names)}")
    kwargs = {k: v for k, v in available.items() if k in names}
    kwargs.update(overrides)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise DesignUnavailable(f"cannot build {cls.__name__} for {top!r}: {exc}") from exc


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """``--param KEY=VALUE`` pairs, values parsed as int, float or kept as text."""
    out: dict[str, object] = {}
    for item in getattr(args, "param", None) or []:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--param expects KEY=VALUE, not {item!r}")
        value: object = text
        for conv in (int, float):
            try:
                value = conv(text)
                break
            except ValueError:
                continue
        out[key] = value
    return out


def build_engine(args: argparse.Namespace):
    """The SBPCA power-iteration engine (``hdl.engine``)."""
    mod = _import("hdl.engine", "engine")
    if hasattr(mod, "build_from_args"):
        return mod.build_from_args(args)
    cls = _find_component_class(mod, ("SBPCAEngine", "SbpcaEngine", "Engine", "PowerIterationEngine"))
    available = _common(args)
    params_cls = getattr(mod, "EngineParams", None)
    if params_cls is not None:
        fmt = available["formats"]
        available = {**available, "formats": fmt,
                     "params": _params_dataclass(params_cls, available, _overrides(args), "engine")}
    elif _overrides(args):
        raise ValueError("--param needs a parameter dataclass (EngineParams) in hdl.engine")
    return _construct(cls, available, "engine"), "sbpca_engine"


def build_driver(args: argparse.Namespace):
    """The crossbar row/column pulse driver (``hdl.driver``), parameters as ``sbpca gen driver``."""
    mod = _import("hdl.driver", "driver")
    if hasattr(mod, "build_from_args"):
        return mod.build_from_args(args)
    cls = _find_component_class(mod, ("CrossbarDriver", "Driver"))
    try:
        config = importlib.import_module("hdl.driver_config")
    except ModuleNotFoundError:
        config = None
    if config is not None and hasattr(config, "params_from_args") and hasattr(config, "add_driver_args"):
        # the driver's own argument defaults, overlaid with ours where both exist
        own = argparse.ArgumentParser(add_help=False)
        config.add_driver_args(own)
        merged = vars(own.parse_args([]))
        merged.update({k: v for k, v in vars(args).items() if k in merged})
        merged.update(_overrides(args))
        params = config.params_from_args(argparse.Namespace(**merged))
    else:
        params_mod = _import("pymodel.crossbar.params", "driver")
        fmt = _formats(args)
        available = {"rows": args.rows, "cols": args.cols, "scheme": args.scheme, "bl_max": args.bl_max,
                     "state": fmt.state, "seed": args.seed}
        params = _params_dataclass(params_mod.DriverParams, available, _overrides(args), "driver")
    return _construct(cls, {"params": params, **_common(args)}, "driver"), "sbpca_driver"


def build_soc(args: argparse.Namespace):
    """The SoC top: engine, drivers and register bank (``hdl.soc``)."""
    mod = _import("hdl.soc", "soc")
    if hasattr(mod, "build_from_args"):
        return mod.build_from_args(args)
    cls = _find_component_class(mod, ("SBPCASoC", "SbpcaSoC", "SoC", "SocTop"))
    return _construct(cls, _common(args), "soc"), "sbpca_soc"


def build_csr(args: argparse.Namespace):
    """The Wishbone control/status register bank alone (``hdl.csr``)."""
    from .csr import CsrBank
    from .regmap import build_constants

    consts = build_constants(rows=args.rows, cols=args.cols, rank=args.rank, lanes=args.lanes,
                             fifo_depth=args.fifo_depth, formats=_formats(args))
    return CsrBank(constants=consts, fifo_depth=args.fifo_depth), "sbpca_csr"


DESIGNS: dict[str, Builder] = {
    "engine": build_engine,
    "driver": build_driver,
    "soc": build_soc,
    "csr": build_csr,
}


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {value}")
    return value


def add_design_args(parser: argparse.ArgumentParser, top: str | None = None) -> None:
    """Add the design parameters of ``top`` (all designs' when None) to ``parser``.

    The names match ``sbpca gen``: --rows --cols --rank --sub-batch --lanes --format
    --data-bits, plus --fifo-depth (register bank) and --scheme --bl-max --seed (driver).
    Defaults are the README's reference point: a = b = 64, k = 4, s = 16, P = 8, q16.
    """
    if top is not None and top not in DESIGNS:
        raise ValueError(f"unknown design {top!r}; choose one of {sorted(DESIGNS)}")
    g = parser.add_argument_group("design parameters")
    g.add_argument("--rows", type=_positive, default=64, help="a: rows (outputs) of the layer (default 64)")
    g.add_argument("--cols", type=_positive, default=64, help="b: columns (inputs) of the layer (default 64)")
    g.add_argument("--rank", type=_positive, default=4, help="k: rank of the estimate (default 4)")
    g.add_argument("--sub-batch", type=_positive, default=16, help="s: samples per sub-batch (default 16)")
    g.add_argument("--lanes", type=_positive, default=8, help="P: parallel MAC lanes (default 8)")
    g.add_argument("--format", default=DEFAULT_FORMAT_SET, choices=sorted(FORMAT_SETS),
                   help=f"fixed-point format set (default {DEFAULT_FORMAT_SET})")
    g.add_argument("--data-bits", type=_positive, default=None,
                   help="override the x/delta/state width of the format set")
    if top in (None, "csr", "soc"):
        g.add_argument("--fifo-depth", type=_positive, default=16,
                       help="words in each FIFO window of the register bank (default 16)")
    if top in (None, "driver", "soc"):
        g.add_argument("--scheme", choices=("stochastic", "deterministic"), default="stochastic",
                       help="crossbar pulse scheme (default stochastic)")
        g.add_argument("--bl-max", type=_positive, default=31, help="longest pulse train BL (default 31)")
        g.add_argument("--seed", type=int, default=0, help="seed of the LFSR lane seeds (default 0)")
    if top in (None, "engine", "driver", "soc"):
        g.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                       help="set a field of the design's parameter dataclass (e.g. iter_bits=2); repeatable")


def build(top: str, args: argparse.Namespace):
    """``DESIGNS[top](args)`` with a clear error for an unknown ``top``."""
    if top not in DESIGNS:
        raise ValueError(f"unknown design {top!r}; choose one of {sorted(DESIGNS)}")
    for name, default in (("fifo_depth", 16), ("scheme", "stochastic"), ("bl_max", 31), ("seed", 0),
                          ("data_bits", None), ("param", [])):
        if not hasattr(args, name):
            setattr(args, name, default)
    return DESIGNS[top](args)
