from django.contrib import admin

from annotation.models import Annotation, AuditEvent


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["pk", "review_item", "annotator", "error_type", "status", "created_at"]
    list_filter = ["status", "error_type"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor", "action", "review_item", "annotation"]
    list_filter = ["action"]
