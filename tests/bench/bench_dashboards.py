"""Dashboard page times at a million outputs or more on PostgreSQL, with the daily roll-ups
and without them, side by side in one run.

    python tests/bench/bench_dashboards.py [--outputs 1000000] [--days 365] [--requests 5]
                                           [--without-index] [--keep]

Recreates its own database (cogloop_bench_dash) and fills it inside PostgreSQL with
INSERT ... SELECT over generate_series (the fastest bulk insert there is: no row leaves the
server): outputs over ``--days`` days served by three model versions, the review items the
capture policy would have made, their annotations by ten reviewers, four monthly dataset
versions, training runs with loss curves and evaluations. Then it fills the daily roll-ups
with the refresh the beat runs (ops.services.rollups_refresh, every closed day), times every
dashboard page through Django's test client (median of ``--requests`` after one warm-up) and
counts its queries, then the same pages again with the roll-ups hidden (their RollupDay rows
set aside: every page reads the raw tables, as before the roll-ups), and, with
``--without-index``, the output-heavy raw pages without the covering index. Prints markdown
tables and the load average; the database is dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DB = "cogloop_bench_dash"
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DAYS = 365  # --days
REVIEWERS = 10


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")


def drop_database() -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def setup_django() -> None:
    os.environ.update(
        {
            "DATABASE_URL": f"{PG}/{DB}",
            "REDIS_URL": "",
            "COGLOOP_VAR_DIR": str(ROOT / "var" / "bench_dash"),
            "DJANGO_SETTINGS_MODULE": "cogloop.settings",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _model_defaults(model, given: set[str]) -> tuple[list[str], list]:
    """Columns the INSERTs below do not name, with the model's default as a constant, so a
    field added later (with a default) does not break the benchmark."""
    from django.db import connection

    columns, params = [], []
    for f in model._meta.concrete_fields:
        if (
            f.primary_key
            or f.column in given
            or getattr(f, "auto_now", False)
            or getattr(f, "auto_now_add", False)
        ):
            continue
        if f.null and not f.has_default():
            continue
        columns.append(f.column)
        params.append(f.get_db_prep_save(f.get_default(), connection))
    return columns, params


def _insert(
    model,
    columns: dict[str, str],
    source: str,
    *,
    select_params: list | None = None,
    source_params: list | None = None,
) -> int:
    """INSERT INTO model's table SELECT ``columns`` (column -> SQL expression) FROM ``source``."""
    from django.db import connection

    extra_cols, extra_params = _model_defaults(model, set(columns))
    cols = list(columns) + extra_cols
    exprs = list(columns.values()) + ["%s"] * len(extra_cols)
    sql = f"INSERT INTO {model._meta.db_table} ({', '.join(cols)}) SELECT {', '.join(exprs)} FROM {source}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*(select_params or []), *extra_params, *(source_params or [])])
        return cursor.rowcount


