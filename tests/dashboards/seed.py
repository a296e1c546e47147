"""A whole loop's worth of rows for the dashboard tests: versions promoted, rolled back and
rejected (through the real services), outputs over several weeks, captured review items,
annotations by several reviewers, monthly dataset versions, training runs and evaluations.

``scale`` multiplies the row counts (outputs, review items, annotations, samples) and keeps
the number of versions, runs and months fixed, so two scales expose any page whose query
count grows with the data.
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from annotation.models import Annotation
from feedback.models import ReviewItem
from inference import services as inference_services
from inference.models import ModelVersion, Output, ProductApp
from retrain.models import DatasetVersion, Evaluation, TrainingRun, TrainingSample

STRATEGIES = ["induction", "deduction", "analogy", "other"]
REVIEWERS = ["ada", "bo", "cleo"]


def _version(name: str, **kw) -> ModelVersion:
    return ModelVersion.objects.create(
        name=name, base_model_path="cogloop-tiny", weights_path=name, sha256="0" * 64, **kw
    )


def seed_traffic(*, scale: int, days: int = 21, seed: int = 7) -> dict:
    """Outputs over ``days`` for the base and q1 versions, their review items and annotations."""
    rng = random.Random(seed)
    now = timezone.now()
    users = {u.username: u for u in get_user_model().objects.filter(username__in=REVIEWERS)}
    app, _ = ProductApp.objects.get_or_create(name="shop")
    base = ModelVersion.objects.get(name="cogloop-tiny-base")
    q1 = ModelVersion.objects.get(name="cogloop-tiny-2026-q1-r1")
    # Outputs: base serves the first half of the period, q1 the second; q1 scores better.
    outputs = []
    n_outputs = 60 * scale
    for i in range(n_outputs):
        age = timedelta(days=days * (1 - (i + 0.5) / n_outputs), minutes=rng.randrange(600))
        version = base if i < n_outputs // 2 else q1
        consistency = min(1.0, max(0.0, rng.gauss(0.62 if version is base else 0.78, 0.2)))
        adaptability = min(1.0, max(0.0, rng.gauss(0.45 if version is base else 0.6, 0.2)))
        outputs.append(
            Output(
                app=app,
                prompt=f"What is {i} + {i}? ({seed})",
                raw_text=f"Step 1 [deduction]: {i} + {i} = {2 * i}\n</think>\n\nThe answer is {2 * i}.",
                steps=[],
                answer=str(2 * i),
                consistency=consistency,
                adaptability=adaptability,
                cognition_score=0.6 * consistency + 0.4 * adaptability,
                head_confidence=rng.random() if i % 3 else None,
                model_version=version,
            )
        )
        outputs[-1].seed_created_at = now - age
    Output.objects.bulk_create(outputs)
    for o in outputs:
        o.created_at = o.seed_created_at
    Output.objects.bulk_update(outputs, ["created_at"])

    # Review items: every low-score output, a few audit samples and low ratings.
    items = []
    for i, o in enumerate(outputs):
        if o.cognition_score < 0.6:
            reason = ReviewItem.Reason.LOW_SCORE
        elif i % 9 == 0:
            reason = ReviewItem.Reason.LOW_RATING
        elif i % 13 == 0:
            reason = ReviewItem.Reason.AUDIT_SAMPLE
        else:
            continue
        status = rng.choice(
            [ReviewItem.Status.ANNOTATED] * 3 + [ReviewItem.Status.QUEUED, ReviewItem.Status.CLAIMED]
        )
        item = ReviewItem(
            output=o,
            reason=reason,
            priority=o.cognition_score,
            status=status,
            claimed_by=users[rng.choice(REVIEWERS)] if status != ReviewItem.Status.QUEUED else None,
            lease_expires_at=now + timedelta(minutes=rng.choice([-5, 20])),
        )
        item.seed_created_at = o.created_at + timedelta(minutes=1)
        items.append(item)
    ReviewItem.objects.bulk_create(items)
    for it in items:
        it.created_at = it.seed_created_at
    ReviewItem.objects.bulk_update(items, ["created_at"])

    annotations = []
    for it in items:
        if it.status != ReviewItem.Status.ANNOTATED:
            continue
        steps = [{"text": f"step {k}", "strategy": rng.choice(STRATEGIES)} for k in range(rng.randint(1, 3))]
        a = Annotation(
            review_item=it,
            annotator=it.claimed_by,
            corrected_steps=steps,
            corrected_answer="4",
            first_wrong_step=1,
            error_type=rng.choice(list(Annotation.ErrorType.values)),
            confidence_low=0.2,
            confidence_high=0.8,
            transparent=rng.random() < 0.8,
            status=rng.choice(
                [Annotation.Status.APPROVED] * 3 + [Annotation.Status.SUBMITTED, Annotation.Status.REJECTED]
            ),
        )
        a.seed_created_at = it.created_at + timedelta(hours=rng.randint(1, 30))
        annotations.append(a)
    # Every third annotated item was annotated twice, blind, by another reviewer (agreement).
    twins = []
    for a in annotations[::3]:
        a.blind = True
        partner = users[REVIEWERS[(REVIEWERS.index(a.annotator.username) + 1) % len(REVIEWERS)]]
        twin = Annotation(
            review_item=a.review_item,
            annotator=partner,
            corrected_steps=a.corrected_steps,
            corrected_answer=a.corrected_answer,
            first_wrong_step=1,
            blind=True,
            error_type=a.error_type if rng.random() < 0.7 else Annotation.ErrorType.OTHER,
            confidence_low=0.3,
            confidence_high=0.9,
            transparent=a.transparent,
            status=a.status,
        )
        twin.seed_created_at = a.seed_created_at + timedelta(hours=1)
        twins.append(twin)
    annotations += twins
    Annotation.objects.bulk_create(annotations)
    for a in annotations:
        a.created_at = min(a.seed_created_at, now)
    Annotation.objects.bulk_update(annotations, ["created_at"])

    return {"app": app, "outputs": outputs, "review_items": items, "annotations": annotations}


def seed_loop(*, scale: int = 1, days: int = 21, seed: int = 7) -> dict:
    rng = random.Random(seed)
    now = timezone.now()
    for name in REVIEWERS:
        get_user_model().objects.create_user(username=name, password="pw-" + name)

    # The base is a real registered model (a rollback to it verifies its files); the later
    # versions stand for history only.
    base = inference_services.model_version_register(
        name="cogloop-tiny-base",
        source_dir=Path(settings.BASE_MODEL),
        base_model_path="cogloop-tiny",
        recipe="base",
    )
    q1 = _version("cogloop-tiny-2026-q1-r1", recipe="lora-all", parent=base)
    q2 = _version("cogloop-tiny-2026-q2-r2", recipe="layered", parent=q1)
    # Rows that stand for a loop's history have no files to verify: activated as they were then.
    activate = inference_services.model_version_activate_unverified_unsafe
    activate(version=base, reason="initial base model")
    activate(version=q1, reason="accuracy gain +0.120")
    activate(
        version=ModelVersion.objects.get(pk=base.pk), reason="rollback from cogloop-tiny-2026-q1-r1 by stella"
    )
    activate(version=ModelVersion.objects.get(pk=q1.pk), reason="re-promoted")
    inference_services.model_version_reject(
        version=q2, reason="accuracy gain +0.004 is below the required +0.020"
    )
    traffic = seed_traffic(scale=scale, days=days, seed=seed)
    annotations = traffic["annotations"]
    # Three monthly dataset versions, each the previous one plus new samples.
    approved = [a for a in annotations if a.status == Annotation.Status.APPROVED]
    samples = _samples(approved)
    datasets, parent, members = [], None, []
    thirds = [
        samples[: len(samples) // 3 * 2],
        samples[len(samples) // 3 * 2 : len(samples) // 6 * 5],
        samples[len(samples) // 6 * 5 :],
    ]
    for period, new in zip(["2026-01", "2026-02", "2026-03"], thirds):
        old = len(members)
        members = members + new
        counts: dict[str, int] = {}
        for s in members:
            counts[s.kind] = counts.get(s.kind, 0) + 1
        parent = DatasetVersion.objects.create(
            period=period,
            parent=parent,
            counts=counts,
            sha256=period * 9,
            growth=(len(members) - old) / old if old else None,
        )
        parent.samples.set(members)
        datasets.append(parent)

    # Runs: q1's (promoted), q2's (rejected), and one in progress.
    def losses(start: float, n: int) -> list[dict]:
        return [{"step": 5 * k, "loss": round(start * 0.93**k + 0.05 * rng.random(), 4)} for k in range(n)]

    decision_yes = {
        "promote": True,
        "reason": "accuracy gain +0.120 (95% CI +0.070 to +0.170)",
        "gain": 0.12,
        "ci95": [0.07, 0.17],
    }
    decision_no = {
        "promote": False,
        "reason": "accuracy gain +0.004 is below the required +0.020",
        "gain": 0.004,
        "ci95": [-0.03, 0.04],
    }
    run1 = TrainingRun.objects.create(
        period="2026-Q1",
        dataset=datasets[0],
        base_version=base,
        recipe="lora-all",
        stage=TrainingRun.Stage.DONE,
        loss_history=losses(2.4, 30),
        decision=decision_yes,
        result_version=q1,
        progress={"step": 145, "epoch": 8},
        finished_at=now,
    )
    run2 = TrainingRun.objects.create(
        period="2026-Q2",
        dataset=datasets[1],
        base_version=q1,
        recipe="layered",
        stage=TrainingRun.Stage.DONE,
        loss_history=losses(2.1, 24),
        decision=decision_no,
        result_version=q2,
        progress={"step": 115, "epoch": 8},
        finished_at=now,
    )
    TrainingRun.objects.create(
        period="2026-Q3",
        dataset=datasets[2],
        base_version=q1,
        recipe="lora-all",
        stage=TrainingRun.Stage.TRAINING,
        loss_history=losses(2.0, 9),
        progress={"step": 40, "epoch": 2},
    )
    slices = {
        "add": {"n": 50, "accuracy": 0.62, "mean_score": 0.7},
        "mul": {"n": 50, "accuracy": 0.4, "mean_score": 0.6},
    }
    # The evaluator's layout ({"overall", "slices"}) and the extended flat one, side by side.
    Evaluation.objects.create(
        model_version=base,
        training_run=run1,
        eval_set="workload-heldout",
        metrics={
            "overall": {"n": 100, "accuracy": 0.51, "error_rate": 0.49, "mean_score": 0.64},
            "slices": slices,
        },
    )
    Evaluation.objects.create(
        model_version=q1,
        training_run=run1,
        eval_set="workload-heldout",
        metrics={
            "n": 100,
            "accuracy": 0.63,
            "error_rate": 0.37,
            "mean_score": 0.74,
            "transparency_approval": 0.88,
            "correction_steps": 1.6,
            "strategy_diversity": 2.4,
            "ece": 0.08,
            "slices": {
                "add": {"n": 50, "accuracy": 0.8, "mean_score": 0.8},
                "mul": {"n": 50, "accuracy": 0.46, "mean_score": 0.68},
            },
        },
    )
    Evaluation.objects.create(
        model_version=q2,
        training_run=run2,
        eval_set="workload-heldout",
        metrics={
            "n": 100,
            "accuracy": 0.634,
            "mean_score": 0.75,
            "transparency_approval": 0.81,
            "correction_steps": 2.7,
            "strategy_diversity": 3.1,
        },
    )
    return {
        "versions": [base, q1, q2],
        "outputs": len(traffic["outputs"]),
        "review_items": len(traffic["review_items"]),
        "annotations": len(annotations),
        "datasets": datasets,
    }


def seed_more(*, scale: int, seed: int) -> None:
    """More traffic on an existing seed, its approved annotations' samples added to the
    newest dataset version (which stays the newest)."""
    traffic = seed_traffic(scale=scale, seed=seed)
    samples = _samples([a for a in traffic["annotations"] if a.status == Annotation.Status.APPROVED])
    newest = DatasetVersion.objects.order_by("-period").first()
    newest.samples.add(*samples)


def _samples(approved: list[Annotation]) -> list[TrainingSample]:
    samples = []
    for a in approved:
        output = a.review_item.output
        payloads = {  # the shapes retrain.services.training_samples_collect writes
            TrainingSample.Kind.REFLECTION: {
                "prompt": output.prompt,
                "chosen": f"The answer is {a.corrected_answer}.",
                "rejected": output.raw_text,
                "error_type": a.error_type,
                "first_wrong_step": a.first_wrong_step,
            },
            TrainingSample.Kind.STRATEGY: {"prompt": output.prompt, "steps": a.corrected_steps},
            TrainingSample.Kind.UNCERTAINTY: {
                "prompt": output.prompt,
                "answer": a.corrected_answer,
                "low": a.confidence_low,
                "high": a.confidence_high,
            },
        }
        for kind, payload in payloads.items():
            samples.append(
                TrainingSample(kind=kind, payload=payload, source_annotation=a, content_hash=f"{a.pk}-{kind}")
            )
    return TrainingSample.objects.bulk_create(samples)
