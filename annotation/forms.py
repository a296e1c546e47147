from django import forms

from annotation.models import STRATEGY_CHOICES, Annotation, AuditEvent
from annotation.selectors import CHECKER_ERRORS
from feedback.models import ReviewItem


class StepForm(forms.Form):
    text = forms.CharField(required=False, max_length=2000, widget=forms.TextInput(attrs={"size": 60}))
    strategy = forms.ChoiceField(choices=STRATEGY_CHOICES, initial="deduction")


StepFormSet = forms.formset_factory(
    StepForm, extra=1, can_delete=True, can_order=True, max_num=100, validate_max=True
)


class AnnotationForm(forms.Form):
    corrected_answer = forms.CharField(max_length=2000)
    first_wrong_step = forms.IntegerField(required=False, min_value=1)
    error_type = forms.ChoiceField(choices=Annotation.ErrorType.choices)
    correction_strategy = forms.CharField(
        required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2})
    )
    confidence_low = forms.FloatField(
        min_value=0.0, max_value=1.0, widget=forms.NumberInput(attrs={"step": "0.05"})
    )
    confidence_high = forms.FloatField(
        min_value=0.0, max_value=1.0, widget=forms.NumberInput(attrs={"step": "0.05"})
    )
    transparent = forms.TypedChoiceField(
        choices=[("yes", "Yes, understandable"), ("no", "No")],
        coerce=lambda v: v == "yes",
        label="Original reasoning understandable?",
        widget=forms.RadioSelect,
    )
    override_reason = forms.CharField(
        required=False,
        max_length=2000,
        label="Keep despite the checker, because",
        help_text="only when the claim checker refuses a correction you know is right; a lead reviews it",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def clean(self):
        data = super().clean()
        low, high = data.get("confidence_low"), data.get("confidence_high")
        if low is not None and high is not None and low > high:
            self.add_error("confidence_low", "The low end of the interval must not exceed the high end.")
        return data


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
        {"text": s["text"], "strategy": s.get("strategy") or "other", "ORDER": i}
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
