"""Entry points of the retrain app's work. Sent by name through the outbox (or the beat)."""

from celery import shared_task

from cogloop.errors import RETRY_TRANSIENT
from retrain import services


@shared_task(name=services.TRAINING_RUN_EXECUTE_TASK, acks_late=True, **RETRY_TRANSIENT)
def training_run_execute(run_id: int) -> None:
    # The run's lease makes a second delivery wait or resume, never train twice at once.
    services.training_run_execute(run_id=run_id)


@shared_task(name="retrain.dataset_version_build_monthly", **RETRY_TRANSIENT)
def dataset_version_build_monthly() -> None:
    services.dataset_version_build_monthly()


@shared_task(name="retrain.training_run_start_quarterly", **RETRY_TRANSIENT)
def training_run_start_quarterly() -> None:
    services.training_run_start_quarterly()


@shared_task(name="retrain.training_run_reconcile", **RETRY_TRANSIENT)
def training_run_reconcile() -> None:
    services.training_run_reconcile()
