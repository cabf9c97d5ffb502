"""A DDP communication hook that exchanges SBPCA factors instead of gradients.

Design (``docs/TORCH.md`` has the reasoning and the measured figures):

* Every rank runs SBPCA on its **local** stream, from its own warm-started state, exactly
  as :class:`~pymodel.torch_sbpca.SBPCAGradient` does on one machine.  This gives its
  local estimate ``Ĝ_r = N_r Δ_r diag(σ_r) X_rᵀ``.
* Per tracked layer each rank contributes the k(a+b+1) numbers (X_r, Δ_r, N_r σ_r) to one
  ``all_gather`` per bucket.  Every rank then forms the same average
  ``Ĝ = (1/W) Σ_r N_r Δ_r diag(σ_r) X_rᵀ`` (combine ``"sum"``, rank ≤ W·k), or its rank-k
  truncation, with every rank's state reset to that shared truncation (combine
  ``"truncate"``: k array updates per step on every node, states aligned across ranks).
* Biases and the weights the transform keeps exact are averaged by one ``all_reduce``.

Local bases differ between ranks, so the factors cannot be summed as PowerSGD sums its
P and Q (its P and Q are products of the shared Q with each rank's *formed* gradient);
the gather costs each rank k(a+b+1) numbers sent and (W−1)·k(a+b+1) received, one round,
against PowerSGD's two all-reduce rounds of k·a and k·b numbers.
"""

# No ``from __future__ import annotations``: DDP checks the hook's annotations at runtime.
import torch
import torch.distributed as dist

from .transform import SBPCAGradient

COMBINES = ("sum", "truncate")


class SBPCAHookState:
    """State of :func:`sbpca_hook`: the transform that captures the streams, and counters.

    Parameters
    ----------
    transform: an :class:`SBPCAGradient` (method ``"sbpca"``) on the module DDP wraps.
        Do not call its ``apply`` yourself: the hook consumes the streams.
    process_group: the group to communicate in (default: the world).
    combine: ``"sum"`` or ``"truncate"`` (see the module docstring).
    start_iter: steps before this one send the exact gradients (all-reduce) while the
        SBPCA states warm up on the stream, like PowerSGD's ``start_powerSGD_iter``.

    ``bytes_per_step`` lists, per completed step, the bytes this rank handed to the
    collectives (all-reduce and all-gather inputs); ``iter`` counts steps.
    """

    def __init__(self, transform: SBPCAGradient, process_group: dist.ProcessGroup | None = None,
                 combine: str = "sum", start_iter: int = 0) -> None:
        if not isinstance(transform, SBPCAGradient):
            raise TypeError(f"transform must be an SBPCAGradient, not {type(transform).__name__}")
        if transform.method not in ("sbpca", "sks", "sks-unbiased"):
            raise ValueError(f"the DDP hook needs an SBPCAGradient with method='sbpca', 'sks' or "
                             f"'sks-unbiased', not {transform.method!r}")
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, not {combine!r}")
        if isinstance(start_iter, bool) or not isinstance(start_iter, int) or start_iter < 0:
            raise ValueError(f"start_iter must be a non-negative integer, not {start_iter!r}")
        self.transform = transform
        self.process_group = process_group
        self.combine = combine
        self.start_iter = start_iter
        self.iter = 0
        self.bytes_per_step: list[int] = []
        self._bytes = 0

    def _count(self, *tensors: torch.Tensor) -> None:
        self._bytes += sum(t.numel() * t.element_size() for t in tensors)

    def _end_bucket(self, is_last: bool) -> None:
        if is_last:
            self.bytes_per_step.append(self._bytes)
            self._bytes = 0
            self.iter += 1


