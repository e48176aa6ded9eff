DROP TRIGGER IF EXISTS inventory_ledger_no_truncate ON inventory_ledger;
DROP TRIGGER IF EXISTS inventory_ledger_no_update_delete ON inventory_ledger;
DROP FUNCTION IF EXISTS inventory_ledger_append_only();
