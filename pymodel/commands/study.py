"""``sbpca study``: a sweep of update rules × ranks × number formats × seeds.

Writes ``results.md`` and ``results.csv`` (mean ± std test accuracy per configuration),
``tuning.csv`` (the learning-rate search), ``runs.json`` (every run) and three PNG
plots: accuracy vs rank per method, accuracy vs bit width, accuracy vs array updates.

Learning rates are tuned per method and rank (SBPCA's σ is biased upward, so its best
rate differs from MBGD's): every rate of the grid is tried on a validation split held
out of the *training* set (the test set is never used to choose), and the best mean
validation accuracy wins; fixed-point formats reuse the rate their float twin got, so
float and fixed differ only in the arithmetic.

Runs execute on Dask distributed: a local cluster of ``--jobs`` worker processes, or the
cluster at ``--scheduler ADDRESS`` (``--jobs 1``: serially, in this process).  Every run
is written to ``OUT/runs/`` the moment it finishes, so rerunning the same command
computes only the runs that are not there yet (``--fresh``: all of them); a run that
raises, or whose worker keeps dying, is recorded with its error and the study goes on.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..formats import FORMAT_SETS, get_format_set
from ..study_exec import make_engine, run_one  # noqa: F401 - run_one: the worker, importable from here
from ..study_store import FINISHED, RunStore, config_identity, run_filename, run_key
from ..training import DEFAULT_LR, TrainConfig, prepare_data, to_jsonable
from ..update_rules import FIXED_METHODS, METHODS
from .train import add_training_arguments

FLOAT = "float"
EXIT_FAILED_RUNS = 1  # the study finished, but some runs raised or lost their worker
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT
COLORS = {"mbgd": "k", "sbpca": "C0", "svd": "C1", "powersgd": "C2"}  # same colour in every plot


def _color(method: str) -> str:
    """The method's plot colour; a method added to METHODS later gets the next free one."""
    return COLORS.get(method, f"C{3 + METHODS.index(method) % 7}")


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


def _status(run: dict) -> str:
    """``ok``, ``diverged``, ``error`` or ``failed`` (records written before statuses: from ``diverged``)."""
    return run.get("status") or ("diverged" if run["diverged"] else "ok")


def _score(runs: list[dict]) -> float:
    """Mean validation accuracy; a diverged or failed run scores zero accuracy."""
    return float(np.mean([r["test_accuracy"] if _status(r) == "ok" else 0.0 for r in runs]))


def aggregate(setting: Setting, lr: float, runs: list[dict]) -> dict:
    """Mean ± std over seeds (diverged and failed seeds are counted, and left out of the means)."""
    ok = [r for r in runs if _status(r) == "ok"]
    row: dict = {"method": setting.method, "rank": "" if setting.rank is None else setting.rank,
                 "format": setting.fmt, "bits": setting.bits, "lr": lr, "seeds": len(runs),
                 "diverged": sum(_status(r) == "diverged" for r in runs),
                 "failed": sum(_status(r) in ("error", "failed") for r in runs)}
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
    times = [r["time_s"] for r in runs if isinstance(r.get("time_s"), (int, float))]
    row["time_s_mean"] = float(np.mean(times)) if times else float("nan")
    return row


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else "(no message)"


def _pct(mean: float, std: float, row: dict) -> str:
    if math.isfinite(mean):
        return f"{100 * mean:.2f} ± {100 * std:.2f}"
    return "failed" if row.get("failed") else "diverged"


