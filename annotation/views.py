from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from annotation import services
from annotation.forms import AnnotationForm, StepFormSet, corrected_steps_from
from cogloop.errors import ApplicationError
from feedback import services as feedback_services
from feedback.models import ReviewItem


@login_required
def queue(request):
    items = (
        ReviewItem.objects.filter(status__in=[ReviewItem.Status.QUEUED, ReviewItem.Status.CLAIMED])
        .select_related("output", "claimed_by", "output__model_version")
        .order_by("priority", "created_at")[:100]
    )
    counts = {s: ReviewItem.objects.filter(status=s).count() for s in ReviewItem.Status.values}
    done_today = request.user.annotations.count()
    return render(request, "annotation/queue.html", {"items": items, "counts": counts, "done": done_today})


@login_required
@require_POST
def claim(request, item_id):
    try:
        feedback_services.review_item_claim(item_id=item_id, user=request.user)
        services.audit(actor=request.user, action="claim", review_item=ReviewItem.objects.get(pk=item_id))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("annotation:queue")
    return redirect("annotation:item", item_id=item_id)


@login_required
@require_POST
def claim_next(request):
    item = feedback_services.review_item_claim_next(user=request.user)
    if item is None:
        messages.info(request, "The queue is empty.")
        return redirect("annotation:queue")
    services.audit(actor=request.user, action="claim", review_item=item)
    return redirect("annotation:item", item_id=item.pk)


@login_required
def item(request, item_id):
    review_item = get_object_or_404(ReviewItem.objects.select_related("output", "output__model_version"), pk=item_id)
    output = review_item.output
    holds_lease = review_item.status == ReviewItem.Status.CLAIMED and review_item.claimed_by_id == request.user.pk
    if request.method == "POST":
        form = AnnotationForm(request.POST)
        steps = StepFormSet(request.POST, prefix="steps")
        if form.is_valid() and steps.is_valid():
            try:
                services.annotation_submit(
                    item_id=review_item.pk,
                    annotator=request.user,
                    corrected_steps=corrected_steps_from(steps),
                    **form.cleaned_data,
                )
            except ApplicationError as exc:
                # The reviewer's work stays in the page so it can be sent again after re-claiming.
                for field, errors in exc.extra.get("fields", {}).items():
                    for error in errors:
                        form.add_error(field if field in form.fields else None, error)
                if not exc.extra.get("fields"):
                    form.add_error(None, exc.message)
            else:
                messages.success(request, "Correction saved.")
                return redirect("annotation:queue")
    else:
        form = AnnotationForm(initial={"confidence_low": 0.5, "confidence_high": 0.9, "transparent": "yes"})
        steps = StepFormSet(
            prefix="steps",
            initial=[{"text": s["text"], "strategy": s["strategy"], "ORDER": s["index"]} for s in output.steps],
        )
    return render(
        request,
        "annotation/item.html",
        {"item": review_item, "output": output, "form": form, "steps": steps, "holds_lease": holds_lease},
    )
