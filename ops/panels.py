"""Turn the selectors' rows into what each dashboard page shows: charts and small tables.

Every function here reads through ``selectors`` a fixed number of times and does the rest
(pivoting rows into series, weighted means, ratios) in Python on a few hundred rows at most.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from annotation import selectors as annotation_selectors
from feedback.models import ReviewItem
from ops import charts, selectors
from ops.charts import Series, Target
from retrain.models import TrainingRun

# The seed's targets for a model worth serving.
SEED_TARGETS = {
    "transparency_approval": (">=", 0.85),
    "correction_steps": ("<=", 2.0),
    "strategy_diversity": (">=", 3.0),
}
# Evaluation metrics shown side by side, in this order: (key, label, format).
EVAL_METRICS = [
    ("accuracy", "Accuracy", "percent"),
    ("mean_score", "Mean cognition score", "score"),
    ("error_rate", "Error rate", "percent"),
    ("transparency_approval", "Transparency approval", "percent"),
    ("correction_steps", "Correction steps", "number"),
    ("strategy_diversity", "Strategy diversity", "number"),
    ("ece", "Calibration error (ECE)", "score"),
    ("n", "Items", "int"),
]
# What each metric measures, shown on the models page (and why a metric may stay empty).
METRIC_DEFINITIONS = {
    "accuracy": "share of held-out problems whose final answer equals the reference",
    "mean_score": "mean cognition score (0.6 consistency + 0.4 adaptability) of the held-out answers",
    "error_rate": "1 - accuracy",
    "transparency_approval": (
        "share of this version's reviewed answers whose reasoning the reviewer found understandable "
        "(reviewers' verdicts; empty until its answers have been reviewed)"
    ),
    "correction_steps": (
        "mean steps from a wrong claim to the step that corrects it, over corrected wrong claims "
        "(empty when the version never corrected itself on the held-out set)"
    ),
    "strategy_diversity": "mean number of distinct named strategies per held-out answer",
    "ece": (
        "expected calibration error of the head's confidence that the answer is right "
        "(empty while the version has no trained head)"
    ),
    "n": "held-out problems measured",
}
STAGES = [s for s in TrainingRun.Stage.values if s != TrainingRun.Stage.FAILED]
MAX_REVIEWER_SERIES = 7
STATUS_COLOURS = {
    "approved": "#009E73",
    "submitted": "#E69F00",
    "rejected": "#D55E00",
}  # more reviewers than this are summed as "others" in the chart


def _days(since: datetime, now: datetime) -> list[datetime]:
    start = since.replace(hour=0, minute=0, second=0, microsecond=0)
    return [start + timedelta(days=i) for i in range((now - start).days + 1)]


def _last_day(now: datetime, until: datetime | None) -> datetime:
    """Midnight of the window's last day: today's, or the day before ``until``."""
    end = timezone.localtime(until - timedelta(days=1) if until else now)
    return end.replace(hour=0, minute=0, second=0, microsecond=0)


def _in_window(rows: list[dict], until: datetime | None) -> list[dict]:
    """Daily rows before ``until`` (the selectors read from ``since`` on)."""
    return rows if until is None else [r for r in rows if r["day"] < until]


def _version_name(labels: dict, pk) -> str:
    return labels.get(pk, {"name": f"version {pk}"})["name"]


def version_colours(pks) -> dict:
    """One colour per model version for a whole page, whichever chart shows it: the page's
    versions in the order they were made (by id), outputs without a version last. Every chart
    also names them (a legend or labels): the colour is never the only key."""
    ordered = sorted(set(pks), key=lambda pk: (pk is None, pk or 0))
    return {pk: charts.PALETTE[i % len(charts.PALETTE)] for i, pk in enumerate(ordered)}


def outputs_url(*, start: date, end: date, **filters) -> str:
    """The outputs list (ops.views.outputs) from ``start`` to ``end``, with ``filters``: a chart's
    or a table's drill-down."""
    query = {"from": f"{start:%Y-%m-%d}", "to": f"{end:%Y-%m-%d}"}
    query.update((k, "external" if k == "version" and v is None else v) for k, v in filters.items())
    return f"{reverse('dashboards:outputs')}?{urlencode(query)}"


