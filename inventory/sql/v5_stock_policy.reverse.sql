-- Back to v3's function (no policy) and no settings table.
CREATE OR REPLACE FUNCTION update_inventory_balance() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
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
END
$fn$;
DROP TABLE IF EXISTS inventory_settings;
