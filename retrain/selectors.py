from django.db.models import Count, Q

from annotation.models import Annotation
from cogloop.draws import stable_draw
from inference.engine import chat
from inference.engine.parser import parse_output
from inference.engine.scoring import extract_claims
from inference.models import ModelVersion, Output
from retrain import embedded
from retrain.models import DatasetVersion, Evaluation, TrainingSample

REPLAY_MIN_SCORE = 0.75


def replay_samples(*, version: ModelVersion, limit: int) -> list[dict]:
    """The newest outputs ``version`` served that the checker found consistent and nobody
    flagged: rehearsal data against forgetting. Held-out prompts never enter."""
    if limit <= 0:
        return []
    rows = []
    outputs = (
        Output.objects.filter(
            model_version=version, cognition_score__gte=REPLAY_MIN_SCORE, review_item__isnull=True
        )
        .order_by("-created_at")
        .values_list("prompt", "raw_text")
    )
    for prompt, raw in outputs.iterator():
        if embedded.split_of(prompt) != "train":
            continue
        rows.append({"prompt": prompt, "chosen": raw})
        if len(rows) >= limit:
            break
    return rows


def reflection_rows(
    dataset: DatasetVersion, *, style: str | None = None, self_correction_share: float = 0.0
) -> list[dict]:
    """The dataset's reflection samples as trainer rows, each with the metacognition head's
    confidence targets: the middle of the reviewer's interval for the corrected response
    (from the same annotation's uncertainty sample), 0 for an original the reviewer found
    wrong (None when the reviewer found no error: nothing to learn about it). With ``style``
    the corrected response is rendered again as a model of that style writes its reasoning,
    and a stable ``self_correction_share`` of the corrections whose first changed step held a
    wrong claim is rendered as a self-correction (chat.self_corrected_steps): the wrong step,
    then "Wait, that is wrong: ..." and the corrected step, so that a model can learn to catch
    its own errors and correction steps become measurable."""
    samples = dataset.samples.filter(
        kind__in=[TrainingSample.Kind.REFLECTION, TrainingSample.Kind.UNCERTAINTY]
    )
    intervals, rows = {}, []
    for s in samples.order_by("pk"):
        if s.kind == TrainingSample.Kind.UNCERTAINTY:
            intervals[s.source_annotation_id] = (s.payload["low"] + s.payload["high"]) / 2
    reflections = samples.filter(kind=TrainingSample.Kind.REFLECTION).select_related("source_annotation")
    for s in reflections.order_by("pk"):
        p = s.payload
        chosen = p["chosen"]
        if style is not None:
            a = s.source_annotation
            steps = [chat.Step(step["strategy"], step["text"]) for step in a.corrected_steps]
            if p.get("error_type") != "none" and stable_draw("self-correction", s.pk) < self_correction_share:
                steps = _as_self_correction(p["rejected"], steps)
            chosen = chat.render_response(steps, a.corrected_answer, style=style)
        row = {"prompt": p["prompt"], "chosen": chosen, "confidence": intervals.get(s.source_annotation_id)}
        if p.get("error_type") != "none":
            row.update(rejected=p["rejected"], rejected_confidence=0.0)
        # else a reviewer verified the answer right (an audit approval): nothing to prefer it
        # over, so it trains as replay (the trainer's rows without "rejected").
        rows.append(row)
    return rows


def _as_self_correction(rejected: str, corrected: list[chat.Step]) -> list[chat.Step]:
    """``corrected`` as a self-correction of ``rejected`` when the first step the reviewer
    changed made a wrong claim (else a "that is wrong" would be a lie: unchanged)."""
    original = parse_output(rejected).steps
    marked = chat.self_corrected_steps([chat.Step(o.strategy, o.text) for o in original], corrected)
    if len(marked) == len(corrected):
        return corrected
    wrong = next(i for i, (m, c) in enumerate(zip(marked, corrected)) if m != c)
    if not any(not c.correct for c in extract_claims(wrong, marked[wrong].text)):
        return corrected
    return marked


def review_metrics(version: ModelVersion) -> dict:
    """What reviewers said about ``version``'s outputs: transparency approval (the share of
    reviewed outputs whose reasoning the reviewer found understandable; seed target 85 %) over
    every non-rejected annotation. Captured outputs are the weak ones, so this is a floor, not
    an unbiased estimate; the audit sample is what keeps it honest."""
    counts = (
        Annotation.objects.filter(review_item__output__model_version=version)
        .exclude(status=Annotation.Status.REJECTED)
        .aggregate(n=Count("pk"), yes=Count("pk", filter=Q(transparent=True)))
    )
    return {
        "transparency_approval": round(counts["yes"] / counts["n"], 4) if counts["n"] else None,
        "transparency_reviews": counts["n"],
    }


# The error classes the held-out evaluation can tell apart (retrain.trainer.evaluate.error_class):
# only samples of these can be judged learned.
MEASURED_ERROR_TYPES = ("arithmetic", "inconsistent_answer", "wrong_operation")


def retired_error_types() -> set[str]:
    """Error types the serving model no longer makes: none of its held-out answers at its last
    evaluation had that class. Empty until the active version has been evaluated."""
    active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
    evaluation = (
        Evaluation.objects.filter(model_version=active).order_by("-created_at").first() if active else None
    )
    own_errors = (evaluation.metrics or {}).get("own_errors") if evaluation else None
    if own_errors is None:
        return set()
    return {t for t in MEASURED_ERROR_TYPES if not own_errors.get(t)}
