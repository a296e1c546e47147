"""The reviewer pages. Thin: parse the request, call a service or selector, render."""

import secrets
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation import selectors, services
from annotation.diff import step_diff
from annotation.forms import (
    FIELD_WORDS,
    INTERVAL_PRESETS,
    AnnotationForm,
    AuditFilterForm,
    QueueFilterForm,
    ReviewDecisionForm,
    ReviewPolicyForm,
    StepFormSet,
    corrected_steps_from,
    error_summary,
    step_initial,
)
from annotation.models import Annotation
from cogloop.errors import ApplicationError
from feedback.models import ReviewItem
from feedback.selectors import review_item_lease_live
from inference.engine.parser import STRATEGIES


def role_required(role: str):
    """Logged in (else the login page) and holding ``role`` (else 403: reviewers see no lead pages)."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not services.user_has_role(request.user, role):
                return render(request, "annotation/forbidden.html", {"role": role}, status=403)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


reviewer_required = role_required(services.REVIEWER)
# Below this many blind pairs a kappa is shown with a caution: its confidence interval is wide.
FEW_PAIRS = 20
lead_required = role_required(services.LEAD)


def _form_errors(form, exc: ApplicationError) -> None:
    """A service's field errors onto the form's fields (or the form when it has no such field)."""
    fields = exc.extra.get("fields") or {}
    for field, errors in fields.items():
        for error in errors:
            if field in form.fields:
                form.add_error(field, error)
            else:
                form.add_error(None, f"{FIELD_WORDS.get(field, field.replace('_', ' '))}: {error}")
    if not fields:
        form.add_error(None, exc.message)


@reviewer_required
def queue(request):
    filters = QueueFilterForm(request.GET or None, model_versions=selectors.model_version_names())
    # A filter that does not parse narrows to nothing (and says so) rather than showing everything.
    filters_invalid = filters.is_bound and not filters.is_valid()
    cleaned = filters.cleaned_data if filters.is_bound and not filters_invalid else {}
    items = selectors.queue_items(filters=cleaned, user=request.user)
    if filters_invalid:
        items = items.none()
    shown = list(items[: selectors.QUEUE_LIMIT])
    is_lead = services.user_has_role(request.user, services.LEAD)
    return render(
        request,
        "annotation/queue.html",
        {
            "items": shown,
            "matching": items.count() if len(shown) == selectors.QUEUE_LIMIT else len(shown),
            "filters": filters,
            "counts": selectors.queue_counts(),
            "progress": selectors.progress_today(user=request.user),
            "held": selectors.items_held_by(user=request.user),
            "filters_invalid": filters_invalid,
            "is_lead": is_lead,
        },
    )


@reviewer_required
@require_POST
def claim(request, item_id):
    """A form post (redirects) or the item page's script claiming in place (JSON), which keeps
    the work typed into the page."""
    wants_json = request.headers.get("Accept") == "application/json"
    try:
        item = services.review_claim(item_id=item_id, user=request.user)
    except ApplicationError as exc:
        if wants_json:
            return JsonResponse({"held": False, "code": exc.code, "message": exc.message}, status=exc.status)
        messages.error(request, exc.message)
        return redirect("annotation:queue")
    if wants_json:
        return JsonResponse({"held": True, "expires_at": item.lease_expires_at.isoformat()})
    return redirect("annotation:item", item_id=item_id)


@reviewer_required
@require_POST
def claim_next(request):
    # What the reviewer already holds comes before anything new: a held item is work in progress.
    # The item page sends its own item, which it gives back on leave: "next" is another one.
    leaving = request.POST.get("leaving", "")
    held = [i for i in selectors.items_held_by(user=request.user) if str(i.pk) != leaving]
    if held:
        return redirect("annotation:item", item_id=held[0].pk)
    item = services.review_claim_next(user=request.user)
    if item is None:
        messages.info(request, "Nothing left for you to review.")
        return redirect("annotation:queue")
    return redirect("annotation:item", item_id=item.pk)


@reviewer_required
@require_POST
def lease(request, item_id):
    """Heartbeat of an open item page: renews the lease, or says that it is gone."""
    try:
        item = services.review_renew(item_id=item_id, user=request.user)
    except ApplicationError as exc:
        return JsonResponse({"held": False, "code": exc.code, "message": exc.message}, status=exc.status)
    return JsonResponse({"held": True, "expires_at": item.lease_expires_at.isoformat()})


@reviewer_required
@require_POST
def release(request, item_id):
    """Skip (the item page), release (the queue's "held by you") or leaving the page (a beacon).

    A beacon names the page it comes from. Only the latest item page this session opened may
    release on leave: a reload, or the same item open in another tab, opens a newer page, and
    the older page's beacon (which the browser sends after the new page loaded) is ignored."""
    reason = request.POST.get("reason")
    reason = reason if reason in ("leave", "release") else "skip"
    if reason == "leave":
        if request.POST.get("page") == request.session.get(_page_key(item_id)):
            services.review_release(item_id=item_id, user=request.user, reason=reason)
        return HttpResponse(status=204)
    released = services.review_release(item_id=item_id, user=request.user, reason=reason)
    if released:
        verb = "released" if reason == "release" else "skipped"
        messages.info(request, f"Item {item_id} {verb}: it is back in the queue.")
    return redirect("annotation:queue")


def _page_key(item_id: int) -> str:
    return f"review-page-{item_id}"


@reviewer_required
def item(request, item_id):
    review_item = get_object_or_404(
        ReviewItem.objects.select_related("output__model_version", "claimed_by"), pk=item_id
    )
    output = review_item.output
    if request.method == "POST":
        form = AnnotationForm(request.POST, original_answer=output.answer)
        steps = StepFormSet(request.POST, prefix="steps")
        if form.is_valid() and steps.is_valid():
            try:
                if request.POST.get("reclaim"):
                    services.review_claim(item_id=review_item.pk, user=request.user)
                services.annotation_submit(
                    item_id=review_item.pk,
                    annotator=request.user,
                    corrected_steps=corrected_steps_from(steps),
                    **form.cleaned_data,
                )
            except ApplicationError as exc:
                # The reviewer's work stays in the page so it can be sent again after re-claiming.
                _form_errors(form, exc)
            else:
                messages.success(request, f"Correction of item {review_item.pk} saved.")
                if request.POST.get("then") == "next":
                    return claim_next(request)
                return redirect("annotation:queue")
        review_item.refresh_from_db()
    else:
        # No label starts filled in: the reviewer chooses (or confirms, with one key) each one.
        form = AnnotationForm(original_answer=output.answer)
        steps = StepFormSet(prefix="steps", initial=step_initial(output.steps))
    page_token = secrets.token_urlsafe(12)
    request.session[_page_key(review_item.pk)] = page_token
    live = review_item_lease_live(review_item)
    holds_lease = live and review_item.claimed_by_id == request.user.pk
    return render(
        request,
        "annotation/item.html",
        {
            "item": review_item,
            "output": output,
            "form": form,
            "steps": steps,
            "error_summary": error_summary(form, steps) if form.is_bound else [],
            "page_token": page_token,
            "holds_lease": holds_lease,
            "held_by_other": live and review_item.claimed_by_id != request.user.pk,
            "claimable": (
                review_item.status in (ReviewItem.Status.QUEUED, ReviewItem.Status.CLAIMED) and not live
            )
            or holds_lease,
            "mine_waiting": review_item.annotations.filter(
                annotator=request.user, status=Annotation.Status.AWAITING_TWIN
            ).exists(),
            "original_steps": [
                {"text": s["text"], "strategy": s.get("strategy") or ""} for s in output.steps
            ],
            "strategies": STRATEGIES,
            "interval_presets": INTERVAL_PRESETS,
        },
    )


# -- leads ----------------------------------------------------------------------------------


@lead_required
def second_review(request):
    annotations = selectors.second_review_queue(user=request.user)
    page = Paginator(annotations, 50).get_page(request.GET.get("page"))
    return render(request, "annotation/second_review.html", {"page": page})


@lead_required
@require_POST
def annotation_withdraw(request, annotation_id):
    try:
        services.annotation_withdraw(
            annotation_id=annotation_id, lead=request.user, reason=request.POST.get("reason", "")
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"Annotation {annotation_id} withdrawn: the next dataset version leaves it out."
        )
    return redirect("annotation:annotation-review", annotation_id=annotation_id)


@lead_required
def annotation_review(request, annotation_id):
    annotation = get_object_or_404(
        Annotation.objects.select_related(
            "annotator", "second_reviewer", "review_item__output__model_version"
        ),
        pk=annotation_id,
    )
    output = annotation.review_item.output
    decision = ReviewDecisionForm(request.POST or None)
    if request.method == "POST":
        form = AnnotationForm(request.POST)
        steps = StepFormSet(request.POST, prefix="steps")
        if decision.is_valid():
            try:
                if decision.cleaned_data["decision"] == "reject":
                    services.annotation_reject(
                        annotation_id=annotation.pk,
                        reviewer=request.user,
                        reason=decision.cleaned_data["reason"],
                    )
                    messages.success(request, f"Annotation {annotation.pk} rejected.")
                    return redirect("annotation:second-review")
                if form.is_valid() and steps.is_valid():
                    services.annotation_approve(
                        annotation_id=annotation.pk,
                        reviewer=request.user,
                        changes={**form.cleaned_data, "corrected_steps": corrected_steps_from(steps)},
                    )
                    messages.success(request, f"Annotation {annotation.pk} approved.")
                    return redirect("annotation:second-review")
            except ApplicationError as exc:
                _form_errors(decision if exc.extra.get("fields", {}).get("reason") else form, exc)
    else:
        form = AnnotationForm(
            initial={
                f: getattr(annotation, f)
                for f in (
                    "corrected_answer",
                    "first_wrong_step",
                    "error_type",
                    "correction_strategy",
                    "confidence_low",
                    "confidence_high",
                )
            }
            | {"transparent": "yes" if annotation.transparent else "no"}
        )
        steps = StepFormSet(prefix="steps", initial=step_initial(annotation.corrected_steps))
    twins = selectors.annotation_twins(annotation)
    return render(
        request,
        "annotation/annotation_review.html",
        {
            "annotation": annotation,
            "output": output,
            "form": form,
            "steps": steps,
            "decision": decision,
            "error_summary": (
                error_summary(decision)
                + (error_summary(form, steps) if decision.data.get("decision") == "approve" else [])
                if decision.is_bound
                else []
            ),
            "diff": step_diff(output.steps, annotation.corrected_steps),
            "twins": [(t, step_diff(annotation.corrected_steps, t.corrected_steps)) for t in twins],
            "reviewable": annotation.status in services.REVIEWABLE
            and annotation.annotator_id != request.user.pk,
            "strategies": STRATEGIES,
            "interval_presets": INTERVAL_PRESETS,
        },
    )


@lead_required
def agreement(request):
    rows, overall = selectors.agreement_per_reviewer()
    return render(
        request,
        "annotation/agreement.html",
        {"rows": rows, "overall": overall, "policy": services.review_policy_get(), "few_pairs": FEW_PAIRS},
    )


@lead_required
def audit_log(request):
    filters = AuditFilterForm(request.GET or None)
    filters_invalid = filters.is_bound and not filters.is_valid()
    events = selectors.audit_events(filters=filters.cleaned_data if filters.is_valid() else {})
    if filters_invalid:
        events = events.none()
    page = Paginator(events, 100).get_page(request.GET.get("page"))
    for event in page:
        event.detail_lines = selectors.audit_detail_lines(event.detail)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "annotation/audit.html",
        {"filters": filters, "page": page, "query": query.urlencode(), "filters_invalid": filters_invalid},
    )


@lead_required
def review_settings(request):
    policy = services.review_policy_get()
    form = ReviewPolicyForm(
        request.POST or None,
        initial={
            f: getattr(policy, f) for f in ("second_review_share", "double_annotation_share", "lease_minutes")
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.review_policy_update(actor=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, "Review settings saved.")
            return redirect(reverse("annotation:settings"))
        policy.refresh_from_db()
    return render(request, "annotation/settings.html", {"form": form, "policy": policy})
