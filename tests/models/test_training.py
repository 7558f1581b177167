"""The shared torch training loop and `TorchPredictor`: learning, seeds, cache, no look-ahead."""
from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

from storm_bt.features.dataset import FeatureSet, Split, with_label_horizon
from storm_bt.errors import StormBtError
from storm_bt.models.neural import predictor as torch_predictor
from planted import planted_feature_set, planted_split
from storm_bt.models.baselines.lstm import LSTMPredictor
from storm_bt.models.neural.batch import make_batch
from storm_bt.models.neural.training import TrainConfig, train_model, warmup_linear_schedule

torch.set_num_threads(1)

TINY_LSTM = dict(preset="tiny", history=8, hidden=16, epochs=4, batch_size=16, lr=1e-2,
                 num_threads=1)


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


def test_the_recorded_config_names_the_data_the_model_was_sized_to(fitted, data, split, tmp_path):
    assert "data_dims" not in LSTMPredictor(cache_dir=None, **TINY_LSTM).config()
    dims = {"n_stocks": len(data.tickers), "n_features": data.n_features,
            "n_price": len(data.price_names), "price_names": list(data.price_names)}
    assert fitted.config()["data_dims"] == dims
    LSTMPredictor(cache_dir=tmp_path, **TINY_LSTM).fit(data, split)
    reused = LSTMPredictor(cache_dir=tmp_path, **TINY_LSTM).fit(data, split)   # from the cache
    assert reused.source.endswith(".pt") and reused.config()["data_dims"] == dims


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


def test_a_new_weights_version_misses_the_old_checkpoint(data, split, tmp_path, monkeypatch):
    """A code change that alters what a config trains to raises `weights_version`; the
    checkpoints written by the older code are then not reused."""
    LSTMPredictor(cache_dir=tmp_path, **TINY_LSTM).fit(data, split)
    monkeypatch.setattr(torch_predictor, "train_model", _no_training)

    class NewerLSTM(LSTMPredictor):
        weights_version = 2

    assert LSTMPredictor(cache_dir=tmp_path, **TINY_LSTM).fit(data, split).source != "trained"
    with pytest.raises(AssertionError, match="trained although"):
        NewerLSTM(cache_dir=tmp_path, **TINY_LSTM).fit(data, split)
    # An explicit file of the older code is refused, not silently retrained and overwritten.
    path = next(tmp_path.glob("lstm-*.pt"))
    before = path.read_bytes()
    with pytest.raises(StormBtError, match="weights_version: checkpoint 1, this run 2"):
        NewerLSTM(checkpoint=path, cache_dir=None, **TINY_LSTM).fit(data, split)
    assert path.read_bytes() == before
    payload = torch.load(path, weights_only=True)
    del payload["weights_version"]  # as written before the field was recorded
    torch.save(payload, path)
    assert LSTMPredictor(checkpoint=path, cache_dir=None, **TINY_LSTM).fit(data, split).source == str(path)
    with pytest.raises(StormBtError, match="weights_version: checkpoint 1, this run 2"):
        NewerLSTM(checkpoint=path, cache_dir=None, **TINY_LSTM).fit(data, split)


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
    assert payload["machine"]["cpu"] and payload["machine"]["torch_cpu_capability"]


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
    best = result["epochs"][result["best_epoch"] - 1]
    assert result["best_valid_rank_ic"] == best["valid_rank_ic"]
    assert result["best_smoothed_rank_ic"] == max(e["smoothed_rank_ic"] for e in result["epochs"])
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
                      patience=2, select_smooth=1, num_threads=1, progress=False)
    result = train_model(model, data, split, history=8, cfg=cfg)
    ics = [e.valid_rank_ic for e in result.epochs]
    assert result.best_epoch == 1 and ics[0] > 0.3 and ics[-1] < 0
    assert len(result.epochs) == 3                 # stopped after 2 epochs without a new best
    assert float(model.w.detach()) > 0                     # the epoch-1 weights, not the last ones


