from django.urls import path

from inference import api

urlpatterns = [
    path("generate", api.GenerateApi.as_view(), name="api-generate"),
    path("outputs", api.OutputListApi.as_view(), name="api-output-list"),
    path("outputs/<uuid:output_id>", api.OutputDetailApi.as_view(), name="api-output-detail"),
]
