"""StormModel: shapes per preset and ablation, sizes independent of the universe, per-stock
TS sequences, label-free and batch-independent predictions, determinism, and that training
lowers the loss."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from storm_bt.errors import StormBtError
from storm_bt.models.neural.batch import Batch
from storm_bt.models.storm import StormConfig, StormModel, paper, small, tiny
from storm_bt.models.storm.synthetic import random_batch

torch.set_num_threads(1)

OHLC = ("open", "high", "low", "close", "adj_close")
DJ30 = small.with_data(29, 152, OHLC)
TINY = tiny.with_data(20, 24, ("close", "adj_close"))   # the embedded sample is close-only


def _model(cfg: StormConfig, seed: int = 0) -> StormModel:
    torch.manual_seed(seed)
    return StormModel(cfg)


def test_small_preset_shapes_on_dj30_sizes():
    model = _model(DJ30)
    batch = random_batch(DJ30)
    f = model.factors(batch)
    assert f["z_cs"].shape == f["q_cs"].shape == (2, 64, 64)
    assert f["z_ts"].shape == f["q_ts"].shape == (2, 4 * 29, 64)   # 64 / 16 blocks (D40)
    assert f["codes_cs"].shape == (2, 64) and f["codes_ts"].shape == (2, 4 * 29)
    # D43: the market tokens are the 4 stock-pooled TS blocks; the CS view enters through
    # the gated fusion
    assert f["phi"].shape == (2, 4, 128)
    assert f["mu_z"].shape == f["sigma_z"].shape == (2, 4)
    assert model.fusion is not None and model.fusion.gates is not None
    assert model.predict(batch).shape == (2, 29)
    with torch.no_grad():
        enc = model._encode(batch)
    assert model.branches["ts"].reconstruct(enc.quantized["ts"].q, 29).shape == (2, 64, 29, 5)
    assert model.branches["cs"].reconstruct(enc.quantized["cs"].q, 29).shape == (2, 64, 10)
    terms = model.losses(batch)
    assert {"total", "commit_cs", "div_ts", "orth_cs", "clip", "recon", "kl", "ret", "pred",
            "ic", "price"} <= set(terms)
    assert all(v.ndim == 0 and torch.isfinite(v) for v in terms.values())


def test_the_ic_loss_is_on_by_default_and_off_in_parity():
    """D39: every preset but parity fits the prediction path's daily correlation with the
    label too; parity keeps the official losses."""
    from storm_bt.models.storm.config import PRESETS

    assert {name: cfg.ic_weight for name, cfg in PRESETS.items()} == \
        {"tiny": 1.0, "small": 1.0, "paper": 1.0, "parity": 0.0}
    batch = random_batch(TINY)
    assert "ic" in _model(TINY).losses(batch)
    assert "ic" not in _model(replace(TINY, ic_weight=0.0)).losses(batch)


def test_tiny_preset_shapes_on_close_only_data():
    model = _model(TINY)
    batch = random_batch(TINY, n=3)
    f = model.factors(batch)
    assert f["phi"].shape == (3, 32 + 4, 64)
    assert f["z_ts"].shape == (3, 4 * 20, 32) and f["codes_ts"].shape == (3, 4 * 20)
    assert model.predict(batch).shape == (3, 20)
    with torch.no_grad():
        q_ts = model._encode(batch).quantized["ts"].q
    assert model.branches["ts"].reconstruct(q_ts, 20).shape == (3, 32, 20, 2)


@pytest.mark.parametrize("branches, tokens", [("ts", 4), ("cs", 64)])
def test_single_branch_ablations(branches, tokens):
    cfg = replace(DJ30, branches=branches, fusion="none", factor_tokens="both")
    model = _model(cfg)
    batch = random_batch(cfg)
    f = model.factors(batch)
    other = "cs" if branches == "ts" else "ts"
    assert f["phi"].shape == (2, tokens, 128)
    assert f"z_{branches}" in f and f"z_{other}" not in f
    terms = model.losses(batch)
    assert "clip" not in terms and f"commit_{other}" not in terms
    assert model.predict(batch).shape == (2, 29)


@pytest.mark.parametrize("ts_input", ["stem", "features"])
@pytest.mark.parametrize("stock_embedding", ["tokens+stem", "tokens"])
@pytest.mark.parametrize("branches", ["both", "ts", "cs"])
def test_every_stem_layout_trains_every_parameter(ts_input, stock_embedding, branches):
    """D37/D38 switches: each layout builds only what it uses (no stem for a TS-only model
    on raw features with token embeddings) and every parameter gets a gradient."""
    cfg = replace(TINY, ts_input=ts_input, stock_embedding=stock_embedding, branches=branches)
    model = _model(cfg)
    model.losses(random_batch(cfg))["total"].backward()
    idle = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert idle == []
    uses_stem = branches != "ts" or ts_input == "stem" or stock_embedding == "tokens+stem"
    assert (model.stem is not None) == uses_stem
    width = {"stem": cfg.stem_dim, "features": cfg.n_features}[ts_input]
    if branches != "cs":
        assert model.branches["ts"].patching.embed.in_features == cfg.ts_patch * width
    assert model.head.stock_embed[0][0].in_features == cfg.stock_dim


def test_the_stock_embedding_ends_with_the_last_days_stem():
    """With stock_embedding="tokens+stem" each stock's embedding is [its TS token summary
    (4d) || mean_t u || u_T], u the stem: the last block is that stock's last-day stem."""
    model = _model(TINY)
    batch = random_batch(TINY)
    with torch.no_grad():
        enc = model._encode(batch)
        u_last = model.stem(batch.x)[:, -1]
    stem_part = enc.stocks[..., -TINY.stem_dim:]
    assert enc.stocks.shape[-1] == 4 * TINY.d_model + 2 * TINY.stem_dim
    torch.testing.assert_close(stem_part, u_last)


