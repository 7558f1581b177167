"""STORM (arXiv 2412.09468): dual VQ-VAE spatio-temporal factor model, one configurable model.

Cost and size are linear in / independent of the number of stocks S: the TS branch runs
each stock's own sequence, the CS branch pools the cross-section per day, and the factor
head is shared across stocks (see model.py for the maths).

    config.py       StormConfig and the presets tiny / small / paper / parity
    layers.py       CS pooling, per-stock TS patching, positions, pre-LN transformer
    quantizer.py    EMA / gradient vector quantiser
    fusion.py       cross-branch fusion, linear in S (D1)
    factor_head.py  stock-shared posterior / prior / alpha-beta return decoder
    losses.py       the loss terms as pure functions
    model.py        StormModel: losses / predict / factors / codebook statistics
    synthetic.py    seeded random batches of a config's shapes (tests, benchmarks)
"""
from storm_bt.models.storm.config import PRESETS, StormConfig, get_preset, paper, parity, small, tiny
from storm_bt.models.storm.model import StormModel

__all__ = ["PRESETS", "StormConfig", "StormModel", "get_preset", "paper", "parity", "small", "tiny"]
