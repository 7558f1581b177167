"""The checkpoint cache of the torch models: keys, atomic writes, safe reads, one trainer per key.

A trained model is saved as a plain dict

    {format, key, model_name, model_config, train_config, data, dims, versions, machine,
     train_log, state_dict}

with ``torch.save`` (written to a temporary file, then ``os.replace``: a reader never sees
half a file) and read back with ``torch.load(..., weights_only=True)``, so every field is a
tensor or a plain python value. Its key is the SHA-256 of (model name, model config, train
config without runtime settings, data identity, the model code's weights version); the data
identity is the panel fingerprint, a digest of the scaled feature array (so a change in the
feature code is seen), the tickers and the split dates, and the digest of the labels a
point-in-time universe hid, when it hid any. Processes that train or read the
same key at once take turns on an exclusive lock (`key_lock`): the first trains and writes,
the others then reuse its checkpoint.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable, Mapping

import numpy as np
import torch

import storm_bt
from storm_bt.errors import StormBtError, os_reason
from storm_bt.features.dataset import FeatureSet, Split
from storm_bt.models.neural.training import TrainConfig

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(".cache/storm_bt/checkpoints")
CHECKPOINT_FORMAT = 1


def feature_digest(data: FeatureSet) -> str:
    """SHA-256 (16 hex digits) of the feature names and the scaled feature array."""
    h = hashlib.sha256()
    h.update("\x1f".join(data.feature_names).encode())
    h.update(str(data.features.shape).encode())
    h.update(np.ascontiguousarray(data.features).tobytes())
    return h.hexdigest()[:16]


def data_identity(data: FeatureSet, split: Split) -> dict:
    """What a checkpoint was trained on, as plain values; with labels hidden by a
    point-in-time universe, their digest too (only then, so other keys are unchanged)."""
    identity = {
        "fingerprint": data.fingerprint,
        "features": feature_digest(data),
        "tickers": list(data.tickers),
        "split": split.as_dict(),
    }
    if data.hidden_labels is not None:
        identity["hidden_labels"] = data.hidden_labels
    # A stock listed after the training start is left out of the windows before its first
    # row (`storm_bt.models.neural.training.listed_columns`); fits of such data trained on
    # zero rows in its place before that rule, so their keys change (only theirs).
    if (data.first_rows > int(data.dates.searchsorted(split.train_start))).any():
        identity["windows_hold"] = "listed stocks"
    return identity


def checkpoint_key(model_name: str, model_config: Mapping, train_config: TrainConfig,
                   data: Mapping, weights_version: int = 1) -> str:
    """SHA-256 of everything that determines the trained weights (seed included).

    ``weights_version`` is the model code's own version (`TorchPredictor.weights_version`),
    raised whenever a code change alters what a config trains to. Version 1 is left out of
    the digest, so the checkpoints of models whose code has not changed since the first
    version keep their keys.
    """
    fields = {"model": model_name, "model_config": dict(model_config),
              "train_config": train_config.identity(), "data": dict(data)}
    if weights_version != 1:
        fields["weights_version"] = int(weights_version)
    blob = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def versions() -> dict:
    return {"storm_bt": str(storm_bt.__version__), "torch": str(torch.__version__),
            "numpy": str(np.__version__)}


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """``write(f)`` into a temporary file beside ``path``, flushed to disk, then an atomic
    rename: a reader sees the old file or the whole new one, never part of it.

    The file gets the permissions of any new file (0666 less the process's umask), so a
    cache shared by a team or by workers running as other users stays readable;
    ``tempfile.mkstemp`` would make it 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_checkpoint(path: Path, payload: dict) -> None:
    """torch.save to a temporary file beside ``path``, then an atomic rename."""
    write_atomic(path, lambda f: torch.save(payload, f))


@contextlib.contextmanager
def key_lock(path: Path | None):
    """An exclusive lock on ``<checkpoint>.lock`` for the block (none for ``None``).

    Concurrent processes that train or read the same key run one after another: the first
    trains and writes the checkpoint (atomically), the others then find and reuse it.
    """
    if path is None:
        yield
        return
    import fcntl

    lock = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a")
    except OSError as exc:
        raise StormBtError(f"cannot write to the checkpoint cache {path.parent}: "
                           f"{os_reason(exc)}; choose another cache_dir "
                           "(--cache-dir)") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_checkpoint(path: Path) -> dict:
    """``torch.load(path, weights_only=True)``; an unreadable file is a user error."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read means a bad file
        raise StormBtError(f"{path}: not a readable storm_bt checkpoint ({exc.__class__.__name__}: "
                           f"{exc}); delete it or pass --retrain") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise StormBtError(f"{path}: not a storm_bt checkpoint of format {CHECKPOINT_FORMAT}; "
                           "delete it or pass --retrain")
    return payload
