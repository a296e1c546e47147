from django.contrib import admin

from feedback.models import CapturePolicy, Feedback, ReviewItem


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    list_display = ["pk", "reason", "priority", "status", "claimed_by", "lease_expires_at", "created_at"]
    list_filter = ["reason", "status"]


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ["pk", "output", "app", "rating", "thumb", "created_at"]


@admin.register(CapturePolicy)
class CapturePolicyAdmin(admin.ModelAdmin):
    list_display = ["score_below", "rating_at_or_below", "capture_thumb_down", "capture_flags", "audit_share",
                    "updated_at"]

    def has_add_permission(self, request):
        return not CapturePolicy.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False
