"""Retraining in the admin. Datasets and runs are made by services, never typed in: the
"add" page of a dataset version builds one (dataset_version_build) and the "add" page of a
training run starts one (training_run_start); both are also actions on selected rows."""

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect
from django.template import engines
from django.template.response import TemplateResponse
from django.utils import timezone

from cogloop.errors import ApplicationError
from retrain import services
from retrain.models import DatasetVersion, Evaluation, TrainingRun, TrainingSample
from retrain.trainer.config import RECIPES

FORM_PAGE = engines[
    "django"
].from_string("""{% extends "admin/base_site.html" %}
{% block content %}<h1>{{ title }}</h1><p>{{ help }}</p>
<form method="post">{% csrf_token %}<table>{{ form.as_table }}</table>
<div class="submit-row"><input type="submit" class="default" value="{{ submit }}"></div></form>{% endblock %}""")


def _form_page(admin_site, request, *, title: str, help: str, submit: str, form) -> TemplateResponse:
    context = {
        **admin_site.each_context(request),
        "title": title,
        "help": help,
        "submit": submit,
        "form": form,
    }
    return TemplateResponse(request, FORM_PAGE, context)


class DatasetBuildForm(forms.Form):
    period = forms.RegexField(regex=r"^\d{4}-\d{2}$", help_text="YYYY-MM; dataset versions are immutable")


class TrainingRunStartForm(forms.Form):
    dataset = forms.ModelChoiceField(DatasetVersion.objects.order_by("-period"))
    recipe = forms.ChoiceField(choices=[(r, r) for r in RECIPES], initial="lora-all")
    period = forms.RegexField(regex=r"^\d{4}-Q[1-4]$", help_text="YYYY-Qn; one run per quarter")


@admin.register(TrainingSample)
class TrainingSampleAdmin(admin.ModelAdmin):
    list_display = ["pk", "kind", "split", "source_annotation", "created_at"]
    list_filter = ["kind", "split"]
    search_fields = ["content_hash", "source_annotation__review_item__output__prompt"]
    raw_id_fields = ["source_annotation"]
    readonly_fields = ["kind", "payload", "source_annotation", "content_hash", "split", "created_at"]

    def has_add_permission(self, request):
        return False  # samples come from approved annotations (training_samples_collect)


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    list_display = ["period", "counts", "growth", "sha256", "created_at"]
    search_fields = ["period", "sha256"]
    date_hierarchy = "created_at"
    readonly_fields = ["period", "parent", "counts", "growth", "sha256", "files", "created_at"]
    exclude = ["samples"]  # thousands of rows; the counts and files say what is inside
    actions = ["start_training_run"]

    def add_view(self, request, form_url="", extra_context=None):
        form = DatasetBuildForm(request.POST or None, initial={"period": services.current_period()})
        if request.method == "POST" and form.is_valid():
            try:
                version = services.dataset_version_build(period=form.cleaned_data["period"])
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"Built dataset {version.period}: {version.counts}.")
                return redirect("admin:retrain_datasetversion_changelist")
        return _form_page(
            self.admin_site,
            request,
            title="Build a dataset version",
            submit="Build",
            form=form,
            help="Collects approved annotations into samples and freezes the month's version: the "
            "previous version plus the new samples, growth capped.",
        )

    @admin.action(description="Start a training run on the selected dataset version (this quarter, lora-all)")
    def start_training_run(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one dataset version.", messages.ERROR)
            return
        try:
            run = services.training_run_start(
                dataset=queryset.get(), period=services.quarter_of(timezone.now().date())
            )
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, f"Training run {run.period} queued on dataset {run.dataset.period}.")


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = [
        "period",
        "recipe",
        "stage",
        "dataset",
        "base_version",
        "result_version",
        "created_at",
        "finished_at",
    ]
    list_filter = ["stage", "recipe"]
    search_fields = ["period", "error", "lease_owner"]
    list_select_related = ["dataset", "base_version", "result_version"]
    readonly_fields = [
        "period",
        "dataset",
        "base_version",
        "recipe",
        "config",
        "stage",
        "progress",
        "loss_history",
        "lease_owner",
        "heartbeat_at",
        "error",
        "decision",
        "result_version",
        "created_at",
        "finished_at",
    ]

    def add_view(self, request, form_url="", extra_context=None):
        form = TrainingRunStartForm(
            request.POST or None,
            initial={
                "period": services.quarter_of(timezone.now().date()),
                "dataset": DatasetVersion.objects.order_by("-period").first(),
            },
        )
        if request.method == "POST" and form.is_valid():
            try:
                run = services.training_run_start(**form.cleaned_data)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"Training run {run.period} queued ({run.recipe}).")
                return redirect("admin:retrain_trainingrun_changelist")
        return _form_page(
            self.admin_site,
            request,
            title="Start a training run",
            submit="Start",
            form=form,
            help="Queues the run on the training queue; it evaluates the serving model, trains, "
            "evaluates the candidate and lets the gate decide.",
        )


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    list_display = ["model_version", "eval_set", "training_run", "created_at"]
    list_filter = ["eval_set", "model_version"]
    search_fields = ["model_version__name", "eval_set"]
    list_select_related = ["model_version", "training_run"]
    readonly_fields = ["model_version", "training_run", "eval_set", "metrics", "created_at"]
