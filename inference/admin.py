from django.contrib import admin, messages

from cogloop.errors import ApplicationError
from inference import services
from inference.models import ApiKey, ModelVersion, Output, ProductApp


@admin.register(ProductApp)
class ProductAppAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    actions = ["create_api_key"]

    @admin.action(description="Create an API key (shown once)")
    def create_api_key(self, request, queryset):
        for app in queryset:
            _, plaintext = services.api_key_create(app=app, name=f"admin {request.user.username}")
            self.message_user(
                request,
                f"New key for {app.name} (copy it now, it is not stored): {plaintext}",
                messages.WARNING,
            )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "app", "name", "created_at", "revoked_at"]
    list_filter = ["app", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "app__name"]
    list_select_related = ["app"]
    readonly_fields = ["app", "prefix", "hashed_secret", "created_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are created by the ProductApp action, so the plaintext is shown once

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for key in queryset:
            services.api_key_revoke(prefix=key.prefix)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "recipe", "parent", "promoted_at", "created_at"]
    list_filter = ["status", "recipe"]
    search_fields = ["name", "recipe", "sha256"]
    list_select_related = ["parent"]
    readonly_fields = ["manifest", "sha256", "promotion_history"]
    actions = ["promote", "rollback"]

    @admin.action(description="Promote (every serving process swaps to it)")
    def promote(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.ERROR)
            return
        try:
            version = services.model_version_promote(
                version=queryset.get(), reason=f"admin {request.user.username}"
            )
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        if version.status != ModelVersion.Status.ACTIVE:
            self.message_user(
                request, f"{version.name} is being verified by a worker; it becomes active if it passes."
            )
            return
        self.message_user(request, f"{version.name} is active; serving processes are swapping to it.")

    @admin.action(description="Roll back to the version it replaced")
    def rollback(self, request, queryset):
        try:
            previous = services.model_version_rollback(version=queryset.get(), by=request.user.username)
        except (ApplicationError, ModelVersion.MultipleObjectsReturned) as exc:
            self.message_user(request, getattr(exc, "message", "Select exactly one version."), messages.ERROR)
            return
        if previous.status != ModelVersion.Status.ACTIVE:
            self.message_user(
                request, f"{previous.name} is being verified by a worker before it serves again."
            )
            return
        self.message_user(request, f"Rolled back: {previous.name} is active again.")


@admin.register(Output)
class OutputAdmin(admin.ModelAdmin):
    list_display = [
        "uuid",
        "app",
        "source",
        "cognition_score",
        "consistency",
        "adaptability",
        "model_version",
        "created_at",
    ]
    list_filter = ["app", "model_version", "source"]
    search_fields = ["prompt", "answer", "idempotency_key"]
    list_select_related = ["app", "model_version"]
    raw_id_fields = ["model_version"]
    # Millions of rows: skip the unfiltered count and let the newest come first from the index.
    show_full_result_count = False
    ordering = ["-created_at"]
