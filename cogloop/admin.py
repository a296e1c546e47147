from django.contrib import admin

from cogloop.models import OutboxMessage
from cogloop.outbox import outbox_relay


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    """Read-only: rows are written by services in their transaction and sent by the relay."""

    list_display = ["pk", "task_name", "created_at", "sent_at", "attempts", "last_error"]
    list_filter = ["task_name", ("sent_at", admin.EmptyFieldListFilter)]
    search_fields = ["task_name", "last_error"]
    readonly_fields = ["task_name", "payload", "created_at", "sent_at", "attempts", "last_error"]
    show_full_result_count = False
    actions = ["relay_now"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Relay unsent messages now (the beat does this every few seconds)")
    def relay_now(self, request, queryset):
        self.message_user(request, f"Published {outbox_relay()} message(s).")
