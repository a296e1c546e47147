from django.contrib import admin

from feedback.models import Feedback, ReviewItem


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    list_display = ["pk", "reason", "priority", "status", "claimed_by", "lease_expires_at", "created_at"]
    list_filter = ["reason", "status"]


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ["pk", "output", "app", "rating", "thumb", "created_at"]
