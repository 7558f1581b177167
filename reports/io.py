"""Writing run outputs safely: every file appears whole or not at all.

A file is written to a hidden temporary name in its destination folder and then moved over
the destination with `os.replace`, which is atomic on one file system: a crash or an error
half-way leaves the old file (or none), never a truncated one. Everyone writes outputs
through these helpers. A run stages all its files (`staged_outputs`) and moves them into its
folder only once every one is written.

Folders that cannot be created or written raise `StormBtError` naming the path and the fix;
so do writes that fail for the destination's sake (permission, no space, quota, read-only
file system) and a run whose output name is taken by a folder (or an output folder's by a
file), which is found before any of the run's files moves.
"""
from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import math
import os
import secrets
import shutil
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from storm_bt.errors import StormBtError, os_reason

#: The fix suggested when an output folder is unusable (the CLI's output flag).
DEFAULT_HINT = "choose another --out"
#: OS errors of a writer that are the destination's fault (full disk, quota, read-only file
#: system, file too large), not the program's: they become `StormBtError`, as permission
#: errors do.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})
#: Names (glob patterns) of what a run of `portfolio`, `factors` or `trading` writes into its
#: folder. When a run's files are moved into a folder (`staged_outputs`), those of an earlier
#: run there that this run did not write are removed, so the folder never mixes two runs
#: (e.g. a two-seed run's ensembles.csv beside a one-seed run's factors.csv); other files
#: stay.
RUN_OUTPUTS = (
    "config.json", "predictions.csv", "weights.csv", "equity.csv", "equity.png",
    "metrics.json", "tearsheet.html", "seeds.csv", "seeds.md", "seed-*",
    "factors.csv", "factors.md", "daily_ic.csv", "ensembles.csv", "ensemble_daily_ic.csv",
    "factor_sheets.html", "factor_sheets", "trading.csv", "trading.md", "tearsheet_*.html",
)
WRITE_PROBE_PREFIX = ".write-probe-"
"""Name prefix of the probe file `ensure_writable_dir` writes and removes at once; another
process's probe may be seen for a moment, so it never counts as a file in the folder."""


def _cannot_write(path: Path, reason: str, hint: str) -> StormBtError:
    return StormBtError(f"cannot write to {path}: {reason}; {hint}")


def _make_dir(path: Path, hint: str) -> Path:
    """Create `path` (and its parents); map failures to StormBtError."""
    if path.exists() and not path.is_dir():
        raise _cannot_write(path, "it is a file, not a folder", hint)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        # A parent that is a file shows up as "not a directory" or "file exists".
        raise _cannot_write(path, os_reason(exc), hint) from None
    return path


def ensure_writable_dir(path: str | os.PathLike, hint: str = DEFAULT_HINT) -> Path:
    """Create the folder `path` if needed and check that a file can be written in it.

    The check writes and removes a small probe file, so it also catches read-only file
    systems and ACLs that permission bits do not show.

    Raises:
        StormBtError: e.g. "cannot write to runs/x: permission denied; choose another --out".
    """
    folder = _make_dir(Path(path), hint)
    probe = folder / f"{WRITE_PROBE_PREFIX}{secrets.token_hex(4)}"
    try:
        with open(probe, "x"):
            pass
    except OSError as exc:
        raise _cannot_write(folder, os_reason(exc), hint) from None
    probe.unlink(missing_ok=True)
    return folder


def check_writable_dir(path: str | os.PathLike, hint: str = DEFAULT_HINT) -> Path:
    """Check that the folder `path` could be created and written, and leave no trace.

    Like `ensure_writable_dir`, but the folders it had to create are removed again, so a run
    that fails later leaves no empty output folder behind; `staged_outputs` creates it when
    the files are written.
    """
    path = Path(path)
    missing = []
    parent = path
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    try:
        return ensure_writable_dir(path, hint)
    finally:
        for folder in missing:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()


def _flush_to_disk(path: Path) -> None:
    """fsync the closed file `path`, so its bytes reach the disk before it is renamed."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, hint: str = DEFAULT_HINT) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success flush it to disk and move it onto
    `path`.

    The temporary name keeps the destination's suffix (writers such as matplotlib read the
    format from it). The file is fsynced before the rename, as the checkpoint writer does, so
    after a power cut the destination holds the old file or the whole new one, whichever
    writer (pandas, matplotlib, quantstats) filled it. If the body raises, the temporary file
    is removed and the exception propagates; the destination is untouched.

    Example::

        with atomic_output("runs/x/report.html") as tmp:
            render(tmp)
    """
    dest = Path(path)
    _make_dir(dest.parent, hint)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp{dest.suffix}")
    try:
        yield tmp
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, PermissionError) or exc.errno in STORAGE_ERRNOS:
            raise _cannot_write(dest, os_reason(exc), hint) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not tmp.exists():
        raise RuntimeError(f"nothing was written for {dest}")
    try:
        _flush_to_disk(tmp)
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _cannot_write(dest, os_reason(exc), hint) from None


