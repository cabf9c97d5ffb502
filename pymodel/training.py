"""Training loop for the NumPy CNN with any per-layer update rule.

``train(config) -> dict`` runs one training (the ``sbpca train`` command), and
``capture_stream(config, layer, step)`` returns one layer's real (x, δ) stream from a
training step together with the estimator state before and after it (the input of a
co-simulation).  Everything is seeded from ``config.seed``: same config, same numbers.

Loss normalisation: the loss is the mean cross-entropy over the N samples of a batch;
the (x, δ) streams carry δ of each sample's own loss, every estimator estimates
``G = Σ_j δ_j x_jᵀ`` over the P pairs of the layer (P = N for linear layers, N × output
positions for convolutions), and the update is ``W ← W − (lr/N)·Ĝ``.  So ``lr`` is the
usual SGD learning rate of the batch-mean loss for every method.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterator

import numpy as np

from .datasets import Dataset, load_dataset
from .nn.layers import softmax_cross_entropy
from .nn.model import DEFAULT_MODEL, Sequential, build_model
from .update_rules import METHODS, LayerRule, RuleConfig

# Default learning rate per method: the best of the sweep on digits documented in
# docs/TRAINING.md (cnn, batch 64, 40 epochs, rank 4, sub-batch 16, mean of 3 seeds).
DEFAULT_LR: dict[str, float] = {"mbgd": 0.2, "sbpca": 0.2, "svd": 0.5, "powersgd": 0.2, "sks": 0.2,
                                "sks-unbiased": 0.2}


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN/inf; carries where and the partial result."""

    def __init__(self, message: str, epoch: int, batch: int, partial: dict | None = None) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
        self.partial = partial or {}


@dataclass
class TrainConfig:
    """Everything that defines one training run (``sbpca train`` flags map onto it)."""

    dataset: str = "digits"
    model: str = DEFAULT_MODEL
    method: str = "sbpca"
    rank: int = 4
    sub_batch: int = 16
    batch: int = 64
    epochs: int = 20
    lr: float | None = None  # None: DEFAULT_LR[method]
    seed: int = 0
    fixed: str | None = None
    device_model: str | None = None
    device_scheme: str = "stochastic"
    device_bl: int | None = None
    device_options: dict = field(default_factory=dict)
    data_dir: str | None = None
    error_feedback: bool = True
    sigma_min: float | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    validation: float | None = None  # hold this fraction of train out as the test set (tuning)
    measure_error: bool = True
    max_batches: int | None = None  # stop each epoch after this many batches (quick runs)
    fixed_scaling: str = "first"  # fixed point: x/δ power-of-two exponents "first" batch or every "batch"
    block: int = 1  # sks / sks-unbiased: pairs per core SVD (q)
    backend: str = "compiled"  # sbpca: numba kernel or the NumPy reference ("numpy"); same results

    def validate(self) -> "TrainConfig":
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        for name in ("rank", "sub_batch", "batch", "epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, not {self.seed!r}")
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, not {self.lr!r}")
        if self.max_batches is not None and (not isinstance(self.max_batches, int) or self.max_batches < 1):
            raise ValueError(f"max_batches must be a positive integer, not {self.max_batches!r}")
        self.rule_config()  # validates method/format/device options
        return self

    @property
    def learning_rate(self) -> float:
        return float(DEFAULT_LR[self.method] if self.lr is None else self.lr)

    def rule_config(self) -> RuleConfig:
        return RuleConfig(method=self.method, rank=self.rank, sub_batch=self.sub_batch, fixed=self.fixed,
                          error_feedback=self.error_feedback, sigma_min=self.sigma_min,
                          device_model=self.device_model, device_scheme=self.device_scheme,
                          device_bl=self.device_bl, device_options=dict(self.device_options),
                          fixed_scaling=self.fixed_scaling, block=self.block, backend=self.backend).validate()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lr"] = self.learning_rate
        return d


