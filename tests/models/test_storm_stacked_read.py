"""stacked_read: a read of the characteristics weighted by the day's state, fitted after
training on the training period alone, with the network frozen."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from planted import planted_feature_set
from storm_bt.errors import StormBtError
from storm_bt.features.dataset import Split
from storm_bt.models.storm import StormModel, tiny
from storm_bt.models.storm.predictor import StormPredictor, StormTSPredictor
from storm_bt.models.storm.stacked_read import (StackedInputs, _centred, _moments, _solve,
                                                fit_stacked_read)
from storm_bt.models.storm.synthetic import random_batch

torch.set_num_threads(1)

K, D_U = 4, 3


def _inputs(seed: int = 0, n_days: int = 900, n_stocks: int = 12, signal: float = 1.0,
            noise: float = 1.0, theta: np.ndarray | None = None):
    """Random mu, tokens and characteristics; y = mu + signal (w + V u_t)'(c - cbar_t) + noise,
    z-scored per date. Returns (inputs, theta)."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2010-01-01", periods=n_days)
    token = rng.standard_normal((n_days, D_U))
    chars = rng.standard_normal((n_days, n_stocks, K))
    mu = 0.3 * rng.standard_normal((n_days, n_stocks))
    theta = rng.standard_normal((1 + D_U, K)) if theta is None else theta
    v = np.concatenate([np.ones((n_days, 1)), token - token.mean(axis=0)], axis=1)
    c = _centred(chars, np.ones((n_days, n_stocks), bool))
    y = mu + signal * np.einsum("nk,nsk->ns", v @ theta, c) \
        + noise * rng.standard_normal((n_days, n_stocks))
    y = (y - y.mean(axis=1, keepdims=True)) / y.std(axis=1, keepdims=True)
    market = rng.standard_normal(n_days)
    return StackedInputs(dates, mu, token, chars, market, y), theta


def test_the_moments_give_the_ridge_of_the_explicit_design():
    """sum_t (v v') (x) (C'C) and sum_t v (x) C'r equal X'X and X'r of the (date, stock)
    design x = v_t (x) c_s, so theta is the ridge solution of that design."""
    rng = np.random.default_rng(3)
    v = rng.standard_normal((20, 1 + D_U))
    c = rng.standard_normal((20, 7, K))
    r = rng.standard_normal((20, 7))
    x = np.einsum("ni,nsk->nsik", v, c).reshape(-1, (1 + D_U) * K)
    xtx, xtr = _moments(v, c, r)
    np.testing.assert_allclose(xtx, x.T @ x, rtol=1e-10)
    np.testing.assert_allclose(xtr, x.T @ r.reshape(-1), rtol=1e-10)
    lam, n = 0.1, x.shape[0]
    expected = np.linalg.solve(x.T @ x + lam * n * np.eye(x.shape[1]), x.T @ r.reshape(-1))
    np.testing.assert_allclose(_solve(xtx, xtr, n, lam, K).reshape(-1), expected, rtol=1e-8)


def test_a_planted_read_is_recovered_and_raises_the_rank_ic():
    inputs, theta = _inputs(signal=0.5)
    read = fit_stacked_read("token", inputs)
    assert read.lam is not None and read.holdout[f"{read.lam:g}"] > read.holdout["none"] + 0.05
    scale = np.linalg.norm(theta) / np.linalg.norm(read.theta)    # y was z-scored
    np.testing.assert_allclose(read.theta * scale, theta, atol=0.15 * np.abs(theta).max())
    fresh, _ = _inputs(seed=1, theta=theta, signal=0.5)          # new dates, same read
    ic = lambda s: np.mean([np.corrcoef(a.argsort().argsort(), b.argsort().argsort())[0, 1]
                            for a, b in zip(s, fresh.y)])        # noqa: E731
    assert ic(read.scores(fresh)) > ic(fresh.mu) + 0.1


def test_no_read_is_kept_when_the_model_already_explains_the_label():
    """y = mu exactly: the residual is 0, every lambda ties with no read, and no read wins
    ties, so the scores are mu itself."""
    inputs, _ = _inputs(signal=0.0, noise=0.0)
    inputs.mu = inputs.y.copy()
    read = fit_stacked_read("token", inputs)
    assert read.theta is None and read.lam is None
    np.testing.assert_array_equal(read.scores(inputs), inputs.mu)


def test_the_market_state_is_standardised_on_the_training_dates():
    inputs, _ = _inputs(signal=0.0)
    inputs.market = 0.01 + 0.02 * inputs.market
    read = fit_stacked_read("market", inputs)
    assert read.u_mean == pytest.approx(inputs.market.mean())
    assert read.u_scale == pytest.approx(inputs.market.std())
    short, _ = _inputs(n_days=300)
    read = fit_stacked_read("token", short)              # too short: no read, and why
    assert read.theta is None and "too short to hold out" in read.summary()["note"]
    np.testing.assert_array_equal(read.scores(short), short.mu)


