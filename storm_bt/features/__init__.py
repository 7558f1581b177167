"""Model inputs: Alpha158-style features, the causal scaler, next-day labels and splits.

- `storm_bt.features.alpha158`: the feature formulas (STORM_SPEC 1.3), vectorised numpy.
- `storm_bt.features.scaler`: the causal windowed block scaler (STORM_SPEC 1.5, D14 fixed).
- `storm_bt.features.dataset`: `FeatureSet` (scaled features + labels), `Split`, windows.
"""
from storm_bt.features.dataset import FeatureSet, Split, build_feature_set, make_split, next_day_return

__all__ = ["FeatureSet", "Split", "build_feature_set", "make_split", "next_day_return"]
