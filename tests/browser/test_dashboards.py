"""Every dashboard page in a real browser: staff see drawn charts, a reviewer is refused."""

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings

from tests.browser.csp import csp_violations, serve_under_strict_csp
from tests.dashboards.seed import seed_loop
from tests.django_fixtures import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGES = [
    "/dashboards/",
    "/dashboards/outputs/",
    "/dashboards/cognition/",
    "/dashboards/capture/",
    "/dashboards/queue/",
    "/dashboards/reviewers/",
    "/dashboards/datasets/",
    "/dashboards/training/",
    "/dashboards/models/",
]
SCREENSHOTS = Path(settings.VAR_DIR) / "screenshots"
# COGLOOP_SCREENSHOTS=docs/screenshots rewrites the ones docs/review.md shows.
DOC_SCREENSHOTS = os.environ.get("COGLOOP_SCREENSHOTS")
DOC_PAGES = {"/dashboards/cognition/", "/dashboards/capture/", "/dashboards/models/", "/dashboards/outputs/"}


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
        if path not in ("/dashboards/", "/dashboards/outputs/"):
            assert charts.count() > 0, path
        for i in range(charts.count()):
            chart = charts.nth(i)
            chart.scroll_into_view_if_needed()
            box = chart.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 120, f"{path}: chart {i} is not laid out"
            # A chart is an image; one whose marks link to the outputs behind them is a group of links.
            assert (
                chart.get_attribute("role") in ("img", "group")
                and chart.locator("title").first.text_content()
            )
            # Marks are drawn with a real size: bars, lines or histogram areas.
            marks = chart.locator("rect.bar, path.line, path.area")
            assert marks.count() > 0, f"{path}: {chart.locator('title').first.text_content()} draws nothing"
            mark_box = marks.first.bounding_box()
            assert mark_box and (mark_box["width"] > 0 or mark_box["height"] > 0)
        name = f"dashboard-{path.strip('/').replace('/', '-')}.png"
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
        if DOC_SCREENSHOTS and path in DOC_PAGES:
            page.screenshot(path=str(Path(DOC_SCREENSHOTS) / name), full_page=True)


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


# Every mark and legend key of every chart: (chart title, colour, the mark's title or the key's text).
CHART_COLOURS = """() => [...document.querySelectorAll('svg.chart')].flatMap(svg => {
  const chart = svg.querySelector('title').textContent;
  const marks = [...svg.querySelectorAll('rect.bar, circle.point, path.line, path.area')].map(m => [
    chart, m.getAttribute(m.matches('path.line') ? 'stroke' : 'fill'),
    (m.querySelector('title') || {}).textContent || '']);
  const keys = [...svg.querySelectorAll('.legend-item')].map(g => [
    chart, g.querySelector('line').getAttribute('stroke'), g.querySelector('text').textContent]);
  return marks.concat(keys);
})"""
# The words a chart writes (legend keys, axis labels): what names a colour besides the colour.
CHART_WORDS = """() => Object.fromEntries([...document.querySelectorAll('svg.chart')].map(svg => [
  svg.querySelector('title').textContent,
  [...svg.querySelectorAll('.legend-item text, text.x-tick')].map(t => t.firstChild.textContent)]))"""


def _version_colours(page, names: list[str]) -> dict[str, set[str]]:
    colours: dict[str, set[str]] = {}
    words = page.evaluate(CHART_WORDS)
    for chart, colour, text in page.evaluate(CHART_COLOURS):
        for name in names:
            if re.search(rf"(^|[ ·]){re.escape(name)}($|[ ·:])", text):
                colours.setdefault(name, set()).add(colour)
                assert name in words[chart], f"{chart}: {name} is told by its colour only"
    return colours


