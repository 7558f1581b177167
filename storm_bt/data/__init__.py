"""Price data: the `Panel` type, its loaders, date parsing and index membership."""
from storm_bt.data.dates import parse_iso_date
from storm_bt.data.loaders import EMBEDDED, load_panel
from storm_bt.data.membership import load_membership, membership_mask, read_membership
from storm_bt.data.panel import FIELDS, PRICE_FIELDS, Panel

__all__ = ["EMBEDDED", "FIELDS", "PRICE_FIELDS", "Panel", "load_membership", "load_panel",
           "membership_mask", "parse_iso_date", "read_membership"]