def to_jsonable(obj: Any) -> Any:
    """Results as plain JSON types (NumPy scalars/arrays converted, NaN/inf as strings)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else str(v)
    return obj


def prepare_data(config: TrainConfig, data: Dataset | None = None) -> Dataset:
    """Load the dataset of ``config`` (unless ``data`` is given) and apply its validation
    split and limits."""
    if data is None:
        data = load_dataset(config.dataset, config.data_dir)
    if config.validation is not None:
        data = data.validation_split(config.validation)
    if config.train_limit is not None or config.test_limit is not None:
        data = data.limit(config.train_limit, config.test_limit)
    return data


def evaluate(model: Sequential, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean loss, accuracy) of ``model`` on (x, y)."""
    if len(x) == 0:
        return float("nan"), float("nan")
    logits = model.predict(x)
    loss, _, _ = softmax_cross_entropy(logits, y)
    return loss, float(np.mean(np.argmax(logits, axis=1) == y))


@contextlib.contextmanager
def blas_limit(threads: int | None) -> Iterator[None]:
    """Cap the BLAS thread pools inside the block (no-op without threadpoolctl or for None)."""
    if threads is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=threads):
        yield


class Trainer:
    """One training run: model, per-layer rules, data order, timers and counters."""

    def __init__(self, config: TrainConfig, data: Dataset | None = None,
                 array_factory: Callable[[tuple[int, int], int], Any] | None = None) -> None:
        self.config = config.validate()
        self.data = prepare_data(config, data)
        if len(self.data.x_train) == 0:
            raise ValueError(f"dataset {self.data.name!r} has no training images")
        self.model = build_model(config.model, self.data.input_shape, self.data.n_classes, seed=config.seed)
        rc = config.rule_config()
        self.rules = [LayerRule(layer, rc, seed=config.seed * 1009 + i + 1, array_factory=array_factory)
                      for i, layer in enumerate(self.model.weight_layers)]
        self.lr = config.learning_rate
        self.rng = np.random.default_rng([config.seed, 0x5BCA])
        self.times = {"forward": 0.0, "backward": 0.0, "update": 0.0, "evaluate": 0.0}
        self.steps = 0
        names = [l.name for l in self.model.weight_layers]
        self.rank1_total = dict.fromkeys(names, 0)
        self.dense_total = dict.fromkeys(names, 0)
        self.pairs_total = dict.fromkeys(names, 0)
        self.err_sum = dict.fromkeys(names, 0.0)
        self.err_n = dict.fromkeys(names, 0)
        self.ratio_sum = dict.fromkeys(names, 0.0)

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of shuffled mini-batches (the last one may be smaller)."""
        n = len(self.data.x_train)
        order = self.rng.permutation(n)
        count = 0
        for start in range(0, n, self.config.batch):
            if self.config.max_batches is not None and count >= self.config.max_batches:
                return
            idx = order[start:start + self.config.batch]
            count += 1
            yield self.data.x_train[idx], self.data.y_train[idx]

    def forward_backward(self, xb: np.ndarray, yb: np.ndarray, epoch: int = 0, batch: int = 0
                         ) -> tuple[float, np.ndarray]:
        """Forward, loss, backward: fills every weight layer's stream."""
        t0 = time.perf_counter()
        logits = self.model.forward(xb, train=True)
        loss, dlogits, _ = softmax_cross_entropy(logits, yb)
        t1 = time.perf_counter()
        self.times["forward"] += t1 - t0
        if not math.isfinite(loss):
            raise TrainingDiverged(self._diverged_msg(f"loss is {loss}", epoch, batch), epoch, batch)
        self.model.backward(dlogits)
        self.times["backward"] += time.perf_counter() - t1
        return loss, logits

    def apply_updates(self, n_samples: int, epoch: int = 0, batch: int = 0) -> None:
        """Every layer's rule consumes its stream and updates the weights."""
        t0 = time.perf_counter()
        for rule in self.rules:
            name = rule.layer.name
            try:
                info = rule.step(self.lr, n_samples, measure_error=self.config.measure_error)
            except FloatingPointError as exc:
                raise TrainingDiverged(self._diverged_msg(str(exc), epoch, batch), epoch, batch) from exc
            if not np.all(np.isfinite(rule.layer.W)):
                raise TrainingDiverged(self._diverged_msg(f"weights of layer {name} are not finite", epoch, batch),
                                       epoch, batch)
            self.rank1_total[name] += info["rank1"]
            self.dense_total[name] += info.get("dense_writes", 0)
            self.pairs_total[name] += info["pairs"]
            if "grad_error" in info:
                self.err_sum[name] += info["grad_error"]
                self.err_n[name] += 1
                self.ratio_sum[name] += info["norm_ratio"]
        self.steps += 1
        self.times["update"] += time.perf_counter() - t0

    def _diverged_msg(self, what: str, epoch: int, batch: int) -> str:
        c = self.config
        return (f"training diverged at epoch {epoch + 1}, batch {batch + 1}: {what} "
                f"(method {c.method}, lr {self.lr:g}); try a smaller learning rate")

    def grad_errors(self) -> dict[str, float]:
        """Mean relative error ‖G − Ĝ‖/‖G‖ per layer over the batches run."""
        return {k: self.err_sum[k] / self.err_n[k] for k in self.err_sum if self.err_n[k]}

    def norm_ratios(self) -> dict[str, float]:
        """Mean ‖Ĝ‖/‖G‖ per layer: above 1 means larger steps than MBGD at the same rate."""
        return {k: self.ratio_sum[k] / self.err_n[k] for k in self.ratio_sum if self.err_n[k]}

    def updates_report(self) -> dict:
        """Array update operations: per layer per batch (mean over the batches run; the last
        batch of an epoch may be smaller), and totals over the run."""
        per_layer = {}
        steps = max(self.steps, 1)
        for rule in self.rules:
            name = rule.layer.name
            row = {"shape": [rule.layer.rows, rule.layer.cols], "rank": rule.rank,
                   "pairs_per_batch": self.pairs_total[name] / steps,
                   "rank1_per_batch": self.rank1_total[name] / steps,
                   "rank1_total": self.rank1_total[name]}
            if rule.method == "mbgd":
                row["dense_writes_per_batch"] = min(rule.layer.rows, rule.layer.cols)
                row["dense_writes_total"] = self.dense_total[name]
            per_layer[name] = row
        rep = {"method": self.config.method, "batches": self.steps, "per_layer": per_layer,
               "rank1_per_batch": sum(r["rank1_per_batch"] for r in per_layer.values()),
               "rank1_total": sum(self.rank1_total.values())}
        if self.config.method == "mbgd":
            rep["dense_writes_per_batch"] = sum(r["dense_writes_per_batch"] for r in per_layer.values())
            rep["dense_writes_total"] = sum(self.dense_total.values())
        return rep

    def run(self, progress: bool = False, log: Callable[[str], None] | None = None,
            blas_threads: int | None = 1) -> dict:
        """Train for ``config.epochs`` epochs; returns the result dict (see :func:`train`).

        ``blas_threads`` caps BLAS threads during the run (None: leave as is).  The
        matrices are small, and one thread is several times faster than two fighting
        over shared cores (measured 4-9x on the 2-core CI machine).
        """
        # a diverging run overflows on purpose before it is caught: no NumPy warnings for that
        with blas_limit(blas_threads), np.errstate(over="ignore", invalid="ignore"):
            return self._run(progress, log)

    def _run(self, progress: bool, log: Callable[[str], None] | None) -> dict:
        from tqdm.auto import tqdm

        c = self.config
        t_start = time.perf_counter()
        history = []
        n_batches = math.ceil(len(self.data.x_train) / c.batch)
        if c.max_batches is not None:
            n_batches = min(n_batches, c.max_batches)
        for epoch in range(c.epochs):
            t_epoch = time.perf_counter()
            err0 = dict(self.err_sum), dict(self.err_n)
            loss_sum, correct, seen = 0.0, 0, 0
            bar = tqdm(self.batches(), total=n_batches, desc=f"epoch {epoch + 1}/{c.epochs}",
                       disable=not progress, leave=True, unit="batch", dynamic_ncols=True)
            try:
                for b, (xb, yb) in enumerate(bar):
                    try:
                        loss, logits = self.forward_backward(xb, yb, epoch, b)
                        self.apply_updates(len(xb), epoch, b)
                    except TrainingDiverged as exc:
                        exc.partial = self._result(history, time.perf_counter() - t_start, final=False)
                        raise
                    loss_sum += loss * len(xb)
                    correct += int(np.sum(np.argmax(logits, axis=1) == yb))
                    seen += len(xb)
                    if progress:
                        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{100 * correct / seen:.1f}%")
            finally:
                bar.close()
            t0 = time.perf_counter()
            test_loss, test_acc = evaluate(self.model, self.data.x_test, self.data.y_test)
            self.times["evaluate"] += time.perf_counter() - t0
            errs = {k: (self.err_sum[k] - err0[0][k]) / (self.err_n[k] - err0[1][k])
                    for k in self.err_sum if self.err_n[k] > err0[1][k]}
            rec = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                   "test_loss": test_loss, "test_accuracy": test_acc, "grad_error": errs,
                   "time_s": time.perf_counter() - t_epoch}
            history.append(rec)
            if log is not None:
                log(f"epoch {epoch + 1}/{c.epochs}: train loss {rec['train_loss']:.4f} "
                    f"acc {100 * rec['train_accuracy']:.2f}% | test loss {test_loss:.4f} acc {100 * test_acc:.2f}%")
        return self._result(history, time.perf_counter() - t_start, final=True)

    def _result(self, history: list[dict], wall: float, final: bool) -> dict:
        c = self.config
        res: dict = {"config": c.to_dict(), "dataset": {"name": self.data.name, "source": self.data.source,
                                                       "train": int(len(self.data.x_train)),
                                                       "test": int(len(self.data.x_test)),
                                                       "input_shape": list(self.data.input_shape)},
                     "model": self.model.summary(), "lr": self.lr, "epochs": len(history),
                     "history": history, "diverged": not final}
        if final:
            t0 = time.perf_counter()
            train_loss, train_acc = evaluate(self.model, self.data.x_train, self.data.y_train)
            test_loss, test_acc = evaluate(self.model, self.data.x_test, self.data.y_test)
            self.times["evaluate"] += time.perf_counter() - t0
            wall += time.perf_counter() - t0
            res.update(train_accuracy=train_acc, train_loss=train_loss, test_accuracy=test_acc,
                       test_loss=test_loss)
        res["updates"] = self.updates_report()
        res["grad_error"] = self.grad_errors()
        res["grad_norm_ratio"] = self.norm_ratios()
        res["status"] = {r.layer.name: r.status() for r in self.rules}
        res["time"] = {"wall_s": wall, **{f"{k}_s": v for k, v in self.times.items()}}
        return res


