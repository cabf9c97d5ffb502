"""Where the runs of ``sbpca study`` execute: in this process, or on Dask distributed.

* :class:`SerialEngine` (``--jobs 1``, no ``--scheduler``): one run after another in the
  calling process; nothing to start, and a debugger or profiler sees the run.
* :class:`DaskEngine`: a ``LocalCluster`` of ``--jobs`` worker processes (one thread
  each) started here, or an existing cluster at ``--scheduler ADDRESS`` (``dask
  scheduler`` + ``dask worker`` by hand, or ``dask-jobqueue`` on Slurm/PBS).

Both take ``(job id, TrainConfig, priority)`` and hand back ``(job id, result)`` as runs
finish; a result is a plain dict with a ``status`` (see :mod:`pymodel.study_store`).
:func:`run_one` never raises for a failed run: whatever the run raises comes back as
``status="error"`` with its traceback, so one bad configuration cannot stop a study.
A worker process that dies mid-run (killed, out of memory) is Dask's to handle: the
scheduler retries the run on another worker, ``retries`` times, then reports
``KilledWorker``, recorded as ``status="failed"``.
"""

from __future__ import annotations

import heapq
import logging
import os
import socket
import sys
import time
import traceback
from typing import Any

from .datasets import Dataset, load_dataset
from .training import TrainConfig, TrainingDiverged, train

_DATA: dict[tuple[str, str | None], Dataset] = {}


def _dataset(config: TrainConfig) -> Dataset:
    """The dataset of ``config``, loaded once per process (a worker then keeps it for every run)."""
    key = (config.dataset, config.data_dir)
    if key not in _DATA:
        _DATA[key] = load_dataset(config.dataset, config.data_dir)
    return _DATA[key]


def _where() -> dict:
    worker = None
    if "distributed" in sys.modules:
        from distributed import get_worker
        try:
            worker = get_worker().address
        except ValueError:  # not inside a Dask worker
            pass
    return {"host": socket.gethostname(), "pid": os.getpid(), "worker": worker}


def run_one(config: TrainConfig) -> dict:
    """One training run, reduced to what the study keeps (plain, picklable types).

    ``status`` is ``ok``, ``diverged`` (:class:`TrainingDiverged`) or ``error``
    (anything else the run raised, with ``error`` and ``traceback``).
    """
    t0 = time.perf_counter()
    try:
        res = train(config, data=_dataset(config))
    except TrainingDiverged as exc:
        return {"status": "diverged", "diverged": True, "error": str(exc),
                "time_s": time.perf_counter() - t0, **_where()}
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, none stops the study
        return {"status": "error", "diverged": False, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "time_s": time.perf_counter() - t0, **_where()}
    return {"status": "ok", "diverged": False, "test_accuracy": res["test_accuracy"],
            "train_accuracy": res["train_accuracy"], "test_loss": res["test_loss"],
            "grad_error": res["grad_error"], "grad_norm_ratio": res["grad_norm_ratio"],
            "rank1_per_batch": res["updates"]["rank1_per_batch"],
            "dense_writes_per_batch": res["updates"].get("dense_writes_per_batch"),
            "saturations": sum(sum(st.get("fixed", {}).get("saturation", {}).values())
                               for st in res["status"].values()),
            "sigma_guard": sum(st.get("fixed", {}).get("sigma_guard", 0) for st in res["status"].values()),
            "time_s": time.perf_counter() - t0, **_where()}


def probe_data(dataset: str, data_dir: str | None) -> str | None:
    """On a worker: None when it can load the dataset, else why not (checked before submitting)."""
    try:
        _dataset(TrainConfig(dataset=dataset, data_dir=data_dir))
    except Exception as exc:  # noqa: BLE001 - reported to the client, which refuses to start
        return f"{type(exc).__name__}: {exc}"
    return None


def _set_allowed_failures(n: int, dask_scheduler: Any = None) -> None:
    """On the scheduler: a task fails with KilledWorker after ``n + 1`` worker deaths."""
    dask_scheduler.allowed_failures = n


def _ignore_sigint_plugin() -> Any:
    """A Dask worker plugin that makes its worker process ignore SIGINT (built here, so this
    module imports without Dask; the class travels to the workers by value)."""
    from distributed import WorkerPlugin

    class IgnoreSigint(WorkerPlugin):
        def setup(self, worker: Any) -> None:
            import signal
            import threading

            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreSigint()


def _quiet_distributed_logs() -> None:
    """Raise every ``distributed`` logger to CRITICAL (here, or on a worker or nanny by
    ``Client.run``).  Why: when the study stops its local cluster on Ctrl-C, a worker whose
    heartbeat races the scheduler's shutdown logs an ERROR with a traceback (seen on a loaded
    machine); that is the shutdown the user asked for, not an error of the study's."""
    names = ["distributed", *[n for n in logging.root.manager.loggerDict if n.startswith("distributed.")]]
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL)


class SerialEngine:
    """Runs in this process, highest priority first (then in submission order)."""

    description = "serial, in this process"

    def __init__(self) -> None:
        self._queue: list[tuple[int, int, str, TrainConfig]] = []
        self._seq = 0

    def submit(self, job_id: str, config: TrainConfig, priority: int = 0) -> None:
        heapq.heappush(self._queue, (-priority, self._seq, job_id, config))
        self._seq += 1

    @property
    def pending(self) -> int:
        return len(self._queue)

    def next_done(self) -> tuple[str, dict]:
        _, _, job_id, config = heapq.heappop(self._queue)
        return job_id, run_one(config)

    def close(self, cancel: bool = False) -> None:
        self._queue.clear()


