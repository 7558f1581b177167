"""STORM configuration: one dataclass, one place for defaults, named presets.

Shapes follow from the fields (STORM_SPEC sections 2 and 11, with the issue-9 layout):

    CS tokens  L_cs = T            one token per day, a pooled summary of all stocks
    TS tokens  L_ts = T / p_t      per stock: each stock's own sequence of p_t-day blocks
                                   (stocks fold into the batch; `factors` lays them out
                                   time-major, index j*S + s, as before)
    market (factor) tokens M = [L_cs] + [L_ts]   (CS day tokens, TS tokens pooled over
                                   stocks), factor width D = 2 d  (Phi = [z || q])

No parameter has a size that depends on the number of stocks S, so cost and memory are
linear in S and a model trained on a subset of stocks predicts for all of them.
Defaults are the "fixed" resolutions of STORM_SPEC section 10 plus the issue-9 decisions
(README, decisions list); the `parity` preset restores the official code's loss weights
and quirks where a switch exists (D2, D4, D6, D21, the sample-MSE return loss).
Presets are frozen instances: derive variants with `dataclasses.replace` or `with_data`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from storm_bt.data.panel import PRICE_FIELDS
from storm_bt.errors import StormBtError
from storm_bt.features.characteristics import CHARACTERISTIC_NAMES
from storm_bt.models.neural import config_checks as checks

_CHOICES = {
    "branches": ("both", "ts", "cs"),
    "fusion": ("none", "cross", "gated"),
    "codebook_update": ("ema", "grad"),
    "diversity": ("scaled", "fixed", "parity"),
    "clip_mode": ("mean", "token0"),
    "label_norm": ("none", "cs_zscore", "cs_rank"),
    "ret_loss": ("mse", "nll", "sample"),
    "recon_reduction": ("mean", "sum"),
    "ts_input": ("stem", "features"),
    "stock_embedding": ("tokens+stem", "tokens"),
    "cs_context": ("batch", "universe"),
    "factor_tokens": ("both", "ts"),
    "characteristics_read": ("embedding", "linear", "state"),
    "stacked_read": ("none", "token", "market"),
    "stacked_select": ("holdout", "valid"),
}


@dataclass(frozen=True)
class StormConfig:
    """Every setting of the STORM dual VQ-VAE factor model."""

    # data (n_stocks sizes nothing: it only records the universe the model was built for)
    n_stocks: int = 29
    n_features: int = 152
    n_price: int = 5
    #: Names of the first n_price features; None infers them for P=5 (all of PRICE_FIELDS)
    #: and P=2 (close, adj_close). The price constraint needs "high" and "low" among them.
    price_fields: tuple[str, ...] | None = None
    history: int = 64

    # patching and transformers
    ts_patch: int = 8
    #: width of the per-day stock stem u = x W_stem (F -> cs_stem), shared by the branches:
    #: CS pools it over stocks, TS patches it over days (ts_input="stem"); 0 = no stem
    cs_stem: int = 16
    #: what a TS patch token embeds: p days of the stem ("stem", D37) or of the raw F
    #: features ("features", the official patch embedding, p F -> d)
    ts_input: str = "stem"
    #: with both branches, the share of the CS branch's gradient that reaches the shared stem
    #: (the forward pass is unchanged): 1 = all of it (D37); 0 = none, so the stem is shaped
    #: by the TS branch and the stock embeddings alone and the CS branch reads it as it is.
    #: Checkpoint keys hold it only when it is not 1.
    cs_stem_grad: float = 1.0
    #: the stocks the CS day token summarises: those of the batch ("batch": with
    #: stocks_per_step, a random 64 in training, the 128 validation stocks in selection, all
    #: of them in prediction) or always every stock of the universe ("universe": exact moments
    #: of the stem from the per-date feature mean and covariance the batch carries; needs a
    #: linear stem or none). Checkpoint keys hold it only when it is not "batch".
    cs_context: str = "batch"
    #: m > 0 adds to each CS day token m soft portfolios of the day's stocks, each the
    #: softmax-weighted mean of the stem under a learned linear score (a soft characteristic
    #: sort, `layers.CrossSectionalPatching`); 0 = the moments alone. Needs cs_context=
    #: "batch" (the universe path has the moments only). Keys hold it only when it is not 0.
    cs_pool_queries: int = 0
    #: with both branches, the TS branch patches each stock's stem minus the day's mean of
    #: the stem over the stocks the CS branch pools (the batch's, or with cs_context=
    #: "universe" every stock's), so a stock's sequence is its path relative to the market
    #: that day; storm-ts has no CS view and never does this. Needs ts_input="stem" (tried
    #: on validation, not adopted: README, Benchmarks). Keys hold it only when it is True.
    ts_relative: bool = False
    d_model: int = 64
    enc_depth: int = 2
    dec_depth: int = 1
    n_heads: int = 4
    mlp_ratio: float = 4.0
    branches: str = "both"         # "ts" = STORM-w/o-CS ablation, "cs" = CS only

    # D1: cross-branch fusion between encoders and quantisers (linear in S); "gated": the
    # same with a tanh gate at 0 on every residual update, so it starts as the identity
    fusion: str = "none"
    fusion_depth: int = 1
    fusion_heads: int = 4
    #: each fusion layer ends with an MLP on the TS and on the CS tokens (True, D1 and D27),
    #: or is the two cross reads alone (False). Keys hold it only when it is False.
    fusion_mlp: bool = True

    # vector quantiser
    codebook_size: int = 128
    code_dim: int = 0              # 0 = d_model (no projection, as the official model)
    ema_decay: float = 0.99
    codebook_update: str = "ema"   # D5
    #: reset codes whose EMA count (assignments per batch) falls below this; 0 = never
    dead_code_threshold: float = 1.0
    #: also reset codes no token chose in this many training steps; 0 = never
    dead_code_idle_steps: int = 20
    #: z and the codes on the sphere of radius sqrt(dim) (cosine lookup)
    normalize_codes: bool = True
    orth_max_codes: int = 512
    #: "scaled": p = softmax(-d^2 / (tau * gap)), gap = mean_k d^2 - min_k d^2 (detached)
    diversity: str = "scaled"      # D6
    diversity_temperature: float = 0.1

    # factor head
    #: each stock's embedding: [mean, last] of its TS tokens plus [mean_t, last] of its stem
    #: ("tokens+stem", D38), or the TS tokens alone ("tokens"); CS only always uses the stem
    stock_embedding: str = "tokens+stem"
    #: k consecutive CS day tokens averaged into one market token (factor): T/k CS factors;
    #: 1 = one factor per day (D28). Checkpoint keys hold it only when it is not 1.
    cs_factor_pool: int = 1
    #: the market tokens (factors) the head reads with both branches: the CS day tokens and
    #: the stock-pooled TS tokens ("both"), or the TS tokens alone ("ts"; the CS view then
    #: reaches the factors only through the fusion, which it needs). Keys hold it only when
    #: it is not "both".
    factor_tokens: str = "both"
    #: each stock's embedding also holds its cross-sectional characteristic ranks on the
    #: window's last date (log dollar volume, volatility, momentum, reversal:
    #: `storm_bt.features.characteristics`), the per-stock part of the cross-sectional view,
    #: which the per-stock scaler removes from the features. Keys hold it only when True.
    characteristics: bool = False
    #: how the head reads them: as part of the stock embedding ("embedding", through the
    #: MLPs that give alpha and beta) or through one linear term of the expected return
    #: alone, mu_y += w'c_s with w = 0 at first ("linear": four numbers cannot then act as a
    #: stock's fingerprint), or through that linear term with weights that move with the
    #: CS branch's token of the window's last day, mu_y += (w + V zbar_t)'c_s with w and V
    #: at 0 at first ("state": the day's market re-weights the characteristics, e.g. small
    #: stocks lagging the market's day; needs the CS branch). Keys hold it only when it is
    #: not "embedding".
    characteristics_read: str = "embedding"
    #: each stock's embedding in the head also attends over the other stocks of its sample
    #: (the day's cross-section: `factor_head.StocksReadPeers`, output at 0 at first), a
    #: stock-level cross-sectional read beside the CS day tokens. The one cost quadratic in
    #: S, on one vector a stock. Keys hold it only when True.
    peer_attention: bool = False
    #: G > 0: the CS branch also makes one token a day for each of G groups of stocks
    #: (`storm_bt.features.groups`: k-means on the training period's market-residual return
    #: correlations, price-made industries), from the stem's moments over the sample's stocks
    #: of the group, through the same encoder, quantiser and decoder as the market's day
    #: token; each stock's embedding adds [mean_t, last] of its group's [z || q] (the
    #: market token's for a stock without a group). Needs a CS branch and cs_context=
    #: "batch" without cs_pool_queries. Keys hold it only when it is not 0.
    cs_groups: int = 0
    #: after training, a linear read stacked on the frozen model's prior mean, fitted on the
    #: training period alone (`storm_bt.models.storm.stacked_read`):
    #: mu_y + (w + V u_t)'(c_s - cbar_t), u_t the CS branch's token of the window's last day
    #: ("token"; needs the CS branch) or the market's return of that day ("market"). The
    #: network's weights do not depend on it: it is never part of a checkpoint key.
    stacked_read: str = "none"
    #: whether that read holds a constant part w (a fixed tilt towards the characteristics)
    #: beside the day's term V u_t; never part of a checkpoint key either
    stacked_constant: bool = True
    #: where the read's penalty (or no read) is chosen: "holdout", the training period's last
    #: two years (the network's in-sample years), or "valid", the validation period (out of
    #: sample for the network); never part of a checkpoint key
    stacked_select: str = "holdout"
    factor_hidden: int = 0         # 0 = D = 2 d_model
    prior_heads: int = 4           # D7 fixed

    # loss weights, each term counted once (D4)
    commit_weight: float = 1.0
    diversity_weight: float = 0.1
    orth_weight: float = 0.1
    codebook_weight: float = 1.0   # ||sg(z) - e||^2, only with codebook_update="grad"
    clip_mode: str = "mean"        # D2
    clip_temperature: float = 1.0  # D3: logits scaled by exp(clip_temperature)
    clip_weight: float = 1e-3
    recon_reduction: str = "mean"  # "sum": per-sample SSE (official)
    recon_weight: float = 0.1
    recon_cs_scale: float = 1.0    # extra factor on the CS reconstruction (both branches)
    kl_weight: float = 0.1
    #: posterior return fit: "mse" of mu_y, Gaussian "nll", or the official "sample" MSE
    ret_loss: str = "mse"
    ret_weight: float = 1.0
    #: MSE of the prior (prediction-path) mu_y against the label
    pred_weight: float = 1.0
    #: 1 - mean daily Pearson correlation of the prior mu_y with the label (D39: on by
    #: default, chosen on validation; parity turns it off)
    ic_weight: float = 1.0
    price_weight: float = 0.1
    label_norm: str = "cs_zscore"  # D21

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            checks.one_of(self, name, allowed)
        checks.at_least(self, 1, "n_stocks", "n_features", "n_price", "history", "ts_patch",
                        "d_model", "enc_depth", "dec_depth", "n_heads", "codebook_size",
                        "prior_heads", "fusion_depth", "cs_factor_pool")
        checks.not_negative(self, "code_dim", "cs_stem", "factor_hidden", "dead_code_threshold",
                            "dead_code_idle_steps", "commit_weight", "diversity_weight",
                            "orth_weight", "codebook_weight", "clip_weight", "recon_weight",
                            "recon_cs_scale", "kl_weight", "ret_weight", "pred_weight",
                            "ic_weight", "price_weight")
        checks.positive(self, "mlp_ratio", "diversity_temperature", "orth_max_codes")
        if not math.isfinite(self.clip_temperature):
            raise StormBtError(f"StormConfig.clip_temperature={self.clip_temperature}: must be "
                               "finite (the logits are scaled by its exp)")
        if self.n_price > self.n_features:
            raise StormBtError(f"StormConfig.n_price={self.n_price} exceeds "
                               f"n_features={self.n_features}")
        if self.history % self.ts_patch:
            raise StormBtError(f"StormConfig.history={self.history} is not a multiple of "
                               f"ts_patch={self.ts_patch}; pick a patch that divides it")
        if self.history % self.cs_factor_pool:
            raise StormBtError(f"StormConfig.history={self.history} is not a multiple of "
                               f"cs_factor_pool={self.cs_factor_pool}; pick a pool that divides "
                               "it")
        if self.d_model % self.n_heads:
            raise StormBtError(f"StormConfig.d_model={self.d_model} is not divisible by "
                               f"n_heads={self.n_heads}")
        if self.hidden % self.prior_heads:
            raise StormBtError(f"StormConfig: factor width {self.hidden} is not divisible by "
                               f"prior_heads={self.prior_heads}")
        if self.d_model % self.fusion_heads:
            raise StormBtError(f"StormConfig.d_model={self.d_model} is not divisible by "
                               f"fusion_heads={self.fusion_heads}")
        if self.fusion != "none" and self.branches != "both":
            raise StormBtError(f"StormConfig.fusion={self.fusion!r} needs branches='both', "
                               f"got {self.branches!r}")
        if self.factor_tokens == "ts" and self.branches == "cs":
            raise StormBtError("StormConfig.factor_tokens='ts' needs a TS branch, got "
                               "branches='cs'")
        if self.factor_tokens == "ts" and self.branches == "both" and self.fusion == "none":
            raise StormBtError("StormConfig.factor_tokens='ts' with both branches needs a fusion, "
                               "or the CS branch never reaches the factors; set fusion='gated' "
                               "or 'cross', or factor_tokens='both'")
        if self.ts_relative and (self.branches != "both" or self.ts_input != "stem"):
            raise StormBtError(
                "StormConfig.ts_relative=True needs both branches (the cross-sectional mean "
                "is the CS view) and ts_input='stem'; got "
                f"branches={self.branches!r}, ts_input={self.ts_input!r}")
        if self.cs_pool_queries < 0:
            raise StormBtError(f"StormConfig.cs_pool_queries={self.cs_pool_queries}: must be "
                               ">= 0 (0 = the cross-sectional moments alone)")
        if self.cs_pool_queries and self.cs_context != "batch":
            raise StormBtError(
                f"StormConfig.cs_pool_queries={self.cs_pool_queries} needs cs_context='batch': "
                "the universe context gives the CS branch the stem's moments only; set "
                "cs_context='batch' or cs_pool_queries=0")
        if self.cs_groups < 0:
            raise StormBtError(f"StormConfig.cs_groups={self.cs_groups}: must be >= 0 (0 = no "
                               "groups)")
        if self.cs_groups and ("cs" not in self.branch_names or self.cs_context != "batch"
                               or self.cs_pool_queries):
            raise StormBtError(
                f"StormConfig.cs_groups={self.cs_groups} needs a CS branch with "
                "cs_context='batch' and cs_pool_queries=0; got "
                f"branches={self.branches!r}, cs_context={self.cs_context!r}, "
                f"cs_pool_queries={self.cs_pool_queries}")
        if self.characteristics_read == "state" and "cs" not in self.branch_names:
            raise StormBtError(
                "StormConfig.characteristics_read='state' reads the CS branch's day token; "
                f"branches={self.branches!r} has none: use 'linear' or 'embedding', or a "
                "model with a CS branch (storm, storm-cs)")
        if self.stacked_read == "token" and "cs" not in self.branch_names:
            raise StormBtError(
                "StormConfig.stacked_read='token' reads the CS branch's day token; "
                f"branches={self.branches!r} has none: use 'market' or 'none', or a model "
                "with a CS branch (storm, storm-cs)")
        if not 0.0 <= self.cs_stem_grad <= 1.0:
            raise StormBtError(f"StormConfig.cs_stem_grad={self.cs_stem_grad}: use a value in "
                               "[0, 1]")
        if not 0.0 <= self.ema_decay < 1.0:
            raise StormBtError(f"StormConfig.ema_decay={self.ema_decay}: use a value in [0, 1)")
        if self.price_fields is not None and len(self.price_fields) != self.n_price:
            raise StormBtError(f"StormConfig.price_fields={self.price_fields} has "
                               f"{len(self.price_fields)} names, n_price={self.n_price}")

    # ------------------------------------------------------------------ derived sizes
    @property
    def branch_names(self) -> tuple[str, ...]:
        return ("cs", "ts") if self.branches == "both" else (self.branches,)

    @property
    def n_ts_blocks(self) -> int:
        return self.history // self.ts_patch

    @property
    def n_cs_tokens(self) -> int:
        return self.history

    @property
    def n_ts_tokens(self) -> int:
        """TS tokens of one sample as `factors` returns them: (T / p) blocks x S stocks."""
        return self.n_ts_blocks * self.n_stocks

    @property
    def n_cs_factors(self) -> int:
        """CS market tokens: the T day tokens averaged in blocks of cs_factor_pool days."""
        return self.history // self.cs_factor_pool

    @property
    def n_factors(self) -> int:
        """M: the number of market tokens (and of latent factors z); independent of S."""
        return sum(self.n_cs_factors if b == "cs" else self.n_ts_blocks
                   for b in self.factor_branches)

    @property
    def factor_branches(self) -> tuple[str, ...]:
        """The branches whose tokens are market tokens (factors) of the head."""
        return ("ts",) if self.factor_tokens == "ts" else self.branch_names

    @property
    def factor_dim(self) -> int:
        """D = 2 d: a factor token is [z || q]."""
        return 2 * self.d_model

    @property
    def stem_dim(self) -> int:
        """F': the width of the per-day stock stem (F when there is none)."""
        return self.cs_stem or self.n_features

    @property
    def ts_uses_stem(self) -> bool:
        """The TS branch exists and patches the stem (D37), not the raw features."""
        return "ts" in self.branch_names and self.ts_input == "stem"

    @property
    def stock_uses_stem(self) -> bool:
        """A stock's embedding includes its stem summary: always without a TS branch, and
        with one when stock_embedding="tokens+stem" (D38)."""
        return "ts" not in self.branch_names or self.stock_embedding == "tokens+stem"

    @property
    def uses_stem(self) -> bool:
        """Whether the model builds the stem at all (CS pools it, TS or stocks read it)."""
        return "cs" in self.branch_names or self.ts_uses_stem or self.stock_uses_stem

    @property
    def ts_token_inputs(self) -> int:
        """C: the per-day width a TS patch embeds (F' of the stem, or the raw F)."""
        return self.stem_dim if self.ts_input == "stem" else self.n_features

    @property
    def stock_dim(self) -> int:
        """E: the width of a stock's embedding before the factor head."""
        tokens = 4 * self.d_model if "ts" in self.branch_names else 0
        characteristics = len(CHARACTERISTIC_NAMES) \
            if self.characteristics and self.characteristics_read == "embedding" else 0
        groups = 4 * self.d_model if self.cs_groups else 0
        return (tokens + (2 * self.stem_dim if self.stock_uses_stem else 0) + characteristics
                + groups)

    @property
    def linear_characteristics(self) -> int:
        """K when the head reads the characteristics through a linear term (with constant
        or day-state weights), else 0."""
        return len(CHARACTERISTIC_NAMES) \
            if self.characteristics and self.characteristics_read in ("linear", "state") else 0

    @property
    def state_read_dim(self) -> int:
        """d when the linear read's weights move with the CS day token (the width of that
        token), else 0."""
        return self.d_model if self.linear_characteristics \
            and self.characteristics_read == "state" else 0

    @property
    def hidden(self) -> int:
        return self.factor_hidden or self.factor_dim

    @property
    def resolved_code_dim(self) -> int:
        return self.code_dim or self.d_model

    @property
    def resolved_price_fields(self) -> tuple[str, ...] | None:
        """The names of the price columns, or None when they cannot be inferred."""
        if self.price_fields is not None:
            return tuple(self.price_fields)
        if self.n_price == len(PRICE_FIELDS):
            return PRICE_FIELDS
        if self.n_price == 2:
            return ("close", "adj_close")
        return None

    # ------------------------------------------------------------------ helpers
    def with_data(self, n_stocks: int, n_features: int,
                  price_fields: tuple[str, ...] | list[str]) -> "StormConfig":
        """This preset sized for a data set (S stocks, F features, its price columns)."""
        fields = tuple(price_fields)
        return replace(self, n_stocks=n_stocks, n_features=n_features, n_price=len(fields),
                       price_fields=fields)

    def to_dict(self) -> dict:
        return asdict(self)