def train(config: TrainConfig, data: Dataset | None = None, progress: bool = False,
          log: Callable[[str], None] | None = None,
          array_factory: Callable[[tuple[int, int], int], Any] | None = None,
          blas_threads: int | None = 1) -> dict:
    """Train one network as ``config`` says and return the results.

    Keys: ``test_accuracy``, ``train_accuracy`` (fractions in [0, 1]), ``test_loss``,
    ``train_loss``, ``epochs`` (epochs run), ``history`` (per-epoch records),
    ``updates`` (array update operations, see :meth:`Trainer.updates_report`),
    ``grad_error`` (mean ‖G − Ĝ‖/‖G‖ per layer over all batches), ``grad_norm_ratio``
    (mean ‖Ĝ‖/‖G‖ per layer), ``status``
    (fixed-point flags, scaling exponents, device counters), ``time`` (wall, forward,
    backward, update, evaluate seconds), ``config``, ``lr``, ``dataset``, ``model``.
    Raises :class:`TrainingDiverged` when the loss or the weights become NaN/inf.
    """
    return Trainer(config, data, array_factory=array_factory).run(progress=progress, log=log,
                                                                  blas_threads=blas_threads)


@dataclass
class CapturedStream:
    """One layer's (x, δ) stream from one real training step, with the estimator state
    around it: feeding ``x``/``delta`` (or ``x_int``/``delta_int`` in fixed mode) to an
    estimator started from ``state_before`` reproduces ``state_after``.

    ``x`` and ``delta`` are the values the estimator saw (already scaled by ``2^x_exp``
    and ``2^delta_exp`` in fixed mode; unscaled in float mode, exponents 0).
    """

    layer: str
    index: int
    rows: int
    cols: int
    step: int
    n_samples: int
    x: np.ndarray
    delta: np.ndarray
    x_exp: int
    delta_exp: int
    config: dict
    x_int: np.ndarray | None = None
    delta_int: np.ndarray | None = None
    formats: Any = None
    state_before: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    state_after: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    state_before_int: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    state_after_int: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def to_npz(self, path) -> None:
        """Save the arrays (and the scalar metadata) as one ``.npz`` file."""
        arrays: dict = {"x": self.x, "delta": self.delta}
        for key in ("x_int", "delta_int"):
            if getattr(self, key) is not None:
                arrays[key] = getattr(self, key)
        for tag in ("state_before", "state_after", "state_before_int", "state_after_int"):
            st = getattr(self, tag)
            if st is not None:
                for nm, v in zip(("X", "Delta", "sigma"), st):
                    arrays[f"{tag}_{nm}"] = v
        meta = {k: getattr(self, k) for k in ("layer", "index", "rows", "cols", "step", "n_samples",
                                                "x_exp", "delta_exp")}
        np.savez(path, **arrays, **{f"meta_{k}": np.asarray(v) for k, v in meta.items()})


