"""The dashboards' query-string filters: a custom date range, and the outputs list's filters."""

from __future__ import annotations

from datetime import date

from django import forms

from feedback.models import ReviewItem

MAX_RANGE_DAYS = 366
ISO_DATE = ["%Y-%m-%d"]


class DateRangeForm(forms.Form):
    """``?from=YYYY-MM-DD&to=YYYY-MM-DD``, both days included, ending today at the latest.
    Bound from the query string by ``date_range_data`` (``from`` is a Python keyword)."""

    date_from = forms.DateField(label="From", input_formats=ISO_DATE)
    date_to = forms.DateField(label="To", input_formats=ISO_DATE)

    def __init__(self, *args, today: date, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.today = today

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end:
            if start > end:
                raise forms.ValidationError(f"the start ({start}) is after the end ({end})")
            if end > self.today:
                raise forms.ValidationError(f"the range ends after today ({self.today})")
            if (end - start).days + 1 > MAX_RANGE_DAYS:
                raise forms.ValidationError(
                    f"the range spans {(end - start).days + 1} days; at most {MAX_RANGE_DAYS} are shown"
                )
        return cleaned

    def problems(self) -> list[str]:
        """Every error as one sentence, naming the field it belongs to."""
        out = []
        for name, errors in self.errors.items():
            label = "" if name == "__all__" else f"{self.fields[name].label}: "
            out += [f"{label}{e}" for e in errors]
        return out


def date_range_data(query) -> dict:
    return {"date_from": query.get("from", ""), "date_to": query.get("to", "")}


class OutputFilterForm(DateRangeForm):
    """The outputs list: a date range (the last 30 days when none is given), a model version
    (its id, or "external" for answers scored without one), captured for review or not, the
    capture reason, and a score band [score_min, score_max) (a band ending at 1 includes 1)."""

    CAPTURED = [("", "all"), ("yes", "captured for review"), ("no", "not captured")]

    version = forms.RegexField(label="Model version", regex=r"^(\d+|external)$", required=False)
    captured = forms.ChoiceField(label="Review", choices=CAPTURED, required=False)
    reason = forms.ChoiceField(
        label="Capture reason", choices=[("", "any"), *ReviewItem.Reason.choices], required=False
    )
    score_min = forms.FloatField(label="Score from", min_value=0.0, max_value=1.0, required=False)
    score_max = forms.FloatField(label="Score below", min_value=0.0, max_value=1.0, required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["date_from"].required = self.fields["date_to"].required = False

    def clean(self) -> dict:
        cleaned = super().clean()
        if bool(cleaned.get("date_from")) != bool(cleaned.get("date_to")) and not self.errors:
            raise forms.ValidationError("give both dates of the range, or neither")
        low, high = cleaned.get("score_min"), cleaned.get("score_max")
        if low is not None and high is not None and low >= high:
            raise forms.ValidationError(f"the score band's start ({low:g}) is not below its end ({high:g})")
        return cleaned


def output_filter_data(query) -> dict:
    keys = ("version", "captured", "reason", "score_min", "score_max")
    return {**date_range_data(query), **{k: query.get(k, "") for k in keys}}
