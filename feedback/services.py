"""Feedback ingestion, the capture policy, and the review queue's state changes."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from cogloop.draws import stable_draw
from cogloop.errors import ApplicationError
from cogloop.models import OutboxMessage
from cogloop.outbox import outbox_enqueue_many, outbox_written
from feedback.models import CapturePolicy, Feedback, ReviewItem
from feedback.selectors import review_item_open_q
from inference.models import Output, ProductApp

log = logging.getLogger("cogloop.feedback")

LEASE = timedelta(minutes=10)
FEEDBACK_CAPTURE_TASK = "feedback.feedback_apply_capture"


# -- capture policy -------------------------------------------------------------------------


def capture_policy_get() -> CapturePolicy:
    policy, _ = CapturePolicy.objects.get_or_create(
        pk=1,
        defaults={
            "score_below": settings.COGLOOP["CAPTURE_SCORE_BELOW"],
            "audit_share": settings.COGLOOP["CAPTURE_AUDIT_SHARE"],
        },
    )
    return policy


# (policy, read at) of this process: the policy is read on every output and every capture, and
# changes a few times a year. Trusted CAPTURE_POLICY_CACHE_S seconds; a change made in this
# process (the admin) drops it at once.
_policy_cached: tuple[CapturePolicy, float] | None = None
_clock = time.monotonic  # the copy's clock (a test moves it)


def capture_policy_cached() -> CapturePolicy:
    """The capture policy as this process last read it, at most CAPTURE_POLICY_CACHE_S old."""
    global _policy_cached
    now = _clock()
    if _policy_cached is None or now - _policy_cached[1] >= settings.CAPTURE_POLICY_CACHE_S:
        _policy_cached = (capture_policy_get(), now)
    return _policy_cached[0]


def capture_policy_forget() -> None:
    """Drop this process's copy of the policy (after a change, and between tests)."""
    global _policy_cached
    _policy_cached = None


def capture_policy_update(*, policy: CapturePolicy, fields: list[str] | None = None) -> CapturePolicy:
    """Save an edited policy; this process uses it from the next request, others within
    CAPTURE_POLICY_CACHE_S."""
    policy.save(update_fields=fields)
    capture_policy_forget()
    transaction.on_commit(capture_policy_forget)
    return policy


def prompt_fingerprint(prompt: str) -> str:
    """Near-duplicate key: case, punctuation and whitespace do not make a prompt new."""
    normal = re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", prompt.lower())).strip()
    return hashlib.sha256(normal.encode()).hexdigest()


def _queue(
    *, output: Output, reason: str, detail: str, priority: float, new_output: bool = False
) -> ReviewItem | None:
    """Queue an output unless it is queued already or an open item has a near-duplicate prompt.

    ``new_output``: the output was created in this transaction, so no item can hold it yet.
    """
    fingerprint = prompt_fingerprint(output.prompt)
    existing = None if new_output else ReviewItem.objects.select_for_update().filter(output=output).first()
    if existing:
        if priority < existing.priority:
            existing.priority = priority
            existing.reason_detail = f"{existing.reason_detail}; {detail}"[:200]
            existing.save(update_fields=["priority", "reason_detail"])
        return existing
    open_duplicate = ReviewItem.objects.filter(
        prompt_fingerprint=fingerprint, status__in=[ReviewItem.Status.QUEUED, ReviewItem.Status.CLAIMED]
    ).exists()
    if open_duplicate:
        return None
    return ReviewItem.objects.create(
        output=output,
        reason=reason,
        reason_detail=detail[:200],
        priority=priority,
        prompt_fingerprint=fingerprint,
    )


def review_item_capture_for_output(output: Output) -> ReviewItem | None:
    """The output-created hook: low scores are captured, a small share of the rest audited."""
    policy = capture_policy_cached()
    if output.cognition_score < policy.score_below:
        return _queue(
            output=output,
            reason=ReviewItem.Reason.LOW_SCORE,
            detail=f"cognition score {output.cognition_score:.2f} < {policy.score_below:.2f}",
            priority=output.cognition_score,
            new_output=True,
        )
    if stable_draw("audit", output.uuid) < policy.audit_share:
        return _queue(
            output=output,
            reason=ReviewItem.Reason.AUDIT_SAMPLE,
            detail=f"random audit of a high score ({output.cognition_score:.2f})",
            priority=1.0 + output.cognition_score,  # audits go after every real problem
            new_output=True,
        )
    return None