@contextlib.contextmanager
def staged_outputs(folder: str | os.PathLike, hint: str = DEFAULT_HINT) -> Iterator[Path]:
    """Yield a hidden staging folder inside `folder`; on success move its files into `folder`.

    A run writes all its outputs into the staging folder; only when every one of them is
    written are they moved (each by `os.replace`) beside each other, and then an earlier
    run's outputs (`RUN_OUTPUTS`) that this run did not write are removed. If the body
    raises, the staging folder is removed and `folder` keeps what it had: a failed run adds
    no file (and no folder, when this created it).
    """
    created = not Path(folder).exists()
    dest = ensure_writable_dir(folder, hint)
    stage = dest / f".staging-{secrets.token_hex(4)}"
    _make_dir(stage, hint)
    done = False
    try:
        yield stage
        items = sorted(stage.iterdir())
        for item in items:   # every clash is found before any file moves
            _check_replaceable(item, dest / item.name, hint)
        for item in items:
            target = dest / item.name
            try:
                if item.is_dir() and target.is_dir():  # a folder of outputs replaces the old one
                    shutil.rmtree(target)
                os.replace(item, target)
            except OSError as exc:
                raise _cannot_write(target, os_reason(exc), hint) from None
        _remove_stale_outputs(dest, {item.name for item in items})
        done = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not done:  # a failed run leaves no empty folder behind
            with contextlib.suppress(OSError):
                dest.rmdir()


def _remove_stale_outputs(folder: Path, written: set[str]) -> None:
    """Remove the entries of ``folder`` named like a run's outputs (`RUN_OUTPUTS`) that
    are not among ``written`` (an earlier run's, of another shape or command)."""
    for entry in sorted(folder.iterdir()):
        if entry.name in written or not any(fnmatch.fnmatchcase(entry.name, pattern)
                                            for pattern in RUN_OUTPUTS):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as exc:
            raise _cannot_write(entry, f"an earlier run's output cannot be removed "
                                       f"({os_reason(exc)})", DEFAULT_HINT) from None


def _check_replaceable(item: Path, target: Path, hint: str) -> None:
    """Refuse to move the staged ``item`` onto ``target`` where one is a folder and the
    other is not (``os.replace`` would fail half-way through a run's files)."""
    if not target.exists() and not target.is_symlink():
        return
    if item.is_dir() != (target.is_dir() and not target.is_symlink()):
        kind = "a link" if target.is_symlink() else "a folder" if target.is_dir() else "a file"
        raise StormBtError(f"cannot write to {target}: {kind} of that name is in the way; "
                           f"move it away or {hint}")


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically; return the path."""
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding=encoding, newline="") as fh:
            fh.write(text)
    return Path(path)


def atomic_write_csv(df: pd.DataFrame | pd.Series, path: str | os.PathLike, **kw: Any) -> Path:
    """Write `df.to_csv(path, **kw)` atomically; return the path."""
    with atomic_output(path) as tmp:
        df.to_csv(tmp, **kw)
    return Path(path)


def to_jsonable(obj: Any) -> Any:
    """`obj` as plain JSON types: NaN and +-inf become None, numpy scalars and arrays
    become Python numbers and lists, dates become ISO strings, paths become strings,
    dict keys become strings. Other objects raise TypeError."""
    if obj is None or isinstance(obj, (bool, str, int)) and not isinstance(obj, np.generic):
        return obj
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, pd.Series):
        return to_jsonable({str(k): v for k, v in obj.items()})
    if obj is pd.NaT:
        return None
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot write a {type(obj).__name__} to JSON: {obj!r:.80}")


def atomic_write_json(obj: Any, path: str | os.PathLike, indent: int = 2) -> Path:
    """Write `obj` as JSON (sorted keys, NaN/inf -> null, see `to_jsonable`) atomically."""
    text = json.dumps(to_jsonable(obj), sort_keys=True, indent=indent, allow_nan=False)
    return atomic_write_text(path, text + "\n")
