"""STORM: dual (cross-sectional + time-series) VQ-VAE with a stock-shared factor head.

x (B, T, S, F), u = Stem(x) (B, T, S, F') the per-day stock stem shared by the branches.
For each branch b in {cs, ts} (STORM_SPEC 2, `branches` picks one or both):

    cs: c = Encoder_cs(Pool_cs(u))        (B, T, d)      one token per day (all stocks:
                                          their moments, and with cs_pool_queries m soft
                                          portfolios, layers.CrossSectionalPatching);
                                          the stem receives cs_stem_grad of its gradient;
                                          Pool_cs over the batch's stocks, or with
                                          cs_context="universe" over every stock (exact
                                          moments of u from the batch's universe mean and
                                          covariance of x; the CS target likewise)
    ts: v = Encoder_ts(Patch_ts(u))       (B S, T/p, d)  each stock its own sequence
                                          (Patch_ts(x) with ts_input="features";
                                          Patch_ts(u - mean_s u) with ts_relative,
                                          the mean the CS branch's, batch or universe)
    [optional fusion, D1: v reads c, c reads mean_s v; fusion="gated": each update times
     tanh(a), a = 0 at first]                                       (fusion.py)
    z_b = sqrt(d) z_b / ||z_b||           (normalize_codes)
    q_b, k_b = VQ_b(z_b)                  straight-through codes
    x_hat_cs = Decoder_cs(q_cs)           (B, T, 2P)    the day's mean / std of each price
    x_hat_ts = Decoder_ts(q_ts)           (B, T, S, P)  each stock's normalised prices

Factor head (factor_head.py) on the market tokens Phi = [ pool_k [z_cs || q_cs] ; mean_s [z_ts ||
q_ts] ] (B, M, 2d), M = T/k + T/p (pool_k averages k consecutive days, cs_factor_pool, 1 by
default; with factor_tokens="ts" the TS part alone, M = T/p, and the CS view reaches the head
only through the fusion), and one embedding per stock e_s = [mean_j, last] of its
[z_ts || q_ts] tokens and [mean_t, last] of its stem u_s (D38; the tokens alone with
stock_embedding="tokens", the stem alone for CS only; with characteristics, also the stock's
cross-sectional characteristic ranks c_s on the last day, or with characteristics_read=
"linear" c_s only through a linear term w'c_s of mu_y, with "state" through (w + V zbar)'c_s,
zbar the CS branch's token of the last day; with peer_attention each stock's
embedding also reads the other stocks of its sample): posterior q(z | Phi,
y), prior p(z | Phi) and y = beta_s z + alpha_s. Loss (section 3, each term once, D4),
with y the day's cross-sectional z-score of the label (label_norm="cs_zscore"; "cs_rank" its
standardised rank-Gaussian score, "none" the raw return):

    total = sum_b [w_c commit_b + w_d div_b + w_o orth_b (+ w_e codebook_b in grad mode)]
          + w_clip CLIP(pool z_cs, pool z_ts)                           (both branches)
          + w_rec (c_cs R_cs + R_ts),  R_b = mean (x_hat_b - target_b)^2   (or per-sample SSE)
          + w_kl mean_B KL(post || prior)
          + w_ret mean_labelled (y - mu_y^post)^2            (or Gaussian NLL, or sample MSE)
          + w_pred mean_labelled (y - mu_y^prior)^2          the prediction path itself
          + w_ic (1 - mean_B corr_s(mu_y^prior, y))
          + w_price [mean relu(low - other) + mean relu(other - high)] on the TS dollar prices

With cs_groups G the CS branch also encodes, per day, each group g's moments of the stem
over the batch's stocks of g (`layers.group_moments`, groups from `storm_bt.features.groups`),
(G B, T, d) beside the market's (B, T, d): one quantiser and decoder for both (the groups'
target: their price moments), and e_s adds [mean_t, last] of its group's [z_cs || q_cs].

`predict` is the prior mu_y (D8 fixed) and never reads batch.y. Stocks with label_mask
False get zero weight in the posterior portfolios and are left out of every label term.
No weight has a size that depends on S: any subset of stocks can be trained on, and the
cost of a forward pass is linear in S (with peer_attention, plus the head's S x S attention
on one vector a stock).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from storm_bt.errors import StormBtError
from storm_bt.models.neural.batch import Batch
from storm_bt.models.neural.diagnostics import gradient_shares, mean_rank_ic
from storm_bt.models.neural.distributed import (rank_weighted, rows_of_all_ranks, window_share,
                                                world_size)
from storm_bt.models.neural.targets import (cross_sectional_rank_gauss, cross_sectional_zscore,
                                          masked_mse)
from storm_bt.models.storm import losses as L
from storm_bt.models.storm.config import StormConfig
from storm_bt.models.storm.factor_head import FactorHead
from storm_bt.models.storm.fusion import BranchFusion
from storm_bt.models.storm.layers import (CrossSectionalPatching, TimeSeriesPatching,
                                          TokenTransformer, group_moments, stem_moments,
                                          stock_stem, stocks_to_time_major)
from storm_bt.models.storm.quantizer import VectorQuantizer

#: loss terms that fit the label (the "return path" of the gradient diagnostics)
LABEL_TERMS = ("ret", "pred", "ic")
#: loss terms that are means over a batch's windows or their elements (with commit_<b> and
#: codebook_<b>): under DDP each is weighted by its shard's share of the windows
PER_WINDOW_TERMS = ("recon", "kl", "price")


class Branch(nn.Module):
    """Patching, encoder, quantiser and reconstruction decoder of one view (cs or ts)."""

    def __init__(self, cfg: StormConfig, kind: str):
        super().__init__()
        d = cfg.d_model
        self.kind = kind
        if kind == "cs":
            self.patching = CrossSectionalPatching(cfg.stem_dim, d, cfg.cs_pool_queries)
            n_time = cfg.history
        else:
            self.patching = TimeSeriesPatching(cfg.ts_token_inputs, cfg.ts_patch, d)
            n_time = cfg.n_ts_blocks
        self.encoder = TokenTransformer(d, d, d, n_time, 1, cfg.enc_depth, cfg.n_heads,
                                        cfg.mlp_ratio)
        self.quantizer = VectorQuantizer(
            d, cfg.codebook_size, cfg.resolved_code_dim, cfg.ema_decay, cfg.codebook_update,
            cfg.dead_code_threshold, cfg.orth_max_codes, cfg.diversity, cfg.diversity_temperature,
            normalize=cfg.normalize_codes, dead_code_idle_steps=cfg.dead_code_idle_steps)
        self.decoder = TokenTransformer(d, d, self.patching.values_per_token(cfg.n_price), n_time,
                                        1, cfg.dec_depth, cfg.n_heads, cfg.mlp_ratio)
        self.n_price = cfg.n_price

    def encode(self, v: torch.Tensor) -> torch.Tensor:
        """v (B, T, S, C) stem output (or raw features) -> tokens (cs: (B, T, d),
        ts: (B S, T/p, d))."""
        return self.encoder(self.patching(v))

    def encode_moments(self, moments: torch.Tensor) -> torch.Tensor:
        """CS only: the day's [mean_s u || std_s u] (B, T, 2F'), taken elsewhere (over the
        whole universe) -> tokens (B, T, d)."""
        return self.encoder(self.patching.embed(moments))

    def reconstruct(self, q: torch.Tensor, n_stocks: int) -> torch.Tensor:
        """q in the branch's layout -> cs: (B, T, 2P) price moments; ts: (B, T, S, P)."""
        out = self.decoder(q)
        if self.kind == "cs":
            return out
        return self.patching.unpatchify(out, self.n_price, n_stocks)

    def target(self, prices: torch.Tensor) -> torch.Tensor:
        return self.patching.target(prices)