@transaction.atomic
def feedback_apply_capture(*, feedback_id: int) -> ReviewItem | None:
    """Queue the feedback's output when the rating, thumb or flags say so (runs in a worker).

    Marks the feedback captured in the same transaction, under its row lock: a second
    delivery, or the reconcile meeting a late message, finds it done and changes nothing.
    """
    fb = Feedback.objects.select_for_update().filter(pk=feedback_id).first()
    if fb is None or fb.captured_at is not None:
        return None
    fb.captured_at = timezone.now()
    fb.save(update_fields=["captured_at"])
    policy = capture_policy_cached()
    reasons = []
    if fb.rating is not None and fb.rating <= policy.rating_at_or_below:
        reasons.append(f"rated {fb.rating}/5")
    if fb.thumb is False and policy.capture_thumb_down:
        reasons.append("thumb down")
    flagged = [f for f in fb.flags if not policy.capture_flags or f in policy.capture_flags]
    if flagged:
        reasons.append(f"flagged {', '.join(flagged)}")
    if not reasons:
        return None
    worst = fb.rating if fb.rating is not None else (1 if fb.thumb is False or flagged else 5)
    return _queue(
        output=fb.output,
        reason=ReviewItem.Reason.LOW_RATING,
        detail="; ".join(reasons),
        priority=min(fb.output.cognition_score, (worst - 1) / 4),
    )


def feedback_capture_enqueue(*, feedback_ids: list[int]) -> None:
    """Ask for the capture of these feedback ids, a chunk per message (in the caller's
    transaction): short tasks that a killed worker loses little of and others share."""
    chunk = settings.FEEDBACK_CAPTURE_CHUNK
    outbox_enqueue_many(
        task_name=FEEDBACK_CAPTURE_TASK,
        payloads=[
            {"feedback_ids": feedback_ids[start : start + chunk]}
            for start in range(0, len(feedback_ids), chunk)
        ],
    )


def feedback_capture_reconcile(*, grace: timedelta | None = None, limit: int = 500) -> int:
    """Capture feedback whose capture never ran (its message lost, its retries spent).

    Outputs need no such pass: their capture runs inside the transaction that creates them
    (inference.hooks), so a committed output has been through the policy. Returns how many
    feedback rows this pass captured.
    """
    if grace is None:
        grace = timedelta(seconds=settings.FEEDBACK_CAPTURE_GRACE_S)
    stale = Feedback.objects.filter(captured_at__isnull=True, created_at__lt=timezone.now() - grace)
    ids = list(stale.order_by("created_at").values_list("pk", flat=True)[:limit])
    for feedback_id in ids:
        feedback_apply_capture(feedback_id=feedback_id)
    if ids:
        log.warning("capture reconcile captured %d feedback whose capture had not run", len(ids))
    return len(ids)


# -- feedback ingestion ---------------------------------------------------------------------


# json.dumps with options builds a new encoder on every call; a bulk hashes a thousand items.
_CANONICAL = json.JSONEncoder(sort_keys=True, default=str)


def request_hash(body: dict) -> str:
    return hashlib.sha256(_CANONICAL.encode(body).encode()).hexdigest()


def _replay_or_conflict(*, app: ProductApp, key: str, body_hash: str) -> Feedback | None:
    first = Feedback.objects.filter(app=app, idempotency_key=key).first()
    if first is None:
        return None
    if first.request_hash != body_hash:
        raise ApplicationError(
            f"idempotency key {key!r} was used with a different body", code="idempotency_conflict", status=409
        )
    return first


def output_for_app(*, app: ProductApp, output_id) -> Output:
    """The caller's own output; unknown and another app's look the same (404, field named)."""
    output = Output.objects.filter(app=app, uuid=output_id).first()
    if output is None:
        raise ApplicationError(
            "no such output",
            code="not_found",
            status=404,
            extra={"fields": {"output_id": ["no such output"]}},
        )
    return output