def test_each_model_version_has_one_colour_across_a_page_and_is_named(page, seeded):
    from inference.models import ModelVersion

    names = [*ModelVersion.objects.values_list("name", flat=True), "external"]
    browser_login(page, "stella", "staff-pass-1")
    for path in ("/dashboards/cognition/?days=30", "/dashboards/models/"):
        page.goto(path)
        colours = _version_colours(page, names)
        assert len(colours) >= 2, f"{path}: {colours}"
        assert all(len(c) == 1 for c in colours.values()), f"{path}: {colours}"
        assert len({c for cs in colours.values() for c in cs}) == len(colours), (
            f"{path}: two versions share one"
        )
    # The cognition page's table shows each version's colour beside its name.
    page.goto("/dashboards/cognition/?days=30")
    swatch = page.locator("table.dash tr", has_text="cogloop-tiny-base").locator("svg.swatch rect")
    assert swatch.get_attribute("fill") in colours_of(page, "cogloop-tiny-base")


def colours_of(page, name: str) -> set[str]:
    return _version_colours(page, [name])[name]


def test_models_page_labels_never_overlap_and_a_zero_is_drawn(page, seeded):
    from inference.models import ModelVersion
    from retrain.models import Evaluation

    base = ModelVersion.objects.get(name="cogloop-tiny-base")
    for k in range(6):  # nine versions with long names: more than fit side by side
        v = ModelVersion.objects.create(
            name=f"cogloop-tiny-2027-q{k % 4 + 1}-r{k + 3}",
            base_model_path="cogloop-tiny",
            weights_path=f"w{k}",
        )
        Evaluation.objects.create(
            model_version=v,
            eval_set="workload-heldout",
            metrics={"n": 100, "accuracy": 0.0 if k == 0 else 0.5},
        )
    assert ModelVersion.objects.count() == 9 and base
    browser_login(page, "stella", "staff-pass-1")
    page.goto("/dashboards/models/")
    for i in range(page.locator("svg.chart").count()):
        chart = page.locator("svg.chart").nth(i)
        boxes = [t.bounding_box() for t in chart.locator("text.x-tick").all()]
        for a, b in zip(boxes, boxes[1:]):
            overlap_x = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
            overlap_y = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
            assert overlap_x <= 0.5 or overlap_y <= 0.5, f"chart {i}: labels overlap: {a} {b}"
    accuracy = page.locator("svg.chart", has=page.locator("title", has_text="Accuracy")).first
    assert accuracy.locator("text.x-tick").count() == 9, "every version is named under its bar"
    zero = accuracy.locator("rect.bar", has=page.locator("title", has_text="cogloop-tiny-2027-q1-r3:"))
    box = zero.bounding_box()
    assert box and box["height"] >= 1, "a measured zero is a visible bar"
    assert accuracy.locator("text.zero-label", has_text="0").count() >= 1
    page.screenshot(path=str(SCREENSHOTS / "dashboard-models-nine-versions.png"), full_page=True)


def test_a_custom_date_range_is_shown_and_an_invalid_one_says_so(page, seeded):
    from django.utils import timezone

    from inference.models import Output

    browser_login(page, "stella", "staff-pass-1")
    page.goto("/dashboards/cognition/")
    today = timezone.localdate()
    start, end = today - timedelta(days=15), today - timedelta(days=8)
    page.fill("input[name=from]", f"{start:%Y-%m-%d}")
    page.fill("input[name=to]", f"{end:%Y-%m-%d}")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"from=\d{4}-\d{2}-\d{2}&to="))
    assert page.locator(".window a[aria-current]").count() == 0
    assert page.locator("#range-shown").inner_text() == f"Showing {start:%Y-%m-%d} to {end:%Y-%m-%d}."
    assert page.locator("#range-notice").count() == 0
    midnight = timezone.make_aware(timezone.datetime.combine(start, timezone.datetime.min.time()))
    expected = Output.objects.filter(
        created_at__gte=midnight, created_at__lt=midnight + timedelta(days=(end - start).days + 1)
    ).count()
    shown = sum(int(n) for n in page.locator("table.dash tr td:nth-child(3)").all_inner_texts())
    assert 0 < shown == expected < Output.objects.count()

    for bad, why in (
        (f"?from={end:%Y-%m-%d}&to={start:%Y-%m-%d}", "is after the end"),
        (f"?from={start:%Y-%m-%d}&to={today + timedelta(days=3):%Y-%m-%d}", "ends after today"),
        ("?from=2026-02-30&to=", "From: Enter a valid date"),
    ):
        page.goto("/dashboards/capture/" + bad)
        notice = page.get_by_role("alert")
        assert why in notice.inner_text() and "Showing the last 30 days instead" in notice.inner_text(), bad
        assert page.locator(".window a[aria-current]").inner_text() == "30 days"
        assert page.input_value("input[name=from]") in bad  # what was typed stays to be fixed
    page.goto("/dashboards/reviewers/?days=12")
    assert "not a window" in page.get_by_role("alert").inner_text()


