from django.urls import path

from annotation import views

app_name = "annotation"
urlpatterns = [
    path("", views.queue, name="queue"),
    path("next", views.claim_next, name="claim-next"),
    path("<int:item_id>/", views.item, name="item"),
    path("<int:item_id>/claim", views.claim, name="claim"),
]
