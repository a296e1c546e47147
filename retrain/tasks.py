from celery import shared_task

from retrain import services


@shared_task(name="retrain.training_run_execute", acks_late=True)
def training_run_execute(run_id: int) -> None:
    services.training_run_execute(run_id=run_id)
