DROP INDEX IF EXISTS inventory_ledger_txid_idx;
ALTER TABLE inventory_ledger DROP COLUMN IF EXISTS txid;