def _day_url(day: datetime, **filters) -> str:
    d = timezone.localtime(day).date()
    return outputs_url(start=d, end=d, **filters)


def cognition(*, since: datetime, now: datetime, until: datetime | None = None) -> dict:
    labels = selectors.version_labels()
    threshold = selectors.capture_threshold()
    rows, hist = selectors.cognition_by_day(since=since, low_below=threshold)
    if until is not None:
        rows = _in_window(rows, until)
        hist = selectors.score_histogram(since=since, until=until)
    last_day = _last_day(now, until)
    first, last = timezone.localtime(since).date(), last_day.date()

    by_version: dict = defaultdict(list)
    for r in rows:
        by_version[r["model_version_id"]].append(r)
    order = sorted(by_version, key=lambda pk: (pk is None, pk or 0))
    colours = version_colours([*by_version, *hist])

    def daily(field: str, weight: str = "n", **filters) -> list[Series]:
        out = []
        for pk in order:
            rs = [r for r in by_version[pk] if r[weight]]
            out.append(
                Series(
                    _version_name(labels, pk),
                    [(r["day"], r[field]) for r in rs],
                    colours[pk],
                    [_day_url(r["day"], version=pk, **filters) for r in rs],
                )
            )
        return out

    totals = []
    for pk in order:
        rs = by_version[pk]
        n = sum(r["n"] for r in rs)
        n_conf = sum(r["n_confidence"] for r in rs)
        totals.append(
            {
                "name": _version_name(labels, pk),
                "colour": colours[pk],
                "url": outputs_url(start=first, end=last, version=pk),
                "low_url": outputs_url(start=first, end=last, version=pk, score_max=threshold),
                "status": labels.get(pk, {}).get("status", ""),
                "n": n,
                "score": sum(r["score"] * r["n"] for r in rs) / n,
                "consistency": sum(r["consistency"] * r["n"] for r in rs) / n,
                "adaptability": sum(r["adaptability"] * r["n"] for r in rs) / n,
                "confidence": sum((r["confidence"] or 0) * r["n_confidence"] for r in rs) / n_conf
                if n_conf
                else None,
                "low_share": sum(r["n_low"] for r in rs) / n,
            }
        )
    edges = [i / selectors.SCORE_BINS for i in range(selectors.SCORE_BINS + 1)]
    hist_series = [
        Series(_version_name(labels, pk), [c / (sum(hist[pk]) or 1) for c in hist[pk]], colours[pk])
        for pk in sorted(hist, key=lambda pk: (pk is None, pk or 0))
    ]
    days = sorted({r["day"] for r in rows})
    window = {"x_range": (since, last_day)}
    score_axis = {"y_min": 0.0, "y_max": 1.0, **window}
    return {
        "totals": totals,
        "threshold": threshold,
        "charts": [
            charts.histogram(
                title="Cognition score distribution by model version",
                edges=edges,
                series=hist_series,
                x_label="cognition score",
                targets=[Target(f"capture below {threshold:g}", threshold)],
                bin_links=[
                    outputs_url(start=first, end=last, score_min=round(lo, 4), score_max=round(hi, 4))
                    for lo, hi in zip(edges, edges[1:])
                ],
            ),
            charts.line_chart(
                title="Mean cognition score per day", series=daily("score"), y_label="score", **score_axis
            ),
            charts.line_chart(
                title="Consistency per day", series=daily("consistency"), y_label="consistency", **score_axis
            ),
            charts.line_chart(
                title="Adaptability per day",
                series=daily("adaptability"),
                y_label="adaptability",
                **score_axis,
            ),
            charts.line_chart(
                title="Model confidence per day (metacognition head)",
                series=daily("confidence", weight="n_confidence"),
                y_label="confidence",
                **score_axis,
                empty="No output in this period carries a confidence",
            ),
            charts.line_chart(
                title=f"Share of outputs below the capture threshold ({threshold:g}) per day",
                series=[
                    Series(
                        s.name,
                        [(r["day"], r["n_low"] / r["n"]) for r in by_version[pk]],
                        s.colour,
                        s.links,
                    )
                    for pk, s in zip(order, daily("n", score_max=threshold))
                ],
                y_label="share",
                fmt=charts.fmt_percent,
                y_min=0.0,
                y_max=1.0,
                **window,
            ),
            charts.bar_chart(
                title="Outputs per day by model version",
                categories=[d.strftime("%b %d") for d in days],
                series=[
                    Series(
                        _version_name(labels, pk),
                        [next((r["n"] for r in by_version[pk] if r["day"] == d), None) for d in days],
                        colours[pk],
                        [_day_url(d, version=pk) for d in days],
                    )
                    for pk in order
                ],
                stacked=True,
                y_label="outputs",
            ),
        ],
    }