def _truncate(U: torch.Tensor, V: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rank-k truncated SVD (P, s, Q) of ``U Vᵀ`` from its thin factors, without forming it."""
    Qu, Ru = torch.linalg.qr(U, mode="reduced")
    Qv, Rv = torch.linalg.qr(V, mode="reduced")
    P, s, Wh = torch.linalg.svd(Ru @ Rv.T)
    return Qu @ P[:, :k], s[:k], Qv @ Wh[:k].T


def sbpca_hook(state: SBPCAHookState, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook: ``ddp_model.register_comm_hook(state, sbpca_hook)``.

    Tracked weights get the average of the ranks' SBPCA estimates (or its rank-k
    truncation); everything else in the bucket is averaged exactly.
    """
    group = state.process_group if state.process_group is not None else dist.group.WORLD
    world = group.size()
    buf = bucket.buffer()
    compress = state.iter >= state.start_iter
    exact: list[torch.Tensor] = []
    comp: list[tuple] = []  # (tracked layer, its gradient view in the bucket)
    packed: list[torch.Tensor] = []
    for p, g in zip(bucket.parameters(), bucket.gradients()):
        layer = state.transform.layer_for(p)
        if layer is None:
            exact.append(g)
            continue
        stream = state.transform.advance(layer)
        if stream is None and bool((g != 0).any()):
            raise RuntimeError(
                f"layer {layer.name!r} has a nonzero gradient but no captured stream: its weight "
                "was used outside the module's forward, or the forward ran with hooks paused")
        if not compress:
            exact.append(g)
            continue
        st = layer.state
        pairs = 0 if stream is None else st.pairs
        comp.append((layer, g))
        X, D, w = state.transform.factors(layer)  # SBPCA: (X, Δ, B·σ); SKS: (V, U, S)
        if stream is None:
            w = torch.zeros_like(w)
        packed += [X.reshape(-1), D.reshape(-1), w]
        if state.combine == "truncate":
            packed.append(st.sigma.new_full((1,), float(pairs)))

    futures = []
    exact_flat = None
    if exact:
        exact_flat = torch.cat([g.reshape(-1) for g in exact]).div_(world)
        state._count(exact_flat)
        futures.append(dist.all_reduce(exact_flat, group=group, async_op=True).get_future())
    gathered: list[torch.Tensor] = []
    if comp:
        mine = torch.cat(packed).to(buf.dtype)
        gathered = [torch.empty_like(mine) for _ in range(world)]
        state._count(mine)
        futures.append(dist.all_gather(gathered, mine, group=group, async_op=True).get_future())
    is_last = bucket.is_last()

    def finish(_fut) -> torch.Tensor:
        if exact_flat is not None:
            off = 0
            for g in exact:
                g.copy_(exact_flat[off:off + g.numel()].view_as(g))
                off += g.numel()
        off = 0
        for layer, g in comp:
            a, b, k = layer.rows, layer.cols, layer.state.rank
            Us, Vs = [], []
            for r in range(world):
                t = gathered[r]
                X = t[off:off + b * k].view(b, k)
                D = t[off + b * k:off + (a + b) * k].view(a, k)
                sN = t[off + (a + b) * k:off + (a + b + 1) * k]
                Us.append(D * sN)
                Vs.append(X)
            off += k * (a + b + 1)
            U, V = torch.cat(Us, dim=1), torch.cat(Vs, dim=1)
            if state.combine == "sum":
                G = (U @ V.T) / world
            else:
                pairs = torch.cat([gathered[r][off:off + 1] for r in range(world)])
                off += 1
                P, s, Q = _truncate(U / world, V, k)
                G = (P * s) @ Q.T
                if state.transform.method == "sbpca":
                    # Every rank restarts from the same state; σ back on the per-pair scale.
                    # (SKS starts a fresh sketch every step: nothing to align.)
                    dt = layer.state.X.dtype
                    layer.state.X, layer.state.Delta = Q.to(dt), P.to(dt)
                    layer.state.sigma = (s / pairs.mean().clamp_min(1.0)).to(dt)
            g.copy_(G.view_as(g))
        return buf

    state._end_bucket(is_last)
    if not futures:
        fut: torch.futures.Future[torch.Tensor] = torch.futures.Future()
        fut.set_result(buf)
        return fut
    return torch.futures.collect_all(futures).then(finish)