def fill(n_outputs: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from annotation.models import Annotation
    from feedback.models import ReviewItem
    from inference.models import ModelVersion, Output, ProductApp
    from retrain.models import DatasetVersion, Evaluation, TrainingRun, TrainingSample

    t0 = time.perf_counter()
    now = timezone.now()
    app = ProductApp.objects.create(name="bench")
    users = [get_user_model().objects.create_user(username=f"reviewer{i}") for i in range(REVIEWERS)]

    def version(name, status, **kw):
        return ModelVersion.objects.create(
            name=name, base_model_path="b", weights_path=name, sha256="0" * 64, status=status, **kw
        )

    base = version(
        "bench-base",
        "retired",
        recipe="base",
        promotion_history=[
            {
                "event": "promoted",
                "at": (now - timezone.timedelta(days=DAYS)).isoformat(),
                "reason": "initial base model",
            },
            {"event": "retired", "at": (now - timezone.timedelta(days=60)).isoformat(), "by": "bench-q1"},
        ],
    )
    q1 = version(
        "bench-q1",
        "active",
        recipe="lora-all",
        parent=base,
        promoted_at=now - timezone.timedelta(days=60),
        promotion_history=[
            {
                "event": "promoted",
                "at": (now - timezone.timedelta(days=60)).isoformat(),
                "reason": "accuracy gain +0.080",
            }
        ],
    )
    q2 = version(
        "bench-q2",
        "rejected",
        recipe="layered",
        parent=q1,
        promotion_history=[
            {
                "event": "rejected",
                "at": (now - timezone.timedelta(days=5)).isoformat(),
                "reason": "gain below +0.020",
            }
        ],
    )

    # Outputs: base serves the older half, q1 the newer (and scores better).
    _insert(
        Output,
        {
            "uuid": "gen_random_uuid()",
            "app_id": str(app.pk),
            "source": "'generated'",
            "prompt": "'What is ' || g || ' + ' || g || '?'",
            "raw_text": "'Step 1 [deduction]: ...'",
            "reasoning": "''",
            "steps": "'[]'::jsonb",
            "answer": "'42'",
            "consistency": "c",
            "adaptability": "a",
            "cognition_score": "0.6 * c + 0.4 * a",
            "score_parts": "'{}'::jsonb",
            "head_confidence": "CASE WHEN mod(g, 3) = 0 THEN NULL ELSE random() END",
            "model_version_id": f"CASE WHEN age > interval '60 days' THEN {base.pk} ELSE {q1.pk} END",
            "latency_ms": "(50 + random() * 400)::int",
            "created_at": "%s::timestamptz - age",
        },
        f"""(SELECT g, least(1, 0.5 + 0.5 * random() + CASE WHEN mod(g, 2) = 0 THEN 0.05 ELSE 0 END) AS c,
                   0.3 + 0.7 * random() AS a, random() * interval '{DAYS} days' AS age
            FROM generate_series(1, {n_outputs}) g) s""",
        select_params=[now],
    )

    # Review items: every output under the capture threshold, plus 1 % audit samples.
    _insert(
        ReviewItem,
        {
            "output_id": "o.id",
            "reason": "CASE WHEN o.cognition_score < 0.6 THEN 'low_score' ELSE 'audit_sample' END",
            "reason_detail": "''",
            "priority": "o.cognition_score",
            "prompt_fingerprint": "md5(o.prompt)",
            "status": "CASE WHEN o.created_at > %s::timestamptz - interval '3 days' THEN "
            "(CASE WHEN mod(o.id, 4) = 0 THEN 'claimed' ELSE 'queued' END) "
            "WHEN mod(o.id, 10) = 0 THEN 'skipped' ELSE 'annotated' END",
            "claimed_by_id": f"(ARRAY{[u.pk for u in users]})[1 + mod(o.id, {REVIEWERS})]",
            "lease_expires_at": "%s::timestamptz + interval '5 minutes'",
            "created_at": "o.created_at + interval '1 minute'",
        },
        f"{Output._meta.db_table} o WHERE o.cognition_score < 0.6 OR mod(o.id, 100) = 0",
        select_params=[now, now],
    )

    _insert(
        Annotation,
        {
            "review_item_id": "r.id",
            "annotator_id": "r.claimed_by_id",
            "corrected_steps": """jsonb_build_array(jsonb_build_object('text', 'step', 'strategy',
                                (ARRAY['induction','deduction','analogy','other'])[1 + mod(r.id, 4)]))""",
            "corrected_answer": "'42'",
            "first_wrong_step": "1",
            "error_type": "(ARRAY['arithmetic','wrong_operation','inconsistent_answer','missing_step','none'])[1 + mod(r.id, 5)]",
            "correction_strategy": "''",
            "confidence_low": "0.2",
            "confidence_high": "0.8",
            "transparent": "mod(r.id, 5) <> 0",
            "status": "CASE WHEN mod(r.id, 7) = 0 THEN 'rejected' ELSE 'approved' END",
            "created_at": "least(%s::timestamptz, r.created_at + interval '6 hours')",
        },
        f"{ReviewItem._meta.db_table} r WHERE r.status = 'annotated'",
        select_params=[now],
    )

    # Samples from the approved annotations (three kinds each), four cumulative monthly versions.
    for kind in TrainingSample.Kind.values:
        _insert(
            TrainingSample,
            {
                "kind": "%s",
                "source_annotation_id": "a.id",
                "content_hash": "md5(a.id || %s)",
                "split": "'train'",
                "payload": """jsonb_build_object('prompt', 'p', 'steps', a.corrected_steps, 'error_type', a.error_type,
                          'chosen', 'c', 'rejected', 'r', 'answer', '42', 'low', 0.2, 'high', 0.8)""",
                "created_at": "a.created_at",
            },
            f"{Annotation._meta.db_table} a WHERE a.status = 'approved'",
            select_params=[kind, kind],
        )
    samples = TrainingSample.objects.order_by("pk").values_list("pk", flat=True)
    n_samples = samples.count()
    first, last = samples.first(), samples.last()
    datasets, parent = [], None
    for i, period in enumerate(["2026-01", "2026-02", "2026-03", "2026-04"]):
        upto = first + int((last - first) * (0.7 + 0.1 * i))
        members = TrainingSample.objects.filter(pk__lte=upto)
        counts = {k: members.filter(kind=k).count() for k in TrainingSample.Kind.values}
        parent = DatasetVersion.objects.create(
            period=period,
            parent=parent,
            counts=counts,
            sha256="0" * 64,
            growth=None if i == 0 else 0.1 / (0.7 + 0.1 * (i - 1)),
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {DatasetVersion.samples.through._meta.db_table} "
                "(datasetversion_id, trainingsample_id) SELECT %s, id FROM "
                f"{TrainingSample._meta.db_table} WHERE id <= %s",
                [parent.pk, upto],
            )
        datasets.append(parent)
    # What dataset_version_build records at build time (the page reads it instead of counting).
    from ops import selectors

    t_count = time.perf_counter()
    for v in datasets:
        errors = {r["error_type"]: r["n"] for r in selectors.dataset_error_types(version_ids=[v.pk])}
        steps = {r["strategy"]: r["n"] for r in selectors.dataset_step_strategies(version_ids=[v.pk])}
        DatasetVersion.objects.filter(pk=v.pk).update(
            composition={"error_types": errors, "strategy_steps": steps}
        )
    composition_s = time.perf_counter() - t_count

    import math

    for i, (period, v, result, decision) in enumerate(
        [
            ("2025-Q4", base, q1, {"promote": True, "reason": "accuracy gain +0.080", "gain": 0.08}),
            ("2026-Q1", q1, q2, {"promote": False, "reason": "gain below +0.020", "gain": 0.01}),
        ]
    ):
        TrainingRun.objects.create(
            period=period,
            dataset=datasets[i],
            base_version=v,
            recipe=result.recipe,
            stage="done",
            loss_history=[
                {"step": s, "loss": round(2.5 * math.exp(-s / 150) + 0.2, 4)} for s in range(0, 600, 2)
            ],
            decision=decision,
            result_version=result,
            finished_at=now,
        )
    for v, acc in ((base, 0.55), (q1, 0.63), (q2, 0.64)):
        Evaluation.objects.create(
            model_version=v,
            eval_set="workload-heldout",
            metrics={
                "n": 400,
                "accuracy": acc,
                "error_rate": 1 - acc,
                "mean_score": acc + 0.1,
                "strategy_diversity": 2.5,
                "correction_steps": 1.8,
                "ece": 0.07,
                "slices": {"add": {"n": 200, "accuracy": acc}},
            },
        )

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # autovacuum does this after a bulk load; index-only scans need it
    return {
        "seconds": time.perf_counter() - t0,
        "outputs": Output.objects.count(),
        "review_items": ReviewItem.objects.count(),
        "annotations": Annotation.objects.count(),
        "samples": n_samples,
        "composition_s": composition_s,
    }


PAGES = [
    ("overview", None),
    ("cognition", 30),
    ("cognition", 365),
    ("capture", 30),
    ("capture", 365),
    ("queue", 30),
    ("queue", 365),
    ("reviewers", 30),
    ("reviewers", 365),
    ("datasets", None),
    ("training", None),
    ("models", None),
]


def time_pages(pages, requests: int) -> list[dict]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    staff, _ = get_user_model().objects.get_or_create(username="bench-staff", defaults={"is_staff": True})
    client = Client()
    client.force_login(staff)
    results = []
    for name, days in pages:
        url = reverse(f"dashboards:{name}") + (f"?days={days}" if days else "")
        queries: list[str] = []

        def count(execute, sql, params, many, context, queries=queries):
            queries.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            assert client.get(url).status_code == 200, url  # warm-up (and the query count)
        times = []
        for _ in range(requests):
            t0 = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200
        results.append(
            {
                "page": url,
                "median_ms": statistics.median(times),
                "max_ms": max(times),
                "queries": len(queries),
            }
        )
    return results


def fill_rollups() -> dict:
    """The beat's refresh over every closed day (the first run's backfill), and one day's
    recompute alone (what the refresh costs each night)."""
    from django.db import connection
    from django.utils import timezone

    from ops import services
    from ops.models import DailyOutputStats

    t0 = time.perf_counter()
    done = services.rollups_refresh(max_days=10**6)
    backfill_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    services.rollup_day_recompute(day=timezone.localdate() - timezone.timedelta(days=1))
    one_day_s = time.perf_counter() - t0
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {
        "days": done["recomputed"],
        "backfill_s": backfill_s,
        "one_day_s": one_day_s,
        "output_rows": DailyOutputStats.objects.count(),
    }


def without_rollups(pages, requests: int) -> list[dict]:
    """The pages with every roll-up day set aside: all raw reads, the dashboards before roll-ups."""
    from ops.models import RollupDay

    kept = list(RollupDay.objects.all())
    RollupDay.objects.all().delete()
    try:
        return time_pages(pages, requests)
    finally:
        RollupDay.objects.bulk_create(kept)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def main() -> None:
    global DAYS
    parser = argparse.ArgumentParser()
    parser.add_argument("--outputs", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=DAYS, help="days the outputs are spread over")
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument(
        "--without-index", action="store_true", help="also time raw pages without the covering index"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    DAYS = args.days

    print(f"start: {load()}", flush=True)
    recreate_database()
    setup_django()
    from django.db import connection

    stats = fill(args.outputs)
    print(
        f"\nfilled in {stats['seconds']:.0f} s: {stats['outputs']:,} outputs over {DAYS} days, "
        f"{stats['review_items']:,} review items, {stats['annotations']:,} annotations, "
        f"{stats['samples']:,} training samples; counting the four dataset versions' composition in "
        f"SQL took {stats['composition_s']:.1f} s",
        flush=True,
    )
    rollups = fill_rollups()
    print(
        f"roll-ups: {rollups['days']} days in {rollups['backfill_s']:.1f} s "
        f"({rollups['output_rows']:,} output roll-up rows); one day's recompute {rollups['one_day_s'] * 1000:.0f} ms; "
        f"{load()}\n",
        flush=True,
    )
    with_rollups = time_pages(PAGES, args.requests)
    print(f"with roll-ups done: {load()}", flush=True)
    windowed = [p for p in PAGES if p[1] is not None or p[0] == "overview"]
    raw = {r["page"]: r for r in without_rollups(windowed, args.requests)}
    print(f"raw done: {load()}\n", flush=True)
    print(
        "| page | roll-ups median ms | max ms | queries | raw median ms | raw max ms | raw queries |\n"
        "|---|---|---|---|---|---|---|"
    )
    for r in with_rollups:
        b = raw.get(r["page"])
        before = f"{b['median_ms']:.0f} | {b['max_ms']:.0f} | {b['queries']}" if b else "- | - | -"
        print(f"| {r['page']} | {r['median_ms']:.0f} | {r['max_ms']:.0f} | {r['queries']} | {before} |")

    if args.without_index:
        heavy = [p for p in PAGES if p[0] in ("overview", "cognition", "capture")]
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX output_created_scores")
            cursor.execute("ANALYZE")
        without = without_rollups(heavy, args.requests)
        with connection.cursor() as cursor:
            t0 = time.perf_counter()
            cursor.execute(
                "CREATE INDEX output_created_scores ON inference_output (created_at) INCLUDE "
                "(model_version_id, cognition_score, consistency, adaptability, head_confidence)"
            )
            build_s = time.perf_counter() - t0
        print("\n| page (raw) | with the covering index, ms | without, ms |\n|---|---|---|")
        for r in without:
            print(f"| {r['page']} | {raw[r['page']]['median_ms']:.0f} | {r['median_ms']:.0f} |")
        print(f"\nbuilding output_created_scores over {stats['outputs']:,} outputs: {build_s:.1f} s")
    print(f"\nend: {load()}")
    if not args.keep:
        drop_database()


if __name__ == "__main__":
    main()