def _pivot(triples: list[tuple], categories: list | None = None) -> list[Series]:
    """[(category, series name, value)] -> one Series per name aligned with the categories."""
    cats = categories if categories is not None else sorted({c for c, _, _ in triples})
    index = {c: i for i, c in enumerate(cats)}
    values: dict[str, list] = {}
    for cat, name, v in triples:
        row = values.setdefault(name, [None] * len(cats))
        row[index[cat]] = (row[index[cat]] or 0) + v
    return [Series(name, vals) for name, vals in sorted(values.items())]  # stable colours per name


def capture(*, since: datetime, now: datetime, until: datetime | None = None) -> dict:
    outputs = {d: n for d, n in selectors.outputs_by_day(since=since).items() if until is None or d < until}
    captured = _in_window(selectors.captures_by_day(since=since), until)
    threshold = selectors.capture_threshold()
    first, last = timezone.localtime(since).date(), _last_day(now, until).date()
    days = sorted(set(outputs) | {r["day"] for r in captured})
    per_day: dict = defaultdict(int)
    reasons: dict = defaultdict(int)
    for r in captured:
        per_day[r["day"]] += r["n"]
        reasons[r["reason"]] += r["n"]
    rate_days = [d for d in days if outputs.get(d)]
    n_out, n_cap = sum(outputs.values()), sum(per_day.values())
    reason_labels = dict(ReviewItem.Reason.choices)
    by_reason: dict = defaultdict(dict)
    for r in captured:
        by_reason[r["reason"]][r["day"]] = by_reason[r["reason"]].get(r["day"], 0) + r["n"]
    return {
        "quality": selectors.capture_quality(threshold=threshold),
        "outputs": n_out,
        "outputs_url": outputs_url(start=first, end=last),
        "captured": n_cap,
        "captured_url": outputs_url(start=first, end=last, captured="yes"),
        "rate": n_cap / n_out if n_out else None,
        "threshold": threshold,
        "reasons": [
            {
                "reason": reason_labels.get(k, k),
                "n": v,
                "share": v / n_cap,
                "url": outputs_url(start=first, end=last, reason=k),
            }
            for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])
        ],
        "charts": [
            charts.line_chart(
                title="Capture rate per day (review items / outputs)",
                series=[
                    Series(
                        "capture rate",
                        [(d, per_day[d] / outputs[d]) for d in rate_days],
                        links=[_day_url(d, captured="yes") for d in rate_days],
                    )
                ],
                y_label="captured",
                fmt=charts.fmt_percent,
                y_min=0.0,
                x_range=(since, _last_day(now, until)),
            ),
            charts.bar_chart(
                title="Captured outputs per day by reason",
                categories=[d.strftime("%b %d") for d in days],
                series=[
                    Series(
                        reason_labels.get(k, k),
                        [by_reason[k].get(d) for d in days],
                        links=[_day_url(d, reason=k) for d in days],
                    )
                    for k in sorted(by_reason, key=lambda k: reason_labels.get(k, k))
                ],
                stacked=True,
                y_label="review items",
            ),
        ],
    }