def test_cross_fusion_runs_and_trains():
    cfg = replace(TINY, fusion="cross")
    model = _model(cfg)
    batch = random_batch(cfg)
    model.losses(batch)["total"].backward()
    grads = [p.grad for p in model.fusion.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    assert model.predict(batch).shape == (2, 20)
    with pytest.raises(StormBtError):
        replace(TINY, fusion="cross", branches="ts")


def _z_ts_grid(model, batch, n_stocks):
    """z_ts as (B, blocks, S, d) from the time-major factors layout."""
    z = model.factors(batch)["z_ts"]
    return z.reshape(z.shape[0], -1, n_stocks, z.shape[-1])


@pytest.mark.parametrize("fusion", ["none", "cross"])
def test_ts_tokens_read_their_own_stock_unless_fused(fusion):
    """Without fusion a stock's TS tokens are a function of its own window only (stocks fold
    into the batch); with fusion they also read the CS day tokens, hence the other stocks."""
    cfg = replace(TINY, fusion=fusion)
    model = _model(cfg)
    batch = random_batch(cfg)
    before = _z_ts_grid(model, batch, 20)
    batch.x[:, :, 3] += 1.0
    after = _z_ts_grid(model, batch, 20)
    others = [s for s in range(20) if s != 3]
    assert not torch.allclose(before[:, :, 3], after[:, :, 3])
    same = torch.allclose(before[:, :, others], after[:, :, others], atol=1e-6)
    assert same == (fusion == "none")


def test_no_parameter_depends_on_the_number_of_stocks():
    small_universe, large_universe = _model(TINY), _model(replace(TINY, n_stocks=501))
    shapes = {k: tuple(v.shape) for k, v in small_universe.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in large_universe.state_dict().items()}
    # a model built for 20 stocks scores a batch of any other number of stocks
    batch = random_batch(replace(TINY, n_stocks=7), n=3)
    assert small_universe.predict(batch).shape == (3, 7)
    assert torch.isfinite(small_universe.losses(batch)["total"])


def test_predict_ignores_labels():
    model = _model(TINY)
    batch = random_batch(TINY, n=3)
    before = model.predict(batch)
    batch.y = torch.randn_like(batch.y)
    batch.label_mask = ~batch.label_mask
    assert torch.equal(model.predict(batch), before)


def test_predict_of_a_sample_does_not_depend_on_the_rest_of_the_batch():
    model = _model(TINY)
    model.train()
    model.losses(random_batch(TINY, n=4, seed=1))["total"].backward()  # move the EMA codebooks
    batch = random_batch(TINY, n=4)
    together = model.predict(batch)
    for i in range(4):
        alone = Batch(**{k: getattr(batch, k)[i:i + 1] for k in
                         ("x", "y", "label_mask", "price_mean", "price_std")})
        assert torch.allclose(model.predict(alone)[0], together[i], atol=1e-6)
    assert model.training  # predict restores the mode


def test_unlabelled_stocks_do_not_enter_the_loss():
    model = _model(TINY).eval()
    batch = random_batch(TINY)
    before = model.losses(batch)
    batch.y = torch.where(batch.label_mask, batch.y, torch.full_like(batch.y, 0.5))
    after = model.losses(batch)
    assert after["ret"].item() == pytest.approx(before["ret"].item(), rel=1e-6)
    assert after["kl"].item() == pytest.approx(before["kl"].item(), rel=1e-6)


def test_posterior_portfolios_give_unlabelled_stocks_no_weight():
    model = _model(TINY).eval()
    with torch.no_grad():
        enc = model._encode(random_batch(TINY))
        emb = model.head.embed(enc.phi, enc.stocks)
    mask = torch.zeros(2, 20, dtype=torch.bool)
    mask[:, :5] = True
    y = 0.01 * torch.arange(20.0).repeat(2, 1)
    y_other = torch.where(mask, y, torch.full_like(y, 9.0))
    with torch.no_grad():
        a, b = model.head.posterior(emb, y, mask), model.head.posterior(emb, y_other, mask)
    assert torch.equal(a.mu, b.mu) and torch.equal(a.logvar, b.logvar)


def test_same_seed_same_parameters_and_losses():
    a, b = _model(TINY, seed=3), _model(TINY, seed=3)
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb)
    batch = random_batch(TINY)
    torch.manual_seed(7)
    la = a.losses(batch)
    torch.manual_seed(7)
    lb = b.losses(batch)
    assert all(torch.equal(la[k], lb[k]) for k in la)
    assert not torch.equal(_model(TINY, seed=4).head.beta[0].weight, a.head.beta[0].weight)


