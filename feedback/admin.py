from django.contrib import admin

from feedback import services
from feedback.models import CapturePolicy, Feedback, ReviewItem


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    list_display = ["pk", "reason", "priority", "status", "claimed_by", "lease_expires_at", "created_at"]
    list_filter = ["reason", "status"]
    search_fields = ["reason_detail", "output__prompt", "claimed_by__username"]
    list_select_related = ["claimed_by"]
    raw_id_fields = ["output", "claimed_by"]
    show_full_result_count = False  # one count less on a queue that can hold millions of rows


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ["pk", "output", "app", "rating", "thumb", "created_at"]
    list_filter = ["app", "rating", "thumb"]
    search_fields = ["comment", "idempotency_key"]
    list_select_related = ["app", "output"]
    raw_id_fields = ["output"]
    show_full_result_count = False


@admin.register(CapturePolicy)
class CapturePolicyAdmin(admin.ModelAdmin):
    list_display = [
        "score_below",
        "rating_at_or_below",
        "capture_thumb_down",
        "capture_flags",
        "audit_share",
        "updated_at",
    ]

    def has_add_permission(self, request):
        return not CapturePolicy.objects.exists()

    def save_model(self, request, obj, form, change):
        services.capture_policy_update(policy=obj)

    def has_delete_permission(self, request, obj=None):
        return False
