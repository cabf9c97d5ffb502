"""sks / sks-unbiased in the PyTorch wrapper and the DDP hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pymodel.sks import SKS
from pymodel.torch_sbpca import SBPCAGradient
from pymodel.torch_sbpca.ddp_compare import ddp_exactness_check


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 5, 3, bias=False)
        self.fc = nn.Linear(80, 6)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


@pytest.mark.parametrize("method", ["sks", "sks-unbiased"])
def test_transform_matches_estimator(method):
    """weight.grad after apply() is pymodel.sks.SKS's estimate of the captured stream."""
    torch.manual_seed(0)
    net = _Net().double()
    tr = SBPCAGradient(net, rank=2, method=method, block=2, seed=5, record=True)
    refs = {n: SKS(l.rows, l.cols, 2, block=2, unbiased=method == "sks-unbiased", seed=5 + i)
            for i, (n, l) in enumerate(tr.layers.items())}
    for step in range(2):
        x = torch.randn(4, 2, 6, 6, dtype=torch.float64)
        net.zero_grad()
        F.mse_loss(net(x), torch.zeros(4, 6, dtype=torch.float64)).backward()
        exact = {n: l.weight.grad.clone() for n, l in tr.layers.items()}
        assert sorted(tr.apply()) == ["conv", "fc"]
        for n, l in tr.layers.items():
            xs, ds = (v.numpy() for v in l.last_stream)
            np.testing.assert_allclose(ds.T @ xs, exact[n].numpy().reshape(l.rows, l.cols), atol=1e-12)
            refs[n].update(xs, ds)
            np.testing.assert_allclose(l.weight.grad.numpy().reshape(l.rows, l.cols), refs[n].gradient(),
                                       atol=1e-12)
    assert tr.numbers_per_layer() == {"conv": 2 * (5 + 18 + 1), "fc": 2 * (6 + 80 + 1)}


def test_ddp_hook_sends_sks_factors(tmp_path):
    """Two gloo ranks: the hook's gradient is the mean of the ranks' SKS estimates ("sum"), or
    the rank-k truncation of that mean ("truncate"), and each rank sends k(a+b+1) numbers per layer."""
    k = 2
    res = ddp_exactness_check(tmp_path, world_size=2, steps=2, rank=k, method="sks", seed=3, timeout_s=180)
    layers = {"conv": (5, 18), "fc": (6, 80)}
    for mode, per_rank in res.items():
        for step in range(2):
            for name, (a, b) in layers.items():
                ests = []
                for r in range(2):
                    est = SKS(a, b, k)
                    est.update(*(v.numpy() for v in per_rank[r][step]["stream"][name]))
                    ests.append(est.gradient())
                want = np.mean(ests, axis=0)
                if mode == "truncate":
                    U, s, Vt = np.linalg.svd(want)
                    want = (U[:, :k] * s[:k]) @ Vt[:k]
                for r in range(2):
                    got = per_rank[r][step]["grads"][f"{name}.weight"].numpy().reshape(a, b)
                    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
            biases = 5 + 6
            sent = sum(k * (a + b + 1) for a, b in layers.values()) + biases + (2 if mode == "truncate" else 0)
            assert per_rank[0][step]["bytes"] == 8 * sent
