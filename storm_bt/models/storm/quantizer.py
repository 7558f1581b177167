"""Vector quantiser with an EMA or gradient-trained codebook (STORM_SPEC 2.4, D5, D6).

    k*(z) = argmin_k ||z - e_k||^2,   q = z + sg(e_{k*} - z)        (straight-through)

EMA update ("ema", training only), with n_k the batch count and s_k the batch sum of the
vectors assigned to code k, decay g:

    N_k <- g N_k + (1-g) n_k,   m_k <- g m_k + (1-g) s_k
    e_k  = m_k / Nbar_k,   Nbar_k = (N_k + eps) / (sum N + K eps) * sum N     (Laplace)

N starts at 1 and m at the initial codes, so e = m / Nbar holds from the start. Only the
codes used in the batch are rewritten; an unused code keeps its vector (the official code
rewrites all of them, which with N starting at 0 blows unused codes up by ~1e5). In "ema"
mode the codebook is a buffer: L_orth is reported but has no effect (as in the official
code, where the optimiser's updates are overwritten). In "grad" mode (D5 fixed option) the
codebook is a parameter trained by ||sg(z) - e||^2, L_orth and L_div.

Optional normalisation (`normalize=True`): z (after the optional projection) and every
code are kept on the sphere of radius sqrt(dim), z <- sqrt(dim) z / ||z||, so the lookup is
by cosine similarity and the scale of z cannot drift; EMA codes are renormalised after
each update.

Optional dead-code reset: at the start of a training forward, codes whose EMA count N_k is
below `dead_code_threshold`, or that no token chose in the last `dead_code_idle_steps`
training forwards, are replaced by random vectors of the current batch. (With decay 0.99
an EMA count needs hundreds of steps to fall from its mean to a small threshold; the idle
count catches a dead code within a fraction of an epoch.)
Under DDP (`storm_bt.models.neural.distributed`), in training, the counts n_k and sums s_k
are summed over the ranks, so the EMA update is the global batch's, a dead code's
replacement is rank 0's pick, and the diversity loss's pbar is the global batch's.
Usage counts since `reset_usage()` give the perplexity exp(H(usage / sum usage)).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from storm_bt.models.neural.distributed import (from_rank0, mean_over_ranks, rank_weighted,
                                                sum_over_ranks, world_size)
from storm_bt.models.storm import losses as L

LAPLACE_EPS = 1e-5


@dataclass
class QuantizerOutput:
    """q (B, L, dim) straight-through quantised vectors, codes (B, L), and the unweighted
    loss terms: commit, div, orth (and codebook in grad mode)."""

    q: torch.Tensor
    codes: torch.Tensor
    losses: dict[str, torch.Tensor]


class VectorQuantizer(nn.Module):
    def __init__(self, dim: int, codebook_size: int, code_dim: int | None = None,
                 decay: float = 0.99, update: str = "ema", dead_code_threshold: float = 0.0,
                 orth_max_codes: int = 512, diversity: str = "fixed",
                 diversity_temperature: float = 1.0, normalize: bool = False,
                 dead_code_idle_steps: int = 0):
        super().__init__()
        self.dead_code_idle_steps = dead_code_idle_steps
        self.normalize = normalize
        code_dim = code_dim or dim
        self.codebook_size, self.code_dim = codebook_size, code_dim
        self.decay, self.update = decay, update
        self.dead_code_threshold = dead_code_threshold
        self.orth_max_codes = orth_max_codes
        self.diversity, self.diversity_temperature = diversity, diversity_temperature
        self.project_in = nn.Linear(dim, code_dim) if code_dim != dim else nn.Identity()
        self.project_out = nn.Linear(code_dim, dim) if code_dim != dim else nn.Identity()
        codes = torch.empty(codebook_size, code_dim)
        nn.init.kaiming_uniform_(codes)
        if normalize:
            codes = self._to_sphere(codes)
        if update == "grad":
            self.codebook = nn.Parameter(codes)
        elif update == "ema":
            self.register_buffer("codebook", codes)
            self.register_buffer("embed_avg", codes.clone())
        else:
            raise ValueError(f"codebook update {update!r}")
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("idle_steps", torch.zeros(codebook_size), persistent=False)
        self.register_buffer("usage", torch.zeros(codebook_size, dtype=torch.float64),
                             persistent=False)

    # ------------------------------------------------------------------ forward
    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """z (B, L, dim) -> QuantizerOutput."""
        b, n, _ = z.shape
        zc = self.project_in(z)
        if self.normalize:
            zc = self._to_sphere(zc)
        flat = zc.reshape(b * n, self.code_dim)
        if self.training and (self.dead_code_threshold > 0 or self.dead_code_idle_steps > 0):
            self._reset_dead_codes(flat.detach())
        codebook = self.codebook
        if self.normalize and self.update == "grad":
            codebook = self._to_sphere(codebook)
        sq_dist = (flat.pow(2).sum(1, keepdim=True) - 2.0 * flat @ codebook.T
                   + codebook.pow(2).sum(1)[None, :]).clamp_min(0.0)
        codes = sq_dist.argmin(dim=1)
        chosen = codebook[codes]
        # under DDP in training: the batch-mean code distribution of the global batch
        distributed = self.training and world_size() > 1
        diversity = L.diversity_loss(sq_dist.view(b, n, -1), self.diversity,
                                     self.diversity_temperature,
                                     mean_over_ranks if distributed else None)
        terms = {
            "commit": L.commitment_loss(flat, chosen),
            "div": rank_weighted(diversity) if distributed else diversity,
            "orth": L.orthogonality_loss(self._orth_codes(codebook)),
        }
        if self.update == "grad":
            terms["codebook"] = L.codebook_loss(flat, chosen)
        q = flat + (chosen - flat).detach()
        with torch.no_grad():
            counts = torch.bincount(codes, minlength=self.codebook_size)
            if self.training:          # under DDP: the counts of the whole global batch
                counts = sum_over_ranks(counts)
            self.usage += counts.to(self.usage.dtype)
            if self.training:
                self._ema_step(flat.detach(), codes, counts.to(flat.dtype))
        return QuantizerOutput(self.project_out(q.view(b, n, self.code_dim)), codes.view(b, n),
                               terms)

    # ------------------------------------------------------------------ codebook upkeep
    def _orth_codes(self, codebook: torch.Tensor) -> torch.Tensor:
        if self.codebook_size <= self.orth_max_codes:
            return codebook
        keep = torch.randperm(self.codebook_size, device=codebook.device)[: self.orth_max_codes]
        return codebook[keep]

    @torch.no_grad()
    def _ema_step(self, flat: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor) -> None:
        g = self.decay
        self.cluster_size.mul_(g).add_(counts, alpha=1 - g)
        self.idle_steps.add_(1.0).masked_fill_(counts > 0, 0.0)
        if self.update != "ema":
            return  # grad mode keeps the EMA counts only, for dead-code detection
        sums = sum_over_ranks(torch.zeros_like(self.embed_avg).index_add_(0, codes, flat))
        self.embed_avg.mul_(g).add_(sums, alpha=1 - g)
        updated = self.embed_avg / self._smoothed_count()[:, None]
        if self.normalize:
            updated = self._to_sphere(updated)
        # A new tensor, not an in-place write: the old codebook is still in the autograd graph.
        self.codebook = torch.where((counts > 0)[:, None], updated, self.codebook)

    @torch.no_grad()
    def _reset_dead_codes(self, flat: torch.Tensor) -> None:
        dead = self.cluster_size < self.dead_code_threshold
        if self.dead_code_idle_steps > 0:
            dead |= self.idle_steps >= self.dead_code_idle_steps
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        # under DDP every rank holds the same state, so the same n_dead; rank 0 picks
        picks = from_rank0(flat[torch.randint(0, flat.shape[0], (n_dead,), device=flat.device)])
        if isinstance(self.codebook, nn.Parameter):
            self.codebook.data[dead] = picks  # before this forward uses it: graph-safe
        else:
            new = self.codebook.clone()
            new[dead] = picks
            self.codebook = new
        self.cluster_size[dead] = 1.0
        self.idle_steps[dead] = 0.0
        if self.update == "ema":
            self.embed_avg[dead] = picks * self._smoothed_count()[dead, None]

    def _to_sphere(self, v: torch.Tensor) -> torch.Tensor:
        """v scaled to norm sqrt(dim) along the last axis."""
        return nn.functional.normalize(v, dim=-1) * self.code_dim ** 0.5

    def _smoothed_count(self) -> torch.Tensor:
        """Nbar_k = (N_k + eps) / (sum N + K eps) * sum N."""
        total = self.cluster_size.sum()
        return (self.cluster_size + LAPLACE_EPS) / (total + self.codebook_size * LAPLACE_EPS) \
            * total

    # ------------------------------------------------------------------ usage statistics
    def reset_usage(self) -> None:
        self.usage.zero_()

    def usage_stats(self) -> dict[str, float]:
        """perplexity exp(H(u / sum u)) and the number of codes used since reset_usage()."""
        total = float(self.usage.sum())
        if total == 0:
            return {"perplexity": 0.0, "codes_used": 0.0}
        p = self.usage / total
        h = -(p[p > 0] * p[p > 0].log()).sum()
        return {"perplexity": float(h.exp()), "codes_used": float((self.usage > 0).sum())}
