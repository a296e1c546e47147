from datetime import timedelta

import pytest
from django.utils import timezone

from annotation import services as annotation_services
from feedback import services as feedback_services
from inference import services as inference_services
from inference.engine import workload
from retrain import gate, services
from retrain.embedded import register_embedded_eval_set
from retrain.models import DatasetVersion, TrainingRun

WRONG_STEP = "Step 1 [deduction]: {a} - 1 = {b}\n</think>\n\nThe answer is {b}."


@pytest.fixture
def annotate(product_app, reviewer):
    problems = iter(workload.problems(200, seed=3, split="train"))

    def make(n: int):
        for _ in range(n):
            p = next(problems)
            output = inference_services.output_create(
                app=product_app, prompt=p.prompt, raw_text=WRONG_STEP.format(a=10, b=12)
            )
            item = feedback_services.review_item_claim(item_id=output.review_item.pk, user=reviewer)
            annotation_services.annotation_submit(
                item_id=item.pk,
                annotator=reviewer,
                corrected_steps=[{"text": "10 - 1 = 9", "strategy": "deduction"}],
                corrected_answer="9",
                error_type="arithmetic",
                confidence_low=0.8,
                confidence_high=0.9,
                transparent=True,
            )

    return make


def test_monthly_growth_is_capped_and_the_rest_carries_over(annotate, settings):
    settings.COGLOOP = {**settings.COGLOOP, "DATASET_MAX_GROWTH": 0.10}
    annotate(20)
    first = services.dataset_version_build(period="2026-09")
    assert first.counts["reflection"] == 20  # the first version takes everything
    annotate(5)
    second = services.dataset_version_build(period="2026-10")
    assert second.counts["reflection"] == 22 and second.growth == pytest.approx(0.1)
    third = services.dataset_version_build(period="2026-11")  # the 3 left over, capped again at 2
    assert third.counts["reflection"] == 24 and third.parent == second
    assert set(second.samples.values_list("pk", flat=True)) < set(third.samples.values_list("pk", flat=True))


def test_monthly_beat_without_news_makes_no_version(db):
    assert services.dataset_version_build_monthly() is None
    assert DatasetVersion.objects.count() == 0


@pytest.fixture
def run(annotate):
    annotate(2)
    dataset = services.dataset_version_build(period="2026-10")
    inference_services.model_version_ensure_base()
    register_embedded_eval_set()  # the gate measures on an evaluation set
    return services.training_run_start(dataset=dataset, period="2026-Q4")


def test_reconcile_requeues_a_stale_run_then_gives_up(run):
    from cogloop.models import OutboxMessage

    queued = OutboxMessage.objects.filter(payload={"run_id": run.pk})
    before = queued.count()
    stale = timezone.now() - timedelta(minutes=30)
    TrainingRun.objects.filter(pk=run.pk).update(stage="training", heartbeat_at=stale, lease_owner="dead:1")
    assert services.training_run_reconcile() == [run.pk]
    assert queued.count() == before + 1  # queued again through the outbox
    run.refresh_from_db()
    assert run.lease_owner == "" and run.progress["attempts"] == 2
    TrainingRun.objects.filter(pk=run.pk).update(
        heartbeat_at=stale, progress={"attempts": services.RUN_MAX_ATTEMPTS}
    )
    assert services.training_run_reconcile() == []
    run.refresh_from_db()
    assert run.stage == "failed" and "gave up" in run.error


def test_reconcile_leaves_live_runs_alone(run):
    TrainingRun.objects.filter(pk=run.pk).update(
        stage="training", heartbeat_at=timezone.now(), lease_owner="w:1"
    )
    assert services.training_run_reconcile() == []


def test_quarterly_beat_is_once_per_quarter(annotate):
    annotate(1)
    services.dataset_version_build(period="2026-10")
    inference_services.model_version_ensure_base()
    register_embedded_eval_set()  # the gate measures on an evaluation set
    first = services.training_run_start_quarterly()
    assert first is not None
    assert services.training_run_start_quarterly() is None  # a doubled beat is harmless
    assert TrainingRun.objects.count() == 1


