from django.urls import path

from inference import api

urlpatterns = [
    path("generate", api.GenerateApi.as_view(), name="api-generate"),
    path("outputs", api.OutputsApi.as_view(), name="api-outputs"),
    path("models/<int:version_id>/promote", api.ModelVersionPromoteApi.as_view(), name="api-model-promote"),
    path(
        "models/<int:version_id>/rollback", api.ModelVersionRollbackApi.as_view(), name="api-model-rollback"
    ),
    path("outputs/<uuid:output_id>", api.OutputDetailApi.as_view(), name="api-output-detail"),
]
