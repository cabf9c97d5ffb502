"""The README/TORCH.md example and the torch benchmark run end to end (few epochs/steps)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_digits_example_learns(capsys):
    example = _load(ROOT / "examples" / "torch_digits.py", "torch_digits_example")
    acc = example.main(["--epochs", "3", "--lr", "0.2", "--seed", "0"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("epoch   3")
    assert 0.6 < acc <= 1.0  # chance is 0.1; 3 epochs at rate 0.2 reach ~80 %


def test_bench_torch_prints_a_row_per_config(tmp_path, capsys):
    bench = _load(ROOT / "benchmarks" / "bench_torch.py", "bench_torch")
    out = tmp_path / "bench.json"
    rows = bench.run(["--steps", "3", "--warmup", "2", "--configs", "sbpca,ddp-powersgd,ddp-sbpca",
                      "--json", str(out)])
    assert [r["config"] for r in rows] == ["sbpca", "ddp-powersgd", "ddp-sbpca"]
    assert json.loads(out.read_text()) == rows
    table = capsys.readouterr().out
    assert "ddp-powersgd" in table and "bytes/step" in table
    by = {r["config"]: r for r in rows}
    assert by["ddp-sbpca"]["bytes_per_step"] == 3048 and by["ddp-powersgd"]["bytes_per_step"] == 3000
    assert all(r["step_ms_median"] > 0 and r["peak_mib"] > 0 for r in rows)
