import re

import pytest
from django.db import connection
from django.templatetags.static import static
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.dashboards.seed import seed_loop, seed_more
from tests.inline_code import PageScan

PAGES = ["overview", "cognition", "capture", "queue", "reviewers", "datasets", "training", "models"]
# Charts each page draws with the seeded data (the overview shows numbers, no chart).
CHARTS = {
    "overview": 0,
    "cognition": 7,
    "capture": 2,
    "queue": 3,
    "reviewers": 3,
    "datasets": 4,
    "training": 4,
    "models": 8,
}
# Queries per page, sessions and the user included; the same at any row count.
MAX_QUERIES = 12


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="stella", password="staff-pass-1", is_staff=True)


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def seeded(db):
    return seed_loop()


def charts_in(html: str) -> list[str]:
    return re.findall(r'<svg class="chart[^"]*".*?</svg>', html, flags=re.DOTALL)


@pytest.mark.parametrize("page", PAGES)
def test_staff_sees_every_page_with_its_charts(staff_client, seeded, page):
    response = staff_client.get(reverse(f"dashboards:{page}"))
    assert response.status_code == 200
    html = response.content.decode()
    charts = charts_in(html)
    assert len(charts) == CHARTS[page]
    for chart in charts:
        assert re.search(r"<title id=\"[^\"]+\">[^<]+</title>", chart), (
            "every chart names itself for screen readers"
        )
        assert (
            '<rect class="bar"' in chart or '<path class="line"' in chart or '<path class="area"' in chart
        ), "every chart draws data"


@pytest.mark.parametrize("page", PAGES)
def test_a_reviewer_is_refused(client, reviewer, seeded, page):
    client.force_login(reviewer)
    response = client.get(reverse(f"dashboards:{page}"))
    assert response.status_code == 403
    assert b"<svg" not in response.content


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_visitors_are_sent_to_login(client, page):
    url = reverse(f"dashboards:{page}")
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(f"/accounts/login/?next={url}")


def test_only_staff_see_the_dashboards_link(staff, reviewer):
    from django.template.loader import render_to_string

    assert 'href="/dashboards/"' in render_to_string("base.html", {"user": staff})
    assert 'href="/dashboards/"' not in render_to_string("base.html", {"user": reviewer})


def _query_counts(client, days: int = 30) -> dict[str, int]:
    counts = {}
    for page in PAGES:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse(f"dashboards:{page}"), {"days": days}).status_code == 200
        counts[page] = len(ctx.captured_queries)
    return counts


def test_query_count_is_bounded_and_the_same_at_five_times_the_rows(
    staff_client, seeded, django_assert_max_num_queries
):
    from inference.models import Output

    small = _query_counts(staff_client)
    rows_before = Output.objects.count()
    seed_more(scale=4, seed=11)
    assert Output.objects.count() == 5 * rows_before
    for page in PAGES:
        with django_assert_max_num_queries(MAX_QUERIES):
            staff_client.get(reverse(f"dashboards:{page}"))
    assert _query_counts(staff_client) == small


def test_cognition_numbers_match_the_rows(staff_client, seeded):
    from django.db.models import Avg

    from inference.models import Output

    response = staff_client.get(reverse("dashboards:cognition"), {"days": 30})
    totals = {t["name"]: t for t in response.context["totals"]}
    for name, mean in Output.objects.values_list("model_version__name").annotate(m=Avg("cognition_score")):
        assert totals[name]["score"] == pytest.approx(mean)
        assert totals[name]["n"] == Output.objects.filter(model_version__name=name).count()


def test_the_window_limits_what_is_counted(staff_client, seeded):
    from django.utils import timezone

    from inference.models import Output

    week = staff_client.get(reverse("dashboards:capture"), {"days": 7}).context
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    assert (
        week["outputs"]
        == Output.objects.filter(created_at__gte=midnight - timezone.timedelta(days=6)).count()
    )
    assert 0 < week["outputs"] < Output.objects.count()
    assert staff_client.get(reverse("dashboards:capture"), {"days": "abc"}).context["days"] == 30


