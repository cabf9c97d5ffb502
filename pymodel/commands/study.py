"""``sbpca study``: a sweep of update rules × ranks × number formats × seeds.

Writes ``results.md`` and ``results.csv`` (mean ± std test accuracy per configuration),
``tuning.csv`` (the learning-rate search), ``runs.json`` (every run) and three PNG
plots: accuracy vs rank per method, accuracy vs bit width, accuracy vs array updates.

Learning rates are tuned per method and rank (SBPCA's σ is biased upward, so its best
rate differs from MBGD's): every rate of the grid is tried on a validation split held
out of the *training* set (the test set is never used to choose), and the best mean
validation accuracy wins; fixed-point formats reuse the rate their float twin got, so
float and fixed differ only in the arithmetic.  Runs go to a pool of worker processes.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..formats import FORMAT_SETS, get_format_set
from ..training import DEFAULT_LR, TrainConfig, TrainingDiverged, to_jsonable, train
from ..update_rules import FIXED_METHODS, METHODS
from .train import add_training_arguments

FLOAT = "float"
COLORS = {"mbgd": "k", "sbpca": "C0", "svd": "C1", "powersgd": "C2"}  # same colour in every plot


def _int_list(text: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, not {text!r}") from exc
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, not {text!r}")
    return vals


def _float_list(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, not {text!r}") from exc
    if not vals or min(vals) <= 0 or not all(math.isfinite(v) for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive numbers, not {text!r}")
    return vals


def _name_list(choices: tuple[str, ...] | list[str], what: str):
    def parse(text: str) -> list[str]:
        vals = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in vals if v not in choices]
        if not vals or bad:
            raise argparse.ArgumentTypeError(f"unknown {what} {bad or text!r}; choose from {', '.join(choices)}")
        return list(dict.fromkeys(vals))
    return parse


@dataclass(frozen=True)
class Setting:
    """One row of the results table: a method at a rank in a number format."""

    method: str
    rank: int | None  # None for mbgd (exact G has no rank)
    fmt: str  # "float" or a format-set name

    @property
    def label(self) -> str:
        r = "" if self.rank is None else f" k={self.rank}"
        return f"{self.method}{r} {self.fmt}"

    @property
    def bits(self) -> int:
        """Data width (x, δ, state) of the format; 64 stands for float64."""
        return 64 if self.fmt == FLOAT else get_format_set(self.fmt).x.bits


def plan_settings(methods: list[str], ranks: list[int], formats: list[str]) -> tuple[list[Setting], list[str]]:
    """The settings of a sweep, and notes on combinations that do not exist."""
    settings, notes = [], []
    fixed = [f for f in formats if f != FLOAT]
    for m in methods:
        if m == "mbgd":
            if FLOAT in formats:
                settings.append(Setting("mbgd", None, FLOAT))
            if fixed:
                notes.append("mbgd runs in float only (fixed-point formats model the SBPCA engine)")
            continue
        for r in ranks:
            for f in formats:
                if f != FLOAT and m not in FIXED_METHODS:
                    continue
                settings.append(Setting(m, r, f))
        if fixed and m not in FIXED_METHODS:
            notes.append(f"{m} runs in float only (fixed-point formats model the SBPCA engine)")
    if not settings:
        raise ValueError("the sweep is empty: give float among --formats, or sbpca among --methods")
    return settings, sorted(set(notes))


def _config(base: TrainConfig, s: Setting, lr: float, seed: int, validation: float | None) -> TrainConfig:
    return replace(base, method=s.method, rank=s.rank or base.rank, fixed=None if s.fmt == FLOAT else s.fmt,
                   lr=lr, seed=seed, validation=validation)


def run_one(config: TrainConfig) -> dict:
    """Worker: one training run, reduced to what the study keeps (picklable)."""
    t0 = time.perf_counter()
    try:
        res = train(config)
    except TrainingDiverged as exc:
        return {"diverged": True, "error": str(exc), "time_s": time.perf_counter() - t0}
    return {"diverged": False, "test_accuracy": res["test_accuracy"], "train_accuracy": res["train_accuracy"],
            "test_loss": res["test_loss"], "grad_error": res["grad_error"],
            "grad_norm_ratio": res["grad_norm_ratio"],
            "rank1_per_batch": res["updates"]["rank1_per_batch"],
            "dense_writes_per_batch": res["updates"].get("dense_writes_per_batch"),
            "saturations": sum(sum(st.get("fixed", {}).get("saturation", {}).values())
                               for st in res["status"].values()),
            "sigma_guard": sum(st.get("fixed", {}).get("sigma_guard", 0) for st in res["status"].values()),
            "time_s": time.perf_counter() - t0}


def _worker_init() -> None:
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass


def execute(jobs: list[tuple[object, TrainConfig]], workers: int, desc: str, progress: bool) -> list[dict]:
    """Run ``(key, config)`` jobs, in ``workers`` processes when > 1; results in job order."""
    from tqdm.auto import tqdm

    results: list[dict | None] = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress, unit="run", dynamic_ncols=True)
    try:
        if workers <= 1:
            for i, (_, cfg) in enumerate(jobs):
                results[i] = run_one(cfg)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init) as pool:
                futs = {pool.submit(run_one, cfg): i for i, (_, cfg) in enumerate(jobs)}
                for fut in as_completed(futs):
                    results[futs[fut]] = fut.result()
                    bar.update()
    finally:
        bar.close()
    return results  # type: ignore[return-value]


def _score(runs: list[dict]) -> float:
    """Mean validation accuracy; a diverged run scores zero accuracy."""
    return float(np.mean([0.0 if r["diverged"] else r["test_accuracy"] for r in runs]))


def aggregate(setting: Setting, lr: float, runs: list[dict]) -> dict:
    """Mean ± std over seeds (diverged seeds are counted, and left out of the means)."""
    ok = [r for r in runs if not r["diverged"]]
    row: dict = {"method": setting.method, "rank": "" if setting.rank is None else setting.rank,
                 "format": setting.fmt, "bits": setting.bits, "lr": lr, "seeds": len(runs),
                 "diverged": len(runs) - len(ok)}
    acc = np.array([r["test_accuracy"] for r in ok])
    tr = np.array([r["train_accuracy"] for r in ok])
    row["test_acc_mean"] = float(acc.mean()) if ok else float("nan")
    row["test_acc_std"] = float(acc.std(ddof=1)) if len(ok) > 1 else 0.0 if ok else float("nan")
    row["train_acc_mean"] = float(tr.mean()) if ok else float("nan")
    row["rank1_per_batch"] = float(np.mean([r["rank1_per_batch"] for r in ok])) if ok else float("nan")
    dense = [r["dense_writes_per_batch"] for r in ok if r.get("dense_writes_per_batch") is not None]
    row["dense_writes_per_batch"] = float(np.mean(dense)) if dense else ""
    layers = list(dict.fromkeys(k for r in ok for k in r["grad_error"]))
    for name in layers:
        row[f"grad_error_{name}"] = float(np.mean([r["grad_error"][name] for r in ok if name in r["grad_error"]]))
    for name in layers:
        vals = [r["grad_norm_ratio"][name] for r in ok if name in r.get("grad_norm_ratio", {})]
        if vals:
            row[f"norm_ratio_{name}"] = float(np.mean(vals))
    row["saturations"] = int(sum(r.get("saturations", 0) for r in ok))
    row["sigma_guard"] = int(sum(r.get("sigma_guard", 0) for r in ok))
    row["time_s_mean"] = float(np.mean([r["time_s"] for r in runs]))
    return row


def _pct(mean: float, std: float) -> str:
    return "diverged" if not math.isfinite(mean) else f"{100 * mean:.2f} ± {100 * std:.2f}"


def write_tables(out: Path, rows: list[dict], tuning: list[dict], header: dict, notes: list[str]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, restval="")
        w.writeheader()
        w.writerows(rows)
    if tuning:
        tkeys = list(dict.fromkeys(k for r in tuning for k in r))
        with open(out / "tuning.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=tkeys, restval="")
            w.writeheader()
            w.writerows(tuning)
    err_cols = [k for k in keys if k.startswith("grad_error_")]
    lines = [f"# SBPCA study: {header['dataset']}, model {header['model']}", "",
             f"Batch {header['batch']}, sub-batch {header['sub_batch']}, {header['epochs']} epochs, "
             f"seeds {header['seeds']}; test accuracy mean ± std over seeds (diverged seeds left out "
             f"and counted). Learning rate: {header['lr_rule']}.", ""]
    cols = ["method", "rank", "format", "lr", "test accuracy %", "train accuracy %", "diverged",
            "rank-1 updates/batch"] + [f"‖G−Ĝ‖/‖G‖ {c[len('grad_error_'):]}" for c in err_cols]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        vals = [r["method"], str(r["rank"]) or "-", r["format"], f"{r['lr']:g}",
                _pct(r["test_acc_mean"], r["test_acc_std"]),
                "-" if not math.isfinite(r["train_acc_mean"]) else f"{100 * r['train_acc_mean']:.2f}",
                f"{r['diverged']}/{r['seeds']}",
                "-" if not math.isfinite(r["rank1_per_batch"]) else f"{r['rank1_per_batch']:.0f}"]
        vals += [f"{r[c]:.3f}" if isinstance(r.get(c), float) else "-" for c in err_cols]
        lines.append("| " + " | ".join(vals) + " |")
    if tuning:
        lines += ["", "## Learning-rate search (validation split of the training set)", "",
                  "| method | rank | lr | validation accuracy % | diverged | chosen |", "|---|---|---|---|---|---|"]
        for t in tuning:
            val = t["val_acc_mean"]
            val_s = "-" if not math.isfinite(val) else f"{100 * val:.2f}"
            lines.append(f"| {t['method']} | {t['rank'] or '-'} | {t['lr']:g} | {val_s} | "
                         f"{t['diverged']}/{t['seeds']} | {'yes' if t['chosen'] else ''} |")
    if notes:
        lines += [""] + [f"Note: {n}." for n in notes]
    lines += ["", "Plots: `acc_vs_rank.png`, `acc_vs_bits.png`, `acc_vs_updates.png`.", ""]
    (out / "results.md").write_text("\n".join(lines))


def write_plots(out: Path, rows: list[dict]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if math.isfinite(r["test_acc_mean"])]
    files = []
    # accuracy vs rank, one line per method (float)
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in METHODS:
        pts = sorted((r["rank"], r) for r in ok if r["method"] == m and r["format"] == FLOAT and r["rank"] != "")
        if pts:
            ax.errorbar([p[0] for p in pts], [100 * p[1]["test_acc_mean"] for p in pts],
                        yerr=[100 * p[1]["test_acc_std"] for p in pts], marker="o", capsize=3, label=m,
                        color=COLORS[m])
    for r in ok:
        if r["method"] == "mbgd" and r["format"] == FLOAT:
            ax.axhline(100 * r["test_acc_mean"], color="k", ls="--", lw=1, label="mbgd (exact G)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("rank k")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs rank (float64)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "acc_vs_rank.png", dpi=120)
    plt.close(fig)
    files.append("acc_vs_rank.png")
    # accuracy vs bit width, SBPCA, one line per rank
    fig, ax = plt.subplots(figsize=(6, 4))
    ranks = sorted({r["rank"] for r in ok if r["method"] == "sbpca"})
    for k in ranks:
        pts = sorted((r["bits"], r) for r in ok if r["method"] == "sbpca" and r["rank"] == k)
        ax.errorbar([p[0] for p in pts], [100 * p[1]["test_acc_mean"] for p in pts],
                    yerr=[100 * p[1]["test_acc_std"] for p in pts], marker="o", capsize=3, label=f"sbpca k={k}")
    ax.set_xscale("log", base=2)
    bits = sorted({r["bits"] for r in ok if r["method"] == "sbpca"})
    ax.set_xticks(bits or [64])
    ax.set_xticklabels([("float64" if b == 64 else str(b)) for b in (bits or [64])])
    ax.set_xlabel("data width of x, δ, X, Δ (bits)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("SBPCA accuracy vs bit width")
    ax.grid(alpha=0.3)
    if ranks:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "acc_vs_bits.png", dpi=120)
    plt.close(fig)
    files.append("acc_vs_bits.png")
    # accuracy vs array update operations per batch
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in METHODS:
        pts = [r for r in ok if r["method"] == m and r["format"] == FLOAT]
        if pts:
            ax.errorbar([r["rank1_per_batch"] for r in pts], [100 * r["test_acc_mean"] for r in pts],
                        yerr=[100 * r["test_acc_std"] for r in pts], fmt="o", capsize=3, label=m,
                        color=COLORS[m])
            for r in pts:
                if r["rank"] != "":
                    ax.annotate(f"k={r['rank']}", (r["rank1_per_batch"], 100 * r["test_acc_mean"]),
                                textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("rank-1 array updates per batch (all layers)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs array update operations")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "acc_vs_updates.png", dpi=120)
    plt.close(fig)
    files.append("acc_vs_updates.png")
    return files


def run_study(base: TrainConfig, methods: list[str], ranks: list[int], formats: list[str], seeds: int,
              out: Path, lrs: list[float] | None = None, lr_factors: list[float] | None = None,
              tune: bool = True, tune_seeds: int = 1, validation: float = 0.2, workers: int = 1,
              progress: bool = False) -> dict:
    """Run the sweep and write the tables and plots into ``out``; returns the summary."""
    if seeds < 1 or tune_seeds < 1:
        raise ValueError(f"seeds and tune seeds must be >= 1, got {seeds} and {tune_seeds}")
    settings, notes = plan_settings(methods, ranks, formats)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def grid(method: str) -> list[float]:
        if lrs:
            return list(lrs)
        return [DEFAULT_LR[method] * f for f in (lr_factors or [1.0])]

    chosen: dict[tuple, float] = {}
    tuning_rows: list[dict] = []
    tuning_runs: list[dict] = []
    tuned = sorted({(s.method, s.rank) for s in settings}, key=lambda t: (METHODS.index(t[0]), t[1] or 0))
    if tune:
        jobs = []
        for m, r in tuned:
            for lr in grid(m):
                for seed in range(tune_seeds):
                    jobs.append(((m, r, lr), _config(base, Setting(m, r, FLOAT), lr, seed, validation)))
        results = execute(jobs, workers, "tuning", progress)
        by: dict[tuple, list[dict]] = {}
        for (key, cfg), res in zip(jobs, results):
            by.setdefault(key, []).append(res)
            tuning_runs.append({"method": key[0], "rank": key[1], "lr": key[2], "seed": cfg.seed, **res})
        for m, r in tuned:
            scores = {lr: _score(by[(m, r, lr)]) for lr in grid(m)}
            best = max(scores, key=lambda lr: (scores[lr], -lr))
            chosen[(m, r)] = best
            for lr in grid(m):
                runs = by[(m, r, lr)]
                ok = [x["test_accuracy"] for x in runs if not x["diverged"]]
                tuning_rows.append({"method": m, "rank": "" if r is None else r, "lr": lr, "seeds": len(runs),
                                    "val_acc_mean": float(np.mean(ok)) if ok else float("nan"),
                                    "score": scores[lr], "diverged": len(runs) - len(ok),
                                    "chosen": lr == best})
        lr_rule = (f"tuned per method and rank on a {validation:.0%} validation split of the training set, "
                   f"grid {'given' if lrs else 'default × ' + ','.join(f'{f:g}' for f in (lr_factors or [1]))}, "
                   f"{tune_seeds} seed(s); fixed formats use their float rate")
    else:
        for m, r in tuned:
            chosen[(m, r)] = lrs[0] if lrs else DEFAULT_LR[m]
        lr_rule = "each method's default (from the digits sweep), no tuning" if not lrs else f"fixed at {lrs[0]:g}"

    jobs = []
    for s in settings:
        for seed in range(seeds):
            jobs.append((s, _config(base, s, chosen[(s.method, s.rank)], seed, None)))
    # longest (fixed-point) runs first balances the pool
    order = sorted(range(len(jobs)), key=lambda i: jobs[i][0].fmt == FLOAT)
    res_sorted = execute([jobs[i] for i in order], workers, "runs", progress)
    results: list[dict] = [None] * len(jobs)  # type: ignore[list-item]
    for i, res in zip(order, res_sorted):
        results[i] = res
    rows, runs_out = [], []
    for s in settings:
        runs = [res for (js, _), res in zip(jobs, results) if js == s]
        rows.append(aggregate(s, chosen[(s.method, s.rank)], runs))
    for (s, cfg), res in zip(jobs, results):
        runs_out.append({"method": s.method, "rank": s.rank, "format": s.fmt, "seed": cfg.seed, "lr": cfg.lr, **res})
    header = {"dataset": base.dataset, "model": base.model, "batch": base.batch, "sub_batch": base.sub_batch,
              "epochs": base.epochs, "seeds": seeds, "lr_rule": lr_rule}
    write_tables(out, rows, tuning_rows, header, notes)
    plots = write_plots(out, rows)
    summary = {"header": header, "rows": rows, "tuning": tuning_rows, "runs": runs_out,
               "tuning_runs": tuning_runs, "notes": notes,
               "plots": plots, "wall_s": time.perf_counter() - t0, "workers": workers}
    (out / "runs.json").write_text(json.dumps(to_jsonable(summary), indent=2) + "\n")
    return summary


def register(sub) -> None:
    p = sub.add_parser("study", help="sweep methods × ranks × formats × seeds; tables and plots",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_arguments(p, study=True)
    p.add_argument("--methods", type=_name_list(METHODS, "method"), default=list(METHODS),
                   help="comma-separated update rules (default: all)")
    p.add_argument("--ranks", type=_int_list, default=[1, 2, 4, 8], help="comma-separated ranks (default 1,2,4,8)")
    p.add_argument("--formats", type=_name_list([FLOAT, *FORMAT_SETS], "format"), default=[FLOAT, "q16", "q12", "q8"],
                   help="comma-separated: float and/or format sets (default float,q16,q12,q8)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per configuration (default 3)")
    p.add_argument("--rank", type=int, default=4, help=argparse.SUPPRESS)
    p.add_argument("--lrs", type=_float_list, default=None,
                   help="learning-rate grid for tuning (default: each method's default × --lr-factors)")
    p.add_argument("--lr-factors", type=_float_list, default=[0.5, 1.0, 2.0],
                   help="grid around each method's default rate (default 0.5,1,2)")
    p.add_argument("--no-tune", dest="tune", action="store_false",
                   help="no tuning: each method's default rate (or the first of --lrs)")
    p.add_argument("--tune-seeds", type=int, default=1, help="seeds per grid point when tuning (default 1)")
    p.add_argument("--validation", type=float, default=0.2, help="validation fraction of train for tuning")
    p.add_argument("--jobs", type=int, default=None,
                   help="worker processes (default: min(2, CPU count))")
    p.add_argument("-o", "--out", required=True, help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    workers = args.jobs if args.jobs is not None else min(2, os.cpu_count() or 1)
    if workers < 1:
        raise ValueError(f"--jobs must be >= 1, not {workers}")
    base = TrainConfig(dataset=args.dataset, model=args.model, rank=args.rank, sub_batch=args.sub_batch,
                       batch=args.batch, epochs=args.epochs, data_dir=args.data_dir,
                       error_feedback=args.error_feedback, sigma_min=args.sigma_min,
                       device_model=args.device_model, device_scheme=args.device_scheme,
                       device_bl=args.device_bl, device_options=dict(args.device_option),
                       train_limit=args.train_limit, test_limit=args.test_limit,
                       fixed_scaling=args.fixed_scaling, block=args.block).validate()
    # fail early (in this process) on a missing dataset rather than in every worker
    from ..training import prepare_data
    prepare_data(base)
    out = Path(args.out)
    summary = run_study(base, args.methods, args.ranks, args.formats, args.seeds, out, lrs=args.lrs,
                        lr_factors=args.lr_factors, tune=args.tune, tune_seeds=args.tune_seeds,
                        validation=args.validation, workers=workers, progress=not args.quiet)
    print((out / "results.md").read_text())
    print(f"wrote {out / 'results.md'}, results.csv, runs.json, {', '.join(summary['plots'])} "
          f"({summary['wall_s']:.0f} s, {workers} worker(s))", file=sys.stderr)
    return 0
