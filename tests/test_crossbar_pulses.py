"""Golden pulse schedules: thresholds, firing rule, polarity, packing, update management, BL."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymodel.crossbar import (
    DriverModel,
    DriverParams,
    UpdateConfig,
    choose_bl,
    config_for_vectors,
    plan_update,
    update_config,
)
from pymodel.crossbar.lfsr import LfsrBank
from pymodel.crossbar.pulses import pack_fields, thresholds, unpack_fields


def _params(**kw) -> DriverParams:
    base = dict(rows=6, cols=5, bl_max=31, seed=3)
    base.update(kw)
    return DriverParams(**base)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 1 << 16), st.integers(0, (1 << 31) - 1), st.integers(1, 40), st.integers(1, 1 << 20))
def test_thresholds_are_exact_round_half_up(mag, scale, shift, cap):
    t, clipped = thresholds(np.array([mag]), scale, shift, cap)
    exact = math.floor(Fraction(mag * scale, 1 << shift) + Fraction(1, 2))
    assert int(t[0]) == min(exact, cap)
    assert clipped == int(exact > cap)


def test_zero_vectors_never_fire():
    p = _params()
    m = DriverModel(p)
    s = m.run(np.zeros(6, np.int64), np.zeros(5, np.int64), UpdateConfig(1 << 30, 1 << 30, 31))
    assert s.bl == 31 and not s.row_fire.any() and not s.col_fire.any()
    assert not s.row_neg.any() and not s.col_neg.any()
    assert not s.cell_steps().any()


def test_saturating_magnitudes_always_fire_and_are_counted():
    p = _params()
    f = p.state
    u = np.array([f.min_int, f.max_int, f.min_int, 0, 1 << 12, -(1 << 12)])  # top scale ~2048/unit
    v = np.array([f.max_int, f.min_int, 1 << 10, -(1 << 10), 0])
    top = (1 << p.scale_bits) - 1
    s = DriverModel(p).run(u, v, UpdateConfig(top, top, 7))
    assert s.bl == 7
    assert s.row_fire[:, [0, 1, 2, 4, 5]].all() and not s.row_fire[:, 3].any()
    assert s.col_fire[:, [0, 1, 2, 3]].all() and not s.col_fire[:, 4].any()
    assert s.row_thr.max() == 1 << p.prob_bits
    assert s.clipped == 9  # every non-zero element exceeds 2**P


@pytest.mark.parametrize("scheme", ["stochastic", "deterministic"])
@pytest.mark.parametrize("negate", [False, True])
def test_polarity_for_all_sign_combinations(scheme, negate):
    p = _params(rows=2, cols=2, scheme=scheme)
    one = 1 << p.state.frac
    u = np.array([one, -one])
    v = np.array([one, -one])
    # stochastic: probability 1 on both sides; deterministic: level 1 x count 5
    col_scale = (1 if scheme == "stochastic" else 5) << p.scale.frac
    cfg = UpdateConfig(1 << p.scale.frac, col_scale, 5, negate=negate)
    s = DriverModel(p).run(u, v, cfg)
    steps = s.cell_steps()
    want = -np.sign(np.outer(u, v)) * (-1 if negate else 1)
    np.testing.assert_array_equal(np.sign(steps), want)
    np.testing.assert_array_equal(np.abs(steps), np.full((2, 2), 5))
    np.testing.assert_array_equal(s.row_neg, np.array([negate, not negate]))


def test_stochastic_firing_rate_matches_threshold():
    p = _params(rows=4, cols=1, bl_max=63, prob_bits=8)
    m = DriverModel(p)
    f = p.state
    u = np.array([0, 1 << f.frac, (1 << f.frac) // 4, 3 * (1 << f.frac) // 4])
    cfg = UpdateConfig(1 << p.scale.frac, 0, 63)  # probability = |u|
    fires = np.zeros(4)
    runs = 120
    for _ in range(runs):
        fires += m.run(u, np.zeros(1, np.int64), cfg).row_fire.sum(axis=0)
    rate = fires / (runs * 63)
    np.testing.assert_array_equal(m.run(u, np.zeros(1, np.int64), cfg).row_thr, [0, 256, 64, 192])
    assert rate[0] == 0 and rate[1] == 1
    se = np.sqrt(0.25 * 0.75 / (runs * 63))
    assert abs(rate[2] - 0.25) < 5 * se and abs(rate[3] - 0.75) < 5 * se


def test_stochastic_rule_reproduced_from_lfsr_states():
    """Slot t fires lane i iff (lfsr_i(t) & (2**P-1)) < threshold_i, lanes rows then columns."""
    p = _params()
    rng = np.random.default_rng(5)
    f = p.state
    m = DriverModel(p)
    bank = LfsrBank(p.lfsr, p.seeds)
    for bl in (3, 31, 1):
        u = rng.integers(f.min_int, f.max_int + 1, 6)
        v = rng.integers(f.min_int, f.max_int + 1, 5)
        cfg = UpdateConfig(int(rng.integers(0, 1 << 22)), int(rng.integers(0, 1 << 22)), bl)
        s = m.run(u, v, cfg)
        st_ = bank.advance(bl).astype(np.int64) & ((1 << p.prob_bits) - 1)
        thr = np.concatenate([s.row_thr, s.col_thr])
        fire = st_ < thr[None, :]
        np.testing.assert_array_equal(fire[:, :6], s.row_fire)
        np.testing.assert_array_equal(fire[:, 6:], s.col_fire)


def test_deterministic_levels_and_counts():
    p = _params(scheme="deterministic", rows=3, cols=3, level_bits=4)
    one = 1 << p.state.frac
    u = np.array([one, -one // 2, one // 8])
    v = np.array([one, one // 3, -one])
    cfg = UpdateConfig(6 << p.scale.frac, 10 << p.scale.frac, 12)  # 6 levels, 10 pulses per unit
    s = DriverModel(p).run(u, v, cfg)
    np.testing.assert_array_equal(s.row_thr, [6, 3, 1])  # 0.75 rounds half up to 1
    np.testing.assert_array_equal(s.col_thr, [10, 3, 10])
    assert s.row_fire.all()
    np.testing.assert_array_equal(s.col_fire.sum(axis=0), [10, 3, 10])
    assert s.col_fire[:10, 0].all() and not s.col_fire[10:, 0].any()
    np.testing.assert_array_equal(s.cell_steps(), -np.outer([6, -3, 1], [10, 3, -10]))
    # levels saturate at level_max, counts at BL
    s2 = DriverModel(p).run(u, v, UpdateConfig(20 << p.scale.frac, 40 << p.scale.frac, 12))
    np.testing.assert_array_equal(s2.row_thr, [7, 7, 3])
    np.testing.assert_array_equal(s2.col_thr, [12, 12, 12])
    assert s2.clipped == 5


def test_effective_bl_clamps_and_cfg_validation():
    p = _params(bl_max=20)  # bl field 5 bits
    m = DriverModel(p)
    z6, z5 = np.zeros(6, np.int64), np.zeros(5, np.int64)
    assert m.run(z6, z5, UpdateConfig(0, 0, 0)).bl == 1
    assert m.run(z6, z5, UpdateConfig(0, 0, 31)).bl == 20
    with pytest.raises(ValueError, match="bl must fit"):
        m.run(z6, z5, UpdateConfig(0, 0, 32))
    with pytest.raises(ValueError, match="row_scale"):
        m.run(z6, z5, UpdateConfig(-1, 0, 3))
    with pytest.raises(ValueError, match="shape"):
        m.run(np.zeros(5, np.int64), z5, UpdateConfig(0, 0, 3))
    with pytest.raises(TypeError, match="integers"):
        m.run(np.zeros(6), z5, UpdateConfig(0, 0, 3))
    with pytest.raises(ValueError, match="outside the state format"):
        m.run(np.full(6, 1 << 20), z5, UpdateConfig(0, 0, 3))
    with pytest.raises(TypeError, match="UpdateConfig"):
        m.run(z6, z5, (0, 0, 3))


def test_words_pack_every_field():
    for scheme in ("stochastic", "deterministic"):
        p = _params(scheme=scheme)
        rng = np.random.default_rng(1)
        f = p.state
        u = rng.integers(f.min_int, f.max_int + 1, 6)
        v = rng.integers(f.min_int, f.max_int + 1, 5)
        s = DriverModel(p).run(u, v, UpdateConfig(1 << 19, 3 << 20, 9))
        words = s.words(p)
        assert len(words) == 9
        for t, w in enumerate(words):
            d = unpack_fields(p.word_fields(), w)
            assert d["slot"] == t and d["last"] == int(t == 8)
            assert [(d["row_fire"] >> r) & 1 for r in range(6)] == s.row_fire[t].astype(int).tolist()
            assert [(d["col_neg"] >> c) & 1 for c in range(5)] == s.col_neg.astype(int).tolist()
            if scheme == "deterministic":
                lv = [(d["row_level"] >> (3 * r)) & 7 for r in range(6)]
                assert lv == s.row_thr.tolist()
        assert sum(w for _, w in p.word_fields()) >= 4 * 6
    with pytest.raises(ValueError, match="does not fit"):
        pack_fields([("a", 2)], {"a": 4})


def test_lfsr_state_persists_across_updates():
    p = _params()
    one = 1 << p.state.frac
    u = np.full(6, one // 2)
    v = np.full(5, one // 2)
    cfg = UpdateConfig(1 << p.scale.frac, 1 << p.scale.frac, 10)
    m = DriverModel(p)
    a, b = m.run(u, v, cfg), m.run(u, v, cfg)
    both = DriverModel(p).run(u, v, UpdateConfig(cfg.row_scale, cfg.col_scale, 20))
    np.testing.assert_array_equal(np.concatenate([a.row_fire, b.row_fire]), both.row_fire)
    assert not np.array_equal(a.row_fire, b.row_fire)


def test_choose_bl_as_aihwkit():
    p = _params(bl_max=31)
    assert choose_bl(0.0, p) == 1
    assert choose_bl(4.0, p) == 4
    assert choose_bl(4.2, p) == 5
    assert choose_bl(1000.0, p) == 31
    assert choose_bl(1000.0, p, bl_max=7) == 7
    d = p.with_scheme("deterministic")
    assert choose_bl(20.0, d) == 5  # ceil(sqrt(20)): level 4.5 x count 4.5
    assert choose_bl(100.0, d) == 15  # ceil(100 / 7): levels saturate at 7
    with pytest.raises(ValueError):
        choose_bl(float("nan"), p)


def test_update_management_balances_probabilities():
    p = _params(bl_max=31)
    cfg, info = update_config(1.0, 1.0, 0.009, 0.001, p)  # K = 9 -> BL 9, max prob 1
    assert info["bl"] == 9 and cfg.bl == 9 and not cfg.negate
    assert cfg.row_scale == cfg.col_scale == 1 << p.scale.frac
    cfg, info = update_config(0.5, 0.25, -0.04, 0.001, p, bl=31)  # K = 5, p_max = sqrt(5/31)
    assert cfg.negate and info["bl"] == 31
    pu = cfg.row_scale / 2 ** p.scale.frac * 0.5
    pv = cfg.col_scale / 2 ** p.scale.frac * 0.25
    assert pu == pytest.approx(math.sqrt(5 / 31), rel=1e-5) and pv == pytest.approx(pu, rel=1e-5)
    # without management: the same scale per unit of both vectors
    cfg, _ = update_config(0.5, 0.25, 0.04, 0.001, p, bl=31, update_management=False)
    assert cfg.row_scale == pytest.approx(cfg.col_scale, rel=1e-6)
    with pytest.raises(ValueError, match="bl must be in"):
        update_config(1.0, 1.0, 0.01, 0.001, p, bl=32)
    with pytest.raises(ValueError, match="dw_min"):
        update_config(1.0, 1.0, 0.01, 0.0, p)


def test_plan_update_quantises_normalised_vectors():
    p = _params()
    rng = np.random.default_rng(2)
    u, v = rng.standard_normal(6), rng.standard_normal(5)
    plan = plan_update(u, v, 0.01, 0.001, p)
    one = 1 << p.state.frac
    assert np.abs(plan.u_int).max() == one and np.abs(plan.v_int).max() == one
    np.testing.assert_allclose(plan.u_int / one, u / np.abs(u).max(), atol=1 / one)
    k = 0.01 * np.abs(u).max() * np.abs(v).max() / 0.001
    assert plan.info["k_steps"] == pytest.approx(k) and plan.cfg.bl == math.ceil(k)
    zero = plan_update(np.zeros(6), v, 0.01, 0.001, p)
    assert zero.info["k_steps"] == 0 and zero.cfg.row_scale == 0
    with pytest.raises(ValueError, match="finite"):
        plan_update(u * np.nan, v, 0.01, 0.001, p)
    with pytest.raises(ValueError, match="shapes"):
        plan_update(u[:3], v, 0.01, 0.001, p)


def test_params_validation_and_json_roundtrip():
    p = _params(scheme="deterministic", level_bits=5)
    q = DriverParams.from_dict(p.to_dict())
    assert q == p and q.seeds == p.seeds
    with pytest.raises(ValueError, match="scheme"):
        _params(scheme="random")
    with pytest.raises(ValueError, match="rows"):
        _params(rows=0)
    with pytest.raises(TypeError, match="cols"):
        _params(cols=2.5)
    with pytest.raises(ValueError, match="prob_bits"):
        _params(prob_bits=17)
    with pytest.raises(ValueError, match="seeds must hold"):
        _params(seeds=(1, 2, 3))
    with pytest.raises(ValueError, match="non-zero"):
        _params(seeds=tuple([0] * 11))
    from pymodel.fixedpoint import Fmt
    with pytest.raises(ValueError, match="fraction bits"):
        _params(scale=Fmt(16, -3))


def test_config_for_integer_vectors_gives_the_mean_update():
    """Firmware path: Δ_c, X_c as state integers, gain η·B·σ_c; expected steps = gain·u·v/dw."""
    p = _params(bl_max=63)
    rng = np.random.default_rng(8)
    u = rng.integers(-3000, 3000, 6)
    v = rng.integers(-9000, 9000, 5)
    gain, dw = -0.05, 0.001
    cfg, info = config_for_vectors(u, v, gain, dw, p)
    assert cfg.negate
    s = DriverModel(p).run(u, v, cfg)
    prob_u = s.row_thr / 2 ** p.prob_bits
    prob_v = s.col_thr / 2 ** p.prob_bits
    expected = s.bl * np.outer(prob_u, prob_v) * np.sign(np.outer(u, v))  # steps up (negated update)
    want = -gain * np.outer(u, v) * p.state.lsb ** 2 / dw
    np.testing.assert_allclose(expected, want, atol=s.bl * 2.0 ** -p.prob_bits * 2 + 1e-9)
    assert info["k_steps"] == pytest.approx(abs(gain) * np.abs(u).max() * np.abs(v).max() * p.state.lsb ** 2 / dw)