def test_models_page_shows_metrics_beside_the_seed_targets_and_the_history(staff_client, seeded):
    response = staff_client.get(reverse("dashboards:models"))
    rows = {row["version"].name: {m["key"]: m for m in row["metrics"]} for row in response.context["table"]}
    q1, q2, base = rows["cogloop-tiny-2026-q1-r1"], rows["cogloop-tiny-2026-q2-r2"], rows["cogloop-tiny-base"]
    assert q1["transparency_approval"]["met"] is True and q2["transparency_approval"]["met"] is False
    assert q1["correction_steps"]["met"] is True and q2["correction_steps"]["met"] is False
    assert q1["strategy_diversity"]["met"] is False and q2["strategy_diversity"]["met"] is True
    assert base["accuracy"]["value"] == 0.51  # the evaluator's {"overall": ...} layout
    assert base["transparency_approval"]["value"] is None
    events = [(e["event"], e["version"]) for e in response.context["history"]]
    assert ("rolled back to", "cogloop-tiny-base") in events and (
        "rejected",
        "cogloop-tiny-2026-q2-r2",
    ) in events
    assert "—" in response.content.decode()


def test_training_page_shows_stage_and_gate(staff_client, seeded):
    response = staff_client.get(reverse("dashboards:training"))
    rows = {row["run"].period: row for row in response.context["rows"]}
    states = {s["name"]: s["state"] for s in rows["2026-Q3"]["stages"]}
    assert (
        states["baseline_evaluation"] == "done"
        and states["training"] == "current"
        and states["gate"] == "todo"
    )
    assert all(s["state"] == "done" for s in rows["2026-Q1"]["stages"])
    assert "below the required" in response.content.decode()


def test_datasets_page_counts_strategies_in_sql(staff_client, seeded):
    from retrain.models import DatasetVersion, TrainingSample

    newest = DatasetVersion.objects.order_by("-period").first()
    expected: dict[str, int] = {}
    for s in newest.samples.filter(kind=TrainingSample.Kind.STRATEGY):
        for step in s.payload["steps"]:
            expected[step["strategy"]] = expected.get(step["strategy"], 0) + 1
    from ops import selectors

    rows = selectors.dataset_step_strategies(version_ids=[newest.pk])
    assert {r["strategy"]: r["n"] for r in rows} == expected


def test_user_text_is_escaped(staff_client, seeded, django_user_model):
    from inference.models import ModelVersion

    ModelVersion.objects.filter(name="cogloop-tiny-2026-q2-r2").update(recipe="<script>alert(1)</script>")
    evil = django_user_model.objects.create_user(username="<b>eve</b>")
    from annotation.models import Annotation

    a = Annotation.objects.first()
    Annotation.objects.filter(pk=a.pk).update(annotator=evil)
    for page in ("models", "reviewers"):
        html = staff_client.get(reverse(f"dashboards:{page}")).content.decode()
        assert "<script>alert" not in html and "<b>eve</b>" not in html
    assert "&lt;b&gt;eve&lt;/b&gt;" in html


def test_pages_render_with_no_data(staff_client):
    for page in PAGES:
        response = staff_client.get(reverse(f"dashboards:{page}"))
        assert response.status_code == 200
        for chart in charts_in(response.content.decode()):
            assert 'class="empty"' in chart, chart[:200]


def test_reviewer_throughput_matches_the_annotations(staff_client, seeded):
    from annotation.models import Annotation

    totals = {
        t["annotator__username"]: t
        for t in staff_client.get(reverse("dashboards:reviewers"), {"days": 30}).context["totals"]
    }
    for name in ("ada", "bo", "cleo"):
        mine = Annotation.objects.filter(annotator__username=name)
        assert totals[name]["n"] == mine.count()
        assert totals[name]["approved"] == mine.filter(status="approved").count()
        assert totals[name]["transparent_share"] == pytest.approx(
            mine.filter(transparent=True).count() / mine.count()
        )


