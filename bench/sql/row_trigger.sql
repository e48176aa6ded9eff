-- Bench only: the row-level alternative to the project's statement-level balance trigger.
-- One upsert per inserted ledger row. {schema} is replaced by the bench schema (quoted-safe
-- lowercase name), so the function needs neither EXECUTE nor a search_path.
CREATE OR REPLACE FUNCTION {schema}.bench_balance_row() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO {schema}.inventory_balances AS b
           (item_id, location_id, lot_id, qty_canonical, last_ledger_id, updated_at)
    VALUES (NEW.item_id, NEW.location_id, NEW.lot_id, NEW.qty_canonical, NEW.id, now())
    ON CONFLICT (item_id, location_id, lot_key) DO UPDATE
       SET qty_canonical  = b.qty_canonical + EXCLUDED.qty_canonical,
           last_ledger_id = GREATEST(b.last_ledger_id, EXCLUDED.last_ledger_id),
           updated_at     = EXCLUDED.updated_at;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER bench_balance_row_trigger
    AFTER INSERT ON {schema}.inventory_ledger
    FOR EACH ROW EXECUTE FUNCTION {schema}.bench_balance_row();
