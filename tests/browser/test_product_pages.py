"""What every page of the product shares, in a real browser: an icon that loads (the login and
admin login pages included, and /favicon.ico), one 24-hour time format in the server's time
zone whatever the browser's locale, and API docs whose response examples are responses."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from feedback.models import ReviewItem
from inference import services as inference_services
from tests.django_fixtures import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")


def _icon_loads(page, path: str) -> None:
    icon = page.locator("link[rel=icon]")
    assert icon.count() == 1, f"{path} links {icon.count()} icons"
    response = page.request.get(icon.get_attribute("href"))
    assert response.ok and response.headers["content-type"].startswith("image/"), path


def test_every_page_links_an_icon_that_loads_and_favicon_ico_is_found(page, django_user_model):
    django_user_model.objects.create_user(
        username="stella", password="staff-pass-1", is_staff=True, is_superuser=True
    )
    not_found: list[str] = []
    page.on("response", lambda r: not_found.append(r.url) if r.status == 404 else None)
    for path in ("/accounts/login/", "/admin/login/", "/api/docs"):
        page.goto(path)
        _icon_loads(page, path)
    browser_login(page, "stella", "staff-pass-1")
    for path in ("/review/", "/dashboards/", "/dashboards/models/", "/admin/"):
        page.goto(path)
        _icon_loads(page, path)
    favicon = page.request.get("/favicon.ico")
    assert favicon.ok and favicon.headers["content-type"].startswith("image/svg")
    assert not_found == []


def test_times_written_by_scripts_are_24_hour_in_the_server_zone_in_any_locale(
    chromium, live_server, product_app, reviewer
):
    output = inference_services.output_create(
        app=product_app,
        prompt="Start with 42. Take away 8. What is the result?",
        raw_text="Step 1 [deduction]: 42 - 8 = 50\n</think>\n\nThe answer is 50.",
    )
    item = output.review_item
    # A US locale writes "02:50 PM", and New York is hours away from the server's UTC.
    context = chromium.new_context(base_url=live_server.url, locale="en-US", timezone_id="America/New_York")
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        browser_login(page, "rita", "review-pass-1")
        page.clock.install(time=datetime.now(UTC))
        page.click("#claim-next")
        page.wait_for_url(f"**/review/{item.pk}/")
        page.fill("[name=corrected_answer]", "34")
        page.clock.run_for(1000)  # the draft is written a moment after the last change
        page.reload()
        restored = page.locator("#draft-status").inner_text()
        stamp = re.search(r"from (.+) is restored", restored).group(1)
        assert STAMP.fullmatch(stamp), restored
        written = datetime.strptime(stamp, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
        assert abs(written - datetime.now(UTC)) < timedelta(minutes=30), "server zone (UTC), not New York"

        page.clock.run_for(61_000)  # the lease renews and the page says until when
        lease = page.locator("#lease-status")
        lease_text = re.compile(r"You hold this item until \d{2}:\d{2};")
        page.wait_for_function(
            "() => /until \\d{2}:\\d{2}; the lease renews while this page is open and is released when you "
            "leave/.test(document.querySelector('#lease-status').innerText)"
        )
        assert lease_text.search(lease.inner_text()) and not re.search(r"AM|PM", lease.inner_text())
        expires = ReviewItem.objects.get(pk=item.pk).lease_expires_at.astimezone(UTC)
        assert expires.strftime("%H:%M") in lease.inner_text()
    finally:
        page.goto("about:blank")
        context.close()


def test_api_docs_show_an_output_not_the_request_as_the_201_example_of_generate(page):
    schema = page.request.get("/api/schema?format=json").json()
    for path in ("/api/v1/generate", "/api/v1/outputs"):
        operation = schema["paths"][path]["post"]
        requests = operation["requestBody"]["content"]["application/json"]["examples"].values()
        created = operation["responses"]["201"]["content"]["application/json"]["examples"].values()
        assert created, path
        for example in created:
            assert "cognition_score" in str(example["value"]), f"{path}: {example['summary']}"
            assert example["value"] not in [r["value"] for r in requests], path

    page.goto("/api/docs")
    generate = page.locator(".opblock-post", has_text="/api/v1/generate").first
    generate.locator(".opblock-summary").first.click()
    example = generate.locator("tr.response[data-code='201'] .microlight").first
    assert '"cognition_score"' in example.inner_text()
    body = generate.locator(".opblock-section-request-body .microlight").first
    assert '"prompt"' in body.inner_text() and "cognition_score" not in body.inner_text()
