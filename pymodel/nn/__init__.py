"""A small vectorised NumPy CNN whose weight layers expose per-sample (x, δ) streams."""

from .layers import Conv2d, Flatten, Layer, Linear, MaxPool2d, ReLU, WeightLayer, softmax_cross_entropy
from .model import MODELS, DEFAULT_MODEL, Sequential, build_model

__all__ = ["Conv2d", "Flatten", "Layer", "Linear", "MaxPool2d", "ReLU", "WeightLayer",
           "softmax_cross_entropy", "MODELS", "DEFAULT_MODEL", "Sequential", "build_model"]
