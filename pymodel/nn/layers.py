"""Vectorised NumPy layers with forward and backward passes, and per-sample streams.

Layout is NCHW (as PyTorch), arrays are float64.  A weight layer stores its weights
as one matrix ``W`` of shape ``a × (b + 1)``: ``a`` outputs (rows), ``b`` inputs
(columns) and, as the last column, the bias.  The bias is handled as SPEC §2 allows:
**a column of ones appended to every input vector x**, so the bias is trained by the
same (possibly low-rank) update as the kernel, and lives in one extra crossbar column.

After ``backward`` every weight layer exposes its per-sample stream
``(stream_x, stream_delta)``: one pair per (sample, output position) — for a linear
layer one per sample, for a convolution one per sample and output pixel — with
``stream_x`` the (ones-augmented) input patch and ``stream_delta`` the error at the
pre-activation of that pair.  The layer gradient is their sum of outer products,
``grad = stream_deltaᵀ @ stream_x``; update rules consume the stream, not ``grad``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _pos_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, not {value}")
    return int(value)


def _check_input(name: str, x, ndim: int, channels: int | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != ndim:
        raise ValueError(f"{name} expects a {ndim}-D input, got shape {x.shape}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} expects {channels} input channels/features, got shape {x.shape}")
    return x


class Layer:
    """Base class: ``forward(x)`` caches what ``backward(dout)`` needs."""

    name: str = "layer"

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:  # pragma: no cover
        """Shape of one sample's output for one sample's input shape (no batch axis)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class WeightLayer(Layer):
    """A layer with one weight matrix W (a × (b+1), bias last) trained from its stream."""

    rows: int  # a: outputs
    cols: int  # b + 1: inputs plus the bias column
    W: np.ndarray

    def __init__(self) -> None:
        self.stream_x: np.ndarray | None = None
        self.stream_delta: np.ndarray | None = None
        self._cols: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, self.cols

    @property
    def weight(self) -> np.ndarray:
        """Kernel part of W (no bias column), as a matrix a × b."""
        return self.W[:, :-1]

    @property
    def bias(self) -> np.ndarray:
        return self.W[:, -1]

    @property
    def grad(self) -> np.ndarray:
        """Exact gradient of the loss w.r.t. W: Σ_j δ_j x_jᵀ over the stream."""
        if self.stream_x is None or self.stream_delta is None:
            raise RuntimeError(f"layer {self.name}: no stream yet (run forward and backward first)")
        return self.stream_delta.T @ self.stream_x

    def set_weights(self, W: np.ndarray) -> None:
        W = np.asarray(W, dtype=np.float64)
        if W.shape != (self.rows, self.cols):
            raise ValueError(f"layer {self.name}: weights have shape {W.shape}, expected {(self.rows, self.cols)}")
        self.W = W.copy()

    @staticmethod
    def _augment(cols: np.ndarray) -> np.ndarray:
        return np.concatenate([cols, np.ones((cols.shape[0], 1))], axis=1)


class Linear(WeightLayer):
    """Fully connected layer: y = W[:, :-1] x + W[:, -1]; one stream pair per sample."""

    def __init__(self, in_features: int, out_features: int, rng: np.random.Generator,
                 name: str = "fc") -> None:
        super().__init__()
        self.in_features = _pos_int("in_features", in_features)
        self.out_features = _pos_int("out_features", out_features)
        self.name = name
        self.rows, self.cols = self.out_features, self.in_features + 1
        # He (Kaiming) normal init for ReLU nets; zero bias
        std = np.sqrt(2.0 / self.in_features)
        self.W = np.concatenate([rng.standard_normal((self.rows, self.in_features)) * std,
                                 np.zeros((self.rows, 1))], axis=1)

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        x = _check_input(self.name, x, 2, self.in_features)
        cols = self._augment(x)
        if train:
            self._cols = cols
        return cols @ self.W.T

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self._cols is None:
            raise RuntimeError(f"layer {self.name}: backward before forward")
        self.stream_x, self.stream_delta = self._cols, dout
        return dout @ self.W[:, :-1]

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if in_shape != (self.in_features,):
            raise ValueError(f"layer {self.name}: input shape {in_shape}, expected ({self.in_features},)")
        return (self.out_features,)