def feedback_create(*, app: ProductApp, data: dict, idempotency_key: str | None) -> tuple[Feedback, bool]:
    """Store one validated feedback. Returns (feedback, created); a replay returns the first.

    On PostgreSQL one statement (_feedback_insert_returning) does the output check, the
    insert, the idempotency check and the capture's outbox row, in its own transaction: one
    round trip. Only when it inserts nothing does a second query say why (a replay, a key
    used with another body, an unknown output).
    """
    body_hash = request_hash(data)
    if connection.vendor == "postgresql":
        fb = _feedback_insert_returning(
            app=app, data=data, idempotency_key=idempotency_key, body_hash=body_hash
        )
        if fb is not None:
            return fb, True
        replay = (
            _replay_or_conflict(app=app, key=idempotency_key, body_hash=body_hash)
            if idempotency_key
            else None
        )
        if replay is not None:
            return replay, False
        output_for_app(app=app, output_id=data["output_id"])  # raises the 404
        raise RuntimeError("feedback insert returned nothing for an existing output and a new key")
    return _feedback_create_orm(app=app, data=data, idempotency_key=idempotency_key, body_hash=body_hash)


_INSERT_RETURNING = """
WITH fb AS (
    INSERT INTO {feedback} (output_id, app_id, rating, thumb, comment, flags, idempotency_key,
                            request_hash, created_at)
    SELECT o.id, %(app)s, %(rating)s, %(thumb)s, %(comment)s, %(flags)s::jsonb, %(key)s, %(hash)s, %(now)s
    FROM {output} o WHERE o.app_id = %(app)s AND o.uuid = %(uuid)s
    ON CONFLICT (app_id, idempotency_key) DO NOTHING
    RETURNING id, output_id
), message AS (
    INSERT INTO {outbox} (task_name, payload, created_at, attempts, last_error)
    SELECT %(task)s, jsonb_build_object('feedback_ids', jsonb_build_array(fb.id)), %(now)s, 0, ''
    FROM fb
    RETURNING id
)
SELECT fb.id, fb.output_id FROM fb, message
"""


