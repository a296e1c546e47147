import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotation import services
from annotation.models import AuditEvent
from cogloop.errors import ApplicationError
from feedback.models import ReviewItem
from tests.annotation.factories import make_item, submit


@pytest.fixture
def item(product_app):
    return make_item(product_app)


def test_claim_uses_the_policy_lease_and_the_page_renews_it(client, item, reviewer, policy):
    policy(lease_minutes=3)
    client.force_login(reviewer)
    client.post(f"/review/{item.pk}/claim")
    item.refresh_from_db()
    assert timedelta(minutes=2) < item.lease_expires_at - timezone.now() <= timedelta(minutes=3)
    ReviewItem.objects.filter(pk=item.pk).update(lease_expires_at=timezone.now() + timedelta(seconds=20))
    r = client.post(f"/review/{item.pk}/lease")
    assert r.status_code == 200 and r.json()["held"] is True
    item.refresh_from_db()
    assert item.lease_expires_at - timezone.now() > timedelta(minutes=2)


def test_an_expired_lease_is_not_renewed_silently(client, item, reviewer):
    client.force_login(reviewer)
    client.post(f"/review/{item.pk}/claim")
    ReviewItem.objects.filter(pk=item.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    r = client.post(f"/review/{item.pk}/lease")
    assert r.status_code == 409 and r.json() == {
        "held": False,
        "code": "lease_expired",
        "message": "your lease on this item expired; claim it again",
    }


def test_an_expired_lease_returns_the_item_to_the_queue(client, item, reviewer, make_user):
    services.review_claim(item_id=item.pk, user=make_user("otto"))
    ReviewItem.objects.filter(pk=item.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    client.force_login(reviewer)
    assert b"lease expired" in client.get("/review/").content
    assert client.post("/review/next").url == f"/review/{item.pk}/"
    assert ReviewItem.objects.get(pk=item.pk).claimed_by == reviewer


def test_skip_releases_the_item_and_is_audited(client, item, reviewer):
    client.force_login(reviewer)
    client.post(f"/review/{item.pk}/claim")
    r = client.post(f"/review/{item.pk}/release", {"reason": "skip"})
    assert r.status_code == 302
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.QUEUED and item.claimed_by is None
    assert AuditEvent.objects.filter(action="release", detail__reason="skip").count() == 1


def test_leaving_the_page_releases_only_ones_own_claim(client, item, reviewer, make_user):
    other = make_user("otto")
    services.review_claim(item_id=item.pk, user=other)
    client.force_login(reviewer)
    assert client.post(f"/review/{item.pk}/release", {"reason": "leave"}).status_code == 204
    assert ReviewItem.objects.get(pk=item.pk).claimed_by == other


def test_expired_lease_submit_keeps_the_work_and_reclaim_and_submit_sends_it(client, item, reviewer, policy):
    from tests.annotation.test_review_pages import form_data

    policy()
    client.force_login(reviewer)
    client.post(f"/review/{item.pk}/claim")
    ReviewItem.objects.filter(pk=item.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    r = client.post(f"/review/{item.pk}/", form_data())
    assert b"lease on this item expired" in r.content and b'id="reclaim-submit"' in r.content
    assert client.post(f"/review/{item.pk}/", form_data(reclaim="1")).status_code == 302
    assert ReviewItem.objects.get(pk=item.pk).status == ReviewItem.Status.ANNOTATED


def test_someone_elses_claim_blocks_reclaim_and_submit(client, item, reviewer, make_user):
    from tests.annotation.test_review_pages import form_data

    client.force_login(reviewer)
    client.post(f"/review/{item.pk}/claim")
    ReviewItem.objects.filter(pk=item.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    services.review_claim(item_id=item.pk, user=make_user("otto"))
    r = client.post(f"/review/{item.pk}/", form_data(reclaim="1"))
    assert r.status_code == 200 and b"claimed by another reviewer" in r.content
    assert not item.annotations.exists()


def test_claim_next_takes_the_best_unclaimed(product_app, reviewer, make_user):
    worse = make_item(
        product_app,
        prompt="Start with 5. Add 1. What is the result?",
        raw_text="Step 1 [deduction]: 5 + 1 = 9\n</think>\n\nThe answer is 9.",
    )
    better = make_item(
        product_app,
        prompt="Start with 7. Add 2. What is the result?",
        raw_text="Step 1 [deduction]: 7 + 2 = 9\n</think>\n\nThe answer is 8.",
    )
    ReviewItem.objects.filter(pk=worse.pk).update(priority=0.05)
    ReviewItem.objects.filter(pk=better.pk).update(priority=0.3)
    services.review_claim(item_id=worse.pk, user=make_user("otto"))
    assert services.review_claim_next(user=reviewer).pk == better.pk


def test_queue_filters_counts_and_progress(client, product_app, reviewer, policy):
    policy()
    low = make_item(product_app)  # wrong claim, answer follows the steps
    mismatch = make_item(
        product_app,
        prompt="Start with 7. Add 2. What is the result?",
        raw_text="Step 1 [deduction]: 7 + 2 = 9\n</think>\n\nThe answer is 8.",
    )
    done = make_item(
        product_app,
        prompt="Start with 3. Add 3. What is the result?",
        raw_text="Step 1 [deduction]: 3 + 3 = 7\n</think>\n\nThe answer is 7.",
    )
    submit(
        done, reviewer, corrected_answer="6", corrected_steps=[{"text": "3 + 3 = 6", "strategy": "deduction"}]
    )
    client.force_login(reviewer)
    page = client.get("/review/")
    shown = [it.pk for it in page.context["items"]]
    assert set(shown) == {low.pk, mismatch.pk}
    assert page.context["counts"]["open"] == 2 and page.context["counts"]["approved"] == 1
    assert page.context["progress"]["submitted"] == 1 and page.context["progress"]["approved"] == 1

    def ids(**params):
        return [it.pk for it in client.get("/review/", params).context["items"]]

    assert ids(checker_error="answer_mismatch") == [mismatch.pk]
    assert ids(checker_error="wrong_claim") == [low.pk]
    assert ids(reason="audit_sample") == []
    score = mismatch.output.cognition_score
    assert mismatch.pk in ids(score_min=score - 0.01, score_max=score + 0.01)
    assert ids(score_min=0.99) == []
    services.review_claim(item_id=low.pk, user=reviewer)
    assert ids(state="mine") == [low.pk]
    bad = client.get("/review/", {"score_min": "0.9", "score_max": "0.1"})
    assert "score_min" in bad.context["filters"].errors


def test_queue_page_query_count_does_not_grow_with_items(client, product_app, reviewer):
    client.force_login(reviewer)
    make_item(product_app)
    with CaptureQueriesContext(connection) as few:
        client.get("/review/")
    for n in range(8):
        make_item(
            product_app,
            prompt=f"Start with {n + 10}. Add 2. What is the result?",
            raw_text=f"Step 1 [deduction]: {n + 10} + 2 = 1\n</think>\n\nThe answer is 1.",
        )
    with CaptureQueriesContext(connection) as many:
        client.get("/review/")
    assert len(many) == len(few) <= 12


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_on_postgresql_let_exactly_one_reviewer_win(product_app, make_user):
    assert connection.vendor == "postgresql"
    item = make_item(product_app)
    users = [make_user(f"r{i}") for i in range(6)]
    barrier = threading.Barrier(len(users))
    results: dict[str, str] = {}

    def claim(user):
        from django.db import connections

        try:
            barrier.wait()
            services.review_claim(item_id=item.pk, user=user)
            results[user.username] = "won"
        except ApplicationError as exc:
            results[user.username] = exc.code
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == ["not_claimable"] * 5 + ["won"]
    winner = next(name for name, r in results.items() if r == "won")
    assert ReviewItem.objects.get(pk=item.pk).claimed_by.username == winner
    assert AuditEvent.objects.filter(action="claim").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_claim_next_hands_out_different_items(product_app, make_user):
    items = [
        make_item(
            product_app,
            prompt=f"Start with {n}. Add 2. What is the result?",
            raw_text=f"Step 1 [deduction]: {n} + 2 = 1\n</think>\n\nThe answer is 1.",
        )
        for n in range(10, 13)
    ]
    users = [make_user(f"r{i}") for i in range(5)]
    barrier = threading.Barrier(len(users))
    got: list[int | None] = []

    def claim_next(user):
        from django.db import connections

        try:
            barrier.wait()
            item = services.review_claim_next(user=user)
            got.append(item.pk if item else None)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim_next, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [pk for pk in got if pk is not None]
    assert sorted(claimed) == sorted(i.pk for i in items)  # each once, none twice
    assert got.count(None) == 2
