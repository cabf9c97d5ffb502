"""Sequential networks and the model registry used by ``sbpca train``.

Models are built for any input shape (C, H, W) and number of classes, so the same
``--model`` runs on digits (1×8×8), MNIST / Fashion-MNIST (1×28×28) and CIFAR-10 (3×32×32).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .layers import Conv2d, Flatten, Layer, Linear, MaxPool2d, ReLU, WeightLayer, softmax_cross_entropy


class Sequential:
    """A chain of layers; ``weight_layers`` are the ones an update rule trains."""

    def __init__(self, layers: list[Layer], input_shape: tuple[int, ...], name: str = "model") -> None:
        if not layers:
            raise ValueError("a model needs at least one layer")
        names = [layer.name for layer in layers]
        if len(set(names)) != len(names):
            raise ValueError(f"layer names must be unique, got {names}")
        self.layers = list(layers)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.name = name
        # validate the chain of shapes once, up front
        shape = self.input_shape
        self.shapes = [shape]
        for layer in self.layers:
            shape = layer.output_shape(shape)
            self.shapes.append(shape)

    @property
    def weight_layers(self) -> list[WeightLayer]:
        return [layer for layer in self.layers if isinstance(layer, WeightLayer)]

    def layer(self, key: "int | str") -> WeightLayer:
        """A weight layer by index (among weight layers) or by name."""
        wl = self.weight_layers
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            if not -len(wl) <= key < len(wl):
                raise ValueError(f"weight layer index {key} out of range (model has {len(wl)})")
            return wl[key]
        for layer in wl:
            if layer.name == key:
                return layer
        raise ValueError(f"no weight layer named {key!r}; layers: {[l.name for l in wl]}")

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"model {self.name} expects inputs of shape (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {x.shape}")
        for layer in self.layers:
            x = layer.forward(x, train=train)
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def loss_and_backward(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """Forward, mean cross-entropy, and backward of the per-sample (sum) loss.

        Returns ``(mean_loss, logits)``; afterwards each weight layer's stream holds δ of
        the per-sample losses, so ``layer.grad / N`` is the gradient of the mean loss.
        """
        logits = self.forward(x, train=True)
        loss, dlogits, _ = softmax_cross_entropy(logits, labels)
        if np.isfinite(loss):
            self.backward(dlogits)
        return loss, logits

    def predict(self, x: np.ndarray, batch: int = 512) -> np.ndarray:
        """Logits for ``x`` in chunks (no caches kept)."""
        x = np.asarray(x, dtype=np.float64)
        if len(x) == 0:
            return np.zeros((0, *self.shapes[-1]))
        return np.concatenate([self.forward(x[i:i + batch], train=False) for i in range(0, len(x), batch)])

    def get_weights(self) -> list[np.ndarray]:
        return [layer.W.copy() for layer in self.weight_layers]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        wl = self.weight_layers
        if len(weights) != len(wl):
            raise ValueError(f"got {len(weights)} weight matrices for {len(wl)} weight layers")
        for layer, W in zip(wl, weights):
            layer.set_weights(W)

    def summary(self) -> list[dict]:
        """One row per layer: name, type, output shape, and W's shape for weight layers."""
        rows = []
        for layer, shape in zip(self.layers, self.shapes[1:]):
            row = {"name": layer.name, "type": type(layer).__name__, "output": list(shape)}
            if isinstance(layer, WeightLayer):
                row["W"] = [layer.rows, layer.cols]
            rows.append(row)
        return rows


def _check_shape(input_shape) -> tuple[int, int, int]:
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) with positive sizes, not {input_shape!r}")
    return shape  # type: ignore[return-value]


def cnn(input_shape, n_classes: int, rng: np.random.Generator, channels: tuple[int, int] = (8, 16)) -> Sequential:
    """Two 3×3 conv layers (padding 1) with ReLU and 2×2 max-pool, then one linear layer.

    On digits (1×8×8) with the default channels: conv 1→8, conv 8→16, linear 64→10 (SPEC §2).
    """
    c, h, w = _check_shape(input_shape)
    c1, c2 = channels
    if h < 4 or w < 4:
        raise ValueError(f"model cnn needs inputs of at least 4x4 pixels, got {h}x{w}")
    layers: list[Layer] = [
        Conv2d(c, c1, 3, rng, padding=1, name="conv1"), ReLU("relu1"), MaxPool2d(2, "pool1"),
        Conv2d(c1, c2, 3, rng, padding=1, name="conv2"), ReLU("relu2"), MaxPool2d(2, "pool2"),
        Flatten("flatten"),
        Linear(c2 * (h // 2 // 2) * (w // 2 // 2), n_classes, rng, name="fc"),
    ]
    return Sequential(layers, (c, h, w), name="cnn")


def mlp(input_shape, n_classes: int, rng: np.random.Generator, hidden: int = 64) -> Sequential:
    """Flatten, linear → hidden with ReLU, linear → classes."""
    shape = _check_shape(input_shape)
    d = int(np.prod(shape))
    layers: list[Layer] = [Flatten("flatten"), Linear(d, hidden, rng, name="fc1"), ReLU("relu1"),
                           Linear(hidden, n_classes, rng, name="fc2")]
    return Sequential(layers, shape, name="mlp")


def linear(input_shape, n_classes: int, rng: np.random.Generator) -> Sequential:
    """Softmax regression: flatten and one linear layer."""
    shape = _check_shape(input_shape)
    return Sequential([Flatten("flatten"), Linear(int(np.prod(shape)), n_classes, rng, name="fc")],
                      shape, name="linear")


MODELS: dict[str, Callable[..., Sequential]] = {
    "cnn": cnn,
    "cnn-wide": lambda s, n, rng: cnn(s, n, rng, channels=(16, 32)),
    "mlp": mlp,
    "linear": linear,
}
DEFAULT_MODEL = "cnn"


def build_model(name: str, input_shape, n_classes: int, seed: "int | np.random.Generator" = 0) -> Sequential:
    """Build a registered model; weights are drawn from ``seed`` (He-normal, zero bias)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, not {n_classes!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    model = MODELS[name](input_shape, int(n_classes), rng)
    model.name = name
    return model
