from django.urls import path

from annotation import views

app_name = "annotation"
urlpatterns = [
    path("", views.queue, name="queue"),
    path("next", views.claim_next, name="claim-next"),
    path("<int:item_id>/", views.item, name="item"),
    path("<int:item_id>/claim", views.claim, name="claim"),
    path("<int:item_id>/lease", views.lease, name="lease"),
    path("<int:item_id>/release", views.release, name="release"),
    path("second/", views.second_review, name="second-review"),
    path("annotations/<int:annotation_id>/", views.annotation_review, name="annotation-review"),
    path("annotations/<int:annotation_id>/withdraw", views.annotation_withdraw, name="annotation-withdraw"),
    path("agreement/", views.agreement, name="agreement"),
    path("audit/", views.audit_log, name="audit"),
    path("settings/", views.review_settings, name="settings"),
]
