from django.urls import path

from cogloop.dashboards import views

app_name = "dashboards"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("cognition/", views.cognition, name="cognition"),
    path("capture/", views.capture, name="capture"),
    path("queue/", views.queue, name="queue"),
    path("reviewers/", views.reviewers, name="reviewers"),
    path("datasets/", views.datasets, name="datasets"),
    path("training/", views.training, name="training"),
    path("models/", views.models, name="models"),
]
