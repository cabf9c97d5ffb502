"""The torch SBPCA gradient transform against autograd and against the NumPy golden model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pymodel.sbpca import SBPCA, orth as np_orth, random_orthonormal
from pymodel.torch_sbpca import SBPCAGradient, SBPCAOptimizer, SBPCAState, orth, sbpca_update

torch.set_num_threads(1)
F64 = torch.float64


def _stream(rng: np.random.Generator, n: int, a: int, b: int, rank_g: int = 3):
    """A correlated stream: δ_j = L z_j, x_j = R w_j (+ noise), so G has a dominant subspace."""
    L, R = rng.standard_normal((a, rank_g)), rng.standard_normal((b, rank_g))
    z = rng.standard_normal((n, rank_g))
    x = z @ R.T + 0.1 * rng.standard_normal((n, b))
    d = z @ L.T + 0.1 * rng.standard_normal((n, a))
    return x, d


# ---------------------------------------------------------------- core algorithm
@pytest.mark.parametrize("shape", [(9, 4), (72, 4), (4, 4), (3, 5)])
def test_orth_matches_numpy_reference(shape):
    A = np.random.default_rng(1).standard_normal(shape)
    Q = orth(torch.tensor(A)).numpy()
    np.testing.assert_allclose(Q, np_orth(A), atol=1e-13)
    diag_r = np.diag(Q.T @ A)
    assert np.all(diag_r > 0)


def test_seeded_state_is_pymodel_init():
    st = SBPCAState.seeded(7, 11, 3, seed=5)
    rng = np.random.default_rng(5)
    np.testing.assert_array_equal(st.X.numpy(), random_orthonormal(rng, 11, 3))
    np.testing.assert_array_equal(st.Delta.numpy(), random_orthonormal(rng, 7, 3))
    ref = SBPCA(7, 11, 3, 4, seed=5)
    np.testing.assert_array_equal(st.X.numpy(), ref.X)
    np.testing.assert_array_equal(st.sigma.numpy(), ref.sigma)


@pytest.mark.parametrize("sigma_min", [None, 0.5])
@pytest.mark.parametrize("sizes", [(50, 8), (48, 16), (7, 16)])  # partial, exact, single short sub-batch
def test_sbpca_update_matches_pymodel_float64(sizes, sigma_min):
    n, s = sizes
    a, b, k = 6, 10, 3
    rng = np.random.default_rng(n + s)
    ref = SBPCA(a, b, k, s, seed=2, sigma_min=sigma_min)
    st = SBPCAState.seeded(a, b, k, seed=2)
    for _ in range(3):  # warm start across batches
        x, d = _stream(rng, n, a, b)
        if sigma_min is not None:
            d *= 1e-3  # σ far below the guard: the guarded path is the one taken
        ref.update(x, d)
        st = sbpca_update(st, torch.tensor(x), torch.tensor(d), s, sigma_min)
        np.testing.assert_allclose(st.X.numpy(), ref.X, atol=1e-10)
        np.testing.assert_allclose(st.Delta.numpy(), ref.Delta, atol=1e-10)
        np.testing.assert_allclose(st.sigma.numpy(), ref.sigma, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(st.gradient().numpy(), ref.gradient(), rtol=1e-6, atol=1e-9)
    assert st.pairs == n


def test_sigma_guard_changes_the_result():
    a, b, k, s = 6, 10, 3, 8
    rng = np.random.default_rng(0)
    x, d = _stream(rng, 40, a, b)
    st = SBPCAState.seeded(a, b, k, seed=0)
    free = sbpca_update(st, torch.tensor(x), torch.tensor(1e-3 * d), s)
    guarded = sbpca_update(st, torch.tensor(x), torch.tensor(1e-3 * d), s, sigma_min=0.5)
    assert not torch.allclose(free.sigma, guarded.sigma)


def test_full_sub_batch_fixed_gradient_converges_to_truncated_svd():
    """SPEC §2 property: s = B and a fixed stream → the Eckart–Young rank-k optimum."""
    a, b, k, n = 8, 12, 2, 30
    x, d = _stream(np.random.default_rng(3), n, a, b, rank_g=4)
    G = d.T @ x
    U, S, Vt = np.linalg.svd(G)
    G_k = (U[:, :k] * S[:k]) @ Vt[:k]
    st = SBPCAState.seeded(a, b, k, seed=1)
    for _ in range(200):
        st = sbpca_update(st, torch.tensor(x), torch.tensor(d), n)
    err = np.linalg.norm(st.gradient().numpy() - G_k) / np.linalg.norm(G_k)
    assert err < 1e-6


def test_core_rejects_bad_input():
    st = SBPCAState.seeded(4, 5, 2, seed=0)
    with pytest.raises(ValueError, match="do not match"):
        sbpca_update(st, torch.zeros(3, 4), torch.zeros(3, 4), 2)
    with pytest.raises(ValueError, match="different numbers"):
        sbpca_update(st, torch.zeros(3, 5), torch.zeros(2, 4), 2)
    with pytest.raises(ValueError, match="empty"):
        sbpca_update(st, torch.zeros(0, 5), torch.zeros(0, 4), 2)
    with pytest.raises(ValueError, match="sub_batch"):
        sbpca_update(st, torch.zeros(3, 5), torch.zeros(3, 4), 0)
    with pytest.raises(TypeError, match="sub_batch"):
        sbpca_update(st, torch.zeros(3, 5), torch.zeros(3, 4), 2.0)
    with pytest.raises(ValueError, match="rank 6 exceeds"):
        SBPCAState.seeded(4, 5, 6, seed=0)
    with pytest.raises(ValueError, match="init X has shape"):
        SBPCAState.from_arrays(4, 5, 2, np.zeros((4, 2)), np.zeros((4, 2)), np.ones(2))
    with pytest.raises(ValueError, match="NaN"):
        SBPCAState.from_arrays(4, 5, 2, np.full((5, 2), np.nan), np.zeros((4, 2)), np.ones(2))


# ---------------------------------------------------------------- the model transform
class ConvNet(nn.Module):
    """Layers that exercise every stream path: stride, dilation, reflect and 'same' padding,
    in-place ReLU after a hooked layer, a Linear on a 3-D input, a Linear used twice."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 6, 3, stride=2, padding=1, padding_mode="reflect")
        self.act = nn.ReLU(inplace=True)
        self.c2 = nn.Conv2d(6, 5, (3, 2), dilation=(1, 2), padding="same")
        self.tok = nn.Linear(5, 7)
        self.head = nn.Linear(7 * 4, 4)
        self.grouped = nn.Conv2d(6, 6, 1, groups=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.c1(x))                       # B×6×4×4
        h = self.c2(h + self.grouped(h))               # B×5×4×4
        t = h.mean(dim=3).transpose(1, 2)              # B×4×5: a 3-D Linear input
        t = torch.tanh(self.tok(t)) + 0.5 * self.tok(t.flip(1)).sin()  # tok used twice
        return self.head(t.flatten(1))


