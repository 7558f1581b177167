"""STORM: dual (cross-sectional + time-series) VQ-VAE with a FactorVAE-style return head.

For each branch b in {cs, ts} (STORM_SPEC 2, `branches` picks one or both):

    z_b = Encoder_b(Patch_b(x))           (B, L_b, d)       [optional CrossViT fusion, D1]
    q_b, k_b = VQ_b(z_b)                  straight-through codes
    x_hat_b = unpatchify(Decoder_b(q_b))  (B, T, S, P)      normalised prices
    Phi = concat_tokens([z_b || q_b])     (B, M, 2d)

and the factor head (factor_head.py) gives the posterior q(z | Phi, y), the prior
p(z | Phi) and y = beta z + alpha. The loss (section 3, each term once, D4):

    total = sum_b [w_c commit_b + w_d div_b + w_o orth_b (+ w_e codebook_b in grad mode)]
          + w_clip CLIP(pool z_cs, pool z_ts)                          (both branches)
          + w_rec (c_cs SSE_cs + SSE_ts) / B                            (c_cs only with both)
          + w_kl mean_B KL(post || prior)
          + w_ret mean_{labelled} (y - y_hat)^2
          + w_price [mean relu(low - other) + mean relu(other - high)] on dollar prices
            P_hat = c_cs denorm(x_hat_cs) + denorm(x_hat_ts)         (when high/low exist)

In training mode y_hat is a posterior sample mu_y + eps sigma_y; in eval mode (validation)
it is the prior mu_y. `predict` is the prior mu_y (D8 fixed) and never reads batch.y.
Stocks with label_mask False get zero weight in the posterior portfolios and are left out
of the return loss.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from storm_bt.errors import StormBtError
from storm_bt.models.batch import Batch
from storm_bt.models.storm import losses as L
from storm_bt.models.storm.config import StormConfig
from storm_bt.models.storm.factor_head import FactorHead
from storm_bt.models.storm.fusion import CrossViTFusion
from storm_bt.models.storm.layers import (CrossSectionalPatching, TimeSeriesPatching,
                                          TokenTransformer)
from storm_bt.models.storm.quantizer import VectorQuantizer


class Branch(nn.Module):
    """Patching, encoder, quantiser and reconstruction decoder of one view (cs or ts)."""

    def __init__(self, cfg: StormConfig, kind: str):
        super().__init__()
        d = cfg.d_model
        if kind == "cs":
            self.patching = CrossSectionalPatching(cfg.n_stocks, cfg.n_features, cfg.cs_stem, d)
            n_time = cfg.history
        else:
            self.patching = TimeSeriesPatching(cfg.n_stocks, cfg.n_features, cfg.ts_patch, d)
            n_time = cfg.n_ts_blocks
        n_space = self.patching.n_space
        self.encoder = TokenTransformer(d, d, d, n_time, n_space, cfg.enc_depth, cfg.n_heads,
                                        cfg.mlp_ratio)
        self.quantizer = VectorQuantizer(
            d, cfg.codebook_size, cfg.resolved_code_dim, cfg.ema_decay, cfg.codebook_update,
            cfg.dead_code_threshold, cfg.orth_max_codes, cfg.diversity, cfg.diversity_temperature)
        self.decoder = TokenTransformer(d, d, self.patching.values_per_token(cfg.n_price), n_time,
                                        n_space, cfg.dec_depth, cfg.n_heads, cfg.mlp_ratio)
        self.n_price = cfg.n_price

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.patching(x))

    def reconstruct(self, q: torch.Tensor) -> torch.Tensor:
        """q (B, L, d) -> normalised prices (B, T, S, P)."""
        return self.patching.unpatchify(self.decoder(q), self.n_price)


@dataclass
class _Encoded:
    z: dict[str, torch.Tensor] = field(default_factory=dict)
    quantized: dict = field(default_factory=dict)   # branch -> QuantizerOutput
    phi: torch.Tensor | None = None


@contextmanager
def _eval_mode(module: nn.Module):
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class StormModel(nn.Module):
    """The STORM factor model; see the module docstring for the maths."""

    def __init__(self, config: StormConfig):
        super().__init__()
        self.config = cfg = config
        self.branches = nn.ModuleDict({b: Branch(cfg, b) for b in cfg.branch_names})
        self.fusion = CrossViTFusion(
            cfg.d_model, cfg.fusion_depth, cfg.fusion_self_depth, cfg.fusion_cross_depth,
            cfg.fusion_heads, cfg.fusion_dim_head, cfg.fusion_mlp_dim,
        ) if cfg.fusion == "crossvit" else None
        self.head = FactorHead(cfg.n_factors, cfg.factor_dim, cfg.n_stocks, cfg.hidden,
                               cfg.prior_heads)
        fields = cfg.resolved_price_fields
        self._low_high = (fields.index("low"), fields.index("high")) \
            if fields and "low" in fields and "high" in fields else None

    # ------------------------------------------------------------------ shared forward
    def _check(self, batch: Batch) -> None:
        cfg = self.config
        want = (cfg.history, cfg.n_stocks, cfg.n_features)
        if tuple(batch.x.shape[1:]) != want:
            raise StormBtError(
                f"STORM batch x has shape {tuple(batch.x.shape)}, the model expects "
                f"(B, T={want[0]}, S={want[1]}, F={want[2]}); build the config with "
                f"StormConfig.with_data(...) and history={batch.x.shape[1]}")
        if batch.n_price != cfg.n_price:
            raise StormBtError(f"STORM batch has {batch.n_price} price fields, the config "
                               f"n_price={cfg.n_price}; rebuild the config with with_data(...)")

    def _encode(self, x: torch.Tensor) -> _Encoded:
        out = _Encoded()
        for name, branch in self.branches.items():
            out.z[name] = branch.encode(x)
        if self.fusion is not None:
            out.z["cs"], out.z["ts"] = self.fusion(out.z["cs"], out.z["ts"])
        tokens = []
        for name, branch in self.branches.items():
            quantized = branch.quantizer(out.z[name])
            out.quantized[name] = quantized
            tokens.append(torch.cat([out.z[name], quantized.q], dim=-1))
        out.phi = torch.cat(tokens, dim=1)
        return out

    # ------------------------------------------------------------------ public API
    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Weighted loss terms and their sum "total" (the one to optimise)."""
        self._check(batch)
        cfg = self.config
        enc = self._encode(batch.x)
        terms: dict[str, torch.Tensor] = {}
        weights = {"commit": cfg.commit_weight, "div": cfg.diversity_weight,
                   "orth": cfg.orth_weight, "codebook": cfg.codebook_weight}
        for name, quantized in enc.quantized.items():
            for key, value in quantized.losses.items():
                terms[f"{key}_{name}"] = weights[key] * value
        if len(self.branches) == 2:
            terms["clip"] = cfg.clip_weight * L.clip_loss(
                self._clip_summary(enc.z["cs"]), self._clip_summary(enc.z["ts"]),
                cfg.clip_temperature)

        target = batch.x[..., : cfg.n_price]
        recon = {name: branch.reconstruct(enc.quantized[name].q)
                 for name, branch in self.branches.items()}
        # the official cs_scale: CS reconstruction down-weighted when both branches exist
        scale = {name: cfg.recon_cs_scale if name == "cs" and len(recon) == 2 else 1.0
                 for name in recon}
        sse = sum(scale[name] * L.reconstruction_sse(pred, target) for name, pred in recon.items())
        terms["recon"] = cfg.recon_weight * sse.mean()

        mask = batch.label_mask.bool()
        y = batch.y * mask
        if cfg.label_norm == "cs_zscore":
            y = L.cs_zscore(y, mask)
        posterior = self.head.posterior(enc.phi, y, mask)
        prior = self.head.prior(enc.phi)
        terms["kl"] = cfg.kl_weight * L.gaussian_kl(posterior.mu, posterior.logvar,
                                                    prior.mu, prior.logvar).mean()
        if self.training:
            mu_y, sigma_y = self.head.returns(enc.phi, posterior)
            y_hat = mu_y + torch.randn_like(sigma_y) * sigma_y
        else:
            y_hat, _ = self.head.returns(enc.phi, prior)
        terms["ret"] = cfg.ret_weight * L.masked_mse(y_hat, y, mask)

        if self._low_high is not None:
            dollars = sum(scale[name] * (pred * batch.price_std + batch.price_mean)
                          for name, pred in recon.items())
            terms["price"] = cfg.price_weight * L.price_constraint_loss(dollars, *self._low_high)
        terms["total"] = sum(terms.values())
        return terms

    @torch.no_grad()
    def predict(self, batch: Batch) -> torch.Tensor:
        """(B, S) prior mean mu_y of next-day returns, in eval mode; batch.y is never read."""
        mu_y, _ = self._prior_returns(batch)
        return mu_y

    @torch.no_grad()
    def predict_sample(self, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, S) a sample mu_y + eps sigma_y from the prior path (the official D8 behaviour;
        pass a seeded generator for parity runs)."""
        mu_y, sigma_y = self._prior_returns(batch)
        eps = torch.randn(mu_y.shape, generator=generator, device=mu_y.device, dtype=mu_y.dtype)
        return mu_y + eps * sigma_y

    @torch.no_grad()
    def factors(self, batch: Batch) -> dict[str, torch.Tensor]:
        """z_b, q_b, codes_b per present branch, the factor tokens phi (B, M, 2d), and the
        prior's mu_z / sigma_z (B, M); eval mode, no label used."""
        self._check(batch)
        with _eval_mode(self):
            enc = self._encode(batch.x)
            prior = self.head.prior(enc.phi)
        out: dict[str, torch.Tensor] = {}
        for name, quantized in enc.quantized.items():
            out[f"z_{name}"] = enc.z[name]
            out[f"q_{name}"] = quantized.q
            out[f"codes_{name}"] = quantized.codes
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
        """(mu_y, sigma_y) from the prior path, in eval mode, from batch.x only."""
        self._check(batch)
        with _eval_mode(self):
            phi = self._encode(batch.x).phi
            return self.head.returns(phi, self.head.prior(phi))

    def _clip_summary(self, z: torch.Tensor) -> torch.Tensor:
        """The vector CLIP aligns: the token mean (D2 fixed) or token 0 (parity)."""
        return z.mean(dim=1) if self.config.clip_mode == "mean" else z[:, 0]
