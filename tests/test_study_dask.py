"""``sbpca study`` on real Dask: a local cluster gives the serial numbers, Ctrl-C then a rerun
computes only what is missing, and a cluster of ``dask scheduler`` + ``dask worker``
processes survives a worker killed mid-run (retried, then recorded failed, then
recomputed by a rerun).  No mocks: real processes, real signals, real sockets."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import pymodel
from pymodel.cli import main

ROOT = Path(pymodel.__file__).resolve().parents[1]
# 10 runs (4 tuning + 6 final) of 0.1-0.7 s on the 2-core machine; the NumPy reference of SBPCA,
# so no worker compiles (or loads) a kernel and the fixed-point runs stay the longest
STUDY = ["study", "--dataset", "digits", "--methods", "mbgd,sbpca", "--ranks", "1", "--formats", "float,q8",
         "--seeds", "2", "--lrs", "0.05,0.5", "--epochs", "1", "--batch", "32", "--train-limit", "96",
         "--test-limit", "50", "--backend", "numpy", "--quiet"]
N_RUNS = 10
WHERE = ("time_s", "host", "pid", "worker", "finished_at")  # how and when, not what: may differ


def _runs(out: Path) -> dict[str, dict]:
    """Run files by name, without the fields that say where and when they ran."""
    recs = {}
    for path in sorted((out / "runs").glob("*.json")):
        rec = json.loads(path.read_text())
        recs[path.name] = {k: v for k, v in rec.items() if k not in WHERE}
    return recs


def _mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **extra}


def _sigint_as_in_a_terminal() -> None:
    """In the child before exec: SIGINT's default action, and not blocked."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> Path:
    """The reference: the same study, serially in this process."""
    out = tmp_path_factory.mktemp("serial")
    assert main([*STUDY, "--jobs", "1", "-o", str(out)]) == 0
    assert len(_runs(out)) == N_RUNS
    return out