def _data_with_characteristics(n_days: int = 820):
    data = planted_feature_set(n_days=n_days)
    rng = np.random.default_rng(5)
    data.characteristics = rng.standard_normal((n_days, len(data.tickers), K)).astype(np.float32)
    data.labels = data.labels + 0.02 * data.characteristics[:, :, 0]   # a read to find
    d = data.dates
    return data, Split(d[0], d[700], d[760], d[-1])


def test_the_read_sees_the_training_period_only_and_a_date_t_score_reads_t_only():
    """Perturbing every label, feature and characteristic after the training period leaves
    the fitted read unchanged; perturbing them after date t leaves the scores up to t as
    they were. The network's weights are the same fit with and without the read."""
    data, split = _data_with_characteristics()
    kw = dict(preset="tiny", seed=1, epochs=1, cache_dir=None)
    plain = StormPredictor(**kw).fit(data, split)
    stacked = StormPredictor(stacked_read="token", **kw).fit(data, split)
    for a, b in zip(plain.model.state_dict().values(), stacked.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert stacked.stacked.theta is not None and "stacked_read" in stacked.config()
    early = stacked.predict(data, data.dates[0], data.dates[5])    # no full window yet
    assert early.shape == (6, len(data.tickers)) and early.isna().all().all()

    after = data.dates > split.train[1]
    changed, _ = _data_with_characteristics()
    assert not np.isnan(changed.labels[after][:-1]).all()
    rng = np.random.default_rng(9)
    changed.labels[after] = rng.standard_normal(changed.labels[after].shape)
    changed.features[after] += 1.0
    changed.characteristics[after] *= -1.0
    other = StormPredictor(stacked_read="token", **kw).fit(changed, split)
    assert other.stacked.lam == stacked.stacked.lam
    np.testing.assert_array_equal(other.stacked.theta, stacked.stacked.theta)

    t = data.dates[780]
    later = data.dates > t
    cut, _ = _data_with_characteristics()
    cut.features[later] += 2.0
    cut.characteristics[later] *= -1.0
    cut.labels[later] = 0.0
    before = stacked.predict(data, split.test[0], data.dates[-1])
    moved = stacked.predict(cut, split.test[0], data.dates[-1])
    pd.testing.assert_frame_equal(moved.loc[:t], before.loc[:t])
    assert not moved.loc[moved.index > t].equals(before.loc[before.index > t])


def test_the_token_is_the_cs_branchs_last_day_and_the_setting_is_never_keyed():
    config = tiny.with_data(6, 12, ("open", "high", "low", "close", "adj_close"))
    batch = random_batch(config, n=3)
    torch.manual_seed(0)
    model = StormModel(config).eval()
    mu, token = model.predict_with_day_token(batch)
    torch.testing.assert_close(mu, model.predict(batch))
    torch.testing.assert_close(token, model._encode(batch).z["cs"][:, -1])
    assert StormModel(replace(config, branches="ts")).eval().predict_with_day_token(batch)[1] \
        is None

    data, split = _data_with_characteristics()

    def key(cls, **kw):
        return cls(preset="small", seed=1, cache_dir=None, **kw)._payload_expected(data,
                                                                                   split)["key"]

    assert key(StormPredictor) == key(StormPredictor, stacked_read="token") \
        == key(StormPredictor, stacked_read="market")
    assert key(StormTSPredictor) == key(StormTSPredictor, stacked_read="market")
    with pytest.raises(StormBtError, match="stacked_read='token' reads the CS branch"):
        StormTSPredictor(preset="tiny", stacked_read="token")
    with pytest.raises(StormBtError, match="stacked_read"):
        StormPredictor(preset="tiny", stacked_read="sector")


def test_small_stacks_the_market_read_on_storm_and_storm_cs_and_storm_ts_goes_without():
    """D45: the read weighted by the market's day is part of the cross-sectional view."""
    from storm_bt.models.storm.predictor import StormCSPredictor

    def state(cls, preset="small", **kw):
        return cls(preset=preset, cache_dir=None, **kw).model_config["stacked_read"]

    assert state(StormPredictor) == state(StormCSPredictor) == "market"
    assert state(StormTSPredictor) == "none"
    assert state(StormTSPredictor, stacked_read="market") == "market"
    assert state(StormPredictor, stacked_read="none") == "none"
    assert {state(StormPredictor, preset) for preset in ("tiny", "paper", "parity")} == {"none"}


def test_small_chooses_the_reads_penalty_on_validation():
    """D46: in `small` the read's penalty (or no read) is chosen on the validation period;
    the hold-out choice (D45) stays one setting away."""
    from storm_bt.models.storm.predictor import StormCSPredictor

    def select(cls, preset="small", **kw):
        return cls(preset=preset, cache_dir=None, **kw).model_config["stacked_select"]

    assert select(StormPredictor) == select(StormCSPredictor) == "valid"
    assert select(StormPredictor, stacked_select="holdout") == "holdout"
    assert select(StormPredictor, "tiny") == "holdout"


def test_without_the_constant_the_read_is_the_days_term_alone():
    """theta = V' (d_u x K): a planted read with w = 0 is recovered, and a planted constant
    tilt alone (V = 0) is left out, where the read with its constant finds it."""
    theta = np.random.default_rng(2).standard_normal((1 + D_U, K))
    day_only = theta.copy()
    day_only[0] = 0.0
    inputs, _ = _inputs(signal=0.5, theta=day_only)
    read = fit_stacked_read("token", inputs, constant=False)
    assert read.theta.shape == (D_U, K) and read.summary()["w"] is None
    scale = np.linalg.norm(day_only) / np.linalg.norm(read.theta)
    np.testing.assert_allclose(read.theta * scale, day_only[1:],
                               atol=0.15 * np.abs(day_only).max())
    tilt = np.zeros_like(theta)
    tilt[0] = theta[0]
    inputs, _ = _inputs(signal=0.5, theta=tilt)
    without = fit_stacked_read("token", inputs, constant=False)
    with_constant = fit_stacked_read("token", inputs)
    assert with_constant.holdout[f"{with_constant.lam:g}"] > with_constant.holdout["none"] + 0.05
    assert without.theta is None or max(without.holdout[k] for k in without.holdout
                                        if k != "none") < without.holdout["none"] + 0.01
    data, split = _data_with_characteristics()
    assert StormPredictor(preset="small", cache_dir=None, stacked_constant=False) \
        ._payload_expected(data, split)["key"] == \
        StormPredictor(preset="small", cache_dir=None)._payload_expected(data, split)["key"]


def test_the_penalty_can_be_chosen_on_the_validation_period():
    """select: each lambda is fitted on the whole training period and judged on the
    validation inputs. A read planted in the training period but absent from the validation
    period is left out there, where the training period's own last years would keep it;
    where the validation period carries the read too, the chosen theta is the whole
    period's ridge for the chosen lambda."""
    train, theta = _inputs(signal=0.5)
    gone, _ = _inputs(seed=4, signal=0.0, n_days=300)
    kept = fit_stacked_read("token", train)
    assert kept.lam is not None and kept.select == "holdout"
    dropped = fit_stacked_read("token", train, select=gone)
    assert dropped.theta is None and dropped.select == "valid"
    assert set(dropped.holdout) == set(kept.holdout)

    same, _ = _inputs(seed=5, signal=0.5, theta=theta, n_days=300)
    read = fit_stacked_read("token", train, select=same)
    assert read.lam is not None and read.summary()["select"] == "valid"
    assert read.holdout[f"{read.lam:g}"] == max(read.holdout.values())
    labelled = np.isfinite(train.y) & np.isfinite(train.mu)
    u = train.token - read.u_mean
    v = np.concatenate([np.ones((len(u), 1)), u], axis=1)
    c = _centred(train.chars, labelled)
    xtx, xtr = _moments(v, c, np.where(labelled, train.y - train.mu, 0.0))
    np.testing.assert_allclose(read.theta, _solve(xtx, xtr, labelled.sum(), read.lam, K),
                               rtol=1e-10)


def test_a_read_chosen_on_validation_reads_nothing_after_it_and_keys_its_cache():
    """stacked_select="valid": perturbing everything after the validation period leaves the
    read as it was; the network's checkpoint key is the same either way; the read's cache
    key differs from the hold-out read's."""
    from storm_bt.models.storm.read_cache import read_key

    data, split = _data_with_characteristics()
    kw = dict(preset="tiny", seed=1, epochs=1, cache_dir=None, stacked_read="token")
    read = StormPredictor(stacked_select="valid", **kw).fit(data, split)
    assert read.stacked.select == "valid" and read.config()["stacked_read"]["select"] == "valid"
    after = data.dates > split.valid[1]
    changed, _ = _data_with_characteristics()
    changed.labels[after] = np.random.default_rng(9).standard_normal(changed.labels[after].shape)
    changed.features[after] += 1.0
    changed.characteristics[after] *= -1.0
    other = StormPredictor(stacked_select="valid", **kw).fit(changed, split)
    assert other.stacked.lam == read.stacked.lam and other.stacked.holdout == read.stacked.holdout
    if read.stacked.theta is not None:
        np.testing.assert_array_equal(other.stacked.theta, read.stacked.theta)

    def key(**extra):
        return StormPredictor(preset="small", seed=1, cache_dir=None, **extra)._payload_expected(
            data, split)["key"]

    assert key(stacked_select="holdout") == key(stacked_select="valid")
    args = ("net", read.model, data.characteristics, "token", True)
    assert read_key(*args, select="holdout") != read_key(*args, select="valid")
    with pytest.raises(StormBtError, match="stacked_select"):
        StormPredictor(preset="tiny", stacked_select="test")
