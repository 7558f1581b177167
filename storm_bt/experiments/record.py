"""The run record written as config.json: the config, the data fingerprint, the split, the
package versions and the machine, everything needed to rerun an experiment and to know what
it ran on."""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import sys
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


def config_from_dict(cls, values: dict, tuple_fields: tuple[str, ...] = ()):
    """Rebuild a config dataclass from its recorded form (`config_dict`, JSON lists).

    The nested ``data`` (`DataConfig`) and ``model_settings`` (`ModelSettings`) are rebuilt
    too; ``tuple_fields`` name the list fields that the config holds as tuples.
    """
    from storm_bt.errors import StormBtError
    from storm_bt.experiments.data import DataConfig
    from storm_bt.models.registry import ModelSettings

    values = dict(values)
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
