from django.contrib import admin

from annotation.models import Annotation, AuditEvent, ReviewPolicy


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "review_item",
        "annotator",
        "error_type",
        "status",
        "blind",
        "second_reviewer",
        "created_at",
    ]
    list_filter = ["status", "error_type", "blind"]
    raw_id_fields = ["review_item", "annotator", "second_reviewer"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit trail is evidence: readable here, written only by the services."""

    list_display = ["created_at", "actor", "action", "review_item", "annotation"]
    list_filter = ["action"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ReviewPolicy)
class ReviewPolicyAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "second_review_share",
        "double_annotation_share",
        "lease_minutes",
        "updated_at",
    ]
