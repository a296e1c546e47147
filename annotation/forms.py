from django import forms

from annotation.models import STRATEGY_CHOICES, Annotation, AuditEvent
from annotation.selectors import CHECKER_ERRORS
from feedback.models import ReviewItem

# What the reviewer reads next to a field the service names (its error carries the field's name).
FIELD_WORDS = {
    "corrected_steps": "Corrected steps",
    "corrected_answer": "Corrected answer",
    "first_wrong_step": "First wrong step",
    "error_type": "Error type",
    "correction_strategy": "Correction strategy",
    "confidence_low": "Confidence interval, low end",
    "confidence_high": "Confidence interval, high end",
    "transparent": "Original reasoning understandable?",
    "override_reason": "Keep despite the checker, because",
    "reason": "Reason",
}
CHOOSE = "— choose —"
# One-key answers to "how likely is the corrected answer right" (key, words, low, high): the item
# page draws them as buttons, and its script reads them from there.
INTERVAL_PRESETS = [
    ("h", "sure", 0.9, 1.0),
    ("m", "fairly sure", 0.7, 0.9),
    ("l", "unsure", 0.4, 0.7),
]


class StepForm(forms.Form):
    # Every label a row carries is one the reviewer chose or kept from the original: a row added
    # by hand starts without a strategy (clean() asks for one once the row has text).
    text = forms.CharField(
        required=False,
        max_length=2000,
        label="Step text",
        widget=forms.TextInput(attrs={"size": 60}),
    )
    strategy = forms.ChoiceField(
        required=False,
        choices=[("", CHOOSE), *STRATEGY_CHOICES],
        label="Strategy",
    )

    def clean(self):
        data = super().clean()
        if data.get("text", "").strip() and not data.get("strategy") and not data.get("DELETE"):
            self.add_error("strategy", "Choose the step's strategy.")
        return data


class _StepFormSet(forms.BaseFormSet):
    """Every input of a row has an accessible name with the row's number (item.js renumbers)."""

    def add_fields(self, form, index):
        super().add_fields(form, index)
        name = f"Step {index + 1}" if index is not None else "New step"
        for field, words in (("ORDER", "position"), ("text", "text"), ("strategy", "strategy")):
            form.fields[field].widget.attrs["aria-label"] = f"{name} {words}"
        form.fields["DELETE"].widget.attrs["aria-label"] = f"Delete {name.lower()}"


StepFormSet = forms.formset_factory(
    StepForm, formset=_StepFormSet, extra=1, can_delete=True, can_order=True, max_num=100, validate_max=True
)