def _batch(seed: int, n: int = 6):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, 8, 8, generator=g, dtype=F64), torch.randn(n, 4, generator=g, dtype=F64)


def test_exact_method_equals_autograd():
    """The streamed pairs are the convention: Σ δ xᵀ must be weight.grad (incl. the 1/B of the mean)."""
    torch.manual_seed(0)
    net = ConvNet().double()
    sb = SBPCAGradient(net, rank=2, sub_batch=5, method="exact")
    assert set(sb.layers) == {"c1", "c2", "tok", "head"}
    assert any(e.startswith("grouped: groups=2") for e in sb.exact)
    x, y = _batch(0)
    F.mse_loss(net(x), y).backward()
    ref = {n: p.grad.clone() for n, p in net.named_parameters()}
    assert sorted(sb.apply()) == ["c1", "c2", "head", "tok"]
    for n, p in net.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], rtol=1e-12, atol=1e-14, msg=n)


def test_sbpca_matches_pymodel_on_independent_stream_over_steps():
    """Ĝ per layer = pymodel SBPCA on the stream the test builds itself (unfold, retain_grad)."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, stride=1, padding=1), nn.Tanh(), nn.Flatten(),
                        nn.Linear(4 * 5 * 5, 3)).double()
    k, s, seed = 2, 7, 11
    sb = SBPCAGradient(net, rank=k, sub_batch=s, seed=seed)
    refs = {"0": SBPCA(4, 18, k, s, seed=seed), "3": SBPCA(3, 100, k, s, seed=seed + 1)}
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randn(5, 2, 5, 5, generator=g, dtype=F64)
        y = torch.randn(5, 3, generator=g, dtype=F64)
        opt.zero_grad()
        h0 = net[0](x)
        h0.retain_grad()
        h2 = net[2](net[1](h0))
        out = net[3](h2)
        out.retain_grad()
        F.mse_loss(out, y).backward()
        bias_ref = {n: p.grad.clone() for n, p in net.named_parameters() if n.endswith("bias")}
        sb.apply()
        x0 = F.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, 18)
        d0 = h0.grad.permute(0, 2, 3, 1).reshape(-1, 4)
        refs["0"].update(x0.numpy(), d0.numpy())
        refs["3"].update(h2.detach().numpy(), out.grad.numpy())
        for name, ref in refs.items():
            w = dict(net.named_parameters())[f"{name}.weight"]
            np.testing.assert_allclose(w.grad.reshape(ref.rows, -1).numpy(), ref.gradient(),
                                       rtol=1e-6, atol=1e-9, err_msg=name)
        for n, gb in bias_ref.items():  # biases keep the exact gradient
            torch.testing.assert_close(dict(net.named_parameters())[n].grad, gb, rtol=0, atol=0)
        opt.step()
    assert sb.layers["0"].state.pairs == 5 * 25


def test_thresholds_keep_exact_gradients():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 40), nn.Linear(40, 30)).double()
    sb = SBPCAGradient(net, rank=3, sub_batch=4, min_numel=100)
    assert list(sb.layers) == ["2"]
    assert any(e.startswith("0: numel 6 < min_numel 100") for e in sb.exact)
    x = torch.randn(8, 3, dtype=F64)
    net(x).square().mean().backward()
    ref = {n: p.grad.clone() for n, p in net.named_parameters()}
    sb.apply()
    for n, p in net.named_parameters():
        if n == "2.weight":
            assert torch.linalg.matrix_rank(p.grad) <= 3
            assert not torch.allclose(p.grad, ref[n])
        else:
            torch.testing.assert_close(p.grad, ref[n], rtol=0, atol=0)
    tied = nn.Sequential(nn.Linear(6, 6), nn.Linear(6, 6), nn.Linear(6, 5))
    tied[1].weight = tied[0].weight
    sb_tied = SBPCAGradient(tied, rank=2)
    assert list(sb_tied.layers) == ["2"]
    assert "0: weight shared by modules ['0', '1']" in sb_tied.exact
    sb2 = SBPCAGradient(net, rank=3, sub_batch=4)  # rank 3 > min(a, b) = 2 for the first two
    assert list(sb2.layers) == ["2"]
    assert any("rank 3 > min(a, b) = 2" in e for e in sb2.exact)


def test_float32_model_with_float64_state():
    torch.manual_seed(3)
    net = nn.Linear(12, 9)
    sb = SBPCAGradient(net, rank=2, sub_batch=4, seed=4, dtype=F64)
    assert sb.layers[""].state.X.dtype == F64
    x = torch.randn(10, 12)
    net(x).square().mean().backward()
    sb.apply()
    assert net.weight.grad.dtype == torch.float32
    ref = SBPCA(9, 12, 2, 4, seed=4)
    with torch.no_grad():
        delta = 2 * net(x) / net(x).numel()
    ref.update(x.double().numpy(), delta.double().numpy())
    np.testing.assert_allclose(net.weight.grad.numpy(), ref.gradient(), rtol=1e-4, atol=1e-6)


def test_captures_only_what_is_backpropagated():
    torch.manual_seed(4)
    net = nn.Linear(6, 5).double()
    sb = SBPCAGradient(net, rank=2, sub_batch=3, method="exact")
    x1, x2 = torch.randn(4, 6, dtype=F64), torch.randn(3, 6, dtype=F64)
    with torch.no_grad():
        net(x2)                                        # no graph: not captured
    with sb.paused():
        net(x2)                                        # paused: not captured
    net(x2)                                            # forward without backward: dropped at apply
    net(x1).sum().backward()
    ref = net.weight.grad.clone()
    sb.apply()
    torch.testing.assert_close(net.weight.grad, ref, rtol=1e-12, atol=0)
    assert sb.apply() == []                            # nothing new captured
    net(x1).sum().backward(retain_graph=False)
    sb.reset()
    assert sb.apply() == []


def test_optimizer_wrapper_step_and_state_dict():
    torch.manual_seed(5)
    net = nn.Linear(8, 6).double()
    before = copy.deepcopy(net)
    sb = SBPCAGradient(net, rank=2, sub_batch=4, seed=9)
    opt = SBPCAOptimizer(torch.optim.SGD(net.parameters(), lr=0.3), sb)
    x, y = torch.randn(10, 8, dtype=F64), torch.randn(10, 6, dtype=F64)

    def closure():
        opt.zero_grad()
        loss = F.mse_loss(net(x), y)
        loss.backward()
        return loss

    loss = opt.step(closure)
    out = before(x)
    out.retain_grad()
    assert F.mse_loss(out, y).item() == pytest.approx(loss.item(), rel=1e-12)
    F.mse_loss(out, y).backward()
    ref = SBPCA(6, 8, 2, 4, seed=9)
    ref.update(x.numpy(), out.grad.numpy())
    torch.testing.assert_close(net.weight.detach(), before.weight.detach() - 0.3 * torch.tensor(ref.gradient()),
                               rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(net.bias.detach(), before.bias.detach() - 0.3 * before.bias.grad,
                               rtol=1e-12, atol=1e-14)

    sd = opt.state_dict()
    sb2 = SBPCAGradient(net, rank=2, sub_batch=4, seed=123)
    sb2.load_state_dict(sd["sbpca"])
    for n in sb.layers:
        torch.testing.assert_close(sb2.layers[n].state.X, sb.layers[n].state.X, rtol=0, atol=0)
        torch.testing.assert_close(sb2.layers[n].state.sigma, sb.layers[n].state.sigma, rtol=0, atol=0)
    with pytest.raises(ValueError, match="rank"):
        SBPCAGradient(net, rank=1, sub_batch=4).load_state_dict(sd["sbpca"])


def test_explicit_init_and_bad_arguments():
    net = nn.Linear(5, 4).double()
    X = np.linalg.qr(np.random.default_rng(0).standard_normal((5, 2)))[0]
    D = np.linalg.qr(np.random.default_rng(1).standard_normal((4, 2)))[0]
    sb = SBPCAGradient(net, rank=2, sub_batch=3, init={"": (X, D, [2.0, 1.0])})
    np.testing.assert_array_equal(sb.layers[""].state.X.numpy(), X)
    with pytest.raises(ValueError, match="not SBPCA-tracked"):
        SBPCAGradient(net, rank=2, sub_batch=3, init={"fc": (X, D, [1.0, 1.0])})
    with pytest.raises(ValueError, match="init Delta has shape"):
        SBPCAGradient(net, rank=2, sub_batch=3, init={"": (X, X, [1.0, 1.0])})
    with pytest.raises(TypeError, match="torch.nn.Module"):
        SBPCAGradient("model")
    with pytest.raises(ValueError, match="rank must be >= 1"):
        SBPCAGradient(net, rank=0)
    with pytest.raises(ValueError, match="method"):
        SBPCAGradient(net, rank=2, method="svd")
    with pytest.raises(ValueError, match="sigma_min"):
        SBPCAGradient(net, rank=2, sigma_min=-1.0)
    with pytest.raises(ValueError, match="min_numel"):
        SBPCAGradient(net, rank=2, min_numel=-3)
    with pytest.raises(TypeError, match="dtype"):
        SBPCAGradient(net, rank=2, dtype=torch.int32)
    with pytest.raises(ValueError, match="no nn.Linear"):
        SBPCAGradient(nn.Sequential(nn.ReLU()))
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        SBPCAOptimizer("sgd", sb)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (not part of the CPU set-up)")
def test_cuda_matches_cpu():
    torch.manual_seed(6)
    cpu = ConvNet().double()
    gpu = ConvNet().double().cuda()
    gpu.load_state_dict(cpu.state_dict())
    sbc = SBPCAGradient(cpu, rank=2, sub_batch=5, seed=1)
    sbg = SBPCAGradient(gpu, rank=2, sub_batch=5, seed=1)
    assert sbg.layers["c1"].state.X.is_cuda
    x, y = _batch(1)
    F.mse_loss(cpu(x), y).backward()
    F.mse_loss(gpu(x.cuda()), y.cuda()).backward()
    sbc.apply()
    sbg.apply()
    for (n, p), q in zip(cpu.named_parameters(), gpu.parameters()):
        torch.testing.assert_close(q.grad.cpu(), p.grad, rtol=1e-6, atol=1e-9, msg=n)
