-- v2: each ledger row records the 64-bit id of the transaction that inserted it.
-- Incremental reconciliation uses it as a watermark that cannot skip rows: ids from concurrent
-- transactions commit out of order, but every transaction still in flight when a run takes its
-- snapshot has an xid >= that snapshot's xmin, so the next run (which looks at xid >= xmin)
-- sees its rows whenever it commits. xid8 never wraps around.
ALTER TABLE inventory_ledger ADD COLUMN IF NOT EXISTS txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS inventory_ledger_txid_idx ON inventory_ledger (txid);