class AnnotationForm(forms.Form):
    """The labels of a correction. None is preselected on a fresh item: each one submitted is one
    the reviewer chose, and a missing one is refused with the field named. ``original_answer``
    (the item page) adds the explicit "unchanged" choice for the answer."""

    corrected_answer = forms.CharField(
        required=False,
        max_length=2000,
        label="Corrected answer",
        error_messages={"required": "Give the corrected answer, or mark the original unchanged."},
    )
    answer_unchanged = forms.BooleanField(
        required=False, label="Unchanged: the original answer is right as it is"
    )
    first_wrong_step = forms.IntegerField(required=False, min_value=1, label="First wrong step")
    error_type = forms.ChoiceField(
        choices=Annotation.ErrorType.choices,
        label="Error type",
        widget=forms.RadioSelect,
        error_messages={"required": "Choose an error type."},
    )
    correction_strategy = forms.CharField(
        required=False, max_length=4000, label="Correction strategy", widget=forms.Textarea(attrs={"rows": 2})
    )
    confidence_low = forms.FloatField(
        min_value=0.0,
        max_value=1.0,
        label="Low end",
        widget=forms.NumberInput(attrs={"step": "0.05"}),
        error_messages={"required": "Give the low end of the confidence interval."},
    )
    confidence_high = forms.FloatField(
        min_value=0.0,
        max_value=1.0,
        label="High end",
        widget=forms.NumberInput(attrs={"step": "0.05"}),
        error_messages={"required": "Give the high end of the confidence interval."},
    )
    transparent = forms.TypedChoiceField(
        choices=[("yes", "Yes, understandable"), ("no", "No")],
        coerce=lambda v: v == "yes",
        label="Original reasoning understandable?",
        widget=forms.RadioSelect,
        error_messages={"required": "Say whether the original reasoning was understandable."},
    )
    override_reason = forms.CharField(
        required=False,
        max_length=2000,
        label="Keep despite the checker, because",
        help_text="only when the claim checker refuses a correction you know is right; a lead reviews it",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args, original_answer: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.original_answer = original_answer
        if original_answer is None:
            del self.fields["answer_unchanged"]

    def clean(self):
        data = super().clean()
        low, high = data.get("confidence_low"), data.get("confidence_high")
        if low is not None and high is not None and low > high:
            self.add_error("confidence_low", "The low end of the interval must not exceed the high end.")
        answer = (data.get("corrected_answer") or "").strip()
        if data.pop("answer_unchanged", False) and self.original_answer is not None:
            if answer and answer != self.original_answer.strip():
                self.add_error(
                    "corrected_answer", "You marked the answer unchanged but typed another one: keep one."
                )
            answer = self.original_answer
        if not answer and "corrected_answer" not in self.errors:
            self.add_error("corrected_answer", self.fields["corrected_answer"].error_messages["required"])
        data["corrected_answer"] = answer
        return data


def error_summary(form, steps=None) -> list[tuple[str, str, str]]:
    """(anchor id, field words, message) per problem of a bound form (and its steps), in the
    order the page shows them: what the summary at the top of a refused form lists."""
    rows = []
    for name, errors in form.errors.items():
        if name in form.fields:
            radio = isinstance(form.fields[name].widget, forms.RadioSelect)
            words = FIELD_WORDS.get(name) or str(form.fields[name].label or name)
            anchor = f"id_{name}{'_0' if radio else ''}"
        else:
            anchor, words = "correction", "Correction"
        rows += [(anchor, words, str(e)) for e in errors]
    for i, step in enumerate(steps.forms if steps is not None else []):
        for name, errors in step.errors.items():
            field = name if name in step.fields else "text"
            words = f"Step {i + 1}, {str(step.fields[field].label).lower()}"
            rows += [(f"id_steps-{i}-{field}", words, str(e)) for e in errors]
    if steps is not None:
        rows += [("steps", "Corrected steps", str(e)) for e in steps.non_form_errors()]
    return rows


def corrected_steps_from(formset) -> list[dict]:
    """Kept steps in the reviewer's order (ORDER field), blanks and deleted ones dropped."""
    rows = []
    for position, form in enumerate(formset.forms):
        data = form.cleaned_data
        if not data or data.get("DELETE") or not data.get("text", "").strip():
            continue
        order = data.get("ORDER")
        rows.append((order if order is not None else position + 1, position, data))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [{"text": d["text"].strip(), "strategy": d["strategy"]} for _, _, d in rows]


def step_initial(steps: list[dict]) -> list[dict]:
    return [
        {"text": s["text"], "strategy": s.get("strategy") or "", "ORDER": i}
        for i, s in enumerate(steps, start=1)
    ]


class QueueFilterForm(forms.Form):
    reason = forms.ChoiceField(required=False, choices=[("", "any reason"), *ReviewItem.Reason.choices])
    score_min = forms.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        label="Score from",
        widget=forms.NumberInput(attrs={"step": "0.05", "size": 4}),
    )
    score_max = forms.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        label="Score to",
        widget=forms.NumberInput(attrs={"step": "0.05", "size": 4}),
    )
    model_version = forms.ChoiceField(required=False, choices=[("", "any model")])
    checker_error = forms.ChoiceField(
        required=False,
        label="Error type (checker)",
        choices=[("", "any finding"), *((k, label) for k, (label, _) in CHECKER_ERRORS.items())],
    )
    state = forms.ChoiceField(
        required=False, choices=[("", "open and claimed"), ("open", "open only"), ("mine", "claimed by me")]
    )

    def __init__(self, *args, model_versions: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model_version"].choices = [("", "any model"), *((n, n) for n in model_versions)]

    def clean(self):
        data = super().clean()
        low, high = data.get("score_min"), data.get("score_max")
        if low is not None and high is not None and low > high:
            self.add_error("score_min", "The lower score must not exceed the upper one.")
        return data


class ReviewDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "approve"), ("reject", "reject")])
    reason = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Reason (required to reject)",
    )


class ReviewPolicyForm(forms.Form):
    second_review_share = forms.FloatField(
        min_value=0,
        max_value=1,
        widget=forms.NumberInput(attrs={"step": "0.05"}),
        help_text="share of annotations a lead reviews before they become training data",
    )
    double_annotation_share = forms.FloatField(
        min_value=0,
        max_value=1,
        widget=forms.NumberInput(attrs={"step": "0.05"}),
        help_text="share of items annotated twice, blind, to measure agreement",
    )
    lease_minutes = forms.IntegerField(min_value=1, max_value=240, help_text="how long a claim holds an item")


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(required=False, choices=[("", "any action"), *AuditEvent.Action.choices])
    actor = forms.CharField(required=False, max_length=150)
    item = forms.IntegerField(required=False, min_value=1, label="item #")
