-- v5: the no-negative stock policy (issue 14), checked where the balance changes.
-- The policy lives in the tenant's own schema, in a one-row table, so the trigger reads it with
-- one index lookup on a table next to the ledger (no cross-schema read, no extra round trip).
-- Off by default: existing organisations (and the demo data) have negative balances.
CREATE TABLE IF NOT EXISTS inventory_settings (
    id                boolean PRIMARY KEY DEFAULT true CONSTRAINT inventory_settings_one_row CHECK (id),
    no_negative_stock boolean NOT NULL DEFAULT false,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    updated_by        text NOT NULL DEFAULT ''
);
INSERT INTO inventory_settings (id) VALUES (true) ON CONFLICT (id) DO NOTHING;

-- update_inventory_balance() as v3 (static SQL, pinned search_path), plus the policy. With the
-- policy on, the same upsert RETURNs each key's new balance: it is computed under the row lock
-- the upsert holds (keys locked in key order, as before), from the latest committed balance, so
-- two concurrent issues of 8 against 10 cannot both pass; the second waits for the first's lock,
-- sees 2 and is refused. A key is refused when this statement lowers it (its delta < 0) and
-- leaves it below zero; a receipt into a balance that was already negative (from before the
-- policy) is allowed, or such a balance could never be brought back up step by step.
-- The refusal is SQLSTATE 23514 (check_violation) with constraint inventory_no_negative_stock;
-- DETAIL is a JSON array of {item_id, location_id, lot_id, balance, shortfall} (balance before
-- this statement). The statement fails whole: nothing of it is written.
CREATE OR REPLACE FUNCTION update_inventory_balance() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    refused jsonb;
BEGIN
    IF NOT COALESCE((SELECT s.no_negative_stock FROM inventory_settings s WHERE s.id), false) THEN
        INSERT INTO inventory_balances AS b
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
    END IF;

    WITH delta AS (
        SELECT item_id, location_id, lot_id, sum(qty_canonical) AS qty, max(id) AS last_id
          FROM new_rows
         GROUP BY item_id, location_id, lot_id
    ), upserted AS (
        INSERT INTO inventory_balances AS b
               (item_id, location_id, lot_id, qty_canonical, last_ledger_id, updated_at)
        SELECT item_id, location_id, lot_id, qty, last_id, now()
          FROM delta
         ORDER BY item_id, location_id, COALESCE(lot_id, 0)
        ON CONFLICT (item_id, location_id, lot_key) DO UPDATE
           SET qty_canonical  = b.qty_canonical + EXCLUDED.qty_canonical,
               last_ledger_id = GREATEST(b.last_ledger_id, EXCLUDED.last_ledger_id),
               updated_at     = EXCLUDED.updated_at
        RETURNING b.item_id, b.location_id, b.lot_id, b.qty_canonical
    )
    SELECT jsonb_agg(
               jsonb_build_object(
                   'item_id', u.item_id,
                   'location_id', u.location_id,
                   'lot_id', u.lot_id,
                   'balance', (u.qty_canonical - d.qty)::text,
                   'shortfall', (-u.qty_canonical)::text)
               ORDER BY u.item_id, u.location_id, COALESCE(u.lot_id, 0))
      INTO refused
      FROM upserted u
      JOIN delta d
        ON d.item_id = u.item_id AND d.location_id = u.location_id
       AND d.lot_id IS NOT DISTINCT FROM u.lot_id
     WHERE d.qty < 0 AND u.qty_canonical < 0;

    IF refused IS NOT NULL THEN
        RAISE EXCEPTION 'insufficient stock: % balance(s) would go below zero',
                        jsonb_array_length(refused)
              USING ERRCODE = 'check_violation',
                    CONSTRAINT = 'inventory_no_negative_stock',
                    DETAIL = refused::text,
                    HINT = 'The organisation forbids negative stock (inventory_settings).';
    END IF;
    RETURN NULL;
END
$fn$;
