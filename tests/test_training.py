"""The shared torch training loop and `TorchPredictor`: learning, seeds, cache, no look-ahead."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

from storm_bt.dataset import FeatureSet, Split
from storm_bt.errors import StormBtError
from storm_bt.models import torch_predictor
from storm_bt.models.lstm import LSTMPredictor
from storm_bt.models.training import TrainConfig, train_model, warmup_linear_schedule

torch.set_num_threads(1)

TINY_LSTM = dict(preset="tiny", history=8, hidden=16, epochs=4, batch_size=16, lr=1e-2,
                 num_threads=1)


def planted_feature_set(seed: int = 0, n_days: int = 320, n_stocks: int = 8,
                        n_features: int = 6) -> FeatureSet:
    """Noise features; the next-day return is 1% x feature 5 of the day plus 0.5% noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_days, n_stocks, n_features)).astype(np.float32)
    y = (0.01 * x[:, :, 5] + 0.005 * rng.standard_normal((n_days, n_stocks))).astype(np.float32)
    y[-1] = np.nan
    prices = ["open", "high", "low", "close", "adj_close"]
    return FeatureSet(
        dates=pd.bdate_range("2015-01-01", periods=n_days),
        tickers=tuple(f"S{i}" for i in range(n_stocks)),
        feature_names=prices + [f"f{i}" for i in range(5, n_features)], price_names=prices,
        features=x, price_mean=np.zeros((n_days, n_stocks, 5), np.float32),
        price_std=np.ones((n_days, n_stocks, 5), np.float32), labels=y,
        valid=np.ones((n_days, n_stocks), bool), fingerprint="planted")


def planted_split(data: FeatureSet) -> Split:
    d = data.dates
    return Split(d[0], d[200], d[260], d[-1])


@pytest.fixture(scope="module")
def data() -> FeatureSet:
    return planted_feature_set()


@pytest.fixture(scope="module")
def split(data) -> Split:
    return planted_split(data)


@pytest.fixture(scope="module")
def fitted(data, split) -> LSTMPredictor:
    return LSTMPredictor(cache_dir=None, **TINY_LSTM).fit(data, split)


def test_training_lowers_the_loss_and_finds_the_planted_signal(fitted, data, split):
    epochs = fitted.train_result["epochs"]
    assert epochs[-1]["losses"]["total"] < 0.8 * epochs[0]["losses"]["total"]
    assert fitted.train_result["best_valid_rank_ic"] > 0.3
    pred = fitted.predict(data, *split.test)
    ends = data.date_index(*split.test)[:-1]   # the last day has no label
    rho = [spearmanr(pred.iloc[i], data.labels[e]).statistic for i, e in enumerate(ends)]
    assert np.mean(rho) > 0.3


def test_same_seed_gives_identical_predictions(fitted, data, split):
    again = LSTMPredictor(cache_dir=None, **TINY_LSTM).fit(data, split)
    pd.testing.assert_frame_equal(again.predict(data, *split.test), fitted.predict(data, *split.test))
    other = LSTMPredictor(cache_dir=None, seed=7, **TINY_LSTM).fit(data, split)
    assert not np.allclose(other.predict(data, *split.test), fitted.predict(data, *split.test))


def _no_training(*args, **kwargs):
    raise AssertionError("trained although a matching checkpoint exists")


def test_the_cache_reuses_a_matching_checkpoint(data, split, tmp_path, monkeypatch):
    first = LSTMPredictor(cache_dir=tmp_path, **TINY_LSTM).fit(data, split)
    assert first.source == "trained" and len(list(tmp_path.glob("lstm-*.pt"))) == 1
    monkeypatch.setattr(torch_predictor, "train_model", _no_training)
    second = LSTMPredictor(cache_dir=tmp_path, **TINY_LSTM).fit(data, split)
    assert second.source.endswith(".pt")
    pd.testing.assert_frame_equal(second.predict(data, *split.test), first.predict(data, *split.test))
    # runtime settings do not change what is trained, so they hit the cache too
    LSTMPredictor(cache_dir=tmp_path, **{**TINY_LSTM, "num_threads": 2}).fit(data, split)
    # a training setting, the seed, or the data miss it; --retrain ignores it
    for kwargs, d in [({"lr": 3e-3}, data), ({"seed": 5}, data),
                      ({}, replace(data, features=data.features * 1.5)),
                      ({"force_retrain": True}, data)]:
        with pytest.raises(AssertionError, match="trained although"):
            LSTMPredictor(cache_dir=tmp_path, **{**TINY_LSTM, **kwargs}).fit(d, split)


