from django.db import models


class OutboxMessage(models.Model):
    """Work to hand to Celery, written in the same transaction as the data it is about.

    The relay (cogloop.outbox) publishes unsent rows and marks them sent; with the broker
    down they wait here, so an accepted request never loses its follow-up work.
    """

    task_name = models.CharField(max_length=200)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.task_name} #{self.pk}"
