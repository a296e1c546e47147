import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.utils import timezone

from annotation.models import Annotation, AuditEvent
from feedback.models import ReviewItem
from inference import services as inference_services
from inference.engine.parser import STRATEGIES
from tests.inline_code import PageScan

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


def test_review_pages_carry_no_inline_code_and_load_their_static_files(client, reviewer, lead, item, policy):
    policy(second=1.0)
    client.force_login(reviewer)
    client.post(f"/review/{item.pk}/claim")
    pages = {"queue": client.get("/review/"), "item": client.get(f"/review/{item.pk}/")}
    client.post(f"/review/{item.pk}/", form_data())
    annotation = Annotation.objects.get()
    assert annotation.status == Annotation.Status.SUBMITTED
    client.force_login(lead)
    for name, url in [
        ("annotation review", f"/review/annotations/{annotation.pk}/"),
        ("second review", "/review/second/"),
        ("agreement", "/review/agreement/"),
        ("audit", "/review/audit/"),
        ("settings", "/review/settings/"),
    ]:
        pages[name] = client.get(url)
    client.logout()
    pages["login"] = client.get("/accounts/login/")

    for name, response in pages.items():
        assert response.status_code == 200, name
        scan = PageScan(response.content.decode())
        assert scan.inline == [], name
        assert scan.missing_static_files() == [], name
        assert static("cogloop/base.css") in scan.linked, name
    for name in ("queue", "item", "annotation review"):
        assert static("annotation/shortcuts.js") in PageScan(pages[name].content.decode()).linked
    assert static("annotation/queue.js") in PageScan(pages["queue"].content.decode()).linked
    for name in ("item", "annotation review"):
        assert static("annotation/item.js") in PageScan(pages[name].content.decode()).linked


def test_the_item_page_offers_the_strategies_the_parser_defines(client, reviewer, item):
    client.force_login(reviewer)
    client.post(f"/review/{item.pk}/claim")
    html = client.get(f"/review/{item.pk}/").content.decode()
    # The step keys 1..n of item.js read this list; the step's select and the key list show it.
    data = re.search(r'<script id="strategies-data" type="application/json">(.*?)</script>', html)
    assert data and json.loads(data.group(1)) == list(STRATEGIES)
    select = re.search(r'<select name="steps-0-strategy".*?</select>', html, flags=re.DOTALL)
    # A row starts with no strategy chosen unless the original step wrote one ("" = choose).
    assert re.findall(r'<option value="([^"]*)"', select.group(0)) == ["", *STRATEGIES]
    assert f"strategy: {', '.join(STRATEGIES)}" in html
    keys = "".join(f"<kbd>{n}</kbd> " for n in range(1, len(STRATEGIES) + 1)).strip()
    assert keys in html
    script = Path(finders.find("annotation/item.js")).read_text()
    assert not any(f'"{name}"' in script for name in STRATEGIES), "item.js keeps no copy of the list"


def test_a_fresh_item_page_chooses_no_label_for_the_reviewer(client, reviewer, item):
    client.force_login(reviewer)
    client.post(f"/review/{item.pk}/claim")
    response = client.get(f"/review/{item.pk}/")
    html = response.content.decode()
    assert not re.search(r'name="error_type"[^>]*checked', html)
    assert not re.search(r'name="transparent"[^>]*checked', html)
    assert not re.search(r'name="confidence_(low|high)"[^>]*value=', html)
    assert not re.search(r'name="corrected_answer"[^>]*value=', html)
    # The original step keeps the strategy it wrote; the blank extra row has none.
    assert re.search(r'<option value="deduction" selected>', html)
    extra = re.search(r'<select name="steps-1-strategy".*?</select>', html, flags=re.DOTALL).group(0)
    assert not re.search(r'<option value="[^"]+" selected>', extra)


@pytest.mark.parametrize(
    "missing, words",
    [
        ("error_type", "Choose an error type."),
        ("transparent", "Say whether the original reasoning was understandable."),
        ("confidence_low", "Give the low end of the confidence interval."),
        ("corrected_answer", "Give the corrected answer, or mark the original unchanged."),
    ],
)
def test_a_submit_without_a_label_is_refused_naming_it(client, reviewer, item, missing, words):
    client.force_login(reviewer)
    client.post(f"/review/{item.pk}/claim")
    data = form_data()
    del data[missing]
    r = client.post(f"/review/{item.pk}/", data)
    assert r.status_code == 200 and not Annotation.objects.exists()
    summary = re.search(r'<div id="error-summary".*?</div>', r.content.decode(), flags=re.DOTALL).group(0)
    assert words in summary
    words_only = re.sub(r"<[^>]+>", "", summary)
    assert "confidence_low" not in words_only and "error_type" not in words_only


def test_unchanged_takes_the_original_answer(client, reviewer, item, policy):
    policy()
    client.force_login(reviewer)
    client.post(f"/review/{item.pk}/claim")
    data = form_data(answer_unchanged="on", corrected_answer="", **{"steps-0-text": "so it is 50"})
    assert client.post(f"/review/{item.pk}/", data).status_code == 302
    assert Annotation.objects.get().corrected_answer == item.output.answer


