"""NumPy layers against PyTorch autograd (float64, relative error <= 1e-5) and stream checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pymodel.nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, build_model, softmax_cross_entropy

torch.set_num_threads(1)


def rel_err(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def t(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("stride,padding,hw", [(1, 1, (8, 8)), (1, 0, (7, 9)), (2, 1, (9, 8)), (2, 0, (8, 8))])
def test_conv2d_matches_torch(stride, padding, hw):
    rng = np.random.default_rng(1)
    conv = Conv2d(3, 5, 3, rng, stride=stride, padding=padding)
    conv.W[:, -1] = rng.standard_normal(5)  # non-zero bias
    x = rng.standard_normal((4, 3, *hw))
    y = conv.forward(x)
    dout = rng.standard_normal(y.shape)
    dx = conv.backward(dout)

    xt = t(x)
    wt = t(conv.weight.reshape(5, 3, 3, 3))
    bt = t(conv.bias)
    yt = F.conv2d(xt, wt, bt, stride=stride, padding=padding)
    yt.backward(torch.tensor(dout))
    assert y.shape == tuple(yt.shape)
    assert rel_err(y, yt.detach()) <= 1e-5
    assert rel_err(dx, xt.grad) <= 1e-5
    assert rel_err(conv.grad[:, :-1].reshape(5, 3, 3, 3), wt.grad) <= 1e-5
    assert rel_err(conv.grad[:, -1], bt.grad) <= 1e-5


def test_conv_stream_is_one_pair_per_sample_and_position():
    rng = np.random.default_rng(2)
    conv = Conv2d(2, 4, 3, rng, padding=1)
    x = rng.standard_normal((3, 2, 5, 6))
    y = conv.forward(x)
    conv.backward(rng.standard_normal(y.shape))
    sx, sd = conv.stream_x, conv.stream_delta
    assert sx.shape == (3 * 5 * 6, 2 * 9 + 1) and sd.shape == (3 * 5 * 6, 4)
    # bias handling: a column of ones appended to every patch, so the bias gradient is Σ δ
    np.testing.assert_array_equal(sx[:, -1], 1.0)
    np.testing.assert_allclose(conv.grad[:, -1], sd.sum(axis=0))
    # pair (n, i, j): the patch centred at (i, j) of sample n, the error at that output pixel
    n, i, j = 1, 2, 3
    row = (n * 5 + i) * 6 + j
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    np.testing.assert_array_equal(sx[row, :-1], xp[n, :, i:i + 3, j:j + 3].ravel())


def test_maxpool_relu_flatten_linear_match_torch():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, 7, 9))  # odd sizes: the trailing row/column is dropped
    pool, relu, flat = MaxPool2d(2), ReLU(), Flatten()
    fc = Linear(2 * 3 * 4, 6, rng)
    fc.W[:, -1] = rng.standard_normal(6)
    y = fc.forward(flat.forward(relu.forward(pool.forward(x))))
    dout = rng.standard_normal(y.shape)
    dx = pool.backward(relu.backward(flat.backward(fc.backward(dout))))

    xt = t(x)
    wt, bt = t(fc.weight), t(fc.bias)
    yt = F.linear(F.relu(F.max_pool2d(xt, 2)).flatten(1), wt, bt)
    yt.backward(torch.tensor(dout))
    assert rel_err(y, yt.detach()) <= 1e-5
    assert rel_err(dx, xt.grad) <= 1e-5
    assert rel_err(fc.grad[:, :-1], wt.grad) <= 1e-5
    assert rel_err(fc.grad[:, -1], bt.grad) <= 1e-5
    assert fc.stream_x.shape == (3, 25) and fc.stream_delta.shape == (3, 6)


def test_softmax_cross_entropy_matches_torch():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((7, 5)) * 3
    labels = rng.integers(0, 5, 7)
    loss, d, probs = softmax_cross_entropy(logits, labels)
    lt = t(logits)
    lt_loss = F.cross_entropy(lt, torch.tensor(labels))
    lt_loss.backward()
    assert abs(loss - lt_loss.item()) <= 1e-12 * 10
    # the streams carry the per-sample (sum) gradient: mean-loss gradient times N
    assert rel_err(d / 7, lt.grad) <= 1e-5
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_whole_cnn_gradients_match_torch():
    rng = np.random.default_rng(5)
    model = build_model("cnn", (1, 8, 8), 10, seed=7)
    for layer in model.weight_layers:
        layer.W[:, -1] = rng.standard_normal(layer.rows) * 0.1
    x = rng.random((6, 1, 8, 8))
    labels = rng.integers(0, 10, 6)
    loss, _ = model.loss_and_backward(x, labels)

    c1, c2, fc = model.weight_layers
    p = [t(c1.weight.reshape(8, 1, 3, 3)), t(c1.bias), t(c2.weight.reshape(16, 8, 3, 3)), t(c2.bias),
         t(fc.weight), t(fc.bias)]
    h = F.max_pool2d(F.relu(F.conv2d(torch.tensor(x), p[0], p[1], padding=1)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, p[2], p[3], padding=1)), 2)
    lt = F.cross_entropy(F.linear(h.flatten(1), p[4], p[5]), torch.tensor(labels))
    lt.backward()
    assert abs(loss - lt.item()) <= 1e-10
    n = x.shape[0]
    for layer, (wt, bt) in zip(model.weight_layers, [(p[0], p[1]), (p[2], p[3]), (p[4], p[5])]):
        g = layer.grad / n  # stream gradient is of the summed loss
        assert rel_err(g[:, :-1].reshape(wt.shape), wt.grad) <= 1e-5, layer.name
        assert rel_err(g[:, -1], bt.grad) <= 1e-5, layer.name
    assert [l.stream_x.shape[0] for l in model.weight_layers] == [6 * 64, 6 * 16, 6]


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 8, 8)])
def test_models_build_for_every_dataset_shape(shape):
    for name in ("cnn", "mlp", "linear"):
        model = build_model(name, shape, 10, seed=0)
        out = model.forward(np.zeros((2, *shape)), train=False)
        assert out.shape == (2, 10)


def test_bad_inputs_raise_clear_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="in_channels"):
        Conv2d(0, 4, 3, rng)
    with pytest.raises(TypeError, match="kernel_size"):
        Conv2d(1, 4, 2.5, rng)
    conv = Conv2d(2, 4, 3, rng)
    with pytest.raises(ValueError, match="input channels"):
        conv.forward(np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match="too small"):
        conv.forward(np.zeros((1, 2, 2, 2)))
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet", (1, 8, 8), 10)
    with pytest.raises(ValueError, match="labels"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    model = build_model("cnn", (1, 8, 8), 10)
    with pytest.raises(ValueError, match="expects inputs of shape"):
        model.forward(np.zeros((2, 1, 9, 9)))
    with pytest.raises(ValueError, match="no weight layer"):
        model.layer("conv9")
