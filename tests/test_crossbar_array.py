"""Crossbar array model: expected change of the stochastic scheme, exact deterministic change,
device models (soft bounds, asymmetry, variation, bounds), seeds and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from pymodel.crossbar import DEVICE_MODELS, DeviceModel, make_array
from pymodel.crossbar.array import SoftBoundsDevice


def _vectors(a: int, b: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, a), rng.uniform(-1, 1, b)


def test_required_device_models_exist():
    assert {"ideal", "softbounds", "asymmetric", "variable", "realistic"} <= set(DEVICE_MODELS)
    for name in DEVICE_MODELS:
        arr = make_array(name, (3, 4), seed=1)
        assert arr.weights.shape == (3, 4) and arr.dw_min == pytest.approx(0.001)


def test_stochastic_mean_change_equals_minus_lr_uv():
    """Over many seeds the mean change of an ideal array is -lr u v^T within a 5-sigma bound."""
    a, b, lr, bl = 6, 5, 0.004, 31
    u, v = _vectors(a, b, 11)
    target = -lr * np.outer(u, v)
    k = lr * np.abs(u).max() * np.abs(v).max() / 0.001
    n_seeds = 300
    steps = np.zeros((n_seeds, a, b))
    for s in range(n_seeds):
        arr = make_array("ideal", (a, b), seed=s)
        stats = arr.apply_update([(u, v)], lr, scheme="stochastic", bl=bl)
        assert stats["bl"] == [bl] and stats["clipped"] == 0
        steps[s] = arr.weights / arr.dw_min
    assert np.allclose(steps, np.rint(steps), atol=1e-9)  # ideal device: whole steps only
    mean = steps.mean(axis=0) * 0.001
    # per cell: BL slots of Bernoulli(p_r q_c); p_r q_c = (K/BL)|u_n||v_n|
    pq = (k / bl) * np.abs(np.outer(u / np.abs(u).max(), v / np.abs(v).max()))
    se = np.sqrt(bl * pq * (1 - pq) / n_seeds) * 0.001
    quant = bl * 0.001 * (2.0 ** -12) * 2.5  # threshold rounding, |dp| <= 2**-13 per side
    assert np.all(np.abs(mean - target) <= 5 * se + quant), np.max(np.abs(mean - target) / (se + 1e-12))
    # and the estimator is not trivially loose: the mean moved by the right amount
    assert np.linalg.norm(mean - target) < 0.1 * np.linalg.norm(target)


def test_deterministic_change_equals_quantised_product_exactly():
    a, b, lr = 7, 9, 0.02
    u, v = _vectors(a, b, 5)
    arr = make_array("ideal", (a, b), seed=0)
    drv = arr.driver("deterministic")
    stats = arr.apply_update([(u, v)], lr, scheme="deterministic", bl=15)
    assert stats["bl"] == [15] and stats["clipped"] == 0
    # the quantised product, recomputed from the plan's integers
    from pymodel.crossbar import plan_update

    plan = plan_update(u, v, lr, arr.dw_min, drv.params, bl=15)
    sh = drv.params.threshold_shift
    lvl = np.minimum((np.abs(plan.u_int) * plan.cfg.row_scale + (1 << (sh - 1))) >> sh, 7)
    cnt = np.minimum((np.abs(plan.v_int) * plan.cfg.col_scale + (1 << (sh - 1))) >> sh, 15)
    want_steps = -np.sign(np.outer(u, v)).astype(np.int64) * np.outer(lvl, cnt)
    got = arr.weights / arr.dw_min
    np.testing.assert_array_equal(np.rint(got).astype(np.int64), want_steps)
    assert np.allclose(got, want_steps, atol=1e-9)
    # and the quantised product approximates -lr u v^T: level and count each round by <= 1/2
    k = lr * np.abs(u).max() * np.abs(v).max() / arr.dw_min
    la = min(7.0, max(np.sqrt(k), k / 15))  # update management: levels per unit, counts = k / la
    lb = k / la
    un, vn = np.abs(u) / np.abs(u).max(), np.abs(v) / np.abs(v).max()
    bound = 0.5 * np.add.outer(la * un, lb * vn) + 0.25 + 1e-3
    err_steps = np.abs(want_steps - (-lr * np.outer(u, v)) / arr.dw_min)
    assert np.all(err_steps <= bound)
    assert np.any(want_steps != 0)


def test_rank_k_is_k_sequential_rank1_updates():
    rng = np.random.default_rng(3)
    factors = [(rng.standard_normal(8), rng.standard_normal(6)) for _ in range(3)]
    for scheme in ("stochastic", "deterministic"):
        one = make_array("realistic", (8, 6), seed=9)
        one.apply_update(factors, 0.01, scheme=scheme)
        seq = make_array("realistic", (8, 6), seed=9)
        for f in factors:
            seq.apply_update([f], 0.01, scheme=scheme)
        np.testing.assert_array_equal(one.weights, seq.weights)
        assert one.totals == seq.totals


def test_deterministic_under_seed():
    u, v = _vectors(10, 12, 1)
    w = []
    for seed in (4, 4, 5):
        arr = make_array("variable", (10, 12), seed=seed)
        arr.apply_update([(u, v)], 0.01)
        w.append(arr.weights)
    np.testing.assert_array_equal(w[0], w[1])
    assert not np.array_equal(w[0], w[2])


def test_weights_are_a_read_only_copy():
    arr = make_array("ideal", (2, 2))
    w = arr.weights
    with pytest.raises(ValueError):
        w[0, 0] = 1.0
    assert arr.weights is not w


def test_program_nearest_reachable_state():
    arr = make_array("ideal", (2, 3), dw_min=0.01)
    arr.program([[0.0123, -0.0149, 5.0], [-7.0, 0.005, 0.0151]])
    np.testing.assert_allclose(arr.weights, [[0.01, -0.01, 1.0], [-1.0, 0.0, 0.02]], atol=1e-12)
    soft = make_array("softbounds", (1, 2), w_max=0.5)
    soft.program([[0.0123, 0.9]])
    np.testing.assert_allclose(soft.weights, [[0.0123, 0.5]])
    with pytest.raises(ValueError, match="shape"):
        arr.program(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        arr.program(np.full((2, 3), np.nan))


@pytest.mark.parametrize("name", sorted(DEVICE_MODELS))
def test_weights_stay_in_bounds(name):
    arr = make_array(name, (6, 6), seed=2, dw_min=0.05)
    u, v = _vectors(6, 6, 2)
    for _ in range(6):
        arr.apply_update([(u, v)], 10.0, scheme="deterministic")
        arr.apply_update([(-u, v)], 3.0)
    lo, hi = arr.bounds
    assert np.all(arr.weights >= lo - 1e-12) and np.all(arr.weights <= hi + 1e-12)
    arr.apply_update([(u, v)], 1e4, scheme="deterministic")
    assert np.all(arr.weights >= lo - 1e-12) and np.all(arr.weights <= hi + 1e-12)


def test_soft_bounds_steps_shrink_and_closed_form_equals_pulse_by_pulse():
    dev = SoftBoundsDevice(dw_min=0.01).bind((1, 3), np.random.default_rng(0))
    rng = np.random.default_rng(0)
    w0 = np.array([[0.0, 0.5, -0.5]])
    one = dev.apply_pulses(w0, np.ones((1, 3), np.int64), rng)
    np.testing.assert_allclose(one - w0, [[0.01, 0.005, 0.015]])
    steps = np.array([[7, -5, 0]])
    at_once = dev.apply_pulses(w0, steps, rng)
    w = w0.copy()
    for j in range(7):
        w = dev.apply_pulses(w, np.where(np.abs(steps) > j, np.sign(steps), 0), rng)
    np.testing.assert_allclose(at_once, w, rtol=0, atol=1e-14)


def test_asymmetric_up_down_ratio():
    arr = make_array("asymmetric", (20, 20), seed=1, asymmetry_d2d=0.0, asymmetry=0.2)
    dev = arr.device
    rng = np.random.default_rng(0)
    up = dev.apply_pulses(np.zeros((20, 20)), np.full((20, 20), 10), rng)
    dn = dev.apply_pulses(np.zeros((20, 20)), np.full((20, 20), -10), rng)
    np.testing.assert_allclose(up / -dn, 1.2 / 0.8)


def test_variable_device_has_d2d_and_c2c_spread():
    shape = (30, 30)
    d2d = make_array("variable", shape, seed=1, c2c=0.0).device
    c2c = make_array("variable", shape, seed=1, d2d=0.0, bound_d2d=0.0).device
    rng = np.random.default_rng(0)
    steps = np.full(shape, 20)
    a = d2d.apply_pulses(np.zeros(shape), steps, rng) / 0.02
    b1 = c2c.apply_pulses(np.zeros(shape), steps, rng) / 0.02
    b2 = c2c.apply_pulses(np.zeros(shape), steps, rng) / 0.02
    assert 0.2 < a.std() < 0.4 and abs(a.mean() - 1) < 0.05  # d2d = 0.3 on the step
    assert np.allclose(a, d2d.apply_pulses(np.zeros(shape), steps, rng) / 0.02)  # fixed per device
    # c2c: the sum of 20 steps with 30 % noise has 0.3/sqrt(20) relative spread, new each time
    assert 0.04 < b1.std() < 0.1 and not np.allclose(b1, b2)


def test_stats_report_pulses_and_coincidences():
    u, v = _vectors(8, 8, 7)
    arr = make_array("ideal", (8, 8), seed=3)
    st = arr.apply_update([(u, v), (np.zeros(8), v)], 0.005)
    assert st["updates"] == 2 and st["skipped"] == 1 and len(st["bl"]) == 2 and st["bl"][1] == 0
    assert st["bl"][0] == int(np.ceil(0.005 * np.abs(u).max() * np.abs(v).max() / 0.001))
    assert st["coincidences"] == st["device_steps"] == int(round(np.abs(arr.weights).sum() / 0.001))
    assert st["row_pulses"] > 0 and st["col_pulses"] > 0 and st["slots"] == st["bl"][0]
    det = make_array("ideal", (8, 8), seed=3)
    sd = det.apply_update([(u, v)], 0.005, scheme="deterministic", bl=10)
    assert sd["device_steps"] >= sd["coincidences"] > 0


def test_bad_input_is_rejected_clearly():
    arr = make_array("ideal", (3, 2))
    u, v = np.ones(3), np.ones(2)
    with pytest.raises(ValueError, match="unknown device model"):
        make_array("memristor", (3, 2))
    with pytest.raises(TypeError, match="unknown device option"):
        make_array("ideal", (3, 2), dw=0.1)
    with pytest.raises(ValueError, match="shape"):
        make_array("ideal", (3, 0))
    with pytest.raises(ValueError, match="bounds"):
        make_array("ideal", (3, 2), w_min=0.5)
    with pytest.raises(ValueError, match="dw_min"):
        make_array("ideal", (3, 2), dw_min=-1.0)
    with pytest.raises(ValueError, match="scheme"):
        arr.apply_update([(u, v)], 0.1, scheme="analog")
    with pytest.raises(ValueError, match="shapes"):
        arr.apply_update([(v, u)], 0.1)
    with pytest.raises(ValueError, match="NaN"):
        arr.apply_update([(u * np.nan, v)], 0.1)
    with pytest.raises(TypeError, match="list of"):
        arr.apply_update((u, v), 0.1)
    with pytest.raises(ValueError, match="lr"):
        arr.apply_update([(u, v)], float("inf"))
    with pytest.raises(ValueError, match="bl must be in"):
        arr.apply_update([(u, v)], 0.1, bl=99)
    with pytest.raises(TypeError, match="DeviceModel"):
        from pymodel.crossbar import CrossbarArray
        CrossbarArray("ideal", (3, 2))
    assert isinstance(arr.device, DeviceModel)
