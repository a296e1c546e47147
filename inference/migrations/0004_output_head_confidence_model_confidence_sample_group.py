from django.db import migrations, models

COVERING_INDEX = "output_created_scores"


class Migration(migrations.Migration):
    """The head's confidence moves to ``head_confidence`` (its values kept); ``model_confidence``
    starts afresh as the token-based one; ``sample_group`` ties answers sampled together.

    The dashboards' covering index keeps covering the head's confidence: a renamed column
    stays in its indexes (PostgreSQL and SQLite alike), so only Django's record of the index
    changes and nothing is rebuilt. The new ``sample_group`` index blocks writes to outputs
    while it builds (about a second per million rows); on a large table create it first with
    CREATE INDEX CONCURRENTLY under Django's name and fake this migration.
    """

    dependencies = [
        ("inference", "0003_output_day_version_statistics"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.RemoveIndex(model_name="output", name=COVERING_INDEX)]
        ),
        migrations.RenameField(model_name="output", old_name="model_confidence", new_name="head_confidence"),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="output",
                    index=models.Index(
                        fields=["created_at"],
                        include=(
                            "model_version",
                            "cognition_score",
                            "consistency",
                            "adaptability",
                            "head_confidence",
                        ),
                        name=COVERING_INDEX,
                    ),
                )
            ]
        ),
        migrations.AddField(
            model_name="output",
            name="model_confidence",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="output",
            name="sample_group",
            field=models.UUIDField(blank=True, db_index=True, null=True),
        ),
    ]
