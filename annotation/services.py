"""Review work: claims with leases, annotations, second review, blind double annotation, audit.

Routing of a submitted annotation (the rules leads tune on the review settings page):

- The first annotation of an item may be picked (a stable draw on the item id, at the
  ReviewPolicy.double_annotation_share) for a blind second annotation: it waits as
  AWAITING_TWIN and the item goes back to the queue for another reviewer, who never sees
  the first annotation. When the twin arrives the two are compared: if they agree (same
  error type, same first wrong step, same answer) the earlier one is APPROVED and the later
  one SUPERSEDED, so one item gives one set of training samples; otherwise both are DISPUTED
  and a lead approves one (its twin is superseded) or rejects them.
- Any other annotation may be picked (a stable draw on the annotation id, at
  second_review_share) for second review: it stays SUBMITTED until a lead approves it (as is
  or edited) or rejects it; a rejection returns the item to the queue.
- Everything else is APPROVED on submit. Only APPROVED annotations become training data.
- Before any of that the claim checker reads the correction (annotation.checks): a wrong claim
  in a corrected step, or an answer that disagrees with the steps, refuses the submit with the
  step named. The reviewer may keep it with a reason; it then waits for a lead (SUBMITTED).
- A lead may withdraw an APPROVED annotation (WITHDRAWN, with a reason, audited): the next
  dataset version leaves its samples out and records that it did.

A step is only routed to someone who exists: with no other reviewer there is no blind twin
and with no lead (other than the annotator) there is no second review; the audit event says so.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation.checks import answers_agree, correction_problems
from annotation.models import Annotation, AuditEvent, ReviewPolicy
from cogloop.draws import stable_draw
from cogloop.errors import ApplicationError
from feedback import services as feedback_services
from feedback.models import ReviewItem
from inference.engine.parser import STRATEGIES

REVIEWER, LEAD = "reviewer", "lead"
ROLES = (REVIEWER, LEAD)
MAX_STEPS = 100
MAX_STEP_CHARS = 2000
EDITABLE_FIELDS = (
    "corrected_steps",
    "corrected_answer",
    "first_wrong_step",
    "error_type",
    "correction_strategy",
    "confidence_low",
    "confidence_high",
    "transparent",
)


def audit(*, actor, action: str, review_item=None, annotation=None, **detail) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor, action=action, review_item=review_item, annotation=annotation, detail=detail
    )


# -- roles and the review policy ------------------------------------------------------------


def users_with_role(role: str):
    """Active users who hold ``role``. Admins (staff) hold every role; a lead is also a reviewer."""
    groups = [LEAD] if role == LEAD else [REVIEWER, LEAD]
    return (
        get_user_model()
        .objects.filter(Q(is_staff=True) | Q(is_superuser=True) | Q(groups__name__in=groups), is_active=True)
        .distinct()
    )


def user_has_role(user, role: str) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff or user.is_superuser:
        return True
    cache = getattr(user, "_review_roles", None)
    if cache is None:
        cache = user._review_roles = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
    return LEAD in cache if role == LEAD else bool(cache)


@transaction.atomic
def user_role_grant(*, user, role: str) -> None:
    if role not in ROLES:
        raise ApplicationError(
            f"unknown role {role!r}", code="validation_error", extra={"fields": {"role": ["unknown role"]}}
        )
    group, _ = Group.objects.get_or_create(
        name=role
    )  # the migration makes it; a flushed test database may not have it
    user.groups.add(group)
    user.__dict__.pop("_review_roles", None)


def review_policy_get() -> ReviewPolicy:
    policy, _ = ReviewPolicy.objects.get_or_create(pk=1)
    return policy


@transaction.atomic
def review_policy_update(
    *, actor, second_review_share: float, double_annotation_share: float, lease_minutes: int
) -> ReviewPolicy:
    if not user_has_role(actor, LEAD):
        raise ApplicationError("only leads change review settings", code="forbidden", status=403)
    errors: dict[str, list[str]] = {}
    shares = (
        ("second_review_share", second_review_share),
        ("double_annotation_share", double_annotation_share),
    )
    for name, value in shares:
        if not (0.0 <= value <= 1.0):
            errors[name] = ["must lie in [0, 1]"]
    if not (1 <= lease_minutes <= 240):
        errors["lease_minutes"] = ["must lie between 1 and 240 minutes"]
    if errors:
        raise ApplicationError(
            "the review settings are invalid", code="validation_error", extra={"fields": errors}
        )
    policy = ReviewPolicy.objects.select_for_update().get_or_create(pk=1)[0]
    before = {
        "second_review_share": policy.second_review_share,
        "double_annotation_share": policy.double_annotation_share,
        "lease_minutes": policy.lease_minutes,
    }
    policy.second_review_share = second_review_share
    policy.double_annotation_share = double_annotation_share
    policy.lease_minutes = lease_minutes
    policy.updated_by = actor
    policy.save()
    after = {
        "second_review_share": second_review_share,
        "double_annotation_share": double_annotation_share,
        "lease_minutes": lease_minutes,
    }
    audit(actor=actor, action=AuditEvent.Action.SETTINGS, before=before, after=after)
    return policy


def _lease() -> timedelta:
    return timedelta(minutes=review_policy_get().lease_minutes)


# -- claims ---------------------------------------------------------------------------------


def _require_reviewer(user) -> None:
    if not user_has_role(user, REVIEWER):
        raise ApplicationError("you need the reviewer role", code="forbidden", status=403)


@transaction.atomic
def review_claim(*, item_id: int, user) -> ReviewItem:
    """Claim one item (or renew one's own claim). A blind twin goes to someone else."""
    _require_reviewer(user)
    mine = Annotation.objects.filter(review_item_id=item_id, annotator=user)
    if mine.filter(status=Annotation.Status.AWAITING_TWIN).exists():
        raise ApplicationError(
            "you annotated this item already; its blind second annotation needs another reviewer",
            code="not_claimable",
            status=409,
        )
    item = feedback_services.review_item_claim(item_id=item_id, user=user, lease=_lease())
    assert item.lease_expires_at is not None  # a claim always sets the lease
    audit(
        actor=user,
        action=AuditEvent.Action.CLAIM,
        review_item=item,
        lease_expires_at=item.lease_expires_at.isoformat(),
    )
    return item


@transaction.atomic
def review_claim_next(*, user) -> ReviewItem | None:
    """The best unclaimed item this reviewer has not annotated before."""
    _require_reviewer(user)
    mine = Annotation.objects.filter(annotator=user).values("review_item_id")
    item = feedback_services.review_item_claim_next(user=user, lease=_lease(), exclude_ids=mine)
    if item is not None:
        assert item.lease_expires_at is not None  # a claim always sets the lease
        audit(
            actor=user,
            action=AuditEvent.Action.CLAIM,
            review_item=item,
            next=True,
            lease_expires_at=item.lease_expires_at.isoformat(),
        )
    return item


def review_renew(*, item_id: int, user) -> ReviewItem:
    return feedback_services.review_item_renew(item_id=item_id, user=user, lease=_lease())


@transaction.atomic
def review_release(*, item_id: int, user, reason: str) -> bool:
    released = feedback_services.review_item_release(item_id=item_id, user=user)
    if released:
        item = ReviewItem.objects.get(pk=item_id)
        audit(actor=user, action=AuditEvent.Action.RELEASE, review_item=item, reason=reason)
    return released


# -- annotations ----------------------------------------------------------------------------


def _validate(
    *,
    item: ReviewItem,
    corrected_steps,
    corrected_answer,
    confidence_low,
    confidence_high,
    error_type,
    first_wrong_step,
) -> None:
    """Every field's problem at once, keyed by the field's name."""
    errors: dict[str, list[str]] = {}
    if not corrected_steps:
        errors["corrected_steps"] = ["at least one corrected step is required"]
    if len(corrected_steps) > MAX_STEPS:
        errors["corrected_steps"] = [f"at most {MAX_STEPS} steps"]
    for i, step in enumerate(corrected_steps, start=1):
        text = str(step.get("text", "")).strip()
        if not text:
            errors.setdefault("corrected_steps", []).append(f"step {i} is empty")
        elif len(text) > MAX_STEP_CHARS:
            errors.setdefault("corrected_steps", []).append(
                f"step {i} is longer than {MAX_STEP_CHARS} characters"
            )
        if step.get("strategy") not in STRATEGIES:
            errors.setdefault("corrected_steps", []).append(f"step {i} has no valid strategy")
    if not str(corrected_answer).strip():
        errors["corrected_answer"] = ["the corrected answer is required"]
    if confidence_low is None or not (0.0 <= confidence_low <= 1.0):
        errors["confidence_low"] = ["must lie in [0, 1]"]
    if confidence_high is None or not (0.0 <= confidence_high <= 1.0):
        errors["confidence_high"] = ["must lie in [0, 1]"]
    if (
        not errors.get("confidence_low")
        and not errors.get("confidence_high")
        and confidence_low > confidence_high
    ):
        errors["confidence_low"] = ["the low end must not exceed the high end"]
    if error_type not in Annotation.ErrorType.values:
        errors["error_type"] = ["unknown error type"]
    if first_wrong_step is not None:
        last = len(item.output.steps) + 1  # one past the end: a step is missing after the last
        if not (1 <= first_wrong_step <= last):
            errors["first_wrong_step"] = [f"must be a step of the original reasoning (1 to {last})"]
    if errors:
        raise ApplicationError("the annotation is invalid", code="validation_error", extra={"fields": errors})


def _clean_steps(steps: list[dict]) -> list[dict]:
    return [{"text": str(s["text"]).strip(), "strategy": s["strategy"]} for s in steps]


def twins_agree(a: Annotation, b: Annotation) -> bool:
    """Two blind annotations agree when they find the same error at the same step and give the
    same answer value ("34" and "The answer is 34.0" agree). Wording and strategy labels may
    differ (agreement measures those)."""
    return (
        a.error_type == b.error_type
        and a.first_wrong_step == b.first_wrong_step
        and answers_agree(a.corrected_answer, b.corrected_answer)
    )


def _someone_else(role: str, user) -> bool:
    return users_with_role(role).exclude(pk=user.pk).exists()


def _approve_unsafe(annotation: Annotation, *, actor, **detail) -> None:
    """Mark approved without checks: callers hold the row lock and checked the status."""
    annotation.status = Annotation.Status.APPROVED
    if actor is not None:
        annotation.second_reviewer = actor
        annotation.reviewed_at = timezone.now()
    annotation.save()
    audit(
        actor=actor,
        action=AuditEvent.Action.APPROVE,
        review_item=annotation.review_item,
        annotation=annotation,
        **detail,
    )


def _route(annotation: Annotation, item: ReviewItem, policy: ReviewPolicy) -> None:
    """Where a fresh annotation goes: blind twin, twin comparison, second review or approval."""
    annotator = annotation.annotator
    twin = (
        Annotation.objects.select_for_update()
        .filter(review_item=item, status=Annotation.Status.AWAITING_TWIN)
        .exclude(pk=annotation.pk)
        .order_by("pk")
        .first()
    )
    if twin is not None:
        annotation.blind = True
        if twins_agree(twin, annotation):
            annotation.status = Annotation.Status.SUPERSEDED
            annotation.save()
            audit(
                actor=None,
                action=AuditEvent.Action.SUPERSEDE,
                review_item=item,
                annotation=annotation,
                rule="blind twins agree; the earlier one is the training data",
                twin=twin.pk,
            )
            _approve_unsafe(twin, actor=None, rule="blind twins agree", twin=annotation.pk)
        else:
            annotation.status = Annotation.Status.DISPUTED
            annotation.save()
            twin.status = Annotation.Status.DISPUTED
            twin.save()
        feedback_services.review_item_mark_annotated(item=item)
        return
    first_of_item = not Annotation.objects.filter(review_item=item).exclude(pk=annotation.pk).exists()
    if first_of_item and stable_draw("double", item.pk) < policy.double_annotation_share:
        if _someone_else(REVIEWER, annotator):
            annotation.blind = True
            annotation.status = Annotation.Status.AWAITING_TWIN
            annotation.save()
            feedback_services.review_item_requeue(item=item, annotations_wanted=2)
            return
    feedback_services.review_item_mark_annotated(item=item)
    if stable_draw("second", annotation.pk) < policy.second_review_share:
        if _someone_else(LEAD, annotator):
            return  # stays SUBMITTED for a lead
        _approve_unsafe(annotation, actor=None, rule="picked for second review, but there is no other lead")
        return
    _approve_unsafe(annotation, actor=None, rule="not picked for second review")


@transaction.atomic
def annotation_submit(
    *,
    item_id: int,
    annotator,
    corrected_steps: list[dict],
    corrected_answer: str,
    error_type: str,
    confidence_low: float,
    confidence_high: float,
    transparent: bool,
    first_wrong_step: int | None = None,
    correction_strategy: str = "",
    override_reason: str = "",
) -> Annotation:
    """Store a reviewer's correction and route it (see the module docstring).

    Requires a live lease held by the annotator; invalid input changes nothing. A correction
    the claim checker finds wrong is refused (``correction_check_failed``, the steps named)
    unless ``override_reason`` says why it stands; then it waits for a lead.
    """
    item = ReviewItem.objects.select_for_update().select_related("output").filter(pk=item_id).first()
    if item is None:
        raise ApplicationError("no such review item", code="not_found", status=404)
    feedback_services.review_item_require_lease(item=item, user=annotator)
    _validate(
        item=item,
        corrected_steps=corrected_steps,
        corrected_answer=corrected_answer,
        confidence_low=confidence_low,
        confidence_high=confidence_high,
        error_type=error_type,
        first_wrong_step=first_wrong_step,
    )
    problems = correction_problems(corrected_steps, corrected_answer)
    override_reason = override_reason.strip()
    if problems and not override_reason:
        raise ApplicationError(
            "the claim checker finds the correction wrong: fix it, or keep it with a reason for a lead",
            code="correction_check_failed",
            extra={"fields": problems},
        )
    annotation = Annotation.objects.create(
        review_item=item,
        annotator=annotator,
        corrected_steps=_clean_steps(corrected_steps),
        corrected_answer=corrected_answer.strip(),
        first_wrong_step=first_wrong_step,
        error_type=error_type,
        correction_strategy=correction_strategy.strip(),
        confidence_low=confidence_low,
        confidence_high=confidence_high,
        transparent=transparent,
        status=Annotation.Status.SUBMITTED,
        check_problems=problems,
        override_reason=override_reason if problems else "",
    )
    audit(actor=annotator, action=AuditEvent.Action.SUBMIT, review_item=item, annotation=annotation)
    if problems:
        # Kept against the checker: a lead decides before it can become training data.
        feedback_services.review_item_mark_annotated(item=item)
        audit(
            actor=None,
            action=AuditEvent.Action.SUBMIT,
            review_item=item,
            annotation=annotation,
            rule="the checker found problems; the reviewer kept it, so it waits for second review",
            problems=problems,
            reason=override_reason,
        )
        return annotation
    _route(annotation, item, review_policy_get())
    return annotation


@transaction.atomic
def annotation_withdraw(*, annotation_id: int, lead, reason: str) -> Annotation:
    """Take back an approved annotation: its samples leave the next dataset version."""
    if not user_has_role(lead, LEAD):
        raise ApplicationError("withdrawing an annotation needs the lead role", code="forbidden", status=403)
    reason = reason.strip()
    if not reason:
        raise ApplicationError(
            "say why the annotation is withdrawn",
            code="validation_error",
            extra={"fields": {"reason": ["a reason is required"]}},
        )
    annotation = Annotation.objects.select_for_update().filter(pk=annotation_id).first()
    if annotation is None:
        raise ApplicationError("no such annotation", code="not_found", status=404)
    if annotation.status != Annotation.Status.APPROVED:
        raise ApplicationError(
            f"only an approved annotation can be withdrawn; this one is {annotation.get_status_display().lower()}",
            code="not_withdrawable",
            status=409,
        )
    annotation.status = Annotation.Status.WITHDRAWN
    annotation.withdrawn_at = timezone.now()
    annotation.withdrawn_by = lead
    annotation.withdraw_reason = reason
    annotation.save(update_fields=["status", "withdrawn_at", "withdrawn_by", "withdraw_reason"])
    audit(
        actor=lead,
        action=AuditEvent.Action.WITHDRAW,
        review_item=annotation.review_item,
        annotation=annotation,
        reason=reason,
    )
    return annotation


# -- second review --------------------------------------------------------------------------

REVIEWABLE = (Annotation.Status.SUBMITTED, Annotation.Status.DISPUTED)


def _lock_for_review(*, annotation_id: int, reviewer) -> Annotation:
    if not user_has_role(reviewer, LEAD):
        raise ApplicationError("second review needs the lead role", code="forbidden", status=403)
    annotation = (
        Annotation.objects.select_for_update()
        .select_related("review_item__output")
        .filter(pk=annotation_id)
        .first()
    )
    if annotation is None:
        raise ApplicationError("no such annotation", code="not_found", status=404)
    if annotation.annotator_id == reviewer.pk:
        raise ApplicationError(
            "you cannot second-review your own annotation", code="own_annotation", status=403
        )
    if annotation.status not in REVIEWABLE:
        raise ApplicationError(
            f"this annotation is {annotation.get_status_display().lower()}, not awaiting review",
            code="not_reviewable",
            status=409,
        )
    return annotation


@transaction.atomic
def annotation_approve(*, annotation_id: int, reviewer, changes: dict | None = None) -> Annotation:
    """A lead approves an annotation, as it is or with ``changes`` (any EDITABLE_FIELDS).

    Approving one of a disputed blind pair supersedes the other. The fields a lead changed
    are kept in the audit event, before and after.
    """
    annotation = _lock_for_review(annotation_id=annotation_id, reviewer=reviewer)
    changes = {k: v for k, v in (changes or {}).items() if k in EDITABLE_FIELDS}
    if "corrected_steps" in changes:
        changes["corrected_steps"] = changes["corrected_steps"] and _clean_steps(changes["corrected_steps"])
    if isinstance(changes.get("corrected_answer"), str):
        changes["corrected_answer"] = changes["corrected_answer"].strip()
    merged = {f: changes.get(f, getattr(annotation, f)) for f in EDITABLE_FIELDS}
    _validate(
        item=annotation.review_item,
        corrected_steps=merged["corrected_steps"],
        corrected_answer=merged["corrected_answer"],
        confidence_low=merged["confidence_low"],
        confidence_high=merged["confidence_high"],
        error_type=merged["error_type"],
        first_wrong_step=merged["first_wrong_step"],
    )
    edited = {
        f: {"before": getattr(annotation, f), "after": v}
        for f, v in changes.items()
        if getattr(annotation, f) != v
    }
    for field, change in edited.items():
        setattr(annotation, field, change["after"])
    was_disputed = annotation.status == Annotation.Status.DISPUTED
    _approve_unsafe(annotation, actor=reviewer, edited=edited)
    if was_disputed:
        for twin in (
            Annotation.objects.select_for_update()
            .filter(review_item=annotation.review_item, status=Annotation.Status.DISPUTED)
            .exclude(pk=annotation.pk)
        ):
            twin.status = Annotation.Status.SUPERSEDED
            twin.second_reviewer, twin.reviewed_at = reviewer, timezone.now()
            twin.save()
            audit(
                actor=reviewer,
                action=AuditEvent.Action.SUPERSEDE,
                review_item=twin.review_item,
                annotation=twin,
                rule="a lead chose its twin",
                twin=annotation.pk,
            )
    return annotation


@transaction.atomic
def annotation_reject(*, annotation_id: int, reviewer, reason: str) -> Annotation:
    """A lead rejects an annotation (a reason is required). The item returns to the queue once
    no annotation of it is left awaiting a decision."""
    if not reason.strip():
        raise ApplicationError(
            "say why the annotation is rejected",
            code="validation_error",
            extra={"fields": {"reason": ["a reason is required"]}},
        )
    annotation = _lock_for_review(annotation_id=annotation_id, reviewer=reviewer)
    annotation.status = Annotation.Status.REJECTED
    annotation.second_reviewer, annotation.reviewed_at = reviewer, timezone.now()
    annotation.review_note = reason.strip()
    annotation.save()
    item = ReviewItem.objects.select_for_update().get(pk=annotation.review_item_id)
    audit(
        actor=reviewer,
        action=AuditEvent.Action.REJECT,
        review_item=item,
        annotation=annotation,
        reason=reason.strip(),
    )
    pending = Annotation.objects.filter(
        review_item=item, status__in=[*REVIEWABLE, Annotation.Status.APPROVED]
    )
    if not pending.exists():
        feedback_services.review_item_requeue(item=item, annotations_wanted=1)
        audit(
            actor=reviewer,
            action=AuditEvent.Action.REQUEUE,
            review_item=item,
            rule="its annotation was rejected",
        )
    return annotation
