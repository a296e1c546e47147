import pytest

from annotation import services
from annotation.models import Annotation, AuditEvent
from cogloop.errors import ApplicationError
from feedback.models import ReviewItem
from retrain import services as retrain_services
from retrain.models import TrainingSample
from tests.annotation.factories import make_item, submit


def actions(**filters):
    return list(AuditEvent.objects.filter(**filters).order_by("pk").values_list("action", flat=True))


@pytest.fixture
def item(product_app):
    return make_item(product_app)


def test_picked_annotation_waits_for_a_lead_and_stays_out_of_training_data(item, reviewer, lead, policy):
    policy(second=1.0)
    annotation = submit(item, reviewer)
    assert annotation.status == Annotation.Status.SUBMITTED
    assert retrain_services.training_samples_collect() == 0
    services.annotation_approve(annotation_id=annotation.pk, reviewer=lead)
    annotation.refresh_from_db()
    assert annotation.status == Annotation.Status.APPROVED and annotation.second_reviewer == lead
    assert retrain_services.training_samples_collect() == 3  # reflection, strategy, uncertainty
    assert actions(annotation=annotation) == ["submit", "approve"]


def test_without_another_lead_nothing_waits_for_second_review(item, reviewer, policy):
    policy(second=1.0)
    annotation = submit(item, reviewer)
    assert annotation.status == Annotation.Status.APPROVED
    assert AuditEvent.objects.get(action="approve").detail["rule"].startswith("picked for second review, but")


def test_a_lead_does_not_second_review_their_own_annotation(item, lead, make_user, policy):
    policy(second=1.0)
    other_lead = make_user("olga", role="lead")
    annotation = submit(item, lead)
    assert annotation.status == Annotation.Status.SUBMITTED  # olga can review it
    with pytest.raises(ApplicationError) as exc:
        services.annotation_approve(annotation_id=annotation.pk, reviewer=lead)
    assert exc.value.code == "own_annotation"
    services.annotation_approve(annotation_id=annotation.pk, reviewer=other_lead)


def test_a_reviewer_cannot_approve(item, reviewer, make_user, lead, policy):
    policy(second=1.0)
    annotation = submit(item, make_user("otto"))
    with pytest.raises(ApplicationError) as exc:
        services.annotation_approve(annotation_id=annotation.pk, reviewer=reviewer)
    assert exc.value.code == "forbidden"
    assert Annotation.objects.get().status == Annotation.Status.SUBMITTED


def test_lead_edits_are_applied_and_kept_in_the_audit_trail(item, reviewer, lead, policy):
    policy(second=1.0)
    annotation = submit(item, reviewer, error_type="other")
    services.annotation_approve(
        annotation_id=annotation.pk,
        reviewer=lead,
        changes={"error_type": "arithmetic", "corrected_answer": "The answer is 34."},
    )
    annotation.refresh_from_db()
    assert annotation.error_type == "arithmetic"
    event = AuditEvent.objects.get(action="approve")
    assert event.actor == lead and event.detail["edited"] == {
        "error_type": {"before": "other", "after": "arithmetic"}
    }


def test_invalid_lead_edit_changes_nothing(item, reviewer, lead, policy):
    policy(second=1.0)
    annotation = submit(item, reviewer)
    with pytest.raises(ApplicationError) as exc:
        services.annotation_approve(
            annotation_id=annotation.pk,
            reviewer=lead,
            changes={"confidence_low": 0.9, "confidence_high": 0.1},
        )
    assert "confidence_low" in exc.value.extra["fields"]
    annotation.refresh_from_db()
    assert annotation.status == Annotation.Status.SUBMITTED and annotation.confidence_low == 0.8


def test_rejection_needs_a_reason_and_returns_the_item_to_the_queue(item, reviewer, lead, policy):
    policy(second=1.0)
    annotation = submit(item, reviewer)
    with pytest.raises(ApplicationError):
        services.annotation_reject(annotation_id=annotation.pk, reviewer=lead, reason="  ")
    services.annotation_reject(
        annotation_id=annotation.pk, reviewer=lead, reason="34 is right but step 2 is wrong"
    )
    annotation.refresh_from_db()
    item.refresh_from_db()
    assert annotation.status == Annotation.Status.REJECTED and annotation.review_note.startswith(
        "34 is right"
    )
    assert item.status == ReviewItem.Status.QUEUED and item.claimed_by is None
    assert retrain_services.training_samples_collect() == 0
    assert actions(review_item=item) == ["claim", "submit", "reject", "requeue"]
    with pytest.raises(ApplicationError) as exc:  # decided once
        services.annotation_approve(annotation_id=annotation.pk, reviewer=lead)
    assert exc.value.code == "not_reviewable"


