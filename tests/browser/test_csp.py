"""The Content-Security-Policy the server sends (no header added by the test): the review
item page, a dashboard and the API docs work under it in Chromium and report no violation."""

import pytest

from inference import services as inference_services
from tests.browser.csp import RECORD_VIOLATIONS, csp_violations
from tests.django_fixtures import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WRONG = "Step 1 [deduction]: 42 - 8 = 50\n</think>\n\nThe answer is 50."


@pytest.fixture
def staff_reviewer(make_user):
    return make_user("stella", password="staff-pass-1", is_staff=True)


def test_pages_work_under_the_servers_own_csp(page, product_app, staff_reviewer):
    item = inference_services.output_create(
        app=product_app, prompt="Start with 42. Take away 8. What is the result?", raw_text=WRONG
    ).review_item
    page.add_init_script(RECORD_VIOLATIONS)
    browser_login(page, "stella", "staff-pass-1")

    response = page.goto(f"/review/{item.pk}/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert page.evaluate("getComputedStyle(document.querySelector('header')).display") == "flex"
    page.keyboard.press("?")  # shortcuts.js ran
    assert page.locator("#shortcuts").is_visible()
    assert csp_violations(page) == []

    response = page.goto("/dashboards/cognition/")
    assert "content-security-policy" in response.headers
    assert page.locator("svg.chart").count() > 0
    assert page.evaluate("getComputedStyle(document.querySelector('.dash-nav')).display") == "flex"
    assert csp_violations(page) == []

    response = page.goto("/api/docs")
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    page.locator(".swagger-ui .info .title").wait_for()
    assert "Cogloop API" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".opblock-summary-path", has_text="/api/v1/feedback/bulk").count() == 1
    assert page.evaluate("getComputedStyle(document.body).margin") == "0px"  # api_docs.css
    assert csp_violations(page) == []