#: CI / unit tests: a training step in well under a second on one core.
tiny = StormConfig(history=32, ts_patch=8, d_model=32, enc_depth=1, dec_depth=1, n_heads=4,
                   codebook_size=64, cs_stem=16)
#: STORM_SPEC section 11, the CPU-trainable preset, with the issue-9 defaults; TS patches of
#: 16 days (D40: 4 TS tokens a stock, a step 20-28% cheaper), the CS reconstruction at a
#: tenth of the TS one (D42), and (D43) a factor head on the TS tokens alone that reads the
#: CS view through the gated fusion, with no CS gradient into the shared stem, and (D44)
#: each stock's embedding in the head reads the other stocks of its sample (storm-ts, without
#: the cross-section, does not), and (D45) after training a read of the characteristics
#: weighted by the market's day is stacked on the frozen model (storm-ts does without it
#: too), (D46) its penalty (or no read) chosen on the validation period, where the network's
#: predictions are out of sample; all chosen on validation.
small = StormConfig(history=64, ts_patch=16, d_model=64, enc_depth=2, dec_depth=1, n_heads=4,
                    codebook_size=128, cs_stem=16, recon_cs_scale=0.1, fusion="gated",
                    factor_tokens="ts", cs_stem_grad=0.0, peer_attention=True,
                    stacked_read="market", stacked_select="valid")