def queue(*, since: datetime, now: datetime, until: datetime | None = None) -> dict:
    depth = selectors.queue_depth()
    age = selectors.queue_age(now=now)
    arrivals = _in_window(selectors.captures_by_day(since=since), until)
    done = _in_window(selectors.annotations_by_day_and_reviewer(since=since), until)
    reason_labels = dict(ReviewItem.Reason.choices)
    statuses = list(ReviewItem.Status.values)
    counts = {s: 0 for s in statuses}
    for r in depth:
        counts[r["status"]] += r["n"]
    open_by_reason = _pivot(
        [
            (r["status"], reason_labels.get(r["reason"], r["reason"]), r["n"])
            for r in depth
            if r["status"] in selectors.OPEN_STATUSES
        ],
        [str(s) for s in selectors.OPEN_STATUSES],
    )
    days = _days(since, _last_day(now, until))
    arrived: dict = defaultdict(int)
    annotated: dict = defaultdict(int)
    for r in arrivals:
        arrived[r["day"]] += r["n"]
    for r in done:
        annotated[r["day"]] += r["n"]
    return {
        "counts": counts,
        "age": age,
        "oldest_age": now - age["oldest"] if age["oldest"] else None,
        "charts": [
            charts.bar_chart(
                title="Open review items by status and reason",
                categories=[str(s) for s in selectors.OPEN_STATUSES],
                series=open_by_reason,
                stacked=True,
                y_label="items",
                empty="The queue is empty",
            ),
            charts.bar_chart(
                title="Age of open review items",
                categories=[label for label, _ in age["buckets"]],
                series=[Series("open items", [n for _, n in age["buckets"]])] if age["open"] else [],
                y_label="items",
                empty="The queue is empty",
            ),
            charts.line_chart(
                title="Queue flow per day: captured vs annotated",
                series=[
                    Series("captured", [(d, arrived.get(d, 0)) for d in days]),
                    Series("annotated", [(d, annotated.get(d, 0)) for d in days]),
                ]
                if arrived or annotated
                else [],
                y_label="items",
                y_min=0.0,
            ),
        ],
    }


def reviewers(*, since: datetime, now: datetime, until: datetime | None = None) -> dict:
    daily = _in_window(selectors.annotations_by_day_and_reviewer(since=since), until)
    totals = (
        selectors.reviewer_totals(since=since)
        if until is None
        else selectors.reviewer_totals_between(since=since, until=until)
    )
    top = [t["annotator__username"] for t in totals[:MAX_REVIEWER_SERIES]]
    days = _days(since, _last_day(now, until))
    labels = [d.strftime("%b %d") for d in days]
    triples = [
        (
            r["day"].strftime("%b %d"),
            r["annotator__username"] if r["annotator__username"] in top else "others",
            r["n"],
        )
        for r in daily
    ]
    n_days = max(1, len(days))
    for t in totals:
        t["per_day"] = t["n"] / n_days
        t["transparent_share"] = t["transparent"] / t["n"] if t["n"] else None
    # Agreement on blind double annotations, all time (annotation.selectors computes kappa).
    per_reviewer, everyone = annotation_selectors.agreement_per_reviewer()
    agreement = [*per_reviewer, everyone] if everyone.pairs else []
    return {
        "totals": totals,
        "agreement": agreement,
        "charts": [
            charts.bar_chart(
                title="Annotations per day by reviewer",
                categories=labels,
                series=_pivot(triples, labels),
                stacked=True,
                y_label="annotations",
            ),
            charts.bar_chart(
                title="Annotations per reviewer by status",
                categories=[t["annotator__username"] for t in totals[:12]],
                series=[
                    Series(status, [t[status] for t in totals[:12]], colour)
                    for status, colour in STATUS_COLOURS.items()
                ],
                stacked=True,
                y_label="annotations",
            ),
            charts.bar_chart(
                title="Agreement on blind double annotations (Cohen's kappa)",
                categories=[a.username for a in agreement],
                series=[
                    Series("error type κ", [a.error_kappa for a in agreement]),
                    Series("step strategy κ", [a.strategy_kappa for a in agreement]),
                    Series("interval overlap", [a.interval_overlap for a in agreement]),
                ],
                y_max=1.0,
                fmt=lambda v, step: f"{v:.2f}" if step < 1 else f"{v:.1f}",
                empty="No blind double annotation yet",
            ),
        ],
    }


