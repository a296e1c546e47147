"""The review pages as reviewers use them: labels only they chose, few keys, drafts that survive
a reload, held items to resume, refusals that say what to fix, and no barriers (axe-core)."""

import time

import pytest

from annotation.models import Annotation
from feedback.models import ReviewItem
from inference import services as inference_services
from tests.browser.axe import axe_violations, page_width, too_wide
from tests.django_fixtures import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ONE_STEP = "Step 1 [deduction]: 42 - 8 = 50\n</think>\n\nThe answer is 50."
PROMPT = "Start with 42. Take away 8. What is the result?"
# Before labels had to be chosen, the one-step arithmetic fix with every label set by keyboard
# took n e Esc w a Esc t ↓ Esc i Tab Esc Ctrl+Enter Enter: 14 command keys.
KEYS_BEFORE = 14


@pytest.fixture
def items(product_app):
    first = inference_services.output_create(app=product_app, prompt=PROMPT, raw_text=ONE_STEP)
    later = inference_services.output_create(
        app=product_app,
        prompt="Start with 9. Add 3. What is the result?",
        raw_text="Step 1 [deduction]: 9 + 3 = 13\n</think>\n\nThe answer is 13.",
    )
    ReviewItem.objects.filter(pk=later.review_item.pk).update(priority=0.9)  # after the first
    return first.review_item, later.review_item


class Keys:
    """Presses command keys and counts them; typed text is not a command."""

    def __init__(self, page):
        self.page, self.count = page, 0

    def __call__(self, *keys: str) -> None:
        for key in keys:
            self.page.keyboard.press(key)
            self.count += 1

    def type(self, text: str) -> None:
        self.page.keyboard.type(text)


def test_a_one_step_arithmetic_fix_takes_fewer_command_keys_and_every_label_is_chosen(
    page, items, reviewer, policy
):
    policy()
    item, later = items
    browser_login(page, "rita", "review-pass-1")
    # Nothing is chosen for the reviewer on a fresh item.
    press = Keys(page)
    started = time.monotonic()
    press("n")
    page.wait_for_url(f"**/review/{item.pk}/")
    assert page.locator("[name=error_type]:checked").count() == 0
    assert page.locator("[name=transparent]:checked").count() == 0
    assert page.input_value("[name=confidence_low]") == page.input_value("[name=confidence_high]") == ""
    assert page.input_value("[name=corrected_answer]") == ""
    assert page.input_value("[name=steps-1-strategy]") == ""  # the blank extra row

    press("e")  # edit the highlighted step: its text is selected, typing replaces it
    press.type("42 - 8 = 34")
    press("Escape", "w", "a")
    press.type("The answer is 34.")
    press("Escape", "Control+Enter")
    problems = page.locator("#diff-problems").inner_text()
    assert "Error type" in problems and "Confidence interval" in problems and "understandable" in problems
    press("1", "h", "y")  # error type, interval, understandable: one key each
    assert page.locator("#diff-problems").is_hidden()
    press("Enter")
    page.wait_for_url(f"**/review/{later.pk}/")
    elapsed = time.monotonic() - started

    assert press.count < KEYS_BEFORE, press.count
    print(f"one-step fix: {press.count} command keys (before: {KEYS_BEFORE}), {elapsed:.1f} s")
    a = Annotation.objects.get(review_item=item)
    assert a.corrected_steps == [{"text": "42 - 8 = 34", "strategy": "deduction"}]
    assert (a.error_type, a.first_wrong_step, a.corrected_answer) == ("arithmetic", 1, "The answer is 34.")
    assert (a.confidence_low, a.confidence_high, a.transparent) == (0.9, 1.0, True)


def test_the_answer_unchanged_is_one_key_and_shown_as_such(page, items, reviewer):
    item, _ = items
    browser_login(page, "rita", "review-pass-1")
    page.goto(f"/review/{item.pk}/")
    page.keyboard.press("A")
    assert page.is_checked("[name=answer_unchanged]")
    assert page.input_value("[name=corrected_answer]") == "The answer is 50."
    page.keyboard.press("Control+Enter")
    assert "(unchanged)" in page.locator("#diff-labels").inner_text()