def test_an_added_step_without_a_strategy_is_refused_naming_the_step(client, reviewer, item):
    client.force_login(reviewer)
    client.post(f"/review/{item.pk}/claim")
    data = form_data(**{"steps-TOTAL_FORMS": "2", "steps-1-text": "so 34", "steps-1-ORDER": "2"})
    r = client.post(f"/review/{item.pk}/", data)
    assert r.status_code == 200 and not Annotation.objects.exists()
    assert "Step 2, strategy</a>: Choose the step" in r.content.decode()


def test_an_interval_the_wrong_way_round_is_named_in_words(client, reviewer, item):
    client.force_login(reviewer)
    client.post(f"/review/{item.pk}/claim")
    r = client.post(f"/review/{item.pk}/", form_data(confidence_low="0.9", confidence_high="0.2"))
    html = r.content.decode()
    assert "Confidence interval, low end</a>: The low end of the interval must not exceed" in html
    assert "(confidence_low)" not in html


def test_the_queue_lists_held_items_and_next_resumes_them_first(client, reviewer, item, product_app):
    from tests.annotation.factories import make_item

    better = make_item(product_app, prompt="Start with 9. Add 3. What is the result?")
    ReviewItem.objects.filter(pk=better.pk).update(priority=-1.0)  # the best unclaimed one
    client.force_login(reviewer)
    client.post(f"/review/{item.pk}/claim")
    html = client.get("/review/").content.decode()
    held = re.search(r'<section id="held".*?</section>', html, flags=re.DOTALL).group(0)
    assert f'data-held="{item.pk}"' in held and "Resume" in held and "Release" in held
    assert client.post("/review/next").url == f"/review/{item.pk}/"  # held before the better one
    assert client.post("/review/next", {"leaving": str(item.pk)}).url == f"/review/{better.pk}/"
    r = client.post(f"/review/{item.pk}/release", {"reason": "release"}, follow=True)
    assert "released" in r.content.decode()
    assert ReviewItem.objects.get(pk=item.pk).status == ReviewItem.Status.QUEUED


def test_nothing_left_is_not_said_while_the_reviewer_holds_an_item(client, reviewer, item):
    client.force_login(reviewer)
    client.post(f"/review/{item.pk}/claim")
    r = client.post("/review/next", follow=True)
    assert "Nothing left for you to review" not in r.content.decode()
    assert r.redirect_chain[-1][0] == f"/review/{item.pk}/"


def test_a_leave_beacon_from_an_older_page_of_the_item_releases_nothing(client, reviewer, item):
    client.force_login(reviewer)
    client.post(f"/review/{item.pk}/claim")
    first = client.get(f"/review/{item.pk}/").context["page_token"]
    second = client.get(f"/review/{item.pk}/").context["page_token"]  # a reload
    client.post(f"/review/{item.pk}/release", {"reason": "leave", "page": first})
    assert ReviewItem.objects.get(pk=item.pk).claimed_by == reviewer
    client.post(f"/review/{item.pk}/release", {"reason": "leave", "page": second})
    assert ReviewItem.objects.get(pk=item.pk).status == ReviewItem.Status.QUEUED


def test_second_review_lists_disputed_pairs_first(client, reviewer, lead, make_user, product_app, policy):
    from tests.annotation.factories import make_item, submit

    policy(second=1.0)
    otto = make_user("otto")
    older = submit(make_item(product_app), reviewer)  # awaiting second review, the oldest
    pair = [submit(make_item(product_app), user) for user in (reviewer, otto)]
    Annotation.objects.filter(pk__in=[a.pk for a in pair]).update(status=Annotation.Status.DISPUTED)
    client.force_login(lead)
    html = client.get("/review/second/").content.decode()
    listed = [int(i) for i in re.findall(r'data-annotation="(\d+)"', html)]
    assert listed == [pair[0].pk, pair[1].pk, older.pk]


def test_an_invalid_queue_filter_says_so_and_shows_nothing(client, reviewer, item):
    client.force_login(reviewer)
    html = client.get("/review/?score_min=0.9&score_max=0.1").content.decode()
    assert "These filters are not valid" in html and f'data-item="{item.pk}"' not in html
    assert f'data-item="{item.pk}"' in client.get("/review/").content.decode()


def test_the_audit_trail_shows_details_in_words(client, lead):
    client.force_login(lead)
    client.post(
        "/review/settings/",
        {"second_review_share": "0.5", "double_annotation_share": "0", "lease_minutes": "15"},
    )
    html = client.get("/review/audit/").content.decode()
    assert "lease minutes:</span> 10 → 15" in html
    assert "{&#x27;" not in html and "{'" not in html  # no Python dict


def test_review_pages_link_an_icon_and_kappa_over_few_pairs_is_marked(client, lead, reviewer, item):
    for user, error in ((reviewer, "arithmetic"), (lead, "missing_step")):
        Annotation.objects.create(
            review_item=item,
            annotator=user,
            corrected_steps=[{"text": "42 - 8 = 34", "strategy": "deduction"}],
            corrected_answer="34",
            error_type=error,
            confidence_low=0.8,
            confidence_high=0.9,
            transparent=True,
            blind=True,
            status=Annotation.Status.DISPUTED,
        )
    client.force_login(lead)
    html = client.get("/review/agreement/").content.decode()
    assert 'rel="icon"' in html
    assert html.count('<span class="badge warn" title="kappa over fewer') == 2  # each reviewer's row
