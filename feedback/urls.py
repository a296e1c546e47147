from django.urls import path

from feedback import api

urlpatterns = [
    path("feedback", api.FeedbackCreateApi.as_view(), name="api-feedback"),
    path("feedback/bulk", api.FeedbackBulkCreateApi.as_view(), name="api-feedback-bulk"),
]