def test_the_check_names_every_invalid_value_and_refuses_to_submit(page, items, reviewer):
    item, _ = items
    browser_login(page, "rita", "review-pass-1")
    page.click("#claim-next")
    page.wait_for_url(f"**/review/{item.pk}/")
    page.fill("[name=confidence_low]", "0.9")
    page.fill("[name=confidence_high]", "0.2")
    page.fill("[name=first_wrong_step]", "7")
    page.click("#add-step")
    page.keyboard.type("so it is 34")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")
    problems = page.locator("#diff-problems").inner_text()
    for words in (
        "0.9 – 0.2 has the low end above the high end",
        "First wrong step: 7",
        "Step 3: choose its strategy",  # after the original step and the blank row
        "Corrected answer",
        "Error type: not chosen",
        "understandable?: not answered",
    ):
        assert words in problems
    page.click("#confirm-queue")
    assert page.locator("#diff-dialog").is_visible()  # nothing was sent
    assert page.evaluate("document.activeElement.id") == "diff-problems"
    assert not Annotation.objects.exists()


def test_a_refused_submit_lists_the_fields_at_the_top_and_focuses_the_list(page, items, reviewer):
    item, _ = items
    browser_login(page, "rita", "review-pass-1")
    page.click("#claim-next")
    page.wait_for_url(f"**/review/{item.pk}/")
    page.fill("[name=steps-0-text]", "42 - 8 = 35")  # the claim checker refuses a wrong claim
    page.fill("[name=corrected_answer]", "35")
    page.keyboard.press("Control+Enter")
    for key in ("1", "m", "n"):
        page.keyboard.press(key)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    summary = page.locator("#error-summary")
    assert summary.is_visible()
    assert page.evaluate("document.activeElement.id") == "error-summary"
    assert "Corrected steps" in summary.inner_text() and "corrected_steps" not in summary.inner_text()
    assert page.input_value("[name=steps-0-text]") == "42 - 8 = 35"  # the work stays
    assert page.is_checked("#id_transparent_1")


def test_a_draft_survives_a_reload_and_a_submit_clears_it(page, items, reviewer, policy):
    policy()
    item, later = items
    browser_login(page, "rita", "review-pass-1")
    page.click("#claim-next")
    page.wait_for_url(f"**/review/{item.pk}/")
    page.fill("[name=steps-0-text]", "42 - 8 = 34")
    page.click("#add-step")
    page.keyboard.type("so the result is 34")
    page.keyboard.press("Escape")
    page.keyboard.press("2")  # deduction for the added step
    page.fill("[name=corrected_answer]", "34")
    page.check("#id_error_type_0")
    page.wait_for_timeout(300)  # the draft is written a moment after the last change
    page.reload()
    assert "restored" in page.locator("#draft-status").inner_text()
    assert page.input_value("[name=steps-0-text]") == "42 - 8 = 34"
    texts = [page.input_value(f"#steps tbody tr:nth-child({n}) input[name$='-text']") for n in (1, 2, 3)]
    assert texts == ["42 - 8 = 34", "", "so the result is 34"] or "so the result is 34" in texts
    assert page.input_value("[name=corrected_answer]") == "34"
    assert page.is_checked("#id_error_type_0")
    # The reload kept the lease: the page says so and the server agrees.
    assert "You hold this item" in page.locator("#lease-status").inner_text()
    assert ReviewItem.objects.get(pk=item.pk).claimed_by == reviewer

    page.keyboard.press("Control+Enter")
    for key in ("h", "y"):
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/review/{later.pk}/")
    key = f"cogloop-draft:{reviewer.pk}:{item.pk}"
    assert page.evaluate("k => localStorage.getItem(k)", key) is None
    assert Annotation.objects.get(review_item=item).corrected_answer == "34"


def test_a_reload_in_each_of_two_tabs_keeps_the_lease(page, items, reviewer):
    item, _ = items
    browser_login(page, "rita", "review-pass-1")
    page.click("#claim-next")
    page.wait_for_url(f"**/review/{item.pk}/")
    other = page.context.new_page()
    other.goto(f"/review/{item.pk}/")
    for tab in (page, other, page):
        tab.reload()
        tab.wait_for_timeout(300)  # the old page's beacon lands
        assert "You hold this item" in tab.locator("#lease-status").inner_text()
        assert ReviewItem.objects.get(pk=item.pk).claimed_by == reviewer
    other.close()


