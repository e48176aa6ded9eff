-- Bench only: the project's statement-level trigger (inventory/sql/v1_inventory_balances.sql)
-- with the same upsert as static SQL, schema-qualified when installed ({schema} is replaced by the
-- bench schema), instead of EXECUTE format(..., TG_TABLE_SCHEMA). PL/pgSQL keeps the plan of
-- static SQL for the session; EXECUTE parses and plans the upsert again on every statement.
CREATE OR REPLACE FUNCTION {schema}.bench_balance_statement_static() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO {schema}.inventory_balances AS b
           (item_id, location_id, lot_id, qty_canonical, last_ledger_id, updated_at)
    SELECT item_id, location_id, lot_id, sum(qty_canonical), max(id), now()
      FROM new_rows
     GROUP BY item_id, location_id, lot_id
     ORDER BY item_id, location_id, COALESCE(lot_id, 0)
    ON CONFLICT (item_id, location_id, lot_key) DO UPDATE
       SET qty_canonical  = b.qty_canonical + EXCLUDED.qty_canonical,
           last_ledger_id = GREATEST(b.last_ledger_id, EXCLUDED.last_ledger_id),
           updated_at     = EXCLUDED.updated_at;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER bench_balance_statement_static_trigger
    AFTER INSERT ON {schema}.inventory_ledger
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.bench_balance_statement_static();
