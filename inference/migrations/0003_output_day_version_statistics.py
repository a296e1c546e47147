from django.db import migrations

# The expression Django's TruncDay("created_at") compiles to on PostgreSQL with TIME_ZONE "UTC"
# (settings fix it); a statistics object helps only queries that group by the same expression.
CREATE = """CREATE STATISTICS IF NOT EXISTS output_day_version (ndistinct)
ON (date_trunc('day', created_at AT TIME ZONE 'UTC')), model_version_id FROM inference_output"""


def create(apps, schema_editor):
    """Without it PostgreSQL guesses one group per row for GROUP BY day, version, sorts a
    month of outputs on disk and then aggregates; with it, it hashes the few hundred groups
    (the dashboards' cognition query over 250,000 outputs: 280 ms -> 130 ms). Expression
    statistics need PostgreSQL 14; other databases plan without them."""
    connection = schema_editor.connection
    if connection.vendor == "postgresql" and connection.pg_version >= 140000:
        schema_editor.execute(CREATE)
        schema_editor.execute("ANALYZE inference_output")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP STATISTICS IF EXISTS output_day_version")


class Migration(migrations.Migration):
    dependencies = [
        ("inference", "0002_output_created_scores"),
    ]

    operations = [migrations.RunPython(create, drop)]
