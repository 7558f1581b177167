"""A read stacked on a fitted, frozen STORM: the day's state re-weights the characteristics.

Trained jointly inside STORM (``characteristics_read="state"``) such a read is used, but
the rest of the model then learns less (journal, thirty-second session). Here the network
is fitted first and left as it is; then, on the training period only, its prior mean mu
gets one linear read added:

    score_{t,s} = mu_{t,s} + (w + V u_t)'(c_{t,s} - cbar_t)     (w = 0 without the constant)

- c_{t,s} (K = 4): the stock's characteristic ranks on date t (`FeatureSet.characteristics`),
  cbar_t their mean over the date's stocks (so the read adds no day-level constant);
- u_t, the day's state, known at t:
  "token":  the CS branch's token of date t (the window's last day, `z_cs[:, -1]`, d
            numbers), centred by its training mean;
  "market": the market's return on date t (the mean over stocks of the h-day return that
            ends at t), standardised by its training mean and standard deviation.

theta = [w; V'] ((1 + d_u) x K) is the ridge least squares of the residual r = y - mu on
x_{t,s} = [1, u_t] (x) (c_{t,s} - cbar_t) over every labelled (date, stock) of the training
period, y the label z-scored per date (the model's own training target):

    theta = (X'X + lambda n I)^-1 X'r,   X'X = sum_t (v_t v_t') (x) (C_t'C_t),
    X'r = sum_t v_t (x) (C_t' r_t),      v_t = [1, u_t],  C_t the date's centred c (n_t x K)

(one K x K product a date, never the n x (1 + d_u) K design). Without the constant
(``constant=False``) v_t = u_t and theta = V' (d_u x K): the read is the day's re-weighting
alone, with no fixed tilt towards the characteristics. lambda comes from `LAMBDAS` by
the mean daily RankIC, on the training period's last `HOLDOUT_YEARS` years, of a fit on the
years before them; "no read" is a candidate too and wins ties, so a read that does not
help there is left out (as it is, with a warning, when the training period is too short to
hold those years out). The chosen lambda is then refitted on the whole training period.
Nothing after the training period is read.

With ``select="valid"`` (`stacked_select`) theta is fitted for each lambda on the whole
training period and lambda (or no read) is chosen by the mean daily RankIC on the
validation period instead, where the network's predictions are out of sample; the read
then depends on the validation period's labels too, as the network's epoch does. Nothing
after the validation period is read.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from storm_bt.errors import StormBtError
from storm_bt.evaluation.ic import daily_rank_ic

log = logging.getLogger(__name__)

#: the day's state the read is weighted by ("none": no stacked read)
STATES = ("none", "token", "market")
#: ridge penalties tried, per labelled (date, stock) row
LAMBDAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
#: the training period's last years that choose lambda
HOLDOUT_YEARS = 2


@dataclass
class StackedInputs:
    """Per date t of a range (N dates, S stocks): the frozen model's prior mean ``mu``
    (N, S), the CS token of the date ``token`` (N, d) (None without a CS branch), the
    characteristics ``chars`` (N, S, K), the market's return ``market`` (N,), and, for a
    fit, the labels z-scored per date ``y`` (N, S) (NaN where unknown)."""

    dates: pd.DatetimeIndex
    mu: np.ndarray
    token: np.ndarray | None
    chars: np.ndarray
    market: np.ndarray
    y: np.ndarray | None = None


@dataclass
class StackedRead:
    """The fitted read: state, its centring (``u_mean``, ``u_scale``), theta ((1+d_u) x K,
    or d_u x K without the constant), lambda, and the hold-out's mean daily RankIC by
    candidate ("none" and each lambda)."""

    state: str
    u_mean: np.ndarray
    u_scale: np.ndarray
    theta: np.ndarray | None
    lam: float | None
    holdout: dict[str, float] = field(default_factory=dict)
    #: why no read was fitted, where the data did not allow one
    note: str = ""
    #: whether theta holds the constant part w (its first row)
    constant: bool = True
    #: where lambda was chosen: "holdout" (the training period's last years) or "valid"
    #: (the validation period); ``holdout`` holds that range's RankIC by candidate
    select: str = "holdout"

    def scores(self, inputs: StackedInputs) -> np.ndarray:
        """(N, S) mu plus the read (mu alone when no read was chosen); NaN where mu is."""
        if self.theta is None:
            return inputs.mu.copy()
        v = self._v(inputs)
        return inputs.mu + _read(self.theta, v, _centred(inputs.chars, np.isfinite(inputs.mu)))

    def summary(self) -> dict:
        """Plain values for a run's config.json."""
        return {"state": self.state, "lambda": self.lam,
                "holdout_rank_ic": {k: round(v, 6) for k, v in self.holdout.items()},
                "constant": self.constant, "select": self.select,
                "w": None if self.theta is None or not self.constant
                else self.theta[0].round(6).tolist(),
                "v_norm": None if self.theta is None
                else float(np.linalg.norm(self.theta[int(self.constant):])),
                **({"note": self.note} if self.note else {})}

    def _v(self, inputs: StackedInputs) -> np.ndarray:
        return _state_basis(self.state, inputs, self.u_mean, self.u_scale, self.constant)


