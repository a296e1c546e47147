from celery import shared_task

from retrain import services


@shared_task(name="retrain.training_run_execute", acks_late=True)
def training_run_execute(run_id: int) -> None:
    services.training_run_execute(run_id=run_id)


@shared_task(name="retrain.dataset_version_build_monthly")
def dataset_version_build_monthly() -> None:
    services.dataset_version_build_monthly()


@shared_task(name="retrain.training_run_start_quarterly")
def training_run_start_quarterly() -> None:
    services.training_run_start_quarterly()


@shared_task(name="retrain.training_run_reconcile")
def training_run_reconcile() -> None:
    services.training_run_reconcile()