@pytest.mark.parametrize("update", ["ema", "grad"])
def test_a_few_steps_lower_the_loss(update):
    cfg = replace(tiny.with_data(20, 24, OHLC), codebook_update=update)
    model = _model(cfg)
    batch = random_batch(cfg, n=8)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def eval_total() -> float:
        model.eval()
        with torch.no_grad():
            return model.losses(batch)["total"].item()

    start = eval_total()
    model.train()
    for _ in range(15):
        opt.zero_grad()
        model.losses(batch)["total"].backward()
        opt.step()
    assert eval_total() < 0.8 * start


def test_codebook_stats_count_usage_since_reset():
    model = _model(TINY)
    model.predict(random_batch(TINY))
    stats = model.codebook_stats()
    assert set(stats) == {"perplexity_cs", "codes_used_cs", "perplexity_ts", "codes_used_ts"}
    assert 1 <= stats["codes_used_ts"] <= TINY.codebook_size
    assert 1.0 <= stats["perplexity_ts"] <= stats["codes_used_ts"] + 1e-9
    model.reset_codebook_stats()
    assert model.codebook_stats()["codes_used_cs"] == 0.0


def test_paper_preset_sizes():
    cfg = paper
    # 64 day tokens + 16 TS blocks of 29 stocks; 64 + 16 market tokens (factors), D = 2 d
    assert (cfg.n_cs_tokens, cfg.n_ts_tokens, cfg.n_factors, cfg.factor_dim) == (64, 464, 80, 512)


def test_wrong_batch_shape_and_bad_config_raise_our_error():
    model = _model(TINY)
    with pytest.raises(StormBtError, match="F=24"):
        model.predict(random_batch(replace(TINY, n_features=25)))
    with pytest.raises(StormBtError, match="ts_patch"):
        replace(TINY, ts_patch=7)
    with pytest.raises(StormBtError, match="diversity"):
        replace(TINY, diversity="other")
    # each of these trained on (a negative weight rewards the loss it weighs) or ended in
    # a torch traceback (a negative width)
    for setting in (dict(commit_weight=-1.0), dict(ic_weight=float("nan")), dict(code_dim=-4),
                    dict(diversity_temperature=0.0), dict(clip_temperature=float("inf"))):
        name = next(iter(setting))
        with pytest.raises(StormBtError, match=f"StormConfig.{name}="):
            replace(TINY, **setting)


def test_cs_zscore_labels_make_the_loss_invariant_to_return_scale():
    cfg = replace(TINY, label_norm="cs_zscore")
    model = _model(cfg).eval()
    batch = random_batch(cfg)
    before = model.losses(batch)
    batch.y = 10 * batch.y + 0.3
    after = model.losses(batch)
    for key in ("kl", "ret", "pred"):
        # 1e-3: the z-score divides by std + 1e-6, and the daily std here is about 0.02
        assert after[key].item() == pytest.approx(before[key].item(), rel=1e-3)


def test_predict_sample_is_reproducible_with_a_seeded_generator():
    model = _model(TINY)
    batch = random_batch(TINY)
    a = model.predict_sample(batch, torch.Generator().manual_seed(5))
    b = model.predict_sample(batch, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, model.predict(batch))
