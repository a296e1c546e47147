from django.contrib import admin

from inference.models import ApiKey, ModelVersion, Output, ProductApp


@admin.register(ProductApp)
class ProductAppAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "app", "name", "created_at", "revoked_at"]
    readonly_fields = ["prefix", "hashed_secret"]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "recipe", "promoted_at", "created_at"]
    list_filter = ["status", "recipe"]
    readonly_fields = ["manifest", "sha256", "promotion_history"]


@admin.register(Output)
class OutputAdmin(admin.ModelAdmin):
    list_display = ["uuid", "app", "cognition_score", "model_version", "created_at"]
    list_filter = ["app", "model_version", "source"]
    search_fields = ["prompt"]