class Conv2d(WeightLayer):
    """2-D convolution by im2col: each (sample, output pixel) is one stream pair.

    The patch vector is ordered (C_in, kh, kw) as PyTorch flattens a kernel, so
    ``W[:, :-1].reshape(C_out, C_in, kh, kw)`` is the PyTorch weight.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, rng: np.random.Generator,
                 stride: int = 1, padding: int = 0, name: str = "conv") -> None:
        super().__init__()
        self.in_channels = _pos_int("in_channels", in_channels)
        self.out_channels = _pos_int("out_channels", out_channels)
        self.k = _pos_int("kernel_size", kernel_size)
        self.stride = _pos_int("stride", stride)
        if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
            raise ValueError(f"padding must be a non-negative integer, not {padding!r}")
        self.padding = int(padding)
        self.name = name
        fan_in = self.in_channels * self.k * self.k
        self.rows, self.cols = self.out_channels, fan_in + 1
        std = np.sqrt(2.0 / fan_in)
        self.W = np.concatenate([rng.standard_normal((self.rows, fan_in)) * std,
                                 np.zeros((self.rows, 1))], axis=1)
        self._in_shape: tuple[int, ...] | None = None

    def _out_hw(self, h: int, w: int) -> tuple[int, int]:
        ho = (h + 2 * self.padding - self.k) // self.stride + 1
        wo = (w + 2 * self.padding - self.k) // self.stride + 1
        if ho < 1 or wo < 1:
            raise ValueError(f"layer {self.name}: input {h}x{w} too small for kernel {self.k} "
                             f"with padding {self.padding}")
        return ho, wo

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 3 or in_shape[0] != self.in_channels:
            raise ValueError(f"layer {self.name}: input shape {in_shape}, expected ({self.in_channels}, H, W)")
        return (self.out_channels, *self._out_hw(in_shape[1], in_shape[2]))

    def im2col(self, x: np.ndarray) -> tuple[np.ndarray, int, int]:
        """(N, C, H, W) -> patches (N·Ho·Wo, C·k·k), rows ordered (n, i, j)."""
        n, c, h, w = x.shape
        ho, wo = self._out_hw(h, w)
        p = self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
        win = sliding_window_view(xp, (self.k, self.k), axis=(2, 3))  # N, C, H', W', k, k
        win = win[:, :, ::self.stride, ::self.stride][:, :, :ho, :wo]
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * self.k * self.k)
        return cols, ho, wo

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        x = _check_input(self.name, x, 4, self.in_channels)
        n = x.shape[0]
        cols, ho, wo = self.im2col(x)
        cols = self._augment(cols)
        out = cols @ self.W.T  # (N·Ho·Wo, C_out)
        if train:
            self._cols = cols
            self._in_shape = x.shape
        return out.reshape(n, ho, wo, self.out_channels).transpose(0, 3, 1, 2)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self._cols is None or self._in_shape is None:
            raise RuntimeError(f"layer {self.name}: backward before forward")
        n, c, h, w = self._in_shape
        _, co, ho, wo = dout.shape
        delta = dout.transpose(0, 2, 3, 1).reshape(n * ho * wo, co)
        self.stream_x, self.stream_delta = self._cols, delta
        dcols = (delta @ self.W[:, :-1]).reshape(n, ho, wo, c, self.k, self.k)
        p, s = self.padding, self.stride
        dxp = np.zeros((n, c, h + 2 * p, w + 2 * p))
        # col2im: one strided slice-add per kernel tap (k² steps, vectorised over N, C, Ho, Wo)
        for i in range(self.k):
            for j in range(self.k):
                dxp[:, :, i:i + s * ho:s, j:j + s * wo:s] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
        return dxp[:, :, p:p + h, p:p + w] if p else dxp


class MaxPool2d(Layer):
    """Non-overlapping max pooling (kernel = stride); trailing rows/cols that do not fill
    a window are dropped, as PyTorch does.  The gradient goes to the first maximum."""

    def __init__(self, kernel_size: int = 2, name: str = "pool") -> None:
        self.k = _pos_int("kernel_size", kernel_size)
        self.name = name
        self._cache: tuple | None = None

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 3:
            raise ValueError(f"layer {self.name}: input shape {in_shape}, expected (C, H, W)")
        c, h, w = in_shape
        if h < self.k or w < self.k:
            raise ValueError(f"layer {self.name}: input {h}x{w} smaller than pool {self.k}")
        return (c, h // self.k, w // self.k)

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        x = _check_input(self.name, x, 4)
        n, c, h, w = x.shape
        k = self.k
        _, ho, wo = self.output_shape((c, h, w))
        xc = x[:, :, :ho * k, :wo * k].reshape(n, c, ho, k, wo, k).transpose(0, 1, 2, 4, 3, 5)
        xc = xc.reshape(n, c, ho, wo, k * k)
        idx = np.argmax(xc, axis=-1)
        if train:
            self._cache = (x.shape, idx)
        return np.take_along_axis(xc, idx[..., None], axis=-1)[..., 0]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError(f"layer {self.name}: backward before forward")
        (n, c, h, w), idx = self._cache
        k = self.k
        ho, wo = idx.shape[2], idx.shape[3]
        g = np.zeros((n, c, ho, wo, k * k))
        np.put_along_axis(g, idx[..., None], dout[..., None], axis=-1)
        g = g.reshape(n, c, ho, wo, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, ho * k, wo * k)
        dx = np.zeros((n, c, h, w))
        dx[:, :, :ho * k, :wo * k] = g
        return dx


class ReLU(Layer):
    def __init__(self, name: str = "relu") -> None:
        self.name = name
        self._mask: np.ndarray | None = None

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return in_shape

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        mask = x > 0
        if train:
            self._mask = mask
        return x * mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self._mask is None:
            raise RuntimeError(f"layer {self.name}: backward before forward")
        return dout * self._mask


class Flatten(Layer):
    def __init__(self, name: str = "flatten") -> None:
        self.name = name
        self._shape: tuple[int, ...] | None = None

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (int(np.prod(in_shape)),)

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if train:
            self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self._shape is None:
            raise RuntimeError(f"layer {self.name}: backward before forward")
        return dout.reshape(self._shape)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean softmax cross-entropy over the batch.

    Returns ``(loss, dlogits, probs)`` where ``dlogits`` is the gradient of the **sum**
    of the per-sample losses (``softmax − onehot``, not divided by N): the per-sample
    δ that the streams carry.  The gradient of the mean loss is ``dlogits / N``.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (N, classes), got shape {logits.shape}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels have shape {labels.shape}, expected ({logits.shape[0]},)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integers, not {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels must be in 0..{logits.shape[1] - 1}")
    z = logits - logits.max(axis=1, keepdims=True)
    logsum = np.log(np.exp(z).sum(axis=1, keepdims=True))
    logp = z - logsum
    n = logits.shape[0]
    loss = float(-logp[np.arange(n), labels].mean())
    probs = np.exp(logp)
    d = probs.copy()
    d[np.arange(n), labels] -= 1.0
    return loss, d, probs
