"""The run record written as config.json: the config, the data fingerprint, the split, the
package versions and the machine, everything needed to rerun an experiment and to know what
it ran on."""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import sys
import types
import typing
from dataclasses import asdict, is_dataclass

from storm_bt.data import Panel
from storm_bt.features.dataset import Split
from storm_bt.runtime import machine_description
from storm_bt.trees import plain

#: Packages whose versions are recorded with every run.
RECORDED_PACKAGES = ("storm_bt", "numpy", "pandas", "torch", "backtrader", "cvxpy", "clarabel",
                     "osqp", "scikit-learn", "lightgbm", "quantstats", "skfolio",
                     "stable-baselines3", "gymnasium")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def config_dict(config) -> dict:
    """A config dataclass as plain JSON values (tuples become lists)."""
    return plain(asdict(config) if is_dataclass(config) else dict(config))


def _fits(value, hint) -> bool:
    """Whether a JSON value can stand for a field annotated ``hint``: bool is not a number,
    an int is a float, a list stands for a tuple whose items fit; other hints accept all."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is tuple or origin is tuple:
        items = args[:1] if len(args) == 2 and args[1] is Ellipsis else ()
        return isinstance(value, (list, tuple)) and all(_fits(v, items[0]) for v in value
                                                        if items)
    return True


def _hint_text(hint) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint)


def check_recorded_types(cls, values: dict, where: str = "", owner=None) -> None:
    """Refuse a recorded field whose JSON value cannot be the field's type (a hand-edited
    config.json: ``"cost_bps": "ten"``, ``"tickers": "AAPL"``, ``"rebalance": 2.5``), naming
    the field (``where`` prefixes a nested record's fields, ``owner`` is the config the
    message names), before anything is built from it; unknown fields are left to the
    constructor's own error."""
    from storm_bt.errors import StormBtError

    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if name in hints and not _fits(value, hints[name]):
            raise StormBtError(f"not a {(owner or cls).__name__} as recorded in config.json: "
                               f"{where}{name}={value!r} does not fit its type "
                               f"{_hint_text(hints[name])}; fix the file or rerun from the "
                               "command line")


def config_from_dict(cls, values: dict, tuple_fields: tuple[str, ...] = ()):
    """Rebuild a config dataclass from its recorded form (`config_dict`, JSON lists).

    The nested ``data`` (`DataConfig`) and ``model_settings`` (`ModelSettings`) are rebuilt
    too; ``tuple_fields`` name the list fields that the config holds as tuples. Every
    field's value is checked against its annotation first (`check_recorded_types`).
    """
    from storm_bt.errors import StormBtError
    from storm_bt.experiments.data import DataConfig
    from storm_bt.models.registry import ModelSettings

    values = dict(values)
    for nested_cls, name in ((DataConfig, "data"), (ModelSettings, "model_settings")):
        if not isinstance(values.get(name, {}), dict):
            raise StormBtError(f"not a {cls.__name__} as recorded in config.json: {name} is "
                               "not an object")
        check_recorded_types(nested_cls, values.get(name, {}), f"{name}.", cls)
    check_recorded_types(cls, {k: v for k, v in values.items()
                               if k not in ("data", "model_settings")})
    try:
        data = dict(values.pop("data", {}))
        if data.get("tickers") is not None:
            data["tickers"] = tuple(data["tickers"])
        nested = {"data": DataConfig(**data),
                  "model_settings": ModelSettings(**values.pop("model_settings", {}))}
        tuples = {k: tuple(values[k]) for k in tuple_fields if values.get(k) is not None}
        return cls(**{**values, **tuples, **nested})
    except TypeError as exc:
        raise StormBtError(f"not a {cls.__name__} as recorded in config.json: {exc}") from None


def run_record(command: str, config, panel: Panel, split: Split, **extra) -> dict:
    """All that is needed to rerun: the command, its config, data fingerprint, versions."""
    return {
        "command": command,
        "config": config_dict(config),
        "argv": sys.argv[1:],
        "data": panel.describe(),
        "split": split.describe(),
        "versions": package_versions(),
        "machine": machine_description(),
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        **extra,
    }
