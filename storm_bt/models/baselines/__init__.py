"""The paper's baselines behind the `Predictor` interface: LightGBM, LSTM, Transformer and a
FactorVAE-style model (STORM_SPEC 8)."""