def test_paired_bootstrap_separates_a_real_gain_from_noise():
    serving = [{"correct": i % 2 == 0} for i in range(200)]
    better = [{"correct": True} for _ in range(200)]
    same = [{"correct": (i + 1) % 2 == 0} for i in range(200)]  # as accurate, different items
    gain, low, high = gate.paired_bootstrap_gain(serving, better)
    assert gain == pytest.approx(0.5) and low > 0.4
    gain, low, high = gate.paired_bootstrap_gain(serving, same)
    assert gain == 0 and low < 0 < high
    metrics = {"overall": {"accuracy": 0.5}, "slices": {}}
    up = {"overall": {"accuracy": 0.53}, "slices": {}}
    decision = gate.gate_decide(
        serving=metrics, candidate=up, min_gain=0.02, tolerance=0.05, ci=(-0.01, 0.07)
    )
    assert not decision["promote"] and "not significant" in decision["reason"]


def test_dataset_exports_load_with_datasets_and_trl(annotate, settings, tmp_path):
    import datasets
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    from inference.engine import loading

    annotate(6)
    version = services.dataset_version_build(period="2026-09")
    assert {name: f["rows"] for name, f in version.files.items()} == {
        "sft": 6,
        "preference": 6,
        "strategy": 6,
        "uncertainty": 6,
    }
    assert version.composition["error_types"] == {"arithmetic": 6}
    assert version.composition["strategy_steps"] == {"deduction": 6}
    preference = datasets.load_dataset(
        "json", data_files=version.files["preference"]["path"], split="train", cache_dir=str(tmp_path)
    )
    assert len(preference) == 6 and is_conversational(preference[0])
    _, tokenizer = loading.load_model(settings.BASE_MODEL)
    rendered = maybe_apply_chat_template(preference[0], tokenizer)
    assert "10 - 1 = 9" in rendered["chosen"] and "12" in rendered["rejected"] and rendered["prompt"].strip()
    sft = datasets.load_dataset(
        "json", data_files=version.files["sft"]["path"], split="train", cache_dir=str(tmp_path)
    )
    assert [m["role"] for m in sft[0]["messages"]] == ["user", "assistant"]
    uncertainty = datasets.load_dataset(
        "json", data_files=version.files["uncertainty"]["path"], split="train", cache_dir=str(tmp_path)
    )
    assert (uncertainty[0]["low"], uncertainty[0]["high"]) == (0.8, 0.9)


def test_a_reworded_held_out_problem_never_enters_a_dataset(annotate, product_app, reviewer, settings):
    held_out = services.eval_items()[0]["prompt"]
    reworded = "  " + held_out.upper().replace(".", " .") + "  "
    assert workload.split_of(reworded) == "train"  # its hash alone would let it in
    output = inference_services.output_create(
        app=product_app, prompt=reworded, raw_text=WRONG_STEP.format(a=10, b=12)
    )
    item = feedback_services.review_item_claim(item_id=output.review_item.pk, user=reviewer)
    annotation_services.annotation_submit(
        item_id=item.pk,
        annotator=reviewer,
        corrected_steps=[{"text": "10 - 1 = 9", "strategy": "deduction"}],
        corrected_answer="9",
        error_type="arithmetic",
        confidence_low=0.8,
        confidence_high=0.9,
        transparent=True,
    )
    annotate(3)
    version = services.dataset_version_build(period="2026-09")
    assert version.counts["reflection"] == 3
    assert version.composition["held_out_excluded"] == 3  # its reflection, strategy and uncertainty samples
    assert not version.samples.filter(payload__prompt=reworded).exists()


@pytest.mark.django_db(transaction=True)
def test_a_long_stage_keeps_the_lease_alive_and_a_taken_lease_stops_the_beat(run):
    """The heartbeat beats from its own thread (and connection) while the stage reports
    nothing, so the reconcile never hands a working run to a second worker."""
    import time

    from retrain.services import runs

    stale = timezone.now() - timedelta(minutes=30)
    TrainingRun.objects.filter(pk=run.pk).update(stage="training", heartbeat_at=stale, lease_owner="")
    held = runs.training_run_acquire(run_id=run.pk)
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=stale)  # as if minutes went by
    with runs.lease_heartbeat(held, every=0.05):
        time.sleep(1.0)  # a stage with no progress events
        assert services.training_run_reconcile() == [], "a beating run is not stale"
    run.refresh_from_db()
    assert timezone.now() - run.heartbeat_at < timedelta(seconds=5)

    # Another worker took the lease: this process's heartbeat must not keep it looking alive.
    TrainingRun.objects.filter(pk=run.pk).update(lease_owner="other:1", heartbeat_at=stale)
    with runs.lease_heartbeat(held, every=0.05):
        time.sleep(0.3)
    run.refresh_from_db()
    assert run.heartbeat_at == stale and run.lease_owner == "other:1"