class DaskEngine:
    """Dask distributed: a LocalCluster of ``workers`` processes, or the cluster at ``scheduler``.

    ``retries`` is the scheduler's ``allowed_failures``: how many times a run is started
    again after the worker running it died, before it fails with ``KilledWorker``.
    """

    def __init__(self, workers: int = 2, scheduler: str | None = None, retries: int = 2,
                 dataset: str | None = None, data_dir: str | None = None, timeout: float = 30.0) -> None:
        import dask
        from distributed import Client, LocalCluster, as_completed

        if retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries}")
        self.cluster = None
        if scheduler is None:
            if workers < 1:
                raise ValueError(f"workers must be >= 1, not {workers}")
            # saturation 1.0: a worker holds only the run it executes, so a worker that dies
            # charges its death to that run alone
            with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                            dashboard_address=None, silence_logs=logging.ERROR,
                                            scheduler_kwargs={"allowed_failures": retries})
            self.client = Client(self.cluster, set_as_default=False)
            self.description = f"{workers} local Dask worker process(es)"
        else:
            try:
                self.client = Client(scheduler, timeout=timeout, set_as_default=False)
            except OSError as exc:
                raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from exc
            try:  # by reference: this fails unless the scheduler can import pymodel, as it must
                self.client.run_on_scheduler(_set_allowed_failures, retries)
            except Exception as exc:  # noqa: BLE001 - ModuleNotFoundError raised on the scheduler
                self.client.close()
                raise ValueError(f"the Dask scheduler at {scheduler} cannot run the study "
                                 f"({type(exc).__name__}: {exc}); it unpickles every run, so it needs this "
                                 f"package too (pip install -e . where it runs)") from exc
            n = len(self.client.scheduler_info(n_workers=-1)["workers"])
            self.description = f"Dask scheduler {scheduler} ({n} worker(s) now)"
        self._futures: dict[str, Any] = {}
        try:
            if self.cluster is not None:
                # Ctrl-C in a terminal reaches the whole process group: the local workers leave it to
                # this process, which cancels the runs and closes the cluster (no traceback from each)
                self.client.register_plugin(_ignore_sigint_plugin(), name="sbpca-ignore-sigint")
            if dataset is not None:
                self._probe(dataset, data_dir)
            self._done = as_completed(loop=self.client.loop)
        except BaseException:
            self.close()
            raise

    def _probe(self, dataset: str, data_dir: str | None) -> None:
        """Refuse to start when a worker cannot import pymodel or load the data."""
        try:
            answers = self.client.run(probe_data, dataset, data_dir)
        except Exception as exc:  # noqa: BLE001 - e.g. ModuleNotFoundError while unpickling on a worker
            raise ValueError(f"the Dask workers cannot run the study ({type(exc).__name__}: {exc}); "
                             f"install this package on every worker (pip install -e .)") from exc
        bad = {w: why for w, why in answers.items() if why is not None}
        if bad:
            w, why = next(iter(bad.items()))
            raise FileNotFoundError(f"{len(bad)} Dask worker(s) cannot load dataset {dataset!r} "
                                    f"(--data-dir must be visible to the workers); {w}: {why}")

    def submit(self, job_id: str, config: TrainConfig, priority: int = 0) -> None:
        fut = self.client.submit(run_one, config, key=job_id, priority=priority, pure=False)
        self._futures[job_id] = fut
        self._done.add(fut)

    @property
    def pending(self) -> int:
        return len(self._futures)

    def next_done(self) -> tuple[str, dict]:
        fut = next(self._done)
        job_id = fut.key
        del self._futures[job_id]
        try:
            return job_id, self._outcome(fut)
        finally:
            fut.release()

    def _outcome(self, fut: Any) -> dict:
        from distributed import KilledWorker

        where = {"host": None, "pid": None, "worker": None, "time_s": None}
        try:
            return fut.result()
        except KilledWorker as exc:
            return {"status": "failed", "diverged": False, **where,
                    "error": f"KilledWorker: every worker that ran it died ({exc.allowed_failures + 1} times: "
                             f"killed, or out of memory); last on {exc.last_worker.address}"}
        except Exception as exc:  # noqa: BLE001 - raised outside run_one's guard (e.g. unpicklable)
            return {"status": "error", "diverged": False, **where, "error": f"{type(exc).__name__}: {exc}",
                    "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))}

    def close(self, cancel: bool = False) -> None:
        futures = list(getattr(self, "_futures", {}).values())
        if cancel and futures:
            try:
                self.client.cancel(futures, force=True)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        if getattr(self, "_futures", None):
            self._futures.clear()
        if cancel and self.cluster is not None:
            for nanny in (False, True):
                try:
                    self.client.run(_quiet_distributed_logs, nanny=nanny)
                except Exception:  # noqa: BLE001 - closing anyway
                    pass
            _quiet_distributed_logs()
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_engine(workers: int, scheduler: str | None, retries: int, dataset: str | None = None,
                data_dir: str | None = None) -> SerialEngine | DaskEngine:
    """The engine for ``--jobs`` / ``--scheduler``: serial only for one job and no scheduler."""
    if scheduler is None and workers == 1:
        return SerialEngine()
    return DaskEngine(workers, scheduler, retries, dataset, data_dir)