def datasets() -> dict:
    versions = selectors.dataset_versions()
    periods = [v.period for v in versions]
    period_of = {v.pk: v.period for v in versions}
    # A version built by dataset_version_build records its composition; older ones are
    # counted in SQL over their samples (slow on big datasets, so only for those).
    counted = [v for v in versions if "error_types" in (v.composition or {})]
    uncounted = [v.pk for v in versions if v not in counted]
    errors = [
        {"datasetversion_id": v.pk, "error_type": e, "n": n}
        for v in counted
        for e, n in v.composition["error_types"].items()
    ]
    strategies = [
        {"datasetversion_id": v.pk, "strategy": st, "n": n}
        for v in counted
        for st, n in (v.composition.get("strategy_steps") or {}).items()
    ]
    if uncounted:
        errors += selectors.dataset_error_types(version_ids=uncounted)
        strategies += selectors.dataset_step_strategies(version_ids=uncounted)
    kinds = sorted({k for v in versions for k in v.counts})
    cap = settings.COGLOOP["DATASET_MAX_GROWTH"]
    return {
        "rows": [(v, [v.counts.get(k, 0) for k in kinds]) for v in reversed(versions)],
        "kinds": kinds,
        "charts": [
            charts.bar_chart(
                title="Dataset size per monthly version by sample kind",
                categories=periods,
                series=[Series(k, [v.counts.get(k, 0) for v in versions]) for k in kinds],
                stacked=True,
                y_label="samples",
                empty="No dataset version yet",
            ),
            charts.bar_chart(
                title="Growth over the previous version",
                categories=periods,
                series=[Series("growth", [v.growth for v in versions])],
                fmt=charts.fmt_percent,
                targets=[Target(f"cap {cap:.0%}", cap)],
                y_label="growth",
                empty="No dataset version has a parent yet",
            ),
            charts.bar_chart(
                title="Reflection samples per version by error type",
                categories=periods,
                series=_pivot(
                    [
                        (period_of[r["datasetversion_id"]], r["error_type"] or "unknown", r["n"])
                        for r in errors
                    ],
                    periods,
                ),
                stacked=True,
                y_label="samples",
                empty="No dataset version yet",
            ),
            charts.bar_chart(
                title="Corrected steps per version by reasoning strategy",
                categories=periods,
                series=_pivot(
                    [(period_of[r["datasetversion_id"]], r["strategy"], r["n"]) for r in strategies], periods
                ),
                stacked=True,
                y_label="steps",
                empty="No strategy samples yet",
            ),
        ],
    }


def training() -> dict:
    runs = selectors.training_runs()
    curves = {
        r.pk: Series(
            f"{r.period} ({r.recipe})",
            [
                (p["step"], p["loss"])
                for p in r.loss_history
                if isinstance(p, dict) and p.get("loss") is not None
            ],
        )
        for r in runs
    }
    rows = []
    for r in runs:
        reached = STAGES.index(r.stage) if r.stage in STAGES else None
        failed_at = _failed_at(r) if r.stage == TrainingRun.Stage.FAILED else None
        stages = []
        for i, s in enumerate(STAGES):
            if s == failed_at:
                state = "failed"
            elif r.stage == TrainingRun.Stage.DONE or (reached is not None and i < reached):
                state = "done"
            elif i == reached:
                state = "current"
            else:
                state = "todo"
            stages.append({"name": s, "label": s.replace("_", " "), "state": state})
        curve = curves[r.pk]
        rows.append(
            {
                "run": r,
                "stages": stages,
                "curve": charts.line_chart(
                    title=f"Loss, run {r.period}",
                    series=[Series("loss", curve.values)],
                    time_axis=False,
                    x_label="step",
                    y_label="loss",
                )
                if curve.values
                else None,
            }
        )
    return {
        "rows": rows,
        "charts": [
            charts.line_chart(
                title="Training loss by run",
                series=[curves[r.pk] for r in reversed(runs) if curves[r.pk].values],
                time_axis=False,
                x_label="step",
                y_label="loss",
                empty="No run has recorded a loss yet",
            )
        ],
    }


def _failed_at(run: TrainingRun) -> str | None:
    """The stage a failed run stopped in, when its error names one (the reconcile's
    "last stage <stage>"); None when the error does not say."""
    for stage in reversed(STAGES):
        if stage in (run.error or ""):
            return stage
    return None


