-- v4: inventory_balances.qty_canonical is NUMERIC(38,6), wide enough that no sequence of accepted
-- postings can overflow it. A ledger row is NUMERIC(18,6) (|qty| < 10^12) and a ledger holds fewer
-- than 2^63 < 10^19 rows, so any balance is below 10^31: 32 integer digits fit, v1's 12 did not
-- (two postings of 999999999999 to one key failed the second INSERT and every later one).
-- Raising a numeric's precision at the same scale rewrites nothing (PostgreSQL only checks the
-- typmod). Idempotent: the ALTER runs only while the column is narrower, so a re-run (the repair)
-- takes no ACCESS EXCLUSIVE lock on a table that is already wide.
DO $do$
BEGIN
    IF (SELECT format_type(a.atttypid, a.atttypmod)
          FROM pg_attribute a
         WHERE a.attrelid = 'inventory_balances'::regclass AND a.attname = 'qty_canonical'
       ) IS DISTINCT FROM 'numeric(38,6)' THEN
        ALTER TABLE inventory_balances ALTER COLUMN qty_canonical TYPE numeric(38, 6);
    END IF;
END
$do$;