#: Official DJ30 sizes with the fixed resolutions and the cross-branch fusion (D1).
paper = StormConfig(history=64, ts_patch=4, d_model=256, enc_depth=4, dec_depth=2, n_heads=4,
                    codebook_size=512, cs_stem=32, fusion="cross")
#: Official sizes and the official code's losses where a switch exists: no fusion (D1), CLIP
#: on token 0 (D2), quantiser losses counted twice (D4), diversity sign quirk (D6), raw
#: labels (D21), summed reconstruction at 1e-3 with CS x 1e-3, the sample-MSE return loss at
#: 0.1, no prediction-path losses (MSE or IC), no dead-code reset, unnormalised codes, TS
#: patches of the raw features and stock embeddings from the TS tokens alone. The layout
#: (per-stock TS attention, stock-shared factor head) is the linear-cost one of every preset.
parity = replace(paper, fusion="none", clip_mode="token0", diversity="parity",
                 diversity_temperature=1.0, commit_weight=2.0, diversity_weight=0.2,
                 orth_weight=0.2, label_norm="none", recon_reduction="sum", recon_weight=1e-3,
                 recon_cs_scale=1e-3, ret_loss="sample", ret_weight=0.1, pred_weight=0.0,
                 ic_weight=0.0,
                 dead_code_threshold=0.0, dead_code_idle_steps=0, normalize_codes=False,
                 ts_input="features", stock_embedding="tokens")

PRESETS: dict[str, StormConfig] = {"tiny": tiny, "small": small, "paper": paper,
                                   "parity": parity}


def get_preset(name: str) -> StormConfig:
    """The preset called `name`."""
    if name not in PRESETS:
        raise StormBtError(f"unknown STORM preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
