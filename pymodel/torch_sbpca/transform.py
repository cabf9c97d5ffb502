"""SBPCA gradients for any PyTorch model: a gradient transform and an optimizer wrapper.

:class:`SBPCAGradient` hooks every ``nn.Linear`` and ``nn.Conv2d`` of a model.  A forward
hook keeps the layer input; a hook on the layer output's gradient keeps δ = ∂loss/∂output.
After ``loss.backward()``, :meth:`SBPCAGradient.apply` turns them into the per-pair stream
of SPEC §2 and replaces ``weight.grad`` by the layer's SBPCA rank-k estimate.

What is streamed (see ``docs/TORCH.md``):

* Linear: one pair per row of the input with its leading dimensions flattened:
  x = the input row (b = in_features), δ = the gradient of the matching output row
  (a = out_features).
* Conv2d (groups = 1): one pair per (sample, output position), x = the C_in·kh·kw patch
  (im2col, after the layer's own padding mode), δ = the C_out gradient at that position.
* δ is the gradient autograd hands the layer output, so it already carries the loss's
  1/B of a mean reduction.  Hence Σ δ xᵀ is exactly ``weight.grad`` and the estimate
  ``Ĝ = N · Δ diag(σ) Xᵀ`` (N = number of streamed pairs) has the same scale.
* Biases, and weights below ``min_numel`` or with ``rank > min(a, b)``, keep autograd's
  exact gradient.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .core import BACKENDS, SBPCAState, check_positive_int, check_sigma_min, sbpca_update

METHODS = ("sbpca", "exact", "sks", "sks-unbiased")
SKS_METHODS = ("sks", "sks-unbiased")


@dataclass
class _Slot:
    """One forward call of a hooked layer: its input and (after backward) its output gradient."""

    x: torch.Tensor
    delta: torch.Tensor | None = None

    def add_delta(self, g: torch.Tensor) -> None:
        # Several backward passes through the same graph add, as weight.grad does.
        g = g.detach()
        self.delta = g if self.delta is None else self.delta + g


@dataclass
class TrackedLayer:
    """A hooked layer: its weight as an a×b matrix, its SBPCA state and captured calls."""

    name: str
    module: nn.Module
    rows: int
    cols: int
    state: SBPCAState
    slots: list[_Slot] = field(default_factory=list)
    last_stream: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def weight(self) -> torch.Tensor:
        return self.module.weight

    def has_stream(self) -> bool:
        return any(s.delta is not None for s in self.slots)

    def take_stream(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The (x: N×b, δ: N×a) stream of all calls since the last take, in forward order.

        Calls whose output never received a gradient (a forward without backward) are dropped.
        """
        done = [s for s in self.slots if s.delta is not None]
        self.slots = []
        if not done:
            return None
        xs = [layer_inputs(self.module, s.x) for s in done]
        ds = [layer_deltas(self.module, s.delta) for s in done]
        return (xs[0], ds[0]) if len(done) == 1 else (torch.cat(xs), torch.cat(ds))


def layer_inputs(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The streamed x rows (N×b) of one call of ``module`` on input ``x``."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, module.in_features)
    if isinstance(module, nn.Conv2d):
        if x.dim() == 3:  # unbatched input C×H×W
            x = x.unsqueeze(0)
        pad = module._reversed_padding_repeated_twice
        if any(p != 0 for p in pad):
            mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
            x = F.pad(x, pad, mode=mode)
        cols = F.unfold(x, module.kernel_size, dilation=module.dilation, padding=0, stride=module.stride)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])
    raise TypeError(f"no SBPCA stream for {type(module).__name__}")


def layer_deltas(module: nn.Module, g: torch.Tensor) -> torch.Tensor:
    """The streamed δ rows (N×a) of one call of ``module`` whose output gradient is ``g``."""
    if isinstance(module, nn.Linear):
        return g.reshape(-1, module.out_features)
    if isinstance(module, nn.Conv2d):
        if g.dim() == 3:
            g = g.unsqueeze(0)
        return g.permute(0, 2, 3, 1).reshape(-1, module.out_channels)
    raise TypeError(f"no SBPCA stream for {type(module).__name__}")


