from celery import shared_task

from cogloop.errors import RETRY_TRANSIENT, ApplicationError
from inference import services
from inference.models import ModelVersion


@shared_task(name="inference.model_version_promote", ignore_result=True, **RETRY_TRANSIENT)
def model_version_promote(version_id: int, reason: str) -> None:
    # A promotion asked for from the web role, which never loads a model: verified here.
    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None or version.status in (ModelVersion.Status.ACTIVE, ModelVersion.Status.REJECTED):
        return
    try:
        services.model_version_promote_verified(version=version, reason=reason)
    except ApplicationError:
        # model_version_promote_verified rejected it with the reason (the registry shows it)
        return