def write_tables(out: Path, rows: list[dict], tuning: list[dict], header: dict, notes: list[str],
                 failures: list[dict] = ()) -> None:
    """``results.csv``, ``tuning.csv`` and ``results.md``; ``failures`` are the run records that
    raised or lost their worker, listed with their error under the tables."""
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
             f"seeds {header['seeds']}; test accuracy mean ± std over seeds (diverged and failed seeds "
             f"left out and counted). Learning rate: {header['lr_rule']}.", ""]
    cols = ["method", "rank", "format", "lr", "test accuracy %", "train accuracy %", "diverged", "failed",
            "rank-1 updates/batch"] + [f"‖G−Ĝ‖/‖G‖ {c[len('grad_error_'):]}" for c in err_cols]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        vals = [r["method"], str(r["rank"]) or "-", r["format"], f"{r['lr']:g}",
                _pct(r["test_acc_mean"], r["test_acc_std"], r),
                "-" if not math.isfinite(r["train_acc_mean"]) else f"{100 * r['train_acc_mean']:.2f}",
                f"{r['diverged']}/{r['seeds']}", f"{r.get('failed', 0)}/{r['seeds']}",
                "-" if not math.isfinite(r["rank1_per_batch"]) else f"{r['rank1_per_batch']:.0f}"]
        vals += [f"{r[c]:.3f}" if isinstance(r.get(c), float) else "-" for c in err_cols]
        lines.append("| " + " | ".join(vals) + " |")
    if tuning:
        lines += ["", "## Learning-rate search (validation split of the training set)", "",
                  "| method | rank | lr | validation accuracy % | diverged | failed | chosen |",
                  "|---|---|---|---|---|---|---|"]
        for t in tuning:
            val = t["val_acc_mean"]
            val_s = "-" if not math.isfinite(val) else f"{100 * val:.2f}"
            lines.append(f"| {t['method']} | {t['rank'] or '-'} | {t['lr']:g} | {val_s} | "
                         f"{t['diverged']}/{t['seeds']} | {t.get('failed', 0)}/{t['seeds']} | "
                         f"{'yes' if t['chosen'] else ''} |")
    if notes:
        lines += [""] + [f"Note: {n}." for n in notes]
    if failures:
        lines += ["", "## Failed runs (computed again when the same command is rerun)", ""]
        lines += [f"- `runs/{f['file']}` ({f['status']}): {_first_line(f.get('error'))}"
                  for f in failures]
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
                        color=_color(m))
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
                        color=_color(m))
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


