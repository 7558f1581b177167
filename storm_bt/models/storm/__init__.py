"""STORM (arXiv 2412.09468): dual VQ-VAE spatio-temporal factor model, one configurable model.

    config.py       StormConfig and the presets tiny / small / paper / parity
    layers.py       patching, separable positions, pre-LN transformer, encoder/decoder
    quantizer.py    EMA / gradient vector quantiser
    fusion.py       CrossViT multiscale fusion of the two branches (D1)
    factor_head.py  posterior / prior / alpha-beta return decoder
    losses.py       the loss terms as pure functions
    model.py        StormModel: losses / predict / factors / codebook statistics
    synthetic.py    seeded random batches of a config's shapes (tests, benchmarks)
"""
from storm_bt.models.storm.config import PRESETS, StormConfig, get_preset, paper, parity, small, tiny
from storm_bt.models.storm.model import StormModel

__all__ = ["PRESETS", "StormConfig", "StormModel", "get_preset", "paper", "parity", "small", "tiny"]