@pytest.mark.slow
def test_local_cluster_gives_the_serial_numbers_and_resumes_after_ctrl_c(serial, tmp_path, capsys):
    """Ctrl-C part way through a study on a local cluster of 2 worker processes, then the same
    command again: every run is computed once, on the workers, with the serial numbers."""
    out = tmp_path / "int"
    cmd = [sys.executable, "-m", "pymodel.cli", *STUDY, "--jobs", "2", "-o", str(out)]
    # own session: SIGINT to its process group is what Ctrl-C in a terminal does
    # and SIGINT delivered as in a terminal: an ignored SIGINT (SIG_IGN) and a blocked one (the
    # signal mask) are inherited across exec, and on CI, after the rest of the suite in the same
    # test process, the child ran every run to the end with SIGINT sent to it three times
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_sigint_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 120
        while len(list((out / "runs").glob("*.json"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted:" in err and "rerun the same command" in err and "Traceback" not in err
    before = _mtimes(out)
    assert 2 <= len(before) < N_RUNS  # stopped part way, with whole files only
    assert not list((out / "runs").glob(".*.tmp"))
    for name, rec in _runs(out).items():
        assert rec == _runs(serial)[name]
    capsys.readouterr()
    assert main([*STUDY, "--jobs", "2", "-o", str(out)]) == 0
    assert (f"{N_RUNS - len(before)} run(s) computed (2 worker(s)), {len(before)} already on disk"
            in capsys.readouterr().err)
    after = _mtimes(out)
    assert {k: after[k] for k in before} == before  # not one finished run written again
    assert (out / "results.md").read_text() == (serial / "results.md").read_text()
    assert _runs(out) == _runs(serial)  # every number of every run, tuning runs included
    pids = {json.loads(p.read_text())["pid"] for p in (out / "runs").glob("*.json")}
    assert os.getpid() not in pids and len(pids) >= 2  # worker processes ran them, not this one


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask() -> str:
    exe = shutil.which("dask") or str(Path(sys.executable).with_name("dask"))
    assert Path(exe).exists(), "the dask executable comes with dask[distributed], a dependency"
    return exe


def _stop(proc: subprocess.Popen) -> None:
    """End a process we started, by its pid: SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_cluster_mode_kill_worker_retry_then_failed_then_rerun(serial, tmp_path, capsys):
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "logs"
    logs.mkdir()
    # the scheduler unpickles the runs, so it needs this package like the workers
    sched_env = _env(DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION="1.0")  # as docs/TRAINING.md advises
    scheduler = subprocess.Popen([_dask(), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], env=sched_env, cwd=tmp_path,
                                 stdout=open(logs / "scheduler.log", "w"), stderr=subprocess.STDOUT)
    worker = None
    try:
        worker = subprocess.Popen([_dask(), "worker", address, "--nworkers", "2", "--nthreads", "1",
                                   "--host", "127.0.0.1", "--no-dashboard"], env=_env(), cwd=tmp_path,
                                  stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT)
        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
            out = tmp_path / "cluster"
            args = [*STUDY, "--scheduler", address, "--retries", "1", "-o", str(out)]
            rc: list[int] = []
            study = threading.Thread(target=lambda: rc.append(main(args)), daemon=True)
            study.start()
            # kill the worker process running one final run, twice: retried once, then failed.  The
            # candidates are the fixed-point final runs, the longest of the study (several times a
            # float run), so the poll below sees them running
            fixed = {f"sbpca-run-{name.rsplit('_', 1)[1][:-5]}" for name in _runs(serial)
                     if name.startswith("run_") and "_q8_" in name}
            target, killed, pids = None, [], {}
            deadline = time.monotonic() + 180
            while len(killed) < 2 and study.is_alive() and time.monotonic() < deadline:
                processing = client.processing()
                new = [a for a in processing if a not in pids]
                if new:  # a worker (re)started: learn its pid
                    pids.update(client.run(os.getpid, workers=new))
                for addr, keys in processing.items():
                    # the worker holds that run alone, so it is running it and the kill charges no other
                    if len(keys) == 1 and (keys[0] == target if target else keys[0] in fixed):
                        target = keys[0]
                        os.kill(pids[addr], signal.SIGKILL)
                        killed.append(pids[addr])
                        while addr in client.scheduler_info(n_workers=-1)["workers"]:
                            time.sleep(0.02)  # until the scheduler has seen it go
                        break
                time.sleep(0.005)
            study.join(timeout=180)
            assert not study.is_alive() and len(killed) == 2, (killed, target)
        assert rc == [1]  # finished, with a failed run
        err = capsys.readouterr().err
        assert "1 run(s) failed" in err, err[-2000:]
        key = target.removeprefix("sbpca-run-")
        recs = {json.loads(p.read_text())["key"]: json.loads(p.read_text()) for p in (out / "runs").glob("*.json")}
        assert len(recs) == N_RUNS
        assert recs[key]["status"] == "failed" and "KilledWorker" in recs[key]["error"], (recs[key], killed)
        assert "died (2 times" in recs[key]["error"]
        assert all(r["status"] == "ok" for k, r in recs.items() if k != key)
        assert all(r["worker"].startswith("tcp://127.0.0.1:") for k, r in recs.items() if k != key)
        assert f"({recs[key]['status']}): KilledWorker" in (out / "results.md").read_text()
        # the others are the serial numbers; a rerun computes the failed run alone
        ref = _runs(serial)
        assert all(rec == ref[name] for name, rec in _runs(out).items() if key not in name)
        before = _mtimes(out)
        assert main(args) == 0
        assert f"1 run(s) computed ({address}), {N_RUNS - 1} already on disk" in capsys.readouterr().err
        after = _mtimes(out)
        assert [n for n in after if after[n] != before[n]] == [n for n in after if key in n]
        assert _runs(out) == ref
        assert (out / "results.md").read_text() == (serial / "results.md").read_text()
    finally:
        if worker is not None:
            _stop(worker)
        _stop(scheduler)
    assert worker.returncode is not None and scheduler.returncode is not None
