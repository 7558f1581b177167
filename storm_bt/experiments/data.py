"""The data an experiment runs on: which prices, which tickers and which split.

`DataConfig` holds the user's choices as plain values (a notebook builds one directly, the
CLI from flags); `load_experiment_data` turns it into the panel, cut at the end of the test
period so that nothing after it is ever read, and the validated chronological `Split`.
"""
from __future__ import annotations

from dataclasses import dataclass

from storm_bt.data import EMBEDDED, Panel, load_panel
from storm_bt.errors import StormBtError
from storm_bt.features.dataset import Split, make_split

#: Fewest training days a split may have (the models' 64-day windows and a year to learn).
MIN_TRAIN_DAYS = 252
#: Days of history a split chosen from the data leaves before its training start, so that
#: the first training sample has a full window (the neural models' 64 days).
MIN_HISTORY = 64


@dataclass(frozen=True)
class DataConfig:
    """Prices, ticker subset and split dates (None: the defaults for the data, see `make_split`).

    ``data`` is ``"embedded"``, a path to a long CSV/CSV.gz/Parquet file or a folder of Yahoo
    CSVs. ``tickers`` restricts the universe (None: every ticker in the data).
    """

    data: str = EMBEDDED
    tickers: tuple[str, ...] | None = None
    train_start: str | None = None
    valid_start: str | None = None
    test_start: str | None = None
    test_end: str | None = None

    def __post_init__(self) -> None:
        if self.tickers is not None:
            if not self.tickers:
                raise StormBtError("--tickers: give at least one ticker")
            object.__setattr__(self, "tickers", tuple(dict.fromkeys(self.tickers)))

    def dates(self) -> tuple[str | None, str | None, str | None, str | None]:
        return self.train_start, self.valid_start, self.test_start, self.test_end


def load_experiment_data(config: DataConfig, min_tickers: int = 2,
                         min_train_days: int = MIN_TRAIN_DAYS) -> tuple[Panel, Split]:
    """The panel (restricted to ``config.tickers``, cut at the test end) and the split."""
    panel = load_panel(config.data, list(config.tickers) if config.tickers else None)
    if len(panel.tickers) < min_tickers:
        raise StormBtError(f"{panel.source}: need at least {min_tickers} tickers, "
                           f"got {len(panel.tickers)}")
    split = make_split(panel.dates, *config.dates(), min_train_days=min_train_days,
                       min_history=MIN_HISTORY)
    return panel.until(split.test_end), split
