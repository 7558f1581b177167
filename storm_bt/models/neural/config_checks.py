"""Range checks for the model configs, so a bad setting (from a preset edit or ``--set``) is
refused when the config is built, naming the field, instead of ending in a torch traceback
after the data has loaded, or silently training a model whose loss rewards itself (a
negative loss weight).

Each check raises `StormBtError` as ``"<Config>.<field>=<value>: <what is allowed>"``.
"""
from __future__ import annotations

import math

from storm_bt.errors import StormBtError


def _refuse(config, name: str, allowed: str) -> StormBtError:
    return StormBtError(f"{type(config).__name__}.{name}={getattr(config, name)!r}: {allowed}")


def at_least(config, minimum: int, *names: str) -> None:
    """Each field is a number >= ``minimum`` (widths, depths, counts)."""
    for name in names:
        value = getattr(config, name)
        if not math.isfinite(value) or value < minimum:
            raise _refuse(config, name, f"must be >= {minimum}")


def not_negative(config, *names: str) -> None:
    """Each field is a finite number >= 0 (loss weights, thresholds; 0 turns a term off)."""
    for name in names:
        value = getattr(config, name)
        if not math.isfinite(value) or value < 0:
            raise _refuse(config, name, "must be a finite number >= 0")


def positive(config, *names: str) -> None:
    """Each field is a finite number > 0 (temperatures, ratios)."""
    for name in names:
        value = getattr(config, name)
        if not math.isfinite(value) or value <= 0:
            raise _refuse(config, name, "must be a finite number > 0")


def dropout_rate(config, *names: str) -> None:
    """Each field is a probability in [0, 1)."""
    for name in names:
        value = getattr(config, name)
        if not 0.0 <= value < 1.0:
            raise _refuse(config, name, "use a dropout rate in [0, 1)")


def one_of(config, name: str, choices) -> None:
    """The field is one of ``choices``."""
    if getattr(config, name) not in choices:
        raise _refuse(config, name, f"choose one of {', '.join(map(str, choices))}")


def divisible(config, name: str, by: str) -> None:
    """Field ``name`` is a multiple of field ``by`` (a width split into heads)."""
    if getattr(config, name) % getattr(config, by):
        raise _refuse(config, name, f"must be divisible by {by}={getattr(config, by)}")
