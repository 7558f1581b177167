"""Price data: the `Panel` type and its loaders."""
from storm_bt.data.loaders import EMBEDDED, load_panel
from storm_bt.data.panel import FIELDS, PRICE_FIELDS, Panel

__all__ = ["EMBEDDED", "FIELDS", "PRICE_FIELDS", "Panel", "load_panel"]
