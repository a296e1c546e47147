from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Annotation, AuditEvent
from feedback.models import ReviewItem
from inference import services as inference_services

WRONG = "Step 1 [deduction]: 42 - 8 = 50\n</think>\n\nThe answer is 50."
PROMPT = "Start with 42. Take away 8. What is the result?"


@pytest.fixture
def item(product_app):
    output = inference_services.output_create(app=product_app, prompt=PROMPT, raw_text=WRONG)
    return output.review_item


def form_data(**overrides):
    data = {
        "steps-TOTAL_FORMS": "1",
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
        "steps-0-text": "42 - 8 = 34",
        "steps-0-strategy": "deduction",
        "steps-0-ORDER": "1",
        "corrected_answer": "The answer is 34.",
        "first_wrong_step": "1",
        "error_type": "arithmetic",
        "correction_strategy": "take away means subtract",
        "confidence_low": "0.8",
        "confidence_high": "0.95",
        "transparent": "yes",
    }
    data.update(overrides)
    return data


def test_low_score_output_is_captured_with_its_reason(item):
    assert item.reason == ReviewItem.Reason.LOW_SCORE
    assert "cognition score" in item.reason_detail
    assert item.priority == item.output.cognition_score


def test_pages_need_login(client, item):
    assert client.get("/review/").status_code == 302
    assert client.get(f"/review/{item.pk}/").url.startswith("/accounts/login/")


def test_claim_correct_and_submit_creates_an_approved_annotation(client, reviewer, item, policy):
    policy(second=0.0, double=0.0)
    client.force_login(reviewer)
    r = client.post("/review/next")
    assert r.status_code == 302 and r.url == f"/review/{item.pk}/"
    page = client.get(r.url)
    assert page.status_code == 200 and b"42 - 8 = 50" in page.content and b"wrong claim" in page.content
    done = client.post(r.url, form_data())
    assert done.status_code == 302, done.content.decode()[-2000:]
    annotation = Annotation.objects.get()
    assert annotation.corrected_steps == [{"text": "42 - 8 = 34", "strategy": "deduction"}]
    assert annotation.status == Annotation.Status.APPROVED and annotation.error_type == "arithmetic"
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.ANNOTATED
    assert list(AuditEvent.objects.order_by("pk").values_list("action", flat=True)) == [
        "claim",
        "submit",
        "approve",
    ]


def test_steps_can_be_reordered_deleted_and_inserted(client, reviewer, item):
    client.force_login(reviewer)
    client.post(f"/review/{item.pk}/claim")
    data = form_data(
        **{
            "steps-TOTAL_FORMS": "3",
            "steps-1-text": "first",
            "steps-1-strategy": "analogy",
            "steps-1-ORDER": "0",
            "steps-2-text": "dropped",
            "steps-2-strategy": "other",
            "steps-2-ORDER": "3",
            "steps-2-DELETE": "on",
        }
    )
    assert client.post(f"/review/{item.pk}/", data).status_code == 302
    assert [s["text"] for s in Annotation.objects.get().corrected_steps] == ["first", "42 - 8 = 34"]


@pytest.mark.parametrize(
    "low, high, field", [("0.9", "0.2", "confidence_low"), ("0.1", "1.5", "confidence_high")]
)
def test_invalid_interval_is_refused_with_the_field_named(client, reviewer, item, low, high, field):
    client.force_login(reviewer)
    client.post(f"/review/{item.pk}/claim")
    r = client.post(f"/review/{item.pk}/", form_data(confidence_low=low, confidence_high=high))
    assert r.status_code == 200
    assert field in r.context["form"].errors
    assert Annotation.objects.count() == 0
    assert b"take away means subtract" in r.content  # the reviewer's work stays in the page


def test_expired_lease_cannot_submit_and_work_is_kept(client, reviewer, item):
    client.force_login(reviewer)
    client.post(f"/review/{item.pk}/claim")
    ReviewItem.objects.filter(pk=item.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    r = client.post(f"/review/{item.pk}/", form_data())
    assert r.status_code == 200
    assert b"lease on this item expired" in r.content
    assert b"42 - 8 = 34" in r.content
    assert Annotation.objects.count() == 0


def test_another_reviewers_live_claim_is_refused(client, reviewer, make_user, item):
    other = make_user("otto")
    client.force_login(other)
    client.post(f"/review/{item.pk}/claim")
    client.force_login(reviewer)
    r = client.post(f"/review/{item.pk}/claim", follow=True)
    assert b"claimed by another reviewer" in r.content
    assert ReviewItem.objects.get(pk=item.pk).claimed_by == other
    assert client.post("/review/next").url == "/review/"  # nothing else is claimable


def test_model_output_with_html_renders_as_text(client, reviewer, product_app):
    payload = "<script>alert('x')</script>"
    output = inference_services.output_create(
        app=product_app,
        prompt=f"{payload} 1 + 1?",
        raw_text=f"Step 1 [deduction]: {payload} 1 + 1 = 3\n</think>\n3",
    )
    client.force_login(reviewer)
    page = client.get(f"/review/{output.review_item.pk}/")
    assert payload.encode() not in page.content
    assert b"&lt;script&gt;" in page.content


def test_submit_without_csrf_token_is_refused(reviewer, item):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(reviewer)
    assert csrf_client.post(f"/review/{item.pk}/claim").status_code == 403
