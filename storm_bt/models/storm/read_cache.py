"""The stacked read's cache: a fitted read saved beside its network's checkpoint.

A stacked read (`storm_bt.models.storm.stacked_read`) is a function of the frozen
network, the training period's labels and characteristics, and its own settings. Fitting
it takes one labelless pass over the training windows (57 s on the S&P 500's 501 stocks),
so a run that reuses a cached network reuses its read too. The file is

    <checkpoint file>.read-<key[:16]>.json

with key the SHA-256 of (READ_FORMAT, the network's checkpoint key, a digest of its weights,
a digest of the characteristics, the state, whether the read has its constant, the penalties
and the hold-out years). The weights are in the key because the checkpoint key holds what a
user chooses, not the machine: a network retrained under the same key along another
summation order (another thread count or CPU) gets a read of its own. The file is written
to a temporary name and renamed; one that cannot be read or written only costs a refit,
with a warning, since it caches work and holds no result.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from storm_bt.models.neural.checkpoint import write_atomic
from storm_bt.models.storm.stacked_read import HOLDOUT_YEARS, LAMBDAS, StackedRead

log = logging.getLogger(__name__)

#: raise when a code change alters what the same inputs fit to, or the file's layout
READ_FORMAT = 1


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of the model's state dict: every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(dtype=torch.uint8).numpy().tobytes())
    return h.hexdigest()


def read_key(network_key: str, model: nn.Module, characteristics: np.ndarray | None,
             state: str, constant: bool, lambdas: tuple[float, ...] = LAMBDAS,
             holdout_years: int = HOLDOUT_YEARS, select: str = "holdout") -> str:
    """SHA-256 of everything a fitted read depends on beyond the network's checkpoint key
    (``select`` enters only when it is not the default, so older reads keep their keys;
    the validation period's labels are covered by the network's key, whose split and data
    digest hold them)."""
    chars = hashlib.sha256()
    if characteristics is not None:
        chars.update(str(characteristics.shape).encode())
        # the float64 bytes in C order, a block of leading rows at a time: the same digest
        # as one float64 copy of the whole array (about 100 MB on the S&P 500), without it
        rows = max(1, (1 << 23) // max(1, characteristics[:1].size * 8))
        for start in range(0, len(characteristics), rows):
            block = characteristics[start:start + rows]
            chars.update(np.ascontiguousarray(block, dtype=np.float64).tobytes())
    fields = {"format": READ_FORMAT, "network": network_key, "weights": weights_digest(model),
              "characteristics": chars.hexdigest(), "state": state, "constant": bool(constant),
              "lambdas": [float(x) for x in lambdas], "holdout_years": int(holdout_years),
              **({"select": select} if select != "holdout" else {})}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def read_path(checkpoint: Path, key: str) -> Path:
    """Where the read of ``key`` lies: beside the network's checkpoint file."""
    return checkpoint.with_name(f"{checkpoint.name}.read-{key[:16]}.json")


def as_plain(read: StackedRead) -> dict:
    """Every field of the read as JSON values (floats round-trip exactly)."""
    return {"format": READ_FORMAT, "state": read.state, "u_mean": read.u_mean.tolist(),
            "u_scale": read.u_scale.tolist(),
            "theta": None if read.theta is None else read.theta.tolist(),
            "lam": read.lam, "holdout": read.holdout, "note": read.note,
            "constant": read.constant, "select": read.select}


def from_plain(plain: dict) -> StackedRead:
    """The read `as_plain` wrote."""
    theta = plain["theta"]
    return StackedRead(state=plain["state"], u_mean=np.asarray(plain["u_mean"], np.float64),
                       u_scale=np.asarray(plain["u_scale"], np.float64),
                       theta=None if theta is None else np.asarray(theta, np.float64),
                       lam=plain["lam"], holdout=dict(plain["holdout"]), note=plain["note"],
                       constant=bool(plain["constant"]),
                       select=plain.get("select", "holdout"))   # absent before select


def save_read(path: Path, read: StackedRead) -> bool:
    """Write the read atomically; False (with a warning) where it cannot be written."""
    blob = json.dumps(as_plain(read), indent=1).encode()
    try:
        write_atomic(path, lambda f: f.write(blob))
    except OSError as exc:
        log.warning("stacked read not cached (%s: %s); it is fitted again next time",
                    path, exc.strerror or exc)
        return False
    return True


def load_read(path: Path) -> StackedRead | None:
    """The cached read, or None (with a warning) where the file is unreadable or stale."""
    try:
        plain = json.loads(path.read_text())
        if plain.get("format") != READ_FORMAT:
            raise ValueError(f"format {plain.get('format')!r}, not {READ_FORMAT}")
        return from_plain(plain)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: not a usable cached stacked read (%s); fitting it again", path, exc)
        return None