def test_a_mismatching_explicit_checkpoint_names_the_field(data, split, tmp_path):
    path = tmp_path / "lstm.pt"
    LSTMPredictor(checkpoint=path, cache_dir=None, **TINY_LSTM).fit(data, split)
    assert path.exists()
    with pytest.raises(StormBtError, match=r"model_config\.hidden: checkpoint 16, this run 24"):
        LSTMPredictor(checkpoint=path, cache_dir=None, **{**TINY_LSTM, "hidden": 24}).fit(data, split)
    with pytest.raises(StormBtError, match=r"train_config\.epochs"):
        LSTMPredictor(checkpoint=path, cache_dir=None, **{**TINY_LSTM, "epochs": 2}).fit(data, split)
    other_split = Split(split.train_start, data.dates[210], split.test_start, split.test_end)
    with pytest.raises(StormBtError, match=r"data\.split\.valid_start"):
        LSTMPredictor(checkpoint=path, cache_dir=None, **TINY_LSTM).fit(data, other_split)
    shifted = replace(data, features=data.features + 1.0)
    with pytest.raises(StormBtError, match=r"data\.features"):
        LSTMPredictor(checkpoint=path, cache_dir=None, **TINY_LSTM).fit(shifted, split)


def test_a_checkpoint_loads_with_weights_only(fitted, data, split, tmp_path):
    path = tmp_path / "ckpt.pt"
    LSTMPredictor(checkpoint=path, cache_dir=None, **TINY_LSTM).fit(data, split)
    payload = torch.load(path, weights_only=True)
    assert payload["model_name"] == "lstm"
    assert payload["model_config"]["hidden"] == 16 and payload["history"] == 8
    assert payload["train_config"]["seed"] == 1337
    assert payload["data"]["fingerprint"] == "planted"
    assert payload["data"]["tickers"] == list(data.tickers)
    assert set(payload["state_dict"]) == set(fitted.model.state_dict())
    assert {"torch", "numpy", "storm_bt"} <= set(payload["versions"])


def test_a_corrupt_cached_checkpoint_is_retrained(data, split, tmp_path):
    first = LSTMPredictor(cache_dir=tmp_path, **TINY_LSTM).fit(data, split)
    (path,) = tmp_path.glob("lstm-*.pt")
    path.write_bytes(b"not a checkpoint")
    again = LSTMPredictor(cache_dir=tmp_path, **TINY_LSTM).fit(data, split)
    assert again.source == "trained"
    pd.testing.assert_frame_equal(again.predict(data, *split.test), first.predict(data, *split.test))


def test_predict_uses_no_label(fitted, data, split):
    idx = data.date_index(*split.test)
    scrambled = data.labels.copy()
    scrambled[idx] = np.nan
    scrambled[idx[::2]] = 0.5
    before = fitted.predict(data, *split.test)
    after = fitted.predict(replace(data, labels=scrambled), *split.test)
    pd.testing.assert_frame_equal(before, after)


def test_predict_at_t_ignores_features_after_t(fitted, data, split):
    cut = data.date_index(*split.test)[20]
    future = data.features.copy()
    future[cut + 1:] = 10.0
    before = fitted.predict(data, *split.test)
    after = fitted.predict(replace(data, features=future), *split.test)
    pd.testing.assert_frame_equal(before.iloc[:21], after.iloc[:21])
    assert not np.allclose(before.iloc[21:], after.iloc[21:])


def test_predict_covers_every_date_and_masks_missing_windows_and_stocks(fitted, data):
    valid = data.valid.copy()
    valid[5, 2] = False
    frame = fitted.predict(replace(data, valid=valid), data.dates[0], data.dates[9])
    assert list(frame.index) == list(data.dates[:10])
    assert frame.iloc[:7].isna().all().all()      # history 8: the first full window ends on day 7
    assert frame.iloc[7:].notna().all().all()
    other = fitted.predict(replace(data, valid=valid), data.dates[5], data.dates[5])
    assert np.isnan(other.iloc[0, 2])


def test_the_reported_valid_rank_ic_is_the_restored_models(fitted, data, split):
    """Best-state restore: the kept weights score the logged best valid RankIC, computed
    here independently with scipy over the labelled valid dates."""
    result = fitted.train_result
    assert result["best_valid_rank_ic"] == max(e["valid_rank_ic"] for e in result["epochs"])
    ends = data.sample_ends(*split.valid, history=8)
    pred = fitted.predict(data, *split.valid).loc[data.dates[ends]]
    rho = [spearmanr(pred.iloc[i], data.labels[e]).statistic for i, e in enumerate(ends)]
    assert result["best_valid_rank_ic"] == pytest.approx(np.mean(rho), abs=1e-9)


