import pytest

from annotation import services
from annotation.agreement import cohen_kappa, interval_overlap
from annotation.models import Annotation
from annotation.selectors import agreement_per_reviewer
from cogloop.errors import ApplicationError
from feedback.models import ReviewItem
from retrain import services as retrain_services
from retrain.models import TrainingSample
from tests.annotation.factories import make_item, submit


def test_kappa_matches_the_textbook_example():
    # 50 items, yes/no: 20 both yes, 15 both no, 5 and 10 disagreements: p_o 0.7, p_e 0.5, kappa 0.4.
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([("a", "a"), ("b", "b")]) == 1.0
    assert cohen_kappa([("a", "b"), ("b", "a")]) == pytest.approx(-1.0)
    assert cohen_kappa([("a", "a")] * 3) == 1.0  # one shared label: perfect, not undefined
    assert cohen_kappa([]) is None


def test_interval_overlap_is_intersection_over_union():
    assert interval_overlap((0.2, 0.6), (0.4, 0.8)) == pytest.approx(0.2 / 0.6)
    assert interval_overlap((0.1, 0.2), (0.5, 0.9)) == 0.0
    assert interval_overlap((0.5, 0.5), (0.5, 0.5)) == 1.0


@pytest.fixture
def item(product_app):
    return make_item(product_app)


def test_blind_item_goes_to_another_reviewer_who_cannot_see_the_first(
    client, item, reviewer, make_user, policy
):
    policy(double=1.0)
    otto = make_user("otto")
    first = submit(item, reviewer, correction_strategy="SECRET-FIRST-NOTE")
    item.refresh_from_db()
    assert first.status == Annotation.Status.AWAITING_TWIN and first.blind
    assert item.status == ReviewItem.Status.QUEUED and item.annotations_wanted == 2
    with pytest.raises(ApplicationError) as exc:  # not by the same reviewer
        services.review_claim(item_id=item.pk, user=reviewer)
    assert exc.value.code == "not_claimable"
    assert services.review_claim_next(user=reviewer) is None
    client.force_login(otto)
    assert client.post("/review/next").url == f"/review/{item.pk}/"
    page = client.get(f"/review/{item.pk}/").content
    assert b"SECRET-FIRST-NOTE" not in page
    assert retrain_services.training_samples_collect() == 0


def test_agreeing_twins_give_one_set_of_training_samples(item, reviewer, make_user, policy):
    policy(double=1.0, second=1.0)
    make_user("lena", role="lead")
    first = submit(item, reviewer)
    second = submit(
        item,
        make_user("otto"),
        corrected_answer="34",
        confidence_low=0.5,
        confidence_high=0.9,
        corrected_steps=[{"text": "subtract: 42 - 8 = 34", "strategy": "induction"}],
    )
    first.refresh_from_db()
    second.refresh_from_db()
    # Agreeing twins need no second review: the pair was the second look.
    assert first.status == Annotation.Status.APPROVED and second.status == Annotation.Status.SUPERSEDED
    assert ReviewItem.objects.get().status == ReviewItem.Status.ANNOTATED
    retrain_services.training_samples_collect()
    assert set(TrainingSample.objects.values_list("source_annotation_id", flat=True)) == {first.pk}


def test_disagreeing_twins_wait_for_a_lead_who_picks_one(item, reviewer, make_user, lead, policy):
    policy(double=1.0)
    first = submit(item, reviewer)
    second = submit(item, make_user("otto"), error_type="wrong_operation")
    first.refresh_from_db()
    assert {first.status, second.status} == {Annotation.Status.DISPUTED}
    assert retrain_services.training_samples_collect() == 0
    services.annotation_approve(annotation_id=second.pk, reviewer=lead)
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.status == Annotation.Status.APPROVED and first.status == Annotation.Status.SUPERSEDED
    retrain_services.training_samples_collect()
    assert set(TrainingSample.objects.values_list("source_annotation_id", flat=True)) == {second.pk}


def test_rejecting_both_twins_requeues_the_item(item, reviewer, make_user, lead, policy):
    policy(double=1.0)
    first = submit(item, reviewer)
    second = submit(item, make_user("otto"), error_type="other")
    services.annotation_reject(annotation_id=first.pk, reviewer=lead, reason="wrong step")
    assert ReviewItem.objects.get().status == ReviewItem.Status.ANNOTATED  # its twin still awaits a decision
    services.annotation_reject(annotation_id=second.pk, reviewer=lead, reason="wrong answer")
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.QUEUED and item.annotations_wanted == 1


def test_no_blind_twin_without_another_reviewer(item, reviewer, policy):
    policy(double=1.0)
    assert submit(item, reviewer).status == Annotation.Status.APPROVED


def test_agreement_is_computed_per_reviewer_and_shown_to_leads(
    client, product_app, reviewer, make_user, lead, policy
):
    policy(double=1.0)
    otto = make_user("otto")
    prompts = ["Start with 42. Take away 8. What is the result?", "Start with 9. Add 3. What is the result?"]
    items = [make_item(product_app, prompt=p) for p in prompts]
    # Item 1: same error type and strategies, intervals [0.8, 0.95] and [0.8, 0.95].
    submit(items[0], reviewer)
    submit(items[0], otto)
    # Item 2: different error types, first strategy differs, intervals [0.8, 0.95] vs [0.2, 0.4].
    submit(items[1], reviewer)
    submit(
        items[1],
        otto,
        error_type="other",
        confidence_low=0.2,
        confidence_high=0.4,
        corrected_steps=[{"text": "42 - 8 = 34", "strategy": "analogy"}],
    )
    rows, overall = agreement_per_reviewer()
    assert [r.username for r in rows] == ["otto", "rita"]
    rita = rows[1]
    assert rita.pairs == 2
    assert rita.error_kappa == pytest.approx(
        cohen_kappa([("arithmetic", "arithmetic"), ("arithmetic", "other")])
    )
    assert rita.strategy_kappa == pytest.approx(
        cohen_kappa([("deduction", "deduction"), ("deduction", "analogy")])
    )
    assert rita.interval_overlap == pytest.approx(0.5)
    assert overall.pairs == 2
    client.force_login(lead)
    page = client.get("/review/agreement/").content.decode()
    assert 'data-reviewer="rita"' in page and 'data-reviewer="otto"' in page and "0.50" in page
