"""Loaders that turn every supported input into a validated `Panel`.

Sources:
- ``"embedded"`` (the default): the real S&P 500 sample shipped by the PyPI package
  skfolio (20 stocks, adjusted close, 1990-01-02 .. 2022-12-28), close-only.
- a long-format ``.csv``, ``.csv.gz`` or ``.parquet`` file with columns
  ``date,ticker,open,high,low,close,adj_close,volume`` (the format of ``shared/data``); a
  Parquet file may keep date and ticker in its index, as pandas writes a frame indexed by
  them. A file with a ``date`` column and no ``ticker`` or price-field column is wide: one
  column of adjusted close per ticker (`storm_bt.data.frames.is_wide`);
- a folder of per-ticker CSVs as Yahoo Finance exports them
  (``Date,Open,High,Low,Close,Adj Close,Volume``; the file name is the ticker);
- a pandas DataFrame: long (with a ``ticker`` column, or indexed by (date, ticker)),
  wide (date index, one column of adjusted close per ticker, NaN where a stock has no
  price) or with yfinance-style MultiIndex columns (see `storm_bt.data.frames`).

Each file's dates are in one format, detected from its values (`storm_bt.data.dates`), and
row order carries no information (rows are sorted by ticker, date).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from storm_bt.data.frames import index_as_columns, is_wide, long_from_frame
from storm_bt.data.panel import Panel, panel_from_long
from storm_bt.data.validate import validate_long
from storm_bt.errors import StormBtError

log = logging.getLogger(__name__)

EMBEDDED = "embedded"


def load_panel(source: str | Path | pd.DataFrame | None = None,
               tickers: list[str] | None = None) -> Panel:
    """Load prices from `source` (see module docstring) and keep `tickers` if given."""
    if isinstance(source, pd.DataFrame):
        panel = panel_from_frame(source, "<DataFrame>")
    elif source is None or str(source) == EMBEDDED:
        panel = load_embedded()
    else:
        path = Path(source)
        if not path.exists():
            raise StormBtError(f"{path}: no such file or folder; give --data a long CSV/Parquet "
                               "file, a folder of Yahoo CSVs, or 'embedded'")
        if path.is_dir():
            panel = load_yahoo_folder(path)
        else:
            panel = load_long_file(path)
    if tickers:
        panel = panel.select(tickers)
    log.info("loaded %s: %d tickers, %d days (%s .. %s), fields %s", panel.source,
             len(panel.tickers), len(panel.dates), panel.dates[0].date(), panel.dates[-1].date(),
             ",".join(panel.fields))
    return panel


def load_embedded() -> Panel:
    """The skfolio S&P 500 sample: 20 stocks of adjusted close prices, 1990-2022.

    The file is read where skfolio installs it, as skfolio's ``load_sp500_dataset`` reads
    it, without importing skfolio (whose import loads cvxpy and scikit-learn: about 2.5 s
    before the first input check); skfolio's loader is the fallback where the file is not
    there."""
    prices = _read_skfolio_sp500()
    if prices is None:
        from skfolio.datasets import load_sp500_dataset

        prices = load_sp500_dataset()
    return panel_from_frame(prices, "embedded skfolio S&P 500 sample")


def _read_skfolio_sp500() -> pd.DataFrame | None:
    """skfolio's ``datasets/data/sp500_dataset.csv.gz`` (dates x tickers) read as skfolio
    reads it, or None where skfolio or the file is missing."""
    import importlib.util

    spec = importlib.util.find_spec("skfolio")   # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "datasets" / "data" / "sp500_dataset.csv.gz"
        if path.is_file():
            prices = pd.read_csv(path, sep=",", index_col=0, compression="gzip")
            prices.index = pd.to_datetime(prices.index, format="%Y-%m-%d")
            return prices
    return None


def panel_from_frame(frame: pd.DataFrame, source: str) -> Panel:
    """A panel from a long, wide or yfinance-style frame (see `storm_bt.data.frames`)."""
    return panel_from_long(long_from_frame(frame, source), source)


def load_long_file(path: Path) -> Panel:
    """A long-format CSV, CSV.gz or Parquet file."""
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            # a file written from a frame indexed by (date, ticker) or by date keeps them in
            # its index
            frame = index_as_columns(pd.read_parquet(path))
            line_offset = None
        elif name.endswith((".csv", ".csv.gz", ".txt")):
            frame = pd.read_csv(path)
            line_offset = 2
        else:
            raise StormBtError(f"{path}: unknown file type; use .csv, .csv.gz or .parquet")
    except StormBtError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types; the user needs one line
        raise StormBtError(f"{path}: cannot read it ({type(exc).__name__}: {exc})") from None
    if frame.empty:
        raise StormBtError(f"{path}: the file has no rows")
    if is_wide(frame):
        return panel_from_frame(frame, str(path))
    return panel_from_long(validate_long(frame, str(path), line_offset), str(path))


YAHOO_COLUMNS = {"Date": "date", "Open": "open", "High": "high", "Low": "low",
                 "Close": "close", "Adj Close": "adj_close", "Volume": "volume"}


def load_yahoo_folder(folder: Path) -> Panel:
    """A folder of per-ticker Yahoo Finance CSVs; each file name (without .csv) is a ticker.

    Yahoo writes ``null`` in every field of a day it has no price for: such a row is a
    missing day (the panel forward-fills and masks it), not an error. A row with only some
    fields missing is an error naming its line.
    """
    files = sorted(p for p in folder.iterdir() if p.name.lower().endswith((".csv", ".csv.gz")))
    if not files:
        raise StormBtError(f"{folder}: no .csv files in this folder; put one Yahoo CSV per ticker there")
    parts = []
    for path in files:
        try:
            frame = pd.read_csv(path, na_values=["null"])
        except Exception as exc:
            raise StormBtError(f"{path}: cannot read it ({type(exc).__name__}: {exc})") from None
        missing = [c for c in ("Date", "Close") if c not in frame.columns]
        if missing:
            raise StormBtError(
                f"{path}: missing column(s) {', '.join(missing)}; a Yahoo CSV has "
                "Date,Open,High,Low,Close,Adj Close,Volume"
            )
        frame = frame.rename(columns=YAHOO_COLUMNS)
        frame.insert(1, "ticker", path.name.split(".csv")[0].upper())
        fields = [c for c in YAHOO_COLUMNS.values() if c in frame.columns and c != "date"]
        no_price = frame[fields].isna().all(axis=1).to_numpy()
        if no_price.any():
            log.info("%s: %d row(s) without any price (Yahoo 'null'), read as missing days",
                     path, int(no_price.sum()))
        if no_price.all():
            raise StormBtError(f"{path}: no row has a price; drop the file")
        lines = np.flatnonzero(~no_price) + 2  # the header is line 1
        parts.append(validate_long(frame[~no_price], str(path), line_offset=lines))
    long = pd.concat(parts, ignore_index=True)
    return panel_from_long(long, str(folder))

