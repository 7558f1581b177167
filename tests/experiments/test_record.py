"""storm_bt.experiments.record: a run's config.json rebuilds its config, and a hand-edited
one whose values cannot be the fields' types is refused naming the field and the file."""
from __future__ import annotations

import json

import pytest

from storm_bt.backtest.cli import main
from storm_bt.errors import StormBtError
from storm_bt.experiments import PortfolioConfig
from storm_bt.experiments.record import config_dict


def _recorded(**edits) -> dict:
    values = json.loads(json.dumps(config_dict(PortfolioConfig(ensemble=(1, 2)))))
    for dotted, value in edits.items():
        node = values
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return values


def test_a_recorded_config_rebuilds_the_same_config():
    assert PortfolioConfig.from_dict(_recorded()) == PortfolioConfig(ensemble=(1, 2))
    # an int is a float; None where the field may be None
    assert PortfolioConfig.from_dict(_recorded(cost_bps=5)).cost_bps == 5


@pytest.mark.parametrize("edits, needle", [
    # each of these ended in a ValueError or TypeError traceback, or was misread
    (dict(cost_bps="ten"), "cost_bps='ten' does not fit its type float"),
    (dict(rebalance=2.5), "rebalance=2.5 does not fit its type int"),
    (dict(cash=True), "cash=True does not fit its type float"),       # ran with cash 1.0
    (dict(ensemble=[1.5]), "ensemble=[1.5]"),
    (dict(data__tickers="AAPL"), "data.tickers='AAPL'"),               # read as A, P, L
    (dict(model_settings__threads="two"), "model_settings.threads='two'"),
    (dict(model_settings__overrides="lr=1"), "model_settings.overrides='lr=1'"),
    (dict(data=3), "data is not an object")])
def test_a_value_that_cannot_be_its_fields_type_is_refused_by_name(edits, needle):
    with pytest.raises(StormBtError, match="not a PortfolioConfig as recorded") as error:
        PortfolioConfig.from_dict(_recorded(**edits))
    assert needle in str(error.value)


def test_the_cli_names_the_config_file_in_one_line(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"command": "portfolio", "config": _recorded(cost_bps="ten")}))
    assert main(["portfolio", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --config {path}: ") and "cost_bps='ten'" in err
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()