def _feedback_insert_returning(
    *, app: ProductApp, data: dict, idempotency_key: str | None, body_hash: str
) -> Feedback | None:
    """The feedback row and its capture message in one statement, or None when nothing was
    inserted: no such output of this app, or the key is taken (ON CONFLICT waits for a
    concurrent insert of the same key to end, so the caller's lookup then sees its row)."""
    output_uuid = uuid.UUID(str(data["output_id"]))
    now = timezone.now()
    fields = {
        "rating": data.get("rating"),
        "thumb": data.get("thumb"),
        "comment": data.get("comment", ""),
        "flags": data.get("flags", []),
    }
    sql = _INSERT_RETURNING.format(
        feedback=Feedback._meta.db_table, output=Output._meta.db_table, outbox=OutboxMessage._meta.db_table
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                **fields,
                "app": app.pk,
                "flags": json.dumps(fields["flags"]),
                "key": idempotency_key,
                "hash": body_hash,
                "now": now,
                "uuid": output_uuid,
                "task": FEEDBACK_CAPTURE_TASK,
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    outbox_written()
    pk, output_pk = row
    fb = Feedback(
        pk=pk,
        app=app,
        output_id=output_pk,
        idempotency_key=idempotency_key,
        request_hash=body_hash,
        created_at=now,
        **fields,
    )
    fb._state.adding, fb._state.db = False, connection.alias
    # The answer names the output by its uuid, which the request gave: no query to load it.
    fb.output = Output(pk=output_pk, uuid=output_uuid, app=app)
    fb.output._state.adding = False
    return fb


def _feedback_create_orm(
    *, app: ProductApp, data: dict, idempotency_key: str | None, body_hash: str
) -> tuple[Feedback, bool]:
    """feedback_create for databases without INSERT ... RETURNING in a WITH (SQLite, embedded)."""
    if idempotency_key:
        replay = _replay_or_conflict(app=app, key=idempotency_key, body_hash=body_hash)
        if replay:
            return replay, False
    output = output_for_app(app=app, output_id=data["output_id"])
    try:
        with transaction.atomic():
            fb = Feedback.objects.create(
                app=app,
                output=output,
                rating=data.get("rating"),
                thumb=data.get("thumb"),
                comment=data.get("comment", ""),
                flags=data.get("flags", []),
                idempotency_key=idempotency_key,
                request_hash=body_hash,
            )
            feedback_capture_enqueue(feedback_ids=[fb.pk])
    except IntegrityError:
        # A concurrent request with the same key won the race: answer as its replay.
        replay = (
            _replay_or_conflict(app=app, key=idempotency_key, body_hash=body_hash)
            if idempotency_key
            else None
        )
        if replay is None:
            raise
        return replay, False
    return fb, True


# How often a bulk looks again after a concurrent request stored one of its keys first.
BULK_ATTEMPTS = 5


def feedback_create_bulk(*, app: ProductApp, items: list[dict]) -> list[dict]:
    """Store many validated feedback items in one transaction; per-item results in order.

    ``items`` are dicts already validated field by field, or {"errors": ...} for items that
    failed validation; those are reported and skipped, the rest are written.

    Two requests carrying the same keys at once both find them unused and both insert; the
    unique constraint makes the second wait for the first and then fail. PostgreSQL raises
    only once the first has committed, so the second, rolled back to its savepoint and run
    again, finds those rows and answers them as replays (or conflicts), never as a 500.
    """
    hashes = {i: request_hash(it["data"]) for i, it in enumerate(items) if "errors" not in it}
    attempt = 1
    while True:
        try:
            with transaction.atomic():
                return _feedback_create_bulk_once(app=app, items=items, hashes=hashes)
        except IntegrityError:
            if attempt == BULK_ATTEMPTS:
                raise
            attempt += 1


def _feedback_create_bulk_once(*, app: ProductApp, items: list[dict], hashes: dict[int, str]) -> list[dict]:
    results: list[dict | None] = [None] * len(items)
    keyed = {
        it["idempotency_key"]: i
        for i, it in enumerate(items)
        if "errors" not in it and it.get("idempotency_key")
    }
    wanted = {str(it["data"]["output_id"]) for it in items if "errors" not in it}
    earlier, outputs, ids = _bulk_lookups(app=app, keys=list(keyed), uuids=list(wanted), new_ids=len(hashes))
    seen_keys: dict[str, int] = {}
    to_create: list[tuple[int, dict]] = []
    for i, it in enumerate(items):
        if "errors" in it:
            results[i] = {
                "index": i,
                "status": "error",
                "code": "validation_error",
                "errors": it["errors"],
            }
            continue
        data, key = it["data"], it.get("idempotency_key")
        if key and key in earlier:
            if earlier[key][1] != hashes[i]:
                results[i] = {
                    "index": i,
                    "status": "error",
                    "code": "idempotency_conflict",
                    "errors": {"idempotency_key": ["used before with a different body"]},
                }
            else:
                results[i] = {"index": i, "status": "replayed", "id": earlier[key][0]}
            continue
        if key and key in seen_keys:
            results[i] = {
                "index": i,
                "status": "error",
                "code": "duplicate_in_request",
                "errors": {"idempotency_key": [f"repeats item {seen_keys[key]}"]},
            }
            continue
        output_pk = outputs.get(str(data["output_id"]))
        if output_pk is None:
            results[i] = {
                "index": i,
                "status": "error",
                "code": "not_found",
                "errors": {"output_id": ["no such output"]},
            }
            continue
        if key:
            seen_keys[key] = i
        to_create.append(
            (
                i,
                {
                    "output_id": output_pk,
                    "app_id": app.pk,
                    "rating": data.get("rating"),
                    "thumb": data.get("thumb"),
                    "comment": data.get("comment", ""),
                    "flags": data.get("flags", []),
                    "idempotency_key": key,
                    "request_hash": hashes[i],
                },
            )
        )
    created = _insert_many([row for _, row in to_create], ids=ids)
    for (i, _), pk in zip(to_create, created):
        results[i] = {"index": i, "status": "created", "id": pk}
    if created:
        feedback_capture_enqueue(feedback_ids=created)
    return results  # type: ignore[return-value]


_BULK_LOOKUPS = """
SELECT
    (SELECT coalesce(json_agg(json_build_array(f.idempotency_key, f.id, f.request_hash)), '[]')
     FROM {feedback} f
     WHERE f.app_id = %(app)s
       AND f.idempotency_key = ANY(ARRAY(SELECT jsonb_array_elements_text(%(keys)s::jsonb)))),
    (SELECT coalesce(json_agg(json_build_array(o.uuid, o.id)), '[]')
     FROM {output} o
     WHERE o.app_id = %(app)s
       AND o.uuid = ANY(ARRAY(SELECT jsonb_array_elements_text(%(uuids)s::jsonb)::uuid))),
    (SELECT coalesce(array_agg(nextval(pg_get_serial_sequence(%(table)s, 'id'))), '{{}}')
     FROM generate_series(1, %(new_ids)s))
"""


def _bulk_lookups(
    *, app: ProductApp, keys: list[str], uuids: list[str], new_ids: int
) -> tuple[dict[str, tuple[int, str]], dict[str, int], list[int] | None]:
    """What a bulk needs to know before it writes: {key: (id, request hash)} of feedback
    already stored under its keys, {uuid: id} of the caller's own outputs among its uuids, and
    on PostgreSQL ``new_ids`` ids for the rows to come (those not used are gaps, as a rolled
    back insert leaves).

    On PostgreSQL one statement, its lists passed as one JSON text each: an array of a
    thousand strings costs more to quote on the client, and each statement a round trip.
    ``= ANY(ARRAY(...))``, not ``IN (SELECT ...)``: the array is an index condition, so the
    lookups probe the unique indexes key by key; the IN form let the planner read every row
    of the app and hash-join them (22,000 rows read for 1,000 keys in the benchmark).
    """
    if connection.vendor != "postgresql":
        earlier = Feedback.objects.filter(app=app, idempotency_key__in=keys).values_list(
            "idempotency_key", "pk", "request_hash"
        )
        outputs = Output.objects.filter(app=app, uuid__in=uuids).values_list("uuid", "pk")
        return {k: (pk, h) for k, pk, h in earlier if k is not None}, {str(u): pk for u, pk in outputs}, None
    sql = _BULK_LOOKUPS.format(feedback=Feedback._meta.db_table, output=Output._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                "app": app.pk,
                "keys": json.dumps(keys),
                "uuids": json.dumps(uuids),
                "table": Feedback._meta.db_table,
                "new_ids": new_ids,
            },
        )
        earlier_rows, output_rows, ids = cursor.fetchone()
    return {k: (pk, h) for k, pk, h in earlier_rows}, {str(u): pk for u, pk in output_rows}, list(ids)