@dataclass(frozen=True)
class Job:
    """One run of the study: a tuning run (``stage="tune"``) or a final run (``"run"``)."""

    stage: str
    config: TrainConfig
    key: str
    group: tuple  # (method, rank): the tuning group that decides its learning rate
    setting: Setting

    @property
    def job_id(self) -> str:
        return f"sbpca-{self.stage}-{self.key}"

    @property
    def priority(self) -> int:
        # tuning first (it unblocks the final runs), then the long fixed-point runs (balances the pool)
        return 2 if self.stage == "tune" else 1 if self.setting.fmt != FLOAT else 0

    def record(self, result: dict) -> dict:
        """The run file's content: what was run, and what came of it."""
        c = self.config
        return {"key": self.key, "file": run_filename(self.stage, c, self.key), "stage": self.stage,
                "method": c.method, "rank": self.setting.rank, "format": self.setting.fmt, "seed": c.seed,
                "lr": c.learning_rate, **result, "config": config_identity(c),
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _job(stage: str, base: TrainConfig, s: Setting, lr: float, seed: int, validation: float | None) -> Job:
    cfg = _config(base, s, lr, seed, validation)
    return Job(stage, cfg, run_key(cfg), (s.method, s.rank), s)


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C during a study: every finished run is on disk; the message says how many."""


def run_study(base: TrainConfig, methods: list[str], ranks: list[int], formats: list[str], seeds: int,
              out: Path, lrs: list[float] | None = None, lr_factors: list[float] | None = None,
              tune: bool = True, tune_seeds: int = 1, validation: float = 0.2, workers: int = 1,
              progress: bool = False, scheduler: str | None = None, retries: int = 2,
              fresh: bool = False) -> dict:
    """Run the sweep (resuming from ``out/runs/``) and write the tables and plots into ``out``.

    Each run's file is written as its result arrives; runs already finished on disk are
    not computed again (``fresh`` deletes them first).  The final runs of a method and
    rank are submitted as soon as that pair's tuning runs are all in, so tuning and
    final runs share the workers.  Returns the summary (also written to ``runs.json``).
    """
    if seeds < 1 or tune_seeds < 1:
        raise ValueError(f"seeds and tune seeds must be >= 1, got {seeds} and {tune_seeds}")
    if workers < 1 or retries < 0:
        raise ValueError(f"workers must be >= 1 and retries >= 0, got {workers} and {retries}")
    settings, notes = plan_settings(methods, ranks, formats)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    store = RunStore(out / "runs", fresh=fresh)

    def grid(method: str) -> list[float]:
        rates = lrs if lrs else [DEFAULT_LR[method] * f for f in (lr_factors or [1.0])]
        return list(dict.fromkeys(rates))

    tuned = sorted({(s.method, s.rank) for s in settings}, key=lambda t: (METHODS.index(t[0]), t[1] or 0))
    # per tuning group, per rate of its grid: the tuning runs (one per tuning seed)
    tune_grid = {g: [(lr, [_job("tune", base, Setting(g[0], g[1], FLOAT), lr, seed, validation)
                           for seed in range(tune_seeds)]) for lr in grid(g[0])] for g in tuned} if tune else {}
    tune_jobs = {g: [j for _, js in pts for j in js] for g, pts in tune_grid.items()}
    chosen: dict[tuple, float] = {} if tune else {g: lrs[0] if lrs else DEFAULT_LR[g[0]] for g in tuned}
    final_jobs: dict[tuple, list[Job]] = {}
    records: dict[str, dict] = {}  # key -> record of this study's runs, from disk or computed now
    computed: list[dict] = []
    n_total = sum(map(len, tune_jobs.values())) + len(settings) * seeds
    engine = None
    waiting: dict[str, Job] = {}

    bar = None  # made once the runs on disk are counted, so its rate and ETA are of runs computed now

    def take(job: Job) -> None:
        nonlocal engine
        rec = store.finished(job.key, job.config)
        if rec is not None:
            records[job.key] = rec
            if bar is not None:
                bar.update()
            return
        if engine is None:
            engine = make_engine(workers, scheduler, retries, base.dataset, base.data_dir)
        waiting[job.job_id] = job
        engine.submit(job.job_id, job.config, job.priority)

    def release(g: tuple) -> None:
        """The tuning of ``g`` is complete: choose its rate and start its final runs."""
        if tune:
            scores = [(_score([records[j.key] for j in js]), -lr, lr) for lr, js in tune_grid[g]]
            chosen[g] = max(scores)[2]
        final_jobs[g] = [_job("run", base, s, chosen[g], seed, None)
                         for s in settings if (s.method, s.rank) == g for seed in range(seeds)]
        for job in final_jobs[g]:
            take(job)

    def tuned_in(g: tuple) -> bool:
        return all(j.key in records for j in tune_jobs.get(g, []))

    try:
        for g in tuned:
            for job in tune_jobs.get(g, []):
                take(job)
        for g in tuned:
            if tuned_in(g):
                release(g)
        from tqdm.auto import tqdm

        bar = tqdm(total=n_total, initial=len(records), desc="runs", unit="run", disable=not progress,
                   dynamic_ncols=True, postfix=engine.description if engine else "all runs on disk")
        while engine is not None and engine.pending:
            job_id, result = engine.next_done()
            job = waiting.pop(job_id)
            store.write(job.record(result))
            rec = records[job.key] = store.get(job.key)
            computed.append(rec)
            bar.update()
            bad = sum(r["status"] in ("error", "failed") for r in computed)
            if bad:
                bar.set_postfix_str(f"{bad} failed")
            if job.stage == "tune" and job.group not in final_jobs and tuned_in(job.group):
                release(job.group)
    except KeyboardInterrupt as exc:
        if bar is not None:
            bar.close()
        if engine is not None:
            engine.close(cancel=True)
            engine = None
        done = sum(r["status"] in FINISHED for r in records.values())
        raise StudyInterrupted(f"interrupted: {done} of {n_total} runs finished and on disk in {store.folder}; "
                               f"rerun the same command to compute the other {n_total - done}") from exc
    finally:
        if bar is not None:
            bar.close()
        if engine is not None:
            engine.close()
    wall = time.perf_counter() - t0

    rows = [aggregate(s, chosen[(s.method, s.rank)],
                      [records[j.key] for j in final_jobs[(s.method, s.rank)] if j.setting == s])
            for s in settings]
    tuning_rows: list[dict] = []
    for g in tuned if tune else []:
        for lr, js in tune_grid[g]:
            runs = [records[j.key] for j in js]
            ok = [x["test_accuracy"] for x in runs if _status(x) == "ok"]
            tuning_rows.append({"method": g[0], "rank": "" if g[1] is None else g[1], "lr": lr, "seeds": len(runs),
                                "val_acc_mean": float(np.mean(ok)) if ok else float("nan"),
                                "score": _score(runs), "diverged": sum(_status(x) == "diverged" for x in runs),
                                "failed": sum(_status(x) in ("error", "failed") for x in runs),
                                "chosen": lr == chosen[g]})
    if tune:
        lr_rule = (f"tuned per method and rank on a {validation:.0%} validation split of the training set, "
                   f"grid {'given' if lrs else 'default × ' + ','.join(f'{f:g}' for f in (lr_factors or [1]))}, "
                   f"{tune_seeds} seed(s); fixed formats use their float rate")
    else:
        lr_rule = "each method's default (from the digits sweep), no tuning" if not lrs else f"fixed at {lrs[0]:g}"
    runs_out = [records[j.key] for g in tuned for j in final_jobs[g]]
    tuning_runs = [records[j.key] for g in tuned for j in tune_jobs.get(g, [])]
    failures = [r for r in tuning_runs + runs_out if r["status"] in ("error", "failed")]
    header = {"dataset": base.dataset, "model": base.model, "batch": base.batch, "sub_batch": base.sub_batch,
              "epochs": base.epochs, "seeds": seeds, "lr_rule": lr_rule}
    write_tables(out, rows, tuning_rows, header, notes, failures)
    plots = write_plots(out, rows)
    run_time = float(sum(r["time_s"] for r in computed if isinstance(r.get("time_s"), (int, float))))
    summary = {"header": header, "rows": rows, "tuning": tuning_rows, "runs": runs_out,
               "tuning_runs": tuning_runs, "notes": notes, "plots": plots, "wall_s": wall,
               "run_time_s": run_time, "speedup": run_time / wall if computed and wall > 0 else float("nan"),
               "computed": len(computed), "skipped": n_total - len(computed), "failed": len(failures),
               "workers": workers, "scheduler": scheduler}
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
                   help="worker processes of a local Dask cluster (default: min(2, CPU count)); "
                        "1 runs serially in this process")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="submit the runs to the Dask cluster at ADDRESS (e.g. tcp://head:8786) instead")
    p.add_argument("--retries", type=int, default=2,
                   help="a run whose worker dies (killed, out of memory) is retried this many times, "
                        "then recorded as failed (default 2)")
    p.add_argument("--fresh", action="store_true",
                   help="delete the run files under OUT/runs/ and compute every run again "
                        "(default: keep the finished ones and compute only the rest)")
    p.add_argument("-o", "--out", required=True, help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.scheduler is not None and args.jobs is not None:
        raise ValueError("--jobs and --scheduler exclude each other: the cluster at --scheduler has its own workers")
    workers = args.jobs if args.jobs is not None else min(2, os.cpu_count() or 1)
    if workers < 1:
        raise ValueError(f"--jobs must be >= 1, not {workers}")
    if args.retries < 0:
        raise ValueError(f"--retries must be >= 0, not {args.retries}")
    base = TrainConfig(dataset=args.dataset, model=args.model, rank=args.rank, sub_batch=args.sub_batch,
                       batch=args.batch, epochs=args.epochs, data_dir=args.data_dir,
                       error_feedback=args.error_feedback, sigma_min=args.sigma_min,
                       device_model=args.device_model, device_scheme=args.device_scheme,
                       device_bl=args.device_bl, device_options=dict(args.device_option),
                       train_limit=args.train_limit, test_limit=args.test_limit,
                       fixed_scaling=args.fixed_scaling, block=args.block, backend=args.backend).validate()
    # fail early (in this process) on a missing dataset rather than in every run
    prepare_data(base)
    out = Path(args.out)
    try:
        summary = run_study(base, args.methods, args.ranks, args.formats, args.seeds, out, lrs=args.lrs,
                            lr_factors=args.lr_factors, tune=args.tune, tune_seeds=args.tune_seeds,
                            validation=args.validation, workers=workers, progress=not args.quiet,
                            scheduler=args.scheduler, retries=args.retries, fresh=args.fresh)
    except StudyInterrupted as exc:
        print(f"sbpca study: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print((out / "results.md").read_text())
    where = args.scheduler or (f"{workers} worker(s)" if workers > 1 else "serial")
    line = (f"wrote {out / 'results.md'}, results.csv, runs.json, {', '.join(summary['plots'])}, "
            f"{summary['computed'] + summary['skipped']} run files in {out / 'runs'}\n"
            f"{summary['computed']} run(s) computed ({where}), {summary['skipped']} already on disk; "
            f"wall {summary['wall_s']:.1f} s")
    if summary["computed"]:
        line += f", sum of run times {summary['run_time_s']:.1f} s"
        if where != "serial":
            line += f", speed-up {summary['speedup']:.2f}x over serial (sum of run times / wall)"
    print(line, file=sys.stderr)
    if summary["failed"]:
        print(f"sbpca study: {summary['failed']} run(s) failed (listed in results.md, error and traceback in "
              f"their files); rerun the same command to compute them again", file=sys.stderr)
        return EXIT_FAILED_RUNS
    return 0