def test_auto_refresh_is_opt_in_remembered_and_reloads_the_page(page, seeded):
    browser_login(page, "stella", "staff-pass-1")
    serve_under_strict_csp(page, "**/dashboards/**")  # the switch is a static script, nothing inline
    page.clock.install()
    page.goto("/dashboards/queue/")
    box = page.get_by_label("Refresh every 60 s")
    assert not box.is_checked()
    page.evaluate("window.__same_page = true")
    page.clock.run_for(5 * 60_000)
    assert page.evaluate("window.__same_page === true"), "no refresh unless asked for"

    box.check()
    with page.expect_event("load"):
        page.clock.run_for(61_000)
    assert page.evaluate("window.__same_page === undefined")
    assert page.get_by_label("Refresh every 60 s").is_checked(), "remembered across reloads"
    page.goto("/dashboards/models/")
    box = page.get_by_label("Refresh every 60 s")
    assert box.is_checked(), "and across pages"
    box.uncheck()
    page.evaluate("window.__same_page = true")
    page.clock.run_for(5 * 60_000)
    assert page.evaluate("window.__same_page === true")
    page.reload()
    assert not page.get_by_label("Refresh every 60 s").is_checked()
    assert csp_violations(page) == []


def _biggest_bar(chart):
    """The bar with the largest value in a chart, and its title."""
    best = None
    for bar in chart.locator("a.drill rect.bar").all():
        title = bar.locator("title").text_content()
        value = round(float(title.rsplit(": ", 1)[1].replace(",", "")))
        if best is None or value > best[1]:
            best = (bar, value, title)
    return best


def test_charts_drill_down_to_the_outputs_behind_a_mark(page, seeded):
    from inference.models import Output

    browser_login(page, "stella", "staff-pass-1")
    page.goto("/dashboards/cognition/?days=30")
    per_day = page.locator(
        "svg.chart", has=page.locator("title", has_text="Outputs per day by model version")
    )
    bar, n, title = _biggest_bar(per_day.first)
    version = title.split(" · ")[0]
    bar.click()
    page.wait_for_url("**/dashboards/outputs/?*")
    assert page.locator("#outputs-count").inner_text().startswith(f"{n} output")
    rows = page.locator("table.outputs tr:has(td)")
    assert rows.count() == n
    assert set(page.locator("table.outputs td:nth-child(2)").all_inner_texts()) == {version}
    assert len({t[:10] for t in page.locator("table.outputs td:nth-child(1)").all_inner_texts()}) == 1

    # A histogram bin: the outputs scoring in that band, all versions.
    page.go_back()
    histogram = page.locator("svg.chart-histogram")
    band = histogram.locator("a.drill").nth(12)
    assert band.get_attribute("aria-label").startswith("scores 0.6–0.65")
    band.locator("rect.hit").click(force=True)
    page.wait_for_url("**score_min=0.6*")
    scores = [float(s) for s in page.locator("table.outputs td:nth-child(3)").all_inner_texts()]
    assert scores and all(0.6 <= s < 0.65 for s in scores)

    # A capture reason, by keyboard from the table; then an invalid filter says so.
    page.goto("/dashboards/capture/?days=30")
    page.get_by_role("link", name="Low Score", exact=True).click()
    reviews = page.locator("table.outputs td:nth-child(6)").all_inner_texts()
    assert reviews and all(r.startswith("Low Score") for r in reviews)
    page.goto("/dashboards/outputs/?score_min=0.7&score_max=0.2")
    assert "is not below its end" in page.get_by_role("alert").inner_text()
    assert page.locator("table.outputs tr:has(td) time").count() == 0
    # Every output, a page at a time.
    page.goto("/dashboards/outputs/?days=30")
    assert page.get_by_role("link", name="Older").count() == (1 if Output.objects.count() > 50 else 0)
