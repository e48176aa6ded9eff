from django.db import migrations, models

# Any DDL anywhere in the database (a dropped balance table, a disabled trigger, a new schema)
# empties the snapshot, so the next /health recomputes it: what /health shows is what the
# catalog says, without the catalog being read on every request. Event triggers need a
# superuser; without one the snapshot still refreshes each minute (worker) and on migrate.
EVENT_TRIGGER_SQL = """
DO $$
BEGIN
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    CREATE OR REPLACE FUNCTION public.operations_health_snapshot_invalidate()
    RETURNS event_trigger LANGUAGE plpgsql AS $f$
    BEGIN
      -- A restore (pg_restore --clean) drops the table itself: DDL must never fail here.
      IF to_regclass('public.operations_health_snapshot') IS NOT NULL THEN
        DELETE FROM public.operations_health_snapshot;
      END IF;
    END $f$;
    DROP EVENT TRIGGER IF EXISTS operations_health_snapshot_on_ddl;
    CREATE EVENT TRIGGER operations_health_snapshot_on_ddl ON ddl_command_end
      EXECUTE FUNCTION public.operations_health_snapshot_invalidate();
    DROP EVENT TRIGGER IF EXISTS operations_health_snapshot_on_drop;
    CREATE EVENT TRIGGER operations_health_snapshot_on_drop ON sql_drop
      EXECUTE FUNCTION public.operations_health_snapshot_invalidate();
  END IF;
END $$;
"""

REVERSE_SQL = """
DROP EVENT TRIGGER IF EXISTS operations_health_snapshot_on_ddl;
DROP EVENT TRIGGER IF EXISTS operations_health_snapshot_on_drop;
DROP FUNCTION IF EXISTS public.operations_health_snapshot_invalidate();
"""


class Migration(migrations.Migration):
    dependencies = [("operations", "0004_offsite_copies_figures_restore_drills")]

    operations = [
        migrations.CreateModel(
            name="HealthSnapshot",
            fields=[
                ("name", models.CharField(max_length=50, primary_key=True, serialize=False)),
                ("result", models.JSONField()),
                ("checked_at", models.DateTimeField()),
            ],
            options={"db_table": "operations_health_snapshot"},
        ),
        migrations.RunSQL(EVENT_TRIGGER_SQL, REVERSE_SQL),
    ]