@dataclass
class _Encoded:
    n_stocks: int
    z: dict[str, torch.Tensor] = field(default_factory=dict)
    quantized: dict = field(default_factory=dict)   # branch -> QuantizerOutput
    phi: torch.Tensor | None = None                 # market tokens (B, M, 2d)
    stocks: torch.Tensor | None = None              # per-stock features (B, S, E)
    characteristics: torch.Tensor | None = None     # read linearly by the head (B, S, K)
    day_state: torch.Tensor | None = None           # the CS token of the last day (B, d)
    groups: torch.Tensor | None = None              # each stock's group, 0..G (S,)


def _scale_grad(u: torch.Tensor, share: float) -> torch.Tensor:
    """u in the forward pass; share * its gradient in the backward pass."""
    if share == 1.0:
        return u
    if share == 0.0:
        return u.detach()
    return share * u + (1.0 - share) * u.detach()


def _per_window(rows: torch.Tensor, n: int) -> torch.Tensor:
    """(K n, ...) -> (n, K, ...): rows stacked in K blocks of the batch's n windows (the CS
    layout with groups: the market's block, then each group's) regrouped by window."""
    return rows.reshape(-1, n, *rows.shape[1:]).transpose(0, 1)


@contextmanager
def _eval_mode(module: nn.Module):
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class StormModel(nn.Module):
    """The STORM factor model; see the module docstring for the maths.

    With cs_groups G, ``stock_groups`` (n_stocks,) gives each stock of the universe its group
    1..G, or 0 for none (`storm_bt.features.groups.return_groups`); it is kept with the
    weights. Without it every stock starts with no group.
    """

    def __init__(self, config: StormConfig, stock_groups=None):
        super().__init__()
        self.config = cfg = config
        groups = None
        if cfg.cs_groups:
            groups = torch.zeros(cfg.n_stocks, dtype=torch.long) if stock_groups is None \
                else torch.as_tensor(stock_groups, dtype=torch.long).clone()
            if groups.shape != (cfg.n_stocks,) or int(groups.min()) < 0 \
                    or int(groups.max()) > cfg.cs_groups:
                raise StormBtError(
                    f"STORM stock_groups must give each of the {cfg.n_stocks} stocks a group "
                    f"in 0..{cfg.cs_groups}; got shape {tuple(groups.shape)}, values "
                    f"{int(groups.min())}..{int(groups.max())}")
        self.register_buffer("stock_groups", groups)
        self.branches = nn.ModuleDict({b: Branch(cfg, b) for b in cfg.branch_names})
        self.fusion = BranchFusion(cfg.d_model, cfg.fusion_depth, cfg.fusion_heads,
                                   cfg.mlp_ratio, gated=cfg.fusion == "gated",
                                   mlp=cfg.fusion_mlp) \
            if cfg.fusion != "none" else None
        self.stem = stock_stem(cfg.n_features, cfg.cs_stem) if cfg.uses_stem else None
        self.head = FactorHead(cfg.n_factors, cfg.factor_dim, cfg.stock_dim, cfg.hidden,
                               cfg.prior_heads, n_linear=cfg.linear_characteristics,
                               peers=cfg.peer_attention, state_dim=cfg.state_read_dim)
        fields = cfg.resolved_price_fields
        self._low_high = (fields.index("low"), fields.index("high")) \
            if fields and "low" in fields and "high" in fields else None

    # ------------------------------------------------------------------ shared forward
    def _check(self, batch: Batch) -> None:
        cfg = self.config
        if batch.x.ndim != 4 or (batch.x.shape[1], batch.x.shape[3]) != (cfg.history,
                                                                          cfg.n_features):
            raise StormBtError(
                f"STORM batch x has shape {tuple(batch.x.shape)}, the model expects "
                f"(B, T={cfg.history}, S, F={cfg.n_features}); build the config with "
                f"StormConfig.with_data(...) and history={batch.x.shape[1]}")
        if batch.n_price != cfg.n_price:
            raise StormBtError(f"STORM batch has {batch.n_price} price fields, the config "
                               f"n_price={cfg.n_price}; rebuild the config with with_data(...)")

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The shared encoders (stem, patching, transformers, fusion): what the diagnostics
        watch."""
        params = [p for b in self.branches.values()
                  for p in list(b.patching.parameters()) + list(b.encoder.parameters())]
        if self.stem is not None:
            params += list(self.stem.parameters())
        if self.fusion is not None:
            params += list(self.fusion.parameters())
        return params

    @property
    def reads_universe(self) -> bool:
        """The CS branch summarises every stock (cs_context="universe"): the training loop
        then adds the universe's cross-section to every batch of a stock subset."""
        return self.config.cs_context == "universe" and "cs" in self.branches

    def _cs_uses_universe(self, batch: Batch) -> bool:
        """The CS token and target of this batch come from its universe moments. A batch of
        a stock subset without them is refused: its own stocks' moments are not the
        universe's, which is what this model reads."""
        if self.reads_universe and batch.subset and not batch.has_universe:
            raise StormBtError(
                "STORM with cs_context='universe' got a batch of a stock subset without the "
                "universe's cross-section; build it with make_batch(..., universe=True) "
                "(storm_bt.models.neural.training.reads_universe says when)")
        return self.reads_universe and batch.has_universe

    @property
    def _cs_stem_share(self) -> float:
        """The share of the CS branch's gradient that reaches the stem: cs_stem_grad beside
        a TS branch, all of it for CS alone."""
        return self.config.cs_stem_grad if len(self.branches) == 2 else 1.0

    def _universe_stem_moments(self, batch: Batch) -> torch.Tensor:
        """(B, T, 2F') [mean_s u || std_s u] over every stock of the universe, from the
        batch's per-date feature moments; the stem receives cs_stem_grad of its gradient."""
        share = self._cs_stem_share
        weight = bias = None
        if isinstance(self.stem, nn.Linear):
            weight, bias = _scale_grad(self.stem.weight, share), _scale_grad(self.stem.bias, share)
        moments = stem_moments(batch.universe_mean, batch.universe_cov, weight, bias)
        return moments[batch.universe_index]

    def _ts_input(self, batch: Batch, u: torch.Tensor | None) -> torch.Tensor:
        """What the TS branch patches (B, T, S, C): the stem u (D37), u_s - mean_s' u_s' per
        day with ts_relative (each stock relative to the cross-section the CS branch pools:
        the batch's stocks, or every stock of the universe, mean_s' u_s' = m_t W' + b, when
        the batch carries its moments), or the raw features x with ts_input="features"."""
        if not self.config.ts_uses_stem:
            return batch.x
        if not self.config.ts_relative:
            return u
        if self._cs_uses_universe(batch):
            mean = self.stem(batch.universe_mean)[batch.universe_index]      # (B, T, F')
            return u - mean[:, :, None]
        return u - u.mean(dim=2, keepdim=True)

    @staticmethod
    def _characteristics(batch: Batch) -> torch.Tensor:
        """(B, S, K) the stocks' cross-sectional characteristic ranks on the last day."""
        if batch.characteristics is None:
            raise StormBtError(
                "StormConfig.characteristics=True needs the batch's stock characteristics; "
                "build the data with storm_bt.features.dataset.build_feature_set, or set "
                "characteristics=False")
        return batch.characteristics

    def _encode(self, batch: Batch) -> _Encoded:
        x = batch.x
        s = x.shape[2]
        out = _Encoded(n_stocks=s)
        u = self.stem(x) if self.stem is not None else None
        for name, branch in self.branches.items():
            if name == "ts":
                out.z[name] = branch.encode(self._ts_input(batch, u))
            elif self._cs_uses_universe(batch):
                out.z[name] = branch.encode_moments(self._universe_stem_moments(batch))
            else:
                u_cs = _scale_grad(u, self._cs_stem_share)
                out.z[name] = branch.encode(u_cs)
                if self.config.cs_groups:
                    out.groups = self._batch_groups(batch, s)
                    moments = group_moments(u_cs, out.groups, self.config.cs_groups)
                    out.z["cs_groups"] = branch.encode_moments(moments.flatten(0, 1))
        if self.fusion is not None:
            out.z["cs"], out.z["ts"] = self.fusion(out.z["cs"], out.z["ts"])
        if self.config.normalize_codes:
            scale = self.config.d_model ** 0.5
            out.z = {k: F.normalize(v, dim=-1) * scale for k, v in out.z.items()}
        market = []
        for name, branch in self.branches.items():
            grouped = name == "cs" and out.groups is not None
            # with groups: the market's days, then the G groups' through one quantiser
            quantized = branch.quantizer(torch.cat([out.z[name], out.z["cs_groups"]])
                                         if grouped else out.z[name])
            out.quantized[name] = quantized
            q = quantized.q[: len(out.z[name])] if grouped else quantized.q
            tokens = torch.cat([out.z[name], q], dim=-1)
            if name not in self.config.factor_branches:
                continue
            if name == "cs":
                k = self.config.cs_factor_pool            # T day tokens -> T / k factors
                market.append(tokens if k == 1 else
                              tokens.reshape(tokens.shape[0], -1, k, tokens.shape[-1]).mean(2))
            else:
                per_stock = tokens.reshape(x.shape[0], s, *tokens.shape[1:])   # (B, S, J, 2d)
                market.append(per_stock.mean(dim=1))
                out.stocks = torch.cat([per_stock.mean(dim=2), per_stock[:, :, -1]], dim=-1)
        if self.config.stock_uses_stem:
            stem_summary = torch.cat([u.mean(dim=1), u[:, -1]], dim=-1)      # (B, S, 2F')
            out.stocks = stem_summary if out.stocks is None \
                else torch.cat([out.stocks, stem_summary], dim=-1)
        if out.groups is not None:
            out.stocks = torch.cat([out.stocks, self._group_read(out)], dim=-1)
        if self.config.linear_characteristics:
            out.characteristics = self._characteristics(batch)
            if self.config.state_read_dim:
                out.day_state = out.z["cs"][:, -1]             # as the codebook reads it
        elif self.config.characteristics:
            out.stocks = torch.cat([out.stocks, self._characteristics(batch)], dim=-1)
        out.phi = torch.cat(market, dim=1)
        return out

    def _labels(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        mask = batch.label_mask.bool()
        y = batch.y * mask
        if self.config.label_norm == "cs_zscore":
            y = cross_sectional_zscore(y, mask)
        elif self.config.label_norm == "cs_rank":
            y = cross_sectional_rank_gauss(y, mask)
        return y, mask

    # ------------------------------------------------------------------ public API
    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Weighted loss terms and their sum "total" (the one to optimise)."""
        terms, _ = self._loss_terms(batch)
        return terms

    def _loss_terms(self, batch: Batch):
        self._check(batch)
        cfg = self.config
        enc = self._encode(batch)
        s = enc.n_stocks
        terms: dict[str, torch.Tensor] = {}
        weights = {"commit": cfg.commit_weight, "div": cfg.diversity_weight,
                   "orth": cfg.orth_weight, "codebook": cfg.codebook_weight}
        for name, quantized in enc.quantized.items():
            for key, value in quantized.losses.items():
                terms[f"{key}_{name}"] = weights[key] * value
        if len(self.branches) == 2:
            cs, ts = (self._clip_summary(enc.z["cs"], "cs", s),
                      self._clip_summary(enc.z["ts"], "ts", s))
            if self.training and world_size() > 1:       # DDP: the global batch's negatives
                clip = rank_weighted(L.clip_loss(rows_of_all_ranks(cs), rows_of_all_ranks(ts),
                                                 cfg.clip_temperature))
            else:
                clip = L.clip_loss(cs, ts, cfg.clip_temperature)
            terms["clip"] = cfg.clip_weight * clip

        prices = batch.x[..., : cfg.n_price]
        recon = {name: branch.reconstruct(enc.quantized[name].q, s)
                 for name, branch in self.branches.items()}
        # the official cs_scale: CS reconstruction weighted apart when both branches exist
        scale = {name: cfg.recon_cs_scale if name == "cs" and len(recon) == 2 else 1.0
                 for name in recon}
        parts = []
        for name, pred in recon.items():
            target = self._universe_price_moments(batch) \
                if name == "cs" and self._cs_uses_universe(batch) \
                else self.branches[name].target(prices)
            if name == "cs" and enc.groups is not None:      # and each group's price moments
                groups = group_moments(prices, enc.groups, cfg.cs_groups)
                target = torch.cat([target, groups.flatten(0, 1)])
            err = L.reconstruction_mse(pred, target) if cfg.recon_reduction == "mean" \
                else L.reconstruction_sse(pred, target).mean()
            parts.append(scale[name] * err)
        terms["recon"] = cfg.recon_weight * sum(parts)

        y, mask = self._labels(batch)
        emb = self.head.embed(enc.phi, enc.stocks, enc.characteristics, enc.day_state)
        posterior = self.head.posterior(emb, y, mask)
        prior = self.head.prior(emb)
        terms["kl"] = cfg.kl_weight * L.gaussian_kl(posterior.mu, posterior.logvar,
                                                    prior.mu, prior.logvar).mean()
        mu_post, sigma_post = self.head.returns(emb, posterior)
        if cfg.ret_loss == "nll":
            terms["ret"] = cfg.ret_weight * L.gaussian_nll(mu_post, sigma_post, y, mask)
        else:
            y_hat = mu_post
            if cfg.ret_loss == "sample" and self.training:
                y_hat = mu_post + torch.randn_like(sigma_post) * sigma_post
            terms["ret"] = cfg.ret_weight * masked_mse(y_hat, y, mask)
        mu_prior, _ = self.head.returns(emb, prior)
        if cfg.pred_weight:
            terms["pred"] = cfg.pred_weight * masked_mse(mu_prior, y, mask)
        if cfg.ic_weight:
            terms["ic"] = cfg.ic_weight * L.ic_loss(mu_prior, y, mask)

        if self._low_high is not None and "ts" in recon:
            dollars = recon["ts"] * batch.price_std + batch.price_mean
            terms["price"] = cfg.price_weight * L.price_constraint_loss(dollars, *self._low_high)
        share = window_share(batch.x.shape[0])    # DDP: this shard's part of the windows
        if share is not None:
            for key in terms:
                if key in PER_WINDOW_TERMS or key.startswith(("commit_", "codebook_")):
                    terms[key] = terms[key] * share
        terms["total"] = sum(terms.values())
        return terms, {"y": y, "mask": mask, "mu_post": mu_post, "mu_prior": mu_prior,
                       "posterior": posterior, "prior": prior}

    def diagnostics(self, batch: Batch) -> dict[str, float]:
        """On one batch, in eval mode (no codebook update): each loss term's share of the
        gradient norm on the shared encoders (share_<term>, and share_label for the label
        terms together), the unweighted KL, and the RankIC of the posterior and prior mu_y
        against the (normalised) labels; with fusion="gated" each update's tanh(a), the mean
        over layers (gate_<update>)."""
        usage = {name: b.quantizer.usage.clone() for name, b in self.branches.items()}
        with _eval_mode(self), torch.enable_grad():
            terms, extra = self._loss_terms(batch)
            parts = {k: v for k, v in terms.items() if k != "total"}
            shares = gradient_shares(parts, self.encoder_parameters())
        for name, b in self.branches.items():
            b.quantizer.usage.copy_(usage[name])
        out = {f"share_{k}": v for k, v in shares.items()}
        out["share_label"] = sum(v for k, v in shares.items() if k in LABEL_TERMS)
        kl = L.gaussian_kl(extra["posterior"].mu, extra["posterior"].logvar,
                           extra["prior"].mu, extra["prior"].logvar).mean()
        out["kl_raw"] = float(kl.detach())
        out["post_rank_ic"] = mean_rank_ic(extra["mu_post"], extra["y"], extra["mask"])
        out["prior_rank_ic"] = mean_rank_ic(extra["mu_prior"], extra["y"], extra["mask"])
        if self.fusion is not None and self.fusion.gates is not None:
            out.update(self.fusion.gate_values())
        return out

    @torch.no_grad()
    def predict(self, batch: Batch) -> torch.Tensor:
        """(B, S) prior mean mu_y of next-day returns, in eval mode; batch.y is never read."""
        mu_y, _ = self._prior_returns(batch)
        return mu_y

    @torch.no_grad()
    def predict_with_day_token(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, S) the prior mean mu_y, as `predict`, and (B, d) the CS branch's token of the
        window's last day z_cs[:, -1] (after fusion and normalisation, as the codebook reads
        it; None without a CS branch), from one pass."""
        enc, mu_y, _ = self._prior_path(batch)
        return mu_y, enc.z["cs"][:, -1] if "cs" in enc.z else None

    @torch.no_grad()
    def predict_sample(self, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, S) a sample mu_y + eps sigma_y from the prior path (the official D8 behaviour;
        pass a seeded generator for parity runs)."""
        mu_y, sigma_y = self._prior_returns(batch)
        eps = torch.randn(mu_y.shape, generator=generator, device=mu_y.device, dtype=mu_y.dtype)
        return mu_y + eps * sigma_y

    @torch.no_grad()
    def factors(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per present branch z_b, q_b (cs: (B, T, d); ts: (B, (T/p) S, d), time-major index
        j S + s) and codes_b; the market tokens phi (B, M, 2d) and the prior's mu_z /
        sigma_z (B, M); eval mode, no label used."""
        self._check(batch)
        with _eval_mode(self):
            enc = self._encode(batch)
            prior = self.head.prior(self.head.embed(enc.phi, enc.stocks, enc.characteristics,
                                                    enc.day_state))
        s, n = enc.n_stocks, batch.x.shape[0]
        out: dict[str, torch.Tensor] = {}
        if enc.groups is not None:      # (B, G, T, d) and (B, G, T), after the market's rows
            q = enc.quantized["cs"]
            out["z_cs_groups"] = _per_window(enc.z["cs_groups"], n)
            out["q_cs_groups"] = _per_window(q.q[n:], n)
            out["codes_cs_groups"] = _per_window(q.codes[n:], n)
        for name, quantized in enc.quantized.items():
            z = enc.z[name]
            q, codes = quantized.q[: len(z)], quantized.codes[: len(z)]
            if name == "ts":
                z, q = stocks_to_time_major(z, s), stocks_to_time_major(q, s)
                codes = stocks_to_time_major(codes[..., None], s)[..., 0]
            out[f"z_{name}"], out[f"q_{name}"], out[f"codes_{name}"] = z, q, codes
        out["phi"] = enc.phi
        out["mu_z"], out["sigma_z"] = prior.mu, prior.std
        return out

    def codebook_stats(self) -> dict[str, float]:
        """perplexity_<b> and codes_used_<b> over the usage since reset_codebook_stats()."""
        return {f"{key}_{name}": value
                for name, branch in self.branches.items()
                for key, value in branch.quantizer.usage_stats().items()}

    def reset_codebook_stats(self) -> None:
        for branch in self.branches.values():
            branch.quantizer.reset_usage()

    # ------------------------------------------------------------------ helpers
    def _prior_returns(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu_y, sigma_y) from the prior path, in eval mode, from batch.x (and its universe
        moments) only, never batch.y."""
        return self._prior_path(batch)[1:]

    def _prior_path(self, batch: Batch) -> tuple[_Encoded, torch.Tensor, torch.Tensor]:
        """The encoding and (mu_y, sigma_y) of `_prior_returns`."""
        self._check(batch)
        with _eval_mode(self):
            enc = self._encode(batch)
            emb = self.head.embed(enc.phi, enc.stocks, enc.characteristics, enc.day_state)
            return (enc, *self.head.returns(emb, self.head.prior(emb)))

    def _universe_price_moments(self, batch: Batch) -> torch.Tensor:
        """The CS reconstruction target over every stock: (B, T, 2P) [mean || std] of the
        price fields (the first P features), from the batch's universe moments."""
        p = self.config.n_price
        moments = stem_moments(batch.universe_mean[:, :p], batch.universe_cov[:, :p, :p])
        return moments[batch.universe_index]

    def _batch_groups(self, batch: Batch, n_stocks: int) -> torch.Tensor:
        """(S,) the group of each of the batch's stocks (its columns ``batch.stocks``, or
        every stock of the universe)."""
        if batch.stocks is not None:
            return self.stock_groups[batch.stocks]
        if n_stocks != len(self.stock_groups):
            raise StormBtError(
                f"STORM with cs_groups got a batch of {n_stocks} stocks without their columns "
                f"(Batch.stocks) and knows the groups of {len(self.stock_groups)}; build the "
                "batch with make_batch(..., stocks=...)")
        return self.stock_groups

    def _group_read(self, enc: _Encoded) -> torch.Tensor:
        """(B, S, 4d): for each stock [mean_t, last] of its group's CS [z || q] (the
        market's day tokens for a stock without a group)."""
        n = enc.z["cs"].shape[0]
        q = enc.quantized["cs"].q
        z = torch.cat([enc.z["cs"], enc.z["cs_groups"]])
        tokens = _per_window(torch.cat([z, q], dim=-1), n)                  # (B, 1+G, T, 2d)
        summary = torch.cat([tokens.mean(dim=2), tokens[:, :, -1]], dim=-1)  # (B, 1+G, 4d)
        return summary[:, enc.groups]

    def _clip_summary(self, z: torch.Tensor, kind: str, n_stocks: int) -> torch.Tensor:
        """The vector CLIP aligns: the token mean (D2 fixed) or the first token (parity:
        day 0 for CS, block 0 of stock 0 for TS)."""
        if kind == "ts":
            z = z.reshape(-1, n_stocks * z.shape[1], z.shape[2])   # (B, S J, d), stock-major
        return z.mean(dim=1) if self.config.clip_mode == "mean" else z[:, 0]
