-- v1: the ledger is append-only. Corrections are reversing entries, never edits.
-- Statement-level, so even an UPDATE or DELETE that matches no row is refused with the message.
CREATE OR REPLACE FUNCTION inventory_ledger_append_only() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'inventory_ledger is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'Post a reversing entry to correct a movement.';
END
$fn$;

CREATE OR REPLACE TRIGGER inventory_ledger_no_update_delete
    BEFORE UPDATE OR DELETE ON inventory_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_ledger_append_only();

CREATE OR REPLACE TRIGGER inventory_ledger_no_truncate
    BEFORE TRUNCATE ON inventory_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_ledger_append_only();
