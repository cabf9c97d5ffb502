"""Bit-accurate fixed-point SKS (pymodel/sks_fixed.py): reference vs compiled kernel, vs float."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymodel.fixedpoint import SatFlags
from pymodel.formats import FORMAT_SETS, SKS_FORMAT_SETS, SKSFormats, get_sks_format_set
from pymodel.jacobi import jacobi_svd_int
from pymodel.sks import SKS
from pymodel.sks_fixed import SKSFixed


def _stream(rng, P, a, b, dead=0.4):
    x = rng.random((P, b)) * 3.0
    d = 0.3 * rng.standard_normal((P, a))
    d[rng.random(P) < dead] = 0.0
    return x, d


def test_inputs_share_sbpca_ranges():
    """The update rule's power-of-two scaling reads SBPCA's x/δ formats: they must be the same."""
    for name, f in SKS_FORMAT_SETS.items():
        assert f.x == FORMAT_SETS[name].x and f.delta == FORMAT_SETS[name].delta


@settings(max_examples=25, deadline=None, derandomize=True)
@given(a=st.integers(1, 12), b=st.integers(1, 14), r=st.integers(1, 4), q=st.integers(1, 3),
       P=st.integers(1, 30), seed=st.integers(0, 2**31), fs=st.sampled_from(["q16", "q12", "q8"]),
       unbiased=st.booleans(), warm=st.booleans())
def test_compiled_equals_reference_bit_exact(a, b, r, q, P, seed, fs, unbiased, warm):
    """Every integer of the state and every status counter agree, batch after batch."""
    r = min(r, a, b)
    rng = np.random.default_rng(seed)
    ests = [SKSFixed(a, b, r, block=q, unbiased=unbiased, seed=seed, fixed=fs, backend=be, warm_start=warm)
            for be in ("numpy", "compiled")]
    assert ests[1].backend == "compiled"
    for _ in range(2):
        x, d = _stream(rng, P, a, b)
        for e in ests:
            e.update(x, d)
        for key in ("U_int", "S_int", "V_int"):
            np.testing.assert_array_equal(getattr(ests[1], key), getattr(ests[0], key))
        assert ests[1].status.as_dict() == ests[0].status.as_dict()


@pytest.mark.parametrize("fs, tol", [("q24", 3e-5), ("q16", 5e-3), ("q12", 5e-2)])
@pytest.mark.parametrize("block", [1, 3])
def test_fixed_tracks_float(fs, tol, block):
    """Deterministic sks: fixed point follows float64 to about its basis precision."""
    rng = np.random.default_rng(21)
    x, d = _stream(rng, 120, 12, 30)
    fl = SKS(12, 30, 4, block=block)
    fx = SKSFixed(12, 30, 4, block=block, fixed=fs)
    fl.update(x, d)
    fx.update(x, d)
    G = d.T @ x
    assert np.linalg.norm(fx.gradient() - fl.gradient()) <= tol * np.linalg.norm(G)
    assert not fx.status.saturation.any
    assert fx.status.unconverged == 0


def test_q24_uses_reference_backend():
    """q24's exact products do not fit int64: the Python-int reference runs instead."""
    assert SKSFixed(10, 65, 4, fixed="q24").backend == "numpy"
    assert SKSFixed(10, 65, 4, fixed="q16").backend == "compiled"


def test_saturation_is_flagged():
    est = SKSFixed(4, 5, 2, fixed="q16")
    est.update(np.full((3, 5), 100.0), np.full((3, 4), -50.0))
    counts = est.status.saturation.counts
    assert counts.get("x") == 15 and counts.get("delta") == 12


def test_core_saturation_flagged():
    """A batch whose sum exceeds the core range saturates K, and the flag says so."""
    from dataclasses import replace

    from pymodel.fixedpoint import Fmt

    f = replace(SKS_FORMAT_SETS["q8"], core=Fmt(16, 8))  # a core of range ±128
    est = SKSFixed(2, 2, 1, fixed=f)
    n = 8  # 8 pairs of ‖δ‖‖x‖ = 2.47·11.2: the sum's σ exceeds 128
    est.update(np.full((n, 2), 7.9), np.full((n, 2), 1.75))
    assert est.status.saturation.counts.get("K", 0) > 0


def test_exact_low_rank_stream():
    """A rank-1 stream needs no discarding: the fixed estimate equals G to quantisation."""
    rng = np.random.default_rng(3)
    u, v = rng.standard_normal(6) * 0.2, rng.random(9)
    c = rng.standard_normal(20)
    x, d = np.outer(np.abs(c), v), np.outer(np.sign(c), u)
    est = SKSFixed(6, 9, 3, fixed="q16")
    est.update(x, d)
    G = d.T @ x
    assert np.linalg.norm(est.gradient() - G) <= 2e-3 * np.linalg.norm(G)


def test_update_int_checks():
    est = SKSFixed(3, 4, 2, fixed="q16")
    with pytest.raises(TypeError, match="integer"):
        est.update_int(np.zeros((2, 4)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="out of range"):
        est.update_int(np.full((2, 4), 1 << 20), np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="unknown format set"):
        SKSFixed(3, 4, 2, fixed="q9")
    with pytest.raises(ValueError, match="unknown backend"):
        SKSFixed(3, 4, 2, backend="fpga")


def test_format_validation():
    f = get_sks_format_set("q16")
    from dataclasses import replace

    with pytest.raises(ValueError, match="jacobi_bits"):
        replace(f, jacobi_bits=40)
    with pytest.raises(ValueError, match="recip_bits"):
        replace(f, recip_bits=2)
    assert isinstance(get_sks_format_set(True), SKSFormats)
    assert f.to_dict()["core"]["bits"] == f.core.bits


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_integer_jacobi_singular_values(seed):
    """The integer Jacobi's σ = ‖A_c‖ matches numpy's singular values to its precision."""
    rng = np.random.default_rng(seed)
    K = rng.standard_normal((6, 6)) * np.array([8.0, 4.0, 2.0, 1.0, 0.5, 0.01])
    frac = 20
    Ki = np.rint(K * 2 ** frac).astype(np.int64)
    res = jacobi_svd_int(Ki, frac, 1 << 40, 28, 12, SatFlags(), tol_bits=20)
    s = np.sort(np.sqrt(np.sum((res.A / 2.0 ** frac) ** 2, axis=0)))[::-1]
    np.testing.assert_allclose(s, np.linalg.svd(K, compute_uv=False), atol=1e-4)
    Vf = res.V / 2.0 ** 28
    np.testing.assert_allclose(Vf.T @ Vf, np.eye(6), atol=1e-6)
    assert res.sweeps < 12


def test_training_fixed_sks():
    """`sbpca train --method sks --fixed q16` runs and reports the fixed-point status."""
    from pymodel.training import TrainConfig, train

    res = train(TrainConfig(method="sks-unbiased", fixed="q16", epochs=1, max_batches=1, block=4, seed=0))
    st = res["status"]["conv2"]["fixed"]
    assert st["cores"] > 0 and st["sweeps"] >= st["cores"]
