-- Back to v1's NUMERIC(18,6). Fails (and changes nothing) if a balance no longer fits.
ALTER TABLE inventory_balances ALTER COLUMN qty_canonical TYPE numeric(18, 6);
