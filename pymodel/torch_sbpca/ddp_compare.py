"""Plain DDP vs the PowerSGD hook vs the SBPCA hook, trained on the bundled digits.

:func:`compare_ddp` spawns ``world_size`` CPU processes (gloo, localhost), trains the same
small CNN with each method from the same initial weights, and returns per method the test
accuracy, the bytes each rank handed to the collectives per step (measured with
:class:`~pymodel.torch_sbpca.comm.CommCounter` in the last epoch), the step time, and a
check that all ranks ended with identical parameters.  :func:`ddp_exactness_check` runs one
float64 step and saves what each rank streamed, so a test can recompute the hook's result
with ``pymodel.sbpca.SBPCA``.  Every wait has a deadline: a hung rank fails instead of
blocking.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from .comm import CommCounter
from .ddp_hook import SBPCAHookState, sbpca_hook
from .transform import SBPCAGradient

METHODS = ("allreduce", "powersgd", "sbpca", "sbpca-truncate", "sks", "sks-unbiased")


class SmallCNN(nn.Module):
    """conv 1→8 (3×3) → pool → conv 8→16 (3×3) → pool → linear 64→10, for 8×8 digits (SPEC §2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def digits_tensors(dtype: torch.dtype = torch.float32, test_fraction: float = 0.2,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's 8×8 digits as (x_train, y_train, x_test, y_test), x in [0, 1], N×1×8×8."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.images / 16.0, dtype=dtype).unsqueeze(1)
    y = torch.as_tensor(d.target, dtype=torch.long)
    perm = torch.as_tensor(np.random.default_rng(seed).permutation(len(y)))
    n_test = int(round(test_fraction * len(y)))
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]


def localhost_store(timeout_s: float) -> dist.TCPStore:
    """A rendezvous store listening on a localhost port the OS picks, bound at once.

    Binding port 0 in the store itself (rather than probing for a free port and binding it
    later) leaves no window in which another process, e.g. gloo's own connections, can
    take the port.  The parent process holds it; ranks connect with :func:`connect_store`.
    """
    return dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False,
                         timeout=datetime.timedelta(seconds=timeout_s))


def connect_store(port: int, timeout_s: float) -> dist.TCPStore:
    """A client of the store :func:`localhost_store` opened on ``port``."""
    return dist.TCPStore("127.0.0.1", port, is_master=False, timeout=datetime.timedelta(seconds=timeout_s))


def _make_hook(method: str, model: nn.Module, cfg: dict):
    """(state, hook, transform) for ``method`` on the module DDP wraps."""
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
    from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as psgd

    if method == "allreduce":
        return None, default_hooks.allreduce_hook, None
    if method == "powersgd":
        st = psgd.PowerSGDState(process_group=None, matrix_approximation_rank=cfg["rank"],
                                start_powerSGD_iter=max(2, cfg["start_iter"]), min_compression_rate=1,
                                use_error_feedback=True, warm_start=True, random_seed=cfg["seed"])
        return st, psgd.powerSGD_hook, None
    combine = "truncate" if method == "sbpca-truncate" else "sum"
    tr = SBPCAGradient(model, rank=cfg["rank"], sub_batch=cfg["sub_batch"], seed=cfg["seed"],
                       sigma_min=cfg.get("sigma_min"), method="sbpca" if method.startswith("sbpca") else method)
    return SBPCAHookState(tr, combine=combine, start_iter=cfg["start_iter"]), sbpca_hook, tr


