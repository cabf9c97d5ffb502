"""``sbpca demo``: its pieces and the reduced end-to-end run (training, capture, SoC firmware
co-simulation of the captured batch).  The FPGA step is left out here (``--no-synth``): place and
route of even a small engine takes minutes on two shared cores; ``tests/test_synth.py`` covers
the synthesis flow and CI runs ``sbpca demo --quick`` with it.
"""

from __future__ import annotations

import json

import pytest

from testbench.commands.demo import DemoConfig, Steps, lr_scale_word, summary_table


def test_presets_and_lr_scale():
    q, f = DemoConfig.preset(True), DemoConfig.preset(False)
    assert q.epochs < f.epochs and q.capture_batch < f.capture_batch
    assert q.synth_engine["rows"] * q.synth_engine["cols"] < f.synth_engine["rows"] * f.synth_engine["cols"]
    # eta / (dw_min * BL) in unsigned Q8.24, rounded half up
    assert lr_scale_word(0.2, 0.01, 16) == round(1.25 * (1 << 24))
    assert lr_scale_word(1e-6, 1.0, 1) == 17  # 16.78 rounds up
    with pytest.raises(ValueError, match="Q8.24"):
        lr_scale_word(10.0, 0.001, 1)


def test_steps_report_progress(capsys):
    import io

    buf = io.StringIO()
    st = Steps(2, out=buf)
    assert st.run("one", "first", lambda: 41) + 1 == 42
    assert "[1/2] first ..." in buf.getvalue() and "[1/2] first: done in" in buf.getvalue()
    assert set(st.seconds) == {"one"}


@pytest.mark.cosim
def test_demo_quick_end_to_end_without_synth(tmp_path, capsys):
    from pymodel.cli import main

    out = tmp_path / "demo.json"
    rc = main(["demo", "--quick", "--no-synth", "--no-progress", "--build-dir", str(tmp_path / "b"),
               "--json", str(out)])
    s = json.loads(out.read_text())
    assert rc == 0, s["mismatch_details"]
    for key in ("test_accuracy", "mismatches", "words_compared", "cycles_per_sample",
                "bound_cycles_per_sample", "luts", "ffs", "dsps", "brams", "fmax_mhz"):
        assert key in s
    assert s["mismatches"] == 0 and s["training_state_match"] and s["ok"]
    k, a, b = 4, 10, 65
    assert s["captured_samples"] == 12 and s["layer"].startswith("fc (10x65)")
    assert s["words_compared"] > k * (a + b) + s["pulse_words"]
    assert s["pulse_words"] == k * 15
    assert s["bound_cycles_per_sample"] == pytest.approx(2 * k * (a + b) / 2)
    assert s["cycles_per_sample"] >= s["bound_cycles_per_sample"]
    assert 0.1 < s["test_accuracy"] <= 1.0
    assert s["luts"] is None and s["synth"] is None  # skipped, never invented
    table = capsys.readouterr().out
    assert "mismatches" in table and "PASS" in table and table == summary_table(s) + "\n"