def test_reviewers_page_shows_agreement_on_blind_pairs(staff_client, seeded):
    from annotation.models import Annotation

    agreement = {
        a.username: a for a in staff_client.get(reverse("dashboards:reviewers")).context["agreement"]
    }
    blind = Annotation.objects.filter(blind=True).count()
    assert agreement["everyone"].pairs == blind // 2 > 0
    assert agreement["everyone"].error_kappa is not None


def test_datasets_page_reads_a_recorded_composition_instead_of_counting(
    staff_client, seeded, django_assert_max_num_queries
):
    from retrain.models import DatasetVersion

    before = staff_client.get(reverse("dashboards:datasets")).context["charts"]
    for v in DatasetVersion.objects.all():
        from ops import selectors

        errors = {r["error_type"]: r["n"] for r in selectors.dataset_error_types(version_ids=[v.pk])}
        steps = {r["strategy"]: r["n"] for r in selectors.dataset_step_strategies(version_ids=[v.pk])}
        v.composition = {"error_types": errors, "strategy_steps": steps}
        v.save(update_fields=["composition"])
    with django_assert_max_num_queries(3):  # session, user, versions: nothing counted
        after = staff_client.get(reverse("dashboards:datasets")).context["charts"]

    def strip(svg):
        return re.sub(r"c[0-9a-f]{10}-", "", svg)  # chart ids are random

    assert [strip(c) for c in after] == [strip(c) for c in before]


def test_score_histogram_counts_every_output_in_its_bin(seeded):
    from django.utils import timezone

    from inference.models import Output
    from ops import selectors

    _, hist = selectors.cognition_by_day(since=timezone.now() - timezone.timedelta(days=60), low_below=0.6)
    for version_id, bins in hist.items():
        scores = Output.objects.filter(model_version_id=version_id).values_list("cognition_score", flat=True)
        expected = [0] * selectors.SCORE_BINS
        for score in scores:
            expected[min(int(score * selectors.SCORE_BINS), selectors.SCORE_BINS - 1)] += 1
        assert bins == expected


@pytest.mark.parametrize("page", PAGES)
def test_pages_carry_no_inline_code_and_load_their_stylesheets(staff_client, seeded, page):
    scan = PageScan(staff_client.get(reverse(f"dashboards:{page}")).content.decode())
    assert scan.inline == []
    assert scan.missing_static_files() == []
    assert [static("cogloop/base.css"), static("ops/charts.css"), static("ops/dashboards.css")] == [
        url for url in scan.linked if url.endswith(".css")
    ]


def test_outputs_list_costs_the_same_queries_at_five_times_the_rows(staff_client, seeded):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = staff_client.get(reverse("dashboards:outputs"), {"captured": "yes", "page": 2})
            assert response.status_code == 200
        return len(ctx.captured_queries)

    small = queries()
    seed_more(scale=4, seed=11)
    assert queries() == small <= MAX_QUERIES


def test_a_custom_range_ending_before_today_counts_only_its_days(staff_client, seeded):
    from datetime import timedelta

    from django.utils import timezone

    from annotation.models import Annotation
    from inference.models import Output

    end = timezone.localdate() - timedelta(days=5)
    start = end - timedelta(days=6)
    since = timezone.make_aware(timezone.datetime.combine(start, timezone.datetime.min.time()))
    until = since + timedelta(days=7)
    query = {"from": f"{start:%Y-%m-%d}", "to": f"{end:%Y-%m-%d}"}
    capture = staff_client.get(reverse("dashboards:capture"), query).context
    assert capture["outputs"] == Output.objects.filter(created_at__gte=since, created_at__lt=until).count()
    cognition = staff_client.get(reverse("dashboards:cognition"), query).context
    assert sum(t["n"] for t in cognition["totals"]) == capture["outputs"]
    reviewers = staff_client.get(reverse("dashboards:reviewers"), query).context
    assert sum(t["n"] for t in reviewers["totals"]) == (
        Annotation.objects.filter(created_at__gte=since, created_at__lt=until).count()
    )
    assert staff_client.get(reverse("dashboards:capture"), {"from": "2026-05-02"}).context["range_problems"]
