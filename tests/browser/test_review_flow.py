"""The reviewer UI in a real headless Chromium: keyboard correction, diff, second review, safety.

Set COGLOOP_SCREENSHOTS=docs/screenshots to (re)write the screenshots used in docs/review.md.
"""

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from annotation.models import Annotation
from feedback.models import ReviewItem
from inference import services as inference_services
from retrain import services as retrain_services
from retrain.models import TrainingSample
from tests.browser.csp import csp_violations, serve_under_strict_csp
from tests.django_fixtures import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WRONG = "Step 1 [deduction]: 42 - 8 = 50\nStep 2 [induction]: so it is 50\n</think>\n\nThe answer is 50."
PROMPT = "Start with 42. Take away 8. What is the result?"
SHOTS = os.environ.get("COGLOOP_SCREENSHOTS")


def shot(page, name: str, **kwargs) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"review-{name}.png"), **kwargs)


@pytest.fixture
def item(product_app):
    return inference_services.output_create(app=product_app, prompt=PROMPT, raw_text=WRONG).review_item


def wait_for(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_claim_correct_by_keyboard_submit_second_review_approves_and_training_data_exists(
    page, chromium, live_server, item, product_app, reviewer, lead, policy
):
    policy(second=1.0)
    later = inference_services.output_create(
        app=product_app,
        prompt="Start with 9. Add 3. What is the result?",
        raw_text="Step 1 [deduction]: 9 + 3 = 13\n</think>\n\nThe answer is 13.",
    )
    ReviewItem.objects.filter(pk=later.review_item.pk).update(priority=0.5)  # after the worse one
    browser_login(page, "rita", "review-pass-1")
    assert page.url.endswith("/review/")
    shot(page, "queue", full_page=True)

    page.keyboard.press("n")  # claim the best unclaimed item
    page.wait_for_url(f"**/review/{item.pk}/")
    assert "You hold this item" in page.locator("#lease-status").inner_text()
    page.keyboard.press("?")
    assert page.locator("#shortcuts").is_visible()
    shot(page, "shortcuts")
    page.keyboard.press("Escape")

    page.keyboard.press("e")  # edit step 1: the cursor starts on it
    page.keyboard.type("42 - 8 = 34")
    page.keyboard.press("Escape")
    page.keyboard.press("2")  # deduction
    page.keyboard.press("w")  # the first wrong step
    page.keyboard.press("j")
    page.keyboard.press("x")  # delete step 2
    page.keyboard.press("a")
    page.keyboard.type("The answer is 34.")
    page.keyboard.press("Escape")
    page.keyboard.press("t")
    page.keyboard.press("1")  # the first error type: arithmetic
    page.keyboard.press("Escape")  # out of the group, back to the shortcuts
    page.keyboard.press("h")  # interval: sure
    page.keyboard.press("u")  # the original was understandable
    page.keyboard.press("r")
    page.keyboard.type("take away means subtract")
    page.keyboard.press("Escape")
    shot(page, "item", full_page=True)
    page.keyboard.press("Control+Enter")

    dialog = page.locator("#diff-dialog")
    assert dialog.is_visible()
    diff = page.locator("#diff-table").inner_text()
    assert "42 - 8 = 50" in diff and "42 - 8 = 34" in diff and "removed" in diff
    shot(page, "diff")
    page.keyboard.press("Enter")  # submit and claim the next item
    page.wait_for_url(f"**/review/{later.review_item.pk}/")
    assert "saved" in page.locator(".msg").first.inner_text()

    annotation = Annotation.objects.get(review_item=item)
    assert annotation.corrected_steps == [{"text": "42 - 8 = 34", "strategy": "deduction"}]
    assert annotation.first_wrong_step == 1 and annotation.corrected_answer == "The answer is 34."
    assert (
        annotation.error_type == "arithmetic" and annotation.correction_strategy == "take away means subtract"
    )
    assert annotation.status == Annotation.Status.SUBMITTED  # picked for second review
    assert retrain_services.training_samples_collect() == 0

    lead_context = chromium.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    try:
        lead_page = lead_context.new_page()
        browser_login(lead_page, "lena", "lead-pass-1")
        lead_page.click("text=Second review")
        shot(lead_page, "second-review-list")
        lead_page.click(f"text=review #{annotation.pk}")
        assert "diff-removed" in lead_page.content()
        shot(lead_page, "second-review", full_page=True)
        lead_page.click("#approve")
        lead_page.wait_for_url("**/review/second/")
        assert "approved" in lead_page.locator(".msg").first.inner_text()
        lead_page.click("text=Audit trail")
        audit = lead_page.locator("#audit").inner_text()
        assert all(action in audit for action in ("claim", "submit", "approve"))
        shot(lead_page, "audit")
        lead_page.click("text=Agreement")
        shot(lead_page, "agreement")
        lead_page.click("text=Review settings")
        shot(lead_page, "settings")
    finally:
        lead_context.close()

    annotation.refresh_from_db()
    assert annotation.status == Annotation.Status.APPROVED and annotation.second_reviewer == lead
    assert retrain_services.training_samples_collect() == 3
    assert TrainingSample.objects.filter(kind="reflection", source_annotation=annotation).exists()


PAYLOADS = ['<script>window.__xss = "script"</script>', "<img src=x onerror=\"window.__xss = 'img'\">"]


def test_script_payloads_in_model_output_and_reviewer_text_render_as_text(
    page, product_app, reviewer, lead, policy
):
    policy(second=1.0)
    output = inference_services.output_create(
        app=product_app,
        prompt=f"{PAYLOADS[0]} Start with 2. Add 2.",
        raw_text=f"Step 1 [deduction]: {PAYLOADS[1]} 2 + 2 = 5\n</think>\n\nThe answer is {PAYLOADS[0]}",
    )
    browser_login(page, "rita", "review-pass-1")
    page.goto(f"/review/{output.review_item.pk}/")
    assert PAYLOADS[0] in page.locator("#prompt").inner_text()
    assert PAYLOADS[1] in page.locator("#original-steps").inner_text()
    page.keyboard.press("c")  # claim in place
    assert wait_for(lambda: ReviewItem.objects.get(pk=output.review_item.pk).claimed_by_id == reviewer.pk)
    page.fill("[name=steps-0-text]", f"2 + 2 = 4 {PAYLOADS[1]}")
    page.fill("[name=corrected_answer]", f"4 {PAYLOADS[0]}")
    page.keyboard.press("Control+Enter")
    for key in ("1", "h", "y"):  # error type, interval, understandable: one key each in the check
        page.keyboard.press(key)
    assert PAYLOADS[1] in page.locator("#diff-table").inner_text()
    assert PAYLOADS[0] in page.locator("#diff-labels").inner_text()
    page.click("#confirm-queue")
    page.wait_for_url("**/review/")
    assert page.evaluate("window.__xss") is None

    annotation = Annotation.objects.get()
    page.context.clear_cookies()
    browser_login(page, "lena", "lead-pass-1")
    page.goto(f"/review/annotations/{annotation.pk}/")
    assert PAYLOADS[1] in page.locator("table.diff").first.inner_text()
    assert page.evaluate("window.__xss") is None


def test_expired_lease_cannot_submit_and_the_work_is_kept_to_claim_again(page, item, reviewer, policy):
    policy()
    browser_login(page, "rita", "review-pass-1")
    page.click("#claim-next")
    page.wait_for_url(f"**/review/{item.pk}/")
    page.fill("[name=steps-0-text]", "42 - 8 = 34")
    page.fill("[name=corrected_answer]", "34")
    page.check("#id_error_type_0")
    page.check("#id_transparent_0")
    page.click(".preset[data-key=h]")
    ReviewItem.objects.filter(pk=item.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    page.keyboard.press("Control+Enter")
    page.click("#confirm-queue")
    page.wait_for_load_state()
    assert "lease on this item expired" in page.content()
    assert page.input_value("[name=steps-0-text]") == "42 - 8 = 34"
    assert not Annotation.objects.exists()
    shot(page, "expired")
    page.click("#reclaim-submit")
    page.click("#confirm-queue")
    page.wait_for_url("**/review/")
    assert Annotation.objects.get().corrected_steps[0]["text"] == "42 - 8 = 34"


def test_leaving_the_item_page_gives_the_item_back(page, item, reviewer):
    browser_login(page, "rita", "review-pass-1")
    page.click("#claim-next")
    page.wait_for_url(f"**/review/{item.pk}/")
    assert ReviewItem.objects.get(pk=item.pk).status == ReviewItem.Status.CLAIMED
    page.goto("/review/?state=open")
    assert wait_for(lambda: ReviewItem.objects.get(pk=item.pk).status == ReviewItem.Status.QUEUED)


def test_a_reviewer_sees_no_lead_or_admin_pages(page, reviewer):
    browser_login(page, "rita", "review-pass-1")
    assert page.locator("nav >> text=Second review").count() == 0
    response = page.goto("/review/settings/")
    assert response.status == 403 and "needs the lead role" in page.locator("main").inner_text()
    page.goto("/admin/")
    assert "/admin/login/" in page.url


def test_the_item_page_works_under_a_csp_that_refuses_inline_code(page, item, reviewer):
    browser_login(page, "rita", "review-pass-1")
    serve_under_strict_csp(page, f"**/review/{item.pk}/")
    page.goto(f"/review/{item.pk}/")
    assert page.evaluate("getComputedStyle(document.querySelector('header')).display") == "flex"
    page.keyboard.press("c")  # item.js: claim in place
    assert wait_for(lambda: ReviewItem.objects.get(pk=item.pk).claimed_by_id == reviewer.pk)
    page.keyboard.press("1")  # the first of the strategies the page passes to item.js
    assert page.input_value("[name=steps-0-strategy]") == "induction"
    page.keyboard.press("?")  # shortcuts.js
    assert page.locator("#shortcuts").is_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")
    assert page.locator("#diff-dialog").is_visible()
    assert "changed" in page.locator("#diff-table").inner_text()
    assert csp_violations(page) == []
