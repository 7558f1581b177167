"""read_cache: a fitted stacked read saved beside its network's checkpoint and reused."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch

import storm_bt.models.storm.predictor as storm_predictor
from test_storm_stacked_read import _data_with_characteristics, _inputs
from storm_bt.models.storm.predictor import StormPredictor
from storm_bt.models.storm.read_cache import (as_plain, from_plain, load_read, read_key,
                                              save_read)
from storm_bt.models.storm.stacked_read import fit_stacked_read

torch.set_num_threads(1)


def _fit(cache_dir, **kw):
    data, split = _data_with_characteristics()
    predictor = StormPredictor(preset="tiny", seed=1, epochs=1, cache_dir=cache_dir,
                               stacked_read="token", **kw).fit(data, split)
    return predictor, data, split


def _no_fit(*args, **kwargs):
    raise AssertionError("the read was fitted again instead of read from the cache")


def test_a_read_round_trips_exactly_through_its_file(tmp_path):
    inputs, _ = _inputs(signal=0.5)
    read = fit_stacked_read("token", inputs)
    assert read.theta is not None
    path = tmp_path / "net.pt.read-0.json"
    assert save_read(path, read)
    back = load_read(path)
    np.testing.assert_array_equal(back.theta, read.theta)
    np.testing.assert_array_equal(back.scores(inputs), read.scores(inputs))
    assert back.summary() == read.summary() and as_plain(from_plain(as_plain(read))) == \
        as_plain(read)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]      # no temporary file left


def test_a_cached_network_reuses_its_read_and_predicts_the_same(tmp_path, monkeypatch):
    first, data, split = _fit(tmp_path)
    reads = list(tmp_path.glob("*.read-*.json"))
    assert len(reads) == 1 and reads[0].name.startswith(first.checkpoint_file.name)
    monkeypatch.setattr(storm_predictor, "fit_stacked_read", _no_fit)
    second, _, _ = _fit(tmp_path)
    assert second.source == str(first.checkpoint_file)
    np.testing.assert_array_equal(second.stacked.theta, first.stacked.theta)
    assert second.config() == first.config()
    pd.testing.assert_frame_equal(second.predict(data, *split.test),
                                  first.predict(data, *split.test))


def test_another_setting_network_or_retrain_fits_its_own_read(tmp_path, monkeypatch):
    first, data, _ = _fit(tmp_path)
    key = read_key(first.fit_key, first.model, data.characteristics, "token", True)
    assert key != read_key(first.fit_key, first.model, data.characteristics, "market", True)
    assert key != read_key(first.fit_key, first.model, data.characteristics, "token", False)
    assert key != read_key(first.fit_key, first.model, -data.characteristics, "token", True)
    with torch.no_grad():                       # the same key, a network trained otherwise
        next(first.model.parameters()).add_(1e-6)
    assert key != read_key(first.fit_key, first.model, data.characteristics, "token", True)

    calls = []
    monkeypatch.setattr(storm_predictor, "fit_stacked_read",
                        lambda *a, **k: calls.append(1) or fit_stacked_read(*a, **k))
    _fit(tmp_path, stacked_constant=False)
    assert len(calls) == 1 and len(list(tmp_path.glob("*.read-*.json"))) == 2
    _fit(tmp_path, force_retrain=True)
    assert len(calls) == 2


def test_a_bad_or_unwritable_read_file_costs_a_refit_and_a_warning(tmp_path, caplog):
    first, _, _ = _fit(tmp_path)
    (path,) = tmp_path.glob("*.read-*.json")
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        again, _, _ = _fit(tmp_path)
    assert "not a usable cached stacked read" in caplog.text
    np.testing.assert_array_equal(again.stacked.theta, first.stacked.theta)
    assert load_read(path) is not None                               # written anew

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with caplog.at_level(logging.WARNING):
        assert not save_read(blocked / "x.read-0.json", first.stacked)
    assert "stacked read not cached" in caplog.text



def test_the_read_key_hashes_characteristics_in_blocks_as_one_float64_copy_would():
    """`read_key` digests the characteristics a block of rows at a time; its key equals
    the one of the earlier digest of a single float64 copy (cached reads keep their keys),
    for float32, float64, non-contiguous and one-row input; any changed value changes it."""
    import hashlib
    import json

    from storm_bt.models.storm import read_cache

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))

    def single_copy_key(chars):
        digest = hashlib.sha256()
        digest.update(str(chars.shape).encode())
        digest.update(np.ascontiguousarray(chars, dtype=np.float64).tobytes())
        fields = {"format": read_cache.READ_FORMAT, "network": "k",
                  "weights": read_cache.weights_digest(net), "characteristics": digest.hexdigest(),
                  "state": "market", "constant": True,
                  "lambdas": [float(x) for x in read_cache.LAMBDAS],
                  "holdout_years": int(read_cache.HOLDOUT_YEARS)}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    net = Net()
    base = np.random.default_rng(0).normal(size=(3000, 40, 12)).astype(np.float32)
    assert base.nbytes * 2 > 1 << 23  # hashed in several blocks
    for chars in (base, base.astype(np.float64), base[::2, :, 1::2], base[:1]):
        assert read_key("k", net, chars, "market", True) == single_copy_key(chars)
    changed = base.copy()
    changed[-1, -1, -1] += 1e-3
    assert read_key("k", net, changed, "market", True) != read_key("k", net, base, "market", True)