def state_values(state: str, inputs: StackedInputs) -> np.ndarray:
    """(N, d_u) u_t before centring."""
    if state == "token":
        if inputs.token is None:
            raise StormBtError("the stacked read 'token' needs the CS branch's day token; "
                               "use stacked_read='market' or a model with a CS branch")
        return inputs.token.astype(np.float64)
    if state == "market":
        return inputs.market.astype(np.float64)[:, None]
    raise StormBtError(f"stacked_read={state!r}: choose one of {', '.join(STATES)}")


def _with_constant(u: np.ndarray, constant: bool) -> np.ndarray:
    """v_t: [1, u_t], or u_t alone."""
    return np.concatenate([np.ones((len(u), 1)), u], axis=1) if constant else u


def _state_basis(state: str, inputs: StackedInputs, u_mean: np.ndarray, u_scale: np.ndarray,
                 constant: bool) -> np.ndarray:
    """(N, 1 + d_u) or (N, d_u) v_t of ``inputs``: the day's state centred and scaled by the
    training period's ``u_mean`` and ``u_scale``, with the constant when ``constant``."""
    return _with_constant((state_values(state, inputs) - u_mean) / u_scale, constant)


def _rows(inputs: StackedInputs, keep: np.ndarray) -> StackedInputs:
    """The dates of ``inputs`` where ``keep`` (N,) holds."""
    return StackedInputs(inputs.dates[keep], inputs.mu[keep],
                         None if inputs.token is None else inputs.token[keep],
                         inputs.chars[keep], inputs.market[keep],
                         None if inputs.y is None else inputs.y[keep])


def _centred(chars: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N, S, K) c - cbar_t over the stocks in ``mask`` (N, S); 0 outside it."""
    m = mask[..., None].astype(np.float64)
    n = np.maximum(m.sum(axis=1, keepdims=True), 1.0)
    c = np.nan_to_num(chars.astype(np.float64)) * m
    return (c - c.sum(axis=1, keepdims=True) / n) * m


def _read(theta: np.ndarray, v: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(N, S) (w + V u_t)'c_{t,s}: the per-date weights v_t' theta (N, K) against c."""
    return np.einsum("nk,nsk->ns", v @ theta, c)


def _moments(v: np.ndarray, c: np.ndarray, r: np.ndarray):
    """sum_t (v v') (x) (C'C), sum_t v (x) C'r, n over the dates given."""
    cc = np.einsum("nsk,nsl->nkl", c, c)                        # (N, K, K)
    cr = np.einsum("nsk,ns->nk", c, r)                          # (N, K)
    xtx = np.einsum("ni,nj,nkl->ikjl", v, v, cc)
    xtr = np.einsum("ni,nk->ik", v, cr)
    dim = v.shape[1] * c.shape[2]
    return xtx.reshape(dim, dim), xtr.reshape(dim)


def _solve(xtx: np.ndarray, xtr: np.ndarray, n: float, lam: float, width: int) -> np.ndarray:
    theta = np.linalg.solve(xtx + lam * n * np.eye(len(xtr)), xtr)
    return theta.reshape(-1, width)


