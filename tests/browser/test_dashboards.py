"""Every dashboard page in a real browser: staff see drawn charts, a reviewer is refused."""

from pathlib import Path

import pytest
from django.conf import settings

from tests.browser.csp import csp_violations, serve_under_strict_csp
from tests.dashboards.seed import seed_loop
from tests.django_fixtures import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGES = [
    "/dashboards/",
    "/dashboards/cognition/",
    "/dashboards/capture/",
    "/dashboards/queue/",
    "/dashboards/reviewers/",
    "/dashboards/datasets/",
    "/dashboards/training/",
    "/dashboards/models/",
]
SCREENSHOTS = Path(settings.VAR_DIR) / "screenshots"


@pytest.fixture
def seeded(django_user_model):
    django_user_model.objects.create_user(username="stella", password="staff-pass-1", is_staff=True)
    return seed_loop()


def test_staff_see_every_dashboard_with_drawn_charts(page, seeded):
    browser_login(page, "stella", "staff-pass-1")
    page.get_by_role("link", name="Dashboards").click()
    assert page.url.endswith("/dashboards/")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for path in PAGES:
        response = page.goto(path)
        assert response.status == 200, path
        assert page.locator("nav[aria-label=Dashboards] a[aria-current=page]").count() == 1
        charts = page.locator("svg.chart")
        if path != "/dashboards/":
            assert charts.count() > 0, path
        for i in range(charts.count()):
            chart = charts.nth(i)
            chart.scroll_into_view_if_needed()
            box = chart.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 120, f"{path}: chart {i} is not laid out"
            assert chart.get_attribute("role") == "img" and chart.locator("title").first.text_content()
            # Marks are drawn with a real size: bars, lines or histogram areas.
            marks = chart.locator("rect.bar, path.line, path.area")
            assert marks.count() > 0, f"{path}: {chart.locator('title').first.text_content()} draws nothing"
            mark_box = marks.first.bounding_box()
            assert mark_box and (mark_box["width"] > 0 or mark_box["height"] > 0)
        page.screenshot(
            path=str(SCREENSHOTS / f"dashboard-{path.strip('/').replace('/', '-')}.png"), full_page=True
        )


def test_a_reviewer_is_refused_every_dashboard(page, seeded, reviewer):
    browser_login(page, "rita", "review-pass-1")
    assert page.get_by_role("link", name="Dashboards").count() == 0
    for path in PAGES:
        response = page.goto(path)
        assert response.status == 403, path
        assert page.locator("svg.chart").count() == 0


def test_dashboards_are_styled_under_a_csp_that_refuses_inline_style(page, seeded):
    browser_login(page, "stella", "staff-pass-1")
    serve_under_strict_csp(page, "**/dashboards/**")
    page.goto("/dashboards/cognition/")
    assert page.evaluate("getComputedStyle(document.querySelector('.dash-nav')).display") == "flex"
    chart = page.locator("svg.chart").first
    assert chart.evaluate("svg => getComputedStyle(svg).borderTopWidth") == "1px"  # charts.css
    assert csp_violations(page) == []


def test_dashboards_fit_a_390_px_screen_and_pass_axe(page, seeded):
    from tests.browser.axe import axe_violations, page_width, too_wide

    browser_login(page, "stella", "staff-pass-1")
    problems = {}
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 844})
        for path in PAGES:
            page.goto(path)
            if width == 390 and page_width(page) > 390:
                problems[f"{path} at 390 px"] = too_wide(page)
            if found := axe_violations(page):
                problems[f"{path} at {width} px"] = found
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())
