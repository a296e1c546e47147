from django.urls import include, path

from ops import health, views

dashboard_patterns = [
    path("", views.overview, name="overview"),
    path("cognition/", views.cognition, name="cognition"),
    path("capture/", views.capture, name="capture"),
    path("queue/", views.queue, name="queue"),
    path("reviewers/", views.reviewers, name="reviewers"),
    path("datasets/", views.datasets, name="datasets"),
    path("training/", views.training, name="training"),
    path("models/", views.models, name="models"),
    path("outputs/", views.outputs, name="outputs"),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("dashboards/", include((dashboard_patterns, "dashboards"))),
]
