"""What every torch model shares: the `TorchPredictor` (fit/predict, checkpoints), the
training loop (AdamW, warmup, early stopping on validation RankIC) and window batches."""