def _train_one(method: str, rank: int, world: int, cfg: dict, data) -> dict:
    x_tr, y_tr, x_te, y_te = data
    torch.manual_seed(cfg["seed"])
    model = SmallCNN()
    state, hook, _ = _make_hook(method, model, cfg)
    ddp = DDP(model)
    ddp.register_comm_hook(state, hook)
    lr = cfg["lr"][method]
    opt = torch.optim.SGD(ddp.parameters(), lr=lr, momentum=cfg.get("momentum", 0.0))
    bl = cfg["batch"] // world
    counter = CommCounter()
    steps_last = 0
    t_steps = 0.0
    n_steps = 0
    with counter.patch():
        for epoch in range(cfg["epochs"]):
            g = torch.Generator().manual_seed(cfg["seed"] * 1000 + epoch)
            mine = torch.randperm(len(y_tr), generator=g)[rank::world]
            n_batches = len(mine) // bl
            n_batches = min(n_batches, (len(y_tr) // world) // bl)  # same on every rank
            if epoch == cfg["epochs"] - 1:
                counter.reset()
                steps_last = n_batches
            for i in range(n_batches):
                idx = mine[i * bl:(i + 1) * bl]
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(ddp(x_tr[idx]), y_tr[idx])
                loss.backward()
                opt.step()
                t_steps += time.perf_counter() - t0
                n_steps += 1
    with torch.no_grad():
        acc = (model(x_te).argmax(1) == y_te).double().mean().item()
        flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    out = {"accuracy": acc, "lr": lr, "bytes_per_step": counter.total_bytes / max(steps_last, 1),
           "calls_per_step": {k: v / max(steps_last, 1) for k, v in counter.calls.items()},
           "step_ms": 1e3 * t_steps / max(n_steps, 1), "param_checksum": float(flat.double().sum()),
           "param_abs_checksum": float(flat.double().abs().sum()), "finite": bool(torch.isfinite(flat).all())}
    if isinstance(state, SBPCAHookState):
        tail = state.bytes_per_step[-steps_last:] if steps_last else []
        out["self_reported_bytes_per_step"] = float(np.mean(tail)) if tail else 0.0
    return out


def _worker(rank: int, world: int, port: int, out_dir: str, job: str, cfg: dict) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", store=connect_store(port, cfg["timeout_s"]), rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=cfg["timeout_s"]))
    try:
        if job == "train":
            data = digits_tensors(seed=cfg["seed"])
            res = {m: _train_one(m, rank, world, cfg, data) for m in cfg["methods"]}
            Path(out_dir, f"rank{rank}.json").write_text(json.dumps(res))
        elif job == "check":
            _check_step(rank, world, out_dir, cfg)
        else:
            raise ValueError(f"unknown job {job!r}")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _spawn(job: str, world: int, out_dir: str, cfg: dict, timeout_s: float) -> None:
    store = localhost_store(timeout_s)  # kept alive (and bound) until the ranks are done
    port = store.port
    ctx = mp.start_processes(_worker, args=(world, port, out_dir, job, cfg), nprocs=world,
                             join=False, start_method="spawn")
    deadline = time.monotonic() + timeout_s
    try:
        while not ctx.join(timeout=1.0):
            if time.monotonic() > deadline:
                raise TimeoutError(f"DDP job {job!r} with {world} ranks did not finish in {timeout_s} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.terminate()
                p.join(5)
        del store


def compare_ddp(out_dir: str | os.PathLike, world_size: int = 2, epochs: int = 8, batch: int = 64,
                rank: int = 4, sub_batch: int = 16, lr: dict | None = None, seed: int = 0,
                methods: tuple[str, ...] = METHODS, start_iter: int = 0,
                sigma_min: float | None = None, timeout_s: float = 300.0) -> dict:
    """Train the SmallCNN with each of ``methods`` on ``world_size`` gloo ranks; results per method.

    ``batch`` is the global batch (each rank takes batch/world_size).  ``lr`` maps method to
    learning rate (defaults: 0.5 for exact all-reduce, PowerSGD and sks, 0.2 for SBPCA, whose σ
    overestimates, SPEC §2, and for sks-unbiased, whose estimate has a large variance).  Returns ``{method: {"accuracy", "bytes_per_step", ...,
    "ranks_agree"}}`` from rank 0, with ``ranks_agree`` True when every rank ended with the
    same parameters.
    """
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; choose from {METHODS}")
    if world_size < 1 or batch % world_size:
        raise ValueError(f"batch {batch} must be a positive multiple of world_size {world_size}")
    lrs = {"allreduce": 0.5, "powersgd": 0.5, "sbpca": 0.2, "sbpca-truncate": 0.2, "sks": 0.5, "sks-unbiased": 0.2}
    lrs.update(lr or {})
    cfg = {"epochs": epochs, "batch": batch, "rank": rank, "sub_batch": sub_batch, "lr": lrs,
           "seed": seed, "methods": list(methods), "start_iter": start_iter, "sigma_min": sigma_min,
           "timeout_s": timeout_s}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _spawn("train", world_size, str(out), cfg, timeout_s)
    per_rank = [json.loads(Path(out, f"rank{r}.json").read_text()) for r in range(world_size)]
    res = per_rank[0]
    for m in methods:
        res[m]["ranks_agree"] = all(pr[m]["param_checksum"] == res[m]["param_checksum"] and
                                    pr[m]["param_abs_checksum"] == res[m]["param_abs_checksum"]
                                    for pr in per_rank)
    return res


# ---------------------------------------------------------------------- exactness check
class _TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 5, 3)
        self.fc = nn.Linear(5 * 4 * 4, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


def _check_step(rank: int, world: int, out_dir: str, cfg: dict) -> None:
    saved = {}
    for mode, (combine, start_iter) in cfg["modes"].items():
        torch.manual_seed(0)
        model = _TinyNet().double()
        tr = SBPCAGradient(model, rank=cfg["rank"], sub_batch=cfg["sub_batch"], seed=cfg["seed"], record=True,
                           method=cfg.get("method", "sbpca"))
        state = SBPCAHookState(tr, combine=combine, start_iter=start_iter)
        ddp = DDP(model)
        ddp.register_comm_hook(state, sbpca_hook)
        g = torch.Generator().manual_seed(100 + rank)  # each rank its own data
        steps = []
        for _ in range(cfg["steps"]):
            init = {n: (l.state.X.clone(), l.state.Delta.clone(), l.state.sigma.clone())
                    for n, l in tr.layers.items()}
            x = torch.randn(cfg["local_batch"], 2, 6, 6, generator=g, dtype=torch.float64)
            y = torch.randn(cfg["local_batch"], 6, generator=g, dtype=torch.float64)
            ddp.zero_grad(set_to_none=True)
            F.mse_loss(ddp(x), y).backward()
            steps.append({"init": init,
                          "stream": {n: l.last_stream for n, l in tr.layers.items()},
                          "grads": {n: p.grad.clone() for n, p in model.named_parameters()},
                          "bytes": state.bytes_per_step[-1]})
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.05 * p.grad
        saved[mode] = steps
    torch.save(saved, Path(out_dir, f"check{rank}.pt"))


def ddp_exactness_check(out_dir: str | os.PathLike, world_size: int = 2, steps: int = 2, rank: int = 2,
                        sub_batch: int = 8, local_batch: int = 5, modes: dict | None = None,
                        seed: int = 3, timeout_s: float = 120.0, method: str = "sbpca"
                        ) -> dict[str, list[list[dict]]]:
    """Run ``steps`` float64 DDP steps of a tiny conv+linear net with the SBPCA hook, per mode.

    ``modes`` maps a name to (combine, start_iter); default ``{"sum": ("sum", 0),
    "truncate": ("truncate", 0)}``.  Returns ``{mode: [per rank: [per step: record]]}``; a
    record holds the layers' states before the step, the local streams, the final
    gradients and the bytes sent, for an independent recomputation.
    """
    modes = dict(modes or {"sum": ("sum", 0), "truncate": ("truncate", 0)})
    cfg = {"rank": rank, "sub_batch": sub_batch, "seed": seed, "modes": modes, "steps": steps,
           "local_batch": local_batch, "timeout_s": timeout_s, "method": method}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _spawn("check", world_size, str(out), cfg, timeout_s)
    per_rank = [torch.load(Path(out, f"check{r}.pt"), weights_only=False) for r in range(world_size)]
    return {m: [pr[m] for pr in per_rank] for m in modes}
