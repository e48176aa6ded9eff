-- v1: inventory_balances and the trigger that keeps it equal to SUM(inventory_ledger.qty_canonical)
-- per (item, location, lot). Frozen once merged: change it with a v2 file and a new migration.
-- Runs once per tenant schema with search_path = <tenant>, public; names are never qualified here.
-- Idempotent: every statement can run again without creating anything twice.

CREATE TABLE IF NOT EXISTS inventory_balances (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id         bigint NOT NULL REFERENCES inventory_items (id),
    location_id     bigint NOT NULL REFERENCES inventory_locations (id),
    lot_id          bigint REFERENCES inventory_lots (id),
    -- "No lot" must be one key. NULLS NOT DISTINCT needs PostgreSQL 15; this works on 14+.
    lot_key         bigint GENERATED ALWAYS AS (COALESCE(lot_id, 0)) STORED,
    qty_canonical   numeric(18, 6) NOT NULL DEFAULT 0,
    last_ledger_id  bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX IF NOT EXISTS inventory_balances_key_uniq
    ON inventory_balances (item_id, location_id, lot_key);
CREATE INDEX IF NOT EXISTS inventory_balances_location_idx
    ON inventory_balances (location_id, item_id);
CREATE INDEX IF NOT EXISTS inventory_balances_lot_idx
    ON inventory_balances (lot_id) WHERE lot_id IS NOT NULL;

-- Statement-level with a transition table: one upsert per INSERT/COPY statement, grouped by key,
-- in key order (one lock order for every writer, so concurrent writers cannot deadlock), and
-- qty = qty + delta computed by the database under the row lock (never from an earlier read).
-- The target schema is the ledger's own (TG_TABLE_SCHEMA), whatever the session's search_path.
CREATE OR REPLACE FUNCTION update_inventory_balance() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format($sql$
        INSERT INTO %I.inventory_balances AS b
               (item_id, location_id, lot_id, qty_canonical, last_ledger_id, updated_at)
        SELECT item_id, location_id, lot_id, sum(qty_canonical), max(id), now()
          FROM new_rows
         GROUP BY item_id, location_id, lot_id
         ORDER BY item_id, location_id, COALESCE(lot_id, 0)
        ON CONFLICT (item_id, location_id, lot_key) DO UPDATE
           SET qty_canonical  = b.qty_canonical + EXCLUDED.qty_canonical,
               last_ledger_id = GREATEST(b.last_ledger_id, EXCLUDED.last_ledger_id),
               updated_at     = EXCLUDED.updated_at
    $sql$, TG_TABLE_SCHEMA);
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE TRIGGER inventory_ledger_balance_trigger
    AFTER INSERT ON inventory_ledger
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION update_inventory_balance();
