"""Shared fixtures: real data panels, skipped with a reason where the data is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from storm_bt.data import load_panel

#: The shared real-data folder (beside the checkout); override with STORM_BT_SHARED_DATA.
SHARED_DATA = Path(os.environ.get(
    "STORM_BT_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    if not (SHARED_DATA / "dj30_daily.csv.gz").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (set STORM_BT_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def dj30_panel(shared_data_dir):
    """The Dow 30 file (OHLCV, 2000-2024)."""
    return load_panel(shared_data_dir / "dj30_daily.csv.gz")


@pytest.fixture(scope="session")
def embedded_panel():
    """The embedded skfolio S&P 500 sample (20 stocks, close-only, 1990-2022)."""
    return load_panel()