INSERT_COLUMNS = (
    "output_id",
    "app_id",
    "rating",
    "thumb",
    "comment",
    "flags",
    "idempotency_key",
    "request_hash",
)


def _insert_many(rows: list[dict], *, ids: list[int] | None) -> list[int]:
    """Insert many feedback rows (plain dicts), returning their ids in order.

    On PostgreSQL: COPY into pre-allocated ``ids`` (at least one per row), several times
    faster than a multi-row INSERT of model instances; elsewhere bulk_create. The unique
    constraint on (app, idempotency_key) guards both.
    """
    if not rows:
        return []
    if connection.vendor != "postgresql":
        return [fb.pk for fb in Feedback.objects.bulk_create([Feedback(**r) for r in rows], batch_size=1000)]
    now = timezone.now()
    table = Feedback._meta.db_table
    assert ids is not None and len(ids) >= len(rows)
    ids = ids[: len(rows)]
    with connection.cursor() as cursor:
        columns = ", ".join(("id", *INSERT_COLUMNS, "created_at"))
        # In key order: concurrent bulks sharing keys then wait on each other's index entries
        # in one order, never in a cycle (a deadlock). The raw psycopg COPY's errors are made
        # Django's (a duplicate key an IntegrityError) for the caller to handle.
        in_key_order = sorted(zip(ids, rows), key=lambda pair: pair[1]["idempotency_key"] or "")
        with (
            connection.wrap_database_errors,
            cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for pk, r in in_key_order:
                copy.write_row(
                    (
                        pk,
                        r["output_id"],
                        r["app_id"],
                        r["rating"],
                        r["thumb"],
                        r["comment"],
                        json.dumps(r["flags"]),
                        r["idempotency_key"],
                        r["request_hash"],
                        now,
                    )
                )
    return ids


# -- the review queue -----------------------------------------------------------------------


@transaction.atomic
def review_item_claim(*, item_id: int, user, lease: timedelta = LEASE) -> ReviewItem:
    """Claim an item with a lease. Another reviewer's live lease is a refusal, not a steal.

    The row lock (select_for_update) serialises concurrent claims: the second claimant
    reads the first one's committed lease and is refused.
    """
    now = timezone.now()
    item = ReviewItem.objects.select_for_update().filter(pk=item_id).first()
    if item is None:
        raise ApplicationError("no such review item", code="not_found", status=404)
    if item.status == ReviewItem.Status.CLAIMED and item.claimed_by_id == user.pk:
        pass  # renewing one's own lease (also one that just ran out and nobody took)
    elif not ReviewItem.objects.filter(review_item_open_q(now), pk=item.pk).exists():
        raise ApplicationError(
            "this item is claimed by another reviewer or already done", code="not_claimable", status=409
        )
    item.status = ReviewItem.Status.CLAIMED
    item.claimed_by = user
    item.lease_expires_at = now + lease
    item.save(update_fields=["status", "claimed_by", "lease_expires_at"])
    return item


@transaction.atomic
def review_item_claim_next(*, user, lease: timedelta = LEASE, exclude_ids=None) -> ReviewItem | None:
    """Claim the best unclaimed item: lowest priority value, then the oldest.

    ``exclude_ids`` (ids or a subquery of ids) are never offered, e.g. items this user
    annotated already. Locked rows are skipped, so concurrent callers get different items.
    """
    now = timezone.now()
    candidates = ReviewItem.objects.select_for_update(skip_locked=True).filter(review_item_open_q(now))
    if exclude_ids is not None:
        candidates = candidates.exclude(pk__in=exclude_ids)
    item = candidates.order_by("priority", "created_at").first()
    if item is None:
        return None
    return review_item_claim(item_id=item.pk, user=user, lease=lease)


def review_item_require_lease(*, item: ReviewItem, user) -> None:
    if item.status != ReviewItem.Status.CLAIMED or item.claimed_by_id != user.pk:
        raise ApplicationError("you do not hold this item; claim it again", code="no_lease", status=409)
    if item.lease_expires_at is None or item.lease_expires_at < timezone.now():
        raise ApplicationError(
            "your lease on this item expired; claim it again", code="lease_expired", status=409
        )


@transaction.atomic
def review_item_renew(*, item_id: int, user, lease: timedelta = LEASE) -> ReviewItem:
    """Extend a live lease (the open item page calls this every minute). An expired lease is not
    renewed silently: the reviewer is told and claims again, since someone else may have it."""
    item = ReviewItem.objects.select_for_update().filter(pk=item_id).first()
    if item is None:
        raise ApplicationError("no such review item", code="not_found", status=404)
    review_item_require_lease(item=item, user=user)
    item.lease_expires_at = timezone.now() + lease
    item.save(update_fields=["lease_expires_at"])
    return item


@transaction.atomic
def review_item_release(*, item_id: int, user) -> bool:
    """Give a claimed item back to the queue (skip, or the page was left). Only the holder can;
    anything else is a no-op that returns False."""
    released = ReviewItem.objects.filter(
        pk=item_id, status=ReviewItem.Status.CLAIMED, claimed_by=user
    ).update(status=ReviewItem.Status.QUEUED, claimed_by=None, lease_expires_at=None)
    return bool(released)


@transaction.atomic
def review_item_mark_annotated(*, item: ReviewItem) -> ReviewItem:
    item.status = ReviewItem.Status.ANNOTATED
    item.lease_expires_at = None
    item.save(update_fields=["status", "lease_expires_at"])
    return item


@transaction.atomic
def review_item_requeue(*, item: ReviewItem, annotations_wanted: int | None = None) -> ReviewItem:
    """Back to the queue, unclaimed: for a blind second annotation, or after a rejection."""
    item.status = ReviewItem.Status.QUEUED
    item.claimed_by = None
    item.lease_expires_at = None
    fields = ["status", "claimed_by", "lease_expires_at"]
    if annotations_wanted is not None:
        item.annotations_wanted = annotations_wanted
        fields.append("annotations_wanted")
    item.save(update_fields=fields)
    return item