def _flat_metrics(metrics: dict) -> dict:
    """Evaluation metrics, whichever layout: {"overall": {...}, "slices": ...} or flat keys."""
    flat = {k: v for k, v in (metrics or {}).items() if k not in ("overall", "slices")}
    flat.update((metrics or {}).get("overall") or {})
    return flat


def meets_target(key: str, value) -> bool | None:
    if key not in SEED_TARGETS or not isinstance(value, int | float):
        return None
    op, target = SEED_TARGETS[key]
    return value >= target if op == ">=" else value <= target


def models() -> dict:
    versions = selectors.model_versions()
    ids = [v.pk for v in versions]
    evals = selectors.latest_evaluations(version_ids=ids)
    runs = selectors.gate_decisions(version_ids=ids)
    names = [v.name for v in versions]
    colours = version_colours(ids)
    table = []
    for v in versions:
        ev = evals.get(v.pk)
        flat = _flat_metrics(ev.metrics) if ev else {}
        table.append(
            {
                "version": v,
                "colour": colours[v.pk],
                "evaluation": ev,
                "run": runs.get(v.pk),
                "metrics": [
                    {"key": k, "value": flat.get(k), "fmt": f, "met": meets_target(k, flat.get(k))}
                    for k, _, f in EVAL_METRICS
                ],
                "slices": (ev.metrics or {}).get("slices") or {} if ev else {},
            }
        )
    metric_charts = []
    for key, label, fmt in EVAL_METRICS[:-1]:
        values = [row["metrics"][[k for k, _, _ in EVAL_METRICS].index(key)]["value"] for row in table]
        values = [v if isinstance(v, int | float) else None for v in values]
        if not any(v is not None for v in values) and key not in SEED_TARGETS:
            continue  # a metric nobody records yet; the seed's targets are shown even when empty
        target = SEED_TARGETS.get(key)
        metric_charts.append(
            charts.bar_chart(
                title=label + (f" (target {target[0]} {_fmt(target[1], fmt)})" if target else ""),
                categories=names,
                series=[Series(label, values)],
                category_colours=[colours[pk] for pk in ids],
                fmt=charts.fmt_percent if fmt == "percent" else charts._fmt_number,
                targets=[Target(f"target {target[0]} {_fmt(target[1], fmt)}", target[1])] if target else [],
                y_max=1.0 if fmt in ("percent", "score") else None,
                empty="Not measured for these versions yet",
            )
        )
    slice_names = sorted({s for row in table for s in row["slices"]})
    slice_series = [
        Series(
            row["version"].name,
            [(row["slices"].get(s) or {}).get("accuracy") for s in slice_names],
            row["colour"],
        )
        for row in table
        if row["slices"]
    ]
    history = sorted(
        (
            {
                "at": e.get("at", ""),
                "when": parse_datetime(str(e.get("at", ""))),
                "version": v.name,
                "event": _event_name(e),
                "detail": e.get("reason") or e.get("by", ""),
            }
            for v in versions
            for e in (v.promotion_history or [])
            if isinstance(e, dict)
        ),
        key=lambda e: e["at"],
        reverse=True,
    )
    return {
        "table": table,
        "metric_labels": [(k, label, SEED_TARGETS.get(k)) for k, label, _ in EVAL_METRICS],
        "definitions": [(label, METRIC_DEFINITIONS[k]) for k, label, _ in EVAL_METRICS],
        "history": history,
        "charts": metric_charts
        + [
            charts.bar_chart(
                title="Accuracy per evaluation slice",
                categories=slice_names,
                series=slice_series,
                fmt=charts.fmt_percent,
                y_max=1.0,
                empty="No slice metrics yet",
            )
        ],
    }


def _fmt(value: float, fmt: str) -> str:
    return f"{value:.0%}" if fmt == "percent" else f"{value:g}"


def _event_name(event: dict) -> str:
    if event.get("event") == "promoted" and str(event.get("reason", "")).startswith("rollback"):
        return "rolled back to"
    return str(event.get("event", "?"))


def overview(*, now: datetime | None = None) -> dict:
    return selectors.overview(now=now or timezone.now())
