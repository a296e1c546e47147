from inference.engine import workload
from inference.models import ModelVersion, Output

REPLAY_MIN_SCORE = 0.75


def replay_samples(*, version: ModelVersion, limit: int) -> list[dict]:
    """The newest outputs ``version`` served that the checker found consistent and nobody
    flagged: rehearsal data against forgetting. Held-out prompts never enter."""
    if limit <= 0:
        return []
    rows = []
    outputs = (
        Output.objects.filter(model_version=version, cognition_score__gte=REPLAY_MIN_SCORE, review_item__isnull=True)
        .order_by("-created_at")
        .values_list("prompt", "raw_text")
    )
    for prompt, raw in outputs.iterator():
        if workload.split_of(prompt) != "train":
            continue
        rows.append({"prompt": prompt, "chosen": raw})
        if len(rows) >= limit:
            break
    return rows
