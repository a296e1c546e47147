from django import forms

from annotation.models import STRATEGY_CHOICES, Annotation


class StepForm(forms.Form):
    text = forms.CharField(required=False, widget=forms.TextInput(attrs={"size": 60}))
    strategy = forms.ChoiceField(choices=STRATEGY_CHOICES, initial="deduction")


StepFormSet = forms.formset_factory(StepForm, extra=2, can_delete=True, can_order=True)


class AnnotationForm(forms.Form):
    corrected_answer = forms.CharField(max_length=2000)
    first_wrong_step = forms.IntegerField(required=False, min_value=1)
    error_type = forms.ChoiceField(choices=Annotation.ErrorType.choices)
    correction_strategy = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    confidence_low = forms.FloatField(min_value=0.0, max_value=1.0)
    confidence_high = forms.FloatField(min_value=0.0, max_value=1.0)
    transparent = forms.TypedChoiceField(
        choices=[("yes", "Yes, understandable"), ("no", "No")], coerce=lambda v: v == "yes", label="Original understandable?"
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
