"""Training loop, update rules, array-update counting, divergence, stream capture, devices."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pymodel.cli import main
from pymodel.datasets import load_dataset
from pymodel.nn import build_model
from pymodel.sbpca import SBPCA
from pymodel.training import TrainConfig, TrainingDiverged, capture_stream, train
from pymodel.update_rules import LayerRule, RuleConfig, pow2_exponent

DIGITS = load_dataset("digits").limit(192, 120)


def quick(**kw) -> TrainConfig:
    base = dict(epochs=1, batch=32, train_limit=192, test_limit=120)
    base.update(kw)
    return TrainConfig(**base)


def _strip_times(res: dict) -> dict:
    res = json.loads(json.dumps({k: v for k, v in res.items() if k != "time"}, default=float))
    for rec in res["history"]:
        rec.pop("time_s")
    return res


@pytest.mark.parametrize("method,fixed", [("sbpca", None), ("powersgd", None), ("sbpca", "q12")])
def test_same_seed_same_numbers(method, fixed):
    cfg = quick(method=method, fixed=fixed, epochs=2, train_limit=96 if fixed else 192)
    a, b = train(cfg, DIGITS), train(cfg, DIGITS)
    assert _strip_times(a) == _strip_times(b)
    c = train(quick(method=method, fixed=fixed, epochs=2, seed=1, train_limit=96 if fixed else 192), DIGITS)
    assert c["test_loss"] != a["test_loss"]


def test_mbgd_learns_and_its_update_is_plain_sgd_on_the_mean_loss():
    res = train(quick(method="mbgd", epochs=6, lr=0.5), DIGITS)
    hist = res["history"]
    assert hist[-1]["train_loss"] < 0.6 * hist[0]["train_loss"]
    assert res["test_accuracy"] > 0.4  # chance is 0.1
    assert all(v == 0.0 for v in res["grad_error"].values())
    # one rule step: W ← W − (lr/N)·Σ δ xᵀ with δ of the per-sample losses
    model = build_model("cnn", (1, 8, 8), 10, seed=3)
    x, y = DIGITS.x_train[:16], DIGITS.y_train[:16]
    model.loss_and_backward(x, y)
    layer = model.weight_layers[1]
    W0, G = layer.W.copy(), layer.grad
    LayerRule(layer, RuleConfig(method="mbgd")).step(0.25, n_samples=16)
    np.testing.assert_allclose(layer.W, W0 - 0.25 / 16 * G, rtol=0, atol=1e-14)


def test_update_counts_and_gradient_errors_per_method():
    res = {m: train(quick(method=m, rank=2), DIGITS) for m in ("mbgd", "sbpca", "svd", "powersgd")}
    for m in ("sbpca", "svd", "powersgd"):
        u = res[m]["updates"]
        assert u["rank1_per_batch"] == 3 * 2  # k per layer per batch, three weight layers
        assert u["rank1_total"] == 3 * 2 * 6  # 192 samples / batch 32 = 6 batches
        assert "dense_writes_per_batch" not in u
    u = res["mbgd"]["updates"]
    # per-sample outer products: one per (sample, output position) pair
    assert u["per_layer"]["conv1"]["rank1_per_batch"] == 32 * 64
    assert u["per_layer"]["conv2"]["rank1_per_batch"] == 32 * 16
    assert u["per_layer"]["fc"]["rank1_per_batch"] == 32
    assert u["per_layer"]["conv2"]["dense_writes_per_batch"] == 16  # min(a, b) row-wise writes
    # the exact truncated SVD is the optimum among rank-k estimates
    for layer in ("conv1", "conv2", "fc"):
        assert res["svd"]["grad_error"][layer] < res["sbpca"]["grad_error"][layer]
        assert 0 < res["svd"]["grad_error"][layer] < 1
        assert res["powersgd"]["grad_error"][layer] > 0


def test_rank_is_clipped_to_narrow_layers():
    res = train(quick(method="sbpca", rank=9, model="cnn"), DIGITS)
    per = res["updates"]["per_layer"]
    assert per["conv1"]["rank"] == 8 and per["conv1"]["rank1_per_batch"] == 8  # conv1 is 8 × 10
    assert per["conv2"]["rank"] == 9 and per["fc"]["rank"] == 9


def test_bias_is_trained_by_the_low_rank_update_through_the_ones_column():
    cfg = quick(method="sbpca", rank=1)
    from pymodel.training import Trainer
    tr = Trainer(cfg, DIGITS)
    layer = tr.model.layer("fc")
    assert np.all(layer.bias == 0)
    xb, yb = next(tr.batches())
    tr.forward_backward(xb, yb)
    np.testing.assert_array_equal(layer.stream_x[:, -1], 1.0)
    tr.apply_updates(len(xb))
    assert np.any(layer.bias != 0)
    # the change of W (bias column included) is exactly rank 1
    est = tr.rules[-1].estimator
    dW = -cfg.learning_rate / len(xb) * est.gradient()
    assert np.linalg.matrix_rank(dW) == 1
    np.testing.assert_allclose(layer.bias, dW[:, -1])


def test_fixed_point_rule_scales_by_powers_of_two_and_reports_status():
    assert pow2_exponent(1.0, 4.0) == 2 and pow2_exponent(0.3, 1.0) == 1 and pow2_exponent(0.0, 1.0) == 0
    assert pow2_exponent(5.0, 4.0) == -1
    res = train(quick(method="sbpca", fixed="q16", train_limit=64, rank=2), DIGITS)
    st = res["status"]["conv1"]
    assert st["x_exp"] == 2  # pixels in [0, 1] and the ones column: max 1 → 4 = half of ±8
    assert set(st["fixed"]) == {"saturation", "sigma_guard", "degenerate"}
    assert "x" not in st["fixed"]["saturation"]  # the headroom keeps the inputs in range
    assert all(-24 <= s["delta_exp"] <= 24 for s in res["status"].values())


def test_per_batch_fixed_scaling_shifts_sigma_with_the_exponents():
    from pymodel.nn import Linear
    rng = np.random.default_rng(8)
    layer = Linear(6, 5, rng)
    rule = LayerRule(layer, RuleConfig(method="sbpca", rank=2, sub_batch=4, fixed="q16", fixed_scaling="batch"))
    layer.stream_x, layer.stream_delta = rng.uniform(-1, 1, (8, 7)), rng.uniform(-0.9, 0.9, (8, 5))
    layer.stream_x[:, -1] = 1.0
    rule.step(0.1, 8)
    assert (rule.x_exp, rule.d_exp) == (2, 0)
    sigma = rule.estimator.sigma_int.copy()
    G_real = rule.estimator.gradient() * 2.0 ** -(2 + 0)
    # δ four times smaller: the δ exponent grows by 2 and σ is shifted left by 2, exactly
    x2, d2 = layer.stream_x, layer.stream_delta / 4
    rule.scale_stream(x2, d2)
    assert rule.d_exp == 2 and rule.rescales == 1
    np.testing.assert_array_equal(rule.estimator.sigma_int, sigma << 2)
    rule.scale_stream(x2, d2)  # idempotent for the same batch
    np.testing.assert_array_equal(rule.estimator.sigma_int, sigma << 2)
    # the carried estimate in real units is unchanged by the rescaling
    np.testing.assert_allclose(rule.estimator.gradient() * 2.0 ** -(2 + 2), G_real, rtol=1e-12)
    with pytest.raises(ValueError, match="fixed_scaling"):
        RuleConfig(fixed_scaling="sometimes").validate()


def test_capture_stream_reproduces_the_fixed_point_engine_state(tmp_path):
    cfg = quick(method="sbpca", fixed="q16", rank=2, sub_batch=8)
    cap = capture_stream(cfg, layer="fc", step=2, data=DIGITS)
    cap.to_npz(tmp_path / "fc.npz")
    saved = np.load(tmp_path / "fc.npz")
    np.testing.assert_array_equal(saved["x_int"], cap.x_int)
    np.testing.assert_array_equal(saved["state_after_int_sigma"], cap.state_after_int[2])
    assert str(saved["meta_layer"]) == "fc" and int(saved["meta_step"]) == 2
    assert cap.layer == "fc" and cap.x.shape == (32, 65) and cap.delta.shape == (32, 10)
    assert cap.x_int.dtype == np.int64 and cap.x_int.shape == cap.x.shape
    X0, D0, s0 = cap.state_before
    est = SBPCA(10, 65, 2, 8, fixed="q16", init=(X0, D0, s0))
    np.testing.assert_array_equal(est.X_int, cap.state_before_int[0])
    est.update_int(cap.x_int, cap.delta_int)
    for got, want in zip((est.X_int, est.Delta_int, est.sigma_int), cap.state_after_int):
        np.testing.assert_array_equal(got, want)
    # float capture of a conv layer: one pair per (sample, position); Σ δ xᵀ is the layer gradient
    cap = capture_stream(quick(method="sbpca"), layer=0, step=0, data=DIGITS)
    assert cap.x.shape == (32 * 64, 10) and cap.x_int is None
    est = SBPCA(8, 10, 4, 16, init=cap.state_before)
    est.update(cap.x, cap.delta)
    np.testing.assert_allclose(est.X, cap.state_after[0], atol=1e-12)
    # a step past the first epoch (6 batches per epoch here), and a baseline without SBPCA state
    cap = capture_stream(quick(method="mbgd"), layer="conv2", step=7, data=DIGITS)
    assert cap.step == 7 and cap.x.shape == (32 * 16, 73) and cap.state_before is None


def test_divergence_stops_with_a_clear_message(tmp_path, capsys):
    with pytest.raises(TrainingDiverged, match=r"diverged at epoch 1, batch \d+: .*method mbgd, lr 1e\+200"):
        train(quick(method="mbgd", lr=1e200, epochs=2), DIGITS)
    out = tmp_path / "d.json"
    rc = main(["train", "--method", "mbgd", "--lr", "1e200", "--epochs", "1", "--train-limit", "128",
               "--quiet", "--json", str(out)])
    cap = capsys.readouterr()
    assert rc == 3
    assert "diverged" in cap.err and "smaller learning rate" in cap.err
    assert "accuracy" not in cap.out and "nan" not in cap.out.lower()
    data = json.loads(out.read_text())
    assert data["diverged"] is True and "test_accuracy" not in data


class FakeArray:
    """A duck-typed array: records every update, applies −lr·Σ u vᵀ exactly."""

    def __init__(self, shape, seed):
        self.W = np.zeros(shape)
        self.calls = []

    @property
    def weights(self):
        return self.W.copy()

    def program(self, W):
        self.W = np.round(np.asarray(W) * 100) / 100  # programming is quantised

    def apply_update(self, factors, lr, scheme="stochastic", bl=None):
        self.calls.append((len(factors), lr, scheme))
        for u, v in factors:
            self.W -= lr * np.outer(u, v)
        return {"updates": len(factors), "slots": 7}


def test_device_array_holds_the_weights():
    arrays = []

    def factory(shape, seed):
        arrays.append(FakeArray(shape, seed))
        return arrays[-1]

    cfg = quick(method="sbpca", rank=3, train_limit=64)
    res = train(cfg, DIGITS, array_factory=factory)
    from pymodel.training import Trainer
    assert len(arrays) == 3 and all(len(a.calls) == 2 for a in arrays)
    assert all(c == (3, cfg.learning_rate / 32, "stochastic") for a in arrays for c in a.calls)
    assert res["status"]["fc"]["device"] == {"updates": 6.0, "slots": 14.0}
    # same run without the array: differs only by the programming quantisation
    tr = Trainer(cfg, DIGITS, array_factory=lambda s, seed: FakeArray(s, seed))
    for layer, arr in zip(tr.model.weight_layers, [r.array for r in tr.rules]):
        np.testing.assert_array_equal(layer.W, arr.weights)


def test_real_device_model_trains_through_pulses():
    cfg = quick(method="sbpca", rank=2, train_limit=64, device_model="ideal",
                device_options={"dw_min": 0.002})
    from pymodel.training import Trainer
    tr = Trainer(cfg, DIGITS)
    w0 = [r.array.weights.copy() for r in tr.rules]
    res = tr.run()
    for rule, w in zip(tr.rules, w0):
        np.testing.assert_array_equal(rule.layer.W, rule.array.weights)
        assert not np.array_equal(rule.layer.W, w)
        # the ideal device moves in whole steps of dw_min
        np.testing.assert_allclose(np.round(rule.layer.W / 0.002) * 0.002, rule.layer.W, atol=1e-12)
    assert res["status"]["conv1"]["device"]["device_steps"] > 0


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="unknown method"):
        TrainConfig(method="adam").validate()
    with pytest.raises(ValueError, match="fixed-point formats apply to method sbpca, sks, sks-unbiased only"):
        TrainConfig(method="svd", fixed="q16").validate()
    with pytest.raises(ValueError, match="unknown format set"):
        TrainConfig(fixed="q99").validate()
    with pytest.raises(ValueError, match="lr must be"):
        TrainConfig(lr=-1.0).validate()
    with pytest.raises(ValueError, match="batch"):
        TrainConfig(batch=0).validate()
    with pytest.raises(ValueError, match="unknown device model"):
        train(quick(device_model="memristor9000"), DIGITS)


def test_cli_train_json_on_digits(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["train", "--dataset", "digits", "--method", "sbpca", "--rank", "2", "--sub-batch", "16",
               "--batch", "64", "--epochs", "1", "--lr", "0.1", "--seed", "0", "--train-limit", "128",
               "--quiet", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and "rank-1/batch" in text and "forward" in text
    data = json.loads(out.read_text())
    for key in ("test_accuracy", "train_accuracy", "epochs", "updates", "grad_error", "time"):
        assert key in data
    assert data["epochs"] == 1 and data["updates"]["rank1_per_batch"] == 6


def test_cli_train_runs_unchanged_on_mnist_files(tmp_path, capsys):
    from pymodel.datasets import write_idx
    rng = np.random.default_rng(5)
    for prefix, n in (("train", 40), ("t10k", 20)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = np.zeros((n, 28, 28), dtype=np.uint8)
        for i, c in enumerate(y):  # a learnable pattern: a bright bar whose row is the label
            x[i, 2 * c + 3: 2 * c + 5, 4:24] = 255
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", y)
    for ds in ("mnist", "fashion-mnist"):
        out = tmp_path / f"{ds}.json"
        rc = main(["train", "--dataset", ds, "--data-dir", str(tmp_path), "--method", "sbpca", "--epochs", "2",
                   "--batch", "20", "--quiet", "--json", str(out)])
        assert rc == 0, capsys.readouterr().err
        data = json.loads(out.read_text())
        assert data["dataset"]["input_shape"] == [1, 28, 28] and data["dataset"]["train"] == 40
        assert data["updates"]["per_layer"]["conv1"]["pairs_per_batch"] == 20 * 28 * 28
    rc = main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "missing"), "--quiet"])
    assert rc == 2 and "data directory not found" in capsys.readouterr().err
