from django.db import migrations, models


class Migration(migrations.Migration):
    """A covering index for the dashboards' per-day and per-bin aggregations over outputs.

    On a large PostgreSQL table this blocks writes to outputs while it builds (about a
    second per million rows); to avoid that, create it first by hand with
    CREATE INDEX CONCURRENTLY under the same name and fake this migration.
    """

    dependencies = [
        ("inference", "0001_initial"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="output",
            index=models.Index(
                fields=["created_at"],
                include=(
                    "model_version",
                    "cognition_score",
                    "consistency",
                    "adaptability",
                    "model_confidence",
                ),
                name="output_created_scores",
            ),
        ),
    ]
