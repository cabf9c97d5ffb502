"""``sbpca study``: sweep planning, aggregation, tuning on a validation split, outputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from pymodel.cli import main
from pymodel.commands.study import Setting, aggregate, plan_settings, run_study
from pymodel.training import TrainConfig


def test_plan_runs_fixed_formats_for_sbpca_only_and_mbgd_once():
    settings, notes = plan_settings(["mbgd", "sbpca", "svd"], [1, 4], ["float", "q16", "q8"])
    labels = [s.label for s in settings]
    assert labels.count("mbgd float") == 1
    assert {s.label for s in settings if s.method == "sbpca"} == {
        f"sbpca k={k} {f}" for k in (1, 4) for f in ("float", "q16", "q8")}
    assert {s.fmt for s in settings if s.method == "svd"} == {"float"}
    assert any("svd runs in float only" in n for n in notes)
    assert Setting("sbpca", 4, "q12").bits == 12 and Setting("sbpca", 4, "float").bits == 64
    with pytest.raises(ValueError, match="sweep is empty"):
        plan_settings(["svd"], [4], ["q8"])
    from pymodel.commands.study import _color
    from pymodel.update_rules import METHODS
    assert len({_color(m) for m in METHODS}) == len(METHODS)  # methods added later get a colour of their own


def test_aggregate_mean_std_and_diverged_seeds():
    runs = [{"diverged": False, "test_accuracy": a, "train_accuracy": 1.0, "rank1_per_batch": 12,
             "grad_error": {"conv1": e}, "time_s": 1.0, "saturations": 0}
            for a, e in ((0.9, 0.5), (0.8, 0.7))]
    runs.append({"diverged": True, "error": "loss is nan", "time_s": 0.5})
    row = aggregate(Setting("sbpca", 4, "float"), 0.1, runs)
    assert row["seeds"] == 3 and row["diverged"] == 1
    assert row["test_acc_mean"] == pytest.approx(0.85)
    assert row["test_acc_std"] == pytest.approx(np.std([0.9, 0.8], ddof=1))
    assert row["grad_error_conv1"] == pytest.approx(0.6)
    all_bad = aggregate(Setting("sbpca", 4, "float"), 1.0, runs[2:])
    assert np.isnan(all_bad["test_acc_mean"]) and all_bad["diverged"] == 1


def test_run_study_tunes_on_validation_and_writes_tables_and_plots(tmp_path):
    # the NumPy reference of SBPCA: no kernel compilation in these tests (same numbers either way)
    base = TrainConfig(epochs=1, batch=32, train_limit=160, test_limit=100, backend="numpy")
    out = tmp_path / "study"
    summary = run_study(base, ["mbgd", "sbpca"], [1, 2], ["float", "q8"], seeds=2, out=out,
                        lrs=[0.05, 0.5], tune=True, workers=1)
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(r["method"], r["rank"], r["format"]) for r in rows] == [
        ("mbgd", "", "float"), ("sbpca", "1", "float"), ("sbpca", "1", "q8"),
        ("sbpca", "2", "float"), ("sbpca", "2", "q8")]
    assert all(int(r["seeds"]) == 2 for r in rows)
    # the chosen rate is the best validation score of its grid, and fixed formats reuse it
    tuning = summary["tuning"]
    for key in {(t["method"], t["rank"]) for t in tuning}:
        grid = [t for t in tuning if (t["method"], t["rank"]) == key]
        best = max(grid, key=lambda t: t["score"])
        assert [t["chosen"] for t in grid].count(True) == 1 and best["chosen"]
        used = {float(r["lr"]) for r in rows if (r["method"], r["rank"]) == (key[0], str(key[1]))}
        assert used == {best["lr"]}
    md = (out / "results.md").read_text()
    assert "| sbpca | 2 | q8 |" in md and "Learning-rate search" in md
    for png in ("acc_vs_rank.png", "acc_vs_bits.png", "acc_vs_updates.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = json.loads((out / "runs.json").read_text())["runs"]
    assert len(runs) == 5 * 2
    assert len(list((out / "runs").glob("tune_*.json"))) == 3 * 2
    assert len(list((out / "runs").glob("run_*.json"))) == 5 * 2
    # same seed, same numbers: the study adds nothing to a plain run
    one = [r for r in runs if r["method"] == "sbpca" and r["rank"] == 1 and r["format"] == "float"]
    from pymodel.commands.study import run_one
    cfg = TrainConfig(epochs=1, batch=32, train_limit=160, test_limit=100, backend="numpy", method="sbpca", rank=1,
                      lr=one[0]["lr"], seed=one[0]["seed"])
    assert run_one(cfg)["test_accuracy"] == one[0]["test_accuracy"]


def test_a_run_that_raises_is_recorded_and_the_others_go_on(tmp_path):
    """A NaN rate passes the grid but raises inside the run (TrainConfig.validate): recorded with
    its traceback, scored zero in the search, listed under the tables; a rerun retries it alone."""
    base = TrainConfig(epochs=1, batch=32, train_limit=96, test_limit=50)
    out = tmp_path / "bad"
    summary = run_study(base, ["svd"], [2], ["float"], seeds=2, out=out, lrs=[float("nan"), 0.5], tune=True)
    bad = [r for r in summary["tuning_runs"] if r["status"] != "ok"]
    assert len(bad) == 1 and bad[0]["status"] == "error" and summary["failed"] == 1
    assert "lr must be a positive finite number, not nan" in bad[0]["error"]
    assert "Traceback" in bad[0]["traceback"] and "validate" in bad[0]["traceback"]
    on_disk = json.loads((out / "runs" / bad[0]["file"]).read_text())
    assert on_disk["status"] == "error" and on_disk["traceback"] == bad[0]["traceback"]
    assert [t["failed"] for t in summary["tuning"]] == [1, 0] and summary["tuning"][1]["chosen"]
    assert [(r["seeds"], r["failed"], r["lr"]) for r in summary["rows"]] == [(2, 0, 0.5)]
    assert all(r["status"] == "ok" for r in summary["runs"])
    md = (out / "results.md").read_text()
    assert f"`runs/{bad[0]['file']}` (error): ValueError: lr must be a positive finite number" in md
    again = run_study(base, ["svd"], [2], ["float"], seeds=2, out=out, lrs=[float("nan"), 0.5], tune=True)
    assert (again["computed"], again["skipped"], again["failed"]) == (1, 3, 1)
    fresh = run_study(base, ["svd"], [2], ["float"], seeds=2, out=out, lrs=[float("nan"), 0.5], tune=True,
                      fresh=True)
    assert (fresh["computed"], fresh["skipped"]) == (4, 0)


def test_run_keys_and_atomic_run_files(tmp_path):
    from dataclasses import replace

    from pymodel.study_store import RunStore, run_filename, run_key

    cfg = TrainConfig(method="sbpca", rank=2, fixed="q8", lr=0.1, seed=1)
    key = run_key(cfg)
    assert key == run_key(replace(cfg)) and key == run_key(replace(cfg, data_dir="/elsewhere"))
    for change in ({"seed": 2}, {"lr": 0.2}, {"fixed": "q16"}, {"epochs": 3}, {"sub_batch": 8},
                   {"validation": 0.2}, {"error_feedback": False}, {"train_limit": 10}):
        assert run_key(replace(cfg, **change)) != key, change
    assert run_filename("run", cfg, key) == f"run_sbpca_k2_q8_lr0.1_s1_{key}.json"
    store = RunStore(tmp_path / "runs")
    from pymodel.study_store import config_identity
    rec = {"key": key, "file": run_filename("run", cfg, key), "status": "ok", "config": config_identity(cfg),
           "test_accuracy": float("nan")}
    path = store.write(rec)
    assert json.loads(path.read_text())["schema"] == 1 and not list(path.parent.glob(".*"))
    (path.parent / "junk.json").write_text("{not json")  # tolerated: not one of ours
    again = RunStore(tmp_path / "runs")
    assert np.isnan(again.finished(key, cfg)["test_accuracy"])  # NaN survives the round trip as a number
    assert again.finished(key, replace(cfg, seed=5)) is None
    with pytest.raises(ValueError, match="run status must be one of"):
        store.write({**rec, "status": "done"})
    assert RunStore(tmp_path / "runs", fresh=True).records == {}


def test_cli_study(tmp_path, capsys):
    out = tmp_path / "s"
    rc = main(["study", "--dataset", "digits", "--ranks", "2", "--methods", "svd,powersgd",
               "--formats", "float", "--seeds", "1", "--epochs", "1", "--train-limit", "96",
               "--no-tune", "--jobs", "1", "--quiet", "-o", str(out)])
    assert rc == 0
    cap = capsys.readouterr()
    text = cap.out
    from pymodel.training import DEFAULT_LR
    assert f"| svd | 2 | float | {DEFAULT_LR['svd']:g} |" in text  # default rate, no tuning
    assert f"| powersgd | 2 | float | {DEFAULT_LR['powersgd']:g} |" in text
    assert (out / "results.csv").exists() and not (out / "tuning.csv").exists()
    assert "2 run(s) computed (serial), 0 already on disk" in cap.err
    assert main(["study", "--dataset", "digits", "--ranks", "2", "--methods", "svd,powersgd",
                 "--formats", "float", "--seeds", "1", "--epochs", "1", "--train-limit", "96",
                 "--no-tune", "--jobs", "1", "--quiet", "-o", str(out)]) == 0
    assert "0 run(s) computed (serial), 2 already on disk" in capsys.readouterr().err
    assert main(["study", "--jobs", "2", "--scheduler", "tcp://127.0.0.1:1", "-o", str(out)]) == 2
    assert "--jobs and --scheduler exclude each other" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["study", "--methods", "adam", "-o", str(out)])
    assert exc.value.code == 2
    assert "unknown method" in capsys.readouterr().err
