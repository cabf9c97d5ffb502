"""``sbpca train``: train a CNN in software with one update rule and report accuracy,
loss, time and array update operations (``--json`` writes the same as JSON)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..datasets import DATASETS
from ..formats import FORMAT_SETS
from ..kernels import BACKENDS
from ..nn.model import DEFAULT_MODEL, MODELS
from ..training import DEFAULT_LR, TrainConfig, TrainingDiverged, to_jsonable, train
from ..update_rules import FIXED_SCALINGS, METHODS, SCHEMES

EXIT_DIVERGED = 3


def _device_option(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"device option must be KEY=VALUE, not {text!r}")
    key, val = text.split("=", 1)
    try:
        return key, json.loads(val)
    except json.JSONDecodeError:
        return key, val


def add_training_arguments(p: argparse.ArgumentParser, study: bool = False) -> None:
    """Flags shared by ``train`` and ``study`` (the study takes lists for some of them)."""
    p.add_argument("--dataset", default="digits", choices=DATASETS, help="dataset (default: digits, bundled)")
    p.add_argument("--data-dir", default=None, help="directory with MNIST/Fashion-MNIST IDX or CIFAR-10 files")
    p.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(MODELS), help="network (default: cnn)")
    p.add_argument("--sub-batch", type=int, default=16, help="SBPCA sub-batch s in stream pairs (default 16)")
    p.add_argument("--block", type=int, default=1,
                   help="sks / sks-unbiased: stream pairs folded in per core SVD, q (default 1, per pair)")
    p.add_argument("--batch", type=int, default=64, help="mini-batch size in samples (default 64)")
    epochs = 40 if study else 20
    p.add_argument("--epochs", type=int, default=epochs, help=f"epochs (default {epochs})")
    p.add_argument("--no-error-feedback", dest="error_feedback", action="store_false",
                   help="powersgd without error feedback")
    p.add_argument("--sigma-min", type=float, default=None,
                   help="float SBPCA: guard σ in 1/σ (default: none, the published equations)")
    p.add_argument("--device-model", default=None, help="crossbar device model (weights change only by pulses)")
    p.add_argument("--device-scheme", default="stochastic", choices=SCHEMES, help="pulse scheme")
    p.add_argument("--device-bl", type=int, default=None, help="pulse train length BL")
    p.add_argument("--device-option", action="append", type=_device_option, default=[], metavar="KEY=VALUE",
                   help="extra device-model option (repeatable; VALUE parsed as JSON when it can be)")
    p.add_argument("--backend", default="compiled", choices=BACKENDS,
                   help="SBPCA arithmetic: the numba kernel (default) or the NumPy reference; same results")
    p.add_argument("--fixed-scaling", default="first", choices=FIXED_SCALINGS,
                   help="fixed point: choose the x/δ power-of-two scaling on the first batch and keep it "
                        "(default), or on every batch, shifting σ to match")
    p.add_argument("--train-limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--test-limit", type=int, default=None, help="use only the first N test images")


def register(sub) -> None:
    lrs = ", ".join(f"{m} {lr:g}" for m, lr in DEFAULT_LR.items())
    p = sub.add_parser("train", help="train a CNN with SBPCA or a baseline update rule",
                       description=__doc__ + f"\n\nDefault learning rates (best of the digits sweep): {lrs}.")
    add_training_arguments(p)
    p.add_argument("--method", default="sbpca", choices=METHODS, help="update rule (default sbpca)")
    p.add_argument("--rank", type=int, default=4, help="rank k of the low-rank methods (default 4)")
    p.add_argument("--lr", type=float, default=None, help=f"learning rate (default per method: {lrs})")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, data order and estimators")
    p.add_argument("--fixed", default=None, choices=sorted(FORMAT_SETS),
                   help="bit-accurate fixed-point SBPCA with this format set (default: float64)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--no-grad-error", dest="measure_error", action="store_false",
                   help="do not measure ||G - Ĝ||/||G|| per batch")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        dataset=args.dataset, model=args.model, method=args.method, rank=args.rank, sub_batch=args.sub_batch,
        batch=args.batch, epochs=args.epochs, lr=args.lr, seed=args.seed, fixed=args.fixed,
        device_model=args.device_model, device_scheme=args.device_scheme, device_bl=args.device_bl,
        device_options=dict(args.device_option), data_dir=args.data_dir, error_feedback=args.error_feedback,
        sigma_min=args.sigma_min, train_limit=args.train_limit, test_limit=args.test_limit,
        measure_error=args.measure_error, fixed_scaling=args.fixed_scaling, block=args.block,
        backend=args.backend).validate()


def format_report(res: dict) -> str:
    """The human summary printed after training."""
    c, d, t = res["config"], res["dataset"], res["time"]
    method = c["method"] + ("" if c["method"] == "mbgd" else f" rank {c['rank']}")
    if c["method"] == "sbpca":
        method += f" sub-batch {c['sub_batch']} " + (f"fixed {c['fixed']}" if c["fixed"] else "float64")
    elif c["method"] in ("sks", "sks-unbiased"):
        method += f" block {c['block']} " + (f"fixed {c['fixed']}" if c["fixed"] else "float64")
    if c["device_model"]:
        method += f", device {c['device_model']} ({c['device_scheme']})"
    lines = [
        f"dataset {d['name']} ({d['train']} train / {d['test']} test), model {c['model']}, {method}, "
        f"batch {c['batch']}, lr {res['lr']:g}, {res['epochs']} epochs, seed {c['seed']}",
        f"train accuracy {100 * res['train_accuracy']:6.2f} %   loss {res['train_loss']:.4f}",
        f"test accuracy  {100 * res['test_accuracy']:6.2f} %   loss {res['test_loss']:.4f}",
        f"wall time {t['wall_s']:.1f} s (forward {t['forward_s']:.1f} s, backward {t['backward_s']:.1f} s, "
        f"update {t['update_s']:.1f} s, evaluate {t['evaluate_s']:.1f} s)",
        "array update operations (rank-1 row/column updates):",
    ]
    u = res["updates"]
    dense = "dense_writes_per_batch" in u
    head = f"  {'layer':<8}{'W (a x b+1)':<13}{'pairs/batch':>12}{'rank-1/batch':>13}{'rank-1 total':>13}"
    head += f"{'dense/batch':>12}" if dense else ""
    head += f"{'grad error':>12}{'|Ĝ|/|G|':>10}"
    lines.append(head)
    for name, row in u["per_layer"].items():
        err = res["grad_error"].get(name)
        line = (f"  {name:<8}{'x'.join(map(str, row['shape'])):<13}{row['pairs_per_batch']:>12.0f}"
                f"{row['rank1_per_batch']:>13.0f}{row['rank1_total']:>13}")
        line += f"{row['dense_writes_per_batch']:>12}" if dense else ""
        line += f"{err:>12.4f}" if err is not None else f"{'-':>12}"
        ratio = res.get("grad_norm_ratio", {}).get(name)
        line += f"{ratio:>10.3f}" if ratio is not None else f"{'-':>10}"
        lines.append(line)
    total = f"  {'total':<8}{'':<13}{'':>12}{u['rank1_per_batch']:>13.0f}{u['rank1_total']:>13}"
    total += f"{u['dense_writes_per_batch']:>12}" if dense else ""
    lines.append(total)
    if c["method"] == "mbgd":
        lines.append("  (MBGD: one rank-1 update per stream pair, or one dense row/column-wise write of G)")
    for name, st in res["status"].items():
        if "fixed" in st:
            f = st["fixed"]
            how = "" if st.get("scaling") != "batch" else f" (last batch; σ shifted {st['sigma_rescales']} times)"
            lines.append(f"  {name}: fixed-point scaling x·2^{st['x_exp']}, δ·2^{st['delta_exp']}{how}; "
                         f"saturations {f['saturation'] or 'none'}, "
                         + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in f.items() if k != "saturation"))
        if "device" in st:
            dev = st["device"]
            keys = ("updates", "skipped", "slots", "coincidences", "device_steps", "clipped", "scale_saturated")
            lines.append(f"  {name}: device " + ", ".join(f"{k.replace('_', ' ')} {int(dev[k])}"
                                                      for k in keys if k in dev))
    return "\n".join(lines)


def write_json(path: "str | Path", obj: dict) -> None:
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_jsonable(obj), indent=2) + "\n")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        res = train(config, progress=not args.quiet)
    except TrainingDiverged as exc:
        print(f"sbpca train: {exc}", file=sys.stderr)
        if args.json:
            write_json(args.json, {**exc.partial, "diverged": True, "error": str(exc),
                                   "diverged_at": {"epoch": exc.epoch + 1, "batch": exc.batch + 1}})
        return EXIT_DIVERGED
    print(format_report(res))
    if args.json:
        write_json(args.json, res)
    return 0
