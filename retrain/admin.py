from django.contrib import admin

from retrain.models import DatasetVersion, Evaluation, TrainingRun, TrainingSample


@admin.register(TrainingSample)
class TrainingSampleAdmin(admin.ModelAdmin):
    list_display = ["pk", "kind", "split", "source_annotation", "created_at"]
    list_filter = ["kind", "split"]


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    list_display = ["period", "counts", "growth", "sha256", "created_at"]


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["period", "recipe", "stage", "result_version", "created_at", "finished_at"]
    list_filter = ["stage", "recipe"]


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    list_display = ["model_version", "eval_set", "training_run", "created_at"]
