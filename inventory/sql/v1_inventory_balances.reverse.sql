-- Reverse of v1_inventory_balances.sql: the migration guide's rollback, per tenant schema.
DROP TRIGGER IF EXISTS inventory_ledger_balance_trigger ON inventory_ledger;
DROP FUNCTION IF EXISTS update_inventory_balance();
DROP TABLE IF EXISTS inventory_balances;