def weight_matrix_shape(module: nn.Module) -> tuple[int, int] | None:
    """(a, b) of the layer's weight as a matrix, or None when it has no SBPCA stream."""
    if isinstance(module, nn.Linear):
        return module.out_features, module.in_features
    if isinstance(module, nn.Conv2d) and module.groups == 1:
        kh, kw = module.kernel_size
        return module.out_channels, module.in_channels * kh * kw
    return None


class SBPCAGradient:
    """Replace Linear/Conv2d weight gradients by their SBPCA rank-k estimates.

    Use with any ``torch.optim`` optimizer::

        sb = SBPCAGradient(model, rank=4, sub_batch=16)
        loss.backward(); sb.apply(); optimizer.step()

    Parameters
    ----------
    model: the module whose ``nn.Linear`` / ``nn.Conv2d`` (groups = 1) submodules are hooked.
    rank: k.  A layer with k > min(a, b) keeps its exact gradient.
    sub_batch: s, in streamed pairs (rows): for a conv layer one sample gives H_out·W_out pairs.
    seed: layer i (in ``named_modules`` order among the hooked ones) starts from
        ``pymodel.sbpca.SBPCA(a, b, k, s, seed + i)``'s random orthonormal state.
    min_numel: weights with fewer elements keep their exact gradient.
    sigma_min: optional guard, σ replaced by max(σ, sigma_min) in the divisions (SPEC §2).
    method: ``"sbpca"``, ``"exact"`` (Σ δ xᵀ from the same stream: equals autograd; a check
        of the stream convention and a baseline with identical hook overheads), or ``"sks"`` /
        ``"sks-unbiased"``: the streaming Kronecker-sum estimators of :mod:`pymodel.sks`, run
        in float64 on the CPU (the stream is copied there), a fresh sketch every step.
    block: the SKS block size q (pairs per core SVD); sks methods only.
    dtype: dtype of the SBPCA state and arithmetic (default: each weight's dtype); the
        estimate is cast back to the weight's dtype.
    init: optional ``{layer name: (X, Delta, sigma)}`` initial states, overriding ``seed``.
    record: keep each layer's last stream in ``layers[name].last_stream`` (for checks).
    backend: ``"compiled"`` (default: the numba kernel for CPU tensors, torch ops on CUDA) or
        ``"torch"`` (torch ops everywhere); see :func:`sbpca_update`.
    """

    def __init__(self, model: nn.Module, rank: int = 4, sub_batch: int = 16, *, seed: int = 0,
                 min_numel: int = 0, sigma_min: float | None = None, method: str = "sbpca",
                 dtype: torch.dtype | None = None, init: Mapping[str, tuple] | None = None,
                 record: bool = False, block: int = 1, backend: str = "compiled") -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
        self.rank = check_positive_int("rank", rank)
        self.sub_batch = check_positive_int("sub_batch", sub_batch)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
        if isinstance(min_numel, bool) or not isinstance(min_numel, int) or min_numel < 0:
            raise ValueError(f"min_numel must be a non-negative integer, not {min_numel!r}")
        self.sigma_min = check_sigma_min(sigma_min)
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {method!r}")
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype must be a floating torch.dtype or None, not {dtype!r}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.method = method
        self.block = check_positive_int("block", block)
        self._sks: dict[str, object] = {}  # layer name -> pymodel.sks.SKS (sks methods)
        self.record = record
        self.enabled = True
        self.layers: dict[str, TrackedLayer] = {}
        self.exact: list[str] = []  # hookable layers kept exact, with the reason
        self._by_param: dict[int, TrackedLayer] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        init = dict(init or {})

        candidates = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        owners: dict[int, list[str]] = {}
        for name, module in candidates:
            owners.setdefault(id(module.weight), []).append(name)
        index = 0
        for name, module in candidates:
            shape = weight_matrix_shape(module)
            w = module.weight
            reason = None
            if shape is None:
                reason = f"groups={module.groups}"
            elif not w.requires_grad:
                reason = "weight does not require grad"
            elif w.numel() < min_numel:
                reason = f"numel {w.numel()} < min_numel {min_numel}"
            elif self.rank > min(shape):
                reason = f"rank {self.rank} > min(a, b) = {min(shape)}"
            elif len(owners[id(w)]) > 1:
                # Each module would stream only its own calls, but weight.grad sums them all.
                reason = f"weight shared by modules {owners[id(w)]}"
            if reason is not None:
                self.exact.append(f"{name}: {reason}")
                init.pop(name, None)
                continue
            a, b = shape
            kw = {"dtype": dtype or w.dtype, "device": w.device}
            if name in init:
                st = SBPCAState.from_arrays(a, b, self.rank, *init.pop(name), **kw)
            else:
                st = SBPCAState.seeded(a, b, self.rank, seed + index, **kw)
            layer = TrackedLayer(name, module, a, b, st)
            self.layers[name] = layer
            if method in SKS_METHODS:
                from ..sks import SKS

                self._sks[name] = SKS(a, b, self.rank, block=self.block, unbiased=method == "sks-unbiased",
                                      seed=seed + index)
            self._by_param[id(w)] = layer
            self._handles.append(module.register_forward_hook(self._make_forward_hook(layer), with_kwargs=True))
            index += 1
        if init:
            raise ValueError(f"init names layers that are not SBPCA-tracked: {sorted(init)}")
        if not self.layers:
            raise ValueError("model has no nn.Linear / nn.Conv2d weight SBPCA can track "
                             f"(kept exact: {self.exact})")

    # ------------------------------------------------------------------ hooks
    def _make_forward_hook(self, layer: TrackedLayer):
        def hook(module: nn.Module, args: tuple, kwargs: dict, output: torch.Tensor) -> None:
            if not (self.enabled and torch.is_grad_enabled() and isinstance(output, torch.Tensor)
                    and output.requires_grad):
                return
            x = args[0] if args else kwargs["input"]
            slot = _Slot(x.detach())
            layer.slots.append(slot)
            # A tensor hook (not a module backward hook) so later in-place ops such as
            # ReLU(inplace=True) stay legal; it still sees ∂loss/∂output before the change.
            output.register_hook(slot.add_delta)
        return hook

    def remove(self) -> None:
        """Detach all hooks (the object keeps its states)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.reset()

    def __enter__(self) -> "SBPCAGradient":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def reset(self) -> None:
        """Drop captured inputs/gradients not yet consumed (e.g. after an evaluation pass with grad)."""
        for layer in self.layers.values():
            layer.slots = []

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Forward passes inside this block are not captured."""
        prev, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = prev

    def layer_for(self, param: torch.Tensor) -> TrackedLayer | None:
        """The tracked layer whose weight is ``param`` (None for biases and exact weights)."""
        return self._by_param.get(id(param))

    # ------------------------------------------------------------------ estimates
    def advance(self, layer: TrackedLayer) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Consume ``layer``'s captured stream and run SBPCA on it (method ``"sbpca"``).

        Returns the stream (x, δ), or None when the layer captured nothing since the last call.
        """
        stream = layer.take_stream()
        if stream is None:
            return None
        x, d = stream
        if self.record:
            layer.last_stream = (x.detach().clone(), d.detach().clone())
        if self.method == "sbpca":
            layer.state = sbpca_update(layer.state, x, d, self.sub_batch, self.sigma_min, self.backend)
        elif self.method in SKS_METHODS:
            self._sks[layer.name].update(x.detach().to("cpu", torch.float64).numpy(),
                                         d.detach().to("cpu", torch.float64).numpy())
        return x, d

    def factors(self, layer: TrackedLayer) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(X: b×k, Δ: a×k, w: k) with Ĝ = Δ diag(w) Xᵀ after the last :meth:`advance`.

        SBPCA: (X, Δ, B·σ); SKS: (V, U, S).  What the DDP hook sends: k(a+b+1) numbers.
        """
        if self.method in SKS_METHODS:
            est = self._sks[layer.name]
            kw = {"dtype": layer.state.X.dtype, "device": layer.state.X.device}
            return (torch.as_tensor(est.V, **kw), torch.as_tensor(est.U, **kw), torch.as_tensor(est.S, **kw))
        st = layer.state
        return st.X, st.Delta, st.sigma * st.pairs

    def estimate(self, layer: TrackedLayer) -> torch.Tensor | None:
        """Consume ``layer``'s captured stream, advance its state; Ĝ (a×b, state dtype) or None."""
        stream = self.advance(layer)
        if stream is None:
            return None
        if self.method == "exact":
            x, d = stream
            dt = layer.state.X.dtype
            return d.to(dt).T @ x.to(dt)
        if self.method in SKS_METHODS:
            X, D, w = self.factors(layer)
            return (D * w) @ X.T
        return layer.state.gradient()

    @torch.no_grad()
    def apply(self) -> list[str]:
        """Replace each tracked weight's ``.grad`` by its estimate; returns the names replaced.

        A layer that ran no forward/backward since the last call is left as it is.
        """
        done = []
        for name, layer in self.layers.items():
            g_hat = self.estimate(layer)
            if g_hat is None:
                continue
            w = layer.weight
            g_hat = g_hat.to(w.dtype).view_as(w)
            if w.grad is None:
                w.grad = g_hat.clone()
            else:
                w.grad.copy_(g_hat)
            done.append(name)
        return done

    # ------------------------------------------------------------------ bookkeeping
    def numbers_per_layer(self) -> dict[str, int]:
        """k(a+b+1) per tracked layer: what SBPCA keeps (and what the DDP hook sends)."""
        return {n: self.rank * (l.rows + l.cols + 1) for n, l in self.layers.items()}

    def state_dict(self) -> dict:
        """Per-layer X, Δ, σ (tensors), for checkpoints."""
        return {"rank": self.rank, "sub_batch": self.sub_batch,
                "layers": {n: {"X": l.state.X.clone(), "Delta": l.state.Delta.clone(),
                               "sigma": l.state.sigma.clone()} for n, l in self.layers.items()}}

    def load_state_dict(self, sd: Mapping) -> None:
        """Restore states saved by :meth:`state_dict` (same layers, rank)."""
        if sd.get("rank") != self.rank:
            raise ValueError(f"state_dict has rank {sd.get('rank')!r}, this transform has {self.rank}")
        layers = sd.get("layers", {})
        if set(layers) != set(self.layers):
            raise ValueError(f"state_dict layers {sorted(layers)} differ from {sorted(self.layers)}")
        for name, v in layers.items():
            l = self.layers[name]
            l.state = SBPCAState.from_arrays(l.rows, l.cols, self.rank, v["X"], v["Delta"], v["sigma"],
                                             dtype=l.state.X.dtype, device=l.state.X.device)


class SBPCAOptimizer:
    """A ``torch.optim`` optimizer whose ``step`` first applies an :class:`SBPCAGradient`.

    ``SBPCAOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), SBPCAGradient(model))``
    behaves as the inner optimizer with SBPCA gradients; learning-rate schedulers take
    ``.optimizer`` (the inner one).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, transform: SBPCAGradient) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, not {type(optimizer).__name__}")
        if not isinstance(transform, SBPCAGradient):
            raise TypeError(f"transform must be an SBPCAGradient, not {type(transform).__name__}")
        self.optimizer = optimizer
        self.transform = transform

    @property
    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        """Run ``closure`` (forward + backward) if given, apply SBPCA, then the inner step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.transform.apply()
        self.optimizer.step()
        return loss

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "sbpca": self.transform.state_dict()}

    def load_state_dict(self, sd: Mapping) -> None:
        self.optimizer.load_state_dict(sd["optimizer"])
        self.transform.load_state_dict(sd["sbpca"])

