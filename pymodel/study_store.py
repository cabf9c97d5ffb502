"""One JSON file per study run under ``OUT/runs/``: what makes ``sbpca study`` resumable.

A run is named by its *key*, a hash of everything that changes its numbers: the full
:class:`~pymodel.training.TrainConfig` (dataset, model, method, rank, format, seed,
learning rate, validation split, limits, device model, …; every field, so an option
added to ``TrainConfig`` later is part of the key without touching this file) except
``data_dir``, which says where the data is, not what it is.  The client process writes
each file as soon as the run's result arrives, atomically (a temporary file in the same
folder, then ``os.replace``), so a study stopped at any moment leaves only whole files.

Runs whose status is ``ok`` or ``diverged`` are *finished* and skipped by a rerun;
``error`` (the run raised) and ``failed`` (its worker died more often than the retry
limit allows) are kept for the record and computed again by a rerun.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .training import TrainConfig, to_jsonable

SCHEMA = 1  # bump when the meaning of a run file changes: old files then no longer match
FINISHED = ("ok", "diverged")
STATUSES = ("ok", "diverged", "error", "failed")
_NOT_IN_KEY = ("data_dir",)


def config_identity(config: TrainConfig) -> dict:
    """The parts of ``config`` that decide the run's numbers, as plain JSON types."""
    d = to_jsonable(config.to_dict())
    for name in _NOT_IN_KEY:
        d.pop(name, None)
    return d


def run_key(config: TrainConfig) -> str:
    """Stable 16-hex-digit key of one run (same config, same key, on any machine)."""
    blob = json.dumps({"schema": SCHEMA, "config": config_identity(config)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_filename(stage: str, config: TrainConfig, key: str) -> str:
    """``<stage>_<method>_k<rank>_<format>_lr<lr>_s<seed>_<key>.json``: readable, and unique by key."""
    rank = "-" if config.method == "mbgd" else str(config.rank)
    return (f"{stage}_{config.method}_k{rank}_{config.fixed or 'float'}_lr{config.learning_rate:g}"
            f"_s{config.seed}_{key}.json")


class RunStore:
    """The folder of run files: load what is there, write one run at a time."""

    def __init__(self, folder: Path, fresh: bool = False) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if fresh:
            for path in self._files():
                path.unlink()
        self.records: dict[str, dict] = {}
        for path in self._files():
            try:
                rec = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue  # not one of ours (ours are written whole): ignored, and overwritten if its key reruns
            if isinstance(rec, dict) and rec.get("schema") == SCHEMA and isinstance(rec.get("key"), str):
                self.records[rec["key"]] = rec

    def _files(self) -> Iterator[Path]:
        return iter(sorted(p for p in self.folder.glob("*.json") if p.is_file()))

    def finished(self, key: str, config: TrainConfig) -> dict | None:
        """The stored record of ``key`` when it is finished and really is this config."""
        rec = self.records.get(key)
        if rec is None or rec.get("status") not in FINISHED:
            return None
        if rec.get("config") != config_identity(config):  # a hash collision or a hand-edited file
            return None
        return rec

    def path(self, record: dict) -> Path:
        return self.folder / record["file"]

    def write(self, record: dict) -> Path:
        """Write ``record`` (which has ``key`` and ``file``) atomically and remember it."""
        if record.get("status") not in STATUSES:
            raise ValueError(f"run status must be one of {', '.join(STATUSES)}, not {record.get('status')!r}")
        text = json.dumps(_plain({"schema": SCHEMA, **record}), indent=1) + "\n"
        path = self.path(record)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        # keep what a later run of the study will read back, so a resumed study and an
        # uninterrupted one aggregate identical records
        self.records[record["key"]] = json.loads(text)
        return path

    def get(self, key: str) -> dict:
        return self.records[key]


def _plain(obj: Any) -> Any:
    """NumPy scalars and arrays as Python numbers and lists; NaN stays a number (JSON ``NaN``)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