def _mean_rank_ic(scores: np.ndarray, y: np.ndarray, dates: pd.DatetimeIndex) -> float:
    frame = lambda a: pd.DataFrame(a, index=dates)              # noqa: E731
    return float(daily_rank_ic(frame(scores), frame(y)).mean())


def fit_stacked_read(state: str, inputs: StackedInputs,
                     lambdas: tuple[float, ...] = LAMBDAS,
                     holdout_years: int = HOLDOUT_YEARS, constant: bool = True,
                     select: StackedInputs | None = None) -> StackedRead:
    """The read on ``inputs`` (the training period's labelled dates, with ``y``): lambda
    chosen on its last ``holdout_years`` years, then refitted on all of it; with
    ``constant=False`` without the constant part w.

    With ``select`` (the validation period's labelled dates, with ``y``), each lambda is
    fitted on the whole training period and lambda or no read is chosen by the mean daily
    RankIC on ``select`` instead, where the network's predictions are out of sample (on the
    training period's own years they are not)."""
    if inputs.y is None or (select is not None and select.y is None):
        raise ValueError("fit_stacked_read needs the labels (StackedInputs.y)")
    u = state_values(state, inputs)
    if select is None:
        cut = inputs.dates[-1] - pd.DateOffset(years=holdout_years) if len(inputs.dates) \
            else None
        early = np.asarray(inputs.dates <= cut) if cut is not None else np.zeros(0, bool)
        short = early.sum() < 2 or (~early).sum() < 2
        why = f"is too short to hold out its last {holdout_years} years"
    else:
        early = np.ones(len(inputs.dates), bool)
        short = len(inputs.dates) < 2 or len(select.dates) < 2
        why = "or the validation period has fewer than 2 labelled dates"
    if short:
        span = (f"{inputs.dates[0].date()} .. {inputs.dates[-1].date()}"
                if len(inputs.dates) else "no labelled window")
        note = (f"the training period ({span}) {why}, so no read is stacked; use a longer "
                "period for one")
        log.warning("stacked read %s: %s", state, note)
        width = u.shape[1]
        return StackedRead(state, np.zeros(width), np.ones(width), None, None, note=note,
                           constant=constant)
    u_mean = u.mean(axis=0)
    u_scale = u.std(axis=0) if state == "market" else np.ones(u.shape[1])
    if not np.all(u_scale > 0):
        raise StormBtError(f"stacked read {state!r}: the day's state is constant over the "
                           "training period; use a longer training period")
    v = _with_constant((u - u_mean) / u_scale, constant)
    labelled = np.isfinite(inputs.y) & np.isfinite(inputs.mu)
    c = _centred(inputs.chars, labelled)
    r = np.where(labelled, inputs.y - np.nan_to_num(inputs.mu), 0.0)
    k = c.shape[2]
    xtx, xtr = _moments(v[early], c[early], r[early])
    n_early = float(labelled[early].sum())
    # the dates that judge each lambda: the training period's last years, or the validation
    judge = _rows(inputs, ~early) if select is None else select
    judged = np.isfinite(judge.y) & np.isfinite(judge.mu)
    v_j = _state_basis(state, judge, u_mean, u_scale, constant)
    c_j = _centred(judge.chars, judged)
    y_j = np.where(judged, judge.y, np.nan)
    holdout = {"none": _mean_rank_ic(judge.mu, y_j, judge.dates)}
    best, best_ic, theta = None, holdout["none"], None
    for lam in lambdas:
        candidate = _solve(xtx, xtr, n_early, lam, k)
        ic = _mean_rank_ic(judge.mu + _read(candidate, v_j, c_j), y_j, judge.dates)
        holdout[f"{lam:g}"] = ic
        if ic > best_ic:
            best, best_ic, theta = lam, ic, candidate
    if best is not None and select is None:     # refitted on the held-out years too
        xtx, xtr = _moments(v, c, r)
        theta = _solve(xtx, xtr, float(labelled.sum()), best, k)
    log.info("stacked read %s: %s RankIC %s -> %s", state,
             "hold-out" if select is None else "validation",
             {key: round(value, 4) for key, value in holdout.items()},
             "no read" if best is None else f"lambda {best:g}")
    return StackedRead(state, u_mean, u_scale, theta, best, holdout, constant=constant,
                       select="holdout" if select is None else "valid")
