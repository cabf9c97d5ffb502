"""The SBPCA DDP communication hook, on 2 gloo processes on CPU (spawned, with deadlines)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pymodel.sbpca import SBPCA
from pymodel.torch_sbpca import (SBPCAGradient, SBPCAHookState, SmallCNN, compare_ddp,
                                 ddp_exactness_check)

torch.set_num_threads(1)


def test_hook_exactness_in_every_mode(tmp_path):
    """One 2-process float64 run per mode, all in one spawn (start-up is the expensive part)."""
    modes = {"sum": ("sum", 0), "truncate": ("truncate", 0), "warmup": ("sum", 1)}
    runs = ddp_exactness_check(tmp_path, world_size=2, steps=2, rank=2, sub_batch=8, modes=modes)
    _check_mean_of_pymodel_estimates(runs["sum"], "sum")
    _check_mean_of_pymodel_estimates(runs["truncate"], "truncate")
    _check_start_iter(runs["warmup"])


def _check_mean_of_pymodel_estimates(res: list, combine: str) -> None:
    """Every rank ends with (1/W) Σ_r Ĝ_r, Ĝ_r = pymodel SBPCA on rank r's own stream and state
    (or its rank-k truncation); biases get the exact mean; bytes = k(a+b+1) per layer + biases."""
    k, s, world = 2, 8, 2
    layers = {"conv": (5, 18), "fc": (6, 80)}
    for step in range(2):
        for name, (a, b) in layers.items():
            G_r, bias_r = [], []
            for r in range(world):
                rec = res[r][step]
                X, D, sig = (v.numpy() for v in rec["init"][name])
                x, d = (v.numpy() for v in rec["stream"][name])
                assert x.shape[1] == b and d.shape[1] == a
                ref = SBPCA(a, b, k, s, init=(X, D, sig))
                ref.update(x, d)
                G_r.append(ref.gradient())
                bias_r.append(d.sum(axis=0))  # the exact bias gradient is Σ δ over the stream
            G = np.mean(G_r, axis=0)
            if combine == "truncate":
                U, S, Vt = np.linalg.svd(G)
                G = (U[:, :k] * S[:k]) @ Vt[:k]
            for r in range(world):
                got = res[r][step]["grads"][f"{name}.weight"].numpy().reshape(a, b)
                np.testing.assert_allclose(got, G, rtol=1e-6, atol=1e-10, err_msg=f"{name} rank {r} step {step}")
                np.testing.assert_allclose(res[r][step]["grads"][f"{name}.bias"].numpy(), np.mean(bias_r, axis=0),
                                           rtol=1e-12, atol=1e-14)
        extra = len(layers) if combine == "truncate" else 0  # truncate also sends each layer's pair count
        numbers = sum(k * (a + b + 1) for a, b in layers.values()) + extra + (5 + 6)
        assert all(res[r][step]["bytes"] == 8 * numbers for r in range(world))
    if combine == "truncate":  # the shared rank-k state restarts every rank identically
        for name in layers:
            for v0, v1 in zip(res[0][1]["init"][name], res[1][1]["init"][name]):
                torch.testing.assert_close(v0, v1, rtol=0, atol=0)
    else:  # each rank keeps its own warm-started local state
        assert not torch.equal(res[0][1]["init"]["fc"][0], res[1][1]["init"]["fc"][0])


def _check_start_iter(res: list) -> None:
    """start_iter = 1: step 0 is an exact all-reduce (mean of Σ δ xᵀ) but SBPCA already ran on
    the stream; step 1 is SBPCA from that warmed-up state."""
    k, s, world = 2, 8, 2
    layers = {"conv": (5, 18), "fc": (6, 80)}
    full = sum(a * b + a for a, b in layers.values())
    assert [res[r][0]["bytes"] for r in range(world)] == [8 * full] * world
    for name, (a, b) in layers.items():
        G = np.mean([res[r][0]["stream"][name][1].numpy().T @ res[r][0]["stream"][name][0].numpy()
                     for r in range(world)], axis=0)
        G_r = []
        for r in range(world):
            got = res[r][0]["grads"][f"{name}.weight"].numpy().reshape(a, b)
            np.testing.assert_allclose(got, G, rtol=1e-12, atol=1e-14)
            X, D, sig = (v.numpy() for v in res[r][0]["init"][name])
            ref = SBPCA(a, b, k, s, init=(X, D, sig))
            ref.update(*(v.numpy() for v in res[r][0]["stream"][name]))
            np.testing.assert_allclose(res[r][1]["init"][name][0].numpy(), ref.X, atol=1e-10)
            ref.update(*(v.numpy() for v in res[r][1]["stream"][name]))
            G_r.append(ref.gradient())
        for r in range(world):
            got = res[r][1]["grads"][f"{name}.weight"].numpy().reshape(a, b)
            np.testing.assert_allclose(got, np.mean(G_r, axis=0), rtol=1e-6, atol=1e-10)


def test_two_process_training_matches_plain_ddp_accuracy(tmp_path):
    """SmallCNN on digits, 2 ranks × 32 samples per step, 15 epochs.  Stated tolerance: SBPCA's
    test accuracy within 5 points of plain DDP's (each at its own learning rate, SPEC §2)."""
    res = compare_ddp(tmp_path, world_size=2, epochs=15, methods=("allreduce", "powersgd", "sbpca"),
                      rank=4, sub_batch=16, seed=0, timeout_s=240)
    plain, psgd, sb = res["allreduce"], res["powersgd"], res["sbpca"]
    for name, r in res.items():
        assert r["finite"] and r["ranks_agree"], name
    assert plain["accuracy"] >= 0.93
    assert sb["accuracy"] >= plain["accuracy"] - 0.05
    assert psgd["accuracy"] >= plain["accuracy"] - 0.05

    # Bytes each rank sends per step, measured by CommCounter, against the layer shapes (float32).
    model = SmallCNN()
    shapes = [(8, 9), (16, 72), (10, 64)]
    biases = sum(p.numel() for n, p in model.named_parameters() if n.endswith("bias"))
    full = sum(p.numel() for p in model.parameters())
    assert plain["bytes_per_step"] == 4 * full
    assert sb["bytes_per_step"] == 4 * (sum(4 * (a + b + 1) for a, b in shapes) + biases)
    assert sb["self_reported_bytes_per_step"] == sb["bytes_per_step"]
    assert psgd["bytes_per_step"] == 4 * (sum(4 * (a + b) for a, b in shapes) + biases)
    assert sb["calls_per_step"] == {"all_reduce": 1.0, "all_gather": 1.0}
    assert psgd["calls_per_step"] == {"all_reduce": 3.0}
    assert sb["bytes_per_step"] < 0.45 * plain["bytes_per_step"]


def test_hook_state_rejects_bad_arguments():
    net = nn.Linear(6, 5)
    with pytest.raises(TypeError, match="SBPCAGradient"):
        SBPCAHookState(net)
    with pytest.raises(ValueError, match="method='sbpca'"):
        SBPCAHookState(SBPCAGradient(net, rank=2, method="exact"))
    with pytest.raises(ValueError, match="combine"):
        SBPCAHookState(SBPCAGradient(net, rank=2), combine="mean")
    with pytest.raises(ValueError, match="start_iter"):
        SBPCAHookState(SBPCAGradient(net, rank=2), start_iter=-1)
    with pytest.raises(ValueError, match="unknown method"):
        compare_ddp("unused", methods=("adam",))