class _Scripted(torch.nn.Module):
    """Scores c_e * (the planted feature) + noise feature, c_e scripted per epoch through a
    step counter kept in the state dict: raw valid RankIC spikes in epoch 2, crashes in 3,
    then stays moderately good; the 3-epoch mean peaks at the end, the raw IC in epoch 2."""

    SIGNS = (0.05, 1.0, -1.0, 0.4, 0.4, 0.4, 0.4)

    def __init__(self, steps_per_epoch: int):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.steps_per_epoch = steps_per_epoch

    def losses(self, batch):
        self.steps += 1
        return {"total": self.w * 0.0}

    def predict(self, batch):
        epoch = min(int(self.steps) // self.steps_per_epoch, len(self.SIGNS)) - 1
        return self.SIGNS[max(epoch, 0)] * batch.x[:, -1, :, 5] + 0.3 * batch.x[:, -1, :, 0]


def test_selection_uses_the_smoothed_valid_rank_ic_after_warmup(data, split):
    cfg = TrainConfig(epochs=7, batch_size=16, warmup_frac=0.2, patience=None, select_smooth=3,
                      num_threads=1, progress=False)
    n_train = len(data.sample_ends(*split.train, 8))
    result = train_model(_Scripted(n_train // 16), data, split, history=8, cfg=cfg)
    ics = [e.valid_rank_ic for e in result.epochs]
    assert int(np.argmax(ics)) == 1                           # the raw spike in epoch 2
    smoothed = [np.mean(ics[max(0, k - 2): k + 1]) for k in range(7)]
    assert [e.smoothed_rank_ic for e in result.epochs] == pytest.approx(smoothed)
    # warmup covers epoch 1 (0.2 * 7 epochs) and the window fills at epoch 3: the best
    # 3-epoch mean from epoch 3 on is epoch 6's (epochs 4-6), not the raw spike's
    assert result.best_epoch == 3 + int(np.argmax(smoothed[2:])) == 6
    assert result.best_valid_rank_ic == pytest.approx(ics[5])


def test_a_subset_batch_is_the_full_batch_restricted_to_those_stocks(data):
    ends, stocks = np.array([30, 31, 40]), np.array([1, 4, 6])
    full, part = make_batch(data, ends, 8), make_batch(data, ends, 8, stocks)
    for name in ("x", "price_mean", "price_std"):
        assert torch.equal(getattr(part, name), getattr(full, name)[:, :, stocks])
    assert torch.equal(part.y, full.y[:, stocks])
    assert torch.equal(part.label_mask, full.label_mask[:, stocks])
    np.testing.assert_array_equal(full.x.numpy(), data.windows(ends, 8))


class _SeesStocks(torch.nn.Module):
    """Records the number of stocks of every training batch; scores feature 5."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))
        self.seen: list[int] = []

    def losses(self, batch):
        self.seen.append(batch.x.shape[2])
        return {"total": self.w * 0.0}

    def predict(self, batch):
        return self.w * batch.x[:, -1, :, 5]


def test_stocks_per_step_trains_on_subsets_and_still_scores_every_stock(data, split):
    model = _SeesStocks()
    cfg = TrainConfig(epochs=1, batch_size=16, stocks_per_step=3, num_threads=1, progress=False)
    train_model(model, data, split, history=8, cfg=cfg)
    assert model.seen and set(model.seen) == {3}
    lstm = LSTMPredictor(cache_dir=None, stocks_per_step=3, **TINY_LSTM).fit(data, split)
    frame = lstm.predict(data, *split.test)
    assert frame.shape[1] == len(data.tickers) and frame.notna().all().all()
    assert lstm.train_result["best_valid_rank_ic"] > 0.3        # the planted signal, from subsets
    with pytest.raises(StormBtError, match="stocks_per_step"):
        TrainConfig(stocks_per_step=1)


class _SeesLabels(_SeesStocks):
    """Records every training batch's labels."""

    def __init__(self):
        super().__init__()
        self.labels: list[torch.Tensor] = []

    def losses(self, batch):
        self.labels.append(batch.y.clone())
        return super().losses(batch)


def test_label_horizon_trains_on_h_day_returns_and_selects_on_next_day_ones(data, split):
    """With label_horizon=5 every training label is a 5-day forward return of a window
    whose 5 days end inside the train range; validation still scores the next-day return."""
    five = with_label_horizon(data, 5)
    model = _SeesLabels()
    cfg = TrainConfig(epochs=1, batch_size=16, label_horizon=5, num_threads=1, progress=False,
                      diagnostics=False, select_smooth=1)
    result = train_model(model, data, split, history=8, cfg=cfg)
    ends = five.sample_ends(*split.train, 8)
    labels = five.labels[ends]
    assert five.dates[ends.max() + 5] <= split.train[1]
    seen = torch.cat(model.labels).numpy()
    # every row seen is the 5-day label of one training window, never a next-day label
    for row in seen:
        assert np.isclose(labels, row, atol=1e-7).all(axis=1).any()
    assert not any(np.isclose(data.labels[ends], row, atol=1e-7).all(axis=1).any()
                   for row in seen)
    # selection scored the next-day label: feature 5 carries it, so its RankIC is high
    assert result.best_valid_rank_ic > 0.5
    assert "label_horizon" not in TrainConfig().identity()
    assert TrainConfig(label_horizon=5).identity()["label_horizon"] == 5
    with pytest.raises(StormBtError, match="label_horizon"):
        TrainConfig(label_horizon=0)
    # a horizon longer than the train range leaves no sample, and the error says so
    with pytest.raises(StormBtError, match="500-day label .* lower label_horizon"):
        train_model(_SeesLabels(), data, split, history=8, cfg=replace(cfg, label_horizon=500))


def test_the_schedule_warms_up_then_decays_linearly_to_zero():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_linear_schedule(opt, warmup_steps=2, total_steps=6)
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0])


def test_the_optimizer_takes_the_per_parameter_loop_s_steps_bit_for_bit():
    """make_optimizer's multi-tensor AdamW changes speed, not numbers: STORM trained a few
    steps with it holds exactly the weights of the per-parameter loop (fused AdamW does not:
    it rounds differently)."""
    from storm_bt.models.neural.training import make_optimizer, train_step
    from storm_bt.models.storm import StormModel, tiny
    from storm_bt.models.storm.synthetic import random_batch

    config = tiny.with_data(6, 152, ("open", "high", "low", "close", "adj_close"))
    cfg = TrainConfig(lr=1e-2, weight_decay=0.01)

    def weights(optimizer_for) -> torch.Tensor:
        torch.manual_seed(0)
        model = StormModel(config)
        optimizer = optimizer_for(model)
        sched = warmup_linear_schedule(optimizer, 1, 10)
        for step in range(4):
            torch.manual_seed(100 + step)
            train_step(model, random_batch(config), optimizer, sched, cfg.grad_clip)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    loop = weights(lambda m: torch.optim.AdamW(m.parameters(), lr=cfg.lr, betas=cfg.betas,
                                               eps=cfg.eps, weight_decay=cfg.weight_decay,
                                               foreach=False))
    initial = weights(lambda m: torch.optim.SGD(m.parameters(), lr=0.0))
    assert not torch.equal(loop, initial)
    assert torch.equal(weights(lambda m: make_optimizer(m, cfg)), loop)


def test_a_range_without_windows_is_a_user_error(data):
    late = Split(data.dates[2], data.dates[5], data.dates[260], data.dates[-1])
    with pytest.raises(StormBtError, match="no training windows"):
        LSTMPredictor(cache_dir=None, **TINY_LSTM).fit(data, late)


# ------------------------------------------------------------------ STORM on real data
@pytest.fixture(scope="module")
def embedded_slice(embedded_panel):
    from storm_bt.features.dataset import build_feature_set, make_split

    data = build_feature_set(embedded_panel.since("2014-01-01").until("2017-12-31"))
    return data, make_split(data.dates, "2014-01-02", "2016-07-01", "2017-01-03", "2017-12-29")


TINY_STORM = dict(preset="tiny", epochs=3, num_threads=1)


@pytest.fixture(scope="module")
def storm_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("storm_cache")


@pytest.fixture(scope="module")
def tiny_storm(embedded_slice, storm_cache):
    from storm_bt.models.storm.predictor import StormPredictor

    data, split = embedded_slice
    return StormPredictor(cache_dir=storm_cache, **TINY_STORM).fit(data, split)


def test_tiny_storm_lowers_its_training_loss_on_real_data(tiny_storm):
    epochs = tiny_storm.train_result["epochs"]
    assert epochs[-1]["losses"]["total"] < epochs[0]["losses"]["total"]
    assert {"perplexity_cs", "perplexity_ts"} <= set(epochs[-1]["codebook"])


def test_tiny_storm_return_path_gets_a_tenth_of_the_encoder_gradient(tiny_storm):
    """Issue 9: the label terms (posterior fit + prediction path) must move the shared
    encoders, not only reconstruction and the codebooks; logged every epoch."""
    for epoch in tiny_storm.train_result["epochs"]:
        diag = epoch["diagnostics"]
        shares = {k: v for k, v in diag.items() if k.startswith("share_") and k != "share_label"}
        assert sum(shares.values()) == pytest.approx(1.0)
        # the label terms: posterior fit, prediction-path MSE and (D39) its IC loss
        assert "share_ic" in diag
        assert diag["share_label"] == pytest.approx(
            diag["share_ret"] + diag["share_pred"] + diag["share_ic"])
        assert diag["share_label"] >= 0.10, diag
        assert np.isfinite(diag["kl_raw"]) and -1 <= diag["post_rank_ic"] <= 1


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
    from storm_bt.models.storm.predictor import StormPredictor

    data, split = embedded_slice
    monkeypatch.setattr(torch_predictor, "train_model", _no_training)
    again = StormPredictor(cache_dir=storm_cache, **TINY_STORM).fit(data, split)
    assert again.source.endswith(".pt")
    pd.testing.assert_frame_equal(again.predict(data, *split.test),
                                  tiny_storm.predict(data, *split.test))


def test_storm_variants_keep_their_branches():
    from storm_bt.models.storm.predictor import StormCSPredictor, StormTSPredictor

    assert StormTSPredictor(preset="tiny").model_cfg.branches == "ts"
    assert StormCSPredictor(preset="tiny").model_cfg.branches == "cs"
    with pytest.raises(StormBtError, match="storm-ts uses branches='ts'"):
        StormTSPredictor(preset="tiny", branches="both")


def test_valid_stocks_scores_validation_on_a_fixed_seeded_subset(data, split):
    cfg = TrainConfig(epochs=2, batch_size=16, valid_stocks=4, select_smooth=1, num_threads=1,
                      progress=False)
    result = train_model(_SeesStocks(), data, split, history=8, cfg=cfg)
    cols = np.sort(np.random.default_rng([cfg.seed, 3]).choice(8, 4, replace=False))
    ends = data.sample_ends(*split.valid, 8)
    rho = [spearmanr(data.features[e, cols, 5], data.labels[e, cols]).statistic for e in ends]
    assert result.epochs[0].valid_rank_ic == pytest.approx(np.mean(rho), abs=1e-9)
    everyone = [spearmanr(data.features[e, :, 5], data.labels[e]).statistic for e in ends]
    assert result.epochs[0].valid_rank_ic != pytest.approx(np.mean(everyone), abs=1e-6)


@pytest.mark.parametrize("setting, needle", [
    (dict(lr=-1.0), "lr=-1.0"), (dict(lr=float("nan")), "lr=nan"), (dict(eps=0.0), "eps=0.0"),
    (dict(weight_decay=-1.0), "weight_decay=-1.0"), (dict(betas=(0.9, 1.5)), "betas"),
    (dict(betas=(0.9,)), "betas"), (dict(grad_clip=-1.0), "grad_clip=-1.0"),
    (dict(patience=-1), "patience=-1"), (dict(max_train_samples=0), "max_train_samples=0"),
    (dict(num_threads=0), "num_threads=0")])
def test_optimiser_settings_torch_would_refuse_mid_run_are_refused_at_once(setting, needle):
    """Each of these reached torch's optimiser (a ValueError traceback after the data had
    loaded) or was silently read as its default (max_train_samples=0, grad_clip<0)."""
    with pytest.raises(StormBtError, match=re.escape(needle)):
        TrainConfig(**setting)
