"""Retraining in the admin. Datasets, runs and eval sets are made by services, never typed in:
the "add" page of a dataset version builds one (dataset_version_build), the "add" page of a
training run starts one (training_run_start), and the "add" page of an eval set imports a
JSONL file as a set's next version (eval_set_import), listing every bad line it refuses."""

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect
from django.template import engines
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from cogloop.errors import ApplicationError
from inference.models import ProductApp
from retrain import services
from retrain.models import (
    DatasetVersion,
    EvalSet,
    EvalSetVersion,
    Evaluation,
    TrainingRun,
    TrainingSample,
)
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


IMPORT_PAGE = engines["django"].from_string("""{% extends "admin/base_site.html" %}
{% block content %}<h1>{{ title }}</h1><p>{{ help }}</p>
{% if bad_lines %}<div class="errornote">{{ bad_total }} bad line(s); nothing was imported.</div>
<ul class="errorlist">{% for number, why in bad_lines %}<li>line {{ number }}: {{ why }}</li>{% endfor %}</ul>{% endif %}
<form method="post" enctype="multipart/form-data">{% csrf_token %}<table>{{ form.as_table }}</table>
<div class="submit-row"><input type="submit" class="default" value="Import"></div></form>{% endblock %}""")


class DatasetBuildForm(forms.Form):
    period = forms.RegexField(regex=r"^\d{4}-\d{2}$", help_text="YYYY-MM; dataset versions are immutable")


class EvalSetImportForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="a new name makes a new set; an existing one its next version"
    )
    app = forms.ModelChoiceField(
        ProductApp.objects.order_by("name"), required=False, help_text="empty: a global set"
    )
    file = forms.FileField(
        help_text='JSONL: GSM8K lines {"question", "answer": "... #### 72"} or plain lines '
        '{"prompt", "answer", "tags"?, "solution"?}'
    )


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


class EvalSetVersionInline(admin.TabularInline):
    model = EvalSetVersion
    fields = readonly_fields = ["number", "item_count", "source", "sha256", "created_at"]
    ordering = ["-number"]
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(EvalSet)
class EvalSetAdmin(admin.ModelAdmin):
    list_display = ["name", "app", "created_at"]
    list_filter = ["app"]
    search_fields = ["name", "app__name"]
    list_select_related = ["app"]
    readonly_fields = ["name", "app", "created_at"]
    inlines = [EvalSetVersionInline]

    def add_view(self, request, form_url="", extra_context=None):
        form = EvalSetImportForm(request.POST or None, request.FILES or None)
        bad_lines: dict[str, str] = {}
        bad_total = 0
        if request.method == "POST" and form.is_valid():
            name, app = form.cleaned_data["name"], form.cleaned_data["app"]
            before = services.eval_set_latest(name=name, app=app)
            try:
                version = services.eval_set_import(name=name, lines=form.cleaned_data["file"], app=app)
            except ApplicationError as exc:
                bad_lines = exc.extra.get("lines", {})
                bad_total = exc.extra.get("bad_lines", len(bad_lines))
                self.message_user(request, exc.message, messages.ERROR)
            else:
                unchanged = before is not None and before.pk == version.pk
                self.message_user(
                    request,
                    f"{version.eval_set} v{version.number}: {version.item_count} items"
                    + (" (same content as before: no new version)." if unchanged else "."),
                )
                return redirect("admin:retrain_evalset_change", version.eval_set.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": "Import an eval set (JSONL)",
            "help": "Every line is checked first: one bad line imports nothing. Content equal to "
            "the set's latest version makes no new version.",
            "form": form,
            "bad_lines": list(bad_lines.items()),
            "bad_total": bad_total,
        }
        return TemplateResponse(request, IMPORT_PAGE, context)

    def has_change_permission(self, request, obj=None):
        return False  # versions are immutable; a change is a new import

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(EvalSetVersion)
class EvalSetVersionAdmin(admin.ModelAdmin):
    list_display = ["eval_set", "number", "item_count", "source", "sha256", "created_at"]
    list_filter = ["source", "eval_set__name"]
    search_fields = ["eval_set__name", "sha256"]
    list_select_related = ["eval_set__app"]
    fields = readonly_fields = [
        "eval_set",
        "number",
        "item_count",
        "source",
        "sha256",
        "created_at",
        "first_items",
    ]

    @admin.display(description="first items")
    def first_items(self, obj: EvalSetVersion) -> str:
        items = services.eval_set_items(version=obj)[:20]
        if not items:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((i["slice"], i["prompt"], i["answer"]) for i in items),
        )
        return format_html("<table><tr><th>slice</th><th>prompt</th><th>answer</th></tr>{}</table>", rows)

    def has_add_permission(self, request):
        return False  # versions come from imports, reviews and the embedded set

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