class _Drifting(torch.nn.Module):
    """Scores w * (the planted feature); its loss is w itself, so training drives w from
    +0.3 through 0 to negative: the valid RankIC is best in the first epoch, then falls."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.3))

    def losses(self, batch):
        return {"total": self.w * 1.0}

    def predict(self, batch):
        return self.w * batch.x[:, -1, :, 5]


def test_early_stopping_restores_the_best_epoch(data, split):
    model = _Drifting()
    cfg = TrainConfig(epochs=20, batch_size=16, lr=0.02, warmup_frac=0.0, weight_decay=0.0,
                      patience=2, num_threads=1, progress=False)
    result = train_model(model, data, split, history=8, cfg=cfg)
    ics = [e.valid_rank_ic for e in result.epochs]
    assert result.best_epoch == 1 and ics[0] > 0.3 and ics[-1] < 0
    assert len(result.epochs) == 3                 # stopped after 2 epochs without a new best
    assert float(model.w.detach()) > 0                     # the epoch-1 weights, not the last ones


def test_the_schedule_warms_up_then_decays_linearly_to_zero():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_linear_schedule(opt, warmup_steps=2, total_steps=6)
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0])


def test_a_range_without_windows_is_a_user_error(data):
    late = Split(data.dates[2], data.dates[5], data.dates[260], data.dates[-1])
    with pytest.raises(StormBtError, match="no training windows"):
        LSTMPredictor(cache_dir=None, **TINY_LSTM).fit(data, late)


# ------------------------------------------------------------------ STORM on real data
@pytest.fixture(scope="module")
def embedded_slice(embedded_panel):
    from storm_bt.dataset import build_feature_set, make_split

    data = build_feature_set(embedded_panel.since("2014-01-01").until("2017-12-31"))
    return data, make_split(data.dates, "2014-01-02", "2016-07-01", "2017-01-03", "2017-12-29")


TINY_STORM = dict(preset="tiny", epochs=3, num_threads=1)


@pytest.fixture(scope="module")
def storm_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("storm_cache")


@pytest.fixture(scope="module")
def tiny_storm(embedded_slice, storm_cache):
    from storm_bt.models.storm_predictor import StormPredictor

    data, split = embedded_slice
    return StormPredictor(cache_dir=storm_cache, **TINY_STORM).fit(data, split)


def test_tiny_storm_lowers_its_training_loss_on_real_data(tiny_storm):
    epochs = tiny_storm.train_result["epochs"]
    assert epochs[-1]["losses"]["total"] < epochs[0]["losses"]["total"]
    assert {"perplexity_cs", "perplexity_ts"} <= set(epochs[-1]["codebook"])


def test_storm_factors_are_per_date_and_read_no_label(tiny_storm, embedded_slice):
    data, split = embedded_slice
    out = tiny_storm.factors(data, *split.test)
    ends = data.sample_ends(*split.test, tiny_storm.history, labelled=False)
    assert list(out["dates"]) == list(data.dates[ends])
    cfg = tiny_storm.model.config
    assert out["codes_cs"].shape == (len(ends), cfg.n_cs_tokens)
    assert out["codes_ts"].shape == (len(ends), cfg.n_ts_tokens)
    assert out["z_ts"].shape == (len(ends), cfg.n_ts_tokens, cfg.d_model)
    assert 0 <= out["codes_ts"].min() and out["codes_ts"].max() < cfg.codebook_size
    no_labels = tiny_storm.factors(replace(data, labels=np.full_like(data.labels, np.nan)),
                                   *split.test)
    for key in ("codes_cs", "codes_ts", "phi", "mu_z"):
        np.testing.assert_array_equal(no_labels[key], out[key])


def test_a_cached_storm_checkpoint_predicts_the_same(tiny_storm, embedded_slice, storm_cache,
                                                     monkeypatch):
    from storm_bt.models.storm_predictor import StormPredictor

    data, split = embedded_slice
    monkeypatch.setattr(torch_predictor, "train_model", _no_training)
    again = StormPredictor(cache_dir=storm_cache, **TINY_STORM).fit(data, split)
    assert again.source.endswith(".pt")
    pd.testing.assert_frame_equal(again.predict(data, *split.test),
                                  tiny_storm.predict(data, *split.test))


def test_storm_variants_keep_their_branches():
    from storm_bt.models.storm_predictor import StormCSPredictor, StormTSPredictor

    assert StormTSPredictor(preset="tiny").model_cfg.branches == "ts"
    assert StormCSPredictor(preset="tiny").model_cfg.branches == "cs"
    with pytest.raises(StormBtError, match="storm-ts uses branches='ts'"):
        StormTSPredictor(preset="tiny", branches="both")