def test_the_queue_shows_held_items_to_resume_or_release(page, items, reviewer):
    item, later = items
    browser_login(page, "rita", "review-pass-1")
    page.click("#claim-next")
    page.wait_for_url(f"**/review/{item.pk}/")
    ReviewItem.objects.filter(pk=later.pk).update(priority=-1.0)  # now the best unclaimed one
    page.goto("/review/")  # leaving by a link releases: hold it again from the queue
    assert wait_for(lambda: ReviewItem.objects.get(pk=item.pk).status == ReviewItem.Status.QUEUED)
    page.reload()
    page.locator(f"#queue tr[data-item='{item.pk}'] button").click()
    page.wait_for_url(f"**/review/{item.pk}/")
    page.keyboard.press("q")
    page.wait_for_url("**/review/")
    assert wait_for(lambda: ReviewItem.objects.get(pk=item.pk).status == ReviewItem.Status.QUEUED)
    ReviewItem.objects.filter(pk=item.pk).update(
        status=ReviewItem.Status.CLAIMED, claimed_by=reviewer, lease_expires_at=_in_minutes(5)
    )
    page.reload()
    held = page.locator("#held")
    assert held.is_visible() and f"{item.pk}" in held.inner_text()
    page.keyboard.press("n")  # the held item before the better unclaimed one
    page.wait_for_url(f"**/review/{item.pk}/")
    page.goto("/review/")
    assert wait_for(lambda: ReviewItem.objects.get(pk=item.pk).status == ReviewItem.Status.QUEUED)
    ReviewItem.objects.filter(pk=item.pk).update(
        status=ReviewItem.Status.CLAIMED, claimed_by=reviewer, lease_expires_at=_in_minutes(5)
    )
    page.reload()
    page.get_by_role("button", name=f"Release item {item.pk}").click()
    page.wait_for_url("**/review/")
    assert "released" in page.locator(".msg").first.inner_text()
    assert page.locator("#held").count() == 0
    assert ReviewItem.objects.get(pk=item.pk).status == ReviewItem.Status.QUEUED


def wait_for(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _in_minutes(minutes: int):
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() + timedelta(minutes=minutes)


def test_review_pages_have_no_serious_accessibility_violations(
    page, chromium, live_server, items, reviewer, lead, policy
):
    policy(second=1.0)
    item, _ = items
    browser_login(page, "rita", "review-pass-1")
    assert axe_violations(page) == [], "queue"
    page.click("#claim-next")
    page.wait_for_url(f"**/review/{item.pk}/")
    page.click("#add-step")  # a row added by script is checked too
    assert axe_violations(page) == [], "item"
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")
    assert axe_violations(page) == [], "check dialog"
    page.keyboard.press("Escape")
    page.fill("[name=steps-0-text]", "42 - 8 = 35")  # refused by the claim checker
    page.fill("[name=corrected_answer]", "35")
    page.keyboard.press("Control+Enter")
    for key in ("1", "h", "y"):
        page.keyboard.press(key)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("#error-summary").is_visible()
    assert axe_violations(page) == [], "item sent back with errors"
    lead_context = chromium.new_context(base_url=live_server.url)
    try:
        lead_page = lead_context.new_page()
        browser_login(lead_page, "lena", "lead-pass-1")
        for path in ("/review/second/", "/review/agreement/", "/review/audit/", "/review/settings/"):
            lead_page.goto(path)
            assert axe_violations(lead_page) == [], path
    finally:
        lead_context.close()


def test_the_item_page_does_not_scroll_sideways_at_390_px(page, items, reviewer):
    item, _ = items
    page.set_viewport_size({"width": 390, "height": 844})
    browser_login(page, "rita", "review-pass-1")
    for path in ("/review/", f"/review/{item.pk}/"):
        page.goto(path)
        assert page_width(page) <= 390, f"{path} is too wide: {too_wide(page)}"
