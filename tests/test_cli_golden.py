"""The ``sbpca`` entry point and the golden-model commands."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pymodel.cli import main


def test_golden_json(tmp_path, capsys):
    out = tmp_path / "g.json"
    assert main(["golden", "--rows", "16", "--cols", "12", "--rank", "2", "--sub-batch", "8",
                 "--batch", "32", "--batches", "6", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    errs = res["relative_error_last_half"]
    # the optimum is a lower bound for every rank-k estimator
    assert errs["svd"] <= errs["sbpca_float"] + 1e-12
    assert errs["fixed_vs_float"] < 1e-2
    assert "sbpca_fixed" in capsys.readouterr().out


def test_golden_rejects_bad_values(capsys):
    assert main(["golden", "--rank", "0"]) == 2
    assert "--rank must be >= 1" in capsys.readouterr().err


def test_formats_lists_sets(capsys):
    assert main(["formats", "q16"]) == 0
    assert "Q2.14 (16b rhe/sat)" in capsys.readouterr().out
    assert main(["formats", "nope"]) == 2


def test_console_script_installed():
    res = subprocess.run([sys.executable, "-m", "pymodel.cli", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "golden" in res.stdout


def test_unknown_command_fails():
    with pytest.raises(SystemExit):
        main(["frobnicate"])
