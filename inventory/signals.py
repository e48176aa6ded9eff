"""Signals the inventory app sends, so that apps built on it (reconciliation) can react without
inventory importing them back.

balances_rebuilt: sent by the backfill (and the repair) after balances of a schema were
recomputed from the ledger, inside the schema's context. kwargs: schema_name (str).
Receivers run in the sender's transaction when one is open.
"""

from django.dispatch import Signal

balances_rebuilt = Signal()