def test_second_review_pages_approve_with_an_edit(client, item, reviewer, lead, policy):
    policy(second=1.0)
    annotation = submit(item, reviewer, corrected_steps=[{"text": "42 - 8 = 34", "strategy": "other"}])
    client.force_login(lead)
    listing = client.get("/review/second/")
    assert f'data-annotation="{annotation.pk}"'.encode() in listing.content
    page = client.get(f"/review/annotations/{annotation.pk}/")
    assert page.status_code == 200 and b"42 - 8 = 50" in page.content and b"diff-row-changed" in page.content
    data = {
        "decision": "approve",
        "reason": "",
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
    assert client.post(f"/review/annotations/{annotation.pk}/", data).status_code == 302
    annotation.refresh_from_db()
    assert annotation.status == Annotation.Status.APPROVED
    assert annotation.corrected_steps == [{"text": "42 - 8 = 34", "strategy": "deduction"}]
    assert (
        AuditEvent.objects.get(action="approve").detail["edited"]["corrected_steps"]["before"][0]["strategy"]
        == "other"
    )


def test_reject_through_the_page_without_a_reason_names_the_field(client, item, reviewer, lead, policy):
    policy(second=1.0)
    annotation = submit(item, reviewer)
    client.force_login(lead)
    r = client.post(f"/review/annotations/{annotation.pk}/", {"decision": "reject", "reason": ""})
    assert r.status_code == 200 and "reason" in r.context["decision"].errors
    assert Annotation.objects.get().status == Annotation.Status.SUBMITTED


@pytest.mark.parametrize(
    "url",
    [
        "/review/second/",
        "/review/agreement/",
        "/review/audit/",
        "/review/settings/",
        "/review/annotations/1/",
    ],
)
def test_reviewers_get_no_lead_pages(client, reviewer, url):
    client.force_login(reviewer)
    assert client.get(url).status_code == 403


def test_reviewers_are_refused_from_the_admin_and_see_no_lead_links(client, reviewer):
    client.force_login(reviewer)
    r = client.get("/admin/")
    assert r.status_code == 302 and "/admin/login/" in r.url
    page = client.get("/review/").content
    assert b"Second review" not in page and b'href="/admin/"' not in page


def test_users_without_a_role_are_refused(client, django_user_model):
    client.force_login(django_user_model.objects.create_user(username="nobody", password="x-pass-123"))
    assert client.get("/review/").status_code == 403


def test_admins_are_leads(client, item, reviewer, django_user_model, policy):
    policy(second=1.0)
    admin = django_user_model.objects.create_user(username="ada", password="x-pass-123", is_staff=True)
    annotation = submit(item, reviewer)
    client.force_login(admin)
    assert client.get("/review/settings/").status_code == 200
    services.annotation_approve(annotation_id=annotation.pk, reviewer=admin)


def test_lead_changes_settings_and_bad_values_are_refused_with_the_field_named(client, lead):
    client.force_login(lead)
    r = client.post(
        "/review/settings/",
        {"second_review_share": "1.5", "double_annotation_share": "0.1", "lease_minutes": "10"},
    )
    assert r.status_code == 200 and "second_review_share" in r.context["form"].errors
    assert services.review_policy_get().second_review_share == 0.2  # the default, unchanged
    r = client.post(
        "/review/settings/",
        {"second_review_share": "0.5", "double_annotation_share": "0.25", "lease_minutes": "15"},
    )
    assert r.status_code == 302
    policy = services.review_policy_get()
    assert (policy.second_review_share, policy.double_annotation_share, policy.lease_minutes) == (
        0.5,
        0.25,
        15,
    )
    event = AuditEvent.objects.get(action="settings")
    assert event.actor == lead and event.detail["before"]["second_review_share"] == 0.2


def test_audit_page_lists_every_claim_submit_approve_reject(client, product_app, reviewer, lead, policy):
    policy(second=1.0)
    first, second = (
        make_item(product_app),
        make_item(product_app, prompt="Start with 9. Add 3. What is the result?"),
    )
    a = submit(first, reviewer)
    b = submit(second, reviewer)
    services.annotation_approve(annotation_id=a.pk, reviewer=lead)
    services.annotation_reject(annotation_id=b.pk, reviewer=lead, reason="wrong")
    client.force_login(lead)
    page = client.get("/review/audit/").content.decode()
    for action in ("claim", "submit", "approve", "reject"):
        assert f"<td>{action}</td>" in page
    only_rejects = client.get("/review/audit/", {"action": "reject"}).content.decode()
    assert "<td>reject</td>" in only_rejects and "<td>approve</td>" not in only_rejects
    assert TrainingSample.objects.count() == 0 and retrain_services.training_samples_collect() == 3
