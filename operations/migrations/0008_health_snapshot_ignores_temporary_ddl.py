"""The health snapshot's event triggers (0005) no longer fire on temporary objects: every CSV
import creates and drops staging tables (inventory/services/importer_sql.py), and each emptied
the snapshot, so under imports /health recomputed the per-organisation checks (every schema's
django_migrations) over and over. A temporary table is nothing /health reports on; a command
that names no object at all still empties the snapshot, as before. A DROP is judged by the
sql_drop trigger alone (ddl_command_end lists no objects for it). And the snapshot rows another
transaction holds are skipped, not waited for: two organisations' bulk imports (each drops and
rebuilds its ledger's indexes) no longer run one after the other. What is skipped is either being
deleted by that transaction or rewritten by a refresh (the worker's, each minute), so the
snapshot is at worst a refresh behind, as with a hand-edited django_migrations."""

from django.db import migrations

FUNCTION_SQL = """
DO $$
BEGIN
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    CREATE OR REPLACE FUNCTION public.operations_health_snapshot_invalidate()
    RETURNS event_trigger LANGUAGE plpgsql AS $f$
    BEGIN
      -- A DROP lists its objects to the sql_drop trigger only, which decides.
      IF TG_EVENT = 'ddl_command_end' AND TG_TAG LIKE 'DROP %' THEN
        RETURN;
      END IF;
      IF TG_EVENT = 'ddl_command_end'
         AND EXISTS (SELECT FROM pg_event_trigger_ddl_commands())
         AND NOT EXISTS (SELECT FROM pg_event_trigger_ddl_commands()
                          WHERE schema_name IS DISTINCT FROM 'pg_temp') THEN
        RETURN;
      END IF;
      IF TG_EVENT = 'sql_drop'
         AND EXISTS (SELECT FROM pg_event_trigger_dropped_objects())
         -- A temporary table's column defaults are listed as not temporary (PostgreSQL 16);
         -- a real table's default dropped alone is an ALTER TABLE, seen at ddl_command_end.
         AND NOT EXISTS (SELECT FROM pg_event_trigger_dropped_objects()
                          WHERE NOT is_temporary AND object_type <> 'default value') THEN
        RETURN;
      END IF;
      -- A restore (pg_restore --clean) drops the table itself: DDL must never fail here.
      -- SKIP LOCKED: rows another transaction holds are being deleted by its own DDL or
      -- rewritten by a refresh; waiting for it would make every DDL in the database (an
      -- import's bulk load in one organisation) wait for every other one's COMMIT.
      IF to_regclass('public.operations_health_snapshot') IS NOT NULL THEN
        DELETE FROM public.operations_health_snapshot
         WHERE name IN (SELECT name FROM public.operations_health_snapshot
                         FOR UPDATE SKIP LOCKED);
      END IF;
    END $f$;
  END IF;
END $$;
"""

REVERSE_SQL = """
DO $$
BEGIN
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    CREATE OR REPLACE FUNCTION public.operations_health_snapshot_invalidate()
    RETURNS event_trigger LANGUAGE plpgsql AS $f$
    BEGIN
      IF to_regclass('public.operations_health_snapshot') IS NOT NULL THEN
        DELETE FROM public.operations_health_snapshot;
      END IF;
    END $f$;
  END IF;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("operations", "0007_jobrun_kind_pitr_base_backup")]

    operations = [migrations.RunSQL(FUNCTION_SQL, REVERSE_SQL)]
