"""Factor selection by codebook cluster: exposures and usage by hand, the selection finds a
planted predictive cluster, and the example runs end to end on real data."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from storm_bt.evaluation.factor_selection import (cluster_codebook, cluster_exposures, codebook_usage,
                                       select_clusters)


def test_cluster_exposures_by_hand():
    # 2 blocks x 3 stocks, time-major: tokens (b0 s0, b0 s1, b0 s2, b1 s0, b1 s1, b1 s2).
    codes = np.array([[0, 1, 2, 3, 1, 0]])
    code_cluster = np.array([0, 1, 1, 0])  # codes 0, 3 -> cluster 0; codes 1, 2 -> cluster 1
    x = cluster_exposures(codes, code_cluster, n_stocks=3, n_clusters=2)
    # stock 0: codes 0, 3 -> both cluster 0; stock 1: 1, 1 -> cluster 1; stock 2: 2, 0 -> half
    np.testing.assert_allclose(x[0], [[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]])


def test_codebook_usage_perplexity_by_hand():
    table, perplexity = codebook_usage(np.array([[0, 0, 1, 2]]), n_codes=4)
    p = np.array([0.5, 0.25, 0.25])
    assert perplexity == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert table["count"].tolist() == [2, 1, 1, 0] and table["code"].iloc[0] == 0


def test_kmeans_groups_nearby_codes():
    codebook = np.array([[0, 0], [0.1, 0], [10, 10], [10.1, 10]])
    g = cluster_codebook(codebook, 2, seed=0)
    assert g[0] == g[1] != g[2] == g[3]


def test_selection_finds_the_predictive_cluster_and_builds_its_signal():
    rng = np.random.default_rng(0)
    n, c, s = 120, 4, 12
    dates = pd.bdate_range("2020-01-01", periods=n)
    tickers = [f"S{i}" for i in range(s)]
    x = rng.random((n, c, s))
    realised = rng.normal(size=(n, s)) + 0.5 * x[:, 2, :]  # cluster 2 predicts returns
    chosen = select_clusters(x[:60], realised[:60], dates[:60], tickers, top=1)
    assert chosen.selected == [2] and chosen.signs == [1.0]
    # The composite on later dates is built from exposures alone: no return enters it.
    signal = chosen.signal(x[60:])
    z = (x[60:, 2, :] - x[60:, 2, :].mean(1, keepdims=True)) / x[60:, 2, :].std(1, keepdims=True)
    np.testing.assert_allclose(signal, z)


def test_example_runs_on_real_data(tmp_path):
    import torch

    torch.set_num_threads(1)
    path = Path(__file__).resolve().parents[2] / "examples" / "factor_selection.py"
    spec = importlib.util.spec_from_file_location("factor_selection_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--tickers", "AAPL", "JPM", "KO", "MSFT", "PG", "XOM", "--epochs", "1",
                       "--threads", "1", "--clusters", "4", "--top", "2",
                       "--split", "2012-01-01", "2017-01-01", "2018-01-01", "2018-12-31",
                       "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")])
    assert len(out["selection"].selected) == 2
    assert np.isfinite(out["results"]["RankIC"]).all()
    scores = pd.read_csv(tmp_path / "out" / "cluster_scores.csv")
    assert len(scores) == 4
