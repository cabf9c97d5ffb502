"""LFSRs of the stochastic pulse scheme: maximal length, leap-ahead, seeds, uniformity."""

from __future__ import annotations

import numpy as np
import pytest

from pymodel.crossbar.lfsr import MAXIMAL_TAPS, LfsrBank, LfsrSpec, is_maximal, lane_seeds


def test_builtin_taps_are_maximal_for_every_width():
    for width, taps in MAXIMAL_TAPS.items():
        assert is_maximal(width, taps), width


@pytest.mark.parametrize("width", [3, 4, 5, 7, 8, 11, 13])
def test_period_by_brute_force(width):
    spec = LfsrSpec(width, leap=1)
    s, seen = 1, set()
    for _ in range(spec.period + 1):
        seen.add(s)
        s = spec.step(s)
        if s == 1:
            break
    assert len(seen) == (1 << width) - 1 and 0 not in seen


def test_non_maximal_taps_rejected():
    assert not is_maximal(16, (16, 15))
    with pytest.raises(ValueError, match="maximal"):
        LfsrSpec(16, taps=(16, 15))
    with pytest.raises(ValueError, match="include 8"):
        LfsrSpec(8, taps=(7, 5))
    with pytest.raises(ValueError, match="no built-in"):
        LfsrSpec(40)
    with pytest.raises(ValueError, match="coprime"):
        LfsrSpec(4, leap=3)  # period 15


def test_default_leap_is_coprime_and_at_least_width():
    for w in MAXIMAL_TAPS:
        spec = LfsrSpec(w)
        assert spec.leap >= w and np.gcd(spec.leap, spec.period) == 1


@pytest.mark.parametrize("width,leap", [(16, None), (12, None), (7, 3), (32, None)])
def test_bank_advance_equals_scalar_steps(width, leap):
    spec = LfsrSpec(width, leap=leap)
    seeds = lane_seeds(width, 5, seed=4)
    bank = LfsrBank(spec, seeds)
    got = np.concatenate([bank.advance(3), bank.advance(0), bank.advance(6)])
    ref = np.zeros((9, 5), dtype=np.uint64)
    for lane, s in enumerate(seeds):
        for t in range(9):
            ref[t, lane] = s
            for _ in range(spec.leap):
                s = spec.step(s)
    np.testing.assert_array_equal(got, ref)
    # the state after the calls is the 10th slot's state
    nxt = LfsrBank(spec, seeds).advance(10)[9]
    np.testing.assert_array_equal(bank.state, nxt)


def test_leap_sources_describe_the_leap():
    spec = LfsrSpec(9)
    src = spec.leap_sources()
    rng = np.random.default_rng(0)
    for s in rng.integers(1, 512, 20):
        s = int(s)
        ref = s
        for _ in range(spec.leap):
            ref = spec.step(ref)
        got = sum((sum((s >> i) & 1 for i in bits) & 1) << j for j, bits in enumerate(src))
        assert got == ref


def test_leaped_lane_visits_every_state_and_low_bits_are_uniform():
    spec = LfsrSpec(8)  # leap 8, period 255
    states = LfsrBank(spec, [1]).advance(spec.period)[:, 0].astype(np.int64)
    assert sorted(states.tolist()) == list(range(1, 256))
    low = states & 0xF  # P = 4
    counts = np.bincount(low, minlength=16)
    assert counts[0] == 15 and np.all(counts[1:] == 16)


def test_lane_seeds_distinct_nonzero_deterministic():
    a = lane_seeds(16, 200, 7)
    assert a == lane_seeds(16, 200, 7) and a != lane_seeds(16, 200, 8)
    assert len(set(a)) == 200 and all(1 <= s < 1 << 16 for s in a)
    assert len(set(lane_seeds(4, 15, 0))) == 15
    with pytest.raises(ValueError, match="distinct seeds"):
        lane_seeds(4, 16, 0)


def test_bank_rejects_bad_seeds():
    with pytest.raises(ValueError, match="non-zero"):
        LfsrBank(LfsrSpec(8), [0, 3])
    with pytest.raises(ValueError, match="non-zero"):
        LfsrBank(LfsrSpec(8), [256])
    with pytest.raises(TypeError):
        LfsrBank("x", [1])