def _sbpca_state(est) -> tuple[tuple | None, tuple | None]:
    """(float state, integer state) of an SBPCA estimator; (None, None) for the others."""
    if not hasattr(est, "sigma") or not hasattr(est, "Delta"):
        return None, None
    flt = (est.X, est.Delta, est.sigma)
    ints = (est.X_int.copy(), est.Delta_int.copy(), est.sigma_int.copy()) if getattr(est, "fixed", False) else None
    return flt, ints


def capture_stream(config: TrainConfig, layer: "int | str" = 0, step: int = 0,
                   data: Dataset | None = None) -> CapturedStream:
    """Train ``step`` batches as ``config`` says, then capture batch number ``step``.

    ``layer`` is a weight-layer index or name (e.g. ``"conv1"``, ``"fc"``).  The captured
    batch is trained normally (its update is applied), so the state after matches a
    plain run.  Works with every method; SBPCA states are filled only for ``sbpca``.
    """
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step must be a non-negative integer, not {step!r}")
    cfg = replace(config, measure_error=False)
    tr = Trainer(cfg, data)
    target = tr.model.layer(layer)
    index = tr.model.weight_layers.index(target)
    rule = tr.rules[index]
    done, epoch = 0, 0
    while True:  # epochs, as many as it takes to reach batch number `step`
        for b, (xb, yb) in enumerate(tr.batches()):
            tr.forward_backward(xb, yb, epoch, b)
            if done == step:
                xs, ds, _ = rule.scale_stream(target.stream_x, target.stream_delta)
                before, before_int = _sbpca_state(rule.estimator)
                xi = di = None
                if rule.fmts is not None:
                    xi, di = rule.quantized_stream(target.stream_x, target.stream_delta)
                tr.apply_updates(len(xb), epoch, b)
                after, after_int = _sbpca_state(rule.estimator)
                return CapturedStream(
                    layer=target.name, index=index, rows=target.rows, cols=target.cols, step=step,
                    n_samples=len(xb), x=xs.copy(), delta=ds.copy(), x_exp=int(rule.x_exp or 0),
                    delta_exp=int(rule.d_exp or 0), config=cfg.to_dict(), x_int=xi, delta_int=di,
                    formats=rule.fmts, state_before=before, state_after=after,
                    state_before_int=before_int, state_after_int=after_int)
            tr.apply_updates(len(xb), epoch, b)
            done += 1
        epoch += 1
